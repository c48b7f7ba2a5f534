"""The first session calibrates: landmarks the body model finds plausible, a conservative
warning and fence until the user is calibrated, and an ``UNCALIBRATED`` event saying so."""

import math

import numpy as np
import pytest

from firmware.protocol import Frame, FrameFlag, quantise
from firmware.sim.rig import SimRoller
from firmware.sim.scenario import scenario_from_table
from host.analysis.anatomy import BodyModel
from host.analysis.calibration import UNCALIBRATED_NOTE, CalibrationDetector, top_range
from host.analysis.model import EventKind
from host.analysis.profile import UserModel
from host.analysis.session import SessionAnalyzer, analyze
from host.analysis.warnings import Cue, WarningPolicy, roller_fence

C = int(FrameFlag.IN_CONTACT)


def _press(position_m, t0=0.0):
    t = t0 + np.arange(120) * 0.01
    f = np.full(120, C, np.int64)
    f[-1] |= int(FrameFlag.BUTTON)
    return t, np.full(120, float(position_m)), f


def test_the_top_landmark_must_lie_plausibly_above_where_the_person_lay_back():
    body = BodyModel.from_stature(1.72)
    lo, hi = top_range(body)
    assert 0.005 < lo < 0.02 and hi > body.thoracic_span_m  # T2 .. L1 as the zero
    det = CalibrationDetector(body.thoracic_span_m, (lo, hi))
    what, msg = det.press(*_press(-0.002))  # pressed right after lying back
    assert what == "ignored" and "first roll up" in msg and det.top is None
    what, msg = det.press(*_press(0.15, 5.0))  # below the zero: down, not up
    assert what == "ignored" and "BELOW" in msg and "roller_axis_sign" in msg
    what, msg = det.press(*_press(-hi - 0.05, 10.0))  # onto the neck
    assert what == "ignored" and "past the top" in msg
    what, _ = det.press(*_press(-0.16, 15.0))
    assert what == "top" and det.top.position_m == pytest.approx(-0.16)
    what, _ = det.press(*_press(-0.16 + body.thoracic_span_m, 20.0))
    assert what == "done"


def _frames(positions, t0=0.0):
    out = []
    for i, p in enumerate(positions):
        flags = C | (int(FrameFlag.ZEROED) if i == 0 else 0)
        loads = (10.0, 40.0, 60.0, 50.0, 50.0, 60.0, 40.0, 10.0)
        out.append(Frame(i, t0 + 0.01 * i, float(p), 0.0, 0.0, loads, sum(loads),
                         FrameFlag(flags), 1))
    return out


def _down_and_back(user):
    body = user.body()
    mean, _ = user.prior(body)
    below_zero = body.rib_cage_end_m - mean
    return _frames(np.concatenate([np.zeros(100), np.linspace(0, below_zero + 0.05, 300),
                                   np.linspace(below_zero + 0.05, -0.05, 300)]))


def test_an_uncalibrated_user_is_warned_with_a_wider_margin_and_told_so():
    policy = WarningPolicy()
    new = UserModel(stature_m=1.75)
    out, analyzer = analyze(_down_and_back(new), new)
    assert not analyzer.calibrated
    assert analyzer.warner.policy.on_probability == policy.uncalibrated_on_probability
    # The fence sits where P(below) reaches the conservative threshold: higher on the
    # back than the calibrated policy would put it on the same belief.
    belief = analyzer.tracker.snapshot
    assert roller_fence(belief, policy.uncalibrated()) < roller_fence(belief, policy) - 0.003
    assert out.fence[0] == pytest.approx(roller_fence(belief, policy.uncalibrated()),
                                         abs=0.003)
    # The warning starts earlier on the way down than the calibrated threshold would.
    first_cue_t = next(t for t, cue in out.cues if cue is Cue.LUMBAR)
    p = out.estimates.p_below_ribs
    t = np.arange(len(p)) * 0.01
    assert first_cue_t == pytest.approx(float(t[np.argmax(p > 0.1)]), abs=0.011)
    assert first_cue_t < float(t[np.argmax(p > 0.2)])
    marks = [e for e in out.events if e.kind is EventKind.UNCALIBRATED]
    assert len(marks) == 1 and marks[0].value == 1.0
    assert marks[0].start_t == 0.0 and marks[0].end_t == pytest.approx(6.99)
    assert UNCALIBRATED_NOTE in marks[0].message


def _up_then_down(user, top_level, deep_m=0.05):
    """Lie back, roll up until the prior's place puts the contact at ``top_level``, back
    down to ``deep_m`` (m) below where the prior puts the ribs' end, and up again."""
    body = user.body()
    mean, _ = user.prior(body)
    top = float(body.position_at(top_level)) - mean
    deep = body.rib_cage_end_m - mean + deep_m
    return _frames(np.concatenate([np.zeros(100), np.linspace(0, top, 300),
                                   np.linspace(top, deep, 600), np.linspace(deep, 0, 300)]))


def test_a_new_user_whose_highest_place_fits_the_prior_keeps_the_wide_margin():
    """Issue 17: a top of the back that the prior's place allows (T2.5 by it) does not
    earn the calibrated threshold: a person lying lower than the prior who turned short
    of the shoulders reaches the same top. The warning starts at the wide margin's."""
    new = UserModel(stature_m=1.75)
    out, analyzer = analyze(_up_then_down(new, 2.5), new)
    assert analyzer.placed_low_at is None
    assert analyzer.warner.policy == WarningPolicy().uncalibrated()
    p = out.estimates.p_below_ribs
    t = np.arange(len(p)) * 0.01
    first_cue_t = next(t for t, cue in out.cues if cue is Cue.LUMBAR)
    on = WarningPolicy().uncalibrated_on_probability
    assert on < WarningPolicy().on_probability
    assert first_cue_t == pytest.approx(float(t[np.argmax(p > on)]), abs=0.011)


def test_a_new_user_who_rolls_higher_than_the_prior_allows_is_placed_lower():
    """The prior's place would put the highest contact above the top of the shoulders:
    she lay back lower than under the shoulder blades. The belief moves toward the feet
    (P(below the ribs) only rises) and the warning keeps the wide margin."""
    new = UserModel(stature_m=1.75)
    high, analyzer = analyze(_up_then_down(new, -0.5, deep_m=-0.045), new)
    fits, _ = analyze(_up_then_down(new, 2.5, deep_m=-0.045), new)
    assert analyzer.placed_low_at is not None
    assert analyzer.warner.policy == WarningPolicy().uncalibrated()
    # The deepest frame of each (the same distance below the zero, 45 mm above where
    # the prior puts the ribs' end) is more likely below them for the one who rolled
    # higher: the wide margin warns her there, the prior alone would not.
    deep_high = high.estimates.p_below_ribs[100 + 300 + 599]
    deep_fits = fits.estimates.p_below_ribs[100 + 300 + 599]
    assert deep_fits < 0.1 < deep_high
    assert any(cue is Cue.LUMBAR for _, cue in high.cues)


def test_a_user_calibrated_by_the_profile_gets_the_usual_policy_and_no_mark():
    known = UserModel(stature_m=1.75, span_m=0.32, span_sd_m=0.005, calibrations=1)
    out, analyzer = analyze(_down_and_back(known), known)
    assert analyzer.calibrated
    assert analyzer.warner.policy == WarningPolicy()
    assert not [e for e in out.events if e.kind is EventKind.UNCALIBRATED]


def test_the_uncalibrated_policy_must_be_the_more_cautious():
    with pytest.raises(ValueError):
        WarningPolicy(uncalibrated_on_probability=0.3)
    with pytest.raises(ValueError):
        WarningPolicy(uncalibrated_on_probability=0.1, uncalibrated_off_probability=0.2)


@pytest.fixture(scope="module")
def first_session():
    sc = scenario_from_table({"session": {"duration_s": 60.0},
                              "routine": {"calibration": True}})
    roller = SimRoller(sc, 5)
    frames = []
    roller.add_sink(lambda f: frames.append(quantise(f, 8)))
    roller.run()
    roller.close()
    person = roller.world.person
    return UserModel(stature_m=round(person.stature_m, 2), sex=person.sex), frames


def test_a_first_session_switches_to_the_usual_policy_at_its_calibration(first_session):
    user, frames = first_session
    live = SessionAnalyzer(user)
    policies = []  # (t of the batch's last frame, policy in force after it)
    for i in range(0, len(frames), 25):
        live.feed(frames[i:i + 25])
        policies.append((frames[min(i + 24, len(frames) - 1)].t, live.warner.policy))
    cal = live.calibrated_at
    assert cal is not None
    assert all(p == WarningPolicy().uncalibrated() for t, p in policies if t < cal)
    assert all(p == WarningPolicy() for t, p in policies if t >= cal)
    tail = live.finish()
    marks = [e for e in tail.events if e.kind is EventKind.UNCALIBRATED]
    assert len(marks) == 1 and marks[0].value == 0.0
    assert marks[0].start_t == frames[0].t and marks[0].end_t == cal
    assert "until the calibration" in marks[0].message
    assert math.isfinite(live.learned_model().span_m)
