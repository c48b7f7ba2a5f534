"""ADS1115 emulator (register level) and the driver's non-blocking zone scanner."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from firmware.config import AdcConfig
from firmware.drivers.ads1115 import Ads1115, ZoneScanner, config_word, conversion_time_s
from firmware.sim.ads1115 import Ads1115Sim, noise_rms_v
from firmware.sim.bus import SimBus
from firmware.sim.clock import SimClock

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
    """Wraps a bus, counts calls per address, can fail the next n calls."""

    def __init__(self, bus):
        self.bus = bus
        self.calls = 0
        self.fail_next = 0
        self.before = None      # hook(name, addr, register) called before each call

    def _call(self, name, addr, *args):
        self.calls += 1
        if self.before:
            self.before(name, addr, args[0])
        if self.fail_next:
            self.fail_next -= 1
            raise OSError(121, "Remote I/O error")
        return getattr(self.bus, name)(addr, *args)

    def write_i2c_block_data(self, addr, reg, data, force=None):
        return self._call("write_i2c_block_data", addr, reg, data)

    def read_i2c_block_data(self, addr, reg, length, force=None):
        return self._call("read_i2c_block_data", addr, reg, length)


def rig(rate_error=0.0, scan_rate_hz=50.0):
    clock = SimClock()
    bus = SimBus(1, clock=clock)
    sims = []
    for i, address in enumerate((0x48, 0x49)):
        volts = ZONE_VOLTS[4 * i:4 * i + 4]
        sim = Ads1115Sim(clock, lambda t, v=volts: v, np.random.default_rng(i),
                         rate_error=rate_error)
        bus.attach(address, sim)
        sims.append(sim)
    counting = CountingBus(bus)
    config = AdcConfig(scan_rate_hz=scan_rate_hz)
    scanner = ZoneScanner(counting, config, 8, clock, logging.getLogger("test.adc"))
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


def test_scanner_scans_at_the_configured_rate_with_the_right_codes():
    clock, _, _, scanner = rig()
    scans = run(clock, scanner, 2.0)
    assert len(scans) == pytest.approx(100, abs=1)
    starts = np.diff([s.t for s in scans])
    assert np.allclose(starts, 0.02, atol=1e-6)
    for scan in scans:
        assert scan.raw.dtype == np.int16 and scan.raw.shape == (8,)
        assert scan.ok.all()
        assert np.abs(scan.raw - expected_codes()).max() <= 3
    assert scanner.scans == len(scans) and scanner.faults == scanner.bus_errors == 0


def test_scanner_starts_at_once_when_late():
    clock, _, _, scanner = rig(scan_rate_hz=200.0)   # a scan takes longer than 5 ms
    scans = run(clock, scanner, 1.0)
    gaps = np.diff([s.t for s in scans])
    scan_s = gaps.min()
    assert 0.005 < scan_s < 0.01 and np.allclose(gaps, scan_s, rtol=0.05)


def test_scanner_uses_three_bus_calls_per_conversion_even_with_a_slow_adc_clock():
    clock, counting, _, scanner = rig(rate_error=-0.1)
    run(clock, scanner, 0.1)
    calls, scans = counting.calls, scanner.scans
    run(clock, scanner, 0.5)
    assert counting.calls - calls == 3 * 8 * (scanner.scans - scans)


def test_scanner_retries_one_failed_transaction_without_a_fault():
    clock, counting, _, scanner = rig()
    run(clock, scanner, 0.1)
    counting.fail_next = 1
    scans = run(clock, scanner, 0.3)
    assert scanner.bus_errors == 1 and scanner.faults == 0
    assert all(s.ok.all() for s in scans)


def test_scanner_flags_zones_of_a_nacking_adc_then_recovers(caplog):
    clock, _, sims, scanner = rig()
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


def test_scanner_survives_a_vanished_adc_and_retries_every_second(caplog):
    clock, _, sims, scanner = rig()
    run(clock, scanner, 0.1)
    with caplog.at_level(logging.WARNING, logger="test.adc"):
        sims[0].vanish()
        t0 = clock.now()
        errors0 = scanner.bus_errors
        scans = run(clock, scanner, t0 + 3.5)
    assert not any(s.ok[:4].any() for s in scans)
    assert all(s.ok[4:].all() for s in scans)
    assert scanner.faulted_addresses == [0x48]
    # two failures to fault, then one re-initialisation attempt per second
    assert scanner.bus_errors - errors0 == 2 + 3
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    sims[0].reappear()
    scans = run(clock, scanner, clock.now() + 1.1)
    assert scans[-1].ok.all() and scanner.faulted_addresses == []


def test_scanner_detects_a_stuck_conversion(caplog):
    clock, _, sims, scanner = rig()
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
