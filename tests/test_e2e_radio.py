"""Roller and host as separate OS processes over the virtual radio (real time)."""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host(*args, timeout=60):
    return subprocess.run([PY, "-m", "host.cli.main", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture
def roller(tmp_path):
    procs = []

    def start(*extra, duration=60):
        port = free_port()
        proc = subprocess.Popen(
            [PY, "-m", "firmware.cli", "sim", "--seed", "3", "--duration", str(duration),
             "--every", "1000", "--host-adapter", f"tcp-server:127.0.0.1:{port}",
             "--state-dir", str(tmp_path / "roller"), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        procs.append(proc)
        # The server listens on connection; give the roller a moment to boot.
        time.sleep(2.0)
        return f"tcp-client:127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def scan(adapter, keys, tries=5):
    """The roller's address (the roller process may still be booting: try again)."""
    for _ in range(tries):
        out = host("scan", "--adapter", adapter, "--keys", keys, "--timeout", "3")
        addresses = [word for line in out.stdout.splitlines() for word in line.split()
                     if word.count(":") == 5]
        if out.returncode == 0 and addresses:
            return addresses[0]
        time.sleep(1.0)
    raise AssertionError(f"no roller found: {out.stdout} {out.stderr}")


def test_pair_in_the_window_then_stream(roller, tmp_path):
    adapter = roller("--pair")
    keys = str(tmp_path / "host-keys.json")
    address = scan(adapter, keys)
    paired = host("pair", address, "--adapter", adapter, "--keys", keys)
    assert paired.returncode == 0, paired.stderr
    streamed = host("stream", address, "--adapter", adapter, "--keys", keys, "--seconds", "4")
    assert streamed.returncode == 0, streamed.stderr
    assert len(streamed.stdout.splitlines()) > 250  # ~100 frames/s


def test_pairing_refused_outside_the_window(roller, tmp_path):
    adapter = roller()  # a roller with no bond opens its window at first boot...
    keys = str(tmp_path / "host-keys.json")
    address = scan(adapter, keys)
    # ...which closes on the first bond: a second, different host must then be refused.
    first = host("pair", address, "--adapter", adapter, "--keys", keys)
    assert first.returncode == 0, first.stderr
    stranger = host("pair", address, "--adapter", adapter, "--keys",
                    str(tmp_path / "stranger.json"), timeout=90)
    assert stranger.returncode != 0
    stream = host("stream", address, "--adapter", adapter, "--keys",
                  str(tmp_path / "stranger.json"), "--seconds", "2", timeout=90)
    assert stream.returncode != 0 or not stream.stdout.strip()


def test_no_frame_lost_or_duplicated_across_sigkill_and_a_30_s_outage(roller, tmp_path):
    adapter = roller("--pair", "--cut-at", "22", "--cut-for", "30", duration=120)
    keys = str(tmp_path / "host-keys.json")
    store = tmp_path / "store.txt"
    address = scan(adapter, keys)

    def storing_host(seconds, pair=False):
        return subprocess.Popen(
            [PY, "-m", "tests.e2e.storing_host", str(store), address, adapter, keys,
             str(seconds), *(["--pair"] if pair else [])], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    first = storing_host(600, pair=True)
    time.sleep(10)
    first.send_signal(signal.SIGKILL)  # the host dies mid-stream
    first.wait()
    time.sleep(3)
    second = storing_host(75)  # through the outage (22 .. 52 s) and after it
    assert second.wait(timeout=120) == 0
    rows = [tuple(map(int, line.split())) for line in store.read_text().splitlines()]
    assert len({boot for boot, _, _ in rows}) == 1
    seqs = [seq for _, seq, _ in rows]  # arrival order: backfill may follow later live
    assert len(seqs) == len(set(seqs)), "a frame was stored twice"
    live = [seq for _, seq, backfill in rows if not backfill]
    assert live == sorted(live), "live frames out of order"
    ordered = sorted(seqs)
    assert ordered == list(range(ordered[0], ordered[-1] + 1)), "a frame is missing"
    assert len(seqs) > 6000  # more than a minute of frames
    assert any(backfill for _, _, backfill in rows)  # the outage was filled from the journal
