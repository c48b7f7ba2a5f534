"""Register-level MAX17048 fuel gauge on the emulated I2C bus, over a draining LiPo.

The cell is a 2000 mAh LiPo drawn at a constant current (the power budget of
hardware/BUILD.md: ~300 mA while rolling), so the state of charge falls linearly with
the simulated time. Registers as the datasheet (19-6171) has them: 16 bits, MSB first,
a write message is a register pointer then whole words; reads go on from the pointer
(and on to the next register). VCELL follows a typical LiPo open-circuit curve less the
cell's IR drop. The gauge updates VCELL every 250 ms and SOC with it (the part's own
periods: 250 ms after POR, then 1 s in active mode; 250 ms is kept throughout). CMD
0x5400 resets it (POR): STATUS.RI set, CONFIG to 0x971C. ``vanish`` makes it NACK
everything (a loose wire) until ``reappear``.
"""

from __future__ import annotations

import bisect

from firmware.sim.bus import Nack

VCELL, SOC, MODE, VERSION, HIBRT, CONFIG = 0x02, 0x04, 0x06, 0x08, 0x0A, 0x0C
VALRT, CRATE, VRESET, STATUS, CMD = 0x14, 0x16, 0x18, 0x1A, 0xFE
VERSION_VALUE = 0x0012
CONFIG_DEFAULT = 0x971C
HIBRT_DEFAULT = 0x8030
VALRT_DEFAULT = 0x00FF
VRESET_DEFAULT = 0x9600
STATUS_RI = 0x0100  # reset indicator (STATUS high byte bit 0)
UPDATE_S = 0.25
_WRITABLE = {MODE, HIBRT, CONFIG, VALRT, VRESET, STATUS, CMD}
# typical LiPo open-circuit voltage against state of charge (%, V)
_OCV = [(0.0, 3.30), (5.0, 3.55), (10.0, 3.65), (20.0, 3.72), (40.0, 3.79),
        (60.0, 3.87), (80.0, 4.00), (100.0, 4.18)]


class Max17048Sim:
    """The gauge and its cell. clock: the bus's clock (``now()``, s). start_pct: state
    of charge at time 0, %. draw_a: current drawn from the cell, A. capacity_ah: Ah."""

    def __init__(self, clock: object, start_pct: float = 80.0, draw_a: float = 0.30,
                 capacity_ah: float = 2.0, resistance_ohm: float = 0.15) -> None:
        self.clock = clock
        self.start_pct = start_pct
        self.draw_a = draw_a
        self.capacity_ah = capacity_ah
        self.resistance_ohm = resistance_ohm
        self.present = True
        self.regs: dict[int, int] = {}
        self._pointer = 0
        self._latched_t = -1.0
        self.por()

    def por(self) -> None:
        """Power-on reset: the registers to their defaults (STATUS.RI set)."""
        self.regs = {MODE: 0, VERSION: VERSION_VALUE, HIBRT: HIBRT_DEFAULT,
                     CONFIG: CONFIG_DEFAULT, VALRT: VALRT_DEFAULT, CRATE: 0,
                     VRESET: VRESET_DEFAULT, STATUS: STATUS_RI, CMD: 0xFFFF}
        self._latched_t = -1.0
        self._update(force=True)

    # -- the cell ---------------------------------------------------------------------
    def true_percent(self, t: float) -> float:
        """The cell's state of charge at time ``t`` (s), %."""
        used = self.draw_a * t / 3600.0 / self.capacity_ah * 100.0
        return min(max(self.start_pct - used, 0.0), 100.0)

    def _voltage(self, pct: float) -> float:
        i = min(max(bisect.bisect_right([p for p, _ in _OCV], pct), 1), len(_OCV) - 1)
        (p0, v0), (p1, v1) = _OCV[i - 1], _OCV[i]
        return v0 + (v1 - v0) * (pct - p0) / (p1 - p0) - self.draw_a * self.resistance_ohm

    def _update(self, force: bool = False) -> None:
        t = float(self.clock.now())  # type: ignore[attr-defined]
        if not force and t - self._latched_t < UPDATE_S:
            return
        self._latched_t = t - (t % UPDATE_S)
        pct = self.true_percent(self._latched_t)
        self.regs[SOC] = min(int(pct * 256.0), 0xFFFF)
        self.regs[VCELL] = min(int(self._voltage(pct) / 78.125e-6), 0xFFFF)
        rate = -self.draw_a / self.capacity_ah * 100.0 / 0.208  # %/h over 0.208 %/h per LSB
        self.regs[CRATE] = int(rate) & 0xFFFF

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
        """A write message: register pointer, then whole 16-bit words."""
        if not self.present or not data:
            raise Nack()
        self._pointer = data[0]
        words = data[1:]
        if len(words) % 2:
            raise Nack()  # the part acknowledges whole words only
        reg = self._pointer
        for k in range(0, len(words), 2):
            value = words[k] << 8 | words[k + 1]
            if reg == CMD and value == 0x5400:
                self.por()
            elif reg == STATUS:
                self.regs[STATUS] &= value | 0x00FF  # alert bits clear when written 0
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
