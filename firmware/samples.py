"""Raw sensor data as the drivers deliver it (before any estimation).

These are what the raw log records and what ``smartroller-fw replay`` feeds back into
the sensing pipeline, so they hold register values, not physical units.

The drivers hand them over as they read them (the FIFO's bytes, the scan's codes) and
the arrays are built only when something asks for them (a raw log): a numpy array of a
few values costs ~1-2 us to build on this machine (~20-35x that on a Pi Zero 2 W), ~7 %
of the firmware's loop when two were built every 20 ms, and the sensing pipeline reads
plain lists (``ImuBatch.rows``, ``ZoneScan.codes``, ``ZoneScan.answered``). Treat both as
immutable values.
"""

from __future__ import annotations

import struct

import numpy as np

IMU_FIELDS = ("accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z")

_FIFO_FRAME = struct.Struct(">6h")
"""One MPU-6050 FIFO frame: accel x y z, gyro x y z, big-endian int16."""
_FIFO_FRAMES: dict[int, struct.Struct] = {}
"""Byte length -> the ``Struct`` of that many bytes of whole frames, built as they occur
(a batch is a handful of lengths: 3-5 frames at a 20 ms drain)."""
_BIG_ENDIAN_I2 = np.dtype(">i2")


class ImuBatch:
    """Consecutive MPU-6050 samples drained from its FIFO.

    first_index: sensor sample index of ``raw[0]`` (0 = first sample after the FIFO
        was started); the sample time is index / rate_hz, s (the sensor clock).
    rate_hz: sample rate, Hz.
    raw: (n, 6) int16 register values: accel x, y, z then gyro x, y, z (counts).
    gap: samples lost just before ``raw[0]`` (FIFO overflow, fault or restart).
    """

    __slots__ = ("first_index", "rate_hz", "gap", "_raw", "_fifo")

    def __init__(self, first_index: int, rate_hz: float, raw: np.ndarray, gap: int = 0
                 ) -> None:
        self.first_index = first_index
        self.rate_hz = rate_hz
        self.gap = gap
        self._raw: np.ndarray | None = raw
        self._fifo: bytes | None = None

    @classmethod
    def from_fifo(cls, first_index: int, rate_hz: float, data: bytes, gap: int = 0
                  ) -> ImuBatch:
        """The batch of FIFO bytes ``data`` (whole 12-byte big-endian frames), as read."""
        batch = cls(first_index, rate_hz, None, gap)  # type: ignore[arg-type]
        batch._fifo = data
        return batch

    @property
    def raw(self) -> np.ndarray:
        """(n, 6) int16 register values: accel x, y, z then gyro x, y, z (counts)."""
        raw = self._raw
        if raw is None:
            fifo = self._fifo  # (one of _raw and _fifo is set)
            frames = np.frombuffer(fifo, _BIG_ENDIAN_I2)  # type: ignore[arg-type]
            raw = self._raw = frames.reshape(-1, 6).astype(np.int16)
        return raw

    def rows(self) -> list:
        """The samples as rows of 6 ints (``raw``'s values, without numpy)."""
        if self._fifo is not None:
            return list(_FIFO_FRAME.iter_unpack(self._fifo))
        return self._raw.tolist()  # type: ignore[union-attr]

    def values(self) -> tuple[int, ...] | list[int]:
        """``raw``'s values in one flat sequence, sample after sample (6 ints each: field
        ``k`` of every sample is ``values()[k::6]``), without numpy: one unpack of the
        FIFO's bytes instead of a tuple per sample."""
        fifo = self._fifo
        if fifo is None:
            return self._raw.ravel().tolist()  # type: ignore[union-attr]
        unpack = _FIFO_FRAMES.get(len(fifo))
        if unpack is None:
            unpack = _FIFO_FRAMES[len(fifo)] = struct.Struct(f">{len(fifo) // 2}h")
        return unpack.unpack(fifo)

    def __len__(self) -> int:
        """Samples in the batch."""
        if self._fifo is not None:
            return len(self._fifo) // _FIFO_FRAME.size
        return len(self._raw)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return (f"ImuBatch(first_index={self.first_index}, rate_hz={self.rate_hz}, "
                f"raw={self.raw!r}, gap={self.gap})")

    @property
    def t0(self) -> float:
        """Sensor time of the first sample, s."""
        return self.first_index / self.rate_hz

    def times(self) -> np.ndarray:
        """Sensor time of every sample, s."""
        return (self.first_index + np.arange(len(self))) / self.rate_hz


class ZoneScan:
    """One pass of the ADCs over every pressure zone.

    t: loop-clock time at which the scan completed, s.
    raw: (zones,) int16 ADC conversion codes, in zone order.
    ok: (zones,) bool, False where the ADC did not answer (the code is the last good one).
    """

    __slots__ = ("t", "_raw", "_ok", "_codes", "_answered")

    def __init__(self, t: float, raw: np.ndarray, ok: np.ndarray) -> None:
        self.t = t
        self._raw: np.ndarray | None = raw
        self._ok: np.ndarray | None = ok
        self._codes: list[int] | None = None
        self._answered: list[bool] | None = None

    @classmethod
    def from_lists(cls, t: float, codes: list[int], answered: list[bool]) -> ZoneScan:
        """The scan of ``codes`` (int16 values, zone order) and ``answered`` (its ADC
        answered, per zone), as read; both are copied."""
        scan = cls(t, None, None)  # type: ignore[arg-type]
        scan._codes, scan._answered = codes[:], answered[:]
        return scan

    @property
    def raw(self) -> np.ndarray:
        """(zones,) int16 ADC conversion codes, in zone order."""
        if self._raw is None:
            self._raw = np.array(self._codes, np.int16)
        return self._raw

    @property
    def ok(self) -> np.ndarray:
        """(zones,) bool, False where the ADC did not answer."""
        if self._ok is None:
            self._ok = np.array(self._answered, bool)
        return self._ok

    def codes(self) -> list[int]:
        """``raw`` as a list of ints (without numpy)."""
        return self._codes[:] if self._codes is not None \
            else self._raw.tolist()  # type: ignore[union-attr]

    def answered(self) -> list[bool]:
        """``ok`` as a list of bools (without numpy)."""
        return self._answered[:] if self._answered is not None \
            else self._ok.tolist()  # type: ignore[union-attr]

    def __repr__(self) -> str:
        return f"ZoneScan(t={self.t}, raw={self.raw!r}, ok={self.ok!r})"
