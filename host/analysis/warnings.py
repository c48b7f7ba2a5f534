"""Warnings: the lumbar buzz, the approach cue, coaching cues, and the roller's fence.

``Warner`` turns the spine estimates of frames into cues for the roller and events:

- **lumbar warning**: when the probability that the contact is below the rib cage
  rises above ``WarningPolicy.on_probability``, the roller buzzes the lumbar pattern
  until it falls below ``off_probability`` (hysteresis) or the body leaves the roller;
- **approach cue**: a gentle cue once each time the roller comes within
  ``approach_m`` above the rib cage's end (the probability of being below that band
  rises above ``on_probability``); its event's value is the highest such probability
  while in the band (0..1), as the lumbar warning's is the highest P(below);
- **coaching cues** (events only, rate-limited): strokes longer than ``long_stroke_m``
  or faster than ``fast_speed_m_s`` (the routine asks for short, controlled strokes).

A user with no calibration (none in the profile, none yet in the session) gets
``WarningPolicy.uncalibrated()``: the lumbar warning and the roller's fence start at a
lower probability below the ribs, a wider margin while the body is placed by the
population's prior alone.

``roller_fence`` gives the on-device fence in the roller's own coordinates, moved up by
the estimate's uncertainty: the roller position at which the probability below the
ribs reaches ``on_probability``. The roller then warns by itself with the host gone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from enum import Enum

import numpy as np

from host.analysis.model import Event, EventKind, Stroke
from host.analysis.spine import GRID_STEP_M, Snapshot, guard_lean


@dataclass(frozen=True)
class WarningPolicy:
    """Thresholds of the warnings.

    on_probability / off_probability: P(below the ribs) that starts / stops the lumbar
    warning. approach_m: the approach band above the rib cage's end, m. long_stroke_m:
    a stroke longer than this earns a coaching cue, m. fast_speed_m_s: a stroke with a
    peak speed above this earns one, m/s. coach_every_s: at most one cue of a kind per
    this many seconds. fence_step_m: the roller's fence is moved when the new one
    differs by more than this, m. fence_every_s: ... at most this often, s.
    uncalibrated_on_probability / uncalibrated_off_probability: the same thresholds for
    a user with no calibration yet (``uncalibrated``): the body is placed by the
    population's prior alone, so the warning keeps a wider margin.
    """

    on_probability: float = 0.2
    off_probability: float = 0.05
    approach_m: float = 0.02
    long_stroke_m: float = 0.15
    fast_speed_m_s: float = 0.35
    coach_every_s: float = 30.0
    fence_step_m: float = 0.002
    fence_every_s: float = 0.5
    fence_hysteresis_m: float = 0.01
    uncalibrated_on_probability: float = 0.1
    uncalibrated_off_probability: float = 0.025

    def __post_init__(self) -> None:
        for on, off in ((self.on_probability, self.off_probability),
                        (self.uncalibrated_on_probability, self.uncalibrated_off_probability)):
            if not 0.0 < off < on < 1.0:
                raise ValueError("warning policy: need 0 < off_probability < on_probability "
                                 "< 1")
        if self.uncalibrated_on_probability > self.on_probability:
            raise ValueError("warning policy: an uncalibrated user's warning must start at "
                             "no higher a probability than a calibrated one's")

    def uncalibrated(self) -> WarningPolicy:
        """The conservative policy for a user who has not calibrated: the warning, and
        the roller's fence with it, start at ``uncalibrated_on_probability``."""
        return replace(self, on_probability=self.uncalibrated_on_probability,
                       off_probability=self.uncalibrated_off_probability)


class Cue(Enum):
    """What the host asks the roller's motor to do."""

    LUMBAR = "lumbar_warning"
    APPROACH = "approach"
    STOP = "stop"


@dataclass
class Warner:
    """Warnings from per-frame estimates (fed in order). ``feed_columns`` returns the
    cues to send; finished events accumulate in ``events`` (the caller drains them)."""

    policy: WarningPolicy = field(default_factory=WarningPolicy)
    events: list[Event] = field(default_factory=list)
    warning_since: float | None = None
    _near: bool = False
    _approach_since: float | None = None
    _depth: float = 0.0
    _near_depth: float = 0.0
    _last_coach: dict[EventKind, float] = field(default_factory=dict)

    @property
    def warning(self) -> bool:
        """Whether the lumbar warning is on."""
        return self.warning_since is not None

    def feed_columns(self, t: np.ndarray, p_below: np.ndarray, p_near: np.ndarray,
                     active: np.ndarray) -> list[tuple[float, Cue]]:
        """Frames in order: sensor times ``t`` (s), the probability below the ribs, the
        probability within the approach band or below (``p_near``), and whether a body
        lies on the roller with its position known (``active``). Returns the cues to
        send, each with the sensor time of the frame that called for it.

        Frame by frame: off the roller (or the position unknown) a warning stops and
        the approach band is left (so coming back into it cues again); while warning,
        the warning stops when P(below) falls under ``off_probability``; otherwise
        P(below) over ``on_probability`` starts it, and P(near) over
        ``on_probability`` enters the approach band (one cue), which is left when
        P(near) falls under ``off_probability``. Only the frames where the state can
        change are visited."""
        on, off = self.policy.on_probability, self.policy.off_probability
        ok = active & np.isfinite(p_below)
        with np.errstate(invalid="ignore"):
            up = np.flatnonzero(ok & (p_below > on))
            near = np.flatnonzero(ok & (p_below <= on) & (p_near > on))
            calm = np.flatnonzero(ok & (p_near < off))
            down = np.flatnonzero(~ok | (p_below < off))
        gone = np.flatnonzero(~ok)
        n = len(t)
        cues: list[tuple[float, Cue]] = []

        def first(idx: np.ndarray, at: int) -> int:
            k = int(np.searchsorted(idx, at))
            return int(idx[k]) if k < len(idx) else n

        i = 0
        while i < n:
            if self.warning_since is not None:
                k = first(down, i)
                if k > i:
                    self._depth = max(self._depth, float(np.max(p_below[i:k])))
                if k >= n:
                    break
                if ok[k]:
                    self._depth = max(self._depth, float(p_below[k]))
                cues.append((float(t[k]), self._stop(float(t[k]))))
                if not ok[k]:
                    self._leave_band(float(t[k]))  # off the roller: back on is a fresh start
                i = k + 1
            elif self._near:
                k = min(first(up, i), first(calm, i), first(gone, i))
                seen = p_near[i:min(k, n)][ok[i:min(k, n)]]
                if len(seen) and self._approach_since is not None:
                    self._near_depth = max(self._near_depth, float(np.nanmax(seen)))
                if k >= n:
                    break
                tk = float(t[k])
                self._leave_band(tk)
                if ok[k] and p_below[k] > on:
                    self.warning_since, self._depth, self._near = tk, float(p_below[k]), True
                    cues.append((tk, Cue.LUMBAR))
                i = k + 1
            else:
                k = min(first(up, i), first(near, i))
                if k >= n:
                    break
                tk = float(t[k])
                if p_below[k] > on:
                    self.warning_since, self._depth, self._near = tk, float(p_below[k]), True
                    cues.append((tk, Cue.LUMBAR))
                else:
                    self._near, self._approach_since = True, tk
                    self._near_depth = float(p_near[k])
                    cues.append((tk, Cue.APPROACH))
                i = k + 1
        return cues

    def stroke(self, stroke: Stroke) -> None:
        """Coaching cues for one finished stroke."""
        pol = self.policy
        if stroke.amplitude_m > pol.long_stroke_m:
            self._coach(EventKind.LONG_STROKE, stroke.start_t, stroke.end_t,
                        f"stroke of {stroke.amplitude_m * 1e3:.0f} mm: keep strokes short "
                        f"(under {pol.long_stroke_m * 1e3:.0f} mm)", stroke.amplitude_m)
        if stroke.peak_speed_m_s > pol.fast_speed_m_s:
            self._coach(EventKind.FAST_STROKE, stroke.start_t, stroke.end_t,
                        f"stroke at {stroke.peak_speed_m_s * 1e3:.0f} mm/s: roll slower, "
                        "in control", stroke.peak_speed_m_s)

    def take_over(self, t: float, p_below: float, p_near: float) -> list[tuple[float, Cue]]:
        """Go on live from this state, as of the frame at sensor time ``t`` (s), as the
        warner of a pass that gave nothing before it (a session joined late: its live
        pass had no anchor; this warner's state is the rebuilt pass's). A lumbar warning
        or an approach this state is in begins at ``t`` (the person was not warned
        before), its depth from that frame's P(below the ribs) ``p_below`` and P(within
        the approach band or below) ``p_near``; returns its cue, to send now. Whatever
        else the state holds (the approach band left after a warning, the hysteresis
        it is in) goes on as it is, so the warnings from ``t`` on lie within those of
        one pass over all the frames."""
        if self.warning_since is not None:
            self.warning_since, self._depth = t, p_below
            return [(t, Cue.LUMBAR)]
        if self._approach_since is not None:
            self._approach_since, self._near_depth = t, p_near
            return [(t, Cue.APPROACH)]
        return []

    def close(self, t: float) -> Cue | None:
        """The session ends at ``t`` (s): close open events."""
        cue = self._stop(t) if self.warning else None
        self._leave_band(t)
        return cue

    def _stop(self, t: float) -> Cue:
        start = self.warning_since if self.warning_since is not None else t
        self.events.append(Event(EventKind.LUMBAR_WARNING, start, t,
                                 "below the rib cage: the lumbar spine must not be rolled "
                                 f"(up to {self._depth:.0%} likely)", self._depth))
        self.warning_since = None
        return Cue.STOP

    def _leave_band(self, t: float) -> None:
        if self._approach_since is not None:
            self.events.append(Event(EventKind.APPROACH, self._approach_since, t,
                                     "close to the bottom of the ribs (up to "
                                     f"{self._near_depth:.0%} likely within "
                                     f"{self.policy.approach_m * 1e3:.0f} mm of it)",
                                     self._near_depth))
            self._approach_since = None
        self._near = False

    def _coach(self, kind: EventKind, start: float, end: float, message: str,
               value: float) -> None:
        last = self._last_coach.get(kind, -math.inf)
        if end - last < self.policy.coach_every_s:
            return
        self._last_coach[kind] = end
        self.events.append(Event(kind, start, end, message, value))


def roller_fence(belief: Snapshot, policy: WarningPolicy) -> float:
    """The on-device fence in roller coordinates (m from the zero): where P(below the
    ribs) reaches ``policy.on_probability`` under the belief ``belief``, moved toward
    the feet as the warning moves it (``guard_lean``). P(p + b >= x) >= q exactly when
    p >= x - (the 1 - q quantile of b)."""
    return _fence(belief, policy) - guard_lean(belief)


def roller_fences(beliefs: list[Snapshot], policies: list[WarningPolicy]) -> list[float]:
    """``roller_fence`` of each (belief, policy) pair, m: the same values, the beliefs'
    quantiles found together (one comparison over their stacked cdfs, not a search
    each: a session's offline pass asks for hundreds)."""
    cells = {len(b.cdf) for b in beliefs}
    if len(cells) != 1:
        return [roller_fence(b, p) for b, p in zip(beliefs, policies, strict=True)]
    n = cells.pop()
    level = np.array([1.0 - p.on_probability for p in policies])
    # (a cdf never decreases: the values under ``level`` are where searchsorted puts it)
    below = np.count_nonzero(np.array([b.cdf for b in beliefs]) < level[:, None], axis=1)
    return [_fence_at(b, min(int(i), n - 1)) - guard_lean(b)
            for b, i in zip(beliefs, below.tolist(), strict=True)]


def _fence(belief: Snapshot, policy: WarningPolicy) -> float:
    """``roller_fence`` of the belief alone."""
    cdf = belief.cdf
    i = min(int(cdf.searchsorted(1.0 - policy.on_probability)), len(cdf) - 1)
    return _fence_at(belief, i)


def _fence_at(belief: Snapshot, i: int) -> float:
    """The fence where the belief's cdf reaches the warning's level at cell ``i``."""
    return belief.edges_back[3] - (belief.grid0 + i * GRID_STEP_M)
