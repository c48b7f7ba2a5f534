"""Raw samples -> frames: the sensing core shared by the live firmware and by replay.

``SensingPipeline`` takes what the drivers deliver (``ImuBatch`` from the FIFO and
``ZoneScan`` from the ADCs) and produces ``Frame``s at the frame rate, timed by the
sensor clock. It holds no I/O, so a raw log replays into exactly the same frames.
"""

from __future__ import annotations

import math

from firmware.config import Config
from firmware.protocol import Frame, FrameFlag
from firmware.samples import ImuBatch, ZoneScan
from firmware.sensing.gyro_offset import GYRO_STARTUP_S
from firmware.sensing.gyro_scale import GyroScale
from firmware.sensing.load import FsrCreep, FsrHysteresis, ZoneLoads
from firmware.sensing.odometry import G, Odometry

_DEG = math.pi / 180.0
TARE_TIME_CONSTANT_S = 2.0  # how fast the empty-roller reading is followed

# Frame flags as plain ints: the per-frame path builds one FrameFlag from their sum.
_IN_CONTACT = int(FrameFlag.IN_CONTACT)
_UNCALIBRATED = int(FrameFlag.UNCALIBRATED)
_LOAD_STALE = int(FrameFlag.LOAD_STALE)
_ADC_FAULT = int(FrameFlag.ADC_FAULT)
_IMU_CLONE = int(FrameFlag.IMU_CLONE)
_IMU_GAP = int(FrameFlag.IMU_GAP)
_ZEROED = int(FrameFlag.ZEROED)
_IMU_CLIPPED = int(FrameFlag.IMU_CLIPPED)
_IMU_INCONSISTENT = int(FrameFlag.IMU_INCONSISTENT)
_IMU_FAULT = int(FrameFlag.IMU_FAULT)
_FULL_SCALE = 32767  # an int16 gyro reading at either end of its range has clipped
_FLAGS: dict[int, FrameFlag] = {}  # bits -> FrameFlag, built as they occur


def _frame_flags(bits: int) -> FrameFlag:
    flags = _FLAGS.get(bits)
    if flags is None:
        flags = _FLAGS[bits] = FrameFlag(bits)
    return flags


class SensingPipeline:
    """Odometry + zone loads -> frames.

    config: the hardware profile. Frames come out every ``imu.sample_rate_hz /
    frames.rate_hz`` IMU samples, at the sensor time of that sample.
    boot: this firmware run's boot id (stamped on every frame).
    first_seq: sequence number of the first frame (continues the journal's numbering
        across restarts, so a host never sees one seq twice).
    gyro_scale: the gyro's scale to start from and refine (a stored calibration's;
        default: a new roller's, nominal until learned).
    """

    def __init__(self, config: Config, *, boot: int = 0, first_seq: int = 0,
                 gyro_scale: GyroScale | None = None) -> None:
        self.config = config
        self.boot = boot
        self.odometry = Odometry(config.roller, config.imu, scale=gyro_scale)
        self.loads = ZoneLoads(config.zones, config.adc.full_scale_v)
        self.creep = FsrCreep(config.zones.count, config.zones.creep_per_decade)
        self.hysteresis = FsrHysteresis(config.zones.count, config.zones.hysteresis)
        self.decimation = round(config.imu.sample_rate_hz / config.frames.rate_hz)
        self.dt = 1.0 / config.imu.sample_rate_hz
        self.accel_scale = G / (16384.0 / (config.imu.accel_range_g / 2))
        self.gyro_scale = _DEG / (131.0 / (config.imu.gyro_range_dps / 250))
        self._clip_rate = _FULL_SCALE * self.gyro_scale  # rad/s: a reading at +32767
        count = config.zones.count
        self.zone_forces = [0.0] * count  # N per zone (tared)
        self.tare = [0.0] * count  # per-zone reading of the empty roller, N
        self._measured = [0.0] * count
        self.total_load = 0.0
        self._zone_tuple = tuple(self.zone_forces)
        self._last_t = 0.0
        self.load_ok = True  # every zone's ADC answered in the last scan
        self.load_time = -math.inf  # sensor time of the last scan, s
        self.scan_period = 1.0 / config.adc.scan_rate_hz
        self.contact_threshold = config.zones.contact_threshold_n
        self.in_contact = False
        self.zero_armed = True  # zero at the first contact after boot
        self.gyro_awake = False  # the gyro's start-up after boot is over (GYRO_STARTUP_S)
        self.zero_position = 0.0
        self.seq = first_seq
        self._first_seq = first_seq
        self.imu_clone = False
        self._next_index = 0  # IMU sample index expected next
        self._pending = 0  # FrameFlag bits for the next frame
        self._stale_s = 2.0 * self.scan_period  # loads older than this are stale
        self.clipped_batches = 0  # IMU batches in which the gyro read full scale

    # -- commands -------------------------------------------------------------------
    def zero(self) -> None:
        """Make the current position the zero (position 0 from the next frame)."""
        self.zero_position = self.odometry.position
        self.odometry.zeroed()
        self.zero_armed = False
        self._pending |= _ZEROED

    def tare_now(self) -> None:
        """Take the current zone readings as the empty roller (the TARE command)."""
        self.tare = list(self._measured)

    def mark(self) -> None:
        """Flag the next frame with ``BUTTON`` (the person marked this spot)."""
        self._pending |= FrameFlag.BUTTON

    def arm_zero(self) -> None:
        """Zero now if a body is on the roller, else at the next contact (start of session)."""
        if self.in_contact:
            self.zero()
        else:
            self.zero_armed = True

    # -- inputs ---------------------------------------------------------------------
    def on_scan(self, scan: ZoneScan, sensor_t: float) -> None:
        """Take a completed zone scan that ended at sensor time ``sensor_t`` (s)."""
        ok = scan.answered()
        all_ok = False not in ok
        dead = self.loads.dead_patches(self.odometry.angle)  # once a scan, for both
        readings = self.creep.undo_list(self.loads.forces_list(scan.codes(), dead[0] or dead[1]),
                                        self.tare, sensor_t, dead)
        measured = self.hysteresis.unwind_list(readings, self.odometry.velocity)
        tare = self.tare
        if not self.in_contact and sum(measured) < self.contact_threshold:
            # Nobody on the roller: what the bands read is the roller's own weight on
            # the floor patch (and FSR offset). Track it slowly as the tare.
            gain = min(1.0, self.scan_period / TARE_TIME_CONSTANT_S)
            for i, good in enumerate(ok):
                if good:
                    tare[i] += gain * (measured[i] - tare[i])
        self._measured = measured
        if all_ok:
            self.zone_forces = zones = [m - t if m > t else 0.0  # (one per zone, both)
                                        for m, t in zip(measured, tare)]  # noqa: B905
        else:  # a faulted ADC's zones hold their last value
            zones = self.zone_forces
            for i, good in enumerate(ok):
                if good:
                    force = measured[i] - tare[i]
                    zones[i] = force if force > 0.0 else 0.0
        total = sum(zones)
        self.load_ok = all_ok
        self.total_load = total
        self._zone_tuple = tuple(zones)
        self.load_time = sensor_t
        threshold = self.contact_threshold
        if self.in_contact:
            self.in_contact = total > 0.5 * threshold
        elif total > threshold:
            self.in_contact = True
            if self.zero_armed and self.gyro_awake:
                self.zero()

    def on_imu(self, batch: ImuBatch) -> list[Frame]:
        """Take a batch of FIFO samples; return the frames that fall in it."""
        values = batch.values()  # (6 per sample: ``field::6`` is one field's)
        n = len(values) // 6
        if n == 0:
            return []
        first_index = batch.first_index
        gap = max(first_index - self._next_index, 0) if self._next_index else 0
        od = self.odometry
        gs, acc = self.gyro_scale, self.accel_scale / n
        rates = [v * gs for v in values[3 + od.axis::6]]
        clip = self._clip_rate
        clipped = max(rates) >= clip or min(rates) < -clip
        if clipped:
            # The gyro clipped: the turn beyond its range is lost until the odometry
            # takes it back from gravity; the host widens its doubt.
            self._pending |= _IMU_CLIPPED
            self.clipped_batches += 1
        a1 = sum(values[od.in1::6])  # (ints: exact, in any order)
        a2 = sum(values[od.in2::6])
        if not self.gyro_awake and first_index * self.dt >= GYRO_STARTUP_S:
            # A roller switched on under a body zeroes only now: the turn its gyro
            # missed while starting would stay in every position after.
            self.gyro_awake = True
            if self.zero_armed and self.in_contact:
                self.zero()
        out = od.update(rates, a1 * acc, a2 * acc, self.dt, self.total_load,
                        gap_s=gap * self.dt, clipped=clipped)
        if gap:
            self._pending |= _IMU_GAP
        self._next_index = first_index + n
        frames: list[Frame] = []
        dt, decimation = self.dt, self.decimation
        state = self._state_flags()  # (the same for every frame of the step)
        # (``_frame`` written out, its state in locals: two frames a batch, on a Pi Zero)
        angles, positions, velocity = out
        zero, zones, load, boot = self.zero_position, self._zone_tuple, self.total_load, \
            self.boot
        load_time, stale_s = self.load_time, self._stale_s
        seq, first_seq, last_t, pending = self.seq, self._first_seq, self._last_t, \
            self._pending
        for i in range((-first_index) % decimation, n, decimation):
            t = (first_index + i) * dt
            if seq > first_seq and t <= last_t:
                continue  # already covered by frames held through an IMU fault
            bits = pending | state
            pending = 0
            if t - load_time > stale_s:
                bits |= _LOAD_STALE
            flags = _FLAGS.get(bits)
            if flags is None:
                flags = _frame_flags(bits)
            frames.append(Frame(seq, t, positions[i] - zero, velocity, angles[i], zones, load,
                                flags, boot))
            seq += 1
            last_t = t
        self.seq, self._last_t, self._pending = seq, last_t, pending
        return frames

    def hold(self, sensor_t: float) -> list[Frame]:
        """Frames up to sensor time ``sensor_t`` (s) while the IMU gives nothing.

        The position is held and flagged ``IMU_FAULT``, so the loads keep flowing and
        the host and the fence know the position is not being tracked.
        """
        frames = []
        period = self.dt * self.decimation
        t = (self._last_t if self.seq > self._first_seq else 0.0) + period
        while t <= sensor_t:
            frames.append(self._frame(t, self.odometry.position, 0.0, self.odometry.angle,
                                      self._state_flags() | _IMU_FAULT))
            t += period
        if frames:
            self._pending |= _IMU_GAP
        return frames

    def _state_flags(self) -> int:
        """The frame flags of the pipeline's state (contact, calibration, gyro-gravity
        check, ADC fault, clone), as ints."""
        flags = 0
        if self.in_contact:
            flags |= _IN_CONTACT
        if not self.odometry.calibrated:
            flags |= _UNCALIBRATED
        if self.odometry.check.inconsistent:
            flags |= _IMU_INCONSISTENT
        if not self.load_ok:
            flags |= _ADC_FAULT
        if self.imu_clone:
            flags |= _IMU_CLONE
        return flags

    def _frame(self, t: float, position: float, velocity: float, angle: float,
               state: int) -> Frame:
        """The frame at sensor time ``t`` (s): ``state``, ``_state_flags()`` (and any
        other bits), with what is pending and a stale load's flag."""
        flags = self._pending | state
        self._pending = 0
        if t - self.load_time > self._stale_s:
            flags |= _LOAD_STALE
        frame = Frame(self.seq, t, position - self.zero_position, velocity, angle,
                      self._zone_tuple, self.total_load, _frame_flags(flags), self.boot)
        self.seq += 1
        self._last_t = t
        return frame
