"""Renders docs/config.md from the profile's schema (``python -m firmware.configdoc``)."""

from __future__ import annotations

from firmware.config import Config
from firmware.schema import describe

HEADER = """# Hardware profile keys

The firmware reads its hardware profile from a TOML file (`smartroller-fw run --config
FILE`; the default build is [hardware/roller.toml](../hardware/roller.toml)). Every key
is optional: an omitted key takes the default shown there. An unknown key, a wrong
type or an out-of-range value stops the firmware with one line naming the key and what
is allowed, e.g. `imu.sample_rate_hz: 5000.0 is out of range (10.0 .. 1000.0)`.

This page is generated from the schema in `firmware/config.py`
(`python -m firmware.configdoc > docs/config.md`); a test keeps it in step.

| key | type | allowed | meaning |
| --- | --- | --- | --- |
"""


def render() -> str:
    """The Markdown page documenting every profile key."""
    rows = "".join(f"| `{key}` | {kind} | {allowed} | {doc} |\n"
                   for key, kind, allowed, doc in describe(Config))
    return HEADER + rows + """
Cross-checks: `imu.sample_rate_hz` must be the gyro output rate (8 kHz with
`dlpf_hz = 260`, else 1 kHz) divided by a whole number 1..256; `frames.rate_hz` must
divide it; `zones.lateral_positions_m` and `zones.sensitivity_s_per_n` need
`zones.count` values; there are at most 4 zones per ADC address; `pins.adc_ready` has
one pin per `adc.addresses` entry, or none; all the pins differ.
"""


if __name__ == "__main__":
    print(render(), end="")
