"""The simulated roller: the world's physics wired to emulated parts under the firmware.

``SimRoller`` builds, from a scenario and a seed, the world (person, routine, roller
physics and ground truth), a ``SimClock``, a ``SimBus`` with an emulated MPU-6050 and
two ADS1115s on a FSR strip, and a gpiozero ``MockFactory`` for motor, button, LED and
the ADCs' ALERT/RDY lines; then runs the unchanged ``Firmware`` on them. The person's
button presses drive the mock button pin. The firmware sees only registers and pins:
the truth stays here. ``CpuMeter`` measures the firmware's CPU time apart from all this.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from gpiozero.pins.mock import MockFactory, MockPWMPin
from gpiozero.pins.pi import PiPin
from smbus2.smbus2 import I2C_FUNCS, I2C_M_RD, I2C_RDWR, I2C_SMBUS

from firmware.app import Firmware
from firmware.config import Config, default_config
from firmware.protocol import Frame
from firmware.sim.ads1115 import Ads1115Sim
from firmware.sim.bus import EmulatedSMBus, SimBus
from firmware.sim.clock import SimClock
from firmware.sim.max17048 import Max17048Sim
from firmware.sim.mpu6050 import Mpu6050Sim
from firmware.sim.pins import press, release, sim_pin_factory, wire_open_drain
from firmware.sim.scenario import Scenario, default_scenario
from firmware.sim.strip import FsrStrip
from firmware.sim.world import World

GYRO_DRIFT_DPS_PER_SQRT_S = 0.003  # body heat warming the roller: ~0.07 deg/s in 10 min


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


class _TapedClock:
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
    """

    def __init__(self, config: Config, tape: Tape, boot_id: int | None, first_seq: int,
                 meter: CpuMeter | None = None) -> None:
        self.config, self.tape = config, tape
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
        return Firmware(self.config, self._bus, _TapeClock(self.tape), self._pins, log,
                        boot_id=self.boot_id, first_seq=self.first_seq)

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


@dataclass
class SimRoller:
    """A whole simulated roller running the real firmware.

    scenario: what the person does; seed: draws everything random; config: the
    hardware profile the firmware is given (the simulated parts deviate from it as
    real parts do); speed: virtual seconds per real second (0: as fast as possible).
    profile: meter the firmware's parts apart (``meter.parts()``, and the replay's
        ``cpu.meter.parts()``; see ``profile``).
    replay: measure the firmware's CPU time by ``Replay`` too (``firmware_seconds``);
        only as fast as possible (``speed`` 0, not ``run_async``): a replay takes the
        thread for a few tens of milliseconds every few simulated seconds.
    """

    scenario: Scenario = field(default_factory=default_scenario)
    seed: int = 0
    config: Config = field(default_factory=default_config)
    speed: float = 0.0
    logger: logging.Logger | None = None
    boot_id: int | None = None
    first_seq: int = 0
    session: int = 0
    profile: bool = False
    replay: bool = True

    REPLAY_ITEMS = 20_000
    """Replay the tape whenever it holds this many items (a few simulated seconds)."""

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.seed, 0x5E50, self.session] if self.session
                                    else [self.seed, 0x5E50])
        if self.boot_id is None:
            self.boot_id = int(rng.integers(1, 2**32))
        self.world = World(self.scenario, self.config, self.seed, self.session)
        self.clock = SimClock(speed=self.speed)
        self.bus = SimBus(self.config.imu.bus, clock=self.clock)
        self.meter = CpuMeter()
        """The in-situ meter: the firmware's CPU time as it runs among the emulation."""
        self.tape = Tape()
        self.tape.recording = self.replay and self.speed == 0.0
        self.cpu = Replay(self.config, self.tape, self.boot_id, self.first_seq,
                          CpuMeter() if self.profile else None)
        """The firmware's own CPU time, by replay (see ``firmware_seconds``)."""
        self.imu = Mpu6050Sim(self.clock, self.world.imu_motion, rng,
                              gyro_drift_dps_per_sqrt_s=GYRO_DRIFT_DPS_PER_SQRT_S)
        self._attach(self.config.imu.address, self.imu)
        self.strip = FsrStrip(self.config.zones, rng)
        self.adcs = []
        for k, address in enumerate(self.config.adc.addresses):
            adc = Ads1115Sim(self.clock, self._adc_inputs(k), rng)
            self.adcs.append(adc)
            self._attach(address, adc)
        charge = np.random.default_rng([self.seed, 0xBA77, self.session])  # not ``rng``'s draws
        self.battery = Max17048Sim(self.clock, start_pct=float(charge.uniform(40.0, 100.0)))
        """The fuel gauge and its LiPo (``vanish``/``reappear``, ``start_pct``)."""
        if self.config.battery.gauge:
            self._attach(self.config.battery.address, self.battery)
        self.pins = sim_pin_factory(self.clock, meter=self.meter, recorder=self.tape)
        self.ready_lines = [wire_open_drain(self.pins, gpio, adc.alert_changes)
                            for gpio, adc in zip(self.config.pins.adc_ready, self.adcs,
                                                 strict=False)]
        """The ADCs' ALERT/RDY wires (``OpenDrainLine``: ``cut``/``short`` for faults)."""
        self.smbus = EmulatedSMBus(self.bus,
                                   wrap=lambda ioctl: self.meter.emulated(self.tape.ioctl(ioctl)))
        """The firmware's bus: smbus2's own code down to the ioctl, answered by ``bus``."""
        self.firmware = Firmware(self.config, self.smbus, _TapedClock(self.clock, self.tape),
                                 self.pins, self.logger, boot_id=self.boot_id,
                                 first_seq=self.first_seq)
        self._presses = sorted(self.world.events)
        self._pressed_until: float | None = None
        self._started = False
        self._step = self.meter.firmware(self.firmware.step, "loop")
        if self.profile:
            meter_parts(self.firmware, self.meter)

    def _attach(self, address: int, device: object) -> None:
        device.i2c_write = self.meter.emulated(device.i2c_write)  # type: ignore[attr-defined]
        device.i2c_read = self.meter.emulated(device.i2c_read)  # type: ignore[attr-defined]
        self.bus.attach(address, device)  # type: ignore[arg-type]

    def _adc_inputs(self, k: int) -> Callable[[float], list[float]]:
        zones = range(4 * k, min(4 * k + 4, self.config.zones.count))

        def inputs(t: float) -> list[float]:
            patches = self.world.band_patch_forces(t)
            volts = [self.strip.band_voltage(z, t, (patches[z, 0], patches[z, 1]))
                     for z in zones]
            return volts + [0.0] * (4 - len(volts))
        return inputs

    @property
    def duration_s(self) -> float:
        """Length of the scenario's session, s."""
        return self.world.duration_s

    def sensor_to_world(self, sensor_t: np.ndarray) -> np.ndarray:
        """World (virtual clock) time of sensor times, s: for scoring against the truth.

        Uses the IMU driver's own clock mapping, which is exact here because the
        emulated sensor clock has no error unless a scenario gives it one.
        """
        imu = self.firmware.imu
        ref = self.clock.now()
        return ref + (np.asarray(sensor_t) - imu.clock_to_sensor(ref)) / imu.rate_ratio

    @property
    def firmware_seconds(self) -> float:
        """CPU time of the firmware so far (boot, loop, button events), s: by ``Replay``
        (the firmware's own work, nothing of the emulation; see there) unless the replay
        is off or diverged, else as ``meter`` saw it in situ (see ``CpuMeter``)."""
        self.cpu.run()
        if self.cpu.diverged is None and self.cpu.firmware is not None:
            return self.cpu.seconds
        return self.meter.firmware_s

    def add_sink(self, sink: Callable[[Frame], None]) -> None:
        """Call ``sink`` with every frame the firmware emits (an observer: its time is
        not the firmware's)."""
        self.firmware.frame_sinks.append(self.meter.outside(sink))

    def _person_at_button(self, now: float) -> None:
        if self._pressed_until is not None and now >= self._pressed_until:
            release(self.pins, self.config.pins.button)
            self._pressed_until = None
        while self._presses and self._presses[0][0] <= now:
            t, duration = self._presses.pop(0)
            press(self.pins, self.config.pins.button)
            self._pressed_until = now + duration

    def advance(self, end: float = math.inf) -> float:
        """One pass: the person at the button, then the firmware; returns the next due
        virtual time (s), at most ``end``. Boots the firmware on the first call."""
        tape = self.tape
        if not self._started:
            self._started = True
            tape.record(("start",))
            self.meter.firmware(self.firmware.start, "boot")()
        now = self.clock.now()
        self._person_at_button(now)
        tape.record(("step",))
        due = self._step()
        if len(tape) >= self.REPLAY_ITEMS:
            self.cpu.run()
        nxt = [due, end]
        if self._presses:
            nxt.append(self._presses[0][0])
        if self._pressed_until is not None:
            nxt.append(self._pressed_until)
        return max(min(nxt), now + 1e-5)

    def run(self, until: float | None = None, should_stop: Callable[[], bool] | None = None
            ) -> None:
        """Run the firmware from boot to ``until`` (virtual s; default: the session's end)."""
        end = self.duration_s if until is None else until
        while self.clock.now() < end and not (should_stop and should_stop()):
            self.clock.sleep_until(self.advance(end))

    async def run_async(self, speed: float = 1.0, until: float | None = None,
                        should_stop: Callable[[], bool] | None = None) -> None:
        """Run inside asyncio at ``speed`` virtual s per real s (beside Bluetooth)."""
        end = self.duration_s if until is None else until
        self.clock.speed = 0.0  # pacing is done here, without blocking the event loop
        self.cpu.diverged = self.cpu.diverged or "run in real time (no replay)"
        self.tape.recording = False
        self.tape.items.clear()
        wall0, virt0 = time.monotonic(), self.clock.now()
        while self.clock.now() < end and not (should_stop and should_stop()):
            due = self.advance(end)
            delay = wall0 + (due - virt0) / speed - time.monotonic()
            await asyncio.sleep(max(0.0, delay))
            self.clock.sleep_until(due)

    def close(self) -> None:
        """Release the firmware's pins and bus (replaying what is left first)."""
        self.cpu.run()
        self.cpu.close()
        self.firmware.close()
        self.smbus.close()


def profile(seconds: float = 120.0, seeds: int = 2, scenario: Scenario | None = None
            ) -> dict[str, dict[str, float]]:
    """CPU of each part of the firmware per simulated second, ms/s, over ``seeds``
    sessions of ``seconds`` each (default scenario): where ``firmware_cpu_ms_per_s`` goes.

    Returns {"replay": parts, "in situ": parts}: the replay's (what the bench reports)
    and the in-situ meter's. "loop" is ``Firmware.step`` less the parts it calls; each
    part's meter crossings are taken out as in ``CpuMeter``, but its clock reads make
    the total a little higher than unprofiled ("total" is the replay's own figure).
    """
    totals: dict[str, dict[str, float]] = {"replay": {}, "in situ": {}}
    for seed in range(1, seeds + 1):
        roller = SimRoller(scenario or default_scenario(), seed, profile=True)
        end = min(seconds, roller.duration_s)
        roller.run(until=end)
        roller.close()
        scale = 1e3 / (seeds * end)
        for key, meter in (("replay", roller.cpu.meter), ("in situ", roller.meter)):
            for part, s in meter.parts().items():
                totals[key][part] = totals[key].get(part, 0.0) + s * scale
        totals["replay"]["total"] = totals["replay"].get("total", 0.0) \
            + roller.firmware_seconds * scale
    return {key: dict(sorted(parts.items(), key=lambda kv: -kv[1]))
            for key, parts in totals.items()}


def main(argv: list[str] | None = None) -> None:
    """``python -m firmware.sim.rig [--seconds S] [--seeds N]``: the firmware's CPU by part."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m firmware.sim.rig",
                                     description="firmware CPU per second of rolling, by part")
    parser.add_argument("--seconds", type=float, default=120.0, help="simulated s per session")
    parser.add_argument("--seeds", type=int, default=2, help="sessions")
    args = parser.parse_args(argv)
    result = profile(args.seconds, args.seeds)
    replay, in_situ = result["replay"], result["in situ"]
    print(f"{'ms per simulated s':<20} {'replay':>8} {'in situ':>8}")
    for part in [p for p in replay if p != "total"] + ["total"]:
        situ = sum(in_situ.values()) if part == "total" else in_situ.get(part, 0.0)
        print(f"{part:<20} {replay[part]:8.3f} {situ:8.3f}")


if __name__ == "__main__":
    main()
