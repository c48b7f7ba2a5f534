"""The odometry's bounds: the rolling error a perfect load estimator would score.

The rolling radius follows the body load (``r_eff = r - load / stiffness``,
docs/algorithms.md), so the rolling error carries two things besides the angle: what the
FSR strip's reading gets wrong (its play, its creep, the seam) and what the profile's
foam stiffness gets wrong (each roller's is drawn around it, docs/scenarios.md). Where
the load differs between the two ways of a stroke (the push), either one ratchets the
position on every stroke: ``(1/k_true - 1/k_profile) x (load one way - the other) x
turn``.

``RawRecorder`` keeps the raw samples a session's sensing took (a firmware raw sink, as
``smartroller-fw record`` writes them). ``rolling_bounds`` replays them through the
same ``SensingPipeline`` twice, each time with the zone forces replaced after every
scan by the true body load on each band at the scan's time:

- ``bound``: with the profile's radius and stiffness: what the odometry would score if
  the strip were read perfectly; the foam's stiffness is still the profile's (nothing
  the roller senses tells it);
- ``oracle``: with the roller's true radius and stiffness as well: the angle's own share.

The truth reaches only these replays (the bench's), never the firmware. A replay of the
same samples without the substitution gives the live frames bit for bit (``replay``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from firmware.config import Config
from firmware.protocol import Frame
from firmware.replay import frames_of
from firmware.samples import ImuBatch, ZoneScan
from firmware.sensing.gyro_scale import GyroScale
from firmware.sensing.pipeline import SensingPipeline

__all__ = ["RawRecorder", "RollingBounds", "replay", "rolling_bounds"]

Item = tuple[ImuBatch | ZoneScan, float]


class RawRecorder:
    """A firmware raw sink that keeps every (IMU batch or zone scan, sensor time s)."""

    def __init__(self) -> None:
        self.items: list[Item] = []

    def __call__(self, item: ImuBatch | ZoneScan, sensor_t: float) -> None:
        """Sink: keep one raw record."""
        self.items.append((item, sensor_t))


@dataclass(frozen=True)
class RollingBounds:
    """Rolling RMSE (mm) of the same raw samples replayed with perfect loads."""

    bound_mm: float
    """The true body loads, the profile's radius and stiffness."""
    oracle_mm: float
    """The true body loads, the roller's true radius and stiffness."""


def replay(config: Config, items: list[Item], *, boot: int = 0, gyro_scale: GyroScale | None = None,
           loads: Callable[[float], list[float]] | None = None,
           roller: tuple[float, float] | None = None) -> list[Frame]:
    """The frames ``items`` turn into through a fresh ``SensingPipeline``.

    loads: the body load on each band (N) at a sensor time (s); given, it replaces the
        zone forces after every scan made while a body is on the roller.
    roller: (radius m, foam stiffness N/m) to replace the profile's.
    """
    pipeline = SensingPipeline(config, boot=boot, gyro_scale=gyro_scale)
    if roller is not None:
        pipeline.odometry.radius, pipeline.odometry.stiffness = roller

    def true_loads(pipeline: SensingPipeline, sensor_t: float) -> None:
        if pipeline.in_contact:
            zones = loads(sensor_t)  # type: ignore[misc]
            pipeline.zone_forces = zones
            pipeline.total_load = float(sum(zones))
            pipeline._zone_tuple = tuple(zones)  # (what the frames carry, as on_scan
            # sets it: the bench's replay stands in for the strip's reading here)

    return list(frames_of(pipeline, items, None if loads is None else true_loads))


def rolling_bounds(roller: object, items: list[Item],
                   rolling_rmse: Callable[[np.ndarray, np.ndarray, np.ndarray], float]
                   ) -> RollingBounds:
    """The rolling RMSE (mm) of ``items`` (recorded on the ``SimRoller`` ``roller``)
    replayed with the truth's body loads; ``rolling_rmse(t sensor s, position m,
    flags)`` scores frames as the bench does."""
    truth = roller.world.truth  # type: ignore[attr-defined]
    fw = roller.firmware  # type: ignore[attr-defined]
    true_roller = roller.world.roller  # type: ignore[attr-defined]
    scans = np.array([sensor_t for item, sensor_t in items if isinstance(item, ZoneScan)])
    world_t = roller.sensor_to_world(scans)  # type: ignore[attr-defined]
    at = np.clip(np.searchsorted(truth.t, world_t), 0, len(truth.t) - 1)
    by_scan = dict(zip(scans.tolist(), np.asarray(truth.zone_loads_n)[at].tolist(),
                       strict=True))

    def loads(sensor_t: float) -> list[float]:
        return by_scan[sensor_t]

    start = fw.start_calibration.start_scale
    figures = []
    for radius in (None, (true_roller.radius_m, true_roller.stiffness_n_per_m)):
        frames = replay(fw.config, items, boot=fw.boot_id, gyro_scale=start(), loads=loads,
                        roller=radius)
        t = np.array([f.t for f in frames])
        position = np.array([f.position for f in frames])
        flags = np.array([int(f.flags) for f in frames], dtype=np.int64)
        figures.append(rolling_rmse(t, position, flags))
    return RollingBounds(*figures)
