"""What the analysis produces, shared by the analysis, the store, the export and the report.

Pure data, no I/O. Times are the roller's sensor time (``Frame.t``, s, of one boot);
the store maps them to UTC and to seconds since the session's start. Positions are the
roller's own coordinates (``Frame.position``: m from the zero, + toward the feet)
unless a name says ``back_m`` (m along the back from C7's spinous process, + toward
the feet, the body model's coordinates).

The host keeps its own names for the spine (the dependency rule: the host imports only
``firmware.protocol`` of the firmware); they match the simulator's body model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum, StrEnum

import numpy as np

__all__ = ["LEVEL_NAMES", "RIB_CAGE_END_LEVEL", "Dwell", "Event", "EventKind", "Region",
           "Estimates", "SpineEstimate", "Stroke", "level_name"]

LEVEL_NAMES = ("C7", *(f"T{i}" for i in range(1, 13)), *(f"L{i}" for i in range(1, 6)))
"""Vertebral levels by index: 0 = C7, 1..12 = T1..T12, 13..17 = L1..L5. A continuous
level ``x`` lies in ``LEVEL_NAMES[floor(x)]``; 13.0 is the T12/L1 junction (the end of
the rib cage, the lumbar fence)."""

RIB_CAGE_END_LEVEL = 13.0
"""Continuous level of the T12/L1 junction."""


def level_name(level: float) -> str:
    """Name of the vertebra at a continuous level ("T9"); "" when unknown (NaN);
    clamped to C7 .. L5 beyond the ends."""
    if not math.isfinite(level):
        return ""
    return LEVEL_NAMES[min(max(int(math.floor(level)), 0), len(LEVEL_NAMES) - 1)]


class Region(IntEnum):
    """Part of the spine over the roller (edges at T1, T5, T9 and L1)."""

    CERVICAL = 0  # above T1
    UPPER_THORACIC = 1  # T1-T4
    MID_THORACIC = 2  # T5-T8
    LOWER_THORACIC = 3  # T9-T12
    LUMBAR = 4  # L1-L5 (and below)

    @classmethod
    def at_level(cls, level: float) -> Region:
        """The region of a continuous level index."""
        if level < 1.0:
            return cls.CERVICAL
        if level < 5.0:
            return cls.UPPER_THORACIC
        if level < 9.0:
            return cls.MID_THORACIC
        if level < RIB_CAGE_END_LEVEL:
            return cls.LOWER_THORACIC
        return cls.LUMBAR

    @property
    def label(self) -> str:
        """Lower-case name for files and tables ("mid_thoracic")."""
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class SpineEstimate:
    """Where on the spine the roller is, at one frame.

    level: continuous vertebral level index (0 = C7, 13 = T12/L1); NaN when unknown
        (off the roller, position lost).
    region: the region at ``level`` (None when unknown).
    p_below_ribs: probability that the contact is below the rib cage (T12/L1), 0..1.
    back_m: estimated contact position, m from C7 along the back (NaN when unknown).
    sd_m: one standard deviation of ``back_m``, m.
    """

    level: float
    region: Region | None
    p_below_ribs: float
    back_m: float
    sd_m: float

    @property
    def level_name(self) -> str:
        """The vertebra's name ("T9"), "" when unknown."""
        return level_name(self.level)


_ESTIMATE_COLUMNS = ("level", "region", "p_below_ribs", "p_near", "back_m", "sd_m")


@dataclass(frozen=True, eq=False)
class Estimates:
    """Per-frame spine estimates as columns aligned with a session's frames (see
    ``SpineEstimate``): the analysis gives them, the store keeps them.

    level: continuous vertebral level (NaN: unknown); region: ``Region`` value (int8, -1
    unknown); p_below_ribs: P(below the rib cage), 0..1 (NaN: none); p_near: P(within
    the approach distance above the ribs, or below), 0..1 (NaN: not stored, the store
    keeps no p_near); back_m, sd_m: place along the back from C7 and its SD, m (NaN:
    unknown). The arrays may be written in place; the columns may not be replaced."""

    level: np.ndarray
    region: np.ndarray
    p_below_ribs: np.ndarray
    p_near: np.ndarray
    back_m: np.ndarray
    sd_m: np.ndarray

    @classmethod
    def unknown(cls, n: int) -> Estimates:
        """n frames with nothing known."""
        nan = np.full(n, np.nan)
        return cls(nan, np.full(n, -1, np.int8), nan.copy(), nan.copy(), nan.copy(),
                   nan.copy())

    @classmethod
    def concat(cls, parts: list[Estimates]) -> Estimates:
        """One after the other."""
        if not parts:
            return cls.unknown(0)
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in _ESTIMATE_COLUMNS))

    def __len__(self) -> int:
        return len(self.level)

    @property
    def known(self) -> np.ndarray:
        """Frames with an estimate (bool array)."""
        return np.isfinite(self.p_below_ribs)

    def take(self, index: np.ndarray | slice) -> Estimates:
        """The rows at ``index``."""
        return Estimates(*(getattr(self, f)[index] for f in
                           _ESTIMATE_COLUMNS))

    def put(self, index: np.ndarray, other: Estimates) -> None:
        """Write ``other`` into the rows at ``index``."""
        for f in _ESTIMATE_COLUMNS:
            getattr(self, f)[index] = getattr(other, f)

    def at(self, i: int) -> SpineEstimate:
        """Row ``i`` as a ``SpineEstimate``."""
        r = int(self.region[i])
        return SpineEstimate(float(self.level[i]), None if r < 0 else Region(r),
                             float(self.p_below_ribs[i]), float(self.back_m[i]),
                             float(self.sd_m[i]))


@dataclass(frozen=True, slots=True)
class Stroke:
    """One rolling movement in one direction, between two reversals (or a dwell).

    index: 0, 1, 2 ... in the session. start_t, end_t: sensor time, s. direction: +1
    toward the feet, -1 toward the head. start_m, end_m: roller position, m from the
    zero. peak_speed_m_s, mean_speed_m_s: speed along the back, m/s. mean_load_n,
    max_load_n: total load on the roller, N. regions: labels of the ``Region``s the
    stroke covered, head to feet (empty until the spine estimate is known).
    """

    index: int
    start_t: float
    end_t: float
    direction: int
    start_m: float
    end_m: float
    peak_speed_m_s: float
    mean_speed_m_s: float
    mean_load_n: float
    max_load_n: float
    regions: tuple[str, ...] = ()

    @property
    def amplitude_m(self) -> float:
        """Length of the stroke along the back, m."""
        return abs(self.end_m - self.start_m)

    @property
    def duration_s(self) -> float:
        """Duration of the movement, s."""
        return self.end_t - self.start_t


@dataclass(frozen=True, slots=True)
class Dwell:
    """The roller held still on the back (a pause on a sore spot, a calibration hold).

    start_t, end_t: sensor time, s. position_m: mean roller position, m from the zero.
    mean_load_n: total load, N.
    """

    start_t: float
    end_t: float
    position_m: float
    mean_load_n: float

    @property
    def duration_s(self) -> float:
        """How long the roller stayed, s."""
        return self.end_t - self.start_t


class EventKind(StrEnum):
    """What an ``Event`` is about."""

    LUMBAR_WARNING = "lumbar_warning"  # below the rib cage: the lumbar buzz
    APPROACH = "approach"  # within the approach band just above the rib cage's end
    ROLLER_FENCE = "roller_fence"  # the roller's own fence buzzed (BEYOND_FENCE frames)
    LONG_STROKE = "long_stroke"  # coaching: strokes longer than the routine's short strokes
    FAST_STROKE = "fast_stroke"  # coaching: strokes faster than a controlled pace
    FENCE_SET = "fence_set"  # the host moved the roller's fence
    CALIBRATION = "calibration"  # a calibration landmark was taken or a calibration ended
    UNCALIBRATED = "uncalibrated"  # analysed with no calibration: the warning's wider margin
    DISCONNECT = "disconnect"  # the Bluetooth link to the roller was lost
    RECONNECT = "reconnect"  # ... and came back
    FRAMES_LOST = "frames_lost"  # frames the roller could not resend (a hole)
    FAULT = "fault"  # a sensor fault flagged by the roller (IMU or ADC)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened in a session, with its times.

    kind: ``EventKind``. start_t: sensor time it began, s. end_t: sensor time it
    ended, s (None: an instant, or still going). message: one human-readable line.
    value: the figure the event is about, in the unit ``message`` names (depth m,
    amplitude m, speed m/s, frames ...), or None.
    """

    kind: EventKind
    start_t: float
    end_t: float | None
    message: str
    value: float | None = None

    @property
    def duration_s(self) -> float | None:
        """How long it lasted, s (None for an instant or an open event)."""
        return None if self.end_t is None else self.end_t - self.start_t
