"""Register-level MAX17048 fuel gauge on the emulated I2C bus, over a draining LiPo.

The cell is a 2000 mAh LiPo drawn at a constant current (the power budget of
hardware/BUILD.md: ~300 mA while rolling), so the true state of charge falls linearly
with the simulated time. Registers as the datasheet (19-6171) has them: 16 bits, MSB
first, a write message is a register pointer then whole words; reads go on from the
pointer (and on to the next register). VCELL follows a typical LiPo open-circuit curve
less the cell's IR drop, plus the part's voltage error.

SOC is the gauge's ModelGauge estimate, not the truth (``GaugePart`` in
``firmware.sim.parts`` draws this part's errors):

- a steady error of the model, ``part.soc_error_pct``;
- its first estimate after a power-on reset is the SOC of the open-circuit curve at
  the VCELL it reads then: under load that is the loaded voltage, so the estimate
  starts low by the IR drop's worth of charge (several % at 0.3 A) and converges on
  the model with time constant ``SETTLE_S``;
- hibernation: after ``HIBERNATE_AFTER_S`` with the rate (CRATE) below HIBRT's HibThr
  (0.208 %/h per LSB), the gauge hibernates (MODE.HibStat) and updates VCELL and SOC
  every ``HIBERNATE_UPDATE_S`` instead of every ``ACTIVE_UPDATE_S``; it wakes when
  VCELL leaves the open-circuit voltage by more than ActThr (1.25 mV per LSB). HIBRT
  0x0000 never hibernates, 0xFFFF always. At the default 0x8030 (26.6 %/h, 60 mV) a
  roller drawing 15 %/h with a 45 mV IR drop hibernates.

CMD 0x5400 resets it (POR: STATUS.RI set, CONFIG to 0x971C, a new first estimate) and,
as on silicon, the part resets before it acknowledges: the write is NACKed. Quick
writes and writes of a pointer or of half a word are acknowledged (a half word is not
stored). ``settled`` (the default) is a gauge long on its cell: its first estimate has
settled, RI was cleared, it hibernates. ``vanish`` makes it NACK everything (a loose
wire) until ``reappear`` (a power-on reset: it lost power).
"""

from __future__ import annotations

import bisect
import math

from firmware.sim.bus import Nack
from firmware.sim.parts import GaugePart

VCELL, SOC, MODE, VERSION, HIBRT, CONFIG = 0x02, 0x04, 0x06, 0x08, 0x0A, 0x0C
VALRT, CRATE, VRESET, STATUS, CMD = 0x14, 0x16, 0x18, 0x1A, 0xFE
VERSION_VALUE = 0x0012
CONFIG_DEFAULT = 0x971C
HIBRT_DEFAULT = 0x8030
VALRT_DEFAULT = 0x00FF
VRESET_DEFAULT = 0x9600
STATUS_RI = 0x0100  # reset indicator (STATUS high byte bit 0)
MODE_HIBSTAT = 0x1000  # hibernating (MODE bit 12, read-only)
RESET_COMMAND = 0x5400
ACTIVE_UPDATE_S = 1.0
"""VCELL and SOC update period in active mode, s (the datasheet: 250 ms for VCELL,
the model every second; one period is kept for both)."""
HIBERNATE_UPDATE_S = 45.0
"""Update period in hibernate mode, s (datasheet: ADC and SOC every 45 s)."""
HIBERNATE_AFTER_S = 360.0
"""The rate must stay below HibThr this long before the gauge hibernates, s (6 min)."""
SETTLE_S = 1800.0
"""Time constant of the first estimate's error after a reset, s: a modelling choice
(ModelGauge corrects it as the cell's voltage follows its model), not a datasheet
figure."""
CRATE_PCT_H_PER_LSB = 0.208
ACTTHR_V_PER_LSB = 1.25e-3
VCELL_V_PER_LSB = 78.125e-6
_WRITABLE = {MODE, HIBRT, CONFIG, VALRT, VRESET, STATUS, CMD}
# typical LiPo open-circuit voltage against state of charge (%, V)
_OCV = [(0.0, 3.30), (5.0, 3.55), (10.0, 3.65), (20.0, 3.72), (40.0, 3.79),
        (60.0, 3.87), (80.0, 4.00), (100.0, 4.18)]
_OCV_PCT = [p for p, _ in _OCV]
_OCV_V = [v for _, v in _OCV]


def open_circuit_v(pct: float) -> float:
    """The cell's open-circuit voltage at state of charge ``pct`` (%), V."""
    i = min(max(bisect.bisect_right(_OCV_PCT, pct), 1), len(_OCV) - 1)
    (p0, v0), (p1, v1) = _OCV[i - 1], _OCV[i]
    return v0 + (v1 - v0) * (pct - p0) / (p1 - p0)


def charge_at_v(volts: float) -> float:
    """The state of charge whose open-circuit voltage is ``volts`` (V), % (0..100)."""
    i = min(max(bisect.bisect_right(_OCV_V, volts), 1), len(_OCV) - 1)
    (p0, v0), (p1, v1) = _OCV[i - 1], _OCV[i]
    return min(max(p0 + (p1 - p0) * (volts - v0) / (v1 - v0), 0.0), 100.0)


class Max17048Sim:
    """The gauge and its cell. clock: the bus's clock (``now()``, s). start_pct: true
    state of charge at time 0, %. draw_a: current drawn from the cell, A.
    capacity_ah: Ah. part: this gauge's errors (default: an ideal part). settled: the
    gauge has long been on its cell (see the module docstring)."""

    def __init__(self, clock: object, start_pct: float = 80.0, draw_a: float = 0.30,
                 capacity_ah: float = 2.0, resistance_ohm: float = 0.15,
                 part: GaugePart | None = None, settled: bool = True) -> None:
        self.clock = clock
        self.start_pct = start_pct
        self.draw_a = draw_a
        self.capacity_ah = capacity_ah
        self.resistance_ohm = resistance_ohm
        self.part = part or GaugePart()
        self.present = True
        self.regs: dict[int, int] = {}
        self.resets = 0  # power-on resets so far (by CMD or by losing power)
        self._pointer = 0
        self._latched_t = -math.inf
        self._reset_t = 0.0
        self._first_error = 0.0  # the first estimate's error at the reset, %
        self._slow_since = 0.0  # since when the rate has been below HibThr, s
        self.por()
        if settled:
            self.settle()

    def settle(self) -> None:
        """As if long on its cell since its last reset: the first estimate's error gone,
        RI cleared (by an earlier boot), hibernating if the rate is low."""
        self._first_error = 0.0
        self._slow_since = self._now() - HIBERNATE_AFTER_S
        self.regs[STATUS] = 0
        self._latched_t = -math.inf
        self._update()

    def _now(self) -> float:
        return float(self.clock.now())  # type: ignore[attr-defined]

    def por(self) -> None:
        """Power-on reset: the registers to their defaults (STATUS.RI set) and a new
        first estimate, from the VCELL read now (under load)."""
        self.resets += 1
        self.regs = {MODE: 0, VERSION: VERSION_VALUE, HIBRT: HIBRT_DEFAULT,
                     CONFIG: CONFIG_DEFAULT, VALRT: VALRT_DEFAULT, CRATE: 0,
                     VRESET: VRESET_DEFAULT, STATUS: STATUS_RI, CMD: 0xFFFF}
        t = self._now()
        self._reset_t = self._slow_since = t
        true = self.true_percent(t)
        self._first_error = charge_at_v(self.cell_v(true)) - (true + self.part.soc_error_pct)
        self._latched_t = -math.inf
        self._update()

    # -- the cell ---------------------------------------------------------------------
    def true_percent(self, t: float) -> float:
        """The cell's state of charge at time ``t`` (s), %."""
        used = self.draw_a * t / 3600.0 / self.capacity_ah * 100.0
        return min(max(self.start_pct - used, 0.0), 100.0)

    def cell_v(self, pct: float) -> float:
        """The cell's voltage under load at state of charge ``pct`` (%), V."""
        return open_circuit_v(pct) - self.draw_a * self.resistance_ohm

    def estimate_percent(self, t: float) -> float:
        """The gauge's ModelGauge estimate at time ``t`` (s), % (before the update
        period's latching)."""
        first = self._first_error * math.exp(-(t - self._reset_t) / SETTLE_S)
        return min(max(self.true_percent(t) + self.part.soc_error_pct + first, 0.0), 100.0)

    @property
    def hibernating(self) -> bool:
        """The gauge is in hibernate mode (MODE.HibStat)."""
        return bool(self.regs[MODE] & MODE_HIBSTAT)

    def _rate_pct_h(self) -> float:
        return -self.draw_a / self.capacity_ah * 100.0

    def _hibernation(self, t: float) -> None:
        hibrt = self.regs[HIBRT]
        hib_thr = (hibrt >> 8) * CRATE_PCT_H_PER_LSB
        act_thr = (hibrt & 0xFF) * ACTTHR_V_PER_LSB
        if abs(self._rate_pct_h()) >= hib_thr:
            self._slow_since = t
        wake = self.draw_a * self.resistance_ohm > act_thr
        if hibrt == 0xFFFF or (not wake and t - self._slow_since >= HIBERNATE_AFTER_S):
            self.regs[MODE] |= MODE_HIBSTAT
        else:
            self.regs[MODE] &= ~MODE_HIBSTAT & 0xFFFF

    def _update(self) -> None:
        t = self._now()
        period = HIBERNATE_UPDATE_S if self.hibernating else ACTIVE_UPDATE_S
        if t - self._latched_t < period:
            return
        self._latched_t = t
        self._hibernation(t)
        self.regs[SOC] = min(int(self.estimate_percent(t) * 256.0), 0xFFFF)
        volts = self.cell_v(self.true_percent(t)) + self.part.vcell_error_v
        self.regs[VCELL] = min(max(int(volts / VCELL_V_PER_LSB), 0), 0xFFFF)
        self.regs[CRATE] = int(self._rate_pct_h() / CRATE_PCT_H_PER_LSB) & 0xFFFF

    # -- faults -----------------------------------------------------------------------
    def vanish(self) -> None:
        """Stop answering (NACK), as a part off the bus."""
        self.present = False

    def reappear(self) -> None:
        """Answer again (after a power-on reset: it lost power)."""
        self.present = True
        self.por()

    # -- I2C --------------------------------------------------------------------------
    def i2c_write(self, data: bytes) -> None:
        """A write message: register pointer, then 16-bit words (a trailing half word is
        acknowledged and dropped). An empty message (a quick write) is acknowledged."""
        if not self.present:
            raise Nack()
        if not data:
            return
        self._pointer = data[0]
        words = data[1:]
        reg = self._pointer
        for k in range(0, len(words) - 1, 2):
            value = words[k] << 8 | words[k + 1]
            if reg == CMD and value == RESET_COMMAND:
                self.por()
                raise Nack()  # it resets before acknowledging the last byte
            if reg == STATUS:
                self.regs[STATUS] &= value | 0x00FF  # alert bits clear when written 0
            elif reg == MODE:
                self.regs[MODE] = (value & ~MODE_HIBSTAT) | (self.regs[MODE] & MODE_HIBSTAT)
            elif reg in _WRITABLE:
                self.regs[reg] = value
            reg += 2

    def i2c_read(self, n: int) -> bytes:
        """A read message from the pointer on, MSB first."""
        if not self.present:
            raise Nack()
        self._update()
        out = bytearray()
        reg = self._pointer & 0xFE
        odd = self._pointer & 1
        while len(out) < n + odd:
            word = self.regs.get(reg, 0xFFFF)
            out += bytes((word >> 8, word & 0xFF))
            reg = (reg + 2) & 0xFF
        return bytes(out[odd:odd + n])
