"""The simulated person's body: stature, weight, spine levels, scapulae, back shape.

Positions along the back are metres from C7's spinous process (vertebra prominens),
positive toward the feet, measured along the skin of the back (what a roller rolls
over). The spine is a list of level boundaries: ``boundaries_m[i]`` is where level
``i`` begins, i = 0 for C7, 1..12 for T1..T12, 13..17 for L1..L5, and 18 is the
L5/S1 junction where L5 ends. A continuous level index follows: ``level_at(p) = 12.4``
means 40 % of the way down T12's span; 13.0 is the T12/L1 junction, where the rib cage
ends (the fence). "At Tn" for a landmark means the middle of Tn's span, level n + 0.5.

Proportions (adults, Gray's / Fick, along the curves): cervical ~8 %, thoracic ~18 %,
lumbar ~11 % of stature (~45 % with the sacrum). Every person gets their own region
lengths (scale N(1, 0.05) per region) and their own level lengths (N(1, 0.05) jitter,
renormalised within the region), so counting levels from anatomy on the back is
uncertain, as it is for real people. Scapular spine root at T3; inferior angle at T8 on
average standing (SD 0.9 levels, range T4-T11), one level lower when lying supine.

The lateral load profile (pressure across the back, per metre of roller length) is a sum
of shapes whose weights follow the level under the roller (see ``lateral_profile``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

G = 9.80665
"""Standard gravity, m/s^2."""

LEVEL_NAMES = ("C7", *(f"T{i}" for i in range(1, 13)), *(f"L{i}" for i in range(1, 6)), "S1")
"""Names of the level boundaries in ``Person.boundaries_m`` (S1: where L5 ends)."""

T1, L1, S1 = 1, 13, 18
"""Level indices of the first thoracic, first lumbar and the L5/S1 junction."""

CERVICAL_FRACTION = 0.08
THORACIC_FRACTION = 0.18
LUMBAR_FRACTION = 0.11
"""Region lengths along the curves as fractions of stature (Gray's / Fick)."""

C7_SHARE_OF_CERVICAL = 0.16
"""C7's span as a fraction of the cervical length (7 vertebrae, C7 the largest)."""

_THORACIC_WEIGHTS = np.linspace(1.0, 1.35, 12)  # vertebral bodies grow toward T12
_LUMBAR_WEIGHTS = np.linspace(1.0, 1.08, 5)

STATURE_RANGE_M = (1.50, 2.00)
_STATURE_MEAN_SD_M = {"female": (1.64, 0.07), "male": (1.77, 0.075)}
_BMI_MEAN_SD = (24.0, 3.5)
_BMI_RANGE = (17.0, 40.0)
ROLLER_SHARE_RANGE = (0.25, 0.45)
"""Population range of the share of body weight on the roller while rolling."""


class Region(IntEnum):
    """Part of the spine over the roller."""

    CERVICAL = 0  # above T1
    UPPER_THORACIC = 1  # T1-T4
    MID_THORACIC = 2  # T5-T8
    LOWER_THORACIC = 3  # T9-T12
    LUMBAR = 4  # L1-L5 (and below)


_REGION_EDGES = np.array([1.0, 5.0, 9.0, 13.0])
"""Level indices where Region changes (T1, T5, T9, L1)."""


@dataclass(frozen=True, eq=False)
class Person:
    """One simulated person.

    stature_m: standing height, m (1.50-2.00). sex: "female" or "male".
    weight_kg: body mass, kg. roller_share: share of body weight on the roller while
        rolling with the hips raised (0.15-0.55).
    boundaries_m: (19,) start of each level along the back, m from C7 (see module doc).
    scapula_spine_level: level of the scapular spine root (about 3.5: at T3).
    scapula_inferior_level_standing: level of the scapula's inferior angle standing
        (about 8.5: at T8).
    scapula_offset_m: lateral distance from the spine to the middle of the scapula's
        contact with a roller, m (arms relaxed).
    back_halfwidth_m: half-width of the rib cage's contact with a roller at mid-back, m.
    """

    stature_m: float
    sex: str
    weight_kg: float
    roller_share: float
    boundaries_m: np.ndarray
    scapula_spine_level: float = 3.5
    scapula_inferior_level_standing: float = 8.5
    scapula_offset_m: float = 0.085
    back_halfwidth_m: float = 0.14

    def __post_init__(self) -> None:
        lo, hi = STATURE_RANGE_M
        if not lo <= self.stature_m <= hi:
            raise ValueError(f"stature_m: {self.stature_m} out of range ({lo} .. {hi})")
        if self.sex not in ("female", "male"):
            raise ValueError(f"sex: {self.sex!r} is not 'female' or 'male'")
        if not 0.0 <= self.roller_share <= 0.6:
            raise ValueError(f"roller_share: {self.roller_share} out of range (0 .. 0.6)")
        b = np.asarray(self.boundaries_m, dtype=float)
        if b.shape != (len(LEVEL_NAMES),) or b[0] != 0.0 or np.any(np.diff(b) <= 0):
            raise ValueError("boundaries_m: 19 increasing positions starting at 0 (C7)")
        object.__setattr__(self, "boundaries_m", b)
        ext_lv = np.concatenate(([-20.0], np.arange(len(b), dtype=float), [len(b) + 19.0]))
        ext_p = np.concatenate(([b[0] - 20 * (b[1] - b[0])], b, [b[-1] + 20 * (b[-1] - b[-2])]))
        object.__setattr__(self, "_lv", ext_lv)
        object.__setattr__(self, "_pos", ext_p)

    @property
    def weight_n(self) -> float:
        """Body weight, N."""
        return self.weight_kg * G

    @property
    def rib_cage_end_m(self) -> float:
        """The T12/L1 junction (end of the rib cage, the fence), m from C7."""
        return float(self.boundaries_m[L1])

    @property
    def scapula_inferior_level(self) -> float:
        """Level of the scapula's inferior angle lying supine (one level lower)."""
        return self.scapula_inferior_level_standing + 1.0

    @property
    def scapula_inferior_angle_m(self) -> float:
        """Inferior angle of the scapula lying supine, m from C7."""
        return float(self.position_at(self.scapula_inferior_level))

    @property
    def scapula_spine_m(self) -> float:
        """Root of the scapular spine, m from C7."""
        return float(self.position_at(self.scapula_spine_level))

    def region_length_m(self, region: str) -> float:
        """Length along the back of "thoracic" (T1..T12) or "lumbar" (L1..L5), m."""
        b = self.boundaries_m
        if region == "thoracic":
            return float(b[L1] - b[T1])
        if region == "lumbar":
            return float(b[S1] - b[L1])
        raise ValueError(f"region: {region!r} is not 'thoracic' or 'lumbar'")

    def level_at(self, position_m: float | np.ndarray) -> float | np.ndarray:
        """Continuous level index (0 = C7, 1..12 = T1..T12, 13..17 = L1..L5) at a position
        along the back (m from C7); linear beyond the ends; NaN stays NaN."""
        out = np.interp(position_m, self._pos, self._lv)  # type: ignore[attr-defined]
        return float(out) if np.ndim(out) == 0 else out

    def position_at(self, level: float | np.ndarray) -> float | np.ndarray:
        """Position along the back (m from C7) of a continuous level index."""
        out = np.interp(level, self._lv, self._pos)  # type: ignore[attr-defined]
        return float(out) if np.ndim(out) == 0 else out

    def region_at(self, position_m: float | np.ndarray) -> Region | np.ndarray:
        """``Region`` at a position along the back (m from C7); arrays give int8 codes."""
        level = np.asarray(self.level_at(position_m))
        codes = np.searchsorted(_REGION_EDGES, level, side="right").astype(np.int8)
        return Region(int(codes)) if codes.ndim == 0 else codes

    def lateral_profile(self, x_m: np.ndarray, level: float | np.ndarray,
                        elbows_forward: float = 0.0) -> np.ndarray:
        """Relative pressure across the back (1/m, integral ~1) at lateral positions.

        x_m: (m,) lateral positions from the spine, m. level: scalar or (k,) level under
        the roller. elbows_forward: 0 (arms relaxed) .. 1 (elbows squeezed forward, the
        scapulae protracted out of the way). Returns (m,) or (k, m).

        Shapes: under the scapulae (scapular spine to inferior angle) two humps at
        +-scapula_offset_m; the rib cage a broad flat-topped profile, narrowing over the
        lower ribs; a narrow ridge of spinous processes in the thoracic spine; over the
        lumbar lordosis the middle lifts off and two paraspinal humps remain. Elbows
        forward move the scapular humps out by 4 cm and shift their load to the middle.
        """
        x = np.asarray(x_m, dtype=float)
        lv = np.asarray(level, dtype=float)
        scalar = lv.ndim == 0
        lv = np.atleast_1d(lv)[:, None]
        e = float(np.clip(elbows_forward, 0.0, 1.0))
        w = self.back_halfwidth_m / 0.14  # lateral scale of this body
        under = _window(lv, self.scapula_spine_level - 0.5, self.scapula_inferior_level, 0.5)
        lumbar = _sigmoid((lv - 12.8) / 0.35)
        lower = _sigmoid((lv - 10.0) / 0.8)
        thoracic = 1.0 - lumbar
        scap_w = 0.9 * under * (1.0 - 0.7 * e) * thoracic
        scap_x = self.scapula_offset_m + 0.04 * e
        scap = _gauss(x, scap_x, 0.028 * w) + _gauss(x, -scap_x, 0.028 * w)
        rib_w = thoracic * (1.0 + 0.9 * e * under)
        rib_half = self.back_halfwidth_m * (1.0 - 0.35 * lower)
        ribs = np.exp(-np.abs(x / (0.75 * rib_half)) ** 3) / (1.8 * 0.75 * rib_half)
        ridge = _gauss(x, 0.0, 0.012) * 0.12 * thoracic
        para = (_gauss(x, 0.05 * w, 0.02 * w) + _gauss(x, -0.05 * w, 0.02 * w)) * 0.5
        centre = _gauss(x, 0.0, 0.05 * w) * 0.15
        out = scap_w * scap / 2 + rib_w * ribs + ridge + lumbar * (para + centre)
        return out[0] if scalar else out


def _gauss(x: np.ndarray, mu: float | np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _window(lv: np.ndarray, top: float, bottom: float, soft: float) -> np.ndarray:
    return _sigmoid((lv - top) / soft) * _sigmoid((bottom - lv) / soft)


def spine_boundaries(stature_m: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """(19,) level boundaries along the back (m from C7) for a stature (m).

    Without ``rng`` the average proportions; with it, per-region scales N(1, 0.05)
    (clipped to +-15 %) and per-level jitter N(1, 0.05) renormalised within each region.
    """
    scales = np.ones(3) if rng is None else np.clip(1 + rng.normal(0, 0.05, 3), 0.85, 1.15)
    cerv, thor, lumb = np.array([CERVICAL_FRACTION, THORACIC_FRACTION, LUMBAR_FRACTION]) \
        * scales * stature_m
    tw, lw = _THORACIC_WEIGHTS.copy(), _LUMBAR_WEIGHTS.copy()
    if rng is not None:
        tw *= np.clip(1 + rng.normal(0, 0.05, tw.size), 0.8, 1.2)
        lw *= np.clip(1 + rng.normal(0, 0.05, lw.size), 0.8, 1.2)
    spans = np.concatenate(([cerv * C7_SHARE_OF_CERVICAL], thor * tw / tw.sum(),
                            lumb * lw / lw.sum()))
    return np.concatenate(([0.0], np.cumsum(spans)))


def average_person(stature_m: float = 1.75, sex: str = "male", weight_kg: float = 75.0,
                   roller_share: float = 0.35) -> Person:
    """A person with average proportions (no random variation), for tests and examples."""
    scale = stature_m / 1.75 * (1.05 if sex == "male" else 0.95)
    return Person(stature_m, sex, weight_kg, roller_share, spine_boundaries(stature_m),
                  scapula_offset_m=0.085 * scale, back_halfwidth_m=0.14 * scale)


def sample_person(rng: np.random.Generator, **overrides: object) -> Person:
    """Draw a person from the adult population; keyword overrides fix attributes.

    Overrides (None means "draw it"): stature_m, sex, weight_kg, roller_share.
    Every random number is drawn whatever the overrides, so fixing one attribute leaves
    the others as the same seed would have drawn them.
    Sex 50/50; stature N(1.64, 0.07) m female, N(1.77, 0.075) m male, within 1.50-2.00;
    weight from BMI N(24, 3.5) within 17-40; roller share U(0.25, 0.45); scapular
    inferior angle N(8, 0.9) levels within T4-T11 (standing); body width from stature
    and sex with N(1, 0.04) individual variation.
    """
    allowed = {"stature_m", "sex", "weight_kg", "roller_share"}
    unknown = set(overrides) - allowed
    if unknown:
        raise TypeError(f"sample_person: unknown override {sorted(unknown)[0]!r}")
    sex = "female" if rng.random() < 0.5 else "male"
    sex = str(overrides.get("sex") or sex)
    if sex not in _STATURE_MEAN_SD_M:
        raise ValueError(f"sex: {sex!r} is not 'female' or 'male'")
    mean, sd = _STATURE_MEAN_SD_M[sex]
    stature = _truncated_normal(rng, mean, sd, *STATURE_RANGE_M)
    bmi = _truncated_normal(rng, *_BMI_MEAN_SD, *_BMI_RANGE)
    share = rng.uniform(*ROLLER_SHARE_RANGE)
    inferior = _truncated_normal(rng, 8.0, 0.9, 4.0, 11.0) + 0.5
    spine_root = 3.5 + float(np.clip(rng.normal(0, 0.3), -0.6, 0.6))
    width = float(np.clip(1 + rng.normal(0, 0.04), 0.9, 1.1))
    scap_jitter = float(np.clip(1 + rng.normal(0, 0.06), 0.85, 1.15))
    stature = float(_pick(overrides, "stature_m", stature))
    boundaries = spine_boundaries(stature, rng)
    weight = float(_pick(overrides, "weight_kg", bmi * stature**2))
    share = float(_pick(overrides, "roller_share", share))
    scale = stature / 1.75 * (1.05 if sex == "male" else 0.95) * width
    return Person(stature, sex, weight, share, boundaries,
                  scapula_spine_level=spine_root, scapula_inferior_level_standing=inferior,
                  scapula_offset_m=0.085 * scale * scap_jitter, back_halfwidth_m=0.14 * scale)


def _pick(overrides: dict[str, object], key: str, drawn: float) -> float:
    value = overrides.get(key)
    return drawn if value is None else float(value)  # type: ignore[arg-type]


def _truncated_normal(rng: np.random.Generator, mean: float, sd: float,
                      lo: float, hi: float) -> float:
    """One draw of N(mean, sd) within [lo, hi] (rejection; a fixed number of draws)."""
    draws = rng.normal(mean, sd, 16)
    ok = draws[(draws >= lo) & (draws <= hi)]
    return float(ok[0]) if ok.size else float(np.clip(mean, lo, hi))
