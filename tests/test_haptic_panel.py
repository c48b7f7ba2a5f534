"""Haptic patterns, panel button/LED and the simulator's pins, all on virtual time."""

from __future__ import annotations

import math
import threading
import time

import pytest
from gpiozero import InputDevice

from firmware.config import PinsConfig
from firmware.drivers.haptic import (
    ACK,
    APPROACH,
    CALIBRATE_DOWN,
    CALIBRATE_UP,
    FAULT,
    LANDMARK,
    LANDMARK_REFUSED,
    LUMBAR_WARNING,
    PAIRED,
    PATTERNS,
    Haptic,
    Pattern,
)
from firmware.drivers.panel import LED_PATTERNS, LEVEL_CHECK_S, LedState, Panel, PanelEvent
from firmware.protocol import BuzzPattern
from firmware.sim.clock import SimClock
from firmware.sim.pins import (
    duty_log,
    level_at,
    press,
    release,
    sim_pin,
    sim_pin_factory,
    wire_open_drain,
)

PINS = PinsConfig()
MOTOR, BUTTON, LED = PINS.motor_pwm, PINS.button, PINS.led
KICK = 0.02


def expected_log(pattern: Pattern, t0: float, runs: int, kick: float = 0.0):
    """Reference expansion of a pattern started at t0 (motor at rest) into its level
    changes [(t, level)], written independently of the driver's scheduler."""
    steps = []  # (start, level)
    t, prev = t0, 0.0
    for _ in range(runs):
        for level, duration in pattern.steps:
            if kick and level > 0 and prev == 0:
                steps.append((t, 1.0))
                if duration > kick:
                    steps.append((t + kick, level))
            else:
                steps.append((t, level))
            prev = level
            t += duration
    steps.append((t, 0.0))
    changes, current = [], 0.0
    for when, level in steps:
        if level != current:
            changes.append((when, level))
            current = level
    return changes


def run(clock: SimClock, until: float, *tickers) -> None:
    """The firmware loop in miniature: tick everything, sleep until the earliest due."""
    for _ in range(100_000):
        if clock.now() >= until:
            break
        due = min(tick(clock.now()) for tick in tickers)
        assert due > clock.now(), "a device asked to be ticked again at the same time"
        clock.sleep_until(min(due, until))
    else:
        pytest.fail("loop did not reach the end time")
    for tick in tickers:
        tick(until)


def assert_log(actual, expected) -> None:
    assert [level for _, level in actual] == pytest.approx([level for _, level in expected])
    assert [t for t, _ in actual] == pytest.approx([t for t, _ in expected], abs=1e-9)


@pytest.fixture
def clock():
    return SimClock(start=0.0)


@pytest.fixture
def factory(clock):
    return sim_pin_factory(clock)


@pytest.fixture
def haptic(factory):
    h = Haptic(MOTOR, factory)
    yield h
    h.close()


@pytest.fixture
def panel(factory):
    p = Panel(BUTTON, LED, factory)
    yield p
    p.close()


class PanelLoop:
    """Ticks a panel and collects its events with their times."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self.events: list[tuple[float, PanelEvent]] = []

    def __call__(self, now: float) -> float:
        self.events += [(now, e) for e in self.panel.tick(now)]
        return self.panel.due


# --- haptic -----------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", [APPROACH, PAIRED, ACK, FAULT, CALIBRATE_UP, CALIBRATE_DOWN,
                                     LANDMARK, LANDMARK_REFUSED], ids=lambda p: p.name)
def test_one_shot_pattern_duty_schedule(clock, factory, haptic, pattern):
    clock.sleep_until(1.0)
    assert haptic.play(pattern.name, clock.now())
    assert haptic.playing == pattern.name
    run(clock, 1.0 + pattern.period_s * pattern.repeat + 1.0, haptic.tick)
    assert haptic.playing is None and haptic.duty == 0.0 and haptic.due == math.inf
    log = duty_log(factory, MOTOR)
    assert log[0] == (0.0, 0.0)  # the pin as the driver opened it
    assert_log(log[1:], expected_log(pattern, 1.0, pattern.repeat, KICK))


def test_approach_schedule_literal(clock, factory, haptic):
    haptic.play("approach", 0.0)
    run(clock, 1.0, haptic.tick)
    assert_log(duty_log(factory, MOTOR), [(0.0, 0.0), (0.0, 1.0), (0.02, 0.4), (0.12, 0.0)])


def test_fault_kicks_every_pulse(clock, factory, haptic):
    haptic.play(FAULT, 0.0)
    run(clock, 2.0, haptic.tick)
    kicks = [t for t, duty in duty_log(factory, MOTOR) if duty == 1.0]
    assert kicks == pytest.approx([0.0, 0.5, 1.0])


def test_lumbar_warning_repeats_until_stopped(clock, factory, haptic):
    haptic.play("LUMBAR_WARNING", 0.0)
    run(clock, 9.9, haptic.tick)
    assert haptic.playing == "lumbar_warning"
    log = duty_log(factory, MOTOR)
    onsets = [t for t, duty in log if duty == 1.0]
    assert len(onsets) == 25  # 0.4 s period
    assert onsets == pytest.approx([0.4 * k for k in range(25)])
    assert_log(log[1:], expected_log(LUMBAR_WARNING, 0.0, 25))
    run(clock, 10.1, haptic.tick)
    assert haptic.duty == 1.0  # the 26th pulse
    haptic.stop(10.1)
    assert haptic.duty == 0.0 and haptic.playing is None and haptic.due == math.inf
    assert duty_log(factory, MOTOR)[-1] == (10.1, 0.0)
    run(clock, 12.0, haptic.tick)
    assert duty_log(factory, MOTOR)[-1] == (10.1, 0.0)


def test_lumbar_warning_not_interrupted_by_lower_priority(clock, factory, haptic):
    haptic.play(LUMBAR_WARNING, 0.0)
    run(clock, 0.1, haptic.tick)
    for cue in ("approach", "ack", "paired", "fault"):
        assert haptic.play(cue, clock.now()) is False
        assert haptic.playing == "lumbar_warning"
    assert haptic.play("lumbar_warning", clock.now()) is True  # already playing: no restart
    run(clock, 1.9, haptic.tick)
    assert_log(duty_log(factory, MOTOR)[1:], expected_log(LUMBAR_WARNING, 0.0, 5))
    haptic.stop(2.0, name="approach")  # not playing: nothing stops
    assert haptic.playing == "lumbar_warning"
    haptic.stop(2.0, name="lumbar_warning")
    assert haptic.playing is None
    assert haptic.play("approach", 2.0) is True


def test_lumbar_warning_interrupts_approach(clock, factory, haptic):
    haptic.play(APPROACH, 0.0)
    run(clock, 0.05, haptic.tick)
    assert haptic.play(LUMBAR_WARNING, 0.05)
    assert haptic.playing == "lumbar_warning" and haptic.duty == 1.0
    run(clock, 0.5, haptic.tick)
    assert level_at(duty_log(factory, MOTOR), 0.2) == 1.0
    assert level_at(duty_log(factory, MOTOR), 0.35) == 0.0


def test_restart_flag_restarts(clock, haptic):
    haptic.play(ACK, 0.0)
    assert haptic.due == pytest.approx(KICK)
    haptic.tick(0.03)
    haptic.play(ACK, 0.03)
    assert haptic.due == pytest.approx(0.06)  # same pattern: left running
    haptic.play(ACK, 0.03, restart=True)
    assert haptic.due == pytest.approx(0.09)  # restarted; motor spinning: no kick


def test_late_and_irregular_ticks_follow_the_schedule(clock, haptic):
    """Whatever the loop's cadence, the duty after tick(t) is the pattern's level at t."""
    reference = expected_log(FAULT, 0.0, FAULT.repeat, KICK)
    haptic.play(FAULT, 0.0)
    t = 0.0
    while t < 2.0:
        t += 0.0137
        haptic.tick(t)
        assert haptic.duty == level_at(reference, t), t


def test_unknown_pattern_and_bad_pattern(haptic):
    with pytest.raises(ValueError):
        haptic.play("tickle", 0.0)
    with pytest.raises(ValueError):
        Pattern("bad", ((1.5, 0.1),))
    with pytest.raises(ValueError):
        Pattern("bad", ((0.5, 0.0),))
    assert set(PATTERNS) == {"lumbar_warning", "approach", "paired", "ack", "fault",
                             "calibrate_up", "calibrate_down", "landmark", "landmark_refused"}
    # every pattern the host may ask for by BUZZ is one the motor knows
    assert {p.name.lower() for p in BuzzPattern if p is not BuzzPattern.STOP} <= set(PATTERNS)


def test_close_turns_motor_off(factory):
    h = Haptic(MOTOR, factory)
    h.play(LUMBAR_WARNING, 0.0)
    h.close()
    h.close()
    assert duty_log(factory, MOTOR)[-1][1] == 0.0


class ExplodingClock:
    """A clock that refuses to be slept on."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep_until(self, t: float) -> None:
        raise AssertionError("a driver slept")


def test_tick_never_sleeps(monkeypatch):
    def no_sleep(_seconds):
        raise AssertionError("time.sleep called")

    monkeypatch.setattr(time, "sleep", no_sleep)
    clock = ExplodingClock()
    factory = sim_pin_factory(clock)
    haptic = Haptic(MOTOR, factory)
    panel = Panel(BUTTON, LED, factory)
    try:
        haptic.play(LUMBAR_WARNING, 0.0)
        panel.set_state(LedState.IDLE, 0.0)
        events = []
        for k in range(1, 600):
            clock.t = k * 0.01
            if k == 100:
                press(factory, BUTTON)
            haptic.tick(clock.t)
            events += panel.tick(clock.t)
        assert events == [PanelEvent.HOLD]
        assert len(duty_log(factory, MOTOR)) > 20
    finally:
        haptic.close()
        panel.close()


# --- panel: button ---------------------------------------------------------------------

def test_short_press(clock, factory, panel):
    loop = PanelLoop(panel)
    run(clock, 1.0, loop)
    press(factory, BUTTON)
    run(clock, 1.5, loop)
    assert panel.pressed and loop.events == []
    release(factory, BUTTON)
    run(clock, 2.0, loop)
    assert not panel.pressed
    assert [e for _, e in loop.events] == [PanelEvent.SHORT_PRESS]
    assert loop.events[0][0] == pytest.approx(1.53)  # reported once the release is debounced


def test_hold_fires_once_while_held_and_release_is_silent(clock, factory, panel):
    loop = PanelLoop(panel)
    run(clock, 1.0, loop)
    press(factory, BUTTON)
    run(clock, 3.99, loop)
    assert loop.events == []
    run(clock, 6.0, loop)
    assert loop.events == [(pytest.approx(4.0), PanelEvent.HOLD)]
    release(factory, BUTTON)
    run(clock, 7.0, loop)
    assert [e for _, e in loop.events] == [PanelEvent.HOLD]


@pytest.mark.parametrize("held_s, event", [(2.9, PanelEvent.SHORT_PRESS),
                                           (3.05, PanelEvent.HOLD)])
def test_press_shorter_or_longer_than_hold(clock, factory, panel, held_s, event):
    loop = PanelLoop(panel)
    run(clock, 1.0, loop)
    press(factory, BUTTON)
    run(clock, 1.0 + held_s, loop)
    release(factory, BUTTON)
    run(clock, 6.0, loop)
    assert [e for _, e in loop.events] == [event]


def test_5ms_glitch_is_ignored(clock, factory, panel):
    loop = PanelLoop(panel)
    run(clock, 1.0, loop)
    for t0 in (1.0, 2.0, 3.0):
        clock.sleep_until(t0)
        press(factory, BUTTON)
        loop(clock.now())  # the poll sees the glitch
        clock.sleep_until(t0 + 0.005)
        loop(clock.now())
        release(factory, BUTTON)
        run(clock, t0 + 0.5, loop)
    assert loop.events == [] and not panel.pressed


def test_contact_bounce_gives_one_press(clock, factory, panel):
    loop = PanelLoop(panel)
    run(clock, 1.0, loop)
    for k in range(4):  # 4 bounces, 3 ms apart, then closed
        press(factory, BUTTON)
        run(clock, 1.0 + 0.003 * (2 * k + 1), loop)
        release(factory, BUTTON)
        run(clock, 1.0 + 0.003 * (2 * k + 2), loop)
    press(factory, BUTTON)
    run(clock, 1.3, loop)
    release(factory, BUTTON)
    run(clock, 2.0, loop)
    assert [e for _, e in loop.events] == [PanelEvent.SHORT_PRESS]


def test_idle_panel_waits_for_edges_not_polls(clock, factory, panel):
    panel.set_state(LedState.SESSION, 0.0)  # steady LED: no step to wait for
    panel.tick(0.0)
    assert panel.due == pytest.approx(LEVEL_CHECK_S) and not panel.edges
    clock.sleep_until(0.4)
    press(factory, BUTTON)
    assert panel.edges  # the edge event queued it; nothing was polled
    panel.tick(0.41)
    assert panel.due == pytest.approx(0.4 + panel.debounce_s)
    assert panel.tick(panel.due) == [] and panel.pressed
    assert panel.due == pytest.approx(0.43 + LEVEL_CHECK_S)  # the level was read just now
    loop = PanelLoop(panel)
    run(clock, 4.0, loop)
    assert loop.events == [(pytest.approx(3.4), PanelEvent.HOLD)]
    assert panel.due == pytest.approx(4.43)  # held: nothing left but the level check


def test_edges_are_debounced_on_their_own_times_however_late_the_tick(clock, factory, panel):
    panel.tick(0.0)
    clock.sleep_until(1.0)
    press(factory, BUTTON)
    clock.sleep_until(1.2)
    release(factory, BUTTON)
    clock.sleep_until(1.21)
    press(factory, BUTTON)    # a 10 ms glitch: no second press
    clock.sleep_until(1.22)
    release(factory, BUTTON)
    assert panel.tick(1.5) == [PanelEvent.SHORT_PRESS]  # one late tick sees it all
    assert not panel.pressed and panel.tick(2.0) == []


def test_an_edge_event_that_never_came_is_caught_by_the_level_check(clock, factory, panel):
    loop = PanelLoop(panel)
    run(clock, 1.0, loop)
    pin = sim_pin(factory, BUTTON)
    handler, pin.when_changed = pin.when_changed, None   # the kernel drops the edge
    press(factory, BUTTON)
    pin.when_changed = handler
    assert not panel.edges
    run(clock, 6.0, loop)
    assert [e for _, e in loop.events] == [PanelEvent.HOLD]
    assert 1.0 + panel.hold_s < loop.events[0][0] <= 1.0 + LEVEL_CHECK_S + panel.hold_s + 0.01


def test_edges_from_gpiozeros_thread_reach_the_loop(clock, factory, panel):
    loop = PanelLoop(panel)
    run(clock, 1.0, loop)
    worker = threading.Thread(target=press, args=(factory, BUTTON))
    worker.start()
    worker.join()
    run(clock, 1.5, loop)
    assert panel.pressed


# --- panel: LED -------------------------------------------------------------------------

@pytest.mark.parametrize("state", list(LedState), ids=lambda s: s.name)
def test_led_follows_state_pattern(clock, factory, panel, state):
    pattern = LED_PATTERNS[state]
    clock.sleep_until(0.5)
    panel.set_state(state, clock.now())
    assert panel.state == state
    end = 0.5 + 6.0
    run(clock, end, PanelLoop(panel))
    log = [(t, level) for t, level in duty_log(factory, LED)]
    if math.isinf(pattern.period_s):
        runs = 1
    else:
        runs = math.ceil(6.0 / pattern.period_s) + 1
    expected = [(t, lv) for t, lv in expected_log(pattern, 0.5, runs) if t <= end + 1e-9]
    log = log[1:]  # the pin as the panel opened it
    if expected and expected[-1][0] == pytest.approx(end):
        expected = expected[:-1]  # the change exactly at the end may or may not be ticked
        log = [(t, lv) for t, lv in log if t < end - 1e-9]
    assert_log(log, expected)


def test_led_state_change_and_same_state(clock, factory, panel):
    panel.set_state(LedState.PAIRING, 0.0)
    run(clock, 0.15, PanelLoop(panel))
    assert panel.brightness == 0.0
    panel.set_state(LedState.PAIRING, 0.15)  # same state: pattern keeps its phase
    run(clock, 0.25, PanelLoop(panel))
    assert panel.brightness == 1.0
    panel.set_state(LedState.SESSION, 0.25)
    assert panel.brightness == 1.0
    clock.sleep_until(0.3)
    panel.set_state(LedState.OFF, 0.3)
    assert panel.brightness == 0.0
    assert level_at(duty_log(factory, LED), 0.29) == 1.0


def test_idle_breathes(clock, factory, panel):
    panel.set_state(LedState.IDLE, 0.0)
    run(clock, 3.0, PanelLoop(panel))
    levels = [lv for _, lv in duty_log(factory, LED)]
    assert max(levels) > 0.9 and len(set(levels)) >= 8


# --- sim pins ---------------------------------------------------------------------------

def test_duty_log_uses_virtual_time_and_keeps_gpiozero_states():
    clock = SimClock(start=1000.0)
    factory = sim_pin_factory(clock)
    h = Haptic(MOTOR, factory)
    try:
        h.play(ACK, clock.now())
        run(clock, 1001.0, h.tick)
        log = duty_log(factory, MOTOR)
        assert log == [(1000.0, 0.0), (1000.0, 1.0), (pytest.approx(1000.02), 0.8),
                       (pytest.approx(1000.06), 0.0)]
        states = sim_pin(factory, MOTOR).states
        assert [s.state for s in states] == [lv for _, lv in log]
        assert all(s.timestamp < 0.5 for s in states)  # gpiozero's: wall-time deltas
        sim_pin(factory, MOTOR).clear_states()
        assert duty_log(factory, MOTOR) == [(1001.0, 0.0)]
    finally:
        h.close()


def test_press_release_and_gpiozero_times_are_virtual(clock, factory, panel):
    assert level_at(duty_log(factory, BUTTON), 0.0) == 1.0  # pull-up
    clock.sleep_until(2.0)
    press(factory, BUTTON)
    clock.sleep_until(2.75)
    release(factory, BUTTON)
    log = duty_log(factory, BUTTON)
    assert log[-2:] == [(2.0, 0.0), (2.75, 1.0)]
    press(factory, BUTTON)
    clock.sleep_until(3.25)
    assert panel._button.active_time == pytest.approx(0.5)


def test_led_fault_double_blink_and_pairing_fast_blink_literal(clock, factory, panel):
    panel.set_state(LedState.FAULT, 0.0)
    run(clock, 1.6, PanelLoop(panel))
    assert_log(duty_log(factory, LED)[1:],
               [(0.0, 1.0), (0.15, 0.0), (0.3, 1.0), (0.45, 0.0), (1.5, 1.0)])
    panel.set_state(LedState.PAIRING, 1.6)
    run(clock, 2.05, PanelLoop(panel))
    log = duty_log(factory, LED)
    assert [t for t, lv in log if lv == 1.0 and t > 1.6] == pytest.approx([1.8, 2.0])  # 5 Hz
    assert [level_at(log, t) for t in (1.65, 1.75, 1.85, 1.95)] == [1.0, 0.0, 1.0, 0.0]


def test_open_drain_line_is_a_wired_and_logged_at_the_outputs_times():
    clock = SimClock()
    factory = sim_pin_factory(clock)
    changes = {"a": [], "b": []}
    line = wire_open_drain(factory, 22, lambda: changes["a"], lambda: changes["b"])
    device = InputDevice(22, pull_up=True, pin_factory=factory)
    try:
        assert device.value == 0                  # both released: the pull-up holds it high
        changes["a"] = [(0.1, True)]              # a pulls low at 0.1 s...
        changes["b"] = [(0.2, True), (0.3, False)]
        clock.sleep_until(0.5)
        assert device.value == 1                  # ...and still does
        changes["a"], changes["b"] = [(0.6, False)], []
        clock.sleep_until(0.7)
        assert device.value == 0
        assert duty_log(factory, 22)[-2:] == [(0.1, 0.0), (0.6, 1.0)]
        line.short(0.8)
        changes["a"] = []
        assert device.value == 1                  # shorted to ground
        line.mend(0.9)
        line.cut(1.0)
        changes["a"] = [(1.1, True)]
        assert device.value == 0                  # cut: the output no longer reaches it
        line.mend(1.2)
        changes["a"] = []
        assert device.value == 1                  # mended: a still pulls low
        # high at 0.6, shorted low at 0.8, high again at 0.9 (the cut at 1.0 keeps it so),
        # low when mended at 1.2
        assert duty_log(factory, 22)[-4:] == [(0.6, 1.0), (0.8, 0.0), (0.9, 1.0), (1.2, 0.0)]
    finally:
        device.close()
