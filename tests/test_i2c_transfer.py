"""A prepared combined transaction (``firmware.drivers.i2c.Transfer``) does on the bus
what ``SMBus.i2c_rdwr`` of the same messages does, on a bus reopened after it hung too."""

import errno
from ctypes import create_string_buffer

import pytest
from smbus2 import i2c_msg
from smbus2.smbus2 import I2C_M_RD

from firmware.drivers.i2c import Transfer
from firmware.sim.bus import EmulatedSMBus, SimBus
from firmware.sim.clock import SimClock
from tests.test_simbus import RegisterFile


@pytest.fixture
def emulated():
    bus = SimBus(1, clock=SimClock())
    bus.attach(0x40, RegisterFile())
    smbus = EmulatedSMBus(bus)
    yield bus, smbus
    smbus.close()


def _write_then_read(address):
    buf = create_string_buffer(3)
    return (i2c_msg.write(address, [0x30, 7, 8, 9]), i2c_msg.write(address, [0x30]),
            i2c_msg(addr=address, flags=I2C_M_RD, len=3, buf=buf)), buf


def test_a_transfer_writes_and_reads_as_i2c_rdwr_does(emulated):
    bus, smbus = emulated
    msgs, buf = _write_then_read(0x40)
    transfer = Transfer(smbus, *msgs)
    transfer()
    assert buf.raw == bytes([7, 8, 9])
    assert bus.transactions == 1  # one combined transaction, as i2c_rdwr sends it
    bus._devices[0x40].regs[0x30:0x33] = b"\x01\x02\x03"
    for i, value in enumerate((4, 5, 6)):  # the messages' buffers are shared, not copied
        transfer.msgs[0].buf[1 + i] = bytes([value])
    transfer()
    assert buf.raw == bytes([4, 5, 6]) and bus.transactions == 2


def test_a_transfer_raises_what_i2c_rdwr_raises(emulated):
    bus, smbus = emulated
    msgs, _ = _write_then_read(0x41)  # nobody there
    with pytest.raises(OSError) as err:
        Transfer(smbus, *msgs)()
    assert err.value.errno == errno.EREMOTEIO
    bus._devices[0x40].nack = True
    msgs, _ = _write_then_read(0x40)
    with pytest.raises(OSError) as err:
        Transfer(smbus, *msgs)()
    assert err.value.errno == errno.EREMOTEIO


def test_a_transfer_follows_the_bus_reopened_after_it_hung(emulated):
    bus, smbus = emulated
    msgs, buf = _write_then_read(0x40)
    transfer = Transfer(smbus, *msgs)
    bus.hang()
    with pytest.raises(OSError) as err:
        transfer()
    assert err.value.errno == errno.ETIMEDOUT
    fd = smbus.fd
    smbus.close()
    other = EmulatedSMBus(SimBus(2, clock=SimClock()))  # an empty bus on the old number
    smbus.open(1)
    assert other.fd == fd != smbus.fd  # (POSIX: the lowest free descriptor)
    transfer()  # on the reopened bus, not the old descriptor
    assert buf.raw == bytes([7, 8, 9])
    other.close()


def test_on_a_bus_that_is_not_smbus_a_transfer_calls_its_i2c_rdwr():
    calls = []

    class Double:
        def i2c_rdwr(self, *msgs):
            calls.append(msgs)

    msgs, _ = _write_then_read(0x40)
    double = Double()
    Transfer(double, *msgs)()
    assert calls == [msgs]
    with pytest.raises(ValueError):
        Transfer(double)
