"""The roller's bonds on disk: Bumble's ``JsonKeyStore``, readable by its owner only.

``PrivateKeyStore(namespace, path)`` is a ``JsonKeyStore`` (same file format, same
namespaces) that writes its file 0600 from creation (``firmware.files.write_private``)
in a 0700 directory, and tightens an existing file and its directory when it is made:
Bumble's own store writes them with the process umask (0644 in 0755 directories),
readable by every local user of the Pi.
"""

from __future__ import annotations

import json
import os
from typing import Any

from bumble.keys import JsonKeyStore

from firmware.files import private_dir, tighten_file, write_private

__all__ = ["PrivateKeyStore"]


class PrivateKeyStore(JsonKeyStore):
    """A Bumble JSON key store kept 0600 in a 0700 directory.

    namespace: Bumble key store namespace (None: the default one).
    filename: the JSON file.
    """

    def __init__(self, namespace: str | None, filename: str | os.PathLike[str]) -> None:
        super().__init__(namespace, str(filename))
        private_dir(self.directory_name)
        tighten_file(self.filename)

    async def save(self, db: dict[str, dict[str, dict[str, Any]]]) -> None:
        """Write the whole store, 0600 from the first byte."""
        private_dir(self.directory_name)
        write_private(self.filename, json.dumps(db, sort_keys=True, indent=4))
