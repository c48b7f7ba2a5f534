"""The demo end to end: ``smartroller demo`` pairs a simulated roller over the virtual
radio, the person rolls, drifts below the ribs (the roller buzzes), and the session is
exported."""

import re

import pytest

from firmware.calibration import load_calibration
from host.cli import main as host_cli
from tests.test_cli import run

pytestmark = pytest.mark.slow


def test_demo_pairs_rolls_warns_and_exports(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    code, out, err = run(host_cli.main, ["demo", "--speed", "2", "--out", str(out_dir)],
                         capsys)
    assert code == 0, err
    assert "Paired" in out and "pairing window open" in out
    # the roller as built: its table roll's scale kept where the roller started from
    assert re.search(r"The roller as built, its table roll: gyro scale [+-]\d", out)
    kept = load_calibration(out_dir / "roller")
    assert kept.gyro_scale != 1.0 and kept.gyro_scale_weight > 0.0
    assert "BUZZ: below the rib cage" in out or "lumbar warning" in out
    assert re.search(r"buzzed by itself below the rib cage [1-9]", out)
    for name in ("samples.csv", "strokes.csv", "events.csv"):
        assert (out_dir / "csv" / name).stat().st_size > 100
        assert str(out_dir / "csv" / name) in out
    assert (out_dir / "report.html").read_text().count("<svg") >= 1
    events = (out_dir / "csv" / "events.csv").read_text()
    assert "lumbar_warning" in events
