"""How fast the session store is: ``python -m host.bench.store [--frames N] [--batch K]``.

Stores N frames (default 360,000: one hour at 100 Hz, 8 zones) in batches of K (default
4) with their UTC, spine estimates and stream position, as the daemon does live, then
closes the session and reads it back into numpy arrays. Prints the cost per batch
(wall and this thread's CPU time: median, 99th percentile and the fraction over 1 ms;
on a busy machine the wall time includes waiting for a core), the close, and the read
(frames, then estimates), s.
Runs in a temporary directory (or ``--dir``) on this machine's disk.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from firmware.protocol import Frame, FrameFlag
from host.analysis.model import Region, SpineEstimate
from host.store import Store
from host.stream import ClockMap, ClockSample, StreamPosition


def synthetic_frames(n: int, boot: int = 12345, zones: int = 8) -> list[Frame]:
    """``n`` frames at 100 Hz rolling 5 cm strokes at 30 per minute."""
    out = []
    for i in range(n):
        t = i * 0.01
        pos = 0.05 * math.sin(math.pi * t / 1.0)
        load = tuple(20.0 + z for z in range(zones))
        out.append(Frame(i, t, pos, 0.05 * math.pi * math.cos(math.pi * t), 2 * pos / 0.152,
                         load, sum(load), FrameFlag.IN_CONTACT, boot))
    return out


def run(frames_n: int = 360_000, batch: int = 4, directory: Path | None = None,
        durable: bool = False) -> dict[str, float]:
    """The figures described in the module docstring."""
    frames = synthetic_frames(frames_n)
    estimates = [SpineEstimate(8.0 + f.position / 0.024, Region.MID_THORACIC, 0.01,
                               0.16 + f.position, 0.008) for f in frames]
    clock = ClockMap([ClockSample(frames[0].boot, 0.0, 1.78e9, 0.02)])
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        store = Store(Path(tmp) / "bench.db", durable=durable)
        session = store.open_session("F2:83:5D:6F:F8:0C", 1.78e9)
        costs, cpu = [], []
        for i in range(0, frames_n, batch):
            part = frames[i:i + batch]
            t0, c0 = time.perf_counter(), time.thread_time()
            store.add_frames(session.id, part, clock=clock, estimates=estimates[i:i + batch],
                             position=StreamPosition(part[-1].boot, part[-1].seq))
            costs.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
        t0 = time.perf_counter()
        store.close_session(session.id)
        close_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = store.read_frames(session.id)
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.read_estimates(session.id, got)
        est_s = time.perf_counter() - t0
        size = (Path(tmp) / "bench.db").stat().st_size
        store.close()
    assert len(got) == frames_n
    ms = np.array(costs) * 1e3
    cpu_ms = np.array(cpu) * 1e3
    return {"frames": frames_n, "batch": batch, "durable": durable,
            "add_batch_ms_median": round(float(np.median(ms)), 3),
            "add_batch_ms_p99": round(float(np.percentile(ms, 99)), 3),
            "add_batch_ms_max": round(float(ms.max()), 1),
            "add_batch_over_1ms_fraction": round(float((ms > 1.0).mean()), 4),
            "add_batch_cpu_ms_median": round(float(np.median(cpu_ms)), 3),
            "add_batch_cpu_ms_p99": round(float(np.percentile(cpu_ms, 99)), 3),
            "add_batch_cpu_over_1ms_fraction": round(float((cpu_ms > 1.0).mean()), 4),
            "close_s": round(close_s, 3), "read_frames_s": round(read_s, 3),
            "read_estimates_s": round(est_s, 3), "db_mb": round(size / 1e6, 1)}


def main(argv: list[str] | None = None) -> None:
    """Command line: print the figures as JSON."""
    p = argparse.ArgumentParser(prog="python -m host.bench.store", description=__doc__)
    p.add_argument("--frames", type=int, default=360_000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--dir", type=Path, help="where the temporary database goes")
    p.add_argument("--durable", action="store_true", help="fsync every commit")
    args = p.parse_args(argv)
    print(json.dumps(run(args.frames, args.batch, args.dir, args.durable), indent=2))


if __name__ == "__main__":
    main()
