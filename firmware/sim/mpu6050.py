"""Register-level emulation of the InvenSense MPU-6050 (register map rev 4.2, spec rev 3.4).

The emulator sits behind ``SimBus`` and sees raw I2C messages: the first byte of a write
sets the register pointer, further bytes are written from there on; reads return bytes
from the pointer on. The pointer auto-increments, except at FIFO_R_W (0x74), where every
byte read pops the FIFO (and every byte written pushes it).

Its state is computed lazily from the clock whenever the bus touches it (no threads).
The sensor clock ticks at ``rate * (1 + clock_error_ppm * 1e-6)``; sample k (k = 0, 1,
...) is taken at ``t_phase + (k + 1) / rate``: a grid that starts anew only when the part
wakes up (from sleep, so after DEVICE_RESET or a brown-out too) or gets a new SMPLRT_DIV
or DLPF_CFG, and then at an arbitrary phase: its first sample comes a fraction of a
period later drawn uniformly (``wake_phase`` pins it), as nothing in the register map ties
it to the write. Resetting, disabling or enabling the FIFO does not touch the grid: the
register map (4.2, SMPLRT_DIV) derives the Sample Rate, by which the sensor registers,
the FIFO output and the DMP are all sampled, from the gyroscope output rate alone
(Sample Rate = Gyroscope Output Rate / (1 + SMPLRT_DIV)), and USER_CTRL (4.27) says
only that FIFO_EN enables FIFO operations and FIFO_RESET resets the FIFO buffer; so the
first sample written after a FIFO restart lies on the grid of those before it, at an
unknown phase (0..1 period) from the enabling write, and sampling (the data registers,
DATA_RDY) runs on while the FIFO is off. All the
samples due since the last access are made in one vectorised batch: ``motion`` is called
once, noise, offsets and a random-walk gyro drift are added, values are clipped to the
full scale, quantised, packed big-endian and appended to a 1024-byte FIFO.

======  ================  =====  ==================================================
0x19    SMPLRT_DIV        0x00   sample rate = gyro output rate / (1 + div)
0x1A    CONFIG            0x00   DLPF_CFG[2:0]: gyro output 8 kHz if 0 or 7, else 1 kHz
0x1B    GYRO_CONFIG       0x00   FS_SEL[4:3]: 131 / 65.5 / 32.8 / 16.4 LSB per deg/s
0x1C    ACCEL_CONFIG      0x00   AFS_SEL[4:3]: 16384 / 8192 / 4096 / 2048 LSB/g
0x23    FIFO_EN           0x00   TEMP 0x80, XG 0x40, YG 0x20, ZG 0x10, ACCEL 0x08
0x3A    INT_STATUS        0x00   FIFO_OFLOW_INT 0x10, DATA_RDY_INT 0x01; clear on read
0x3B    ACCEL..GYRO_OUT   0x00   14 bytes, latest sample; temp C = raw / 340 + 36.53
0x6A    USER_CTRL         0x00   FIFO_EN 0x40, FIFO_RESET 0x04, SIG_COND_RESET 0x01
0x6B    PWR_MGMT_1        0x40   DEVICE_RESET 0x80, SLEEP 0x40, CLKSEL[2:0] (7: stop)
0x72/3  FIFO_COUNTH/L     0x00   reading H latches the count; L alone may be stale
0x74    FIFO_R_W          0x00   FIFO port; an empty FIFO repeats the last byte read
0x75    WHO_AM_I          0x68   read-only
======  ================  =====  ==================================================

FIFO frames hold, in register order, accel x y z, temperature, gyro x y z (each only if
enabled), every value a big-endian int16. When the FIFO overflows the oldest bytes are
lost while writing goes on, so (1024 not being a multiple of 12) what is left starts in
the middle of a frame, as on the chip; FIFO_OFLOW_INT is set. As the register map says,
FIFO_RESET acts only when written with FIFO_EN = 0, and the FIFO can be neither read
nor written while disabled (reads then repeat the last byte without popping).

A drawn part (``firmware.sim.parts.ImuPart``) deviates from the nominal one: per-axis
sensitivity errors and cross-axis terms of the gyro and the accelerometer (a 3x3
matrix each, applied to the true values before offsets and noise), a sample clock off by
up to +-1 % that moves further as the die warms, registers that NACK for 20-100 ms
after DEVICE_RESET or a brown-out (the part was powered long before the firmware
started, so not at construction), and a gyro that reads no rotation for 30-50 ms after
it wakes. The default is the ideal part.

Not emulated: interrupts on the INT pin, motion/free-fall detection, the auxiliary I2C
master and its slave FIFO bits, self-test, the accelerometer's 1 kHz output rate at
sample rates above 1 kHz, the DMP, low-power cycling, nonlinearity (0.2 %).

Faults for tests: ``nack_for``, ``vanish``/``reappear``, ``stick_fifo``/``unstick_fifo``,
``freeze_output``/``unfreeze_output``, ``spontaneous_reset``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from firmware.sim.bus import Nack
from firmware.sim.parts import IMU_CLOCK_WARMUP_S, ImuPart

G0 = 9.80665
"""Standard gravity, m/s^2 (1 g)."""

SMPLRT_DIV = 0x19
CONFIG = 0x1A
GYRO_CONFIG = 0x1B
ACCEL_CONFIG = 0x1C
FIFO_EN = 0x23
INT_STATUS = 0x3A
ACCEL_XOUT_H = 0x3B
USER_CTRL = 0x6A
PWR_MGMT_1 = 0x6B
FIFO_COUNTH = 0x72
FIFO_COUNTL = 0x73
FIFO_R_W = 0x74
WHO_AM_I = 0x75

FIFO_SIZE = 1024
"""FIFO capacity, bytes (product spec 7.17)."""

DEVICE_RESET = 0x80
SLEEP = 0x40
CLKSEL_STOP = 7
USER_FIFO_EN = 0x40
USER_FIFO_RESET = 0x04
USER_I2C_MST_RESET = 0x02
USER_SIG_COND_RESET = 0x01
INT_FIFO_OFLOW = 0x10
INT_DATA_RDY = 0x01

_DATA_REGS = slice(ACCEL_XOUT_H, ACCEL_XOUT_H + 14)
_READ_ONLY = frozenset([INT_STATUS, *range(ACCEL_XOUT_H, ACCEL_XOUT_H + 14),
                        FIFO_COUNTH, FIFO_COUNTL, WHO_AM_I])
_FIFO_SOURCES = ((0x08, (0, 1, 2)), (0x80, (3,)), (0x40, (4,)), (0x20, (5,)), (0x10, (6,)))
"""FIFO_EN bit -> columns of a sample row (ax ay az temp gx gy gz), in register order."""

GYRO_LSB_PER_DPS = (131.0, 65.5, 32.8, 16.4)
"""FS_SEL -> gyro sensitivity, LSB per deg/s."""
ACCEL_LSB_PER_G = (16384.0, 8192.0, 4096.0, 2048.0)
"""AFS_SEL -> accelerometer sensitivity, LSB/g."""
ACCEL_BANDWIDTH_HZ = (260, 184, 94, 44, 21, 10, 5, 260)
GYRO_BANDWIDTH_HZ = (256, 188, 98, 42, 20, 10, 5, 256)
"""DLPF_CFG -> filter bandwidth, Hz (7 is 'reserved': taken as the unfiltered 0)."""
ACCEL_DELAY_S = (0.0, 2.0e-3, 3.0e-3, 4.9e-3, 8.5e-3, 13.8e-3, 19.0e-3, 0.0)
GYRO_DELAY_S = (0.98e-3, 1.9e-3, 2.8e-3, 4.8e-3, 8.3e-3, 13.4e-3, 18.6e-3, 0.98e-3)
"""DLPF_CFG -> filter delay, s (register map 4.3), applied as a pure time shift."""

GYRO_NOISE_DPS_PER_RTHZ = 0.005
ACCEL_NOISE_G_PER_RTHZ = 400e-6
GYRO_OFFSET_LIMIT_DPS = 20.0
ACCEL_OFFSET_LIMIT_G = (0.050, 0.050, 0.080)
TEMP_NOISE_C = 0.02

Motion = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""times (n,) s -> (specific force (n,3) m/s^2, angular rate (n,3) rad/s), sensor frame."""


class _Clock(Protocol):
    def now(self) -> float: ...


class Mpu6050Sim:
    """An MPU-6050 as seen from the I2C bus.

    clock: the simulation clock (s). motion: the truth, see ``Motion``.
    rng: draws offsets and noise.
    who_am_i: what WHO_AM_I answers (clones answer other values).
    gyro_offset_dps, accel_offset_g: zero-rate / zero-g offsets per axis (deg/s, g);
        None draws them uniformly within the spec's initial tolerance
        (+-20 deg/s; +-50 mg x and y, +-80 mg z).
    gyro_drift_dps_per_sqrt_s: random walk of the gyro offset, deg/s per sqrt(s).
    clock_error_ppm: the sensor clock runs fast by this much (negative: slow).
    temperature_c: die temperature reported in TEMP_OUT, C.
    part: how this chip deviates from the nominal one (default: the ideal part); its
        ``clock_error`` adds to ``clock_error_ppm``.
    wake_phase: the first sample of a new sample grid (waking up, a new SMPLRT_DIV or
        DLPF_CFG) comes this fraction of a period later, in (0, 1]; None (the default,
        as on the chip) draws it uniformly at each new grid (from a stream spawned from
        ``rng``, so the noise drawn from ``rng`` is the same whatever the phases).
    """

    def __init__(self, clock: _Clock, motion: Motion, rng: np.random.Generator, *,
                 who_am_i: int = 0x68,
                 gyro_offset_dps: Sequence[float] | None = None,
                 accel_offset_g: Sequence[float] | None = None,
                 gyro_drift_dps_per_sqrt_s: float = 0.02,
                 clock_error_ppm: float = 0.0,
                 temperature_c: float = 25.0,
                 part: ImuPart | None = None,
                 wake_phase: float | None = None) -> None:
        self._clock = clock
        self._motion = motion
        self._rng = rng
        self._who_am_i = who_am_i & 0xFF
        if gyro_offset_dps is None:
            gyro_offset_dps = rng.uniform(-GYRO_OFFSET_LIMIT_DPS, GYRO_OFFSET_LIMIT_DPS, 3)
        if accel_offset_g is None:
            limit = np.array(ACCEL_OFFSET_LIMIT_G)
            accel_offset_g = rng.uniform(-limit, limit)
        self._gyro_bias = np.array(gyro_offset_dps, dtype=float).reshape(3)
        self._accel_offset = np.array(accel_offset_g, dtype=float).reshape(3)
        self._drift = float(gyro_drift_dps_per_sqrt_s)
        part = part or ImuPart()
        self.part = part
        self._clock_scale = 1.0 + clock_error_ppm * 1e-6 + part.clock_error
        self._warmup = part.clock_warmup  # further clock change as the die warms
        self._powered_at = clock.now()
        self._gyro_m = None if part == ImuPart() else part.gyro_matrix
        self._accel_m = None if part == ImuPart() else part.accel_matrix
        self._awake_at = -math.inf  # when the gyro last woke (its start-up runs from here)
        self._temperature_c = float(temperature_c)
        if wake_phase is not None and not 0.0 < wake_phase <= 1.0:
            raise ValueError(f"wake_phase {wake_phase}: must be in (0, 1]")
        self._wake_phase = wake_phase
        self._phase_rng = rng.spawn(1)[0]  # its own stream: ``rng``'s draws stay as they were
        self.overflows = 0
        """How many times the FIFO overflowed (bytes lost after it was read or reset)."""
        self.samples_generated = 0
        """Samples taken while awake (whether or not they went into the FIFO)."""
        self.samples_dropped = 0
        """FIFO frames whose first byte was lost to an overflow."""
        self._nack_until = -math.inf
        self._vanished = False
        self._stuck = False
        self._frozen: np.ndarray | None = None
        self._regs = bytearray(128)
        self._fifo = bytearray()
        self._reset_registers()

    # -- faults ---------------------------------------------------------------------
    def nack_for(self, duration_s: float) -> None:
        """NACK every message until the clock has advanced by ``duration_s`` (s)."""
        self._nack_until = self._clock.now() + duration_s

    def vanish(self) -> None:
        """NACK every message until ``reappear`` (a loose wire; the part keeps running)."""
        self._vanished = True

    def reappear(self) -> None:
        """Answer again after ``vanish``."""
        self._vanished = False

    def stick_fifo(self) -> None:
        """Stop sampling although the device answers: FIFO and data registers go stale."""
        self._fill()
        self._stuck = True

    def unstick_fifo(self) -> None:
        """Resume sampling after ``stick_fifo`` (the samples in between never existed)."""
        self._fill()
        self._stuck = False

    def freeze_output(self) -> None:
        """Keep sampling but repeat the latest sample exactly (a frozen signal chain)."""
        self._fill()
        self._frozen = np.frombuffer(bytes(self._regs[_DATA_REGS]), dtype=">i2").astype(np.int16)

    def unfreeze_output(self) -> None:
        """Undo ``freeze_output``."""
        self._fill()
        self._frozen = None

    def spontaneous_reset(self) -> None:
        """All registers back to reset values (asleep, FIFO off), as after a brown-out;
        the registers then NACK for the part's start-up time."""
        self._fill()
        self._reset_registers()
        self._start_up()

    def _start_up(self) -> None:
        """After power-on or a reset, the registers answer only after the start-up time."""
        if self.part.register_startup_s > 0.0:
            self._nack_until = max(self._nack_until,
                                   self._clock.now() + self.part.register_startup_s)

    def true_gyro_offset_dps(self) -> np.ndarray:
        """The gyro zero-rate offset now (it drifts), deg/s per axis, shape (3,)."""
        self._fill()
        return self._gyro_bias.copy()

    # -- I2C --------------------------------------------------------------------------
    def i2c_write(self, data: bytes) -> None:
        """One write message: register pointer, then bytes written from there on."""
        self._check_link()
        self._fill()
        if not data:
            return
        ptr = data[0] & 0x7F
        for value in data[1:]:
            self._write_register(ptr, value)
            if ptr != FIFO_R_W:
                ptr = (ptr + 1) & 0x7F
        self._ptr = ptr

    def i2c_read(self, n: int) -> bytes:
        """One read message of ``n`` bytes from the register pointer on."""
        self._check_link()
        self._fill()
        ptr = self._ptr
        if ptr == FIFO_R_W:
            return self._pop(n)
        out = bytearray()
        for _ in range(n):
            if ptr == FIFO_R_W:  # a burst that ran into the FIFO port stays there
                out += self._pop(1)
            else:
                out.append(self._read_reg(ptr))
                ptr = (ptr + 1) & 0x7F
        self._ptr = ptr
        return bytes(out)

    def _check_link(self) -> None:
        if self._vanished or self._clock.now() < self._nack_until:
            raise Nack()

    def _read_reg(self, reg: int) -> int:
        if reg == FIFO_COUNTH:
            self._latched_count = len(self._fifo)
            return self._latched_count >> 8
        if reg == FIFO_COUNTL:
            return self._latched_count & 0xFF
        value = self._regs[reg]
        if reg == INT_STATUS:
            self._regs[INT_STATUS] = 0
        return value

    def _write_register(self, reg: int, value: int) -> None:
        if reg in _READ_ONLY:
            return
        old = self._regs[reg]
        if reg == PWR_MGMT_1:
            if value & DEVICE_RESET:
                self._reset_registers()
                self._start_up()
                return
            self._regs[reg] = value
            if self._awake(value) and not self._awake(old):
                self._awake_at = self._clock.now()
                self._restart_phase()
            else:
                self._schedule()
        elif reg == USER_CTRL:
            if value & USER_SIG_COND_RESET:
                self._regs[_DATA_REGS] = bytes(14)
            if value & USER_FIFO_RESET and not value & USER_FIFO_EN:
                self._clear_fifo()
            self._regs[reg] = value & ~(USER_FIFO_RESET | USER_I2C_MST_RESET
                                        | USER_SIG_COND_RESET)
        elif reg == FIFO_R_W:
            if self._regs[USER_CTRL] & USER_FIFO_EN:
                self._push(bytes([value]), max(2 * len(self._frame_columns()), 1))
        else:
            self._regs[reg] = value
            if reg in (SMPLRT_DIV, CONFIG) and value != old:
                self._restart_phase()

    # -- state ----------------------------------------------------------------------
    def _reset_registers(self) -> None:
        self._regs[:] = bytes(len(self._regs))
        self._regs[PWR_MGMT_1] = SLEEP
        self._regs[WHO_AM_I] = self._who_am_i
        self._ptr = 0
        self._latched_count = 0
        self._last_byte = 0
        self._clear_fifo()
        self._restart_phase()

    def _clear_fifo(self) -> None:
        self._fifo.clear()
        self._head = 0  # stream position (bytes since the FIFO was cleared) of _fifo[0]
        self._overflowing = False

    def _restart_phase(self) -> None:
        """A new sample grid (waking up, a new SMPLRT_DIV or DLPF_CFG): its first sample
        comes at an arbitrary point within one period from now, drawn."""
        self._t_phase = self._clock.now()
        if self._awake(self._regs[PWR_MGMT_1]):
            lead = self._phase_rng.uniform(0.0, 1.0) if self._wake_phase is None \
                else 1.0 - self._wake_phase
            self._t_phase -= lead * self._period_s()
        self._k = 0  # samples due since _t_phase that were made (or skipped)
        self._schedule()

    def _schedule(self) -> None:
        """Note when the next sample is due (loop clock, s; inf while asleep)."""
        awake = self._awake(self._regs[PWR_MGMT_1])
        self._t_next = self._t_phase + (self._k + 1) * self._period_s() if awake else math.inf

    @staticmethod
    def _awake(pwr_mgmt_1: int) -> bool:
        return not pwr_mgmt_1 & SLEEP and pwr_mgmt_1 & 0x07 != CLKSEL_STOP

    def _period_s(self) -> float:
        """Sample period by the loop clock, s (the clock as warm as it is now)."""
        cfg = self._regs[CONFIG] & 0x07
        base_hz = 8000.0 if cfg in (0, 7) else 1000.0
        scale = self._clock_scale
        if self._warmup:
            warm = 1.0 - math.exp(-(self._clock.now() - self._powered_at) / IMU_CLOCK_WARMUP_S)
            scale += self._warmup * warm
        return (1 + self._regs[SMPLRT_DIV]) / (base_hz * scale)

    def _frame_columns(self) -> list[int]:
        if not self._regs[USER_CTRL] & USER_FIFO_EN:
            return []
        enabled = self._regs[FIFO_EN]
        return [c for bit, cols in _FIFO_SOURCES if enabled & bit for c in cols]

    # -- sampling ---------------------------------------------------------------------
    def _fill(self) -> None:
        """Make every sample due by now, in one vectorised batch."""
        now = self._clock.now()
        if now < self._t_next:  # the common case: nothing new since the last access
            return
        period = self._period_s()
        due = math.floor((now - self._t_phase) / period) - self._k
        if due <= 0:
            return
        first = self._k
        self._k += due
        if self._warmup:  # the period changes slowly: go on from the last sample made
            self._t_phase += self._k * period
            first -= self._k
            self._k = 0
        self._schedule()
        if self._stuck:
            self._walk(due, period)
            return
        cols = self._frame_columns()
        size = 2 * len(cols)
        keep = due
        if size == 0:
            keep = 1
        elif due * size > FIFO_SIZE + size:  # only the newest FIFO_SIZE bytes survive
            keep = FIFO_SIZE // size + 2
        if keep < due:
            skipped = due - keep
            self._walk(skipped, period)
            if size:
                self._drop(len(self._fifo) + skipped * size, size)
        times = self._t_phase + (first + due - keep + 1 + np.arange(keep)) * period
        rows = self._measure(times, period)
        self.samples_generated += due
        self._regs[_DATA_REGS] = rows[-1].astype(">i2").tobytes()
        self._regs[INT_STATUS] |= INT_DATA_RDY
        if size:
            self._push(rows[:, cols].astype(">i2").tobytes(), size)

    def _walk(self, n: int, period: float) -> None:
        """Random-walk the gyro offset over ``n`` sample periods at once."""
        self._gyro_bias += self._rng.standard_normal(3) * self._drift * math.sqrt(n * period)

    def _measure(self, times: np.ndarray, period: float) -> np.ndarray:
        """Register values (n, 7) int16 (ax ay az temp gx gy gz) for samples at ``times``."""
        n = len(times)
        if self._frozen is not None:
            self._walk(n, period)
            return np.tile(self._frozen, (n, 1))
        cfg = self._regs[CONFIG] & 0x07
        force, rate = self._motion(np.concatenate((times - ACCEL_DELAY_S[cfg],
                                                   times - GYRO_DELAY_S[cfg])))
        accel_g = np.asarray(force, dtype=float)[:n] / G0
        rate_dps = np.degrees(np.asarray(rate, dtype=float)[n:])
        if self._gyro_m is not None:
            accel_g = accel_g @ self._accel_m.T
            rate_dps = rate_dps @ self._gyro_m.T
        if times[0] < self._awake_at + self.part.gyro_startup_s:
            rate_dps = rate_dps.copy()  # the gyro is still starting: it senses no rotation
            rate_dps[times < self._awake_at + self.part.gyro_startup_s] = 0.0
        z = self._rng.standard_normal((n, 10))
        bias = self._gyro_bias + np.cumsum(z[:, 7:10] * (self._drift * math.sqrt(period)), axis=0)
        self._gyro_bias = bias[-1].copy()
        accel_sigma = ACCEL_NOISE_G_PER_RTHZ * math.sqrt(ACCEL_BANDWIDTH_HZ[cfg])
        gyro_sigma = GYRO_NOISE_DPS_PER_RTHZ * math.sqrt(GYRO_BANDWIDTH_HZ[cfg])
        out = np.empty((n, 7))
        out[:, 0:3] = (accel_g + self._accel_offset + z[:, 0:3] * accel_sigma) \
            * ACCEL_LSB_PER_G[(self._regs[ACCEL_CONFIG] >> 3) & 3]
        out[:, 3] = (self._temperature_c - 36.53 + z[:, 3] * TEMP_NOISE_C) * 340.0
        out[:, 4:7] = (rate_dps + bias + z[:, 4:7] * gyro_sigma) \
            * GYRO_LSB_PER_DPS[(self._regs[GYRO_CONFIG] >> 3) & 3]
        return np.clip(np.rint(out), -32768, 32767).astype(np.int16)

    # -- FIFO -------------------------------------------------------------------------
    def _push(self, data: bytes, frame_size: int = 1) -> None:
        self._fifo += data
        excess = len(self._fifo) - FIFO_SIZE
        if excess > 0:
            self._drop(excess, frame_size)

    def _drop(self, nbytes: int, frame_size: int) -> None:
        """Lose the oldest ``nbytes`` (they may run past what is stored: skipped samples)."""
        del self._fifo[:nbytes]
        start, end = self._head, self._head + nbytes
        self.samples_dropped += -(-end // frame_size) - -(-start // frame_size)
        self._head = end
        self._regs[INT_STATUS] |= INT_FIFO_OFLOW
        if not self._overflowing:
            self._overflowing = True
            self.overflows += 1

    def _pop(self, n: int) -> bytes:
        if not self._regs[USER_CTRL] & USER_FIFO_EN:
            return bytes([self._last_byte]) * n
        out = bytes(self._fifo[:n])
        if out:
            del self._fifo[:len(out)]
            self._head += len(out)
            self._last_byte = out[-1]
            self._overflowing = False
        if len(out) < n:
            out += bytes([self._last_byte]) * (n - len(out))
        return out


__all__ = ["G0", "Motion", "Mpu6050Sim"]
