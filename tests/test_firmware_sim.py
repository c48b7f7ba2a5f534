"""The unchanged firmware on emulated hardware, end to end, scored against the truth."""

import dataclasses
import math

import numpy as np
import pytest

from firmware.calibration import Calibration, save_calibration
from firmware.config import default_config
from firmware.protocol import FrameFlag
from firmware.rawlog import RawLogWriter
from firmware.replay import replay
from firmware.samples import ImuBatch
from firmware.sim.pins import duty_log
from firmware.sim.rig import SimRoller
from firmware.sim.scenario import SCENARIO_DIR, load_scenario, scenario_from_table
from host.bench.power_on import POWER_ON_S, SETTLE_S, power_on_scenario
from host.bench.suite import FrameLog, position_errors, rolled_distance

DEMO = load_scenario(SCENARIO_DIR / "demo.toml")


class Frames(list):
    def __call__(self, frame):
        self.append(frame)


def rolling_error_after(roller, frames, t_world):
    """Mean |position error| (m) against the distance rolled, over frames in contact
    after world time ``t_world`` (both taken from the first zeroed frame)."""
    return float(np.mean(np.abs(rolling_errors_after(roller, frames, t_world))))


def rolling_errors_after(roller, frames, t_world):
    """Position errors (m) against the distance rolled, over frames in contact after
    world time ``t_world`` (both taken from the first zeroed frame)."""
    t_w = roller.sensor_to_world(np.array([f.t for f in frames]))
    position = np.array([f.position for f in frames])
    flags = np.array([int(f.flags) for f in frames])
    truth = np.interp(t_w, roller.world.truth.t,
                      np.nan_to_num(rolled_distance(roller.world.truth)))
    first = np.flatnonzero(flags & int(FrameFlag.ZEROED))[0]
    error = (position - position[first]) - (truth - truth[first])
    late = (t_w > t_world) & ((flags & int(FrameFlag.IN_CONTACT)) != 0)
    return error[late]


def roller_with_frames(seed=7, scenario=DEMO):
    roller = SimRoller(scenario, seed)
    frames = Frames()
    roller.add_sink(frames)
    return roller, frames


@pytest.fixture(scope="module")
def demo_run():
    roller, frames = roller_with_frames()
    log = FrameLog()
    roller.add_sink(log)
    roller.run()
    roller.close()
    return roller, frames, log


def test_frames_flow_at_the_frame_rate_by_the_sensor_clock(demo_run):
    roller, frames, _ = demo_run
    seqs = np.array([f.seq for f in frames])
    times = np.array([f.t for f in frames])
    assert np.all(np.diff(seqs) == 1)
    assert np.allclose(np.diff(times), 0.01)
    # 100 frames a second of the sensor's clock, which is this drawn part's (+-1 %)
    clock = 1 + roller.parts.imu.clock_error
    assert len(frames) == pytest.approx(roller.duration_s * 100 * clock, rel=0.003)
    assert all(len(f.zone_loads) == 8 for f in frames)
    assert roller.firmware.imu.overflows == 0
    assert roller.firmware.scanner.scans / roller.duration_s > 49


def test_position_follows_the_rolled_distance(demo_run):
    roller, _, log = demo_run
    t, position, flags = log.arrays()
    truth = roller.world.truth
    errors = position_errors(roller.sensor_to_world(t), position, flags, truth.t,
                             rolled_distance(truth))
    assert len(errors) > 2000
    assert np.sqrt(np.mean(errors**2)) < 3e-3


def test_load_follows_the_body_on_the_roller(demo_run):
    roller, _, log = demo_run
    t, _, flags = log.arrays()
    truth = roller.world.truth.total_load_n
    true_load = np.interp(roller.sensor_to_world(t), roller.world.truth.t, truth)
    on = (flags & int(FrameFlag.IN_CONTACT)) != 0
    assert on.sum() > 2000
    # FSR part spread, hysteresis and creep: within 20 % of the true load.
    assert np.median(np.abs(np.array(log.load)[on] / true_load[on] - 1)) < 0.2
    assert not on[-1]  # the person got off: no contact at the end


def test_button_press_zeroes_and_acknowledges(demo_run):
    roller, frames, _ = demo_run
    press_t = next(t for t, length in roller.world.events if length < 1.0)  # not the hold
    log = duty_log(roller.pins, roller.config.pins.motor_pwm)
    assert any(press_t < t < press_t + 0.5 and duty > 0 for t, duty in log)
    zeroed = [f for f in frames if f.flags & FrameFlag.ZEROED]
    assert zeroed and zeroed[0].flags & FrameFlag.IN_CONTACT
    assert abs(zeroed[0].position) < 1e-3


def test_button_press_on_the_roller_marks_the_spot_without_zeroing():
    sc = scenario_from_table({"session": {"duration_s": 40.0}, "routine": {"calibration": True}})
    roller, frames = roller_with_frames(seed=5, scenario=sc)
    roller.run(until=30.0)
    roller.close()
    landmarks = roller.world.routine.landmarks
    assert [m.name for m in landmarks] == ["top", "bottom"]
    marks = [f for f in frames if f.flags & FrameFlag.BUTTON]
    assert len(marks) == len(landmarks)
    for mark, landmark in zip(marks, landmarks, strict=True):
        world_t = float(roller.sensor_to_world(np.array([mark.t]))[0])
        assert landmark.press_s < world_t < landmark.press_s + 0.5  # on release, < 0.3 s
        assert mark.flags & FrameFlag.IN_CONTACT and not mark.flags & FrameFlag.ZEROED
    zeroed = [f for f in frames if f.flags & FrameFlag.ZEROED]
    assert len(zeroed) == 1  # only the first contact after the press off the roller
    top, bottom = (m.position for m in marks)
    held = landmarks[1].held_m - landmarks[0].held_m
    assert bottom - top == pytest.approx(held, abs=0.01)  # roller odometry between the marks


def test_fence_buzzes_by_itself_within_50_ms(demo_run):
    roller, frames, _ = demo_run
    beyond = [f for f in frames if f.flags & FrameFlag.BEYOND_FENCE]
    assert beyond, "the demo drifts below the ribs: the roller must warn"
    first = beyond[0]
    assert first.position > roller.config.fence.position_m
    crossing = float(roller.sensor_to_world(np.array([first.t]))[0])
    log = duty_log(roller.pins, roller.config.pins.motor_pwm)
    on = [t for t, duty in log if t >= crossing - 0.01 and duty > 0.9]
    assert on and on[0] - crossing <= 0.05


def test_fifo_overflow_is_reported_and_tracking_resumes():
    roller, frames = roller_with_frames()
    roller.run(until=12.0)
    fw = roller.firmware
    fw._next_drain = roller.clock.now() + 1.0  # the loop stalls for a second
    roller.run(until=20.0)
    assert fw.imu.overflows >= 1
    gaps = [f for f in frames if f.flags & FrameFlag.IMU_GAP]
    assert gaps
    after = [f for f in frames if f.t > gaps[0].t]
    assert np.all(np.diff([f.seq for f in after]) == 1)
    assert np.all(np.diff([f.t for f in after]) > 0)
    # the ~60 deg turned while samples were lost was taken back from gravity
    assert rolling_error_after(roller, frames, 14.0) < 2e-3


def test_vanished_imu_gives_flagged_frames_then_recovers():
    roller, frames = roller_with_frames()
    roller.run(until=10.0)
    roller.imu.vanish()
    roller.run(until=12.0)
    faulted = [f for f in frames if f.flags & FrameFlag.IMU_FAULT]
    assert len(faulted) > 100  # loads keep flowing with the position held
    assert len({round(f.position, 9) for f in faulted}) == 1
    roller.imu.reappear()
    roller.run(until=16.0)
    assert not frames[-1].flags & FrameFlag.IMU_FAULT
    assert frames[-1].t > faulted[-1].t
    assert roller.firmware.imu.reinits >= 1
    # The turn meanwhile is taken from gravity; 10 s in, the accelerometer's zero-g
    # offsets are not known yet, which leaves up to ~5 deg (6 mm) of it, and the drawn
    # part's unequal axis gains (+-3 % each) up to ~1.7 deg (2 mm) more.
    assert rolling_error_after(roller, frames, 13.0) < 8e-3


def test_vanished_adc_flags_its_zones_and_recovers():
    roller, frames = roller_with_frames()
    roller.run(until=10.0)
    roller.adcs[1].vanish()
    roller.run(until=12.0)
    assert frames[-1].flags & FrameFlag.ADC_FAULT
    held = [f.zone_loads[4:] for f in frames[-50:]]
    assert all(h == held[0] for h in held)  # zones 5-8 hold their last value
    roller.adcs[1].reappear()
    roller.run(until=14.5)
    assert not frames[-1].flags & FrameFlag.ADC_FAULT


def test_spontaneous_imu_reset_is_recovered():
    roller, frames = roller_with_frames()
    roller.run(until=10.0)
    roller.imu.spontaneous_reset()
    roller.run(until=14.0)
    assert roller.firmware.imu.reinits >= 1
    assert frames[-1].t > 13.0 - 1.0
    assert not frames[-1].flags & FrameFlag.IMU_FAULT


def test_replay_of_the_raw_log_gives_the_live_frames(tmp_path):
    roller, frames = roller_with_frames()
    path = tmp_path / "session.srraw"
    with path.open("wb") as fh:
        writer = RawLogWriter(fh, roller.config, "test")
        roller.firmware.raw_sinks.append(writer.write)
        roller.run(until=20.0)
        writer.close()
    replayed = list(replay(path))
    assert len(replayed) == len(frames)
    for live, again in zip(frames, replayed, strict=True):
        assert again.seq == live.seq and again.t == live.t
        assert again.position == live.position and again.zone_loads == live.zone_loads
        assert again.flags == live.flags & ~FrameFlag.BEYOND_FENCE


def test_replay_of_a_roller_that_learned_its_parts_gives_the_live_frames(tmp_path):
    # A roller whose gyro reads 2.5 % low and whose IMU clock runs 0.6 % fast, and which
    # learned both in an earlier session (its state directory says so): the log's header
    # carries what it started from (without it: positions off by up to 2.2 mm in 20 s).
    parts = dataclasses.replace(DEMO.parts, gyro_gain=[-0.025] * 3, clock_error=0.006,
                                clock_warmup=0.0)
    scenario = dataclasses.replace(DEMO, parts=parts)
    learned = Calibration(imu_clock_ratio=1.006, imu_clock_span_s=300.0,
                          gyro_scale=1 / 0.975, gyro_scale_weight=2e5, updated_utc=1.7e9)
    save_calibration(tmp_path, learned)
    roller = SimRoller(scenario, 7, state_dir=tmp_path, replay=False)
    assert roller.firmware.imu.rate_ratio == learned.imu_clock_ratio  # it starts from them
    assert roller.firmware.pipeline.odometry.scale.scale == learned.gyro_scale
    frames = Frames()
    roller.add_sink(frames)
    path = tmp_path / "session.srraw"
    with path.open("wb") as fh:
        writer = RawLogWriter(fh, roller.config, "test", roller.firmware.start_calibration,
                              roller.firmware.boot_id, roller.firmware.pipeline.seq)
        roller.firmware.raw_sinks.append(writer.write)
        roller.run(until=36.0)  # its first fit of the scale lands after 30 s
        writer.close()
    roller.close()
    assert roller.firmware.pipeline.odometry.scale.scale != learned.gyro_scale  # refined
    replayed = list(replay(path))
    assert len(replayed) == len(frames)
    assert [f.seq for f in replayed] == [f.seq for f in frames]
    assert {f.boot for f in replayed} == {f.boot for f in frames} == {roller.firmware.boot_id}
    assert [f.t for f in replayed] == [f.t for f in frames]
    assert [f.flags for f in replayed] == [f.flags & ~FrameFlag.BEYOND_FENCE for f in frames]
    assert [f.zone_loads for f in replayed] == [f.zone_loads for f in frames]
    assert [f.position for f in replayed] == [f.position for f in frames]


def test_roller_reads_its_adcs_by_ready_pin_and_combined_transactions():
    roller, frames = roller_with_frames()
    roller.run(until=3.0)
    scanner = roller.firmware.scanner
    transactions, scans = roller.bus.transactions, scanner.scans
    roller.run(until=6.0)
    # 8 for the 8 zones (pipelined: a scan's last step starts the next scan; each ready
    # pin's check, once a second, costs 2 more), 2 for the IMU drained with each scan
    per_scan = (roller.bus.transactions - transactions) / (scanner.scans - scans)
    assert 10 <= per_scan <= 10 + 2 * 2 * 2 / 50
    assert scanner.pin_faults == scanner.faults == scanner.resets == 0


def test_a_cut_ready_wire_in_the_roller_is_reported_and_the_loads_keep_flowing(caplog):
    roller, frames = roller_with_frames()
    roller.run(until=3.0)
    with caplog.at_level("WARNING"):
        roller.ready_lines[1].cut(roller.clock.now())
        roller.run(until=6.0)
    assert roller.firmware.scanner.faulted_pins == [roller.config.pins.adc_ready[1]]
    assert "ALERT/RDY" in caplog.text
    late = [f for f in frames if f.t > 3.5]
    assert late and not any(f.flags & (FrameFlag.ADC_FAULT | FrameFlag.LOAD_STALE)
                            for f in late)
    assert roller.firmware.scanner.scans / roller.clock.now() > 49


def test_every_sample_reaches_the_fence_within_one_drain_period():
    roller, _ = roller_with_frames()
    drains = []

    def on_raw(item, now):
        if isinstance(item, ImuBatch):
            drains.append((now, item))

    roller.firmware.raw_sinks.append(on_raw)
    roller.run(until=10.0)
    times = np.array([now for now, _ in drains])
    assert np.diff(times).max() <= 0.02 + 1e-9
    # a sample's age when its batch is drained (and its frames meet the fence)
    imu = roller.firmware.imu
    ages = [now - roller.sensor_to_world(np.array([b.t0]))[0] for now, b in drains]
    assert max(ages) <= 0.02 + 1 / imu.rate_hz


@pytest.mark.parametrize("gyro_range_dps", [250, 500])
def test_fast_rolling_beyond_the_gyro_range_is_flagged_and_logged(gyro_range_dps, caplog):
    # 20-25 cm strokes at 60 a minute: 0.37-0.47 m/s, 300-380 deg/s at the peak.
    sc = scenario_from_table({"session": {"duration_s": 45.0},
                              "routine": {"cadence_per_min": [60.0, 60.0],
                                          "stroke_length_m": [0.20, 0.25],
                                          "excursion_depth_m": [0.01, 0.02],
                                          "pause_rate_per_min": 0.0, "lumbar_excursions": 0}})
    config = default_config()
    config = dataclasses.replace(config, imu=dataclasses.replace(
        config.imu, gyro_range_dps=gyro_range_dps))
    roller = SimRoller(sc, 2, config)
    log = FrameLog()
    roller.add_sink(log)
    with caplog.at_level("WARNING"):
        roller.run()
    roller.close()
    t, position, flags = log.arrays()
    clipped = int(np.count_nonzero(flags & int(FrameFlag.IMU_CLIPPED)))
    warned = [r for r in caplog.records if r.name == roller.firmware.log.name
              and "gyro at full scale" in r.getMessage()]  # not the CPU replay's twin
    if gyro_range_dps == 250:
        assert clipped > 10 and roller.firmware.pipeline.clipped_batches == clipped
        assert len(warned) == 1  # at most once a minute
    else:
        assert clipped == 0 and not warned
    # The turn beyond the range is taken back from gravity: the position keeps up
    # (it fell behind by up to a turn per stroke when only the gyro counted).
    errors = position_errors(roller.sensor_to_world(t), position, flags,
                             roller.world.truth.t, rolled_distance(roller.world.truth))
    assert np.sqrt(np.mean(errors**2)) < 6e-3 and np.abs(errors).max() < 25e-3


def test_the_battery_level_comes_from_the_fuel_gauge():
    roller, _ = roller_with_frames()
    roller.run(until=12.0)
    level = roller.firmware.battery_pct()
    assert level is not None
    # the gauge's estimate (its drawn error included), up to 45 s old (it hibernates)
    assert level == pytest.approx(roller.battery.estimate_percent(roller.clock.now()), abs=0.2)
    roller.battery.vanish()
    roller.run(until=30.0)
    assert roller.firmware.battery_pct() is None  # unknown, not a stale figure
    assert roller.firmware.frames > 2900  # the roller rolls on


def test_a_roller_built_without_a_gauge_reports_no_level():
    config = default_config()
    config = dataclasses.replace(config, battery=dataclasses.replace(config.battery, gauge=False))
    roller = SimRoller(DEMO, 7, config)
    roller.run(until=3.0)
    assert roller.firmware.battery_pct() is None and roller.firmware.gauge is None


@pytest.mark.parametrize("seed, routine", [(5, "stroking"), (4, "steady")],
                         ids=["stroking", "steady"])
def test_a_roller_switched_on_mid_roll_learns_its_gyro_offset_from_gravity(seed, routine):
    # Switched on 40 s into a session, while the person rolls: no stillness to
    # calibrate on, and a steady roll must not pass for one. Gravity's turn gives the
    # offset; the position rolled meanwhile is put right once it is known.
    # (the routines and the power-on of host.bench.power_on, which scores all 16)
    roller, frames = roller_with_frames(seed=seed, scenario=power_on_scenario(routine))
    roller.run()
    roller.close()
    od = roller.firmware.pipeline.odometry
    axis = "xyz".index(roller.config.imu.roller_axis)
    true_dps = roller.imu.true_gyro_offset_dps()[axis]
    assert od.gyro_offset.calibrated and od.gyro_offset.from_gravity
    assert math.degrees(od.gyro_offset.offset) == pytest.approx(true_dps, abs=0.1)
    flags = np.array([int(f.flags) for f in frames])
    flagged = np.flatnonzero(flags & int(FrameFlag.UNCALIBRATED))
    assert flagged[0] == 0 and np.all(np.diff(flagged) == 1)  # said so until then
    t_w = roller.sensor_to_world(np.array([f.t for f in frames]))
    assert t_w[flagged[-1]] < POWER_ON_S + SETTLE_S  # calibrated within 10 s of rolling
    late = rolling_errors_after(roller, frames, POWER_ON_S + SETTLE_S)
    assert len(late) > 1000 and np.sqrt(np.mean(late**2)) < 3e-3  # from the zero


def test_a_bus_that_fails_as_real_buses_fail_never_stops_the_roller(caplog):
    # 1 % of messages NACKed, 0.5 % of reads broken after the part gave its bytes (a
    # FIFO burst's bytes are gone), 0.2 % read as 0xFF, the IMU browning out twice and
    # the second ADC dying for good: frames go on, each fault flagged and logged.
    sc = scenario_from_table({"session": {"duration_s": 60.0},
                              "faults": {"nack_rate": 0.01, "broken_read_rate": 0.005,
                                         "ff_read_rate": 0.002, "imu_brownouts_s": [25.0, 40.0],
                                         "adc_dies_s": 45.0}})
    roller, frames = roller_with_frames(seed=3, scenario=sc)
    with caplog.at_level("WARNING"):
        roller.run()
    roller.close()
    counts = roller.bus.faults.counts
    assert min(counts.values()) > 10  # every kind happened
    assert frames[-1].t > 59.0 * (1 + roller.parts.imu.clock_error) - 0.5  # to the end
    flags = np.array([int(f.flags) for f in frames])
    assert np.all(np.diff([f.seq for f in frames]) == 1)
    assert (flags & int(FrameFlag.IMU_GAP)).any()
    late = np.array([f.t for f in frames]) > 47.0
    assert np.all(flags[late] & int(FrameFlag.ADC_FAULT))  # the dead ADC, to the end
    assert roller.firmware.imu.reinits >= 2  # the brown-outs, recovered
    said = caplog.text
    assert "MPU-6050" in said and "ADS1115 0x49" in said
    t, position, fl = (np.array([f.t for f in frames]), np.array([f.position for f in frames]),
                       flags)
    errors = position_errors(roller.sensor_to_world(t), position, fl, roller.world.truth.t,
                             rolled_distance(roller.world.truth))
    assert np.sqrt(np.mean(errors**2)) < 6e-3


def test_a_hung_bus_is_recovered_flagged_and_logged_and_the_roller_goes_on(caplog):
    # Twice the bus hangs: every transfer times out (ETIMEDOUT) until the firmware
    # reopens it. It must see it, flag and log it, reopen the bus, re-initialise the
    # parts and go on; the replay of its CPU must follow it too.
    sc = scenario_from_table({"session": {"duration_s": 40.0},
                              "faults": {"bus_hangs_s": [20.0, 30.0]}})
    roller, frames = roller_with_frames(seed=3, scenario=sc)
    with caplog.at_level("INFO"):
        roller.run()
    roller.close()
    assert roller.bus.hangs == roller.bus.recoveries == 2 and not roller.bus.hung
    assert roller.firmware.bus_recoveries == 2
    assert roller.bus.timeouts <= 10  # seen at once, not retried against a hung bus
    assert roller.cpu.diverged is None  # the replay saw the same
    t = np.array([f.t for f in frames])
    flags = np.array([int(f.flags) for f in frames])
    assert t[-1] > 39.0 * (1 + roller.parts.imu.clock_error) - 0.5  # to the end
    assert np.all(np.diff([f.seq for f in frames]) == 1)
    hung = (flags & int(FrameFlag.BUS_FAULT)) != 0
    world = roller.sensor_to_world(t)
    episodes = [world[hung & (world > a) & (world < a + 5.0)] for a in (19.0, 29.0)]
    for ep, start in zip(episodes, (20.0, 30.0), strict=True):
        assert len(ep) and start - 0.05 < ep[0] and ep[-1] < start + 0.5  # short, flagged
    assert hung.sum() < 100  # only around the hangs
    assert (flags[hung] & int(FrameFlag.IMU_GAP)).any()  # samples lost meanwhile
    said = [r.getMessage() for r in caplog.records
            if r.name == "smartroller.firmware"]  # (not the replay's)
    assert sum(m.startswith("I2C bus hung") for m in said) == 2
    assert sum(m.startswith("I2C bus recovered") for m in said) == 2
    assert roller.firmware.imu.reinits >= 2 and roller.firmware.imu.fault is None
    late = world > 31.0
    assert not (flags[late] & int(FrameFlag.ADC_FAULT | FrameFlag.IMU_FAULT)).any()
    errors = position_errors(world, np.array([f.position for f in frames]), flags,
                             roller.world.truth.t, rolled_distance(roller.world.truth))
    assert np.sqrt(np.mean(errors**2)) < 6e-3
