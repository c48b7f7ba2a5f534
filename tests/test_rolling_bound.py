"""The odometry's bounds: the raw samples replayed with perfect loads
(host/bench/rolling_bound.py)."""

import dataclasses

import numpy as np
import pytest

from firmware.protocol import FrameFlag
from firmware.samples import ZoneScan
from firmware.sim.rig import SimRoller
from firmware.sim.scenario import default_scenario
from host.bench.rolling_bound import RawRecorder, replay, rolling_bounds
from host.bench.suite import FrameLog, _odometry


def _recorded(stiffness_error: float, seconds: float):
    """An open-loop session of the default person on a roller whose foam is
    ``stiffness_error`` off its profile: the roller, its frames, its raw samples."""
    base = default_scenario()
    scenario = dataclasses.replace(base, roller=dataclasses.replace(
        base.roller, foam_stiffness_error=stiffness_error))
    roller = SimRoller(scenario, 3, replay=False)
    log, raw = FrameLog(), RawRecorder()
    roller.add_sink(log)
    roller.firmware.raw_sinks.append(raw)
    roller.run(until=seconds)
    roller.close()
    return roller, log, raw


@pytest.fixture(scope="module")
def soft():
    return _recorded(-0.2, 90.0)


def _bounds(recorded):
    roller, log, raw = recorded
    return rolling_bounds(roller, raw.items, lambda t, p, f: _odometry(roller, t, p, f)[1])


def test_the_raw_samples_replay_into_the_live_frames(soft):
    roller, log, raw = soft
    fw = roller.firmware
    frames = replay(fw.config, raw.items, boot=fw.boot_id,
                    gyro_scale=fw.start_calibration.start_scale())
    t, position, flags = log.arrays()
    assert len(frames) == len(t) > 8000
    np.testing.assert_array_equal([f.t for f in frames], t)
    np.testing.assert_array_equal([f.position for f in frames], position)


def test_the_true_loads_replace_the_strips_reading_while_a_body_is_on_it(soft):
    roller, _, raw = soft
    fw = roller.firmware
    scans = [t for item, t in raw.items if isinstance(item, ZoneScan)]
    zones = fw.config.zones.count
    truth = {t: [k + 0.5] * zones for k, t in enumerate(scans)}  # a made-up truth, N
    frames = replay(fw.config, raw.items, boot=fw.boot_id, loads=lambda t: truth[t])
    on = [f.total_load / zones for f in frames if f.flags & int(FrameFlag.IN_CONTACT)]
    assert len(on) > 5000  # every frame in contact carries a substituted load
    assert all(x % 1.0 == pytest.approx(0.5) for x in on)
    live = replay(fw.config, raw.items, boot=fw.boot_id)
    assert [f.total_load for f in frames] != [f.total_load for f in live]


def test_a_foam_20_percent_soft_ratchets_even_a_perfect_load_the_oracle_does_not(soft):
    true_foam = _bounds(_recorded(0.0, 90.0))
    # the foam as its profile says: the bound is the oracle, to the last bit
    assert true_foam.bound_mm == true_foam.oracle_mm
    soft_foam = _bounds(soft)
    # the oracle leaves the angle's error alone, which the foam hardly touches ...
    assert abs(soft_foam.oracle_mm - true_foam.oracle_mm) < 0.15
    # ... while the profile's stiffness, 20 % off, ratchets the push read perfectly
    assert soft_foam.bound_mm > soft_foam.oracle_mm + 0.5
