"""Scoring the host analysis against the simulator's ground truth (the bench only).

Definitions (docs/benchmarks.md repeats them):

- **region accuracy**: the share of frames, while rolling (the routine's ROLL phase)
  with the roller's position known, whose estimated region is the true one;
- **vertebra error**: |the true place of the estimated level - the true contact|, mm
  along the back (the estimate's level mapped through the person's true spine);
- **uncertainty coverage**: over the same frames, the share whose vertebra error (every
  frame's, not a sample's) is within 2 reported SD (``Estimates.sd_m``);
- **oracle region accuracy**: over the same frames, the share whose true contact, put
  through the body model a perfect calibration gives (the user's stature, T1..L1
  stretched to the person's true span, anchored at T1), lies in the true region:
  what the body model alone allows;
- **bound region accuracy**: over the same frames, the share whose true contact, put
  through the body model the analysis builds from the calibration it actually got
  (``held_calibration``: the landmarks where the person really held them, the span
  pooled as the analysis pools it, anchored on both landmarks; a profile session uses
  its profile's calibration, the first session's), lies in the true region: a tracker
  with no position error but the same calibration;
- **lumbar accuracy**: over the same frames, the share where the estimate and the truth
  agree on lumbar (L1 and below) versus not lumbar;
- **excursion**: the contact below T12/L1 by >= 10 mm at its deepest, for >= 0.3 s;
  it is **warned** when the lumbar warning was on at some moment from the crossing down
  to 0.2 s after the crossing back up;
- **false alarm**: a lumbar warning that starts while the contact is, and has been for
  the second before, >= 20 mm above T12/L1; the rate is per hour of rolling spent
  >= 20 mm above T12/L1;
- **device latency**: from the sample at which the roller's own position crossed its
  fence (the first frame flagged BEYOND_FENCE) to the motor starting the warning;
- **host latency**: from the sample at which the host's estimate called for the
  warning to the warning command reaching the roller over the modeled link.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from firmware.protocol import FrameFlag
from firmware.sim.body import Person
from firmware.sim.rig import SimRoller
from firmware.sim.routine import Phase
from firmware.sim.world import Truth
from host.analysis.anatomy import BodyModel
from host.analysis.calibration import BOTTOM_LEVEL, HOLD_S, TOP_LEVEL, Calibration
from host.analysis.frames import FrameColumns
from host.analysis.model import Estimates, Region
from host.analysis.profile import UserModel
from host.analysis.spine import EDGE_LEVELS
from host.analysis.warnings import Cue

EXCURSION_DEPTH_M = 0.010
EXCURSION_MIN_S = 0.3
FALSE_ALARM_CLEARANCE_M = 0.020
WARNED_GRACE_S = 0.2


@dataclass
class SpineScore:
    """Frames scored for the region and the level."""

    frames: int = 0
    correct: int = 0
    vertebra_errors_mm: list[float] = field(default_factory=list)
    covered: int = 0
    """Frames whose true contact lies within +-2 reported SD of the estimate."""
    oracle_correct: int = 0
    """Frames whose true contact, through the perfectly calibrated body model, lies in
    the true region."""
    lumbar_correct: int = 0
    """Frames where the estimate and the truth agree on lumbar versus not."""
    bound_frames: int = 0
    """Frames scored for the bound: all of them when the session has a calibration
    (its own or its profile's), else none."""
    bound_correct: int = 0
    """Frames whose true contact, through the body model of the calibration the
    analysis got (``HeldCalibration``), lies in the true region."""

    @property
    def accuracy(self) -> float:
        """Share of frames with the right region."""
        return self.correct / self.frames if self.frames else math.nan

    @property
    def coverage(self) -> float:
        """Share of frames whose true contact lies within +-2 reported SD."""
        return self.covered / self.frames if self.frames else math.nan


@dataclass
class WarningScore:
    """Excursions, false alarms and latencies of one session."""

    excursions: int = 0
    warned: int = 0
    missed_depths_mm: list[float] = field(default_factory=list)
    false_alarms: int = 0
    clear_rolling_s: float = 0.0
    device_latency_ms: list[float] = field(default_factory=list)
    host_latency_ms: list[float] = field(default_factory=list)
    delay_ms: list[float] = field(default_factory=list)
    """Per warned excursion: warning start minus the true crossing, ms (negative: it
    warned before the contact crossed)."""


def truth_at_frames(roller: SimRoller, cols: FrameColumns) -> tuple[np.ndarray, Truth]:
    """World times of the frames and the truth there."""
    world_t = roller.sensor_to_world(cols.t)
    return world_t, roller.world.truth_at(world_t)


@dataclass(frozen=True, eq=False)
class HeldCalibration:
    """The calibration the analysis got, as the person really held it.

    body: the body model the analysis builds from it. offset_m: the true contact (m
    from the person's C7) plus offset_m is the place in ``body`` (m from its C7).
    """

    body: BodyModel
    offset_m: float

    def regions(self, contact_m: np.ndarray) -> np.ndarray:
        """``Region`` codes of true contacts (m from the person's C7) through the body."""
        return region_codes(np.asarray(self.body.level_at(contact_m + self.offset_m)))


def held_calibration(user: UserModel, top_m: float, bottom_m: float) -> HeldCalibration:
    """The body model a tracker with no position error would have from landmarks held
    at the true contacts ``top_m`` and ``bottom_m`` (m from the person's C7): the span
    between them pooled as the analysis pools it (``UserModel.pooled_span``; ``user``:
    what was known before the calibration), anchored on both landmarks alike (the
    tracker's two observations of equal SD; its broad prior on the zero left out)."""
    span, _ = user.pooled_span(bottom_m - top_m)
    body = BodyModel.from_stature(user.stature_m).with_thoracic_span(span)
    offset = 0.5 * ((float(body.position_at(TOP_LEVEL)) - top_m)
                    + (float(body.position_at(BOTTOM_LEVEL)) - bottom_m))
    return HeldCalibration(body, offset)


def held_landmarks_m(roller: SimRoller, cols: FrameColumns, cal: Calibration
                     ) -> tuple[float, float] | None:
    """Where the person really held the calibration's landmarks: the true contact (m
    from C7) over each press's hold (the ``HOLD_S`` of frames the analysis averaged);
    None when the truth has no contact during a hold."""
    _, tr = truth_at_frames(roller, cols)
    out = []
    for mark in (cal.top, cal.bottom):
        hold = (cols.t >= mark.t - HOLD_S) & (cols.t <= mark.t) & np.isfinite(tr.contact_m)
        if not hold.any():
            return None
        out.append(float(np.mean(tr.contact_m[hold])))
    return out[0], out[1]


def score_spine(roller: SimRoller, cols: FrameColumns, est: Estimates,
                after_world_s: float = -math.inf, sample_every: int = 10,
                held: HeldCalibration | None = None) -> SpineScore:
    """Region accuracy and vertebra errors over the rolling frames after
    ``after_world_s`` (the vertebra errors of every ``sample_every``-th frame); with
    ``held``, the bound's regions too."""
    world_t, tr = truth_at_frames(roller, cols)
    ok = (tr.phase == Phase.ROLL) & np.isfinite(tr.level) & np.isfinite(est.level)
    ok &= world_t > after_world_s
    person = roller.world.person
    score = SpineScore(int(ok.sum()), int((est.region[ok] == tr.region[ok]).sum()))
    idx = np.flatnonzero(ok)[::sample_every]
    err = np.abs(np.asarray(person.position_at(est.level[idx])) - tr.contact_m[idx])
    score.vertebra_errors_mm = (err * 1e3).tolist()
    error = np.abs(np.asarray(person.position_at(est.level[ok])) - tr.contact_m[ok])
    score.covered = int(np.count_nonzero(error <= 2.0 * est.sd_m[ok]))
    oracle = oracle_body(person)
    true_back = oracle_back_m(person, oracle, tr.contact_m[ok])
    oracle_region = region_codes(np.asarray(oracle.level_at(true_back)))
    score.oracle_correct = int(np.count_nonzero(oracle_region == tr.region[ok]))
    if held is not None:
        score.bound_frames = score.frames
        score.bound_correct = int(np.count_nonzero(
            held.regions(tr.contact_m[ok]) == tr.region[ok]))
    lumbar = int(Region.LUMBAR)
    score.lumbar_correct = int(np.count_nonzero(
        (est.region[ok] == lumbar) == (tr.region[ok] == lumbar)))
    return score


def oracle_body(person: Person) -> BodyModel:
    """The body model a perfect calibration gives ``person``: their stature (as a user
    would give it, to the cm) with T1..L1 stretched to their true span."""
    span = float(person.position_at(BOTTOM_LEVEL)) - float(person.position_at(TOP_LEVEL))
    return BodyModel.from_stature(round(person.stature_m, 2)).with_thoracic_span(span)


def oracle_back_m(person: Person, body: BodyModel, contact_m: np.ndarray) -> np.ndarray:
    """The true contact (m from the person's C7) in the body model's coordinates (m
    from its C7), anchored at the top landmark (T1)."""
    return contact_m - float(person.position_at(TOP_LEVEL)) + float(body.position_at(TOP_LEVEL))


def region_codes(level: np.ndarray) -> np.ndarray:
    """``Region`` codes (int8) of continuous levels."""
    return np.searchsorted(np.array(EDGE_LEVELS), level, side="right").astype(np.int8)


def _intervals(starts: list[float], stops: list[float], end: float) -> list[tuple[float, float]]:
    """Pair each start with the first stop after it."""
    out, stops = [], sorted(stops)
    for s in sorted(starts):
        later = [x for x in stops if x >= s]
        e = later[0] if later else end
        if out and s <= out[-1][1]:
            continue  # already on
        out.append((s, e))
    return out


def score_warnings(roller: SimRoller, lumbar_on: list[tuple[float, float]], until: float,
                   device_latency_ms: list[float] | None = None,
                   host_latency_ms: list[float] | None = None) -> WarningScore:
    """Score lumbar-warning intervals (world time, s) against the truth up to world time
    ``until`` (s: the last frame's)."""
    truth = roller.world.truth
    score = WarningScore(device_latency_ms=device_latency_ms or [],
                         host_latency_ms=host_latency_ms or [])
    cross = truth.crossings
    starts = np.array([a for a, _ in lumbar_on])
    for k in range(len(cross)):
        down, depth = float(cross.down_s[k]), float(cross.depth_m[k])
        later = cross.up_s[cross.up_s > down]
        up = float(later[0]) if len(later) else float(truth.t[-1])
        if depth < EXCURSION_DEPTH_M or up - down < EXCURSION_MIN_S or up > until:
            continue
        score.excursions += 1
        hits = [a for a, b in lumbar_on if a <= up + WARNED_GRACE_S and b >= down]
        if hits:
            score.warned += 1
            score.delay_ms.append((min(hits) - down) * 1e3)
        else:
            score.missed_depths_mm.append(depth * 1e3)
    fence = truth.fence_m
    clear = truth.in_contact & (truth.contact_m <= fence - FALSE_ALARM_CLEARANCE_M)
    clear &= (truth.phase == Phase.ROLL) & (truth.t <= until)
    score.clear_rolling_s = float(clear.sum()) / 1000.0
    for a in starts.tolist():
        i0, i1 = int((a - 1.0) * 1000), int(a * 1000) + 1
        window = clear[max(i0, 0):max(i1, 1)]
        if i0 >= 0 and len(window) and window.all():
            score.false_alarms += 1
    return score


def closed_loop_warnings(roller: SimRoller, cols: FrameColumns, haptics: object,
                         commands: list[tuple[float, str, tuple]]) -> WarningScore:
    """Warnings of a closed-loop run: the motor's lumbar pattern (either source),
    device latency from BEYOND_FENCE onsets, host latency from the commands."""
    played = [(t, who) for t, name, who in haptics.played if name == "lumbar_warning"]
    stopped = [t for t, name in haptics.stopped if name == "lumbar_warning"]
    end = float(roller.world.truth.t[-1])
    on = _intervals([t for t, _ in played], stopped, end)
    beyond = (cols.flags & int(FrameFlag.BEYOND_FENCE)) != 0
    onsets = np.flatnonzero(beyond & ~np.concatenate([[False], beyond[:-1]]))
    world = roller.sensor_to_world(cols.t[onsets]) if len(onsets) else np.array([])
    device = []
    for w in world.tolist():
        after = [a for a, b in on if a >= w - 0.05 and a <= w + 1.0] + [
            a for a, b in on if a < w - 0.05 and b >= w]
        if after:
            device.append(max(0.0, min(after) - w) * 1e3)
    host = [(at - args[1]) * 1e3 for at, kind, args in commands
            if kind == "buzz" and args[0] is Cue.LUMBAR]
    return score_warnings(roller, on, _last_world(roller, cols), device, host)


def _last_world(roller: SimRoller, cols: FrameColumns) -> float:
    return float(roller.sensor_to_world(cols.t[-1:])[0]) if len(cols) else -math.inf


def offline_warnings(roller: SimRoller, cols: FrameColumns, cues: list[tuple[float, Cue]]
                     ) -> WarningScore:
    """Warnings as the host's cues would have given them (no roller fence, no link)."""
    until = _last_world(roller, cols)
    if not cues:
        return score_warnings(roller, [], until)
    times = roller.sensor_to_world(np.array([t for t, _ in cues]))
    starts = [float(w) for w, (_, c) in zip(times, cues, strict=True) if c is Cue.LUMBAR]
    stops = [float(w) for w, (_, c) in zip(times, cues, strict=True) if c is Cue.STOP]
    on = _intervals(starts, stops, float(roller.world.truth.t[-1]))
    return score_warnings(roller, on, until)
