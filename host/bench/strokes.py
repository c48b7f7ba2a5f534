"""Stroke segmentation against the simulator's truth: ``python -m host.bench.strokes``.

Each session runs the unchanged firmware on emulated hardware (``SimRoller``) driven by a
seeded person; its frames, quantised as the wire quantises them, go through the online
``StrokeSegmenter`` in batches of two (one FIFO drain, as they arrive over Bluetooth) and
through the offline ``segment``. The detected strokes are mapped to world time and
scored against the routine's true strokes (``host.analysis.stroke_score``):

- precision, recall, f1, exact_count_share: strokes >= 30 mm, knife edge forgiven;
- amplitude_mae_mm: over the true positives;
- latency_ms_median / p99 / max: sensor time from the true end of a stroke's movement
  to the frame that decided it (the online pass);
- dwell_recall: the share of the routine's pauses and rests (hips lowered) of 2 s or
  more that a detected dwell overlaps;
- segmenter_us_per_frame: wall time inside the online segmenter per frame;
- offline_equals_online: the offline pass gave the very same strokes and dwells.

Only this module and the tests read the truth; the segmenter sees frames.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from firmware.protocol import Frame, quantise
from firmware.sim.scenario import Scenario
from host.analysis.stroke_score import StrokeScore, StrokeSet, score, summarise
from host.analysis.strokes import StrokeSegmentation, StrokeSegmenter, segment_frames
from host.bench.workers import ordered_map

BATCH_FRAMES = 2
"""Frames handed to the online segmenter at once (one 20 ms FIFO drain at 100 Hz)."""


@dataclass
class StrokeSession:
    """One simulated session's stroke figures (``score`` holds the raw errors)."""

    seed: int
    duration_s: float
    frames: int
    strokes: int
    dwells: int
    true_rests: int
    rests_found: int
    segmenter_us_per_frame: float
    offline_equals_online: bool
    score: StrokeScore


def run_online(frames: Sequence[Frame]) -> tuple[StrokeSegmentation, float]:
    """The online pass in batches of ``BATCH_FRAMES``: what it found, and the wall
    seconds spent inside the segmenter."""
    seg = StrokeSegmenter()
    found = StrokeSegmentation()
    spent = 0.0
    for k in range(0, len(frames), BATCH_FRAMES):
        batch = frames[k:k + BATCH_FRAMES]
        t0 = time.perf_counter()
        got = [(f.t, seg.push(f)) for f in batch]
        spent += time.perf_counter() - t0
        for t, items in got:
            found.add(items, t)
    found.add(seg.flush(), float("nan"))
    return found, spent


def run_session(scenario: Scenario, seed: int, duration_s: float | None = None) -> StrokeSession:
    """Simulate one session, segment its frames online and offline, score them."""
    from firmware.sim.rig import SimRoller

    roller = SimRoller(scenario, seed)
    zones = roller.config.zones.count
    frames: list[Frame] = []
    roller.add_sink(lambda f: frames.append(quantise(f, zones)))
    end = roller.duration_s if duration_s is None else min(duration_s, roller.duration_s)
    roller.run(until=end)
    roller.close()
    online, spent = run_online(frames)
    offline = segment_frames(frames)
    same = (offline.strokes == online.strokes and offline.dwells == online.dwells
            and offline.decided_t == online.decided_t)
    # A stroke still moving within half a second of a cut session's end cannot be
    # decided: leave such strokes out on both sides.
    truth = StrokeSet.of(roller.world.truth.strokes)
    found = StrokeSet.from_strokes(online.strokes, online.decided_t, roller.sensor_to_world)
    result = score(found.select(found.end_s < end - 0.5), truth.select(truth.end_s < end - 0.5))
    rests = _rests(roller.world.truth.t, roller.world.truth.phase, end)
    dwells = [(float(a), float(b)) for a, b in zip(
        roller.sensor_to_world(np.array([d.start_t for d in online.dwells])),
        roller.sensor_to_world(np.array([d.end_t for d in online.dwells])), strict=True)]
    found_rests = sum(any(b > r0 and a < r1 for a, b in dwells) for r0, r1 in rests)
    return StrokeSession(seed, end, len(frames), len(online.strokes), len(online.dwells),
                         len(rests), found_rests, spent / max(len(frames), 1) * 1e6, same,
                         result)


def _rests(t: np.ndarray, phase: np.ndarray, end_s: float, shortest_s: float = 2.0
           ) -> list[tuple[float, float]]:
    """(start, end) world times (s) of the routine's pauses and rests of ``shortest_s`` or
    more that ended before ``end_s``, from the truth's times and ``Phase`` codes."""
    from firmware.sim.routine import Phase

    resting = np.isin(phase, (int(Phase.PAUSE), int(Phase.REST))).astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate(([0], resting, [0]))))
    spans = [(float(t[a]), float(t[min(b, len(t) - 1)])) for a, b in zip(edges[::2], edges[1::2],
                                                                         strict=True)]
    return [(a, b) for a, b in spans if b - a >= shortest_s and b < end_s]


def _run(args: tuple[Scenario, int, float | None]) -> StrokeSession:
    return run_session(*args)


def run_stroke_bench(scenarios: Sequence[Scenario], seeds: int, duration_s: float | None = None,
                     jobs: int | None = None, first_seed: int = 1,
                     progress: Callable[[dict], None] | None = None) -> dict:
    """Run ``seeds`` sessions of each scenario; return the summary and the sessions.
    ``progress`` is called with each session's row as it finishes (in order)."""
    work = [(sc, seed, duration_s) for sc in scenarios
            for seed in range(first_seed, first_seed + seeds)]
    results: list[StrokeSession] = []
    for r in ordered_map(_run, work, jobs):
        results.append(r)
        if progress is not None:
            progress(_row(r))
    summary = summarise([r.score for r in results])
    summary |= {
        "simulated_s": sum(r.duration_s for r in results),
        "dwell_recall": (sum(r.rests_found for r in results)
                         / max(sum(r.true_rests for r in results), 1)),
        "segmenter_us_per_frame": float(np.mean([r.segmenter_us_per_frame for r in results])),
        "offline_equals_online": all(r.offline_equals_online for r in results),
    }
    return {"summary": summary, "sessions": [_row(r) for r in results]}


def _row(r: StrokeSession) -> dict:
    """One session's figures as plain values."""
    row = {k: v for k, v in dataclasses.asdict(r).items() if k != "score"}
    s = r.score
    row |= {"true_strokes": s.true_count, "true_positives": s.true_positives,
            "misses": s.misses, "false_alarms": s.false_alarms, "f1": s.f1,
            "exact_count": s.exact_count, "amplitude_mae_mm": s.amplitude_mae_mm,
            "latency_ms_max": float(s.latencies_ms.max()) if len(s.latencies_ms) else None}
    return row


def _print_row(row: dict) -> None:
    lat = row["latency_ms_max"]
    print(f"seed {row['seed']:3d}: {row['true_strokes']:3d} strokes >= 30 mm, "
          f"misses {row['misses']}, false alarms {row['false_alarms']}, "
          f"MAE {row['amplitude_mae_mm']:.2f} mm, latency max "
          f"{'-' if lat is None else f'{lat:.0f}'} ms, pauses as dwells "
          f"{row['rests_found']}/{row['true_rests']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m host.bench.strokes [--seeds N] [--duration S] [--jobs J] [--json]``."""
    p = argparse.ArgumentParser(prog="python -m host.bench.strokes",
                                description="stroke segmentation against the simulator's truth")
    p.add_argument("--seeds", type=int, default=30, help="people (sessions), default 30")
    p.add_argument("--first-seed", type=int, default=1, help="seed of the first person")
    p.add_argument("--duration", type=float, help="cut every session to this many seconds")
    p.add_argument("--jobs", type=int, default=2, help="processes (default 2)")
    p.add_argument("--json", action="store_true", help="print JSON (summary and sessions)")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.jobs < 1 or (args.duration is not None and args.duration < 10):
        p.error("--seeds and --jobs must be >= 1, --duration >= 10")
    from firmware.sim.scenario import default_scenario

    result = run_stroke_bench([default_scenario()], args.seeds, args.duration, args.jobs,
                              args.first_seed, None if args.json else _print_row)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    for key, value in result["summary"].items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"{key:26s} {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
