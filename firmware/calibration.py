"""The roller's own calibration: what it has learned of its parts, kept across reboots.

File ``calibration.json`` in the roller's state directory (``/var/lib/smartroller`` on
the Pi, ``--state-dir`` in simulation), UTF-8 JSON:

    {"version": 1,
     "imu_clock_ratio": 1.0043,     the IMU's sample clock over the Pi's monotonic clock
     "imu_clock_span_s": 612.0,     the run it was measured over, s
     "gyro_scale": 0.9712,          the gyro's true turn per counted turn (1: nominal)
     "gyro_scale_weight": 1.1e5,    its weight, 1/variance (0: not learned)
     "updated_utc": 1765000000.0}

(``gyro_scale`` and ``gyro_scale_weight`` came later within version 1: a file without
them is a roller that has not learned its gyro's scale; an older firmware ignores them.)

Promises:

- The roller does not assume its IMU's clock is nominal once it has measured it: the
  driver starts its clock mapping (the zone scans' sensor times) from the stored ratio
  and replaces it with this boot's own once a run is long enough. The odometry starts
  from the stored gyro scale and refines it as the roller rolls
  (``firmware.sensing.gyro_scale``; the stored weight counts at most ``SCALE_WEIGHT_CAP``,
  so a part that changed, warmer or cooler, moves it a quarter of the way or more in
  each session that learns).
- Writes are atomic (a temporary file beside it, fsync, rename: ``firmware.files``): a
  power cut leaves the old file or the new one, never half of one. They happen at most
  once a minute, and only when the clock was measured over a clearly longer run or
  moved by more than 0.05 %, or the gyro's scale moved by more than 0.05 % or was
  learned with clearly more weight (an SD card wears).
- A missing file is a new roller (the datasheets' nominal values). An unreadable,
  malformed or implausible file (a ratio outside ``CLOCK_LIMITS``, a scale outside
  ``SCALE_LIMITS``) is logged once and
  ignored: it never stops the roller. A full or read-only disk is logged and the roller
  goes on with what it knows in memory.
"""

from __future__ import annotations

import json
import logging
import math
import reprlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from firmware.files import write_private
from firmware.protocol import RollerCalibration
from firmware.sensing.gyro_scale import GyroScale

FILE_NAME = "calibration.json"
VERSION = 1
CLOCK_LIMITS = (0.95, 1.05)
"""Plausible IMU clock ratios (the datasheet's +-1 % with a wide margin)."""
SCALE_LIMITS = (0.95, 1.05)
"""Plausible gyro scales (the datasheet's +-3 % sensitivity, +-1 % clock, a margin)."""
SCALE_WEIGHT_CAP = 3.0 / 0.003**2
"""The most weight a stored gyro scale keeps (as much as three sessions' fits)."""
SAVE_EVERY_S = 60.0
"""Least time between two writes, s."""


@dataclass(frozen=True)
class Calibration:
    """What the roller has learned of its parts (see the module docstring for units)."""

    imu_clock_ratio: float = 1.0
    imu_clock_span_s: float = 0.0
    gyro_scale: float = 1.0
    gyro_scale_weight: float = 0.0
    updated_utc: float = 0.0

    @property
    def learned(self) -> bool:
        """True once anything was learned (else: a new roller, the datasheets' priors)."""
        return self.imu_clock_span_s > 0.0 or self.gyro_scale_weight > 0.0

    def differs_from(self, other: Calibration) -> bool:
        """Whether ``other`` measured the clock over a clearly longer run, or found it
        moved by more than 0.05 % (the die warms), or learned the gyro's scale with
        clearly more weight or found it moved by more than 0.05 %."""
        return (other.imu_clock_span_s > 1.5 * self.imu_clock_span_s + 10.0
                or (other.imu_clock_span_s > 0.0
                    and abs(other.imu_clock_ratio - self.imu_clock_ratio) > 5e-4)
                or other.gyro_scale_weight > 1.5 * self.gyro_scale_weight
                or (other.gyro_scale_weight > 0.0
                    and abs(other.gyro_scale - self.gyro_scale) > 5e-4))

    def line(self) -> str:
        """One line for people: ``IMU clock +0.43 % (over 612 s), gyro scale -2.10 %``."""
        if not self.learned:
            return "not learned yet (a new roller: the datasheets' nominal values)"
        return self.published().line()

    def start_scale(self) -> GyroScale:
        """The gyro scale the odometry starts from: this one, its weight counted at most
        ``SCALE_WEIGHT_CAP`` (the live firmware and a raw log's replay alike)."""
        return GyroScale(self.gyro_scale, min(self.gyro_scale_weight, SCALE_WEIGHT_CAP))

    @classmethod
    def from_fields(cls, data: object) -> Calibration:
        """From a JSON object of its fields (calibration.json's, a raw log header's): a
        key it does not know is a newer writer's (ignored), a missing one keeps its
        default. ValueError, one line naming the field, for anything but a plausible
        number (``problem``)."""
        if not isinstance(data, dict):
            raise ValueError(f"{reprlib.repr(data)} is not an object")
        values = {}
        for name in asdict(cls()):
            if name in data:
                value = data[name]
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{name} {reprlib.repr(value)} is not a number")
                values[name] = float(value) if abs(value) < 1e300 else math.inf
        cal = cls(**values)
        problem = cal.problem()
        if problem is not None:
            raise ValueError(problem)
        return cal

    def problem(self) -> str | None:
        """What is implausible in it, one line naming the field (None: nothing)."""
        if not CLOCK_LIMITS[0] <= self.imu_clock_ratio <= CLOCK_LIMITS[1]:
            return (f"imu_clock_ratio {self.imu_clock_ratio!r} is outside "
                    f"{CLOCK_LIMITS[0]}..{CLOCK_LIMITS[1]}")
        if not SCALE_LIMITS[0] <= self.gyro_scale <= SCALE_LIMITS[1]:
            return f"gyro_scale {self.gyro_scale!r} is outside {SCALE_LIMITS[0]}..{SCALE_LIMITS[1]}"
        for name in ("imu_clock_span_s", "gyro_scale_weight", "updated_utc"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                return f"{name} {value!r} is not a finite number >= 0"
        return None

    def published(self) -> RollerCalibration:
        """As the CALIBRATION characteristic gives it to a host (docs/protocol.md §8)."""
        limit = RollerCalibration.CLOCK_LIMIT
        scale_limit = RollerCalibration.SCALE_LIMIT
        return RollerCalibration(min(max(self.imu_clock_ratio - 1.0, -limit), limit),
                                 min(self.imu_clock_span_s, 4e6),
                                 min(max(self.updated_utc, 0.0), 4e9),
                                 min(max(self.gyro_scale - 1.0, -scale_limit), scale_limit),
                                 self.gyro_scale_weight > 0.0)


def load_calibration(state_dir: Path | None, log: logging.Logger | None = None) -> Calibration:
    """The stored calibration in ``state_dir`` (None, missing: a new roller's priors).
    A bad file is logged and ignored."""
    if state_dir is None:
        return Calibration()
    path = Path(state_dir) / FILE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"not version {VERSION}")
        return Calibration.from_fields(data)
    except FileNotFoundError:
        return Calibration()
    except (OSError, ValueError, TypeError, UnicodeDecodeError) as exc:
        (log or logging.getLogger(__name__)).warning(
            "ignoring the stored calibration %s (%s): starting from the datasheets' values",
            path, exc)
        return Calibration()


def save_calibration(state_dir: Path, cal: Calibration) -> Path:
    """Write ``cal`` atomically into ``state_dir`` (0600, like the rest of the roller's
    state); OSError if the disk refuses."""
    path = Path(state_dir) / FILE_NAME
    write_private(path, json.dumps({"version": VERSION, **asdict(cal)}, indent=1))
    return path


class CalibrationKeeper:
    """Keeps the running firmware's calibration in its state directory.

    ``offer(cal, now)`` is called as the firmware learns, once the loop clock ``now``
    (s) reaches ``due``; it writes when the calibration moved
    (``Calibration.differs_from``), and looks again ``SAVE_EVERY_S`` later.
    ``flush(cal)`` writes at shutdown if it moved.
    """

    def __init__(self, state_dir: Path | None, stored: Calibration,
                 log: logging.Logger | None = None) -> None:
        self.state_dir = state_dir
        self.saved = stored
        self.log = log or logging.getLogger(__name__)
        self.due = math.inf if state_dir is None else 0.0
        """Loop time from which ``offer`` may write, s (callers check it first: cheap)."""
        self._failing = False

    def offer(self, cal: Calibration, now: float) -> None:
        """Save ``cal`` if it is time (``due``) and it moved."""
        if now < self.due:
            return
        self.due = now + SAVE_EVERY_S
        if self.saved.differs_from(cal):
            self._write(cal)

    def flush(self, cal: Calibration) -> None:
        """Save ``cal`` now if it moved (at shutdown)."""
        if self.state_dir is not None and self.saved.differs_from(cal):
            self._write(cal)

    def _write(self, cal: Calibration) -> None:
        cal = Calibration(**{**asdict(cal), "updated_utc": time.time()})
        try:
            save_calibration(self.state_dir, cal)  # type: ignore[arg-type]
        except OSError as exc:
            if not self._failing:
                self.log.warning("cannot store the calibration in %s (%s): kept in memory, "
                                 "tried again in %g s", self.state_dir, exc.strerror or exc,
                                 SAVE_EVERY_S)
            self._failing = True
            return
        if self._failing:
            self.log.info("calibration stored again in %s", self.state_dir)
        self._failing = False
        self.saved = cal


__all__ = ["FILE_NAME", "Calibration", "CalibrationKeeper", "load_calibration",
           "save_calibration"]
