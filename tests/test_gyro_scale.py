"""The gyro's scale, learned from gravity's angle as the roller rolls, and kept per roller."""

import dataclasses
import json
import math

import numpy as np
import pytest

from firmware.calibration import FILE_NAME, Calibration, load_calibration
from firmware.config import default_config
from firmware.sensing.gyro_scale import LIMIT, GyroScale
from firmware.sensing.odometry import G, Odometry
from firmware.sim.rig import SimRoller
from firmware.sim.scenario import default_scenario

DT = 1.0 / 200.0
BEND = (0.4, -0.6)  # zero-g offsets in the plane, m/s^2 (40-60 mg: within the datasheet)
DISTORTION = ((1.025, 0.015), (0.015, 0.975))  # unequal gains and cross-axis terms


def roll(od: Odometry, seconds: float, gyro_gain: float) -> float:
    """Calibrate at rest, then roll back and forth (+-1.2 rad at 0.2 Hz, drifting slowly)
    with the gyro reading ``gyro_gain`` times the true rate and an accelerometer with
    zero-g offsets and a 2x2 distortion; return the true turn since the rest, rad."""
    m = np.array(DISTORTION)
    for _ in range(100):
        a = m @ [0.0, G] + BEND
        od.update([0.0] * 4, a[0], a[1], DT, 300.0)
    t = theta = 0.0
    r, d, w = od.rolling_radius(300.0), od.imu_offset, 2 * math.pi * 0.2
    for _ in range(round(seconds / (4 * DT))):
        rates, acc = [], np.zeros(2)
        for _ in range(4):
            t += DT
            rate = 1.2 * w * math.cos(w * t) + 0.01
            alpha = -1.2 * w * w * math.sin(w * t)
            theta += rate * DT
            rates.append(gyro_gain * rate)
            axle = -r * alpha
            true = np.array([G * math.sin(theta) + axle * math.cos(theta) - alpha * d,
                             G * math.cos(theta) - axle * math.sin(theta) - rate * rate * d])
            acc += (m @ true + BEND) / 4
        od.update(rates, acc[0], acc[1], DT, 300.0)
    return theta


@pytest.mark.parametrize("gain", [0.97, 1.0, 1.03])
def test_a_roller_learns_its_gyro_s_scale_from_gravity_within_0_3_percent(gain):
    config = default_config()
    od = Odometry(config.roller, config.imu)
    roll(od, 100.0, gain)  # 20 strokes each way
    assert od.scale.boot[1] > 0.0  # fitted in this boot
    assert od.scale.scale == pytest.approx(1.0 / gain, abs=0.003)


def test_the_position_follows_the_learned_scale():
    # A gyro 3 % low makes every stroke 3 % short; once the scale is learned, the
    # position moves by the true turn.
    config = default_config()
    od = Odometry(config.roller, config.imu)
    roll(od, 100.0, 0.97)
    r = od.rolling_radius(300.0)
    start, turned = od.position, 0.5
    od.update([0.97 * turned / (4 * DT)] * 4, *_gravity(od.angle + turned), DT, 300.0)
    assert od.position - start == pytest.approx(r * turned, rel=0.005)


def _gravity(theta: float) -> tuple[float, float]:
    a = np.array(DISTORTION) @ [G * math.sin(theta), G * math.cos(theta)] + BEND
    return float(a[0]), float(a[1])


def test_a_stored_scale_is_used_from_boot_and_refined_by_the_boot_s_fit():
    stored = GyroScale(1.02, 1e5)
    assert stored.scale == 1.02 and stored.weight == 1e5
    new = GyroScale()
    assert new.scale == 1.0 and new.weight == 0.0
    assert GyroScale(1.2, 1e5).scale == 1.0 + LIMIT  # never beyond the datasheet's
    config = default_config()
    od = Odometry(config.roller, config.imu, scale=GyroScale(1.0, 1e5))
    roll(od, 100.0, 0.97)
    assert 1.0 < od.scale.scale < 1.0 / 0.97  # between the stored and this boot's
    assert od.scale.weight > 1e5


def test_the_scale_is_kept_across_a_reboot(tmp_path):
    # A roller whose gyro reads 3 % low (within the datasheet) learns it while someone
    # rolls, keeps it in its state directory, and the next boot starts from it.
    base = default_scenario()
    scenario = dataclasses.replace(
        base, session=dataclasses.replace(base.session, duration_s=100.0),
        parts=dataclasses.replace(base.parts, gyro_gain=(-0.03, -0.03, -0.03),
                                  clock_error=0.0, clock_warmup=0.0))
    roller = SimRoller(scenario, seed=3, state_dir=tmp_path, replay=False)
    roller.run()
    learned = roller.firmware.pipeline.odometry.scale.scale
    roller.close()
    stored = json.loads((tmp_path / FILE_NAME).read_text())
    assert stored["gyro_scale"] == pytest.approx(1 / 0.97, abs=0.005)
    assert stored["gyro_scale"] == pytest.approx(learned, abs=5e-4)
    cal = load_calibration(tmp_path)
    assert cal.gyro_scale_weight > 0.0
    assert f"gyro scale {100 * (cal.gyro_scale - 1):+.2f} %" in cal.line()
    again = SimRoller(scenario, seed=3, state_dir=tmp_path, replay=False)
    assert again.firmware.pipeline.odometry.scale.scale == pytest.approx(cal.gyro_scale)
    assert again.firmware.calibration().published().gyro_scale_learned
    again.close()


def test_a_stored_scale_out_of_the_datasheet_s_range_is_ignored(tmp_path, caplog):
    (tmp_path / FILE_NAME).write_text(json.dumps({"version": 1, "gyro_scale": 1.3,
                                                  "gyro_scale_weight": 1e5}))
    assert load_calibration(tmp_path) == Calibration()
    assert "ignoring the stored calibration" in caplog.text
