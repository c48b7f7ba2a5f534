"""The hardware profile: hardware/roller.toml -> validated, frozen dataclasses.

The dataclass defaults are the default profile (hardware/roller.toml writes them out).
Units are SI and every key's name carries its unit. ``load_config`` raises
``ConfigError`` with one line naming the key and the allowed range.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from firmware.schema import SchemaError, build, field, read_toml

ConfigError = SchemaError

_LATERAL = [-0.175, -0.125, -0.075, -0.025, 0.025, 0.075, 0.125, 0.175]


@dataclass(frozen=True)
class RollerConfig:
    """The roller body."""

    diameter_m: float = field(0.152, range=(0.08, 0.25), doc="outer diameter of the foam")
    length_m: float = field(0.91, range=(0.3, 1.2), doc="length of the roller")
    foam_stiffness_n_per_m: float = field(
        1.0e5, range=(1.0e3, 1.0e7),
        doc="load per metre of rolling-radius loss (r_eff = r - load / stiffness)")
    imu_offset_m: float = field(0.03, range=(0.0, 0.1), doc="distance of the IMU from the axis")


@dataclass(frozen=True)
class ImuConfig:
    """The MPU-6050 and how it sits in the roller."""

    bus: int = field(1, range=(0, 31), doc="I2C bus number (/dev/i2c-N)")
    address: int = field(0x68, choices=(0x68, 0x69), doc="I2C address (AD0 low: 0x68)")
    roller_axis: str = field("x", choices=("x", "y", "z"), doc="sensor axis along the roller")
    roller_axis_sign: int = field(1, choices=(-1, 1), doc="+1 if that axis points to the HEAD end")
    sample_rate_hz: float = field(200.0, range=(10.0, 1000.0), doc="FIFO sample rate")
    gyro_range_dps: int = field(500, choices=(250, 500, 1000, 2000),
                                doc="gyro full scale, deg/s (500: 0.6 m/s on a 7 cm radius)")
    accel_range_g: int = field(2, choices=(2, 4, 8, 16), doc="accelerometer full scale, g")
    dlpf_hz: int = field(44, choices=(260, 184, 94, 44, 21, 10, 5), doc="digital low-pass filter")

    def __post_init__(self) -> None:
        base = 8000.0 if self.dlpf_hz == 260 else 1000.0
        div = base / self.sample_rate_hz - 1
        if abs(div - round(div)) > 1e-6 or not 0 <= round(div) <= 255:
            raise ValueError(
                f"imu.sample_rate_hz: {self.sample_rate_hz} is not {base:g} Hz / (1 + n), n 0..255")


@dataclass(frozen=True)
class AdcConfig:
    """The ADS1115 converters of the pressure strip (4 single-ended channels each)."""

    bus: int = field(1, range=(0, 31), doc="I2C bus number")
    addresses: list[int] = field([0x48, 0x49], range=(0x48, 0x4B),
                                 doc="ADC addresses, in zone order")
    data_rate_sps: int = field(860, choices=(8, 16, 32, 64, 128, 250, 475, 860), doc="data rate")
    full_scale_v: float = field(4.096, choices=(6.144, 4.096, 2.048, 1.024, 0.512, 0.256),
                                doc="PGA full scale")
    scan_rate_hz: float = field(50.0, range=(1.0, 200.0), doc="how often every zone is read")

    def __post_init__(self) -> None:
        if not 1 <= len(self.addresses) <= 4 or len(set(self.addresses)) != len(self.addresses):
            raise ValueError("adc.addresses: 1 to 4 distinct addresses from 0x48 .. 0x4B")


@dataclass(frozen=True)
class ZonesConfig:
    """The FSR bands of the pressure strip, each one resistor of a divider to the ADC."""

    count: int = field(8, range=(1, 16), doc="number of bands")
    lateral_positions_m: list[float] = field(_LATERAL, range=(-0.6, 0.6),
                                             doc="band centres along the roller from its middle")
    divider_resistor_ohm: float = field(1000.0, range=(10.0, 1.0e6), doc="divider resistor")
    supply_v: float = field(3.3, range=(1.8, 5.5), doc="divider supply (the ADC's VDD)")
    sensitivity_s_per_n: list[float] = field([2.0e-4] * 8, range=(1.0e-7, 1.0e-1),
                                             doc="band conductance per newton (calibration)")
    contact_threshold_n: float = field(20.0, range=(0.0, 500.0),
                                       doc="total load above which a body lies on the roller")
    seam_angle_deg: float = field(180.0, range=(0.0, 360.0),
                                  doc="roll angle at which the band seams are on top")
    dead_arc_deg: float = field(12.0, range=(0.0, 60.0), doc="width of the seam's dead arc")
    hysteresis: float = field(
        0.10, range=(0.0, 0.5),
        doc="the FSRs' hysteresis: unloading reads this fraction above loading (FSR 400: "
        "+10 % average, no spread given; the roller does not learn it, and a strip's own "
        "value is not simply better over long sessions: docs/algorithms.md)")
    creep_per_decade: float = field(
        0.025, range=(0.0, 0.2),
        doc="the FSRs' creep undone: conductance up by this fraction per decade of time "
        "under load (FSR 400: < 5 %; the default is the range's middle)")

    def __post_init__(self) -> None:
        for name in ("lateral_positions_m", "sensitivity_s_per_n"):
            if len(getattr(self, name)) != self.count:
                raise ValueError(f"zones.{name}: needs {self.count} values (zones.count)")


@dataclass(frozen=True)
class PinsConfig:
    """GPIO pins, BCM numbering."""

    motor_pwm: int = field(18, range=(0, 27), doc="vibration motor driver (PWM)")
    button: int = field(17, range=(0, 27), doc="push button to ground")
    led: int = field(27, range=(0, 27), doc="status LED")
    adc_ready: list[int] = field([22, 23], range=(0, 27),
                                 doc="ALERT/RDY of each ADC, in adc.addresses order (open "
                                     "drain, internal pull-up); [] polls the ADCs over I2C")

    def __post_init__(self) -> None:
        pins = [self.motor_pwm, self.button, self.led, *self.adc_ready]
        if len(set(pins)) != len(pins):
            raise ValueError("pins: motor_pwm, button, led and adc_ready must all be "
                             "different pins")


@dataclass(frozen=True)
class FenceConfig:
    """The on-device lumbar fence (the host moves it once it knows the body)."""

    enabled: bool = field(True, doc="buzz by itself below the fence")
    position_m: float = field(0.06, range=(0.0, 0.5),
                              doc="fence, m toward the feet from the zero")
    hysteresis_m: float = field(0.01, range=(0.0, 0.1), doc="back above by this much to stop")
    approach_m: float = field(0.02, range=(0.0, 0.1), doc="gentle cue within this above it")


@dataclass(frozen=True)
class FramesConfig:
    """Output frames."""

    rate_hz: float = field(100.0, range=(10.0, 200.0), doc="frames per second")


@dataclass(frozen=True)
class BleConfig:
    """The Bluetooth LE link."""

    passkey: int | None = field(None, range=(0, 999999),
                                doc="static 6-digit passkey for MITM-protected pairing "
                                    "(printed on the roller); omitted: Just Works")
    pairing_window_s: float = field(60.0, range=(10.0, 600.0),
                                    doc="how long the pairing window stays open")


@dataclass(frozen=True)
class BatteryConfig:
    """The MAX17048 fuel gauge on the LiPo."""

    gauge: bool = field(True, doc="a MAX17048 is fitted (false: the level is unknown)")
    address: int = field(0x36, choices=(0x36,), doc="its I2C address (on imu.bus)")
    low_pct: float = field(10.0, range=(1.0, 50.0),
                           doc="at or below this state of charge the battery is low, %")


@dataclass(frozen=True)
class Config:
    """A whole hardware profile."""

    roller: RollerConfig
    imu: ImuConfig
    adc: AdcConfig
    zones: ZonesConfig
    pins: PinsConfig
    fence: FenceConfig
    frames: FramesConfig
    ble: BleConfig
    battery: BatteryConfig

    def __post_init__(self) -> None:
        if self.zones.count > 4 * len(self.adc.addresses):
            raise ValueError("zones.count: more zones than ADC channels (4 per adc.addresses)")
        if self.pins.adc_ready and len(self.pins.adc_ready) != len(self.adc.addresses):
            raise ValueError("pins.adc_ready: one pin per adc.addresses entry, or none")
        ratio = self.imu.sample_rate_hz / self.frames.rate_hz
        if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
            raise ValueError("frames.rate_hz: must divide imu.sample_rate_hz")


def default_config() -> Config:
    """The default profile (the dataclass defaults, as in hardware/roller.toml)."""
    return build(Config, {})


def load_config(path: str | Path | None = None) -> Config:
    """Load and validate a hardware profile; ``None`` loads hardware/roller.toml."""
    if path is None:
        return default_config()
    return build(Config, read_toml(path))
