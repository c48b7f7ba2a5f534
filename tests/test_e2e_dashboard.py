"""The dashboard in a real browser (headless Chromium through Selenium), end to end.

- ``smartroller demo`` (a simulated roller process on the virtual radio, paired, the
  daemon in the loop) while the live page is open: the roller's mark moves over the
  back, the full-width red warning shows while the person drifts below the ribs, the
  page draws 10 or more statuses a second; then the demo's session is on the sessions
  page and its report opens.
- The trends page after three stored sessions (two weeks).

Assertions read the page's DOM, never pixels. Set ``SMARTROLLER_SCREENSHOTS=DIR`` to
keep a PNG of each page (docs/dashboard-*.png are made so).
"""

import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from host.store import Store
from tests.e2e.browser import ROOT, Dashboard, chromium
from tests.sessions import START_UTC, record_session, sim_frames

pytestmark = pytest.mark.slow

SHOTS = os.environ.get("SMARTROLLER_SCREENSHOTS")
PAGE_STATE = """
const s = document.getElementById('state').dataset.state;
const r = document.getElementById('roller');
return {state: s, title: document.getElementById('title').textContent,
        warning: !document.getElementById('warning').hidden,
        roller: r.getAttribute('visibility') === 'visible', level: r.dataset.level || null,
        where: document.getElementById('where').textContent,
        zones: document.querySelectorAll('#zones .zone').length,
        strokes: document.getElementById('strokes').textContent,
        drawn: (window.smartrollerLatencies || []).length};
"""


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def shoot(driver, name):
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(SHOTS) / f"dashboard-{name}.png"))


def test_live_page_follows_the_demo_roller_then_its_session_is_listed(browser, tmp_path):
    out = tmp_path / "demo"
    demo = subprocess.Popen([sys.executable, "-m", "host.cli.main", "demo", "--out", str(out),
                             "--speed", "1.5"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        end = time.monotonic() + 30
        while not (out / "data").is_dir() and time.monotonic() < end:
            time.sleep(0.1)
        with Dashboard(out / "data") as dash:
            browser.get(dash.url + "/")
            seen, shot = [], False
            while demo.poll() is None:
                state = browser.execute_script(PAGE_STATE)
                seen.append(state)
                if state["warning"] and not shot:
                    shoot(browser, "live")
                    shot = True
                time.sleep(0.1)
            latencies = browser.execute_script("return window.smartrollerLatencies")
            log = demo.stdout.read()
            assert demo.returncode == 0, log
            browser.get(dash.url + "/sessions")
            rows = browser.find_elements("css selector", "#sessions tbody tr")
            shoot(browser, "sessions")
            cells = [c.text for c in rows[0].find_elements("css selector", "td")]
            browser.find_element("css selector", "#sessions tbody tr a").click()
            report_title = browser.find_element("tag name", "h1").text
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    states = [s["state"] for s in seen]
    assert states[0] in ("connecting", "no_daemon", "not_connected")
    assert "connected" in states, states
    levels = {s["level"] for s in seen if s["roller"]}
    assert len(levels) > 20, levels  # the mark moved over the back
    assert any(s["warning"] for s in seen), "the red warning never showed"
    assert all(s["state"] == "connected" for s in seen if s["warning"])
    assert max(s["zones"] for s in seen) == 8
    assert any(s["where"].startswith(("T", "L")) for s in seen)
    # >= 10 statuses a second drawn while the roller streams (the middle of the run)
    at = np.array([x["at"] for x in latencies])
    per_second = np.bincount((at - at[0]).astype(int))
    middle = per_second[len(per_second) // 4: 3 * len(per_second) // 4]
    print("statuses drawn per second", per_second.tolist())
    assert np.median(middle) >= 10, per_second
    published = sorted(x["published"] for x in latencies)
    assert published[len(published) // 2] < 0.25  # drawn soon after the daemon wrote it
    assert len(rows) == 1 and cells[0] == "1", cells  # the demo's session
    assert int(cells[3]) > 0 and int(cells[4]) >= 1  # strokes, the lumbar warning
    assert report_title.startswith("smartroller session 1")


def test_trends_after_three_sessions(browser, tmp_path):
    frames = sim_frames(8.0)
    with Store(tmp_path / "smartroller.db") as store:
        store.create_profile("ana", 1.68, "female")
        store.set_active_profile("ana")
        for k, utc0 in enumerate((START_UTC, START_UTC + 3600, START_UTC + 8 * 86400)):
            # each session a boot of its own (the store maps a boot's sensor times to
            # UTC by that boot's clock exchanges)
            boot = [replace(f, boot=(f.boot + k) & 0xFFFFFFFF) for f in frames]
            record_session(store, boot, utc0=utc0)
    with Dashboard(tmp_path) as dash:
        browser.get(dash.url + "/trends")
        weeks = browser.find_elements("css selector", "#trends tbody tr")
        shoot(browser, "trends")
        cells = [[c.text for c in w.find_elements("css selector", "td")] for w in weeks]
        minutes = [float(w.find_element("css selector", '[data-region="mid_thoracic"]').text)
                   for w in weeks]
        link = browser.find_element("id", "trends-csv").get_attribute("href")
    assert [w.get_attribute("data-week") for w in weeks] == ["2026-W23", "2026-W22"]
    assert [c[1] for c in cells] == ["1", "2"]  # sessions per week, newest first
    assert minutes[1] == pytest.approx(2 * minutes[0], abs=0.11)
    assert link.endswith("/trends.csv")
