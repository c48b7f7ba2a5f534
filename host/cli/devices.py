"""``smartroller scan | pair | stream | devices | forget``: the rollers, their bonds and
their radio.

    smartroller scan [--adapter A] [--timeout S]
    smartroller pair ADDRESS [--adapter A] [--keys FILE]
    smartroller stream ADDRESS [--adapter A] [--seconds S] [--keys FILE]
    smartroller devices [--json]
    smartroller forget ADDRESS [--adapter A] [--keys FILE]

``--adapter``: absent, bleak's native backend; ``hciN``, that BlueZ adapter; anything
with a colon, a Bumble transport (``tcp-client:127.0.0.1:9102``, ``usb:0``,
``hci-socket:0`` ...) driven by the Bumble backend. ``--keys``: the Bumble backend's
bonding key store (default: the user's data directory).

Each ``cmd_*`` function runs the command and returns the exit status: 0 done, 1 the
Bluetooth side failed (not found, refused, lost), 2 bad input, 130 interrupted; an
error is one line on stderr. ``devices`` lists the known rollers, each with its own calibration as
last read (what the roller learned of its parts: docs/protocol.md §8, read by ``pair``
and by the daemon at each link); ``forget`` removes one from the store and its bond
(exit 1 when the system's Bluetooth refuses to remove it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from bleak.exc import BleakDeviceNotFoundError, BleakError

from firmware.protocol import (
    Frame,
    FrameFlag,
    ProtocolError,
    RollerCalibration,
    RollerFault,
    RollerState,
    Status,
)
from host.ble.client import RollerClient
from host.ble.control import RollerCommandError, RollerDisconnected
from host.ble.discovery import BleBackend, FoundRoller
from host.cli.common import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    add_data_dir,
    check_address,
    open_user_store,
    run_on_store,
)
from host.daemon.live import read_statuses
from host.paths import data_dir as user_data_dir
from host.stream import ClockMap
from host.timefmt import iso_utc

if TYPE_CHECKING:
    from host.store import Device

__all__ = ["COMMANDS", "add_parsers", "backend_for", "cmd_forget", "cmd_pair", "cmd_scan",
           "cmd_stream", "format_frame", "run"]

COMMANDS = ("scan", "pair", "stream", "devices", "forget")
_FAILURES = (BleakError, TimeoutError, RollerCommandError, RollerDisconnected, ProtocolError)


def backend_for(adapter: str | None, key_store: str | None = None) -> BleBackend:
    """The backend an ``--adapter`` value names (see the module docstring)."""
    if adapter is None:
        if key_store is not None:
            raise UsageError("--keys only applies to a Bumble transport (--adapter T:...)")
        return BleBackend.native()
    if ":" in adapter:
        return BleBackend.bumble(adapter, key_store)
    if re.fullmatch(r"hci\d+", adapter):
        return BleBackend.native(adapter)
    raise UsageError(f"--adapter {adapter!r}: expected hciN or a Bumble transport "
                     "such as tcp-client:127.0.0.1:9102 or usb:0")


def format_frame(frame: Frame, clock: ClockMap | None = None) -> str:
    """One line for a frame: boot:seq, sensor time, UTC, mm, mm/s, N, flags."""
    utc = clock.frame_utc(frame) if clock is not None else None
    when = datetime.fromtimestamp(utc, UTC).isoformat(timespec="milliseconds") \
        if utc is not None else "-"
    flags = "|".join(f.name for f in FrameFlag if f and f in frame.flags and f.name)
    return (f"{frame.boot}:{frame.seq} t={frame.t:.3f}s utc={when} "
            f"pos={frame.position * 1e3:.1f}mm vel={frame.velocity * 1e3:.0f}mm/s "
            f"load={frame.total_load:.0f}N {flags}").rstrip()


def _battery(status: Status) -> str:
    if status.faults & RollerFault.BATTERY_UNKNOWN:
        return "unknown"
    low = ",low" if status.faults & RollerFault.LOW_BATTERY else ""
    return f"{status.battery_pct}%{low}"


def _calibration_row(device: Device) -> dict[str, object] | None:
    """The device's CALIBRATION as last read, for ``devices`` (None: never read): its
    fields, a line for people, or why the stored value cannot be read."""
    if device.calibration is None:
        return None
    row: dict[str, object] = {"read_utc": iso_utc(device.calibration_utc or 0.0)}
    try:
        cal = RollerCalibration.decode(device.calibration)
    except ProtocolError as error:
        return {**row, "line": f"unreadable ({error})"}
    return {**row, "line": cal.line(), "learned": cal.learned,
            "imu_clock_error": cal.imu_clock_error, "imu_clock_span_s": cal.imu_clock_span_s,
            "gyro_scale_error": cal.gyro_scale_error if cal.gyro_scale_learned else None,
            "updated_utc": iso_utc(cal.updated_utc) if cal.updated_utc else None}


def _format_status(status: Status) -> str:
    last = "-" if status.last_seq == 0xFFFFFFFF else str(status.last_seq)
    return (f"state={RollerState(status.state).name.lower()} battery={_battery(status)} "
            f"firmware={status.firmware_version} boot={status.boot_id} last_seq={last}")


class _NotFound(Exception):
    """The roller was not seen: one line, exit status 1."""


def _run(main: Callable[[], Awaitable[None]], err: TextIO) -> int:
    async def guarded() -> None:
        try:
            await main()
        finally:
            from host.ble.bumble_adapter import close_adapters

            await close_adapters()

    try:
        asyncio.run(guarded())
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=err)
        return EXIT_USAGE
    except OSError as error:  # no system Bluetooth (no BlueZ D-Bus), socket errors
        print(f"{PROG}: error: Bluetooth unavailable: {error}", file=err)
        return EXIT_FAILURE
    except _NotFound as error:
        print(f"{PROG}: error: {error}", file=err)
        return EXIT_FAILURE
    except _FAILURES as error:
        print(f"{PROG}: error: {type(error).__name__}: {error}".rstrip(": "), file=err)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_OK


def cmd_scan(adapter: str | None = None, timeout_s: float = 5.0, *,
             key_store: str | None = None, out: TextIO | None = None,
             err: TextIO | None = None) -> int:
    """``smartroller scan``: print each roller advertising as it is first seen (address,
    rssi, name), then a closing line on ``err``."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise UsageError(f"--timeout must be > 0 s: {timeout_s}")
        backend = backend_for(adapter, key_store)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=err)
        return EXIT_USAGE

    def found(roller: FoundRoller) -> None:
        print(f"{roller.address}  {roller.rssi:4d} dBm  {roller.name or '-'}", file=out,
              flush=True)

    async def main() -> None:
        rollers = await RollerClient(backend).scan(timeout_s, on_found=found)
        count = f"{len(rollers)} roller{'s' if len(rollers) != 1 else ''}" if rollers \
            else "no roller"
        print(f"{count} found within {timeout_s:g} s", file=err)

    return _run(main, err)


def cmd_pair(address: str, adapter: str | None = None, *, timeout_s: float = 30.0,
             key_store: str | None = None, data_dir: str | None = None,
             out: TextIO | None = None, err: TextIO | None = None) -> int:
    """``smartroller pair ADDRESS``: bond with a roller in its pairing window, and keep it
    in the session store's devices (the daemon keeps the paired ones)."""
    from host.paths import DataDirError
    from host.paths import data_dir as resolve_data_dir
    from host.store import StoreError, open_store

    out, err = out or sys.stdout, err or sys.stderr
    try:
        address = check_address(address)
        folder = resolve_data_dir(data_dir)
        if key_store is None and adapter is not None and ":" in adapter:
            key_store = str(folder / "ble-keys.json")
        backend = backend_for(adapter, key_store)
        store = open_store(folder)
    except (UsageError, DataDirError, StoreError) as error:
        print(f"{PROG}: error: {error}", file=err)
        return EXIT_USAGE

    async def main() -> None:
        print(f"looking for {address} for up to {timeout_s:g} s; hold the roller's button "
              "3 s to open its pairing window", file=err, flush=True)
        client = RollerClient(backend)
        try:
            status = await client.pair(address, timeout_s)
        except BleakDeviceNotFoundError:
            raise _NotFound(f"no roller {address} seen within {timeout_s:g} s: is it on, "
                            "near, and in its pairing window (its LED flickering)?") from None
        store.note_device(address, bonded=True, key_store=key_store)
        print(f"paired with {address}: {_format_status(status)}", file=out)
        if client.calibration is not None:
            store.note_calibration(address, client.calibration.encode())
            print(f"its calibration: {client.calibration.line()}", file=out)

    return _run(main, err)


def cmd_stream(address: str, adapter: str | None = None, seconds: float | None = None, *,
               key_store: str | None = None, out: TextIO | None = None,
               err: TextIO | None = None) -> int:
    """``smartroller stream ADDRESS``: print live frames (for ``seconds``, or until
    Ctrl-C). Nothing is stored, so nothing is acknowledged: the roller keeps its
    journal for the daemon."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        address = check_address(address)
        if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
            raise UsageError(f"--seconds must be > 0: {seconds}")
        backend = backend_for(adapter, key_store)
    except UsageError as error:
        print(f"{PROG}: error: {error}", file=err)
        return EXIT_USAGE

    async def main() -> None:
        client: RollerClient

        def on_frames(frames: list[Frame]) -> None:
            for frame in frames:
                print(format_frame(frame, client.clock_map), file=out)

        client = RollerClient(backend, on_frames=on_frames, from_live_edge=True,
                              on_hole=lambda h: print(f"lost frames {h.boot_id}:"
                                                      f"{h.first_seq}..{h.last_seq}", file=err))
        status = await client.connect(address)
        print(f"connected to {address}: {_format_status(status)}", file=err)
        try:
            if seconds is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(seconds)
        finally:
            await client.stop()

    return _run(main, err)


def add_parsers(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``scan``, ``pair``, ``stream``, ``devices`` and ``forget`` to the sub-parsers."""
    def adapter(p: argparse.ArgumentParser) -> None:
        p.add_argument("--adapter", metavar="A", help="hciN, or a Bumble transport "
                       "(tcp-client:HOST:PORT, usb:0, hci-socket:0 ...)")
        p.add_argument("--keys", metavar="FILE", help="bonding key store (Bumble transports)")

    scan = subparsers.add_parser("scan", help="list the rollers advertising nearby")
    adapter(scan)
    scan.add_argument("--timeout", type=float, default=5.0, help="seconds to scan")
    pair = subparsers.add_parser("pair", help="bond with a roller in its pairing window")
    pair.add_argument("address")
    adapter(pair)
    pair.add_argument("--data-dir", metavar="DIR", help="the session store's directory "
                      "(default: $SMARTROLLER_DATA_DIR, else the user's data directory)")
    stream = subparsers.add_parser("stream", help="print a roller's live frames")
    stream.add_argument("address")
    adapter(stream)
    stream.add_argument("--seconds", type=float, help="stop after this long")
    p = add_data_dir(subparsers.add_parser("devices", help="list the known rollers"))
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add_data_dir(subparsers.add_parser("forget", help="remove a roller and its bond"))
    p.add_argument("address")
    p.add_argument("--adapter", metavar="A",
                   help="hciN, or a Bumble transport (the bond is then in --keys)")
    p.add_argument("--keys", metavar="FILE", type=Path,
                   help="the Bumble backend's key store (default: the one 'pair' uses)")


def run(args: argparse.Namespace, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    """Run ``args.command`` (one of ``COMMANDS``); its exit status."""
    if args.command == "scan":
        return cmd_scan(args.adapter, args.timeout, key_store=args.keys, out=out, err=err)
    if args.command == "pair":
        return cmd_pair(args.address, args.adapter, key_store=args.keys,
                        data_dir=args.data_dir, out=out, err=err)
    if args.command == "stream":
        return cmd_stream(args.address, args.adapter, args.seconds, key_store=args.keys,
                          out=out, err=err)
    out, err = out or sys.stdout, err or sys.stderr
    if args.command == "devices":
        return run_on_store(lambda: cmd_devices(args, out), err, data_dir=args.data_dir)
    return run_on_store(lambda: cmd_forget(args, out, err), err,
                        data_dir=args.data_dir)


def cmd_devices(args: argparse.Namespace, out: TextIO) -> None:
    """``smartroller devices``."""
    store = open_user_store(args, create=False)
    devices = [] if store is None else store.devices()
    faults = {st.address: st.fault for st in read_statuses(user_data_dir(args.data_dir))}
    rows = [{"address": d.address, "name": d.name, "first_seen_utc": iso_utc(d.first_seen_utc),
             "last_seen_utc": iso_utc(d.last_seen_utc), "bonded": d.bonded,
             "key_store": d.key_store, "daemon_fault": faults.get(d.address, ""),
             "calibration": _calibration_row(d)}
            for d in devices]
    if args.json:
        print(json.dumps(rows, indent=2), file=out)
        return
    if not rows:
        print("no rollers yet: smartroller scan, then smartroller pair ADDRESS", file=out)
    for r in rows:
        print(f"{r['address']}  {r['name'] or '-':20}  last seen {r['last_seen_utc'][:19]}  "
              f"{'bonded' if r['bonded'] else 'not bonded'}", file=out)
        cal = r["calibration"]
        if cal is not None:
            print(f"  calibration: {cal['line']} (read {str(cal['read_utc'])[:19]})", file=out)
        if r["daemon_fault"]:
            print(f"  the daemon is NOT STORING: {r['daemon_fault']} (the roller keeps the "
                  "frames in its journal)", file=out)


def cmd_forget(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``smartroller forget ADDRESS``: the device leaves the store, its bond the Bumble
    key store (``--keys``, a Bumble ``--adapter``, or the key store the store recorded
    for it) or else the OS (bleak's native backend; also any bond in the default Bumble
    key store)."""
    from host.ble.bonds import BondRemovalUnsupported, remove_bumble_bond, unpair_native
    address = check_address(args.address)
    adapter = args.adapter
    if adapter is not None and ":" not in adapter and not re.fullmatch(r"hci\d+", adapter):
        raise UsageError(f"--adapter {adapter!r}: expected hciN or a Bumble transport")
    store = open_user_store(args, create=False)
    device = None if store is None else store.device(address)
    bumble = args.keys is not None or (adapter is not None and ":" in adapter)
    key_store = args.keys
    if key_store is None and device is not None and device.key_store and adapter is None:
        key_store, bumble = Path(device.key_store), True
    if key_store is None:
        from host.ble.bumble_adapter import default_key_store_path

        key_store = default_key_store_path()
    if key_store.is_dir():
        raise UsageError(f"--keys {key_store} is a directory, not a key store file")
    try:
        removed = remove_bumble_bond(key_store, address)
    except (ValueError, OSError) as exc:
        raise UsageError(str(exc)) from None
    in_store = store.forget_device(address) if store is not None else False
    done = [f"bond deleted from {key_store}"] if removed else []
    if in_store:
        done.insert(0, "removed from the store")
    if bumble or removed:
        if not done:
            raise UsageError(f"unknown roller {address}: not in the store and no bond in "
                            f"{key_store}")
        print(f"{address}: {', '.join(done)}", file=out)
        return EXIT_OK
    try:
        asyncio.run(unpair_native(address, adapter))
        done.append("bond removed from the system's Bluetooth")
        status = EXIT_OK
    except BondRemovalUnsupported as exc:
        print(f"{PROG}: {exc}: remove {address} in the system's Bluetooth settings", file=err)
        status = EXIT_OK if in_store else EXIT_FAILURE
    except Exception as exc:  # BleakError, OSError (no BlueZ), TimeoutError ...
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
        print(f"{PROG}: error: the system's Bluetooth did not remove a bond with {address} "
              f"({reason}); remove it in the system's Bluetooth settings", file=err)
        status = EXIT_FAILURE
    if done:
        print(f"{address}: {', '.join(done)}", file=out)
    return status
