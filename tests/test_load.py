"""Zone loads from FSR divider codes, against the simulated strip's physics."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.config import AdcConfig, ZonesConfig
from firmware.drivers.zone_scanner import ZoneScanner
from firmware.sensing.load import CREEP_PER_DECADE, FsrCreep, ZoneLoads
from firmware.sim.ads1115 import Ads1115Sim
from firmware.sim.bus import SimBus
from firmware.sim.clock import SimClock
from firmware.sim.strip import THRESHOLD_N, FsrStrip, dead_patches

FSR_V = 4.096
LSB = FSR_V / 32768
ZONES = ZonesConfig(sensitivity_s_per_n=[2.0e-4, 1.5e-4, 2.5e-4, 1.0e-4,
                                         3.0e-4, 2.0e-4, 1.2e-4, 1.8e-4])


def ideal_strip(zones=ZONES):
    return FsrStrip.calibrated(zones, hysteresis=0.0, creep_per_decade=0.0)


def quantise(volts):
    return np.round(np.asarray(volts) / LSB).astype(np.int16)


def force_per_volt(zones, band, volts):
    """dF/dV of the divider inverse at ``volts``, N/V (independent of the code under test)."""
    vs, r, s = zones.supply_v, zones.divider_resistor_ohm, zones.sensitivity_s_per_n[band]
    return vs / (r * s * (vs - volts) ** 2)


def both_patches(loads):
    loads = np.asarray(loads, dtype=float)
    return np.stack([loads, loads], axis=1)


# -- round trip ------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(force=st.floats(0.5, 80.0), band=st.integers(0, 7))
def test_round_trip_force_to_code_to_force_within_quantisation(force, band):
    loads = np.full(ZONES.count, 10.0)
    loads[band] = force
    volts = ideal_strip().voltages(0.0, both_patches(loads))
    estimate = ZoneLoads(ZONES, FSR_V).forces(quantise(volts))
    tolerance = 0.5 * LSB * force_per_volt(ZONES, band, volts[band] + 0.5 * LSB) + 1e-9
    assert estimate[band] == pytest.approx(force, abs=tolerance)


def test_round_trip_through_the_emulated_adcs_and_scanner():
    loads = np.array([0.5, 2.0, 5.0, 10.0, 20.0, 40.0, 60.0, 80.0])
    strip = ideal_strip()
    clock = SimClock()
    bus = SimBus(1, clock=clock)
    for i, address in enumerate((0x48, 0x49)):
        bands = range(4 * i, 4 * i + 4)
        bus.attach(address, Ads1115Sim(
            clock, lambda t, b=bands: [strip.band_voltage(k, t, (loads[k], loads[k])) for k in b],
            np.random.default_rng(i)))
    scanner = ZoneScanner(bus, AdcConfig(full_scale_v=FSR_V), ZONES.count, clock)
    scan = None
    while scan is None:
        clock.sleep_until(scanner.next_due)
        scan = scanner.service(clock.now())
    assert scan.ok.all()
    estimate = ZoneLoads(ZONES, FSR_V).forces(scan.raw)
    volts = strip.voltages(clock.now(), both_patches(loads))
    for band, force in enumerate(loads):   # 3 LSB: quantisation plus ~8 sigma of noise
        tolerance = 3 * LSB * force_per_volt(ZONES, band, volts[band] + 3 * LSB)
        assert estimate[band] == pytest.approx(force, abs=tolerance)


def test_below_threshold_reads_zero_and_negative_codes_clip_to_zero():
    strip = ideal_strip()
    volts = strip.voltages(0.0, both_patches(np.full(8, THRESHOLD_N * 0.9)))
    assert (volts == 0).all()
    forces = ZoneLoads(ZONES, FSR_V).forces(np.array([-5, 0, 0, 0, 0, 0, 0, -32768]))
    assert (forces == 0).all()


def test_saturated_codes_read_the_max_measurable_force():
    loads = ZoneLoads(ZONES, FSR_V)
    near_supply = int((ZONES.supply_v - 0.005) / LSB)
    forces = loads.forces(np.array([near_supply, 32767, 0, 0, 0, 0, 0, 0]))
    assert forces[:2] == pytest.approx(loads.max_force_n[:2])
    assert loads.max_force_n.min() > 200.0          # well above any body load per zone
    small_range = ZoneLoads(ZONES, 2.048)           # PGA below the supply: clips at 2.048 V
    assert small_range.forces(np.full(8, 32767)) == pytest.approx(small_range.max_force_n)


def test_total_sums_the_zones():
    assert ZoneLoads.total(np.array([1.0, 2.5, 0.0, 4.0])) == pytest.approx(7.5)


# -- dead arc --------------------------------------------------------------------------
SEAM = math.radians(ZONES.seam_angle_deg)
HALF_ARC = math.radians(ZONES.dead_arc_deg) / 2


@pytest.mark.parametrize(("angle", "dead"), [
    (SEAM, (True, False)),
    (SEAM + 0.9 * HALF_ARC, (True, False)),
    (SEAM - 0.9 * HALF_ARC + 4 * math.pi, (True, False)),     # wraps around
    (SEAM + math.pi, (False, True)),                           # bottom patch on the seam
    (SEAM - math.pi - 0.9 * HALF_ARC, (False, True)),
    (SEAM + 1.1 * HALF_ARC, (False, False)),
    (SEAM + math.pi / 2, (False, False)),
])
def test_dead_arc_compensation_doubles_the_live_patch(angle, dead):
    assert dead_patches(angle, ZONES.seam_angle_deg, ZONES.dead_arc_deg) == dead
    strip = ideal_strip()
    loads = np.linspace(5.0, 40.0, 8)
    volts = strip.voltages(0.0, strip.patch_forces(loads, angle))
    zone_loads = ZoneLoads(ZONES, FSR_V)
    assert zone_loads.dead_patches(angle) == dead
    estimate = zone_loads.forces(quantise(volts), roll_angle_rad=angle)
    assert estimate == pytest.approx(loads, rel=2e-3)
    uncompensated = zone_loads.forces(quantise(volts))
    assert uncompensated == pytest.approx(loads / 2 if any(dead) else loads, rel=2e-3)


# -- strip flaws -----------------------------------------------------------------------
def equivalent_force(strip, band, t, force):
    """What the strip reads as force (its conductance / true sensitivity), N."""
    return strip.band_conductance(band, t, (force, force)) / strip.sensitivity_s_per_n[band]


def test_hysteresis_reads_about_10_percent_higher_on_unloading():
    strip = FsrStrip.calibrated(ZONES, hysteresis=0.10, creep_per_decade=0.0)
    up = {f: equivalent_force(strip, 0, 0.0, f) for f in np.arange(0.0, 61.0, 1.0)}
    down = {f: equivalent_force(strip, 0, 0.0, f) for f in np.arange(60.0, 19.0, -1.0)}
    for force in (30.0, 40.0, 50.0):
        assert up[force] == pytest.approx(force)
        assert down[force] / up[force] == pytest.approx(1.10, abs=0.01)
    assert down[60.0] == pytest.approx(60.0)        # the branches meet at the turning point
    assert equivalent_force(strip, 0, 0.0, 0.0) == 0.0   # unloaded: back to zero


def test_creep_grows_under_held_load_by_less_than_5_percent_per_decade():
    strip = FsrStrip.calibrated(ZONES, hysteresis=0.0, creep_per_decade=0.04)
    readings = {t: equivalent_force(strip, 3, t, 40.0) for t in (0.0, 1.0, 10.0, 100.0, 1000.0)}
    assert readings[0.0] == pytest.approx(40.0)
    for t in (10.0, 100.0):
        per_decade = readings[10 * t] / readings[t] - 1
        assert 0.02 < per_decade < 0.05
    assert equivalent_force(strip, 3, 1001.0, 0.0) == 0.0
    assert equivalent_force(strip, 3, 1002.0, 40.0) == pytest.approx(40.0)   # reset by unload


def test_part_to_part_spread_is_about_6_percent():
    ratios = np.concatenate([
        FsrStrip(ZONES, np.random.default_rng(seed)).sensitivity_s_per_n
        / ZONES.sensitivity_s_per_n for seed in range(200)])
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.01)
    assert np.std(ratios) == pytest.approx(0.06, abs=0.005)
    assert (FsrStrip.calibrated(ZONES).sensitivity_s_per_n == ZONES.sensitivity_s_per_n).all()


# -- creep compensation ----------------------------------------------------------------
AWAY = SEAM + math.pi / 2  # both patches well off the seam


def read_through(strip, creep, loads, t, angle=AWAY, tare=None, weight=0.0):
    """One scan at time t (s): the strip's codes for body loads per band (N) at the roll
    angle (rad), the roller's ``weight`` per band (N) on the bottom patch, through
    ``ZoneLoads`` and then ``FsrCreep`` (None: not undone), N."""
    patches = strip.patch_forces(loads, angle)
    patches[:, 1] += weight * (not ZoneLoads(ZONES, FSR_V).dead_patches(angle)[1])
    volts = strip.voltages(t, patches)
    zone_loads = ZoneLoads(ZONES, FSR_V)
    readings = zone_loads.forces_list(quantise(volts).tolist(), any(zone_loads.dead_patches(angle)))
    if creep is None:
        return np.array(readings)
    tare = [0.0] * ZONES.count if tare is None else tare
    return np.array(creep.undo_list(readings, tare, t, zone_loads.dead_patches(angle)))


LOADS = np.linspace(8.0, 60.0, 8)


@pytest.mark.parametrize("strip_creep", [0.0, 0.02, CREEP_PER_DECADE, 0.05])
def test_creep_compensation_over_a_half_hour_held_load(strip_creep):
    """Within the data sheet's range (< 5 % a decade) the compensated reading is off by
    at most the difference of the coefficients (exact when they agree), and never by
    more than half of the uncompensated worst (5 % a decade)."""
    strip = FsrStrip.calibrated(ZONES, hysteresis=0.0, creep_per_decade=strip_creep)
    raw_strip = FsrStrip.calibrated(ZONES, hysteresis=0.0, creep_per_decade=strip_creep)
    creep = FsrCreep(ZONES.count)
    for t in np.arange(0.0, 1801.0, 5.0):
        compensated = read_through(strip, creep, LOADS, t)
        raw = read_through(raw_strip, None, LOADS, t)
    decades = math.log10(1.0 + 1800.0)
    assert raw / LOADS - 1 == pytest.approx(strip_creep * decades, abs=2e-3)
    expected = (1 + strip_creep * decades) / (1 + CREEP_PER_DECADE * decades) - 1
    assert compensated / LOADS - 1 == pytest.approx(expected, abs=2e-3)
    assert np.max(np.abs(compensated / LOADS - 1)) <= 0.5 * 0.05 * decades + 2e-3


def test_creep_compensation_restarts_a_patch_that_crosses_the_seam():
    """The patch on the dead arc carries nothing, so its creep starts again (the
    emulated strip's, ``firmware.sim.strip``); the other keeps its own."""
    strip = FsrStrip.calibrated(ZONES, hysteresis=0.0, creep_per_decade=CREEP_PER_DECADE)
    creep = FsrCreep(ZONES.count)
    for t in np.arange(0.0, 600.0, 5.0):
        read_through(strip, creep, LOADS, t)
    on_arc = read_through(strip, creep, LOADS, 600.0, angle=SEAM)    # the top patch
    assert on_arc == pytest.approx(LOADS, rel=3e-3)
    for t in np.arange(600.5, 700.0, 0.5):                           # off it again
        after = read_through(strip, creep, LOADS, t)
        assert after == pytest.approx(LOADS, rel=3e-3)
    bottom_arc = read_through(strip, creep, LOADS, 700.0, angle=SEAM + math.pi)
    assert bottom_arc == pytest.approx(LOADS, rel=3e-3)
    for t in np.arange(700.5, 800.0, 0.5):
        assert read_through(strip, creep, LOADS, t) == pytest.approx(LOADS, rel=3e-3)


def test_creep_compensation_restarts_when_the_body_gets_off():
    """A body that gets off and on again loads the top patches anew; the bottom ones keep
    the roller's weight (1.2 N a band), their creep goes on."""
    strip = FsrStrip.calibrated(ZONES, hysteresis=0.0, creep_per_decade=CREEP_PER_DECADE)
    creep = FsrCreep(ZONES.count)
    weight, empty = 1.2, np.zeros(ZONES.count)
    tare = read_through(strip, creep, empty, 0.0, weight=weight).tolist()
    for t in np.arange(1.0, 600.0, 5.0):
        read_through(strip, creep, LOADS, t, tare=tare, weight=weight)
    for t in np.arange(600.0, 610.0, 1.0):
        read_through(strip, creep, empty, t, tare=tare, weight=weight)
    for t in np.arange(610.0, 700.0, 0.5):
        body = read_through(strip, creep, LOADS, t, tare=tare, weight=weight) - weight / 2
        assert body == pytest.approx(LOADS, rel=3e-3, abs=0.08)   # (the weight's creep:
        # the patches' factors are averaged as if they carried the same load)
    uncompensated = read_through(strip, None, LOADS, 700.0, weight=weight) - weight / 2
    assert np.all(uncompensated / LOADS - 1 > 0.02)   # (the creep it took out)
