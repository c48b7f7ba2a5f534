"""MAX17048 fuel gauge: the battery's state of charge over I2C.

The MAX17048 (Analog Devices/Maxim datasheet 19-6171) sits between the LiPo and the
PowerBoost and estimates the state of charge from the cell voltage alone (ModelGauge:
no sense resistor). Its registers are 16 bits, most significant byte first: VCELL
(0x02, 78.125 uV per LSB), SOC (0x04, 1/256 % per LSB), VERSION (0x08, 0x001X).

``FuelGauge.poll`` reads SOC and VCELL (two 2-byte reads) at most every ``POLL_S``; the
roller's loop calls it and it never raises. A gauge that does not answer (not fitted,
a loose wire) makes the level unknown (``percent`` None), is logged once and retried
every ``RETRY_S``; a part at the address that is not a MAX17048 is a fault too.

SOC is the gauge's estimate, not the truth. After a power-on reset (STATUS.RI: the
cell was connected, the part lost power, or it was reset) its first estimate is taken
from the cell's voltage under load and reads low for a while: the driver logs it,
notes it (``first_estimate``, for the rest of the run) and clears RI. A reading no
gauge can give (SOC over 100 %, VCELL outside ``VCELL_RANGE_V``: a bus that read 0xFF,
a part in a bad state) is not a reading: the last level stands and the gauge is asked
again after ``RETRY_S``; ``IMPLAUSIBLE_RESETS_AFTER`` of them in a row reset the part
(CMD 0x5400, at most once per ``RESET_EVERY_S``; else the level becomes unknown). The
MAX17048 resets before it acknowledges that command, so the write ends in a NACK
(``OSError``), which ``reset`` expects.
"""

from __future__ import annotations

import logging
from typing import Protocol

from firmware.clock import Clock
from firmware.drivers.bus_watch import BusWatch

VCELL = 0x02
SOC = 0x04
VERSION = 0x08
STATUS = 0x1A
CMD = 0xFE
STATUS_RI = 0x0100  # reset indicator
RESET_COMMAND = 0x5400
VCELL_V_PER_LSB = 78.125e-6
VCELL_RANGE_V = (2.5, 4.5)  # a LiPo's cell voltage as the gauge can read it, V
IMPLAUSIBLE_RESETS_AFTER = 3  # implausible readings in a row before the part is reset
RESET_EVERY_S = 3600.0  # the part is reset at most this often, s
RESET_SETTLE_S = 0.5  # a reset part's first VCELL and SOC are ready after this, s
HUNG_RETRY_S = 1.0  # a poll that met a hung bus is tried again after this, s
POLL_S = 10.0  # the gauge's own SOC moves ~0.1 % a minute while rolling: often enough
RETRY_S = 5.0  # a gauge that did not answer is asked again after this, s


class WordBus(Protocol):
    """The smbus2 calls the gauge needs."""

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None: ...


class FuelGauge:
    """The battery level from a MAX17048.

    bus: smbus2-compatible bus. address: its 7-bit address (0x36). low_pct: at or
    below this state of charge the battery is low, %. watch: where bus errors are
    reported (a hung bus is the bus's fault, not the gauge's: the level stands and the
    gauge is asked again after ``HUNG_RETRY_S``).
    """

    def __init__(self, bus: WordBus, address: int, clock: Clock, log: logging.Logger,
                 low_pct: float, watch: BusWatch | None = None) -> None:
        self.bus = bus
        self.watch = watch or BusWatch()
        self.address = address
        self.clock = clock
        self.log = log
        self.low_pct = low_pct
        self.percent: float | None = None  # state of charge, % (None: unknown)
        self.voltage_v: float | None = None  # cell voltage, V
        self.fault: str | None = None
        self.due = 0.0  # loop-clock time of the next poll, s
        self.first_estimate = False  # SOC is the first estimate after a reset (reads low)
        self.resets = 0  # resets this driver made
        self._checked = False  # VERSION read and found a MAX17048
        self._implausible = 0  # implausible readings in a row
        self._reset_at = -RESET_EVERY_S  # loop-clock time of the last reset, s

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
                self._check_reset()
            soc = self._word(SOC)
            vcell = self._word(VCELL)
        except OSError as exc:
            self._checked = False  # the part may come back as another (or reset)
            if self.watch.error(exc):
                self.due = now + HUNG_RETRY_S
                return
            self._fail(f"battery gauge at 0x{self.address:02x} does not answer: {exc}")
            return
        volts = vcell * VCELL_V_PER_LSB
        if soc > 100.5 * 256 or not VCELL_RANGE_V[0] <= volts <= VCELL_RANGE_V[1]:
            self._on_implausible(now, soc, volts)
            return
        self._implausible = 0
        was_low = self.low
        self.percent = min(soc / 256.0, 100.0)
        self.voltage_v = volts
        if self.fault is not None:
            self.log.info("battery gauge answers again: %.0f %%", self.percent)
            self.fault = None
        if self.low and not was_low:
            self.log.warning("battery low: %.0f %% (%.2f V): charge the roller",
                             self.percent, self.voltage_v)
        self.due = now + POLL_S

    def reset(self) -> None:
        """Reset the gauge (CMD 0x5400: a power-on reset, a new first estimate). The part
        resets before it acknowledges, so the write's NACK (``OSError``) is expected; a
        part that is gone shows at the next poll. The level is unknown until then."""
        self.resets += 1
        self._reset_at = self.clock.now()
        try:
            self.bus.write_i2c_block_data(self.address, CMD,
                                          [RESET_COMMAND >> 8, RESET_COMMAND & 0xFF])
        except OSError:
            pass  # as on silicon: it reset before the ACK
        self._checked = False  # the next poll sees STATUS.RI and clears it
        self.percent = self.voltage_v = None
        self.due = self.clock.now() + RESET_SETTLE_S

    def _check_reset(self) -> None:
        """After a power-on reset (STATUS.RI): note the first estimate, clear RI."""
        status = self._word(STATUS)
        if not status & STATUS_RI:
            return
        self.first_estimate = True
        self.log.info("battery gauge at 0x%02x was reset: its first estimate is taken "
                      "under load and reads low until it settles", self.address)
        cleared = status & ~STATUS_RI
        self.bus.write_i2c_block_data(self.address, STATUS, [cleared >> 8, cleared & 0xFF])

    def _on_implausible(self, now: float, soc: int, volts: float) -> None:
        self._implausible += 1
        if self._implausible < IMPLAUSIBLE_RESETS_AFTER:
            self.due = now + RETRY_S  # one bad read (a bus's 0xFF): the last level stands
            return
        text = (f"battery gauge at 0x{self.address:02x} reads what no gauge can "
                f"(SOC 0x{soc:04x}, VCELL {volts:.2f} V) {self._implausible} times in a row")
        if now - self._reset_at >= RESET_EVERY_S:
            self.log.warning("%s: resetting it", text)
            self._implausible = 0
            self.reset()
            return
        self._fail(text)

    def _word(self, register: int) -> int:
        msb, lsb = self.bus.read_i2c_block_data(self.address, register, 2)
        return msb << 8 | lsb

    def _fail(self, text: str) -> None:
        if self.fault is None:
            self.log.warning("%s: battery level unknown, retrying", text)
        self.fault = text
        self.percent = self.voltage_v = None
        self.due = self.clock.now() + RETRY_S
