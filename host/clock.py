"""The roller's sensor time -> UTC, one mapping per boot, following the sensor clock's rate.

Pure (no BLE, no I/O). A frame's time is the roller's IMU sample clock (``Frame.t``, s
since the boot), which runs fast or slow by up to +-1 % (+-0.2 % more as the die warms):
one offset per boot would drift by ~36 s an hour. docs/host-ble.md "Clock" is the
contract and says why it is done this way.

- **Exchanges**: each ``SET_TIME`` exchange (``ClockSample``) pins one sensor time of a
  boot to the host's UTC, within half its round trip (the roller stamps the request with
  its IMU clock as it arrives, through its measured sample-clock ratio). The client does
  a burst of them at each link and every ``clock_sync_s`` and ``learn``s the one with the
  shortest round trip (NTP's filter: Bluetooth's delay is variable, its minimum is not).
- **Mapping**: between two exchanges of a boot, UTC is interpolated linearly (the rate
  between them is measured, whatever the roller's clock error); beyond the newest (live
  frames) and before the oldest (the journal's frames from before the host came), it is
  extrapolated with the rate measured over the last (first) ``RATE_SPAN_S`` of exchanges,
  or, with less than ``MIN_RATE_SPAN_S`` of them, with ``sensor_rate`` (the roller's
  own measured ratio from its CALIBRATION characteristic; 1 if unknown).
- **Stability**: the map is continuous and increasing within a run of exchanges, so
  frames never jump against each other. A frame between two exchanges keeps its UTC
  for good; a frame beyond the newest (or before the oldest) moves by the extrapolation's
  error when the next exchange comes (tens of ms at most after a minute: the round
  trips' asymmetry over the span the rate was measured on). The store keeps the exchanges
  and maps frames when they are read.
- **Clock steps**: two consecutive exchanges whose rate is implausible (off 1 by more
  than ``RATE_LIMIT``, or UTC going back: the laptop's clock was set) are not
  interpolated across: the earlier run is extrapolated up to the later exchange, where
  the map steps as the laptop's clock did.
- A boot without an exchange has no mapping (None), never another boot's: a boot no
  host saw live (the roller was used while the laptop was away) stays unmapped.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from firmware.protocol import Frame, TimeReply

__all__ = ["MIN_RATE_SPAN_S", "RATE_LIMIT", "RATE_SPAN_S", "ClockMap", "ClockSample"]

RATE_LIMIT = 0.06
"""Largest plausible |sensor s per UTC s - 1| between two exchanges: the IMU clock is
+-1 % (+-5 % in the simulator's widest scenario); beyond it the host's clock stepped."""
RATE_SPAN_S = 600.0
"""Sensor time of exchanges the extrapolation's rate is measured over, s (at most: the
clock's rate moves as the die warms, time constant ~300 s)."""
MIN_RATE_SPAN_S = 30.0
"""Shorter spans of exchanges give no rate (round-trip noise / span too large): the
roller's own ratio is used instead, s."""


@dataclass(frozen=True, slots=True)
class ClockSample:
    """One SET_TIME exchange.

    boot_id: the roller's boot (u32).
    sensor_t: roller sensor time when the request arrived, s.
    utc: host UTC at that moment, s since 1970: midpoint of send and receive.
    round_trip_s: host receive minus send time, s (the mapping is good to half of it).
    """

    boot_id: int
    sensor_t: float
    utc: float
    round_trip_s: float

    @property
    def offset_s(self) -> float:
        """UTC minus sensor time, s."""
        return self.utc - self.sensor_t


class _BootClock:
    """One boot's exchanges, split into runs (no clock step inside a run)."""

    def __init__(self) -> None:
        self.samples: list[ClockSample] = []
        self.runs: list[list[ClockSample]] = []
        self.starts: list[float] = []  # each run's first sensor time, s
        self.times: list[list[float]] = []  # each run's sensor times, s

    def add(self, sample: ClockSample) -> None:
        kept = {s.sensor_t: s for s in self.samples}
        old = kept.get(sample.sensor_t)
        if old is None or sample.round_trip_s < old.round_trip_s:
            kept[sample.sensor_t] = sample
        self.samples = [kept[t] for t in sorted(kept)]
        self.runs = []
        for s in self.samples:
            if self.runs and _plausible(self.runs[-1][-1], s):
                self.runs[-1].append(s)
            else:
                self.runs.append([s])
        self.starts = [r[0].sensor_t for r in self.runs]
        self.times = [[s.sensor_t for s in r] for r in self.runs]


def _plausible(a: ClockSample, b: ClockSample) -> bool:
    du = b.utc - a.utc
    return du > 0.0 and abs((b.sensor_t - a.sensor_t) / du - 1.0) <= RATE_LIMIT


def _utc_per_sensor_s(run: list[ClockSample], forward: bool, sensor_rate: float) -> float:
    """UTC s per sensor s for extrapolating ``run`` forward (from its newest exchange) or
    backward (from its oldest): measured over its last / first ``RATE_SPAN_S``."""
    end = run[-1] if forward else run[0]
    far = end
    for s in (reversed(run) if forward else run):
        if abs(s.sensor_t - end.sensor_t) > RATE_SPAN_S:
            break
        far = s
    span = abs(end.sensor_t - far.sensor_t)
    if span < MIN_RATE_SPAN_S:
        return 1.0 / sensor_rate
    return (end.utc - far.utc) / (end.sensor_t - far.sensor_t)


class ClockMap:
    """Sensor time -> UTC, one mapping per boot of the roller (see the module).

    samples: exchanges to start from (``samples()`` of another map: the store's).
    sensor_rate: the roller's sensor s per UTC s where exchanges do not measure it
        (1 + ``RollerCalibration.imu_clock_error``; 1.0 if unknown).
    """

    def __init__(self, samples: Iterable[ClockSample] = (), sensor_rate: float = 1.0) -> None:
        self._by_boot: dict[int, _BootClock] = {}
        self.sensor_rate = sensor_rate
        for sample in samples:
            self.add(sample)

    @property
    def sensor_rate(self) -> float:
        """Sensor s per UTC s assumed where exchanges do not measure it."""
        return self._sensor_rate

    @sensor_rate.setter
    def sensor_rate(self, value: float) -> None:
        if not (math.isfinite(value) and abs(value - 1.0) <= RATE_LIMIT):
            raise ValueError(f"sensor_rate {value} is not within 1 +- {RATE_LIMIT}")
        self._sensor_rate = float(value)

    def learn(self, reply: TimeReply, sent_utc: float, received_utc: float) -> ClockSample:
        """Record a SET_TIME exchange: ``reply`` received at ``received_utc`` for a
        request sent at ``sent_utc`` (host UTC, s). Returns the sample kept."""
        if received_utc < sent_utc:
            raise ValueError(f"reply received ({received_utc}) before sending ({sent_utc})")
        sample = ClockSample(reply.boot_id, reply.sensor_t, (sent_utc + received_utc) / 2.0,
                             received_utc - sent_utc)
        self.add(sample)
        return sample

    def add(self, sample: ClockSample) -> None:
        """Keep an exchange (of the same sensor time, the shorter round trip wins)."""
        self._by_boot.setdefault(sample.boot_id, _BootClock()).add(sample)

    def knows(self, boot_id: int) -> bool:
        """True if ``boot_id`` has a mapping."""
        return boot_id in self._by_boot

    def sample(self, boot_id: int) -> ClockSample | None:
        """The newest exchange of ``boot_id``, None if none."""
        boot = self._by_boot.get(boot_id)
        return None if boot is None else boot.samples[-1]

    def samples(self, boot_id: int | None = None) -> list[ClockSample]:
        """The exchanges of ``boot_id`` (default: every boot), oldest first per boot (to
        persist; ``ClockMap(samples)`` restores the mapping)."""
        if boot_id is not None:
            boot = self._by_boot.get(boot_id)
            return [] if boot is None else list(boot.samples)
        return [s for boot in self._by_boot.values() for s in boot.samples]

    def to_utc(self, boot_id: int, sensor_t: float) -> float | None:
        """UTC (s since 1970) of sensor time ``sensor_t`` (s) of boot ``boot_id``, or None
        if that boot has no mapping."""
        boot = self._by_boot.get(boot_id)
        if boot is None:
            return None
        runs = boot.runs
        k = max(0, bisect_right(boot.starts, sensor_t) - 1)
        run = runs[k]
        if sensor_t < run[0].sensor_t:  # before the first exchange of the boot
            rate = _utc_per_sensor_s(run, False, self._sensor_rate)
            return run[0].utc + (sensor_t - run[0].sensor_t) * rate
        i = bisect_right(boot.times[k], sensor_t) - 1
        a = run[i]
        if i + 1 < len(run):
            b = run[i + 1]
            return a.utc + (sensor_t - a.sensor_t) * (b.utc - a.utc) / (b.sensor_t - a.sensor_t)
        return a.utc + (sensor_t - a.sensor_t) * _utc_per_sensor_s(run, True, self._sensor_rate)

    def to_utc_array(self, boot_id: int, sensor_t: np.ndarray) -> np.ndarray | None:
        """``to_utc`` of many sensor times (s) of one boot at once (float64 array), None
        if the boot has no mapping."""
        boot = self._by_boot.get(boot_id)
        if boot is None:
            return None
        t = np.asarray(sensor_t, dtype=np.float64)
        out = np.empty_like(t)
        runs = boot.runs
        for k, run in enumerate(runs):
            lo = -math.inf if k == 0 else run[0].sensor_t
            hi = math.inf if k + 1 == len(runs) else runs[k + 1][0].sensor_t
            sel = (t >= lo) & (t < hi)
            if not sel.any():
                continue
            ts = t[sel]
            st = np.array([s.sensor_t for s in run])
            ut = np.array([s.utc for s in run])
            mapped = np.interp(ts, st, ut)
            after = ts > st[-1]
            rate = _utc_per_sensor_s(run, True, self._sensor_rate)
            mapped[after] = ut[-1] + (ts[after] - st[-1]) * rate
            before = ts < st[0]
            rate = _utc_per_sensor_s(run, False, self._sensor_rate)
            mapped[before] = ut[0] + (ts[before] - st[0]) * rate
            out[sel] = mapped
        return out

    def frame_utc(self, frame: Frame) -> float | None:
        """UTC of ``frame`` (s since 1970), None if its boot has no mapping."""
        return self.to_utc(frame.boot, frame.t)
