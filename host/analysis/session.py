"""One session's analysis: strokes, spine estimate, warnings, the roller's fence.

``SessionAnalyzer`` is what the daemon runs live, batch by batch as frames arrive, and
what the offline pass (``analyze``) runs over a whole stored session in one batch: the
same code, and its results do not depend on how the frames were batched. Frames are fed
in order; a frame at or before the last one fed is skipped (backfill that arrives late
belongs to the offline pass). Per frame it gives a spine estimate (``Estimates``
columns); along the way strokes and dwells, events, haptic cues for the roller and, when
it moves, the on-device fence to set.

Per frame only cheap scalar work happens in Python (flags, the look schedule, the
stroke segmenter); the belief changes at a few points a second (``SpineTracker``
snapshots) and the per-frame estimates are computed from the snapshots in bulk.

Calibration: two still presses of the button (``host.analysis.calibration``) give the
top of the shoulders and the bottom of the ribs; the tracker takes them as landmarks,
the thoracic span is pooled with what was known, and from then on the frames teach the
person's load signature. ``learned_model`` returns the user model to keep. Until the
user is calibrated (by the profile or in the session: ``calibrated``), the warning and
the roller's fence follow the policy's conservative ``uncalibrated()`` thresholds, and
the session's end gives an ``UNCALIBRATED`` event over the time analysed so (value 1:
the whole session, 0: until a calibration in it), its message saying what calibrating
would change.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from firmware.protocol import Frame, FrameFlag
from host.analysis.anatomy import BodyModel
from host.analysis.calibration import (
    BOTTOM_LEVEL,
    TOP_LEVEL,
    UNCALIBRATED_NOTE,
    CalibrationDetector,
    top_range,
)
from host.analysis.frames import FrameColumns
from host.analysis.model import Dwell, Estimates, Event, EventKind, Region, Stroke
from host.analysis.profile import UserModel
from host.analysis.signature import (
    CompiledSignature,
    Signature,
    features_array,
    load_features,
)
from host.analysis.spine import (
    LANDMARK_SD_M,
    SLIP_DIFFUSION_M2_S,
    Snapshot,
    SpineTracker,
    evaluate,
    look_due,
    look_ratios,
)
from host.analysis.warnings import Cue, Warner, WarningPolicy, roller_fence, roller_fences

GAP_DOUBT_M = 0.005
"""Doubt about the roller's place on the back for good (``SpineTracker.diffuse``), 1 SD,
m: after a batch in which the gyro clipped (``IMU_CLIPPED``), and after an IMU gap
longer than ``LONG_GAP_S``."""
BRIDGE_SD_M = 0.005
"""The error of the roller's position after an IMU gap it bridged from gravity's
absolute angle, 1 SD, m: bounded, it does not add up over gaps
(``SpineTracker.bridge``)."""
LONG_GAP_S = 0.5
"""An IMU gap (the time since the last tracked frame, s) longer than this may have
hidden more than half a turn of the roller (220 mm on 7 cm of radius, at the fastest
strokes' 0.35-0.45 m/s), which gravity's angle cannot tell: its doubt is for good."""
LEARN_SD_M = 0.010
"""Frames teach the signature only while the place on the back is this sure (1 SD), m,
by the calibration's landmarks and odometry alone (``SessionAnalyzer.anchored_until``):
the tracker's own SD, narrowed by the signature being learned, would let a signature
taught off its place teach itself further off."""
RELEARN_EVERY_S = 60.0
"""How often the signature being learned in a calibrated session is put to use, s."""
HISTORY = 160
"""Frames kept from earlier batches (for the calibration's hold check: 1.6 s)."""

_CONTACT = int(FrameFlag.IN_CONTACT)
_FAULT = int(FrameFlag.IMU_FAULT | FrameFlag.IMU_INCONSISTENT)  # not tracked
_GAP = int(FrameFlag.IMU_GAP)  # samples lost: the roller bridged them from gravity
_CLIPPED = int(FrameFlag.IMU_CLIPPED)  # the gyro clipped: the turn beyond it from gravity
_HELD = int(FrameFlag.IMU_FAULT)  # the position held, not tracked
_STALE_LOAD = int(FrameFlag.ADC_FAULT | FrameFlag.LOAD_STALE)  # zone loads held, not measured
_ZEROED = int(FrameFlag.ZEROED)
_BUTTON = int(FrameFlag.BUTTON)


class Segmenter(Protocol):
    """What the analyzer needs of a stroke segmenter (``host.analysis.strokes``)."""

    def step(self, t: float, position: float, velocity: float, load: float, flags: int,
             boot: int = 0) -> Sequence[Stroke | Dwell]: ...

    def flush(self) -> Sequence[Stroke | Dwell]: ...


@dataclass
class Update:
    """What one ``feed`` produced.

    frames: the frames analysed, in order (columns); estimates: one row per frame.
    strokes, dwells, events: finished ones; decided_t: for each stroke, the sensor time
    of the frame at which it was decided, s. cues: (sensor time s, cue) for the roller,
    in order. fence: the roller fence to set (position, hysteresis, approach, m), or
    None when it need not move.
    """

    frames: FrameColumns | None = None
    estimates: Estimates = field(default_factory=lambda: Estimates.unknown(0))
    strokes: list[Stroke] = field(default_factory=list)
    decided_t: list[float] = field(default_factory=list)
    dwells: list[Dwell] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    cues: list[tuple[float, Cue]] = field(default_factory=list)
    fence: tuple[float, float, float] | None = None

    def extend(self, later: Update) -> None:
        """Append what a later update found (frames and estimates are left alone)."""
        self.strokes += later.strokes
        self.decided_t += later.decided_t
        self.dwells += later.dwells
        self.events += later.events
        self.cues += later.cues
        if later.fence is not None:
            self.fence = later.fence


class SessionAnalyzer:
    """The analysis of one session of one user.

    user: what is known of the user. policy: warning thresholds. segmenter: the stroke
    segmenter, or None (no strokes).
    """

    def __init__(self, user: UserModel, policy: WarningPolicy | None = None,
                 segmenter: Segmenter | None = None) -> None:
        self.user = user
        self.policy = policy or WarningPolicy()
        self.body = user.body()
        self.signature = self._compile(user.signature)
        self.tracker: SpineTracker | None = None
        self.warner = Warner(self.policy if user.calibrated else self.policy.uncalibrated())
        """Its ``policy`` is the one in force (the fence follows it too): see
        ``_policy_now``."""
        self.placed_low_at: float | None = None
        """Sensor time (s) at which the highest place the roller reached showed the
        user lying lower than the prior says (``SpineTracker.placed_low``); None:
        not so far."""
        self.calibration = CalibrationDetector(self.body.thoracic_span_m, top_range(self.body))
        self.calibrated_at: float | None = None
        self.anchored_until = -math.inf
        """Sensor time (s) up to which the landmarks alone hold the place on the back
        within ``LEARN_SD_M``: the calibration's two landmarks, then slip; a long IMU
        gap (``LONG_GAP_S``) or a reboot ends it (a short one the roller bridged does
        not: its error is bounded)."""
        self.segmenter = segmenter
        self.zeroed = False
        """Whether the roller's zero of this boot was seen (``ZEROED``: its first contact):
        the anchor. Without it (a session joined late, its start lost) no tracker starts,
        so the estimates are unknown and nothing warns: the roller's own fence guards."""
        self.span: tuple[float, float] | None = None
        self.first_contact_level = math.nan
        self.learning = Signature()
        self.frames = 0
        self._learned_at = -math.inf
        self._last: tuple[int, int, float, float] | None = None  # boot, seq, t, position
        self._fence_sent: tuple[float, float] | None = None  # (position m, at t s)
        self._fault_since: float | None = None
        self._tracked: tuple[int, float] | None = None  # boot, t of the last tracked frame
        self._history = (deque(maxlen=HISTORY), deque(maxlen=HISTORY), deque(maxlen=HISTORY))
        """(t, position, flags) of the last frames fed, for the calibration's hold check."""
        self._learn_rows: list[list[float]] = [[], [], []]  # level, spread, peakedness
        self._last_t = 0.0
        self._first_t: float | None = None
        self._highest = math.inf  # the smallest roller position since a cut (_new_tops)

    @property
    def calibrated(self) -> bool:
        """Whether the user is calibrated: by the profile, or by this session so far."""
        return self.user.calibrated or self.calibrated_at is not None

    # -- feeding ------------------------------------------------------------------
    def feed(self, frames: Sequence[Frame]) -> Update:
        """Analyse ``Frame``s (in order; older ones than the last fed are skipped)."""
        return self.feed_columns(FrameColumns.from_frames(frames))

    def feed_columns(self, cols: FrameColumns) -> Update:
        """Analyse frames given as columns (in order; older ones are skipped)."""
        if self._last is not None and len(cols):
            boot, seq = self._last[0], self._last[1]
            cols = cols.take(~((cols.boot == boot) & (cols.seq <= seq)))
        out = Update(frames=cols)
        if len(cols):
            self._process(cols, out)
        out.events.extend(self.warner.events)
        self.warner.events.clear()
        return out

    def finish(self) -> Update:
        """The session ends: close open strokes and events."""
        out = Update()
        t = self._last_t
        cue = self.warner.close(t)
        if cue is not None:
            out.cues.append((t, cue))
        if self._fault_since is not None:
            self._close_fault(t, out)
        if self.segmenter is not None:
            self._segments(self.segmenter.flush(), out, t)
        if not self.user.calibrated and self._first_t is not None:
            out.events.append(self._uncalibrated_event(t))
        out.events.extend(self.warner.events)
        self.warner.events.clear()
        return out

    # -- the batch ----------------------------------------------------------------
    def _process(self, cols: FrameColumns, out: Update) -> None:
        n = len(cols)
        t_a, p_a, f_a = cols.t, cols.position, cols.flags
        feats = _Features(cols.zone_loads, (f_a & _STALE_LOAD) != 0)
        valid = ((f_a & _CONTACT) != 0) & ((f_a & _FAULT) == 0) & np.isfinite(p_a)
        last = self._last
        prev_boot = np.concatenate([[last[0] if last else -1], cols.boot[:-1]])
        prev_seq = np.concatenate([[last[1] if last else -2], cols.seq[:-1]])
        reboot = (cols.boot != prev_boot) & (prev_boot != -1) if last else np.zeros(n, bool)
        gap = ((f_a & _GAP) != 0) | ((cols.seq != prev_seq + 1) & (prev_boot != -1))
        clipped = (f_a & _CLIPPED) != 0
        untracked = self._untracked_s(cols)
        structural = reboot | gap | clipped | ((f_a & (_ZEROED | _BUTTON)) != 0)
        # The first usable frame when there is no tracker (at the start, after a reboot),
        # once the boot's zero is seen: with no anchor the place on the back is unknown.
        fresh = np.zeros(n, bool)
        need = self.tracker is None
        zeroed = (f_a & _ZEROED) != 0
        for lo, hi in _runs(np.flatnonzero(reboot), n):
            need |= bool(reboot[lo])
            if reboot[lo]:
                self.zeroed = False
            start = lo
            if not self.zeroed and zeroed[lo:hi].any():
                start = lo + int(np.argmax(zeroed[lo:hi]))
                self.zeroed = True
            first = np.flatnonzero(valid[start:hi]) if self.zeroed else ()
            if need and len(first):
                fresh[start + first[0]] = True
                need = False
        due = valid & look_due(
            t_a, p_a, self._last_t if last else math.nan, last[3] if last else math.nan)
        if feats.complete is not None:
            due &= np.isfinite(feats.complete[:, 0])
        else:
            due[due] = feats.usable(np.flatnonzero(due))
        top, self._highest = _new_tops(p_a, valid, reboot | zeroed, self._highest)
        ev = np.flatnonzero(structural | fresh | due | top)
        due_idx = np.flatnonzero(due)
        lls: tuple[CompiledSignature, dict[int, np.ndarray]] | None = None
        starts: list[int] = [0]  # frame index where each snapshot's reign begins
        snaps: list[Snapshot | None] = [self.tracker.snapshot if self.tracker else None]
        tracker = self.tracker
        # A gap long enough to hide more than half a turn (once, when the roller is back)
        long_gap = gap & (untracked > LONG_GAP_S) & ((f_a & _HELD) == 0)
        events = ev.tolist()
        before0 = last[3] if last else math.nan  # (the position before the batch)
        columns = (t_a, p_a, f_a, due, fresh, reboot, gap, long_gap, clipped, top)
        if n > 64:  # (per event, as plain numbers: a few of a long batch's frames)
            values = [c[ev].tolist() for c in columns]
            before = p_a[np.maximum(ev - 1, 0)].tolist()
        else:  # (a live batch's few frames: cheaper as whole lists)
            lists = [c.tolist() for c in columns]
            values = [[column[i] for i in events] for column in lists]
            before = [lists[1][i - 1] for i in events]
        if events and events[0] == 0:
            before[0] = before0
        per_event = zip(events, *values[:3], before, *values[3:], strict=True)
        taught = 0  # first frame of the batch not yet taught to the signature
        policy = self.warner.policy
        changes = [(0, policy)]  # (first frame, the policy in force from it)
        recheck = True  # the policy in force may change: at the first event, after a press
        parts: list[Estimates] = []  # estimates of frames 0..taught-1
        for i, t, p, fl, before, due_i, fresh_i, reboot_i, gap_i, long_i, clipped_i, top_i \
                in per_event:
            changed = False
            if reboot_i or long_i:  # (a gap the roller bridged keeps the place)
                self.anchored_until = min(self.anchored_until, t)
            if reboot_i:
                tracker = self.tracker = None  # the roller rebooted: its zero is gone
                changed = True
            if fl & _ZEROED:
                self.calibration.reset()
            if tracker is not None:
                if fl & _ZEROED and before == before:
                    tracker.shift(before, t)
                    changed = True
                changed |= tracker.diffuse(t, GAP_DOUBT_M**2 if clipped_i or long_i else 0.0)
                if gap_i:
                    tracker.bridge(t, BRIDGE_SD_M)
                    changed = True
            elif fresh_i:
                tracker = self.tracker = self._start_tracker(p, t)
                changed = True
            if tracker is not None and top_i and not self.calibrated:
                changed |= tracker.observe_top(p, t)
                if tracker.placed_low and self.placed_low_at is None:
                    self.placed_low_at = t
            if fl & _BUTTON:
                h_t, h_p, h_f = self._history
                changed |= self._press(out, tracker, np.array([*h_t, *t_a[:i + 1].tolist()]),
                                       np.array([*h_p, *p_a[:i + 1].tolist()]),
                                       np.array([*h_f, *f_a[:i + 1].tolist()], dtype=np.int64))
                recheck = True
            if tracker is not None and due_i:
                if self.calibrated_at is not None and t - self._learned_at >= RELEARN_EVERY_S:
                    sid, table = _reign(starts, snaps, i)
                    part = self._estimates(cols.take(slice(taught, i)), sid[taught:i], table)
                    self._teach(cols, feats, taught, i, part)
                    parts.append(part)
                    taught = i
                    self._relearn(t, tracker)
                sig = tracker.signature
                if sig is not None:
                    if lls is None or lls[0] is not sig:  # the looks' likelihoods, at once
                        ahead = due_idx[due_idx >= i]
                        lls = (sig, {k: r for k, r in zip(ahead.tolist(), look_ratios(
                            sig.log_likelihood_many(feats.rows(ahead))), strict=True)})
                    tracker.look(t, p, feats.at(i), lls[1][i])
                    changed = True
            if recheck:  # (``_policy_now`` changes only with ``calibrated``: at a press)
                recheck = False
                want = self._policy_now()
                if want != policy:
                    policy = want
                    changes.append((i, want))
            if changed:
                if starts[-1] == i:
                    snaps[-1] = tracker.snapshot if tracker else None
                else:
                    starts.append(i)
                    snaps.append(tracker.snapshot if tracker else None)
        if self._first_t is None:
            self._first_t = float(t_a[0])
        self._last = (int(cols.boot[-1]), int(cols.seq[-1]), float(t_a[-1]), float(p_a[-1]))
        self._last_t = float(t_a[-1])
        self.frames += n
        sid, table = _reign(starts, snaps, n)
        rest = self._estimates(cols.take(slice(taught, n)), sid[taught:], table)
        self._teach(cols, feats, taught, n, rest)
        est = Estimates.concat([*parts, rest]) if parts else rest
        out.estimates = est
        self._warn(cols, est, out, changes)
        self._send_fence(cols, sid, table, out, changes)
        self._faults(cols, out)
        if self.segmenter is not None:
            self._strokes(cols, out)
        for column, values in zip(self._history, (t_a, p_a, f_a), strict=True):
            column.extend((values[-HISTORY:] if n > HISTORY else values).tolist())

    def _untracked_s(self, cols: FrameColumns) -> np.ndarray:
        """(n,) s: per frame, the time since the last tracked frame of its boot before
        it (one not ``IMU_FAULT``: the position held), 0 for the first of a boot; for a
        gap frame, how long the roller was not followed."""
        held = (cols.flags & _HELD) != 0
        n = len(cols)
        idx = np.arange(n)
        last = np.where(~held, idx, -1)
        before = np.concatenate([[-1], np.maximum.accumulate(last)[:-1]])
        prev_t = np.where(before >= 0, cols.t[np.maximum(before, 0)], np.nan)
        prev_boot = np.where(before >= 0, cols.boot[np.maximum(before, 0)], -1)
        if self._tracked is not None:
            prev_t = np.where(before >= 0, prev_t, self._tracked[1])
            prev_boot = np.where(before >= 0, prev_boot, self._tracked[0])
        if (~held).any():
            k = int(np.flatnonzero(~held)[-1])
            self._tracked = (int(cols.boot[k]), float(cols.t[k]))
        return np.where(prev_boot == cols.boot, np.nan_to_num(cols.t - prev_t), 0.0)

    def _estimates(self, cols: FrameColumns, sid: np.ndarray, snaps: list[Snapshot]
                   ) -> Estimates:
        active = (sid >= 0) & ((cols.flags & _CONTACT) != 0) & ((cols.flags & _FAULT) == 0)
        p = np.where(active, cols.position, np.nan)
        return evaluate(snaps, np.maximum(sid, 0), p, cols.t, self.policy.approach_m)

    # -- pieces -------------------------------------------------------------------
    def _start_tracker(self, position_m: float, t: float) -> SpineTracker:
        mean, sd = self.user.prior(self.body)
        return SpineTracker(self.body, mean - position_m, sd, self.signature, t)

    def _press(self, out: Update, tracker: SpineTracker | None, t: np.ndarray,
               position: np.ndarray, flags: np.ndarray) -> bool:
        """A BUTTON frame (the last of the arrays: the frames before it are the hold):
        a calibration landmark? Returns whether the belief changed."""
        now = float(t[-1])
        what, message = self.calibration.press(t, position, flags)
        out.events.append(Event(EventKind.CALIBRATION, now, None, message))
        if what != "done" or tracker is None:
            return False
        cal = self.calibration.result
        assert cal is not None
        # Pool the measured span with what was known (the population, or earlier
        # calibrations).
        self.span = self.user.pooled_span(cal.span_m)
        span = self.span[0]
        body = self.body = BodyModel.from_stature(self.user.stature_m).with_thoracic_span(span)
        tracker.forget_top(now)  # (with the body the bound was taken in)
        tracker.set_body(body, now)
        tracker.observe_landmark(cal.top.position_m, float(body.position_at(TOP_LEVEL)), now)
        tracker.observe_landmark(cal.bottom.position_m, float(body.position_at(BOTTOM_LEVEL)),
                                 now)
        self.calibrated_at = now
        # Two landmarks of LANDMARK_SD_M each place the zero to LANDMARK_SD_M / sqrt(2);
        # slip then widens it until it reaches LEARN_SD_M.
        self.anchored_until = now + (LEARN_SD_M**2 - LANDMARK_SD_M**2 / 2.0) \
            / SLIP_DIFFUSION_M2_S
        self.first_contact_level = float(body.level_at(tracker.mean_m))
        # The first relearn a full RELEARN_EVERY_S later: a signature of the few frames
        # of the bottom hold, extrapolated over the whole back, would pull the estimate
        # off its place.
        self._learned_at = now
        return True

    def _teach(self, cols: FrameColumns, feats: _Features, first: int, stop: int,
               est: Estimates) -> None:
        """Keep frames first..stop-1 of the batch to teach the signature: those after
        the calibration whose place on the back was sure (``est``: their estimates, rows
        0.. for frame ``first``)."""
        if self.calibrated_at is None or stop <= first:
            return
        t = cols.t[first:stop]
        use = (t >= self.calibrated_at) & (t < self.anchored_until) & (est.sd_m <= LEARN_SD_M)
        use &= np.isfinite(est.level)
        if feats.complete is not None:  # (a live batch: as it was worked out)
            f = feats.complete[first:stop]
            use &= np.isfinite(f[:, 0])
            level, f = est.level[use], f[use]
        else:
            idx = np.flatnonzero(use)
            f = feats.rows(idx + first)
            ok = np.isfinite(f[:, 0])
            level, f = est.level[idx[ok]], f[ok]
        if len(level):
            rows = self._learn_rows
            rows[0].extend(level.tolist())
            rows[1].extend(f[:, 0].tolist())
            rows[2].extend(f[:, 1].tolist())

    def _fold_learning(self) -> None:
        rows = self._learn_rows
        if rows[0]:
            self.learning.add(np.array(rows[0]), np.column_stack([rows[1], rows[2]]))
            self._learn_rows = [[], [], []]

    @staticmethod
    def _compile(own: Signature) -> CompiledSignature | None:
        """The signature to match: the user's own once anything is learned, else None."""
        return own.compiled() if own.known else None

    def _relearn(self, t: float, tracker: SpineTracker) -> None:
        self._learned_at = t
        self._fold_learning()
        sig = Signature()
        sig.merge(self.user.signature)
        sig.merge(self.learning)
        if sig.known:
            self.signature = self._compile(sig)
            tracker.set_signature(self.signature)

    def _policy_now(self) -> WarningPolicy:
        """The warning policy in force: the usual one for a calibrated user; for one
        with no calibration the conservative one (``WarningPolicy.uncalibrated``) until
        a calibration. A top of the back that the prior's place allows does not earn
        the usual one: it can show a person lying lower than the prior says only if
        she rolls up near the shoulders, and one who turns short of them reaches the
        same top (a first contact at T11.5 turning at T5 looks like one at T8.5 turning
        at T2: docs/benchmarks.md, issue 17)."""
        return self.policy if self.calibrated else self.policy.uncalibrated()

    def _warn(self, cols: FrameColumns, est: Estimates, out: Update,
              changes: list[tuple[int, WarningPolicy]]) -> None:
        """Warn frame by frame by the policy in force: ``changes`` gives (first frame,
        policy from it), the first at frame 0."""
        active = ((cols.flags & _CONTACT) != 0) & ((cols.flags & _FAULT) == 0)
        cuts = [k for k, _ in changes] + [len(cols)]
        for (a, policy), b in zip(changes, cuts[1:], strict=True):
            self.warner.policy = policy
            if b > a:
                for t, cue in self.warner.feed_columns(cols.t[a:b], est.p_below_ribs[a:b],
                                                       est.p_near[a:b], active[a:b]):
                    out.cues.append((t, cue))

    def _send_fence(self, cols: FrameColumns, sid: np.ndarray, table: list[Snapshot],
                    out: Update, changes: list[tuple[int, WarningPolicy]]) -> None:
        """The roller's fence follows the belief (one value per snapshot) and the policy
        in force (``changes``, as ``_warn``'s), sent at most every ``fence_every_s`` and
        only when it moved by more than ``fence_step_m``, from frames with a body on
        the roller."""
        pol = self.policy
        active = ((cols.flags & _CONTACT) != 0) & ((cols.flags & _FAULT) == 0) & (sid >= 0)
        idx = np.flatnonzero(active)
        if not len(idx):
            return
        s_act, t_act = sid[idx], cols.t[idx]
        which = np.searchsorted(np.array([k for k, _ in changes]), idx, side="right") - 1
        key = s_act * len(changes) + which
        cut = np.flatnonzero(np.diff(key)) + 1
        starts, stops = [0, *cut.tolist()], [*cut.tolist(), len(idx)]
        sent = self._fence_sent
        if len(starts) > 4:
            firsts = np.array(starts)
            fences = roller_fences([table[k] for k in s_act[firsts].tolist()],
                                   [changes[k][1] for k in which[firsts].tolist()])
        else:  # (a live batch's one or two beliefs)
            fences = [roller_fence(table[int(s_act[a])], changes[int(which[a])][1])
                      for a in starts]
        for a, b, fence in zip(starts, stops, fences, strict=True):
            if sent is not None and abs(fence - sent[0]) <= pol.fence_step_m:
                continue
            k = a if sent is None else a + int(
                t_act[a:b].searchsorted(sent[1] + pol.fence_every_s))
            if k < b:
                sent = (fence, float(t_act[k]))
                out.fence = (fence, pol.fence_hysteresis_m, pol.approach_m)
        self._fence_sent = sent

    def _faults(self, cols: FrameColumns, out: Update) -> None:
        faulted = ((cols.flags & _CONTACT) != 0) & ((cols.flags & _FAULT) != 0)
        before = np.concatenate([[self._fault_since is not None], faulted[:-1]])
        for k in np.flatnonzero(faulted != before).tolist():
            t = float(cols.t[k])
            if faulted[k]:
                self._fault_since = t
            else:
                self._close_fault(t, out)

    def _uncalibrated_event(self, end_t: float) -> Event:
        """The time analysed with no calibration: to the calibration, or to ``end_t``."""
        assert self._first_t is not None
        if self.calibrated_at is not None:
            return Event(EventKind.UNCALIBRATED, self._first_t, self.calibrated_at,
                         "uncalibrated until the calibration: the warning and the roller's "
                         "fence kept a wider margin", 0.0)
        return Event(EventKind.UNCALIBRATED, self._first_t, end_t,
                     "uncalibrated session: the warning and the roller's fence kept a wider "
                     f"margin; {UNCALIBRATED_NOTE}", 1.0)

    def _close_fault(self, t: float, out: Update) -> None:
        assert self._fault_since is not None
        out.events.append(Event(EventKind.FAULT, self._fault_since, t,
                                "the roller lost its position (IMU fault)"))
        self._fault_since = None

    def _strokes(self, cols: FrameColumns, out: Update) -> None:
        decided = self.segmenter.step_columns(  # type: ignore[union-attr]
            cols.t, cols.position, cols.velocity, cols.total_load, cols.flags, cols.boot)
        for t, got in decided:
            self._segments(got, out, t)

    def _segments(self, found: Iterable[Stroke | Dwell], out: Update, t: float) -> None:
        for item in found:
            if isinstance(item, Stroke):
                item = self._with_regions(item)
                self.warner.stroke(item)
                out.strokes.append(item)
                out.decided_t.append(t)
            else:
                out.dwells.append(item)

    def _with_regions(self, stroke: Stroke) -> Stroke:
        tracker = self.tracker
        if tracker is None:
            return stroke
        ends = np.array(sorted((stroke.start_m, stroke.end_m))) + tracker.mean_m
        lo, hi = self.body.level_at(ends).tolist()  # type: ignore[union-attr]
        a, b = Region.at_level(lo), Region.at_level(hi)
        regions = tuple(Region(r).label for r in range(a, b + 1))
        return Stroke(stroke.index, stroke.start_t, stroke.end_t, stroke.direction,
                      stroke.start_m, stroke.end_m, stroke.peak_speed_m_s,
                      stroke.mean_speed_m_s, stroke.mean_load_n, stroke.max_load_n, regions)

    # -- results ------------------------------------------------------------------
    def learned_model(self) -> UserModel:
        """The user model after this session: the same one unless it was calibrated."""
        if self.calibrated_at is None or self.span is None:
            return self.user
        self._fold_learning()
        user = UserModel.from_json(self.user.to_json())
        user.learn_calibration(self.span[0], self.span[1], self.first_contact_level,
                               self.learning)
        return user


def _runs(cuts: np.ndarray, n: int) -> list[tuple[int, int]]:
    """[lo, hi) runs of 0..n split before each index in ``cuts``."""
    edges = [0, *(int(c) for c in cuts if 0 < c < n), n]
    return list(zip(edges[:-1], edges[1:], strict=True))


def _new_tops(p: np.ndarray, valid: np.ndarray, cuts: np.ndarray, highest: float
              ) -> tuple[np.ndarray, float]:
    """Valid frames whose roller position ``p`` (m) is higher (smaller) than every valid
    frame's before it since the last cut (a re-zero, a reboot: new coordinates), the
    frames before the batch included (``highest``: their smallest position, m; inf:
    none). Returns the (n,) bool mask and the smallest position for the next batch.
    The same frames whatever the batches (``SpineTracker.observe_top`` keeps the
    bound)."""
    q = np.where(valid, p, np.inf)
    out = np.zeros(len(p), bool)
    for lo, hi in _runs(np.flatnonzero(cuts), len(p)):
        if cuts[lo]:
            highest = math.inf
        run = q[lo:hi]
        before = np.minimum.accumulate(np.concatenate([[highest], run]))
        out[lo:hi] = run < before[:-1]
        highest = float(before[-1])
    return out, highest


def _reign(starts: list[int], snaps: list[Snapshot | None], n: int
           ) -> tuple[np.ndarray, list[Snapshot]]:
    """Per frame 0..n-1 the index of the snapshot in force (-1: no tracker) into the
    returned list of snapshots."""
    table = [s for s in snaps if s is not None]
    index, k = [], 0
    for s in snaps:
        index.append(k if s is not None else -1)
        k += s is not None
    run = np.diff(np.array([*starts, max(n, starts[-1])]))
    sid = np.repeat(np.array(index, dtype=np.intp), run)[:n]
    return sid, table


class _Features:
    """A batch's signature features, (n, 2) (``features_array``; NaN: unusable, as are
    frames whose zone loads were ``stale``, held rather than measured: no look, no
    lesson), worked out only for the frames asked for: the looks and the lessons need
    a few of a long batch's frames. Each frame's features are its own zone loads'
    alone, so they are the same bits whichever frames are worked out together."""

    def __init__(self, zone_loads: np.ndarray, stale: np.ndarray) -> None:
        self._zone_loads = zone_loads
        n = len(zone_loads)
        self.complete: np.ndarray | None = None
        """All frames' features, when worked out at once (a live batch); else None."""
        if n <= 16:  # (the live path: all at once, frame by frame in Python)
            self._f = self.complete = _features(zone_loads)
        else:
            self._f = np.full((n, 2), math.nan)
            self._known = stale.copy()
        self._f[stale] = math.nan

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), 2): the features of frames ``idx``."""
        if self.complete is not None:
            return self.complete[idx]
        need = idx[~self._known[idx]]
        if len(need):
            self._f[need] = features_array(self._zone_loads[need])
            self._known[need] = True
        return self._f[idx]

    def usable(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx),) bool: frames ``idx`` have usable features."""
        return np.isfinite(self.rows(idx)[:, 0])

    def at(self, i: int) -> tuple[float, float]:
        """The features of frame ``i``."""
        f = self.rows(np.array([i]))[0] if self.complete is None and not self._known[i] \
            else self._f[i]
        return float(f[0]), float(f[1])


def _features(zone_loads: np.ndarray) -> np.ndarray:
    """(n, 2) signature features (NaN rows unusable): per frame in Python for a few
    frames (the live path), vectorised for many (the same formulas)."""
    if len(zone_loads) > 16:
        return features_array(zone_loads)
    rows = [load_features(z) or (math.nan, math.nan) for z in zone_loads.tolist()]
    return np.array(rows, dtype=float).reshape(-1, 2)


def analyze(frames: FrameColumns | Sequence[Frame], user: UserModel,
            policy: WarningPolicy | None = None, segmenter: Segmenter | None = None
            ) -> tuple[Update, SessionAnalyzer]:
    """The offline pass: a whole session's frames through the same analysis, in (boot,
    seq) order; returns everything it produced and the analyzer (for its model)."""
    cols = frames if isinstance(frames, FrameColumns) else FrameColumns.from_frames(frames)
    analyzer = SessionAnalyzer(user, policy, segmenter)
    out = analyzer.feed_columns(cols.sorted())
    out.extend(analyzer.finish())
    return out, analyzer
