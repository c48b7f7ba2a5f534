"""Frames as columns: what the analysis works on, for a batch or a whole session.

``FrameColumns`` holds the fields of ``Frame``s as numpy arrays (SI units, as in
``firmware.protocol.Frame``); ``from_frames`` builds it from frame objects (the live
path), and the store builds it straight from its tables (the offline path).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from firmware.protocol import Frame, FrameFlag

__all__ = ["FrameColumns"]

_FIELDS = ("boot", "seq", "t", "position", "velocity", "zone_loads", "flags")


@dataclass(frozen=True, eq=False)
class FrameColumns:
    """Columns of n frames.

    boot, seq: (n,) int64. t: (n,) sensor time, s. position: (n,) m from the zero.
    velocity: (n,) m/s. zone_loads: (n, zones) N. flags: (n,) int64 ``FrameFlag`` bits.
    """

    boot: np.ndarray
    seq: np.ndarray
    t: np.ndarray
    position: np.ndarray
    velocity: np.ndarray
    zone_loads: np.ndarray
    flags: np.ndarray

    @classmethod
    def from_frames(cls, frames: Sequence[Frame], zone_count: int | None = None
                    ) -> FrameColumns:
        """Columns of ``frames`` (zone_count: for an empty batch, or frames with fewer
        zones, padded with 0)."""
        n = len(frames)
        zones = zone_count if zone_count is not None else (
            max((len(f.zone_loads) for f in frames), default=0))
        loads = np.zeros((n, zones))
        for i, f in enumerate(frames):
            z = f.zone_loads[:zones]
            loads[i, :len(z)] = z
        return cls(
            boot=np.fromiter((f.boot for f in frames), np.int64, n),
            seq=np.fromiter((f.seq for f in frames), np.int64, n),
            t=np.fromiter((f.t for f in frames), float, n),
            position=np.fromiter((f.position for f in frames), float, n),
            velocity=np.fromiter((f.velocity for f in frames), float, n),
            zone_loads=loads,
            flags=np.fromiter((int(f.flags) for f in frames), np.int64, n))

    @classmethod
    def concat(cls, parts: Sequence[FrameColumns], zone_count: int = 0) -> FrameColumns:
        """One after the other (``zone_count``: for no parts at all)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.from_frames([], zone_count)
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))

    def __len__(self) -> int:
        return len(self.t)

    @property
    def total_load(self) -> np.ndarray:
        """(n,) total load, N."""
        return self.zone_loads.sum(axis=1)

    def has(self, flag: FrameFlag) -> np.ndarray:
        """(n,) bool: frames with ``flag`` set."""
        return (self.flags & int(flag)) != 0

    def take(self, index: np.ndarray | slice) -> FrameColumns:
        """The frames at ``index`` (a slice, a boolean mask or indices)."""
        return FrameColumns(*(getattr(self, f)[index] for f in _FIELDS))

    def sorted(self) -> FrameColumns:
        """The frames in (boot, seq) order, each (boot, seq) once (itself when they are
        already: no copy)."""
        db, ds = np.diff(self.boot), np.diff(self.seq)
        if ((db > 0) | ((db == 0) & (ds > 0))).all():
            return self
        order = np.lexsort((self.seq, self.boot))
        cols = self.take(order)
        keep = np.ones(len(cols), dtype=bool)
        keep[1:] = (np.diff(cols.boot) != 0) | (np.diff(cols.seq) != 0)
        return cols.take(keep)

    def frame(self, i: int) -> Frame:
        """Frame ``i`` as a ``Frame`` (angle unknown: 0)."""
        loads = tuple(float(v) for v in self.zone_loads[i])
        return Frame(int(self.seq[i]), float(self.t[i]), float(self.position[i]),
                     float(self.velocity[i]), 0.0, loads, sum(loads),
                     FrameFlag(int(self.flags[i])), int(self.boot[i]))
