"""Calibration landmarks in the frame stream.

The person rolls up to the top of the shoulders (the roller just below C7: the C7/T1
junction), holds still and presses the roller's button; then rolls down to the bottom
of the ribs (T12/L1), holds and presses again. The roller flags the frame after each
short press on the roller with ``FrameFlag.BUTTON``. A press counts as a landmark when
the roller was held still (within ``STILL_RANGE_M`` over the ``HOLD_S`` before it);
the pair counts as a calibration when the second landmark lies below the first by a
plausible thoracic span for the person's stature. Given the body model's range for it
(``top_range``), a top landmark must also lie plausibly far above the roller's zero
(where the person lay back, under the shoulder blades): a press right after lying
back, or one below the zero, is refused with what to do.

Until a user has calibrated, the warnings keep a wider margin (``UNCALIBRATED_NOTE``
says what calibrating changes; the live view, the report and the CLI show it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware.protocol import FrameFlag
from host.analysis.anatomy import BodyModel

HOLD_S = 1.0
"""The roller must have been still this long before the press, s."""
STILL_RANGE_M = 0.006
"""... within this range of positions, m (breathing moves it ~1 mm)."""
SPAN_RANGE = (0.6, 1.5)
"""The bottom landmark must lie this many expected thoracic spans below the top one."""
TOP_LEVEL = 1.0
"""Level of the top landmark: the C7/T1 junction (the top of the shoulders)."""
BOTTOM_LEVEL = 13.0
"""Level of the bottom landmark: the T12/L1 junction (the bottom of the ribs)."""
ZERO_LEVELS = (2.0, 13.0)
"""Where a person can first touch the roller lying back (its zero), levels: between T2
and the bottom of the ribs (the shoulder blades' inferior angle lies at T4-T11)."""
TOP_MIN_SHARE = 0.5
"""The top must lie at least this share of the shortest plausible distance above the
zero (landmarks are held within ~20 mm of their place)."""

UNCALIBRATED_NOTE = (
    "calibrating (`smartroller calibrate`: two presses on the roller, about a minute) "
    "measures where your ribs end; the warning and the roller's fence then sit at your "
    "own rib cage instead of a wide margin around an average one (fewer needless buzzes, "
    "a surer warning), and the vertebrae shown are placed on your back")
"""What calibrating would change, for a user who has not (live view, report, CLI)."""

_CONTACT = int(FrameFlag.IN_CONTACT)
_FAULT = int(FrameFlag.IMU_FAULT | FrameFlag.IMU_INCONSISTENT)  # not tracked


@dataclass(frozen=True, slots=True)
class Landmark:
    """A still press: sensor time t (s), roller position_m (m, mean of the hold)."""

    t: float
    position_m: float


@dataclass(frozen=True, slots=True)
class Calibration:
    """A completed calibration: the top and bottom landmarks."""

    top: Landmark
    bottom: Landmark

    @property
    def span_m(self) -> float:
        """Measured distance from the top of the shoulders to the bottom of the ribs, m."""
        return self.bottom.position_m - self.top.position_m


def top_range(body: BodyModel) -> tuple[float, float]:
    """How far above the roller's zero the top landmark may lie for this body, m
    (positive: toward the head): from ``TOP_MIN_SHARE`` of the distance from the top of
    the shoulders to the highest plausible zero (``ZERO_LEVELS``) to ``SPAN_RANGE[1]``
    times the distance to the lowest."""
    top = float(body.position_at(TOP_LEVEL))
    near, far = (float(body.position_at(level)) - top for level in ZERO_LEVELS)
    return TOP_MIN_SHARE * near, SPAN_RANGE[1] * far


class CalibrationDetector:
    """Finds calibrations in the presses of the button.

    expected_span_m: the person's expected thoracic span (T1..L1), m. top_range_m: how
    far above the zero a top landmark may lie (``top_range``), m, or None (unchecked).
    ``press`` takes the frames up to and including a BUTTON frame and says what the press meant:
    ("top", message) when a first landmark is taken, ("done", message) with ``result``
    set when the pair is complete, ("ignored", message) for a press that cannot be a
    landmark. ``reset`` forgets a first landmark (the roller's zero moved).
    """

    def __init__(self, expected_span_m: float,
                 top_range_m: tuple[float, float] | None = None) -> None:
        self.expected_span_m = expected_span_m
        self.top_range_m = top_range_m
        self.top: Landmark | None = None
        self.result: Calibration | None = None

    def reset(self) -> None:
        """Forget a first landmark (a re-zero moved the positions)."""
        self.top = None

    def press(self, times: np.ndarray, positions: np.ndarray, flags: np.ndarray
              ) -> tuple[str, str]:
        """The press on the last of the frames given by their sensor ``times`` (s),
        roller ``positions`` (m) and ``flags`` (the frames before it: the hold)."""
        t = float(times[-1])
        if not flags[-1] & _CONTACT:
            return "ignored", "press off the roller"
        recent = times >= t - HOLD_S
        held = recent & ((flags & _CONTACT) != 0) & ((flags & _FAULT) == 0)
        held &= np.isfinite(positions)
        if held.sum() < recent.sum() or t - float(times[recent][0]) < HOLD_S - 0.05:
            return "ignored", "press while not held still on the roller for 1 s"
        positions = positions[held]
        if float(positions.max() - positions.min()) > STILL_RANGE_M:
            return "ignored", "press while rolling (hold still, then press)"
        mark = Landmark(t, float(positions.mean()))
        lo, hi = (f * self.expected_span_m for f in SPAN_RANGE)
        if self.top is not None and lo <= self.top.position_m - mark.position_m <= hi:
            # A whole thoracic span the wrong way: the roller counts its turn backwards
            # (an IMU mounted the other way round: gyro and gravity both turn, so only
            # the body tells it).
            above = self.top.position_m - mark.position_m
            self.top = None
            return "ignored", (
                f"the bottom of the ribs came out {above * 1e3:.0f} mm "
                "ABOVE the top of the shoulders: the roller counts backwards; its hardware "
                "profile's imu.roller_axis_sign is wrong (or the IMU is mounted the other "
                "way round): fix the profile, then calibrate again")
        if self.top is None or mark.position_m <= self.top.position_m:
            refused = self._implausible_top(mark.position_m)
            if refused:
                return "ignored", refused
            self.top = mark
            return "top", (f"top of the shoulders marked at {mark.position_m * 1e3:+.0f} mm; "
                           "now roll down to the bottom of the ribs, hold and press")
        span = mark.position_m - self.top.position_m
        if not lo <= span <= hi:
            return "ignored", (f"bottom of the ribs {span * 1e3:.0f} mm below the top: "
                               f"expected {lo * 1e3:.0f}-{hi * 1e3:.0f} mm; calibrate again")
        self.result = Calibration(self.top, mark)
        self.top = None
        return "done", (f"calibrated: {span * 1e3:.0f} mm from the top of the shoulders "
                        "to the bottom of the ribs")

    def _implausible_top(self, position_m: float) -> str:
        """Why a top landmark at ``position_m`` (m from the zero) cannot be the top of
        the shoulders ("" when it can)."""
        if self.top_range_m is None:
            return ""
        lo, hi = self.top_range_m
        above = -position_m
        if above > hi:
            return (f"press {above * 1e3:.0f} mm above where you lay back: that is past the "
                    "top of the shoulders; roll down to it, hold and press")
        if above >= lo:
            return ""
        if above <= -lo:  # below the zero by as much as a top should be above it
            return (f"press {-above * 1e3:.0f} mm BELOW where you lay back: roll UP to the "
                    "top of the shoulders first, hold and press (if you did, the roller "
                    "counts backwards: its hardware profile's imu.roller_axis_sign is wrong)")
        return (f"press only {above * 1e3:.0f} mm above where you lay back: first roll up "
                "to the top of the shoulders (the base of the neck), hold still, then press")
