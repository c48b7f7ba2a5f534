"""The seam's call: near the dead arc's edges the loads' own steps decide, not the angle."""

from __future__ import annotations

import math

import numpy as np
import pytest

from firmware.config import ZonesConfig
from firmware.sensing.seam import BOTTOM, LIVE, MIN_STEP_N, TOP, SeamCall
from firmware.sim.strip import dead_patches

ZONES = ZonesConfig()
PERIOD = 0.02  # s between scans
SEAM = math.radians(ZONES.seam_angle_deg)
HALF = math.radians(ZONES.dead_arc_deg) / 2
LOADS = [120.0, 80.0, 60.0, 90.0]  # N per channel, both patches conducting


def truth(angle: float) -> int:
    top, bottom = dead_patches(angle, ZONES.seam_angle_deg, ZONES.dead_arc_deg)
    return TOP if top else BOTTOM if bottom else LIVE


def roll(true_angles: np.ndarray, angle_error_rad: float, loads=LOADS, lag_s=None):
    """Run the call over a roll: the firmware's angle ``angle_error_rad`` off the truth;
    each channel reads half its load while its patch is on the arc (truth). ``lag_s``:
    per channel, how much earlier than the angle its zones were sampled (s)."""
    call = SeamCall(ZONES, PERIOD)
    rates = np.gradient(true_angles, PERIOD)
    lag_s = [0.0] * 4 if lag_s is None else lag_s
    got, want, by_angle = [], [], []
    for k, (angle, rate) in enumerate(zip(true_angles, rates, strict=True)):
        sampled = [angle - rate * lag for lag in lag_s]
        sums = [load * (0.5 if truth(a) else 1.0) for load, a in zip(loads, sampled,
                                                                     strict=True)]
        got.append(list(call.calls(angle + angle_error_rad, rate, sums, k * PERIOD)))
        want.append([truth(a) for a in sampled])
        by_angle.append([call.by_angle(angle + angle_error_rad)] * 4)
    return np.array(got), np.array(want), np.array(by_angle)


def strokes(start_rad: float, amplitude_rad: float, step_rad: float, turns: int = 6
            ) -> np.ndarray:
    """Angles rolling back and forth over ``amplitude`` from ``start``, ``step`` a scan."""
    out, angle, direction = [], start_rad, 1.0
    for _ in range(turns):
        for _ in range(int(amplitude_rad / step_rad)):
            angle += direction * step_rad
            out.append(angle)
        direction = -direction
    return np.array(out)


@pytest.mark.parametrize("error_deg", [-1.2, -0.5, 0.5, 1.2])
@pytest.mark.parametrize("centre", [SEAM, SEAM + math.pi])  # the top's arc, the bottom's
def test_the_loads_step_calls_the_edges_the_angle_misplaces(error_deg, centre):
    """An angle off by up to 1.2 deg calls scans near the edges wrongly; the call that
    reads the loads' steps gets every scan right, wherever the scans fall."""
    step = math.radians(2.7)
    misplaced = 0
    for phase in np.linspace(0.0, step, 9, endpoint=False):
        angles = strokes(centre - 0.5 + phase, 1.0, step)
        got, want, by_angle = roll(angles, math.radians(error_deg))
        misplaced += int((by_angle != want).sum())
        assert (got == want).all()
    assert misplaced > 0  # (the angle alone does misplace some)


def test_a_channel_sampled_a_scan_earlier_is_called_for_its_own_time():
    """The pipelined scan samples its first channel a scan period before the others: at
    a brisk roll its patch crosses an edge a scan apart from theirs."""
    angles = strokes(SEAM - 0.5, 1.0, math.radians(3.0)) + 0.007
    got, want, _ = roll(angles, 0.0, lag_s=[PERIOD, 0.004, 0.003, 0.001])
    assert (want[:, 0] != want[:, 1]).any()  # (the channels do differ at times)
    assert (got == want).all()


def test_a_load_that_halves_on_a_parked_roller_is_not_a_seam():
    """Parked just outside an edge, a person lifting off halves the reading: no patch
    crossed the edge, the channel stays live."""
    call = SeamCall(ZONES, PERIOD)
    angle = SEAM + HALF + math.radians(0.5)  # just outside the top's arc
    assert call.calls(angle, 0.0, LOADS, 0.0) == [LIVE] * 4
    assert call.calls(angle, 0.0, [x * 0.4 for x in LOADS], PERIOD) == [LIVE] * 4


def test_a_step_against_the_roll_is_not_a_seam():
    """Rolling out of the arc, a reading that halves is the body's load, not the arc."""
    call = SeamCall(ZONES, PERIOD)
    rate = 0.5  # rad/s, turning away from the seam (past it, growing)
    angle = SEAM + HALF + math.radians(1.0)
    call.calls(angle - rate * PERIOD, rate, LOADS, 0.0)
    assert call.calls(angle, rate, [x * 0.4 for x in LOADS], PERIOD) == [LIVE] * 4


def test_too_little_load_or_a_missed_scan_leaves_the_call_to_the_angle():
    """A channel reading under MIN_STEP_N shows no step; after a missed scan the last
    reading is too old to step from: the angle's call stands."""
    inside = SEAM + HALF - math.radians(0.5)  # the angle says: on the arc
    rate = -2.0  # rad/s, moving in
    call = SeamCall(ZONES, PERIOD)
    light = [MIN_STEP_N / 2] * 4
    call.calls(inside - rate * PERIOD, rate, light, 0.0)
    assert call.calls(inside, rate, light, PERIOD) == [TOP] * 4  # no step: the angle
    call = SeamCall(ZONES, PERIOD)
    call.calls(inside - rate * PERIOD, rate, LOADS, 0.0)
    assert call.calls(inside, rate, LOADS, 4 * PERIOD) == [TOP] * 4  # a gap: the angle


def test_far_from_the_edges_the_angle_calls():
    call = SeamCall(ZONES, PERIOD)
    assert call.calls(SEAM, 0.0, LOADS, 0.0) == [TOP] * 4
    assert call.calls(SEAM + math.pi, 0.0, LOADS, PERIOD) == [BOTTOM] * 4
    assert call.calls(SEAM + math.pi / 2, 0.0, LOADS, 2 * PERIOD) == [LIVE] * 4
