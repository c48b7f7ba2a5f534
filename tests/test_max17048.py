"""The MAX17048 fuel gauge: the driver against the register-level emulation."""

import logging

import pytest

from firmware.drivers.max17048 import POLL_S, RETRY_S, FuelGauge
from firmware.sim.bus import EmulatedSMBus, SimBus
from firmware.sim.clock import SimClock
from firmware.sim.max17048 import CMD, CONFIG, STATUS, Max17048Sim

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
    assert gauge.percent == pytest.approx(80.0 - 15.0, abs=0.05)  # 0.3 A of 2 Ah for 1 h
    assert gauge.percent == pytest.approx(cell.true_percent(clock.now()), abs=0.05)


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
    cell.reappear()
    gauge.poll(failed_at + RETRY_S / 2)  # not retried yet
    assert gauge.percent is None
    clock.advance(RETRY_S)
    gauge.poll(clock.now())
    assert gauge.fault is None and gauge.percent == pytest.approx(60.0, abs=0.5)


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
    bus.write_i2c_block_data(0x36, CMD, [0x54, 0x00])  # power-on reset
    assert bus.read_i2c_block_data(0x36, CONFIG, 2) == [0x97, 0x1C]
    assert bus.read_i2c_block_data(0x36, STATUS, 2)[0] & 0x01 == 1
    with pytest.raises(OSError):
        bus.write_i2c_block_data(0x36, CONFIG, [0x97])  # half a word: not acknowledged
    # reads go on to the next register: VCELL then SOC in one message
    vcell_soc = bus.read_i2c_block_data(0x36, 0x02, 4)
    assert vcell_soc[2:] == bus.read_i2c_block_data(0x36, 0x04, 2)
