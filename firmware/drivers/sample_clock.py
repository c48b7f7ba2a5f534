"""The IMU's sample clock against the loop clock: which sample the part made when.

The part makes its samples on a grid of its own clock: sample ``i`` at loop time
``t`` with ``f(t) = i``, where ``f(t) = f0 + (t - t0) * ratio * rate`` is the fractional
sample index at loop time ``t`` (the newest sample made by ``t`` is ``floor(f(t))``).
The grid runs on while the FIFO is reset or re-enabled (register map 4.2: the Sample
Rate comes from the gyro output rate alone); only a re-configuration (``reset``) starts a
new one.

Every FIFO count read is an observation: sample ``last`` the newest made, read between
loop times ``t_before`` and ``t_after``, so ``f(t_after) >= last`` and ``f(t_before) < last + 1``.
The observations bound the grid's phase ``f0`` to an interval, whose middle is the
estimate. The interval widens as time passes by the rate's possible error
(``RATE_TOLERANCE`` before any rate is known, ``ASSUMED_ERROR`` for an assumed ratio,
``COUNTED_SAMPLES`` over the span for a counted one, at least ``COUNTED_ERROR``); an
observation outside it starts it afresh. The rate ``ratio`` (sensor clock / nominal) is the slope of
a least-squares line through all the observations (sample index against loop time; each
grid its own offset, one slope for all): a FIFO restart does not forget it, the index's
whole-sample steps average out, and over a long session it is good to far better than a
sample over the whole span.

A FIFO restarted on the same grid gets its first sample's index from the grid
(``restart_index``): the whole index that best fits the phase interval at the FIFO's
enable and at its first count read, not a loop-time estimate rounded. It misses by one
only when the phase is in doubt across a whole-sample boundary at both (39 of 1,493
restarts over 600 s of the fault soak; the rounding missed 692 of 1,399); drains that
keep the same phase to the samples for seconds (a loop without jitter at a rate close
to a multiple of the sample rate) keep the interval wide.
"""

from __future__ import annotations

import math

RATE_MIN_SPAN_S = 1.0
"""Loop time of observations before the counted rate replaces the assumed one, s."""
RATE_TOLERANCE = 0.02
"""Sanity bound on the rate ratio's distance from 1 (clocks are good to ~1 %)."""
ASSUMED_ERROR = 1e-3
"""Possible error of an assumed (stored) ratio: the clock moves as the die warms."""
COUNTED_ERROR = 1e-4
"""Least possible error of a counted ratio (the clock wanders)."""
COUNTED_SAMPLES = 0.3
"""Possible error of a counted ratio, samples over its span (a line through ~50
observations a second, each off by up to a sample)."""


class SampleClock:
    """The sample grid of one part: phase and rate against the loop clock.

    rate_hz: nominal sample rate, Hz.
    """

    def __init__(self, rate_hz: float) -> None:
        self.rate_hz = rate_hz
        self.ratio = 1.0
        """Sensor clock rate / nominal."""
        self.assumed_span_s = 0.0
        """Span of the counted rate an assumed ratio stands for, s (0: none assumed)."""
        self._t0 = 0.0  # loop time of the anchor, s
        self._f0 = -1.0  # fractional sample index at the anchor
        self._lo = -math.inf  # bounds on _f0 from the observations
        self._hi = math.inf
        self._origin: tuple[float, int] | None = None  # this grid's first observation
        self._sums = [0.0] * 5  # this grid's n, sum t, sum i, sum t^2, sum t i (from origin)
        self._sxx = 0.0  # the earlier grids' centred sums: t^2, s^2
        self._sxy = 0.0  # t i, samples * s
        self._span = 0.0  # their observations' loop time, s
        self._t_last = 0.0  # loop time of this grid's latest observation (from origin), s
        self._counted = False  # the ratio is counted (not assumed, nor the nominal 1)

    # -- the grid ---------------------------------------------------------------------
    def index_at(self, t: float) -> float:
        """Fractional sample index at loop time ``t`` (s): the newest sample made is its
        floor."""
        return self._f0 + (t - self._t0) * self.ratio * self.rate_hz

    def reset(self, t: float, first_index: int) -> None:
        """A new grid (the part re-configured): its first sample ``first_index`` comes
        within a period after loop time ``t`` (s); the counted rate is kept."""
        self._fold()
        self._t0, self._f0 = t, first_index - 0.5
        self._lo, self._hi = first_index - 1.0, float(first_index)

    def restart_index(self, enabled: tuple[float, float], t_before: float, t_after: float,
                      frames: int, not_before: int) -> int:
        """Index of the first of ``frames`` samples in a FIFO restarted on this grid: the
        FIFO enabled between the loop times ``enabled`` (s), its count read between
        ``t_before`` and ``t_after`` (s). The one that fits the phase interval best (the
        sample before it made before the enable, the newest made by the count read), at
        least ``not_before``."""
        self._move(t_after)
        guess = math.floor(self._f0) - frames + 1
        best, best_fit = max(guess, not_before), -math.inf
        for first in range(max(guess - 1, not_before), max(guess + 2, not_before + 1)):
            lo, hi = self._bounds(t_before, t_after, first + frames - 1)
            lo_en, hi_en = self._bounds(enabled[0], enabled[1], first - 1)
            fit = min(hi, hi_en, self._hi) - max(lo, lo_en, self._lo)
            if fit > best_fit:
                best, best_fit = first, fit
        return best

    def observe(self, t_before: float, t_after: float, last: int) -> None:
        """Sample ``last`` was the newest made when the count was read between loop
        times ``t_before`` and ``t_after`` (s)."""
        # (``_move(t_after)``'s step, ``_bounds`` and ``_fit`` written out, their arithmetic as
        # theirs: once a drain, on a Pi Zero)
        rate, ratio, dt = self.rate_hz, self.ratio, t_after - self._t0
        step = dt * ratio * rate
        widen = self._ratio_error() * rate * abs(dt)
        old_lo, old_hi = self._lo + (step - widen), self._hi + (step + widen)
        self._t0 = t_after
        per_s = ratio * rate
        lo, hi = last - (t_after - t_after) * per_s, last + 1 - (t_before - t_after) * per_s
        if lo > old_hi or hi < old_lo:  # the grid moved: start the interval afresh
            self._lo, self._hi = lo, hi
        else:
            self._lo = old_lo if old_lo > lo else lo  # (max(lo, old_lo), min(hi, old_hi))
            self._hi = old_hi if old_hi < hi else hi
        self._f0 = (self._lo + self._hi) / 2
        # (``_fit``)
        origin = self._origin
        if origin is None:
            origin = self._origin = ((t_before + t_after) / 2, last)
        t = (t_before + t_after) / 2 - origin[0]
        i = float(last - origin[1])
        sums = self._sums  # n, t, i, t^2, t i
        n = sums[0] = sums[0] + 1.0
        st = sums[1] = sums[1] + t
        si = sums[2] = sums[2] + i
        stt = sums[3] = sums[3] + t * t
        sti = sums[4] = sums[4] + t * i
        self._t_last = t
        sxx, sxy = self._sxx + stt - st * st / n, self._sxy + sti - st * si / n  # (_centred)
        minimum = self.assumed_span_s if self.assumed_span_s > RATE_MIN_SPAN_S \
            else RATE_MIN_SPAN_S
        if self._span + t >= minimum and sxx > 0.0:
            ratio = sxy / sxx / rate
            if abs(ratio - 1.0) < RATE_TOLERANCE:
                self.ratio = ratio
                self.assumed_span_s = 0.0
                self._counted = True

    @property
    def span_s(self) -> float:
        """Loop time the rate was counted over, all grids together, s."""
        return self._span + self._t_last

    # -- the rate -------------------------------------------------------------------------
    def _ratio_error(self) -> float:
        """How far ``ratio`` may be off (fraction)."""
        if self._counted:
            return max(COUNTED_ERROR, COUNTED_SAMPLES / (self.span_s * self.rate_hz))
        return ASSUMED_ERROR if self.assumed_span_s else RATE_TOLERANCE

    def _centred(self) -> tuple[float, float]:
        """Centred sums t^2 (s^2) and t i (samples * s), all grids so far."""
        n, st, si, stt, sti = self._sums
        if n == 0.0:
            return self._sxx, self._sxy
        return self._sxx + stt - st * st / n, self._sxy + sti - st * si / n

    # -- internals ----------------------------------------------------------------------
    def _bounds(self, t_before: float, t_after: float, last: int) -> tuple[float, float]:
        """Interval of the anchor's index for sample ``last`` newest between the times."""
        per_s = self.ratio * self.rate_hz
        return last - (t_after - self._t0) * per_s, last + 1 - (t_before - self._t0) * per_s

    def _move(self, t: float) -> None:
        """Re-anchor at loop time ``t`` (s), widening the phase interval with time."""
        step = (t - self._t0) * self.ratio * self.rate_hz
        widen = self._ratio_error() * self.rate_hz * abs(t - self._t0)
        self._f0 += step
        self._lo += step - widen
        self._hi += step + widen
        self._t0 = t

    def _fold(self) -> None:
        """Add this grid's line to the earlier grids' and forget its observations."""
        self._sxx, self._sxy = self._centred()
        self._span += self._t_last
        self._origin, self._sums, self._t_last = None, [0.0] * 5, 0.0


__all__ = ["SampleClock"]
