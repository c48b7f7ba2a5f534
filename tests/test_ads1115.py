"""ADS1115 emulator (register level) and the driver's non-blocking zone scanner."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from firmware.config import AdcConfig
from firmware.drivers.ads1115 import Ads1115, config_word, conversion_time_s
from firmware.drivers.zone_scanner import ZoneScanner
from firmware.sim.ads1115 import Ads1115Sim, noise_rms_v
from firmware.sim.bus import SimBus
from firmware.sim.clock import SimClock
from firmware.sim.pins import duty_log, sim_pin_factory, wire_open_drain

ADDR = 0x48
LSB_4V = 4.096 / 32768


def make(inputs=(0.0, 0.0, 0.0, 0.0), rate_error=0.0, seed=1):
    clock = SimClock()
    bus = SimBus(1, clock=clock)
    volts = list(inputs)
    sim = Ads1115Sim(clock, lambda t: volts, np.random.default_rng(seed), rate_error=rate_error)
    bus.attach(ADDR, sim)
    return clock, bus, sim, volts


def read_reg(bus, pointer):
    msb, lsb = bus.read_i2c_block_data(ADDR, pointer, 2)
    return msb << 8 | lsb


def write_reg(bus, pointer, value):
    bus.write_i2c_block_data(ADDR, pointer, [value >> 8, value & 0xFF])


def convert(clock, bus, word):
    """Start a single-shot conversion, wait it out, return the signed code."""
    write_reg(bus, 0x01, word)
    clock.advance(conversion_time_s(860 if (word >> 5 & 7) == 7 else 8))
    while not read_reg(bus, 0x01) & 0x8000:
        clock.advance(1e-3)
    code = read_reg(bus, 0x00)
    return code - 0x10000 if code & 0x8000 else code


# -- emulator: registers ---------------------------------------------------------------
def test_register_reset_values():
    _, bus, _, _ = make()
    assert [read_reg(bus, p) for p in range(4)] == [0x0000, 0x8583, 0x8000, 0x7FFF]


def test_pointer_semantics_one_byte_sets_pointer_three_bytes_write_register():
    _, bus, _, _ = make()
    bus.write_byte(ADDR, 0x02)                     # pointer only
    assert bus.read_byte(ADDR) == 0x80             # Lo_thresh MSB, no new pointer
    bus.write_i2c_block_data(ADDR, 0x03, [0x12, 0x34])   # pointer + register
    assert bus.read_byte(ADDR) == 0x12             # pointer stays on Hi_thresh
    assert read_reg(bus, 0x03) == 0x1234
    assert read_reg(bus, 0x02) == 0x8000           # the other threshold untouched
    write_reg(bus, 0x00, 0xBEEF)                   # conversion register is read-only
    assert read_reg(bus, 0x00) == 0x0000


def test_config_fields_and_comparator_bits_are_stored():
    _, bus, _, _ = make()
    write_reg(bus, 0x01, 0x4E1F & ~0x8000 | 0x0100)   # MODE=1, OS=0: no conversion
    assert read_reg(bus, 0x01) == (0x4E1F | 0x0100 | 0x8000)  # OS reads 1: idle


# -- emulator: timing ------------------------------------------------------------------
def test_single_shot_os_reads_0_while_converting_and_1_after_start_up_plus_one_over_dr():
    clock, bus, _, _ = make([1.0, 0, 0, 0])
    write_reg(bus, 0x01, config_word(0, 4.096, 860))
    t_start = clock.now()
    assert not read_reg(bus, 0x01) & 0x8000
    read_s = (5 * 9 + 2) / 400e3                   # a register read's wire time
    clock.sleep_until(t_start + 25e-6 + 1 / 860 - 20e-6 - read_s)
    assert not read_reg(bus, 0x01) & 0x8000        # 20 us before the end: still busy
    clock.sleep_until(t_start + 25e-6 + 1 / 860 + 1e-6 - read_s)
    assert read_reg(bus, 0x01) & 0x8000


def test_rate_error_makes_conversions_slower():
    clock, bus, _, _ = make(rate_error=-0.1)
    write_reg(bus, 0x01, config_word(0, 4.096, 860))
    t_start = clock.now()
    read_s = (5 * 9 + 2) / 400e3
    clock.sleep_until(t_start + 25e-6 + 1.05 / 860 - read_s)
    assert not read_reg(bus, 0x01) & 0x8000
    clock.sleep_until(t_start + 25e-6 + 1 / (0.9 * 860))
    assert read_reg(bus, 0x01) & 0x8000


def test_conversion_register_is_stale_until_the_conversion_completes():
    clock, bus, _, volts = make([1.0, 0, 0, 0])
    first = convert(clock, bus, config_word(0, 4.096, 860))
    assert first == pytest.approx(1.0 / LSB_4V, abs=3)
    volts[0] = 2.0
    write_reg(bus, 0x01, config_word(0, 4.096, 860))
    assert read_reg(bus, 0x00) == first            # previous result while converting
    clock.advance(conversion_time_s(860))
    assert read_reg(bus, 0x00) == pytest.approx(2.0 / LSB_4V, abs=3)


def test_input_is_sampled_at_mid_conversion():
    clock = SimClock()
    bus = SimBus(1, clock=clock)
    seen = []
    bus.attach(ADDR, Ads1115Sim(clock, lambda t: seen.append(t) or [t, 0, 0, 0],
                                np.random.default_rng(0)))
    write_reg(bus, 0x01, config_word(0, 4.096, 8))
    t_start = clock.now()
    clock.advance(0.2)
    read_reg(bus, 0x00)
    assert seen == [pytest.approx(t_start + 25e-6 + 0.5 / 8)]


def test_continuous_mode_converts_back_to_back():
    clock = SimClock()
    bus = SimBus(1, clock=clock)
    bus.attach(ADDR, Ads1115Sim(clock, lambda t: [t, 0, 0, 0], np.random.default_rng(0)))
    write_reg(bus, 0x01, config_word(0, 4.096, 860) & ~0x8100)   # MODE=0, no OS
    assert not read_reg(bus, 0x01) & 0x8000        # always converting
    for k in range(1, 40):                         # a 1 V/s ramp, read at random moments
        clock.sleep_until(0.1 + 0.0137 * k)
        volts = read_reg(bus, 0x00) * LSB_4V
        age = clock.now() - volts                  # how old the sample in the register is
        assert 0.5 / 860 - 5e-4 < age < 1.5 / 860 + 5e-4


# -- emulator: conversion transfer function --------------------------------------------
def test_pga_range_clips_at_7fff_and_8000():
    clock, bus, _, _ = make([3.0, 0.0, 0, 0])
    assert convert(clock, bus, config_word(0, 2.048, 8)) == 0x7FFF
    mux_0_minus_1 = config_word(0, 2.048, 8) & ~0x7000      # MUX=000: AIN0 - AIN1
    clock2, bus2, _, _ = make([0.0, 3.0, 0, 0])
    assert convert(clock2, bus2, mux_0_minus_1) == -0x8000


def test_codes_are_quantised_to_fsr_over_32768():
    clock, bus, _, volts = make()
    for full_scale in (6.144, 4.096, 2.048, 1.024, 0.512, 0.256):
        lsb = full_scale / 32768
        volts[0] = 1000.2 * lsb                    # noise at 8 SPS << LSB
        assert convert(clock, bus, config_word(0, full_scale, 8)) == 1000


@pytest.mark.parametrize(("mux", "expected"), [
    (0b100, 0.5), (0b101, 1.0), (0b110, 1.5), (0b111, 2.0),       # AINx vs GND
    (0b000, -0.5), (0b001, -1.5), (0b010, -1.0), (0b011, -0.5),   # differential
])
def test_mux_selects_the_right_input(mux, expected):
    clock, bus, _, _ = make([0.5, 1.0, 1.5, 2.0])
    word = config_word(0, 4.096, 8) & ~0x7000 | mux << 12
    assert convert(clock, bus, word) * LSB_4V == pytest.approx(expected, abs=LSB_4V)


def test_noise_rms_at_860_sps_is_about_half_an_lsb_and_lower_at_8_sps():
    def residual_std(rate):
        clock = SimClock()
        bus = SimBus(1, clock=clock)
        rng = np.random.default_rng(7)
        sampled = []

        def inputs(t):  # dither the input across the LSB so quantisation averages out
            sampled.append(1.0 + rng.uniform(0, LSB_4V))
            return [sampled[-1], 0, 0, 0]

        bus.attach(ADDR, Ads1115Sim(clock, inputs, np.random.default_rng(3)))
        codes = [convert(clock, bus, config_word(0, 4.096, rate)) for _ in range(1500)]
        return np.std(np.array(codes) * LSB_4V - np.array(sampled))

    quantisation = LSB_4V / np.sqrt(12)
    expected_860 = np.hypot(noise_rms_v(4.096, 860), quantisation)
    assert 35e-6 < noise_rms_v(4.096, 860) < 65e-6           # datasheet: p-p ~ 2 LSB
    assert residual_std(860) == pytest.approx(expected_860, rel=0.1)
    assert residual_std(8) == pytest.approx(quantisation, rel=0.1)


# -- emulator: faults ------------------------------------------------------------------
def test_faults_nack_vanish_stick_and_reset():
    clock, bus, sim, _ = make([1.0, 0, 0, 0])
    sim.nack_for(0.01)
    with pytest.raises(OSError):
        read_reg(bus, 0x01)
    clock.advance(0.01)
    assert read_reg(bus, 0x01) == 0x8583
    sim.vanish()
    with pytest.raises(OSError):
        write_reg(bus, 0x02, 0x1234)
    sim.reappear()
    sim.stick()
    write_reg(bus, 0x01, config_word(0, 4.096, 860))
    clock.advance(0.1)
    assert not read_reg(bus, 0x01) & 0x8000
    sim.unstick()
    clock.advance(conversion_time_s(860))
    assert read_reg(bus, 0x01) & 0x8000
    write_reg(bus, 0x02, 0x1234)
    sim.spontaneous_reset()
    assert [read_reg(bus, p) for p in range(4)] == [0x0000, 0x8583, 0x8000, 0x7FFF]


# -- driver ----------------------------------------------------------------------------
def test_driver_single_shot_round_trip():
    clock, bus, _, _ = make([0.25, 0.75, 1.25, -0.5])
    adc = Ads1115(bus, ADDR)
    adc.configure_single(2, 4.096, 860)
    assert not adc.conversion_ready()
    clock.advance(adc.conversion_time_s(860))
    assert adc.conversion_ready()
    assert adc.read_code() == pytest.approx(1.25 / LSB_4V, abs=3)
    assert adc.conversion_time_s(860) == pytest.approx(25e-6 + 1 / (0.9 * 860))


def test_driver_decodes_negative_codes():
    clock, bus, _, _ = make([0.0, 1.0, 0, 0])
    adc = Ads1115(bus, ADDR)
    adc.write_config(config_word(0, 4.096, 860) & ~0x7000)   # AIN0 - AIN1
    clock.advance(conversion_time_s(860))
    assert adc.read_code() == pytest.approx(-1.0 / LSB_4V, abs=3)


# -- scanner ---------------------------------------------------------------------------
ZONE_VOLTS = [0.1, 0.4, 0.8, 1.2, 1.6, 2.0, 2.5, 3.2]


class CountingBus:
    """Wraps a bus, counts calls (and messages) per address, can fail the next n calls."""

    def __init__(self, bus):
        self.bus = bus
        self.calls = 0
        self.fail_next = 0
        self.before = None      # hook(name, addr, register) called before each call
        self.after = None       # hook(name, addr, register) called after each call

    def _call(self, name, addr, *args):
        self.calls += 1
        if self.before:
            self.before(name, addr, args[0])
        if self.fail_next:
            self.fail_next -= 1
            raise OSError(121, "Remote I/O error")
        result = getattr(self.bus, name)(addr, *args)
        if self.after:
            self.after(name, addr, args[0])
        return result

    def write_i2c_block_data(self, addr, reg, data, force=None):
        return self._call("write_i2c_block_data", addr, reg, data)

    def read_i2c_block_data(self, addr, reg, length, force=None):
        return self._call("read_i2c_block_data", addr, reg, length)


class CombinedCountingBus(CountingBus):
    """A CountingBus with smbus2's combined transactions (each one call)."""

    def i2c_rdwr(self, *msgs):
        self.calls += 1
        if self.before:
            self.before("i2c_rdwr", msgs[0].addr, None)
        if self.fail_next:
            self.fail_next -= 1
            raise OSError(121, "Remote I/O error")
        self.bus.i2c_rdwr(*msgs)
        if self.after:
            for msg in msgs:
                if not msg.flags & 1 and msg.len == 3:   # a register write: pointer first
                    self.after("i2c_rdwr", msg.addr, bytes(msg)[0])


READY_PINS = (22, 23)


def rig(rate_error=0.0, scan_rate_hz=50.0, pins=False):
    clock = SimClock()
    bus = SimBus(1, clock=clock)
    factory = sim_pin_factory(clock)
    sims, lines = [], []
    for i, address in enumerate((0x48, 0x49)):
        volts = ZONE_VOLTS[4 * i:4 * i + 4]
        sim = Ads1115Sim(clock, lambda t, v=volts: v, np.random.default_rng(i),
                         rate_error=rate_error)
        bus.attach(address, sim)
        sims.append(sim)
        if pins:
            lines.append(wire_open_drain(factory, READY_PINS[i], sim.alert_changes))
    counting = (CombinedCountingBus if pins else CountingBus)(bus)
    config = AdcConfig(scan_rate_hz=scan_rate_hz)
    scanner = ZoneScanner(counting, config, 8, clock, logging.getLogger("test.adc"),
                          READY_PINS if pins else (), factory)
    scanner.lines = lines
    scanner.pin_factory = factory
    return clock, counting, sims, scanner


def run(clock, scanner, until):
    """Service the scanner until the first scan completed at or after ``until``."""
    scans = []
    while True:
        assert clock.now() < until + 1.0, "no scan completes"
        clock.sleep_until(scanner.next_due)
        scan = scanner.service(clock.now())
        if scan is not None:
            scans.append(scan)
            if scan.t >= until:
                return scans


def expected_codes():
    return np.round(np.array(ZONE_VOLTS) / LSB_4V)


@pytest.mark.parametrize("pins", [False, True], ids=["i2c-poll", "ready-pins"])
def test_scanner_scans_at_the_configured_rate_with_the_right_codes(pins):
    clock, _, _, scanner = rig(pins=pins)
    scans = run(clock, scanner, 2.0)
    assert len(scans) == pytest.approx(100, abs=1)
    # the first scan also sets the pins up
    gaps = np.diff([s.t for s in scans[1:]])
    if pins:
        # Scans start every 20 ms; a pipelined one (its first channel started by the scan
        # before) ends a conversion sooner after its start than one that starts its
        # first channel itself (the second scan, and once a second a ready pin's check)
        assert np.median(gaps) == pytest.approx(0.02, abs=1e-6)
        assert np.mean(np.abs(gaps - 0.02) < 1e-6) > 0.9
        assert np.abs(gaps - 0.02).max() < 1.5 * conversion_time_s(860)
    else:
        assert np.allclose(gaps, 0.02, atol=1e-6)
    for scan in scans:
        assert scan.raw.dtype == np.int16 and scan.raw.shape == (8,)
        assert scan.ok.all()
        assert np.abs(scan.raw - expected_codes()).max() <= 3
    assert scanner.scans == len(scans) and scanner.faults == scanner.bus_errors == 0


@pytest.mark.parametrize("pins", [False, True], ids=["i2c-poll", "ready-pins"])
def test_scanner_starts_at_once_when_late(pins):
    clock, _, _, scanner = rig(scan_rate_hz=200.0, pins=pins)   # a scan takes longer than 5 ms
    scans = run(clock, scanner, 1.0)
    gaps = np.diff([s.t for s in scans])[1:]  # (with pins, the first is not yet pipelined)
    scan_s = gaps.min()
    assert 0.005 < scan_s < 0.01 and np.allclose(gaps, scan_s, rtol=0.05)


def test_scanner_uses_three_bus_calls_per_conversion_even_with_a_slow_adc_clock():
    clock, counting, _, scanner = rig(rate_error=-0.1)
    run(clock, scanner, 0.1)
    calls, scans = counting.calls, scanner.scans
    run(clock, scanner, 0.5)
    assert counting.calls - calls == 3 * 8 * (scanner.scans - scans)


@pytest.mark.parametrize("pins", [False, True], ids=["i2c-poll", "ready-pins"])
def test_scanner_retries_one_failed_transaction_without_a_fault(pins):
    clock, counting, _, scanner = rig(pins=pins)
    run(clock, scanner, 0.1)
    counting.fail_next = 1
    scans = run(clock, scanner, 0.3)
    assert scanner.bus_errors == 1 and scanner.faults == 0
    assert all(s.ok.all() for s in scans)


@pytest.mark.parametrize("pins", [False, True], ids=["i2c-poll", "ready-pins"])
def test_scanner_flags_zones_of_a_nacking_adc_then_recovers(caplog, pins):
    clock, _, sims, scanner = rig(pins=pins)
    before = run(clock, scanner, 0.2)[-1]
    with caplog.at_level(logging.WARNING, logger="test.adc"):
        sims[1].nack_for(0.05)
        during = run(clock, scanner, 0.9)
    assert scanner.faults == 1
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert "0x49" in caplog.text
    flagged = [s for s in during if not s.ok[4:].any()]
    assert len(flagged) > 30                       # held out until re-initialisation
    for scan in flagged:
        assert scan.ok[:4].all()
        assert (scan.raw[4:] == before.raw[4:]).all()   # last good codes held
    assert all(s.ok[4:].all() == s.ok[4:].any() for s in during)
    after = run(clock, scanner, 1.5)
    assert after[-1].ok.all()
    assert scanner.faults == 1


@pytest.mark.parametrize("pins", [False, True], ids=["i2c-poll", "ready-pins"])
def test_scanner_survives_a_vanished_adc_and_retries_every_second(caplog, pins):
    clock, _, sims, scanner = rig(pins=pins)
    run(clock, scanner, 0.1)
    with caplog.at_level(logging.WARNING, logger="test.adc"):
        sims[0].vanish()
        t0 = clock.now()
        errors0 = scanner.bus_errors
        scans = run(clock, scanner, t0 + 3.5)
    assert not any(s.ok[:4].any() for s in scans)
    assert all(s.ok[4:].all() for s in scans)
    assert scanner.faulted_addresses == [0x48]
    # two failures to fault (with ready pins the scan under way had started both ADCs
    # before the one vanished: pipelined), then one re-initialisation attempt per second
    assert scanner.bus_errors - errors0 == 2 + 3
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    sims[0].reappear()
    scans = run(clock, scanner, clock.now() + 1.1)
    assert scans[-1].ok.all() and scanner.faulted_addresses == []


@pytest.mark.parametrize("pins", [False, True], ids=["i2c-poll", "ready-pins"])
def test_scanner_detects_a_stuck_conversion(caplog, pins):
    clock, _, sims, scanner = rig(pins=pins)
    run(clock, scanner, 0.1)
    with caplog.at_level(logging.WARNING, logger="test.adc"):
        sims[1].stick()
        scans = run(clock, scanner, 2.5)
    assert scanner.faults == 1 and "stuck" in caplog.text
    assert not scans[-1].ok[4:].any() and scans[-1].ok[:4].all()
    gaps = np.diff([s.t for s in scans])
    assert gaps.max() < 0.03                        # a stuck ADC does not stall the scans
    sims[1].unstick()
    scans = run(clock, scanner, 3.6)
    assert scans[-1].ok.all() and scanner.faults == 1


def test_spontaneous_reset_is_harmless():
    clock, counting, sims, scanner = rig()
    run(clock, scanner, 0.1)
    sims[0].spontaneous_reset()                     # between scans
    scans = run(clock, scanner, 0.2)
    assert scanner.resets == 0

    def reset_during_conversion(name, addr, register):   # just before a poll of 0x49
        if addr == 0x49 and register == 0x01 and name.startswith("read"):
            counting.before = None
            sims[1].spontaneous_reset()

    counting.before = reset_during_conversion
    scans += run(clock, scanner, 0.4)
    assert scanner.resets == 1 and scanner.faults == 0
    for scan in scans:
        assert scan.ok.all()
        assert np.abs(scan.raw - expected_codes()).max() <= 3


# -- emulator: thresholds, comparator and ALERT/RDY ------------------------------------
def alert_low(sim):
    return sim.alert_output()[0]


def test_alert_rdy_is_released_until_set_up_and_after_a_reset():
    clock, bus, sim, _ = make([1.0, 0, 0, 0])
    assert not alert_low(sim)                        # COMP_QUE = 11 at reset: high-Z
    convert(clock, bus, config_word(0, 4.096, 860))  # comparator still off
    assert not alert_low(sim)
    write_reg(bus, 0x02, 0x0000)
    write_reg(bus, 0x03, 0x8000)
    write_reg(bus, 0x01, config_word(0, 4.096, 860, ready_pin=True) & ~0x8000)  # no start
    assert alert_low(sim)                            # ready mode, idle: OS = 1 -> asserted
    sim.spontaneous_reset()
    assert not alert_low(sim)


def test_conversion_ready_in_single_shot_mode_is_the_os_bit_active_low():
    clock, bus, sim, _ = make([1.0, 0, 0, 0])
    write_reg(bus, 0x02, 0x0000)
    write_reg(bus, 0x03, 0x8000)
    word = config_word(0, 4.096, 860, ready_pin=True)
    write_reg(bus, 0x01, word)
    t_start = clock.now()
    assert not alert_low(sim)                        # converting: released
    end = t_start + 25e-6 + 1 / 860
    clock.sleep_until(end - 1e-6)
    assert not alert_low(sim)
    clock.sleep_until(end + 50e-6)
    assert sim.alert_output() == (True, pytest.approx(end))  # asserted at the end
    assert read_reg(bus, 0x00) == pytest.approx(1.0 / LSB_4V, abs=3)
    assert alert_low(sim)                            # a read does not clear it...
    write_reg(bus, 0x01, word)
    assert not alert_low(sim)                        # ...the next conversion does
    write_reg(bus, 0x01, (word | 0x0008) & ~0x8000)  # COMP_POL = 1: active high
    clock.advance(conversion_time_s(860))
    assert not alert_low(sim)                        # done: released = high = asserted


def test_conversion_ready_in_continuous_mode_pulses_for_8_us():
    clock, bus, sim, _ = make([1.0, 0, 0, 0])
    write_reg(bus, 0x02, 0x0000)
    write_reg(bus, 0x03, 0x8000)
    write_reg(bus, 0x01, config_word(0, 4.096, 860, ready_pin=True) & ~0x8100)  # MODE = 0
    t0 = clock.now()
    first_end = t0 + 25e-6 + 1 / 860
    clock.sleep_until(first_end + 3e-6)
    assert sim.alert_output() == (True, pytest.approx(first_end))
    clock.sleep_until(first_end + 20e-6)
    assert sim.alert_output() == (False, pytest.approx(first_end + 8e-6))
    clock.sleep_until(first_end + 1 / 860 + 4e-6)    # the next conversion's pulse
    assert alert_low(sim)


def comparator(bus, config_bits, lo, hi):
    write_reg(bus, 0x02, lo & 0xFFFF)
    write_reg(bus, 0x03, hi & 0xFFFF)
    return config_word(0, 4.096, 8) & ~0x001F | config_bits


def test_traditional_comparator_asserts_above_hi_and_deasserts_below_lo():
    clock, bus, sim, volts = make([0.5, 0, 0, 0])
    word = comparator(bus, 0b00000, lo=round(1.0 / LSB_4V), hi=round(2.0 / LSB_4V))
    levels = []
    for v in (0.5, 2.5, 1.5, 0.5, 1.5):              # below, above, between, below, between
        volts[0] = v
        convert(clock, bus, word)
        levels.append(alert_low(sim))
    assert levels == [False, True, True, False, False]


def test_window_comparator_latch_and_queue():
    clock, bus, sim, volts = make([1.5, 0, 0, 0])
    lo, hi = round(1.0 / LSB_4V), round(2.0 / LSB_4V)
    word = comparator(bus, 0b10000, lo, hi)          # window, not latching, queue 1
    levels = []
    for v in (1.5, 0.5, 1.5, 2.5, 1.5):
        volts[0] = v
        convert(clock, bus, word)
        levels.append(alert_low(sim))
    assert levels == [False, True, False, True, False]
    word = comparator(bus, 0b10101, lo, hi)          # window, latching, assert after 2
    levels = []
    for v in (2.5, 1.5, 2.5, 2.5, 1.5):
        volts[0] = v
        write_reg(bus, 0x01, word)
        clock.advance(0.2)
        levels.append(alert_low(sim))                # judged without reading the result
    assert levels == [False, False, False, True, True]   # two in a row; then it holds
    read_reg(bus, 0x00)                              # reading the conversion clears it
    assert not alert_low(sim)


def test_comparator_polarity_active_high_releases_when_asserted():
    clock, bus, sim, volts = make([2.5, 0, 0, 0])
    word = comparator(bus, 0b01000, lo=round(1.0 / LSB_4V), hi=round(2.0 / LSB_4V))
    convert(clock, bus, word)
    assert not alert_low(sim)                        # asserted, active high: released
    volts[0] = 0.5
    convert(clock, bus, word)
    assert alert_low(sim)                            # deasserted: pulled low


# -- scanner with ALERT/RDY pins -------------------------------------------------------
def test_ready_pins_and_the_pipeline_give_8_transactions_4_wake_ups_a_scan_with_a_slow_adc():
    # Pipelined: the step that reads a scan's last channel starts the next scan's first.
    clock, counting, _, scanner = rig(rate_error=-0.1, pins=True)
    run(clock, scanner, 0.1)
    calls, scans = counting.calls, scanner.scans
    wake_ups = 0
    while clock.now() < 0.5 or scanner._channel >= 0:
        clock.sleep_until(scanner.next_due)
        scanner.service(clock.now())
        wake_ups += 1
    scans = scanner.scans - scans
    assert scans == 20
    assert counting.calls - calls == 8 * scans
    assert wake_ups == 4 * scans
    assert scanner.pin_faults == scanner.resets == scanner.bus_errors == 0


def fresh_reads(clock, sim):
    """Wrap ``sim``'s reads: the list it returns gets the part's conversion count at each
    read of its conversion register."""
    counts = []
    read = sim.i2c_read

    def i2c_read(n):
        data = read(n)
        if sim._pointer == 0:  # the conversion register
            counts.append(sim.conversions)
        return data

    sim.i2c_read = i2c_read
    return counts


@pytest.mark.parametrize("scan_rate_hz", [50.0, 200.0])  # 200: scans back to back
def test_a_pipelined_first_channel_is_never_read_before_its_conversion_is_done(scan_rate_hz):
    # ADCs 10 % slow (the datasheet's spread). The emulated part gives an early read the
    # result before (stale): every read of a conversion register must find exactly one
    # conversion more than the read before it, and every zone its own code.
    clock, counting, sims, scanner = rig(rate_error=-0.1, scan_rate_hz=scan_rate_hz,
                                         pins=True)
    counts = [fresh_reads(clock, sim) for sim in sims]
    scans = run(clock, scanner, 0.5)
    assert scanner.scans > 0.4 * min(scan_rate_hz, 140.0)
    assert scanner.resets == scanner.bus_errors == 0
    assert scanner._primed_at is not None  # pipelined
    for c in counts:
        assert len(c) == 4 * scanner.scans and np.all(np.diff(c) == 1)
    assert all(s.ok.all() and np.abs(s.raw - expected_codes()).max() <= 3 for s in scans)


def test_a_combined_transaction_never_reads_before_its_last_message():
    clock, counting, _, scanner = rig(pins=True)
    assert counting.bus.reads_last_only   # SimBus refuses it as i2c-bcm2835 does
    scans = run(clock, scanner, 0.5)
    assert scanner.bus_errors == 0 and all(s.ok.all() for s in scans)


def test_a_cut_ready_wire_is_a_logged_fault_polled_over_i2c_and_tried_again(caplog):
    clock, counting, _, scanner = rig(pins=True)
    run(clock, scanner, 0.2)
    with caplog.at_level(logging.INFO, logger="test.adc"):
        scanner.lines[0].cut(clock.now())
        scans = run(clock, scanner, 2.5)
        assert scanner.faulted_pins == [22] and scanner.pin_faults == 1
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "GPIO22" in warnings[0].getMessage()
        assert all(s.ok.all() for s in scans)                  # no zone lost, none stalled
        assert all(np.abs(s.raw - expected_codes()).max() <= 3 for s in scans)
        # (a scan that starts its first channel itself ends a conversion later)
        assert np.diff([s.t for s in scans]).max() < 0.02 + 1.5 * conversion_time_s(860)
        calls, n = counting.calls, scanner.scans
        run(clock, scanner, 3.5)
        per_scan = (counting.calls - calls) / (scanner.scans - n)
        # 0x48 polled over I2C (config, then result), 0x49 read, both started together;
        # and one try of the pin (thresholds and config written alone) in that second
        assert 16 <= per_scan < 16.2
        scanner.lines[0].mend(clock.now())
        run(clock, scanner, 5.0)    # tried again within REINIT_S
    assert scanner.faulted_pins == [] and scanner.pin_faults == 1
    assert "signals again" in caplog.text
    calls, n = counting.calls, scanner.scans
    run(clock, scanner, 5.5)
    # 8 a scan; each ready pin's check (once a second, in the general steps) costs 2 more:
    # the scan before it starts no next one, the checked one cannot start the next either
    assert 0 <= counting.calls - calls - 8 * (scanner.scans - n) <= 2 * 2


def test_a_shorted_ready_line_is_caught_while_its_adc_converts(caplog):
    clock, _, sims, scanner = rig(pins=True)
    run(clock, scanner, 0.2)
    with caplog.at_level(logging.WARNING, logger="test.adc"):
        scanner.lines[1].short(clock.now())
        sims[1].stick()             # would go unseen if the pin were believed
        scans = run(clock, scanner, 1.5)
    assert scanner.faulted_pins == [23] and "while converting" in caplog.text
    assert scanner.faults == 1 and "stuck" in caplog.text
    assert not scans[-1].ok[4:].any() and scans[-1].ok[:4].all()


def test_a_reset_during_a_conversion_costs_that_conversion_only():
    clock, counting, sims, scanner = rig(pins=True)
    run(clock, scanner, 0.1)

    def reset_after_a_start(name, addr, register):
        if addr == 0x49 and register == 0x01:
            counting.after = None
            sims[1].spontaneous_reset()

    counting.after = reset_after_a_start
    scans = run(clock, scanner, 0.4)
    assert counting.after is None
    assert scanner.resets == 1 and scanner.faults == scanner.pin_faults == 0
    for scan in scans:
        assert scan.ok.all()
        assert np.abs(scan.raw - expected_codes()).max() <= 3
    calls, n = counting.calls, scanner.scans
    run(clock, scanner, 0.6)
    assert counting.calls - calls == 8 * (scanner.scans - n)  # thresholds back: pins again


def test_a_reset_between_scans_rearms_the_pin_without_a_fault():
    # Between scans the next scan's first conversion waits (pipelined): a reset loses it
    # (counted), its pin reads busy, the general steps convert it again in the same scan.
    clock, counting, sims, scanner = rig(pins=True)
    run(clock, scanner, 0.1)
    assert scanner._primed_at is not None
    sims[0].spontaneous_reset()     # thresholds lost with nobody looking
    scans = run(clock, scanner, 0.3)
    assert scanner.pin_faults == scanner.faults == 0 and scanner.resets == 1
    assert all(s.ok.all() for s in scans)
    assert all(np.abs(s.raw - expected_codes()).max() <= 3 for s in scans)
    calls, n = counting.calls, scanner.scans
    run(clock, scanner, 0.5)
    assert counting.calls - calls == 8 * (scanner.scans - n)


def test_ready_line_log_shows_each_conversion_on_virtual_time():
    clock, _, _, scanner = rig(pins=True)
    run(clock, scanner, 0.2)
    log = [(t, level) for t, level in duty_log(scanner.pin_factory, 22) if 0.099 <= t < 0.199]
    assert [level for _, level in log] == [1.0, 0.0] * 20   # 5 scans of 4 conversions
    starts = np.array([t for t, _ in log[0::2]])
    busy = np.array([t for t, _ in log[1::2]]) - starts
    assert busy == pytest.approx(25e-6 + 1 / 860, abs=1e-9)  # released while converting
    # each scan (due at 0.10, 0.12, ...) reads its first channel, started by the scan
    # before, and starts the next at once; the four conversions follow one another, the
    # last of them the next scan's first channel
    assert starts[0::4] - [0.10, 0.12, 0.14, 0.16, 0.18] == pytest.approx(0.0, abs=2e-4)
    within = np.diff(starts.reshape(5, 4), axis=1)
    assert ((within > busy[0]) & (within < 2 * busy[0])).all()
