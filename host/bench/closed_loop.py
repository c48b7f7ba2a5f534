"""The host in the loop with a simulated roller, over a modeled Bluetooth link.

For the benchmark: the firmware runs on emulated hardware in virtual time, and a
``SessionAnalyzer`` runs as the daemon would, on the frames the roller emits, with its
cues and fence sent back to the roller. The link is modeled on what the virtual-radio
benchmark measured (docs/benchmarks.md, "Bluetooth link"): notifications and writes move
only at connection events, every ``interval_s`` (30 ms) with a random phase; the frames
of one FIFO drain reach the host at the next event, as the wire carries them
(``firmware.protocol.quantise``), and a command the host sends after
analysing them reaches the roller at the event after that. Commands take effect on the
roller as its control point would carry them out (``firmware.ble.control``).

What the bench reads back (``LoopResult``): every frame, the analysis's outputs, when
the host's analysis took how long (host CPU), the commands with their times, and every
pattern the motor played with who asked (roller fence or host). ``run_session`` sets one
session up (the roller, the user model, the link's seed) for the suite
(``host.bench.suite``) and the threshold sweep (``host.bench.thresholds``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware.app import RawSink
from firmware.protocol import Frame, quantise
from firmware.sim.rig import SimRoller
from firmware.sim.scenario import Scenario
from host.analysis.frames import FrameColumns
from host.analysis.model import Estimates
from host.analysis.profile import UserModel
from host.analysis.session import SessionAnalyzer, Update
from host.analysis.strokes import StrokeSegmenter
from host.analysis.warnings import Cue

CONNECTION_INTERVAL_S = 0.030
"""Connection interval of the modeled link, s."""


@dataclass
class HapticLog:
    """Patterns the roller's motor started and stopped: (world time s, pattern name,
    who: "roller" for the firmware's own fence, "host" for a host command)."""

    played: list[tuple[float, str, str]] = field(default_factory=list)
    stopped: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class LoopResult:
    """A closed-loop session: frames, the analysis, host cost, commands, the motor."""

    frames: FrameColumns
    update: Update
    host_cpu_s: float
    commands: list[tuple[float, str, tuple]]
    """(world time applied s, "buzz" or "fence", args): buzz (cue, world time of the
    frame that called for it); fence (position, hysteresis, approach, m)."""
    haptics: HapticLog
    emitted_world_s: np.ndarray
    """World time at which each frame was emitted by the firmware (its drain), s."""


def run_closed_loop(roller: SimRoller, analyzer: SessionAnalyzer, *,
                    until: float | None = None, interval_s: float = CONNECTION_INTERVAL_S,
                    seed: int = 0) -> LoopResult:
    """Run ``roller`` to ``until`` (default: its session's end) with ``analyzer`` as the
    host over the modeled link."""
    rng = np.random.default_rng([seed, 0xB1E])
    phase = float(rng.uniform(0.0, interval_s))
    end = roller.duration_s if until is None else min(until, roller.duration_s)
    fw = roller.firmware
    clock = roller.clock
    haptics = HapticLog()
    who = {"now": "roller"}
    play, stop = fw.haptic.play, fw.haptic.stop

    def logged_play(pattern, now, *, restart=False):  # noqa: ANN001, ANN202
        before = fw.haptic.playing
        played = play(pattern, now, restart=restart)
        if played and fw.haptic.playing != before:
            haptics.played.append((now, str(fw.haptic.playing), who["now"]))
        return played

    def logged_stop(now, name=None):  # noqa: ANN001, ANN202
        before = fw.haptic.playing
        stop(now, name)
        if before is not None and fw.haptic.playing is None:
            haptics.stopped.append((now, before))

    fw.haptic.play, fw.haptic.stop = logged_play, logged_stop  # type: ignore[method-assign]
    pending: list[Frame] = []
    emitted: list[float] = []
    roller.add_sink(pending.append)
    deliveries: list[tuple[float, list[Frame]]] = []  # (arrival s, frames)
    commands: list[tuple[float, str, tuple]] = []  # (apply at s, kind, args)
    applied: list[tuple[float, str, tuple]] = []
    updates: list[Update] = []
    cpu = 0.0

    def next_event(after: float) -> float:
        k = math.floor((after - phase) / interval_s) + 1
        return phase + k * interval_s

    while clock.now() < end:
        horizon = min([end] + [d[0] for d in deliveries[:1]] + [c[0] for c in commands[:1]])
        due = roller.advance(horizon)
        if pending:
            now = clock.now()
            emitted.extend([now] * len(pending))
            zones = fw.config.zones.count
            deliveries.append((next_event(now), [quantise(f, zones) for f in pending]))
            pending.clear()
        clock.sleep_until(min(due, horizon))
        now = clock.now()
        while deliveries and deliveries[0][0] <= now + 1e-12:
            arrival, frames = deliveries.pop(0)
            t0 = time.process_time()
            update = analyzer.feed(frames)
            cpu += time.process_time() - t0
            updates.append(update)
            send_at = next_event(arrival + 1e-9)
            for t_cue, cue in update.cues:
                commands.append((send_at, "buzz", (cue, float(roller.sensor_to_world(
                    np.array([t_cue]))[0]))))
            if update.fence is not None:
                commands.append((send_at, "fence", update.fence))
        while commands and commands[0][0] <= now + 1e-12:
            at, kind, args = commands.pop(0)
            _apply(roller, kind, args, now, who)
            applied.append((at, kind, args))
    t0 = time.process_time()
    tail = analyzer.finish()
    cpu += time.process_time() - t0
    updates.append(tail)
    fw.haptic.play, fw.haptic.stop = play, stop  # type: ignore[method-assign]
    frames_cols = FrameColumns.concat([u.frames for u in updates if u.frames is not None])
    merged = Update(frames=frames_cols,
                    estimates=Estimates.concat([u.estimates for u in updates]))
    for u in updates:
        merged.extend(u)
    return LoopResult(frames_cols, merged, cpu, applied, haptics, np.array(emitted))


@dataclass
class SessionRun:
    """One simulated session run in the loop (``run_session``)."""

    roller: SimRoller
    """Closed: its world's truth, its firmware's counters."""
    user: UserModel
    """What the live analysis knew of the user."""
    duration_s: float
    """Simulated time run, s."""
    loop: LoopResult
    analyzer: SessionAnalyzer
    """The live analysis, after the session (its calibration, its model)."""


def new_user(roller: SimRoller) -> UserModel:
    """A brand-new user of ``roller``'s person: stature (to the cm) and sex, no
    calibration."""
    person = roller.world.person
    return UserModel(stature_m=round(person.stature_m, 2), sex=person.sex)


def run_session(scenario: Scenario, seed: int, duration_s: float | None = None, *,
                session: int = 0, user: UserModel | None = None,
                sink: Callable[[Frame], None] | None = None,
                raw: RawSink | None = None, state_dir: Path | None = None) -> SessionRun:
    """Simulate session ``session`` (0: the person's first) of ``scenario``'s person
    ``seed`` up to ``duration_s`` (None: the session's end), s, with the host's live
    analysis of ``user`` (None: ``new_user``) in the loop; ``sink`` sees every frame
    the firmware makes, ``raw`` every raw sample it senses (an IMU batch or a zone
    scan, with its sensor time); ``state_dir``: the roller's state directory (what it
    learned of its parts in earlier sessions; None: a new roller that keeps nothing)."""
    roller = SimRoller(scenario, seed, session=session, state_dir=state_dir)
    if user is None:
        user = new_user(roller)
    end = roller.duration_s if duration_s is None else min(duration_s, roller.duration_s)
    if sink is not None:
        roller.add_sink(sink)
    if raw is not None:
        roller.firmware.raw_sinks.append(roller.meter.outside(raw))
    analyzer = SessionAnalyzer(user, segmenter=StrokeSegmenter())
    loop = run_closed_loop(roller, analyzer, until=end, seed=seed * 7 + session)
    roller.close()
    return SessionRun(roller, user, end, loop, analyzer)


def _apply(roller: SimRoller, kind: str, args: tuple, now: float, who: dict) -> None:
    """Carry out a host command on the roller as its control point does."""
    fw = roller.firmware
    who["now"] = "host"
    try:
        if kind == "fence":
            fw.fence.set(*args)
        elif kind == "buzz":
            cue: Cue = args[0]  # args[1]: world time of the frame that called for it
            if cue is Cue.STOP:
                if not (fw.fence.beyond and fw.haptic.playing == "lumbar_warning"):
                    fw.haptic.stop(now)
            else:
                fw.haptic.play(cue.value, now)
    finally:
        who["now"] = "roller"
