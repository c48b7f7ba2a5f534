"""A disk that fills and frees mid-session, end to end across processes (issue 18).

The daemon's data directory is a small tmpfs of its own. While the daemon records a live
session from ``smartroller-fw sim``, the test fills that file system with a file, then
removes it. The daemon says so once (its log, the live status, ``smartroller devices``:
NOT STORING), does not crash and acknowledges nothing more, so the roller keeps the
frames in its journal; once space returns the roller resends them and every frame is
stored once: none lost, none twice, the session not split.

Mounting a tmpfs needs root (as here and on CI); elsewhere the test is skipped. The rig
(roller, daemon, the checks) is tests/e2e/disk_faults.py, shared with the read-only
disk's test.

The figures (frames lost, duplicated, sessions split) are printed for
docs/benchmarks.md.
"""

import subprocess

import pytest

from tests.e2e.disk_faults import Rig, figures, fill, mount_or_skip

pytestmark = pytest.mark.slow

DISK_BYTES = 48 << 20
"""The data directory's file system: room for the session's store and to spare."""


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of ``DISK_BYTES`` mounted for the test (skipped where that is refused)."""
    path = tmp_path / "data"
    path.mkdir()
    mount_or_skip(["-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs"], path)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_disk_that_fills_and_frees_mid_session_loses_nothing(small_disk, tmp_path):
    rig = Rig(small_disk, tmp_path)
    filler = small_disk / "filler"
    try:
        rig.start()
        assert fill(filler) > 0  # the disk fills mid-session
        status = rig.not_storing()
        assert "full" in status.fault, status
        filler.unlink()  # space returns
        rig.finish()
    finally:
        rig.stop()

    got = figures(small_disk, rig.held, "disk full mid-session")
    assert got["contact"] > 2500
    assert got["kept"] > 300  # >= 3 s at 1.5 x 100 frames/s
    assert (got["sessions"], got["lost"], got["duplicated"]) == (1, 0, 0)
