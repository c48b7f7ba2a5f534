"""One connection to the SQLite session store: opening, the schema check, WAL, commits.

``StoreConnection`` opens ``path`` (created with its schema if missing, migrated if
older; refused if from a newer smartroller), in WAL mode with ``synchronous=NORMAL``
(``durable``: ``FULL``). Each write is one ``BEGIN IMMEDIATE`` .. ``COMMIT`` through
``_write()``; a writer waits up to ``BUSY_TIMEOUT_S`` for another one (``busy_timeout_s``:
another wait, e.g. a page that should say "busy" sooner). The tables'
classes (``RollerTables``, ``ProfileTables``, ``Store``) build on it.

The database file is created 0600, and an existing one, its WAL and shared-memory
files are tightened to 0600 when opened for writing (SQLite gives the -wal and -shm
files the database's mode): it holds the person's sessions.

A damaged file (pages overwritten, truncated) shows as SQLite's ``SQLITE_CORRUPT`` at
the first read that meets it; ``store_failure`` turns that into the one-line
``StoreError`` naming the file and what to do, and ``check()`` looks at every page at
once (the listing runs it: a damaged store says so before showing anything).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from host.paths import tighten_file
from host.store.records import StoreError
from host.store.schema import SCHEMA_VERSION, applied_versions, migrate

__all__ = ["BUSY_TIMEOUT_S", "WAL_CHECKPOINT_PAGES", "StoreConnection", "now_utc",
           "store_failure"]

WAL_CHECKPOINT_PAGES = 10_000
"""WAL size (4 KiB pages, ~40 MB) that triggers a checkpoint (each costs an fsync: rarer
checkpoints keep live writes even; ``sync()`` checkpoints at once)."""

BUSY_TIMEOUT_S = 10.0
"""How long a writer waits for another one (the daemon, a CLI command), s."""


def now_utc() -> float:
    """The wall clock, s since 1970 (UTC)."""
    return time.time()


def store_failure(path: Path, exc: sqlite3.Error) -> StoreError:
    """The one-line ``StoreError`` for ``exc``, met reading or writing the store at
    ``path``: a damaged file says so and what to do."""
    if getattr(exc, "sqlite_errorname", "").startswith("SQLITE_CORRUPT"):
        return StoreError(f"the session store {path} is damaged ({exc}): restore it from a "
                          "backup, or move it aside (the daemon starts a new one) and try "
                          f"'sqlite3 {path.name} .recover' on the old one")
    return StoreError(f"the session store {path}: {exc}")


def _private_database(path: Path) -> None:
    """Create ``path`` empty and 0600 if missing (SQLite takes an empty file as a new
    database); tighten it and its -wal and -shm files."""
    os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        tighten_file(file)


class _Corrupt(sqlite3.DatabaseError):
    """What ``quick_check`` found, as the error SQLite gives a read of a damaged page."""

    sqlite_errorname = "SQLITE_CORRUPT"


class StoreConnection:
    """An open session store at ``path``; see the module docstring."""

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False,
                 readonly: bool = False, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory, not a database file")
        if readonly and not self.path.exists():
            raise StoreError(f"no session store at {self.path} (nothing recorded yet)")
        self._options = (durable, readonly, busy_timeout_s)
        self._open()

    def _open(self) -> None:
        """Open ``self.path`` as ``self._conn``, set up and migrated; StoreError if not."""
        durable, readonly, busy_timeout_s = self._options
        if not readonly:
            try:
                _private_database(self.path)
            except OSError as exc:
                raise StoreError(f"cannot open the session store {self.path}: "
                                 f"{exc.strerror or exc}") from None
        try:
            uri = f"{self.path.resolve().as_uri()}?mode={'ro' if readonly else 'rwc'}"
            self._conn = sqlite3.connect(uri, uri=True, isolation_level=None,
                                         timeout=busy_timeout_s, check_same_thread=True)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the session store {self.path}: {exc}") from None
        try:
            self._setup(durable, readonly)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if getattr(exc, "sqlite_errorname", "").startswith("SQLITE_CORRUPT"):
                raise store_failure(self.path, exc) from None
            raise StoreError(f"{self.path}: not a usable smartroller database ({exc})") \
                from None
        except BaseException:
            self._conn.close()
            raise

    def _setup(self, durable: bool, readonly: bool) -> None:
        conn = self._conn
        conn.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"{self.path}: cannot use write-ahead logging ({mode})")
            conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
            migrate(conn)
        else:
            applied = applied_versions(conn)
            if max(applied, default=0) > SCHEMA_VERSION:
                raise StoreError(f"the database is from a newer smartroller (schema "
                                 f"{max(applied)}; this one knows up to {SCHEMA_VERSION}): "
                                 "upgrade smartroller")
            if max(applied, default=0) < SCHEMA_VERSION:
                raise StoreError(f"{self.path}: schema {max(applied, default=0)} is older "
                                 "than this smartroller's; open it once for writing to "
                                 "upgrade it")

    def close(self) -> None:
        """Close the database (committed data stays; an open transaction is rolled back)."""
        self._conn.close()

    def reopen(self) -> None:
        """Open the database file again, and close the old connection. After the data
        directory's file system went away and came back (a disk the kernel made
        read-only, unmounted and mounted again) the old connection still points at the
        old mount, where no write can ever succeed. StoreError if the file cannot be
        opened now, or is gone (the old connection is kept)."""
        if not self.path.is_file():  # (not a new, empty store in its place)
            raise StoreError(f"the session store {self.path} is gone")
        old = self._conn
        try:
            self._open()
        except BaseException:
            self._conn = old
            raise
        old.close()

    def __enter__(self) -> StoreConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        """The newest schema version applied to this database."""
        return max(applied_versions(self._conn), default=0)

    @property
    def journal_mode(self) -> str:
        """SQLite's journal mode ("wal")."""
        return self._conn.execute("PRAGMA journal_mode").fetchone()[0]

    def sync(self) -> None:
        """Make every commit durable against an OS crash or power loss (fsync of the
        WAL and the database through a checkpoint)."""
        self._conn.execute("PRAGMA wal_checkpoint(FULL)")

    def check(self) -> None:
        """Raise ``StoreError`` if a page of the database is damaged (SQLite's
        ``quick_check``; it reads the whole file: 0.03 s for 45 MB, an hour of frames,
        from the page cache)."""
        try:
            problem = self._conn.execute("PRAGMA quick_check(1)").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise store_failure(self.path, exc) from None
        if problem != "ok":
            # SQLite's own words for it (quick_check's are lines of page numbers)
            raise store_failure(self.path, _Corrupt("database disk image is malformed"))

    def check_writable(self, size: int = 1 << 16) -> None:
        """Raise ``sqlite3.Error`` (or ``OSError``) unless about ``size`` bytes more can
        be committed: a row of that size written and removed in one transaction (after
        a full or read-only disk, before writing again)."""
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO settings VALUES ('write-check', ?)",
                         ("x" * size,))
            conn.execute("DELETE FROM settings WHERE key = 'write-check'")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite rolls back by itself on a full disk
                conn.execute("ROLLBACK")
            raise

    def _one(self, sql: str, args: Sequence[Any] = ()) -> Any:
        row = self._conn.execute(sql, args).fetchone()
        return None if row is None else row[0]
