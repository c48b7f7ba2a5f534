"""The non-blocking scanner of the pressure zones over the ADS1115s.

``ZoneScanner`` reads every zone once per scan with single-shot conversions, all ADCs
converting the same channel at once, and never blocks: the loop calls
``service(now)`` at ``next_due``. The chip itself is ``firmware.drivers.ads1115``.


Conversion ready: each ADC's ALERT/RDY pin, wired to a GPIO (``pins.adc_ready``), is set
up as the conversion-ready signal (SBAS444 9.3.8, 9.6.4: Hi_thresh's MSB 1, Lo_thresh's
MSB 0, COMP_QUE != 11; in single-shot mode the pin is the OS bit, active low with
COMP_POL = 0). It is open drain, one GPIO per ADC with the Pi's pull-up: a reset ADC
(comparator off, pin released) then reads "not ready" instead of passing for ready, as
it would on a line shared active-high. A GPIO read replaces the I2C read of the config
register per conversion. Without pins (or while a pin is faulted) the OS bit is polled
over I2C, as the fallback and the diagnosis.

Combined transactions: the Pi's I2C controller driver (Linux i2c-bcm2835) sends the
messages of one ``i2c_rdwr`` with repeated starts, but refuses (EOPNOTSUPP) any read
that is not the last message. So a channel's step is one combined transaction that
writes the next channel's config to every ADC (starting their conversions; the
conversion register keeps the last result until the new one is done) and then reads
one ADC's result, plus one plain read per other ADC. If a combined transaction fails,
each ADC's step is redone alone, which tells which one failed (a repeated start write
is harmless: writing OS = 1 during a conversion does nothing, SBAS444 9.6.3).

Pipelined: the step that reads a scan's last channel starts the next scan's first
channel in the same combined transaction (when every ADC is healthy, as the steady
state needs), so the next scan begins by reading it: steady state, two ADCs, 8 bus
transactions, 8 GPIO reads and 4 wake-ups per scan of 8 zones (24 transactions before
the ready pins; 9 and 5 wake-ups before the pipeline). The first channel's conversions
then wait in the conversion registers until the next scan (a scan's first-channel
zones are sampled one scan period minus ~3 conversion times before its other zones:
~16 ms at 50 scans a second and 860 SPS). A read is never early: the next scan is due
no sooner than the worst-case conversion time after the start, and its ready pins are
read first (a pin that says busy, e.g. an ADC reset while its result waited, hands the
scan to the general steps, which poll the OS bit and count a reset's lost conversion).

Every conversion writes the full config word, so a spontaneous reset of an ADC costs at
most the conversion it interrupted: the reset ADC's pin stays released, the OS-bit poll
finds the config changed, and the thresholds and the conversion are written again.

A hung bus (transfers time out) is reported to the ``BusWatch``; once the loop has
recovered the bus, ``restart`` drops the scan under way and writes every ADC again.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Sequence
from ctypes import create_string_buffer
from typing import Any

from gpiozero import InputDevice
from smbus2 import i2c_msg
from smbus2.smbus2 import I2C_M_RD

from firmware.clock import Clock
from firmware.config import AdcConfig
from firmware.drivers.ads1115 import (
    OS_BIT,
    REG_CONFIG,
    REG_CONVERSION,
    Ads1115,
    SMBusLike,
    config_word,
    conversion_time_s,
)
from firmware.drivers.bus_watch import BusWatch
from firmware.drivers.i2c import Transfer
from firmware.samples import ZoneScan

__all__ = ["ZoneScanner"]


_unpack_code = struct.Struct(">h").unpack_from
"""A conversion result's buffer (2 bytes, big-endian) -> (code,): no bytes copied."""

# What one ADC is doing for the current channel.
_DONE, _START, _CONVERTING, _READY = 0, 1, 2, 3


class _Converter:
    """Scanner bookkeeping for one ADC."""

    __slots__ = ("driver", "first_zone", "zones", "state", "due", "started", "errors",
                 "faulted", "next_reinit", "start_msgs", "point_msg", "read_msg", "result",
                 "read", "pin", "level", "gpio", "armed", "pin_ok", "looked", "misses",
                 "pin_episode", "next_pin_try", "next_pin_check")

    def __init__(self, driver: Ads1115, first_zone: int, zones: int, words: list[int],
                 pin: Any = None, gpio: int | None = None) -> None:
        self.driver = driver
        self.first_zone = first_zone
        self.zones = zones            # channels in use on this ADC
        self.state = _DONE
        self.due = 0.0                # when the next step for this ADC is due, s
        self.started = 0.0            # when its conversion was started, s
        self.errors = 0               # consecutive bus errors
        self.faulted = False
        self.next_reinit = 0.0        # next re-initialisation attempt while faulted, s
        address = driver.address
        self.start_msgs = [i2c_msg.write(address, [REG_CONFIG, w >> 8, w & 0xFF])
                           for w in words]
        self.point_msg = i2c_msg.write(address, [REG_CONVERSION])
        self.result = create_string_buffer(2)  # what read_msg reads lands here
        self.read_msg = i2c_msg(addr=address, flags=I2C_M_RD, len=2, buf=self.result)
        self.read = Transfer(driver.bus, self.point_msg, self.read_msg)  # the conversion
        # register, alone
        self.pin = pin                # gpiozero InputDevice on ALERT/RDY, or None
        self.level: Any = None if pin is None else pin.pin  # its gpiozero Pin: state 0 = ready
        self.gpio = gpio
        self.armed = pin is None      # thresholds written since the last (re)start
        self.pin_ok = pin is not None  # the pin is trusted
        self.looked = False           # the pin was read for the current conversion
        self.misses = 0               # conversions in a row the pin did not signal
        self.pin_episode = False      # a pin fault was logged and not yet cleared
        self.next_pin_try = math.inf  # next try of a faulted pin, s
        self.next_pin_check = 0.0     # next check that the pin is released while converting


class ZoneScanner:
    """Reads every pressure zone once per scan, as a non-blocking state machine.

    bus: smbus2.SMBus-like; adc: the ADC profile; zone_count: zones in use (zone i is
    AIN(i % 4) of ``adc.addresses[i // 4]``); clock: the loop clock (s); logger: where
    fault episodes are reported (default: this module's logger). ready_pins: the GPIO
    (BCM) of each ADC's ALERT/RDY, in ``adc.addresses`` order (empty: poll over I2C);
    pin_factory: gpiozero's pin factory for them. watch: where bus errors are reported
    (a hung bus; default: a watch of its own).

    Call ``service(now)`` at or after ``next_due``; it returns a ``ZoneScan`` when a scan
    completes. Bus trouble never raises: an OSError is retried once, then the ADC is
    faulted (its zones ``ok=False`` holding their last good code), re-initialised every
    ``REINIT_S`` and logged once per episode. A conversion not done after ``STUCK_FACTOR``
    conversion times is a fault too. A ready pin that does not signal a conversion the
    OS bit shows done (``PIN_MISSES`` in a row, the thresholds rewritten after the
    first), or that reads ready while a conversion runs (checked every
    ``PIN_CHECK_S``), is a pin fault: logged once, the ADC polled over I2C meanwhile,
    the pin tried again every ``REINIT_S``.
    """

    REINIT_S = 1.0
    """Interval between re-initialisation attempts of a faulted ADC or pin, s."""
    RETRY_S = 0.5e-3
    """Delay before retrying a failed transaction, s."""
    STUCK_FACTOR = 3.0
    """A conversion still running after this many conversion times is stuck."""
    PIN_MISSES = 3
    """Conversions in a row a ready pin missed before it counts as faulted."""
    PIN_CHECK_S = 1.0
    """How often a ready pin is checked to be released while its ADC converts, s."""
    PIN_MARGIN_S = 2e-6
    """Wait this much past the worst-case conversion time before reading a pin, s."""

    def __init__(self, bus: SMBusLike, adc: AdcConfig, zone_count: int, clock: Clock,
                 logger: logging.Logger | None = None, ready_pins: Sequence[int] = (),
                 pin_factory: Any = None, watch: BusWatch | None = None) -> None:
        if not 1 <= zone_count <= 4 * len(adc.addresses):
            raise ValueError(f"zone_count {zone_count}: 1..{4 * len(adc.addresses)} zones")
        if ready_pins and len(ready_pins) != len(adc.addresses):
            raise ValueError("ready_pins: one per ADC address, or none")
        self.bus = bus
        self.clock = clock
        self.log = logger or logging.getLogger(__name__)
        self.watch = watch or BusWatch()
        self.period_s = 1.0 / adc.scan_rate_hz
        self.conversion_s = conversion_time_s(adc.data_rate_sps)
        self.wait_s = self.conversion_s + self.PIN_MARGIN_S
        self.poll_s = max(100e-6, self.conversion_s / 8.0)
        self._combined = callable(getattr(bus, "i2c_rdwr", None))
        channels = range(min(4, zone_count))
        ready = bool(ready_pins)
        self._words = [config_word(ch, adc.full_scale_v, adc.data_rate_sps, ready)
                       for ch in channels]
        self._adcs: list[_Converter] = []
        try:
            for i, address in enumerate(adc.addresses):
                if 4 * i >= zone_count:
                    break
                gpio = ready_pins[i] if ready else None
                pin = None if gpio is None else InputDevice(gpio, pull_up=True,
                                                            pin_factory=pin_factory)
                self._adcs.append(_Converter(Ads1115(bus, address), 4 * i,
                                             min(4, zone_count - 4 * i), self._words, pin,
                                             gpio))
        except Exception:
            self.close()
            raise
        self._codes = [0] * zone_count
        self._ok = [False] * zone_count
        self._by_channel = [[a for a in self._adcs if ch < a.zones] for ch in channels]
        self._last_channel = len(self._words) - 1
        self._fast = False  # this scan runs on the steady state's short path
        self._fast_t = 0.0  # when the short path started the current channel, s
        self._alone = False  # this channel's ADCs start one by one
        steady = ready and self._combined and all(a.zones == len(self._words)
                                                  for a in self._adcs)
        self._first_starts = (Transfer(bus, *(a.start_msgs[0] for a in self._adcs))
                              if steady else None)
        """Steady state: the combined transaction that starts a scan (not pipelined), and
        for each channel the one that starts the next channel (after the last: the next
        scan's first, pipelined) and reads the last ADC."""
        last = self._adcs[-1]
        count = len(self._words)
        self._next_starts = [Transfer(bus, *(a.start_msgs[(ch + 1) % count]
                                             for a in self._adcs),
                                      last.point_msg, last.read_msg) for ch in channels]
        self._read_alone = [tuple((k, a.read, a.result, a.first_zone + ch)
                                  for k, a in enumerate(self._adcs[:-1])) for ch in channels]
        """Steady state, per channel: the ADCs whose result is read alone (index, transfer,
        result buffer, zone); the last one's (buffer, zone) comes with ``_next_starts``
        (or alone: ``_last_alone``, a scan that starts none after it)."""
        self._last_result = [(last.result, last.first_zone + ch) for ch in channels]
        self._last_alone = (last.read, last.result, last.first_zone + self._last_channel)
        self._primed_at: float | None = None
        """Loop-clock time (s) the last scan's final step started the next scan's first
        channel (pipelined), or None: the next scan starts it itself."""
        self._levels = [(k, a.level) for k, a in enumerate(self._adcs)] if steady else []
        self._channel = -1            # channel being converted; -1 between scans
        self._active: list[_Converter] = []
        self._scan_start = -math.inf
        self.next_due = clock.now()
        """When ``service`` has work to do next, loop-clock time, s."""
        self.scans = 0
        self.faults = 0
        self.bus_errors = 0
        self.resets = 0
        """Conversions lost to an ADC found reset (config read back differs)."""
        self.pin_faults = 0
        """Fault episodes of ready pins."""

    @property
    def faulted_addresses(self) -> list[int]:
        """Addresses of the ADCs in a fault episode."""
        return [a.driver.address for a in self._adcs if a.faulted]

    @property
    def faulted_pins(self) -> list[int]:
        """GPIOs of the ready pins in a fault episode."""
        return [a.gpio for a in self._adcs if a.pin_episode and a.gpio is not None]

    def close(self) -> None:
        """Release the ready pins."""
        for adc in self._adcs:
            if adc.pin is not None:
                adc.pin.close()

    def restart(self, now: float) -> None:
        """Start afresh at ``now`` (s), after the bus was recovered: the scan under way is
        dropped, every ADC's ready pin and config are written again, a faulted ADC is
        tried at once."""
        self._channel, self._active, self._fast = -1, [], False
        self._primed_at = None
        for adc in self._adcs:
            adc.state, adc.errors, adc.armed = _DONE, 0, False
            if adc.faulted:
                adc.next_reinit = now
        self.next_due = now

    def service(self, now: float) -> ZoneScan | None:
        """Do the work due at ``now`` (s); return a scan when one completes."""
        if now < self.next_due:
            return None
        if self._channel < 0:
            self._scan_start = now
            self._ok = [False] * len(self._codes)
            primed = self._primed_at
            if primed is not None:  # the first channel converted since the last scan
                self._primed_at = None
                self._channel, self._active = 0, self._by_channel[0]
                self._fast, self._fast_t = True, primed
                scan = self._steady_step(now)
                if scan is not None or self._fast:
                    return scan
                return self._general()
            started = self._steady(now)
            if started:
                return None
            self._begin_channel(0, now, alone=started is False)
        elif self._fast:
            scan = self._steady_step(now)
            if scan is not None or self._fast:
                return scan
        return self._general()

    # -- the steady state -----------------------------------------------------------
    def _steady(self, now: float) -> bool | None:
        """Start a scan on the steady state's short path if every ADC is healthy (ready
        pin trusted and armed, nothing due but the scan): True if it did, False if the
        transaction failed, None if not healthy."""
        self._fast = False
        if self._first_starts is None:
            return None
        for a in self._adcs:  # (a loop, not any() over a generator: once a scan)
            if a.faulted or not a.pin_ok or not a.armed or now >= a.next_pin_check:
                return None
        try:
            self._first_starts()
        except OSError:
            self.bus_errors += 1  # each ADC starts alone in its own step
            return False
        self._channel, self._active = 0, self._by_channel[0]
        self._all_started(self.clock.now())
        self._fast = True
        return True

    def _all_started(self, t: float) -> None:
        """Every ADC started this channel at ``t`` (s); their own bookkeeping waits for
        ``_leave_steady``."""
        self._fast_t = t
        self.next_due = t + self.wait_s

    def _leave_steady(self, done: int, ready: int) -> None:
        """Hand the scan over to the general steps: the first ``done`` ADCs have their
        result for this channel, the next ones up to ``ready`` are ready (their pins said
        so), the ADC at ``ready`` said busy and the others were not looked at."""
        self._fast = False
        t = self._fast_t
        due = t + self.wait_s
        for k, adc in enumerate(self._adcs):
            adc.started, adc.due, adc.errors = t, due, 0
            adc.state = _DONE if k < done else _READY if k < ready else _CONVERTING
            adc.looked = k <= ready

    def _steady_step(self, now: float) -> ZoneScan | None:
        """The conversions of every ADC are due (at ``now``, s): if all pins say ready,
        read them and start the next channel (after the last channel: the next scan's
        first, if every ADC is healthy for it). Anything else hands over to the general
        steps."""
        for k, level in self._levels:
            if level.state:  # high: not ready (active low)
                self._leave_steady(0, k)
                return None
        channel = self._channel
        codes, ok = self._codes, self._ok
        for k, read, result, zone in self._read_alone[channel]:
            try:
                read()
            except OSError as exc:
                self._leave_steady(k, len(self._adcs))
                self._bus_error(self._adcs[k], self.clock.now(), exc)
                return None
            codes[zone], ok[zone] = _unpack_code(result)[0], True
        last = channel == self._last_channel
        if last and not self._may_prime(now):
            read, result, zone = self._last_alone
            try:
                read()
            except OSError as exc:
                self._leave_steady(len(self._adcs) - 1, len(self._adcs))
                self._bus_error(self._adcs[-1], self.clock.now(), exc)
                return None
            codes[zone], ok[zone] = _unpack_code(result)[0], True
            return self._finish_scan()
        try:
            self._next_starts[channel]()
        except OSError:
            self.bus_errors += 1  # the last ADC is still ready: its own step reads it
            self._leave_steady(len(self._adcs) - 1, len(self._adcs))
            return None
        result, zone = self._last_result[channel]
        codes[zone], ok[zone] = _unpack_code(result)[0], True
        if last:
            self._primed_at = t = self.clock.now()
            return self._finish_scan(t)
        self._channel = channel + 1
        self._active = self._by_channel[channel + 1]
        self._fast_t = t = self.clock.now()
        self.next_due = t + self.wait_s
        return None

    def _may_prime(self, now: float) -> bool:
        """Every ADC is healthy for the next scan to start on the steady state's short
        path at ``now`` (s): the conditions of ``_steady``."""
        for a in self._adcs:
            if a.faulted or not a.pin_ok or not a.armed or now >= a.next_pin_check:
                return False
        return True

    # -- the general steps ------------------------------------------------------------
    def _general(self) -> ZoneScan | None:
        while True:
            if self._combined:
                self._together(self.clock.now())
            due = math.inf
            for adc in self._active:
                if adc.state != _DONE:
                    t = self.clock.now()
                    if t >= adc.due:
                        self._step(adc, t)
                    if adc.state != _DONE and adc.due < due:
                        due = adc.due
            if due < math.inf:
                self.next_due = due
                return None
            if self._channel + 1 < len(self._words):
                self._begin_channel(self._channel + 1, self.clock.now())
                continue
            return self._finish_scan()

    # -- all ADCs at once ---------------------------------------------------------
    def _together(self, t: float) -> None:
        """The steady state's combined transactions; whatever they leave undone (a
        failure, an ADC not ready, a faulted one) the per-ADC steps do."""
        active = self._active
        starting = [a for a in active if a.state == _START and t >= a.due and a.armed
                    and not a.faulted]
        if len(starting) > 1 and not self._alone:
            rdwr = self.bus.i2c_rdwr  # type: ignore[attr-defined]  # (``_combined``)
            try:
                rdwr(*[a.start_msgs[self._channel] for a in starting])
            except OSError:
                self.bus_errors += 1  # each ADC starts alone in its own step
            else:
                started = self.clock.now()
                for adc in starting:
                    self._started(adc, started)
            return
        working = [a for a in active if a.state != _DONE]
        for adc in working:
            if adc.state == _CONVERTING and t >= adc.due:
                self._look(adc)
        if working and all(a.state == _READY for a in working) \
                and self._channel + 1 < len(self._words):
            self._read_and_start_next(working)

    def _read_and_start_next(self, adcs: list[_Converter]) -> None:
        """Every working ADC of this channel is ready: read them and start the next channel,
        in one plain read per ADC but the last, then one combined transaction (the next
        config to each, the last one's result)."""
        *others, last = adcs
        for adc in others:
            if not self._take(adc):
                return
        nxt = self._channel + 1
        starting = [a for a in adcs if nxt < a.zones and a.armed]
        rdwr = self.bus.i2c_rdwr  # type: ignore[attr-defined]  # (``_combined``)
        try:
            rdwr(*[a.start_msgs[nxt] for a in starting], last.point_msg, last.read_msg)
        except OSError:
            self.bus_errors += 1  # ``last`` is still ready: its own step reads it
            return
        started = self.clock.now()
        self._store(last, _unpack_code(last.result)[0])
        self._begin_channel(nxt, started, starting)

    # -- one ADC ------------------------------------------------------------------
    def _begin_channel(self, channel: int, now: float, started: Sequence[_Converter] = (),
                       alone: bool = False) -> None:
        """Start ``channel``: ``started`` ADCs are converting it already, ``alone``: the
        others start one by one (their combined start just failed)."""
        self._channel = channel
        self._alone = alone
        self._active = self._by_channel[channel]
        for adc in self._active:
            if adc in started:
                self._started(adc, now)
            elif adc.faulted and now < adc.next_reinit:
                adc.state = _DONE
            else:
                if adc.faulted:
                    adc.next_reinit = now + self.REINIT_S
                if adc.pin is not None and not adc.pin_ok and now >= adc.next_pin_try:
                    adc.pin_ok, adc.armed = True, False  # try the pin again, on probation
                    adc.misses, adc.next_pin_check = self.PIN_MISSES - 1, now
                    adc.next_pin_try = math.inf
                adc.state, adc.due = _START, now

    def _started(self, adc: _Converter, t: float) -> None:
        """``adc``'s conversion started at ``t`` (s)."""
        adc.started = t
        adc.state, adc.due, adc.errors, adc.looked = _CONVERTING, t + self.wait_s, 0, False
        if adc.pin_ok and t >= adc.next_pin_check:
            adc.next_pin_check = t + self.PIN_CHECK_S
            if not adc.level.state:  # must read "busy" (high) now
                self._pin_fault(adc, t, "reads ready while converting (shorted?)")

    def _look(self, adc: _Converter) -> None:
        """Read ``adc``'s ready pin once per conversion; ready -> ``_READY``."""
        if adc.pin_ok and not adc.looked:
            adc.looked = True
            if not adc.level.state:  # pulled low: ready
                adc.state = _READY

    def _step(self, adc: _Converter, t: float) -> None:
        if adc.state == _START:
            self._start(adc, t)
            return
        self._look(adc)
        if adc.state == _READY:
            self._take(adc)
            return
        word = self._words[self._channel]
        try:
            config = adc.driver.read_config()
            fresh = bool(config & OS_BIT) and not (config ^ word) & 0x7FFF
            code = adc.driver.read_code() if fresh else 0
        except OSError as exc:
            self._bus_error(adc, t, exc)
            return
        adc.errors = 0
        if not config & OS_BIT:
            if t - adc.started > self.STUCK_FACTOR * self.conversion_s:
                self._fault(adc, t, "conversion never completes (stuck)")
            else:
                adc.due = t + self.poll_s
            return
        if not fresh:  # the config read back differs: the ADC was reset under us
            self.resets += 1
            adc.armed = False
            adc.state, adc.due = _START, t
            return
        self._store(adc, code)
        if adc.pin_ok and adc.looked:  # done and fresh, yet the pin said busy
            self._pin_missed(adc, t)

    def _start(self, adc: _Converter, t: float) -> None:
        """Start ``adc``'s conversion alone (arming its ready pin first if need be)."""
        try:
            if not adc.armed:
                if adc.pin is not None:
                    adc.driver.enable_ready_pin()
                adc.armed = True
            adc.driver.write_config(self._words[self._channel])
        except OSError as exc:
            self._bus_error(adc, t, exc)
            return
        self._started(adc, self.clock.now())

    def _take(self, adc: _Converter) -> bool:
        """Read the result of ``adc``'s conversion, which is done; False on a bus error."""
        try:
            if self._combined:
                adc.read()
                code = _unpack_code(adc.result)[0]
            else:
                code = adc.driver.read_code()
        except OSError as exc:
            self._bus_error(adc, self.clock.now(), exc)
            return False
        self._store(adc, code)
        if adc.looked:
            adc.misses = 0
            if adc.pin_episode:
                adc.pin_episode = False
                self.log.info("ADS1115 %#04x: ALERT/RDY on GPIO%d signals again",
                              adc.driver.address, adc.gpio)
        return True

    def _store(self, adc: _Converter, code: int) -> None:
        zone = adc.first_zone + self._channel
        self._codes[zone] = code
        self._ok[zone] = True
        adc.state, adc.errors = _DONE, 0
        if adc.faulted:
            adc.faulted = False
            self.log.info("ADS1115 %#04x: answering again, zones %d-%d back", adc.driver.address,
                          adc.first_zone + 1, adc.first_zone + adc.zones)

    def _pin_missed(self, adc: _Converter, t: float) -> None:
        adc.misses += 1
        adc.armed = False  # rewrite the thresholds: a reset may have cleared them unseen
        if adc.misses >= self.PIN_MISSES:
            self._pin_fault(adc, t, "never signals ready (a broken wire?)")

    def _pin_fault(self, adc: _Converter, t: float, reason: str) -> None:
        adc.pin_ok = False
        adc.next_pin_try = t + self.REINIT_S
        if not adc.pin_episode:
            adc.pin_episode = True
            self.pin_faults += 1
            self.log.warning("ADS1115 %#04x: ALERT/RDY on GPIO%d %s; polling over I2C, "
                             "trying the pin again every %g s", adc.driver.address, adc.gpio,
                             reason, self.REINIT_S)

    def _bus_error(self, adc: _Converter, t: float, exc: OSError) -> None:
        self.bus_errors += 1
        self.watch.error(exc)
        if adc.faulted:
            adc.state = _DONE  # a failed re-initialisation: try again in REINIT_S
            return
        adc.errors += 1
        if adc.errors >= 2:
            self._fault(adc, t, f"I2C error ({exc})")
        else:
            adc.due = t + self.RETRY_S

    def _fault(self, adc: _Converter, t: float, reason: str) -> None:
        adc.state, adc.errors = _DONE, 0
        adc.armed = False
        if adc.faulted:
            return
        adc.faulted = True
        adc.next_reinit = t + self.REINIT_S
        self.faults += 1
        self.log.warning("ADS1115 %#04x: %s; zones %d-%d flagged, re-initialising every %g s",
                         adc.driver.address, reason, adc.first_zone + 1,
                         adc.first_zone + adc.zones, self.REINIT_S)

    def _finish_scan(self, now: float | None = None) -> ZoneScan:
        """End the scan at loop-clock time ``now`` (s; None: read the clock)."""
        if now is None:
            now = self.clock.now()
        self._channel = -1
        self._active = []
        due = self._scan_start + self.period_s
        if self._primed_at is not None and due < self._primed_at + self.wait_s:
            due = self._primed_at + self.wait_s  # (never read before it is done)
        self.next_due = due if due > now else now
        self.scans += 1
        return ZoneScan.from_lists(now, self._codes, self._ok)


