"""Where the host keeps its data: the user's data directory, or the one the user names.

``data_dir(override)``: ``override`` (``--data-dir``) if given, else the
``SMARTROLLER_DATA_DIR`` environment variable, else platformdirs' user data directory
for "smartroller" (``~/.local/share/smartroller`` on Linux, ``~/Library/Application
Support/smartroller`` on macOS, ``%LOCALAPPDATA%\\smartroller`` on Windows).
``check_dir`` makes sure a directory is usable, with a one-line ``DataDirError``.

The data directory holds the bond keys (LTKs, the rollers' keys) and the session
store (the person's rolling): it is **0700** and those files **0600**, on every
start. ``private_dir`` makes (or tightens) such a directory: an existing one is left
as it is when it is not the user's own, the home directory or a sticky shared one
(``/tmp``). ``tighten_file`` clears a file's group and other bits;
``atomic_write_text`` writes 0600 from the first byte (``mkstemp``), or with the
mode it is given: the user's exported files (CSV, reports) get ``new_file_mode()``,
the mode any program gives a new file (0666 less the umask). POSIX modes: on Windows
these are no-ops.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "DB_NAME", "PRIVATE_DIR_MODE", "DataDirError", "atomic_write_text",
           "check_dir", "data_dir", "database_path", "new_file_mode", "private_dir",
           "tighten_file"]

DATA_DIR_ENV = "SMARTROLLER_DATA_DIR"
"""Environment variable naming the data directory (``--data-dir`` wins over it)."""

DB_NAME = "smartroller.db"
"""File name of the session store in the data directory."""

PRIVATE_DIR_MODE = 0o700
"""Mode of the data directory (bond keys and sessions inside)."""


class DataDirError(ValueError):
    """The data directory (or an output directory) cannot be used: one line for the user."""


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``override``, else ``$SMARTROLLER_DATA_DIR``, else the
    user's data directory. Not created here."""
    if override is not None and str(override) != "":
        return Path(override).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return platformdirs.user_data_path("smartroller")


def check_dir(path: Path, what: str = "data directory", create: bool = True,
              private: bool = False) -> Path:
    """``path`` as a usable directory (created with its parents if ``create``);
    ``private``: created 0700, an existing one tightened (``private_dir``).

    DataDirError if it is a file, cannot be created, or is not writable.
    """
    if path.exists() and not path.is_dir():
        raise DataDirError(f"{what} {path} is a file, not a directory")
    if not path.exists():
        if not create:
            raise DataDirError(f"{what} {path} does not exist")
        try:
            path.mkdir(mode=PRIVATE_DIR_MODE if private else 0o777, parents=True,
                       exist_ok=True)
        except OSError as exc:
            raise DataDirError(f"cannot create the {what} {path}: "
                               f"{exc.strerror or exc}") from None
    if private:
        try:
            private_dir(path)
        except OSError as exc:
            raise DataDirError(f"cannot make the {what} {path} private: "
                               f"{exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataDirError(f"{what} {path} is not writable")
    return path


def database_path(override: str | os.PathLike[str] | None = None) -> Path:
    """The session store's file in the data directory (see ``data_dir``)."""
    return data_dir(override) / DB_NAME


def private_dir(path: Path) -> Path:
    """``path`` as a directory only its owner may open: created 0700 (missing parents
    too), an existing one tightened to 0700 unless it is shared (see the module doc).
    OSError when it cannot be created or changed."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    info = path.stat()
    uid = os.geteuid() if hasattr(os, "geteuid") else info.st_uid
    shared = (info.st_mode & stat.S_ISVTX or info.st_uid != uid
              or path.resolve() == Path.home().resolve())
    if not shared and stat.S_IMODE(info.st_mode) & ~PRIVATE_DIR_MODE:
        os.chmod(path, PRIVATE_DIR_MODE)
    return path


def tighten_file(path: Path) -> None:
    """Clear the group and other bits of ``path`` if it exists (OSError if it cannot)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, mode & PRIVATE_DIR_MODE)


def new_file_mode() -> int:
    """The mode a new file gets by default: 0666 less the process's umask (0644 with the
    usual 022)."""
    mask = os.umask(0o077)  # the only way to read it: set it and put it back at once
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: a temporary file beside it (0600,
    or ``mode``), fsync, rename; on any error the temporary file goes and ``path`` is
    untouched."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(fh.fileno(), mode)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
