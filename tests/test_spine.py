"""The body model, the load signature and the spine tracker, on synthetic inputs."""

import dataclasses
import math

import numpy as np
import pytest

from host.analysis import spine
from host.analysis.anatomy import BodyModel
from host.analysis.model import RIB_CAGE_END_LEVEL, Region
from host.analysis.signature import (
    Signature,
    features_array,
    load_features,
)
from host.analysis.spine import (
    GRID_STEP_M,
    RELOCK_S,
    SLIP_DIFFUSION_M2_S,
    SpineTracker,
    evaluate,
    guard_lean,
    look_due,
    look_ratios,
)
from host.analysis.warnings import WarningPolicy, roller_fence

# -- body model ------------------------------------------------------------------------


def test_body_model_proportions_follow_stature():
    short, tall = BodyModel.from_stature(1.55), BodyModel.from_stature(1.95)
    for body, stature in ((short, 1.55), (tall, 1.95)):
        b = body.boundaries_m
        assert b[0] == 0.0 and np.all(np.diff(b) > 0)
        assert body.thoracic_span_m == pytest.approx(0.18 * stature)
        assert b[18] - b[13] == pytest.approx(0.11 * stature)
        assert body.rib_cage_end_m == pytest.approx(b[13])
    lengths = np.diff(tall.boundaries_m[1:14])
    assert lengths[-1] / lengths[0] == pytest.approx(1.35)  # T12 is larger than T1


def test_level_and_position_are_inverse_and_extend_beyond_the_ends():
    body = BodyModel.from_stature(1.75)
    levels = np.array([-1.0, 0.0, 0.5, 1.0, 7.25, 13.0, 17.9, 18.0, 19.5])
    back = body.position_at(levels)
    np.testing.assert_allclose(body.level_at(back), levels, atol=1e-12)
    for x in np.linspace(-0.05, 0.8, 41):
        assert body.level_at_scalar(float(x)) == pytest.approx(float(body.level_at(x)),
                                                               abs=1e-12)


def test_measured_thoracic_span_stretches_only_t1_to_l1():
    body = BodyModel.from_stature(1.70)
    long = body.with_thoracic_span(body.thoracic_span_m * 1.1)
    assert long.calibrated and long.thoracic_span_m == pytest.approx(body.thoracic_span_m * 1.1)
    assert long.boundaries_m[1] == pytest.approx(body.boundaries_m[1])  # C7 unchanged
    np.testing.assert_allclose(np.diff(long.boundaries_m[13:]), np.diff(body.boundaries_m[13:]))
    with pytest.raises(ValueError, match="implausible"):
        body.with_thoracic_span(0.05)
    with pytest.raises(ValueError, match="stature"):
        BodyModel.from_stature(3.0)


def test_span_uncertainty_shrinks_inside_a_measured_thoracic_span():
    body = BodyModel.from_stature(1.75)
    measured = body.with_thoracic_span(body.thoracic_span_m)
    assert measured.span_sd_m(1.0, 13.0) == pytest.approx(0.0, abs=1e-12)  # the measured span
    assert 0 < measured.span_sd_m(9.5, 13.0) < body.span_sd_m(9.5, 13.0)
    d = body.position_at(13.0) - body.position_at(9.5)
    assert 0.05 * d < body.span_sd_m(9.5, 13.0) < 0.06 * d  # region scale + level jitter


# -- signature ---------------------------------------------------------------------------


def test_features_of_two_humps_and_of_a_peak():
    humps = [0, 10, 60, 10, 10, 60, 10, 0]  # N: load under both shoulder blades
    peak = [0, 2, 20, 120, 120, 20, 2, 0]  # N: the narrow lower rib cage
    spread_h, kurt_h = load_features(humps)
    spread_p, kurt_p = load_features(peak)
    assert spread_h > spread_p and kurt_h < kurt_p
    both = features_array(np.array([humps, peak, [0, 0, 30, 0, 0, 0, 0, 0]], dtype=float))
    np.testing.assert_allclose(both[:2], [[spread_h, kurt_h], [spread_p, kurt_p]])
    assert np.isnan(both[2]).all()  # under the minimum load: not used
    assert load_features([5.0] * 8) is None


def test_signature_statistics_merge_and_survive_json():
    rng = np.random.default_rng(1)
    levels = rng.uniform(4.0, 14.0, 4000)
    feats = np.column_stack([0.08 - 0.002 * levels + rng.normal(0, 0.001, 4000),
                             2.0 + 0.05 * levels + rng.normal(0, 0.05, 4000)])
    whole, a, b = Signature(), Signature(), Signature()
    whole.add(levels, feats)
    a.add(levels[:1500], feats[:1500])
    b.add(levels[1500:], feats[1500:])
    a.merge(b)
    np.testing.assert_allclose(a.count, whole.count)
    np.testing.assert_allclose(a.mean, whole.mean, atol=1e-12)
    np.testing.assert_allclose(a.m2, whole.m2, rtol=1e-9, atol=1e-15)
    back = Signature.from_json(whole.to_json())
    np.testing.assert_allclose(back.mean, whole.mean)
    with pytest.raises(ValueError):
        Signature.from_json({"bin_levels": 0.5, "sessions": 1, "bins": []})
    with pytest.raises(ValueError):
        Signature.from_json({"bin_levels": 0.25, "sessions": 1, "bins": [[999, 1, 0, 0, 0, 0]]})


def test_compiled_signature_prefers_the_level_that_looks_like_the_sample():
    sig = Signature()
    levels = np.repeat(np.arange(4.0, 14.0, 0.05), 20)
    feats = np.column_stack([0.09 - 0.003 * levels, 1.8 + 0.08 * levels])
    sig.add(levels, feats)
    compiled = sig.compiled()
    grid = np.arange(4.0, 14.0, 0.25)
    ll = compiled.log_likelihood(grid, (0.09 - 0.003 * 10.0, 1.8 + 0.08 * 10.0))
    assert abs(grid[np.argmax(ll)] - 10.0) <= 0.5
    # Beyond what was learned the signature is extrapolated, not better than learned.
    far = compiled.log_likelihood(np.array([0.5, 17.0]), (0.09 - 0.003 * 10, 1.8 + 0.8))
    assert far.max() < ll.max()


# -- tracker ------------------------------------------------------------------------------

BODY = BodyModel.from_stature(1.75)


def test_prior_gives_probability_below_the_ribs():
    fence = BODY.rib_cage_end_m
    tracker = SpineTracker(BODY, prior_mean_m=fence - 0.10, prior_sd_m=0.02)
    assert tracker.mean_m == pytest.approx(fence - 0.10, abs=1e-4)
    assert tracker.sd_m == pytest.approx(0.02, rel=0.01)
    # At roller position p the contact is at b + p: below the ribs when b > fence - p.
    for p, z in ((0.10, 0.0), (0.08, -1.0), (0.12, 1.0)):
        est = tracker.estimate(p)
        expected = 0.5 * math.erfc(-z / math.sqrt(2))
        assert est.p_below_ribs == pytest.approx(expected, abs=0.01)
    sure = SpineTracker(BODY, prior_mean_m=fence - 0.10, prior_sd_m=0.001)
    for p in (-0.2, -0.1, 0.0, 0.05, 0.15):
        est = sure.estimate(p)
        assert est.region is Region.at_level(est.level)
        assert est.level == pytest.approx(BODY.level_at(fence - 0.10 + p), abs=0.01)


def test_landmark_pins_the_zero_and_slip_widens_it_again():
    tracker = SpineTracker(BODY, 0.20, 0.03)
    tracker.observe_landmark(0.05, 0.30, t=0.0, sd_m=0.004)
    expected = (0.20 / 0.03**2 + 0.25 / 0.004**2) / (1 / 0.03**2 + 1 / 0.004**2)
    assert tracker.mean_m == pytest.approx(expected, abs=2e-4)
    sd0 = tracker.sd_m
    assert sd0 == pytest.approx((1 / 0.03**2 + 1 / 0.004**2) ** -0.5, rel=0.05)
    tracker.diffuse(100.0)
    assert tracker.sd_m**2 == pytest.approx(sd0**2 + 100 * SLIP_DIFFUSION_M2_S, rel=0.05)


def test_a_bridged_gap_is_a_bounded_error_that_fades_and_spreads_the_warning():
    fence = BODY.rib_cage_end_m
    tracker = SpineTracker(BODY, prior_mean_m=fence - 0.10, prior_sd_m=0.004)
    sd_b = tracker.sd_m
    for k in range(100):  # a gap every 2 s: the last one's error, not their sum
        tracker.diffuse(2.0 * k)  # slip, as the session does at every gap
        tracker.bridge(2.0 * k, 0.005)
    t = 198.0
    snaps = [tracker.snapshot]
    at = evaluate(snaps, np.zeros(3, np.intp), np.full(3, 0.10),
                  np.array([t, t + RELOCK_S, t + 10 * RELOCK_S]))
    slip = t * SLIP_DIFFUSION_M2_S
    assert tracker.snapshot.var == pytest.approx(sd_b**2 + slip, rel=0.02)  # b: slip only
    var_b = tracker.snapshot.var
    assert at.sd_m[0] ** 2 == pytest.approx(var_b + 0.005**2, rel=1e-6)
    assert at.sd_m[1] ** 2 == pytest.approx(
        var_b + RELOCK_S * SLIP_DIFFUSION_M2_S + (0.005 / math.e) ** 2, rel=1e-6)
    # At the ribs' end P(below) is 1/2 either way; 6 mm above it the gap's error makes
    # a crossing more likely, as a normal of the joint SD says.
    near = evaluate(snaps, np.zeros(1, np.intp), np.array([0.094]), np.array([t]))
    sd = math.sqrt(var_b + 0.005**2)
    assert near.p_below_ribs[0] == pytest.approx(0.5 * math.erfc(0.006 / sd / math.sqrt(2)),
                                                 abs=0.02)
    assert near.p_below_ribs[0] > tracker.estimate(0.094, t=t + 30 * RELOCK_S).p_below_ribs
    few = [tracker.estimate(0.094, t=x) for x in (t, t + RELOCK_S)]  # frame by frame
    assert few[0].p_below_ribs == pytest.approx(near.p_below_ribs[0], abs=1e-9)
    assert few[1].sd_m == pytest.approx(at.sd_m[1], rel=1e-9)


def test_shift_follows_a_re_zero():
    tracker = SpineTracker(BODY, 0.20, 0.01)
    before = tracker.estimate(0.07)
    tracker.shift(0.07, t=1.0)  # the contact that was at p = 0.07 is now p = 0
    after = tracker.estimate(0.0)
    assert after.back_m == pytest.approx(before.back_m, abs=1e-9)
    assert after.p_below_ribs == pytest.approx(before.p_below_ribs, abs=1e-9)


def test_a_top_the_belief_allows_changes_nothing():
    """Issue 17: the roller cannot press above the top of the shoulders; a top the
    belief allows (T3 by it) moves nothing."""
    b0 = float(BODY.position_at(9.5))
    tracker = SpineTracker(BODY, b0, 0.03)
    assert tracker.observe_top(-0.05, t=1.0) is False
    p3 = float(BODY.position_at(3.0)) - b0
    assert tracker.observe_top(p3, t=2.0) is False  # the belief allows it: no change
    assert not tracker.placed_low and not tracker.guard.placed_low
    assert tracker.mean_m == pytest.approx(b0, abs=1e-6)
    assert tracker.top_p == p3 and tracker.guard.top_p == p3


def test_a_top_that_contradicts_the_belief_moves_it_only_toward_the_feet():
    """A person who rolled so far up that the prior's place would put the contact
    above the top of the shoulders first touched lower than the prior says."""
    bound = float(BODY.position_at(spine.TOP_BOUND_LEVEL))
    sd = math.hypot(BODY.span_sd_m(spine.TOP_BOUND_LEVEL, 13.0), spine.LANDMARK_SD_M)
    b0 = float(BODY.position_at(9.5))
    tracker = SpineTracker(BODY, b0, 0.03)
    fence = BODY.rib_cage_end_m
    p_below = [tracker.estimate(fence - b0 + d).p_below_ribs for d in (-0.04, -0.02, 0.0)]
    p = bound - 0.010 - b0  # the prior's place puts this contact 10 mm above the bound
    assert tracker.observe_top(p, t=2.0) and tracker.placed_low
    moved, narrowed = tracker.mean_m, tracker.sd_m
    assert moved > b0 + 0.01 and narrowed < 0.03
    after = [tracker.estimate(fence - b0 + d).p_below_ribs for d in (-0.04, -0.02, 0.0)]
    assert all(a > b for a, b in zip(after, p_below, strict=True))  # only more likely below
    # The same top again, or a lower one, is no news (the bound is replaced, not
    # repeated) ...
    assert not tracker.observe_top(p, t=3.0) and not tracker.observe_top(p + 0.02, t=3.0)
    assert tracker.mean_m == moved
    # ... and a higher one gives the prior times the normal CDF of its bound alone.
    assert tracker.observe_top(p - 0.02, t=4.0)
    g = tracker.grid
    w = np.exp(-0.5 * ((g - b0) / 0.03) ** 2) * 0.5 * (
        1 + np.vectorize(math.erf)((p - 0.02 + g - bound) / sd / math.sqrt(2)))
    assert tracker.mean_m == pytest.approx(float(w @ g / w.sum()), abs=1e-4)
    assert tracker.mean_m > moved
    assert tracker.guard.mean_m == pytest.approx(tracker.mean_m, abs=1e-6)  # no signature
    # A re-zero moves the top with the roller's coordinates: the same place is no news.
    tracker.shift(0.05, t=5.0)
    assert not tracker.observe_top(p - 0.02 - 0.05, t=6.0)
    # A calibration takes the bound out again.
    tracker.forget_top(t=7.0)
    assert tracker.mean_m == pytest.approx(b0 + 0.05, abs=3e-3)  # (all but ruled out: kept)
    assert not tracker.placed_low and tracker.top_p == math.inf


def test_grid_follows_the_mass():
    tracker = SpineTracker(BODY, 0.20, 0.01)
    tracker.observe_landmark(0.0, 0.40, t=0.0, sd_m=0.002)  # far beyond the prior
    assert tracker.mean_m == pytest.approx(0.40, abs=0.02)
    centre = tracker.grid[len(tracker.grid) // 2]
    assert abs(centre - tracker.mean_m) < 0.13


def _random_frames(seed: int, n: int, unknown_every: int):
    """(rng, roller positions m with every ``unknown_every``-th unknown, sorted times s)
    of ``n`` frames."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(-0.1, 0.2, n)
    p[::unknown_every] = np.nan
    return rng, p, np.sort(rng.uniform(0, 10, n))


def test_bulk_evaluation_matches_frame_by_frame():
    tracker = SpineTracker(BODY, 0.22, 0.015)
    snaps = [tracker.snapshot]
    tracker.observe_landmark(0.03, 0.26, t=5.0)
    snaps.append(tracker.snapshot)
    n = 200
    _, p, t = _random_frames(3, n, 17)
    sid = (t > 5.0).astype(np.intp)
    bulk = evaluate(snaps, sid, p, t)
    for k in range(0, n, 7):
        one = evaluate(snaps, sid[k:k + 1], p[k:k + 1], t[k:k + 1])
        for field in ("level", "p_below_ribs", "p_near", "back_m", "sd_m"):
            a, b = getattr(bulk, field)[k], getattr(one, field)[0]
            assert (np.isnan(a) and np.isnan(b)) or a == pytest.approx(b, abs=1e-12), field
        assert bulk.region[k] == one.region[0]


def test_looks_are_due_on_travel_and_time():
    t = np.arange(0, 5, 0.01)
    p = np.where(t < 2.5, 0.0, (t - 2.5) * 0.1)  # still, then rolling at 10 cm/s
    due = look_due(t, p, math.nan, math.nan)
    still = due[(t > 0.005) & (t < 2.5)]
    rolling = due[t >= 2.5]
    assert due[0] and still.sum() == 1  # once per 2 s cell of time while still
    assert 18 <= rolling.sum() <= 23  # ~250 mm / 12 mm
    assert GRID_STEP_M == 0.001


def test_many_looks_at_once_match_one_by_one():
    sig = Signature()
    levels = np.repeat(np.arange(4.0, 14.0, 0.05), 20)
    sig.add(levels, np.column_stack([0.09 - 0.003 * levels, 1.8 + 0.08 * levels]))
    compiled = sig.compiled()
    feats = np.array([[0.07, 2.4], [0.06, 2.9], [0.08, 1.9]])
    many = compiled.log_likelihood_many(feats)
    for row, f in zip(many, feats, strict=True):
        np.testing.assert_allclose(row, compiled.log_likelihood_bins(tuple(f)), atol=1e-12)


# -- the guard: the same belief without the signature ------------------------------------


def _linear_signature():
    sig = Signature()
    levels = np.repeat(np.arange(4.0, 14.0, 0.05), 20)
    sig.add(levels, np.column_stack([0.09 - 0.003 * levels, 1.8 + 0.08 * levels]))
    return sig.compiled()


def _features_at(level: float) -> tuple[float, float]:
    return (0.09 - 0.003 * level, 1.8 + 0.08 * level)


def test_the_guard_ignores_the_signature_and_follows_everything_else():
    b0 = float(BODY.position_at(8.0))
    tracker = SpineTracker(BODY, b0, 0.02, _linear_signature())
    guard = tracker.guard
    assert guard is not None and guard.signature is None
    for k in range(10):  # the loads say level 10 while the prior says level 8
        tracker.look(float(k), 0.0, _features_at(10.0))
    assert tracker.mean_m > b0 + 0.01
    assert guard.mean_m == pytest.approx(b0, abs=1e-4)
    assert tracker.snapshot.guard is guard.snapshot
    tracker.observe_landmark(0.0, b0 + 0.004, t=11.0, sd_m=0.004)
    assert guard.mean_m == pytest.approx((b0 / 0.02**2 + (b0 + 0.004) / 0.004**2)
                                         / (1 / 0.02**2 + 1 / 0.004**2), abs=2e-4)
    sd = guard.sd_m
    tracker.shift(0.05, t=12.0)
    assert guard.mean_m == pytest.approx(tracker.guard.mean_m)
    assert guard.grid[0] == pytest.approx(tracker.guard.grid[0])
    tracker.diffuse(112.0)  # slip since the tracker began
    assert guard.sd_m**2 == pytest.approx(sd**2 + 112 * SLIP_DIFFUSION_M2_S, rel=0.05)


def test_a_signature_that_pulls_the_estimate_up_does_not_silence_the_warning(monkeypatch):
    """The loads look like T11 where the prior and odometry put the contact 15 mm below
    T12/L1 (a signature taught in the wrong place): the warning follows the guard, and
    the reported SD covers the two estimates' disagreement. (The signature's bias floor
    off, so that its whole pull reaches the snapshot: the guard is what is tested.)"""
    monkeypatch.setattr(spine, "SIGNATURE_BIAS_SD_M", 0.0)
    b0 = float(BODY.position_at(8.0))
    tracker = SpineTracker(BODY, b0, 0.01, _linear_signature())
    p = BODY.rib_cage_end_m + 0.015 - b0
    for k in range(60):
        tracker.look(float(k), p, _features_at(11.0))
    snap = tracker.snapshot
    one = np.zeros(1, np.intp)
    alone = evaluate([dataclasses.replace(snap, guard=None)], one, np.array([p]),
                     np.array([20.0]))
    both = evaluate([snap], one, np.array([p]), np.array([20.0]))
    assert alone.p_below_ribs[0] < 0.2  # the signature alone says: above the ribs
    assert both.p_below_ribs[0] > 0.5
    assert both.level[0] == alone.level[0]  # the estimate itself is the sharp one
    gap = abs(snap.guard.mean - snap.mean)
    assert gap > 0.02
    assert both.sd_m[0] >= gap > 2 * alone.sd_m[0]
    fence = roller_fence(snap, WarningPolicy())
    lean = guard_lean(snap)  # (the pull limited to the guard's window: 25 mm, not more)
    assert lean > 0.01
    assert fence <= roller_fence(dataclasses.replace(snap, guard=None), WarningPolicy()) \
        - lean + 1e-6
    assert fence < p  # the roller warns there by itself too


def test_a_guard_that_agrees_within_the_doubt_moves_nothing():
    """The guard, widened by slip, a little lower than the tracker: no lean, the warning
    and the fence are the tracker's (what keeps false alarms down)."""
    b0 = float(BODY.position_at(8.0))
    tracker = SpineTracker(BODY, b0, 0.01, _linear_signature())
    p = BODY.rib_cage_end_m - 0.02 - b0
    for k in range(3):
        tracker.look(float(k), p, _features_at(12.2))  # a few mm higher than the prior
    snap = tracker.snapshot
    assert 0.0 < snap.guard.mean - snap.mean < math.sqrt(snap.guard.var + snap.var)
    assert guard_lean(snap) == 0.0
    one = np.zeros(1, np.intp)
    alone = evaluate([dataclasses.replace(snap, guard=None)], one, np.array([p]),
                     np.array([3.0]))
    both = evaluate([snap], one, np.array([p]), np.array([3.0]))
    assert both.p_below_ribs[0] == alone.p_below_ribs[0]
    assert roller_fence(snap, WarningPolicy()) == roller_fence(
        dataclasses.replace(snap, guard=None), WarningPolicy())


def test_the_signatures_pull_counts_at_most_as_one_observation_of_its_bias_floor():
    """Many looks at a signature taught one level off (another posture): the tracker's
    own grid follows it, past the landmark; the reported place moves only as far as one
    observation of SD ``SIGNATURE_BIAS_SD_M`` would move the guard's. Where the guard
    is wide (no landmark: a profile's habit), the signature still moves it most of the
    way."""
    b0 = float(BODY.position_at(8.0))
    pull = float(BODY.position_at(9.0) - BODY.position_at(8.0))  # the loads say level 9
    for prior_sd, landmark in ((0.03, True), (0.03, False)):
        tracker = SpineTracker(BODY, b0, prior_sd, _linear_signature())
        if landmark:
            tracker.observe_landmark(0.0, b0, t=0.0, sd_m=0.006)
        for k in range(200):
            tracker.look(1.0 + k, 0.0, _features_at(9.0))
        raw = float(tracker.w @ tracker.grid)
        snap = tracker.snapshot
        guard = snap.guard
        assert raw - b0 > 0.5 * pull  # the grid: most of the way, past the landmark
        share = guard.var / (guard.var + spine.SIGNATURE_BIAS_SD_M**2)
        assert snap.mean - guard.mean == pytest.approx(share * (raw - guard.mean), abs=0.002)
        assert snap.var >= float(tracker.w @ (tracker.grid - raw) ** 2) - 1e-9
        assert tracker.quantile_m(0.5) == pytest.approx(snap.mean, abs=0.002)
        if landmark:
            assert abs(snap.mean - b0) < 0.2 * abs(pull)  # the landmark holds the place
        else:
            assert abs(snap.mean - b0) > 0.6 * abs(pull)  # the signature still leads


def test_a_belief_the_floor_moved_toward_the_head_does_not_delay_the_warning():
    """Vigorous person 4's first session (docs/benchmarks.md, issue 17): slip carried
    the zero toward the feet, the signature followed it, and the bias floor moved the
    belief (its shape ~4 mm SD) back toward the guard (which only slip's doubt widens)
    by 16 mm. Where the floor moved it toward the head by more than the two places'
    joint doubt, P(below) and the roller's fence lean back toward the feet by the
    excess, as for the guard; the place itself stays the floor's. Before: P(below)
    0.000 where the signature put the contact 5 mm below T12/L1, the fence 8 mm
    beyond it."""
    b0 = float(BODY.position_at(8.0))
    tracker = SpineTracker(BODY, b0, 0.016, _linear_signature())
    for k in range(200):  # the loads say level 9.5: the zero 35 mm lower
        tracker.look(1.0 + k, 0.0, _features_at(9.5))
    raw = float(tracker.w @ tracker.grid)
    raw_var = float(tracker.w @ (tracker.grid - raw) ** 2)
    snap = tracker.snapshot
    assert snap.mean < raw - 0.01  # the floor moved it toward the head (the guard)
    assert snap.guard.mean < snap.mean  # the guard's own lean: none
    lean = guard_lean(snap)
    assert lean == pytest.approx(raw - snap.mean - math.sqrt(2.0 * raw_var), abs=1e-4)
    p = BODY.rib_cage_end_m + 0.005 - raw
    one = np.zeros(1, np.intp)
    est = evaluate([snap], one, np.array([p]), np.array([201.0]))
    assert est.p_below_ribs[0] > WarningPolicy().on_probability
    assert roller_fence(snap, WarningPolicy()) < p  # the roller warns there by itself
    alone = evaluate([dataclasses.replace(snap, unfloored=None)], one, np.array([p]),
                     np.array([201.0]))
    assert est.level[0] == alone.level[0] and est.sd_m[0] == alone.sd_m[0]


def test_cells_per_bin_spreads_a_value_per_bin_as_searchsorted_bins_them():
    """A look's likelihood per signature bin is spread over the grid by run lengths: the
    same cells get the same bins as ``np.searchsorted(edges, x)`` gives, values on an
    edge, beyond either end and equal to each other included."""
    rng = np.random.default_rng(3)
    edges = np.asarray(BodyModel.from_stature(1.75).position_at(spine._BIN_EDGES))
    per_bin = rng.normal(size=len(edges) + 1)
    for x in (np.sort(rng.uniform(edges[0] - 0.1, edges[-1] + 0.1, 501)),
              np.concatenate([[edges[0] - 1.0], edges, edges[5:9], [edges[-1] + 1.0]]),
              np.sort(np.concatenate([edges[10:12], rng.uniform(edges[10], edges[11], 40)])),
              np.full(7, edges[0] - 0.5)):
        x = np.sort(x)
        got = np.repeat(per_bin, spine._cells_per_bin(np.r_[-np.inf, edges, np.inf], x))
        assert np.array_equal(got, per_bin[np.searchsorted(edges, x)])


def test_frames_in_order_and_the_guards_place_alone_give_the_same_bits():
    """``evaluate`` takes frames whose snapshots come in order (a session's) in runs
    and works out only the guard's place and SD: the very bits of the general path
    (snapshots in any order, every column of the guard worked out)."""
    tracker = SpineTracker(BODY, 0.22, 0.015)
    snaps = [tracker.snapshot]
    for k, t in enumerate((2.0, 4.0, 6.0, 8.0)):
        tracker.observe_landmark(0.03 * k, 0.24 + 0.01 * k, t=t)
        if k == 2:
            tracker.bridge(t, 0.005)
        snaps.append(tracker.snapshot)
    n = 400
    rng, p, t = _random_frames(4, n, 13)
    sid = np.searchsorted([2.0, 4.0, 6.0, 8.0], t).astype(np.intp)
    used, s, counts = spine._reigns(sid)
    want_used, want_s = np.unique(sid, return_inverse=True)
    assert np.array_equal(used, want_used) and np.array_equal(s, want_s)
    assert np.array_equal(np.repeat(used, counts), sid)
    order = rng.permutation(n)  # the same frames out of order: the general path
    assert spine._reigns(sid[order])[2] is None
    bulk = evaluate(snaps, sid, p, t)
    mixed = evaluate(snaps, sid[order], p[order], t[order])
    for field in ("level", "region", "p_below_ribs", "p_near", "back_m", "sd_m"):
        assert getattr(bulk, field)[order].tobytes() == getattr(mixed, field).tobytes(), field
    guards = [x.guard for x in snaps]
    place = spine._evaluate(guards, sid, p, t, 0.02, place_only=True)
    full = spine._evaluate(guards, sid[order], p[order], t[order], 0.02)
    for field in ("back_m", "sd_m"):
        assert getattr(place, field)[order].tobytes() == getattr(full, field).tobytes()
    assert np.isfinite(bulk.p_below_ribs).sum() > 300 and len(used) == 5
    assert any(x.gap_var > 0 for x in snaps)  # (a gap's bridging error, faded, in the SD)


def test_a_snapshot_holds_the_reference_formulas_bit_for_bit():
    """The belief's summaries, worked out with numpy's ufuncs and ``np.dot`` called
    directly, are the very bits of ``w.sum()``, ``@`` and ``np.cumsum``."""
    tracker = SpineTracker(BODY, 0.22, 0.015, guard=False)
    tracker.observe_landmark(0.03, 0.25, t=1.0)
    tracker.diffuse(9.0)
    w, grid = tracker.w, tracker.grid
    snap = tracker.snapshot
    assert snap.mean == float(w @ grid)
    assert snap.var == max(float(w @ (grid * grid)) - snap.mean**2, 0.0)
    assert snap.cdf.tobytes() == np.cumsum(w).tobytes()
    before = w.copy()
    tracker._normalise()  # once more: divided by its sum (1 give or take a bit), floored
    want = np.maximum(before / float(before.sum()), spine.MIN_WEIGHT)
    assert tracker.w.tobytes() == want.tobytes()


def test_fences_found_together_are_each_beliefs_own():
    """``roller_fences`` finds the quantiles of many beliefs at once: the very values
    ``roller_fence`` gives one by one, under either policy."""
    from host.analysis.warnings import roller_fences

    tracker = SpineTracker(BODY, 0.22, 0.02)
    snaps = [tracker.snapshot]
    for k in range(6):
        tracker.observe_landmark(0.01 * k, 0.23 + 0.004 * k, t=float(k), sd_m=0.01)
        tracker.diffuse(float(k) + 3.0, 4e-5 if k == 3 else 0.0)
        snaps.append(tracker.snapshot)
    policies = [WarningPolicy(), WarningPolicy().uncalibrated()]
    pairs = [(s, policies[k % 2]) for k, s in enumerate(snaps + snaps)]
    got = roller_fences([s for s, _ in pairs], [p for _, p in pairs])
    assert got == [roller_fence(s, p) for s, p in pairs]
    assert len(set(got)) > 6


def test_looks_weighed_with_ratios_worked_out_together_move_the_belief_alike():
    """The analyzer works out many looks' likelihood ratios at once (``look_ratios`` of
    their rows): each row the very bits of one look's own, so the belief ends the same."""
    sig = _linear_signature()
    feats = [_features_at(level) for level in (8.0, 9.5, 11.0, 12.5, 10.2)]
    rows = look_ratios(sig.log_likelihood_many(np.array(feats)))
    one, many = (SpineTracker(BODY, 0.2, 0.02, sig) for _ in range(2))
    for k, (f, r) in enumerate(zip(feats, rows, strict=True)):
        assert r.tobytes() == look_ratios(sig.log_likelihood_bins(f)).tobytes()
        one.look(float(k), 0.01 * k, f)
        many.look(float(k), 0.01 * k, f, r)
    assert one.w.tobytes() == many.w.tobytes() and one.snapshot.mean == many.snapshot.mean
    assert one.looks == 5


def test_a_signature_that_fits_the_days_loads_only_far_from_the_guard_does_not_take_the_estimate():
    """Person 24's profile session in miniature (docs/benchmarks.md, issue 17): the
    signature was taught on a day when the lower ribs peaked (peakedness ~3.8 at T10-T12);
    today they are as flat as the taught T12/L1 and lumbar spine, so strokes over T10-T11
    fit the signature only 2-4 levels toward the feet, where the signature-free belief
    (a profile's habit, +- 23 mm, 25 mm high) all but rules the place out. The estimate
    must not follow the signature there: it stays within the guard's window and never
    calls a thoracic contact lumbar."""
    body = BodyModel.from_stature(1.88)
    knots = [2.0, 9.0, 10.5, 12.0, 13.0, 13.75]
    spread = [0.072, 0.067, 0.048, 0.045, 0.051, 0.052]
    taught = [2.3, 2.8, 3.7, 3.8, 2.6, 2.4]
    today = [2.3, 2.3, 2.8, 2.45, 1.8, 1.75]

    def features(level: float, peak: list[float]) -> tuple[float, float]:
        return float(np.interp(level, knots, spread)), float(np.interp(level, knots, peak))

    levels = np.repeat(np.arange(2.0, 13.75, 0.05), 20)
    rows = np.array([features(x, taught) for x in levels])
    rows += np.random.default_rng(1).normal(0.0, [0.0015, 0.08], rows.shape)
    sig = Signature()
    sig.add(levels, rows)
    b_true = float(body.position_at(9.9))
    tracker = SpineTracker(body, b_true - 0.025, 0.023, sig.compiled())
    stroke = np.concatenate([np.arange(0.0, 0.049, 0.012), np.arange(0.048, -0.001, -0.012)])
    t, errors = 0.0, []
    for p in np.tile(stroke, 40):  # 40 strokes over T10-T11, a look each 12 mm
        t += 0.5
        tracker.diffuse(t)
        true_level = float(body.level_at(b_true + p))
        tracker.look(t, p, features(true_level, today))
        snap = tracker.snapshot
        guard = snap.guard
        assert abs(snap.mean - guard.mean) <= spine.GUARD_WINDOW_SD * math.sqrt(guard.var)
        level = float(body.level_at(p + snap.mean))
        assert level < RIB_CAGE_END_LEVEL  # never lumbar: the truth is T10-T11.5
        errors.append(level - true_level)
    assert max(errors) < 1.5  # (without the window: 2.6 levels, lumbar 46 % of the looks)


def test_a_look_is_limited_to_the_guards_window_and_left_alone_inside_it():
    """Bins reaching into the guard's mean +- GUARD_WINDOW_SD SDs keep the look's ratio;
    no bin outside them gets more than the lowest inside; the look's own array is kept."""
    b0 = float(BODY.position_at(8.0))
    tracker = SpineTracker(BODY, b0, 0.01, _linear_signature())
    ratio = np.random.default_rng(3).uniform(0.1, 1.0, 72)
    before = ratio.copy()
    p = 0.02
    out = tracker._within_guard(ratio, p)
    assert np.array_equal(ratio, before)
    half = spine.GUARD_WINDOW_SD * 0.01
    edges = tracker._bin_edges_back
    reach = (edges[1:] > b0 - half + p) & (edges[:-1] < b0 + half + p)  # bins touching it
    assert reach.sum() >= 2
    assert np.array_equal(out[reach], ratio[reach])
    assert (out[~reach] <= ratio[reach].min()).all()
    assert (out[~reach] == np.minimum(ratio[~reach], ratio[reach].min())).all()
    unguarded = SpineTracker(BODY, b0, 0.01, _linear_signature(), guard=False)
    assert unguarded._within_guard(ratio, p) is ratio
