"""Do the gyro and gravity agree? A check that the position can be trusted at all.

Over windows in which gravity was clean (about 1 g) and turned by at least
``MIN_TURN_RAD`` within ``MAX_SPAN_S``, the gyro's turn over the window (offset removed)
is compared with gravity's: on a sound roller their ratio is 1 within a few percent
(the parts' gains), whatever the person does. A gyro that reads a different range than
the profile says (a clone part), a profile whose ``imu.roller_axis`` is not the axis the
roller turns about (the gyro then reads almost nothing while gravity turns), or a dead
gyro give ratios far from 1. ``BAD_OF_LAST`` windows of the last ``LAST`` outside
``RATIO_LIMITS`` make the roller *inconsistent* (frames flagged ``IMU_INCONSISTENT``:
the host then treats the position as not tracked, and the roller logs it);
as many inside make it consistent again. At ordinary strokes (0.3 rad is 2 cm of back)
windows come every second or two, so a fault is flagged within ~5 s of rolling.

What it cannot see: an IMU mounted end for end (``imu.roller_axis_sign`` wrong) flips the
gyro and gravity's in-plane angle together, so they agree on a mirrored turn; only the
body tells it (a calibration that comes out backwards, host/analysis/calibration.py).
"""

from __future__ import annotations

import math

from firmware.sensing.angles import wrap

MIN_TURN_RAD = 0.3
"""Gravity's least turn in a window, rad."""
MAX_SPAN_S = 2.0
"""A window longer than this starts again (an uncorrected offset would weigh in), s."""
RATIO_LIMITS = (0.75, 1.33)
"""Gyro turn over gravity's turn that counts as agreeing."""
LAST = 4
BAD_OF_LAST = 3


class GyroCheck:
    """Whether the gyro agrees with gravity (``inconsistent``), window by window."""

    def __init__(self) -> None:
        self.inconsistent = False
        self.ratio = math.nan  # the last window's gyro turn over gravity's
        self._anchor: tuple[float, float, float] | None = None  # gyro, gravity, time
        self._verdicts: list[bool] = []  # True: that window agreed

    def restart(self) -> None:
        """Forget the open window (gravity not clean, a gap, a clip)."""
        self._anchor = None

    def add(self, gyro_angle: float, gravity_angle: float, t: float) -> None:
        """A clean gravity reading: the gyro's integrated angle and gravity's, rad, at
        time ``t``, s."""
        anchor = self._anchor
        if anchor is None or t - anchor[2] > MAX_SPAN_S:
            self._anchor = (gyro_angle, gravity_angle, t)
            return
        turn = wrap(gravity_angle - anchor[1])
        if abs(turn) < MIN_TURN_RAD:
            return
        self.ratio = (gyro_angle - anchor[0]) / turn
        self._anchor = (gyro_angle, gravity_angle, t)
        verdicts = self._verdicts = [*self._verdicts[-(LAST - 1):],
                                     RATIO_LIMITS[0] <= self.ratio <= RATIO_LIMITS[1]]
        bad = verdicts.count(False)
        if not self.inconsistent and bad >= BAD_OF_LAST:
            self.inconsistent = True
        elif self.inconsistent and len(verdicts) - bad >= BAD_OF_LAST:
            self.inconsistent = False


__all__ = ["GyroCheck"]
