"""Realistic sessions for the store, export, report and CLI tests, without the daemon.

``sim_frames`` runs the simulated roller (firmware on emulated hardware) for a few
simulated seconds and keeps its frames; ``plausible_analysis`` makes up spine estimates,
strokes, dwells and events of the kind the analysis produces (a linear body model, a
reversal detector: plausible, not the real analysis); ``record_session`` puts them in a
store as the daemon would: batches of 4 frames with their UTC and stream position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from firmware.protocol import Frame, FrameFlag
from host.analysis.model import Dwell, Event, EventKind, Region, SpineEstimate, Stroke
from host.store import Store
from host.stream import ClockMap, ClockSample, StreamPosition

DEVICE = "F2:83:5D:6F:F8:0C"
START_UTC = 1_780_000_000.0
"""2026-05-28T20:26:40Z: when the simulated sessions start."""


@lru_cache(maxsize=4)
def sim_frames(seconds: float = 20.0, seed: int = 3) -> tuple[Frame, ...]:
    """The simulated roller's frames over ``seconds`` of the default scenario."""
    from firmware.sim.rig import SimRoller
    from firmware.sim.scenario import default_scenario

    roller = SimRoller(default_scenario(), seed)
    frames: list[Frame] = []
    roller.add_sink(frames.append)
    try:
        roller.run(until=seconds)
    finally:
        roller.close()
    return tuple(frames)


def clock_for(boot: int, utc0: float = START_UTC) -> ClockMap:
    """A clock map putting sensor time 0 of ``boot`` at ``utc0``."""
    return ClockMap([ClockSample(boot, 0.0, utc0, 0.02)])


def estimate(frame: Frame) -> SpineEstimate:
    """A made-up body model: the zero under T8, one level per 24 mm toward the feet."""
    level = 8.0 + frame.position / 0.024
    p = 1.0 / (1.0 + math.exp(-(level - 13.0) / 0.25))
    return SpineEstimate(level, Region.at_level(level), p, 0.16 + frame.position, 0.008)


@dataclass
class Analysis:
    """What ``plausible_analysis`` makes up."""

    estimates: list[SpineEstimate]
    strokes: list[Stroke]
    dwells: list[Dwell]
    events: list[Event]


def plausible_analysis(frames: tuple[Frame, ...] | list[Frame],
                       hysteresis_m: float = 0.005) -> Analysis:
    """Estimates for every frame, strokes between reversals of the position while in
    contact, a dwell at the start, a coaching event with a comma and quotes in its
    message, and a lumbar warning over the frames whose made-up level is below T12/L1."""
    estimates = [estimate(f) for f in frames]
    contact = [f for f in frames if f.flags & FrameFlag.IN_CONTACT]
    strokes: list[Stroke] = []
    if contact:
        start, extreme, direction = contact[0], contact[0], 0
        for f in contact[1:]:
            step = f.position - extreme.position
            if direction == 0 and abs(step) > hysteresis_m:
                direction = 1 if step > 0 else -1
            if direction and step * direction > 0:
                extreme = f
            elif direction and -step * direction > hysteresis_m:
                strokes.append(_stroke(len(strokes), start, extreme, direction, contact))
                start, extreme, direction = extreme, f, -direction
    dwells = [Dwell(frames[0].t, frames[min(150, len(frames) - 1)].t, frames[0].position, 2.0)]
    events = [Event(EventKind.LONG_STROKE, strokes[0].start_t if strokes else frames[0].t,
                    None, 'stroke "too long", 140 mm', 0.14)]
    below = [f for f, e in zip(frames, estimates, strict=True) if e.p_below_ribs > 0.5]
    if below:
        events.append(Event(EventKind.LUMBAR_WARNING, below[0].t, below[-1].t,
                            "below the rib cage", 0.02))
    return Analysis(estimates, strokes, dwells, events)


def _stroke(index: int, a: Frame, b: Frame, direction: int, frames: list[Frame]) -> Stroke:
    inside = [f for f in frames if a.t <= f.t <= b.t]
    speeds = [abs(f.velocity) for f in inside] or [0.0]
    loads = [f.total_load for f in inside] or [0.0]
    regions = sorted({Region.at_level(estimate(f).level) for f in inside})
    return Stroke(index, a.t, b.t, direction, a.position, b.position, max(speeds),
                  sum(speeds) / len(speeds), sum(loads) / len(loads), max(loads),
                  tuple(r.label for r in regions))


def record_session(store: Store, frames: tuple[Frame, ...] | list[Frame] | None = None, *,
                   device: str = DEVICE, batch: int = 4, close: bool = True,
                   utc0: float = START_UTC) -> int:
    """Store ``frames`` (default: ``sim_frames()``) as a session of ``device`` as the
    daemon would, with a plausible analysis; returns the session id."""
    frames = sim_frames() if frames is None else frames
    clock = clock_for(frames[0].boot, utc0)
    store.note_device(device, name="smartroller-f80c", bonded=True, seen_utc=utc0)
    session = store.open_session(device, utc0)
    analysis = plausible_analysis(frames)
    for i in range(0, len(frames), batch):
        part = frames[i:i + batch]
        store.add_frames(session.id, part, clock=clock,
                         position=StreamPosition(part[-1].boot, part[-1].seq),
                         estimates=analysis.estimates[i:i + batch])
    store.add_strokes(session.id, analysis.strokes)
    store.add_dwells(session.id, analysis.dwells)
    for event in analysis.events:
        store.add_event(session.id, event)
    if close:
        store.close_session(session.id)
    return session.id
