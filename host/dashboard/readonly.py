"""The session store as the dashboard sees it: read-only, one connection per request.

``read_store(data_dir, work)`` opens the store with SQLite's ``mode=ro`` (no creation,
no migration, no write can happen through it), runs ``work(store)`` and closes it.
What keeps a page from being shown becomes a ``StoreUnavailable`` with a title and one
line for the person, never a traceback:

- no store yet (nothing recorded): ``missing``;
- a writer holding the database longer than ``BUSY_WAIT_S`` (another program, or a
  daemon in a long transaction): ``busy``;
- a damaged file, one that is not a smartroller database, or one from a newer or
  older smartroller: ``unusable``.

``UnknownSession`` is a session id the store does not hold (a 404).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from host.paths import database_path
from host.store import Store, StoreError, store_failure

__all__ = ["BUSY_WAIT_S", "StoreUnavailable", "UnknownSession", "read_store"]

BUSY_WAIT_S = 2.0
"""How long a page waits for a writer that holds the store, s."""

T = TypeVar("T")


class StoreUnavailable(RuntimeError):
    """The store cannot be read now. kind: "missing", "busy" or "unusable"; title: the
    page's heading; str(): one line saying why and what to do."""

    def __init__(self, kind: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.kind, self.title = kind, title


class UnknownSession(LookupError):
    """A session id the store does not hold."""


def _busy(exc: BaseException) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def read_store(data_dir: Path, work: Callable[[Store], T]) -> T:
    """``work(store)`` on the store of ``data_dir`` opened read-only; see the module
    docstring for what it raises."""
    path = database_path(data_dir)
    if not path.is_file():
        raise StoreUnavailable("missing", "Nothing recorded yet",
                               f"There is no session store in {path.parent} yet: start "
                               "`smartroller daemon` and roll, or give the dashboard the "
                               "--data-dir the daemon uses.")
    try:
        store = Store(path, readonly=True, busy_timeout_s=BUSY_WAIT_S)
    except StoreError as exc:
        if _busy(exc):
            raise _busy_error(path) from None
        raise StoreUnavailable("unusable", "The session store cannot be read",
                               str(exc)) from None
    try:
        return work(store)
    except StoreError as exc:
        if re.fullmatch(r"no session \d+", str(exc)):
            raise UnknownSession(str(exc)) from None
        raise StoreUnavailable("unusable", "The session store cannot be read",
                               str(exc)) from None
    except sqlite3.Error as exc:
        if _busy(exc):
            raise _busy_error(path) from None
        raise StoreUnavailable("unusable", "The session store cannot be read",
                               str(store_failure(path, exc))) from None
    finally:
        store.close()


def _busy_error(path: Path) -> StoreUnavailable:
    return StoreUnavailable("busy", "The session store is busy",
                            f"Another program holds {path} locked (for more than "
                            f"{BUSY_WAIT_S:g} s): reload this page in a moment; if it stays "
                            "so, close the program that holds it.")
