"""smartroller-fw selftest against the emulated parts with faults injected: each failing
part is named, exit status 0 / 1 / 2."""

import pytest

from firmware import cli as fw_cli
from firmware.config import default_config
from firmware.selftest import run_selftest, summary
from firmware.sim.selftest_rig import FAULTS, BenchRig


def selftest(faults=(), **kw):
    config = default_config()
    rig = BenchRig(config, tuple(faults))
    try:
        return run_selftest(config, lambda _n: rig.bus, rig.clock, rig.pins, sim=True,
                            check_radio=False, input_opened=rig.input_opened, **kw)
    finally:
        rig.close()


def failed(checks):
    return {c.part for c in checks if not c.ok}


def test_healthy_roller_passes_every_check():
    checks = selftest()
    assert failed(checks) == set()
    parts = [c.part for c in checks]
    assert parts == ["i2c", "imu", "motion", "adc1", "adc2", "zones", "alert", "battery",
                     "motor", "button", "led", "ble", "calib"]
    assert "80 %" in next(c for c in checks if c.part == "battery").detail
    motion = next(c for c in checks if c.part == "motion")
    assert "gravity" in motion.detail and not motion.warning
    alert = next(c for c in checks if c.part == "alert")  # both ADCs' ready wires
    assert not alert.skipped and "GPIO22, GPIO23" in alert.detail


@pytest.mark.parametrize("fault, parts, words", [
    ("imu-missing", {"imu", "motion"}, "no answer"),
    ("imu-stuck", {"motion"}, "no samples"),
    ("imu-frozen", {"motion"}, "identical"),
    ("adc1-missing", {"adc1", "zones"}, "0x48"),
    ("adc2-missing", {"adc2", "zones"}, "0x49"),
    ("adc1-stuck", {"adc1", "zones"}, "never completes"),
    ("zone3-shorted", {"zones"}, "zone 3 reads 3.30 V"),
    ("gauge-missing", {"battery"}, "0x36 does not answer"),
    ("alert2-cut", {"alert"}, "GPIO23 (ADS1115 0x49) never goes low"),
    ("button-stuck", {"button"}, "reads pressed"),
    ("motor-busy", {"motor"}, "GPIO18"),
    ("led-busy", {"led"}, "GPIO27"),
])
def test_each_fault_names_its_part(fault, parts, words):
    checks = selftest([fault])
    assert failed(checks) == parts
    first = next(c for c in checks if not c.ok)
    assert words in first.detail
    assert summary(checks).startswith(f"selftest: {len(parts)} part(s) failed: ")


def test_every_fault_is_covered():
    covered = {"imu-missing", "imu-stuck", "imu-frozen", "adc1-missing", "adc2-missing",
               "adc1-stuck", "zone3-shorted", "button-stuck", "motor-busy", "led-busy",
               "imu-clone", "gauge-missing", "alert2-cut", "gauge-reset"}
    assert covered == set(FAULTS)


def test_a_gauge_just_reset_is_a_warning_its_first_estimate_reads_low():
    checks = selftest(["gauge-reset"])
    battery = next(c for c in checks if c.part == "battery")
    assert battery.ok and battery.warning and "just reset" in battery.detail
    assert "80 %" not in battery.detail  # under load the first estimate is below the truth
    assert failed(checks) == set()


def test_clone_imu_is_a_warning_not_a_failure():
    checks = selftest(["imu-clone"])
    imu = next(c for c in checks if c.part == "imu")
    assert imu.ok and imu.warning and "0x72" in imu.detail
    assert imu.line().startswith("WARN  imu")
    assert failed(checks) == set()


def test_missing_i2c_bus_is_named():
    config = default_config()
    rig = BenchRig(config)

    def no_bus(number):
        raise FileNotFoundError(2, "No such file or directory", f"/dev/i2c-{number}")

    checks = run_selftest(config, no_bus, rig.clock, rig.pins, check_radio=False)
    rig.close()
    assert failed(checks) == {"i2c"}
    assert "dtparam=i2c_arm=on" in checks[0].detail
    assert [c.part for c in checks] == ["i2c", "motor", "button", "led", "ble", "calib"]


def test_cli_healthy_with_the_virtual_controller(capsys):
    assert fw_cli.main(["selftest", "--sim"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 14 and out[-1] == "selftest: all 12 checks passed"
    assert out[-3].startswith("PASS  ble") and out[-2].startswith("SKIP  calib")


def test_selftest_shows_what_the_roller_has_learned(tmp_path):
    from firmware.calibration import FILE_NAME, Calibration, save_calibration

    assert "not learned yet" in selftest(state_dir=tmp_path)[-1].detail
    save_calibration(tmp_path, Calibration(imu_clock_ratio=0.9957, imu_clock_span_s=900.0))
    calib = selftest(state_dir=tmp_path)[-1]
    assert calib.part == "calib" and calib.ok and "-0.43 %" in calib.detail
    assert "gyro scale" not in calib.detail  # not learned: not shown
    save_calibration(tmp_path, Calibration(imu_clock_ratio=0.9957, imu_clock_span_s=900.0,
                                           gyro_scale=1.0312, gyro_scale_weight=1e5))
    calib = selftest(state_dir=tmp_path)[-1]
    assert calib.ok and calib.detail.endswith("gyro scale +3.12 %")
    (tmp_path / FILE_NAME).write_text("{torn")
    calib = selftest(state_dir=tmp_path)[-1]
    assert calib.ok and calib.warning and "ignoring" in calib.detail


def test_cli_failing_part_exit_1(capsys):
    assert fw_cli.main(["selftest", "--sim", "--no-ble", "--fault", "adc2-missing"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  adc2    ADS1115 at 0x49" in out
    assert fw_cli.main(["selftest", "--sim", "--transport", "tcp-client:127.0.0.1:1"]) == 1
    assert "FAIL  ble     tcp-client:127.0.0.1:1" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["selftest", "--fault", "imu-missing"], "--fault needs --sim"),
    (["selftest", "--sim", "--fault", "nope"], "expected one of"),
    (["selftest", "--sim", "--config", "/nonexistent.toml"], "no such file"),
])
def test_cli_bad_input_exit_2(argv, message, capsys):
    assert fw_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
