"""The empty roller rolled slowly along a table, for ``smartroller-fw table-roll --sim``
and for the bench's built rollers: the roller's own MPU-6050 part (drawn per seed,
``firmware.sim.parts``), mounted as in its world (``firmware.sim.world.draw_roller``),
on a SimBus with a virtual clock.

The motion (``TableRollMotion``): still for ``STILL_S`` (the gyro's offset at rest), a
roll of ``TURNS`` turns along the table over ``ROLL_S``, a second's stop, the same roll
back, then still (minimum jerk: the rate peaks at 1.875 times its mean, ~0.9 rad/s, slow
enough for gravity to be read), its pace wavering +-30 % as a hand's does.
Rolling without slip on the table, the axle moves ``r theta`` (no body on it: the foam
carries only the roller's own weight).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from firmware.config import Config, default_config
from firmware.sim.bus import SimBus
from firmware.sim.clock import SimClock
from firmware.sim.motion import Knots
from firmware.sim.mpu6050 import Mpu6050Sim
from firmware.sim.parts import Parts
from firmware.sim.rig import GYRO_DRIFT_DPS_PER_SQRT_S
from firmware.sim.scenario import Scenario, default_scenario
from firmware.sim.world import (
    FS_HZ,
    G,
    draw_roller,
    lerp_rows,
    mounting_matrix,
    sensor_motion,
)

if TYPE_CHECKING:
    from firmware.table_roll import TableRoll

__all__ = ["ROLL_S", "STILL_S", "STOP_S", "TURNS", "TableRollMotion", "TableRollRig",
           "table_roll_as_built"]

STILL_S = 5.0
"""The roller lies still this long first, s."""
TURNS = 2.2
"""Turns rolled along the table each way (~1 m of a 15 cm roller)."""
ROLL_S = 28.0
"""How long each way takes, s."""
STOP_S = 1.0
"""The stop between the two ways, s."""


class TableRollMotion:
    """What the MPU-6050 feels (``Mpu6050Sim``'s motion: times s -> specific force (n, 3)
    m/s^2, rate (n, 3) rad/s) in the roller of ``seed`` rolled along a table."""

    def __init__(self, scenario: Scenario, config: Config, seed: int) -> None:
        roller = draw_roller(scenario, config, seed)
        self.mount = mounting_matrix(config.imu.roller_axis, roller.misalignment_rad)
        self.sign = float(config.imu.roller_axis_sign)
        self.imu_offset_m = roller.imu_offset_m
        back = STILL_S + ROLL_S + STOP_S
        self.end_s = back + ROLL_S + STILL_S
        """When the roll is over, s."""
        t = np.arange(0.0, self.end_s + 1.0, 1.0 / FS_HZ)
        far = 2.0 * math.pi * TURNS
        knots = Knots(np.array([0.0, STILL_S, STILL_S + ROLL_S, back, back + ROLL_S]),
                      np.array([0.0, 0.0, far, far, 0.0]))
        # A hand, not a machine: the pace wavers +-30 % at 0.6-1.5 Hz (a time warp with
        # random phases, the roll's start and end kept where they are).
        hand = np.random.default_rng([seed, 0x4A4D])
        warp = np.zeros_like(t)
        for f in hand.uniform(0.6, 1.5, 3):
            warp += 0.1 / (2.0 * math.pi * f) * np.sin(2.0 * math.pi * f * t
                                                        + hand.uniform(0.0, 2.0 * math.pi))
        turned = knots(np.clip(t + warp - warp[0], 0.0, None))
        omega = np.gradient(turned, t)
        alpha = np.gradient(omega, t)
        r_bottom = roller.radius_m - roller.mass_kg * G / roller.stiffness_n_per_m
        self._kin = np.column_stack([roller.initial_angle_rad + turned, omega, alpha,
                                     -r_bottom * alpha, np.zeros_like(t)])

    def __call__(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kin = lerp_rows(self._kin, np.atleast_1d(np.asarray(times, dtype=float)))
        return sensor_motion(kin, self.mount, self.sign, self.imu_offset_m)


class TableRollRig:
    """The roller of ``seed`` (``scenario``'s ``[parts]``: drawn, ideal or pinned) on a
    table: ``bus`` and ``clock`` for the firmware's IMU driver, ``motion`` its roll."""

    def __init__(self, config: Config, seed: int, scenario: Scenario | None = None) -> None:
        scenario = scenario or default_scenario()
        self.clock = SimClock()
        self.bus = SimBus(config.imu.bus, clock=self.clock)
        self.parts = Parts.for_roller(scenario.parts, seed, len(config.adc.addresses))
        self.motion = TableRollMotion(scenario, config, seed)
        rng = np.random.default_rng([seed, 0x7AB1E])
        self.imu = Mpu6050Sim(self.clock, self.motion, rng,
                              gyro_drift_dps_per_sqrt_s=GYRO_DRIFT_DPS_PER_SQRT_S,
                              part=self.parts.imu)
        self.bus.attach(config.imu.address, self.imu)


def table_roll_as_built(scenario: Scenario, seed: int, state_dir: Path) -> TableRoll:
    """The roller of ``seed`` as hardware/README.md builds it: its gyro's scale measured
    by a table roll on its own drawn part (the default hardware profile) and, when the
    roll passes, kept in ``state_dir`` (made if missing), where the simulated roller of
    the same ``scenario`` and ``seed`` starts from it. Returns the roll's result (its
    ``line()`` says what was measured or why it failed); OSError if the disk refuses."""
    from firmware.table_roll import keep_table_roll, run_table_roll

    config = default_config()
    rig = TableRollRig(config, seed, scenario)
    result = run_table_roll(config, rig.bus, rig.clock, rig.motion.end_s + 1.0)
    if result.ok:
        keep_table_roll(state_dir, result)
    return result
