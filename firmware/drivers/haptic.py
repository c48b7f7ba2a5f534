"""The vibration motor: an ERM on a PWM pin through a transistor driver.

Patterns are data: a ``Pattern`` is a sequence of ``(level 0..1, duration s)`` steps,
played once, a fixed number of times or until stopped. ``Schedule`` runs one pattern on
the loop clock; the panel's LED uses it too. Nothing here sleeps or starts a thread: the
firmware loop calls ``Haptic.tick(now)`` and gets back the time (s) it wants the next tick,
so a pattern never holds up sampling, and the same code runs on real and virtual time.

ERM kick: an eccentric-rotating-mass motor needs more than its running voltage to start
(static friction and the inertia of the mass); at rated voltage a small ERM takes
~100-200 ms to reach full amplitude, and a low duty may not start it at all. Drivers
therefore *overdrive* it briefly at start (TI DRV2605 datasheet, "ERM" section; Precision
Microdrives, "overdrive step response"). ``Haptic`` starts every pulse from rest (previous
output 0) with ``kick_s`` (default 20 ms) at full duty, taken out of the step's own
duration so a pattern's timing is unchanged. Pure 0 V off-steps are the brake: no reverse
drive is possible through a single low-side transistor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gpiozero import PWMOutputDevice

_EPS = 1e-6  # s: a tick this close to a step boundary counts as at the boundary


@dataclass(frozen=True)
class Pattern:
    """A named sequence of output levels.

    name: the pattern's name (what ``Haptic.playing`` reports).
    steps: ``(level, duration_s)`` pairs; level 0..1 (PWM duty), duration > 0 s
        (``math.inf`` holds the level until the pattern is replaced).
    repeat: how many times the steps run; ``None`` repeats until stopped.
    priority: a playing pattern is not interrupted by one of lower priority.
    """

    name: str
    steps: tuple[tuple[float, float], ...]
    repeat: int | None = 1
    priority: int = 0

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"pattern {self.name}: no steps")
        for level, duration in self.steps:
            if not 0.0 <= level <= 1.0:
                raise ValueError(f"pattern {self.name}: level {level} not in 0..1")
            if not duration > 0.0:
                raise ValueError(f"pattern {self.name}: duration {duration} s not > 0")
        if self.repeat is not None and self.repeat < 1:
            raise ValueError(f"pattern {self.name}: repeat must be >= 1 or None")

    @property
    def period_s(self) -> float:
        """Duration of one run of the steps, s."""
        return sum(duration for _, duration in self.steps)


class Schedule:
    """One pattern running from a start time on the loop clock (s).

    ``advance(now)`` moves to the step that covers ``now``; ``index`` (None once the
    pattern has finished), ``level``, ``step_start`` and ``step_end`` (s) describe it.
    Step boundaries are accumulated, so a loop that sleeps until ``step_end`` lands
    exactly on the next step, and a late loop skips the steps it missed.
    """

    def __init__(self, pattern: Pattern, start: float) -> None:
        self.pattern = pattern
        self.index: int | None = 0
        self.run = 0
        self.step_start = float(start)
        self.step_end = self.step_start + pattern.steps[0][1]
        self.previous_level = 0.0

    @property
    def finished(self) -> bool:
        """True once every repeat has run."""
        return self.index is None

    @property
    def level(self) -> float:
        """Level of the current step (0 once finished)."""
        return 0.0 if self.index is None else self.pattern.steps[self.index][0]

    def advance(self, now: float) -> None:
        """Move to the step covering ``now`` (s); ``now`` earlier than the step is a no-op."""
        steps = self.pattern.steps
        while self.index is not None and now + _EPS >= self.step_end:
            self.previous_level = steps[self.index][0]
            self.index += 1
            if self.index == len(steps):
                self.index = 0
                self.run += 1
                if self.pattern.repeat is not None and self.run >= self.pattern.repeat:
                    self.index = None
                    self.step_start = self.step_end
                    self.step_end = math.inf
                    break
            self.step_start = self.step_end
            self.step_end = self.step_start + steps[self.index][1]


# Priorities: the lumbar warning is a safety signal and beats everything; the approach cue
# is also part of the fence; user-interface cues come last.
PRIORITY_WARNING = 3
PRIORITY_FENCE = 2
PRIORITY_UI = 1

LUMBAR_WARNING = Pattern(
    "lumbar_warning", ((1.0, 0.25), (0.0, 0.15)), repeat=None, priority=PRIORITY_WARNING)
"""Strong pulsing, 2.5 Hz (250 ms on at full duty, 150 ms off), until stopped."""

APPROACH = Pattern("approach", ((0.4, 0.12),), priority=PRIORITY_FENCE)
"""Gentle short cue near the fence: one 120 ms pulse at 40 %."""

PAIRED = Pattern(
    "paired", ((0.7, 0.08), (0.0, 0.08), (0.9, 0.2)), priority=PRIORITY_UI)
"""Short-long: a host has paired/connected."""

ACK = Pattern("ack", ((0.8, 0.06),), priority=PRIORITY_UI)
"""One crisp 60 ms tap: a command or button press was taken."""

FAULT = Pattern("fault", ((0.9, 0.3), (0.0, 0.2)), repeat=3, priority=PRIORITY_UI)
"""Three long pulses (300 ms on, 200 ms off): something is wrong (see the LED)."""

CALIBRATE_UP = Pattern(
    "calibrate_up", ((0.35, 0.12), (0.0, 0.1), (0.6, 0.12), (0.0, 0.1), (0.9, 0.12)),
    priority=PRIORITY_UI)
"""Three pulses growing stronger (120 ms each, 100 ms apart, 35/60/90 %): calibration,
roll UP to the top of the shoulders, hold still and press."""

CALIBRATE_DOWN = Pattern(
    "calibrate_down", ((0.9, 0.12), (0.0, 0.1), (0.6, 0.12), (0.0, 0.1), (0.35, 0.12)),
    priority=PRIORITY_UI)
"""Three pulses fading (90/60/35 %): calibration, roll DOWN to the bottom of the ribs,
hold still and press."""

LANDMARK = Pattern("landmark", ((0.8, 0.06), (0.0, 0.08), (0.8, 0.06)), priority=PRIORITY_UI)
"""Two crisp taps: the host took the calibration landmark just pressed."""

LANDMARK_REFUSED = Pattern("landmark_refused", ((0.5, 0.6),), priority=PRIORITY_UI)
"""One long low buzz (600 ms at 50 %): the press was not taken as a landmark (the live
view says why); the step's pattern follows again."""

PATTERNS: dict[str, Pattern] = {
    p.name: p for p in (LUMBAR_WARNING, APPROACH, PAIRED, ACK, FAULT, CALIBRATE_UP,
                        CALIBRATE_DOWN, LANDMARK, LANDMARK_REFUSED)}
"""The named haptic patterns, by ``Pattern.name``."""


class Haptic:
    """The vibration motor driver.

    pin: BCM number of the PWM pin driving the motor's transistor.
    pin_factory: gpiozero pin factory (``None``: gpiozero's default; the simulator passes
        ``firmware.sim.pins.sim_pin_factory``).
    frequency_hz: PWM frequency, Hz (200 Hz: well above the motor's mechanical time
        constant, low enough for software PWM).
    kick_s: full-duty start of every pulse from rest, s (0 disables it; see module doc).
    patterns: the name -> pattern table ``play`` looks names up in.
    """

    def __init__(self, pin: int, pin_factory=None, *, frequency_hz: float = 200.0,
                 kick_s: float = 0.02, patterns: dict[str, Pattern] | None = None) -> None:
        if kick_s < 0:
            raise ValueError("kick_s must be >= 0")
        self.kick_s = float(kick_s)
        self.patterns = dict(PATTERNS if patterns is None else patterns)
        self._device = PWMOutputDevice(
            pin, initial_value=0.0, frequency=frequency_hz, pin_factory=pin_factory)
        self._schedule: Schedule | None = None
        self._duty = 0.0
        self.due = math.inf
        """When the next ``tick`` is needed, s (``math.inf``: nothing scheduled)."""

    @property
    def playing(self) -> str | None:
        """Name of the pattern being played, or None."""
        return None if self._schedule is None else self._schedule.pattern.name

    @property
    def duty(self) -> float:
        """PWM duty on the pin now, 0..1."""
        return self._duty

    def play(self, pattern: str | Pattern, now: float, *, restart: bool = False) -> bool:
        """Start ``pattern`` (a name or a ``Pattern``) at ``now`` (s).

        Returns False (and changes nothing) when a higher-priority pattern is playing.
        The pattern already playing is not restarted unless ``restart`` is set, so calling
        ``play`` on every frame keeps a repeating pattern running smoothly. The output is
        updated at once; ``due`` says when to tick next.
        """
        if isinstance(pattern, str):
            pattern = self._lookup(pattern)
        current = self._schedule
        if current is not None:
            if pattern.priority < current.pattern.priority:
                return False
            if current.pattern == pattern and not restart:
                return True
        self._schedule = Schedule(pattern, now)
        self._schedule.previous_level = self._duty  # a spinning motor needs no kick
        self.tick(now)
        return True

    def stop(self, now: float, name: str | None = None) -> None:
        """Stop the motor at ``now`` (s); with ``name``, only if that pattern is playing."""
        playing = self.playing
        if name is not None and (playing is None or playing.lower() != name.lower()):
            return
        self._schedule = None
        self.tick(now)

    def tick(self, now: float) -> float:
        """Set the PWM duty for time ``now`` (s); return when to tick next, s."""
        schedule = self._schedule
        if schedule is not None:
            schedule.advance(now)
            if schedule.finished:
                self._schedule = schedule = None
        if schedule is None:
            self._set_duty(0.0)
            self.due = math.inf
            return self.due
        level = schedule.level
        kick_end = -math.inf
        if level > 0.0 and schedule.previous_level == 0.0 and self.kick_s > 0.0:
            kick_end = min(schedule.step_start + self.kick_s, schedule.step_end)
        if now + _EPS < kick_end:
            self._set_duty(1.0)
            self.due = kick_end
        else:
            self._set_duty(level)
            self.due = schedule.step_end
        return self.due

    def _lookup(self, name: str) -> Pattern:
        pattern = self.patterns.get(name) or self.patterns.get(name.lower())
        if pattern is None:
            raise ValueError(f"unknown haptic pattern {name!r}; known: {sorted(self.patterns)}")
        return pattern

    def _set_duty(self, duty: float) -> None:
        if duty != self._duty:
            self._device.value = duty
            self._duty = duty

    def close(self) -> None:
        """Stop the motor and release the pin."""
        if self._device.closed:
            return
        self._schedule = None
        self._set_duty(0.0)
        self._device.close()

    def __enter__(self) -> Haptic:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
