"""The live view (``host.daemon.live.render``, ``smartroller live``): it uses the
terminal's width, marks the vertebra it names, drops an event's line after a few
seconds, and says at once when no daemon publishes."""

import json
import math
import os
import time

import pytest

from host.analysis.model import LEVEL_NAMES, level_name
from host.cli import main as cli
from host.daemon import live
from host.daemon.live import MESSAGE_S, LiveStatus, render

ADDRESS = "F2:83:5D:6F:F8:0C"


def status(**kwargs) -> LiveStatus:
    base = dict(connected=True, session_id=3, utc=time.time(), t=100.0, in_contact=True,
                position_mm=120.0, level=8.5, region="mid_thoracic", p_below=0.01,
                zone_loads_n=[20.0] * 8, total_load_n=160.0)
    return LiveStatus(ADDRESS, **{**base, **kwargs})


def test_lines_are_as_wide_as_the_terminal(monkeypatch):
    monkeypatch.setattr(live.shutil, "get_terminal_size", lambda: os.terminal_size((160, 40)))
    fault = "cannot store: " + "the disk is full " * 6
    lines = render(status(fault=fault.strip()))
    assert f"  NOT STORING: {fault.strip()} (the roller keeps the frames)" in lines
    assert max(len(line) for line in lines) > 100
    monkeypatch.setattr(live.shutil, "get_terminal_size", lambda: os.terminal_size((50, 40)))
    assert max(len(line) for line in render(status(fault=fault))) == 50


@pytest.mark.parametrize("level", [x / 10 for x in range(0, 180, 3)])
def test_the_marked_row_is_the_vertebra_the_text_names(level):
    lines = render(status(level=level), width=200)
    marked = [line for line in lines if "◀ roller" in line]
    assert len(marked) == 1
    row_name = marked[0].split()[0]
    rows = [name for _, name in live._SPINE]
    first = LEVEL_NAMES.index(row_name)
    after = LEVEL_NAMES.index(rows[rows.index(row_name) + 1]) if row_name != rows[-1] \
        else len(LEVEL_NAMES)
    assert first <= math.floor(level) < after  # the row stands for that vertebra
    assert f"◀ roller at {level_name(level)}" in marked[0]
    assert any(f"at {level_name(level)} (" in line for line in lines)


def test_an_uncalibrated_session_says_the_margin_is_wider_and_what_calibrating_changes():
    view = "\n".join(render(status(uncalibrated=True), width=160))
    assert "UNCALIBRATED: the warning and the roller's fence keep a wider margin" in view
    assert "what calibrating changes" in view
    calibrated = "\n".join(render(status(uncalibrated=False), width=160))
    assert "UNCALIBRATED" not in calibrated and "what calibrating changes" not in calibrated
    # a status written by an older daemon (with its since-dropped wide_margin) still reads
    old = json.loads(status(uncalibrated=True).to_json()) | {"wide_margin": False}
    assert LiveStatus.from_json(json.dumps(old)).uncalibrated


def test_an_event_line_goes_after_a_few_seconds():
    cue = "close to the bottom of the ribs"
    assert any(cue in line for line in render(status(message=cue, message_t=98.0)))
    gone = status(message=cue, message_t=100.0 - MESSAGE_S - 0.5)
    assert not any(cue in line for line in render(gone))
    assert MESSAGE_S <= 10.0


def test_live_without_a_daemon_says_so_at_once(tmp_path, monkeypatch, capsys):
    assert cli.main(["live", "--once", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err == (f"smartroller: error: no daemon is publishing in {tmp_path}: start "
                   "`smartroller daemon` (or `smartroller daemon --live` to watch it there)\n")

    def stop(_s: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("host.cli.daemon.time.sleep", stop)
    assert cli.main(["live", "--data-dir", str(tmp_path)]) == 130
    assert f"no daemon is publishing in {tmp_path}: start `smartroller daemon`" in \
        capsys.readouterr().out


def test_live_with_a_daemon_and_no_roller_says_that(tmp_path, monkeypatch, capsys):
    from host.daemon.lock import DaemonLock

    monkeypatch.setattr("host.cli.daemon.time.sleep", lambda _s: (_ for _ in ()).throw(
        KeyboardInterrupt))
    with DaemonLock(tmp_path):
        assert cli.main(["live", "--data-dir", str(tmp_path)]) == 130
    assert f"the daemon in {tmp_path} publishes no roller yet" in capsys.readouterr().out


def test_a_full_disk_still_gets_the_not_storing_status(tmp_path, monkeypatch):
    """Issue 18: on a full disk no new status file could be written, so the live view
    and ``devices`` never said the daemon was not storing (the status went stale)."""
    import errno
    from pathlib import Path

    live.publish(tmp_path, status(message="a longer line than the next status has " * 3))
    before = live.status_path(tmp_path, ADDRESS).stat().st_size

    def full(self, data):
        with self.open("wb"):  # the file is made, its bytes find no room
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    monkeypatch.setattr(Path, "write_text", full)
    live.publish(tmp_path, status(fault="cannot store: database or disk is full"))
    [got] = live.read_statuses(tmp_path)
    assert got.fault == "cannot store: database or disk is full" and got.message == ""
    assert live.status_path(tmp_path, ADDRESS).stat().st_size == before  # in place
    assert not list((tmp_path / "live").glob("*.tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setattr(Path, "write_bytes",
                        lambda self, data: (_ for _ in ()).throw(PermissionError("ro")))
    with pytest.raises(PermissionError):  # other failures are the caller's to log
        live.publish(tmp_path, status())


def test_a_read_only_data_directory_still_gets_the_not_storing_status(tmp_path,
                                                                       monkeypatch):
    """Issue 18: a read-only disk takes no status file at all (not even in place), so
    the live view and ``devices`` kept the last status until it went stale, and never
    said the daemon was not storing. The status goes to the runtime directory."""
    import errno

    data, run = tmp_path / "data", tmp_path / "run"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(run))
    live.publish(data, status(utc=time.time() - 1.0))
    write = live._publish_in

    def read_only(folder, address, text, in_place):
        if folder == data / "live":
            raise OSError(errno.EROFS, "Read-only file system")
        write(folder, address, text, in_place)

    monkeypatch.setattr(live, "_publish_in", read_only)
    live.publish(data, status(fault="cannot store: attempt to write a readonly database"))
    [got] = live.read_statuses(data)  # one per roller: the newer, from the runtime dir
    assert got.fault == "cannot store: attempt to write a readonly database"
    assert live.fallback_dir(data).is_relative_to(run)
    assert oct(live.fallback_dir(data).stat().st_mode & 0o777) == "0o700"
    monkeypatch.setattr(live, "_publish_in", write)  # writable again: the newest wins
    live.publish(data, status())
    [got] = live.read_statuses(data)
    assert got.fault == ""
    assert live.read_statuses(tmp_path / "another") == []  # each data directory its own
