"""Drawn parts: every simulated roller is one part within its datasheet, never the ideal."""

import dataclasses
import math

import numpy as np
import pytest

from firmware.sim.ads1115 import Ads1115Sim
from firmware.sim.bus import SimBus
from firmware.sim.clock import SimClock
from firmware.sim.mpu6050 import Mpu6050Sim
from firmware.sim.parts import (
    ADC_GAIN_LIMIT,
    ADC_OFFSET_LIMIT_LSB,
    ADC_RATE_LIMIT,
    FSR_CREEP_LIMIT,
    FSR_HYSTERESIS,
    FSR_HYSTERESIS_RANGE,
    GYRO_CROSS_LIMIT,
    GYRO_GAIN_LIMIT,
    IMU_CLOCK_LIMIT,
    IMU_REGISTER_STARTUP_S,
    AdcPart,
    GaugePart,
    ImuPart,
    Parts,
)
from firmware.sim.scenario import scenario_from_table
from tests.test_mpu6050 import ADDR, fifo_count, frames, read_fifo, rolling, start_fifo

OMEGA_DPS = 30.0  # tests.test_mpu6050.rolling turns about x at 30 deg/s


def imu(part, **kwargs):
    kwargs.setdefault("wake_phase", 1.0)  # a new grid's first sample a period later
    clock = SimClock()
    bus = SimBus(1, clock=clock)
    sim = Mpu6050Sim(clock, rolling, np.random.default_rng(3), gyro_offset_dps=(0, 0, 0),
                     accel_offset_g=(0, 0, 0), gyro_drift_dps_per_sqrt_s=0.0, part=part,
                     **kwargs)
    bus.attach(ADDR, sim)
    return clock, bus, sim


def gyro_rows(bus, clock, seconds=0.2):
    """(n, 3) gyro rates, deg/s, read from the FIFO (gyro only)."""
    start_fifo(bus, fifo_en=0x70)
    clock.advance(seconds)
    return frames(read_fifo(bus, fifo_count(bus)), width=3) / 131.0


def test_parts_are_drawn_within_the_datasheet_and_differ_between_rollers():
    drawn = [Parts.draw(seed) for seed in range(40)]
    for p in drawn:
        assert all(abs(g) <= GYRO_GAIN_LIMIT for g in p.imu.gyro_gain)
        assert all(abs(c) <= GYRO_CROSS_LIMIT for c in p.imu.gyro_cross)
        assert abs(p.imu.clock_error) <= IMU_CLOCK_LIMIT
        assert IMU_REGISTER_STARTUP_S[0] <= p.imu.register_startup_s <= IMU_REGISTER_STARTUP_S[1]
        for a in p.adcs:
            assert abs(a.rate_error) <= ADC_RATE_LIMIT and abs(a.gain_error) <= ADC_GAIN_LIMIT
            assert abs(a.offset_lsb) <= ADC_OFFSET_LIMIT_LSB
    gains = np.array([p.imu.gyro_gain for p in drawn])
    assert gains.std() > GYRO_GAIN_LIMIT / 3  # spread over the tolerance, not ideal parts
    assert len({p.imu.clock_error for p in drawn}) == 40
    assert Parts.draw(5) == Parts.draw(5)  # one roller, the same parts every session


def test_the_scenario_pins_parts_or_asks_for_ideal_ones():
    sc = scenario_from_table({"parts": {"ideal": True, "gyro_gain": [0.03, 0.0, -0.01],
                                        "adc_rate_error": -0.08}})
    parts = Parts.ideal().pinned(dataclasses.asdict(sc.parts))
    assert parts.imu.gyro_gain == (0.03, 0.0, -0.01) and parts.imu.clock_error == 0.0
    assert all(a.rate_error == -0.08 and a.gain_error == 0.0 for a in parts.adcs)
    drawn = Parts.draw(9).pinned({"clock_error": 0.004})
    assert drawn.imu.clock_error == 0.004 and drawn.imu.gyro_gain == Parts.draw(9).imu.gyro_gain


def test_the_strip_creep_is_drawn_per_roller_within_the_datasheet_and_pinned_by_a_key():
    creeps = np.array([Parts.draw(seed).strip.creep_per_decade for seed in range(200)])
    assert np.all((creeps >= 0.0) & (creeps <= FSR_CREEP_LIMIT))
    assert creeps.std() > FSR_CREEP_LIMIT / 4  # spread over 0-5 %, not one value
    sc = scenario_from_table({"parts": {"strip_creep_per_decade": 0.02,
                                        "strip_hysteresis": 0.05}})
    pinned = Parts.draw(3).pinned(dataclasses.asdict(sc.parts))
    assert (pinned.strip.creep_per_decade, pinned.strip.hysteresis) == (0.02, 0.05)
    assert pinned.imu == Parts.draw(3).imu and pinned.adcs == Parts.draw(3).adcs


def test_the_strip_hysteresis_is_drawn_per_roller_around_the_average_and_pinned_by_a_key():
    drawn = np.array([Parts.draw(seed).strip.hysteresis for seed in range(200)])
    low, high = FSR_HYSTERESIS_RANGE
    assert np.all((drawn >= low) & (drawn <= high))
    assert drawn.std() > (high - low) / 4  # spread over 5-15 %, not the nominal 10 %
    assert abs(drawn.mean() - FSR_HYSTERESIS) < 0.01  # about the data sheet's average
    assert Parts.ideal().strip.hysteresis == FSR_HYSTERESIS
    for value in (0.05, 0.15):
        sc = scenario_from_table({"parts": {"strip_hysteresis": value}})
        pinned = Parts.draw(4).pinned(dataclasses.asdict(sc.parts))
        assert pinned.strip.hysteresis == value
        assert pinned.strip.creep_per_decade == Parts.draw(4).strip.creep_per_decade


def test_drawing_the_hysteresis_left_the_other_parts_draws_as_they_were():
    # Seeds 1-4's creeps as measured before the hysteresis was drawn (docs/scenarios.md):
    # the hysteresis comes last of the stream, so nothing before it moved.
    creeps = [Parts.draw(seed).strip.creep_per_decade for seed in (1, 2, 3, 4)]
    assert [round(c * 100, 2) for c in creeps] == [3.98, 1.47, 1.77, 3.21]
    # The stream as it was: every part up to the strip's creep, then nothing more.
    rng = np.random.default_rng([7, 0x9A27])
    ImuPart.draw(rng)
    AdcPart.draw(rng)
    AdcPart.draw(rng)
    GaugePart.draw(rng)
    assert Parts.draw(7).strip.creep_per_decade == float(rng.uniform(0.0, FSR_CREEP_LIMIT))


def test_the_simulated_roller_builds_its_strip_from_its_drawn_part():
    from firmware.sim.rig import SimRoller
    from firmware.sim.scenario import default_scenario

    for seed in (1, 2):
        roller = SimRoller(default_scenario(), seed, replay=False)
        try:
            assert roller.strip.creep_per_decade == Parts.draw(seed).strip.creep_per_decade
            assert roller.strip.hysteresis == Parts.draw(seed).strip.hysteresis
        finally:
            roller.close()
    pinned = dataclasses.replace(default_scenario(), parts=scenario_from_table(
        {"parts": {"strip_hysteresis": 0.15}}).parts)
    roller = SimRoller(pinned, 4, replay=False)  # seed 4 draws 6.4 %
    try:
        assert roller.strip.hysteresis == 0.15
        assert roller.strip.creep_per_decade == Parts.draw(4).strip.creep_per_decade
    finally:
        roller.close()


def test_a_gyro_three_percent_high_reads_three_percent_more_turn():
    clock, bus, _ = imu(ImuPart(gyro_gain=(0.03, 0.0, 0.0)))
    rates = gyro_rows(bus, clock)
    assert rates[:, 0].mean() == pytest.approx(1.03 * OMEGA_DPS, abs=0.05)


def test_cross_axis_terms_leak_the_roll_into_the_other_axes():
    cross = np.zeros((3, 3))
    cross[1, 0], cross[2, 0] = 0.02, -0.015  # y and z see 2 % and -1.5 % of x's rate
    clock, bus, _ = imu(ImuPart(gyro_cross=tuple(cross.ravel())))
    rates = gyro_rows(bus, clock)
    assert rates[:, 1].mean() == pytest.approx(0.02 * OMEGA_DPS, abs=0.05)
    assert rates[:, 2].mean() == pytest.approx(-0.015 * OMEGA_DPS, abs=0.05)


def test_accelerometer_gain_scales_gravity():
    clock, bus, _ = imu(ImuPart(accel_gain=(0.0, 0.0, 0.03)))
    start_fifo(bus, fifo_en=0x08)
    clock.advance(0.02)
    rows = frames(read_fifo(bus, fifo_count(bus)), width=3) / 16384.0
    # at t ~ 0 gravity lies along z (tests.test_mpu6050.rolling): 1.03 g
    assert rows[0, 2] == pytest.approx(1.03, abs=0.01)


def test_a_fast_clock_and_its_warm_up_add_samples():
    clock, bus, _ = imu(ImuPart(clock_error=0.01))
    t0 = start_fifo(bus)
    clock.sleep_until(t0 + 0.4025)
    assert fifo_count(bus) == 12 * 81  # 80 with the nominal clock
    clock, bus, sim = imu(ImuPart(clock_warmup=0.01))  # warms to 1 % fast over 300 s
    start_fifo(bus, fifo_en=0x0)
    period0 = sim._period_s()
    clock.advance(3000.0)
    assert sim._period_s() == pytest.approx(period0 / 1.01, rel=1e-4)


def test_registers_nack_after_a_reset_for_the_start_up_time():
    clock, bus, _ = imu(ImuPart(register_startup_s=0.05))
    assert bus.read_byte_data(ADDR, 0x75) == 0x68  # powered long before the firmware
    bus.write_byte_data(ADDR, 0x6B, 0x80)  # DEVICE_RESET
    clock.advance(0.04)
    with pytest.raises(OSError):
        bus.read_byte_data(ADDR, 0x75)
    clock.advance(0.011)
    assert bus.read_byte_data(ADDR, 0x75) == 0x68


def test_the_gyro_senses_nothing_until_it_has_started():
    clock, bus, _ = imu(ImuPart(gyro_startup_s=0.04))
    rates = gyro_rows(bus, clock, seconds=0.1)[:, 0]  # 200 Hz: samples every 5 ms
    assert np.all(np.abs(rates[:7]) < 0.2)  # samples at 5 .. 35 ms: no rotation (noise)
    assert np.allclose(rates[8:], OMEGA_DPS, atol=0.2)


def test_adc_gain_and_offset_errors_move_the_codes():
    def code(part):
        clock = SimClock()
        bus = SimBus(1, clock=clock)
        adc = Ads1115Sim(clock, lambda t: [1.0, 0.0, 0.0, 0.0], np.random.default_rng(0),
                         rate_error=part.rate_error, gain_error=part.gain_error,
                         offset_lsb=part.offset_lsb)
        bus.attach(0x48, adc)
        bus.write_i2c_block_data(0x48, 0x01, [0xC3, 0xE3])  # AIN0, +-4.096 V, 860 SPS
        clock.advance(0.01)
        msb, lsb = bus.read_i2c_block_data(0x48, 0x00, 2)
        return msb << 8 | lsb

    nominal = code(AdcPart())
    assert nominal == pytest.approx(8000, abs=3)  # 1 V at 8000 LSB/V
    assert code(AdcPart(gain_error=0.0015)) - nominal == pytest.approx(12, abs=3)
    assert code(AdcPart(offset_lsb=3.0)) - nominal == pytest.approx(3, abs=3)
    assert math.isclose(AdcPart().gain_error, 0.0)



def test_the_roller_measures_its_imu_clock_and_keeps_it_for_the_next_boot(tmp_path):
    from firmware.calibration import load_calibration
    from firmware.config import default_config
    from firmware.sim.rig import SimRoller

    sc = scenario_from_table({"session": {"duration_s": 70.0},
                              "parts": {"ideal": True, "clock_error": -0.008}})
    roller = SimRoller(sc, 4, default_config(), state_dir=tmp_path, replay=False)
    roller.run()
    roller.close()
    stored = load_calibration(tmp_path)
    assert stored.imu_clock_ratio == pytest.approx(1 - 0.008, abs=2e-4)
    assert stored.imu_clock_span_s > 60.0
    again = SimRoller(sc, 4, default_config(), session=1, state_dir=tmp_path, replay=False)
    assert again.firmware.imu.rate_ratio == stored.imu_clock_ratio  # from the first sample on
    again.close()


def test_the_bench_follows_a_warming_sample_clock():
    # The part's clock slows by 1 % as its die warms (300-s time constant): one line
    # through the driver's clock at the end misses that by 12 ms at the start of 60 s
    # (and by ~0.15 s over the fault soak's first 100 s); the mapping noted every second
    # (as the host's time syncs note it) does not.
    from firmware.config import default_config
    from firmware.sim.rig import SimRoller

    sc = scenario_from_table({"session": {"duration_s": 60.0},
                              "parts": {"ideal": True, "clock_error": 0.005,
                                        "clock_warmup": -0.01}})
    roller = SimRoller(sc, 4, default_config(), replay=False)
    true_t = {}
    measure = roller.imu._measure

    def noted(times, period):
        rows = measure(times, period)
        for t, row in zip(times, rows, strict=True):
            true_t[row[[0, 1, 2, 4, 5, 6]].astype(">i2").tobytes()] = t
        return rows

    roller.imu._measure = noted
    drain, stamps = roller.firmware.imu.drain, []

    def drained():
        batch = drain()
        if batch is not None:
            for t, row in zip(batch.times(), batch.raw, strict=True):
                stamps.append((t, true_t[row.astype(">i2").tobytes()]))
        return batch

    roller.firmware.imu.drain = drained
    roller.run()
    roller.close()
    sensor_t, world_t = np.array(stamps).T
    late = world_t > 2.0
    error = roller.sensor_to_world(sensor_t[late]) - world_t[late]
    assert len(error) > 10_000 and np.abs(error).max() < 0.005  # 12 ms with one line
