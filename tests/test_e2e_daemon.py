"""The user's flow end to end: a simulated roller process, the CLI, the daemon process.

pair -> profile -> daemon (SIGKILLed mid-session, started again, serving the dashboard)
-> the session closes
-> sessions / export / report; the stored frames are checked for loss and duplicates,
the CSV against the store.
"""

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from firmware.protocol import FrameFlag, RollerCalibration
from host.store import open_store

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DEMO = ROOT / "firmware/sim/scenarios/demo.toml"

pytestmark = pytest.mark.slow


def cli(*args, timeout=60):
    return subprocess.run([PY, "-m", "host.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def pair_with_profile(adapter: str, data: Path) -> str:
    """Scan for the roller on ``adapter``, pair it and make the user's profile in the data
    directory ``data``; the roller's address."""
    from tests.test_e2e_radio import scan

    address = scan(adapter, str(data / "ble-keys.json"))
    paired = cli("pair", address, "--adapter", adapter, "--data-dir", str(data))
    assert paired.returncode == 0, paired.stderr
    made = cli("profile", "create", "me", "--stature", "172cm", "--sex", "female",
               "--use", "--data-dir", str(data))
    assert made.returncode == 0, made.stderr
    return address


def _get(url):
    """(status, text) of GET ``url``; (0, why) when it does not answer."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def test_pair_daemon_killed_and_restarted_session_export_report(tmp_path):
    from tests.test_e2e_radio import free_port

    data = tmp_path / "data"
    port = free_port()
    adapter = f"tcp-client:127.0.0.1:{port}"
    roller = subprocess.Popen(
        [PY, "-m", "firmware.cli", "sim", "--scenario", str(DEMO), "--seed", "3",
         "--speed", "1.5", "--every", "1000", "--host-adapter",
         f"tcp-server:127.0.0.1:{port}", "--state-dir", str(tmp_path / "roller")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    daemons = []
    try:
        time.sleep(2.0)
        pair_with_profile(adapter, data)

        web = free_port()

        def daemon(*extra):
            proc = subprocess.Popen(
                [PY, "-m", "host.cli.main", "daemon", "--adapter", adapter, "--data-dir",
                 str(data), "--idle", "4", *extra], stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, cwd=ROOT)
            daemons.append(proc)
            return proc

        first = daemon()
        time.sleep(12)  # connected, the session started, frames stored
        first.send_signal(signal.SIGKILL)
        first.wait()
        second = daemon("--dashboard", str(web))  # the dashboard in the daemon's process
        pages = []
        end = time.monotonic() + 120
        while roller.poll() is None and time.monotonic() < end:
            pages.append(_get(f"http://127.0.0.1:{web}/sessions"))  # read while it writes
            time.sleep(1.0)
        roller.wait(timeout=5)  # the person rolls, drifts below the ribs, gets off
        # The roller's process served the Bluetooth controller: its transport is lost,
        # the daemon stops with status 1 (a service manager would restart it).
        log = second.communicate(timeout=30)[0]
        assert second.returncode == 1 and "transport" in log, log
        rows = json.loads(cli("sessions", "--json", "--data-dir", str(data)).stdout)
    finally:
        for proc in [roller, *daemons]:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert len(rows) == 1 and rows[0]["state"] == "closed", (rows, log)
    assert "continuing session 1" in log
    assert f"dashboard on http://127.0.0.1:{web}/" in log
    assert any(status == 200 and 'data-session="1"' in page for status, page in pages), pages
    session_id = rows[0]["id"]

    # Nothing lost, nothing twice, across the kill: one boot, seqs contiguous.
    store = open_store(data, create=False)
    frames = store.read_frames(session_id)
    assert len(np.unique(frames.boot)) == 1
    seqs = frames.seq.astype(np.int64)
    assert np.all(np.diff(seqs) == 1), "a frame is missing or stored twice"
    contact = (frames.flags & int(FrameFlag.IN_CONTACT)) != 0
    assert contact.sum() > 2500 and (frames.flags[contact] & int(FrameFlag.ZEROED)).any()
    # The offline pass analysed every frame; the drift below the ribs was warned.
    est = store.read_estimates(session_id, frames)
    assert np.isfinite(est.level[contact]).mean() > 0.99
    kinds = [e.kind.value for _, _, e in store.events(session_id)]
    assert "lumbar_warning" in kinds
    assert len(store.strokes(session_id)) >= 10
    # The daemon kept the roller's own calibration, read over the link at connection.
    (device,) = store.devices()
    assert device.calibration is not None and device.calibration_utc is not None
    RollerCalibration.decode(device.calibration)  # the real roller's value, readable
    store.close()

    out = tmp_path / "csv"
    exported = cli("export", "latest", "--out", str(out), "--data-dir", str(data))
    assert exported.returncode == 0, exported.stderr
    with (out / "samples.csv").open(newline="", encoding="utf-8") as fh:
        samples = list(csv.DictReader(fh))
    assert len(samples) == len(frames)
    i = len(samples) // 2
    assert float(samples[i]["position_mm"]) == pytest.approx(frames.position[i] * 1e3, abs=0.1)
    report = cli("report", "latest", "--out", str(tmp_path / "r.html"), "--data-dir", str(data))
    assert report.returncode == 0, report.stderr
    assert "<svg" in (tmp_path / "r.html").read_text()
