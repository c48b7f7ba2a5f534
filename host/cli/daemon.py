"""``smartroller daemon | live | calibrate``: the background host and what shows it.

    smartroller daemon [--adapter A] [--keys FILE] [--address ADDR ...] [--live]
                       [--dashboard [PORT]]
    smartroller live [--once]
    smartroller calibrate [--timeout S] [--skip]

Each takes ``--data-dir DIR``. The daemon keeps the paired rollers (``host.daemon.keeper``)
and publishes their live status in the data directory; ``live`` draws it (refreshed in
place on a terminal), ``calibrate`` walks the person through the calibration and
waits for the roller's presses to complete it (and turns the daemon's guided
calibration back on for the active profile); ``calibrate --skip`` turns that guide off
(host/daemon/guide.py) and says what calibrating would change. Errors are one line on
stderr: exit 2 for bad input (no profile, no paired roller, a bad directory), 1 when
Bluetooth fails or, for ``calibrate``, the time runs out.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from host.cli.common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    check_address,
    configure_logging,
    number,
    one_line_errors,
    stop_on_signals,
)
from host.daemon.live import CALIBRATION_STEPS, LiveStatus, read_statuses, render
from host.paths import DB_NAME, DataDirError, check_dir, data_dir

__all__ = ["COMMANDS", "add_parsers", "run"]

COMMANDS = ("daemon", "live", "calibrate")

def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``daemon``, ``live`` and ``calibrate`` to the ``smartroller`` sub-parsers."""
    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        one_line_errors(p)
        p.add_argument("--data-dir", metavar="DIR", help="the session store's directory "
                       "(default: $SMARTROLLER_DATA_DIR, else the user's data directory)")
        return p

    d = common(sub.add_parser("daemon", help="keep the paired rollers: analyse, warn, store"))
    d.add_argument("--adapter", metavar="A", help="hciN, or a Bumble transport "
                   "(tcp-client:HOST:PORT, usb:0 ...)")
    d.add_argument("--keys", metavar="FILE", help="bonding key store (Bumble transports)")
    d.add_argument("--address", action="append", metavar="ADDR",
                   help="only this roller (repeatable; default: every paired one)")
    d.add_argument("--live", action="store_true", help="draw the live view here too")
    d.add_argument("--dashboard", type=number(int, 0, "port number"), nargs="?", const=8765,
                   metavar="PORT", help="serve the web dashboard too, on 127.0.0.1:PORT "
                   "(default 8765)")
    d.add_argument("--idle", type=float, default=None, metavar="S",
                   help="close a session after S s with nobody on the roller (default 60)")
    li = common(sub.add_parser("live", help="the live view of what the daemon sees"))
    li.add_argument("--once", action="store_true", help="print one view and exit")
    c = common(sub.add_parser("calibrate", help="calibrate your spine's landmarks"))
    c.add_argument("--timeout", type=float, default=180.0, metavar="S",
                   help="give up after S s (default 180)")
    c.add_argument("--skip", action="store_true",
                   help="skip it: the daemon stops guiding you through a calibration at the "
                   "start of your sessions (they stay uncalibrated); `smartroller "
                   "calibrate` turns the guide on again")


def run(args: argparse.Namespace, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    """Run ``args.command`` (one of ``COMMANDS``); its exit status."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        folder = check_dir(data_dir(args.data_dir), private=True)
        if args.command == "daemon":
            return _daemon(args, folder, out, err)
        if args.command == "live":
            return _live(folder, args.once, out, err)
        if args.skip:
            return _skip_calibration(folder, out, err)
        return _calibrate(folder, args.timeout, out, err)
    except DataDirError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _daemon(args: argparse.Namespace, folder: Path, out: TextIO, err: TextIO) -> int:
    from bleak.exc import BleakError

    from host.ble.bumble_adapter import close_adapters
    from host.cli.devices import backend_for
    from host.daemon.keeper import IDLE_CLOSE_S, DaemonError, TransportLost, run_daemon
    from host.store import StoreError, open_store

    try:
        if args.idle is not None and not args.idle > 0:
            raise UsageError(f"--idle must be > 0 s: {args.idle}")
        addresses = [check_address(a) for a in args.address] if args.address else None
        keys = args.keys or (str(folder / "ble-keys.json") if args.adapter and ":" in
                             args.adapter else None)
        backend = backend_for(args.adapter, keys)
        store = open_store(folder)
    except (UsageError, StoreError) as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE

    def say(line: str) -> None:
        print(line, file=err if args.live else out, flush=True)

    configure_logging(False)
    async def main() -> None:
        stop = stop_on_signals()
        view = asyncio.create_task(_draw_loop(folder, out, stop)) if args.live else None
        web = (asyncio.create_task(_dashboard(folder, args.dashboard, stop, say))
               if args.dashboard is not None else None)
        try:
            await run_daemon(store, backend, folder, addresses=addresses, stop=stop,
                             idle_close_s=args.idle or IDLE_CLOSE_S, say=say)
        finally:
            stop.set()
            if view is not None:
                await asyncio.gather(view, return_exceptions=True)
            if web is not None:
                await asyncio.gather(web, return_exceptions=True)
            await close_adapters()

    try:
        asyncio.run(main())
    except (DaemonError, StoreError) as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    except (BleakError, OSError, TransportLost) as exc:
        print(f"{PROG}: error: Bluetooth: {exc}", file=err)
        return EXIT_FAILURE
    finally:
        store.close()
    return EXIT_OK


async def _dashboard(folder: Path, port: int, stop: asyncio.Event,
                     say: Callable[[str], None]) -> None:
    """The web dashboard in the daemon's process (``--dashboard``); a port that cannot be
    bound is said, and the daemon goes on without it."""
    from host.dashboard.app import serve

    try:
        await serve(folder, "127.0.0.1", port, stop,
                    ready=lambda url: say(f"dashboard on {url}"))
    except OSError as exc:
        say(f"dashboard: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}; the "
            "daemon goes on without it")


async def _draw_loop(folder: Path, out: TextIO, stop: asyncio.Event) -> None:
    while not stop.is_set():
        _draw(read_statuses(folder), out, clear=out.isatty())
        try:
            await asyncio.wait_for(stop.wait(), 0.25)
        except TimeoutError:
            pass


def _draw(statuses: list[LiveStatus], out: TextIO, clear: bool,
          empty: str = "waiting for a roller ...") -> None:
    lines: list[str] = []
    for status in statuses:
        lines += render(status) + [""]
    if not lines:
        lines = [empty]
    prefix = "\x1b[H\x1b[J" if clear else ""
    print(prefix + "\n".join(lines), file=out, flush=True)


def _nobody_publishing(folder: Path) -> str:
    """Why no roller shows in ``folder``, and what to do."""
    from host.daemon.lock import daemon_running

    if daemon_running(folder):
        return (f"the daemon in {folder} publishes no roller yet: switch the roller on "
                "(a paired roller connects by itself; `smartroller pair` one first)")
    return (f"no daemon is publishing in {folder}: start `smartroller daemon` (or "
            "`smartroller daemon --live` to watch it there)")


def _live(folder: Path, once: bool, out: TextIO, err: TextIO) -> int:
    statuses = read_statuses(folder)
    if not statuses and once:
        print(f"{PROG}: error: {_nobody_publishing(folder)}", file=err)
        return EXIT_FAILURE
    if once:
        _draw(statuses, out, clear=False)
        return EXIT_OK
    while True:
        statuses = read_statuses(folder)
        _draw(statuses, out, clear=out.isatty(),
              empty="" if statuses else _nobody_publishing(folder))
        time.sleep(0.25)


def _set_skip(folder: Path, skipped: bool) -> str | None:
    """Set the active profile's choice to skip the guided calibration; its name (None:
    no store or no profile yet). StoreError when the store cannot be written."""
    from host.store import open_store

    if not (folder / DB_NAME).exists():
        return None
    store = open_store(folder)
    try:
        profile = store.active_profile()
        if profile is None:
            return None
        if store.calibration_skipped(profile) != skipped:
            store.set_calibration_skipped(profile.name, skipped)
        return profile.name
    finally:
        store.close()


def _skip_calibration(folder: Path, out: TextIO, err: TextIO) -> int:
    from host.analysis.calibration import UNCALIBRATED_NOTE
    from host.store import StoreError

    try:
        name = _set_skip(folder, True)
    except StoreError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    if name is None:
        print(f"{PROG}: error: no profile yet: smartroller profile create NAME --stature "
              "1.72", file=err)
        return EXIT_USAGE
    print(f"calibration skipped for profile {name}: the daemon no longer guides you "
          "through one; your sessions stay uncalibrated (the warning and the roller's "
          "fence keep a wider margin).", file=out)
    print(f"{UNCALIBRATED_NOTE[0].upper()}{UNCALIBRATED_NOTE[1:]}.", file=out)
    print("`smartroller calibrate` turns the guide on again.", file=out)
    return EXIT_OK


def _calibrate(folder: Path, timeout_s: float, out: TextIO, err: TextIO) -> int:
    from host.store import StoreError

    if not timeout_s > 0:
        print(f"{PROG}: error: --timeout must be > 0 s: {timeout_s}", file=err)
        return EXIT_USAGE
    try:
        _set_skip(folder, False)  # the daemon guides this user's next sessions again
    except StoreError as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    statuses = read_statuses(folder)
    if not statuses:
        print(f"{PROG}: error: no daemon is publishing in {folder}: start `smartroller "
              "daemon` and lie on the roller first", file=err)
        return EXIT_FAILURE
    for line in CALIBRATION_STEPS:
        print(line, file=out, flush=True)
    seen = {s.address: s.calibration for s in statuses}
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        for status in read_statuses(folder):
            if status.calibration and status.calibration != seen.get(status.address):
                seen[status.address] = status.calibration
                print(f"  {status.calibration}", file=out, flush=True)
                if status.calibrated:
                    print("Done: the calibration is kept in your profile when the session "
                          "ends.", file=out)
                    return EXIT_OK
        time.sleep(0.2)
    print(f"{PROG}: error: no calibration within {timeout_s:g} s", file=err)
    return EXIT_FAILURE
