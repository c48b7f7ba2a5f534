"""One roller process per state directory: an exclusive lock on ``<state>/roller.lock``.

The roller's state directory holds what it learned of its parts (``calibration.json``),
its journal and its bonds. Two processes on it at once would read the same IMU FIFO and
overwrite each other's calibration: a table roll run while the service still runs would
see its scale replaced by the service's next save. So ``smartroller-fw run``, ``sim``
with a state directory, ``record-raw`` with one and ``table-roll`` hold this lock for as
long as they run; the second gets ``StateDirBusy`` naming the first's pid.

The lock is an ``flock`` (``msvcrt``'s lock on Windows): the operating system drops it
when the process ends, however it ends, so a stale file never blocks a new process.
The laptop's daemon has the same kind of lock on its data directory
(``host.daemon.lock``), its own: the host takes only the firmware's published interface
(``firmware.protocol``, ``firmware.schema``), and the Pi installs no host code.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

__all__ = ["LOCK_NAME", "StateDirBusy", "StateLock", "try_lock"]

LOCK_NAME = "roller.lock"
"""The lock file's name in the state directory."""


class StateDirBusy(RuntimeError):
    """Another roller process keeps the state directory. pid: its id (None: unknown)."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"another smartroller-fw ({who}) keeps {folder}: stop it first "
                         "(on the roller: sudo systemctl stop smartroller-fw)")
        self.pid = pid


def try_lock(fd: int) -> bool:
    """Try the exclusive lock on the open file ``fd`` without waiting; False if another
    open file holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class StateLock:
    """The lock on the roller's ``state_dir`` (a context manager: acquire, release)."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.folder = Path(state_dir)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock and write this process's pid in it; ``StateDirBusy`` if another
        process holds it, OSError if the directory cannot be used."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not try_lock(fd):
            try:
                text = os.read(fd, 32).decode("ascii", "replace").strip()
            finally:
                os.close(fd)
            raise StateDirBusy(self.folder, int(text) if text.isdigit() else None)
        self._fd = fd
        try:  # (who holds it is only said: a full disk must not stop the roller)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass

    def release(self) -> None:
        """Let the lock go (the file stays; it is only a lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
