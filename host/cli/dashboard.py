"""``smartroller dashboard``: the local web dashboard (docs/dashboard.md).

    smartroller dashboard [--port 8765] [--host ADDR] [--data-dir DIR]

Serves the live page, the sessions and the trends (``host.dashboard``) over the data
directory's store (read-only) and the daemon's live status files, on 127.0.0.1 unless
``--host`` names another address: then every machine that reaches that address can see
the person's sessions, which a warning on stderr says. Errors are one line on stderr,
exit status 2 (a bad directory, a port that is taken).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from typing import TextIO

from host.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    add_data_dir,
    number,
    stop_on_signals,
)
from host.paths import DataDirError, check_dir, data_dir

__all__ = ["COMMANDS", "add_parsers", "run"]

COMMANDS = ("dashboard",)
LOOPBACK = "127.0.0.1"


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``dashboard`` to the sub-parsers."""
    p = add_data_dir(sub.add_parser("dashboard", help="the local web dashboard: live, "
                                    "sessions, trends"))
    p.add_argument("--port", type=number(int, 0, "port number"), default=8765,
                   help="TCP port (default 8765; 0: any free one)")
    p.add_argument("--host", default=LOOPBACK, metavar="ADDR",
                   help="address to listen on (default 127.0.0.1: this computer only)")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    """Run ``smartroller dashboard`` until interrupted; its exit status."""
    from host.dashboard.app import serve

    out, err = out or sys.stdout, err or sys.stderr
    if args.port > 65535:
        print(f"{PROG}: error: --port must be 0 .. 65535: {args.port}", file=err)
        return EXIT_USAGE
    try:
        folder = check_dir(data_dir(args.data_dir), create=False)
    except DataDirError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    if not _loopback(args.host):
        print(f"{PROG}: warning: the dashboard listens on {args.host}: every machine that "
              "reaches that address can see your sessions and your live rolling (there is "
              "no login)", file=err, flush=True)

    async def main() -> None:
        stop = stop_on_signals()
        await serve(folder, args.host, args.port, stop,
                    ready=lambda url: print(f"smartroller dashboard on {url} (data: "
                                            f"{folder}); Ctrl-C stops it", file=out,
                                            flush=True))

    try:
        asyncio.run(main())
    except OSError as exc:
        print(f"{PROG}: error: cannot listen on {args.host}:{args.port}: "
              f"{exc.strerror or exc}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK
