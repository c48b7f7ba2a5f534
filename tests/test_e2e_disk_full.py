"""A disk that fills and frees mid-session, end to end across processes (issue 18).

The daemon's data directory is a small tmpfs of its own. While the daemon records a live
session from ``smartroller-fw sim``, the test fills that file system with a file, then
removes it. The daemon says so once (its log, the live status, ``smartroller devices``:
NOT STORING), does not crash and acknowledges nothing more, so the roller keeps the
frames in its journal; once space returns the roller resends them and every frame is
stored once: none lost, none twice, the session not split.

Mounting a tmpfs needs root (as here and on CI); elsewhere the test is skipped.

The figures (frames lost, duplicated, sessions split) are printed for
docs/benchmarks.md.
"""

import errno
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from firmware.protocol import FrameFlag
from host.daemon.live import read_statuses
from host.store import CLOSED, open_store
from tests.test_e2e_daemon import DEMO, PY, ROOT, cli, pair_with_profile

pytestmark = pytest.mark.slow

DISK_BYTES = 48 << 20
"""The data directory's file system: room for the session's store and to spare."""


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of ``DISK_BYTES`` mounted for the test (skipped where that is refused)."""
    path = tmp_path / "data"
    path.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for the data directory needs root (CI runs as root)")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs",
                              str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until its file system has no byte left; bytes written."""
    written = 0
    with path.open("wb", buffering=0) as fh:
        for chunk in (1 << 20, 1 << 12):
            block = b"\0" * chunk
            while True:
                try:
                    written += fh.write(block)
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
    return written


def wait_for(what, seconds: float, every: float = 0.2):
    """``what()`` once it is true (polled), else None after ``seconds``."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        got = what()
        if got:
            return got
        time.sleep(every)
    return None


def test_a_disk_that_fills_and_frees_mid_session_loses_nothing(small_disk, tmp_path):
    from tests.test_e2e_radio import free_port

    data, state = small_disk, tmp_path / "roller"
    acked_file = state / "journal" / "acked"
    procs: list[subprocess.Popen] = []
    filler = data / "filler"
    daemon_log = tmp_path / "daemon.log"
    try:
        port = free_port()
        adapter = f"tcp-client:127.0.0.1:{port}"
        roller = subprocess.Popen(
            [PY, "-m", "firmware.cli", "sim", "--scenario", str(DEMO), "--seed", "3",
             "--speed", "1.5", "--every", "1000", "--linger", "40",
             "--host-adapter", f"tcp-server:127.0.0.1:{port}", "--state-dir", str(state)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        procs.append(roller)
        time.sleep(1.5)
        pair_with_profile(adapter, data)
        with daemon_log.open("w") as out:  # not on the small disk
            daemon = subprocess.Popen(
                [PY, "-m", "host.cli.main", "daemon", "--adapter", adapter, "--data-dir",
                 str(data), "--idle", "4"], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        procs.append(daemon)

        def recording():
            return [s for s in read_statuses(data) if s.session_id is not None and s.strokes]
        assert wait_for(recording, 40), "the daemon never recorded a session"

        # The disk fills mid-session.
        filled = fill(filler)
        assert filled > 0

        def not_storing():
            return [s for s in read_statuses(data) if s.fault]
        status = wait_for(not_storing, 10)
        assert status, daemon_log.read_text()
        assert "full" in status[0].fault, status
        devices = cli("devices", "--data-dir", str(data))
        assert devices.returncode == 0, devices.stderr
        assert "NOT STORING" in devices.stdout, devices.stdout
        # Nothing more is acknowledged: the roller keeps what it makes in its journal.
        time.sleep(1.5)  # (the roller saves its acked seq about once a second)
        held = int(acked_file.read_text())
        time.sleep(3.0)
        assert int(acked_file.read_text()) == held
        assert daemon.poll() is None, "the daemon stopped on a full disk"

        # Space returns.
        filler.unlink()
        roller_log = roller.communicate(timeout=90)[0]
        (tmp_path / "roller.log").write_text(roller_log)  # until every frame is acknowledged
        assert "every frame acknowledged" in roller_log, roller_log

        def closed():
            rows = json.loads(cli("sessions", "--json", "--data-dir", str(data)).stdout)
            return rows if rows and all(r["state"] == "closed" for r in rows) else None
        wait_for(closed, 20, every=1.0)
        daemon.wait(timeout=30)
        log = daemon_log.read_text()
        assert daemon.returncode == 1 and "transport" in log, log  # the roller is gone
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    assert log.count("cannot store frames") == 1, log
    assert "storing again" in log and "Traceback" not in log, log
    assert "link lost" not in log.split("storing again")[1].split("connected")[0], log
    store = open_store(data, create=False)
    sessions = store.sessions()
    frames = store.read_frames(sessions[0].id)
    seqs = frames.seq.astype(np.int64)
    duplicated = len(seqs) - len(np.unique(seqs))
    lost = int(np.sum(np.diff(np.unique(seqs)) - 1))
    split = len(sessions) - 1
    # what the roller made after the last acknowledgement before the disk filled: it
    # kept those in its journal at least until space returned
    kept = int(np.sum(seqs > held))
    print(f"disk full mid-session: sessions {len(sessions)}, split {split}, frames lost "
          f"{lost}, duplicated {duplicated}, stored after the fault {kept}")
    assert all(s.state == CLOSED for s in sessions)
    kinds = [e.kind.value for _, _, e in store.events(sessions[0].id)]
    assert "disconnect" not in kinds and "frames_lost" not in kinds, kinds  # none was
    assert len(np.unique(frames.boot)) == 1
    contact = (frames.flags & int(FrameFlag.IN_CONTACT)) != 0
    assert contact.sum() > 2500
    assert kept > 300  # >= 3 s at 1.5 x 100 frames/s
    assert (len(sessions), lost, duplicated) == (1, 0, 0)
    store.close()
