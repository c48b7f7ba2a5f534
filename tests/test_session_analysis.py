"""Calibration, warnings and the session analyzer: live in batches == offline."""

import math
from dataclasses import replace

import numpy as np
import pytest

from firmware.protocol import Frame, FrameFlag, quantise
from firmware.sim.rig import SimRoller
from firmware.sim.scenario import scenario_from_table
from host.analysis import session as session_mod
from host.analysis.anatomy import FIRST_CONTACT_LEVEL, BodyModel
from host.analysis.calibration import CalibrationDetector
from host.analysis.frames import FrameColumns
from host.analysis.model import EventKind
from host.analysis.profile import UserModel
from host.analysis.session import SessionAnalyzer, analyze
from host.analysis.strokes import StrokeSegmenter
from host.analysis.warnings import Cue, Warner, WarningPolicy

C = int(FrameFlag.IN_CONTACT)


def frame(seq, t, p, flags=C, loads=(10, 40, 60, 50, 50, 60, 40, 10), boot=1):
    return Frame(seq, t, p, 0.0, 0.0, tuple(float(x) for x in loads), float(sum(loads)),
                 FrameFlag(flags), boot)


# -- calibration --------------------------------------------------------------------------

def _press_window(positions, t0=0.0, flags=C):
    n = len(positions)
    t = t0 + np.arange(n) * 0.01
    f = np.full(n, flags, np.int64)
    f[-1] |= int(FrameFlag.BUTTON)
    return t, np.asarray(positions, dtype=float), f


def test_frames_are_put_in_boot_and_seq_order_once_each():
    rows = [frame(1, 0.01, 0.0), frame(3, 0.03, 0.0), frame(2, 0.02, 0.0),
            frame(3, 0.03, 0.0), frame(0, 0.0, 0.0, boot=2), frame(1, 0.01, 0.0, boot=2)]
    cols = FrameColumns.from_frames(rows).sorted()
    assert list(zip(cols.boot.tolist(), cols.seq.tolist(), strict=True)) == [
        (1, 1), (1, 2), (1, 3), (2, 0), (2, 1)]
    assert cols.sorted() is cols  # already in order: no copy


def test_calibration_needs_two_still_presses_a_span_apart():
    det = CalibrationDetector(expected_span_m=0.30)
    what, _ = det.press(*_press_window([-0.2 + 0.0005 * math.sin(i / 9) for i in range(120)]))
    assert what == "top" and det.top.position_m == pytest.approx(-0.2, abs=1e-3)
    what, msg = det.press(*_press_window([-0.15] * 120, t0=5.0))  # only 50 mm below
    assert what == "ignored" and "expected" in msg
    what, msg = det.press(*_press_window(np.linspace(0.0, 0.05, 120), t0=9.0))
    assert what == "ignored" and "rolling" in msg
    what, msg = det.press(*_press_window([0.1] * 50, t0=12.0))
    assert what == "ignored" and "1 s" in msg
    what, _ = det.press(*_press_window([0.105] * 120, t0=20.0))
    assert what == "done" and det.result.span_m == pytest.approx(0.305, abs=1e-3)
    assert det.top is None  # a new calibration starts from scratch


def test_a_calibration_that_comes_out_backwards_names_the_axis_sign():
    # The roller counts its turn backwards (its IMU mounted the other way round): the
    # bottom of the ribs lands a whole thoracic span above the top of the shoulders.
    det = CalibrationDetector(expected_span_m=0.30)
    assert det.press(*_press_window([0.1] * 120))[0] == "top"
    what, msg = det.press(*_press_window([-0.19] * 120, t0=10.0))
    assert what == "ignored" and "roller_axis_sign" in msg and "290 mm" in msg
    assert det.top is None and det.result is None


def test_press_off_the_roller_is_ignored():
    det = CalibrationDetector(0.3)
    assert det.press(*_press_window([0.0] * 120, flags=0))[0] == "ignored"


# -- warnings -----------------------------------------------------------------------------

def test_warner_hysteresis_and_approach_cue():
    warner = Warner(WarningPolicy(on_probability=0.2, off_probability=0.05))
    t = np.arange(12.0)
    p_below = np.array([0.0, 0.0, 0.1, 0.3, 0.5, 0.1, 0.04, 0.0, 0.0, 0.3, 0.3, 0.0])
    p_near = np.array([0.0, 0.3, 0.6, 0.9, 0.9, 0.5, 0.3, 0.1, 0.01, 0.9, 0.9, 0.9])
    active = np.ones(12, bool)
    active[10] = False  # got off while warning
    cues = warner.feed_columns(t, p_below, p_near, active)
    assert cues == [(1.0, Cue.APPROACH), (3.0, Cue.LUMBAR), (6.0, Cue.STOP), (9.0, Cue.LUMBAR),
                    (10.0, Cue.STOP), (11.0, Cue.APPROACH)]
    kinds = [(e.kind, e.start_t, e.end_t) for e in warner.events]
    assert (EventKind.LUMBAR_WARNING, 3.0, 6.0) in kinds
    assert (EventKind.LUMBAR_WARNING, 9.0, 10.0) in kinds
    assert kinds[0] == (EventKind.APPROACH, 1.0, 3.0)
    assert max(e.value for e in warner.events if e.kind is EventKind.LUMBAR_WARNING) == 0.5
    # the approach's value: the highest P(within the band or below) while in the band
    assert warner.events[0].value == 0.6
    assert "up to 60% likely within 20 mm" in warner.events[0].message


def test_warner_gives_the_same_cues_in_any_batches():
    rng = np.random.default_rng(5)
    n = 3000
    p = np.clip(np.cumsum(rng.normal(0, 0.03, n)), 0, 1)
    pn = np.clip(p + 0.2, 0, 1)
    active = rng.random(n) > 0.01
    t = np.arange(n) * 0.01
    whole = Warner().feed_columns(t, p, pn, active)
    parts, w = [], Warner()
    for a in range(0, n, 7):
        parts += w.feed_columns(t[a:a + 7], p[a:a + 7], pn[a:a + 7], active[a:a + 7])
    assert parts == whole and len(whole) > 4
    w_whole = Warner()
    w_whole.feed_columns(t, p, pn, active)
    approach = [e.value for e in w.events if e.kind is EventKind.APPROACH]
    assert approach == [e.value for e in w_whole.events if e.kind is EventKind.APPROACH]
    assert approach and all(0.2 < v <= 1.0 for v in approach)


def test_a_warner_taken_over_mid_session_warns_within_the_whole_passs_warnings():
    """A session joined late: the live pass warned nothing until the analysis was
    rebuilt at frame k, and its warner goes on from the rebuilt pass's state
    (``take_over``). At any k its warnings lie within the whole pass's, of the same kind
    (a fresh warner took the tail of a warning, P(below) back under the threshold but
    P(near) over it, for a new approach), and a lumbar warning on at k is buzzed at k."""
    t = np.arange(3000) * 0.01
    depth = np.zeros_like(t)  # drifts toward the ribs' end: (from, to, s; depth)
    for a, b, h in ((2, 6, 0.15), (8, 14, 0.6), (16, 20, 0.35), (22, 27, 0.5)):
        inside = (t >= a) & (t < b)
        depth[inside] += h * np.sin((t[inside] - a) / (b - a) * np.pi)
    p, pn = depth, np.minimum(2.5 * depth, 1.0)
    active = ~((t >= 24.0) & (t < 24.3))  # off the roller for a moment
    whole = Warner()
    whole.feed_columns(t, p, pn, active)
    whole.close(float(t[-1]))
    spans = [(e.kind, e.start_t, e.end_t) for e in whole.events]
    taken = 0
    for k in range(1, len(t), 3):
        rebuilt = Warner()
        rebuilt.feed_columns(t[:k], p[:k], pn[:k], active[:k])
        on = rebuilt.warning
        rebuilt.events.clear()  # (the live pass gave none of these)
        cues = rebuilt.take_over(float(t[k - 1]), float(p[k - 1]), float(pn[k - 1]))
        cues += rebuilt.feed_columns(t[k:], p[k:], pn[k:], active[k:])
        rebuilt.close(float(t[-1]))
        for e in rebuilt.events:
            assert any(e.kind is kind and a <= e.start_t and e.end_t <= b
                       for kind, a, b in spans), (k, e)
        if on:
            taken += 1
            assert cues[0] == (float(t[k - 1]), Cue.LUMBAR), k
            first = rebuilt.events[0]
            assert first.kind is EventKind.LUMBAR_WARNING and first.start_t == t[k - 1]
            assert first.value >= p[k - 1]
    assert taken > 100


def test_policy_thresholds_are_checked():
    with pytest.raises(ValueError):
        WarningPolicy(on_probability=0.1, off_probability=0.2)


# -- the session analyzer -------------------------------------------------------------------

def test_user_model_prior_and_json():
    user = UserModel(stature_m=1.75, sex="female")
    body = user.body()
    mean, sd = user.prior(body)
    assert mean == pytest.approx(body.position_at(FIRST_CONTACT_LEVEL))
    assert 0.02 < sd < 0.04
    back = UserModel.from_json(user.to_json())
    assert back.to_json() == user.to_json()
    for bad in ({}, {"schema": 1}, {"schema": 1, "stature_m": "x", "signature": {}},
                {**user.to_json(), "stature_m": 9.0}, {**user.to_json(), "sex": "x"},
                {**user.to_json(), "span_m": 0.01}):
        with pytest.raises(ValueError):
            UserModel.from_json(bad)


def test_synthetic_session_estimates_and_warns_near_the_ribs():
    user = UserModel(stature_m=1.75)
    body = BodyModel.from_stature(1.75)
    below_zero = body.rib_cage_end_m - body.position_at(FIRST_CONTACT_LEVEL)  # ~95 mm
    frames = [frame(0, 0.0, 0.0, 0)]
    p = np.concatenate([np.zeros(100), np.linspace(0, below_zero + 0.06, 300),
                        np.linspace(below_zero + 0.06, -0.05, 300)])
    frames += [frame(i + 1, 0.01 * (i + 1), float(x),
                     C | (int(FrameFlag.ZEROED) if i == 0 else 0)) for i, x in enumerate(p)]
    out, analyzer = analyze(frames, user)
    est = out.estimates
    assert np.isnan(est.level[0])  # not on the roller yet
    assert est.level[1] == pytest.approx(FIRST_CONTACT_LEVEL, abs=0.05)
    deepest = int(np.argmax(p)) + 1
    assert est.p_below_ribs[deepest] > 0.9
    cues = [c for _, c in out.cues]
    assert Cue.LUMBAR in cues and cues[-1] is Cue.STOP
    assert out.fence is not None
    # The fence the roller gets is where P(below) reaches the policy's threshold: the
    # conservative one of a user with no calibration.
    fence = out.fence[0]
    assert analyzer.tracker.estimate(fence).p_below_ribs == pytest.approx(
        WarningPolicy().uncalibrated_on_probability, abs=0.02)


def test_with_no_anchor_nothing_is_known_and_nothing_warns():
    """Issue 17.4: frames from the middle of a session (its start, where the roller was
    zeroed, not received or lost) put a place mid-back under the prior's first contact:
    a daemon that joined late called T9 L1 with P(below) up to 0.96. With no anchor the
    estimates are unknown, no region, no cue, no fence; the zero, when it comes, anchors."""
    user = UserModel(stature_m=1.75)
    body = BodyModel.from_stature(1.75)
    below_zero = body.rib_cage_end_m - body.position_at(FIRST_CONTACT_LEVEL)
    p = np.concatenate([np.linspace(0.06, below_zero + 0.03, 300),
                        np.linspace(below_zero + 0.03, 0.0, 300)])
    late = [frame(400 + i, 4.0 + 0.01 * i, float(x)) for i, x in enumerate(p)]
    out, analyzer = analyze(late, user, segmenter=StrokeSegmenter())
    assert np.isnan(out.estimates.level).all() and np.isnan(out.estimates.p_below_ribs).all()
    assert (out.estimates.region == -1).all()
    assert out.cues == [] and out.fence is None and analyzer.tracker is None
    assert not [e for e in out.events if e.kind in (EventKind.LUMBAR_WARNING,
                                                      EventKind.APPROACH)]
    assert out.strokes and all(s.regions == () for s in out.strokes)
    # The same frames after the roller's zero (the session's first contact): known.
    zeroed = [frame(400, 4.0, 0.0, C | int(FrameFlag.ZEROED))] + [
        frame(401 + i, 4.01 + 0.01 * i, float(x)) for i, x in enumerate(p)]
    out, _ = analyze(zeroed, user, segmenter=StrokeSegmenter())
    assert not np.isnan(out.estimates.level).any()
    assert Cue.LUMBAR in [c for _, c in out.cues] and out.fence is not None
    # Live, batch by batch: unknown until the zero comes, then tracked from it.
    live = SessionAnalyzer(user)
    first = live.feed(late[:200])
    assert np.isnan(first.estimates.level).all()
    then = live.feed([frame(600, 6.0, 0.0, C | int(FrameFlag.ZEROED)),
                      frame(601, 6.01, 0.001)])
    assert then.estimates.level[0] == pytest.approx(FIRST_CONTACT_LEVEL, abs=0.05)


def test_reboot_gap_and_fault_are_handled():
    user = UserModel(stature_m=1.70)
    frames = [frame(i, 0.01 * i, 0.0, C | (int(FrameFlag.ZEROED) if i == 0 else 0))
              for i in range(50)]
    frames += [frame(60 + i, 0.6 + 0.01 * i, 0.0) for i in range(20)]  # 10 frames lost
    fault = int(FrameFlag.IMU_FAULT)
    frames += [frame(80 + i, 0.8 + 0.01 * i, 0.0, C | fault) for i in range(30)]
    frames += [frame(110 + i, 1.1 + 0.01 * i, 0.0) for i in range(20)]
    frames += [frame(i, 0.01 * i, 0.0, boot=2) for i in range(20)]  # a new boot
    out, analyzer = analyze(frames, user)
    faults = [e for e in out.events if e.kind is EventKind.FAULT]
    assert len(faults) == 1 and faults[0].start_t == pytest.approx(0.8)
    assert np.isnan(out.estimates.level[70:100]).all()  # the position was lost
    sd = out.estimates.sd_m
    assert sd[55] > sd[45] + 1e-4  # the gap added doubt
    assert not np.isnan(out.estimates.level[-1])  # a new tracker after the reboot


def test_a_clipped_gyro_adds_doubt_but_does_not_break_a_stroke():
    def session(clip_at):
        t = np.arange(600) * 0.01
        p = 0.06 * (1 - np.cos(2 * np.pi * t / 1.5)) / 2  # strokes of 60 mm
        v = np.gradient(p, t)
        loads = (10, 40, 60, 50, 50, 60, 40, 10)
        return [Frame(i, float(t[i]), float(p[i]), float(v[i]), 0.0, tuple(map(float, loads)),
                      float(sum(loads)), FrameFlag(C | (int(FrameFlag.ZEROED) if i == 0 else 0)
                                                   | (int(FrameFlag.IMU_CLIPPED)
                                                      if i == clip_at else 0)), 1)
                for i in range(len(t))]

    user = UserModel(stature_m=1.70)
    clean, _ = analyze(session(-1), user, segmenter=StrokeSegmenter())
    clipped, _ = analyze(session(200), user, segmenter=StrokeSegmenter())
    sd, sd_clean = clipped.estimates.sd_m, clean.estimates.sd_m
    assert sd[199] == pytest.approx(sd_clean[199])
    assert sd[201] > sd_clean[201] + 1e-4  # the lost rotation is doubt about the place
    assert len(clean.strokes) >= 3
    assert [(s.start_t, s.end_t) for s in clipped.strokes] == [
        (s.start_t, s.end_t) for s in clean.strokes]


def _still_session(seconds, gap_every_s=None, hold=None):
    """Frames at 50 Hz of a roller lying still under a body; every ``gap_every_s`` one
    frame's samples are lost (the next one flagged ``IMU_GAP``, as the roller bridges a
    broken FIFO read); ``hold`` = (from s, to s): the IMU gives nothing (``IMU_FAULT``
    frames, the position held), then a gap."""
    out, seq, t, lost = [], 0, 0.0, False
    gap, fault = int(FrameFlag.IMU_GAP), int(FrameFlag.IMU_FAULT)
    next_gap = gap_every_s if gap_every_s else math.inf
    while t < seconds:
        flags = C | (int(FrameFlag.ZEROED) if seq == 0 else 0) | (gap if lost else 0)
        held = hold is not None and hold[0] <= t < hold[1]
        out.append(frame(seq, t, 0.0, flags | (fault if held else 0)))
        lost = held  # the frame after held ones comes with IMU_GAP
        seq += 1
        t = round(t + 0.02, 6)
        if t >= next_gap:  # a broken read: one frame's samples lost
            t, next_gap, lost = round(t + 0.02, 6), next_gap + gap_every_s, True
    return out


def test_short_gaps_the_roller_bridged_do_not_add_up_but_a_long_one_does():
    user = UserModel(stature_m=1.70)
    clean, _ = analyze(_still_session(300.0), user)
    gaps, _ = analyze(_still_session(300.0, gap_every_s=2.0), user)
    sd_clean, sd_gaps = clean.estimates.sd_m, gaps.estimates.sd_m
    assert sum(bool(f & FrameFlag.IMU_GAP) for f in gaps.frames.flags) >= 140
    # 149 gaps: with 5 mm each added up the SD would be 60 mm wider; bridged from
    # gravity's absolute angle, the doubt stays the last gap's.
    bound = math.sqrt(sd_clean[-1] ** 2 + session_mod.BRIDGE_SD_M**2)
    assert sd_gaps[-1] <= bound + 1e-4
    assert sd_gaps[-1] > sd_clean[-1] + 1e-5  # a gap's doubt while it lasts (its last)
    # A second of the IMU lost: the roller may have turned more than gravity can tell.
    held, _ = analyze(_still_session(300.0, hold=(100.0, 101.0)), user)
    sd_held = held.estimates.sd_m
    assert sd_held[-1] ** 2 == pytest.approx(sd_clean[-1] ** 2 + session_mod.GAP_DOUBT_M**2,
                                             rel=0.02)  # once, when the roller is back


@pytest.fixture(scope="module")
def calibrated_frames():
    sc = scenario_from_table({"session": {"duration_s": 90.0},
                              "routine": {"calibration": True, "lumbar_excursions": 1}})
    roller = SimRoller(sc, 3)
    frames = []
    roller.add_sink(lambda f: frames.append(quantise(f, 8)))
    roller.run()
    roller.close()
    return roller, frames


def test_live_batches_give_what_the_offline_pass_gives(calibrated_frames):
    roller, frames = calibrated_frames
    person = roller.world.person
    user = UserModel(stature_m=round(person.stature_m, 2), sex=person.sex)
    offline, off = analyze(frames, user)
    live = SessionAnalyzer(user)
    rng = np.random.default_rng(0)
    got, cues, fences, i = [], [], [], 0
    while i < len(frames):
        k = int(rng.integers(1, 6))
        update = live.feed(frames[i:i + k])
        got.append(update.estimates)
        cues += update.cues
        if update.fence is not None:
            fences.append(update.fence)
        i += k
    tail = live.finish()
    cues += tail.cues
    for field in ("level", "p_below_ribs", "back_m", "sd_m"):
        a = np.concatenate([getattr(e, field) for e in got])
        np.testing.assert_allclose(a, getattr(offline.estimates, field), rtol=0, atol=1e-9,
                                   equal_nan=True)
    assert cues == offline.cues
    assert fences and fences[-1] == offline.fence
    assert live.calibrated_at == off.calibrated_at is not None
    a, b = live.learned_model(), off.learned_model()
    assert a.span_m == pytest.approx(b.span_m) and a.calibrations == 1
    np.testing.assert_allclose(a.signature.count, b.signature.count)


def test_calibration_in_the_stream_teaches_the_user_model(calibrated_frames):
    roller, frames = calibrated_frames
    person = roller.world.person
    user = UserModel(stature_m=round(person.stature_m, 2), sex=person.sex)
    out, analyzer = analyze(frames, user)
    kinds = [e.message for e in out.events if e.kind is EventKind.CALIBRATION]
    assert any("calibrated" in m for m in kinds)
    learned = analyzer.learned_model()
    true_span = person.boundaries_m[13] - person.boundaries_m[1]
    assert learned.span_m == pytest.approx(true_span, abs=0.025)
    assert learned.signature.known and learned.calibrations == 1
    routine = roller.world.routine
    first_touch = routine.position(np.array([routine.contact_on_s]))[0]  # m from C7
    assert learned.first_contact_levels[0] == pytest.approx(person.level_at(first_touch),
                                                            abs=1.0)
    # A user model from the JSON the store keeps works the same.
    again = UserModel.from_json(learned.to_json())
    out2, _ = analyze(FrameColumns.from_frames(frames), again)
    out3, _ = analyze(frames, learned)
    np.testing.assert_allclose(out2.estimates.p_below_ribs, out3.estimates.p_below_ribs,
                               equal_nan=True)


def test_signature_is_put_to_use_only_a_relearn_period_after_the_calibration(
        calibrated_frames, monkeypatch):
    _, frames = calibrated_frames
    relearns = []
    real = SessionAnalyzer._relearn

    def spy(self, t, tracker):
        relearns.append(t)
        real(self, t, tracker)

    monkeypatch.setattr(SessionAnalyzer, "_relearn", spy)
    live = SessionAnalyzer(UserModel(stature_m=1.7, sex="female"))
    in_use = []  # (t, whether the tracker matches a signature)
    for i in range(0, len(frames), 10):
        live.feed(frames[i:i + 10])
        if live.tracker is not None:
            in_use.append((frames[min(i + 9, len(frames) - 1)].t,
                           live.tracker.signature is not None))
    cal = live.calibrated_at
    assert cal is not None
    # Not from the few frames of the bottom hold: a minute of frames taught first.
    period = session_mod.RELEARN_EVERY_S
    assert relearns and relearns[0] >= cal + period
    assert not any(used for t, used in in_use if t < cal + period)
    assert any(used for t, used in in_use if t > relearns[0] + 0.5)


def test_only_frames_the_landmarks_anchor_teach_the_signature(calibrated_frames):
    _, frames = calibrated_frames
    user = UserModel(stature_m=1.7, sex="female")
    _, whole = analyze(frames, user)
    cal = whole.calibrated_at
    # The landmarks' doubt (5.7 mm) grows by slip to LEARN_SD_M within the session.
    assert cal < whole.anchored_until < frames[-1].t
    taught = whole.learned_model().signature.count.sum()
    in_window = sum(cal <= f.t < whole.anchored_until for f in frames)
    assert 0 < taught <= in_window
    # A short gap 5 s after the calibration (3 frames lost, bridged from gravity by the
    # roller) keeps the place: the window goes on. One longer than LONG_GAP_S (more
    # than half a turn may hide in it) ends the window there.
    cut = next(k for k, f in enumerate(frames) if f.t > cal + 5.0)
    _, bridged = analyze(frames[:cut] + frames[cut + 3:], user)
    assert bridged.anchored_until == whole.anchored_until
    back = next(k for k, f in enumerate(frames)
                if f.t > frames[cut].t + session_mod.LONG_GAP_S + 0.1)
    gapped = frames[:cut] + frames[back:]
    _, broken = analyze(gapped, user)
    assert broken.anchored_until == pytest.approx(frames[back].t)
    assert broken.learned_model().signature.count.sum() <= sum(
        cal <= f.t < frames[back].t for f in gapped)


def test_zone_loads_an_adc_holds_are_no_look_at_the_back(calibrated_frames):
    """An ADC that stops answering holds its zones' last values (ADC_FAULT): those are
    not loads measured there, so the tracker must not look them up in the signature
    (after an ADC died for good, the fault soak's tracker went 100 mm off on them and a
    37 mm drift below the ribs went unwarned). The estimates over a stretch of held
    loads do not depend on what values are held."""
    roller, frames = calibrated_frames
    person = roller.world.person
    learned = analyze(frames, UserModel(stature_m=round(person.stature_m, 2),
                                        sex=person.sex))[1].learned_model()
    held = slice(4000, 6000)

    def holding(loads):
        return [replace(f, zone_loads=loads, flags=f.flags | FrameFlag.ADC_FAULT)
                if held.start <= i < held.stop else f for i, f in enumerate(frames)]

    a, _ = analyze(holding(frames[held.start - 1].zone_loads), learned)
    b, _ = analyze(holding(frames[1000].zone_loads), learned)
    np.testing.assert_allclose(a.estimates.back_m, b.estimates.back_m, atol=1e-9,
                               equal_nan=True)


def test_features_worked_out_for_a_few_frames_are_those_of_the_whole_batch(calibrated_frames):
    """The analyzer works out the signature features only for the frames it looks at or
    learns from: the very bits ``features_array`` gives over the whole batch, NaN for
    frames whose zone loads an ADC held."""
    from host.analysis.signature import features_array

    cols = FrameColumns.from_frames(calibrated_frames[1])
    stale = np.zeros(len(cols), dtype=bool)
    stale[::7] = True
    want = features_array(cols.zone_loads)
    want[stale] = np.nan
    feats = session_mod._Features(cols.zone_loads, stale)
    rng = np.random.default_rng(1)
    for m in (1, 2, 5, 17, 300):
        idx = np.sort(rng.choice(len(cols), m, replace=False))
        got = feats.rows(idx)
        assert got.tobytes() == want[idx].tobytes()
        assert np.array(feats.at(int(idx[-1]))).tobytes() == want[idx[-1]].tobytes()
    idx = np.arange(len(cols))
    assert feats.rows(idx).tobytes() == want.tobytes()
    assert np.isfinite(want[:, 0]).sum() > len(cols) / 2
