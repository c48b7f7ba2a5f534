"""A data directory whose disk fails under a running daemon, end to end across processes.

What the disk-fault tests share (tests/test_e2e_disk_full.py, tests/test_e2e_disk_readonly.py):
a file system of the test's own mounted on the daemon's data directory (root only:
``mount_or_skip`` skips clearly elsewhere), and ``Rig``: ``smartroller-fw sim`` rolling a
live session, paired, with ``smartroller daemon`` recording it. A test starts the rig,
breaks the disk, checks that the daemon says so (``Rig.not_storing``: its live status and
``smartroller devices`` say NOT STORING, nothing more is acknowledged, the daemon stays
up), mends the disk, then ``Rig.finish`` waits for the roller to have every frame
acknowledged and ``figures`` counts what the store holds: sessions, frames lost,
duplicated, split.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from host.daemon.live import LiveStatus, read_statuses
from host.store import CLOSED, open_store
from tests.test_e2e_daemon import DEMO, PY, ROOT, cli, pair_with_profile


def need_root() -> None:
    """Skip the test unless it runs as root (mounting the data directory's disk)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a file system for the data directory needs root "
                    "(CI runs as root)")


def mount_or_skip(args: list[str], path: Path) -> None:
    """Run ``mount ARGS PATH`` (skipped where that needs root or is refused)."""
    need_root()
    mounted = subprocess.run(["mount", *args, str(path)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount {' '.join(args)} here: {mounted.stderr.strip()}")


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


@dataclass
class Rig:
    """A simulated roller (state in ``tmp/roller``) and a daemon on ``data`` (its log in
    ``tmp/daemon.log``, off the failing disk)."""

    data: Path
    tmp: Path
    procs: list[subprocess.Popen] = field(default_factory=list)
    held: int = -1
    """The roller's acknowledged seq while the daemon was not storing."""

    @property
    def roller(self) -> subprocess.Popen:
        return self.procs[0]

    @property
    def daemon(self) -> subprocess.Popen:
        return self.procs[1]

    @property
    def daemon_log(self) -> Path:
        return self.tmp / "daemon.log"

    def acked(self) -> int:
        """The roller's saved acknowledged seq (it saves it about once a second)."""
        return int((self.tmp / "roller" / "journal" / "acked").read_text())

    def start(self) -> None:
        """Start the roller and the daemon; return once a session is being recorded."""
        from tests.test_e2e_radio import free_port

        port = free_port()
        adapter = f"tcp-client:127.0.0.1:{port}"
        self.procs.append(subprocess.Popen(
            [PY, "-m", "firmware.cli", "sim", "--scenario", str(DEMO), "--seed", "3",
             "--speed", "1.5", "--every", "1000", "--linger", "40",
             "--host-adapter", f"tcp-server:127.0.0.1:{port}",
             "--state-dir", str(self.tmp / "roller")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT))
        time.sleep(1.5)
        pair_with_profile(adapter, self.data)
        with self.daemon_log.open("w") as out:
            self.procs.append(subprocess.Popen(
                [PY, "-m", "host.cli.main", "daemon", "--adapter", adapter, "--data-dir",
                 str(self.data), "--idle", "4"], stdout=out, stderr=subprocess.STDOUT,
                cwd=ROOT))

        def recording():
            return [s for s in read_statuses(self.data)
                    if s.session_id is not None and s.strokes]
        assert wait_for(recording, 40), "the daemon never recorded a session"

    def not_storing(self, hold_s: float = 3.0) -> LiveStatus:
        """Once the disk has failed: the daemon says so (live status, ``devices``),
        acknowledges nothing for ``hold_s`` and stays up. Its live status."""
        status = wait_for(lambda: [s for s in read_statuses(self.data) if s.fault], 10)
        assert status, self.daemon_log.read_text()
        devices = cli("devices", "--data-dir", str(self.data))
        assert devices.returncode == 0, devices.stderr
        assert "NOT STORING" in devices.stdout, devices.stdout
        # Nothing more is acknowledged: the roller keeps what it makes in its journal.
        time.sleep(1.5)  # (the roller saves its acked seq about once a second)
        self.held = self.acked()
        time.sleep(hold_s)
        assert self.acked() == self.held
        assert self.daemon.poll() is None, "the daemon stopped on a failing disk"
        return status[0]

    def finish(self) -> str:
        """Once the disk is mended: wait for the roller to have every frame
        acknowledged and exit, the sessions to close and the daemon to stop (its
        roller gone); the daemon's log."""
        roller_log = self.roller.communicate(timeout=90)[0]
        (self.tmp / "roller.log").write_text(roller_log)
        assert "every frame acknowledged" in roller_log, roller_log

        def closed():
            rows = json.loads(cli("sessions", "--json", "--data-dir", str(self.data)).stdout)
            return rows if rows and all(r["state"] == "closed" for r in rows) else None
        wait_for(closed, 20, every=1.0)
        self.daemon.wait(timeout=30)
        log = self.daemon_log.read_text()
        assert self.daemon.returncode == 1 and "transport" in log, log  # the roller is gone
        assert log.count("cannot store frames") == 1, log
        assert "storing again" in log and "Traceback" not in log, log
        assert "link lost" not in log.split("storing again")[1].split("connected")[0], log
        return log

    def stop(self) -> None:
        """Kill what still runs."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def figures(data: Path, held: int, fault: str) -> dict[str, int]:
    """What the store in ``data`` holds of the rig's one session: sessions, split,
    frames lost (holes in seq), duplicated, kept (stored after ``held``, the seq
    acknowledged while not storing: the roller kept those in its journal), in contact;
    printed as ``<fault>: sessions ...`` for docs/benchmarks.md. Asserts the session is
    closed with no ``disconnect`` or ``frames_lost`` event."""
    store = open_store(data, create=False)
    try:
        sessions = store.sessions()
        frames = store.read_frames(sessions[0].id)
        seqs = frames.seq.astype(np.int64)
        kinds = [e.kind.value for _, _, e in store.events(sessions[0].id)]
        assert all(s.state == CLOSED for s in sessions)
        assert "disconnect" not in kinds and "frames_lost" not in kinds, kinds  # none was
        assert len(np.unique(frames.boot)) == 1
        from firmware.protocol import FrameFlag

        got = {"sessions": len(sessions), "split": len(sessions) - 1,
               "lost": int(np.sum(np.diff(np.unique(seqs)) - 1)),
               "duplicated": len(seqs) - len(np.unique(seqs)),
               "kept": int(np.sum(seqs > held)),
               "contact": int(((frames.flags & int(FrameFlag.IN_CONTACT)) != 0).sum())}
        print(f"{fault}: sessions {got['sessions']}, split {got['split']}, frames lost "
              f"{got['lost']}, duplicated {got['duplicated']}, stored after the fault "
              f"{got['kept']}")
        return got
    finally:
        store.close()
