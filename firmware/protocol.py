"""The roller's published interface: what a frame is and what its flags mean.

Pure Python, no I/O: the host imports this module and nothing else of the firmware.
Units are SI (m, s, N, rad); the wire codecs (added with the Bluetooth link) use
fixed-point integers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntFlag

PROTOCOL_VERSION = 1


class FrameFlag(IntFlag):
    """Bits of ``Frame.flags``. A set bit describes the frame it is in."""

    NONE = 0
    IN_CONTACT = 1 << 0  # a body lies on the roller (total load above the contact threshold)
    IMU_GAP = 1 << 1  # IMU samples were lost just before this frame (FIFO overflow or fault)
    IMU_FAULT = 1 << 2  # the IMU is not answering or gives stale data; position is held
    ADC_FAULT = 1 << 3  # an ADC is not answering; its zones hold their last value
    LOAD_STALE = 1 << 4  # zone loads are older than two scan periods
    BEYOND_FENCE = 1 << 5  # the on-device fence is buzzing the lumbar warning
    UNCALIBRATED = 1 << 6  # the gyro offset has not been calibrated at rest yet
    BACKFILL = 1 << 7  # resent from the journal, not live
    ZEROED = 1 << 8  # the position was zeroed at this frame
    IMU_CLONE = 1 << 9  # WHO_AM_I is not 0x68 (a clone part): works, but unverified


@dataclass(frozen=True, slots=True)
class Frame:
    """One output sample of the roller.

    seq: sequence number, increasing by one per frame from boot.
    t: sensor time of the frame, s since the IMU started sampling (sensor clock).
    position: roll position along the back, m, relative to the zero, positive toward
        the feet.
    velocity: rate of change of position, m/s.
    angle: unwrapped roll angle of the roller, rad.
    zone_loads: force on each pressure zone, N, in zone order along the roller.
    total_load: sum of the zone loads, N.
    flags: ``FrameFlag`` bits.
    """

    seq: int
    t: float
    position: float
    velocity: float
    angle: float
    zone_loads: tuple[float, ...]
    total_load: float
    flags: FrameFlag = FrameFlag.NONE

    def with_flags(self, flags: FrameFlag) -> Frame:
        """A copy with ``flags`` set in addition to its own."""
        return replace(self, flags=self.flags | flags)
