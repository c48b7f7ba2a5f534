"""``python -m host.bench.thresholds``: an uncalibrated user's warning threshold, measured.

A user with no calibration is placed by the population's prior, and the warning keeps a
wider margin (``WarningPolicy.uncalibrated()``) until a calibration
(``SessionAnalyzer._policy_now``).
This runs closed-loop sessions of brand-new users (no profile, no calibration) and
scores the host's cues offline at each threshold given, as the bench scores its
``new_user`` figures: false alarms per hour of rolling >= 20 mm above T12/L1 and the
drifts below the ribs warned (``host.bench.scoring``). ``--start-level`` pins where the
person first touches the back (``routine.start_level``); omitted, the default suite's
people.

    python -m host.bench.thresholds [--seeds N] [--duration S] [--start-level L]
                                    [--thresholds P ...]
"""

from __future__ import annotations

import argparse
import dataclasses

from firmware.sim.scenario import Scenario, scenario_from_table
from host.analysis.session import analyze
from host.analysis.warnings import WarningPolicy
from host.bench import scoring
from host.bench.closed_loop import run_session
from host.bench.suite import suite


def sessions(seeds: int, start_level: float | None
             ) -> list[tuple[Scenario, int]]:
    """The scenarios and seeds to run: the default suite's first ``seeds`` people, or
    seeds 1.. of the default scenario with the first contact at ``start_level``."""
    if start_level is None:
        people = suite(seeds)[:seeds]
    else:
        table = {"routine": {"start_level": start_level}}
        people = [(scenario_from_table(table), seed) for seed in range(1, seeds + 1)]
    return [(dataclasses.replace(sc, routine=dataclasses.replace(sc.routine, calibration=False)),
             seed) for sc, seed in people]


def measure(seeds: int, duration_s: float, start_level: float | None,
            thresholds: list[float]) -> list[dict]:
    """Per threshold (P(below the ribs) that starts the warning; it stops at a quarter
    of it): false alarms, per hour, excursions and how many were warned."""
    runs = []
    for scenario, seed in sessions(seeds, start_level):
        run = run_session(scenario, seed, duration_s, session=1)  # a brand-new user
        runs.append((run.roller, run.loop.frames, run.user))
    out = []
    for p in thresholds:
        policy = WarningPolicy(uncalibrated_on_probability=p, uncalibrated_off_probability=p / 4)
        scores = [scoring.offline_warnings(roller, cols, analyze(cols, blank, policy)[0].cues)
                  for roller, cols, blank in runs]
        clear_h = sum(s.clear_rolling_s for s in scores) / 3600.0
        fa = sum(s.false_alarms for s in scores)
        out.append({"threshold": p, "false_alarms": fa,
                    "false_alarms_per_hour": fa / clear_h if clear_h else None,
                    "excursions": sum(s.excursions for s in scores),
                    "warned": sum(s.warned for s in scores)})
    return out


def main(argv: list[str] | None = None) -> None:
    """Print one line per threshold."""
    parser = argparse.ArgumentParser(prog="python -m host.bench.thresholds")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--duration", type=float, default=180.0, help="s per session")
    parser.add_argument("--start-level", type=float, default=None)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.15, 0.2])
    args = parser.parse_args(argv)
    for row in measure(args.seeds, args.duration, args.start_level, args.thresholds):
        rate = row["false_alarms_per_hour"]
        print(f"P {row['threshold']:.2f}: false alarms {row['false_alarms']} "
              f"({'-' if rate is None else f'{rate:.1f}'} /h), "
              f"warned {row['warned']} of {row['excursions']}")


if __name__ == "__main__":
    main()
