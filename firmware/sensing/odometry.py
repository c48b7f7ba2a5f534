"""Roll odometry: gyro + gravity -> roll angle -> position along the back.

The roller's axis is horizontal, so gravity lies in the plane of rotation and the two
in-plane accelerometer axes give the absolute roll angle ``atan2(a1, a2)``; the gyro
axis along the roller gives its rate. A complementary filter fuses them: the gyro
carries every fast change, gravity slowly steers the angle (proportional term) and the
residual gyro offset (integral term), so the angle never drifts even when the offset
moves with temperature (+-20 deg/s over the range, MPU-6050 spec rev 3.4).

What corrupts the gravity angle, and what is done about it:
- the axle's acceleration along the floor (``-r * alpha``) and the IMU's offset from
  the axis (tangential ``alpha * d``, centripetal ``omega^2 * d``): predicted from the
  gyro and subtracted (the IMU sits on its second in-plane axis, ``imu_offset_m`` out);
- the accelerometer's zero-g offset (+-50/80 mg, i.e. up to 5 deg): estimated online
  by ``GravityFit`` as the roller turns through different angles;
- what is left (bumps, body motion) is weighted down when the magnitude is not ~1 g.

Position: rolling without slip moves the contact along the back by ``r_eff * dtheta``,
with the rolling radius shrinking under load (``r_eff = r - load / stiffness``). While
the gyro offset is being learned after boot (``GyroOffset``: a roller switched on while
someone rolls), each better estimate moves the position by what the old one turned it
since the zero (the change x the sum of ``r_eff`` x time), until gravity steers it.
Once the zero-g fit has converged, gravity also says what the gyro miscounted before
(an offset learned late, a gap bridged, a sample grid miscounted): where the roller is
back at the zero's angle, gravity's turn since the zero against the position's settles
the position once (``Odometry._settle``); until then the position keeps the miss for
good, however long the session.
Work is done per batch of FIFO samples with numpy (the firmware runs on a Pi Zero 2 W).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from math import atan2, cos, hypot, sin
from typing import NamedTuple

import numpy as np

from firmware.config import ImuConfig, RollerConfig
from firmware.sensing.angles import wrap
from firmware.sensing.gyro_check import GyroCheck
from firmware.sensing.gyro_offset import GyroOffset
from firmware.sensing.gyro_scale import GyroScale

G = 9.80665
CLIP_BACK_RAD = 0.2  # gravity behind a clipped gyro by more than this is not the angle
RECOVER_WEIGHT = 0.5  # gravity's weight (1 at exactly 1 g) that ends a clip's doubt
CHECK_MAGNITUDE = 0.15  # gravity clean enough for the gyro-gravity check
TILT_MAGNITUDE = 0.1  # gravity within this share of 1 g (offsets included) is clean enough
CLEAN_SHARE = 0.01  # gravity near the zero this near its typical magnitude is clean
ZERO_BATCHES = 25  # batches from the zero (0.5 s) to find clean gravity in
CONVERGED_M_S2 = 0.015  # the zero-g fit's 1-sigma at which it counts as converged
SETTLE_RAD = 0.1  # gravity this near the zero's angle settles the position (``_settle``)
_AXES = {"x": (0, 1, 2), "y": (1, 2, 0), "z": (2, 0, 1)}


class GravityFit:
    """Least-squares fit of the accelerometer's in-plane zero-g offsets, m/s^2.

    Model, for the gyro angle ``t`` (which differs from the true angle by a constant
    ``c`` within one stretch of the gyro's own count): ``a1 = A sin t + B cos t + b1``
    and ``a2 = A cos t - B sin t + b2`` with ``A = g cos c``, ``B = g sin c``. The normal
    equations of this model need only seven running sums (kept with exponential
    forgetting); a prior holds the offsets near zero (the datasheet's spread) until
    the roller has turned through enough angles to tell them apart.

    Where the gyro angle is set anew (a gap or a clip: the turn lost is taken from
    gravity, with gravity's error) ``c`` changes by an unknown amount, so ``cut`` closes
    the stretch: its own ``A, B`` are eliminated from its sums (the Schur complement of
    their block, a scalar weight and a 2-vector, since that block is ``w I``) and what it
    says of the offsets alone is kept; the next stretch gets an ``A, B`` of its own.
    Without the cut, one ``c`` across many gaps makes the fit take their errors for
    offsets (0.34 g read on a part with 0.05 g, after a broken FIFO read every ~0.4 s),
    and every later gap's jump to gravity is then off by as much (~16 deg, 20 mm).
    """

    def __init__(self, memory_s: float = 120.0, prior_m_s2: float = 0.8,
                 noise_m_s2: float = 0.03) -> None:
        self.memory_s = memory_s
        self.noise = noise_m_s2  # spread of one batch-mean observation, m/s^2
        self.weak = (noise_m_s2 / prior_m_s2) ** 2
        self.sums = [0.0] * 7  # w, w sin, w cos, then the right-hand side y0..y3
        self.closed = [0.0] * 3  # the closed stretches' offset weight and right-hand side
        self.offset = (0.0, 0.0)
        self.uncertainty = prior_m_s2  # 1-sigma of the offsets, m/s^2
        self.converged = self.uncertainty < CONVERGED_M_S2
        """True once the offsets are known to ~0.015 m/s^2 (0.1 deg of angle): set by
        ``solve`` (an attribute: the odometry reads it every batch)."""
        self._span = self._keep = math.nan  # the last span and its forgetting factor


    def add(self, gyro_angle: float, a1: float, a2: float, weight: float, span_s: float
            ) -> None:
        """Add one batch-mean observation (angle rad, accel m/s^2) with a weight."""
        if span_s != self._span:  # batches are mostly the same length
            self._span, self._keep = span_s, math.exp(-span_s / self.memory_s)
        k = self._keep
        s, c = math.sin(gyro_angle), math.cos(gyro_angle)
        w = weight
        ws, wc = w * s, w * c
        s0, s1, s2, s3, s4, s5, s6 = self.sums
        self.sums = [k * s0 + w, k * s1 + ws, k * s2 + wc, k * s3 + ws * a1 + wc * a2,
                     k * s4 + wc * a1 - ws * a2, k * s5 + w * a1, k * s6 + w * a2]
        p, q1, q2 = self.closed
        self.closed = [k * p, k * q1, k * q2]

    def cut(self) -> None:
        """The gyro angle was just set anew (its offset ``c`` from the true angle moved):
        close the stretch, keeping only what it says of the offsets."""
        w, ws, wc, y0, y1, y2, y3 = self.sums
        if w > 0.0:
            p, q1, q2 = self.closed
            self.closed = [p + w - (ws * ws + wc * wc) / w,
                           q1 + y2 - (ws * y0 + wc * y1) / w,
                           q2 + y3 - (wc * y0 - ws * y1) / w]
        self.sums = [0.0] * 7

    def solve(self) -> tuple[float, float]:
        """Update and return the offsets (b1, b2), m/s^2.

        The normal matrix is ``[[w I, B], [B^T, (w + p + weak) I]]`` with ``B = [[ws, wc],
        [wc, -ws]]`` (``w`` with 1e-9 added), and ``B^T B = (ws^2 + wc^2) I``: the
        offsets' block of its inverse is ``I / s``, ``s = w + p + weak - (ws^2 + wc^2) /
        w`` (the Schur complement, > 0: ``ws^2 + wc^2 <= w^2``), and the offsets are
        ``(y2 + q1, y3 + q2) - B^T (y0, y1) / w``, over ``s``. Written out (a 4x4 inverse
        in numpy cost ~40 us of set-up, twice a second on a Pi Zero).
        """
        w, ws, wc, y0, y1, y2, y3 = self.sums
        p, q1, q2 = self.closed
        wa = w + 1e-9
        schur = w + p + self.weak - (ws * ws + wc * wc) / wa
        if not schur > 0.0:  # (not with real sums; a NaN in them)
            return self.offset
        self.offset = ((y2 + q1 - (ws * y0 + wc * y1) / wa) / schur,
                       (y3 + q2 - (wc * y0 - ws * y1) / wa) / schur)
        self.uncertainty = self.noise * math.sqrt(1.0 / schur)
        self.converged = self.uncertainty < CONVERGED_M_S2
        return self.offset


class OdometryOutput(NamedTuple):
    """Results of one batch: per-sample angle and position, and the final velocity.
    (A named tuple: made 50 times a second, built in C by ``_output``.)"""

    angle: list[float]  # unwrapped absolute roll angle per sample, rad
    position: list[float]  # position along the back per sample, m (not yet zeroed)
    velocity: float  # m/s at the end of the batch


_output = tuple.__new__  # (OdometryOutput, (angle, position, velocity)) without the
# generated ``__new__``'s Python frame


class Odometry:
    """Complementary filter with a gyro-offset integral term, and the rolling radius.

    roller, imu: the hardware profile (radius, foam stiffness, IMU offset, roller axis).
    angle_time_constant_s: how fast the angle follows gravity.
    offset_time_constant_s: how fast the residual gyro offset follows it.
    """

    def __init__(self, roller: RollerConfig, imu: ImuConfig, *,
                 angle_time_constant_s: float = 3.0, offset_time_constant_s: float = 60.0,
                 scale: GyroScale | None = None) -> None:
        self.axis, self.in1, self.in2 = _AXES[imu.roller_axis]
        self.sign = float(imu.roller_axis_sign)
        self.radius = roller.diameter_m / 2.0
        self.stiffness = roller.foam_stiffness_n_per_m
        self.imu_offset = roller.imu_offset_m
        self.kp = 1.0 / angle_time_constant_s
        self.ki = self.kp / offset_time_constant_s
        self.gyro_offset = GyroOffset()
        self.check = GyroCheck()  # do the gyro and gravity agree?
        self._time = 0.0  # the batches' spans and gaps so far, s
        self.gravity = GravityFit()
        self.scale = scale or GyroScale()  # the gyro's scale (true turn per counted turn)
        self._gamma = 0.0  # the gyro's own turn at the nominal scale, rad
        self.theta = 0.0  # gyro-integrated angle, rad (unwrapped)
        self.correction: float | None = None  # absolute angle = theta + correction, rad
        self.trim = 0.0  # residual gyro offset from gravity, rad/s
        self.position = 0.0  # m
        self.velocity = 0.0  # m/s
        self._rate = 0.0  # last rate, rad/s
        self._last_gravity: tuple[float, float, float] | None = None  # the last batch's
        # in-plane accelerations with the motion removed (m/s^2) and gyro angle (rad)
        self._batches = 0
        self._steering = False  # gravity steers the position (zero-g offsets known)
        self._turn_time = 0.0  # sum of rolling radius x time since the zero, until
        # gravity steers the position, m s
        self._zero_time = 0.0  # time since the zero, until gravity steers the position, s
        self._revised_turn = 0.0  # what the offset's revisions turned the position since
        # the zero (the gyro angle keeps the old offset's turn), rad
        self._settling = False  # the fit converged: the position waits to be settled
        self._reference: list[tuple[float, float, float, float, float]] = []  # the
        # batches near the zero that the position is settled against (``_settle``)
        self._typical = G  # gravity's magnitude near the zero, m/s^2
        self._reference_at: tuple[tuple[float, float] | None, list[float]] = (None, [])
        # the zero-g offsets and the reference batches' gravity angles read with them
        self._stepped = 0.0  # gravity's steps of the position since it began to steer, rad
        self._zero: list[tuple[float, float, float, float, float]] = []  # gravity over
        # ZERO_BATCHES batches from the zero (from boot until one is taken): the in-plane
        # accelerations with the motion removed (m/s^2), the gyro angle, the filter's
        # angle and the revisions' turn then (rad), for the converged fit to read
        self._lost = 0  # 2: the gyro clipped in the last batch, 1: before it, 0: not since
        # gravity last put the angle right

    @property
    def calibrated(self) -> bool:
        """True once the gyro offset is known (calibrated at rest, or fitted to gravity's
        turn well enough)."""
        return self.gyro_offset.calibrated

    def zeroed(self) -> None:
        """The position was just taken as the zero: a better gyro offset learned later
        corrects the position from here on (not what came before the zero), and so does
        the zero-g fit once it converges (``update``)."""
        self._turn_time = self._zero_time = self._revised_turn = self._stepped = 0.0
        self._zero = []  # (gravity from the next batch on)
        self._settling = False  # (a zero taken while gravity steers has nothing to settle)

    @property
    def angle(self) -> float:
        """Absolute roll angle, rad, unwrapped (0 before the first sample)."""
        return self.theta + (self.correction or 0.0)

    def _clean_zero(self) -> list[tuple[float, float, float, float, float]]:
        """The batches from the zero whose gravity, read with the zero-g offsets now
        known, is clean: within ``CLEAN_SHARE`` of their median magnitude (a part's
        gains put 1 g a few % off 9.81; the batch that takes the zero, a body landing
        on the roller, reads up to ~8 % off the rest)."""
        b1, b2 = self.gravity.offset
        magnitudes = [math.hypot(a1 - b1, a2 - b2) for a1, a2, *_ in self._zero]
        if not magnitudes:
            return []
        typical = self._typical = float(np.median(magnitudes))
        return [batch for batch, m in zip(self._zero, magnitudes, strict=True)
                if abs(m - typical) <= CLEAN_SHARE * typical]

    def _settle(self, mid: float, gravity_angle: float) -> float:
        """Once the zero-g fit has converged: what the position, resting on the gyro from
        the zero until then, is off by, m (0 until the roller is back at the zero's
        angle).

        Gravity's turn since the zero (both angles read with the offsets now known) is
        the roller's; the position turned by the gyro's count (with the offset's
        revisions) and gravity's steps since. The difference is the turn the gyro
        miscounted before gravity steered (an offset not yet known, a gap bridged),
        taken at the mean rolling radius over that time. It is read where gravity reads
        one of the zero's clean batches' angle again (within ``SETTLE_RAD``): whatever
        gravity's error at an angle (the offsets' residue, gains, cross-axis), it is then
        the same at both ends.
        """
        offset = self.gravity.offset
        if self._reference_at[0] != offset:  # (read again only when the offsets move)
            b1, b2 = offset
            self._reference_at = (offset, [math.atan2(a1 - b1, a2 - b2)
                                           for a1, a2, *_ in self._reference])
        for then, (_, _, mid0, angle0, revised0) in zip(self._reference_at[1],
                                                        self._reference, strict=True):
            if abs(wrap(gravity_angle - then)) <= SETTLE_RAD:
                now = mid + self.correction  # type: ignore[operator]  # (set by now)
                true_turn = now + wrap(gravity_angle - now) - (angle0 + wrap(then - angle0))
                counted = mid - mid0 + self._revised_turn - revised0 + self._stepped
                self._settling = False
                return (self._turn_time / self._zero_time) * (true_turn - counted)
        return 0.0

    def rolling_radius(self, load_n: float) -> float:
        """Effective rolling radius under ``load_n`` N of body load, m."""
        return max(self.radius - max(load_n, 0.0) / self.stiffness, 0.5 * self.radius)

    def update(self, rates: Sequence[float], a1: float, a2: float, dt: float, load_n: float,
               gap_s: float = 0.0, clipped: bool = False) -> OdometryOutput:
        """Process a batch of samples taken every ``dt`` s.

        rates: raw gyro rates about the roller axis, rad/s (sensor sign).
        a1, a2: batch means of the in-plane accelerations, m/s^2 (sensor axes).
        load_n: total body load during the batch, N.
        gap_s: time lost just before the batch (FIFO overflow or fault); the rotation
            over it is taken from gravity.
        clipped: the gyro read full scale in this batch, so it under-counted the turn.
            The angle is then taken from gravity each batch, and once more at the
            first batch back in range that measures ~1 g; until then gravity does
            not steer the offsets (the gyro angle is off by the turn lost).
        """
        n = len(rates)
        span = n * dt
        sign = self.sign
        off = self.gyro_offset
        offset = off.offset  # (as of the last batch: updated at the end)
        trim = self.trim
        gravity = self.gravity
        d = self.imu_offset
        radius = self.radius - (load_n if load_n > 0.0 else 0.0) / self.stiffness
        if radius < 0.5 * self.radius:
            radius = 0.5 * self.radius  # as rolling_radius()
        # Gyro integration, per sample.
        theta0 = theta = self.theta
        thetas = []
        bias = sign * offset + trim  # rate = sign * g - bias
        scale = self.scale.scale
        step_dt = dt * scale
        for g in rates:
            theta += (sign * g - bias) * step_dt
            thetas.append(theta)
        gamma0 = self._gamma
        self._gamma = gamma0 + (theta - theta0) / scale
        rate = (sign * (rates[-1] - offset) - trim) * scale
        omega = (theta - theta0) / span
        # (over a gap the rate before it says little: the roller may have stopped and
        # gone on, so the change is spread over the time lost as well)
        alpha = (rate - self._rate) / (span + gap_s) if self._batches else 0.0
        mid = 0.5 * (theta0 + theta)
        # Gravity angle at mid-batch, with the predicted motion terms removed.
        a1 *= sign
        b1, b2 = gravity.offset
        if self.correction is None:
            self.correction = atan2(a1 - b1, a2 - b2) - mid
        angle = mid + self.correction
        axle = -radius * alpha
        r1, r2 = a1, a2
        a1 = r1 - (axle * cos(angle) - alpha * d)
        a2 = r2 - (-axle * sin(angle) - omega * omega * d)
        gravity_angle = atan2(a1 - b1, a2 - b2)
        lost = self._lost
        if clipped:
            self._lost = 2
        elif lost == 2:
            self._lost = 1  # alpha (above) was taken from a clipped rate: wait a batch
        if gap_s > 0.0 or lost == 1 or clipped:
            # The axle's acceleration was turned into the sensor's axes by an angle
            # that is off by the turn lost: redo it from gravity's own angle.
            a1 = r1 - (axle * cos(gravity_angle) - alpha * d)
            a2 = r2 - (-axle * sin(gravity_angle) - omega * omega * d)
            gravity_angle = atan2(a1 - b1, a2 - b2)
        position0 = self.position
        off_g = abs(hypot(a1, a2) - G)  # gravity as read (offsets and all) off 1 g
        # Gravity's direction with the motion removed but the zero-g offsets not (only
        # its changes count): the gyro offset's stillness, and its offset from gravity's
        # turn while the roller never stops.
        # (only wanted while the roller may be still, or while the offset is not known
        # from rest: not on every batch of rolling, on a Pi Zero)
        tilt = None
        if (off.learning or max(rates) - min(rates) <= off.threshold) \
                and not clipped and off_g < TILT_MAGNITUDE * G:
            tilt = atan2(a1, a2)
        if not self._steering:
            self._turn_time += radius * span
            self._zero_time += span
        off.update(rates, dt, tilt, sign, broken=gap_s > 0.0 or clipped)
        if off.revised:
            # The offset since boot is now known better: the gyro turned the position
            # by the old one since the zero, so it moves by the difference times the
            # time (each batch's by its rolling radius) until gravity began to steer
            # the position (from then on gravity has held it, the offset or not).
            position0 -= sign * (off.offset - offset) * scale * self._turn_time
            self._revised_turn -= sign * (off.offset - offset) * scale * self._zero_time
        magnitude = hypot(a1 - b1, a2 - b2)
        weight = max(0.0, 1.0 - abs(magnitude - G) / (0.05 * G))
        self._time += span + gap_s
        if gap_s > 0.0 or clipped or lost or not off.calibrated:
            self.check.restart()
            self.scale.cut()
        elif off_g < CHECK_MAGNITUDE * G:
            # Gravity as read (the zero-g fit is referenced to the gyro: a wrong gyro
            # bends it; the offsets' few degrees do not matter to this check).
            self.check.add(mid, atan2(a1, a2), self._time)
        jump = wrap(gravity_angle - angle)
        last = self._last_gravity
        if gap_s > 0.0 and not self._steering and last is not None:
            # Until gravity steers the position, a gap is bridged by gravity's own turn
            # since the batch before it (less the gyro's count), not by its absolute
            # angle: the filter's angle leans toward gravity read with zero-g offsets not
            # yet known (up to ~5 deg, differently at each angle), which the position,
            # resting on the gyro, must not take in one step at every gap.
            # (both gravity angles with the zero-g offsets as they are now)
            jump = wrap(gravity_angle - atan2(last[0] - b1, last[1] - b2)) \
                - (mid - last[2])
        if clipped and math.copysign(jump, omega) < -CLIP_BACK_RAD:
            jump = 0.0  # a clipped gyro only under-counts: gravity this far back is a bump
        if gap_s > 0.0 or (lost == 1 and weight >= RECOVER_WEIGHT) or clipped:
            # Lost rotation (samples, or rates beyond the gyro's range): the absolute
            # angle from gravity is where the roller is. Less than half a turn (22 cm
            # on a 7 cm radius) is lost between two batches, so the wrap picks the
            # right turn. While clipped this is done every batch (gravity is good to
            # ~10 deg at those speeds, the gyro's count falls behind by far more).
            thetas = [t + jump for t in thetas]
            theta += jump
            mid += jump  # the positions below follow the jumped angles
            gravity.cut()  # the gyro angle's offset from the true one moved
            if not clipped:
                self._lost = 0
        step = 0.0
        if not off.calibrated:
            # The gyro offset is unknown (+-20 deg/s): hold the angle to gravity alone.
            self.correction = gravity_angle - theta
        elif weight > 0.0 and not self._lost:  # (while lost, the gyro angle is off)
            error = wrap(gravity_angle - (mid + self.correction))
            step = self.kp * error * span * weight
            self.correction += step
            gravity.add(mid, a1, a2, weight, span)
            converged = gravity.converged
            if converged and not self._steering:
                # The zero-g offsets just became known: put the absolute angle right at
                # once, without moving the position (the gyro carried it so far).
                self._steering = True
                self._reference = self._clean_zero()
                self._reference_at = (None, [])
                self._settling = self._zero_time > 0.0 and bool(self._reference)
                self.correction += error - step
                step = 0.0
            elif converged:
                self.trim -= self.ki * error * span * weight
                if self._settling and not gap_s \
                        and abs(magnitude - self._typical) <= CLEAN_SHARE * self._typical:
                    position0 += self._settle(mid, gravity_angle)
                self._stepped += step
            else:
                # Until the zero-g offsets are known, gravity steers the angle but not
                # the position (which then rests on the gyro alone).
                step = 0.0
        if off.calibrated and not self._lost and not gap_s \
                and off_g < TILT_MAGNITUDE * G:
            # (its own fit takes the accelerometer's gains and offsets: a part whose
            # gravity reads 4 % strong, which the filter above weights down, still counts)
            self.scale.add(self._time, 0.5 * (gamma0 + self._gamma), a1, a2, rate)
        self._batches += 1
        if self._batches % 25 == 0:
            gravity.solve()
        # The angle moved by the correction, so the contact moved with it: this is
        # what keeps the position from drifting with the gyro offset.
        position0 += radius * step
        correction = self.correction
        positions = [position0 + radius * (t - theta0) for t in thetas]
        angles = [t + correction for t in thetas]
        self._rate = rate
        self._last_gravity = (a1, a2, mid)
        if len(self._zero) < ZERO_BATCHES and not self._steering \
                and not (gap_s or clipped or lost):
            self._zero.append((a1, a2, mid, mid + correction, self._revised_turn))
        self.theta = theta
        self.position = positions[-1]
        self.velocity = radius * rate
        return _output(OdometryOutput, (angles, positions, self.velocity))
