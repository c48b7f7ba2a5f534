"""The table roll: the gyro's scale measured once, when the roller is built.

A new roller does not know its gyro's scale (sensitivity +-3 %, sample clock +-1 %) and
learns it from gravity as it is rolled on a back (``firmware.sensing.gyro_scale``), but
its first fit needs half a minute of rolling, and what the gyro miscounted before then
stays in the position: a new roller's first session rolls 3.41 mm RMS off against 2.89
in its second (docs/benchmarks.md, issue 16, "Where a new roller's first session loses
its millimetres"). Rolled empty along a table through whole turns, slowly, the same fit
tells the scale at once: over whole turns the accelerometer's offsets and distortion
(harmonics of the angle) average out instead of passing for a scale.

``smartroller-fw table-roll`` (hardware/README.md, "Calibrate the gyro"): the roller lies
still for ``STILL_S``, then is rolled by hand along a table or the floor for at least
``MIN_TURNS`` turns (about a metre), slowly (a turn in 8 s or more: the fit takes only
batches turning under 1 rad/s), within ``seconds``. The measured scale is kept in the
state directory's ``calibration.json`` with its weight (``firmware.calibration``), and
every boot starts from it and refines it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from firmware.calibration import SCALE_WEIGHT_CAP, load_calibration, save_calibration
from firmware.clock import Clock
from firmware.config import Config
from firmware.drivers.mpu6050 import Mpu6050
from firmware.files import private_dir
from firmware.sensing.gyro_scale import FLOOR, LIMIT, MAX_SD, GyroScale, fit_windows
from firmware.sensing.pipeline import SensingPipeline

__all__ = ["MIN_TURNS", "STILL_S", "TableRoll", "run_table_roll", "keep_table_roll"]

STILL_S = 5.0
"""The roller must lie still this long first, s (the gyro's offset at rest)."""
MIN_TURNS = 2.0
"""Whole turns the roll must span (with fewer, the harmonics do not average out)."""
POLL_S = 0.02
"""How often the IMU's FIFO is drained, s."""


@dataclass(frozen=True)
class TableRoll:
    """What one table roll measured.

    scale: the gyro's true turn per counted turn (nan: not measured). sd: its standard
    error (the fit's, with ``FLOOR`` added in quadrature). turns: whole turns rolled
    slowly enough to count. problem: why it failed, one line (None: it did not).
    """

    scale: float
    sd: float
    turns: float
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """True when the scale was measured."""
        return self.problem is None

    def line(self) -> str:
        """One line for people."""
        if self.problem is not None:
            return f"table roll failed: {self.problem}"
        return (f"gyro scale {100.0 * (self.scale - 1.0):+.2f} % (+-{100.0 * self.sd:.2f} %) "
                f"over {self.turns:.1f} turns")


def run_table_roll(config: Config, bus: Any, clock: Clock, seconds: float,
                   log: logging.Logger | None = None) -> TableRoll:
    """Read the IMU on ``bus`` for ``seconds`` (s, ``clock``'s) while the roller is held
    still and then rolled along a table; fit its gyro's scale over what was rolled."""
    log = log or logging.getLogger(__name__)
    imu = Mpu6050(bus, config.imu, clock, log)
    try:
        imu.start()
    except OSError as exc:
        return TableRoll(math.nan, math.inf, 0.0, f"cannot configure the IMU: {exc}")
    pipeline = SensingPipeline(config, gyro_scale=GyroScale())
    scale = pipeline.odometry.scale
    end = clock.now() + seconds
    samples = 0
    while clock.now() < end:
        clock.sleep_until(clock.now() + POLL_S)
        batch = imu.drain()
        if batch is not None and len(batch.raw):
            samples += len(batch.raw)
            pipeline.on_imu(batch)
    if samples < 0.5 * seconds * config.imu.sample_rate_hz:
        return TableRoll(math.nan, math.inf, 0.0, f"{samples} IMU samples in {seconds:g} s"
                         f"{': ' + imu.fault if imu.fault else ''}")
    if not pipeline.odometry.gyro_offset.calibrated:
        return TableRoll(math.nan, math.inf, 0.0, "the gyro's offset was never learned: "
                         f"hold the roller still for {STILL_S:g} s before rolling it")
    return fit_table_roll(scale)


def fit_table_roll(scale: GyroScale) -> TableRoll:
    """The scale from everything the odometry's ``scale`` collected (its closed windows
    and the open one), if it spans ``MIN_TURNS`` whole turns."""
    parts = [*scale.windows, *([np.array(scale.open_rows)] if scale.open_rows else [])]
    # One window over the whole roll, out and back: the gyro's offset was learned at
    # rest, so one drift term (``c1``) for all of it; split where the odometry's windows
    # close (every 30 s), each part's own drift would trade with the scale.
    rows = np.concatenate(parts) if parts else np.zeros((0, 4))
    turns = float(np.ptp(rows[:, 1])) / (2.0 * math.pi) if len(rows) else 0.0
    if turns < MIN_TURNS:
        return TableRoll(math.nan, math.inf, turns,
                         f"rolled {turns:.1f} turns slowly enough to count, not "
                         f"{MIN_TURNS:g}: roll it along the table about a metre, a turn "
                         f"in 8 s or slower")
    fitted, sd, _ = fit_windows([rows])
    if not math.isfinite(fitted) or sd > MAX_SD or abs(fitted - 1.0) > LIMIT:
        return TableRoll(math.nan, math.inf, turns,
                         f"the fit did not settle (scale {fitted:.4f} +- {sd:.4f}): roll "
                         "it again, slowly and evenly, on a flat table")
    return TableRoll(fitted, math.hypot(sd, FLOOR), turns)


def keep_table_roll(state_dir: Path, result: TableRoll) -> Path:
    """Keep a measured scale in ``state_dir``'s calibration.json (the rest of the file
    as it was), its weight capped as every stored scale's is. A roller being built may
    have no state directory yet: it is made (private, as the roller's state is).
    OSError if the disk refuses."""
    if not result.ok:
        raise ValueError(result.line())
    private_dir(state_dir)
    cal = load_calibration(state_dir)
    cal = replace(cal, gyro_scale=result.scale,
                  gyro_scale_weight=min(1.0 / result.sd**2, SCALE_WEIGHT_CAP),
                  updated_utc=time.time())
    return save_calibration(state_dir, cal)
