"""``smartroller``: the laptop's command line.

    smartroller demo [--duration S] [--speed X] [--seed N] [--scenario FILE]
    smartroller bench [--scenario FILE ...] [--seeds N] [--duration S] [--json]
    smartroller scan | pair ADDRESS | stream ADDRESS [--adapter TRANSPORT]
    smartroller sessions | show | export | report | profile | devices | forget
                                                      (host/cli/sessions.py; --data-dir DIR)

Errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

from firmware.schema import SchemaError

EXIT_USAGE = 2


def _number(kind: type, low: float, what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {what}: {text!r}") from None
        if not math.isfinite(value) or value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}: {text!r}")
        return value
    return parse


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="smartroller", description="smartroller on the laptop")
    sub = p.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="a simulated roller session, end to end")
    demo.add_argument("--duration", type=_number(float, 1.0, "number"),
                      help="simulated seconds (default: the whole scenario)")
    demo.add_argument("--speed", type=_positive, default=1.5,
                      help="simulated seconds per real second (default 1.5; the radio "
                           "runs in real time)")
    demo.add_argument("--seed", type=_number(int, 0, "whole number"), default=7)
    demo.add_argument("--scenario", type=Path, help="scenario TOML (default: the demo routine)")
    demo.add_argument("--out", type=Path, help="where everything goes (default out/demo)")

    bench = sub.add_parser("bench", help="accuracy and cost against the simulator's truth")
    bench.add_argument("--scenario", type=Path, action="append",
                       help="scenario TOML (repeatable; default: the built-in suite)")
    bench.add_argument("--seeds", type=_number(int, 1, "whole number"),
                       help="people (default: the built-in suite's 30; 10 per --scenario)")
    bench.add_argument("--duration", type=_number(float, 1.0, "number"),
                       help="cut every session to this many simulated seconds")
    bench.add_argument("--jobs", type=_number(int, 1, "whole number"),
                       help="processes (default: one per core)")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.add_argument("--ble", action="store_true",
                       help="measure the Bluetooth path instead (real time, virtual radio)")
    bench.add_argument("--mtu", type=_number(int, 23, "whole number"), action="append",
                       help="ATT MTU for --ble (repeatable; default 23 and 247)")
    bench.add_argument("--seconds", type=_number(float, 1.0, "number"), default=20.0,
                       help="measuring time for --ble, s")

    from host.cli.devices import add_ble_parsers

    add_ble_parsers(sub)
    from host.cli.sessions import add_user_parsers

    add_user_parsers(sub)
    from host.cli.daemon import add_daemon_parsers

    add_daemon_parsers(sub)
    return p


def _cmd_bench(args: argparse.Namespace) -> None:
    if args.ble:
        from host.bench.ble import WARM_UP_S, run_ble_bench

        results = []
        for mtu in args.mtu or [23, 247]:
            if mtu > 517:
                raise SchemaError(f"--mtu: {mtu} is out of range (23 .. 517)")
            results.append(run_ble_bench(mtu, args.seconds))
        if args.json:
            print(json.dumps(results, indent=2))
        for r in [] if args.json else results:
            print(" ".join(f"{k}={v}" for k, v in r.items()))
        if not args.json:
            print(f"(after {WARM_UP_S:g} s of warm-up once connected)")
        return
    from firmware.sim.scenario import load_scenario
    from host.bench.suite import SUITE_PEOPLE, run_bench

    scenarios = [load_scenario(p) for p in args.scenario] if args.scenario else None
    seeds = args.seeds or (10 if scenarios else SUITE_PEOPLE)
    result = run_bench(scenarios, seeds, args.duration, args.jobs, progress=_progress)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result["summary"].items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"{key:40s} {shown}")


def _progress(done: int, total: int) -> None:
    """A progress line on stderr when it is a terminal."""
    if sys.stderr.isatty():
        end = "\n" if done == total else ""
        print(f"\rbench: {done}/{total} people", end=end, file=sys.stderr, flush=True)


def _positive(text: str) -> float:
    value = _number(float, 0.0, "number")(text)
    if not 0.05 <= value <= 20.0:
        raise argparse.ArgumentTypeError(f"must be 0.05 .. 20: {text!r}")
    return value


def _cmd_demo(args: argparse.Namespace) -> int:
    from host.cli.demo import DemoError, run_demo

    try:
        run_demo(duration_s=args.duration, speed=args.speed, seed=args.seed,
                 scenario=args.scenario, out_dir=args.out)
    except DemoError as exc:
        print(f"smartroller: error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``smartroller``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command in ("scan", "pair", "stream"):
            from host.cli.devices import run_ble_command

            return run_ble_command(args) or 0
        from host.cli.sessions import run_user_command

        if (status := run_user_command(args)) is not None:
            return status
        from host.cli.daemon import run_daemon_command

        if (status := run_daemon_command(args)) is not None:
            return status
        if args.command == "bench":
            _cmd_bench(args)
        elif args.command == "demo":
            return _cmd_demo(args)
    except SchemaError as exc:
        print(f"smartroller: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as exc:  # a simulated run that could not finish
        print(f"smartroller: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
