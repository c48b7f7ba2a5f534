"""SimBus behaves as smbus2.SMBus does against a device on a real bus."""

import errno

import pytest
from smbus2 import SMBus, i2c_msg

import firmware.sim.bus as bus_module
from firmware.sim.bus import BCM2835_FUNCS, EmulatedSMBus, Nack, SimBus
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


def test_a_combined_transaction_may_read_only_in_its_last_message(bus):
    """As the Pi's i2c-bcm2835: EOPNOTSUPP, and nothing reaches the bus."""
    device = bus._devices[0x40]
    with pytest.raises(OSError) as err:
        bus.i2c_rdwr(i2c_msg.write(0x40, [0x05]), i2c_msg.read(0x40, 2),
                     i2c_msg.write(0x40, [0x06, 0x01]))
    assert err.value.errno == errno.EOPNOTSUPP
    assert device.writes == [] and bus.transactions == 0
    bus.i2c_rdwr(i2c_msg.write(0x40, [0x10, 0xAA]), i2c_msg.write(0x40, [0x05]),
                 i2c_msg.read(0x40, 2))                   # writes, then one read: fine
    assert device.regs[0x10] == 0xAA


def test_a_nack_stops_a_combined_transaction_where_it_happens(bus):
    other = RegisterFile()
    bus.attach(0x41, other)
    other.nack = True
    with pytest.raises(OSError) as err:
        bus.i2c_rdwr(i2c_msg.write(0x40, [0x10, 0x55]), i2c_msg.write(0x41, [0x10, 0x66]),
                     i2c_msg.write(0x40, [0x11, 0x77]))
    assert err.value.errno == errno.EREMOTEIO
    assert bus._devices[0x40].regs[0x10:0x12] == bytes([0x55, 0x11])  # first yes, last no


@pytest.fixture
def smbus(bus):
    emulated = EmulatedSMBus(bus)
    yield emulated
    emulated.close()


def test_real_smbus2_code_runs_over_the_emulated_kernel(bus, smbus):
    assert isinstance(smbus, SMBus) and smbus.funcs == BCM2835_FUNCS
    device = bus._devices[0x40]
    smbus.write_byte_data(0x40, 0x10, 0xAB)
    assert smbus.read_byte_data(0x40, 0x10) == 0xAB
    smbus.write_word_data(0x40, 0x20, 0x1234)
    assert device.regs[0x20:0x22] == bytes([0x34, 0x12])
    assert smbus.read_word_data(0x40, 0x20) == 0x1234
    smbus.write_i2c_block_data(0x40, 0x30, [1, 2, 3])
    assert smbus.read_i2c_block_data(0x40, 0x30, 3) == [1, 2, 3]
    assert smbus.read_i2c_block_data(0x40, 0x00, 32) == list(device.regs[0:32])
    smbus.write_byte(0x40, 0x20)
    assert smbus.read_byte(0x40) == 0x34
    read = i2c_msg.read(0x40, 2)
    smbus.i2c_rdwr(i2c_msg.write(0x40, [0x30]), read)
    assert list(read) == [1, 2]
    assert bus.transactions == 10  # one SimBus transaction per smbus2 call


def test_emulated_kernel_errors_are_the_kernels(bus, smbus):
    with pytest.raises(OSError) as err:
        smbus.read_byte_data(0x41, 0)                      # nobody there
    assert err.value.errno == errno.EREMOTEIO
    with pytest.raises(OSError) as err:
        smbus.read_block_data(0x40, 0)                     # not on the Pi's controller
    assert err.value.errno == errno.EOPNOTSUPP
    with pytest.raises(OSError) as err:
        smbus.i2c_rdwr(i2c_msg.read(0x40, 1), i2c_msg.read(0x40, 1))
    assert err.value.errno == errno.EOPNOTSUPP
    fd = smbus.fd
    smbus.close()
    assert smbus.fd is None and fd not in bus_module._DEVICE_FILES


def test_a_hung_bus_times_out_every_transfer_until_it_is_reopened(bus):
    smbus = EmulatedSMBus(bus)
    assert smbus.read_byte_data(0x40, 0x05) == 0x05
    bus.hang()
    t0 = bus.clock.now()
    for call in (lambda: smbus.read_byte_data(0x40, 0x05),
                 lambda: smbus.write_byte_data(0x40, 0x05, 1),
                 lambda: smbus.i2c_rdwr(i2c_msg.write(0x40, [5]), i2c_msg.read(0x40, 1)),
                 lambda: smbus.read_byte_data(0x41, 0x00)):  # any address: the whole bus
        with pytest.raises(OSError) as info:
            call()
        assert info.value.errno == errno.ETIMEDOUT
    assert bus.clock.now() - t0 == pytest.approx(4 * bus_module.HANG_TIMEOUT_S)
    assert bus.hung and bus.timeouts == 4  # it does not pass by itself
    smbus.close()
    smbus.open(1)  # the controller's recovery clocks the lines out
    assert not bus.hung and bus.recoveries == 1
    assert smbus.read_byte_data(0x40, 0x05) == 0x05
    bus.hang()
    bus.open(1)  # the plain SimBus recovers on opening too
    assert bus.read_byte_data(0x40, 0x06) == 0x06
