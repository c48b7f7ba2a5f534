"""The running firmware: profile + I2C bus + pins + clock -> frames, fence and panel.

One single-threaded loop serves both worlds: on a Pi the bus is ``smbus2.SMBus``, the
pins are gpiozero's default factory and the clock is the monotonic clock; in the
simulator they are ``SimBus``, a ``MockFactory`` and a ``SimClock``. ``step()`` does
what is due and says when it wants to run again; nothing in it sleeps.

A hung I2C bus (transfers time out: ``firmware.drivers.bus_watch``) is recovered by the
loop at the end of the step that saw it: the bus is closed and reopened, the parts are
re-initialised (the IMU with its start-up time, the ADCs' scan afresh, the gauge asked
again), logged, and the frames are flagged ``BUS_FAULT`` from then until the IMU's data
flows again. A bus that will not reopen, or hangs again at once, is retried every
``BUS_RETRY_S``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from firmware.calibration import (
    SCALE_WEIGHT_CAP,
    Calibration,
    CalibrationKeeper,
    load_calibration,
)
from firmware.clock import Clock
from firmware.config import Config
from firmware.drivers.bus_watch import BusWatch
from firmware.drivers.haptic import Haptic
from firmware.drivers.max17048 import FuelGauge
from firmware.drivers.mpu6050 import Mpu6050
from firmware.drivers.panel import LedState, Panel, PanelEvent
from firmware.drivers.zone_scanner import ZoneScanner
from firmware.protocol import Frame, FrameFlag
from firmware.safety import Fence, FenceAction
from firmware.samples import ImuBatch, ZoneScan
from firmware.sensing.pipeline import SensingPipeline

DRAIN_PERIOD_S = 0.02  # longest FIFO drain period: 4 samples at 200 Hz; the FIFO holds 0.42 s
DRAIN_EARLY_S = 0.01  # a drain may come this much early, to share a completed scan's wake-up
IMU_HOLD_S = 0.1  # after this long without IMU data, frames go on with IMU_FAULT
CLIP_LOG_EVERY_S = 60.0  # a gyro at full scale is logged at most this often, s
BUS_RETRY_S = 0.5  # a hung bus is recovered at most this often, s
_BUS_FAULT = FrameFlag.BUS_FAULT
_BEYOND_FENCE = FrameFlag.BEYOND_FENCE

FrameSink = Callable[[Frame], None]
RawSink = Callable[[ImuBatch | ZoneScan, float], None]

_FENCE_PATTERNS = {FenceAction.WARN: "lumbar_warning", FenceAction.APPROACH: "approach",
                   FenceAction.FAULT: "fault"}
"""The haptic pattern of each fence action but NONE and CLEAR."""
_NO_ACTION = FenceAction.NONE


class Firmware:
    """The roller's firmware loop.

    config: hardware profile. bus: smbus2-compatible bus of the IMU (and of the ADCs
    unless ``adc_bus`` is given).
    clock: loop clock. pin_factory: gpiozero pin factory (None: gpiozero's default).
    boot_id: this run's boot id (default: random), first_seq: the first frame's seq.
    state_dir: where the roller keeps what it learned of its parts (``calibration.json``,
        ``firmware.calibration``); None: nothing kept (learned again every run).
    calibration: start from this instead of what ``state_dir`` holds (a replay).
    """

    def __init__(self, config: Config, bus: Any, clock: Clock, pin_factory: Any = None,
                 logger: logging.Logger | None = None, adc_bus: Any = None, *,
                 boot_id: int | None = None, first_seq: int = 0,
                 state_dir: Path | None = None, calibration: Calibration | None = None
                 ) -> None:
        self.config = config
        self.clock = clock
        self.log = logger or logging.getLogger("smartroller.firmware")
        self.bus, self.adc_bus = bus, adc_bus or bus
        self.watch = BusWatch()
        """What the drivers saw of the bus (a hung bus, recovered by the loop)."""
        self.imu = Mpu6050(bus, config.imu, clock, self.log, self.watch)
        self.scanner = ZoneScanner(self.adc_bus, config.adc, config.zones.count, clock,
                                   self.log, config.pins.adc_ready, pin_factory, self.watch)
        self.gauge = (FuelGauge(bus, config.battery.address, clock, self.log,
                                config.battery.low_pct, self.watch)
                      if config.battery.gauge else None)
        self.haptic = Haptic(config.pins.motor_pwm, pin_factory)
        self.panel = Panel(config.pins.button, config.pins.led, pin_factory)
        self.boot_id = secrets.randbits(32) if boot_id is None else boot_id
        stored = calibration or load_calibration(state_dir, self.log)
        self.start_calibration = stored
        """What the roller knew of its parts at boot, and started from (a raw log's header
        records it, so a replay starts from it too)."""
        if stored.imu_clock_span_s > 0.0:
            self.imu.assume_rate(stored.imu_clock_ratio, stored.imu_clock_span_s)
        self.pipeline = SensingPipeline(config, boot=self.boot_id, first_seq=first_seq,
                                        gyro_scale=stored.start_scale())
        self.calibration_keeper = CalibrationKeeper(state_dir, stored, self.log)
        self.fence = Fence.from_config(config.fence)
        self.frame_sinks: list[FrameSink] = []
        self.raw_sinks: list[RawSink] = []
        self.on_hold: Callable[[], None] | None = None  # the pairing window (Bluetooth)
        self._next_drain = 0.0
        self._last_imu_data = 0.0
        self._clips_logged = (0, -math.inf)  # (clipped batches, when) at the last warning
        self._inconsistent = False  # the gyro-gravity check's state, as last logged
        self.frames = 0
        self.bus_recoveries = 0
        """Times the loop reopened a hung bus."""
        self._bus_fault = False  # frames are flagged BUS_FAULT until the IMU's data flows
        self._bus_hung_at = 0.0  # loop-clock time the current episode began, s
        self._bus_retry_at = 0.0  # the next recovery may come at this time, s

    def start(self) -> None:
        """Bring up the sensors (a sensor that fails is retried by the loop)."""
        now = self.clock.now()
        self.panel.set_state(LedState.BOOTING, now)
        try:
            self.imu.start()
        except OSError as exc:  # the driver retries from drain()
            self.log.warning("IMU did not start: %s", exc)
        self.pipeline.imu_clone = bool(getattr(self.imu, "clone", False))
        now = self.clock.now()
        self._next_drain = now + DRAIN_PERIOD_S
        self._last_imu_data = now
        self.panel.set_state(LedState.IDLE, now)

    def step(self) -> float:
        """Do what is due now; return the loop-clock time (s) of the next thing due.

        The FIFO is drained right after each completed zone scan (which then comes with
        the freshest loads) or, at the latest, ``DRAIN_PERIOD_S`` after the last drain.
        The panel is served at the first wake-up at or after its deadline (at most one
        drain period late: its events carry the edges' own times), so it never wakes
        the loop by itself.
        """
        now = self.clock.now()
        scanner = self.scanner
        if now >= scanner.next_due:
            scan = scanner.service(now)
            if scan is not None:
                # (the scan's own time is the clock's last reading: the drain below goes
                # by it, not by a reading of its own after the loads' work)
                now = scan.t
                sensor_t = self.imu.clock_to_sensor(now)
                self.pipeline.on_scan(scan, sensor_t)
                for raw_sink in self.raw_sinks:
                    raw_sink(scan, sensor_t)
                if now >= self._next_drain - DRAIN_EARLY_S:
                    self._drain(now)
        if now >= self._next_drain:
            self._drain(now)
        gauge = self.gauge
        if gauge is not None and now >= gauge.due:
            gauge.poll(now)  # (never wakes the loop by itself: at most a drain late)
        panel = self.panel
        if panel.edges or now >= panel.due:
            for event in panel.tick(now):
                self._on_panel(event, now)
        haptic = self.haptic
        haptic_due = haptic.due
        if now >= haptic_due:
            haptic_due = haptic.tick(now)
        due = scanner.next_due
        if self._next_drain < due:
            due = self._next_drain
        if self.watch.hung:
            due = min(due, self._recover_bus(self.clock.now()))
        return haptic_due if haptic_due < due else due

    def _recover_bus(self, now: float) -> float:
        """The bus hung: reopen it and re-initialise the parts (at most every
        ``BUS_RETRY_S``); return when to look again, loop-clock time, s."""
        if now < self._bus_retry_at:
            return self._bus_retry_at
        self._bus_retry_at = now + BUS_RETRY_S
        if not self._bus_fault:
            self._bus_fault, self._bus_hung_at = True, now
            self.log.error("I2C bus hung (%s): reopening it and re-initialising the parts",
                           self.watch.last)
        try:
            for bus, number in {id(b): (b, n) for b, n in
                                ((self.bus, self.config.imu.bus),
                                 (self.adc_bus, self.config.adc.bus))}.values():
                bus.close()
                bus.open(number)
        except OSError as exc:
            self.log.error("I2C bus %d does not reopen: %s; retrying in %g s",
                           self.config.imu.bus, exc, BUS_RETRY_S)
            return self._bus_retry_at
        self.bus_recoveries += 1
        self.watch.recovered()
        self.imu.restart("the I2C bus hung: re-initialising")
        self.scanner.restart(now)
        if self.gauge is not None:
            self.gauge.due = now
        self._next_drain = now
        return now

    def calibration(self) -> Calibration:
        """What the roller knows of its parts now (``firmware.calibration``): the IMU's
        clock as this boot measured it, if over a longer run than the kept one's; the
        gyro's scale as the odometry knows it (the kept one refined by this boot's)."""
        kept, span = self.calibration_keeper.saved, self.imu.rate_span_s
        cal = kept
        if span > kept.imu_clock_span_s:
            cal = replace(cal, imu_clock_ratio=self.imu.rate_ratio, imu_clock_span_s=span)
        scale = self.pipeline.odometry.scale
        if scale.weight > 0.0:
            cal = replace(cal, gyro_scale=scale.scale,
                          gyro_scale_weight=min(scale.weight, SCALE_WEIGHT_CAP))
        return cal

    def battery_pct(self) -> float | None:
        """The battery's state of charge from the fuel gauge, % (None: unknown)."""
        return None if self.gauge is None else self.gauge.percent

    def _drain(self, now: float) -> None:
        self._next_drain = now + DRAIN_PERIOD_S
        batch = self.imu.drain()
        if batch is not None and len(batch):
            self._last_imu_data = now
            for raw_sink in self.raw_sinks:
                raw_sink(batch, now)
            self._emit(self.pipeline.on_imu(batch), now)
            if self._bus_fault and not self.watch.hung:
                self._bus_fault = False
                self.log.info("I2C bus recovered: data flows again after %.2f s",
                                 now - self._bus_hung_at)
            check = self.pipeline.odometry.check
            if check.inconsistent != self._inconsistent:
                self._inconsistent = check.inconsistent
                if check.inconsistent:
                    self.log.error(
                        "the gyro and gravity disagree (the gyro turns %.2f x gravity's): the "
                        "position is not tracked; check imu.roller_axis and imu.gyro_range_dps "
                        "in the hardware profile", check.ratio)
                else:
                    self.log.warning("the gyro and gravity agree again: the position is "
                                     "tracked")
            if now >= self.calibration_keeper.due:
                self.calibration_keeper.offer(self.calibration(), now)
            clipped, logged_at = self._clips_logged
            if self.pipeline.clipped_batches > clipped and now - logged_at >= CLIP_LOG_EVERY_S:
                self.log.warning(
                    "gyro at full scale (+-%d deg/s) in %d IMU batches: rolled faster than it "
                    "measures, the position comes from gravity meanwhile, to ~15 mm "
                    "(imu.gyro_range_dps)",
                    self.config.imu.gyro_range_dps, self.pipeline.clipped_batches - clipped)
                self._clips_logged = (self.pipeline.clipped_batches, now)
        elif now - self._last_imu_data > IMU_HOLD_S:
            self._emit(self.pipeline.hold(self.imu.clock_to_sensor(now)), now)

    def _emit(self, frames: list[Frame], now: float) -> None:
        fence, sinks = self.fence, self.frame_sinks
        for frame in frames:
            action = fence.check(frame)
            if fence.beyond:
                frame = frame.with_flags(_BEYOND_FENCE)
            if self._bus_fault:
                frame = frame.with_flags(_BUS_FAULT)
            if action is _NO_ACTION:  # (most frames: no Enum hashed)
                pass
            elif action is FenceAction.CLEAR:
                self.haptic.stop(now, name="lumbar_warning")
            else:
                self.haptic.play(_FENCE_PATTERNS[action], now)
            self.frames += 1
            for sink in sinks:
                sink(frame)

    def _on_panel(self, event: PanelEvent, now: float) -> None:
        if event is PanelEvent.SHORT_PRESS:
            if self.pipeline.in_contact:  # lying on it: a mark (a calibration landmark)
                self.pipeline.mark()
            else:  # getting ready: zero at the first contact, the session starts
                self.pipeline.arm_zero()
                self.panel.set_state(LedState.SESSION, now)
            self.haptic.play("ack", now)
        elif event is PanelEvent.HOLD and self.on_hold is not None:
            self.on_hold()

    def run(self, until: float | None = None,
            should_stop: Callable[[], bool] | None = None) -> None:
        """Run the loop until clock time ``until`` (s) or until ``should_stop()``."""
        while (until is None or self.clock.now() < until) and not (should_stop and should_stop()):
            due = self.step()
            if until is not None:
                due = min(due, until)
            self.clock.sleep_until(due)

    async def run_async(self, should_stop: Callable[[], bool] | None = None) -> None:
        """Run the loop inside asyncio (beside the Bluetooth stack) on a real-time clock."""
        while not (should_stop and should_stop()):
            due = self.step()
            await asyncio.sleep(max(0.0, due - self.clock.now()))

    def close(self) -> None:
        """Release the pins (motor off); keep what was learned of the parts."""
        self.calibration_keeper.flush(self.calibration())
        self.haptic.close()
        self.panel.close()
        self.scanner.close()
