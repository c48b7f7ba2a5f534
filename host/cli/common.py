"""What every command group of ``smartroller`` shares: exit statuses, the one-line
error, ``--data-dir`` and the store it names, number arguments, a roller's address,
logging.

Each group module (``sessions``, ``profile``, ``devices``, ``daemon``, ``demo``,
``bench``) has ``COMMANDS`` (its command names), ``add_parsers(sub)`` and
``run(args, out, err) -> exit status``; ``host.cli.main`` puts them together.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import re
import signal
import sqlite3
import sys
from collections.abc import Callable
from typing import NoReturn, TextIO

from host.paths import DataDirError, check_dir, database_path
from host.store import Store, StoreError, store_failure

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "PROG", "UsageError",
           "add_data_dir", "check_address", "configure_logging", "number", "one_line_errors",
           "open_user_store", "run_on_store", "stop_on_signals"]

PROG = "smartroller"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_ADDRESS = re.compile(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}(/P)?|"
                      r"[0-9A-Fa-f]{8}-([0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")


class UsageError(ValueError):
    """Bad input on the command line: one line, exit status 2."""


def one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` report bad arguments in one line (no usage block), exit 2."""
    def error(message: str) -> NoReturn:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")

    parser.error = error  # type: ignore[method-assign]


def add_data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``p`` with one-line errors and ``--data-dir DIR``."""
    one_line_errors(p)
    p.add_argument("--data-dir", metavar="DIR",
                   help="where the session store is (default: $SMARTROLLER_DATA_DIR, "
                        "else the user's data directory)")
    return p


def open_user_store(args: argparse.Namespace, create: bool) -> Store | None:
    """The store of ``--data-dir``; None when there is none yet and ``create`` is off."""
    path = database_path(args.data_dir)
    try:
        if path.parent.exists() or create:
            check_dir(path.parent, create=create, private=True)
    except DataDirError as exc:
        raise UsageError(str(exc)) from None
    if not create and not path.exists():
        return None
    return Store(path)


def number(kind: type, low: float, what: str) -> Callable[[str], float]:
    """An argparse type: a finite ``kind`` (int or float) >= ``low``."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {what}: {text!r}") from None
        if not math.isfinite(value) or value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}: {text!r}")
        return value
    return parse


def check_address(address: str) -> str:
    """``address`` if it is a Bluetooth address (or a macOS device UUID)."""
    if not _ADDRESS.fullmatch(address):
        raise UsageError(f"not a Bluetooth address: {address!r} (AA:BB:CC:DD:EE:FF)")
    return address.upper()


def configure_logging(verbose: bool) -> None:
    """Bumble and bleak log a lot; keep errors only unless ``verbose``."""
    logging.basicConfig(level=logging.INFO if verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (in the running event loop; where signals
    cannot be handled so, Ctrl-C stays a KeyboardInterrupt)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    return stop


def run_on_store(command: Callable[[], int | None], err: TextIO | None = None,
                 expected: tuple[type[Exception], ...] = (), *,
                 data_dir: str | None = None) -> int:
    """Run a command that works on the store of ``data_dir`` (``--data-dir``); its exit
    status (None: 0).

    Bad input (``UsageError``, ``StoreError``, ``DataDirError``, ``expected``), an
    SQLite error (a damaged store: naming its file and what to do) and an OS error are
    one line on ``err`` and exit status 2."""
    err = err or sys.stderr
    try:
        status = command()
    except (UsageError, StoreError, DataDirError, *expected) as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    except sqlite3.DatabaseError as exc:
        print(f"{PROG}: error: {store_failure(database_path(data_dir), exc)}", file=err)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{PROG}: error: {exc.strerror or exc}"
              f"{': ' + str(exc.filename) if exc.filename else ''}", file=err)
        return EXIT_USAGE
    return EXIT_OK if status is None else status
