"""Stroke segmentation (host/analysis/strokes.py) on synthetic position traces and on
simulated sessions scored against the truth."""

from dataclasses import dataclass, field

import numpy as np
import pytest

import host.analysis.strokes as strokes_module
from firmware.protocol import Frame, FrameFlag
from host.analysis.model import Dwell, Stroke
from host.analysis.strokes import (
    StrokeParams,
    StrokeSegmentation,
    StrokeSegmenter,
    segment,
    segment_frames,
)

FS = 100.0
ON = int(FrameFlag.IN_CONTACT)


# -- synthetic traces ----------------------------------------------------------------------
@dataclass
class Trace:
    """Frames at 100 Hz along minimum-jerk movements between knots (t s, x m).

    moves: the true strokes, (start_t, end_t, start_x, end_x) of each knot-to-knot move.
    """

    t: np.ndarray
    x: np.ndarray
    v: np.ndarray
    load: np.ndarray
    flags: np.ndarray
    moves: list[tuple[float, float, float, float]] = field(default_factory=list)

    def frames(self, boot=0):
        rows = zip(self.t, self.x, self.v, self.load, self.flags, strict=True)
        return [Frame(k, float(t), float(x), float(v), 0.0, (float(ld),), float(ld),
                      FrameFlag(int(f)), boot) for k, (t, x, v, ld, f) in enumerate(rows)]

    def segment(self, params=None):
        return segment(self.t, self.x, self.v, self.load, self.flags, params=params)


def trace(knots, end_s=None, breath_m=0.0, breath_hz=0.25, noise_m=0.0, seed=0, load=250.0):
    """Frames along min-jerk moves between ``knots`` [(t, x)], quantised as the wire
    quantises them (0.1 mm, 0.1 mm/s), with breathing and noise added to the position."""
    kt = np.array([k[0] for k in knots], dtype=float)
    kx = np.array([k[1] for k in knots], dtype=float)
    end_s = kt[-1] + 1.0 if end_s is None else end_s
    t = np.round(np.arange(0.0, end_s, 1.0 / FS), 3)
    k = np.clip(np.searchsorted(kt, t, side="right") - 1, 0, len(kt) - 2)
    span = kt[k + 1] - kt[k]
    tau = np.clip((t - kt[k]) / span, 0.0, 1.0)
    step = kx[k + 1] - kx[k]
    x = kx[k] + step * tau**3 * (10 - 15 * tau + 6 * tau**2)
    v = step * 30 * tau**2 * (1 - tau) ** 2 / span
    w = 2 * np.pi * breath_hz
    x = x + breath_m * np.sin(w * t)
    v = v + breath_m * w * np.cos(w * t)
    x = x + np.random.default_rng(seed).normal(0.0, noise_m, len(t)) if noise_m else x
    moves = [(kt[i], kt[i + 1], kx[i], kx[i + 1]) for i in range(len(kt) - 1)
             if kx[i + 1] != kx[i]]
    return Trace(t, np.round(x * 1e4) / 1e4, np.round(v * 1e4) / 1e4,
                 np.full(len(t), load), np.full(len(t), ON, dtype=np.int64), moves)


def zigzag(x0, strokes, t0=1.0):
    """Knots: rest at x0 until t0, then (amplitude m signed, moving s, hold s) strokes."""
    knots, t, x = [(0.0, x0), (t0, x0)], t0, x0
    for amplitude, moving, hold in strokes:
        t, x = t + moving, x + amplitude
        knots.append((t, x))
        if hold > 0:
            t += hold
            knots.append((t, x))
    return knots


def online(frames, params=None, batch=1):
    """Run the online segmenter; (strokes, dwells, time of the frame deciding each stroke)."""
    seg, found = StrokeSegmenter(params), StrokeSegmentation()
    for k in range(0, len(frames), batch):
        for f in frames[k:k + batch]:
            found.add(seg.push(f), f.t)
    found.add(seg.flush(), np.nan)
    return found.strokes, found.dwells, found.decided_t


def assert_matches_moves(strokes, moves, tol_m=0.5e-3):
    assert len(strokes) == len(moves)
    for s, (t0, t1, x0, x1) in zip(strokes, moves, strict=True):
        assert s.direction == np.sign(x1 - x0)
        assert s.start_m == pytest.approx(x0, abs=tol_m)
        assert s.end_m == pytest.approx(x1, abs=tol_m)
        assert t0 - 0.05 <= s.start_t < s.end_t <= t1 + 0.05


# -- strokes -------------------------------------------------------------------------------
def test_min_jerk_strokes_are_found_whole_with_their_figures():
    plan = [(0.08, 1.5, 0.0), (-0.05, 2.0, 0.3), (0.20, 1.5, 0.1), (-0.03, 3.5, 0.0),
            (-0.12, 1.2, 0.3), (0.04, 4.0, 0.5)]
    tr = trace(zigzag(0.0, plan), end_s=20.0)
    strokes = tr.segment().strokes
    assert_matches_moves(strokes, tr.moves)
    assert [s.index for s in strokes] == list(range(len(plan)))
    for s, (amplitude, moving, _) in zip(strokes, plan, strict=True):
        assert s.amplitude_m == pytest.approx(abs(amplitude), abs=0.5e-3)
        assert s.peak_speed_m_s == pytest.approx(1.875 * abs(amplitude) / moving, rel=0.03)
        assert s.mean_speed_m_s == pytest.approx(s.amplitude_m / s.duration_s)
        # the ends of a min-jerk move creep: the detected movement is most of it
        assert 0.7 * moving < s.duration_s <= moving + 0.02
        assert s.mean_load_n == s.max_load_n == 250.0
        assert s.regions == ()


def test_loads_are_the_frames_of_the_stroke():
    tr = trace(zigzag(0.0, [(0.06, 2.0, 1.0), (-0.06, 2.0, 0.0)]), end_s=7.0)
    tr.load = 200.0 + 10.0 * tr.t  # rising load: each stroke sees its own frames
    a, b = tr.segment().strokes
    inside = (tr.t >= a.start_t) & (tr.t <= a.end_t)
    assert a.mean_load_n == pytest.approx(tr.load[inside].mean())
    assert a.max_load_n == pytest.approx(tr.load[inside].max())
    assert b.mean_load_n > a.max_load_n


@pytest.mark.parametrize(("amplitude", "moving", "hold"), [
    (0.20, 1.5, 0.0),  # the largest, fastest strokes, no turnaround hold
    (0.12, 1.5, 0.0),
    (0.06, 1.5, 0.0),
    (0.03, 1.5, 0.0),
    (0.03, 4.0, 0.0),  # the smallest, slowest: the next move creeps away
    (0.10, 3.0, 0.0),
    (0.20, 1.2, 0.3),
    (0.05, 3.0, 1.0),
])
def test_each_stroke_is_decided_within_300_ms_of_its_end(amplitude, moving, hold):
    plan = [(amplitude * (-1) ** k, moving, hold) for k in range(6)]
    tr = trace(zigzag(0.0, plan), end_s=1.0 + 6 * (moving + hold) + 1.0)
    strokes, _, decided = online(tr.frames())
    # the slowest strokes end 0.5 mm short: decided while still creeping to their end
    assert_matches_moves(strokes, tr.moves, tol_m=0.6e-3)
    latency = np.array(decided) - np.array([m[1] for m in tr.moves])
    assert latency.max() <= 0.3


def test_breathing_and_noise_on_a_pause_are_one_dwell_and_no_stroke():
    tr = trace([(0.0, 0.01), (12.0, 0.01)], breath_m=0.7e-3, breath_hz=0.3, noise_m=0.05e-3)
    result = tr.segment()
    assert result.strokes == []
    (dwell,) = result.dwells
    assert dwell.start_t == pytest.approx(0.0, abs=0.05)
    assert dwell.end_t == pytest.approx(tr.t[-1])
    assert dwell.position_m == pytest.approx(0.01, abs=0.2e-3)
    assert dwell.mean_load_n == 250.0


def test_a_long_rest_is_one_dwell_and_keeps_a_bounded_window():
    knots = [(0.0, 0.0), (200.0, 0.0), (201.5, 0.05)]
    tr = trace(knots, end_s=203.0, breath_m=0.5e-3, breath_hz=0.2)
    seg = StrokeSegmenter()
    got, longest = [], 0
    for f in tr.frames():
        got += seg.push(f)
        longest = max(longest, len(seg._t))
    dwell, stroke = got
    assert isinstance(dwell, Dwell) and isinstance(stroke, Stroke)
    assert dwell.start_t == 0.0
    assert dwell.end_t == pytest.approx(200.0, abs=0.3)
    assert dwell.position_m == pytest.approx(0.0, abs=0.1e-3)
    assert stroke.start_m == pytest.approx(0.0, abs=0.7e-3)  # breathing goes on: 0.5 mm
    assert stroke.end_m == pytest.approx(0.05, abs=0.7e-3)
    assert longest <= 8193  # 80 s of frames, not the 200 s of the rest


def test_a_pause_between_strokes_is_a_dwell_and_the_strokes_stay_whole():
    knots = zigzag(0.0, [(0.07, 1.8, 0.0), (-0.04, 1.6, 0.0), (-0.05, 2.0, 0.0)])
    # a 6 s pause with breathing between the second and third strokes
    t_pause = knots[3][0]
    knots = knots[:4] + [(t_pause + 6.0, knots[3][1])] + [
        (t + 6.0, x) for t, x in knots[4:]]
    tr = trace(knots, end_s=knots[-1][0] + 1.0)
    w = 2 * np.pi * 0.25
    breathing = np.where((tr.t > t_pause + 0.5) & (tr.t < t_pause + 5.5),
                         0.5e-3 * np.sin(w * (tr.t - t_pause)), 0.0)
    tr.x = np.round((tr.x + breathing) * 1e4) / 1e4
    tr.v = tr.v + np.where(breathing != 0, 0.5e-3 * w * np.cos(w * (tr.t - t_pause)), 0.0)
    result = tr.segment()
    assert_matches_moves(result.strokes, tr.moves, tol_m=0.6e-3)
    (dwell,) = [d for d in result.dwells if d.start_t > 2.0]
    assert dwell.start_t == pytest.approx(t_pause, abs=0.3)
    assert dwell.end_t == pytest.approx(t_pause + 6.0, abs=0.5)
    assert dwell.position_m == pytest.approx(0.03, abs=0.3e-3)


def test_turnaround_holds_are_not_dwells():
    plan = [(0.05 * (-1) ** k, 1.5, 0.8) for k in range(6)]
    tr = trace(zigzag(0.0, plan, t0=0.5), end_s=0.5 + 6 * 2.3)
    result = tr.segment()
    assert len(result.strokes) == 6
    assert result.dwells == []


def test_movements_shorter_than_the_minimum_are_not_strokes():
    plan = [(0.003, 1.0, 0.5), (-0.003, 1.0, 0.5), (0.06, 1.5, 0.0), (-0.004, 1.0, 0.5)]
    tr = trace(zigzag(0.0, plan), end_s=9.0)
    (stroke,) = tr.segment().strokes
    assert stroke.amplitude_m == pytest.approx(0.06, abs=0.5e-3)


def _with_slip(tr, start, length, size):
    """The roller's view of a slip: the back slides ``size`` m over it in ``length`` s,
    so the roller rolls that much less."""
    tau = np.clip((tr.t - start) / length, 0.0, 1.0)
    slip = size * tau**3 * (10 - 15 * tau + 6 * tau**2)
    rate = size * 30 * tau**2 * (1 - tau) ** 2 / length
    tr.x = np.round((tr.x - slip) * 1e4) / 1e4
    tr.v = np.round((tr.v - rate) * 1e4) / 1e4
    return tr


SLIPS = [
    (0.05, 1.3, 0.2, 0.006),  # early: the roller comes back 4 mm
    (0.05, 2.05, 0.3, 0.006),  # mid-stroke: the roller nearly stops
    (0.05, 2.9, 0.4, 0.004),  # late: the roller stops for 0.12 s and comes back 2 mm
    (0.03, 2.0, 0.4, 0.006),  # mid-stroke: the roller stops for 0.15 s
]


def _slipped(amplitude, at, length, size):
    """Two strokes (1.0 .. 3.2 or 3.4 s and back), a slip in the first."""
    moving = 2.4 if amplitude == 0.05 else 2.2
    tr = trace(zigzag(0.0, [(amplitude, moving, 0.0), (-amplitude, moving, 0.0)]), end_s=7.0)
    return _with_slip(tr, at, length, size)


@pytest.mark.parametrize(("amplitude", "at", "length", "size"), SLIPS)
def test_a_slip_of_the_back_mid_stroke_does_not_split_it(amplitude, at, length, size):
    tr = _slipped(amplitude, at, length, size)
    strokes = tr.segment().strokes
    assert [s.direction for s in strokes] == [1, -1]
    first = tr.t <= 1.0 + (2.4 if amplitude == 0.05 else 2.2)
    assert strokes[0].amplitude_m == pytest.approx(tr.x[first].max() - tr.x[first].min(),
                                                   abs=0.2e-3)


def test_an_abrupt_stop_is_not_taken_for_the_end_of_the_stroke():
    tr = _slipped(*SLIPS[3])
    inside = (tr.t > 2.0) & (tr.t < 2.4)
    assert np.sum(np.abs(tr.v[inside]) < StrokeParams().still_speed_m_s) >= 15  # 0.15 s
    # taking every slow-down for gradual, the stop would end the stroke there
    assert len(tr.segment(StrokeParams(gradual_fraction=1e-9)).strokes) == 3
    assert len(tr.segment().strokes) == 2


# -- breaks: contact, IMU, time, boot ---------------------------------------------------------
def _strokes_plan():
    return zigzag(0.0, [(0.06 * (-1) ** k, 1.6, 0.0) for k in range(8)])


def test_frames_out_of_contact_break_the_stroke_they_fall_in():
    tr = trace(_strokes_plan(), end_s=15.0)
    cut = (tr.t >= 5.3) & (tr.t < 6.0)  # inside the third stroke (4.2 .. 5.8 s)
    tr.flags[cut] = 0
    strokes = tr.segment().strokes
    spans = [(s.start_t, s.end_t) for s in strokes]
    assert all(b < 5.3 or a >= 6.0 for a, b in spans)  # none spans the break
    # the stroke under way and the one that resumed after the break are dropped (their
    # start or end was not seen); the others are whole
    kept = [m for m in tr.moves if m[1] < 5.3 or m[0] > 6.0]
    assert_matches_moves(strokes, kept)


@pytest.mark.parametrize("flag", [FrameFlag.IMU_FAULT, FrameFlag.IMU_GAP])
def test_an_imu_fault_or_gap_breaks_the_stroke(flag):
    tr = trace(_strokes_plan(), end_s=15.0)
    if flag == FrameFlag.IMU_FAULT:
        # the roller holds the position and sends velocity 0 while the IMU is lost
        cut = (tr.t >= 5.0) & (tr.t < 5.4)
        tr.x[cut] = tr.x[np.flatnonzero(cut)[0] - 1]
        tr.v[cut] = 0.0
        tr.flags[cut] |= int(flag)
        tr.flags[np.flatnonzero(cut)[-1] + 1] |= int(FrameFlag.IMU_GAP)
    else:
        # samples lost before 5.2 s: the position jumps over the gap
        gap = (tr.t > 4.9) & (tr.t < 5.2)
        keep = ~gap
        tr = Trace(tr.t[keep], tr.x[keep], tr.v[keep], tr.load[keep], tr.flags[keep],
                   tr.moves)
        tr.flags[np.searchsorted(tr.t, 5.2)] |= int(flag)
    strokes = tr.segment().strokes
    assert all(s.end_t < 4.9 or s.start_t >= 5.2 for s in strokes)
    kept = [m for m in tr.moves if m[1] < 4.9 or m[0] > 5.5]  # the 3rd (4.2 .. 5.8 s) is cut
    assert_matches_moves(strokes, kept)


def test_a_jump_in_sensor_time_breaks_and_a_short_hole_does_not():
    tr = trace(_strokes_plan(), end_s=15.0)
    short = ~((tr.t > 3.0) & (tr.t < 3.06))  # 5 frames lost mid-stroke
    long = ~((tr.t > 5.0) & (tr.t < 5.5))
    sub = Trace(tr.t[short & long], tr.x[short & long], tr.v[short & long],
                tr.load[short & long], tr.flags[short & long], tr.moves)
    strokes = sub.segment().strokes
    kept = [m for m in tr.moves if m[1] < 5.0 or m[0] > 5.8]
    assert_matches_moves(strokes, kept)


def test_a_new_boot_starts_afresh():
    tr = trace(_strokes_plan(), end_s=15.0)
    frames = tr.frames(boot=1)
    frames = frames[:500] + [Frame(k, f.t - 4.0, f.position, f.velocity, 0.0, f.zone_loads,
                                   f.total_load, f.flags, 2) for k, f in enumerate(frames[500:])]
    strokes, _, _ = online(frames)
    # 2 whole strokes before the reboot at 5 s; the one under way is dropped, then the
    # remaining 5 are whole (in the new boot's sensor time)
    assert len(strokes) == 7
    assert strokes[1].end_t < 5.0
    assert strokes[2].start_t == pytest.approx(5.8 - 4.0, abs=0.15)


def test_a_frame_without_a_position_is_a_break():
    tr = trace(_strokes_plan(), end_s=15.0)
    k = int(np.searchsorted(tr.t, 5.0))
    tr.x[k], tr.v[k + 150] = np.nan, np.inf  # at 5.0 s and 6.5 s
    strokes = tr.segment().strokes
    assert len(strokes) == 6  # the 3rd and 4th strokes (4.2 .. 7.4 s) are cut
    assert all(s.end_t < 5.0 or s.start_t > 7.0 for s in strokes)


def test_frames_that_do_not_advance_in_time_are_skipped():
    tr = trace(_strokes_plan(), end_s=15.0)
    frames = tr.frames()
    seg = StrokeSegmenter()
    for f in frames[:700] + frames[650:700] + frames[700:]:
        seg.push(f)
    assert seg.skipped == 50
    assert len(online(frames)[0]) == 8


# -- zeroing ----------------------------------------------------------------------------------
@pytest.mark.parametrize("at", [3.0, 4.1, 5.0])  # mid-stroke, at a reversal, mid-stroke
def test_a_zeroed_frame_moves_the_origin_without_a_stroke(at):
    tr = trace(_strokes_plan(), end_s=15.0)
    k = int(np.searchsorted(tr.t, at))
    offset = float(tr.x[k])  # the origin moves to where the roller is
    tr.x[k:] = np.round((tr.x[k:] - offset) * 1e4) / 1e4
    tr.flags[k] |= int(FrameFlag.ZEROED)
    strokes = tr.segment().strokes
    plain = trace(_strokes_plan(), end_s=15.0).segment().strokes
    assert len(strokes) == len(plain) == 8
    for s, p in zip(strokes, plain, strict=True):
        assert s.amplitude_m == pytest.approx(p.amplitude_m, abs=0.3e-3)
        shift = offset if s.end_t >= at else 0.0  # in the origin of the frame deciding it
        assert s.start_m == pytest.approx(p.start_m - shift, abs=0.3e-3)
        assert s.end_m == pytest.approx(p.end_m - shift, abs=0.3e-3)


# -- offline == online ---------------------------------------------------------------------------
def _busy_trace():
    plan = [(0.05, 1.5, 0.0), (-0.09, 2.0, 0.2), (0.03, 3.0, 0.0), (0.0, 0.0, 4.0),
            (0.15, 1.4, 0.0), (-0.15, 1.4, 0.1), (0.06, 2.0, 0.0), (-0.02, 1.0, 3.0),
            (0.08, 1.6, 0.0), (-0.08, 1.6, 0.0)] * 3
    plan = [p for p in plan if p[0] or p[2]]
    tr = trace(zigzag(0.0, plan), breath_m=0.3e-3, noise_m=0.05e-3, seed=3)
    n = len(tr.t)
    rng = np.random.default_rng(5)
    tr.load = 240.0 + rng.normal(0, 5, n)
    tr.flags[(tr.t > 20.0) & (tr.t < 21.0)] = 0  # off the roller
    tr.flags[int(n * 0.6)] |= int(FrameFlag.IMU_GAP)
    k = int(n * 0.7)
    tr.x[k:] -= tr.x[k]
    tr.flags[k] |= int(FrameFlag.ZEROED)
    return tr


@pytest.mark.parametrize("batch", [1, 2, 7])
def test_offline_gives_the_online_strokes_and_dwells(batch):
    tr = _busy_trace()
    strokes, dwells, decided = online(tr.frames(), batch=batch)
    offline = tr.segment()
    assert len(strokes) > 15 and len(dwells) >= 2
    assert offline.strokes == strokes
    assert offline.dwells == dwells
    assert offline.decided_t == decided
    assert segment_frames(tr.frames()).strokes == strokes


def test_push_many_is_push_frame_by_frame():
    frames = _busy_trace().frames()
    seg = StrokeSegmenter()
    got = []
    for k in range(0, len(frames), 5):
        got += seg.push_many(frames[k:k + 5])
    got += list(seg.flush())
    strokes, dwells, _ = online(frames)
    assert [g for g in got if isinstance(g, Stroke)] == strokes
    assert [g for g in got if isinstance(g, Dwell)] == dwells


def test_step_columns_is_step_frame_by_frame():
    """The short path decides as ``step`` does, through every break a stream can have."""
    tr = _busy_trace()
    n = len(tr.t)
    boot = np.zeros(n, dtype=np.int64)
    boot[int(n * 0.8):] = 1  # a reboot
    tr.x[int(n * 0.3)] = np.nan  # a frame without a position
    tr.t[int(n * 0.4)] = tr.t[int(n * 0.4) - 2]  # a frame that does not advance in time
    tr.t[int(n * 0.5):] += 2.0  # a hole in sensor time
    tr.flags[int(n * 0.55)] |= int(FrameFlag.IMU_FAULT)
    cols = [tr.t.tolist(), tr.x.tolist(), tr.v.tolist(), tr.load.tolist(),
            tr.flags.tolist(), boot.tolist()]
    one, want = StrokeSegmenter(), []
    for row in zip(*cols, strict=True):
        got = one.step(*row)
        if got:
            want.append((row[0], got))
    many, got = StrokeSegmenter(), []
    for a, b in zip(range(0, n, 997), range(997, n + 997, 997), strict=True):
        got += many.step_columns(*(c[a:b] for c in cols))
    assert sum(isinstance(x, Stroke) for _, d in want for x in d) > 15
    assert got == want
    assert many.flush() == one.flush() and many.skipped == one.skipped == 1



@pytest.mark.parametrize("quantum", [0.0, 1e-4])
def test_stretches_taken_at_once_leave_the_segmenter_as_step_does(quantum, monkeypatch):
    """``step_columns`` takes the stretches along which a stroke only advances in numpy
    (``_take_run``) and the rests in a loop of their own (``_take_rest``): after each
    batch the segmenter is the one ``step`` frame by frame leaves, attribute for
    attribute (its window of frames included), on positions as the wire quantises them
    (ties) and in the origin a re-zero moved."""
    tr = _busy_trace()
    if quantum:
        tr.x = np.round(tr.x / quantum) * quantum
    n = len(tr.t)
    cols = [tr.t, tr.x, tr.v, tr.load, tr.flags, np.zeros(n, dtype=np.int64)]
    taken = {"_take_run": [], "_take_rest": []}

    def counted(name):
        real = getattr(strokes_module.StrokeSegmenter, name)

        def take(self, arrays, k):
            m = real(self, arrays, k)
            taken[name].append(m)
            return m
        return take

    for name in taken:
        monkeypatch.setattr(strokes_module.StrokeSegmenter, name, counted(name))
    one, many = StrokeSegmenter(), StrokeSegmenter()
    want, got = [], []
    cuts = np.cumsum(np.random.default_rng(7).integers(strokes_module.BULK_MIN + 1, 160, n))
    for a, b in zip([0, *cuts[cuts < n]], [*cuts[cuts < n], n], strict=True):
        for row in zip(*(c[a:b].tolist() for c in cols), strict=True):
            if (d := one.step(*row)):
                want.append((row[0], d))
        got += many.step_columns(*(c[a:b] for c in cols))
        assert vars(many) == vars(one)
    assert got == want and len(want) > 15
    assert sum(taken["_take_run"]) > 0.4 * n  # most of a stroke's frames went in numpy
    assert sum(taken["_take_rest"]) > 0.1 * n  # and the rests in a loop of their own



def test_a_stretch_ending_on_ties_keeps_the_first_frame_at_the_extreme():
    """A movement whose last frames sit at one quantised position while still moving:
    the stroke's extreme is the first frame there, as ``step`` keeps it."""
    x = [*(k * 2e-4 for k in range(100)), *(99 * 2e-4 for _ in range(4))]
    n = len(x)
    cols = [np.arange(n) * 0.01, np.array(x), np.full(n, 0.02), np.full(n, 200.0),
            np.full(n, int(FrameFlag.IN_CONTACT)), np.zeros(n, dtype=np.int64)]
    one, many = StrokeSegmenter(), StrokeSegmenter()
    for row in zip(*(c.tolist() for c in cols), strict=True):
        one.step(*row)
    many.step_columns(*cols)
    assert one._e_i == 99 and vars(many) == vars(one)


def test_bad_params_and_arrays_are_refused():
    with pytest.raises(ValueError, match="still_s"):
        StrokeParams(still_s=-1.0)
    with pytest.raises(ValueError, match="reversal_m"):
        StrokeParams(reversal_m=0.001)
    with pytest.raises(ValueError, match="same length"):
        segment([0.0, 0.01], [0.0], [0.0], [0.0], [1])
    assert segment([], [], [], [], []).strokes == []


# -- simulated sessions, scored against the truth ------------------------------------------------
@pytest.fixture(scope="module")
def simulated():
    from firmware.sim.scenario import default_scenario
    from host.bench.strokes import run_session

    # seed 3: a pause; seed 5: a pause and a drift below the ribs
    return [run_session(default_scenario(), seed, duration_s=60.0) for seed in (3, 5)]


@pytest.mark.slow
def test_simulated_sessions_meet_the_stroke_targets(simulated):
    for session in simulated:
        s = session.score
        assert s.true_count >= 12
        assert s.f1 >= 0.99
        assert s.exact_count
        assert s.amplitude_mae_mm <= 3.0
        assert len(s.latencies_ms) == s.true_positives
        assert s.latencies_ms.max() <= 300.0
        assert session.offline_equals_online
        assert session.rests_found == session.true_rests  # every pause is a dwell
    assert [session.true_rests for session in simulated] == [1, 1]


def test_a_short_imu_gap_bridged_from_gravity_does_not_break_the_stroke():
    # A broken FIFO read: 30 ms of samples lost mid-stroke, the position bridged by the
    # roller from gravity; the stroke goes on (a longer jump still breaks, above).
    tr = trace(_strokes_plan(), end_s=15.0)
    gap = (tr.t > 5.0) & (tr.t < 5.03)
    keep = ~gap
    tr = Trace(tr.t[keep], tr.x[keep], tr.v[keep], tr.load[keep], tr.flags[keep], tr.moves)
    tr.flags[np.searchsorted(tr.t, 5.03)] |= int(FrameFlag.IMU_GAP)
    assert_matches_moves(tr.segment().strokes, tr.moves)  # every stroke whole
