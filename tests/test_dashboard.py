"""The dashboard's server (``host.dashboard``) through aiohttp's test client: the pages,
the CSVs, the trends, the live feed's messages and states, and every way the store can
fail (missing, busy, damaged, an unknown session) shown as a page, never a traceback;
the store is never written."""

import asyncio
import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from host.analysis.model import Event, EventKind
from host.daemon.live import LiveStatus, publish
from host.daemon.lock import DaemonLock
from host.dashboard import readonly
from host.dashboard.app import make_app
from host.dashboard.live import live_message
from host.dashboard.trends import FigureCache, session_rows, trends_csv, weekly
from host.export.csv import export_session
from host.store import Store
from tests.sessions import START_UTC, record_session, sim_frames

ROOT = Path(__file__).resolve().parent.parent
WEEK = 7 * 86400.0
ADDRESS = "F2:83:5D:6F:F8:0C"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A store of three sessions: two in one week (the second calibrated), one a week
    later; a profile."""
    folder = tmp_path_factory.mktemp("dash")
    with Store(folder / "smartroller.db") as store:
        store.create_profile("ana", 1.68, "female")
        store.set_active_profile("ana")
        frames = sim_frames()
        # each session a boot of its own, as a roller's sessions are (the store maps a
        # boot's sensor times to UTC by that boot's clock exchanges)
        record_session(store, frames, utc0=START_UTC)
        second = record_session(store, again(frames, 1), utc0=START_UTC + 3600)
        store.add_event(second, Event(EventKind.CALIBRATION, 5.0, None,
                                      "calibrated: 300 mm from the top of the shoulders"))
        record_session(store, again(frames, 2), utc0=START_UTC + WEEK)
    return folder


def again(frames, k: int) -> list:
    """``frames`` as the roller's ``k``-th boot after theirs."""
    return [replace(f, boot=(f.boot + k) & 0xFFFFFFFF) for f in frames]


def fetch(folder, *paths):
    """[(status, content type, text)] of GET ``paths`` on a dashboard over ``folder``."""
    async def run():
        async with TestClient(TestServer(make_app(folder))) as client:
            out = []
            for path in paths:
                response = await client.get(path)
                out.append((response.status, response.content_type, await response.text()))
            return out
    return asyncio.run(run())


def digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).glob("smartroller.db*"))}


def test_sessions_page_lists_each_session_with_its_report_and_csvs(data_dir):
    (status, kind, page), = fetch(data_dir, "/sessions")
    assert status == 200 and kind == "text/html"
    for sid in (1, 2, 3):
        assert f'data-session="{sid}"' in page
        assert f'href="/sessions/{sid}/report"' in page
        assert f'href="/sessions/{sid}/samples.csv"' in page
    row = page.split('data-session="2"')[1].split("</tr>")[0]
    assert "<td>yes</td>" in row  # calibrated
    assert "<td>no</td>" in page.split('data-session="1"')[1].split("</tr>")[0]
    assert "0:20" in row  # 20 s of frames
    assert page.index('data-session="3"') < page.index('data-session="1"')  # newest first


def test_report_and_csvs_are_the_exports_own(data_dir, tmp_path):
    report, samples, events = fetch(data_dir, "/sessions/2/report", "/sessions/2/samples.csv",
                                    "/sessions/2/events.csv")
    assert report[0] == 200 and "smartroller session 2" in report[2]
    with Store(data_dir / "smartroller.db", readonly=True) as store:
        export_session(store.load(2), tmp_path)
    assert samples[:2] == (200, "text/csv")
    assert samples[2] == (tmp_path / "samples.csv").read_bytes().decode()
    assert events[2] == (tmp_path / "events.csv").read_bytes().decode()


@pytest.mark.parametrize("path", ["/sessions/99/report", "/sessions/abc/report",
                                  "/sessions/99/samples.csv", "/sessions/1/frames.csv",
                                  "/nowhere", "/static/nothing.js"])
def test_unknown_pages_and_sessions_are_404_pages(data_dir, path):
    (status, kind, page), = fetch(data_dir, path)
    assert status == 404 and kind == "text/html"
    assert 'class="problem"' in page and "Traceback" not in page


def test_a_missing_store_says_nothing_is_recorded_yet(tmp_path):
    (status, _, page), (live_status, _, live) = fetch(tmp_path, "/sessions", "/")
    assert status == 200 and "Nothing recorded yet" in page and "smartroller daemon" in page
    assert live_status == 200 and 'id="back"' in live  # the average back
    assert not (tmp_path / "smartroller.db").exists()  # and it made none


def test_a_damaged_store_is_a_clear_page(tmp_path):
    (tmp_path / "smartroller.db").write_bytes(b"this is not a database" * 300)
    for status, _, page in fetch(tmp_path, "/sessions", "/trends", "/sessions/1/report"):
        assert status == 503 and "cannot be read" in page and "Traceback" not in page
        assert "smartroller.db" in page


def test_a_store_locked_by_another_program_is_a_busy_page(tmp_path, monkeypatch):
    with Store(tmp_path / "smartroller.db") as store:
        record_session(store)
    monkeypatch.setattr(readonly, "BUSY_WAIT_S", 0.2)
    holder = sqlite3.connect(tmp_path / "smartroller.db", isolation_level=None)
    try:
        holder.execute("PRAGMA journal_mode = DELETE")  # a rollback journal: readers wait
        holder.execute("BEGIN EXCLUSIVE")
        (status, _, page), = fetch(tmp_path, "/sessions")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert status == 503 and "busy" in page and "reload" in page


def test_the_server_never_writes_to_the_store(data_dir):
    before = digest(data_dir)
    pages = fetch(data_dir, "/", "/sessions", "/trends", "/trends.csv", "/sessions/1/report",
                  "/sessions/1/samples.csv", "/sessions/3/dwells.csv")
    assert all(status == 200 for status, _, _ in pages)
    assert digest(data_dir) == before


def test_trends_per_week(data_dir):
    with Store(data_dir / "smartroller.db", readonly=True) as store:
        rows = session_rows(store, FigureCache())
    weeks = weekly(rows)
    assert [w.sessions for w in weeks] == [2, 1]
    assert [w.calibrated for w in weeks] == [1, 0]
    one = rows[0].figures
    assert weeks[0].strokes == 2 * one.strokes
    assert weeks[0].mean_amplitude_mm == pytest.approx(one.mean_amplitude_mm)
    assert weeks[0].cadence_per_min == pytest.approx(one.cadence_per_min)
    assert sum(weeks[1].region_s.values()) == pytest.approx(sum(one.level_s.values()))
    assert weeks[0].warnings_per_hour == pytest.approx(
        2 * rows[0].summary.warning_count / (2 * one.duration_s / 3600))
    text = trends_csv(weeks)
    lines = text.split("\r\n")
    assert lines[0].startswith("week,monday,sessions,sessions_calibrated,duration_s,cervical_s")
    assert lines[1].split(",")[:4] == [weeks[0].week, weeks[0].monday, "2", "1"]
    (status, _, page), (_, kind, csv_text) = fetch(data_dir, "/trends", "/trends.csv")
    assert status == 200 and f'data-week="{weeks[0].week}"' in page
    assert kind == "text/csv" and csv_text == text


def test_the_figure_cache_reads_a_closed_session_once(data_dir, monkeypatch):
    cache = FigureCache()
    with Store(data_dir / "smartroller.db", readonly=True) as store:
        session_rows(store, cache)
        monkeypatch.setattr(Store, "load", lambda *a, **k: pytest.fail("read again"))
        assert len(session_rows(store, cache)) == 3


def status(**kwargs):
    base = dict(connected=True, session_id=1, utc=time.time(), t=10.0, in_contact=True,
                level=12.6, region="lower_thoracic", p_below=0.3, zone_loads_n=[20.0] * 8,
                total_load_n=160.0)
    return LiveStatus(ADDRESS, **{**base, **kwargs})


def test_live_states_are_said_plainly(tmp_path):
    calibrated = {"calibrated": True}
    msg = live_message([], False, tmp_path, calibrated)
    assert msg["state"] == "no_daemon" and "smartroller daemon" in msg["line"]
    assert live_message([], True, tmp_path, calibrated)["state"] == "not_connected"
    assert live_message([status(connected=False)], True, tmp_path,
                        calibrated)["state"] == "not_connected"
    msg = live_message([status(warning=True)], True, tmp_path, calibrated)
    assert msg["state"] == "connected" and msg["warning"] and msg["calibration"] == ""
    assert msg["status"]["level"] == 12.6
    msg = live_message([status()], True, tmp_path, None)
    assert msg["calibration"] == "uncalibrated" and msg["steps"]
    msg = live_message([status(calibration="top of the shoulders marked at +0 mm")], True,
                       tmp_path, None)
    assert msg["calibration"] == "calibrating" and "press the button" in " ".join(msg["steps"])
    msg = live_message([status(calibrated=True, calibration="calibrated: 300 mm")], True,
                       tmp_path, None)
    assert msg["calibration"] == "calibrated" and not msg["steps"]


def test_the_websocket_pushes_each_published_status(tmp_path):
    async def run():
        async with TestClient(TestServer(make_app(tmp_path))) as client:
            ws = await client.ws_connect("/live.ws")
            first = json.loads((await ws.receive(timeout=3)).data)
            assert first["state"] == "no_daemon"
            with DaemonLock(tmp_path):
                got = []
                for k in range(5):
                    publish(tmp_path, status(strokes=k, utc=time.time()))
                    while True:
                        msg = json.loads((await ws.receive(timeout=3)).data)
                        if msg["status"] and msg["status"]["strokes"] == k:
                            got.append(msg)
                            break
                    await asyncio.sleep(0.05)
                (tmp_path / "live" / (ADDRESS.replace(":", "-") + ".json")).unlink()
                msg = json.loads((await ws.receive(timeout=3)).data)
            await ws.close()
            return got, msg
    got, gone = asyncio.run(run())
    assert [m["status"]["strokes"] for m in got] == [0, 1, 2, 3, 4]
    assert all(m["sent_utc"] - m["status"]["utc"] < 0.5 for m in got)
    assert gone["state"] == "not_connected"  # the daemon runs (its lock), nothing published


def test_the_feed_looks_at_nothing_while_no_page_is_open(tmp_path):
    """It looked at the live files 50 times a second with no page open, for as long as
    the dashboard ran."""
    from host.dashboard.live import POLL_S, LiveFeed

    async def no_profile():
        return None

    async def run():
        feed = LiveFeed(tmp_path, no_profile)
        feed.start()
        first = feed.subscribe()
        assert json.loads(await asyncio.wait_for(first.get(), 3))["state"] == "no_daemon"
        feed.unsubscribe(first)
        await asyncio.sleep(POLL_S * 3)
        idle = feed.polls
        with DaemonLock(tmp_path):
            await asyncio.sleep(POLL_S * 20)
            assert feed.polls == idle  # no page open: nothing looked at
            again = feed.subscribe()  # a fresh message, not the one of before
            fresh = json.loads(await asyncio.wait_for(again.get(), 3))
        assert feed.polls > idle
        await feed.stop()
        return fresh

    assert asyncio.run(run())["state"] == "not_connected"


def test_the_command_warns_when_it_listens_beyond_this_computer(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "host.cli.main", "dashboard", "--host",
                             "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    try:
        warning = proc.stderr.readline()
        ready = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(10)
    assert "warning" in warning and "0.0.0.0" in warning and "no login" in warning
    assert ready.startswith("smartroller dashboard on http://0.0.0.0:")
    bad = subprocess.run([sys.executable, "-m", "host.cli.main", "dashboard", "--data-dir",
                          str(tmp_path / "missing")], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1


def test_the_live_page_draws_the_profiles_back(data_dir, tmp_path):
    from host.analysis.anatomy import BodyModel
    from host.dashboard.pages import DEFAULT_STATURE_M

    (status, _, page), = fetch(data_dir, "/")
    assert status == 200
    drawn = json.loads(page.split('data-boundaries="')[1].split('"')[0].replace("&quot;", '"'))
    expected = BodyModel.from_stature(1.68).boundaries_m * 1e3
    assert drawn == pytest.approx(expected, abs=0.06)
    assert page.count('class="vertebra"') == 18  # C7 .. L5
    ribs = page.split('<line id="ribs"')[1].split("/>")[0]
    assert f'y1="{drawn[13]}"' in ribs  # the end of the rib cage at T12/L1
    assert "drawn for ana (168 cm)" in page
    assert 'src="/static/live.js"' in page and "http" not in page.split("<body")[1]
    (_, _, empty), = fetch(tmp_path, "/")  # no store, no profile: the average back
    assert f"average {DEFAULT_STATURE_M * 100:.0f} cm back" in empty
