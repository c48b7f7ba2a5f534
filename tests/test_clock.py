"""The sensor time -> UTC map (host/clock.py): rate followed, jittered Bluetooth delays,
a laptop that sleeps, a laptop clock that steps, and a roller whose clock is 1 % fast
streamed through the simulator's real firmware."""

from __future__ import annotations

import numpy as np
import pytest

from firmware.protocol import TimeReply
from host.clock import ClockMap, ClockSample

BOOT = 7
U0 = 1_780_000_000.0


def sensor_of(utc: np.ndarray | float, error: float = 0.01) -> np.ndarray | float:
    """A roller clock ``error`` fast, booted at U0."""
    return (np.asarray(utc) - U0) * (1.0 + error)


def sync(clock: ClockMap, rng: np.random.Generator, at_utc: float, error: float = 0.01,
         tries: int = 3) -> None:
    """A burst of SET_TIMEs at ``at_utc`` over a link whose one-way delays are 5-80 ms
    each way (independent), keeping the shortest round trip as the client does."""
    best = None
    for k in range(tries):
        sent = at_utc + 0.2 * k
        up, down = rng.uniform(0.005, 0.080, 2)
        sensor_t = round(float(sensor_of(sent + up, error)) * 1000) / 1000  # u32 ms
        exchange = (TimeReply(sensor_t, BOOT), sent, sent + up + down)
        if best is None or exchange[2] - exchange[1] < best[2] - best[1]:
            best = exchange
    assert best is not None
    clock.learn(*best)


def errors(clock: ClockMap, utc: np.ndarray, error: float = 0.01) -> np.ndarray:
    mapped = clock.to_utc_array(BOOT, sensor_of(utc, error))
    assert mapped is not None
    return mapped - utc


def test_one_offset_drifts_with_a_fast_clock_but_the_rate_is_followed():
    rng = np.random.default_rng(1)
    clock = ClockMap()
    sync(clock, rng, U0 + 1.0)
    hour = U0 + 1.0 + np.arange(0.0, 3600.0, 0.5)
    before = np.abs(errors(clock, hour)).max()  # one exchange, no rate: today's map
    assert before > 30.0
    for at in np.arange(U0 + 61.0, U0 + 3602.0, 60.0):
        sync(clock, rng, at)
    after = errors(clock, hour)
    assert np.abs(after).max() < 0.05


def test_the_rollers_own_ratio_carries_the_first_minute():
    rng = np.random.default_rng(2)
    clock = ClockMap(sensor_rate=1.01)  # the roller's CALIBRATION: 1 % fast
    sync(clock, rng, U0 + 1.0)
    minute = U0 + 1.0 + np.arange(0.0, 60.0, 0.1)
    assert np.abs(errors(clock, minute)).max() < 0.05
    with pytest.raises(ValueError):
        clock.sensor_rate = 1.5


def test_jittered_delays_stay_within_the_shortest_round_trips():
    """With one-way delays anywhere in 5-80 ms the mapping errs by well under the
    80 ms a single worst exchange could: the burst keeps the shortest round trip."""
    rng = np.random.default_rng(3)
    clock = ClockMap()
    for at in np.arange(U0 + 1.0, U0 + 1200.0, 60.0):
        sync(clock, rng, at)
    err = errors(clock, U0 + 1.0 + np.arange(0.0, 1200.0, 0.25))
    assert np.abs(err).max() < 0.04
    assert np.abs(np.mean(err)) < 0.015


def test_a_laptop_that_sleeps_an_hour_interpolates_across_the_gap():
    """The link drops while the laptop sleeps; the roller journals frames on. The exchange
    at the wake-up maps them (backfilled) by the rate across the gap."""
    rng = np.random.default_rng(4)
    clock = ClockMap()
    for at in np.arange(U0 + 1.0, U0 + 600.0, 60.0):
        sync(clock, rng, at)
    asleep = U0 + 600.0 + np.arange(0.0, 3600.0, 1.0)
    guess = errors(clock, asleep)  # extrapolated before the wake-up: the rate measured
    assert np.abs(guess).max() < 0.5
    for at in np.arange(U0 + 4200.0, U0 + 4500.0, 60.0):
        sync(clock, rng, at)
    assert np.abs(errors(clock, asleep)).max() < 0.05


def test_frames_between_exchanges_keep_their_utc_and_never_go_back():
    rng = np.random.default_rng(5)
    clock = ClockMap(sensor_rate=1.01)
    for at in (U0 + 1.0, U0 + 61.0, U0 + 121.0):
        sync(clock, rng, at)
    t = np.asarray(sensor_of(U0 + 1.0 + np.arange(0.0, 180.0, 0.01)))
    first = clock.to_utc_array(BOOT, t)
    sync(clock, rng, U0 + 181.0)
    second = clock.to_utc_array(BOOT, t)
    known = clock.samples(BOOT)
    inside = (t >= known[0].sensor_t) & (t <= known[2].sensor_t)
    assert np.array_equal(first[inside], second[inside])  # final once bracketed
    assert np.abs(first - second).max() < 0.05  # the extrapolated ones move a little
    assert np.all(np.diff(second) > 0)  # continuous and increasing: no jump
    scalar = [clock.to_utc(BOOT, float(x)) for x in t[::97]]
    assert scalar == pytest.approx(list(second[::97]), abs=1e-6)
    restored = ClockMap(clock.samples(), sensor_rate=1.01)
    assert np.array_equal(restored.to_utc_array(BOOT, t), second)
    assert clock.to_utc(BOOT + 1, 1.0) is None and clock.to_utc_array(BOOT + 1, t) is None


def test_a_laptop_clock_set_back_is_a_step_not_a_wild_rate():
    """The laptop's clock is set back 5 s between two exchanges: frames before it keep
    the earlier run's mapping up to the later exchange, which maps the frames after."""
    clock = ClockMap()
    clock.add(ClockSample(BOOT, 0.0, U0, 0.02))
    clock.add(ClockSample(BOOT, 60.0, U0 + 60.0, 0.02))
    clock.add(ClockSample(BOOT, 120.0, U0 + 115.0, 0.02))  # stepped back by 5 s
    clock.add(ClockSample(BOOT, 180.0, U0 + 175.0, 0.02))
    assert clock.to_utc(BOOT, 90.0) == pytest.approx(U0 + 90.0)  # not 87.5
    assert clock.to_utc(BOOT, 150.0) == pytest.approx(U0 + 145.0)
    t = np.array([30.0, 90.0, 119.0, 150.0, 200.0])
    assert clock.to_utc_array(BOOT, t) == pytest.approx(
        [clock.to_utc(BOOT, float(x)) for x in t])


def test_a_repeated_exchange_of_one_sensor_time_keeps_the_shorter_round_trip():
    clock = ClockMap()
    clock.add(ClockSample(BOOT, 10.0, U0 + 10.05, 0.1))
    clock.add(ClockSample(BOOT, 10.0, U0 + 10.0, 0.02))
    clock.add(ClockSample(BOOT, 10.0, U0 + 10.2, 0.3))
    assert clock.samples(BOOT) == [ClockSample(BOOT, 10.0, U0 + 10.0, 0.02)]


def test_a_roller_one_percent_fast_streams_minutes_with_frame_utc_within_50_ms(tmp_path):
    """The simulator's real firmware on an IMU whose clock is 1 % fast answers SET_TIME
    through its control point over a link with 5-80 ms one-way delays; the host syncs at
    the link and every 60 s, stores the frames as the daemon does and reads them back."""
    from firmware.ble.control import ControlPoint, Session
    from firmware.protocol import SetTime, encode_request
    from firmware.sim.rig import SimRoller
    from firmware.sim.scenario import scenario_from_table
    from host.store import Store

    seconds, error = 150.0, 0.01
    scenario = scenario_from_table({"session": {"duration_s": seconds + 10.0},
                                    "parts": {"clock_error": error, "clock_warmup": 0.0}})
    roller = SimRoller(scenario, 3, replay=False)
    control = ControlPoint(roller.firmware, None, Session(), lambda: None,  # type: ignore[arg-type]
                           lambda: None)
    rng = np.random.default_rng(6)
    clock, emitted, batch = ClockMap(), [], []
    roller.add_sink(lambda f: (emitted.append((f, roller.clock.now())), batch.append(f)))

    def set_time() -> None:  # a burst; the roller answers at its clock's now
        best = None
        for _ in range(3):
            up, down = rng.uniform(0.005, 0.080, 2)
            now = roller.clock.now()
            request = encode_request(SetTime.from_seconds(U0 + now - up))
            response = control.handle(request, None)  # type: ignore[arg-type]
            exchange = (TimeReply.decode(response.payload), U0 + now - up, U0 + now + down)
            if best is None or exchange[2] - exchange[1] < best[2] - best[1]:
                best = exchange
        clock.learn(*best)  # type: ignore[misc]

    store = Store(tmp_path / "smartroller.db")
    session = store.open_session("F0:00:00:00:00:01", U0)
    roller.run(2.0)
    set_time()
    first = clock.samples()[0]
    for end in np.arange(2.0, seconds, 0.25):
        roller.run(float(end))
        if batch:
            store.add_frames(session.id, batch, clock=clock)
            batch.clear()
        if end % 60.0 == 0.0:
            set_time()
    roller.close()
    frames = store.read_frames(session.id)
    t = frames.t
    emit = np.array([w for _, w in emitted])
    sensor = np.array([f.t for f, _ in emitted])
    # the truth: sample times on a clock 1 % fast; its phase from the frames' emission
    # (a frame leaves within milliseconds of its sample, never before it)
    phase = np.min(emit - sensor / (1.0 + error))
    truth = U0 + phase + t / (1.0 + error)
    after = np.abs(frames.utc - truth)
    before = np.abs(t + first.offset_s - truth)  # one offset per boot, as before
    assert len(t) > 100 * (seconds - 5.0)
    assert after.max() < 0.05, after.max()
    assert before.max() > 1.0
    print(f"frame UTC error over {seconds:.0f} s: one offset {before.max() * 1e3:.0f} ms, "
          f"rate followed {after.max() * 1e3:.1f} ms")
