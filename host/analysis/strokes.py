"""Stroke segmentation: the position stream -> strokes and dwells, online.

A stroke is one movement of the roller in one direction, from a turning point (a
reversal, or the point where it left stillness) to the next (a reversal, or the point
where it came to rest). ``StrokeSegmenter`` is fed frames one at a time, in seq order,
and hands back each ``Stroke`` as soon as its end is decided, and each ``Dwell`` (the
roller held still for ``dwell_s`` or longer) when it ends. ``segment`` runs the very
same state machine over a whole session's arrays, so the offline strokes are the online
ones, frame for frame. docs/algorithms.md ("Strokes") explains the choices.

How a stroke's end is decided (``StrokeParams`` holds the figures):

- *Stop*: the speed (the frame's gyro velocity) stays below ``still_speed_m_s`` for
  ``still_s``. A minimum-jerk movement creeps into its end, so this fires at (often
  just before) the turning point, however slowly the next movement starts.
- *Reversal*: the position has come back ``reversal_m`` from the stroke's extreme.
  This decides quick turnarounds, where the roller never rests long enough for a
  stop; ``reversal_m`` is larger than the back-and-forth the roller makes when the
  back slips over it mid-stroke (up to ~5 mm), so a slip does not split a stroke.

From rest, a stroke begins once the position has moved ``onset_m`` from the last
turning point of its jitter (breathing, sensor noise, the 0.1 mm quantisation of the
wire), which ``jitter_m`` filters out; it starts at that turning point. Movements
shorter than ``min_amplitude_m`` are not strokes.

A stroke never spans a break: a frame out of contact, an IMU fault, a jump in sensor
time over ``max_gap_s`` (IMU samples lost for longer), a new boot. A shorter IMU gap
(``IMU_GAP``: a few samples lost, the turn over them taken from gravity by the roller,
good to a millimetre) does not break a stroke, as a clipped gyro does not: on a bus
that fails now and then, breaking at each one broke nearly every stroke. The movement
under way at a break is dropped (its end or its start was not seen), and after it the
first stroke starts at the first turning point or rest. A ``ZEROED`` frame moves the
position's origin: the segmenter carries its state over to the new origin (the jump,
less the distance the velocity accounts for, is the shift), so the zeroing makes no
stroke; the stroke it falls in is reported in the new origin.

Times are sensor time (``Frame.t``, s), positions the frame's (m from the zero, + toward
the feet), speeds m/s, loads N (``Frame.total_load``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from firmware.protocol import Frame, FrameFlag
from host.analysis.model import Dwell, Stroke

__all__ = ["StrokeParams", "StrokeSegmentation", "StrokeSegmenter", "segment",
           "segment_frames"]

_IN_CONTACT = int(FrameFlag.IN_CONTACT)
_LOST = int(FrameFlag.IMU_FAULT | FrameFlag.IMU_INCONSISTENT)  # position not tracked
_ZEROED = int(FrameFlag.ZEROED)

_OFF, _MOVING, _STILL = 0, 1, 2
_EMPTY: tuple[Stroke | Dwell, ...] = ()
_TRIM_AT = 8192  # frames kept in the window before old ones are dropped
BULK_MIN = 64
"""``step_columns`` looks for stretches to take at once in batches longer than this
(frames); the live path's batches of a few frames go frame by frame."""
_RUN_MIN = 8  # frames a stretch must have ahead for _take_run to be worth its numpy calls
_RUN_WINDOW = 256  # frames _take_run looks at in one go


@dataclass(frozen=True, slots=True)
class StrokeParams:
    """The segmenter's figures (SI units).

    min_amplitude_m: shorter movements are not strokes (jitter, shifts of the hips).
    reversal_m: coming back this far from a stroke's extreme decides a reversal
        (more than a slip of the back makes the roller come back mid-stroke).
    quick_reversal_m: ... or this far, when the movement slowed down gradually into
        the turn (see ``gradual_fraction``).
    onset_m: moving this far from rest starts a stroke (above breathing's 0.6-1.4 mm).
    jitter_m: back-and-forth below this is noise (the turning points of jitter).
    still_speed_m_s: slower than this is at rest.
    still_s: at rest this long after a gradual slow-down: the movement has ended.
    long_still_s: ... and this long after an abrupt one.
    gradual_fraction: a slow-down is gradual when the speed fell from half its peak to
        the end over at least this fraction of the movement's duration.
    dwell_s: at rest this long: a dwell.
    max_gap_s: a jump in sensor time longer than this (frames lost) is a break.
    """

    min_amplitude_m: float = 0.005
    reversal_m: float = 0.006
    quick_reversal_m: float = 0.0025
    onset_m: float = 0.002
    jitter_m: float = 0.0003
    still_speed_m_s: float = 0.004
    still_s: float = 0.10
    long_still_s: float = 0.20
    gradual_fraction: float = 0.1
    dwell_s: float = 1.5
    max_gap_s: float = 0.1

    def __post_init__(self) -> None:
        for name in ("min_amplitude_m", "reversal_m", "quick_reversal_m", "onset_m",
                     "jitter_m", "still_speed_m_s", "still_s", "long_still_s",
                     "gradual_fraction", "dwell_s", "max_gap_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"StrokeParams.{name}: expected a positive number, got {value!r}")
        if not self.jitter_m < self.onset_m <= self.quick_reversal_m <= self.reversal_m:
            raise ValueError("StrokeParams: expected jitter_m < onset_m <= quick_reversal_m "
                             "<= reversal_m")
        if not self.still_s <= self.long_still_s:
            raise ValueError("StrokeParams: expected still_s <= long_still_s")


class StrokeSegmenter:
    """Online segmentation of frames into strokes and dwells.

    ``push(frame)`` (frames of one roller in seq order) returns the strokes and dwells
    decided at that frame, usually none. ``flush()`` ends the session: it closes a dwell
    in progress (a movement in progress is dropped, its end unknown). Frames whose sensor
    time does not advance (duplicates, late backfill) are skipped and counted in
    ``skipped``. Cost: a few microseconds a frame.
    """

    def __init__(self, params: StrokeParams | None = None) -> None:
        self.params = params or StrokeParams()
        p = self.params
        self._min_amp, self._onset, self._jit = p.min_amplitude_m, p.onset_m, p.jitter_m
        self._rev, self._rev_quick = p.reversal_m, p.quick_reversal_m
        self._vstill, self._tstill, self._tstill_long = (p.still_speed_m_s, p.still_s,
                                                         p.long_still_s)
        self._fgrad = p.gradual_fraction
        self._dwell_s, self._max_gap = p.dwell_s, p.max_gap_s
        self.skipped = 0
        self._strokes = 0  # strokes emitted so far (the next index)
        self._boot: int | None = None
        self._last_t = -math.inf  # sensor time of the last frame taken, s
        self._prev_x = 0.0  # position of the last usable frame, internal origin, m
        self._shift = 0.0  # internal position - frame position, m (moved by zeroing)
        # the window of recent usable frames: absolute index = _base + list index
        self._t: list[float] = []
        self._x: list[float] = []
        self._v: list[float] = []
        self._load: list[float] = []
        self._base = 0
        self._restart(0, 0.0, 0.0)
        self._mode = _OFF

    # -- public ------------------------------------------------------------------------
    def push(self, frame: Frame) -> tuple[Stroke | Dwell, ...]:
        """Take the next frame; return what it decided (strokes and dwells, in order)."""
        return self.step(frame.t, frame.position, frame.velocity, frame.total_load,
                         int(frame.flags), frame.boot)

    def push_many(self, frames: Iterable[Frame]) -> list[Stroke | Dwell]:
        """Take a batch of frames (as they arrive over Bluetooth); return what they decided."""
        out: list[Stroke | Dwell] = []
        for f in frames:
            got = self.step(f.t, f.position, f.velocity, f.total_load, int(f.flags), f.boot)
            if got:
                out.extend(got)
        return out

    def flush(self) -> tuple[Stroke | Dwell, ...]:
        """End of the stream: close the dwell in progress; drop a movement in progress."""
        return self._break()

    def step_columns(self, t: Sequence[float] | np.ndarray, position: Sequence[float] | np.ndarray,
                     velocity: Sequence[float] | np.ndarray, load: Sequence[float] | np.ndarray,
                     flags: Sequence[int] | np.ndarray, boot: Sequence[int] | np.ndarray
                     ) -> list[tuple[float, tuple[Stroke | Dwell, ...]]]:
        """Frames as columns (units as ``step``'s), the same as a ``step`` per frame;
        returns (t, what it decided) for each frame that decided anything, in order.

        The frames an offline pass spends its time on (the same boot, in contact,
        tracked, not zeroed, the next in time within the gap) take a short path here;
        every other frame goes through ``step``. In a batch of more than ``BULK_MIN``
        frames, a stretch of such frames along which a stroke only advances (moving,
        each frame as far as the one before or further) is taken at once in numpy
        (``_take_run``): nothing is decided in it."""
        n = len(t)
        bulk = n > BULK_MIN
        if bulk:
            arrays = _RunColumns.of(t, position, velocity, load, flags, boot, self.params)
            t, position, velocity, load, flags, boot = arrays.lists()
            cand, plain = arrays.candidates, arrays.plain
        else:
            t, position, velocity, load, flags, boot = (
                c.tolist() if isinstance(c, np.ndarray) else c
                for c in (t, position, velocity, load, flags, boot))
        out: list[tuple[float, tuple[Stroke | Dwell, ...]]] = []
        ts, xs, vs, loads = self._t, self._x, self._v, self._load  # cleared, never replaced
        advance, step, isfinite, max_gap = self._advance, self.step, math.isfinite, self._max_gap
        mask = _IN_CONTACT | _LOST | _ZEROED
        if not n == len(position) == len(velocity) == len(load) == len(flags) == len(boot):
            raise ValueError("step_columns: the columns must have the same length")
        k = 0
        while k < n:  # (by index: the stretches taken at once are stepped over)
            tk, pk, vk, fk, bk = t[k], position[k], velocity[k], flags[k], boot[k]
            last = self._last_t
            if (fk & mask != _IN_CONTACT or bk != self._boot or self._mode == _OFF
                    or not tk > last or tk - last > max_gap
                    or not isfinite(pk) or not isfinite(vk)):
                got = step(tk, pk, vk, load[k], fk, bk)
            else:
                self._last_t = tk
                x = pk + self._shift
                self._prev_x = x
                i = self._base + len(ts)
                ts.append(tk)
                xs.append(x)
                vs.append(vk)
                loads.append(load[k])
                got = advance(i, tk, x, vk)
                if len(ts) > _TRIM_AT:
                    self._trim()
            if got:
                out.append((tk, got))
            elif bulk and cand[k] and self._mode == _MOVING and self._dir != 0 \
                    and self._md == self._dir and self._me_x == self._e_x \
                    and self._last_t == tk and self._boot == bk:
                k += self._take_run(arrays, k)
            elif bulk and plain[k + 1] and self._mode == _STILL and self._last_t == tk \
                    and self._boot == bk:
                k += self._take_rest(arrays, k)
            k += 1
        return out

    def _take_rest(self, cols: _RunColumns, k: int) -> int:
        """Take the frames after frame ``k`` of ``cols`` (just taken, the roller come to
        rest: ``_STILL``) as ``step`` would while they take the short path
        (``_RunColumns.plain``) and nothing starts: ``_advance``'s rest, in a loop of
        its own (no call, no attributes per frame). It stops before the frame at which
        a movement starts (``onset_m``) and before the window would need a trim; returns
        how many frames were taken."""
        plain, pl, vl, tl = cols.plain, cols.position_list, cols.velocity_list, cols.t_list
        stop = min(len(tl), k + 1 + _TRIM_AT - len(self._t))
        shift, jit, onset, vstill = self._shift, self._jit, self._onset, self._vstill
        md, me_x, me_i, ms_x, ms_i = self._md, self._me_x, self._me_i, self._ms_x, self._ms_i
        rest_i, still_t0 = self._rest_i, self._still_t0
        i = self._base + len(self._t)  # the window's index of frame j
        xs: list[float] = []
        j = k + 1
        while j < stop and plain[j]:
            x = pl[j] + shift
            # the turning points of the jitter, then whether a movement starts here (as
            # ``_advance``: then it is left to ``step``'s way, nothing changed)
            if md:
                ahead = (x - me_x) * md
                if ahead >= -jit:  # the swing goes on
                    if (x - ms_x) * md >= onset:
                        break
                    if ahead > 0:
                        me_x = x
                    me_i = i
                else:  # it turned: a swing the other way from its extreme
                    if (x - me_x) * -md >= onset:
                        break
                    ms_x, ms_i, md, me_x, me_i = me_x, me_i, -md, x, i
            elif x - me_x > jit or me_x - x > jit:
                d = 1 if x > me_x else -1
                if (x - me_x) * d >= onset:
                    break
                ms_x, ms_i, md, me_x, me_i = me_x, me_i, d, x, i
            else:
                me_i = i
            v = vl[j]
            if -vstill < v < vstill:
                rest_i = i
                if still_t0 is None:
                    still_t0 = tl[j]
            else:
                still_t0 = None
            xs.append(x)
            i += 1
            j += 1
        m = j - k - 1
        if m:
            self._md, self._me_x, self._me_i, self._ms_x, self._ms_i = md, me_x, me_i, ms_x, ms_i
            self._rest_i, self._still_t0 = rest_i, still_t0
            self._t.extend(tl[k + 1:j])
            self._x.extend(xs)
            self._v.extend(vl[k + 1:j])
            self._load.extend(cols.load_list[k + 1:j])
            self._last_t, self._prev_x = tl[j - 1], xs[-1]
        return m

    def _take_run(self, cols: _RunColumns, k: int) -> int:
        """Take the frames after frame ``k`` of ``cols`` (just taken, the movement under
        way, its jitter swing the same way, at its extreme) as ``step`` would while
        the stroke only advances: each frame calm (``_RunColumns.calm``) and as far
        along the movement as the frame before or further. Nothing is decided along
        such a stretch; returns how many frames were taken."""
        d, shift = self._dir, self._shift
        n = len(cols.t)
        a = k + 1
        stop, x_run = a, np.empty(0)
        prev = self._e_x
        while stop < n:  # windows of _RUN_WINDOW frames, until the stretch ends
            b = min(stop + _RUN_WINDOW, n)
            x = cols.position[stop:b] + shift
            before = np.concatenate([[prev], x[:-1]])
            ok = cols.calm[stop:b] & ((x >= before) if d > 0 else (x <= before))
            m = len(ok) if ok.all() else int(np.argmin(ok))
            x_run = np.concatenate([x_run, x[:m]]) if len(x_run) else x[:m]
            stop += m
            if m < len(ok):
                break
            prev = float(x[-1])
        m = stop - a
        if not m:
            return 0
        t_run = cols.t[a:stop]
        i0 = self._base + len(self._t)
        self._t.extend(cols.t_list[a:stop])
        self._x.extend(x_run.tolist())
        self._v.extend(cols.velocity_list[a:stop])
        self._load.extend(cols.load_list[a:stop])
        x_last, t_last, i_last = float(x_run[-1]), float(t_run[-1]), i0 + m - 1
        self._last_t, self._prev_x = t_last, x_last
        # the peak speed forward, and when it was last at half of it (``_advance``)
        forward = cols.velocity[a:stop] * d
        peak = np.maximum.accumulate(forward)
        np.maximum(peak, self._pk_v, out=peak)
        self._pk_v = max(self._pk_v, float(peak[-1]))
        half = np.flatnonzero(forward >= 0.5 * peak)
        if len(half):
            self._half_t = float(t_run[half[-1]])
        # the extreme: the first frame at the furthest position, if beyond the old one
        if (x_last - self._e_x) * d > 0:
            j = int(np.argmax(x_run == x_last))
            self._e_x, self._e_t, self._e_i = x_last, float(t_run[j]), i0 + j
        self._el_t, self._el_i = t_last, i_last
        self._r_x, self._r_t, self._r_i = x_last, t_last, i_last
        if (x_last - self._me_x) * d > 0:
            self._me_x = x_last
        self._me_i = i_last
        self._still_t0 = None
        if len(self._t) > _TRIM_AT:
            self._trim()
        return m

    def step(self, t: float, position: float, velocity: float, load: float, flags: int,
             boot: int = 0) -> tuple[Stroke | Dwell, ...]:
        """One frame as plain numbers (``push`` unpacks a ``Frame`` into this).

        t: sensor time, s. position: m from the zero. velocity: m/s. load: total load,
        N. flags: ``FrameFlag`` bits as an int. boot: the roller's boot id.
        """
        out = _EMPTY
        if boot != self._boot:
            out = self._break()
            self._boot = boot
            self._last_t = -math.inf
        if not t > self._last_t:
            self.skipped += 1
            return out
        gap = t - self._last_t > self._max_gap
        self._last_t = t
        if (not flags & _IN_CONTACT or flags & _LOST or not math.isfinite(position)
                or not math.isfinite(velocity)):
            return out + self._break() if self._mode != _OFF else out
        if gap or self._mode == _OFF:  # (an IMU_GAP this short was bridged from gravity)
            out = out + self._break() if self._mode != _OFF else out
            self._shift = 0.0
            x = position
        elif flags & _ZEROED:
            # The origin moved: shift so the internal position stays continuous, less
            # what the roller itself moved since the previous frame.
            x_raw = position + self._shift
            self._shift -= x_raw - self._prev_x - velocity * (t - self._t[-1])
            x = position + self._shift
        else:
            x = position + self._shift
        self._prev_x = x
        i = self._base + len(self._t)
        self._t.append(t)
        self._x.append(x)
        self._v.append(velocity)
        self._load.append(load)
        if self._mode == _OFF:
            self._restart(i, t, x)
            return out
        got = self._advance(i, t, x, velocity)
        if len(self._t) > _TRIM_AT:
            self._trim()
        return out + got if got else out

    # -- the state machine ---------------------------------------------------------------
    def _restart(self, i: int, t: float, x: float) -> None:
        """A fresh start at frame i: a movement of unknown start, direction not yet seen."""
        self._mode = _MOVING
        self._valid = False  # the current movement's start was seen
        self._dir = 0  # the current movement's direction (0: none yet)
        self._s_x, self._s_t, self._s_i = x, t, i  # where it started (last there)
        self._e_x, self._e_t, self._e_i = x, t, i  # its extreme (first reached)
        self._el_t, self._el_i = t, i  # last frame within jitter of the extreme
        self._r_x, self._r_t, self._r_i = x, t, i  # furthest back since then
        self._still_t0: float | None = None  # at rest since
        self._rest_i = i  # the last frame at rest
        self._pk_v, self._half_t = 0.0, t  # peak speed forward; last time at half of it
        # turning points of the jitter: the current swing runs from _ms to _me
        self._md = 0
        self._me_x, self._me_i = x, i  # swing's extreme (last frame there)
        self._ms_x, self._ms_i = x, i  # swing's start (last frame there)
        self._start_rest(i, t)

    def _advance(self, i: int, t: float, x: float, v: float) -> tuple[Stroke | Dwell, ...]:
        jit = self._jit
        # turning points of the jitter
        md = self._md
        if md == 0:
            if x - self._me_x > jit or self._me_x - x > jit:
                self._md = 1 if x > self._me_x else -1
                self._ms_x, self._ms_i = self._me_x, self._me_i
                self._me_x, self._me_i = x, i
            else:
                self._me_i = i
        elif (x - self._me_x) * md >= -jit:
            if (x - self._me_x) * md > 0:
                self._me_x = x
            self._me_i = i
        else:
            self._ms_x, self._ms_i = self._me_x, self._me_i
            self._md = -md
            self._me_x, self._me_i = x, i
        # at rest?
        if -self._vstill < v < self._vstill:
            self._rest_i = i
            if self._still_t0 is None:
                self._still_t0 = t
        else:
            self._still_t0 = None

        if self._mode == _STILL:
            md = self._md
            if md and (x - self._ms_x) * md >= self._onset:
                # it started when it was last at rest or at its start point, what came last
                s_i = max(self._last_near(self._ms_x, md, self._ms_i, i), self._rest_i)
                out = self._end_dwell(s_i)
                self._begin(md, self._ms_x, self._t[s_i - self._base], s_i, x, t, i)
                if self._still_t0 is not None:
                    self._still_t0 = t  # a creeping start: the rest is counted anew
                return out
            return _EMPTY

        d = self._dir
        if d == 0:
            if x - self._s_x > jit or self._s_x - x > jit:
                self._dir = 1 if x > self._s_x else -1
                self._e_x, self._e_t, self._e_i = x, t, i
                self._el_t, self._el_i = t, i
                self._r_x, self._r_t, self._r_i = x, t, i
                self._pk_v, self._half_t = 0.0, t
        else:
            forward = v * d
            if forward > self._pk_v:
                self._pk_v = forward
            if forward >= 0.5 * self._pk_v:
                self._half_t = t
            ahead = (x - self._e_x) * d
            if ahead > 0:
                self._e_x, self._e_t, self._e_i = x, t, i
                self._el_t, self._el_i = t, i
                self._r_x, self._r_t, self._r_i = x, t, i
            elif ahead >= -jit:
                self._el_t, self._el_i = t, i
                self._r_x, self._r_t, self._r_i = x, t, i
            else:
                if (x - self._r_x) * d < 0:
                    self._r_x, self._r_t, self._r_i = x, t, i
                if ahead <= -self._rev_quick and (ahead <= -self._rev
                                                  or self._gradual(self._e_t)):
                    out = self._emit()
                    # the next stroke starts where this one turned (last there)
                    self._begin(-d, self._e_x, self._el_t, self._el_i,
                                self._r_x, self._r_t, self._r_i)
                    return out
        t0 = self._still_t0
        if t0 is not None and t - t0 >= self._tstill and (
                d == 0 or t - t0 >= self._tstill_long or self._gradual(t0)):
            out = self._emit()
            self._mode = _STILL
            self._start_rest(self._e_i, self._e_t)
            # the next swing of the jitter starts here
            self._ms_x, self._ms_i = self._me_x, self._me_i
            return out
        return _EMPTY

    def _last_near(self, x0: float, d: int, first: int, last: int) -> int:
        """The last frame in [first, last] within jitter of x0, looking from x0 in
        direction d (``first`` if none after it)."""
        xs, base, jit = self._x, self._base, self._jit
        k = last
        while k > first and (xs[k - base] - x0) * d > jit:
            k -= 1
        return k

    def _gradual(self, t_end: float) -> bool:
        """Did the movement slow down gradually into its end at t_end (s)?

        True when the speed fell from half its peak over at least ``gradual_fraction``
        of the movement's duration: how a movement ends (minimum jerk: ~0.23), unlike
        a slip of the back, which stops the roller within a tenth of a second.
        """
        return t_end - self._half_t >= self._fgrad * (t_end - self._s_t)

    def _begin(self, d: int, s_x: float, s_t: float, s_i: int, e_x: float, e_t: float,
               e_i: int) -> None:
        """A movement in direction d from (s_x, s_t, s_i), its extreme so far e."""
        self._mode = _MOVING
        self._valid = True
        self._dir = d
        self._s_x, self._s_t, self._s_i = s_x, s_t, s_i
        self._e_x, self._e_t, self._e_i = e_x, e_t, e_i
        self._el_t, self._el_i = e_t, e_i
        self._r_x, self._r_t, self._r_i = e_x, e_t, e_i
        # its peak speed so far, and when it was last at half of it (frames since start)
        a = s_i - self._base
        forward = [v * d for v in self._v[a:]]
        peak = max(forward)
        self._pk_v = peak if peak > 0.0 else 0.0
        half = 0.5 * self._pk_v
        k = len(forward) - 1
        while k > 0 and forward[k] < half:
            k -= 1
        self._half_t = self._t[a + k]

    def _emit(self) -> tuple[Stroke, ...]:
        """The current movement as a stroke, if it is one."""
        amplitude = (self._e_x - self._s_x) * self._dir
        if not self._valid or self._dir == 0 or amplitude < self._min_amp:
            return _EMPTY
        a, b = self._s_i - self._base, self._e_i - self._base + 1
        loads = self._load[a:b]
        duration = self._e_t - self._s_t
        stroke = Stroke(
            index=self._strokes, start_t=self._s_t, end_t=self._e_t, direction=self._dir,
            start_m=self._s_x - self._shift, end_m=self._e_x - self._shift,
            peak_speed_m_s=max(map(abs, self._v[a:b])),
            mean_speed_m_s=amplitude / duration if duration > 0 else 0.0,
            mean_load_n=sum(loads) / len(loads), max_load_n=max(loads))
        self._strokes += 1
        return (stroke,)

    def _start_rest(self, i: int, t: float) -> None:
        """A rest (a dwell if it lasts) begins at frame i, time t."""
        self._dw_i, self._dw_t0 = i, t  # frames from _dw_i on are in the window
        self._dw_n, self._dw_sum_x, self._dw_sum_load = 0, 0.0, 0.0  # those before it

    def _end_dwell(self, last_i: int) -> tuple[Dwell, ...]:
        """Close the rest with frame ``last_i``: a dwell if it lasted ``dwell_s``."""
        a, b = self._dw_i - self._base, last_i - self._base + 1
        n = self._dw_n + max(b - a, 0)
        if not n or self._t[b - 1] - self._dw_t0 < self._dwell_s:
            return _EMPTY
        position = (self._dw_sum_x + sum(self._x[a:b])) / n - self._shift
        load = (self._dw_sum_load + sum(self._load[a:b])) / n
        return (Dwell(start_t=self._dw_t0, end_t=self._t[b - 1], position_m=position,
                      mean_load_n=load),)

    def _break(self) -> tuple[Stroke | Dwell, ...]:
        """The data broke off: close a rest, drop a movement, forget the window."""
        out = _EMPTY
        if self._mode == _STILL and self._t:
            out = self._end_dwell(self._base + len(self._t) - 1)
        self._base += len(self._t)
        self._t.clear()
        self._x.clear()
        self._v.clear()
        self._load.clear()
        self._mode = _OFF
        return out

    def _trim(self) -> None:
        """Drop frames from the window that no stroke or dwell can still use. A long rest
        keeps only its sums (and the last half of the window for the next start)."""
        base = self._base
        if self._mode == _STILL:
            keep = base + len(self._t) - _TRIM_AT // 2
            a, b = self._dw_i - base, keep - base
            if b > a:
                self._dw_n += b - a
                self._dw_sum_x += sum(self._x[a:b])
                self._dw_sum_load += sum(self._load[a:b])
                self._dw_i = keep
            if self._ms_i < keep:  # the jitter swing began before: it starts here now
                self._ms_i = keep
        else:
            keep = min(self._s_i, self._ms_i, self._e_i)
        cut = keep - base
        if cut > _TRIM_AT // 2:
            for buf in (self._t, self._x, self._v, self._load):
                del buf[:cut]
            self._base = keep


@dataclass(frozen=True, eq=False)
class _RunColumns:
    """A batch's columns for ``StrokeSegmenter.step_columns`` as numpy arrays and lists,
    with, per frame, ``plain``: the frame takes the short path if the frame before it
    was taken (the same boot, in contact, tracked, not zeroed, later in time within the
    gap, a finite position and velocity; one more entry, False, after the last frame);
    ``calm``: plain, and the roller not at rest (``still_speed_m_s`` or faster);
    ``candidates``: the ``_RUN_MIN`` frames after it are calm and their positions go
    one way (worth a ``_take_run``)."""

    t: np.ndarray
    position: np.ndarray
    velocity: np.ndarray
    calm: np.ndarray
    candidates: list[bool]
    plain: list[bool]
    t_list: list[float]
    position_list: list[float]
    velocity_list: list[float]
    load_list: list[float]
    flags_list: list[int]
    boot_list: list[int]

    @classmethod
    def of(cls, t: Sequence[float] | np.ndarray, position: Sequence[float] | np.ndarray,
           velocity: Sequence[float] | np.ndarray, load: Sequence[float] | np.ndarray,
           flags: Sequence[int] | np.ndarray, boot: Sequence[int] | np.ndarray,
           params: StrokeParams) -> _RunColumns:
        """The columns of a batch (units as ``StrokeSegmenter.step``'s)."""
        ta, pa, va = (np.asarray(c, dtype=float) for c in (t, position, velocity))
        fa, ba = np.asarray(flags, dtype=np.int64), np.asarray(boot, dtype=np.int64)
        n = len(ta)
        plain = np.zeros(n + 1, dtype=bool)  # (one more: none after the last)
        if n > 1:
            dt = ta[1:] - ta[:-1]
            plain[1:n] = ((fa[1:] & (_IN_CONTACT | _LOST | _ZEROED)) == _IN_CONTACT) \
                & (ba[1:] == ba[:-1]) & (ta[1:] > ta[:-1]) & ~(dt > params.max_gap_s) \
                & np.isfinite(pa[1:]) & np.isfinite(va[1:])
        with np.errstate(invalid="ignore"):
            calm = plain[:n] & ~((-params.still_speed_m_s < va) & (va < params.still_speed_m_s))
        ahead = np.zeros(n, dtype=bool)
        if n > _RUN_MIN:
            with np.errstate(invalid="ignore"):
                dp = pa[1:] - pa[:-1]
            # (frame k+1 as far as frame k, or further, up; or down)
            up, down = (np.concatenate([[0], np.cumsum(c)]) for c in (dp >= 0, dp <= 0))
            run = np.concatenate([[0], np.cumsum(calm[1:])])
            w = _RUN_MIN
            ahead[:n - w] = (run[w:] - run[:-w] == w) & (
                (up[w:] - up[:-w] == w) | (down[w:] - down[:-w] == w))
        return cls(ta, pa, va, calm, ahead.tolist(), plain.tolist(), ta.tolist(), pa.tolist(),
                   va.tolist(),
                   np.asarray(load, dtype=float).tolist(), fa.tolist(),
                   [int(ba[0])] * n if n and (ba == ba[0]).all() else ba.tolist())

    def lists(self) -> tuple[list[float], list[float], list[float], list[float], list[int],
                             list[int]]:
        """The columns as lists of plain numbers, in ``step``'s order."""
        return (self.t_list, self.position_list, self.velocity_list, self.load_list,
                self.flags_list, self.boot_list)


@dataclass(eq=False)
class StrokeSegmentation:
    """What a segmentation found in a session.

    strokes: the strokes, in order. dwells: the dwells, in order. decided_t: for each
    stroke, the sensor time of the frame at which the online pass decided it, s.
    """

    strokes: list[Stroke] = field(default_factory=list)
    dwells: list[Dwell] = field(default_factory=list)
    decided_t: list[float] = field(default_factory=list)

    def add(self, items: Iterable[Stroke | Dwell], t: float) -> None:
        """File what a segmenter returned for the frame at sensor time t (s)."""
        for item in items:
            if isinstance(item, Stroke):
                self.strokes.append(item)
                self.decided_t.append(t)
            else:
                self.dwells.append(item)


def segment(t: Sequence[float] | np.ndarray, position: Sequence[float] | np.ndarray,
            velocity: Sequence[float] | np.ndarray, total_load: Sequence[float] | np.ndarray,
            flags: Sequence[int] | np.ndarray, boot: Sequence[int] | np.ndarray | None = None,
            params: StrokeParams | None = None) -> StrokeSegmentation:
    """Strokes and dwells of a whole session's frame arrays (in seq order): exactly the
    online ``StrokeSegmenter``'s, by running it.

    t: sensor time, s. position: m. velocity: m/s. total_load: N. flags: ``FrameFlag``
    bits. boot: boot id per frame (None: one boot). ValueError if the lengths differ.
    """
    columns = [np.asarray(c) for c in (t, position, velocity, total_load, flags)]
    boots = np.zeros(len(columns[0]), dtype=np.int64) if boot is None else np.asarray(boot)
    if any(len(c) != len(boots) for c in columns):
        raise ValueError("segment: t, position, velocity, total_load, flags and boot "
                         "must have the same length")
    seg = StrokeSegmenter(params)
    out = StrokeSegmentation()
    step = seg.step
    rows = zip(*(c.tolist() for c in columns), boots.tolist(), strict=True)
    for tk, pk, vk, lk, fk, bk in rows:
        got = step(tk, pk, vk, lk, int(fk), bk)
        if got:
            out.add(got, tk)
    out.add(seg.flush(), math.nan)
    return out


def segment_frames(frames: Iterable[Frame], params: StrokeParams | None = None
                   ) -> StrokeSegmentation:
    """``segment`` over ``Frame`` objects (in seq order)."""
    rows = [(f.t, f.position, f.velocity, f.total_load, int(f.flags), f.boot) for f in frames]
    cols = list(zip(*rows, strict=True)) if rows else [()] * 6
    return segment(*cols[:5], boot=cols[5], params=params)
