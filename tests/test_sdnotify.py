"""sd_notify: READY=1 and WATCHDOG=1 over NOTIFY_SOCKET, a no-op without it, and the
firmware runner really sending them from its loop."""

import asyncio
import os
import socket
import threading
import time

import pytest

from firmware import sdnotify
from firmware.ble import runner
from firmware.ble.device import device_on_controller
from firmware.ble.link import RadioController, RadioLink
from firmware.journal import Journal
from firmware.sim.rig import SimRoller


@pytest.fixture
def listener(tmp_path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield str(path), sock
    sock.close()


def received(sock):
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    return out


def test_no_socket_is_a_no_op():
    assert sdnotify.notify("READY=1", {}) is False
    assert not sdnotify.Watchdog({}).active
    sdnotify.Watchdog({}).kick()  # nothing happens, nothing raises


def test_notify_sends_one_datagram(listener):
    path, sock = listener
    assert sdnotify.notify("READY=1\nSTATUS=ok", {"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"READY=1\nSTATUS=ok"


def test_abstract_socket_address():
    name = f"smartroller-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        assert sdnotify.notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()


def test_send_failure_is_logged_not_raised(tmp_path, caplog):
    assert not sdnotify.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert "sd_notify" in caplog.text


def test_watchdog_timeout_and_pid():
    assert sdnotify.watchdog_timeout_s({"WATCHDOG_USEC": "10000000"}) == 10.0
    assert sdnotify.watchdog_timeout_s({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}) \
        is None
    assert sdnotify.watchdog_timeout_s({"WATCHDOG_USEC": "x"}) is None
    assert sdnotify.watchdog_timeout_s({}) is None


def test_watchdog_kicks_at_half_the_timeout(listener):
    path, sock = listener
    now = [0.0]
    dog = sdnotify.Watchdog({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"},
                            clock=lambda: now[0])
    for step in range(41):  # 4 s in steps of 0.1 s
        now[0] = step * 0.1
        dog.kick()
    assert dog.interval_s == 1.0 and dog.sent == 5  # at 0, 1, 2, 3, 4 s
    assert received(sock) == ["WATCHDOG=1"] * 5


def test_a_full_queue_never_blocks(listener):
    path, sock = listener
    env = {"NOTIFY_SOCKET": path}
    t0 = time.monotonic()
    results = [sdnotify.notify("WATCHDOG=1", env) for _ in range(200)]  # nobody reads
    assert time.monotonic() - t0 < 1.0
    assert results[0] and not all(results)


def test_runner_reports_ready_and_feeds_the_watchdog(listener, monkeypatch, tmp_path):
    path, sock = listener
    messages = []
    sock.settimeout(0.2)
    done = threading.Event()

    def read():  # systemd's side: reads as the datagrams come
        while not done.is_set():
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                pass

    reader = threading.Thread(target=read)
    reader.start()
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")  # kick every 50 ms
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    link = RadioLink(interval_s=0.0)

    class Closable:
        async def close(self):
            pass

    async def on_virtual_controller(spec, address):
        return device_on_controller(RadioController("roller", link=link), address), Closable()

    monkeypatch.setattr(runner, "device_on_transport", on_virtual_controller)
    roller = SimRoller(seed=2, speed=1.0)
    t_end = time.monotonic() + 0.6

    try:
        asyncio.run(runner.serve(roller.firmware, Journal(None), "virtual",
                                 state_dir=tmp_path,
                                 should_stop=lambda: time.monotonic() > t_end))
        time.sleep(0.3)
    finally:
        done.set()
        reader.join()
    assert messages[0].startswith("READY=1\nSTATUS=advertising as smartroller-")
    assert messages[-1] == "STOPPING=1"
    kicks = messages.count("WATCHDOG=1")
    assert 6 <= kicks <= 14  # ~0.6 s / 50 ms, from the running loop
