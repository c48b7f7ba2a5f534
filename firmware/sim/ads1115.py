"""Register-level emulation of the TI ADS1115 16-bit ADC (datasheet SBAS444E).

The emulator sits behind ``SimBus`` and sees raw I2C messages. Its state is computed
lazily from the clock whenever the bus (or a read of its ALERT/RDY line) touches it (no
threads): a conversion started at ``t0`` is done at ``t0 + 25 us + 1/DR``; its input is
sampled at mid-conversion.

Registers (2-bit address pointer; writes of 1 byte set the pointer, writes of 3 bytes
set the pointer and a 16-bit register MSB first; reads return the pointed register MSB
first, repeated if more than 2 bytes are asked for):

====  ===========  =======  ==============================================
0x00  conversion   0x0000   read-only, last result (two's complement)
0x01  config       0x8583   OS | MUX[2:0] | PGA[2:0] | MODE | DR[2:0] | COMP[4:0]
0x02  Lo_thresh    0x8000   comparator low threshold (two's complement)
0x03  Hi_thresh    0x7FFF   comparator high threshold
====  ===========  =======  ==============================================

ALERT/RDY (SBAS444 9.3.7-9.3.8, 9.6.4) is an open-drain output, ``alert_output()``:

- COMP_QUE = 11 (the reset value): comparator off, the pin released (high-Z);
- conversion-ready mode, when Hi_thresh's MSB is 1 and Lo_thresh's MSB is 0 (and
  COMP_QUE != 11): in single-shot mode the pin is the OS bit, asserted from the end of
  a conversion until the next one starts; in continuous mode it pulses asserted for
  ~8 us at the end of each conversion. COMP_MODE and COMP_LAT do nothing there;
- otherwise the comparator, judged at the end of each conversion: traditional
  (COMP_MODE = 0) asserts when the code exceeds Hi_thresh and deasserts when it falls
  below Lo_thresh; window (COMP_MODE = 1) asserts when the code is above Hi_thresh or
  below Lo_thresh and deasserts inside. COMP_QUE asserts only after 1, 2 or 4
  successive conversions beyond; with COMP_LAT = 1 an assertion holds until the
  conversion register is read.

COMP_POL = 0 asserts by pulling the line low, COMP_POL = 1 by releasing it (and pulls
it low while deasserted).

Noise: SBAS444 Table 1 gives RMS noise of one LSB at every setting (the noise is below
the LSB) and peak-to-peak noise that grows with the data rate. The analog noise added
here is Gaussian with sigma = (peak-to-peak at 860 SPS) / 6.6, scaled by sqrt(DR / 860):
about 40 uV at +-4.096 V and 860 SPS, i.e. ~55 uV RMS in the codes once quantised.

Not emulated: the SMBus alert response (address 0x0C), the comparator on the
continuous-mode conversions that no access observed (only the latest is computed).

Faults for tests: ``nack_for``, ``vanish``/``reappear``, ``stick``/``unstick``,
``spontaneous_reset`` (a broken ALERT/RDY wire is the line's: ``firmware.sim.pins``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from firmware.sim.bus import Nack

CONVERSION, CONFIG, LO_THRESH, HI_THRESH = 0, 1, 2, 3
RESET_VALUES = (0x0000, 0x8583, 0x8000, 0x7FFF)

OS_BIT = 0x8000
MODE_BIT = 0x0100
COMP_MODE_WINDOW = 0x0010
COMP_POL_HIGH = 0x0008
COMP_LAT = 0x0004
COMP_QUE = 0x0003
START_UP_S = 25e-6
"""Power-up time of a single-shot conversion (SBAS444 7.4.2.1: 'approximately 25 us')."""
RDY_PULSE_S = 8e-6
"""Conversion-ready pulse in continuous mode (SBAS444 9.3.8: 'approximately 8 us')."""
QUEUE_LENGTH = (1, 2, 4)
"""COMP_QUE -> successive conversions beyond a threshold before the comparator asserts."""
ALERT_HISTORY = 4096
"""ALERT/RDY changes kept for ``alert_changes`` (a wire nobody reads forgets the oldest)."""

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
    gain_error: relative gain error (datasheet: +-0.15 % at most).
    offset_lsb: input-referred offset, in LSB at +-4.096 V (datasheet: +-3 LSB), i.e.
        0.125 mV per LSB whatever the PGA.
    """

    def __init__(self, clock: _Clock, inputs: Callable[[float], Sequence[float]],
                 rng: np.random.Generator, *, rate_error: float = 0.0,
                 gain_error: float = 0.0, offset_lsb: float = 0.0) -> None:
        if not -0.5 < rate_error < 0.5:
            raise ValueError(f"rate_error {rate_error} is not a plausible oscillator error")
        self.clock = clock
        self.inputs = inputs
        self.rng = rng
        self.rate_error = rate_error
        self.gain = 1.0 + gain_error
        self.offset_v = offset_lsb * 4.096 / 32768.0
        self.conversions = 0
        self._regs = list(RESET_VALUES)
        self._pointer = CONVERSION
        self._continuous = False
        self._conv_end: float | None = None     # end of the conversion in progress, s
        self._conv_cfg = 0                      # config the conversion in progress uses
        self._nack_until = -math.inf
        self._present = True
        self._stuck = False
        self._comparator = False                # comparator output asserted
        self._beyond = 0                        # successive conversions beyond a threshold
        self._last_end = -math.inf              # end of the last conversion, s
        self._pulling = False                   # ALERT/RDY pulls its line low
        self._pulling_since = clock.now()       # ... since then, s
        self._changes: deque[tuple[float, bool]] = deque(maxlen=ALERT_HISTORY)

    # -- I2C ----------------------------------------------------------------------
    def i2c_write(self, data: bytes) -> None:
        """One write message: pointer byte, optionally followed by a 16-bit value."""
        self._check_ack()
        if not data:
            return
        now = self.clock.now()
        self._update(now)
        self._pointer = data[0] & 0x03
        if len(data) >= 3:  # a 2-byte write is incomplete: nothing is latched
            self._write_register(self._pointer, data[1] << 8 | data[2])
            self._refresh_alert(now)

    def i2c_read(self, n: int) -> bytes:
        """One read message: the pointed register, MSB first."""
        self._check_ack()
        now = self.clock.now()
        self._update(now)
        value = self.register(self._pointer)
        if self._pointer == CONVERSION and self._comparator and self._regs[CONFIG] & COMP_LAT:
            self._comparator = False  # reading the conversion clears a latched alert
            self._refresh_alert(now)
        word = bytes((value >> 8, value & 0xFF))
        return (word * ((n + 1) // 2))[:n]

    def alert_output(self) -> tuple[bool, float]:
        """The ALERT/RDY pin now: (pulling its line low, since when s), open drain."""
        now = self.clock.now()
        self._update(now)
        self._refresh_alert(now)
        return self._pulling, self._pulling_since

    def alert_changes(self) -> list[tuple[float, bool]]:
        """How the ALERT/RDY pin changed since the last call: [(t s, pulling low), ...]
        in time order (what a wire to it carries; at most the last ALERT_HISTORY)."""
        self.alert_output()
        changes = list(self._changes)
        self._changes.clear()
        return changes

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
        self._comparator = False
        self._beyond = 0
        self._refresh_alert(self.clock.now())

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
        self._last_end = end
        if not self._continuous:
            self._conv_end = None
            self._refresh_alert(end)
            return
        cfg = self._regs[CONFIG]
        period = self._period(cfg)
        skipped = math.floor((t - end) / period)
        if skipped >= 1:  # results nobody read are overwritten: compute the latest only
            end += skipped * period
            self._convert(cfg, end - 0.5 * period)
            self._last_end = end
        self._conv_cfg = cfg
        self._conv_end = end + period
        self._refresh_alert(self._last_end)

    def _ready_mode(self) -> bool:
        """Conversion-ready mode: Hi_thresh MSB 1, Lo_thresh MSB 0 (SBAS444 9.6.4)."""
        return bool(self._regs[HI_THRESH] & 0x8000) and not self._regs[LO_THRESH] & 0x8000

    def _alert_pulls_low(self, t: float) -> bool:
        """Whether the ALERT/RDY output pulls its line low at ``t`` (s)."""
        config = self._regs[CONFIG]
        if config & COMP_QUE == COMP_QUE:
            return False  # comparator off: high-Z
        if self._ready_mode():
            if self._continuous:
                asserted = 0.0 <= t - self._last_end < RDY_PULSE_S
            else:
                asserted = self._conv_end is None  # the OS bit: no conversion running
        else:
            asserted = self._comparator
        return asserted != bool(config & COMP_POL_HIGH)

    def _refresh_alert(self, t: float) -> None:
        """Note the output's level at ``t`` (s), and when it changed."""
        pulling = self._alert_pulls_low(t)
        if pulling != self._pulling:
            since = t
            if self._continuous and self._ready_mode():
                pulse_end = self._last_end + RDY_PULSE_S
                if self._pulling_since <= pulse_end < t:  # the pulse ended unobserved
                    since = pulse_end
            self._pulling, self._pulling_since = pulling, since
            self._changes.append((since, pulling))

    def _compare(self, code: int) -> None:
        """Judge one conversion result (signed code) by the comparator's rules."""
        config = self._regs[CONFIG]
        if config & COMP_QUE == COMP_QUE or self._ready_mode():
            self._beyond = 0
            return
        hi, lo = _signed(self._regs[HI_THRESH]), _signed(self._regs[LO_THRESH])
        window = bool(config & COMP_MODE_WINDOW)
        beyond = code > hi or window and code < lo
        self._beyond = self._beyond + 1 if beyond else 0
        if beyond and self._beyond >= QUEUE_LENGTH[config & COMP_QUE]:
            self._comparator = True
        elif self._comparator and not config & COMP_LAT:
            inside = lo <= code <= hi if window else code < lo
            if inside:
                self._comparator = False

    def _convert(self, config: int, t_sample: float) -> None:
        """Latch one result: input at ``t_sample`` through the mux, noise, PGA, quantiser."""
        volts = self.inputs(t_sample)
        positive, negative = MUX_INPUTS[config >> 12 & 0x7]
        v = volts[positive] - (volts[negative] if negative is not None else 0.0)
        full_scale = FULL_SCALE_V[config >> 9 & 0x7]
        rate = DATA_RATE_SPS[config >> 5 & 0x7]
        v += self.rng.normal(0.0, noise_rms_v(full_scale, rate))
        code = round((v + self.offset_v) * self.gain * 32768.0 / full_scale)
        code = min(32767, max(-32768, code))
        self._regs[CONVERSION] = code & 0xFFFF
        self.conversions += 1
        self._compare(code)


def _signed(word: int) -> int:
    """A 16-bit register as two's complement."""
    return word - 0x10000 if word & 0x8000 else word


__all__ = ["Ads1115Sim", "DATA_RATE_SPS", "FULL_SCALE_V", "MUX_INPUTS", "RDY_PULSE_S",
           "RESET_VALUES", "noise_rms_v"]
