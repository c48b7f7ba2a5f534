"""Scenarios: what the simulated person does, as a validated TOML file.

A scenario holds only physical things: the session's length, the person (each attribute
optional: omitted means drawn from the population with the world's seed), the routine's
behaviour ranges, and how far this roller deviates from its hardware profile. It never
holds estimator settings. Keys are documented in docs/scenarios.md (generated from the
``doc`` strings here). Errors are one-line ``SchemaError`` naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firmware.schema import SchemaError, build, field, read_toml

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
"""Where the built-in scenarios (default.toml, demo.toml) live."""


def _pair(where: str, value: list[float]) -> None:
    if len(value) != 2 or value[0] > value[1]:
        raise ValueError(f"{where}: expected [min, max] with min <= max, got {value!r}")


@dataclass(frozen=True)
class SessionSection:
    """The session as a whole."""

    duration_s: float = field(600.0, range=(30.0, 7200.0),
                              doc="from sitting down by the roller to the end of the record, s")
    power_on_s: float = field(
        0.0, range=(0.0, 7200.0),
        doc="when the roller's firmware starts, s into the session: later than 0 is a roller "
        "switched on (or restarted) while someone already lies and rolls on it")

    def __post_init__(self) -> None:
        if self.power_on_s >= self.duration_s:
            raise ValueError("session.power_on_s: the roller must start before the session "
                             "ends (session.duration_s)")


@dataclass(frozen=True)
class PersonSection:
    """The person; an omitted key is drawn from the population with the seed."""

    stature_m: float | None = field(None, range=(1.5, 2.0), doc="standing height, m")
    sex: str | None = field(None, choices=("female", "male"), doc="sets the stature distribution")
    weight_kg: float | None = field(None, range=(35.0, 200.0),
                                    doc="body mass, kg (drawn: BMI N(24, 3.5))")
    roller_share: float | None = field(
        None, range=(0.15, 0.55),
        doc="share of body weight on the roller while rolling (drawn: U(0.25, 0.45))")


@dataclass(frozen=True)
class RoutineSection:
    """How the person rolls (the article's routine, with ranges drawn per stroke)."""

    cadence_per_min: list[float] = field(
        [15.0, 40.0], range=(5.0, 80.0),
        doc="[min, max] strokes per minute (one stroke = one movement in one direction)")
    stroke_length_m: list[float] = field([0.03, 0.20], range=(0.01, 0.25),
                                         doc="[min, max] length of one stroke along the back, m")
    pause_rate_per_min: float = field(1.0, range=(0.0, 20.0),
                                      doc="pauses on sore spots per minute of rolling")
    pause_duration_s: list[float] = field([2.0, 10.0], range=(0.5, 60.0),
                                          doc="[min, max] length of a pause on a sore spot, s")
    elbows_forward_fraction: float = field(
        0.25, range=(0.0, 1.0), doc="share of the rolling time with the elbows squeezed forward")
    hips_lowered_rate_per_min: float = field(
        0.3, range=(0.0, 10.0), doc="rests with the hips lowered (no strokes) per minute")
    lumbar_excursions: int | None = field(
        None, range=(0, 50),
        doc="drifts below the rib cage (T12/L1) to make; omitted: now and then, at random")
    excursion_depth_m: list[float] = field(
        [0.01, 0.05], range=(0.005, 0.15), doc="[min, max] depth below T12/L1 of a drift, m")
    excursion_duration_s: list[float] = field(
        [2.0, 6.0], range=(0.5, 60.0), doc="[min, max] time spent below T12/L1 per drift, s")
    slip_rate_per_min: float = field(
        2.0, range=(0.0, 60.0), doc="episodes of the back sliding 2-6 mm over the roller, per min")
    calibration: bool = field(
        False, doc="after raising the hips the person calibrates: rolls up to the top of the "
        "shoulders (C7/T1), holds and presses the button, rolls down to the bottom of the ribs "
        "(T12/L1), holds and presses again")
    pairing_hold: bool = field(
        False, doc="before sitting down the person holds the roller's button for 3.3 s "
        "(from 0.3 s), which opens its pairing window; the session then starts 4 s later")
    start_level: float | None = field(
        None, range=(2.0, 12.0),
        doc="where the roller first touches the back, as a continuous vertebral level "
        "(0 = C7, 1 = T1 .. 12 = T12; 4.0 is the top of T4); omitted: even with the shoulder "
        "blades' inferior angle, +-1 level")
    landmark_error_m: float = field(
        0.008, range=(0.0, 0.03),
        doc="SD of where the person holds a calibration landmark vs the true one, m (the "
        "bottom of the ribs is felt 3 mm high on average, and never more than 8 mm below)")

    def __post_init__(self) -> None:
        for name in ("cadence_per_min", "stroke_length_m", "pause_duration_s",
                     "excursion_depth_m", "excursion_duration_s"):
            _pair(f"routine.{name}", getattr(self, name))
        lmin, lmax = self.stroke_length_m
        if self.excursion_depth_m[1] + 0.01 + lmin > lmax:
            raise ValueError("routine.excursion_depth_m: the deepest drift + 1 cm + the "
                             "shortest stroke must not exceed the longest stroke "
                             "(routine.stroke_length_m)")


@dataclass(frozen=True)
class RollerSection:
    """How this roller deviates from its hardware profile (omitted: drawn with the seed)."""

    foam_stiffness_error: float | None = field(
        None, range=(-0.5, 0.5),
        doc="relative error of the true foam stiffness vs the profile (drawn: N(0, 0.05))")
    imu_offset_error_m: float | None = field(
        None, range=(-0.01, 0.01),
        doc="true IMU distance from the axis minus the profile's, m (drawn: N(0, 0.002))")
    misalignment_deg: list[float] | None = field(
        None, range=(-10.0, 10.0),
        doc="[about first, about second in-plane axis] tilt of the sensor, deg (drawn: N(0, 1))")
    mass_kg: float = field(1.0, range=(0.2, 5.0),
                           doc="mass of the roller with its electronics, kg (on the floor patch)")
    table_rolled: bool = field(
        True, doc="its gyro's scale was measured by a table roll when it was built "
        "(`smartroller-fw table-roll`, hardware/README.md): the bench's first session "
        "and `smartroller demo` start from it (`smartroller-fw sim` starts from whatever "
        "its `--state-dir` holds); false: a roller that never was, which learns it on "
        "the back")

    def __post_init__(self) -> None:
        if self.misalignment_deg is not None and len(self.misalignment_deg) != 2:
            raise ValueError("roller.misalignment_deg: expected two angles, deg")


@dataclass(frozen=True)
class PartsSection:
    """This roller's chips: drawn within their datasheets' limits (firmware/sim/parts.py
    names the sources); a key pins one value, ``ideal`` makes every part nominal."""

    ideal: bool = field(False, doc="every part at its nominal values (the rest of the "
                        "section still pins what it names)")
    gyro_gain: list[float] | None = field(
        None, range=(-0.1, 0.1),
        doc="[x, y, z] gyro sensitivity errors, fraction (drawn: U(-0.03, 0.03), spec 6.1)")
    gyro_cross: float | None = field(
        None, range=(-0.05, 0.05),
        doc="every gyro cross-axis term, fraction (drawn: each U(-0.02, 0.02))")
    accel_gain: list[float] | None = field(
        None, range=(-0.1, 0.1),
        doc="[x, y, z] accelerometer sensitivity errors, fraction (drawn: U(-0.03, 0.03), "
        "spec 6.2)")
    accel_cross: float | None = field(
        None, range=(-0.05, 0.05),
        doc="every accelerometer cross-axis term, fraction (drawn: each U(-0.02, 0.02))")
    clock_error: float | None = field(
        None, range=(-0.05, 0.05),
        doc="the IMU's sample clock runs fast by this fraction (drawn: U(-0.01, 0.01), the "
        "gyro PLL's tolerance, spec 6.5)")
    clock_warmup: float | None = field(
        None, range=(-0.01, 0.01),
        doc="further change of the sample clock as the die warms (time constant 300 s), "
        "fraction (drawn: U(-0.002, 0.002))")
    register_startup_s: float | None = field(
        None, range=(0.0, 0.1),
        doc="the IMU NACKs for this long after a reset or a brown-out, s (drawn: "
        "U(0.02, 0.1), spec 6.3)")
    gyro_startup_s: float | None = field(
        None, range=(0.0, 0.1),
        doc="the gyro senses no rotation for this long after waking, s (drawn: "
        "U(0.03, 0.05), spec 6.1)")
    adc_rate_error: float | None = field(
        None, range=(-0.2, 0.2),
        doc="every ADS1115's data-rate error, fraction (drawn per ADC: U(-0.1, 0.1), "
        "SBAS444E 6.5)")
    adc_gain_error: float | None = field(
        None, range=(-0.01, 0.01),
        doc="every ADS1115's gain error, fraction (drawn per ADC: U(-0.0015, 0.0015))")
    adc_offset_lsb: float | None = field(
        None, range=(-10.0, 10.0),
        doc="every ADS1115's offset, LSB at +-4.096 V (drawn per ADC: U(-3, 3))")
    gauge_soc_error_pct: float | None = field(
        None, range=(-20.0, 20.0),
        doc="the MAX17048's ModelGauge error, % of charge (it reads this much high; drawn: "
        "U(-3, 3), 19-6171 Typical Operating Characteristics)")
    gauge_vcell_error_v: float | None = field(
        None, range=(-0.05, 0.05),
        doc="the MAX17048's VCELL error, V (drawn: U(-0.0075, 0.0075), 19-6171 VERR)")
    strip_creep_per_decade: float | None = field(
        None, range=(0.0, 0.2),
        doc="the FSR strip's creep, fraction per decade of time under load (drawn: "
        "U(0, 0.05), FSR 400 data sheet: drift < 5 % per log10(time))")
    strip_hysteresis: float | None = field(
        None, range=(0.0, 0.5),
        doc="the FSR strip's hysteresis, fraction (drawn: U(0.05, 0.15); FSR 400 data "
        "sheet: +10 % average, no spread given: the +-50 % is our choice)")

    def __post_init__(self) -> None:
        for name in ("gyro_gain", "accel_gain"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                raise ValueError(f"parts.{name}: expected three values [x, y, z]")


@dataclass(frozen=True)
class FaultsSection:
    """What goes wrong with the roller's bus and parts during the session (none by
    default): random faults per I2C message, and timed events."""

    nack_rate: float = field(0.0, range=(0.0, 0.2),
                             doc="share of I2C messages not acknowledged (noise, a busy part)")
    broken_read_rate: float = field(
        0.0, range=(0.0, 0.2),
        doc="share of I2C reads that fail after the part gave its bytes (a FIFO's are lost)")
    ff_read_rate: float = field(
        0.0, range=(0.0, 0.2), doc="share of I2C reads whose bytes all arrive as 0xFF, no error")
    imu_brownouts_s: list[float] = field(
        [], range=(0.0, 7200.0),
        doc="times the MPU-6050 browns out (resets, asleep, then NACKs for its start-up time), s")
    bus_hangs_s: list[float] = field(
        [], range=(0.0, 7200.0),
        doc="times the I2C bus hangs (a part holds SDA low: every transfer times out, "
        "ETIMEDOUT) until the firmware recovers it by reopening the bus, s")
    adc_dies_s: float | None = field(
        None, range=(0.0, 7200.0), doc="time the second ADS1115 stops answering for good, s")


@dataclass(frozen=True)
class Scenario:
    """A whole scenario: [session], [person], [routine], [roller], [parts], [faults]."""

    session: SessionSection
    person: PersonSection
    routine: RoutineSection
    roller: RollerSection
    parts: PartsSection
    faults: FaultsSection

    def __post_init__(self) -> None:
        n = self.routine.lumbar_excursions or 0
        need = 20.0 + n * (self.routine.excursion_duration_s[1] + 12.0)
        if need > self.session.duration_s:
            raise ValueError(f"routine.lumbar_excursions: {n} drifts need a session of at "
                             f"least {need:.0f} s (session.duration_s)")


def scenario_from_table(table: dict[str, Any]) -> Scenario:
    """Build a scenario from a parsed TOML table (raises ``SchemaError``)."""
    return build(Scenario, table)


def default_scenario() -> Scenario:
    """The default scenario: a 10-minute session of a population-drawn person
    (the dataclass defaults, as written out in scenarios/default.toml)."""
    return build(Scenario, {})


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate a scenario TOML file; errors name the file and the key."""
    try:
        return build(Scenario, read_toml(path))
    except SchemaError as exc:
        msg = str(exc)
        raise SchemaError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
