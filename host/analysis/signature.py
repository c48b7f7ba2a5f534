"""The load signature along the back: how the pressure spreads across the roller.

Under the shoulder blades the load is carried by two humps either side of the spine
(wide); over the lower ribs by a narrowing, centre-heavy rib cage (narrow, peaked); over
the lumbar lordosis the middle lifts off and two paraspinal humps remain (wider again,
flat). Two features of a frame's zone loads capture this, whatever the spine's lateral
place on the roller (they are taken about the load's own centre):

- ``spread_m``: the standard deviation of the load across the roller, m;
- ``peakedness``: the fourth moment over the squared variance (kurtosis: ~1.9 for two
  humps, ~2.8 for a centre-peaked profile).

Zones are taken as evenly spaced ``ZONE_PITCH_M`` apart (the profile's strip). A
``Signature`` is what one person's features look like level by level (0.25-level bins):
learned from sessions whose level is known (calibrated), kept in the user's profile,
and used by the spine tracker to recognise where it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

ZONE_PITCH_M = 0.05
"""Distance between neighbouring FSR bands, m (the default strip)."""
MIN_LOAD_N = 60.0
"""Below this total load (N) a frame's features are not used (getting on or off)."""
BIN_LEVELS = 0.25
"""Width of a signature bin, levels."""
LEVEL_RANGE = (0.0, 18.0)
"""Levels the signature covers (C7 .. the end of L5)."""
FEATURES = ("spread_m", "peakedness")
NOISE_FLOOR = np.array([3e-3, 0.25])
"""Smallest SD a feature may be believed to have (m, -): what one session's learning
misses: the elbows squeezed forward widen the spread by ~3 mm and raise the
peakedness by ~0.4 under the shoulder blades; the spine lies elsewhere on the roller."""
EXTRAPOLATION_SD = np.array([4e-3, 0.25])
"""How much less a feature is known per level beyond the learned bins (m, -)."""
MIN_COUNT = 20.0
"""Samples a bin needs (after smoothing) before it is trusted."""

_NBINS = int(round((LEVEL_RANGE[1] - LEVEL_RANGE[0]) / BIN_LEVELS))


def load_features(zone_loads: Sequence[float]) -> tuple[float, float] | None:
    """(spread m, peakedness) of one frame's zone loads (N), or None when the total is
    under ``MIN_LOAD_N`` or the load sits on one zone."""
    total = 0.0
    first = 0.0
    n = len(zone_loads)
    for i, z in enumerate(zone_loads):
        if z > 0.0:
            total += z
            first += z * i
    if total < MIN_LOAD_N:
        return None
    centre = first / total
    m2 = m4 = 0.0
    for i, z in enumerate(zone_loads):
        if z > 0.0:
            d = i - centre
            d2 = d * d
            m2 += z * d2
            m4 += z * d2 * d2
    if n < 3 or m2 <= 1e-9 * total:
        return None
    m2 /= total
    m4 /= total
    return math.sqrt(m2) * ZONE_PITCH_M, m4 / (m2 * m2)


def features_array(zone_loads: np.ndarray) -> np.ndarray:
    """Features of many frames: (n, zones) loads (N) -> (n, 2); NaN rows where
    ``load_features`` gives None."""
    z = np.clip(np.asarray(zone_loads, dtype=float), 0.0, None)
    total = z.sum(axis=1)
    idx = np.arange(z.shape[1], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        centre = (z * idx).sum(axis=1) / total
        d = idx[None, :] - centre[:, None]
        m2 = (z * d * d).sum(axis=1) / total
        m4 = (z * d**4).sum(axis=1) / total
        out = np.column_stack([np.sqrt(m2) * ZONE_PITCH_M, m4 / (m2 * m2)])
    bad = (total < MIN_LOAD_N) | (m2 <= 1e-9) | ~np.isfinite(out).all(axis=1)
    out[bad] = np.nan
    return out


def level_bin(level: np.ndarray | float) -> np.ndarray:
    """Signature bin index of levels (clipped to the covered range)."""
    x = (np.asarray(level, dtype=float) - LEVEL_RANGE[0]) / BIN_LEVELS
    return np.clip(np.floor(np.nan_to_num(x, nan=-1.0)), 0, _NBINS - 1).astype(np.intp)


@dataclass
class Signature:
    """Running statistics of the features per level bin (count, mean, M2: Welford).

    count: (bins,) samples. mean: (bins, 2). m2: (bins, 2) sums of squared deviations.
    sessions: calibrated sessions it was learned from.
    """

    count: np.ndarray = field(default_factory=lambda: np.zeros(_NBINS))
    mean: np.ndarray = field(default_factory=lambda: np.zeros((_NBINS, 2)))
    m2: np.ndarray = field(default_factory=lambda: np.zeros((_NBINS, 2)))
    sessions: int = 0

    def add(self, levels: np.ndarray, features: np.ndarray,
            weights: np.ndarray | None = None) -> None:
        """Learn from samples at known ``levels`` (n,) with ``features`` (n, 2); rows
        with NaN are skipped. ``weights`` (n,): how much each sample counts (default 1)."""
        levels = np.asarray(levels, dtype=float)
        features = np.asarray(features, dtype=float)
        w = np.ones(len(levels)) if weights is None else np.asarray(weights, dtype=float)
        ok = np.isfinite(levels) & np.isfinite(features).all(axis=1) & (w > 0)
        if not ok.any():
            return
        bins = level_bin(levels[ok])
        w, f = w[ok], features[ok]
        n_b = np.bincount(bins, w, _NBINS)
        s_b = np.stack([np.bincount(bins, w * f[:, k], _NBINS) for k in range(2)], axis=1)
        has = n_b > 0
        mean_b = np.zeros_like(s_b)
        mean_b[has] = s_b[has] / n_b[has, None]
        dev = f - mean_b[bins]
        m2_b = np.stack([np.bincount(bins, w * dev[:, k] ** 2, _NBINS) for k in range(2)],
                        axis=1)
        self.merge(Signature(n_b, mean_b, m2_b))

    def merge(self, other: Signature) -> None:
        """Fold another signature's statistics into this one (Chan et al.)."""
        n_a, n_b = self.count, other.count
        n = n_a + n_b
        has = n > 0
        delta = other.mean - self.mean
        mean = self.mean.copy()
        mean[has] += delta[has] * (n_b[has] / n[has])[:, None]
        m2 = self.m2 + other.m2
        m2[has] += delta[has] ** 2 * (n_a[has] * n_b[has] / n[has])[:, None]
        self.count, self.mean, self.m2 = n, mean, m2
        self.sessions += other.sessions

    @property
    def known(self) -> bool:
        """Whether any bin has been learned."""
        return bool(self.count.sum() >= MIN_COUNT)

    def compiled(self) -> CompiledSignature:
        """The signature smoothed along the levels, ready for matching."""
        return CompiledSignature.build(self)

    def to_json(self) -> dict:
        """A JSON-able dict (for the user profile); bins with no data are left out."""
        used = np.flatnonzero(self.count > 0)
        return {"bin_levels": BIN_LEVELS, "sessions": self.sessions,
                "bins": [[int(i), round(float(self.count[i]), 3),
                          *(float(v) for v in self.mean[i]), *(float(v) for v in self.m2[i])]
                         for i in used]}

    @classmethod
    def from_json(cls, data: dict) -> Signature:
        """Back from ``to_json``; raises ValueError on anything malformed."""
        try:
            if float(data["bin_levels"]) != BIN_LEVELS:
                raise ValueError("signature: bins of another width")
            sig = cls(sessions=int(data["sessions"]))
            for row in data["bins"]:
                i, n, m0, m1, v0, v1 = row
                i = int(i)
                if not 0 <= i < _NBINS or not float(n) >= 0:
                    raise ValueError("signature: bin out of range")
                sig.count[i] = float(n)
                sig.mean[i] = (float(m0), float(m1))
                sig.m2[i] = (float(v0), float(v1))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"signature: malformed ({exc})") from None
        if not (np.isfinite(sig.mean).all() and np.isfinite(sig.m2).all()):
            raise ValueError("signature: non-finite values")
        return sig


@dataclass(frozen=True, eq=False)
class CompiledSignature:
    """A signature ready for matching: per bin the expected features and their SD, and
    whether the bin is known; the log-likelihood of a feature pair at many levels."""

    mean: np.ndarray
    sd: np.ndarray
    known: np.ndarray
    background_mean: np.ndarray
    background_sd: np.ndarray
    log_sd: np.ndarray

    @classmethod
    def build(cls, sig: Signature, smooth_bins: float = 1.0) -> CompiledSignature:
        """Smooth ``sig`` with a Gaussian kernel of ``smooth_bins`` bins (count-weighted)."""
        return cls._finish(sig, *cls._smoothed(sig, smooth_bins))

    @staticmethod
    def _smoothed(sig: Signature, smooth_bins: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, sd, known) per bin of ``sig`` smoothed along the levels."""
        k = np.arange(-4, 5)
        kernel = np.exp(-0.5 * (k / smooth_bins) ** 2)
        n = np.convolve(sig.count, kernel, mode="same")
        s = np.stack([np.convolve(sig.count * sig.mean[:, j], kernel, mode="same")
                      for j in range(2)], axis=1)
        ss = np.stack([np.convolve(sig.m2[:, j] + sig.count * sig.mean[:, j] ** 2, kernel,
                                   mode="same") for j in range(2)], axis=1)
        known = n >= MIN_COUNT
        safe = np.maximum(n, 1e-9)[:, None]
        mean = s / safe
        var = np.maximum(ss / safe - mean**2, 0.0)
        return mean, np.sqrt(var + NOISE_FLOOR**2), known

    @classmethod
    def _finish(cls, sig: Signature, mean: np.ndarray, sd: np.ndarray,
                known: np.ndarray) -> CompiledSignature:
        """Extrapolate beyond the known bins and add the background of ``sig``."""
        if known.any() and not known.all():
            # Beyond what was learned the signature is taken to go on as it was at the
            # nearest learned bin, believed less the farther away (EXTRAPOLATION_SD per
            # level): an unlearned place must not look better than a learned one.
            idx = np.flatnonzero(known)
            bins = np.arange(len(known))
            nearest = idx[np.clip(np.searchsorted(idx, bins), 0, len(idx) - 1)]
            before = idx[np.clip(np.searchsorted(idx, bins) - 1, 0, len(idx) - 1)]
            nearest = np.where(np.abs(before - bins) < np.abs(nearest - bins), before, nearest)
            far = np.abs(nearest - bins) * BIN_LEVELS
            mean = np.where(known[:, None], mean, mean[nearest])
            sd = np.where(known[:, None], sd,
                          np.hypot(sd[nearest], far[:, None] * EXTRAPOLATION_SD))
        total = sig.count.sum()
        if total > 0:
            bg_mean = (sig.count[:, None] * sig.mean).sum(axis=0) / total
            bg_var = ((sig.m2 + sig.count[:, None] * (sig.mean - bg_mean) ** 2).sum(axis=0)
                      / total)
        else:
            bg_mean, bg_var = np.zeros(2), np.ones(2)
        return cls(mean, sd, known, bg_mean, np.sqrt(bg_var + NOISE_FLOOR**2),
                   np.log(sd).sum(axis=1))

    def log_likelihood_bins(self, features: tuple[float, float]) -> np.ndarray:
        """log p(features | bin) for every bin: a Gaussian per bin (learned or
        extrapolated) mixed with the whole signature's spread (5 %: what any level might
        show, so that one odd frame cannot rule a place out)."""
        f0, f1 = features
        z0 = (f0 - self._m0) * self._i0
        z1 = (f1 - self._m1) * self._i1
        z0 *= z0
        z1 *= z1
        z0 += z1
        z0 *= -0.5
        z0 += self._own_const
        bm, bs = self.background_mean, self.background_sd
        anywhere = (-0.5 * (((f0 - bm[0]) / bs[0]) ** 2 + ((f1 - bm[1]) / bs[1]) ** 2)
                    - math.log(bs[0] * bs[1]) + math.log(0.05))
        return np.logaddexp(z0, anywhere, out=z0)

    def log_likelihood_many(self, features: np.ndarray) -> np.ndarray:
        """``log_likelihood_bins`` of many frames at once: (k, 2) -> (k, bins)."""
        f = np.asarray(features, dtype=float)
        z0 = (f[:, :1] - self._m0) * self._i0
        z1 = (f[:, 1:] - self._m1) * self._i1
        own = -0.5 * (z0 * z0 + z1 * z1) + self._own_const
        bm, bs = self.background_mean, self.background_sd
        anywhere = (-0.5 * (((f[:, 0] - bm[0]) / bs[0]) ** 2 + ((f[:, 1] - bm[1]) / bs[1]) ** 2)
                    - math.log(bs[0] * bs[1]) + math.log(0.05))
        return np.logaddexp(own, anywhere[:, None])

    def __post_init__(self) -> None:
        # Per-bin constants of log_likelihood_bins (one look costs a few numpy calls).
        object.__setattr__(self, "_m0", np.ascontiguousarray(self.mean[:, 0]))
        object.__setattr__(self, "_m1", np.ascontiguousarray(self.mean[:, 1]))
        object.__setattr__(self, "_i0", 1.0 / self.sd[:, 0])
        object.__setattr__(self, "_i1", 1.0 / self.sd[:, 1])
        object.__setattr__(self, "_own_const", math.log(0.95) - self.log_sd)

    def log_likelihood(self, levels: np.ndarray, features: tuple[float, float]) -> np.ndarray:
        """log p(features | level) for each of ``levels`` (n,)."""
        return self.log_likelihood_bins(features)[level_bin(levels)]

