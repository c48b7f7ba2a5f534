"""What the session store holds, as Python values: records, packed layouts, errors.

``Device``, ``Profile``, ``Session``, ``SessionSummary`` are rows; ``Frames`` and
``Estimates`` a session's frames and spine estimates as numpy arrays; ``SessionData``
a whole session. ``frame_dtype`` and ``ESTIMATE_DTYPE`` are the packed layouts of the
store's blocks (docs/store.md). No I/O here: host/store/database.py reads and writes them.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from host.analysis.frames import FrameColumns

from firmware.protocol import Frame, FrameFlag
from host.analysis.model import Dwell, Estimates, Event, EventKind, Stroke
from host.clock import ClockMap

__all__ = ["APPROXIMATE_START", "CLOSED", "ESTIMATE_DTYPE", "RECORDING", "SEXES", "STATURE_RANGE_M",
           "WARNING_KINDS", "Device", "Estimates", "Frames", "Profile", "Session",
           "SessionData", "SessionSummary", "StoreError", "estimate_dtype", "frame_dtype",
           "frame_key", "newest_estimates"]

RECORDING, CLOSED = "recording", "closed"
"""Session states."""

SEXES = ("female", "male")
"""A profile's ``sex`` (the body model's proportions differ); None: not given."""

STATURE_RANGE_M = (1.2, 2.3)
"""Statures a profile accepts, m (the analysis's body model's range)."""

WARNING_KINDS = (EventKind.LUMBAR_WARNING,)
"""Event kinds counted as warnings in listings (the lumbar buzz)."""

class StoreError(Exception):
    """The store cannot do what was asked: one line for the user (CLI exit status 2)."""


# --------------------------------------------------------------------------- packed rows


def frame_dtype(zone_count: int) -> np.dtype:
    """The packed layout of a stored frame with ``zone_count`` zones (little-endian, no
    padding): boot, seq, sensor t (s), utc (s, NaN: not mapped when stored), position
    (m), velocity (m/s), angle (rad), total load (N), flags, zone loads (N)."""
    return np.dtype([("boot", "<u4"), ("seq", "<u4"), ("t", "<f8"), ("utc", "<f8"),
                     ("position", "<f8"), ("velocity", "<f8"), ("angle", "<f8"),
                     ("total_load", "<f4"), ("flags", "<u2"), ("zones", "<f4", (zone_count,))])


@functools.cache
def frame_struct(zone_count: int) -> struct.Struct:
    """``frame_dtype(zone_count)`` as a ``struct`` packer (one per zone count)."""
    return struct.Struct(f"<IIdddddfH{zone_count}f")


ESTIMATE_DTYPE = np.dtype([("boot", "<u4"), ("seq", "<u4"), ("level", "<f4"),
                           ("region", "i1"), ("p_below_ribs", "<f4"), ("back_m", "<f4"),
                           ("sd_m", "<f4")])
ESTIMATE_STRUCT = struct.Struct("<IIfbfff")


def estimate_dtype() -> np.dtype:
    """The packed layout of a stored spine estimate (region -1: unknown)."""
    return ESTIMATE_DTYPE


def frame_key(boot: np.ndarray, seq: np.ndarray) -> np.ndarray:
    return boot.astype(np.uint64) << np.uint64(32) | seq.astype(np.uint64)


def newest_estimates(rec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Estimate records (in the order stored) -> one per frame, the newest, sorted by
    ``(boot, seq)``; with their keys."""
    keys = frame_key(rec["boot"], rec["seq"])
    if len(keys) > 1 and not bool(np.all(keys[1:] > keys[:-1])):
        order = np.argsort(keys, kind="stable")  # stored order kept among equal keys
        keys = keys[order]
        last = np.append(keys[1:] != keys[:-1], True)
        rec, keys = rec[order][last], keys[last]
    return rec, keys


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Device:
    """A roller the host knows: address, advertised name, first/last seen (UTC s),
    bonded, the Bumble key store its bond is in (None: the OS's, or unknown), and its
    CALIBRATION value as last read (``firmware.protocol.RollerCalibration`` bytes; None:
    never read) with when it was read (UTC s)."""

    address: str
    name: str | None
    first_seen_utc: float
    last_seen_utc: float
    bonded: bool
    key_store: str | None = None
    calibration: bytes | None = None
    calibration_utc: float | None = None


@dataclass(frozen=True)
class Profile:
    """A user: name, stature (m), sex ("female", "male" or None), the analysis's own
    data (``body``: calibration, learned body model; JSON-able, opaque here)."""

    id: int
    name: str
    stature_m: float
    sex: str | None
    body: dict[str, Any]
    created_utc: float
    updated_utc: float


APPROXIMATE_START = (
    "the roller's clock was never mapped for that boot (it rebooted before any host "
    "connected): the session ended by then, in the roller's order; its exact time is "
    "not known")
"""What a start shown as ``<= ... (approx.)`` means (``Session.start_known`` false)."""


@dataclass(frozen=True)
class Session:
    """One rolling session of one device.

    started_utc: when the person started (the daemon decides), s since 1970.
    ended_utc: when it ended (None while recording). last_utc: UTC of the newest frame
    stored (None if none is mapped). state: ``RECORDING`` or ``CLOSED``.
    zone_count: zones per frame (None before the first frame). frame_count: frames
    stored. last_boot: boot id of the newest frames (the default boot of strokes and
    events). start_known: the start is the first frame's UTC; False: its boot was never
    mapped (no host saw it), the start and end are upper bounds (``host.store.dating``):
    show them as approximate, at the latest (``start_text``).
    """

    id: int
    device: str
    profile_id: int | None
    state: str
    started_utc: float
    ended_utc: float | None
    last_utc: float | None
    zone_count: int | None
    frame_count: int
    last_boot: int | None
    start_known: bool = True

    def start_text(self, seconds: bool = True) -> str:
        """The start for people, UTC to the second (to the minute unless ``seconds``):
        ``2026-05-28 20:26:40``, or for a start not known, its bound as
        ``<= 2026-05-28 20:26:40 (approx.)``."""
        from host.timefmt import iso_utc

        text = iso_utc(self.started_utc)[:19 if seconds else 16].replace("T", " ")
        return text if self.start_known else f"<= {text} (approx.)"

    @property
    def end_utc(self) -> float:
        """End for display: ``ended_utc``, else the newest frame, else the start."""
        for value in (self.ended_utc, self.last_utc):
            if value is not None:
                return value
        return self.started_utc

    @property
    def duration_s(self) -> float:
        """From start to end (or to the newest frame while recording), s."""
        return max(0.0, self.end_utc - self.started_utc)


@dataclass(frozen=True)
class SessionSummary:
    """A session with its counts, for listings."""

    session: Session
    stroke_count: int
    warning_count: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: ids, ISO UTC times, duration s, counts, state."""
        from host.timefmt import iso_utc

        s = self.session
        return {"id": s.id, "device": s.device, "start_utc": iso_utc(s.started_utc),
                "end_utc": iso_utc(s.end_utc), "duration_s": round(s.duration_s, 3),
                "frames": s.frame_count, "strokes": self.stroke_count,
                "warnings": self.warning_count, "state": s.state,
                "profile_id": s.profile_id, "start_known": bool(s.start_known)}


@dataclass
class Frames:
    """A session's frames as arrays in ``(boot, seq)`` order (length n).

    boot, seq: uint32. t: sensor time, s. utc: s since 1970 (NaN: the boot's clock was
    never mapped). position (m), velocity (m/s), angle (rad), total_load (N), flags
    (uint16 ``FrameFlag``), zones: (n, zone_count) N.
    """

    boot: np.ndarray
    seq: np.ndarray
    t: np.ndarray
    utc: np.ndarray
    position: np.ndarray
    velocity: np.ndarray
    angle: np.ndarray
    total_load: np.ndarray
    flags: np.ndarray
    zones: np.ndarray

    def __len__(self) -> int:
        return len(self.seq)

    @classmethod
    def from_records(cls, rec: np.ndarray) -> Frames:
        """From packed records (``frame_dtype``)."""
        return cls(rec["boot"].copy(), rec["seq"].copy(), rec["t"].copy(), rec["utc"].copy(),
                   rec["position"].copy(), rec["velocity"].copy(), rec["angle"].copy(),
                   rec["total_load"].astype(np.float64), rec["flags"].copy(),
                   rec["zones"].astype(np.float64))

    def columns(self) -> FrameColumns:
        """The frames as the analysis takes them (the arrays are shared)."""
        from host.analysis.frames import FrameColumns

        return FrameColumns(self.boot.astype(np.int64), self.seq.astype(np.int64), self.t,
                            self.position, self.velocity, self.zones,
                            self.flags.astype(np.int64))

    def frame(self, i: int) -> Frame:
        """Frame ``i`` as a ``Frame``."""
        return Frame(int(self.seq[i]), float(self.t[i]), float(self.position[i]),
                     float(self.velocity[i]), float(self.angle[i]),
                     tuple(float(z) for z in self.zones[i]), float(self.total_load[i]),
                     FrameFlag(int(self.flags[i])), int(self.boot[i]))


@dataclass
class SessionData:
    """A whole session read back: the session, its frames and estimates (aligned
    arrays), strokes, dwells and events (each with the boot its times refer to)."""

    session: Session
    frames: Frames
    estimates: Estimates
    strokes: list[tuple[int | None, Stroke]] = field(default_factory=list)
    dwells: list[tuple[int | None, Dwell]] = field(default_factory=list)
    events: list[tuple[int, int | None, Event]] = field(default_factory=list)
    """``(event id, boot, event)``."""
    clock: ClockMap = field(default_factory=ClockMap)
    """The device's stored SET_TIME exchanges (host/clock.py)."""

    def to_utc(self, boot: int | None, sensor_t: float | None) -> float | None:
        """UTC of sensor time ``sensor_t`` of ``boot`` (None if unknown)."""
        if sensor_t is None or boot is None:
            return None
        return self.clock.to_utc(boot, sensor_t)
