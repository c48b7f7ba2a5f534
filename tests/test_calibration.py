"""The roller's own calibration: kept across reboots, written safely, never in the way."""

import json
import logging

import pytest

from firmware.calibration import (
    FILE_NAME,
    SAVE_EVERY_S,
    Calibration,
    CalibrationKeeper,
    load_calibration,
    save_calibration,
)

LEARNED = Calibration(imu_clock_ratio=1.0043, imu_clock_span_s=600.0, updated_utc=1.0)


def test_a_new_roller_starts_from_the_datasheets(tmp_path):
    cal = load_calibration(tmp_path)
    assert cal == Calibration() and not cal.learned
    assert load_calibration(None) == Calibration()


def test_what_is_saved_is_what_the_next_boot_reads(tmp_path):
    save_calibration(tmp_path, LEARNED)
    assert load_calibration(tmp_path) == LEARNED
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind
    assert "+0.43 %" in LEARNED.line() and "600 s" in LEARNED.line()


@pytest.mark.parametrize("text", ["{not json", '{"version": 99}', "[]",
                                  json.dumps({"version": 1, "imu_clock_ratio": 3.0}),
                                  json.dumps({"version": 1, "imu_clock_ratio": "fast"}),
                                  '{"version": 1, "gyro_scale": 1' + "0" * 400 + "}",
                                  json.dumps({"version": 1, "gyro_scale": True})])
def test_a_bad_file_is_logged_and_ignored(tmp_path, caplog, text):
    (tmp_path / FILE_NAME).write_text(text)
    with caplog.at_level(logging.WARNING):
        assert load_calibration(tmp_path) == Calibration()
    assert "ignoring the stored calibration" in caplog.text


def test_the_keeper_writes_when_it_moved_and_at_most_once_a_minute(tmp_path):
    keeper = CalibrationKeeper(tmp_path, Calibration())
    keeper.offer(LEARNED, 10.0)
    assert load_calibration(tmp_path).imu_clock_ratio == LEARNED.imu_clock_ratio
    moved = Calibration(**{**LEARNED.__dict__, "imu_clock_ratio": 1.0061})
    keeper.offer(moved, 10.0 + SAVE_EVERY_S / 2)  # not yet due
    assert load_calibration(tmp_path).imu_clock_ratio == LEARNED.imu_clock_ratio
    assert keeper.due == 10.0 + SAVE_EVERY_S
    keeper.offer(moved, keeper.due)
    assert load_calibration(tmp_path).imu_clock_ratio == 1.0061
    (tmp_path / FILE_NAME).unlink()
    keeper.offer(moved, keeper.due)  # nothing moved: no write
    assert not (tmp_path / FILE_NAME).exists()
    keeper.flush(Calibration(**{**LEARNED.__dict__, "imu_clock_span_s": 1800.0}))
    assert load_calibration(tmp_path).imu_clock_span_s == 1800.0


def test_a_disk_that_refuses_is_logged_once_and_the_roller_goes_on(tmp_path, caplog):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the state directory should be")
    keeper = CalibrationKeeper(blocked, Calibration())
    with caplog.at_level(logging.WARNING):
        keeper.offer(LEARNED, 0.0)
        keeper.offer(Calibration(**{**LEARNED.__dict__, "imu_clock_ratio": 0.99}), keeper.due)
    assert caplog.text.count("cannot store the calibration") == 1
    assert keeper.saved == Calibration()  # still to be written


def test_the_keeper_writes_a_newly_learned_or_moved_gyro_scale(tmp_path):
    keeper = CalibrationKeeper(tmp_path, LEARNED)
    keeper.offer(LEARNED, 0.0)  # nothing moved
    assert not (tmp_path / FILE_NAME).exists()
    scaled = Calibration(**{**LEARNED.__dict__, "gyro_scale": 1.021,
                            "gyro_scale_weight": 1e5})
    keeper.offer(scaled, keeper.due)
    assert load_calibration(tmp_path).gyro_scale == 1.021
    same = Calibration(**{**scaled.__dict__, "gyro_scale": 1.0212, "gyro_scale_weight": 1.2e5})
    keeper.offer(same, keeper.due)  # within 0.05 % and not much more weight: no write
    assert load_calibration(tmp_path).gyro_scale == 1.021
    keeper.offer(Calibration(**{**same.__dict__, "gyro_scale": 1.024}), keeper.due)
    assert load_calibration(tmp_path).gyro_scale == 1.024
