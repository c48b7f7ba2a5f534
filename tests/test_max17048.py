"""The MAX17048 fuel gauge: the driver against the register-level emulation."""

import logging

import numpy as np
import pytest

from firmware.drivers.max17048 import (
    HUNG_RETRY_S,
    IMPLAUSIBLE_RESETS_AFTER,
    POLL_S,
    RESET_EVERY_S,
    RETRY_S,
    FuelGauge,
)
from firmware.sim.bus import EmulatedSMBus, SimBus
from firmware.sim.clock import SimClock
from firmware.sim.max17048 import (
    CMD,
    CONFIG,
    HIBERNATE_UPDATE_S,
    HIBRT,
    MODE,
    MODE_HIBSTAT,
    SOC,
    STATUS,
    Max17048Sim,
    charge_at_v,
)
from firmware.sim.parts import GAUGE_SOC_ERROR_LIMIT_PCT, GaugePart, Parts

LOG = logging.getLogger("test.gauge")


def rig(start_pct=80.0, device=None):
    clock = SimClock()
    bus = SimBus(1, clock=clock)
    cell = device or Max17048Sim(clock, start_pct=start_pct)
    bus.attach(0x36, cell)
    return clock, bus, cell, FuelGauge(EmulatedSMBus(bus), 0x36, clock, LOG, 10.0)


def test_reads_the_state_of_charge_and_the_cell_voltage():
    clock, _, _, gauge = rig(80.0)
    gauge.poll(clock.now())
    assert gauge.percent == pytest.approx(80.0, abs=0.01)
    assert 3.8 < gauge.voltage_v < 4.0  # a LiPo at 80 % under 0.3 A
    assert gauge.fault is None and not gauge.low


def test_the_level_falls_as_the_cell_drains_and_is_read_every_poll_period():
    clock, _, cell, gauge = rig(80.0)
    gauge.poll(0.0)
    clock.advance(POLL_S / 2)
    gauge.poll(clock.now())  # not due: the same reading
    assert gauge.percent == pytest.approx(80.0, abs=0.01)
    clock.advance(3600.0)
    gauge.poll(clock.now())
    # 0.3 A of 2 Ah for 1 h; the hibernating gauge's reading is up to 45 s old (0.19 %)
    assert gauge.percent == pytest.approx(80.0 - 15.0, abs=0.2)
    assert gauge.percent == pytest.approx(cell.true_percent(clock.now()), abs=0.2)


def test_low_battery_is_reported_and_logged_once(caplog):
    clock, _, _, gauge = rig(10.5)
    with caplog.at_level("WARNING"):
        gauge.poll(0.0)
        assert not gauge.low
        for _ in range(100):  # 1000 s: 4 % more used
            clock.advance(POLL_S)
            gauge.poll(clock.now())
    assert gauge.low and gauge.percent < 10.0
    assert caplog.text.count("battery low") == 1


def test_a_gauge_that_stops_answering_makes_the_level_unknown_then_recovers(caplog):
    clock, _, cell, gauge = rig(60.0)
    gauge.poll(0.0)
    cell.vanish()
    with caplog.at_level("WARNING"):
        for _ in range(4):
            clock.advance(POLL_S)
            gauge.poll(clock.now())
    assert gauge.percent is None and "does not answer" in gauge.fault
    assert caplog.text.count("battery level unknown") == 1
    failed_at = clock.now()
    cell.reappear()  # it lost power: a power-on reset
    gauge.poll(failed_at + RETRY_S / 2)  # not retried yet
    assert gauge.percent is None
    clock.advance(RETRY_S)
    gauge.poll(clock.now())
    assert gauge.fault is None and gauge.first_estimate
    assert 45.0 < gauge.percent < cell.true_percent(clock.now()) - 3.0  # read under load


def test_no_gauge_fitted_is_a_fault_not_a_crash():
    clock = SimClock()
    gauge = FuelGauge(EmulatedSMBus(SimBus(1, clock=clock)), 0x36, clock, LOG, 10.0)
    gauge.poll(0.0)
    assert gauge.percent is None and gauge.fault


class OtherPart(Max17048Sim):
    def i2c_read(self, n):
        return bytes([0x12, 0x34])[:n]


def test_another_part_at_the_address_is_refused():
    clock = SimClock()
    _, _, _, gauge = rig(device=OtherPart(clock))
    gauge.poll(0.0)
    assert gauge.percent is None and "not a MAX17048" in gauge.fault


def test_emulated_registers_follow_the_datasheet():
    clock = SimClock()
    bus = SimBus(1, clock=clock)
    cell = Max17048Sim(clock, start_pct=50.0)
    bus.attach(0x36, cell)
    assert bus.read_i2c_block_data(0x36, CONFIG, 2) == [0x97, 0x1C]
    bus.write_i2c_block_data(0x36, STATUS, [0x00, 0x00])  # clear RI
    assert bus.read_i2c_block_data(0x36, STATUS, 2)[0] & 0x01 == 0
    bus.write_i2c_block_data(0x36, CONFIG, [0x97, 0x00])
    with pytest.raises(OSError):  # power-on reset: the part resets before the ACK
        bus.write_i2c_block_data(0x36, CMD, [0x54, 0x00])
    assert bus.read_i2c_block_data(0x36, CONFIG, 2) == [0x97, 0x1C]
    assert bus.read_i2c_block_data(0x36, STATUS, 2)[0] & 0x01 == 1
    assert cell.resets == 2  # at power-up and by the command
    bus.write_quick(0x36)  # acknowledged, as on silicon
    bus.write_byte(0x36, CONFIG)  # a pointer alone: acknowledged
    bus.write_byte_data(0x36, CONFIG, 0x12)  # half a word: acknowledged, not stored
    assert bus.read_i2c_block_data(0x36, CONFIG, 2) == [0x97, 0x1C]
    # reads go on to the next register: VCELL then SOC in one message
    vcell_soc = bus.read_i2c_block_data(0x36, 0x02, 4)
    assert vcell_soc[2:] == bus.read_i2c_block_data(0x36, 0x04, 2)


def test_each_roller_draws_its_gauge_within_the_datasheet():
    gauges = [Parts.draw(seed).gauge for seed in range(40)]
    errors = np.array([g.soc_error_pct for g in gauges])
    volts = np.array([g.vcell_error_v for g in gauges])
    assert np.all(np.abs(errors) <= GAUGE_SOC_ERROR_LIMIT_PCT)
    assert np.all(np.abs(volts) <= 7.5e-3)
    assert errors.std() > 1.0 and len(set(errors)) == 40  # spread, one per roller
    assert Parts.draw(3).gauge == Parts.draw(3).gauge
    assert Parts.ideal().gauge == GaugePart()
    assert Parts.draw(3).pinned({"gauge_soc_error_pct": -2.0}).gauge.soc_error_pct == -2.0


def test_the_gauge_reports_its_estimate_not_the_truth():
    clock = SimClock()
    _, _, cell, gauge = rig(device=Max17048Sim(clock, start_pct=70.0,
                                               part=GaugePart(2.5, 0.005)))
    gauge.poll(0.0)
    assert gauge.percent == pytest.approx(72.5, abs=0.01)  # the model's error
    assert gauge.voltage_v == pytest.approx(cell.cell_v(70.0) + 0.005, abs=1e-4)


def test_the_first_estimate_after_a_reset_under_load_reads_low_then_settles():
    clock = SimClock()
    cell = Max17048Sim(clock, start_pct=60.0)
    clock.advance(100.0)
    cell.por()
    true = cell.true_percent(clock.now())
    loaded = charge_at_v(cell.cell_v(true))  # VCELL under 0.3 A read as the open circuit
    assert loaded < true - 5.0
    assert cell.estimate_percent(clock.now()) == pytest.approx(loaded, abs=0.01)
    assert cell.estimate_percent(clock.now() + 3 * 3600.0) == pytest.approx(
        cell.true_percent(clock.now() + 3 * 3600.0), abs=0.5)


def test_a_slow_drain_hibernates_the_gauge_and_slows_its_updates():
    clock = SimClock()
    bus = SimBus(1, clock=clock)
    cell = Max17048Sim(clock, start_pct=80.0, settled=False, resistance_ohm=0.0)  # no IR drop
    bus.attach(0x36, cell)

    def soc_changes(seconds):
        seen, last = 0, None
        for _ in range(int(seconds)):
            clock.advance(1.0)
            soc = bus.read_i2c_block_data(0x36, SOC, 2)
            seen += soc != last
            last = soc
        return seen

    assert soc_changes(60) >= 50  # active: every second (15 %/h is 1/256 % in 0.24 s)
    assert not bus.read_i2c_block_data(0x36, MODE, 2)[0] & (MODE_HIBSTAT >> 8)
    clock.advance(360.0)  # 6 min below HibThr (26.6 %/h)
    bus.read_i2c_block_data(0x36, SOC, 2)
    assert cell.hibernating
    assert bus.read_i2c_block_data(0x36, MODE, 2)[0] & (MODE_HIBSTAT >> 8)
    assert soc_changes(450) <= 450 / HIBERNATE_UPDATE_S + 1
    bus.write_i2c_block_data(0x36, HIBRT, [0x00, 0x00])  # never hibernate
    clock.advance(HIBERNATE_UPDATE_S)
    assert soc_changes(60) >= 50 and not cell.hibernating


def test_the_driver_resets_the_gauge_through_its_nack(caplog):
    clock, bus, cell, gauge = rig(60.0)
    gauge.poll(0.0)
    assert not gauge.first_estimate
    clock.advance(30.0)
    gauge.reset()  # the write is NACKed: no exception out of the driver
    assert cell.resets == 2 and gauge.percent is None
    with caplog.at_level("INFO"):
        clock.advance(1.0)
        gauge.poll(clock.now())
    assert gauge.fault is None and gauge.first_estimate and "was reset" in caplog.text
    assert not bus.read_i2c_block_data(0x36, STATUS, 2)[0] & 0x01  # RI cleared
    assert gauge.percent < cell.true_percent(clock.now()) - 3.0


class FlakyGauge(Max17048Sim):
    """Reads SOC as 0xFFFF while ``bad``."""

    bad = False

    def i2c_read(self, n):
        data = super().i2c_read(n)
        return b"\xff" * n if self.bad and self._pointer == SOC else data


def test_an_implausible_reading_keeps_the_last_level_and_repeated_ones_reset_the_part(caplog):
    clock = SimClock()
    clock, _, cell, gauge = rig(device=FlakyGauge(clock, start_pct=50.0))
    gauge.poll(0.0)
    cell.bad = True
    clock.advance(POLL_S)
    gauge.poll(clock.now())
    assert gauge.percent == pytest.approx(50.0, abs=0.1) and cell.resets == 1
    with caplog.at_level("WARNING"):
        for _ in range(IMPLAUSIBLE_RESETS_AFTER - 1):
            clock.advance(RETRY_S)
            gauge.poll(clock.now())
    assert cell.resets == 2 and gauge.resets == 1 and "resetting it" in caplog.text
    for _ in range(IMPLAUSIBLE_RESETS_AFTER + 1):  # not again within RESET_EVERY_S
        clock.advance(RETRY_S)
        gauge.poll(clock.now())
    assert cell.resets == 2 and gauge.percent is None and "no gauge can" in gauge.fault
    cell.bad = False
    clock.advance(RESET_EVERY_S)
    gauge.poll(clock.now())
    assert gauge.fault is None and gauge.percent is not None


def test_a_hung_bus_is_the_buss_fault_not_the_gauges():
    clock, bus, _, gauge = rig(70.0)
    gauge.poll(0.0)
    bus.hang()
    clock.advance(POLL_S)
    gauge.poll(clock.now())
    assert gauge.watch.hung and gauge.fault is None  # the level stands, the loop recovers
    assert gauge.percent == pytest.approx(70.0, abs=0.1)
    bus.recover()
    gauge.watch.recovered()
    clock.advance(HUNG_RETRY_S)
    gauge.poll(clock.now())
    assert gauge.fault is None and gauge.percent == pytest.approx(70.0 - 0.04, abs=0.2)
