"""``smartroller bench``: the simulated roller end to end, scored against the ground truth.

Each session runs the unchanged firmware on emulated hardware driven by a seeded
person; the frames it emits (all an estimator ever sees) are then compared with the
world's truth, which only this module reads. Figures (see docs/benchmarks.md):

- position_rmse_mm: RMSE of the position relative to the zero against the true
  contact position relative to the same instant, over frames in contact (includes
  the back slipping over the roller, which no roll sensor can see);
- rolling_rmse_mm: the same against the distance the roller truly rolled along the back
  (sum of r_eff * dtheta): the odometry's own error, slip excluded;
- position_error_p95_mm: 95th percentile of the absolute position error;
- firmware_cpu_ms_per_s: time inside the firmware's loop (``Firmware.step``) per
  simulated second, less the time spent inside the emulated devices and the physics
  (the SimBus dispatch, standing in for smbus2's ioctl, stays counted);
- fifo_overflows: MPU-6050 FIFO overflows over all sessions;
- zone_scan_hz: zone scans per second (every zone read once per scan).
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from firmware.protocol import Frame, FrameFlag
from firmware.sim.scenario import Scenario


@dataclass
class SessionResult:
    """Figures of one simulated session."""

    seed: int
    duration_s: float
    frames: int
    position_rmse_mm: float
    rolling_rmse_mm: float
    position_error_p95_mm: float
    firmware_cpu_ms_per_s: float
    fifo_overflows: int
    zone_scan_hz: float
    stature_m: float


class FrameLog:
    """Collects frames into arrays (cheap enough to run inside the firmware's sink)."""

    def __init__(self) -> None:
        self.t: list[float] = []
        self.position: list[float] = []
        self.flags: list[int] = []
        self.load: list[float] = []

    def __call__(self, frame: Frame) -> None:
        """Sink: record one frame."""
        self.t.append(frame.t)
        self.position.append(frame.position)
        self.flags.append(int(frame.flags))
        self.load.append(frame.total_load)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t s, position m, flags) as numpy arrays."""
        return np.array(self.t), np.array(self.position), np.array(self.flags, dtype=np.int64)


def position_errors(t_world: np.ndarray, position: np.ndarray, flags: np.ndarray,
                    truth_t: np.ndarray, truth_contact: np.ndarray) -> np.ndarray:
    """Errors (m) of the relative position against the truth, over frames in contact.

    Both are taken relative to the frame that carried the first ZEROED flag.
    """
    zeroed = np.flatnonzero(flags & int(FrameFlag.ZEROED))
    if len(zeroed) == 0:
        return np.array([])
    first = zeroed[0]
    truth = np.interp(t_world, truth_t, np.nan_to_num(truth_contact, nan=np.nan))
    in_truth = np.interp(t_world, truth_t, np.isfinite(truth_contact).astype(float)) > 0.999
    contact = (flags & int(FrameFlag.IN_CONTACT)) != 0
    use = contact & in_truth & np.isfinite(truth)
    use[:first] = False
    if not np.isfinite(truth[first]):
        return np.array([])
    est = position - position[first]
    true = truth - truth[first]
    return (est - true)[use]


def run_session(scenario: Scenario, seed: int, duration_s: float | None = None) -> SessionResult:
    """Run one simulated session and score it."""
    from firmware.sim.rig import SimRoller

    roller = SimRoller(scenario, seed)
    log = FrameLog()
    roller.add_sink(log)
    end = roller.duration_s if duration_s is None else min(duration_s, roller.duration_s)
    roller.run(until=end)
    roller.close()
    t, position, flags = log.arrays()
    truth = roller.world.truth
    t_world = roller.sensor_to_world(t)
    errors = position_errors(t_world, position, flags, truth.t, truth.contact_m)
    rolled = np.concatenate([[0.0], np.cumsum(truth.r_eff_m[1:] * np.diff(truth.roll_angle_rad))])
    rolled = np.where(np.isfinite(truth.contact_m), rolled, np.nan)
    rolling = position_errors(t_world, position, flags, truth.t, rolled)
    rmse = _rms_mm(errors)
    p95 = float(np.percentile(np.abs(errors), 95)) * 1e3 if len(errors) else math.nan
    fw = roller.firmware
    cpu = roller.firmware_seconds / end * 1e3
    return SessionResult(seed, end, len(t), rmse, _rms_mm(rolling), p95, cpu, fw.imu.overflows,
                         fw.scanner.scans / end, roller.world.person.stature_m)


def _rms_mm(errors: np.ndarray) -> float:
    return float(np.sqrt(np.mean(errors**2))) * 1e3 if len(errors) else math.nan


def _run(args: tuple[Scenario, int, float | None]) -> SessionResult:
    return run_session(*args)


def run_bench(scenarios: Sequence[Scenario], seeds: int, duration_s: float | None = None,
              jobs: int | None = None) -> dict:
    """Run ``seeds`` sessions of each scenario; return the summary and the sessions."""
    work = [(sc, seed, duration_s) for sc in scenarios for seed in range(1, seeds + 1)]
    jobs = jobs or min(len(work), os.cpu_count() or 1)
    if jobs > 1:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            results = pool.map(_run, work)
    else:
        results = [_run(w) for w in work]
    def pooled(name: str) -> tuple[float | None, float | None]:
        values = np.array([getattr(r, name) for r in results])
        values = values[np.isfinite(values)]
        if not len(values):
            return None, None
        return float(np.sqrt(np.mean(values**2))), float(values.max())

    position, position_worst = pooled("position_rmse_mm")
    rolling, rolling_worst = pooled("rolling_rmse_mm")
    summary = {
        "sessions": len(results),
        "simulated_s": sum(r.duration_s for r in results),
        "position_rmse_mm": position,
        "position_rmse_mm_worst": position_worst,
        "rolling_rmse_mm": rolling,
        "rolling_rmse_mm_worst": rolling_worst,
        "position_error_p95_mm_median": float(np.nanmedian(
            [r.position_error_p95_mm for r in results])),
        "firmware_cpu_ms_per_s": float(np.mean([r.firmware_cpu_ms_per_s for r in results])),
        "fifo_overflows": int(sum(r.fifo_overflows for r in results)),
        "zone_scan_hz_min": float(min(r.zone_scan_hz for r in results)),
    }
    return {"summary": summary, "sessions": [dataclasses.asdict(r) for r in results]}
