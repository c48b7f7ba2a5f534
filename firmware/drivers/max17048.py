"""MAX17048 fuel gauge: the battery's state of charge over I2C.

The MAX17048 (Analog Devices/Maxim datasheet 19-6171) sits between the LiPo and the
PowerBoost and estimates the state of charge from the cell voltage alone (ModelGauge:
no sense resistor). Its registers are 16 bits, most significant byte first: VCELL
(0x02, 78.125 uV per LSB), SOC (0x04, 1/256 % per LSB), VERSION (0x08, 0x001X).

``FuelGauge.poll`` reads SOC and VCELL (two 2-byte reads) at most every ``POLL_S``; the
roller's loop calls it and it never raises. A gauge that does not answer (not fitted,
a loose wire) makes the level unknown (``percent`` None), is logged once and retried
every ``RETRY_S``; a part at the address that is not a MAX17048 is a fault too.
"""

from __future__ import annotations

import logging
from typing import Protocol

from firmware.clock import Clock

VCELL = 0x02
SOC = 0x04
VERSION = 0x08
VCELL_V_PER_LSB = 78.125e-6
POLL_S = 10.0  # the gauge's own SOC moves ~0.1 % a minute while rolling: often enough
RETRY_S = 5.0  # a gauge that did not answer is asked again after this, s


class WordBus(Protocol):
    """The smbus2 calls the gauge needs."""

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...


class FuelGauge:
    """The battery level from a MAX17048.

    bus: smbus2-compatible bus. address: its 7-bit address (0x36). low_pct: at or
    below this state of charge the battery is low, %.
    """

    def __init__(self, bus: WordBus, address: int, clock: Clock, log: logging.Logger,
                 low_pct: float) -> None:
        self.bus = bus
        self.address = address
        self.clock = clock
        self.log = log
        self.low_pct = low_pct
        self.percent: float | None = None  # state of charge, % (None: unknown)
        self.voltage_v: float | None = None  # cell voltage, V
        self.fault: str | None = None
        self.due = 0.0  # loop-clock time of the next poll, s
        self._checked = False  # VERSION read and found a MAX17048

    @property
    def low(self) -> bool:
        """True when the level is known and at or below ``low_pct``."""
        return self.percent is not None and self.percent <= self.low_pct

    def poll(self, now: float) -> None:
        """Read the gauge if due (loop-clock time ``now``, s); faults are logged, kept in
        ``fault`` and retried, never raised."""
        if now < self.due:
            return
        try:
            if not self._checked:
                version = self._word(VERSION)
                if version & 0xFFF0 != 0x0010:
                    self._fail(f"not a MAX17048 at 0x{self.address:02x} "
                               f"(VERSION 0x{version:04x})")
                    return
                self._checked = True
            soc = self._word(SOC)
            vcell = self._word(VCELL)
        except OSError as exc:
            self._checked = False  # the part may come back as another (or reset)
            self._fail(f"battery gauge at 0x{self.address:02x} does not answer: {exc}")
            return
        was_low = self.low
        self.percent = min(soc / 256.0, 100.0)
        self.voltage_v = vcell * VCELL_V_PER_LSB
        if self.fault is not None:
            self.log.info("battery gauge answers again: %.0f %%", self.percent)
            self.fault = None
        if self.low and not was_low:
            self.log.warning("battery low: %.0f %% (%.2f V): charge the roller",
                             self.percent, self.voltage_v)
        self.due = now + POLL_S

    def _word(self, register: int) -> int:
        msb, lsb = self.bus.read_i2c_block_data(self.address, register, 2)
        return msb << 8 | lsb

    def _fail(self, text: str) -> None:
        if self.fault is None:
            self.log.warning("%s: battery level unknown, retrying", text)
        self.fault = text
        self.percent = self.voltage_v = None
        self.due = self.clock.now() + RETRY_S
