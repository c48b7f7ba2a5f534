"""GPIO pins for the simulator: gpiozero's mock pin factory on virtual time.

``sim_pin_factory(clock)`` returns a ``MockFactory`` whose pins are ``SimPin``s: gpiozero's
``MockPWMPin`` (PWM, pull-ups, ``drive_low``/``drive_high``) that also records every state
change with the virtual time ``clock.now()`` (s) in ``SimPin.log``. gpiozero's own
``states`` (wall-time deltas) are kept as they are. The factory's ``ticks`` and the pins'
change events use virtual time too, so gpiozero's ``active_time`` and the like agree with
the simulation. The simulated person presses the button with ``press``/``release``.

An input can be wired to open-drain outputs (an ADS1115's ALERT/RDY) with
``wire_open_drain``: the pin then reads its ``OpenDrainLine``, low while an output pulls
it low, else its pull-up. A line has no thread of its own: it is looked at when the pin
is read, and its changes are logged at the times the outputs changed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin
from gpiozero.pins.pi import PiPin


class _Clock(Protocol):
    def now(self) -> float: ...


class _Meter(Protocol):
    def emulated(self, fn: Callable[..., Any]) -> Callable[..., Any]: ...
    def firmware(self, fn: Callable[..., Any]) -> Callable[..., Any]: ...


class _Recorder(Protocol):
    def record(self, item: object) -> None: ...


class SimPinFactory(MockFactory):
    """A ``MockFactory`` of ``SimPin``s on a virtual clock (``clock.now()``, s).

    meter: optional CPU meter (``firmware.sim.cpu.CpuMeter``): the pins' internals
    (what lgpio's C calls do on a Pi) are then kept out of the firmware's time, and
    the edge events they fire (gpiozero's handlers) are counted in it.
    recorder: optional ``firmware.sim.tape.Tape``: what the pins and ``ticks`` answer,
    and the edge events, are recorded on it (for the CPU meter's replay).
    """

    def __init__(self, clock: _Clock, revision: str | None = None,
                 meter: _Meter | None = None, recorder: _Recorder | None = None) -> None:
        self.clock = clock
        self.meter = meter
        self.recorder = recorder
        super().__init__(revision=revision, pin_class=SimPin)

    def ticks(self) -> float:
        """Virtual time, s (gpiozero's event timestamps)."""
        t = self.clock.now()
        if self.recorder is not None:
            self.recorder.record(t)
        return t

    @staticmethod
    def ticks_diff(later: float, earlier: float) -> float:
        """Difference of two ``ticks`` values, s."""
        return later - earlier


Output = Callable[[], list[tuple[float, bool]]]
"""An open-drain output: () -> its changes since the last call, [(t s, pulling low), ...]."""


class OpenDrainLine:
    """A wire from open-drain outputs to a GPIO input with a pull-up.

    outputs: the outputs on the wire (each released at first). The line is low while
    one of them pulls it low (a wired AND), else high by the pull-up. Faults for tests:
    ``cut`` (the wire breaks at the pin: the pull-up holds it high), ``short`` (to
    ground: always low), ``mend``.
    """

    def __init__(self, outputs: list[Output]) -> None:
        self.outputs = list(outputs)
        self.fault: str | None = None  # None, "cut" or "short"
        self._pulling = [False] * len(self.outputs)
        self._forced: bool | None = None  # the level a fault holds the line at
        self._faults: list[tuple[float, bool | None]] = []  # (t, forced level) to apply

    def changes(self) -> list[tuple[float, bool]]:
        """The line's levels since the last call: [(t s, high), ...] in time order."""
        events = [(t, 1, i, pulling) for i, output in enumerate(self.outputs)
                  for t, pulling in output()]
        events += [(t, 0, -1, level) for t, level in self._faults]
        self._faults.clear()
        events.sort(key=lambda e: (e[0], e[1]))
        out = []
        for t, kind, i, value in events:
            if kind == 0:
                self._forced = value
            else:
                self._pulling[i] = value
            forced = self._forced
            out.append((t, forced if forced is not None else not any(self._pulling)))
        return out

    def cut(self, now: float) -> None:
        """The wire breaks at ``now`` (s): the pin reads its pull-up from then on."""
        self.fault = "cut"
        self._faults.append((now, True))

    def short(self, now: float) -> None:
        """The wire shorts to ground at ``now`` (s): the pin reads low from then on."""
        self.fault = "short"
        self._faults.append((now, False))

    def mend(self, now: float) -> None:
        """Undo ``cut`` or ``short`` at ``now`` (s)."""
        self.fault = None
        self._faults.append((now, None))


class SimPin(MockPWMPin):
    """A mock PWM-capable pin that logs ``(t_s, state)`` on virtual time in ``log``.

    Inputs (pull-ups, ``drive_low``/``drive_high``) log 0.0/1.0, outputs their duty. An
    input with a ``line`` reads it instead (see ``wire_open_drain``).
    """

    def __init__(self, factory: SimPinFactory, info: object) -> None:
        self._clock = factory.clock
        self.log: list[tuple[float, float]] = []
        self.line: OpenDrainLine | None = None
        self._recorder: _Recorder | None = None  # set once gpiozero has set the pin up
        super().__init__(factory, info)
        self._recorder = factory.recorder
        meter = factory.meter
        if meter is not None:
            for name in ("_get_state", "_set_state", "drive_low", "drive_high"):
                setattr(self, name, meter.emulated(getattr(self, name)))
            self._call_when_changed = meter.firmware(self._call_when_changed, "pin events")

    def _change_state(self, value: float) -> bool:
        changed = super()._change_state(value)
        if changed:
            self.log.append((self._clock.now(), float(value)))
        return changed

    def _get_state(self) -> float:
        line = self.line
        if line is not None and self._function == "input":
            for t, high in line.changes():
                if high == self._state or not MockPin._change_state(self, high):
                    continue
                self.log.append((t, float(high)))
                if self._edges in ("both", "rising" if high else "falling") \
                        and self._when_changed is not None:
                    if self._recorder is not None:
                        self._recorder.record(("edge", self.info.name, t, high))
                    PiPin._call_when_changed(self, t, high)
        if self._recorder is not None:
            self._recorder.record(("pin", self.info.name, self._state))
        return self._state

    def _call_when_changed(self) -> None:
        t = self._clock.now()
        if self._recorder is not None:
            self._recorder.record(("edge", self.info.name, t, self._state))
        PiPin._call_when_changed(self, t, self._state)

    def _set_state(self, value: float) -> None:
        if self._recorder is not None:
            self._recorder.record(("set", self.info.name, value))
        super()._set_state(value)

    def clear_states(self) -> None:
        """Forget the history (gpiozero's ``states`` and ``log``) but the current state."""
        super().clear_states()
        self.log = [(self._clock.now(), float(self._state))]


def sim_pin_factory(clock: _Clock, meter: _Meter | None = None,
                    recorder: _Recorder | None = None) -> SimPinFactory:
    """A fresh mock pin factory whose pins log on ``clock`` (virtual time, s)."""
    return SimPinFactory(clock, meter=meter, recorder=recorder)


def sim_pin(factory: MockFactory, pin: int | str) -> SimPin:
    """The ``SimPin`` behind BCM number (or gpiozero name) ``pin``."""
    result = factory.pin(pin)
    if not isinstance(result, SimPin):
        raise TypeError(f"{result!r} is not a SimPin (use sim_pin_factory)")
    return result


def wire_open_drain(factory: MockFactory, pin: int | str, *outputs: Output) -> OpenDrainLine:
    """Wire open-drain ``outputs`` (e.g. ``Ads1115Sim.alert_changes``) to the input
    ``pin``; returns the line (for faults). The pin's pull-up is what holds it high."""
    line = OpenDrainLine(list(outputs))
    sim_pin(factory, pin).line = line
    return line


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
