"""MPU-6050 driver: samples timed by the sensor's clock, drained from its FIFO.

``start()`` resets the part, sets rate, filter and ranges from ``ImuConfig`` and starts
the FIFO with 12-byte frames (accel x y z, gyro x y z; big-endian int16). ``drain()``
reads FIFO_COUNT, then only whole frames, and returns them as one ``ImuBatch``. Where
the bus has combined transactions (``i2c_rdwr``, prepared once: ``Transfer``) the frames
come in one read message, whatever their number (the 32-byte limit is SMBus block
reads', not I2C's: the kernel's I2C_RDWR takes messages of up to 8192 bytes, and a burst
read of FIFO_R_W pops the FIFO byte by byte): two bus transactions for the 4 frames of a
20 ms drain at 200 Hz. On a bus of plain SMBus calls the frames come two per 24-byte block
read (SMBus blocks stop at 32 bytes). Sample
``first_index + i`` was taken at sensor time ``(first_index + i) / rate``;
``clock_to_sensor`` maps loop-clock time onto that scale through the part's sample grid
(``SampleClock``): every FIFO count read bounds the grid's phase, and the sensor clock's
rate is the samples counted over the loop time of all FIFO runs together (a FIFO reset
does not forget it). The part's sampling runs on while its FIFO is reset (register map
4.2: the Sample Rate comes from the gyro output rate alone), so the first sample after a
FIFO restart lies on the same grid, and a gap is the whole number of grid samples that
never reached the driver; only a re-initialisation starts a new grid.

Trouble is handled inside ``drain()``, which never raises for it:

- FIFO overflow: the count sticks at 1024 bytes, which is no multiple of 12 (a full
  FIFO of whole frames holds 1020), so the frames left are misaligned. The count alone
  tells it (nothing but the driver pops the FIFO), so INT_STATUS is not read for it at
  every drain, only cleared when the FIFO is restarted. The content is dropped, the
  FIFO reset, and the samples lost are estimated from the loop clock and reported as
  the next batch's gap.
- bus errors: each register access is tried 3 times (a timeout, a hung bus, is not
  retried: ``BusWatch`` marks the bus for the loop to recover); if it still fails, ``drain()``
  returns None with ``fault`` set and re-initialises the part (``start``) every 0.5 s
  until it answers, then resumes with a gap. A failed FIFO data read is not retried (it
  may have consumed bytes): the frames read so far are kept and the FIFO is reset.
- bytes that arrive as 0xFF (SDA held high: the part answered, the bytes are lost): a
  FIFO count above the FIFO's 1024 bytes, or a PWR_MGMT_1 with DEVICE_RESET set (the
  bit clears itself), cannot come from the part, and is read again (side-effect free)
  up to 3 times; a FIFO frame of twelve 0xFF bytes (all six values -1 LSB: free fall
  with no turn, which a roller on the floor never reads) was popped and lost, and is
  handled as a failed FIFO read (not delivered; the FIFO is reset and a gap reported).
- a part that reset itself (SLEEP set or FIFO off; checked about once a second and
  whenever the FIFO stays empty), a FIFO that stops filling (no frame for 10 sample
  periods) and stuck data (all six values identical over more than 50 samples, which a
  live sensor's noise never allows) are faults too: re-initialised at once, then with
  the 0.5 s back-off while they persist.

Each fault is logged once, until data flows again.
"""

from __future__ import annotations

import errno
import logging
import math
from collections.abc import Callable, Sequence
from ctypes import create_string_buffer
from typing import Any, Protocol, TypeVar

from smbus2 import i2c_msg
from smbus2.smbus2 import I2C_M_RD

from firmware.clock import Clock
from firmware.config import ImuConfig
from firmware.drivers.bus_watch import BusWatch
from firmware.drivers.i2c import Transfer
from firmware.drivers.sample_clock import SampleClock
from firmware.samples import ImuBatch

SMPLRT_DIV = 0x19
FIFO_EN = 0x23
INT_STATUS = 0x3A
USER_CTRL = 0x6A
PWR_MGMT_1 = 0x6B
FIFO_COUNTH = 0x72
FIFO_R_W = 0x74
WHO_AM_I = 0x75

WHO_AM_I_MPU6050 = 0x68
DEVICE_RESET = 0x80
SLEEP = 0x40
CLKSEL_PLL_XGYRO = 0x01
FIFO_EN_ACCEL_XYZ_GYRO = 0x78  # XG | YG | ZG | ACCEL
USER_FIFO_EN = 0x40
USER_FIFO_RESET = 0x04

FRAME_BYTES = 12
FIFO_BYTES = 1024
FRAMES_PER_READ = 32 // FRAME_BYTES  # smbus2 block reads carry at most 32 bytes
FIFO_FRAMES = FIFO_BYTES // FRAME_BYTES  # whole frames a full FIFO holds (85)
LOST_FRAME = b"\xff" * FRAME_BYTES  # a frame whose bytes all arrived as 0xFF
TRIES = 3
RESET_WAIT_S = 0.1
BACKOFF_S = 0.5
HEALTH_PERIOD_S = 1.0
STUCK_FIFO_PERIODS = 10
STUCK_DATA_SAMPLES = 50
RATE_TOLERANCE = 0.02  # sanity bound on a stored ratio (clocks are good to ~1 %)
RATE_TRUST_S = 60.0  # a stored ratio gives way to this boot's once its count is this long

DLPF_CFG = {260: 0, 184: 1, 94: 2, 44: 3, 21: 4, 10: 5, 5: 6}
"""Accelerometer bandwidth, Hz -> CONFIG.DLPF_CFG (0: 8 kHz gyro output, else 1 kHz)."""
GYRO_FS_SEL = {250: 0, 500: 1, 1000: 2, 2000: 3}
GYRO_LSB_PER_DPS = {250: 131.0, 500: 65.5, 1000: 32.8, 2000: 16.4}
ACCEL_AFS_SEL = {2: 0, 4: 1, 8: 2, 16: 3}

T = TypeVar("T")


def _count_possible(data: Sequence[int]) -> bool:
    """Whether FIFO_COUNT's two bytes can come from the part (at most the FIFO's size)."""
    return (data[0] << 8 | data[1]) <= FIFO_BYTES


def _power_possible(data: Sequence[int]) -> bool:
    """Whether (USER_CTRL, PWR_MGMT_1) can come from the part: DEVICE_RESET clears itself,
    so read set it is the bus's."""
    return not data[1] & DEVICE_RESET


class SMBusLike(Protocol):
    """The part of ``smbus2.SMBus`` the driver uses."""

    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...
    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...
    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...
    def write_i2c_block_data(self, i2c_addr: int, register: int,
                             data: Sequence[int]) -> None: ...


class _DeviceFault(Exception):
    """The part answers but misbehaves (reset itself, stuck FIFO, stuck data)."""


def config_registers(config: ImuConfig) -> list[int]:
    """SMPLRT_DIV, CONFIG, GYRO_CONFIG, ACCEL_CONFIG values (0x19..0x1C) for ``config``."""
    dlpf = DLPF_CFG[config.dlpf_hz]
    base_hz = 8000.0 if dlpf == 0 else 1000.0
    div = round(base_hz / config.sample_rate_hz) - 1
    return [div, dlpf, GYRO_FS_SEL[config.gyro_range_dps] << 3,
            ACCEL_AFS_SEL[config.accel_range_g] << 3]


class Mpu6050:
    """An MPU-6050 on an smbus2-compatible bus, read through its FIFO.

    bus: ``smbus2.SMBus`` or anything with its byte and I2C-block methods.
    config: address, rate, ranges, filter. clock: the loop clock (s). watch: where bus
    errors are reported (a hung bus; default: a watch of its own).
    """

    def __init__(self, bus: SMBusLike, config: ImuConfig, clock: Clock,
                 logger: logging.Logger | None = None, watch: BusWatch | None = None) -> None:
        self.bus = bus
        self.watch = watch or BusWatch()
        self.config = config
        self.clock = clock
        self.log = logger or logging.getLogger(__name__)
        self.address = config.address
        self.rate_hz = float(config.sample_rate_hz)
        self.accel_lsb_per_g = 16384.0 * 2 / config.accel_range_g
        """Accelerometer sensitivity at the configured range, LSB/g."""
        self.gyro_lsb_per_dps = GYRO_LSB_PER_DPS[config.gyro_range_dps]
        """Gyro sensitivity at the configured range, LSB per deg/s."""
        self.who_am_i: int | None = None
        self.clone = False
        """True when WHO_AM_I was not 0x68 (a clone: it works, maybe less well)."""
        self.fault: str | None = None
        """The last fault, until data flows again (None while it flows)."""
        self.overflows = 0
        self.reinits = 0
        self.bus_errors = 0
        self.lost_reads = 0
        """Reads whose bytes arrived as 0xFF (read again, or a FIFO frame lost)."""
        self.sample_clock = SampleClock(self.rate_hz)
        """The part's sample grid against the loop clock."""
        self._started = False
        self._restarted = False  # the FIFO restarted on the grid; no count read since
        self._enabled = (0.0, 0.0)  # loop times the FIFO was last enabled between, s
        self._next_index = 0  # index of the next sample to deliver
        self._gap = 0  # samples lost just before it
        self._t_data = clock.now()  # loop time the FIFO last held a frame, s
        self._next_health = math.inf
        self._reinit_at: float | None = None
        self._logged: str | None = None
        self._last_frame = b""  # the last FIFO frame delivered (12 bytes)
        self._same_run = 0  # how many frames in a row repeated the one before
        self._combined = callable(getattr(bus, "i2c_rdwr", None))
        self._reads: dict[tuple[int, int], tuple[Transfer, Any]] = {}

    # -- public -----------------------------------------------------------------------
    def start(self) -> None:
        """Reset and configure the part, then start its FIFO.

        Raises OSError if the bus fails; ``drain()`` then keeps retrying on its own.
        """
        try:
            self._configure()
        except OSError as exc:
            self._fail(f"bus error: {exc}", retry_s=BACKOFF_S)
            raise
        self._reinit_at = None

    def drain(self) -> ImuBatch | None:
        """The samples in the FIFO as one batch; None if there are none or on a fault."""
        if self._reinit_at is not None:
            if self.clock.now() < self._reinit_at or not self._reinit():
                return None
        elif not self._started:
            raise RuntimeError("Mpu6050.drain() before start()")
        try:
            return self._read_batch()
        except OSError as exc:
            self._fail(f"bus error: {exc}", retry_s=BACKOFF_S)
        except _DeviceFault as exc:
            self._fail(str(exc), retry_s=BACKOFF_S if self._logged == str(exc) else 0.0)
        return None

    @property
    def rate_ratio(self) -> float:
        """Sensor clock rate / nominal, from the sample count (or assumed)."""
        return self.sample_clock.ratio

    @property
    def rate_span_s(self) -> float:
        """Loop time ``rate_ratio`` was counted over, s (0: not counted; an assumed
        ratio's span while it stands)."""
        return self.sample_clock.assumed_span_s or self.sample_clock.span_s

    def assume_rate(self, ratio: float, span_s: float) -> None:
        """Start from a sample-clock ratio measured before (a stored calibration, over
        ``span_s`` s): kept until this boot has counted samples over longer than
        ``span_s`` (at most ``RATE_TRUST_S``: the clock moves as the die warms)."""
        if abs(ratio - 1.0) < RATE_TOLERANCE and span_s > 0.0:
            self.sample_clock.ratio = ratio
            self.sample_clock.assumed_span_s = min(span_s, RATE_TRUST_S)

    def restart(self, reason: str) -> None:
        """Re-initialise the part at the next ``drain`` (after the bus was recovered:
        ``reason`` says why), with its start-up time; the samples lost are a gap."""
        self._fail(reason, retry_s=0.0)

    def clock_to_sensor(self, t: float) -> float:
        """Sensor time (index / rate, s) of loop-clock time ``t`` (s)."""
        return self.sample_clock.index_at(t) / self.rate_hz

    # -- bring-up ---------------------------------------------------------------------
    def _configure(self) -> None:
        who = self._call(self.bus.read_byte_data, self.address, WHO_AM_I)
        self.who_am_i = who
        if who != WHO_AM_I_MPU6050:
            if not self.clone:
                self.log.warning("MPU-6050 at %#04x: WHO_AM_I is %#04x, not 0x68 (a clone?); "
                                 "carrying on", self.address, who)
            self.clone = True
        self._call(self.bus.write_byte_data, self.address, PWR_MGMT_1, DEVICE_RESET)
        self.clock.sleep_until(self.clock.now() + RESET_WAIT_S)
        self._call(self.bus.write_byte_data, self.address, PWR_MGMT_1, CLKSEL_PLL_XGYRO)
        wanted = config_registers(self.config)
        self._call(self.bus.write_i2c_block_data, self.address, SMPLRT_DIV, wanted)
        got = self._call(self.bus.read_i2c_block_data, self.address, SMPLRT_DIV, len(wanted))
        if list(got) != wanted:
            raise OSError(errno.EIO, f"configuration did not stick: wrote {wanted}, read {got}")
        self._call(self.bus.write_byte_data, self.address, FIFO_EN, FIFO_EN_ACCEL_XYZ_GYRO)
        t_enabled = self._reset_fifo()
        if self._started:  # a new grid: the samples lost are judged by the loop clock
            index = round(self.sample_clock.index_at(t_enabled)) + 1
            if index > self._next_index:
                self._gap += index - self._next_index
                self._next_index = index
        self.sample_clock.reset(t_enabled, self._next_index)
        self._restart_run(t_enabled, on_grid=False)

    def _reset_fifo(self) -> float:
        """Empty and restart the FIFO; return the loop time it restarted, s."""
        # FIFO_RESET acts only with FIFO_EN = 0 (register map, USER_CTRL): reset, then enable.
        self._call(self.bus.write_byte_data, self.address, USER_CTRL, USER_FIFO_RESET)
        t_enabling = self.clock.now()
        self._call(self.bus.write_byte_data, self.address, USER_CTRL, USER_FIFO_EN)
        t_enabled = self.clock.now()
        self._enabled = (t_enabling, t_enabled)
        self._call(self.bus.read_byte_data, self.address, INT_STATUS)  # clear a stale overflow
        return t_enabled

    def _restart_run(self, t_enabled: float, on_grid: bool = True) -> None:
        """Note a FIFO (re)started at loop time ``t_enabled`` (s); ``on_grid``: on the
        sample grid so far (its first sample's index is judged at the first count read)."""
        self._started = True
        self._restarted = on_grid
        self._t_data = t_enabled
        self._next_health = t_enabled + HEALTH_PERIOD_S
        # The run of identical samples carries on: a live sensor's next sample differs.

    def _reinit(self) -> bool:
        try:
            self._configure()
        except OSError as exc:
            self._fail(f"bus error: {exc}", retry_s=BACKOFF_S)
            return False
        self.reinits += 1
        self.log.info("MPU-6050 re-initialised after: %s", self.fault)
        self._reinit_at = None
        return True

    # -- draining ---------------------------------------------------------------------
    def _read_batch(self) -> ImuBatch | None:
        t_before = self.clock.now()
        if t_before >= self._next_health:
            self._check_health()
            t_before = self.clock.now()
        count = self._fifo_count()
        t_count = self.clock.now()
        if count >= FIFO_BYTES:
            self._recover_overflow(count)
            return None
        frames = count // FRAME_BYTES
        if frames == 0:
            if t_count - self._t_data > STUCK_FIFO_PERIODS / self.rate_hz:
                self._check_health()
                raise _DeviceFault("FIFO stuck: no new samples")
            return None
        self._t_data = t_count
        if self._restarted:
            index = self.sample_clock.restart_index(self._enabled, t_before, t_count, frames,
                                                    self._next_index)
            self._gap += index - self._next_index
            self._next_index = index
            self._restarted = False
        self.sample_clock.observe(t_before, t_count, self._next_index + frames - 1)
        data, failed = self._read_frames(frames)
        batch = None
        if data:
            if self._stuck_data(data):
                raise _DeviceFault(f"stuck data: {STUCK_DATA_SAMPLES}+ identical samples")
            batch = ImuBatch.from_fifo(self._next_index, self.rate_hz, data, self._gap)
            self._next_index += len(batch)
            self._gap = 0
            self.fault = self._logged = None  # data flows again
        if failed:  # the FIFO may have lost bytes mid-frame: start it afresh
            try:
                self._restart_run(self._reset_fifo())
            except OSError as exc:
                self._fail(f"bus error: {exc}", retry_s=BACKOFF_S)
        return batch

    def _fifo_count(self) -> int:
        """FIFO_COUNT, bytes; a count above the FIFO's size is the bus's (0xFF bytes),
        not the part's, and is read again."""
        high, low = self._read_again(_count_possible, self._read, FIFO_COUNTH, 2)
        return high << 8 | low

    def _read_frames(self, frames: int) -> tuple[bytes, bool]:
        """Read ``frames`` whole frames; (bytes, True) if a read failed part way or a
        frame arrived as 0xFF bytes (the frames before it are kept). One read of them
        all where the bus has combined transactions (an ``i2c_rdwr`` message is not
        bound to an SMBus block's 32 bytes), else SMBus block reads of two frames."""
        data = b""
        per_read = FIFO_FRAMES if self._combined else FRAMES_PER_READ
        while frames > 0:
            n = min(frames, per_read)
            try:
                chunk = self._read(FIFO_R_W, n * FRAME_BYTES)
            except OSError as exc:  # not retried: the failed read may have popped bytes
                self.bus_errors += 1
                self.watch.error(exc)
                self.log.debug("MPU-6050 FIFO read failed; resetting the FIFO")
                return data, True
            lost = chunk.find(LOST_FRAME)
            while lost > 0 and lost % FRAME_BYTES:  # only a whole frame of 0xFF counts
                lost = chunk.find(LOST_FRAME, lost + 1)
            if lost >= 0:
                self.lost_reads += 1
                self.log.debug("MPU-6050 FIFO frame read as 0xFF; resetting the FIFO")
                return data + chunk[:lost], True
            data += chunk
            frames -= n
        return data, False

    def _recover_overflow(self, count: int) -> None:
        self.overflows += 1
        log = self.log.warning if self.overflows == 1 else self.log.debug
        log("MPU-6050 FIFO overflow (%d bytes): dropped, FIFO reset (drain more often)", count)
        self._restart_run(self._reset_fifo())

    def _check_health(self) -> None:
        """Raise ``_DeviceFault`` if the part reset itself (asleep or FIFO off)."""
        self._next_health = self.clock.now() + HEALTH_PERIOD_S
        user_ctrl, pwr_mgmt_1 = self._read_again(_power_possible, self.bus.read_i2c_block_data,
                                                 self.address, USER_CTRL, 2)
        if pwr_mgmt_1 & SLEEP or not user_ctrl & USER_FIFO_EN:
            raise _DeviceFault("device reset itself (asleep or FIFO off)")

    def _stuck_data(self, data: bytes) -> bool:
        """Track runs of identical frames; True once one exceeds STUCK_DATA_SAMPLES.

        data: whole 12-byte FIFO frames; a frame that repeats the one before (the last
        one of the previous batch included) lengthens the run, any other ends it.
        """
        run, last, longest = self._same_run, self._last_frame, 0
        for i in range(0, len(data), FRAME_BYTES):
            frame = data[i:i + FRAME_BYTES]
            if frame == last:
                run += 1
                longest = max(longest, run)
            else:
                run, last = 0, frame
        self._same_run, self._last_frame = run, last
        return longest >= STUCK_DATA_SAMPLES

    # -- plumbing ---------------------------------------------------------------------
    def _read(self, register: int, length: int) -> bytes:
        """``length`` bytes from ``register`` on: one register-pointer write and one read,
        as a combined transaction prepared once per length (``Transfer``) when the bus has
        them (cheaper than an SMBus block read's per-call set-up; at most the FIFO's 1024
        bytes), else an SMBus block read (at most 32)."""
        if not self._combined:
            return bytes(self.bus.read_i2c_block_data(self.address, register, length))
        prepared = self._reads.get((register, length))
        if prepared is None:
            if length > FIFO_BYTES:
                raise ValueError(f"{length} bytes: more than the FIFO holds")
            buf = create_string_buffer(length)
            msgs = (i2c_msg.write(self.address, [register]),
                    i2c_msg(addr=self.address, flags=I2C_M_RD, len=length, buf=buf))
            prepared = self._reads[register, length] = (Transfer(self.bus, *msgs), buf)
        transfer, buf = prepared
        transfer()
        return buf.raw

    def _call(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)``, tried TRIES times on OSError."""
        for attempt in range(TRIES):
            try:
                return fn(*args)
            except OSError as exc:
                self.bus_errors += 1
                if self.watch.error(exc) or attempt == TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _read_again(self, possible: Callable[[Sequence[int]], bool],
                    fn: Callable[..., Sequence[int]], *args: object) -> Sequence[int]:
        """``fn(*args)`` (a side-effect-free register read, its bus errors retried by
        ``_call``), read again while the bytes are not ``possible`` from the part (they
        arrived as 0xFF: the bus's), up to ``TRIES`` reads; the last read if none is."""
        for _ in range(TRIES):
            got = self._call(fn, *args)
            if possible(got):
                break
            self.lost_reads += 1
        return got

    def _fail(self, text: str, retry_s: float) -> None:
        """Enter a fault: log it once, re-initialise after ``retry_s`` (s)."""
        self.fault = text
        if text != self._logged:
            self.log.warning("MPU-6050 fault: %s", text)
            self._logged = text
        self._reinit_at = self.clock.now() + retry_s


__all__ = ["Mpu6050", "SMBusLike", "config_registers"]
