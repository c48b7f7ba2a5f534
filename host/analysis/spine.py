"""Where on the spine the roller is: a grid filter over the roller's place on the back.

The roller measures its own position ``p`` (m from its zero, + toward the feet), not
where that is on the person. The unknown is ``b``: the place on the back (m from C7)
of the roller's zero, so that the contact is at ``x = p + b``. ``b`` is nearly constant:
the back slides over the roller now and then (a slip the roller cannot see: a slow
random walk), and a re-zero moves it by the jump in ``p``.

``SpineTracker`` keeps a probability for every ``b`` on a 1 mm grid:

- the prior: the roller first touches under the shoulder blades (the scapula's
  inferior angle, T8 +- 0.9 levels standing, one level lower lying; or this person's
  own habit learned from calibrated sessions);
- calibration landmarks: the person holds the roller at a known level (the top of the
  shoulders, the bottom of the ribs) and presses the button;
- the load signature: the features of the zone loads (``host.analysis.signature``) are
  compared with this person's learned signature at the level each ``b`` would put the
  roller on. Repeated looks at one spot are not independent, so a look is taken only
  when the roller enters a new ``LOOK_TRAVEL_M`` cell of its position (or a new
  ``LOOK_EVERY_S`` cell of time: ``look_due``) and counts with the weight
  ``LOOK_WEIGHT``;
- slip: the probability diffuses by ``SLIP_DIFFUSION_M2_S``;
- an IMU gap the roller bridged from gravity's absolute angle (``SpineTracker.bridge``):
  the roller's position is off by a bounded error that does not add up over gaps (the
  next gap's error replaces it, it fades as gyro and gravity re-lock), so it is kept
  apart from ``b``: ``evaluate`` spreads P(below) and the SD by it; a gap long enough
  for the roller to have turned more than gravity can tell is doubt about ``b`` itself
  (``diffuse``), for good.

A second belief, the guard (``SpineTracker.guard``), takes everything but the signature:
the prior, the landmarks, odometry (re-zeros) and slip. The signature may be learned in
the wrong place (a landmark held off, slips while it was taught), and then it holds the
tracker there with a small SD; the guard cannot be fooled that way. The warning follows
whichever of the two puts the roller nearer the lumbar spine, and the reported SD takes
in their disagreement (``evaluate``). The signature's error is common to all its looks
(taught in one posture, from landmarks held off), so the reported belief takes its pull
on the guard as at most one observation of ``SIGNATURE_BIAS_SD_M`` (``_bias_floor``),
and a look reshapes the belief only within the guard's window (``GUARD_WINDOW_SD``): the
signature alone cannot make or feed a mode where the guard all but rules the place out.

Every change of the belief is a ``Snapshot``; ``evaluate`` turns snapshots and roller
positions into per-frame estimates (level, region, probability below the ribs) in bulk,
so that a whole session's frames cost a few numpy passes.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass

import numpy as np

from host.analysis.anatomy import BodyModel
from host.analysis.model import RIB_CAGE_END_LEVEL, Estimates, SpineEstimate
from host.analysis.signature import BIN_LEVELS, LEVEL_RANGE, CompiledSignature

GRID_STEP_M = 0.001
"""Grid spacing of b, m."""
GRID_HALF_WIDTH_M = 0.25
"""The grid spans the prior's mean +- this, m (recentred when the mass drifts)."""
SLIP_DIFFUSION_M2_S = 1.0e-6
"""Variance per second of the back slipping over the roller, m^2/s (episodes of 2-6 mm
about twice a minute: ~0.6 mm^2/s, taken a little higher)."""
LOOK_TRAVEL_M = 0.012
"""A look at the load signature each time the roller enters another cell of this size
of its own position, m ..."""
LOOK_EVERY_S = 2.0
"""... and at least once in a time cell of this length, s."""
LOOK_WEIGHT = 0.2
"""Each look's log-likelihood is scaled by this: looks are correlated (the same body
under the roller, the same lying position), so they must not count as independent."""
LANDMARK_SD_M = 0.008
"""How well a person holds a calibration landmark (felt through the back), 1 SD, m."""
RELOCK_S = 3.0
"""Time constant over which a gap's bridging error fades (1 SD), s: the roller's angle
follows gravity's with this time constant (docs/algorithms.md, roll odometry step 5)."""
SIGNATURE_BIAS_SD_M = 0.015
"""How far the signature's own place may be off, 1 SD, m: an error common to all its
looks that no number of looks averages out (it was taught in one posture over a minute,
from landmarks held off by up to ~13 mm; a change of posture moved one person's best
match under the shoulder blades by 0.5 level, docs/benchmarks.md issue 17). The
signature's pull on the reported place counts at most as one observation of this SD
(``_bias_floor``)."""
GUARD_WINDOW_SD = 3.0
"""A look at the signature may reshape the belief only within the guard's mean +- this
many of its SDs: outside, its likelihood ratio is no higher than the lowest inside
(``SpineTracker.look``), so that the signature alone cannot make or feed a mode where
the signature-free belief all but rules the place out (person 24's profile session,
docs/benchmarks.md issue 17: a signature that fitted the day's loads only ~10 cm toward
the feet split the belief)."""
TOP_BOUND_LEVEL = 1.0
"""The highest level the roller can press with the hips raised: the C7/T1 junction,
the top of the shoulders (the calibration's top landmark); above it the neck curves
away from the roller. The highest place the roller reached bounds where it is
(``SpineTracker.observe_top``)."""
TOP_FIT_MIN = 0.75
"""The top's bound enters the belief once the belief gives the highest top reached
less than this probability (``SpineTracker.observe_top``)."""
MIN_WEIGHT = 1e-12
"""Floor of a grid probability after an update: no place is ever ruled out for good."""
_TOP_FORGET_FLOOR = 1e-6
"""Where the top's bound was below this, ``forget_top`` leaves the weight alone."""

EDGE_LEVELS = (1.0, 5.0, 9.0, RIB_CAGE_END_LEVEL)
"""Levels where the region changes (T1, T5, T9, L1)."""
_BIN_EDGES = np.arange(LEVEL_RANGE[0] + BIN_LEVELS, LEVEL_RANGE[1], BIN_LEVELS)
_add = np.add


@dataclass(frozen=True, eq=False, init=False)
class Snapshot:
    """The belief as it stood from one update to the next.

    grid0: b of the first cell, m. cdf: (cells,) cumulative probabilities. mean, var:
    of b, m, m^2 (var with the slip not yet applied to the grid; it grows by
    ``SLIP_DIFFUSION_M2_S`` per second after ``t``). t: sensor time of the update, s.
    body: the spine model then. edges_back: the region edges on the back, m from C7
    (``EDGE_LEVELS``). guard: the signature-free belief at the same moment (None in
    the guard's own snapshots, and where there is none). gap_var, gap_t: the bounded
    error of the roller's position left by the last IMU gap (``SpineTracker.bridge``),
    m^2 at sensor time gap_t (s); its SD fades with ``RELOCK_S`` after it.
    unfloored: the tracker's (mean m, var m^2) before the signature's bias floor moved
    it (``_bias_floor``; None: the floor did not act), for ``guard_lean``.
    """

    grid0: float
    cdf: np.ndarray
    mean: float
    var: float
    t: float
    body: BodyModel
    edges_back: tuple[float, ...]
    guard: Snapshot | None = None
    gap_var: float = 0.0
    gap_t: float = 0.0
    unfloored: tuple[float, float] | None = None

    def __init__(self, grid0: float, cdf: np.ndarray, mean: float, var: float, t: float,
                 body: BodyModel, edges_back: tuple[float, ...], guard: Snapshot | None = None,
                 gap_var: float = 0.0, gap_t: float = 0.0,
                 unfloored: tuple[float, float] | None = None) -> None:
        # (what a frozen dataclass's own __init__ does, straight into the instance's
        # dict: its object.__setattr__ per field cost ~9k instructions a snapshot, two
        # or three snapshots at every update of the belief)
        d = self.__dict__
        d["grid0"], d["cdf"], d["mean"], d["var"], d["t"] = grid0, cdf, mean, var, t
        d["body"], d["edges_back"], d["guard"] = body, edges_back, guard
        d["gap_var"], d["gap_t"], d["unfloored"] = gap_var, gap_t, unfloored

    def gap_var_at(self, t: float) -> float:
        """The gap's bridging error left at sensor time ``t`` (s), m^2."""
        if self.gap_var <= 0.0:
            return 0.0
        return self.gap_var * math.exp(-2.0 * max(t - self.gap_t, 0.0) / RELOCK_S)

    @property
    def ext_cdf(self) -> list[float]:
        """[0, *cdf] as a list (computed once; for the frame-by-frame path)."""
        ext = self.__dict__.get("_ext")
        if ext is None:
            ext = [0.0, *self.cdf.tolist()]
            object.__setattr__(self, "_ext", ext)
        return ext


class SpineTracker:
    """Posterior over ``b`` (m from C7 of the roller's zero) on a grid.

    body: the person's spine model. prior_mean_m, prior_sd_m: where the zero is on the
    back, m from C7, and its 1 SD, m. signature: the person's learned load signature,
    or None (then only the prior, landmarks and slip). t: sensor time, s.
    """

    def __init__(self, body: BodyModel, prior_mean_m: float, prior_sd_m: float,
                 signature: CompiledSignature | None = None, t: float = 0.0,
                 guard: bool = True) -> None:
        if not (math.isfinite(prior_mean_m) and prior_sd_m > 0):
            raise ValueError("prior: a finite mean and a positive SD are needed")
        self.guard = (SpineTracker(body, prior_mean_m, prior_sd_m, None, t, guard=False)
                      if guard else None)
        """The same belief with no signature (prior, landmarks, odometry, slip)."""
        n = int(round(2 * GRID_HALF_WIDTH_M / GRID_STEP_M)) + 1
        self.grid = prior_mean_m - GRID_HALF_WIDTH_M + np.arange(n) * GRID_STEP_M
        self.w = np.exp(-0.5 * ((self.grid - prior_mean_m) / prior_sd_m) ** 2)
        self.signature = signature
        self.looks = 0
        self._t = t
        self._diffused_t = t
        self._pending_var = 0.0  # diffusion not yet applied, m^2
        self._gap_var = 0.0  # the last gap's bridging error, m^2 at _gap_t
        self._gap_t = t
        self.top_p = math.inf
        """The highest roller position reached (the smallest, m; ``observe_top``)."""
        self.placed_low = False
        """Whether a top reached contradicted the belief (``observe_top``)."""
        self._top_taken = math.inf  # the top whose bound is in the belief
        self._top_of: BodyModel | None = None  # the body _top_bound is of
        self._top_bound = (math.nan, math.nan)  # its top's place and doubt, m
        self._sq: np.ndarray | None = None
        self._sq_of: np.ndarray | None = None
        self._ends = (math.nan, math.nan)
        self._ends_of: np.ndarray | None = None
        self._set_body(body)
        self._normalise()

    # -- what is known ------------------------------------------------------------
    @property
    def body(self) -> BodyModel:
        """The spine model in use."""
        return self._body

    @property
    def mean_m(self) -> float:
        """Expected place of the zero on the back, m from C7."""
        return self.snapshot.mean

    @property
    def sd_m(self) -> float:
        """1 SD of the place of the zero on the back at the last update, m."""
        return math.sqrt(self.snapshot.var)

    def quantile_m(self, q: float) -> float:
        """The ``q`` quantile of b, m from C7 (of the reported belief)."""
        snap = self.snapshot
        i = min(int(np.searchsorted(snap.cdf, q)), len(snap.cdf) - 1)
        return snap.grid0 + i * GRID_STEP_M

    def estimate(self, p: float, t: float | None = None) -> SpineEstimate:
        """The estimate at roller position ``p`` (m) now (one frame; see ``evaluate``)."""
        t = self._t if t is None else t
        est = evaluate([self.snapshot], np.zeros(1, np.intp), np.array([p]), np.array([t]))
        return est.at(0)

    # -- updates ------------------------------------------------------------------
    def set_body(self, body: BodyModel, t: float) -> None:
        """Use another spine model from time ``t`` (s) on."""
        self._t = t
        if self.guard is not None:
            self.guard.set_body(body, t)
        self._set_body(body)
        self._normalise()

    def set_signature(self, signature: CompiledSignature | None) -> None:
        """Use another learned signature from now on."""
        self.signature = signature

    def shift(self, dp_m: float, t: float) -> None:
        """At ``t`` (s) the roller's zero moved by ``dp_m`` toward the feet (a re-zero:
        the contact that was at p = dp is now at p = 0, so b grows by dp)."""
        self._t = t
        if self.guard is not None:
            self.guard.shift(dp_m, t)
        self.grid = self.grid + dp_m
        self.top_p -= dp_m
        self._top_taken -= dp_m
        self._normalise()

    def diffuse(self, t: float, extra_var_m2: float = 0.0) -> bool:
        """Let slip act until ``t`` (s), plus ``extra_var_m2`` of other doubt (an IMU
        gap); applied once it reaches a grid cell's variance. Returns whether the
        belief changed."""
        if self.guard is not None:
            self.guard.diffuse(t, extra_var_m2)
        self._pending_var += (max(t - self._diffused_t, 0.0) * SLIP_DIFFUSION_M2_S
                              + max(extra_var_m2, 0.0))
        self._diffused_t = max(t, self._diffused_t)
        if self._pending_var < GRID_STEP_M**2:
            return False
        self.w = np.convolve(self.w, _slip_kernel(math.sqrt(self._pending_var) / GRID_STEP_M),
                             mode="same")
        self._pending_var = 0.0
        self._t = t
        self._normalise()
        return True

    def bridge(self, t: float, sd_m: float) -> None:
        """An IMU gap at ``t`` (s) that the roller bridged from gravity's absolute angle:
        its position is off by an error of ``sd_m`` (1 SD, m) that does not add up
        over gaps (gravity's angle is absolute): it is set to the larger of ``sd_m`` and
        what is left of the last gap's, and fades with ``RELOCK_S``. ``b`` is not
        touched."""
        if self.guard is not None:
            self.guard.bridge(t, sd_m)
        left = self.snapshot.gap_var_at(t)
        self._gap_var, self._gap_t = max(sd_m * sd_m, left), t
        self._t = t
        self._normalise()

    def observe_landmark(self, p: float, back_m: float, t: float,
                         sd_m: float = LANDMARK_SD_M) -> None:
        """At ``t`` (s) the contact at roller position ``p`` (m) is at ``back_m`` (m from
        C7), +- sd_m."""
        self._t = t
        if self.guard is not None:
            self.guard.observe_landmark(p, back_m, t, sd_m)
        self.w = self.w * np.exp(-0.5 * ((p + self.grid - back_m) / sd_m) ** 2)
        self._normalise()

    def observe_top(self, p: float, t: float) -> bool:
        """At ``t`` (s) the roller reached position ``p`` (m), higher than any before (by
        a grid cell; else nothing happens): its contact ``p + b`` is no higher than
        ``TOP_BOUND_LEVEL``, give or take how well the body model knows where that is
        relative to the rib cage's end and how far a person may push it. Once the
        belief gives such a top less than ``TOP_FIT_MIN`` (``placed_low``: the person
        lies lower than it says), the bound enters the belief, one-sided (places that
        would put the contact above it lose weight, so P(below the ribs) can only rise),
        the bound of the highest top replacing the earlier one's. Returns whether the
        belief changed."""
        if not p < self.top_p - GRID_STEP_M:
            return False
        if self.guard is not None:
            self.guard.observe_top(p, t)
        self.top_p = p
        new = self._top_factor(p)
        if not self.placed_low:
            if float(self.w @ new) >= TOP_FIT_MIN:
                return False
            self.placed_low = True
        elif math.isfinite(self._top_taken):
            new /= np.maximum(self._top_factor(self._top_taken), MIN_WEIGHT)
        self._top_taken = p
        self._t = t
        self.w = self.w * new
        self._normalise()
        return True

    def forget_top(self, t: float) -> None:
        """Take the top's bound (``observe_top``) out of the belief at ``t`` (s): a
        calibration's landmarks say more, and the bound, reached on the way to the top
        landmark, would only pull them toward the feet. Places the bound had all but
        ruled out stay where they are (the landmarks decide there)."""
        if self.guard is not None:
            self.guard.forget_top(t)
        taken, self._top_taken, self.top_p = self._top_taken, math.inf, math.inf
        self.placed_low = False
        if not math.isfinite(taken):
            return
        factor = self._top_factor(taken)
        self.w = np.where(factor > _TOP_FORGET_FLOOR, self.w / np.maximum(factor, MIN_WEIGHT),
                          self.w)
        self._t = t
        self._normalise()

    def _top_factor(self, p: float) -> np.ndarray:
        """The one-sided likelihood of the top ``p`` (m) over the grid."""
        body = self._body
        if self._top_of is not body:  # the bound's place and doubt, once per body
            self._top_of = body
            self._top_bound = (float(body.position_at(TOP_BOUND_LEVEL)), math.hypot(
                body.span_sd_m(TOP_BOUND_LEVEL, RIB_CAGE_END_LEVEL), LANDMARK_SD_M))
        bound, sd = self._top_bound
        return _normal_cdf((p + self.grid - bound) / sd)

    def look(self, t: float, p: float, features: tuple[float, float],
             ratio_bins: np.ndarray | None = None) -> None:
        """Compare the load signature at roller position ``p`` (m), sensor time ``t``
        (s) with the learned one (when ``look_due`` says so); ``ratio_bins``: the
        likelihood ratio per signature bin, ``look_ratios`` of the signature's
        ``log_likelihood_bins(features)``, if already worked out (many looks' at
        once). The look reshapes the belief within the guard's window only
        (``_within_guard``)."""
        sig = self.signature
        if sig is None:
            return
        ratio = look_ratios(sig.log_likelihood_bins(features)) if ratio_bins is None \
            else ratio_bins
        ratio = self._within_guard(ratio, p)
        self.w *= ratio.repeat(_cells_per_bin(self._bin_edges_back, self.grid + p))
        self.looks += 1
        self._t = t
        self._normalise()

    # -- internals ----------------------------------------------------------------
    def _within_guard(self, ratio: np.ndarray, p: float) -> np.ndarray:
        """A look's likelihood ratio per signature bin (``ratio``; the roller at ``p``,
        m) limited to the guard's window: the bins that reach into the guard's mean +-
        ``GUARD_WINDOW_SD`` SDs (as places of the contact) are left as they are; no bin
        outside them gets a ratio higher than the lowest inside. The signature reshapes
        the belief where the prior, the landmarks, odometry and slip allow the place;
        where they all but rule it out, a look never raises a place against the window,
        so the signature alone neither makes a second mode there nor feeds one.
        ``ratio`` itself is not changed; without a guard it is what is returned."""
        guard = self.guard
        if guard is None:
            return ratio
        snap = guard.snapshot
        half = GUARD_WINDOW_SD * math.sqrt(snap.var)
        edges = self._bin_edges_list
        lo = bisect.bisect_right(edges, snap.mean - half + p) - 1
        hi = max(bisect.bisect_left(edges, snap.mean + half + p), lo + 1)  # (a point: its bin)
        if lo <= 0 and hi >= len(ratio):
            return ratio
        inside = ratio[lo:hi]
        out = np.minimum(ratio, np.minimum.reduce(inside))
        out[lo:hi] = inside
        return out

    def _set_body(self, body: BodyModel) -> None:
        self._body = body
        self._edges_back = tuple(float(body.position_at(e)) for e in EDGE_LEVELS)
        self._bin_edges_back = np.concatenate([[-math.inf], body.position_at(_BIN_EDGES),
                                               [math.inf]])
        """The signature bins' edges on the back, m from C7, between -inf and inf."""
        self._bin_edges_list = self._bin_edges_back.tolist()

    def _normalise(self) -> None:
        # (numpy's ufuncs called directly: ``w.sum()`` and ``np.cumsum`` are these,
        # through a Python wrapper each)
        w = self.w
        total = float(_add.reduce(w))
        if total > 0 and math.isfinite(total):
            w /= total
        else:
            w = self.w = np.full_like(w, 1.0 / w.size)
        np.maximum(w, MIN_WEIGHT, out=w)  # adds at most cells * 1e-12 to the total
        # (np.dot: the very ddot that ``@`` calls for two vectors, with less on the way)
        mean = float(np.dot(w, self.grid))
        grid0, centre = self._grid_ends()
        if abs(mean - centre) >= GRID_HALF_WIDTH_M / 2:
            self._recentre(mean)
            w = self.w
            mean = float(np.dot(w, self.grid))
            grid0 = self._grid_ends()[0]
        cdf = _add.accumulate(w)
        var = max(float(np.dot(w, self._grid2())) - mean * mean, 0.0) + self._pending_var
        guard = self.guard.snapshot if self.guard is not None else None
        floor = _bias_floor(mean, var, guard) if self.signature is not None else None
        unfloored = None
        if floor is not None:
            unfloored = (mean, var)
            move, var = floor[0], max(floor[1], var)
            grid0, mean = grid0 + move, mean + move
        self.snapshot = Snapshot(grid0, cdf, mean, var, self._t, self._body, self._edges_back,
                                 guard, self._gap_var, self._gap_t, unfloored)

    def _grid2(self) -> np.ndarray:
        """The grid squared (kept until the grid moves)."""
        if self._sq_of is not self.grid:
            self._sq, self._sq_of = self.grid * self.grid, self.grid
        return self._sq

    def _grid_ends(self) -> tuple[float, float]:
        """The grid's first and middle cells, m (kept until the grid moves)."""
        if self._ends_of is not self.grid:
            self._ends = (float(self.grid[0]), float(self.grid[len(self.grid) // 2]))
            self._ends_of = self.grid
        return self._ends

    def _recentre(self, mean: float) -> None:
        """Keep the mass away from the grid's edges (the grid follows the estimate)."""
        centre = float(self.grid[len(self.grid) // 2])
        cells = int(round((mean - centre) / GRID_STEP_M))
        w = np.full_like(self.w, MIN_WEIGHT)
        if cells > 0:
            w[:-cells] = self.w[cells:]
        else:
            w[-cells:] = self.w[:cells]
        self.grid = self.grid + cells * GRID_STEP_M
        self.w = w / w.sum()


@functools.lru_cache(maxsize=4)
def _slip_kernel(sigma: float) -> np.ndarray:
    """The normalised Gaussian kernel of ``sigma`` grid cells that ``diffuse`` spreads
    the belief with (read-only; kept for the next call: the guard and the tracker
    diffuse by the same doubt, one after the other)."""
    half = max(1, int(math.ceil(4 * sigma)))
    k = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (k / sigma) ** 2)
    kernel = kernel / kernel.sum()
    kernel.flags.writeable = False
    return kernel


def look_ratios(ll_bins: np.ndarray) -> np.ndarray:
    """The likelihood ratio per signature bin (72) that a look weighs the belief with,
    from the signature's log-likelihoods per bin (its ``log_likelihood_bins``; many
    looks': one row each, (m, bins)): relative to the best bin, scaled by
    ``LOOK_WEIGHT``."""
    ratio = ll_bins - np.maximum.reduce(ll_bins, axis=-1, keepdims=True)
    ratio *= LOOK_WEIGHT
    np.exp(ratio, out=ratio)
    return ratio


def _cells_per_bin(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    """How many of the sorted finite values ``x`` fall in each bin between the sorted
    ``edges`` (-inf first, inf last: len(edges) - 1 bins; a value equal to an edge goes
    in the bin below it): the bin of each value, as ``np.searchsorted(edges[1:-1], x)``
    gives it, run-length coded (``np.repeat(per_bin, counts)`` spreads a value per bin
    over the values), at the cost of a search per edge rather than per value."""
    cuts = x.searchsorted(edges, side="right")
    return cuts[1:] - cuts[:-1]


def _bias_floor(mean: float, var: float, guard: Snapshot | None
                ) -> tuple[float, float] | None:
    """The tracker's belief (``mean`` m, ``var`` m^2) with the signature's pull limited by
    its bias floor: (how far its place moves, m; the floored variance, m^2; the
    snapshot's is the larger of it and ``var``), or None: unchanged.

    The guard (``guard``) is the belief without the signature, so the signature's
    evidence is what the tracker adds to it; taken as Gaussian (information 1/var - 1/var
    of the guard, at the mean that gives the tracker's), ``SIGNATURE_BIAS_SD_M`` is added
    to its variance (an error common to all looks) and it is combined with the guard
    again. The tracker's shape is kept, moved to that mean (``guard_lean`` keeps the
    warning from following a move toward the head). Unchanged when there is no guard
    or the signature added nothing."""
    if guard is None or var <= 0.0 or guard.var <= var:
        return None
    info = 1.0 / var - 1.0 / guard.var
    sig_mean = (mean / var - guard.mean / guard.var) / info
    sig_var = 1.0 / info + SIGNATURE_BIAS_SD_M**2
    floored = 1.0 / (1.0 / guard.var + 1.0 / sig_var)
    # The move to the µm: live batches and the offline pass may differ in the last bit
    # of a sum, and the roller's fence (from grid0) must not.
    move = round(floored * (guard.mean / guard.var + sig_mean / sig_var) - mean, 6)
    return move, floored


_CDF_Z = np.linspace(-9.0, 9.0, 36001)
_CDF = np.array([0.5 * (1.0 + math.erf(z / math.sqrt(2.0))) for z in _CDF_Z])


def _normal_cdf(z: np.ndarray) -> np.ndarray:
    """The standard normal CDF, elementwise: linear between values 0.0005 apart
    (within 1e-8 of ``math.erf``'s; 0 and 1 beyond 9 SD), in numpy: a Python ``erf`` per
    grid cell at every new top was most of the offline pass's growth."""
    return np.interp(z, _CDF_Z, _CDF)


def look_due(t: np.ndarray, p: np.ndarray, t_before: float, p_before: float) -> np.ndarray:
    """(n,) bool: frames at which a look is due: the roller position ``p`` (m) entered
    another ``LOOK_TRAVEL_M`` cell, or the time ``t`` (s) another ``LOOK_EVERY_S`` cell,
    than the frame before (``t_before``, ``p_before``: the one before the first; NaN:
    none). NaN positions are never due."""
    pc = np.floor(np.concatenate([[p_before], p]) / LOOK_TRAVEL_M)
    tc = np.floor(np.concatenate([[t_before], t]) / LOOK_EVERY_S)
    with np.errstate(invalid="ignore"):
        due = (pc[1:] != pc[:-1]) | (tc[1:] != tc[:-1])
    return due & np.isfinite(p)


def evaluate(snapshots: list[Snapshot], sid: np.ndarray, p: np.ndarray, t: np.ndarray,
             approach_m: float = 0.02) -> Estimates:
    """Estimates for frames at roller positions ``p`` (m) and times ``t`` (s), frame i
    under ``snapshots[sid[i]]``. NaN positions give unknown rows. A few frames (the live
    path) are done one by one in Python, many in numpy: the same formulas.

    With a guard (``Snapshot.guard``) the place, level and region are the tracker's.
    P(below the ribs) and P(near) are the tracker's with its belief moved toward the
    feet by ``guard_lean`` (the guard places the roller nearer the lumbar spine by more
    than their doubt allows). The SD is the larger of the two beliefs' SDs with their
    disagreement added: ``sqrt(max(sd, sd_guard)^2 + d^2)``."""
    if not snapshots or any(x.guard is None for x in snapshots):
        return _evaluate(snapshots, sid, p, t, approach_m)
    guards = [x.guard for x in snapshots]
    # (of the guard only its place and SD are used: the rest is not worked out)
    g = _evaluate(guards, sid, p, t, approach_m, place_only=True)  # type: ignore[arg-type]
    out = _evaluate(snapshots, sid, p, t, approach_m, [guard_lean(x) for x in snapshots])
    out.sd_m[:] = np.sqrt(np.fmax(out.sd_m, g.sd_m) ** 2 + (g.back_m - out.back_m) ** 2)
    return out


def guard_lean(snap: Snapshot) -> float:
    """How far (m) the warning moves the tracker's belief toward the feet: the distance
    by which the guard's place lies beyond the tracker's, less one SD of their joint
    doubt (0 when the guard places the roller higher or within that doubt); and where
    the signature's bias floor moved the belief toward the head (``_bias_floor``,
    ``Snapshot.unfloored``), the distance by which the tracker's own place lies beyond
    the moved one, less one SD of their joint doubt as P(below) reads them (the same
    shape twice: sqrt(2) of its SD); the larger of the two. The floor limits the
    signature's pull on the place; it must not delay a warning (vigorous person 4,
    docs/benchmarks.md issue 17: slip had carried the zero 33-45 mm toward the feet,
    the signature followed, and the floor moved a 4-mm belief 16-17 mm back toward the
    guard: two drifts unwarned at P(below) 0.007 and 0.023).

    Measured (docs/benchmarks.md, issue 17): the guard's own P(below) (the larger of
    the two) or the whole difference warned no more drifts but gave 69 and 27 false
    alarms an hour on four sessions where this gave none: the guard, widened by slip,
    is less sure than the tracker and should move it only where they disagree."""
    lean = snap.__dict__.get("_lean")  # (worked out once a snapshot)
    if lean is None:
        guard = snap.guard
        lean = 0.0 if guard is None else max(
            guard.mean - snap.mean - math.sqrt(guard.var + snap.var), 0.0)
        if snap.unfloored is not None:
            mean, var = snap.unfloored
            lean = max(lean, mean - snap.mean - math.sqrt(2.0 * var))
        object.__setattr__(snap, "_lean", lean)
    return lean


def _reigns(sid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``np.unique(sid, return_inverse=True)`` for snapshot indices ``sid``, and the
    count of each value when they never decrease (frames in order, each snapshot
    reigning over a run of them, as in a session: then in one pass; else None)."""
    if len(sid) > 1 and not (sid[1:] >= sid[:-1]).all():
        used, s = np.unique(sid, return_inverse=True)
        return used, s, None
    starts = np.flatnonzero(sid[1:] != sid[:-1]) + 1
    used = sid[np.concatenate([[0], starts])] if len(sid) else sid[:0]
    first = np.zeros(len(sid), dtype=np.intp)
    first[starts] = 1
    counts = np.diff(np.concatenate([[0], starts, [len(sid)]]))
    return used, np.cumsum(first), counts


def _evaluate(snapshots: list[Snapshot], sid: np.ndarray, p: np.ndarray, t: np.ndarray,
              approach_m: float, lean: list[float] | None = None, place_only: bool = False
              ) -> Estimates:
    """``evaluate`` of one belief (``lean``: per snapshot, see ``guard_lean``);
    ``place_only``: only back_m and sd_m are worked out (the rest left unknown)."""
    n = len(p)
    if n <= FEW:
        return _evaluate_few(snapshots, sid.tolist(), p.tolist(), t.tolist(), approach_m,
                             lean)
    out = Estimates.unknown(n)
    ok = np.isfinite(p)
    if not ok.any() or not snapshots:
        return out
    idx = np.flatnonzero(ok)
    used, s, counts = _reigns(sid[idx])

    def per_frame(values: np.ndarray) -> np.ndarray:
        """Per snapshot -> per frame (``values[s]``)."""
        return np.repeat(values, counts, axis=0) if counts is not None else values[s]

    snapshots = [snapshots[k] for k in used.tolist()]
    pp = p[idx]
    scalars = np.array([(x.grid0, x.mean, x.var, x.t, x.gap_var, x.gap_t) for x in snapshots])
    mean = per_frame(scalars[:, 1])
    var = per_frame(scalars[:, 2])
    since = t[idx] - per_frame(scalars[:, 3])
    back = pp + mean
    gap_var = per_frame(scalars[:, 4])
    faded = bool(gap_var.any())
    if faded:  # the last gap's bridging error, faded since
        gap_t = per_frame(scalars[:, 5])
        gap_var = gap_var * np.exp(-2.0 * np.maximum(t[idx] - gap_t, 0.0) / RELOCK_S)
    sd = np.sqrt(var + np.maximum(since, 0.0) * SLIP_DIFFUSION_M2_S + gap_var)
    if place_only:
        out.back_m[idx] = back
        out.sd_m[idx] = sd
        return out
    shift = per_frame(np.array(lean)[used]) if lean is not None else 0.0
    cells = max(len(x.cdf) for x in snapshots)
    table = np.ones((len(snapshots), cells + 1))
    table[:, 0] = 0.0
    if all(len(x.cdf) == cells for x in snapshots):
        table[:, 1:] = [x.cdf for x in snapshots]
    else:
        for k, snap in enumerate(snapshots):
            table[k, 1:len(snap.cdf) + 1] = snap.cdf
    grid0 = per_frame(scalars[:, 0])
    edges = per_frame(np.array([x.edges_back for x in snapshots]))
    row = s * (cells + 1)
    flat = table.ravel()

    def beyond(value: np.ndarray) -> np.ndarray:
        """P(b >= value), each cell's mass spread evenly over its width."""
        x = np.clip((value - grid0) / GRID_STEP_M + 0.5, 0.0, float(cells))
        i = np.minimum(x.astype(np.intp), cells - 1)
        at = row + i
        before = np.take(flat, at)
        here = np.take(flat, at + 1)
        return np.clip(1.0 - before - (here - before) * (x - i), 0.0, 1.0)

    b = [beyond(edges[:, k] - pp) for k in range(4)]
    probs = np.stack([1.0 - b[0], b[0] - b[1], b[1] - b[2], b[2] - b[3], b[3]], axis=1)
    level = np.empty(len(idx))
    bodies = {id(x.body): x.body for x in snapshots}
    if len(bodies) == 1:
        level[:] = snapshots[0].body.level_at(back)
    else:
        body_of = per_frame(np.array([id(x.body) for x in snapshots]))
        for key, body in bodies.items():
            m = body_of == key
            level[m] = body.level_at(back[m])
    if faded:
        gap_sd = np.sqrt(gap_var)

        def spread(value: np.ndarray) -> np.ndarray:
            """P(b + e >= value), e the gap's error (``_spread``)."""
            mid = beyond(value)
            return mid + _SIDE_WEIGHT * (beyond(value - _SIDE * gap_sd) - mid
                                         + beyond(value + _SIDE * gap_sd) - mid)
    else:
        spread = beyond
    below = spread(edges[:, 3] - pp - shift)
    part = Estimates(level, np.argmax(probs, axis=1).astype(np.int8), below,
                     spread(edges[:, 3] - approach_m - pp - shift), back, sd)
    out.put(idx, part)
    return out


_SIDE, _SIDE_WEIGHT = math.sqrt(3.0), 1.0 / 6.0
"""The expectation over a normal error of SD s (a gap's bridging error) by Gauss-Hermite
with three nodes: 2/3 at 0, 1/6 at +-sqrt(3) s; written as the middle value plus the
sides' differences from it, so that with s = 0 it is the middle value exactly."""


FEW = 16
"""Up to this many frames ``evaluate`` works frame by frame (numpy's per-call cost
outweighs its speed for a handful of values)."""


def _beyond(ext: list[float], grid0: float, value: float) -> float:
    """P(b >= value) from ``ext`` = [0, *cdf] (as ``evaluate``'s numpy ``beyond``)."""
    cells = len(ext) - 1
    x = min(max((value - grid0) / GRID_STEP_M + 0.5, 0.0), float(cells))
    i = min(int(x), cells - 1)
    before, here = ext[i], ext[i + 1]
    return min(max(1.0 - before - (here - before) * (x - i), 0.0), 1.0)


def _spread(ext: list[float], grid0: float, value: float, sd: float) -> float:
    """P(b + e >= value) from ``ext`` = [0, *cdf], e a normal error of SD ``sd`` (m)."""
    mid = _beyond(ext, grid0, value)
    if not sd:
        return mid
    return mid + _SIDE_WEIGHT * (_beyond(ext, grid0, value - _SIDE * sd) - mid
                                 + _beyond(ext, grid0, value + _SIDE * sd) - mid)


def _evaluate_few(snapshots: list[Snapshot], sid: list[int], p: list[float], t: list[float],
                  approach_m: float, lean: list[float] | None = None) -> Estimates:
    n = len(p)
    out = Estimates.unknown(n)
    for k in range(n):
        pk = p[k]
        if pk != pk:
            continue
        snap = snapshots[sid[k]]
        sh = lean[sid[k]] if lean is not None else 0.0
        ext = snap.ext_cdf
        g0 = snap.grid0
        e = snap.edges_back
        b0, b1, b2, b3 = (_beyond(ext, g0, e[j] - pk) for j in range(4))
        probs = (1.0 - b0, b0 - b1, b1 - b2, b2 - b3, b3)
        back = pk + snap.mean
        out.level[k] = snap.body.level_at_scalar(back)
        out.region[k] = max(range(5), key=probs.__getitem__)
        gap_var = snap.gap_var_at(t[k])
        gap_sd = math.sqrt(gap_var)
        out.p_below_ribs[k] = _spread(ext, g0, e[3] - pk - sh, gap_sd) if sh or gap_sd \
            else b3
        out.p_near[k] = _spread(ext, g0, e[3] - approach_m - pk - sh, gap_sd)
        out.back_m[k] = back
        out.sd_m[k] = math.sqrt(snap.var + max(t[k] - snap.t, 0.0) * SLIP_DIFFUSION_M2_S
                                + gap_var)
    return out
