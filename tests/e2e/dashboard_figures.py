"""The dashboard's figures for docs/benchmarks.md, in a real browser (headless Chromium).

    python -m tests.e2e.dashboard_figures latency [--speed 1.0]
    python -m tests.e2e.dashboard_figures pages [--sessions 500] [--seconds 60]

``latency``: ``smartroller demo`` at real speed (the roller's clock then maps to UTC
as a real roller's does) with the live page open; per status the page drew, the time
from the frame (roller's clock mapped to UTC) to the draw, from its arrival at the
daemon, and from the daemon's publishing; p50/p99, and the statuses drawn per second.
``pages``: a store of N sessions of ``--seconds`` of simulated rolling each (one a
day), then each page loaded 5 times (the trends page first cold: every session's
figures read once, then from the server's cache); the browser's navigation timing,
request to load event, ms. Run under the heavy-run lock: ``flock /tmp/heavy.lock ...``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.e2e.browser import ROOT, Dashboard, chromium

LOAD_MS = ("const t = performance.getEntriesByType('navigation')[0];"
           "return t.loadEventEnd - t.startTime;")


def _pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values) * 1e3
    return {"n": len(a), "p50_ms": round(float(np.percentile(a, 50)), 1),
            "p99_ms": round(float(np.percentile(a, 99)), 1),
            "max_ms": round(float(a.max()), 1)}


def latency(speed: float) -> dict:
    out = Path(tempfile.mkdtemp()) / "demo"
    demo = subprocess.Popen([sys.executable, "-m", "host.cli.main", "demo", "--out", str(out),
                             "--speed", str(speed)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    browser = chromium()
    try:
        while not (out / "data").is_dir():
            time.sleep(0.1)
        with Dashboard(out / "data") as dash:
            browser.get(dash.url + "/")
            demo.wait(300)
            lat = browser.execute_script("return window.smartrollerLatencies")
    finally:
        browser.quit()
        if demo.poll() is None:
            demo.kill()
    frame = [x["frame"] for x in lat]
    at = np.array([x["at"] for x in lat])
    per_second = np.bincount((at - at[0]).astype(int))
    quarters = np.array_split(np.asarray(frame), 4)  # does the clock mapping drift?
    return {"speed": speed, "frame_to_screen": _pct(frame),
            "frame_to_screen_p50_by_quarter_ms": [round(float(np.median(q)) * 1e3, 1)
                                                  for q in quarters],
            "frame_to_daemon_p50_ms": round(float(np.median(
                [x["frame"] - x["daemon"] for x in lat if x["daemon"] is not None])) * 1e3, 1),
            "daemon_to_screen": _pct([x["daemon"] for x in lat if x["daemon"] is not None]),
            "publish_to_screen": _pct([x["published"] for x in lat]),
            "statuses_drawn": len(lat),
            "drawn_per_second_p50": float(np.median(per_second[1:-1]))}


def pages(sessions: int, seconds: float) -> dict:
    from host.store import Store
    from tests.sessions import START_UTC, record_session, sim_frames

    folder = Path(tempfile.mkdtemp())
    frames = sim_frames(seconds)
    t0 = time.perf_counter()
    with Store(folder / "smartroller.db") as store:
        store.create_profile("ana", 1.68, "female")
        store.set_active_profile("ana")
        for k in range(sessions):
            record_session(store, frames, utc0=START_UTC + k * 86400, batch=500)
    built_s = time.perf_counter() - t0
    browser = chromium()
    result: dict = {"sessions": sessions, "seconds_each": seconds,
                    "store_mb": round((folder / "smartroller.db").stat().st_size / 1e6, 1),
                    "build_s": round(built_s, 1)}
    try:
        with Dashboard(folder) as dash:
            for path in ("/sessions", "/trends", "/"):
                times = []
                for _ in range(5):
                    browser.get(dash.url + path)
                    times.append(browser.execute_script(LOAD_MS))
                result[path] = {"first_ms": round(times[0]),
                                "median_ms": round(float(np.median(times[1:])))}
    finally:
        browser.quit()
    return result


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--speed", type=float, default=1.0)
    pg = sub.add_parser("pages")
    pg.add_argument("--sessions", type=int, default=500)
    pg.add_argument("--seconds", type=float, default=60.0)
    args = p.parse_args()
    result = latency(args.speed) if args.what == "latency" else pages(args.sessions,
                                                                       args.seconds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
