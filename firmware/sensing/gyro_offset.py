"""Gyro zero-rate offset: calibrated at rest, then tracked whenever the roller is still.

In the spirit of x-io's FusionOffset: while every axis reads less than a threshold
for longer than a timeout, the offset follows the raw rate through a slow low-pass
filter. The first stillness after boot converges quickly (a plain average), so the
offset is known before anyone lies on the roller. The MPU-6050's zero-rate offset is
up to +-20 deg/s and drifts with temperature (product spec rev 3.4).
"""

from __future__ import annotations

import math

import numpy as np

_DEG = math.pi / 180.0


class GyroOffset:
    """Tracks the gyro offset, rad/s, per axis.

    threshold_rad_s: the roller counts as still while every axis (offset removed) is
        within this rate.
    timeout_s: how long it must stay still before the offset is updated.
    time_constant_s: low-pass time constant of the tracking once calibrated.
    calibration_s: length of the first average that calibrates the offset.
    """

    def __init__(self, *, threshold_rad_s: float = 3.0 * _DEG, timeout_s: float = 1.0,
                 time_constant_s: float = 20.0, calibration_s: float = 1.0) -> None:
        self.offset = np.zeros(3)
        self.calibrated = False
        self.threshold = threshold_rad_s
        self.timeout = timeout_s
        self.time_constant = time_constant_s
        self.calibration_s = calibration_s
        self._still_for = 0.0
        self._sum = np.zeros(3)
        self._n = 0

    def update(self, gyro: np.ndarray, dt: float) -> np.ndarray:
        """Feed a batch of raw rates (n, 3) rad/s sampled every ``dt`` s; return the offset."""
        n = len(gyro)
        if n == 0:
            return self.offset
        if not self.calibrated:
            # Before calibration the offset is unknown (+-20 deg/s): judge stillness by
            # the spread within the batch, not by the magnitude.
            still = bool(np.all(np.ptp(gyro, axis=0) < self.threshold))
        else:
            still = bool(np.all(np.abs(gyro - self.offset) < self.threshold))
        if not still:
            self._still_for = 0.0
            self._sum[:] = 0.0
            self._n = 0
            return self.offset
        self._still_for += n * dt
        if not self.calibrated:
            self._sum += gyro.sum(axis=0)
            self._n += n
            if self._n * dt >= self.calibration_s:
                self.offset = self._sum / self._n
                self.calibrated = True
            return self.offset
        if self._still_for >= self.timeout:
            gain = min(1.0, n * dt / self.time_constant)
            self.offset += gain * (gyro.mean(axis=0) - self.offset)
        return self.offset
