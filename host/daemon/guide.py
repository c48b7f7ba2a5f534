"""The guided calibration: a first session that starts by calibrating.

A user with no calibration in the profile, who has not chosen to skip it (``smartroller
calibrate --skip``, ``Store.calibration_skipped``), is guided through one at the start
of every session until it is done. The roller's buzz patterns
(``firmware.drivers.haptic``, sent as BUZZ) and the live view's line say each step:

1. ``top``: ``calibrate_up`` (three pulses growing stronger) when the person lies on
   the roller: roll up to the top of the shoulders, hold still, press the button once;
2. ``bottom``: once the host takes the top landmark, ``landmark`` (two taps), then
   ``calibrate_down`` (three pulses fading): roll down to the bottom of the ribs, hold
   still, press once;
3. ``done``: ``landmark``: the host took the bottom landmark and the pair is plausible
   for the body model (``host.analysis.calibration``); the profile keeps the
   calibration when the session ends.

A press the host does not take (not held still, or implausible for the body model)
buzzes ``landmark_refused`` (one long low buzz), then the step's pattern again; the
live view says why. The roller's lumbar warning outranks these patterns: at the bottom
of the ribs the roller may be buzzing it, and then the live view is the confirmation.

Skipping: a person who just rolls has skipped it for that session (the guide never
insists; the session is uncalibrated, its warning conservative); ``smartroller
calibrate --skip`` stops the guide for good, ``smartroller calibrate`` brings it back.

The guide follows the analyzer's state (its detector's top landmark, its calibration),
so after a rebuild of the analysis it stands where the analysis stands.
"""

from __future__ import annotations

from enum import StrEnum

from firmware.protocol import BuzzPattern
from host.analysis.calibration import Landmark
from host.analysis.session import SessionAnalyzer

STEP_GAP_S = 0.8
"""Between a confirmation's buzz and the next step's pattern, s (they are told apart)."""


class Step(StrEnum):
    """Where the guided calibration stands."""

    OFF = "off"  # not guided: calibrated already, or the user skips it
    TOP = "top"
    BOTTOM = "bottom"
    DONE = "done"


STEP_TEXT = {
    Step.TOP: "calibration 1/2: roll up until the roller is at the top of your shoulders "
              "(the base of the neck), hold still, then press the button once",
    Step.BOTTOM: "calibration 2/2: roll down to the bottom of your ribs, hold still, then "
                 "press the button once (the roller may buzz its warning there)",
    Step.DONE: "calibrated: roll on (your profile keeps it when the session ends)",
}
"""What the live view says at each step ("" when not guided)."""

STEP_PATTERN = {Step.TOP: BuzzPattern.CALIBRATE_UP, Step.BOTTOM: BuzzPattern.CALIBRATE_DOWN}
"""The roller's pattern for each step that asks for a landmark."""

Buzz = tuple[float, BuzzPattern]
"""A pattern to play after a delay, s."""


class CalibrationGuide:
    """One session's guided calibration. active: guide this session (the user is not
    calibrated and does not skip it)."""

    def __init__(self, active: bool) -> None:
        self.step = Step.TOP if active else Step.OFF
        self._top: Landmark | None = None

    @property
    def text(self) -> str:
        """The live view's line for the step ("" when not guided)."""
        return STEP_TEXT.get(self.step, "")

    def start(self) -> list[Buzz]:
        """The buzz when the person lies on the roller: the first step's pattern."""
        return [(0.0, STEP_PATTERN[self.step])] if self.step in STEP_PATTERN else []

    def follow(self, analyzer: SessionAnalyzer, presses: int) -> list[Buzz]:
        """Catch up with ``analyzer`` after a batch in which the person pressed the
        button ``presses`` times (its ``CALIBRATION`` events); returns the buzzes that
        confirm or refuse the landmark and say the next step (none with no press)."""
        if self.step is Step.OFF:
            return []
        before, top_before = self.step, self._top
        self._top = analyzer.calibration.top
        if analyzer.calibrated_at is not None:
            self.step = Step.DONE
        elif self._top is not None:
            self.step = Step.BOTTOM
        else:
            self.step = Step.TOP
        if not presses or before is Step.DONE:
            return []
        if self.step is Step.DONE:
            return [(0.0, BuzzPattern.LANDMARK)]
        taken = self.step is Step.BOTTOM and (before is Step.TOP or self._top != top_before)
        first = BuzzPattern.LANDMARK if taken else BuzzPattern.LANDMARK_REFUSED
        return [(0.0, first), (STEP_GAP_S, STEP_PATTERN[self.step])]
