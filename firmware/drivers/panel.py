"""The user panel: one push button and one status LED.

The button shorts its pin to ground (internal pull-up): pressed reads low. Nothing polls
it: its edges come as gpiozero events (``when_pressed``/``when_released``, which on a Pi
run in gpiozero's own thread) and only queue ``(time, pressed)`` for the loop thread, in
a ``collections.deque`` (appends and pops are atomic). Edge times are the pin factory's
``ticks()``, which must run on the loop clock (gpiozero's Pi factories tick
``time.monotonic``, the simulator's virtual time). ``tick(now)`` then debounces the
queued edges in their own time order: a level counts once it has stood unchanged for
``debounce_s``. A press released before ``hold_s`` is a ``SHORT_PRESS`` (reported on
release); a press held for ``hold_s`` is a ``HOLD`` (reported once, while still held, and
its release reports nothing). The hold needs only a timer: ``due`` is the next
debounce or hold deadline or LED step (``math.inf`` when there is none), ``pending`` says
edges are waiting. A level that changed without an edge (an event the kernel dropped) is
caught by one pin read when a debounce completes and by one read every
``LEVEL_CHECK_S``.

The LED shows the roller's state as a pattern of brightness steps (``LED_PATTERNS``),
run by the same ``Schedule`` as the motor's patterns. Nothing here sleeps or relies on
gpiozero's own timing threads (``Button.when_held``, ``LED.blink``): those use wall time.
"""

from __future__ import annotations

import math
from collections import deque
from enum import Enum

from gpiozero import PWMLED, Button

from firmware.drivers.haptic import Pattern, Schedule

_EPS = 1e-6  # s: timing tolerance of the deadlines (virtual times are exact floats)
LEVEL_CHECK_S = 1.0
"""How often the button's level is read to catch an edge event that never came, s."""


class PanelEvent(Enum):
    """What the person did with the button."""

    SHORT_PRESS = "short_press"
    HOLD = "hold"


class LedState(Enum):
    """What the status LED shows."""

    BOOTING = "booting"
    IDLE = "idle"
    SESSION = "session"
    PAIRING = "pairing"
    CONNECTED = "connected"
    FAULT = "fault"
    OFF = "off"


def _breathe(period_s: float = 3.0, steps: int = 20, gamma: float = 2.2
             ) -> tuple[tuple[float, float], ...]:
    """A raised-cosine brightness ramp up and down in ``steps`` steps over ``period_s`` s.

    Levels are gamma-corrected (perceived brightness ~ duty ** (1 / gamma)).
    """
    out = []
    for k in range(steps):
        phase = (k + 0.5) / steps
        level = (0.5 - 0.5 * math.cos(2.0 * math.pi * phase)) ** gamma
        out.append((round(level, 4), period_s / steps))
    return tuple(out)


LED_PATTERNS: dict[LedState, Pattern] = {
    # Medium blink, 2 Hz: starting up.
    LedState.BOOTING: Pattern("booting", ((1.0, 0.25), (0.0, 0.25)), repeat=None),
    # Slow breathe, 3 s: on, waiting for a session.
    LedState.IDLE: Pattern("idle", _breathe(), repeat=None),
    # Steady on: a session is running.
    LedState.SESSION: Pattern("session", ((1.0, math.inf),)),
    # Fast blink, 5 Hz: the pairing window is open.
    LedState.PAIRING: Pattern("pairing", ((1.0, 0.1), (0.0, 0.1)), repeat=None),
    # On with a short wink every 2 s: a host is connected, no session.
    LedState.CONNECTED: Pattern("connected", ((1.0, 1.9), (0.0, 0.1)), repeat=None),
    # Double blink every 1.5 s: fault.
    LedState.FAULT: Pattern(
        "fault", ((1.0, 0.15), (0.0, 0.15), (1.0, 0.15), (0.0, 1.05)), repeat=None),
    LedState.OFF: Pattern("off", ((0.0, math.inf),)),
}
"""The LED pattern of every state: ``(brightness 0..1, duration s)`` steps."""


class Panel:
    """Push button and status LED.

    button_pin, led_pin: BCM numbers.
    pin_factory: gpiozero pin factory (``None``: gpiozero's default).
    hold_s: how long a press must last to be a ``HOLD``, s.
    debounce_s: how long a new button level must be stable to count, s.
    """

    def __init__(self, button_pin: int, led_pin: int, pin_factory=None, *,
                 hold_s: float = 3.0, debounce_s: float = 0.03) -> None:
        if not 0.0 <= debounce_s < hold_s:
            raise ValueError("need 0 <= debounce_s < hold_s")
        self.hold_s = float(hold_s)
        self.debounce_s = float(debounce_s)
        self.edges: deque[tuple[float, bool]] = deque()
        """Button edges (ticks s, pressed) waiting for ``tick`` (the loop looks at it at
        every wake-up: an attribute, not a property, to cost nothing)."""
        self._button = Button(button_pin, pull_up=True, pin_factory=pin_factory)
        try:
            self._led = PWMLED(led_pin, pin_factory=pin_factory)
        except Exception:
            self._button.close()
            raise
        self._ticks = self._button.pin_factory.ticks
        self._button.when_pressed = self._on_pressed
        self._button.when_released = self._on_released
        self._raw = False              # level after the last edge (True: pressed)
        self._raw_since = self._ticks()  # when that level began, s
        self._pressed = False          # debounced level
        self._pressed_at = 0.0         # start of the debounced press, s
        self._held = False             # HOLD reported for this press
        self._next_check = -math.inf   # next read of the level, s
        self._check_level(self._raw_since)  # a button held at boot is a press
        self._state = LedState.OFF
        self._schedule: Schedule | None = None
        self._brightness = 0.0
        self.due = -math.inf
        """When the next ``tick`` is needed, s (``math.inf``: only on the next edge)."""

    def _on_pressed(self) -> None:
        """gpiozero's thread: queue a press edge."""
        self.edges.append((self._ticks(), True))

    def _on_released(self) -> None:
        """gpiozero's thread: queue a release edge."""
        self.edges.append((self._ticks(), False))

    @property
    def pressed(self) -> bool:
        """Debounced button level (True: pressed)."""
        return self._pressed

    @property
    def state(self) -> LedState:
        """The state the LED shows."""
        return self._state

    @property
    def brightness(self) -> float:
        """LED duty now, 0..1."""
        return self._brightness

    def set_state(self, state: LedState, now: float) -> None:
        """Show ``state`` from ``now`` (s); setting the current state again changes nothing."""
        if state == self._state and self._schedule is not None:
            return
        self._state = state
        self._schedule = Schedule(LED_PATTERNS[state], now)
        self.due = min(self.due, self._drive_led(now))

    def tick(self, now: float) -> list[PanelEvent]:
        """Take the button's edges and drive the LED at ``now`` (s); return the events."""
        events = self._button_events(now)
        deadlines = [self._drive_led(now), self._next_check]
        if self._raw != self._pressed:
            deadlines.append(self._raw_since + self.debounce_s)
        if self._pressed and not self._held:
            deadlines.append(self._pressed_at + self.hold_s)
        self.due = min(deadlines)
        return events

    def _button_events(self, now: float) -> list[PanelEvent]:
        events: list[PanelEvent] = []
        edges = self.edges
        while edges:
            t, level = edges.popleft()
            t = min(t, now)
            self._debounce(t, events)
            if level != self._raw:
                self._raw, self._raw_since = level, t
        if now >= self._next_check:
            self._check_level(now)
        self._debounce(now, events, check=True)
        return events

    def _check_level(self, now: float) -> None:
        """Read the level; a change no edge reported counts from ``now``."""
        self._next_check = now + LEVEL_CHECK_S
        level = bool(self._button.is_pressed)
        if level != self._raw:
            self._raw, self._raw_since = level, now

    def _debounce(self, t: float, events: list[PanelEvent], check: bool = False) -> None:
        """Bring the debounced state up to time ``t`` (s), the level unchanged since
        ``_raw_since``; ``check``: read the level before taking a change."""
        if self._raw != self._pressed and t - self._raw_since >= self.debounce_s - _EPS:
            if check:
                self._check_level(t)
                if self._raw == self._pressed or t - self._raw_since < self.debounce_s - _EPS:
                    return
            self._pressed = self._raw
            if self._pressed:
                self._pressed_at, self._held = self._raw_since, False
            elif not self._held:
                events.append(PanelEvent.SHORT_PRESS)
        if self._pressed and not self._held and t - self._pressed_at >= self.hold_s - _EPS:
            self._held = True
            events.append(PanelEvent.HOLD)

    def _drive_led(self, now: float) -> float:
        schedule = self._schedule
        if schedule is None:
            return math.inf
        schedule.advance(now)
        level = schedule.level
        if level != self._brightness:
            self._led.value = level
            self._brightness = level
        return schedule.step_end

    def close(self) -> None:
        """Turn the LED off and release both pins."""
        if not self._led.closed:
            self._led.value = 0.0
            self._led.close()
        self._button.close()

    def __enter__(self) -> Panel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
