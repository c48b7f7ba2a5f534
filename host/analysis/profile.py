"""What the analysis knows of one user across sessions: the ``UserModel``.

Stature and sex come from the user; the rest is learned from calibrated sessions:

- the thoracic span (T1 to the T12/L1 junction along the back), measured between the
  calibration's two landmarks, pooled over sessions with the population prior;
- where this person first touches the roller when lying back (their habit), as a level;
- the load signature level by level (``host.analysis.signature``).

It is stored as JSON in the user's profile (the store keeps it opaque); ``from_json``
refuses anything malformed with a ValueError naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from host.analysis.anatomy import (
    FIRST_CONTACT_LEVEL,
    FIRST_CONTACT_LEVEL_SD,
    REGION_SCALE_SD,
    BodyModel,
)
from host.analysis.signature import Signature
from host.analysis.spine import LANDMARK_SD_M

SCHEMA = 1
"""Version of the JSON layout."""
PLACEMENT_SD_LEVELS = 0.5
"""How much a person's first contact varies from session to session, levels (1 SD)."""


@dataclass
class UserModel:
    """One user's body as the analysis knows it.

    stature_m: standing height, m. sex: "female", "male" or None. span_m: measured
    thoracic span (T1..L1 along the back) pooled over calibrations, m, or None.
    span_sd_m: its 1 SD, m. first_contact_levels: the level of the first contact in
    each calibrated session. signature: the learned load signature. calibrations:
    calibrated sessions learned from.
    """

    stature_m: float
    sex: str | None = None
    span_m: float | None = None
    span_sd_m: float | None = None
    first_contact_levels: list[float] = field(default_factory=list)
    signature: Signature = field(default_factory=Signature)
    calibrations: int = 0

    def __post_init__(self) -> None:
        BodyModel.from_stature(self.stature_m)  # validates the stature
        if self.sex not in (None, "female", "male"):
            raise ValueError(f"sex: {self.sex!r} is not 'female' or 'male'")

    @property
    def calibrated(self) -> bool:
        """Whether the user has calibrated at least once."""
        return self.span_m is not None

    def body(self) -> BodyModel:
        """The spine model: from stature, with the measured thoracic span if any."""
        body = BodyModel.from_stature(self.stature_m)
        return body.with_thoracic_span(self.span_m) if self.span_m is not None else body

    def prior(self, body: BodyModel) -> tuple[float, float]:
        """(mean, SD) of where the roller's zero (the first contact) is on the back, m
        from C7: this user's habit once learned, else the population's."""
        levels = self.first_contact_levels
        if levels:
            level = sum(levels) / len(levels)
            sd_levels = PLACEMENT_SD_LEVELS * math.sqrt(1.0 + 1.0 / len(levels))
            sd = math.hypot(sd_levels * body.level_length_m(level), LANDMARK_SD_M)
        else:
            level = FIRST_CONTACT_LEVEL
            sd = FIRST_CONTACT_LEVEL_SD * body.level_length_m(level)
            # The fence matters most: add how uncertain T12/L1 is relative to the
            # scapula across people of this stature.
            sd = math.hypot(sd, body.span_sd_m(level, 13.0))
        return float(body.position_at(level)), sd

    def span_prior(self) -> tuple[float, float]:
        """(mean, SD) of the thoracic span before this session's calibration, m."""
        if self.span_m is not None and self.span_sd_m is not None:
            return self.span_m, self.span_sd_m
        span = BodyModel.from_stature(self.stature_m).thoracic_span_m
        return span, REGION_SCALE_SD * span

    def pooled_span(self, measured_span_m: float) -> tuple[float, float]:
        """(span, SD) of the thoracic span after a calibration that measured
        ``measured_span_m`` between its two landmarks (m; each held within
        ``LANDMARK_SD_M``), pooled with what was known before it (``span_prior``), m."""
        prior, prior_sd = self.span_prior()
        meas_sd = math.sqrt(2.0) * LANDMARK_SD_M
        w = prior_sd**-2 + meas_sd**-2
        return (prior * prior_sd**-2 + measured_span_m * meas_sd**-2) / w, w**-0.5

    def learn_calibration(self, span_m: float, span_sd_m: float, first_contact_level: float,
                          signature: Signature) -> None:
        """Fold in one calibrated session: its pooled span, first contact and signature."""
        self.span_m, self.span_sd_m = span_m, span_sd_m
        if math.isfinite(first_contact_level):
            self.first_contact_levels.append(float(first_contact_level))
        signature.sessions = max(signature.sessions, 1)
        self.signature.merge(signature)
        self.calibrations += 1

    # -- JSON -----------------------------------------------------------------------
    def to_json(self) -> dict:
        """A JSON-able dict."""
        return {"schema": SCHEMA, "stature_m": self.stature_m, "sex": self.sex,
                "span_m": self.span_m, "span_sd_m": self.span_sd_m,
                "first_contact_levels": list(self.first_contact_levels),
                "calibrations": self.calibrations, "signature": self.signature.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> UserModel:
        """Back from ``to_json``; ValueError on anything malformed."""
        if not isinstance(data, dict):
            raise ValueError("user model: expected an object")
        if data.get("schema") != SCHEMA:
            raise ValueError(f"user model: schema {data.get('schema')!r}, expected {SCHEMA}")
        try:
            span = data.get("span_m")
            span_sd = data.get("span_sd_m")
            model = cls(
                stature_m=float(data["stature_m"]), sex=data.get("sex"),
                span_m=None if span is None else float(span),
                span_sd_m=None if span_sd is None else float(span_sd),
                first_contact_levels=[float(v) for v in data.get("first_contact_levels", [])],
                signature=Signature.from_json(data["signature"]),
                calibrations=int(data.get("calibrations", 0)))
        except KeyError as exc:
            raise ValueError(f"user model: missing {exc}") from None
        except TypeError as exc:
            raise ValueError(f"user model: malformed ({exc})") from None
        if model.span_m is not None:
            model.body()  # a span that does not fit the stature is refused here
        return model
