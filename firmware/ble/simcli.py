"""``smartroller-fw sim --host-adapter tcp-server:H:P``: the simulated roller on a virtual radio.

The roller's firmware runs on the simulated hardware in real time, with its
``RollerServer`` on a Bumble device whose virtual controller sits on a ``RadioLink``
(30 ms connection interval, optional outages). A second virtual controller on the
same link is served on the ``--host-adapter`` transport: the host (this project's
``smartroller`` with its Bumble backend, or any Bumble central) attaches to it with
``tcp-client:H:P``, exactly as it would open a real adapter.

``run_sim_with_radio(roller, host_adapter, ...)`` does the work;
``add_radio_arguments(parser)`` and ``radio_kwargs(args)`` give the command-line
options. ``python -m firmware.ble.simcli --host-adapter tcp-server:127.0.0.1:9100``
runs it stand-alone.

Above the emulated parts the simulated roller is the Pi's: its journal is the same
on-disk ``Journal``, in ``<state-dir>/journal``, so frames no host acknowledged survive
the process and are sent by the next run; what it learns of its parts is kept beside it
(``<state-dir>/calibration.json``, firmware/calibration.py) and used by the next run
(``smartroller-fw sim`` with a ``--seed`` is one drawn part: another seed with the same
state directory is another part, which starts from the first one's calibration and
relearns); every start is a new boot (``fresh_boot_id``)
whose first seq follows the journal's last (``sim_journal(...).next_seq``), so no
``(boot, seq)`` is ever reused. After the routine it stays up, ``linger_s`` at most,
until a host has acknowledged its journal, as a roller left switched on would.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bumble.transport import open_transport

from firmware.ble.device import device_on_controller, roller_address
from firmware.ble.link import (
    CONNECTION_INTERVAL_S,
    SUPERVISION_TIMEOUT_S,
    HostAdapter,
    RadioController,
    RadioLink,
)
from firmware.ble.pairing import check_passkey
from firmware.ble.server import RollerServer
from firmware.files import private_dir

if TYPE_CHECKING:
    from firmware.journal import Journal
    from firmware.sim.rig import SimRoller

log = logging.getLogger("smartroller.ble.sim")


@dataclass
class RadioRunSummary:
    """What happened during a run with the virtual radio.

    frames: frames the firmware made. hosts: host connections to the roller.
    backfilled: frames resent as backfill. cuts: outages simulated.
    dropped_connections: connection ends dropped by supervision timeouts.
    """

    frames: int
    hosts: int
    backfilled: int
    cuts: int
    dropped_connections: int


LINGER_S = 120.0
"""How long ``smartroller-fw sim`` stays up after the routine for a host to acknowledge
its journal, real s (``--linger``)."""


def fresh_boot_id() -> int:
    """A new boot id (u32, never 0), as the firmware draws at every boot."""
    return secrets.randbits(32) or 1


def sim_journal(state_dir: Path | None = None) -> Journal:
    """The simulated roller's on-disk journal in ``state_dir`` (default
    ``default_state_dir()``): build the ``SimRoller`` with ``first_seq=.next_seq``."""
    from firmware.journal import Journal

    folder = Path(state_dir) if state_dir is not None else default_state_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return Journal(folder / "journal")


def unacked(journal: Journal) -> int:
    """Frames the journal holds that no host has acknowledged."""
    oldest, last = journal.oldest_seq, journal.last_seq
    return 0 if oldest is None or last is None else last - oldest + 1


def default_state_dir() -> Path:
    """Where the simulated roller keeps its address and bonds between runs."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "smartroller" / "sim-roller"


async def open_host_adapter(spec: str, link: RadioLink
                            ) -> tuple[RadioController, Callable[[], Awaitable[None]]]:
    """The host's controller on ``link``, served on transport ``spec``.

    ``tcp-server:H:P`` is served by ``HostAdapter`` (one host at a time; a host that
    goes away powers the controller off); any other Bumble transport spec is opened
    with ``bumble.transport.open_transport``. Returns the controller and an async closer.
    """
    if spec.startswith("tcp-server:"):
        host, _, port = spec[len("tcp-server:"):].rpartition(":")
        controller = RadioController("host", link=link)
        adapter = HostAdapter(controller)
        await adapter.listen(None if host in ("", "_") else host, int(port))

        async def close_adapter() -> None:
            adapter.close()
        return controller, close_adapter
    transport = await open_transport(spec)
    controller = RadioController("host", host_source=transport.source,
                                 host_sink=transport.sink, link=link)
    return controller, transport.close


async def run_sim_with_radio(
        roller: SimRoller, host_adapter: str, *, speed: float = 1.0,
        until: float | None = None, state_dir: Path | None = None,
        interval_ms: float = CONNECTION_INTERVAL_S * 1000.0,
        supervision_timeout_s: float = SUPERVISION_TIMEOUT_S,
        cuts: Sequence[tuple[float, float]] = (), passkey: int | None = None,
        pair: bool | None = None, say: Callable[[str], None] = print,
        ready: Callable[[RollerServer, RadioLink], None] | None = None,
        journal: Journal | None = None, linger_s: float = 0.0) -> RadioRunSummary:
    """Run ``roller`` in real time with its GATT server on a virtual radio.

    host_adapter: transport spec the host attaches to (``tcp-server:127.0.0.1:9100``).
    speed: simulated s per real s (> 0; the radio runs in real time).
    until: stop at this simulated time, s (default: the scenario's end).
    state_dir: the roller's address and bonds (default ``default_state_dir()``).
    interval_ms: connection interval of the virtual link, ms (0: no latency).
    supervision_timeout_s: outages longer than this drop the connection, s.
    cuts: outages ``(at_s, for_s)`` in simulated seconds ("out of range").
    passkey: static passkey (MITM-protected pairing), None: Just Works.
    pair: open the pairing window at boot (None: only if the roller has no bond yet,
        like a new roller out of the box).
    say: where progress lines go. ready: called once the server advertises.
    journal: the roller's journal (default ``sim_journal(state_dir)``); ValueError if
        ``roller`` would start at a seq the journal already has.
    linger_s: after the routine, stay up this long (real s) at most while frames
        remain unacknowledged.
    """
    speed = speed if speed > 0 else 1.0
    state_dir = Path(state_dir) if state_dir is not None else default_state_dir()
    private_dir(state_dir)  # 0700: the bonds are in it
    journal = journal if journal is not None else sim_journal(state_dir)
    if roller.first_seq < journal.next_seq:
        journal.close()
        raise ValueError(f"the journal in {state_dir} already has frames up to seq "
                         f"{journal.next_seq - 1}: build the roller with first_seq="
                         f"{journal.next_seq}")
    link = RadioLink(interval_ms / 1000.0, supervision_timeout_s)
    roller_controller = RadioController("roller", link=link)
    host_controller, close_adapter = await open_host_adapter(host_adapter, link)
    device = device_on_controller(roller_controller, roller_address(state_dir / "address"))
    server = RollerServer(device, roller.firmware, journal,
                          keystore_path=state_dir / "keys.json", passkey=passkey,
                          hardware_revision="simulated")
    hosts = [0]
    device.on(device.EVENT_CONNECTION, lambda _c: hosts.__setitem__(0, hosts[0] + 1))
    end = roller.duration_s if until is None else until
    tasks: list[asyncio.Task] = []
    try:
        await server.start()
        bonded = bool(await device.keystore.get_all()) if device.keystore else False
        say(f"{server.name} at {device.static_address.to_string(False)} on the virtual "
            f"radio; host adapter {host_adapter} (attach with "
            f"{host_adapter.replace('tcp-server', 'tcp-client')})")
        if pair or (pair is None and not bonded):
            server.open_pairing_window()
            say(f"pairing window open for {server.window.duration_s:.0f} s")
        if ready is not None:
            ready(server, link)
        for at_s, for_s in cuts:
            tasks.append(asyncio.create_task(
                _cut_later(roller, link, roller_controller, at_s, for_s, speed, say)))
        await roller.run_async(speed=speed, until=end)
        await _linger(server, journal, linger_s, state_dir, say)
    finally:
        for task in tasks:
            task.cancel()
        await server.stop()
        await close_adapter()
        roller.close()
        journal.close()
    return RadioRunSummary(roller.firmware.frames, hosts[0], server.backfilled, len(cuts),
                           link.dropped_connections)


async def _linger(server: RollerServer, journal: Journal, linger_s: float, state_dir: Path,
                  say: Callable[[str], None]) -> None:
    """Stay up until the journal is acknowledged, ``linger_s`` at most (real s)."""
    server.flush()
    left = unacked(journal)
    if left and linger_s > 0:
        say(f"routine done; {left} frame(s) not acknowledged yet: staying up "
            f"{linger_s:g} s at most for a host to sync them")
        loop = asyncio.get_running_loop()
        end = loop.time() + linger_s
        while unacked(journal) and loop.time() < end:
            await asyncio.sleep(0.2)
        left = unacked(journal)
    if left:
        say(f"{left} frame(s) not acknowledged stay in the journal in {state_dir / 'journal'}"
            ": the next run with this --state-dir sends them")
    elif journal.last_seq is not None:
        say("every frame acknowledged by a host")


async def _cut_later(roller: SimRoller, link: RadioLink, controller: RadioController,
                     at_s: float, for_s: float, speed: float, say: Callable[[str], None]
                     ) -> None:
    while roller.clock.now() < at_s:
        await asyncio.sleep(max(0.01, (at_s - roller.clock.now()) / speed / 2))
    say(f"t={roller.clock.now():.1f}s: roller out of range for {for_s:g} s")
    link.cut(for_s / speed, controller)


def add_radio_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``sim`` options of the virtual radio."""
    g = parser.add_argument_group("virtual radio (with --host-adapter)")
    g.add_argument("--host-adapter", metavar="SPEC",
                   help="run the GATT server on a virtual radio; the host attaches to this "
                        "transport (e.g. tcp-server:127.0.0.1:9100 -> tcp-client:...)")
    g.add_argument("--state-dir", type=Path, help="roller address, bonds, journal and "
                   f"calibration (default {default_state_dir()})")
    g.add_argument("--interval-ms", type=float, default=CONNECTION_INTERVAL_S * 1000.0,
                   help="connection interval of the virtual link, ms (0: none)")
    g.add_argument("--cut-at", type=float, action="append", default=[], metavar="S",
                   help="simulated second at which the roller goes out of range (repeatable)")
    g.add_argument("--cut-for", type=float, default=10.0, metavar="S",
                   help="how long each outage lasts, s")
    g.add_argument("--passkey", type=_passkey, help="static 6-digit passkey (MITM protection)")
    g.add_argument("--pair", action="store_true",
                   help="open the pairing window at boot (default: only without a bond)")
    g.add_argument("--linger", type=float, default=LINGER_S, metavar="S",
                   help="after the routine, stay up at most S s (real) until a host has "
                        f"acknowledged the journal (default {LINGER_S:g})")


def _passkey(text: str) -> int:
    try:
        return check_passkey(int(text))  # type: ignore[return-value]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a passkey 0..999999: {text!r}") from None


def radio_kwargs(args: argparse.Namespace) -> dict:
    """Keyword arguments of ``run_sim_with_radio`` from the parsed options."""
    return {"state_dir": args.state_dir, "interval_ms": args.interval_ms,
            "cuts": [(at, args.cut_for) for at in args.cut_at], "passkey": args.passkey,
            "pair": True if args.pair else None, "linger_s": max(0.0, args.linger)}


def main(argv: list[str] | None = None) -> int:  # pragma: no cover - manual runs
    """Stand-alone entry point (until ``smartroller-fw sim --host-adapter`` exists)."""
    from firmware.config import default_config
    from firmware.sim.rig import SimRoller
    from firmware.sim.scenario import default_scenario, load_scenario

    p = argparse.ArgumentParser(prog="python -m firmware.ble.simcli")
    p.add_argument("--scenario", type=Path)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--duration", type=float)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("-v", "--verbose", action="store_true")
    add_radio_arguments(p)
    args = p.parse_args(argv)
    if not args.host_adapter:
        p.error("--host-adapter is required")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    scenario = load_scenario(args.scenario) if args.scenario else default_scenario()
    journal = sim_journal(args.state_dir)
    roller = SimRoller(scenario, args.seed, default_config(), boot_id=fresh_boot_id(),
                       first_seq=journal.next_seq)
    try:
        summary = asyncio.run(run_sim_with_radio(
            roller, args.host_adapter, speed=args.speed, until=args.duration,
            journal=journal, **radio_kwargs(args)))
    except KeyboardInterrupt:
        return 130
    print(f"done: {summary}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
