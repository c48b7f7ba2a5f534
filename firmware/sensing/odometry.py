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

The gyro's scale (its sensitivity, +-3 %, and the sample clock, +-1 %, in one factor)
is learned from gravity too, in the same fit as the zero-g offsets (``GravityFit``),
starting from the roller's stored calibration (``gyro_scale``).

Position: rolling without slip moves the contact along the back by ``r_eff * dtheta``,
with the rolling radius shrinking under load (``r_eff = r - load / stiffness``).
Work is done per batch of FIFO samples with numpy (the firmware runs on a Pi Zero 2 W).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from firmware.config import ImuConfig, RollerConfig
from firmware.sensing.gyro_offset import GyroOffset

G = 9.80665
CLIP_BACK_RAD = 0.2  # gravity behind a clipped gyro by more than this is not the angle
RECOVER_WEIGHT = 0.5  # gravity's weight (1 at exactly 1 g) that ends a clip's doubt
SCALE_FIT_SD = 0.005  # the scale is fitted once the angles seen pin it down this well
SCALE_SD_FLOOR = 0.003  # what the fit's SD leaves out (body motion, a tilted sensor)
_AXES = {"x": (0, 1, 2), "y": (1, 2, 0), "z": (2, 0, 1)}


def wrap(angle: float) -> float:
    """Wrap an angle to [-pi, pi), rad."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


class GravityFit:
    """Least-squares fit of the accelerometer's in-plane zero-g offsets (m/s^2) and of
    the gyro's scale (true turn per counted turn), against gravity.

    Model, for the gyro's counted angle ``u`` (rad; its offset and drift removed, not
    scaled) and ``phi = s0 * u`` with ``s0`` the scale the fit started from: the true
    angle is ``phi + c + d * (u - u0)``, where ``c`` is a constant over the fit's memory
    and ``d`` the scale's error (the true scale is ``s0 + d``). For small ``d * (u - u0)``:

        a1 = A sin(phi) + B cos(phi) + b1 + tau (D1 cos(phi) - D2 sin(phi))
        a2 = A cos(phi) - B sin(phi) + b2 - tau (D1 sin(phi) + D2 cos(phi))

    with ``tau = u - u0``, ``A = g cos c``, ``B = g sin c``, ``D1 = g d cos c``,
    ``D2 = g d sin c``: linear in the six unknowns, whose normal equations need only 13
    running sums (kept with exponential forgetting). Priors hold the offsets near zero
    (the datasheet's spread) and the scale near ``s0`` (its own spread) until the roller
    has turned through enough angles to tell them apart. Offsets and scale are fitted
    together because each alone would take up the other's error: a gyro 3 % off makes
    gravity look offset, and offsets bend gravity's angle by up to 5 %.

    A real MPU-6050's gyro sensitivity is off by up to +-3 % (product spec rev 3.4,
    6.1) and its samples are timed by a clock off by up to +-1 % (6.5): both make the
    counted turn a fixed multiple of the true one, and the position along the back with
    it. Gravity is the absolute reference; where it fails: a roller that never turns
    through more than a few degrees (only breathing) learns nothing, and keeps its
    priors (the stored calibration, else the nominal values).
    """

    def __init__(self, memory_s: float = 120.0, prior_m_s2: float = 0.8,
                 noise_m_s2: float = 0.03, scale: float = 1.0, scale_sd: float = 0.035
                 ) -> None:
        self.memory_s = memory_s
        self.noise = noise_m_s2  # spread of one batch-mean observation, m/s^2
        self.weak = (noise_m_s2 / prior_m_s2) ** 2
        self.s0 = scale
        self.weak_d = (noise_m_s2 / (G * max(scale_sd, 1e-4))) ** 2
        self.sums = [0.0] * 13  # w, w s, w c, w tau, w tau c, w tau s, w tau^2, rhs r0..r5
        self.offset = (0.0, 0.0)
        self.uncertainty = prior_m_s2  # 1-sigma of the offsets, m/s^2
        self.scale = scale  # true turn per counted turn
        self.scale_sd = scale_sd  # its 1-sigma
        self.u0: float | None = None  # counted angle tau is measured from, rad
        self._span = self._keep = math.nan  # the last span and its forgetting factor

    @property
    def converged(self) -> bool:
        """True once the offsets are known to ~0.015 m/s^2 (0.1 deg of angle)."""
        return self.uncertainty < 0.015

    def add(self, counted: float, a1: float, a2: float, weight: float, span_s: float
            ) -> None:
        """Add one batch-mean observation (counted angle rad, accel m/s^2) with a weight."""
        if span_s != self._span:  # batches are mostly the same length
            self._span, self._keep = span_s, math.exp(-span_s / self.memory_s)
        if self.u0 is None:
            self.u0 = counted
        k = self._keep
        phi = self.s0 * counted
        s, c = math.sin(phi), math.cos(phi)
        tau = counted - self.u0
        w = weight
        q0, q1 = s * a1 + c * a2, c * a1 - s * a2
        wt = w * tau
        sm = self.sums
        self.sums = [k * sm[0] + w, k * sm[1] + w * s, k * sm[2] + w * c, k * sm[3] + wt,
                     k * sm[4] + wt * c, k * sm[5] + wt * s, k * sm[6] + wt * tau,
                     k * sm[7] + w * q0, k * sm[8] + w * q1, k * sm[9] + w * a1,
                     k * sm[10] + w * a2, k * sm[11] + wt * q1, k * sm[12] - wt * q0]

    def solve(self) -> tuple[float, float]:
        """Update the offsets (b1, b2, m/s^2, returned) and the scale."""
        w, ss, sc, st, stc, sts, stt, *y = self.sums
        e = 1e-9
        h = np.array([[w + e, 0.0, ss, sc, 0.0, -st],
                      [0.0, w + e, sc, -ss, st, 0.0],
                      [ss, sc, w + self.weak, 0.0, stc, -sts],
                      [sc, -ss, 0.0, w + self.weak, -sts, -stc],
                      [0.0, st, stc, -sts, stt + self.weak_d, 0.0],
                      [-st, 0.0, -sts, -stc, 0.0, stt + self.weak_d]])
        rhs = np.array(y)
        try:
            cov = np.linalg.inv(h)
        except np.linalg.LinAlgError:
            return self.offset
        scale_sd = self.noise * math.sqrt(max(cov[4, 4], cov[5, 5])) / G
        if scale_sd > SCALE_FIT_SD:
            # The angles seen so far cannot tell the scale from the offsets yet: fit the
            # offsets alone, the scale held where it is.
            h, rhs = h[:4, :4], rhs[:4]
            try:
                cov = np.linalg.inv(h)
            except np.linalg.LinAlgError:
                return self.offset
        x = cov @ rhs
        self.offset = (float(x[2]), float(x[3]))
        self.uncertainty = self.noise * math.sqrt(max(cov[2, 2], cov[3, 3]))
        a, b = float(x[0]), float(x[1])
        norm = a * a + b * b
        if len(x) == 6 and norm > (0.5 * G) ** 2:
            d = (a * float(x[4]) + b * float(x[5])) / norm
            self.scale = self.s0 + max(-0.15, min(0.15, d))
            self.scale_sd = max(scale_sd, SCALE_SD_FLOOR)
        return self.offset


@dataclass(slots=True)
class OdometryOutput:
    """Results of one batch: per-sample angle and position, and the final velocity."""

    angle: list[float]  # unwrapped absolute roll angle per sample, rad
    position: list[float]  # position along the back per sample, m (not yet zeroed)
    velocity: float  # m/s at the end of the batch


class Odometry:
    """Complementary filter with a gyro-offset integral term, and the rolling radius.

    roller, imu: the hardware profile (radius, foam stiffness, IMU offset, roller axis).
    angle_time_constant_s: how fast the angle follows gravity.
    offset_time_constant_s: how fast the residual gyro offset follows it.
    gyro_scale: the roller's stored gyro scale (true turn per counted turn) to start
        from; gyro_scale_sd: its uncertainty (None: the datasheet's spread).
    """

    def __init__(self, roller: RollerConfig, imu: ImuConfig, *,
                 angle_time_constant_s: float = 3.0, offset_time_constant_s: float = 60.0,
                 gyro_scale: float = 1.0, gyro_scale_sd: float | None = None) -> None:
        self.axis, self.in1, self.in2 = _AXES[imu.roller_axis]
        self.sign = float(imu.roller_axis_sign)
        self.radius = roller.diameter_m / 2.0
        self.stiffness = roller.foam_stiffness_n_per_m
        self.imu_offset = roller.imu_offset_m
        self.kp = 1.0 / angle_time_constant_s
        self.ki = self.kp / offset_time_constant_s
        self.gyro_offset = GyroOffset()
        self.gravity = (GravityFit(scale=gyro_scale) if gyro_scale_sd is None
                        else GravityFit(scale=gyro_scale, scale_sd=gyro_scale_sd))
        self.counted = 0.0  # the gyro's counted turn (offset and trim removed, unscaled), rad
        self.scale_observations = 0  # gravity readings the scale was fitted to
        self.theta = 0.0  # gyro-integrated angle, rad (unwrapped)
        self.correction: float | None = None  # absolute angle = theta + correction, rad
        self.trim = 0.0  # residual gyro offset from gravity, rad/s
        self.position = 0.0  # m
        self.velocity = 0.0  # m/s
        self._rate = 0.0  # last rate, rad/s
        self._batches = 0
        self._steering = False  # gravity steers the position (zero-g offsets known)
        self._lost = 0  # 2: the gyro clipped in the last batch, 1: before it, 0: not since
        # gravity last put the angle right

    @property
    def calibrated(self) -> bool:
        """True once the gyro offset was calibrated at rest."""
        return self.gyro_offset.calibrated

    @property
    def angle(self) -> float:
        """Absolute roll angle, rad, unwrapped (0 before the first sample)."""
        return self.theta + (self.correction or 0.0)

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
        offset = self.gyro_offset.update(rates, dt)
        trim = self.trim
        k = self.gravity.scale
        radius = self.radius - (load_n if load_n > 0.0 else 0.0) / self.stiffness
        if radius < 0.5 * self.radius:
            radius = 0.5 * self.radius  # as rolling_radius()
        # Gyro integration, per sample.
        theta0 = theta = self.theta
        thetas = []
        ks = k * sign
        bias = ks * offset + trim  # rate = k * sign * (g - offset) - trim
        for g in rates:
            theta += (ks * g - bias) * dt
            thetas.append(theta)
        rate = ks * (rates[-1] - offset) - trim
        counted0 = self.counted
        self.counted += sign * (sum(rates) - n * offset) * dt - trim * span / k
        omega = (theta - theta0) / span
        # (over a gap the rate before it says little: the roller may have stopped and
        # gone on, so the change is spread over the time lost as well)
        alpha = (rate - self._rate) / (span + gap_s) if self._batches else 0.0
        mid = 0.5 * (theta0 + theta)
        # Gravity angle at mid-batch, with the predicted motion terms removed.
        a1 *= sign
        b1, b2 = self.gravity.offset
        if self.correction is None:
            self.correction = math.atan2(a1 - b1, a2 - b2) - mid
        angle = mid + self.correction
        axle = -radius * alpha
        r1, r2 = a1, a2
        a1 = r1 - (axle * math.cos(angle) - alpha * self.imu_offset)
        a2 = r2 - (-axle * math.sin(angle) - omega * omega * self.imu_offset)
        gravity_angle = math.atan2(a1 - b1, a2 - b2)
        lost = self._lost
        if clipped:
            self._lost = 2
        elif lost == 2:
            self._lost = 1  # alpha (above) was taken from a clipped rate: wait a batch
        if gap_s > 0.0 or lost == 1 or clipped:
            # The axle's acceleration was turned into the sensor's axes by an angle
            # that is off by the turn lost: redo it from gravity's own angle.
            a1 = r1 - (axle * math.cos(gravity_angle) - alpha * self.imu_offset)
            a2 = r2 - (-axle * math.sin(gravity_angle) - omega * omega * self.imu_offset)
            gravity_angle = math.atan2(a1 - b1, a2 - b2)
        position0 = self.position
        magnitude = math.hypot(a1 - b1, a2 - b2)
        weight = max(0.0, 1.0 - abs(magnitude - G) / (0.05 * G))
        jump = wrap(gravity_angle - angle)
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
            if not clipped:
                self._lost = 0
        step = 0.0
        if not self.gyro_offset.calibrated:
            # The gyro offset is unknown (+-20 deg/s): hold the angle to gravity alone.
            self.correction = gravity_angle - theta
        elif weight > 0.0 and not self._lost:  # (while lost, the gyro angle is off)
            error = wrap(gravity_angle - (mid + self.correction))
            step = self.kp * error * span * weight
            self.correction += step
            self.gravity.add(0.5 * (counted0 + self.counted), a1, a2, weight, span)
            self.scale_observations += 1
            if self.gravity.converged and not self._steering:
                # The zero-g offsets just became known: put the absolute angle right at
                # once, without moving the position (the gyro carried it so far).
                self._steering = True
                self.correction += error - step
                step = 0.0
            elif self.gravity.converged:
                self.trim -= self.ki * error * span * weight
            else:
                # Until the zero-g offsets are known, gravity steers the angle but not
                # the position (which then rests on the gyro alone).
                step = 0.0
        self._batches += 1
        if self._batches % 25 == 0:
            self.gravity.solve()
        # The angle moved by the correction, so the contact moved with it: this is
        # what keeps the position from drifting with the gyro offset.
        position0 += radius * step
        correction = self.correction
        positions = [position0 + radius * (t - theta0) for t in thetas]
        angles = [t + correction for t in thetas]
        self._rate = rate
        self.theta = theta
        self.position = positions[-1]
        self.velocity = radius * rate
        return OdometryOutput(angles, positions, self.velocity)
