"""``smartroller bench``: accuracy and cost against the simulator's truth.

    smartroller bench [--scenario FILE ...] [--seeds N] [--duration S] [--jobs J] [--json]
    smartroller bench --ble [--mtu N ...] [--seconds S] [--json]

The suite runs in ``host.bench`` (docs/benchmarks.md); a bad scenario file or value is
one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TextIO

from firmware.schema import SchemaError
from host.cli.common import EXIT_OK, number

__all__ = ["COMMANDS", "add_parsers", "run"]

COMMANDS = ("bench",)


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``bench`` to the sub-parsers."""
    bench = sub.add_parser("bench", help="accuracy and cost against the simulator's truth")
    bench.add_argument("--scenario", type=Path, action="append",
                       help="scenario TOML (repeatable; default: the built-in suite)")
    bench.add_argument("--seeds", type=number(int, 1, "whole number"),
                       help="people (default: the built-in suite's 30; 10 per --scenario)")
    bench.add_argument("--duration", type=number(float, 1.0, "number"),
                       help="cut every session to this many simulated seconds")
    bench.add_argument("--jobs", type=number(int, 1, "whole number"),
                       help="processes (default: one per core)")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.add_argument("--ble", action="store_true",
                       help="measure the Bluetooth path instead (real time, virtual radio)")
    bench.add_argument("--mtu", type=number(int, 23, "whole number"), action="append",
                       help="ATT MTU for --ble (repeatable; default 23 and 247)")
    bench.add_argument("--seconds", type=number(float, 1.0, "number"), default=20.0,
                       help="measuring time for --ble, s")


def run(args: argparse.Namespace, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    """Run ``smartroller bench``; its exit status. A bad scenario raises ``SchemaError``
    (the caller prints it, exit status 2)."""
    out = out or sys.stdout
    if args.ble:
        from host.bench.ble import WARM_UP_S, run_ble_bench

        results = []
        for mtu in args.mtu or [23, 247]:
            if mtu > 517:
                raise SchemaError(f"--mtu: {mtu} is out of range (23 .. 517)")
            results.append(run_ble_bench(mtu, args.seconds))
        if args.json:
            print(json.dumps(results, indent=2), file=out)
        for r in [] if args.json else results:
            print(" ".join(f"{k}={v}" for k, v in r.items()), file=out)
        if not args.json:
            print(f"(after {WARM_UP_S:g} s of warm-up once connected)", file=out)
        return EXIT_OK
    from firmware.sim.scenario import load_scenario
    from host.bench.suite import SUITE_PEOPLE, run_bench

    scenarios = [load_scenario(p) for p in args.scenario] if args.scenario else None
    seeds = args.seeds or (10 if scenarios else SUITE_PEOPLE)
    names = [p.stem for p in args.scenario] if args.scenario else None
    result = run_bench(scenarios, seeds, args.duration, args.jobs, progress=_progress,
                       names=names)
    if args.json:
        print(json.dumps(result, indent=2), file=out)
        return EXIT_OK
    _print_summary(result["summary"], out)
    if len(names or []) > 1:
        for name, summary in result["by_scenario"].items():
            print(f"\n{name}:", file=out)
            _print_summary(summary, out)
    return EXIT_OK


def _print_summary(summary: dict, out: TextIO) -> None:
    """One line per figure."""
    for key, value in summary.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:40s} {shown}", file=out)


def _progress(done: int, total: int) -> None:
    """A progress line on stderr when it is a terminal."""
    if sys.stderr.isatty():
        end = "\n" if done == total else ""
        print(f"\rbench: {done}/{total} people", end=end, file=sys.stderr, flush=True)
