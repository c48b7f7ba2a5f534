"""The firmware's CPU time, measured in situ: inside the simulator, among the emulation.

``CpuMeter`` wraps the few calls where the firmware and what stands in for its hardware
meet (into the firmware, into the emulated parts, to the simulator's observers) and keeps
the firmware's time apart, s, per named part, the meter's own cost taken out
(``_meter_costs``). ``meter_parts`` wraps a ``Firmware``'s parts for a breakdown. Used by
``firmware.sim.rig.SimRoller`` as it runs, and by ``firmware.sim.tape.Replay`` for the
replay's breakdown.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

from firmware.app import Firmware

T = TypeVar("T")
_EMULATED = ""  # the emulated parts' bucket; None: outside (counted nowhere)


class CpuMeter:
    """CPU time of the firmware inside the simulator, s, emulation excluded.

    The line between the firmware and what stands in for its hardware is crossed at a
    few places, each wrapped here: ``emulated`` for the emulated kernel's ioctl and the
    emulated devices behind it (and the world's physics behind them) and for a mock
    pin's internals (what lgpio's C calls do on a Pi); ``outside`` for the simulator's
    own observers of the frames (the bench's recorder, the demo's printer); ``firmware``
    for the calls into the firmware (``Firmware.step``, its start, and the button's edge
    events, which run gpiozero's handlers and the panel's). The meter keeps a bucket per
    side (and per named part of the firmware, for a breakdown).

    Two clocks: ``clock`` (``time.perf_counter``, ~70 ns a read here) is read at every
    switch between buckets; ``cpu_clock`` (``time.thread_time``: CPU time of this
    thread, ~1 us a read, a system call) only when the simulator enters and leaves the
    firmware. If another process got the CPU in between (the thread's CPU time is then
    shorter than the wall time), every bucket of that visit is scaled by CPU / wall:
    the preemption fell in a bucket with a chance proportional to its length, so the
    scaled figure is right on average, and other processes do not inflate it.

    Reading the clock is not free, and part of each switch's cost lands in the
    firmware's bucket although a Pi has no meter: ``costs`` = (per crossing out of a
    firmware part and back, per entry into a firmware part and out), s, calibrated
    once per process and clock as the smallest of several estimates (so that what is
    left of the meter's cost errs on the firmware's side). ``firmware_s`` and ``parts``
    subtract them.
    """

    def __init__(self, clock: Callable[[], float] = time.perf_counter,
                 costs: tuple[float, float] | None = None,
                 cpu_clock: Callable[[], float] | None = time.thread_time) -> None:
        self.clock = clock
        self.cpu_clock = cpu_clock
        self.costs = _meter_costs(clock) if costs is None else costs
        self.seconds: dict[str, float] = {_EMULATED: 0.0}
        """Time per bucket (firmware parts by name; "" the emulated parts), s, meter
        costs included."""
        self.crossings: dict[str, int] = {}
        """Per firmware part: switches out of it into anything else (and back)."""
        self.entries: dict[str, int] = {}
        """Per firmware part: switches into it from anything else (and back out)."""
        self.preempted = 0
        """Visits to the firmware during which another thread or process ran."""
        self._visit: dict[str, float] = {_EMULATED: 0.0}  # wall time per bucket, this visit
        self._state: str | None = None
        self._since = 0.0

    @property
    def emulated_s(self) -> float:
        """Time spent in the emulated parts, s."""
        return self.seconds[_EMULATED]

    @property
    def firmware_s(self) -> float:
        """CPU time of the firmware, s: its buckets less the meter's own costs."""
        return sum(self.parts().values())

    def parts(self) -> dict[str, float]:
        """CPU time of each named part of the firmware, s, meter costs removed."""
        crossing_s, entry_s = self.costs
        return {part: max(0.0, raw - self.crossings.get(part, 0) * crossing_s
                          - self.entries.get(part, 0) * entry_s)
                for part, raw in self.seconds.items() if part != _EMULATED}

    def emulated(self, fn: Callable[..., T]) -> Callable[..., T]:
        """``fn`` (a device's or a mock pin's method) kept out of the firmware's time."""
        return self._region(_EMULATED, fn)

    def outside(self, fn: Callable[..., T]) -> Callable[..., T]:
        """``fn`` (an observer of the simulation) counted nowhere."""
        return self._region(None, fn)

    def firmware(self, fn: Callable[..., T], part: str = "firmware") -> Callable[..., T]:
        """``fn`` (a call into the firmware) counted as the firmware's time, in ``part``."""
        if not part:
            raise ValueError("a firmware part needs a name")
        self.seconds.setdefault(part, 0.0)
        self._visit.setdefault(part, 0.0)
        return self._region(part, fn)

    def _settle(self, wall: float, cpu: float | None) -> None:
        """End of a visit of ``wall`` s (``cpu`` s of this thread's CPU time, if known)."""
        scale = 1.0
        if cpu is not None and 0.0 <= cpu < wall * (1.0 - 1e-3):
            scale = cpu / wall
            self.preempted += 1
        seconds, visit = self.seconds, self._visit
        for bucket, spent in visit.items():
            if spent:
                seconds[bucket] += spent * scale
                visit[bucket] = 0.0

    def _region(self, state: str | None, fn: Callable[..., T]) -> Callable[..., T]:
        visit, crossings, entries, clock, cpu_clock = self._visit, self.crossings, \
            self.entries, self.clock, self.cpu_clock

        def metered(*args: object, **kwargs: object) -> T:
            previous = self._state
            if previous == state:
                return fn(*args, **kwargs)
            cpu0 = cpu_clock() if previous is None and cpu_clock is not None else None
            now = start = clock()
            if previous is not None:
                visit[previous] += now - self._since
                if previous:
                    crossings[previous] = crossings.get(previous, 0) + 1
            if state:
                entries[state] = entries.get(state, 0) + 1
            self._state, self._since = state, now
            try:
                return fn(*args, **kwargs)
            finally:
                now = clock()
                if state is not None:
                    visit[state] += now - self._since
                self._state, self._since = previous, now
                if previous is None:
                    self._settle(now - start, None if cpu0 is None else cpu_clock() - cpu0)
        metered.__wrapped__ = fn  # type: ignore[attr-defined]
        return metered


_COSTS: dict[Callable[[], float], tuple[float, float]] = {}


def _meter_costs(clock: Callable[[], float], calls: int = 2000, rounds: int = 7
                 ) -> tuple[float, float]:
    """What one crossing and one entry add to the firmware's bucket, s (see CpuMeter)."""
    if clock in _COSTS:
        return _COSTS[clock]
    meter = CpuMeter(clock, costs=(0.0, 0.0), cpu_clock=None)

    def noop(*args: object) -> None:
        return None

    device = meter.emulated(noop)

    def crossing() -> None:
        for _ in range(calls):
            device(b"")

    def direct() -> None:
        for _ in range(calls):
            noop(b"")

    crossings, directs, entry = meter.firmware(crossing), meter.firmware(direct), \
        meter.firmware(noop)
    best = [math.inf] * 3  # the quickest of each, so a preempted or slow round drops out
    for _ in range(rounds):
        f0 = meter.seconds["firmware"]
        crossings()
        f1 = meter.seconds["firmware"]
        directs()
        f2 = meter.seconds["firmware"]
        for _ in range(calls):
            entry()
        f3 = meter.seconds["firmware"]
        best = [min(b, x) for b, x in zip(best, (f1 - f0, f2 - f1, f3 - f2), strict=True)]
    _COSTS[clock] = (max((best[0] - best[1]) / calls, 0.0), max(best[2] / calls, 0.0))
    return _COSTS[clock]


def meter_parts(fw: Firmware, meter: CpuMeter) -> None:
    """Meter ``fw``'s parts apart (each wrapped call is a part of its own)."""
    parts = {"adc scanner": (fw.scanner, ("service",)),
             "imu drain": (fw.imu, ("drain",)),
             "odometry + frames": (fw.pipeline, ("on_imu", "hold")),
             "zone loads": (fw.pipeline, ("on_scan",)),
             "fence": (fw.fence, ("check",)),
             "haptic": (fw.haptic, ("tick", "play", "stop")),
             "panel": (fw.panel, ("tick", "set_state"))}
    for part, (obj, names) in parts.items():
        for name in names:
            setattr(obj, name, meter.firmware(getattr(obj, name), part))
