"""Scoring detected strokes against the truth (host/analysis/stroke_score.py)."""

import math

import numpy as np
import pytest

from host.analysis.model import Stroke
from host.analysis.stroke_score import StrokeSet, match, score, summarise


def strokes(*rows, decided=None):
    """StrokeSet from (start s, end s, direction, amplitude mm) rows."""
    a = np.array(rows, dtype=float).reshape(-1, 4)
    return StrokeSet(a[:, 0], a[:, 1], a[:, 2].astype(int), a[:, 3] / 1e3,
                     None if decided is None else np.asarray(decided, dtype=float))


TRUTH = strokes((0.0, 1.5, 1, 60), (1.6, 3.0, -1, 45), (3.1, 4.4, 1, 80), (4.5, 6.0, -1, 95))


def test_a_perfect_detection_scores_one():
    found = strokes((0.1, 1.45, 1, 60.5), (1.7, 2.9, -1, 44), (3.2, 4.4, 1, 81),
                    (4.6, 5.9, -1, 95), decided=[1.55, 3.05, 4.45, 6.1])
    s = score(found, TRUTH)
    assert (s.true_positives, s.misses, s.false_alarms) == (4, 0, 0)
    assert s.precision == s.recall == s.f1 == 1.0
    assert s.exact_count
    assert s.amplitude_mae_mm == pytest.approx(np.mean([0.5, 1.0, 1.0, 0.0]))
    assert s.amplitude_errors_mm.tolist() == pytest.approx([0.5, -1.0, 1.0, 0.0])
    assert s.latencies_ms.tolist() == pytest.approx([50.0, 50.0, 50.0, 100.0])


def test_the_threshold_knife_edge_is_neither_a_miss_nor_a_false_alarm():
    truth = strokes((0.0, 1.5, 1, 28), (1.6, 3.0, -1, 31), (3.1, 4.4, 1, 20))
    found = strokes((0.1, 1.4, 1, 31), (1.7, 2.9, -1, 29), (3.2, 4.3, 1, 22))
    s = score(found, truth)
    # 28 -> 31 and 31 -> 29 are right; 20 -> 22 is out of scope
    assert (s.true_positives, s.misses, s.false_alarms) == (2, 0, 0)
    assert s.exact_count
    assert (s.true_count, s.detected_count) == (1, 1)
    assert s.amplitude_errors_mm.tolist() == pytest.approx([3.0, -2.0])


def test_unmatched_strokes_above_the_threshold_are_misses_and_false_alarms():
    found = strokes((0.1, 1.4, 1, 60), (3.2, 4.3, 1, 80), (6.5, 7.5, 1, 40), (7.6, 8.0, -1, 12))
    s = score(found, TRUTH)
    assert (s.true_positives, s.misses, s.false_alarms) == (2, 2, 1)
    assert s.precision == pytest.approx(2 / 3)
    assert s.recall == pytest.approx(2 / 4)
    assert s.f1 == pytest.approx(4 / 7)
    assert not s.exact_count


def test_a_match_needs_the_direction_time_overlap_and_amplitude():
    wrong_direction = strokes((0.1, 1.4, -1, 60))
    no_overlap = strokes((1.5, 1.6, 1, 60))
    far_amplitude = strokes((0.1, 1.4, 1, 45))  # 15 mm off a 60 mm stroke (> 12 mm)
    near_amplitude = strokes((0.1, 1.4, 1, 49))  # 11 mm off: within 20 %
    for found in (wrong_direction, no_overlap, far_amplitude):
        assert len(match(found, TRUTH)) == 0
    assert match(near_amplitude, TRUTH).tolist() == [[0, 0]]
    small = strokes((0.0, 1.0, 1, 30))
    assert len(match(strokes((0.0, 1.0, 1, 39.5)), small)) == 1  # 10 mm floor
    assert len(match(strokes((0.0, 1.0, 1, 40.5)), small)) == 0


def test_a_split_stroke_is_a_miss_and_its_long_piece_a_false_alarm():
    found = strokes((0.0, 0.9, 1, 35), (0.95, 1.5, 1, 25), (1.7, 2.9, -1, 45))
    s = score(found, TRUTH.select(np.arange(4) < 2))
    assert (s.true_positives, s.misses, s.false_alarms) == (1, 1, 1)


def test_one_true_stroke_is_matched_once_the_longest_overlap_first():
    truth = strokes((0.0, 1.5, 1, 60), (3.0, 4.5, 1, 60))
    found = strokes((0.2, 1.4, 1, 58), (0.5, 3.2, 1, 61), (3.1, 4.4, 1, 60))
    pairs = match(found, truth)
    assert pairs.tolist() == [[0, 0], [2, 1]]
    s = score(found, truth)
    assert (s.true_positives, s.misses, s.false_alarms) == (2, 0, 1)


def test_nothing_on_either_side():
    empty = strokes()
    s = score(empty, empty)
    assert (s.true_positives, s.misses, s.false_alarms) == (0, 0, 0)
    assert s.f1 == 1.0 and s.exact_count
    assert math.isnan(s.amplitude_mae_mm)
    assert score(empty, TRUTH).recall == 0.0
    assert score(strokes((0.0, 1.0, 1, 50)), empty).precision == 0.0


def test_summary_pools_the_sessions():
    good = score(strokes((0.1, 1.4, 1, 61), decided=[1.6]), TRUTH.select(np.arange(4) < 1))
    bad = score(strokes((0.1, 1.4, 1, 58), (5.0, 6.0, 1, 50), decided=[1.7, 6.2]),
                TRUTH.select(np.arange(4) < 1))
    sm = summarise([good, bad])
    assert (sm["true_positives"], sm["misses"], sm["false_alarms"]) == (2, 0, 1)
    assert sm["f1"] == pytest.approx(4 / 5)
    assert sm["exact_count_share"] == 0.5
    assert sm["amplitude_mae_mm"] == pytest.approx(1.5)
    assert sm["amplitude_bias_mm"] == pytest.approx(-0.5)
    assert sm["latency_ms_median"] == pytest.approx(150.0)
    assert sm["latency_ms_max"] == pytest.approx(200.0)
    assert summarise([])["sessions"] == 0


def test_detected_strokes_convert_with_a_time_map():
    found = [Stroke(0, 10.0, 11.0, 1, 0.0, 0.05, 0.1, 0.05, 200.0, 220.0),
             Stroke(1, 11.2, 12.0, -1, 0.05, 0.02, 0.1, 0.04, 200.0, 220.0)]
    s = StrokeSet.from_strokes(found, [11.1, 12.2], to_time=lambda t: t + 0.5)
    assert s.start_s.tolist() == [10.5, 11.7]
    assert s.decided_s.tolist() == [11.6, 12.7]
    assert s.amplitude_m.tolist() == pytest.approx([0.05, 0.03])
    assert s.direction.tolist() == [1, -1]
    with pytest.raises(ValueError, match="lengths"):
        StrokeSet(np.zeros(2), np.zeros(1), np.zeros(2), np.zeros(2))
