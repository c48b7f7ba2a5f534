"""SimBus behaves as smbus2.SMBus does against a device on a real bus."""

import errno

import pytest
from smbus2 import i2c_msg

from firmware.sim.bus import Nack, SimBus
from firmware.sim.clock import SimClock


class RegisterFile:
    """A plain device: pointer register, auto-increment, 256 registers."""

    def __init__(self):
        self.regs = bytearray(range(256))
        self.pointer = 0
        self.writes = []
        self.nack = False

    def i2c_write(self, data):
        if self.nack:
            raise Nack
        self.writes.append(bytes(data))
        if data:
            self.pointer = data[0]
            for i, b in enumerate(data[1:]):
                self.regs[(self.pointer + i) & 0xFF] = b

    def i2c_read(self, n):
        if self.nack:
            raise Nack
        out = bytes(self.regs[(self.pointer + i) & 0xFF] for i in range(n))
        self.pointer = (self.pointer + n) & 0xFF
        return out


@pytest.fixture
def bus():
    b = SimBus(1, clock=SimClock())
    b.attach(0x40, RegisterFile())
    return b


def test_absent_address_raises_remote_io_error(bus):
    with pytest.raises(OSError) as err:
        bus.read_byte_data(0x41, 0)
    assert err.value.errno == errno.EREMOTEIO == 121


def test_nack_raises_remote_io_error(bus):
    bus._devices[0x40].nack = True
    with pytest.raises(OSError) as err:
        bus.write_byte_data(0x40, 1, 2)
    assert err.value.errno == 121


def test_byte_and_word_access(bus):
    bus.write_byte_data(0x40, 0x10, 0xAB)
    assert bus.read_byte_data(0x40, 0x10) == 0xAB
    bus.write_word_data(0x40, 0x20, 0x1234)  # SMBus words go low byte first
    assert bus._devices[0x40].regs[0x20:0x22] == bytes([0x34, 0x12])
    assert bus.read_word_data(0x40, 0x20) == 0x1234
    bus.write_byte(0x40, 0x20)
    assert bus.read_byte(0x40) == 0x34


def test_block_limits_follow_smbus2(bus):
    with pytest.raises(ValueError):
        bus.read_i2c_block_data(0x40, 0, 33)
    with pytest.raises(ValueError):
        bus.write_i2c_block_data(0x40, 0, [0] * 33)
    assert bus.read_i2c_block_data(0x40, 0x30, 32) == list(range(0x30, 0x50))


def test_i2c_rdwr_combined_transaction(bus):
    write = i2c_msg.write(0x40, [0x05])
    read = i2c_msg.read(0x40, 40)  # i2c_rdwr has no 32-byte limit
    bus.i2c_rdwr(write, read)
    assert list(read) == list(range(5, 45))


def test_transactions_take_wire_time(bus):
    t0 = bus.clock.now()
    bus.read_i2c_block_data(0x40, 0, 24)  # addr+reg, addr+24 bytes: 27 bytes
    assert bus.clock.now() - t0 == pytest.approx((27 * 9 + 2) / 400_000)


def test_context_manager_and_force(bus):
    with bus as b:
        b.write_byte_data(0x40, 1, 7, force=True)
        assert b.read_byte_data(0x40, 1, force=True) == 7
    assert bus.fd is None


def test_third_party_style_driver_runs_unchanged(bus):
    """Code written for smbus2 (positional calls, lists) works against SimBus."""
    def read_temperature(smbus, address):
        msb, lsb = smbus.read_i2c_block_data(address, 0x00, 2)
        return (msb << 8 | lsb) / 256

    bus._devices[0x40].regs[0:2] = bytes([0x19, 0x80])
    assert read_temperature(bus, 0x40) == pytest.approx(25.5)
