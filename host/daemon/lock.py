"""One daemon per data directory: an exclusive lock on ``<data dir>/daemon.lock``.

``DaemonLock(data_dir).acquire()`` takes the lock (an ``flock`` on POSIX, ``msvcrt``'s
lock on Windows) and writes this process's pid into the file; a second daemon on the
same directory gets ``DaemonLocked`` naming the first's pid. The operating system drops
the lock when the process ends, however it ends (``kill -9`` included), so a stale file
never blocks a new daemon. A file system mounted again under the daemon (a disk the
kernel made read-only, brought back) leaves the lock on the old mount: ``renew`` takes it
again on the new one, and the daemon checks every ``LOCK_CHECK_S``
(``host.daemon.keeper``).
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

__all__ = ["LOCK_NAME", "DaemonLock", "DaemonLocked", "daemon_running"]

LOCK_NAME = "daemon.lock"
"""The lock file's name in the data directory."""



class DaemonLocked(RuntimeError):
    """Another daemon keeps the data directory. pid: its process id (None: unknown)."""

    def __init__(self, folder: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"a daemon ({who}) already keeps {folder}: only one daemon per "
                         "data directory (stop it first, or use another --data-dir)")
        self.pid = pid


def _lock(fd: int) -> bool:
    """Try the exclusive lock on ``fd`` without waiting; False if another holds it."""
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


class DaemonLock:
    """The daemon's lock on ``data_dir`` (a context manager: acquire, release)."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.folder = Path(data_dir)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock; ``DaemonLocked`` if another process holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _lock(fd):
            try:
                text = os.read(fd, 32).decode("ascii", "replace").strip()
            finally:
                os.close(fd)
            raise DaemonLocked(self.folder, int(text) if text.isdigit() else None)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def renew(self) -> bool:
        """Take the lock again if ``path`` is no longer the file this lock holds (the data
        directory's file system was mounted again: the old lock is on the old mount,
        where no other daemon looks). True if it was taken anew; ``DaemonLocked`` if
        another process holds the new file now (the caller asks again: a momentary
        holder such as ``daemon_running`` lets go at once); ``OSError`` if the new file
        cannot be opened now (a read-only directory: try again later). The old lock is
        kept until the new one is taken."""
        if self._fd is None:
            raise RuntimeError("renew() of a lock not held")
        held = os.fstat(self._fd)
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            return False
        old, self._fd = self._fd, None
        try:
            self.acquire()
        except BaseException:
            self._fd = old
            raise
        os.close(old)
        return True

    def release(self) -> None:
        """Let the lock go (the file stays; it is only a lock)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DaemonLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()


def daemon_running(data_dir: str | os.PathLike[str]) -> bool:
    """Whether a daemon keeps ``data_dir`` now (holds its lock)."""
    lock = DaemonLock(data_dir)
    if not lock.path.exists():
        return False
    try:
        lock.acquire()
    except DaemonLocked:
        return True
    except OSError:  # a read-only directory: nobody can hold a lock we cannot take
        return False
    lock.release()
    return False
