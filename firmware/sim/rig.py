"""The simulated roller: the world's physics wired to emulated parts under the firmware.

``SimRoller`` builds, from a scenario and a seed, the world (person, routine, roller
physics and ground truth), a ``SimClock``, a ``SimBus`` with an emulated MPU-6050 and
two ADS1115s on a FSR strip, and a gpiozero ``MockFactory`` for motor, button, LED and
the ADCs' ALERT/RDY lines; then runs the unchanged ``Firmware`` on them. The person's
button presses drive the mock button pin. The firmware sees only registers and pins:
the truth stays here. The firmware's CPU time is measured apart from all this, in situ
by ``firmware.sim.cpu.CpuMeter`` and by replaying a ``firmware.sim.tape.Tape``
(``firmware.sim.tape.Replay``); ``profile``/``main`` break it down by part.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from firmware.app import Firmware
from firmware.calibration import load_calibration
from firmware.config import Config, default_config
from firmware.protocol import Frame
from firmware.sim.ads1115 import Ads1115Sim
from firmware.sim.bus import BusFaults, EmulatedSMBus, SimBus
from firmware.sim.clock import SimClock
from firmware.sim.cpu import CpuMeter, meter_parts
from firmware.sim.max17048 import Max17048Sim
from firmware.sim.mpu6050 import Mpu6050Sim
from firmware.sim.parts import Parts
from firmware.sim.pins import press, release, sim_pin_factory, wire_open_drain
from firmware.sim.scenario import Scenario, default_scenario
from firmware.sim.strip import FsrStrip
from firmware.sim.tape import Replay, Tape, TapedClock
from firmware.sim.world import World

GYRO_DRIFT_DPS_PER_SQRT_S = 0.003  # body heat warming the roller: ~0.07 deg/s in 10 min


@dataclass
class SimRoller:
    """A whole simulated roller running the real firmware.

    scenario: what the person does; seed: draws everything random; config: the
    hardware profile the firmware is given (the simulated parts deviate from it as
    real parts do); speed: virtual seconds per real second (0: as fast as possible).
    profile: meter the firmware's parts apart (``meter.parts()``, and the replay's
        ``cpu.meter.parts()``; see ``profile``).
    state_dir: where the roller keeps what it learns of its parts (``calibration.json``);
        None: nothing kept, every run starts from the datasheets' values.
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
    state_dir: Path | None = None

    REPLAY_ITEMS = 20_000
    """Replay the tape whenever it holds this many items (a few simulated seconds)."""
    CLOCK_KNOT_S = 1.0
    """How often the driver's clock mapping is noted for ``sensor_to_world``, s (as the
    host's time syncs note it)."""

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
        stored = load_calibration(self.state_dir)
        self.cpu = Replay(self.config, self.tape, self.boot_id, self.first_seq,
                          CpuMeter() if self.profile else None, calibration=stored)
        """The firmware's own CPU time, by replay (see ``firmware_seconds``)."""
        adc_count = len(self.config.adc.addresses)
        self.parts = Parts.for_roller(self.scenario.parts, self.seed, adc_count)
        """This roller's chips as built (drawn per seed within their datasheets)."""
        self.imu = Mpu6050Sim(self.clock, self.world.imu_motion, rng,
                              gyro_drift_dps_per_sqrt_s=GYRO_DRIFT_DPS_PER_SQRT_S,
                              part=self.parts.imu)
        self._attach(self.config.imu.address, self.imu)
        self.strip = FsrStrip(self.config.zones, rng,
                              hysteresis=self.parts.strip.hysteresis,
                              creep_per_decade=self.parts.strip.creep_per_decade)
        self.adcs = []
        for k, address in enumerate(self.config.adc.addresses):
            part = self.parts.adcs[k]
            adc = Ads1115Sim(self.clock, self._adc_inputs(k), rng, rate_error=part.rate_error,
                             gain_error=part.gain_error, offset_lsb=part.offset_lsb)
            self.adcs.append(adc)
            self._attach(address, adc)
        charge = np.random.default_rng([self.seed, 0xBA77, self.session])  # not ``rng``'s draws
        self.battery = Max17048Sim(self.clock, start_pct=float(charge.uniform(40.0, 100.0)),
                                   part=self.parts.gauge)
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
        self.firmware = Firmware(self.config, self.smbus, TapedClock(self.clock, self.tape),
                                 self.pins, self.logger, boot_id=self.boot_id,
                                 first_seq=self.first_seq, state_dir=self.state_dir,
                                 calibration=stored)
        self._presses = sorted(self.world.events)
        faults = self.scenario.faults
        if faults.nack_rate or faults.broken_read_rate or faults.ff_read_rate:
            self.bus.faults = BusFaults(faults.nack_rate, faults.broken_read_rate,
                                        faults.ff_read_rate, seed=self.seed)
        self._fault_events = sorted(
            [(t, "imu_brownout") for t in faults.imu_brownouts_s]
            + [(t, "bus_hang") for t in faults.bus_hangs_s]
            + ([(faults.adc_dies_s, "adc_dies")] if faults.adc_dies_s is not None else []))
        self._pressed_until: float | None = None
        self._started = False
        self._knots: tuple[list[float], list[float]] = ([], [])  # world t, sensor t (s)
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

        Uses the IMU driver's own clock mapping: as it was noted every ``CLOCK_KNOT_S``
        between the notes (the host maps through its time syncs), as it is now after
        the last one, extended with its rate before the first.
        """
        imu = self.firmware.imu
        ref = self.clock.now()
        sensor_t = np.asarray(sensor_t, dtype=float)
        now = ref + (sensor_t - imu.clock_to_sensor(ref)) / imu.rate_ratio
        world, sensor = self._knots
        if len(sensor) < 2:
            return now
        before = world[0] + (sensor_t - sensor[0]) / imu.rate_ratio
        inside = np.interp(sensor_t, sensor, world)
        return np.where(sensor_t > sensor[-1], now, np.where(sensor_t < sensor[0], before,
                                                              inside))

    def _note_clock(self, now: float) -> None:
        """Note the driver's sensor time of ``now`` (s) every ``CLOCK_KNOT_S``: the sensor
        clock wanders as the die warms, which one line through it would miss."""
        world, sensor = self._knots
        if world and now < world[-1] + self.CLOCK_KNOT_S:
            return
        s = self.firmware.imu.clock_to_sensor(now)
        if not sensor or s > sensor[-1]:
            world.append(now)
            sensor.append(s)

    @property
    def firmware_seconds(self) -> float:
        """CPU time of the firmware so far (boot, loop, button events), s: by ``Replay``
        (the firmware's own work, nothing of the emulation; see there) unless the replay
        is off or diverged, else as ``meter`` saw it in situ (see ``CpuMeter``)."""
        if self.cpu_by_replay:
            return self.cpu.seconds
        return self.meter.firmware_s

    @property
    def cpu_by_replay(self) -> bool:
        """Whether ``firmware_seconds`` comes from the replay (False: the replay is off or
        diverged, see ``cpu.diverged``, and the in-situ meter's figure stands in)."""
        self.cpu.run()
        return self.cpu.diverged is None and self.cpu.firmware is not None

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
            power_on = self.scenario.session.power_on_s
            if self.clock.now() < power_on:  # the roller is off: the world goes on
                self._presses = [p for p in self._presses if p[0] >= power_on]
                return min(power_on, end)
            self._started = True
            tape.record(("start",))
            self.meter.firmware(self.firmware.start, "boot")()
        now = self.clock.now()
        self._person_at_button(now)
        while self._fault_events and self._fault_events[0][0] <= now:
            _, kind = self._fault_events.pop(0)
            if kind == "imu_brownout":
                self.imu.spontaneous_reset()
            elif kind == "bus_hang":
                self.bus.hang()
            elif len(self.adcs) > 1:
                self.adcs[1].vanish()
        tape.record(("step",))
        due = self._step()
        self._note_clock(now)
        if len(tape) >= self.REPLAY_ITEMS:
            self.cpu.run()
        nxt = [due, end]
        if self._presses:
            nxt.append(self._presses[0][0])
        if self._pressed_until is not None:
            nxt.append(self._pressed_until)
        if self._fault_events:
            nxt.append(self._fault_events[0][0])
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
