"""Register-level emulation of the TI ADS1115 16-bit ADC (datasheet SBAS444E).

The emulator sits behind ``SimBus`` and sees raw I2C messages. Its state is computed
lazily from the clock whenever the bus touches it (no threads): a conversion started at
``t0`` is done at ``t0 + 25 us + 1/DR``; its input is sampled at mid-conversion.

Registers (2-bit address pointer; writes of 1 byte set the pointer, writes of 3 bytes
set the pointer and a 16-bit register MSB first; reads return the pointed register MSB
first, repeated if more than 2 bytes are asked for):

====  ===========  =======  ==============================================
0x00  conversion   0x0000   read-only, last result (two's complement)
0x01  config       0x8583   OS | MUX[2:0] | PGA[2:0] | MODE | DR[2:0] | COMP[4:0]
0x02  Lo_thresh    0x8000   stored only (comparator and ALERT/RDY not emulated)
0x03  Hi_thresh    0x7FFF   stored only
====  ===========  =======  ==============================================

Noise: SBAS444 Table 1 gives RMS noise of one LSB at every setting (the noise is below
the LSB) and peak-to-peak noise that grows with the data rate. The analog noise added
here is Gaussian with sigma = (peak-to-peak at 860 SPS) / 6.6, scaled by sqrt(DR / 860):
about 40 uV at +-4.096 V and 860 SPS, i.e. ~55 uV RMS in the codes once quantised.

Faults for tests: ``nack_for``, ``vanish``/``reappear``, ``stick``/``unstick``,
``spontaneous_reset``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from firmware.sim.bus import Nack

CONVERSION, CONFIG, LO_THRESH, HI_THRESH = 0, 1, 2, 3
RESET_VALUES = (0x0000, 0x8583, 0x8000, 0x7FFF)

OS_BIT = 0x8000
MODE_BIT = 0x0100
START_UP_S = 25e-6
"""Power-up time of a single-shot conversion (SBAS444 7.4.2.1: 'approximately 25 us')."""

FULL_SCALE_V = (6.144, 4.096, 2.048, 1.024, 0.512, 0.256, 0.256, 0.256)
"""PGA[2:0] -> full-scale range, +-V."""
DATA_RATE_SPS = (8, 16, 32, 64, 128, 250, 475, 860)
"""DR[2:0] -> nominal data rate, samples/s."""
MUX_INPUTS = ((0, 1), (0, 3), (1, 3), (2, 3), (0, None), (1, None), (2, None), (3, None))
"""MUX[2:0] -> (AINP, AINN); None is GND."""

_NOISE_PP_860_UV = {6.144: 430.06, 4.096: 266.93, 2.048: 187.28,
                    1.024: 68.72, 0.512: 41.76, 0.256: 37.05}
"""Peak-to-peak noise at 860 SPS, uV (SBAS444 Table 1, VDD = 3.3 V)."""


def noise_rms_v(full_scale_v: float, data_rate_sps: float) -> float:
    """Gaussian input-referred noise the emulator adds to each conversion, V RMS."""
    return _NOISE_PP_860_UV[full_scale_v] * 1e-6 / 6.6 * math.sqrt(data_rate_sps / 860.0)


class _Clock(Protocol):
    def now(self) -> float: ...


class Ads1115Sim:
    """An emulated ADS1115 for ``SimBus.attach``.

    clock: the simulation clock (s).
    inputs: ``inputs(t)`` -> volts on AIN0..AIN3 at time t (s).
    rng: noise source.
    rate_error: relative error of the internal oscillator (datasheet: +-10 %);
        -0.1 makes every conversion 10 % slower.
    """

    def __init__(self, clock: _Clock, inputs: Callable[[float], Sequence[float]],
                 rng: np.random.Generator, *, rate_error: float = 0.0) -> None:
        if not -0.5 < rate_error < 0.5:
            raise ValueError(f"rate_error {rate_error} is not a plausible oscillator error")
        self.clock = clock
        self.inputs = inputs
        self.rng = rng
        self.rate_error = rate_error
        self.conversions = 0
        self._regs = list(RESET_VALUES)
        self._pointer = CONVERSION
        self._continuous = False
        self._conv_end: float | None = None     # end of the conversion in progress, s
        self._conv_cfg = 0                      # config the conversion in progress uses
        self._nack_until = -math.inf
        self._present = True
        self._stuck = False

    # -- I2C ----------------------------------------------------------------------
    def i2c_write(self, data: bytes) -> None:
        """One write message: pointer byte, optionally followed by a 16-bit value."""
        self._check_ack()
        if not data:
            return
        self._update(self.clock.now())
        self._pointer = data[0] & 0x03
        if len(data) >= 3:  # a 2-byte write is incomplete: nothing is latched
            self._write_register(self._pointer, data[1] << 8 | data[2])

    def i2c_read(self, n: int) -> bytes:
        """One read message: the pointed register, MSB first."""
        self._check_ack()
        self._update(self.clock.now())
        value = self.register(self._pointer)
        word = bytes((value >> 8, value & 0xFF))
        return (word * ((n + 1) // 2))[:n]

    def register(self, pointer: int) -> int:
        """The value a read of register ``pointer`` returns now (no bus traffic)."""
        if pointer == CONFIG:
            busy = self._continuous or self._conv_end is not None
            return (self._regs[CONFIG] & ~OS_BIT) | (0 if busy else OS_BIT)
        return self._regs[pointer]

    # -- faults -------------------------------------------------------------------
    def nack_for(self, duration_s: float) -> None:
        """Refuse every message for ``duration_s`` seconds from now."""
        self._nack_until = self.clock.now() + duration_s

    def vanish(self) -> None:
        """Drop off the bus (every message is NACKed) until ``reappear``."""
        self._present = False

    def reappear(self, *, power_cycled: bool = False) -> None:
        """Come back on the bus; ``power_cycled`` also resets the registers."""
        self._present = True
        if power_cycled:
            self.spontaneous_reset()

    def stick(self) -> None:
        """Conversions never finish (OS stays 0) until ``unstick``."""
        self._update(self.clock.now())
        self._stuck = True

    def unstick(self) -> None:
        """Recover from ``stick``: a conversion in progress restarts now."""
        self._stuck = False
        if self._conv_end is not None:
            self._conv_end = self.clock.now() + self._period(self._conv_cfg) + START_UP_S

    def spontaneous_reset(self) -> None:
        """Brown-out or glitch: every register to its reset value, conversion aborted."""
        self._regs = list(RESET_VALUES)
        self._pointer = CONVERSION
        self._continuous = False
        self._conv_end = None

    # -- internals ----------------------------------------------------------------
    def _check_ack(self) -> None:
        if not self._present or self.clock.now() < self._nack_until:
            raise Nack()

    def _write_register(self, pointer: int, value: int) -> None:
        if pointer == CONVERSION:
            return  # read-only
        if pointer != CONFIG:
            self._regs[pointer] = value
            return
        self._regs[CONFIG] = value & ~OS_BIT
        now = self.clock.now()
        if not value & MODE_BIT:
            if not self._continuous and self._conv_end is None:
                self._start(now)
            self._continuous = True
            return
        self._continuous = False  # a conversion in progress finishes, then power-down
        if value & OS_BIT and self._conv_end is None:
            self._start(now)

    def _period(self, config: int) -> float:
        return 1.0 / (DATA_RATE_SPS[config >> 5 & 0x7] * (1.0 + self.rate_error))

    def _start(self, t: float) -> None:
        self._conv_cfg = self._regs[CONFIG]
        self._conv_end = t + START_UP_S + self._period(self._conv_cfg)

    def _update(self, t: float) -> None:
        """Bring conversions up to time ``t``."""
        end = self._conv_end
        if end is None or self._stuck or t < end:
            return
        self._convert(self._conv_cfg, end - 0.5 * self._period(self._conv_cfg))
        if not self._continuous:
            self._conv_end = None
            return
        cfg = self._regs[CONFIG]
        period = self._period(cfg)
        skipped = math.floor((t - end) / period)
        if skipped >= 1:  # results nobody read are overwritten: compute the latest only
            end += skipped * period
            self._convert(cfg, end - 0.5 * period)
        self._conv_cfg = cfg
        self._conv_end = end + period

    def _convert(self, config: int, t_sample: float) -> None:
        """Latch one result: input at ``t_sample`` through the mux, noise, PGA, quantiser."""
        volts = self.inputs(t_sample)
        positive, negative = MUX_INPUTS[config >> 12 & 0x7]
        v = volts[positive] - (volts[negative] if negative is not None else 0.0)
        full_scale = FULL_SCALE_V[config >> 9 & 0x7]
        rate = DATA_RATE_SPS[config >> 5 & 0x7]
        v += self.rng.normal(0.0, noise_rms_v(full_scale, rate))
        code = round(v * 32768.0 / full_scale)
        code = min(32767, max(-32768, code))
        self._regs[CONVERSION] = code & 0xFFFF
        self.conversions += 1


__all__ = ["Ads1115Sim", "DATA_RATE_SPS", "FULL_SCALE_V", "MUX_INPUTS", "RESET_VALUES",
           "noise_rms_v"]
