"""Estimators in isolation: gyro offset, zero-g fit, FSR hysteresis, odometry."""

import math

import numpy as np
import pytest

from firmware.config import default_config
from firmware.protocol import FrameFlag
from firmware.samples import ImuBatch
from firmware.sensing.gyro_offset import GyroOffset
from firmware.sensing.load import FsrHysteresis
from firmware.sensing.odometry import G, GravityFit, Odometry
from firmware.sensing.pipeline import SensingPipeline
from firmware.sim.strip import FsrStrip

DT = 0.005
DEG = math.pi / 180


def test_gyro_offset_calibrates_at_rest():
    rng = np.random.default_rng(1)
    off = GyroOffset()
    for _ in range(60):
        off.update(list(0.2 + rng.normal(0, 0.0007, 4)), DT)
    assert off.calibrated and off.offset == pytest.approx(0.2, abs=2e-4)


def test_gyro_offset_ignores_a_slow_steady_roll():
    off = GyroOffset()
    for _ in range(60):
        off.update([0.1] * 4, DT)
    assert off.calibrated
    for _ in range(2000):  # 40 s rolling at 1 deg/s: within the rate threshold
        off.update([0.1 + 1 * DEG] * 4, DT)
    assert off.offset == pytest.approx(0.1, abs=1e-6)


def test_gyro_offset_tracks_through_breathing():
    off = GyroOffset()
    for _ in range(60):
        off.update([0.1] * 4, DT)
    t = 0.0
    for _ in range(6000):  # 2 min still but for breathing, offset moved to 0.11
        rates = [0.11 + 0.01 * math.cos(2 * math.pi * 0.25 * (t + i * DT)) for i in range(4)]
        off.update(rates, DT)
        t += 4 * DT
    assert off.offset == pytest.approx(0.11, abs=1e-3)


@pytest.mark.parametrize("b1, b2", [(0.5, -0.3), (-0.7, 0.6), (0.0, 0.0)])
def test_gravity_fit_recovers_zero_g_offsets(b1, b2):
    fit = GravityFit()
    c = 0.7  # unknown offset between the gyro angle and the true angle
    for t in np.linspace(-2.0, 2.0, 400):
        fit.add(t, G * math.sin(t + c) + b1, G * math.cos(t + c) + b2, 1.0, 0.02)
    fit.solve()
    assert fit.converged
    assert fit.offset == pytest.approx((b1, b2), abs=0.01)


def test_gravity_fit_does_not_guess_from_one_angle():
    fit = GravityFit()
    for _ in range(500):
        fit.add(0.3, G * math.sin(1.0) + 0.5, G * math.cos(1.0), 1.0, 0.02)
    fit.solve()
    assert not fit.converged
    assert abs(fit.offset[0]) < 0.05  # held at the prior, not fitted to the reading


def test_hysteresis_inverse_undoes_the_strip():
    rng = np.random.default_rng(2)
    strip = FsrStrip.calibrated(default_config().zones, rng, creep_per_decade=0.0)
    inverse = FsrHysteresis(1)
    raw = {True: [], False: []}
    fixed = {True: [], False: []}
    for k, t in enumerate(np.arange(0, 20, 0.02)):
        phase = 2 * math.pi * 0.5 * t
        force = 40 + 15 * math.sin(phase)
        g = strip.band_conductance(0, t, (force, force))
        reading = g / strip.sensitivity_s_per_n[0]
        unwound = inverse.unwind(np.array([reading]))[0]
        if k > 50:
            loading = math.cos(phase) > 0
            raw[loading].append(reading - force)
            fixed[loading].append(unwound - force)
    # The strip reads ~10 % high while unloading: a bias that follows the direction.
    assert np.mean(raw[False]) - np.mean(raw[True]) > 2.0
    # Undone, both branches are unbiased but for the ambiguous turn-arounds.
    assert abs(np.mean(fixed[False]) - np.mean(fixed[True])) < 1.0
    assert np.mean(np.abs(fixed[False])) < 0.3 * np.mean(np.abs(raw[False]))


def test_odometry_integrates_a_pure_roll():
    config = default_config()
    od = Odometry(config.roller, config.imu)
    r = od.rolling_radius(300.0)
    theta = 0.0
    for _ in range(100):  # calibrate at rest
        od.update([0.0] * 4, 0.0, G, DT, 300.0)
    w = 1.0  # rad/s for 1 s
    for _ in range(50):
        rates = [w] * 4
        theta += w * 4 * DT
        od.update(rates, G * math.sin(theta), G * math.cos(theta), DT, 300.0)
    assert od.position == pytest.approx(r * 1.0, rel=0.01)
    assert od.velocity == pytest.approx(r * w, rel=0.01)


def rest_then_roll(od: Odometry, seconds: float, rate: float, *, gyro_cap: float = math.inf,
                   skip_s: float = 0.0) -> float:
    """Calibrate ``od`` at rest, then roll it at ``rate`` rad/s for ``seconds`` s with the
    gyro reading at most ``gyro_cap`` rad/s, losing ``skip_s`` s of samples half way;
    return the true turn, rad."""
    for _ in range(100):
        od.update([0.0] * 4, 0.0, G, DT, 300.0)
    theta = 0.0
    for k in range(round(seconds / (4 * DT))):
        gap = skip_s if k == round(seconds / (8 * DT)) else 0.0
        theta += rate * (4 * DT + gap)
        a1, a2 = G * math.sin(theta), G * math.cos(theta) - rate**2 * od.imu_offset
        od.update([min(rate, gyro_cap)] * 4, a1, a2, DT, 300.0, gap_s=gap,
                  clipped=rate >= gyro_cap)
    return theta


def test_the_turn_over_lost_samples_is_taken_from_gravity_once():
    config = default_config()
    od = Odometry(config.roller, config.imu)
    theta = rest_then_roll(od, 1.0, 1.0, skip_s=0.3)
    assert od.position == pytest.approx(od.rolling_radius(300.0) * theta, rel=0.01)


def test_the_turn_a_clipped_gyro_missed_is_taken_from_gravity():
    # 6 rad/s (344 deg/s) read as at most 4.36 rad/s (250 deg/s full scale) for 2 s.
    config = default_config()
    od = Odometry(config.roller, config.imu)
    theta = rest_then_roll(od, 2.0, 6.0, gyro_cap=4.36)
    assert theta > 11.0  # nearly two turns: a third of it beyond the gyro
    assert od.position == pytest.approx(od.rolling_radius(300.0) * theta, abs=3e-3)


def test_a_gyro_reading_at_full_scale_flags_the_frame_clipped():
    config = default_config()
    pipe = SensingPipeline(config)
    rate_col = 3 + "xyz".index(config.imu.roller_axis)

    def batch(first: int, gyro: int) -> ImuBatch:
        rows = np.zeros((4, 6), np.int16)
        rows[:, 2] = 16384  # gravity on z
        rows[:, rate_col] = gyro
        return ImuBatch(first, config.imu.sample_rate_hz, rows)

    clipped = FrameFlag.IMU_CLIPPED
    assert not any(f.flags & clipped for f in pipe.on_imu(batch(0, 32000)))
    assert [bool(f.flags & clipped) for f in pipe.on_imu(batch(4, 32767))] == [True, False]
    assert [bool(f.flags & clipped) for f in pipe.on_imu(batch(8, -32768))] == [True, False]
    assert not any(f.flags & clipped for f in pipe.on_imu(batch(12, -32000)))
    assert pipe.clipped_batches == 2


def stroke_back_and_forth(od: Odometry, seconds: float, gain: float,
                          noise: float = 0.0, seed: int = 0) -> tuple[float, float]:
    """Calibrate at rest, then roll back and forth (strokes of +-0.9 rad at 0.4 Hz,
    over a wandering middle) with the gyro reading ``gain`` times the true rate and
    gravity read with ``noise`` m/s^2 of body motion per batch; (true turn, position)."""
    rng = np.random.default_rng(seed)
    r, d = od.rolling_radius(300.0), od.imu_offset
    if not od.calibrated:
        for _ in range(100):
            od.update([0.0] * 4, 0.0, G, DT, 300.0)
    t, theta = 0.0, od.angle
    w1, w2 = 2 * math.pi * 0.4, 2 * math.pi * 0.01
    for _ in range(round(seconds / (4 * DT))):
        rates, a1, a2 = [], 0.0, 0.0
        for _ in range(4):
            t += DT
            rate = 0.9 * w1 * math.cos(w1 * t) + 0.6 * w2 * math.cos(w2 * t)
            alpha = -0.9 * w1 * w1 * math.sin(w1 * t)
            theta += rate * DT
            rates.append(gain * rate)
            axle = -r * alpha  # the axle's acceleration along the floor
            a1 += (G * math.sin(theta) + axle * math.cos(theta) - alpha * d) / 4
            a2 += (G * math.cos(theta) - axle * math.sin(theta) - rate * rate * d) / 4
        od.update(rates, a1 + noise * rng.standard_normal(),
                  a2 + noise * rng.standard_normal(), DT, 300.0)
    return theta, od.position


def test_a_gyro_three_percent_high_learns_its_scale_from_gravity():
    config = default_config()
    od = Odometry(config.roller, config.imu)
    theta, position = stroke_back_and_forth(od, 240.0, 1.03, noise=0.05)
    assert od.gravity.scale == pytest.approx(1 / 1.03, abs=0.004)
    # the strokes now measure their true length: one more stroke, from here
    start, turn0 = od.position, theta
    theta, position = stroke_back_and_forth(od, 1.25, 1.03)  # half a period: one stroke
    r = od.rolling_radius(300.0)
    assert position - start == pytest.approx(r * (theta - turn0), abs=0.5e-3)


def test_a_stored_scale_is_where_the_roller_starts():
    config = default_config()
    od = Odometry(config.roller, config.imu, gyro_scale=0.98, gyro_scale_sd=0.002)
    assert od.gravity.scale == 0.98
    stroke_back_and_forth(od, 60.0, 1 / 0.98)  # a gyro 2 % high, as stored
    assert od.gravity.scale == pytest.approx(0.98, abs=0.002)
