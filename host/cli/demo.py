"""``smartroller demo``: the whole product on a simulated roller, over Bluetooth.

0. The roller is built: its table roll (``smartroller-fw table-roll``) measures its
   gyro's scale into the roller's state (unless the scenario's ``roller.table_rolled``
   is false).
1. A simulated roller starts as its own process (``smartroller-fw sim --host-adapter``):
   the unchanged firmware on emulated hardware, its GATT server on a virtual radio.
2. The simulated person holds the roller's button for 3 s: its pairing window opens.
   This laptop scans for it and pairs through bleak (the Bumble backend on the virtual
   radio), with a profile of the person's stature.
3. The daemon's pipeline takes the roller: live analysis, warnings sent back, frames
   stored; the live view is drawn while the person rolls the upper back, drifts once
   below the rib cage (the roller must buzz) and gets off.
4. The session is closed and analysed offline, exported as CSV and as an HTML report,
   and their paths printed.

Everything lands in ``--out`` (default ``out/demo``, made afresh: an earlier demo's
output there is replaced, a directory holding anything else refused): the session store,
the roller's state, the CSVs and the report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TextIO

import numpy as np

from firmware.protocol import FrameFlag
from host.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    UsageError,
    number,
    one_line_errors,
)

DEMO_SCENARIO = Path(__file__).resolve().parents[2] / "firmware/sim/scenarios/demo.toml"
DEMO_ENTRIES = frozenset({"roller", "roller.log", "data", "csv", "report.html"})
"""What a demo writes in ``--out``: an earlier demo's output there is replaced."""
SCAN_FOR_S = 30.0
"""How long to look for the simulated roller's advertisements, s."""


COMMANDS = ("demo",)


class DemoError(RuntimeError):
    """The demo could not run to its end (one line for the user)."""


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``demo`` to the sub-parsers."""
    demo = sub.add_parser("demo", help="a simulated roller session, end to end")
    one_line_errors(demo)
    demo.add_argument("--duration", type=number(float, 1.0, "number"),
                      help="simulated seconds (default: the whole scenario)")
    demo.add_argument("--speed", type=_speed, default=1.5,
                      help="simulated seconds per real second (default 1.5; the radio "
                           "runs in real time)")
    demo.add_argument("--seed", type=number(int, 0, "whole number"), default=7)
    demo.add_argument("--scenario", type=Path, help="scenario TOML (default: the demo routine)")
    demo.add_argument("--out", type=Path, help="where everything goes (default out/demo; "
                      "an earlier demo's output there is replaced)")


def run(args: argparse.Namespace, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    """Run ``smartroller demo``; its exit status (1: the demo could not finish; 2: a
    bad ``--out``)."""
    try:
        run_demo(duration_s=args.duration, speed=args.speed, seed=args.seed,
                 scenario=args.scenario, out_dir=args.out)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=err or sys.stderr)
        return EXIT_USAGE
    except DemoError as exc:
        print(f"{PROG}: error: {exc}", file=err or sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _speed(text: str) -> float:
    value = number(float, 0.0, "number")(text)
    if not 0.05 <= value <= 20.0:
        raise argparse.ArgumentTypeError(f"must be 0.05 .. 20: {text!r}")
    return value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _roller_process(port: int, state_dir: Path, scenario: Path, seed: int, speed: float,
                    duration_s: float | None, log: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "firmware.cli", "sim", "--scenario", str(scenario),
            "--seed", str(seed), "--speed", str(speed), "--every", "3600",
            "--host-adapter", f"tcp-server:127.0.0.1:{port}", "--state-dir", str(state_dir)]
    if duration_s is not None:
        argv += ["--duration", str(duration_s)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            cwd=Path(__file__).resolve().parents[2])


def run_demo(duration_s: float | None = None, speed: float = 1.5, seed: int = 7,
             scenario: Path | None = None, out_dir: Path | None = None,
             out: TextIO | None = None) -> dict[str, Path]:
    """Run the demo; returns the paths written (store, samples.csv ..., report)."""
    out = out or sys.stdout
    from firmware.sim.scenario import load_scenario

    scenario = Path(scenario or DEMO_SCENARIO)
    sc = load_scenario(scenario)  # a bad file fails here, before anything starts
    folder = Path(out_dir or "out/demo")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out: {folder} is a file, not a directory")
    if folder.is_dir() and not {p.name for p in folder.iterdir()} <= DEMO_ENTRIES:
        # (made afresh: only ever an earlier demo's output is removed, never a user's)
        raise UsageError(f"--out: {folder} holds files that no demo wrote; give an empty "
                         "or new directory")
    try:
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "roller").mkdir(parents=True)
        if sc.roller.table_rolled:  # the roller as built (docs/first-roll.md, step 3)
            from firmware.sim.table_roll_rig import table_roll_as_built

            roll = table_roll_as_built(sc, seed, folder / "roller")
            built = (f"The roller as built, its table roll: {roll.line()}"
                     + ("" if roll.ok else " (it starts as a new roller)"))
        else:
            built = "The roller was never table-rolled: it learns its gyro's scale on the back."
    except OSError as exc:
        raise UsageError(f"--out: cannot write in {folder}: {exc.strerror or exc}") from None
    port = _free_port()
    proc = _roller_process(port, folder / "roller", scenario, seed, speed, duration_s,
                           folder / "roller.log")
    from bleak.exc import BleakError

    try:
        return asyncio.run(_host(folder, port, sc, seed, speed, proc, out, built))
    except (BleakError, OSError, TimeoutError) as exc:
        raise DemoError(f"Bluetooth: {type(exc).__name__}: {exc} (the roller's log: "
                        f"{folder / 'roller.log'})") from None
    finally:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)
        if proc.poll() is None:
            proc.kill()


async def _host(folder: Path, port: int, sc: object, seed: int, speed: float,
                proc: subprocess.Popen, out: TextIO, built: str) -> dict[str, Path]:
    from firmware.config import default_config
    from firmware.sim.world import World
    from host.ble.bumble_adapter import close_adapters
    from host.ble.discovery import BleBackend
    from host.cli.common import configure_logging
    from host.daemon.keeper import RollerKeeper, TransportLost, run_daemon
    from host.daemon.live import live_line, read_statuses, render
    from host.export.csv import export_session
    from host.export.report import write_report
    from host.store import open_store

    person = World(sc, default_config(), seed).person  # type: ignore[arg-type]
    store = open_store(folder / "data")
    keys = folder / "data" / "ble-keys.json"
    backend = BleBackend.bumble(f"tcp-client:127.0.0.1:{port}", keys)
    stature = round(person.stature_m, 2)
    store.create_profile("demo", stature, person.sex)
    store.set_active_profile("demo")
    print(f"smartroller demo: a simulated roller (its own process, on a virtual radio) and "
          f"this laptop; a {stature * 100:.0f} cm {person.sex} rolls at x{speed:g} speed.",
          file=out, flush=True)
    print(built, file=out, flush=True)
    configure_logging(False)
    try:
        address = await _find_and_pair(backend, proc, out)
        store.note_device(address, bonded=True, key_store=keys)
        stop = asyncio.Event()
        keepers: list[RollerKeeper] = []
        lines: list[str] = []

        tty = out.isatty()

        def say(line: str) -> None:
            lines.append(line)
            if not tty:
                print(f"  [{line}]", file=out, flush=True)

        daemon = asyncio.create_task(run_daemon(
            store, backend, folder / "data", addresses=[address], stop=stop, say=say,
            keepers=keepers, client_options={"scan_timeout_s": 15.0}))
        last = 0.0
        while proc.poll() is None and not daemon.done():
            await asyncio.sleep(0.1)
            now = time.monotonic()
            if now - last < (0.25 if tty else 1.0):
                continue
            last = now
            for status in read_statuses(folder / "data"):
                if status.session_id is None:
                    continue
                if tty:  # the view redrawn in place, the news under it
                    view = render(status) + [""] + [f"  {x}" for x in lines[-6:]]
                    print("\x1b[H\x1b[J" + "\n".join(view), file=out, flush=True)
                else:
                    print(live_line(status), file=out, flush=True)
        if daemon.done() and daemon.exception() is not None:
            # The roller's process serves the virtual radio: when its routine is over it
            # exits and the daemon loses its transport, which ends the demo as well.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            if proc.poll() is None:  # the roller is still up: the daemon failed by itself
                raise DemoError(f"the daemon stopped: {daemon.exception()}")
        for keeper in keepers:
            await keeper.close_session("the demo is over")
        stop.set()
        await asyncio.wait({daemon})
        # The roller's process gone and the transport lost with it is the demo's normal
        # end, which the daemon may notice only while the sessions above are closed.
        lost = isinstance(daemon.exception(), TransportLost) and proc.poll() is not None
        if daemon.exception() is not None and not lost:
            raise daemon.exception()
    finally:
        await close_adapters()
    sessions = store.sessions()
    if not sessions:
        raise DemoError("no session was recorded (see " + str(folder / "roller.log") + ")")
    session = store.session(sessions[-1].id)
    data = store.load(session.id)
    paths = export_session(data, folder / "csv")
    report = write_report(data, folder / "report.html", "demo")
    summary = store.summary(session.id)
    beyond = data.frames.flags & int(FrameFlag.BEYOND_FENCE) != 0
    onsets = int(np.sum(beyond[1:] & ~beyond[:-1])) + int(bool(len(beyond) and beyond[0]))
    print(f"\nSession {session.id}: {session.frame_count} frames, {summary.stroke_count} "
          f"strokes, {summary.warning_count} lumbar warning(s) from the analysis; the roller "
          f"buzzed by itself below the rib cage {onsets} time(s).", file=out)
    written = {"store": folder / "data" / "smartroller.db",
               **{p.stem: p for p in paths}, "report": report}
    for name, path in written.items():
        print(f"  {name:12s} {path}", file=out)
    store.close()
    return written


async def _find_and_pair(backend: object, proc: subprocess.Popen, out: TextIO) -> str:
    from bleak.exc import BleakError

    from host.ble.client import RollerClient

    client = RollerClient(backend)  # type: ignore[arg-type]
    end = time.monotonic() + SCAN_FOR_S
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise DemoError("the simulated roller stopped before it could be paired")
        try:
            found = await client.scan(2.0)
        except (OSError, BleakError):  # the roller's radio is not listening yet
            await asyncio.sleep(0.5)
            continue
        if found:
            roller = found[0]
            print(f"Found {roller.name} at {roller.address}; the person holds its button: "
                  "pairing window open. Pairing ...", file=out, flush=True)
            status = await client.pair(roller.address, 20.0)
            print(f"Paired (firmware {status.firmware_version}).", file=out, flush=True)
            return roller.address
    raise DemoError(f"the simulated roller was not found within {SCAN_FOR_S:g} s")
