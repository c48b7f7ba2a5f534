"""The simulated roller: the world's physics wired to emulated parts under the firmware.

``SimRoller`` builds, from a scenario and a seed, the world (person, routine, roller
physics and ground truth), a ``SimClock``, a ``SimBus`` with an emulated MPU-6050 and
two ADS1115s on a FSR strip, and a gpiozero ``MockFactory`` for motor, button and LED;
then runs the unchanged ``Firmware`` on them. The person's button presses drive the
mock button pin. The firmware sees only registers and pins: the truth stays here.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from firmware.app import Firmware
from firmware.config import Config, default_config
from firmware.protocol import Frame
from firmware.sim.ads1115 import Ads1115Sim
from firmware.sim.bus import SimBus
from firmware.sim.clock import SimClock
from firmware.sim.mpu6050 import Mpu6050Sim
from firmware.sim.pins import press, release, sim_pin_factory
from firmware.sim.scenario import Scenario, default_scenario
from firmware.sim.strip import FsrStrip
from firmware.sim.world import World

GYRO_DRIFT_DPS_PER_SQRT_S = 0.003  # body heat warming the roller: ~0.07 deg/s in 10 min


@dataclass
class EmulationMeter:
    """Wall time spent inside the emulated devices and the world, s."""

    seconds: float = 0.0
    calls: int = 0

    def wrap(self, fn: Callable) -> Callable:
        """``fn`` with its time counted."""
        def timed(*args: object) -> object:
            t0 = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls += 1
        return timed


@dataclass
class SimRoller:
    """A whole simulated roller running the real firmware.

    scenario: what the person does; seed: draws everything random; config: the
    hardware profile the firmware is given (the simulated parts deviate from it as
    real parts do); speed: virtual seconds per real second (0: as fast as possible).
    """

    scenario: Scenario = field(default_factory=default_scenario)
    seed: int = 0
    config: Config = field(default_factory=default_config)
    speed: float = 0.0
    logger: logging.Logger | None = None
    boot_id: int | None = None
    first_seq: int = 0
    session: int = 0

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.seed, 0x5E50, self.session] if self.session
                                    else [self.seed, 0x5E50])
        if self.boot_id is None:
            self.boot_id = int(rng.integers(1, 2**32))
        self.world = World(self.scenario, self.config, self.seed, self.session)
        self.clock = SimClock(speed=self.speed)
        self.bus = SimBus(self.config.imu.bus, clock=self.clock)
        self.meter = EmulationMeter()
        self.imu = Mpu6050Sim(self.clock, self.world.imu_motion, rng,
                              gyro_drift_dps_per_sqrt_s=GYRO_DRIFT_DPS_PER_SQRT_S)
        self._attach(self.config.imu.address, self.imu)
        self.strip = FsrStrip(self.config.zones, rng)
        self.adcs = []
        for k, address in enumerate(self.config.adc.addresses):
            adc = Ads1115Sim(self.clock, self._adc_inputs(k), rng)
            self.adcs.append(adc)
            self._attach(address, adc)
        self.pins = sim_pin_factory(self.clock)
        self.firmware = Firmware(self.config, self.bus, self.clock, self.pins, self.logger,
                                 boot_id=self.boot_id, first_seq=self.first_seq)
        self._presses = sorted(self.world.events)
        self._pressed_until: float | None = None
        self._started = False
        self.firmware_seconds = 0.0  # time in the firmware's loop, emulation excluded, s

    def _attach(self, address: int, device: object) -> None:
        device.i2c_write = self.meter.wrap(device.i2c_write)  # type: ignore[attr-defined]
        device.i2c_read = self.meter.wrap(device.i2c_read)  # type: ignore[attr-defined]
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

    def add_sink(self, sink: Callable[[Frame], None]) -> None:
        """Call ``sink`` with every frame the firmware emits."""
        self.firmware.frame_sinks.append(sink)

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
        if not self._started:
            self._started = True
            self.firmware.start()
        now = self.clock.now()
        self._person_at_button(now)
        meter = self.meter
        t0, emulated0 = time.perf_counter(), meter.seconds
        due = self.firmware.step()
        self.firmware_seconds += time.perf_counter() - t0 - (meter.seconds - emulated0)
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
        wall0, virt0 = time.monotonic(), self.clock.now()
        while self.clock.now() < end and not (should_stop and should_stop()):
            due = self.advance(end)
            delay = wall0 + (due - virt0) / speed - time.monotonic()
            await asyncio.sleep(max(0.0, delay))
            self.clock.sleep_until(due)

    def close(self) -> None:
        """Release the firmware's pins."""
        self.firmware.close()
