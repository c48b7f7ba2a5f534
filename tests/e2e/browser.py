"""A real browser for the dashboard's end-to-end tests: Debian's headless Chromium
driven by Selenium, and ``smartroller dashboard`` run as its own process.

``chromium()`` starts the browser (a fresh profile, no network of its own: the flags
keep it from calling home, which this machine's closed network refuses);
``Dashboard(data_dir)`` starts the server on a free port and waits until it answers.
``make test`` installs Chromium and ChromeDriver (Debian's packages) where they lack.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ROOT = Path(__file__).resolve().parents[2]
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-quic", "--window-size=1400,1000")


def chromium():  # -> selenium.webdriver.Chrome
    """Headless Chromium with a fresh profile (quit it when done)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        raise RuntimeError("no Chromium: apt-get install chromium chromium-driver "
                           "(`make test` does)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tempfile.mkdtemp(prefix='chromium-')}"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dashboard:
    """``smartroller dashboard`` over ``data_dir`` on a free port (a context manager)."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "host.cli.main", "dashboard", "--port", str(self.port),
             "--data-dir", str(data_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, cwd=ROOT)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the dashboard stopped: {self.proc.stdout.read()}")
            try:
                urllib.request.urlopen(self.url + "/static/style.css", timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.close()
        raise RuntimeError("the dashboard did not answer within 20 s")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
