"""Gyro zero-rate offset of the roller axis: calibrated at rest, tracked when still.

In the spirit of x-io's FusionOffset: while the rate (offset removed) stays within a
threshold for longer than a timeout, the offset follows the raw rate through a slow
low-pass filter. A slow steady roll is not stillness: the angle turned since the
still spell began must stay small too (breathing on the roller rocks it back and forth
by a fraction of a degree; that averages out). The first stillness after boot, before
anyone lies on the roller, calibrates the offset with a plain average. The MPU-6050's
zero-rate offset is up to +-20 deg/s and drifts with temperature (spec rev 3.4).

Pure Python: batches are a handful of samples and this runs on a Pi Zero 2 W.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_DEG = math.pi / 180.0


class GyroOffset:
    """Tracks the zero-rate offset of one gyro axis, rad/s.

    threshold_rad_s: still while every sample (offset removed) is within this rate.
    net_angle_rad: ...and the angle turned since the spell began is within this.
    timeout_s: how long it must stay still before the offset is updated.
    time_constant_s: low-pass time constant of the tracking once calibrated.
    calibration_s: length of the first average that calibrates the offset.
    """

    def __init__(self, *, threshold_rad_s: float = 2.0 * _DEG, net_angle_rad: float = 1.0 * _DEG,
                 timeout_s: float = 2.0, time_constant_s: float = 20.0,
                 calibration_s: float = 1.0) -> None:
        self.offset = 0.0
        self.calibrated = False
        self.still = False
        self.threshold = threshold_rad_s
        self.net_limit = net_angle_rad
        self.timeout = timeout_s
        self.time_constant = time_constant_s
        self.calibration_s = calibration_s
        self._still_for = 0.0
        self._net = 0.0
        self._sum = 0.0
        self._n = 0

    def _restart(self) -> None:
        self.still = False
        self._still_for = self._net = self._sum = 0.0
        self._n = 0

    def update(self, rates: Sequence[float], dt: float) -> float:
        """Feed raw rates (rad/s) sampled every ``dt`` s; return the offset, rad/s."""
        n = len(rates)
        if n == 0:
            return self.offset
        lo, hi = min(rates), max(rates)
        if not self.calibrated:
            # The offset is unknown (+-20 deg/s): judge by the spread, then by the
            # angle turned relative to the running mean.
            if hi - lo > self.threshold:
                self._restart()
                return self.offset
            self._sum += sum(rates)
            self._n += n
            if self._n * dt >= self.calibration_s:
                self.offset = self._sum / self._n
                self.calibrated = True
                self._restart()
            return self.offset
        off = self.offset
        self._net += (sum(rates) - n * off) * dt
        limit = self.threshold
        if hi - off > limit or off - lo > limit or abs(self._net) > self.net_limit:
            self._restart()
            return self.offset
        self._still_for += n * dt
        if self._still_for >= self.timeout:
            self.still = True
            gain = min(1.0, n * dt / self.time_constant)
            self.offset += gain * (sum(rates) / n - off)
        return self.offset
