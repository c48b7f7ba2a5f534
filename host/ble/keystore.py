"""The host's bonds on disk: Bumble's ``JsonKeyStore``, readable by its owner only.

``PrivateKeyStore(namespace, path)`` is a ``JsonKeyStore`` (same file format and
namespaces, so ``host.ble.bonds`` and Bumble read it as before) that writes its file
0600 from creation (``host.paths.atomic_write_text``) in a 0700 directory
(``host.paths.private_dir``), and tightens an existing file and its directory when it
is made: Bumble's own store writes them with the process umask (0644 in 0755
directories), readable by every local user of the laptop.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bumble.keys import JsonKeyStore

from host.paths import atomic_write_text, private_dir, tighten_file

__all__ = ["PrivateKeyStore"]


class PrivateKeyStore(JsonKeyStore):
    """A Bumble JSON key store kept 0600 in a 0700 directory.

    namespace: Bumble key store namespace (the host's identity address).
    filename: the JSON file.
    """

    def __init__(self, namespace: str | None, filename: str | os.PathLike[str]) -> None:
        super().__init__(namespace, str(filename))
        private_dir(Path(self.directory_name))
        tighten_file(Path(self.filename))

    async def save(self, db: dict[str, dict[str, dict[str, Any]]]) -> None:
        """Write the whole store, 0600 from the first byte."""
        private_dir(Path(self.directory_name))
        atomic_write_text(Path(self.filename), json.dumps(db, sort_keys=True, indent=4))
