"""The on-device lumbar fence: the roller warns by itself, host or no host.

The fence is a position along the back (m from the zero, toward the feet) below which
the lumbar spine is under the roller. The host moves it once it knows the body (set
fence); until then the profile's conservative default holds. Crossing it while a body
is on the roller starts the lumbar warning at once (the next frame, so within one
FIFO drain of the sensor sample); it stops only when the roller is back above the fence
by the hysteresis. A gentle approach cue is given once each time the roller enters the
band just above the fence.

While the gyro is clipped (``IMU_CLIPPED``, and ``CLIP_HOLD_S`` after), the position is
good only to ~15 mm (the turn beyond the gyro's range comes from gravity), so the fence
takes the roller to be ``CLIP_DOUBT_M`` further toward the feet than it reads: fast
rolling toward the lumbar spine is warned early rather than late. Likewise while the
gyro offset is not known yet (``UNCALIBRATED``: a roller switched on while someone
rolls learns it from gravity's turn within seconds, and its position is good only to
~25 mm until then), by ``UNCALIBRATED_DOUBT_M``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from firmware.config import FenceConfig
from firmware.protocol import Frame, FrameFlag

CLIP_DOUBT_M = 0.015  # how far a clipped gyro's position may lag toward the feet, m
CLIP_HOLD_S = 0.5  # the doubt holds this long after the last clipped frame, s
UNCALIBRATED_DOUBT_M = 0.03  # how far the position may be off while the gyro offset is
# not known: the datasheet's 20 deg/s over the fit's first second on a 76 mm radius, m

# The flags as plain ints: a bit test on a FrameFlag builds a new FrameFlag (~1 us).
_IN_CONTACT = int(FrameFlag.IN_CONTACT)
_IMU_FAULT = int(FrameFlag.IMU_FAULT)
_IMU_CLIPPED = int(FrameFlag.IMU_CLIPPED)
_UNCALIBRATED = int(FrameFlag.UNCALIBRATED)


class FenceAction(Enum):
    """What the haptic motor should do after a frame."""

    NONE = "none"
    APPROACH = "approach"  # gentle cue: close to the fence
    WARN = "warn"  # start the lumbar warning
    CLEAR = "clear"  # stop the lumbar warning
    FAULT = "fault"  # position unknown on the roller: cannot keep the fence


@dataclass
class Fence:
    """State machine of the fence. Positions in m from the zero, toward the feet."""

    position_m: float
    hysteresis_m: float
    approach_m: float
    enabled: bool = True
    beyond: bool = False
    near: bool = False
    faulted: bool = False
    clipped_until_s: float = -1.0  # sensor time until which the clip's doubt holds, s

    @classmethod
    def from_config(cls, config: FenceConfig) -> Fence:
        """A fence with the profile's defaults."""
        return cls(config.position_m, config.hysteresis_m, config.approach_m, config.enabled)

    def set(self, position_m: float, hysteresis_m: float | None = None,
            approach_m: float | None = None) -> None:
        """Move the fence (the host's set-fence command), m."""
        self.position_m = position_m
        if hysteresis_m is not None:
            self.hysteresis_m = hysteresis_m
        if approach_m is not None:
            self.approach_m = approach_m

    def check(self, frame: Frame) -> FenceAction:
        """Update with one frame; return what the motor should do."""
        flags = int(frame.flags)
        contact = bool(flags & _IN_CONTACT)
        if flags & _IMU_FAULT:
            if contact and self.enabled and not self.faulted:
                self.faulted = True
                return FenceAction.FAULT
            return FenceAction.NONE
        self.faulted = False
        if not self.enabled or not contact:
            self.near = False
            if self.beyond:
                self.beyond = False
                return FenceAction.CLEAR
            return FenceAction.NONE
        p = frame.position
        if flags & _IMU_CLIPPED:
            self.clipped_until_s = frame.t + CLIP_HOLD_S
        if frame.t <= self.clipped_until_s:
            p += CLIP_DOUBT_M
        if flags & _UNCALIBRATED:
            p += UNCALIBRATED_DOUBT_M
        if self.beyond:
            if p < self.position_m - self.hysteresis_m:
                self.beyond = False
                self.near = p > self.position_m - self.approach_m
                return FenceAction.CLEAR
            return FenceAction.NONE
        if p > self.position_m:
            self.beyond = True
            return FenceAction.WARN
        near = p > self.position_m - self.approach_m
        entered = near and not self.near
        self.near = near
        return FenceAction.APPROACH if entered else FenceAction.NONE
