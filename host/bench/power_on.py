"""A roller switched on while it is already rolling (issue 16 item 3), scored.

The roller is powered ``POWER_ON_S`` into a session in which the person never stops
rolling, so there is no still second to learn the gyro's offset from; gravity's turn
gives it. Scored as docs/benchmarks.md §16 "A roller switched on mid-roll" scores it:
the rolling error (the position against the distance rolled, from the zero the roller
took at power-on) from power-on + ``SETTLE_S`` to the end.

Two routines that are never still: ``stroking`` (the default strokes, no pauses, no
drifts) and ``steady`` (one long slow stroke every 10-12 s). Each roller either new
(nothing kept) or as built (table-rolled: ``host.bench.suite.table_roll``).

    python -m host.bench.power_on --seeds 8            # both, seeds 1-8
    python -m host.bench.power_on --seeds 8 --new      # rollers never table-rolled
"""

from __future__ import annotations

import argparse
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware.protocol import FrameFlag
from firmware.sim.rig import SimRoller
from firmware.sim.scenario import Scenario, scenario_from_table
from host.bench.suite import position_errors_after, rolled_distance, table_roll

__all__ = ["POWER_ON_S", "ROUTINES", "SETTLE_S", "PowerOn", "power_on_scenario",
           "run_power_on"]

POWER_ON_S = 40.0
"""World time at which the roller is switched on, s."""
SESSION_S = 70.0
"""The whole session, s (the roller runs its last 30 s)."""
SETTLE_S = 10.0
"""The rolling error is scored from this long after power-on, s (issue 16's target)."""

_NEVER_STILL = {"lumbar_excursions": 0, "pause_rate_per_min": 0.0,
                "hips_lowered_rate_per_min": 0.0}
ROUTINES: dict[str, dict[str, object]] = {
    "stroking": _NEVER_STILL,
    "steady": {**_NEVER_STILL, "cadence_per_min": [5.0, 6.0], "stroke_length_m": [0.15, 0.25],
               "excursion_depth_m": [0.005, 0.01]},
}
"""The routines that are never still, as scenario ``[routine]`` keys."""


@dataclass(frozen=True)
class PowerOn:
    """One power-on session's figures."""

    routine: str
    seed: int
    table_rolled: bool
    rolling_rmse_mm: float
    """The rolling error from power-on + ``SETTLE_S`` to the end, mm."""
    uncalibrated_s: float
    """How long after power-on the frames said UNCALIBRATED, s (world time)."""
    offset_error_dps: float
    """The gyro offset the odometry ended with, less the part's true one, deg/s."""


def power_on_scenario(routine: str) -> Scenario:
    """The session of ``routine`` (a key of ``ROUTINES``) with the roller switched on
    ``POWER_ON_S`` into it."""
    return scenario_from_table({"session": {"duration_s": SESSION_S, "power_on_s": POWER_ON_S},
                                "routine": dict(ROUTINES[routine])})


def run_power_on(routine: str, seed: int, table_rolled: bool) -> PowerOn:
    """Run and score one power-on session of ``routine`` on the roller of ``seed``,
    table-rolled when built or new."""
    scenario = power_on_scenario(routine)
    with tempfile.TemporaryDirectory(prefix="smartroller-power-on-") as state:
        state_dir = Path(state)
        if table_rolled:
            table_roll(scenario, seed, state_dir)
        roller = SimRoller(scenario, seed, state_dir=state_dir, replay=False)
        frames: list = []
        roller.add_sink(frames.append)
        roller.run()
        roller.close()
    t = np.array([f.t for f in frames])
    position = np.array([f.position for f in frames])
    flags = np.array([int(f.flags) for f in frames])
    t_world = roller.sensor_to_world(t)
    truth = roller.world.truth
    late = position_errors_after(t_world, position, flags, truth.t, rolled_distance(truth),
                                 POWER_ON_S + SETTLE_S)
    rmse = float(np.sqrt(np.mean(late**2))) * 1e3 if len(late) else math.nan
    flagged = np.flatnonzero(flags & int(FrameFlag.UNCALIBRATED))
    uncal = float(t_world[flagged[-1]] - POWER_ON_S) if len(flagged) else 0.0
    od = roller.firmware.pipeline.odometry
    axis = "xyz".index(roller.config.imu.roller_axis)
    offset_error = math.degrees(od.gyro_offset.offset) - roller.imu.true_gyro_offset_dps()[axis]
    return PowerOn(routine, seed, table_rolled, rmse, uncal, float(offset_error))


def main(argv: list[str] | None = None) -> int:
    """Print each routine's figures over seeds 1..N, one line a session."""
    parser = argparse.ArgumentParser(prog="python -m host.bench.power_on",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=8, help="seeds 1..N (default 8)")
    parser.add_argument("--new", action="store_true",
                        help="rollers never table-rolled (default: table-rolled when built)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds: at least 1")
    within = 0
    for routine in ROUTINES:
        for seed in range(1, args.seeds + 1):
            r = run_power_on(routine, seed, table_rolled=not args.new)
            within += r.rolling_rmse_mm <= 3.0
            print(f"{routine:9s} seed {seed:2d}: rolling RMSE {r.rolling_rmse_mm:5.2f} mm from "
                  f"power-on + {SETTLE_S:.0f} s; UNCALIBRATED {r.uncalibrated_s:4.1f} s; "
                  f"offset {r.offset_error_dps:+.3f} deg/s off", flush=True)
    print(f"{within} of {len(ROUTINES) * args.seeds} within 3 mm")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
