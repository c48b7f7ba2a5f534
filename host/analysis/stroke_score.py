"""Scoring detected strokes against true ones: detection, amplitude and decision latency.

Pure numpy; it knows nothing of the simulator. The caller puts both sides in one time
base (the bench maps the roller's sensor time to the world's with
``SimRoller.sensor_to_world``) and hands them over as ``StrokeSet``s.

Matching (``match``), one detected stroke to at most one true stroke and back:

- a candidate pair has the same direction, overlaps in time (the movement intervals
  [start, end] share more than zero time), and agrees in amplitude within
  ``max(amplitude_tol_m, amplitude_tol_frac * true amplitude)`` (10 mm or 20 %), so a
  fragment of a stroke or two strokes merged into one match nothing;
- pairs are taken greedily by the time they share, longest first (a stroke and its
  detection share nearly all of their time, neighbours of the same direction almost
  none), each stroke at most once.

Scoring at the threshold T (30 mm), over strokes of any amplitude matched as above:

- a true positive is a matched pair of which **either** side is >= T: a detection of
  31 mm matching a true stroke of 28 mm is right, and so is one of 29 mm matching a
  true 31 mm; the threshold's knife edge makes neither a miss nor a false alarm;
- a miss is a true stroke >= T left unmatched; a false alarm a detected stroke >= T left
  unmatched; pairs with both sides below T are out of scope;
- the count is exact when a session has neither misses nor false alarms (so the strokes
  >= T are the true ones, up to the knife edge; errors that cancel do not count as
  exact);
- amplitude error: detected minus true amplitude over the true positives, mm;
- latency: the time the detection was decided (the frame that emitted it) minus the
  true stroke's end (the reversal: the end of its movement), over the true positives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from host.analysis.model import Stroke

__all__ = ["SCORE_THRESHOLD_M", "StrokeScore", "StrokeSet", "match", "score", "summarise"]

SCORE_THRESHOLD_M = 0.03
"""Strokes of this amplitude or longer are scored, m."""


@dataclass(frozen=True, eq=False)
class StrokeSet:
    """Strokes as arrays of equal length, in one time base.

    start_s, end_s: movement start and end, s. direction: +1 / -1. amplitude_m: m.
    decided_s: when each stroke was decided (detections; None for the truth), s.
    """

    start_s: np.ndarray
    end_s: np.ndarray
    direction: np.ndarray
    amplitude_m: np.ndarray
    decided_s: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.start_s)
        arrays = [self.end_s, self.direction, self.amplitude_m]
        if self.decided_s is not None:
            arrays.append(self.decided_s)
        if any(len(a) != n for a in arrays):
            raise ValueError("StrokeSet: arrays of different lengths")

    def __len__(self) -> int:
        return len(self.start_s)

    def select(self, mask: np.ndarray) -> StrokeSet:
        """The strokes where ``mask`` (bool array) is true."""
        return StrokeSet(self.start_s[mask], self.end_s[mask], self.direction[mask],
                         self.amplitude_m[mask],
                         None if self.decided_s is None else self.decided_s[mask])

    @classmethod
    def from_strokes(cls, strokes: Sequence[Stroke], decided_t: Sequence[float] | None = None,
                     to_time: Callable[[np.ndarray], np.ndarray] | None = None) -> StrokeSet:
        """From detected ``Stroke``s and the sensor times they were decided at;
        ``to_time`` maps sensor time to the truth's time base (identity if None)."""
        def mapped(values: Sequence[float] | np.ndarray) -> np.ndarray:
            a = np.asarray(values, dtype=float)
            return to_time(a) if to_time is not None and len(a) else a

        return cls(mapped([s.start_t for s in strokes]), mapped([s.end_t for s in strokes]),
                   np.array([s.direction for s in strokes], dtype=int),
                   np.array([s.amplitude_m for s in strokes], dtype=float),
                   None if decided_t is None else mapped(decided_t))

    @classmethod
    def of(cls, strokes: object) -> StrokeSet:
        """From any object with ``start_s``, ``end_s``, ``direction`` and ``amplitude_m``
        arrays (the simulator's ``Strokes``)."""
        return cls(*(np.asarray(getattr(strokes, name)) for name in
                     ("start_s", "end_s", "direction", "amplitude_m")))


def match(detected: StrokeSet, truth: StrokeSet, amplitude_tol_m: float = 0.010,
          amplitude_tol_frac: float = 0.2) -> np.ndarray:
    """Matched pairs (k, 2): rows (detected index, true index), as the module says."""
    if not len(detected) or not len(truth):
        return np.zeros((0, 2), dtype=int)
    order = np.argsort(truth.start_s, kind="stable")
    t_start, t_end = truth.start_s[order], truth.end_s[order]
    latest_end = np.maximum.accumulate(t_end)
    candidates = []
    for i in range(len(detected)):
        d0, d1 = detected.start_s[i], detected.end_s[i]
        lo = int(np.searchsorted(latest_end, d0, side="right"))
        hi = int(np.searchsorted(t_start, d1, side="left"))
        for k in range(lo, hi):
            j = int(order[k])
            shared = min(d1, t_end[k]) - max(d0, t_start[k])
            if shared <= 0 or detected.direction[i] != truth.direction[j]:
                continue
            tol = max(amplitude_tol_m, amplitude_tol_frac * truth.amplitude_m[j])
            if abs(detected.amplitude_m[i] - truth.amplitude_m[j]) <= tol:
                candidates.append((-shared, i, j))
    candidates.sort()
    used_d, used_t, pairs = set(), set(), []
    for _, i, j in candidates:
        if i not in used_d and j not in used_t:
            used_d.add(i)
            used_t.add(j)
            pairs.append((i, j))
    return np.array(sorted(pairs), dtype=int).reshape(-1, 2)


@dataclass(frozen=True)
class StrokeScore:
    """Scores of one session (see the module for the definitions).

    true_positives, misses, false_alarms: counts. true_count, detected_count: strokes
    >= the threshold on each side. amplitude_errors_mm: detected - true over the true
    positives. latencies_ms: decision latency over the true positives (empty if the
    detections carry no decision times).
    """

    true_positives: int
    misses: int
    false_alarms: int
    true_count: int
    detected_count: int
    amplitude_errors_mm: np.ndarray
    latencies_ms: np.ndarray

    @property
    def precision(self) -> float:
        """TP / (TP + false alarms); 1 with nothing detected and nothing to detect."""
        n = self.true_positives + self.false_alarms
        return self.true_positives / n if n else 1.0

    @property
    def recall(self) -> float:
        """TP / (TP + misses); 1 with nothing to detect."""
        n = self.true_positives + self.misses
        return self.true_positives / n if n else 1.0

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + misses + false alarms); 1 with nothing on either side."""
        n = 2 * self.true_positives + self.misses + self.false_alarms
        return 2 * self.true_positives / n if n else 1.0

    @property
    def exact_count(self) -> bool:
        """No miss and no false alarm."""
        return self.misses == 0 and self.false_alarms == 0

    @property
    def amplitude_mae_mm(self) -> float:
        """Mean absolute amplitude error, mm (NaN without true positives)."""
        e = self.amplitude_errors_mm
        return float(np.mean(np.abs(e))) if len(e) else math.nan


def score(detected: StrokeSet, truth: StrokeSet, threshold_m: float = SCORE_THRESHOLD_M
          ) -> StrokeScore:
    """Score one session's detections against its truth."""
    pairs = match(detected, truth)
    d_amp = detected.amplitude_m[pairs[:, 0]]
    t_amp = truth.amplitude_m[pairs[:, 1]]
    scored = np.maximum(d_amp, t_amp) >= threshold_m
    tp = pairs[scored]
    matched_d = np.zeros(len(detected), dtype=bool)
    matched_t = np.zeros(len(truth), dtype=bool)
    matched_d[pairs[:, 0]] = True
    matched_t[pairs[:, 1]] = True
    misses = int(np.sum(~matched_t & (truth.amplitude_m >= threshold_m)))
    false_alarms = int(np.sum(~matched_d & (detected.amplitude_m >= threshold_m)))
    errors = (detected.amplitude_m[tp[:, 0]] - truth.amplitude_m[tp[:, 1]]) * 1e3
    if detected.decided_s is None:
        latencies = np.array([])
    else:
        latencies = (detected.decided_s[tp[:, 0]] - truth.end_s[tp[:, 1]]) * 1e3
    return StrokeScore(len(tp), misses, false_alarms,
                       int(np.sum(truth.amplitude_m >= threshold_m)),
                       int(np.sum(detected.amplitude_m >= threshold_m)), errors, latencies)


def summarise(scores: Sequence[StrokeScore]) -> dict[str, float | int | None]:
    """Figures over sessions: pooled precision, recall, F1 and amplitude MAE, the share
    of sessions with an exact count, pooled latency median / p99 / max (ms)."""
    tp = sum(s.true_positives for s in scores)
    fn = sum(s.misses for s in scores)
    fp = sum(s.false_alarms for s in scores)
    errors = np.concatenate([s.amplitude_errors_mm for s in scores]) if scores else np.array([])
    lat = np.concatenate([s.latencies_ms for s in scores]) if scores else np.array([])

    def ratio(num: int, den: int) -> float:
        return num / den if den else 1.0

    return {
        "sessions": len(scores),
        "true_strokes": sum(s.true_count for s in scores),
        "true_positives": tp, "misses": fn, "false_alarms": fp,
        "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fn + fp),
        "amplitude_mae_mm": float(np.mean(np.abs(errors))) if len(errors) else None,
        "amplitude_bias_mm": float(np.mean(errors)) if len(errors) else None,
        "exact_count_share": ratio(sum(s.exact_count for s in scores), len(scores)),
        "latency_ms_median": float(np.median(lat)) if len(lat) else None,
        "latency_ms_p99": float(np.percentile(lat, 99)) if len(lat) else None,
        "latency_ms_max": float(np.max(lat)) if len(lat) else None,
    }
