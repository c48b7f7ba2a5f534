"""ADS1115 driver (TI SBAS444E) and the non-blocking scanner of the pressure zones.

``Ads1115`` is a thin register-level driver over an smbus2-compatible bus (the real
``smbus2.SMBus`` or ``firmware.sim.bus.SimBus``). ``ZoneScanner`` reads every zone once
per scan with single-shot conversions, all ADCs converting the same channel at once,
and never blocks: the loop calls ``service(now)`` at ``next_due``.

Steady state costs three bus calls per conversion (write config, read config for OS,
read conversion). Every conversion writes the full config, so a spontaneous reset of an
ADC costs at most the conversion it interrupted (spotted by the config read-back).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from firmware.clock import Clock
from firmware.config import AdcConfig
from firmware.samples import ZoneScan

REG_CONVERSION = 0x00
REG_CONFIG = 0x01
OS_BIT = 0x8000
START_UP_S = 25e-6
"""Single-shot power-up time, s (SBAS444 7.4.2.1)."""
RATE_TOLERANCE = 0.10
"""Data-rate variation over temperature and parts, fraction (SBAS444 5.5)."""

_PGA = {6.144: 0, 4.096: 1, 2.048: 2, 1.024: 3, 0.512: 4, 0.256: 5}
_DR = {8: 0, 16: 1, 32: 2, 64: 3, 128: 4, 250: 5, 475: 6, 860: 7}
_COMP_DISABLED = 0x0003   # COMP_QUE = 11: comparator off, ALERT/RDY high-Z
_SINGLE_SHOT = 0x0100     # MODE = 1


class SMBusLike(Protocol):
    """The two smbus2.SMBus calls the driver uses."""

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int],
                             force: bool | None = None) -> None: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]: ...


def config_word(channel: int, full_scale_v: float, data_rate_sps: int) -> int:
    """Config register value that starts one single-shot conversion of AIN``channel``.

    channel: 0..3 (AINx vs GND); full_scale_v: PGA range, +-V; data_rate_sps: SPS.
    """
    if not 0 <= channel <= 3:
        raise ValueError(f"channel {channel}: the ADS1115 has AIN0..AIN3")
    try:
        pga, dr = _PGA[full_scale_v], _DR[data_rate_sps]
    except KeyError as exc:
        raise ValueError(f"no such ADS1115 setting: {exc}") from None
    return OS_BIT | (4 + channel) << 12 | pga << 9 | _SINGLE_SHOT | dr << 5 | _COMP_DISABLED


def conversion_time_s(data_rate_sps: float) -> float:
    """Worst-case single-shot conversion time, s: start-up + 1/DR at a 10 % slow clock."""
    return START_UP_S + 1.0 / (data_rate_sps * (1.0 - RATE_TOLERANCE))


class Ads1115:
    """One ADS1115 at ``address`` on ``bus`` (smbus2.SMBus-like). Bus errors raise OSError."""

    def __init__(self, bus: SMBusLike, address: int) -> None:
        self.bus = bus
        self.address = address

    def write_config(self, word: int) -> None:
        """Write the 16-bit config register (one I2C transaction)."""
        self.bus.write_i2c_block_data(self.address, REG_CONFIG, [word >> 8 & 0xFF, word & 0xFF])

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
        code = msb << 8 | lsb
        return code - 0x10000 if code & 0x8000 else code

    @staticmethod
    def conversion_time_s(data_rate_sps: float) -> float:
        """Worst-case single-shot conversion time, s (see module function)."""
        return conversion_time_s(data_rate_sps)


# What one ADC is doing for the current channel.
_DONE, _START, _CONVERTING = 0, 1, 2


class _Converter:
    """Scanner bookkeeping for one ADC."""

    __slots__ = ("driver", "first_zone", "zones", "state", "due", "started", "errors",
                 "faulted", "next_reinit")

    def __init__(self, driver: Ads1115, first_zone: int, zones: int) -> None:
        self.driver = driver
        self.first_zone = first_zone
        self.zones = zones            # channels in use on this ADC
        self.state = _DONE
        self.due = 0.0                # when the next step for this ADC is due, s
        self.started = 0.0            # when its conversion was started, s
        self.errors = 0               # consecutive bus errors
        self.faulted = False
        self.next_reinit = 0.0        # next re-initialisation attempt while faulted, s


class ZoneScanner:
    """Reads every pressure zone once per scan, as a non-blocking state machine.

    bus: smbus2.SMBus-like; adc: the ADC profile; zone_count: zones in use (zone i is
    AIN(i % 4) of ``adc.addresses[i // 4]``); clock: the loop clock (s); logger: where
    fault episodes are reported (default: this module's logger).

    Call ``service(now)`` at or after ``next_due``; it returns a ``ZoneScan`` when a scan
    completes. Bus trouble never raises: an OSError is retried once, then the ADC is
    faulted (its zones ``ok=False`` holding their last good code), re-initialised every
    ``REINIT_S`` and logged once per episode. A conversion not done after ``STUCK_FACTOR``
    conversion times is a fault too.
    """

    REINIT_S = 1.0
    """Interval between re-initialisation attempts of a faulted ADC, s."""
    RETRY_S = 0.5e-3
    """Delay before retrying a failed transaction, s."""
    STUCK_FACTOR = 3.0
    """A conversion still running after this many conversion times is stuck."""

    def __init__(self, bus: SMBusLike, adc: AdcConfig, zone_count: int, clock: Clock,
                 logger: logging.Logger | None = None) -> None:
        if not 1 <= zone_count <= 4 * len(adc.addresses):
            raise ValueError(f"zone_count {zone_count}: 1..{4 * len(adc.addresses)} zones")
        self.clock = clock
        self.log = logger or logging.getLogger(__name__)
        self.period_s = 1.0 / adc.scan_rate_hz
        self.conversion_s = conversion_time_s(adc.data_rate_sps)
        self.poll_s = max(100e-6, self.conversion_s / 8.0)
        self._words = [config_word(ch, adc.full_scale_v, adc.data_rate_sps)
                       for ch in range(min(4, zone_count))]
        self._adcs = [_Converter(Ads1115(bus, address), 4 * i, min(4, zone_count - 4 * i))
                      for i, address in enumerate(adc.addresses) if 4 * i < zone_count]
        self._codes = [0] * zone_count
        self._ok = [False] * zone_count
        self._by_channel = [[a for a in self._adcs if ch < a.zones]
                            for ch in range(len(self._words))]
        self._channel = -1            # channel being converted; -1 between scans
        self._active: list[_Converter] = []
        self._scan_start = -math.inf
        self.next_due = clock.now()
        """When ``service`` has work to do next, loop-clock time, s."""
        self.scans = 0
        self.faults = 0
        self.bus_errors = 0
        self.resets = 0
        """Conversions lost to an ADC found reset (config read back differs)."""

    @property
    def faulted_addresses(self) -> list[int]:
        """Addresses of the ADCs in a fault episode."""
        return [a.driver.address for a in self._adcs if a.faulted]

    def service(self, now: float) -> ZoneScan | None:
        """Do the work due at ``now`` (s); return a scan when one completes."""
        if now < self.next_due:
            return None
        if self._channel < 0:
            self._scan_start = now
            self._ok = [False] * len(self._codes)
            self._begin_channel(0, now)
        while True:
            due = math.inf
            for adc in self._active:
                if adc.state != _DONE:
                    t = self.clock.now()
                    if t >= adc.due:
                        self._step(adc, t)
                    if adc.state != _DONE and adc.due < due:
                        due = adc.due
            if due < math.inf:
                self.next_due = due
                return None
            if self._channel + 1 < len(self._words):
                self._begin_channel(self._channel + 1, self.clock.now())
                continue
            return self._finish_scan()

    # -- steps --------------------------------------------------------------------
    def _begin_channel(self, channel: int, now: float) -> None:
        self._channel = channel
        self._active = self._by_channel[channel]
        for adc in self._active:
            if adc.faulted and now < adc.next_reinit:
                adc.state = _DONE
            else:
                if adc.faulted:
                    adc.next_reinit = now + self.REINIT_S
                adc.state, adc.due = _START, now

    def _step(self, adc: _Converter, t: float) -> None:
        if adc.state == _START:
            try:
                adc.driver.write_config(self._words[self._channel])
            except OSError as exc:
                self._bus_error(adc, t, exc)
                return
            adc.started = self.clock.now()
            adc.state, adc.due, adc.errors = _CONVERTING, adc.started + self.conversion_s, 0
            return
        word = self._words[self._channel]
        try:
            config = adc.driver.read_config()
            fresh = bool(config & OS_BIT) and not (config ^ word) & 0x7FFF
            code = adc.driver.read_code() if fresh else 0
        except OSError as exc:
            self._bus_error(adc, t, exc)
            return
        adc.errors = 0
        if not config & OS_BIT:
            if t - adc.started > self.STUCK_FACTOR * self.conversion_s:
                self._fault(adc, t, "conversion never completes (stuck)")
            else:
                adc.due = t + self.poll_s
            return
        if not fresh:  # the config read back differs: the ADC was reset under us
            self.resets += 1
            adc.state, adc.due = _START, t
            return
        zone = adc.first_zone + self._channel
        self._codes[zone] = code
        self._ok[zone] = True
        adc.state = _DONE
        if adc.faulted:
            adc.faulted = False
            self.log.info("ADS1115 %#04x: answering again, zones %d-%d back", adc.driver.address,
                          adc.first_zone + 1, adc.first_zone + adc.zones)

    def _bus_error(self, adc: _Converter, t: float, exc: OSError) -> None:
        self.bus_errors += 1
        if adc.faulted:
            adc.state = _DONE  # a failed re-initialisation: try again in REINIT_S
            return
        adc.errors += 1
        if adc.errors >= 2:
            self._fault(adc, t, f"I2C error ({exc})")
        else:
            adc.due = t + self.RETRY_S

    def _fault(self, adc: _Converter, t: float, reason: str) -> None:
        adc.state, adc.errors = _DONE, 0
        if adc.faulted:
            return
        adc.faulted = True
        adc.next_reinit = t + self.REINIT_S
        self.faults += 1
        self.log.warning("ADS1115 %#04x: %s; zones %d-%d flagged, re-initialising every %g s",
                         adc.driver.address, reason, adc.first_zone + 1,
                         adc.first_zone + adc.zones, self.REINIT_S)

    def _finish_scan(self) -> ZoneScan:
        now = self.clock.now()
        self._channel = -1
        self._active = []
        self.next_due = max(self._scan_start + self.period_s, now)
        self.scans += 1
        return ZoneScan(t=now, raw=np.array(self._codes, dtype=np.int16),
                        ok=np.array(self._ok, dtype=bool))


__all__ = ["Ads1115", "SMBusLike", "ZoneScanner", "config_word", "conversion_time_s"]
