"""The hardware profile: defaults, the shipped file, and one-line errors."""

from pathlib import Path

import pytest

from firmware.config import ConfigError, default_config, load_config

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "roller.toml"
    path.write_text(text)
    return path


def test_shipped_profile_is_the_default():
    assert load_config(ROOT / "hardware" / "roller.toml") == default_config()


def test_partial_profile_keeps_other_defaults(tmp_path):
    config = load_config(write(tmp_path, "[roller]\ndiameter_m = 0.15\n"))
    assert config.roller.diameter_m == 0.15
    assert config.imu == default_config().imu


@pytest.mark.parametrize("text, message", [
    ("[imu]\nsample_rate_hz = 5000\n",
     "imu.sample_rate_hz: 5000.0 is out of range (10.0 .. 1000.0)"),
    ("[imu]\nfoo = 1\n", "imu.foo: unknown key"),
    ("[bogus]\nx = 1\n", "bogus: unknown key"),
    ("[imu]\ngyro_range_dps = 300\n", "imu.gyro_range_dps: 300 is not allowed"),
    ("[roller]\ndiameter_m = 'big'\n", "roller.diameter_m: expected a number"),
    ("[fence]\nenabled = 1\n", "fence.enabled: expected true or false"),
    ("[adc]\naddresses = [0x48, 0x50]\n", "adc.addresses[1]: 80 is out of range"),
    ("[zones]\ncount = 4\n", "zones.lateral_positions_m: needs 4 values"),
    ("[imu]\nsample_rate_hz = 300\n", "imu.sample_rate_hz: 300.0 is not 1000 Hz / (1 + n)"),
    ("[pins]\nled = 18\n", "pins: motor_pwm, button, led and adc_ready must all be different"),
    ("[pins]\nadc_ready = [22, 17]\n", "pins: motor_pwm, button, led and adc_ready must all"),
    ("[pins]\nadc_ready = [22]\n", "pins.adc_ready: one pin per adc.addresses entry, or none"),
    ("[pins]\nadc_ready = [22, 28]\n", "pins.adc_ready[1]: 28 is out of range"),
    ("[frames]\nrate_hz = 70\n", "frames.rate_hz: must divide imu.sample_rate_hz"),
    ("[zones]\ncount = 9\nlateral_positions_m = [0,0,0,0,0,0,0,0,0]\n"
     "sensitivity_s_per_n = [1e-4,1e-4,1e-4,1e-4,1e-4,1e-4,1e-4,1e-4,1e-4]\n",
     "zones.count: more zones than ADC channels"),
    ("[roller\n", "not valid TOML"),
])
def test_bad_profile_is_one_line_naming_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_config_docs_are_current():
    from firmware.configdoc import render

    assert (ROOT / "docs" / "config.md").read_text() == render(), \
        "regenerate: python -m firmware.configdoc > docs/config.md"
