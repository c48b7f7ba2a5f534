"""A disk that goes read-only and comes back mid-session, end to end across processes
(issue 18).

``mount -o remount,ro`` of the data directory's file system is refused (EBUSY) while
the daemon holds its store open for writing: Linux makes a busy file system read-only
only by itself, when it meets an error (ext4's ``errors=remount-ro``; on Linux 6.x an
"emergency" read-only that no remount undoes: the disk comes back only unmounted and
mounted again). So the data directory here is a small journaled ext4 image of its own
on a loop device, mounted ``errors=remount-ro``; while the daemon records a live session
from ``smartroller-fw sim`` the test makes ext4 meet an error (``trigger_fs_error`` in
sysfs, the kernel's own test hook): the file system goes read-only. The daemon says so
once (its log; the live status, written to the runtime directory as the data directory
takes no file; ``smartroller devices``: NOT STORING), stays up and acknowledges nothing,
so the roller keeps the frames in its journal. A few seconds on, the disk comes back as
a user brings it back: unmounted (lazily: the daemon still has files open on it) and
mounted again (the journal replayed). The daemon opens its store again and the roller
resends: every frame stored once, none lost, the session not split.

Root only (mount, loop devices), as here and on CI; elsewhere skipped. The rig is
tests/e2e/disk_faults.py, shared with the full disk's test. The figures are printed
for docs/benchmarks.md.
"""

import errno
import subprocess
import time
from pathlib import Path

import pytest

from host.daemon.lock import daemon_running
from tests.e2e.disk_faults import Rig, figures, mount_or_skip, need_root

pytestmark = pytest.mark.slow

DISK_BYTES = 64 << 20
"""The data directory's file system: room for the session's store and to spare."""


class Ext4Disk:
    """A journaled ext4 image at ``image`` mounted on ``path`` through a loop device
    of its own (``errors=remount-ro``)."""

    def __init__(self, image: Path, path: Path) -> None:
        self.image, self.path, self.loops = image, path, []

    def mount(self) -> None:
        made = subprocess.run(["losetup", "-f", "--show", str(self.image)],
                              capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"no loop device here: {made.stderr.strip()}")
        self.loops.append(made.stdout.strip())
        mount_or_skip(["-o", "errors=remount-ro", self.loops[-1]], self.path)

    def fail(self) -> None:
        """ext4 meets an error: the file system goes read-only."""
        hook = Path("/sys/fs/ext4") / Path(self.loops[-1]).name / "trigger_fs_error"
        hook.write_text("test: the data directory's disk fails\n")

    def mend(self) -> None:
        """Unmounted (lazily) and mounted again from a new loop device."""
        subprocess.run(["umount", "-l", str(self.path)], check=True)
        self.mount()

    def remove(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)
        for loop in self.loops:
            subprocess.run(["losetup", "-d", loop], check=False)


@pytest.fixture
def ext4_disk(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    image = tmp_path / "disk.img"
    with image.open("wb") as fh:
        fh.truncate(DISK_BYTES)
    need_root()
    made = subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], capture_output=True,
                          text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot make an ext4 image here: {made.stderr.strip()}")
    disk = Ext4Disk(image, path)
    try:
        disk.mount()
        if not (Path("/sys/fs/ext4") / Path(disk.loops[-1]).name / "trigger_fs_error"
                ).exists():
            pytest.skip("this kernel has no ext4 trigger_fs_error")
        yield disk
    finally:
        disk.remove()


def test_a_disk_that_goes_read_only_and_comes_back_mid_session_loses_nothing(
        ext4_disk, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))  # (the daemon's too)
    data = ext4_disk.path
    rig = Rig(data, tmp_path)
    try:
        rig.start()
        ext4_disk.fail()
        assert not _writable(data)
        status = rig.not_storing(hold_s=4.0)
        assert status.session_id is not None, status
        assert list((tmp_path / "run").rglob("*.json")), "no status in the runtime dir"
        ext4_disk.mend()
        assert _writable(data)
        # its lock follows the new mount (it stayed on the old one: a second daemon
        # would have found the directory free)
        deadline = time.monotonic() + 10.0
        while not daemon_running(data):
            assert time.monotonic() < deadline, "the daemon's lock stayed on the old mount"
            time.sleep(0.2)
        log = rig.finish()
    finally:
        rig.stop()

    assert "cannot store frames" in log
    got = figures(data, rig.held, "disk read-only mid-session")
    assert got["contact"] > 2500
    assert got["kept"] > 400  # >= 4 s at 1.5 x 100 frames/s
    assert (got["sessions"], got["lost"], got["duplicated"]) == (1, 0, 0)


def _writable(path: Path) -> bool:
    """Whether a file can be made in ``path`` (False: a read-only file system)."""
    probe = path / "probe"
    try:
        probe.write_text("x")
    except OSError as exc:
        assert exc.errno == errno.EROFS, exc
        return False
    probe.unlink()
    return True
