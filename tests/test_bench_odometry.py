"""The bench's odometry scoring outside the faults' windows (host/bench/suite.py)."""

import numpy as np

from firmware.protocol import FrameFlag
from firmware.sim.scenario import load_scenario
from host.bench.suite import FAULT_SETTLE_S, errors_outside_windows, fault_windows, position_errors

FLAGS = int(FrameFlag.ZEROED | FrameFlag.IN_CONTACT)


def _run(lost_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A roller rolling 0.1 m/s for 20 s that loses ``lost_m`` of its turn at 10 s and
    drifts 1 mm/s after 10.5 s."""
    t = np.arange(0.0, 20.0, 0.01)
    truth = 0.1 * t
    est = truth + np.where(t >= 10.0, lost_m, 0.0) + np.where(t >= 10.5, (t - 10.5) * 1e-3, 0.0)
    return t, est, np.full(len(t), FLAGS), truth


def test_a_turn_lost_inside_a_fault_window_is_left_out_what_follows_is_not():
    t, est, flags, truth = _run(lost_m=0.030)
    whole = position_errors(t, est, flags, t, truth)
    assert np.max(np.abs(whole)) > 0.030  # every frame: the lost turn stays for good
    outside = errors_outside_windows(t, est, flags, t, truth, [(10.0, 10.5)])
    assert np.max(np.abs(outside)) < 0.0095 + 1e-9  # only the drift after the window
    assert np.max(np.abs(outside)) > 0.009  # ... which is still scored
    assert len(outside) == len(whole) - 50  # the window's 0.5 s of frames left out


def test_with_no_window_it_is_the_whole_error():
    t, est, flags, truth = _run(lost_m=0.030)
    np.testing.assert_allclose(errors_outside_windows(t, est, flags, t, truth, []),
                               position_errors(t, est, flags, t, truth))


def test_the_fault_soak_windows_are_its_brownouts():
    scenario = load_scenario("firmware/sim/scenarios/fault-soak.toml")
    windows = fault_windows(scenario)
    assert [a for a, _ in windows] == scenario.faults.imu_brownouts_s
    assert all(b - a == FAULT_SETTLE_S for a, b in windows)
