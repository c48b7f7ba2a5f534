"""GPIO pins for the simulator: gpiozero's mock pin factory on virtual time.

``sim_pin_factory(clock)`` returns a ``MockFactory`` whose pins are ``SimPin``s: gpiozero's
``MockPWMPin`` (PWM, pull-ups, ``drive_low``/``drive_high``) that also records every state
change with the virtual time ``clock.now()`` (s) in ``SimPin.log``. gpiozero's own
``states`` (wall-time deltas) are kept as they are. The factory's ``ticks`` and the pins'
change events use virtual time too, so gpiozero's ``active_time`` and the like agree with
the simulation. The simulated person presses the button with ``press``/``release``.
"""

from __future__ import annotations

from typing import Protocol

from gpiozero.pins.mock import MockFactory, MockPWMPin
from gpiozero.pins.pi import PiPin


class _Clock(Protocol):
    def now(self) -> float: ...


class SimPinFactory(MockFactory):
    """A ``MockFactory`` of ``SimPin``s on a virtual clock (``clock.now()``, s)."""

    def __init__(self, clock: _Clock, revision: str | None = None) -> None:
        self.clock = clock
        super().__init__(revision=revision, pin_class=SimPin)

    def ticks(self) -> float:
        """Virtual time, s (gpiozero's event timestamps)."""
        return self.clock.now()

    @staticmethod
    def ticks_diff(later: float, earlier: float) -> float:
        """Difference of two ``ticks`` values, s."""
        return later - earlier


class SimPin(MockPWMPin):
    """A mock PWM-capable pin that logs ``(t_s, state)`` on virtual time in ``log``.

    Inputs (pull-ups, ``drive_low``/``drive_high``) log 0.0/1.0, outputs their duty.
    """

    def __init__(self, factory: SimPinFactory, info: object) -> None:
        self._clock = factory.clock
        self.log: list[tuple[float, float]] = []
        super().__init__(factory, info)

    def _change_state(self, value: float) -> bool:
        changed = super()._change_state(value)
        if changed:
            self.log.append((self._clock.now(), float(value)))
        return changed

    def _call_when_changed(self) -> None:
        PiPin._call_when_changed(self, self._clock.now(), self._state)

    def clear_states(self) -> None:
        """Forget the history (gpiozero's ``states`` and ``log``) but the current state."""
        super().clear_states()
        self.log = [(self._clock.now(), float(self._state))]


def sim_pin_factory(clock: _Clock) -> SimPinFactory:
    """A fresh mock pin factory whose pins log on ``clock`` (virtual time, s)."""
    return SimPinFactory(clock)


def sim_pin(factory: MockFactory, pin: int | str) -> SimPin:
    """The ``SimPin`` behind BCM number (or gpiozero name) ``pin``."""
    result = factory.pin(pin)
    if not isinstance(result, SimPin):
        raise TypeError(f"{result!r} is not a SimPin (use sim_pin_factory)")
    return result


def duty_log(factory: MockFactory, pin: int | str) -> list[tuple[float, float]]:
    """Every state of ``pin`` as ``(t_s, duty 0..1)``, virtual time, oldest first.

    The first entry is the state when the pin was created (or its log last cleared).
    """
    return list(sim_pin(factory, pin).log)


def level_at(log: list[tuple[float, float]], t: float) -> float:
    """The level a ``duty_log`` shows at time ``t`` (s); 0.0 before the first entry."""
    level = 0.0
    for t_change, value in log:
        if t_change > t:
            break
        level = value
    return level


def press(factory: MockFactory, pin: int | str) -> None:
    """Close the button on ``pin`` (it shorts the pin to ground: drive it low)."""
    sim_pin(factory, pin).drive_low()


def release(factory: MockFactory, pin: int | str) -> None:
    """Open the button on ``pin`` (the pull-up brings it back high)."""
    sim_pin(factory, pin).drive_high()
