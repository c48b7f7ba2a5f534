"""Roll odometry: gyro + gravity -> roll angle -> position along the back.

The roller's axis is horizontal, so gravity lies in the plane of rotation and the two
in-plane accelerometer axes give the absolute roll angle ``atan2(a1, a2)``; the gyro
axis along the roller gives its rate. Relative motion comes from the gyro alone
(integrated, offset removed), because the accelerometer angle is corrupted by the
axis's own acceleration, the IMU's offset from the axis and the accelerometer's zero-g
offset (+-50 mg is +-3 deg, i.e. +-4 mm of back): it only steers, slowly, the absolute
angle (a complementary filter) and the residual gyro offset (its integral term).

Position: rolling without slip moves the contact along the back by ``r_eff * dtheta``;
foam compression shrinks the rolling radius with load, ``r_eff = r - load / stiffness``.
Work is done per batch of FIFO samples with numpy (the firmware runs on a Pi Zero 2 W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from firmware.config import ImuConfig, RollerConfig
from firmware.sensing.gyro_offset import GyroOffset

G = 9.80665
_AXES = {"x": (0, 1, 2), "y": (1, 2, 0), "z": (2, 0, 1)}


def wrap(angle: float) -> float:
    """Wrap an angle to [-pi, pi), rad."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


@dataclass
class OdometryOutput:
    """Per-sample results of one batch (arrays of the batch's length)."""

    angle: np.ndarray  # unwrapped absolute roll angle, rad
    position: np.ndarray  # position along the back, m (not yet zeroed)
    velocity: np.ndarray  # m/s


class Odometry:
    """Complementary filter with a gyro-offset integral term, and rolling radius.

    roller, imu: the hardware profile (radius, foam stiffness, which axis is the roller).
    angle_time_constant_s: how fast the absolute angle follows the accelerometer.
    offset_time_constant_s: how fast the residual gyro offset follows it (much slower).
    """

    def __init__(self, roller: RollerConfig, imu: ImuConfig, *,
                 angle_time_constant_s: float = 2.0, offset_time_constant_s: float = 60.0) -> None:
        self.axis, self.in1, self.in2 = _AXES[imu.roller_axis]
        self.sign = float(imu.roller_axis_sign)
        self.radius = roller.diameter_m / 2.0
        self.stiffness = roller.foam_stiffness_n_per_m
        self.kp = 1.0 / angle_time_constant_s
        self.ki = self.kp / offset_time_constant_s
        self.gyro_offset = GyroOffset()
        self.theta = 0.0  # gyro-integrated angle, rad (unwrapped)
        self.correction: float | None = None  # absolute angle = theta + correction, rad
        self.trim = 0.0  # residual gyro offset from the accelerometer, rad/s
        self.position = 0.0  # m
        self.velocity = 0.0  # m/s

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

    def update(self, accel: np.ndarray, gyro: np.ndarray, dt: float, load_n: float,
               gap_s: float = 0.0) -> OdometryOutput:
        """Process a batch: accel (n,3) m/s^2 and gyro (n,3) rad/s every ``dt`` s.

        ``load_n``: total body load during the batch, N. ``gap_s``: time lost just before
        the batch (FIFO overflow or fault); the rotation over it is taken from gravity.
        """
        offset = self.gyro_offset.update(gyro, dt)
        rate = self.sign * (gyro[:, self.axis] - offset[self.axis]) - self.trim
        a1 = accel[:, self.in1].sum()
        a2 = accel[:, self.in2].sum()
        gravity_angle = self.sign * math.atan2(a1, a2)
        radius = self.rolling_radius(load_n)
        if self.correction is None:
            self.correction = gravity_angle - self.theta
        elif gap_s > 0.0:
            jump = wrap(gravity_angle - self.angle)
            self.theta += jump
            self.position += radius * jump
        theta = self.theta + np.cumsum(rate) * dt
        position = self.position + radius * (theta - self.theta)
        velocity = radius * rate
        # Steer with gravity only when the accelerometer sees little else.
        n = len(rate)
        magnitude = math.hypot(a1, a2) / n
        if abs(magnitude - G) < 0.05 * G and float(np.max(np.abs(rate))) < 1.0:
            mid = 0.5 * (self.theta + float(theta[-1]))
            error = wrap(gravity_angle - (mid + self.correction))
            span = n * dt
            self.correction += self.kp * error * span
            self.trim -= self.ki * error * span
        self.theta = float(theta[-1])
        self.position = float(position[-1])
        self.velocity = float(velocity[-1])
        return OdometryOutput(theta + self.correction, position, velocity)
