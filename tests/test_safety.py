"""The on-device fence: warn beyond it, stop only back above it by the hysteresis."""

from firmware.protocol import Frame, FrameFlag
from firmware.safety import Fence, FenceAction

C = FrameFlag.IN_CONTACT


def frame(position, flags=C, t=0.0):
    return Frame(0, t, position, 0.0, 0.0, (0.0,), 100.0, flags)


def run(fence, positions, flags=C):
    return [fence.check(frame(p, flags)) for p in positions]


def test_warns_beyond_and_clears_with_hysteresis():
    fence = Fence(0.10, 0.01, 0.02)
    actions = run(fence, [0.0, 0.085, 0.095, 0.101, 0.12, 0.095, 0.089, 0.05])
    assert actions == [FenceAction.NONE, FenceAction.APPROACH, FenceAction.NONE,
                       FenceAction.WARN, FenceAction.NONE, FenceAction.NONE,
                       FenceAction.CLEAR, FenceAction.NONE]


def test_no_warning_without_a_body_on_the_roller():
    fence = Fence(0.10, 0.01, 0.02)
    assert run(fence, [0.2, 0.3], flags=FrameFlag.NONE) == [FenceAction.NONE] * 2


def test_getting_off_beyond_the_fence_stops_the_buzz():
    fence = Fence(0.10, 0.01, 0.02)
    assert run(fence, [0.15])[0] is FenceAction.WARN
    assert fence.check(frame(0.15, FrameFlag.NONE)) is FenceAction.CLEAR


def test_moved_fence_applies_at_once():
    fence = Fence(0.10, 0.01, 0.02)
    assert run(fence, [0.06]) == [FenceAction.NONE]
    fence.set(0.05)
    assert run(fence, [0.06]) == [FenceAction.WARN]


def test_lost_position_on_the_roller_is_a_fault_cue_once():
    fence = Fence(0.10, 0.01, 0.02)
    actions = run(fence, [0.05, 0.05], flags=C | FrameFlag.IMU_FAULT)
    assert actions == [FenceAction.FAULT, FenceAction.NONE]


def test_disabled_fence_is_silent():
    fence = Fence(0.10, 0.01, 0.02, enabled=False)
    assert run(fence, [0.2]) == [FenceAction.NONE]


def test_a_clipped_gyro_brings_the_fence_closer_for_a_while():
    # 10 mm above the fence: quiet, but not while the gyro clips (its position may lag
    # ~15 mm toward the feet), nor until 0.5 s after; then the hysteresis clears it.
    fence = Fence(0.10, 0.01, 0.02)
    assert fence.check(frame(0.09, t=0.0)) is FenceAction.APPROACH
    assert fence.check(frame(0.09, C | FrameFlag.IMU_CLIPPED, t=0.01)) is FenceAction.WARN
    assert fence.check(frame(0.08, t=0.4)) is FenceAction.NONE  # 0.095 with the doubt
    assert fence.check(frame(0.085, t=0.52)) is FenceAction.CLEAR
    assert fence.check(frame(0.099, t=0.6)) is FenceAction.NONE


def test_a_gyro_offset_not_yet_known_brings_the_fence_closer():
    # A roller switched on mid-roll reads its position to ~25 mm until it has learned
    # its gyro offset from gravity's turn (UNCALIBRATED): 20 mm above the fence warns.
    fence = Fence(0.10, 0.01, 0.02)
    assert fence.check(frame(0.08, C | FrameFlag.UNCALIBRATED)) is FenceAction.WARN
    assert fence.check(frame(0.08)) is FenceAction.CLEAR  # known now: 20 mm above it
    fence = Fence(0.10, 0.01, 0.02)
    assert fence.check(frame(0.08)) is FenceAction.NONE  # the same, known: no warning
