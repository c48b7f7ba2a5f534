"""The body model: where the vertebral levels lie along the back, from stature.

Positions along the back are m from C7's spinous process, + toward the feet, measured
along the skin (what a roller rolls over). ``boundaries_m[i]`` is where level ``i``
begins: 0 = C7, 1..12 = T1..T12, 13..17 = L1..L5, 18 = the L5/S1 junction. A continuous
level follows (``level_at``): 13.0 is the T12/L1 junction, the end of the rib cage.

Population facts (adults; DESIGN.md section 4, Gray's / Fick): along its curves the
cervical spine is ~8 %, the thoracic ~18 %, the lumbar ~11 % of stature; the vertebral
bodies grow toward T12 (taken as a linear growth of 35 % over the thoracic levels and
8 % over the lumbar ones), C7 is ~16 % of the cervical length. Each region's length
varies between people by ~5 % (1 SD), each level's by ~5 % within its region.
The scapula's inferior angle lies at T8 on average standing (SD 0.9 levels), about one
level lower lying supine: that is where the roller first touches a person who lies back
"with the roller even with the shoulder blades" (placement SD taken as 0.75 level:
people who lie back lower are the ones the warning must not miss).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from host.analysis.model import RIB_CAGE_END_LEVEL

CERVICAL_FRACTION = 0.08
THORACIC_FRACTION = 0.18
LUMBAR_FRACTION = 0.11
C7_SHARE_OF_CERVICAL = 0.16
REGION_SCALE_SD = 0.05
"""Person-to-person SD of a region's length, fraction."""
LEVEL_SD = 0.05
"""SD of one level's length within its region, fraction."""
FIRST_CONTACT_LEVEL = 9.5
"""Where the roller first touches, lying back under the shoulder blades: the scapula's
inferior angle at T8 (8.5) standing, one level lower lying."""
FIRST_CONTACT_LEVEL_SD = math.hypot(0.9, 0.75)
"""Population spread of the inferior angle (0.9 level) and of the placement (0.75).
With 0.5 the prior was confident and wrong for people who first touch at T11.5-T12 (2-2.5
levels low): 2 of 6 of their drifts 17.7 mm below the ribs peaked at P(below) 0.07-0.08;
0.75 is the least of 0.5, 0.75, 0.9, 1.0 that warned all six (chosen on those recorded
sessions, docs/benchmarks.md issue 17: a new user's false alarms 22 -> 42 an hour)."""
STATURE_RANGE_M = (1.2, 2.3)
"""Statures the model accepts, m."""

_THORACIC_WEIGHTS = np.linspace(1.0, 1.35, 12)
_LUMBAR_WEIGHTS = np.linspace(1.0, 1.08, 5)
_LEVELS = np.arange(19, dtype=float)


@dataclass(frozen=True, eq=False)
class BodyModel:
    """One person's spine along the back.

    stature_m: standing height, m. boundaries_m: (19,) level starts, m from C7 (see the
    module docstring). calibrated: the thoracic span (T1..L1) was measured on this
    person (``with_thoracic_span``) rather than taken from stature.
    """

    stature_m: float
    boundaries_m: np.ndarray
    calibrated: bool = False

    @classmethod
    def from_stature(cls, stature_m: float) -> BodyModel:
        """The average spine of a person of ``stature_m`` m."""
        lo, hi = STATURE_RANGE_M
        if not (math.isfinite(stature_m) and lo <= stature_m <= hi):
            raise ValueError(f"stature {stature_m} m outside {lo} .. {hi} m")
        cerv, thor, lumb = (np.array([CERVICAL_FRACTION, THORACIC_FRACTION, LUMBAR_FRACTION])
                            * stature_m)
        spans = np.concatenate(([cerv * C7_SHARE_OF_CERVICAL],
                                thor * _THORACIC_WEIGHTS / _THORACIC_WEIGHTS.sum(),
                                lumb * _LUMBAR_WEIGHTS / _LUMBAR_WEIGHTS.sum()))
        return cls(stature_m, np.concatenate(([0.0], np.cumsum(spans))))

    def with_thoracic_span(self, span_m: float) -> BodyModel:
        """This model with T1..L1 stretched to a measured ``span_m`` (m); the levels keep
        their proportions, C7 and the lumbar levels their lengths."""
        b = self.boundaries_m
        if not 0.5 * self.thoracic_span_m <= span_m <= 1.5 * self.thoracic_span_m:
            raise ValueError(f"thoracic span {span_m * 1e3:.0f} mm is implausible for a "
                             f"stature of {self.stature_m:.2f} m")
        scale = span_m / self.thoracic_span_m
        out = b.copy()
        out[1:14] = b[1] + (b[1:14] - b[1]) * scale
        out[14:] = b[14:] - b[13] + out[13]
        return BodyModel(self.stature_m, out, calibrated=True)

    @property
    def thoracic_span_m(self) -> float:
        """T1 to the T12/L1 junction along the back, m."""
        return float(self.boundaries_m[13] - self.boundaries_m[1])

    @property
    def rib_cage_end_m(self) -> float:
        """The T12/L1 junction, m from C7."""
        return float(self.boundaries_m[int(RIB_CAGE_END_LEVEL)])

    def level_at(self, back_m: float | np.ndarray) -> np.ndarray | float:
        """Continuous level at positions along the back (m from C7); linear beyond."""
        b = self.boundaries_m
        x = np.asarray(back_m, dtype=float)
        lv = np.interp(x, b, _LEVELS)
        lv = np.where(x < 0.0, x / (b[1] - b[0]), lv)
        lv = np.where(x > b[-1], 18.0 + (x - b[-1]) / (b[-1] - b[-2]), lv)
        return float(lv) if lv.ndim == 0 else lv

    def level_at_scalar(self, back_m: float) -> float:
        """``level_at`` for one position (m from C7), without numpy's per-call cost."""
        b = self._boundary_list
        if back_m < 0.0:
            return back_m / (b[1] - b[0])
        if back_m > b[-1]:
            return 18.0 + (back_m - b[-1]) / (b[-1] - b[-2])
        j = min(bisect_right(b, back_m) - 1, len(b) - 2)
        slope = 1.0 / (b[j + 1] - b[j])
        return slope * (back_m - b[j]) + j

    @property
    def _boundary_list(self) -> list[float]:
        cached = self.__dict__.get("_blist")
        if cached is None:
            cached = self.boundaries_m.tolist()
            object.__setattr__(self, "_blist", cached)
        return cached

    def position_at(self, level: float | np.ndarray) -> np.ndarray | float:
        """Position along the back (m from C7) of a continuous level; linear beyond."""
        b = self.boundaries_m
        lv = np.asarray(level, dtype=float)
        x = np.interp(lv, _LEVELS, b)
        x = np.where(lv < 0.0, lv * (b[1] - b[0]), x)
        x = np.where(lv > 18.0, b[-1] + (lv - 18.0) * (b[-1] - b[-2]), x)
        return float(x) if x.ndim == 0 else x

    def level_length_m(self, level: float) -> float:
        """Length along the back of the level containing ``level``, m."""
        i = int(min(max(math.floor(level), 0), 17))
        return float(self.boundaries_m[i + 1] - self.boundaries_m[i])

    def span_sd_m(self, from_level: float, to_level: float) -> float:
        """SD of the distance along the back between two levels across people of this
        stature, m: the region's scale (fully shared) and each level's own jitter. With
        a measured thoracic span, inside T1..L1 the scale is known and the jitter is
        tied by the span's total (a bridge: n (1 - n / 12) level variances)."""
        a, c = sorted((from_level, to_level))
        d = abs(float(self.position_at(c)) - float(self.position_at(a)))
        n = max(c - a, 1e-9)
        level = d / n
        inside = self.calibrated and 1.0 <= a and c <= RIB_CAGE_END_LEVEL
        jitter_var = (LEVEL_SD * level) ** 2 * n * ((1.0 - n / 12.0) if inside else 1.0)
        scale_var = 0.0 if inside else (REGION_SCALE_SD * d) ** 2
        return math.sqrt(max(jitter_var, 0.0) + scale_var)
