"""The replay tape: the firmware's CPU time measured by running it again on what it got.

While the simulator runs the firmware, a ``Tape`` records everything the firmware got
from outside itself, in order: its clock's readings (s, virtual), its pin factory's
ticks, each ioctl's answer, each pin's state, and what the simulator asked of it (boot,
loop steps, button edges). ``Replay`` builds a second ``Firmware`` on stand-ins that
play the tape back (``_TapeClock``, ``_TapeDevice`` for ``/dev/i2c-1``,
``_TapePinFactory``) and times it alone, thread CPU time, s: no emulated device and no
physics run in between. ``TapeDiverged`` when the replayed firmware asks for something
the recorded one did not. ``TapedClock`` is the recording side of the clock (the pins
record through ``firmware.sim.pins``, the bus through ``Tape.ioctl``).
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPWMPin
from gpiozero.pins.pi import PiPin
from smbus2.smbus2 import I2C_FUNCS, I2C_M_RD, I2C_RDWR, I2C_SMBUS

from firmware.app import Firmware
from firmware.calibration import Calibration
from firmware.config import Config
from firmware.protocol import Frame
from firmware.sim.bus import EmulatedSMBus
from firmware.sim.clock import SimClock
from firmware.sim.cpu import CpuMeter, meter_parts


class TapeDiverged(Exception):
    """The replayed firmware asked for something the recorded one did not."""


class Tape:
    """Everything the firmware got from outside itself, in order, as the simulator ran it:
    what its clock, its pin factory's ``ticks``, its bus (each ioctl's answer) and its
    pins said, and what the simulator asked of it (``("start",)``, ``("step",)``, edge
    events). ``Replay`` does the same work again from it. Only the simulator's thread
    records (gpiozero's own threads may read the ticks too).
    """

    def __init__(self) -> None:
        self.items: deque[Any] = deque()
        self.recording = True
        self._thread = threading.get_ident()

    def __len__(self) -> int:
        return len(self.items)

    def record(self, item: Any) -> None:
        """Append ``item`` (a float for a clock reading, else a tuple)."""
        if self.recording and threading.get_ident() == self._thread:
            self.items.append(item)

    def ioctl(self, ioctl: Callable[..., int]) -> Callable[..., int]:
        """``ioctl`` (a device file's) with its answers recorded."""
        def recorded(request: int, arg: Any = 0) -> int:
            try:
                result = ioctl(request, arg)
            except OSError as exc:
                self.record(("ioctl", request, exc))
                raise
            self.record(("ioctl", request, _answer(request, arg)))
            return result
        return recorded

    def pop(self, kind: str) -> Any:
        """The next item, which must be of ``kind`` ("now" for a clock reading)."""
        if not self.items:
            raise TapeDiverged(f"the tape ran out where the firmware wanted {kind}")
        item = self.items.popleft()
        got = "now" if isinstance(item, float) else item[0]
        if got != kind:
            raise TapeDiverged(f"the firmware wanted {kind} where the tape has {got}")
        return item


def _answer(request: int, arg: Any) -> Any:
    """What an ioctl wrote back into ``arg`` (what the replay must write there)."""
    if request == I2C_SMBUS and arg.data:
        return ctypes.string_at(arg.data, ctypes.sizeof(arg.data.contents))
    if request == I2C_RDWR:  # (index, data) of its read message, a list if several
        msgs = arg.msgs
        reads = [(i, ctypes.string_at(msgs[i].buf, msgs[i].len)) for i in range(arg.nmsgs)
                 if msgs[i].flags & I2C_M_RD]
        return (reads[0] if len(reads) == 1 else reads) if reads else None
    if request == I2C_FUNCS:
        return arg.value
    return None


class TapedClock:
    """The firmware's clock in the simulator: the virtual clock, its readings recorded."""

    def __init__(self, clock: SimClock, tape: Tape) -> None:
        self._clock, self._tape = clock, tape

    def now(self) -> float:
        t = self._clock.now()
        self._tape.record(t)
        return t

    def sleep_until(self, t: float) -> None:
        self._tape.record(("sleep", t))
        self._clock.sleep_until(t)


class _TapeClock:
    """The replayed firmware's clock: the recorded readings, in order."""

    def __init__(self, tape: Tape) -> None:
        self._tape = tape
        self._popleft = tape.items.popleft

    def now(self) -> float:
        try:
            t = self._popleft()
        except IndexError:
            raise TapeDiverged("the tape ran out where the firmware read its clock") from None
        if t.__class__ is not float:
            raise TapeDiverged(f"the firmware read its clock where the tape has {t[0]}")
        return t

    def sleep_until(self, t: float) -> None:
        if self._tape.pop("sleep")[1] != t:
            raise TapeDiverged("the firmware slept until another time")


class _TapeDevice:
    """The replayed firmware's device file: writes back each ioctl's recorded answer."""

    def __init__(self, tape: Tape) -> None:
        self._tape = tape
        self._popleft = tape.items.popleft

    def ioctl(self, request: int, arg: Any = 0) -> int:
        try:
            kind, recorded, answer = self._popleft()
        except (IndexError, TypeError, ValueError):
            raise TapeDiverged(f"ioctl {request:#x} where the tape has none") from None
        if recorded != request or kind != "ioctl":
            raise TapeDiverged(f"ioctl {request:#x} where the tape has {kind} {recorded}")
        if answer is None:
            return 0
        if answer.__class__ is tuple:  # I2C_RDWR: (index, data) of its read message
            i, data = answer
            ctypes.memmove(arg.msgs[i].buf, data, len(data))
        elif answer.__class__ is list:  # ... of its read messages
            for i, data in answer:
                ctypes.memmove(arg.msgs[i].buf, data, len(data))
        elif isinstance(answer, OSError):
            raise OSError(answer.errno, answer.strerror)
        elif request == I2C_SMBUS and answer is not None:
            ctypes.memmove(arg.data, answer, len(answer))
        elif request == I2C_FUNCS:
            arg.value = answer
        return 0


class _TapePin(MockPWMPin):
    """A replayed pin: reads give the recorded states, writes are checked."""

    def __init__(self, factory: _TapePinFactory, info: Any) -> None:
        self._tape: Tape | None = None
        super().__init__(factory, info)
        self._name = info.name
        self._tape = factory.tape
        self._popleft = factory.tape.items.popleft

    def _get_state(self) -> Any:
        if self._tape is None:
            return super()._get_state()
        try:
            kind, name, state = self._popleft()
        except (IndexError, TypeError, ValueError):
            raise TapeDiverged(f"{self._name} read where the tape has none") from None
        if name != self._name or kind != "pin":
            raise TapeDiverged(f"{self._name} read where the tape has {kind} {name}")
        return state

    def _set_state(self, value: Any) -> None:
        if self._tape is not None:
            _, name, recorded = self._tape.pop("set")
            if (name, recorded) != (self.info.name, value):
                raise TapeDiverged(f"{self.info.name} set to {value} where the tape has "
                                   f"{name} set to {recorded}")
        super()._set_state(value)


class _TapePinFactory(MockFactory):
    def __init__(self, tape: Tape) -> None:
        self.tape = tape
        self._thread = threading.get_ident()
        self._last = 0.0
        super().__init__(pin_class=_TapePin)

    def ticks(self) -> float:
        if threading.get_ident() == self._thread:
            self._last = self.tape.pop("now")
        return self._last

    @staticmethod
    def ticks_diff(later: float, earlier: float) -> float:
        return later - earlier


class Replay:
    """The firmware's own CPU time: a second ``Firmware`` does again, from a ``Tape``,
    everything the simulated one did, with every answer it got, in one go (so nothing
    but the firmware runs in between: the emulated devices and the world's physics, which
    evict the firmware's code and data from the caches at every crossing, are not
    there). What stands for the hardware is the tape (each ioctl's answer copied back,
    each pin read and clock reading popped), costing about what a system call does.

    ``run`` replays what the tape holds and adds its thread CPU time to ``seconds``;
    ``diverged`` says why the replay stopped, if it did (the simulated firmware was
    driven from outside the simulator's loop, e.g. by Bluetooth commands).
    ``frame_sinks`` are given the replayed firmware's frames (to compare two builds of the
    firmware on one tape: tests/test_compiled.py).
    """

    def __init__(self, config: Config, tape: Tape, boot_id: int | None, first_seq: int,
                 meter: CpuMeter | None = None, calibration: Calibration | None = None,
                 frame_sinks: Sequence[Callable[[Frame], None]] = ()) -> None:
        self.config, self.tape = config, tape
        self.frame_sinks = list(frame_sinks)  # given the replayed firmware's frames
        self.calibration = calibration  # the stored calibration the live firmware started from
        self.boot_id, self.first_seq = boot_id, first_seq
        self.meter = meter  # meters the replayed firmware's parts, if given
        self.seconds = 0.0
        self.diverged: str | None = None
        self.firmware: Firmware | None = None
        self._pins: _TapePinFactory | None = None
        self._bus: EmulatedSMBus | None = None

    def _build(self) -> Firmware:
        log = logging.getLogger("smartroller.firmware.replay")
        log.propagate = False  # the simulated firmware has said it all already
        if not log.handlers:
            log.addHandler(logging.NullHandler())
        self._pins = _TapePinFactory(self.tape)
        self._bus = EmulatedSMBus(_TapeDevice(self.tape))
        fw = Firmware(self.config, self._bus, _TapeClock(self.tape), self._pins, log,
                      boot_id=self.boot_id, first_seq=self.first_seq,
                      calibration=self.calibration)
        fw.frame_sinks.extend(self.frame_sinks)
        return fw

    def run(self) -> None:
        """Replay what the tape holds."""
        tape = self.tape
        if self.diverged is not None:
            tape.items.clear()
            return
        if not tape.items:
            return
        try:
            if self.firmware is None:
                self.firmware = self._build()
                if self.meter is not None:
                    meter_parts(self.firmware, self.meter)
            fw, pins, items = self.firmware, self._pins, tape.items
            start = fw.start if self.meter is None else self.meter.firmware(fw.start, "boot")
            step = fw.step if self.meter is None else self.meter.firmware(fw.step, "loop")
            fire = _fire if self.meter is None else self.meter.firmware(_fire, "pin events")
            cpu0 = time.thread_time()
            try:
                while items:
                    event = items.popleft()
                    kind = "now" if isinstance(event, float) else event[0]
                    if kind == "step":
                        step()
                    elif kind == "edge":
                        fire(pins, *event[1:])
                    elif kind == "start":
                        start()
                    else:
                        raise TapeDiverged(f"{kind} outside the firmware's loop")
            finally:
                self.seconds += time.thread_time() - cpu0
        except TapeDiverged as exc:
            self.diverged = str(exc)
            tape.items.clear()
            tape.recording = False

    def close(self) -> None:
        """Release the replayed firmware's pins and bus."""
        self.tape.recording = False
        self.tape.items.clear()
        if self.firmware is not None:
            for pin in self._pins.pins.values():
                pin._tape = None  # closing is not on the tape
            self.firmware.close()
            self._bus.close()


def _fire(pins: MockFactory, name: str, t: float, state: Any) -> None:
    """A recorded edge event on the replayed pin ``name`` at ``t`` (s)."""
    pin = pins.pin(name)
    pin._state = state
    PiPin._call_when_changed(pin, t, state)
