"""``smartroller bench --ble``: the Bluetooth path end to end, measured.

One process runs the simulated roller with its GATT server on the virtual radio (30 ms
connection interval) and a host (``RollerClient`` on the Bumble backend for bleak)
attached to it over TCP, as ``smartroller-fw sim --host-adapter`` and ``smartroller
--adapter`` do across processes. It pairs, streams for a while and reports:

- frames_per_s: live frames delivered to the host's callback per second;
- lost, duplicates: frames the host never got, or got twice (must be 0, 0);
- wire_bytes_per_frame: stream notification bytes (fragment header included) per frame;
- latency_ms_p50/p99: from the sensor sample of a frame to the host's callback (live
  frames; the sample's wall time is derived from the simulator's clock);
- ble_cpu_ms_per_s: time the roller spends in its Bluetooth flush path (encoding,
  fragmenting, and Bumble's stack below the notify call) per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import tempfile
import time
from pathlib import Path

import numpy as np

from firmware.protocol import Frame, FrameFlag

WARM_UP_S = 5.0  # after connecting, before measuring (and until the backfill is done)
WARM_UP_MAX_S = 90.0
TEARDOWN_S = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _run(mtu: int, seconds: float, interval_ms: float, seed: int) -> dict:
    from firmware.ble.simcli import run_sim_with_radio
    from firmware.sim.rig import SimRoller
    from firmware.sim.scenario import default_scenario
    from host.ble.bumble_backend import BleakClientBumble, BleakScannerBumble, close_adapters
    from host.ble.client import RollerClient
    from host.ble.discovery import BleBackend

    roller = SimRoller(default_scenario(), seed)
    sampled: dict[int, float] = {}

    def sample_time(frame: Frame) -> None:
        lag = roller.clock.now() - float(roller.sensor_to_world(frame.t))
        sampled[frame.seq] = time.monotonic() - lag  # speed 1: virtual s == real s

    roller.add_sink(sample_time)
    spent = [0.0]
    ready = asyncio.Event()

    def on_ready(server: object, link: object) -> None:
        flush = server.flush  # type: ignore[attr-defined]

        def timed_flush(*args: object, **kwargs: object) -> object:
            t0 = time.perf_counter()
            try:
                return flush(*args, **kwargs)
            finally:
                spent[0] += time.perf_counter() - t0
        server.flush = timed_flush  # type: ignore[attr-defined]
        ready.set()

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        sim = asyncio.create_task(run_sim_with_radio(
            roller, f"tcp-server:127.0.0.1:{port}", speed=1.0, until=seconds + 60.0,
            state_dir=Path(tmp) / "roller", interval_ms=interval_ms, pair=True,
            say=lambda text: None, ready=on_ready))
        await asyncio.wait_for(ready.wait(), 20.0)
        backend = BleBackend(BleakScannerBumble, BleakClientBumble,
                             {"transport": f"tcp-client:127.0.0.1:{port}",
                              "key_store": str(Path(tmp) / "host-keys.json"), "mtu": mtu})
        got: list[int] = []
        latencies: list[float] = []
        wire = [0]
        last_backfill = [time.monotonic()]

        def on_frames(frames: list[Frame]) -> None:
            now = time.monotonic()
            for frame in frames:
                got.append(frame.seq)
                if frame.flags & FrameFlag.BACKFILL:
                    last_backfill[0] = now
                if not frame.flags & FrameFlag.BACKFILL and frame.seq in sampled:
                    latencies.append(now - sampled[frame.seq])

        client = RollerClient(backend, on_frames=on_frames)
        feed = client.receiver.feed

        def counting_feed(data: bytes) -> object:
            wire[0] += len(data)
            return feed(data)
        client.receiver.feed = counting_feed  # type: ignore[method-assign]
        found = await client.scan(5.0)
        if not found:
            raise RuntimeError("the simulated roller was not found")
        await client.pair(found[0].device)
        await client.connect(found[0].device)
        # Warm up: the journal backfills what was made before the host connected.
        started = time.monotonic()
        while time.monotonic() - started < WARM_UP_MAX_S and (
                time.monotonic() - started < WARM_UP_S
                or time.monotonic() - last_backfill[0] < 2.0):
            await asyncio.sleep(0.2)
        spent[0] = 0.0
        wire[0] = 0
        latencies.clear()
        t0, first = time.monotonic(), len(got)
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        window = got[first:]
        window_bytes = wire[0]
        # Teardown is bounded: a Bumble task that never finishes must not hang the bench.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), TEARDOWN_S)
        sim.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(sim, TEARDOWN_S)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(close_adapters(), TEARDOWN_S)
        roller.close()
    seqs = np.array(got)
    expected = set(range(int(seqs.min()), int(seqs.max()) + 1)) if len(seqs) else set()
    lat = np.array(latencies) * 1e3
    return {
        "mtu": mtu,
        "connection_interval_ms": interval_ms,
        "seconds": round(elapsed, 2),
        "frames_per_s": round(len(window) / elapsed, 1),
        "lost": len(expected - set(got)),
        "duplicates": len(got) - len(set(got)),
        "wire_bytes_per_frame": round(window_bytes / max(len(window), 1), 2),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
        "latency_ms_p99": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        "ble_cpu_ms_per_s": round(spent[0] / elapsed * 1e3, 2),
    }


def run_ble_bench(mtu: int = 247, seconds: float = 20.0, interval_ms: float = 30.0,
                  seed: int = 1) -> dict:
    """Measure the Bluetooth path for ``seconds`` (real time) at ``mtu``."""
    for name in ("bumble", "asyncio", "bleak", "host.ble", "firmware.ble"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # teardown chatter only
    async def bounded() -> dict:
        budget = seconds + WARM_UP_MAX_S + 120.0
        try:
            return await asyncio.wait_for(_run(mtu, seconds, interval_ms, seed), budget)
        except TimeoutError:
            raise RuntimeError(f"the Bluetooth bench did not finish in {budget:.0f} s") from None
    return asyncio.run(bounded())
