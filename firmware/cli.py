"""``smartroller-fw``: the roller's firmware command line.

    smartroller-fw run [--config hardware/roller.toml]      on a Raspberry Pi
    smartroller-fw sim [--scenario FILE] [--seed N] ...     the simulated roller, here
    smartroller-fw record-raw OUT [--sim ...]               write the raw sensor stream
    smartroller-fw replay RAW [--out frames.csv]            raw log -> frames
    smartroller-fw selftest [--sim] [--config FILE]         check every part
    smartroller-fw table-roll [--sim] [--state-dir DIR]     measure the gyro's scale once

Errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from firmware.config import Config, load_config
from firmware.protocol import Frame, FrameFlag
from firmware.rawlog import RawLogError, RawLogWriter
from firmware.schema import SchemaError
from firmware.state_lock import StateDirBusy, StateLock

EXIT_USAGE = 2
PI_STATE_DIR = Path("/var/lib/smartroller")


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _positive(kind: type) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < 0:
            raise argparse.ArgumentTypeError(f"must be a finite number >= 0: {text!r}")
        return value
    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smartroller-fw", description=__doc__.split("\n")[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log faults and recoveries")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run on a Raspberry Pi's real bus, pins and radio")
    run.add_argument("--config", type=Path, help="hardware profile (default: built-in)")
    run.add_argument("--transport", default="hci-socket:0",
                     help="Bluetooth controller (Bumble transport; default hci-socket:0)")
    run.add_argument("--state-dir", type=Path, default=PI_STATE_DIR,
                     help="journal, roller address and bonds")
    run.add_argument("--passkey", type=int, help="static 6-digit passkey (MITM protection)")

    def sim_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", type=Path, help="hardware profile (default: built-in)")
        sp.add_argument("--scenario", type=Path, help="scenario TOML (default: built-in)")
        sp.add_argument("--seed", type=int, default=1, help="draws the person and the noise")
        sp.add_argument("--duration", type=_positive(float),
                        help="stop after this many simulated seconds")

    sim = sub.add_parser("sim", help="run the simulated roller (emulated hardware)")
    sim_options(sim)
    sim.add_argument("--speed", type=_positive(float), default=0.0,
                     help="simulated seconds per real second (0: as fast as possible)")
    sim.add_argument("--every", type=_positive(float), default=0.5,
                     help="print a frame every this many seconds (0: every frame)")
    sim.add_argument("--jsonl", action="store_true", help="print frames as JSON lines")
    from firmware.ble.simcli import add_radio_arguments

    add_radio_arguments(sim)

    rec = sub.add_parser("record-raw", help="record the raw sensor stream to a file")
    rec.add_argument("out", type=Path, help="raw log to write")
    rec.add_argument("--sim", action="store_true", help="record the simulated roller")
    sim_options(rec)
    rec.add_argument("--state-dir", type=Path,
                     help="with --sim: where the roller keeps what it learned of its parts "
                     "(calibration.json; default: none, the datasheets' values)")

    test = sub.add_parser("selftest", help="check every part and name the one that is wrong")
    test.add_argument("--config", type=Path, help="hardware profile (default: built-in)")
    test.add_argument("--sim", action="store_true", help="check emulated parts at rest")
    test.add_argument("--no-ble", action="store_true", help="skip the Bluetooth controller")
    test.add_argument("--transport", help="Bluetooth controller (Bumble transport; default "
                      "hci-socket:0, with --sim an in-process virtual controller)")
    test.add_argument("--fault", action="append", default=[], metavar="NAME",
                      help="with --sim: inject a fault (repeatable; see firmware/selftest.py)")
    test.add_argument("--state-dir", type=Path, help="where the roller keeps its calibration "
                      "(default /var/lib/smartroller; with --sim none)")

    roll = sub.add_parser("table-roll", help="measure the gyro's scale: the empty roller "
                          "rolled slowly along a table (once, when it is built)")
    roll.add_argument("--config", type=Path, help="hardware profile (default: built-in)")
    roll.add_argument("--sim", action="store_true",
                      help="an emulated roller (its parts drawn by --seed) rolled for you")
    roll.add_argument("--seed", type=int, default=1, help="with --sim: which roller")
    roll.add_argument("--seconds", type=_positive(float), default=TABLE_ROLL_S,
                      help=f"how long to read the IMU, s (default {TABLE_ROLL_S:g})")
    roll.add_argument("--state-dir", type=Path, help="where the roller keeps its calibration "
                      "(default /var/lib/smartroller; with --sim none: measured, not kept)")

    rep = sub.add_parser("replay", help="turn a raw log into frames")
    rep.add_argument("raw", type=Path, help="raw log to read")
    rep.add_argument("--out", type=Path, help="write frames as CSV here (default: stdout)")
    rep.add_argument("--salvage", action="store_true",
                     help="keep the frames before a truncated or corrupt record")
    return p


def frame_text(frame: Frame) -> str:
    """One human-readable line for a frame (mm, mm/s, deg, N)."""
    zones = " ".join(f"{z:5.1f}" for z in frame.zone_loads)
    flags = "|".join(f.name for f in FrameFlag if f and f in frame.flags and f.name)
    return (f"t={frame.t:7.2f}s  pos={frame.position * 1e3:7.1f}mm  "
            f"vel={frame.velocity * 1e3:6.0f}mm/s  angle={math.degrees(frame.angle):7.1f}deg  "
            f"load={frame.total_load:6.1f}N [{zones}]  {flags}")


def frame_dict(frame: Frame) -> dict:
    """A frame as JSON-ready values in mm, mm/s, deg and N."""
    return {"seq": frame.seq, "t_s": round(frame.t, 4),
            "position_mm": round(frame.position * 1e3, 2),
            "velocity_mm_s": round(frame.velocity * 1e3, 1),
            "angle_deg": round(math.degrees(frame.angle), 2),
            "zone_loads_n": [round(z, 2) for z in frame.zone_loads],
            "load_total_n": round(frame.total_load, 2), "flags": int(frame.flags)}


CSV_COLUMNS = ["seq", "t_s", "position_mm", "velocity_mm_s", "angle_deg", "load_total_n",
               "flags"]


def _sim_roller(args: argparse.Namespace, config: Config, speed: float = 0.0,  # noqa: ANN202
                journal: object | None = None, state_dir: Path | None = None):
    """The simulated roller; with ``journal`` (on the radio) a new boot that goes on
    from the journal's seq, as the Pi's firmware does; ``state_dir``: where it keeps its
    calibration (None: nothing kept)."""
    from firmware.sim.rig import SimRoller
    from firmware.sim.scenario import default_scenario, load_scenario

    scenario = load_scenario(args.scenario) if args.scenario else default_scenario()
    if journal is None:
        return SimRoller(scenario, args.seed, config, speed=speed, state_dir=state_dir)
    from firmware.ble.simcli import fresh_boot_id

    return SimRoller(scenario, args.seed, config, speed=speed, boot_id=fresh_boot_id(),
                     first_seq=journal.next_seq,  # type: ignore[attr-defined]
                     state_dir=state_dir)


def _cmd_sim(args: argparse.Namespace, config: Config) -> None:
    journal = state_dir = None
    if args.host_adapter:  # a roller on the radio keeps its state as the Pi does
        from firmware.ble.simcli import default_state_dir, sim_journal

        state_dir = args.state_dir or default_state_dir()
        _hold_state_dir(state_dir)  # (held until the command ends)
        try:
            journal = sim_journal(state_dir)
        except OSError as exc:
            raise CliError(f"cannot use the state directory: {exc}") from None
    roller = _sim_roller(args, config, args.speed, journal, state_dir)
    end = min(args.duration, roller.duration_s) if args.duration else roller.duration_s
    last = [-math.inf]
    notable = FrameFlag.BEYOND_FENCE | FrameFlag.IN_CONTACT | FrameFlag.IMU_FAULT
    previous = [FrameFlag.NONE]

    def show(frame: Frame) -> None:
        changed = (frame.flags & notable) != previous[0] or frame.flags & (
            FrameFlag.ZEROED | FrameFlag.IMU_GAP | FrameFlag.IMU_CLIPPED)
        previous[0] = frame.flags & notable
        if args.every and frame.t - last[0] < args.every and not changed:
            return
        last[0] = frame.t
        print(json.dumps(frame_dict(frame)) if args.jsonl else frame_text(frame), flush=True)

    roller.add_sink(show)
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if args.jsonl else print
    person = roller.world.person
    say(f"simulated roller: seed {args.seed}, {end:.0f} s session, person "
        f"{person.stature_m * 100:.0f} cm {person.sex}, {person.weight_kg:.0f} kg")
    try:
        if args.host_adapter:
            from firmware.ble.simcli import radio_kwargs, run_sim_with_radio

            radio = radio_kwargs(args)
            if radio["passkey"] is None:
                radio["passkey"] = config.ble.passkey
            summary = asyncio.run(run_sim_with_radio(
                roller, args.host_adapter, speed=args.speed or 1.0, until=end, say=say,
                journal=journal, **radio))
            say(f"radio: {summary.hosts} host connection(s), {summary.backfilled} frames "
                f"backfilled, {summary.cuts} outage(s)")
        else:
            roller.run(until=end)
    finally:
        roller.close()
    if not args.jsonl:
        fw = roller.firmware
        print(f"done: {fw.frames} frames, {fw.imu.overflows} FIFO overflows, "
              f"{fw.scanner.scans} zone scans")


def _atomic_binary(path: Path) -> tuple[object, Callable[[bool], None]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    fh = os.fdopen(fd, "wb")

    def finish(ok: bool) -> None:
        fh.close()
        if ok:
            os.replace(tmp, path)
        else:
            os.unlink(tmp)
    return fh, finish


def _cmd_record(args: argparse.Namespace, config: Config) -> None:
    if not args.sim:
        raise CliError("recording from real sensors needs a Raspberry Pi: run it there, "
                       "or add --sim to record the simulated roller")
    if args.state_dir is not None and not args.state_dir.is_dir():
        raise CliError(f"--state-dir {args.state_dir}: not a directory")
    if args.state_dir is not None:
        _hold_state_dir(args.state_dir)  # (held until the command ends)
    roller = _sim_roller(args, config, state_dir=args.state_dir)
    fh, finish = _atomic_binary(args.out)
    ok = False
    try:
        writer = RawLogWriter(fh, config, f"sim seed {args.seed}",  # type: ignore[arg-type]
                              roller.firmware.start_calibration, roller.firmware.boot_id,
                              roller.firmware.pipeline.seq)
        roller.firmware.raw_sinks.append(writer.write)
        end = min(args.duration, roller.duration_s) if args.duration else roller.duration_s
        roller.run(until=end)
        writer.close()
        ok = True
    finally:
        roller.close()
        finish(ok)
    print(f"wrote {writer.records} records to {args.out}")


_HELD: list[StateLock] = []
"""The state directories' locks this command holds (``main`` lets them go at its end)."""


def _hold_state_dir(state_dir: Path) -> StateLock:
    """Make ``state_dir`` (private) and take its lock until the command ends: one roller
    process per state directory (``firmware.state_lock``)."""
    from firmware.files import private_dir

    lock = StateLock(state_dir)
    try:
        private_dir(state_dir)
        lock.acquire()
    except StateDirBusy as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot use the state directory {state_dir}: "
                       f"{exc.strerror or exc}") from None
    _HELD.append(lock)
    return lock


def _cmd_run(args: argparse.Namespace, config: Config) -> None:  # pragma: no cover - on a Pi
    from smbus2 import SMBus

    from firmware.app import Firmware
    from firmware.ble.runner import serve
    from firmware.clock import MonotonicClock
    from firmware.journal import Journal

    try:
        bus = SMBus(config.imu.bus)
        adc_bus = bus if config.adc.bus == config.imu.bus else SMBus(config.adc.bus)
    except (FileNotFoundError, PermissionError) as exc:
        raise CliError(f"cannot open the I2C bus: {exc}") from None
    _hold_state_dir(args.state_dir)  # (held until the command ends)
    try:
        journal = Journal(args.state_dir / "journal")
    except OSError as exc:
        raise CliError(f"cannot use the state directory {args.state_dir}: {exc}") from None
    firmware = Firmware(config, bus, MonotonicClock(), adc_bus=adc_bus,
                        first_seq=journal.next_seq, state_dir=args.state_dir)
    passkey = args.passkey if args.passkey is not None else config.ble.passkey
    asyncio.run(serve(firmware, journal, args.transport, state_dir=args.state_dir,
                      passkey=passkey, pairing_window_s=config.ble.pairing_window_s))


def _cmd_selftest(args: argparse.Namespace, config: Config) -> int:
    from firmware.selftest import run_selftest, summary
    from firmware.sim.selftest_rig import FAULTS, BenchRig

    if args.fault and not args.sim:
        raise CliError("--fault needs --sim (faults are injected into emulated parts)")
    for name in args.fault:
        if name not in FAULTS:
            raise CliError(f"--fault {name!r}: expected one of {', '.join(FAULTS)}")
    rig = None
    if args.sim:
        rig = BenchRig(config, tuple(args.fault))
        sim_bus = rig.bus
        open_bus: Callable[[int], object] = lambda _number: sim_bus  # noqa: E731
        clock, pins, transport = rig.clock, rig.pins, args.transport
    else:  # pragma: no cover - on a Pi
        from smbus2 import SMBus

        from firmware.clock import MonotonicClock

        open_bus, clock, pins = SMBus, MonotonicClock(), None
        transport = args.transport or "hci-socket:0"
    try:
        checks = run_selftest(config, open_bus, clock, pins, ble_transport=transport,
                              check_radio=not args.no_ble, sim=args.sim,
                              on_check=lambda c: print(c.line(), flush=True),
                              input_opened=rig.input_opened if rig is not None else None,
                              state_dir=args.state_dir or (None if args.sim else PI_STATE_DIR))
    finally:
        if rig is not None:
            rig.close()
    print(summary(checks))
    return 0 if all(c.ok for c in checks) else 1


TABLE_ROLL_S = 70.0
"""How long ``table-roll`` reads the IMU by default, s (5 s still, half a minute each way,
a margin)."""


def _cmd_table_roll(args: argparse.Namespace, config: Config) -> int:
    from firmware.table_roll import MIN_TURNS, STILL_S, keep_table_roll, run_table_roll

    if args.sim:
        from firmware.sim.table_roll_rig import TableRollRig

        rig = TableRollRig(config, args.seed)
        bus, clock, state_dir = rig.bus, rig.clock, args.state_dir
    else:  # pragma: no cover - on a Pi
        from smbus2 import SMBus

        from firmware.clock import MonotonicClock

        bus, clock = SMBus(config.imu.bus), MonotonicClock()
        state_dir = args.state_dir or PI_STATE_DIR
        print(f"Lay the roller on a table, still. In {STILL_S:g} s, roll it slowly along "
              f"the table through {MIN_TURNS:g} turns or more (about a metre, half a "
              f"minute) and back. {args.seconds:g} s in all.", flush=True)
    if state_dir is not None:  # before the roll, not half a minute of rolling later
        _hold_state_dir(state_dir)  # (held until the command ends)
    result = run_table_roll(config, bus, clock, args.seconds)
    print(result.line())
    if not result.ok:
        return 1
    if state_dir is None:
        print("not kept (no --state-dir)")
        return 0
    try:
        path = keep_table_roll(state_dir, result)
    except OSError as exc:
        raise CliError(f"cannot keep the calibration in {state_dir}: {exc}") from None
    print(f"kept in {path}")
    return 0


def _cmd_replay(args: argparse.Namespace) -> None:
    from firmware.replay import replay

    rows = (frame_dict(f) for f in replay(args.raw, salvage=args.salvage))
    if args.out is None:
        print(",".join(CSV_COLUMNS))
        for row in rows:
            print(",".join(str(row[c]) for c in CSV_COLUMNS))
        return
    fh, finish = _atomic_binary(args.out)
    ok = False
    try:
        fh.write((",".join(CSV_COLUMNS) + "\r\n").encode())  # type: ignore[attr-defined]
        n = 0
        for row in rows:
            fh.write((",".join(str(row[c]) for c in CSV_COLUMNS) + "\r\n").encode())  # type: ignore[attr-defined]
            n += 1
        ok = True
    finally:
        finish(ok)
    print(f"wrote {n} frames to {args.out}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``smartroller-fw``; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.ERROR,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(getattr(args, "config", None))
        if args.command == "run":
            _cmd_run(args, config)
        elif args.command == "sim":
            _cmd_sim(args, config)
        elif args.command == "record-raw":
            _cmd_record(args, config)
        elif args.command == "replay":
            _cmd_replay(args)
        elif args.command == "selftest":
            return _cmd_selftest(args, config)
        elif args.command == "table-roll":
            return _cmd_table_roll(args, config)
    except (CliError, SchemaError, RawLogError) as exc:
        print(f"smartroller-fw: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    finally:
        while _HELD:
            _HELD.pop().release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
