"""Raw sensor data as the drivers deliver it (before any estimation).

These are what the raw log records and what ``smartroller-fw replay`` feeds back into
the sensing pipeline, so they hold register values, not physical units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

IMU_FIELDS = ("accel_x", "accel_y", "accel_z", "gyro_x", "gyro_y", "gyro_z")


@dataclass(frozen=True, slots=True)
class ImuBatch:
    """Consecutive MPU-6050 samples drained from its FIFO.

    first_index: sensor sample index of ``raw[0]`` (0 = first sample after the FIFO
        was started); the sample time is index / rate_hz, s (the sensor clock).
    rate_hz: sample rate, Hz.
    raw: (n, 6) int16 register values: accel x, y, z then gyro x, y, z (counts).
    gap: samples lost just before ``raw[0]`` (FIFO overflow, fault or restart).
    """

    first_index: int
    rate_hz: float
    raw: np.ndarray
    gap: int = 0

    @property
    def t0(self) -> float:
        """Sensor time of the first sample, s."""
        return self.first_index / self.rate_hz

    def times(self) -> np.ndarray:
        """Sensor time of every sample, s."""
        return (self.first_index + np.arange(len(self.raw))) / self.rate_hz


@dataclass(frozen=True, slots=True)
class ZoneScan:
    """One pass of the ADCs over every pressure zone.

    t: loop-clock time at which the scan completed, s.
    raw: (zones,) int16 ADC conversion codes, in zone order.
    ok: (zones,) bool, False where the ADC did not answer (the code is the last good one).
    """

    t: float
    raw: np.ndarray
    ok: np.ndarray
