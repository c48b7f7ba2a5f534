"""Files only the roller's own user may read: bond keys, the journal, the address.

Bond keys (the LTKs, the hosts' IRKs) let whoever reads them pose as a bonded host or
follow one; the journal holds the person's rolling. So the roller's state directory
and journal directory are **0700** and the key store **0600**, on the Pi and in the
simulator:

- ``private_dir(path)``: the directory, created 0700 (missing parents too); an
  existing one is tightened to 0700, unless it is not the caller's own, the home
  directory or a sticky shared one (``/tmp``), which are left as they are.
- ``tighten_file(path)``: an existing file's group and other bits cleared.
- ``write_private(path, text)``: UTF-8 text written atomically (temporary file created
  0600 beside it, fsync, rename), so the file is never readable by others, not even
  for an instant.

POSIX modes: on Windows ``chmod`` only sets the read-only bit and these are no-ops.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

__all__ = ["PRIVATE_DIR_MODE", "PRIVATE_FILE_MODE", "private_dir", "tighten_file",
           "write_private"]

PRIVATE_DIR_MODE = 0o700
"""Mode of the roller's state and journal directories."""
PRIVATE_FILE_MODE = 0o600
"""Mode of the key store (and of every file ``write_private`` writes)."""


def private_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as a directory only its owner may open (see the module doc). OSError
    when it cannot be created."""
    path = Path(path)
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    info = path.stat()
    shared = (info.st_mode & stat.S_ISVTX or info.st_uid != _uid()
              or path.resolve() == Path.home().resolve())
    if not shared and stat.S_IMODE(info.st_mode) & ~PRIVATE_DIR_MODE:
        os.chmod(path, PRIVATE_DIR_MODE)
    return path


def tighten_file(path: str | os.PathLike[str]) -> None:
    """Clear the group and other bits of ``path`` if it exists."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, mode & PRIVATE_DIR_MODE)


def write_private(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically, the file 0600 from its creation; on any
    error the temporary file goes and ``path`` is untouched."""
    path = Path(path)
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


def _uid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1
