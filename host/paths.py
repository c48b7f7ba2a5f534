"""Where the host keeps its data: the user's data directory, or the one the user names.

``data_dir(override)``: ``override`` (``--data-dir``) if given, else the
``SMARTROLLER_DATA_DIR`` environment variable, else platformdirs' user data directory
for "smartroller" (``~/.local/share/smartroller`` on Linux, ``~/Library/Application
Support/smartroller`` on macOS, ``%LOCALAPPDATA%\\smartroller`` on Windows).
``check_dir`` makes sure a directory is usable, with a one-line ``DataDirError``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "DB_NAME", "DataDirError", "atomic_write_text", "check_dir",
           "data_dir", "database_path"]

DATA_DIR_ENV = "SMARTROLLER_DATA_DIR"
"""Environment variable naming the data directory (``--data-dir`` wins over it)."""

DB_NAME = "smartroller.db"
"""File name of the session store in the data directory."""


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


def check_dir(path: Path, what: str = "data directory", create: bool = True) -> Path:
    """``path`` as a usable directory (created with its parents if ``create``).

    DataDirError if it is a file, cannot be created, or is not writable.
    """
    if path.exists() and not path.is_dir():
        raise DataDirError(f"{what} {path} is a file, not a directory")
    if not path.exists():
        if not create:
            raise DataDirError(f"{what} {path} does not exist")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DataDirError(f"cannot create the {what} {path}: "
                               f"{exc.strerror or exc}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise DataDirError(f"{what} {path} is not writable")
    return path


def database_path(override: str | os.PathLike[str] | None = None) -> Path:
    """The session store's file in the data directory (see ``data_dir``)."""
    return data_dir(override) / DB_NAME


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: a temporary file beside it, fsync,
    rename; on any error the temporary file goes and ``path`` is untouched."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
