"""The roller's parts emulated at rest for ``smartroller-fw selftest --sim``: the same
checks as on a Pi, on a SimBus with an MPU-6050, the ADS1115s on an unloaded FSR strip,
the fuel gauge, gpiozero mock pins and a virtual clock, with faults to inject
(``FAULTS``) so that each failing part is named.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gpiozero import DigitalOutputDevice

from firmware.config import Config
from firmware.sim.ads1115 import Ads1115Sim
from firmware.sim.bus import SimBus
from firmware.sim.clock import SimClock
from firmware.sim.max17048 import Max17048Sim
from firmware.sim.mpu6050 import Mpu6050Sim
from firmware.sim.pins import press, sim_pin_factory, wire_open_drain
from firmware.sim.strip import FsrStrip

__all__ = ["FAULTS", "BenchRig"]

FAULTS = {
    "imu-missing": "the MPU-6050 does not answer (a loose wire)",
    "imu-clone": "WHO_AM_I answers 0x72 (a clone part)",
    "imu-stuck": "the MPU-6050 answers but stops sampling",
    "imu-frozen": "the MPU-6050 repeats one sample exactly",
    "adc1-missing": "the first ADS1115 does not answer",
    "adc2-missing": "the second ADS1115 does not answer",
    "adc1-stuck": "the first ADS1115 never finishes a conversion",
    "zone3-shorted": "zone 3's FSR is shorted (reads the supply voltage)",
    "alert2-cut": "the second ADS1115's ALERT/RDY wire is broken",
    "gauge-missing": "the MAX17048 fuel gauge does not answer",
    "gauge-reset": "the MAX17048 was just reset (its cell reconnected): a first estimate",
    "button-stuck": "the button is held or shorted to ground",
    "motor-busy": "the motor pin is held by another program",
    "led-busy": "the LED pin is held by another program",
}
"""Faults ``BenchRig`` can inject, and what they emulate."""


def _at_rest(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The roller lying still: gravity along the sensor's +z (specific force up), no
    rotation."""
    n = len(times)
    force = np.zeros((n, 3))
    force[:, 2] = 9.80665
    return force, np.zeros((n, 3))


@dataclass
class BenchRig:
    """The roller's parts emulated at rest: SimBus with an MPU-6050 and the ADS1115s on
    an unloaded FSR strip, gpiozero mock pins, a virtual clock; ``faults`` from
    ``FAULTS`` injected."""

    config: Config
    faults: tuple[str, ...] = ()
    seed: int = 0
    held: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown fault {sorted(unknown)[0]!r} (known: "
                             f"{', '.join(FAULTS)})")
        rng = np.random.default_rng([self.seed, 0x5E1F])
        self.clock = SimClock()
        self.bus = SimBus(self.config.imu.bus, clock=self.clock)
        who = 0x72 if "imu-clone" in self.faults else 0x68
        self.imu = Mpu6050Sim(self.clock, _at_rest, rng, who_am_i=who)
        self.bus.attach(self.config.imu.address, self.imu)
        self.strip = FsrStrip(self.config.zones, rng)
        self.adcs = []
        for k, address in enumerate(self.config.adc.addresses):
            adc = Ads1115Sim(self.clock, self._inputs(k), rng)
            self.adcs.append(adc)
            self.bus.attach(address, adc)
        self.pins = sim_pin_factory(self.clock)
        self.ready_lines = [wire_open_drain(self.pins, gpio, adc.alert_changes)
                            for gpio, adc in zip(self.config.pins.adc_ready, self.adcs,
                                                 strict=False)]
        if "alert2-cut" in self.faults and len(self.ready_lines) > 1:
            self.ready_lines[1].cut(self.clock.now())
        self.gauge = Max17048Sim(self.clock, start_pct=80.0,
                                 settled="gauge-reset" not in self.faults)
        self.bus.attach(self.config.battery.address, self.gauge)
        if "gauge-missing" in self.faults:
            self.gauge.vanish()
        if "imu-missing" in self.faults:
            self.imu.vanish()
        if "imu-stuck" in self.faults:
            self.imu.stick_fifo()
        if "imu-frozen" in self.faults:
            self.imu.freeze_output()
        for k, name in ((0, "adc1-missing"), (1, "adc2-missing")):
            if name in self.faults and k < len(self.adcs):
                self.adcs[k].vanish()
        if "adc1-stuck" in self.faults:
            self.adcs[0].stick()
        self._press = press
        for name, pin in (("motor-busy", self.config.pins.motor_pwm),
                          ("led-busy", self.config.pins.led)):
            if name in self.faults:
                self.held.append(DigitalOutputDevice(pin, pin_factory=self.pins))

    def _inputs(self, k: int) -> Callable[[float], list[float]]:
        zones = range(4 * k, min(4 * k + 4, self.config.zones.count))

        def inputs(t: float) -> list[float]:
            volts = [self.config.zones.supply_v if (z == 2 and "zone3-shorted" in self.faults)
                     else self.strip.band_voltage(z, t, (0.0, 0.0)) for z in zones]
            return volts + [0.0] * (4 - len(volts))
        return inputs

    def input_opened(self, pin: int) -> None:
        """Called once an input pin is set up (with its pull-up): a stuck button then
        holds it low, as a short to ground would."""
        if "button-stuck" in self.faults and pin == self.config.pins.button:
            self._press(self.pins, pin)

    def close(self) -> None:
        """Release what the rig holds."""
        for device in self.held:
            device.close()
