"""One drawn part: how this roller's chips deviate from their nominal values.

A simulated roller is built from parts drawn (per roller: per seed) within their
datasheets' limits, never from the ideal part. Each limit below names its source; a
value is drawn uniformly within it (a real batch of parts fills its tolerance; the
uniform draw is no kinder than that). A scenario's ``[parts]`` section pins any value,
or asks for the ideal parts (``ideal = true``) to compare against.

MPU-6050 (product specification rev 3.4, 6.1 and 6.2):

- gyro sensitivity scale factor tolerance +-3 % at 25 C (per axis);
- gyro cross-axis sensitivity +-2 %;
- accelerometer initial calibration tolerance +-3 % (per axis), cross-axis +-2 %;
- the sample clock: the gyro PLL's frequency tolerance is +-1 % (6.5: "internal clock
  source ... +-1 % over temperature with the PLL from a gyro axis"); a slow change
  of up to +-0.2 % as the die warms after power-on (time constant ~5 min);
- start-up: registers answer 20-100 ms after power-on or reset ("Start-up time for
  register read/write", 6.3, 100 ms max), the gyro's zero-rate output settles within
  30-50 ms after it wakes ("ZRO settling" 50 ms, "gyroscope start-up time" 30 ms typ).

ADS1115 (SBAS444E, 6.5): the internal oscillator, hence the data rate, +-10 %; gain
error +-0.15 % at most (0.01 % typical), offset error +-3 LSB (input-referred, after
the PGA of +-4.096 V: +-0.375 mV).

MAX17048 (19-6171 rev 7): VCELL's voltage error +-7.5 mV per cell (Electrical
Characteristics, VERR at 25 C); the state of charge is a ModelGauge estimate, whose
error the datasheet does not bound: its Typical Operating Characteristics show errors
of a few % over a discharge with the cell's model, so a steady error of the model is
drawn within +-3 % (a choice from those curves, not a limit). Its first estimate after
a reset (under load) is modelled in ``firmware.sim.max17048``, not drawn.

FSR strip (Interlink FSR 400 data sheet, "Force Sensing Resistor Integration Guide and
Evaluation Parts Catalog" specifications): "Drift: < 5 % per log10(time)" under a
steady load, so each strip's creep is drawn within 0-5 % per decade (one value for its
bands: they are cut from one sheet). The FSR 400 Series Data Sheet's "Hysteresis: +10 %
Average (R_F+ - R_F-)/R_F+" (its Device Characteristics; the table's other figures are
one standard deviation over the mean, this one an average) gives no spread, so the
spread is ours: each strip's play is drawn uniformly within 5-15 % (the average +-50 %,
one value for its bands), so that a strip is never the nominal one the firmware would
otherwise assume. The bands' sensitivity spread (+-6 %) is drawn by
``firmware.sim.strip.FsrStrip``.

The draws use their own random stream (``[seed, 0x9A27]``), so the person, the world
and the noise of a seed are the same whatever the parts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

GYRO_GAIN_LIMIT = 0.03
"""Gyro sensitivity tolerance, fraction (spec 6.1)."""
GYRO_CROSS_LIMIT = 0.02
"""Gyro cross-axis sensitivity, fraction (spec 6.1)."""
ACCEL_GAIN_LIMIT = 0.03
"""Accelerometer sensitivity tolerance, fraction (spec 6.2)."""
ACCEL_CROSS_LIMIT = 0.02
"""Accelerometer cross-axis sensitivity, fraction (spec 6.2)."""
IMU_CLOCK_LIMIT = 0.01
"""Sample clock tolerance with the gyro PLL, fraction (spec 6.5)."""
IMU_CLOCK_WARMUP_LIMIT = 0.002
"""Change of the sample clock as the die warms, fraction."""
IMU_CLOCK_WARMUP_S = 300.0
"""Time constant of that change, s."""
IMU_REGISTER_STARTUP_S = (0.020, 0.100)
"""Registers unreachable after power-on or DEVICE_RESET, s (spec 6.3)."""
GYRO_STARTUP_S = (0.030, 0.050)
"""No valid gyro sample after waking from sleep, s (spec 6.1)."""
ADC_RATE_LIMIT = 0.10
"""ADS1115 data-rate tolerance, fraction (SBAS444E 6.5)."""
ADC_GAIN_LIMIT = 0.0015
"""ADS1115 gain error, fraction (SBAS444E 6.5)."""
ADC_OFFSET_LIMIT_LSB = 3.0
"""ADS1115 offset error, LSB (SBAS444E 6.5)."""
GAUGE_SOC_ERROR_LIMIT_PCT = 3.0
"""MAX17048 ModelGauge error, % of charge (19-6171 Typical Operating Characteristics)."""
GAUGE_VCELL_ERROR_LIMIT_V = 7.5e-3
"""MAX17048 VCELL error, V (19-6171 Electrical Characteristics, VERR)."""
FSR_CREEP_LIMIT = 0.05
"""FSR drift under a steady load, fraction per decade of time (FSR 400: < 5 %)."""
FSR_HYSTERESIS = 0.10
"""FSR hysteresis, fraction (FSR 400: +10 % average): the strip of ``Parts.ideal``."""
FSR_HYSTERESIS_RANGE = (0.05, 0.15)
"""Within which a strip's hysteresis is drawn, fraction: the data sheet's average +-50 %
(our choice: the data sheet gives the average only)."""
FSR_CREEP_IDEAL = 0.04
"""The creep of the strip of ``Parts.ideal`` (the one value every strip had before the
creep was drawn, 2026-12-07), fraction per decade."""


def _matrix(gains: np.ndarray, cross: np.ndarray) -> np.ndarray:
    """Sensitivity matrix: 1 + gain on the diagonal, cross-axis terms off it."""
    m = np.array(cross, dtype=float).reshape(3, 3).copy()
    np.fill_diagonal(m, 1.0 + np.asarray(gains, dtype=float))
    return m


@dataclass(frozen=True)
class ImuPart:
    """One MPU-6050 as built.

    gyro_gain, accel_gain: sensitivity errors per axis (x, y, z), fraction;
    gyro_cross, accel_cross: (3, 3) cross-axis terms (diagonal unused), fraction;
    clock_error: the sample clock runs fast by this fraction (negative: slow);
    clock_warmup: further change of the clock as the die warms, fraction, reached with
    time constant ``IMU_CLOCK_WARMUP_S``; register_startup_s, gyro_startup_s: s.
    """

    gyro_gain: tuple[float, float, float] = (0.0, 0.0, 0.0)
    gyro_cross: tuple[float, ...] = (0.0,) * 9
    accel_gain: tuple[float, float, float] = (0.0, 0.0, 0.0)
    accel_cross: tuple[float, ...] = (0.0,) * 9
    clock_error: float = 0.0
    clock_warmup: float = 0.0
    register_startup_s: float = 0.0
    gyro_startup_s: float = 0.0

    @property
    def gyro_matrix(self) -> np.ndarray:
        """Measured rate = matrix @ true rate (before offsets and noise)."""
        return _matrix(np.array(self.gyro_gain), np.array(self.gyro_cross))

    @property
    def accel_matrix(self) -> np.ndarray:
        """Measured force = matrix @ true specific force (before offsets and noise)."""
        return _matrix(np.array(self.accel_gain), np.array(self.accel_cross))

    @classmethod
    def draw(cls, rng: np.random.Generator) -> ImuPart:
        """A part drawn uniformly within the datasheet's limits."""
        def cross(limit: float) -> tuple[float, ...]:
            m = rng.uniform(-limit, limit, (3, 3))
            np.fill_diagonal(m, 0.0)
            return tuple(float(v) for v in m.ravel())

        return cls(
            gyro_gain=tuple(float(v) for v in rng.uniform(-GYRO_GAIN_LIMIT, GYRO_GAIN_LIMIT, 3)),
            gyro_cross=cross(GYRO_CROSS_LIMIT),
            accel_gain=tuple(float(v) for v in
                             rng.uniform(-ACCEL_GAIN_LIMIT, ACCEL_GAIN_LIMIT, 3)),
            accel_cross=cross(ACCEL_CROSS_LIMIT),
            clock_error=float(rng.uniform(-IMU_CLOCK_LIMIT, IMU_CLOCK_LIMIT)),
            clock_warmup=float(rng.uniform(-IMU_CLOCK_WARMUP_LIMIT, IMU_CLOCK_WARMUP_LIMIT)),
            register_startup_s=float(rng.uniform(*IMU_REGISTER_STARTUP_S)),
            gyro_startup_s=float(rng.uniform(*GYRO_STARTUP_S)))  # type: ignore[arg-type]


@dataclass(frozen=True)
class AdcPart:
    """One ADS1115 as built: rate_error (data rate, fraction), gain_error (fraction),
    offset_lsb (input-referred offset, LSB at +-4.096 V)."""

    rate_error: float = 0.0
    gain_error: float = 0.0
    offset_lsb: float = 0.0

    @classmethod
    def draw(cls, rng: np.random.Generator) -> AdcPart:
        """A part drawn uniformly within the datasheet's limits."""
        return cls(float(rng.uniform(-ADC_RATE_LIMIT, ADC_RATE_LIMIT)),
                   float(rng.uniform(-ADC_GAIN_LIMIT, ADC_GAIN_LIMIT)),
                   float(rng.uniform(-ADC_OFFSET_LIMIT_LSB, ADC_OFFSET_LIMIT_LSB)))


@dataclass(frozen=True)
class GaugePart:
    """One MAX17048 as built: soc_error_pct (its model's steady error, % of charge:
    the gauge reads this much high), vcell_error_v (VCELL reads this much high, V)."""

    soc_error_pct: float = 0.0
    vcell_error_v: float = 0.0

    @classmethod
    def draw(cls, rng: np.random.Generator) -> GaugePart:
        """A part drawn uniformly within the limits above."""
        return cls(float(rng.uniform(-GAUGE_SOC_ERROR_LIMIT_PCT, GAUGE_SOC_ERROR_LIMIT_PCT)),
                   float(rng.uniform(-GAUGE_VCELL_ERROR_LIMIT_V, GAUGE_VCELL_ERROR_LIMIT_V)))


@dataclass(frozen=True)
class StripPart:
    """One FSR strip as built: creep_per_decade (its bands' conductance grows by this
    fraction per decade of time under a steady load), hysteresis (unloading reads up to
    this fraction above loading)."""

    creep_per_decade: float = FSR_CREEP_IDEAL
    hysteresis: float = FSR_HYSTERESIS

    @classmethod
    def draw(cls, rng: np.random.Generator) -> StripPart:
        """A strip drawn uniformly within the data sheet's creep limit and
        ``FSR_HYSTERESIS_RANGE`` (the creep first, the hysteresis last: the draws of the
        parts before it are those of before it was drawn)."""
        creep = float(rng.uniform(0.0, FSR_CREEP_LIMIT))
        return cls(creep, float(rng.uniform(*FSR_HYSTERESIS_RANGE)))


@dataclass(frozen=True)
class Parts:
    """The parts of one roller: its IMU, its ADCs (in address order), its fuel gauge,
    its FSR strip."""

    imu: ImuPart
    adcs: tuple[AdcPart, ...]
    gauge: GaugePart = GaugePart()
    strip: StripPart = StripPart()

    @classmethod
    def ideal(cls, adc_count: int = 2) -> Parts:
        """Every part at its nominal values (the strip as it was before its creep was
        drawn: ``FSR_CREEP_IDEAL``)."""
        return cls(ImuPart(), (AdcPart(),) * adc_count, GaugePart(), StripPart())

    @classmethod
    def draw(cls, seed: int, adc_count: int = 2) -> Parts:
        """The parts of the roller of ``seed`` (their own random stream; the gauge and
        then the strip are drawn last, the strip's hysteresis last of all, so the
        earlier parts' draws are those of before the later ones were drawn)."""
        rng = np.random.default_rng([seed, 0x9A27])
        imu = ImuPart.draw(rng)
        adcs = tuple(AdcPart.draw(rng) for _ in range(adc_count))
        gauge = GaugePart.draw(rng)
        return cls(imu, adcs, gauge, StripPart.draw(rng))

    @classmethod
    def for_roller(cls, section: Any, seed: int, adc_count: int = 2) -> Parts:
        """The parts of the roller of ``seed`` as a scenario's ``[parts]`` section
        (``PartsSection``) has them: drawn, or ideal, with its pinned values put in."""
        parts = cls.ideal(adc_count) if section.ideal else cls.draw(seed, adc_count)
        return parts.pinned(asdict(section))

    def pinned(self, values: dict[str, Any]) -> Parts:
        """These parts with the scenario's pinned values (``PartsSection`` keys that are
        not None) put in."""
        imu, adc, gauge, strip = {}, {}, {}, {}
        for key, value in values.items():
            if value is None or key == "ideal":
                continue
            if key.startswith("strip_"):
                strip[key[6:]] = float(value)
            elif key.startswith("adc_"):
                adc[key[4:]] = float(value)
            elif key.startswith("gauge_"):
                gauge[key[6:]] = float(value)
            elif key in ("gyro_cross", "accel_cross"):
                m = np.full((3, 3), float(value))
                np.fill_diagonal(m, 0.0)
                imu[key] = tuple(float(v) for v in m.ravel())
            elif key in ("gyro_gain", "accel_gain"):
                imu[key] = tuple(float(v) for v in value)
            else:
                imu[key] = float(value)
        return Parts(replace(self.imu, **imu), tuple(replace(a, **adc) for a in self.adcs),
                     replace(self.gauge, **gauge), replace(self.strip, **strip))


__all__ = ["FSR_HYSTERESIS", "FSR_HYSTERESIS_RANGE", "AdcPart", "GaugePart", "ImuPart", "Parts",
           "StripPart"]
