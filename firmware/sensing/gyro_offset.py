"""Gyro zero-rate offset of the roller axis: calibrated at rest, tracked when still, and
taken from gravity's turn while the roller never stops.

In the spirit of x-io's FusionOffset: while the roller is still for longer than a
timeout, the offset follows the raw rate through a slow low-pass filter. What counts as
still cannot be faked by a steady roll: the samples' spread stays within a threshold
**and** gravity's direction in the sensor frame (``tilt``: the in-plane accelerometer
angle, rad) stays within ``still_tilt_rad`` of where the spell began. A steady roll
turns gravity's direction however small the offset-corrected rate looks, and a wrong
offset does not make a still roller look moving (the old test of the angle turned by
the gyro, offset removed, did both: a roller powered on while turning at 12 deg/s
learned 19 deg/s and never counted as still again). Breathing on the roller rocks it
back and forth by a fraction of a degree: that is still.

The first stillness calibrates the offset with a plain average. A roller that is never
still (powered on, or restarted, while someone rolls) learns it from gravity instead:
over windows of ``window_s`` in which gravity was clean and the roller turned, the
gyro's turn minus gravity's turn over the window's time is the offset. The estimate is
taken from the first window (the position then no longer drifts by the whole offset)
and refined as windows come; it counts as calibrated once ``windows_needed`` windows
agree within ``agree_rad_s``, and a later stillness replaces it. The MPU-6050's
zero-rate offset is up to +-20 deg/s and drifts with temperature (spec rev 3.4).

Pure Python: batches are a handful of samples and this runs on a Pi Zero 2 W.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

_DEG = math.pi / 180.0


class GyroOffset:
    """Tracks the zero-rate offset of one gyro axis, rad/s (in the gyro's own sign).

    threshold_rad_s: still while the samples' spread is within this rate.
    still_tilt_rad: ...and gravity's direction within this of the spell's start.
    net_angle_rad: without a tilt: ...and the angle turned (offset removed) within this.
    timeout_s: how long it must stay still before the offset is updated.
    time_constant_s: low-pass time constant of the tracking once calibrated.
    calibration_s: length of the first average that calibrates the offset.
    window_s, windows_needed, agree_rad_s: the offset from gravity while rolling.
    """

    def __init__(self, *, threshold_rad_s: float = 2.0 * _DEG, still_tilt_rad: float = 1.0 * _DEG,
                 net_angle_rad: float = 1.0 * _DEG, timeout_s: float = 2.0,
                 time_constant_s: float = 20.0, calibration_s: float = 1.0,
                 window_s: float = 2.0, windows_needed: int = 3,
                 agree_rad_s: float = 1.0 * _DEG) -> None:
        self.offset = 0.0
        self.calibrated = False
        self.from_gravity = False  # the offset so far comes from gravity's turn, not rest
        self.still = False
        self.threshold = threshold_rad_s
        self.still_tilt = still_tilt_rad
        self.net_limit = net_angle_rad
        self.timeout = timeout_s
        self.time_constant = time_constant_s
        self.calibration_s = calibration_s
        self.window_s = window_s
        self.windows_needed = windows_needed
        self.agree = agree_rad_s
        self._still_for = 0.0
        self._net = 0.0
        self._sum = 0.0
        self._n = 0
        self._tilt0: float | None = None  # gravity's direction when the spell began, rad
        self._window: tuple[float, float, float] | None = None  # raw turn, tilt, time
        self._raw = 0.0  # raw turn (no offset removed), rad, gyro sign
        self._t = 0.0  # time, s
        self._estimates: list[float] = []  # offsets from gravity's windows, rad/s

    def _restart(self) -> None:
        self.still = False
        self._still_for = self._net = self._sum = 0.0
        self._n = 0
        self._tilt0 = None

    def update(self, rates: Sequence[float], dt: float, tilt: float | None = None,
               sign: float = 1.0) -> float:
        """Feed raw rates (rad/s) sampled every ``dt`` s and, if gravity was clean,
        ``tilt``: the batch's in-plane gravity angle (rad, the roller's sign, zero-g
        offsets and all: only its changes count); ``sign``: the roller axis's sign in the
        gyro's axis. Return the offset, rad/s."""
        n = len(rates)
        if n == 0:
            return self.offset
        total = sum(rates)
        self._raw += total * dt
        self._t += n * dt
        if tilt is not None and (not self.calibrated or self.from_gravity):
            self._gravity_window(tilt, sign)  # (a rest calibration is better than this)
        lo, hi = min(rates), max(rates)
        moved = hi - lo > self.threshold
        if tilt is not None and not moved:
            if self._tilt0 is None:
                self._tilt0 = tilt
            moved = abs(_wrap(tilt - self._tilt0)) > self.still_tilt
        if not self.calibrated or self.from_gravity:
            if moved:
                self._restart()
                return self.offset
            self._sum += total
            self._n += n
            if self._n * dt >= self.calibration_s:
                self.offset = self._sum / self._n
                self.calibrated, self.from_gravity = True, False
                self._restart()
            return self.offset
        off = self.offset
        if tilt is None:  # no gravity to judge by: the angle turned, offset removed
            self._net += (total - n * off) * dt
            moved = moved or hi - off > self.threshold or off - lo > self.threshold \
                or abs(self._net) > self.net_limit
        if moved:
            self._restart()
            return self.offset
        self._still_for += n * dt
        if self._still_for >= self.timeout:
            self.still = True
            gain = min(1.0, n * dt / self.time_constant)
            self.offset += gain * (total / n - off)
        return self.offset

    def _gravity_window(self, tilt: float, sign: float) -> None:
        """Close a window of gravity's turn against the gyro's when it is long enough."""
        window = self._window
        if window is None:
            self._window = (self._raw, tilt, self._t)
            return
        span = self._t - window[2]
        if span < self.window_s:
            return
        raw_turn = self._raw - window[0]  # gyro sign, offset included
        predicted = sign * (raw_turn - self.offset * span)  # the roller's turn, offset as now
        turn = predicted + _wrap(tilt - window[1] - predicted)  # gravity's, unwrapped
        self._window = (self._raw, tilt, self._t)
        estimate = (raw_turn - sign * turn) / span
        if self._estimates and abs(estimate - self._estimates[-1]) > 10 * self.agree:
            self._estimates.clear()  # a bump, a slip of the roller: start over
        self._estimates = [*self._estimates[-(self.windows_needed - 1):], estimate]
        self.offset = sum(self._estimates) / len(self._estimates)
        if len(self._estimates) >= self.windows_needed and \
                max(self._estimates) - min(self._estimates) <= 2 * self.agree:
            self.calibrated = self.from_gravity = True


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2.0 * math.pi) - math.pi
