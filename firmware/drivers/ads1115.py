"""ADS1115 driver (TI SBAS444E): a thin register-level driver over an smbus2-compatible
bus (the real ``smbus2.SMBus`` or ``firmware.sim.bus.SimBus``), and the config words of
single-shot conversions. ``firmware.drivers.zone_scanner`` reads the pressure zones
with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

REG_CONVERSION = 0x00
REG_CONFIG = 0x01
REG_LO_THRESH = 0x02
REG_HI_THRESH = 0x03
OS_BIT = 0x8000
START_UP_S = 25e-6
"""Single-shot power-up time, s (SBAS444 7.4.2.1)."""
RATE_TOLERANCE = 0.10
"""Data-rate variation over temperature and parts, fraction (SBAS444 5.5)."""
READY_THRESHOLDS = (0x0000, 0x8000)
"""Lo_thresh, Hi_thresh that make ALERT/RDY the conversion-ready pin (MSBs 0 and 1)."""

_PGA = {6.144: 0, 4.096: 1, 2.048: 2, 1.024: 3, 0.512: 4, 0.256: 5}
_DR = {8: 0, 16: 1, 32: 2, 64: 3, 128: 4, 250: 5, 475: 6, 860: 7}
_COMP_DISABLED = 0x0003   # COMP_QUE = 11: comparator off, ALERT/RDY high-Z
_COMP_READY = 0x0000      # COMP_QUE = 00 (pin on), COMP_POL = 0 (active low)
_SINGLE_SHOT = 0x0100     # MODE = 1


class SMBusLike(Protocol):
    """The smbus2.SMBus calls the driver uses (``i2c_rdwr`` too, when the bus has it)."""

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int],
                             force: bool | None = None) -> None: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]: ...


def config_word(channel: int, full_scale_v: float, data_rate_sps: int,
                ready_pin: bool = False) -> int:
    """Config register value that starts one single-shot conversion of AIN``channel``.

    channel: 0..3 (AINx vs GND); full_scale_v: PGA range, +-V; data_rate_sps: SPS;
    ready_pin: keep ALERT/RDY on (COMP_QUE = 00, active low) for conversion ready.
    """
    if not 0 <= channel <= 3:
        raise ValueError(f"channel {channel}: the ADS1115 has AIN0..AIN3")
    try:
        pga, dr = _PGA[full_scale_v], _DR[data_rate_sps]
    except KeyError as exc:
        raise ValueError(f"no such ADS1115 setting: {exc}") from None
    comp = _COMP_READY if ready_pin else _COMP_DISABLED
    return OS_BIT | (4 + channel) << 12 | pga << 9 | _SINGLE_SHOT | dr << 5 | comp


def conversion_time_s(data_rate_sps: float) -> float:
    """Worst-case single-shot conversion time, s: start-up + 1/DR at a 10 % slow clock."""
    return START_UP_S + 1.0 / (data_rate_sps * (1.0 - RATE_TOLERANCE))


def _signed(msb: int, lsb: int) -> int:
    code = msb << 8 | lsb
    return code - 0x10000 if code & 0x8000 else code


class Ads1115:
    """One ADS1115 at ``address`` on ``bus`` (smbus2.SMBus-like). Bus errors raise OSError."""

    def __init__(self, bus: SMBusLike, address: int) -> None:
        self.bus = bus
        self.address = address

    def write_register(self, pointer: int, word: int) -> None:
        """Write a 16-bit register (config or a threshold; one I2C transaction)."""
        self.bus.write_i2c_block_data(self.address, pointer, [word >> 8 & 0xFF, word & 0xFF])

    def write_config(self, word: int) -> None:
        """Write the 16-bit config register (one I2C transaction)."""
        self.write_register(REG_CONFIG, word)

    def read_config(self) -> int:
        """Read the 16-bit config register (OS reads 1 when no conversion is running)."""
        msb, lsb = self.bus.read_i2c_block_data(self.address, REG_CONFIG, 2)
        return msb << 8 | lsb

    def configure_single(self, channel: int, full_scale_v: float, data_rate_sps: int) -> None:
        """Start one single-shot conversion of AIN``channel`` vs GND."""
        self.write_config(config_word(channel, full_scale_v, data_rate_sps))

    def conversion_ready(self) -> bool:
        """True when no conversion is in progress (OS bit)."""
        return bool(self.read_config() & OS_BIT)

    def read_code(self) -> int:
        """The conversion register as a signed 16-bit code."""
        msb, lsb = self.bus.read_i2c_block_data(self.address, REG_CONVERSION, 2)
        return _signed(msb, lsb)

    def enable_ready_pin(self) -> None:
        """Make ALERT/RDY the conversion-ready pin (thresholds; the config word does the
        rest with ``config_word(..., ready_pin=True)``)."""
        lo, hi = READY_THRESHOLDS
        self.write_register(REG_LO_THRESH, lo)
        self.write_register(REG_HI_THRESH, hi)

    @staticmethod
    def conversion_time_s(data_rate_sps: float) -> float:
        """Worst-case single-shot conversion time, s (see module function)."""
        return conversion_time_s(data_rate_sps)


__all__ = ["OS_BIT", "READY_THRESHOLDS", "Ads1115", "SMBusLike", "config_word",
           "conversion_time_s"]
