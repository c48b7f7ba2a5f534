"""SimBus: an emulated I2C bus with the interface of ``smbus2.SMBus``.

Devices are attached at 7-bit addresses and see raw I2C messages, as on the wire:
``i2c_write(data)`` for a write message (the first byte is usually a register pointer)
and ``i2c_read(n)`` for a read message. Every smbus2 call is translated into the
messages the kernel would put on the bus, so register-pointer semantics, auto-increment
and FIFO ports behave as the real part does. A device raises ``Nack`` to refuse a
message; the bus then raises ``OSError(errno.EREMOTEIO)`` like the Linux driver, and
an address with no device does the same. With a clock, each transaction advances it
by its duration on the wire (9 bits per byte, plus start and stop).

A real bus fails in more ways than a device's NACK (``BusFaults``, off by default): a
message NACKed at random (electrical noise, a device busy), a read that breaks after the
device gave its bytes (a FIFO's popped bytes are then gone), and bytes read as 0xFF (SDA
not pulled low: no error, wrong data). They are drawn per message from their own random
stream. And a bus hangs (``hang``: a part holds SDA low, say after a brown-out in the
middle of a byte): every transfer then times out, ``OSError(errno.ETIMEDOUT)`` after
``HANG_TIMEOUT_S``, until the bus is recovered (``recover``): on the Pi by closing and
reopening it (the I2C controller's recovery clocks the lines out), so here opening
the bus (``SimBus.open``, ``EmulatedSMBus.open``) recovers it.

``EmulatedSMBus`` is the real ``smbus2.SMBus`` (its own code for every call) whose
device file is an ``I2cDev`` in front of a SimBus: the ioctls smbus2 makes are decoded
as the kernel's i2c-dev and SMBus emulation would, and the Pi's controller rules apply
(``I2C_FUNCS`` as i2c-bcm2835 reports: plain I2C and the emulated SMBus, no SMBus block
read). The simulator runs the firmware on it, so the firmware's bus calls cost what
they cost on a Pi above the system call.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import smbus2.smbus2 as _smbus2
from smbus2 import SMBus, i2c_msg
from smbus2.smbus2 import (
    I2C_FUNCS,
    I2C_M_RD,
    I2C_PEC,
    I2C_RDWR,
    I2C_SLAVE,
    I2C_SLAVE_FORCE,
    I2C_SMBUS,
    I2C_SMBUS_BLOCK_DATA,
    I2C_SMBUS_BLOCK_MAX,
    I2C_SMBUS_BYTE,
    I2C_SMBUS_BYTE_DATA,
    I2C_SMBUS_I2C_BLOCK_DATA,
    I2C_SMBUS_PROC_CALL,
    I2C_SMBUS_QUICK,
    I2C_SMBUS_READ,
    I2C_SMBUS_WORD_DATA,
    I2cFunc,
)

HANG_TIMEOUT_S = 0.035
"""What a transfer on a hung bus costs before it times out, s (the SMBus clock-low
timeout's 35 ms, a stand-in for the controller driver's own timeout)."""


class Nack(Exception):
    """Raised by an emulated device that does not acknowledge a message."""


class BusFaults:
    """Random faults of the bus itself, per message (probabilities 0..1).

    nack_rate: the message is not acknowledged (the device never sees it);
    broken_read_rate: a read message fails after the device gave its bytes (lost);
    ff_read_rate: a read message's bytes all arrive as 0xFF, without an error.
    seed: their random stream. ``counts`` tallies what happened.
    """

    def __init__(self, nack_rate: float = 0.0, broken_read_rate: float = 0.0,
                 ff_read_rate: float = 0.0, seed: int = 0) -> None:
        import random

        self.nack_rate, self.broken_read_rate, self.ff_read_rate = \
            nack_rate, broken_read_rate, ff_read_rate
        self._random = random.Random(seed).random
        self.counts = {"nack": 0, "broken_read": 0, "ff_read": 0}

    def before(self) -> None:
        """Before a message: raise ``Nack`` if it is not acknowledged."""
        if self.nack_rate and self._random() < self.nack_rate:
            self.counts["nack"] += 1
            raise Nack()

    def after_read(self, data: bytes) -> bytes:
        """A read's bytes as they arrive (``Nack`` if the read broke)."""
        if self.broken_read_rate and self._random() < self.broken_read_rate:
            self.counts["broken_read"] += 1
            raise Nack()
        if self.ff_read_rate and self._random() < self.ff_read_rate:
            self.counts["ff_read"] += 1
            return b"\xff" * len(data)
        return data


class I2CDevice(Protocol):
    """What the bus needs from an emulated device."""

    def i2c_write(self, data: bytes) -> None:
        """Receive one write message (bytes after the address)."""

    def i2c_read(self, n: int) -> bytes:
        """Answer one read message of ``n`` bytes."""


class _Clock(Protocol):
    def advance(self, dt: float) -> None: ...


def _remote_io_error() -> OSError:
    return OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))


def _timeout_error() -> OSError:
    return OSError(errno.ETIMEDOUT, os.strerror(errno.ETIMEDOUT))


class SimBus:
    """Drop-in for ``smbus2.SMBus`` over emulated devices.

    bus: the bus number (kept for ``repr`` only).
    clock: advanced by each transaction's duration (optional).
    bus_hz: SCL frequency, Hz (400 kHz: the Pi set up for fast mode).
    reads_last_only: refuse, as the Pi's controller driver does (Linux i2c-bcm2835:
        "only one read message supported, has to be last"), a combined transaction
        with a read before its last message: ``OSError(EOPNOTSUPP)``, nothing sent.
    """

    def __init__(self, bus: int | str | None = None, force: bool = False, *,
                 clock: _Clock | None = None, bus_hz: float = 400_000.0,
                 reads_last_only: bool = True) -> None:
        self.bus = bus
        self.force = force
        self.fd: int | None = None if bus is None else -1
        self.address: int | None = None
        self.clock = clock
        self.bus_hz = bus_hz
        self.reads_last_only = reads_last_only
        self.transactions = 0
        self.faults: BusFaults | None = None
        """Random faults of the bus (``BusFaults``); None: a clean bus."""
        self.hung = False
        """A part holds SDA low: every transfer times out until ``recover``."""
        self.hangs = 0
        self.recoveries = 0
        self.timeouts = 0
        self._devices: dict[int, I2CDevice] = {}
        self._pec = 0

    # -- wiring -------------------------------------------------------------------
    def attach(self, address: int, device: I2CDevice) -> None:
        """Connect ``device`` at 7-bit ``address``."""
        if not 0x03 <= address <= 0x77:
            raise ValueError(f"not a 7-bit device address: {address:#x}")
        self._devices[address] = device

    def detach(self, address: int) -> None:
        """Disconnect the device at ``address`` (it vanishes from the bus)."""
        self._devices.pop(address, None)

    # -- a hung bus ---------------------------------------------------------------
    def hang(self) -> None:
        """A part holds SDA low: every transfer times out until ``recover``."""
        if not self.hung:
            self.hung = True
            self.hangs += 1

    def recover(self) -> None:
        """The lines clocked out (the bus reopened): transfers go through again."""
        if self.hung:
            self.hung = False
            self.recoveries += 1

    # -- smbus2 housekeeping ------------------------------------------------------
    def __enter__(self) -> SimBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, bus: int | str) -> None:
        """Open the bus (recovers a hung one)."""
        self.bus = bus
        self.fd = -1
        self.recover()

    def close(self) -> None:
        """Close the bus."""
        self.fd = None
        self.address = None

    @property
    def pec(self) -> int:
        """Packet error checking (not emulated: always off unless set)."""
        return self._pec

    @pec.setter
    def pec(self, value: int) -> None:
        self._pec = int(bool(value))

    def enable_pec(self, enable: bool = True) -> None:
        """Switch packet error checking on or off (recorded only)."""
        self.pec = int(enable)

    # -- transactions -------------------------------------------------------------
    def _device(self, addr: int, force: bool | None) -> I2CDevice:
        self.address = addr
        if self.hung:
            self.timeouts += 1
            self.transactions += 1
            if self.clock is not None:
                self.clock.advance(HANG_TIMEOUT_S)
            raise _timeout_error()
        device = self._devices.get(addr)
        if device is None:
            self._spend(1)
            raise _remote_io_error()
        return device

    def _spend(self, nbytes: int) -> None:
        self.transactions += 1
        if self.clock is not None:
            self.clock.advance((nbytes * 9 + 2) / self.bus_hz)

    def _transfer(self, addr: int, force: bool | None, write: bytes | None,
                  read: int = 0) -> bytes:
        device = self._device(addr, force)
        self._spend((1 + len(write) if write is not None else 0) + (1 + read if read else 0))
        faults = self.faults
        try:
            if write is not None:
                if faults is not None:
                    faults.before()
                device.i2c_write(write)
            if not read:
                return b""
            if faults is None:
                return device.i2c_read(read)
            faults.before()
            return faults.after_read(device.i2c_read(read))
        except Nack:
            raise _remote_io_error() from None

    def write_quick(self, i2c_addr: int, force: bool | None = None) -> None:
        """Address the device with no data."""
        self._transfer(i2c_addr, force, b"")

    def read_byte(self, i2c_addr: int, force: bool | None = None) -> int:
        """Read one byte from the device's current pointer."""
        return self._transfer(i2c_addr, force, None, 1)[0]

    def write_byte(self, i2c_addr: int, value: int, force: bool | None = None) -> None:
        """Write one byte (usually a register pointer)."""
        self._transfer(i2c_addr, force, bytes([value & 0xFF]))

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """Read one byte from ``register``."""
        return self._transfer(i2c_addr, force, bytes([register]), 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int,
                        force: bool | None = None) -> None:
        """Write one byte to ``register``."""
        self._transfer(i2c_addr, force, bytes([register, value & 0xFF]))

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """Read an SMBus word (low byte first on the wire) from ``register``."""
        data = self._transfer(i2c_addr, force, bytes([register]), 2)
        return data[0] | data[1] << 8

    def write_word_data(self, i2c_addr: int, register: int, value: int,
                        force: bool | None = None) -> None:
        """Write an SMBus word (low byte first on the wire) to ``register``."""
        self._transfer(i2c_addr, force, bytes([register, value & 0xFF, (value >> 8) & 0xFF]))

    def process_call(self, i2c_addr: int, register: int, value: int,
                     force: bool | None = None) -> int:
        """SMBus process call: write a word, read a word back."""
        device = self._device(i2c_addr, force)
        self._spend(7)
        try:
            device.i2c_write(bytes([register, value & 0xFF, (value >> 8) & 0xFF]))
            data = device.i2c_read(2)
        except Nack:
            raise _remote_io_error() from None
        return data[0] | data[1] << 8

    def read_block_data(self, i2c_addr: int, register: int, force: bool | None = None) -> list[int]:
        """SMBus block read: the device sends a count byte, then that many bytes."""
        device = self._device(i2c_addr, force)
        try:
            device.i2c_write(bytes([register]))
            count = device.i2c_read(1)[0]
            if count > I2C_SMBUS_BLOCK_MAX:
                raise _remote_io_error()  # the kernel refuses over-long SMBus blocks (EPROTO/EIO)
            data = device.i2c_read(count) if count else b""
        except Nack:
            raise _remote_io_error() from None
        self._spend(4 + count)
        return list(data)

    def write_block_data(self, i2c_addr: int, register: int, data: Sequence[int],
                         force: bool | None = None) -> None:
        """SMBus block write: a count byte, then the data."""
        if len(data) > I2C_SMBUS_BLOCK_MAX:
            raise ValueError(f"Data length cannot exceed {I2C_SMBUS_BLOCK_MAX} bytes")
        self._transfer(i2c_addr, force, bytes([register, len(data), *data]))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]:
        """Read ``length`` (<= 32) bytes starting at ``register``."""
        if length > I2C_SMBUS_BLOCK_MAX:
            raise ValueError(f"Desired block length over {I2C_SMBUS_BLOCK_MAX} bytes")
        return list(self._transfer(i2c_addr, force, bytes([register]), length))

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int],
                             force: bool | None = None) -> None:
        """Write ``data`` (<= 32 bytes) starting at ``register``."""
        if len(data) > I2C_SMBUS_BLOCK_MAX:
            raise ValueError(f"Data length cannot exceed {I2C_SMBUS_BLOCK_MAX} bytes")
        self._transfer(i2c_addr, force, bytes([register, *(v & 0xFF for v in data)]))

    def i2c_rdwr(self, *i2c_msgs: Any) -> None:
        """Combined transaction of ``smbus2.i2c_msg`` reads and writes (repeated starts).

        A NACK stops it there (the messages before it took effect) with
        ``OSError(EREMOTEIO)``; see ``reads_last_only`` for what is refused up front.
        """
        if self.reads_last_only:
            for msg in i2c_msgs[:-1]:
                if msg.flags & I2C_M_RD:
                    raise OSError(errno.EOPNOTSUPP, "only one read message supported, "
                                                    "has to be last")
        total = 0
        for msg in i2c_msgs:
            length = msg.len
            device = self._device(msg.addr, None)
            faults = self.faults
            try:
                if faults is not None:
                    faults.before()
                if msg.flags & I2C_M_RD:
                    data = device.i2c_read(length)
                    if faults is not None:
                        data = faults.after_read(data)
                    ctypes.memmove(msg.buf, data, length)
                else:
                    device.i2c_write(ctypes.string_at(msg.buf, length))
            except Nack:
                self._spend(total + 1)
                raise _remote_io_error() from None
            total += 1 + length
        self._spend(total)


BCM2835_FUNCS = int(I2cFunc.I2C | I2cFunc.SMBUS_EMUL)
"""What i2c-bcm2835 reports to I2C_FUNCS (no SMBus block read: smbus2's own comment)."""


class I2cDev:
    """The kernel's ``/dev/i2c-N`` in front of ``bus``: ``ioctl(request, arg)`` does what
    i2c-dev and the i2c core's SMBus emulation do with smbus2's ioctls. Bus errors
    raise ``OSError`` as the system call does.
    """

    def __init__(self, bus: SimBus, funcs: int = BCM2835_FUNCS) -> None:
        self.bus = bus
        self.funcs = funcs
        self.address: int | None = None  # the client address set by I2C_SLAVE
        self.pec = 0

    def opened(self) -> None:
        """The device file was opened (again): the controller recovers a hung bus."""
        self.bus.recover()

    def ioctl(self, request: int, arg: Any = 0) -> int:
        """One ioctl on the device file."""
        if request == I2C_SMBUS:
            self._smbus(arg)
        elif request == I2C_RDWR:
            self.bus.i2c_rdwr(*[arg.msgs[i] for i in range(arg.nmsgs)])
        elif request in (I2C_SLAVE, I2C_SLAVE_FORCE):
            if not 0 <= int(arg) <= 0x7F:  # 7-bit addresses (no I2C_TENBIT)
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            self.address = int(arg)
        elif request == I2C_FUNCS:
            arg.value = self.funcs
        elif request == I2C_PEC:
            self.pec = int(bool(arg))
        else:
            raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))
        return 0

    def _smbus(self, arg: Any) -> None:
        bus, addr, size = self.bus, self.address, arg.size
        if addr is None:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        read, command = arg.read_write == I2C_SMBUS_READ, arg.command
        data = arg.data.contents if arg.data else None
        if size == I2C_SMBUS_QUICK:
            bus.write_quick(addr)
        elif size == I2C_SMBUS_BYTE:
            if read:
                data.byte = bus.read_byte(addr)
            else:
                bus.write_byte(addr, command)
        elif size == I2C_SMBUS_BYTE_DATA:
            if read:
                data.byte = bus.read_byte_data(addr, command)
            else:
                bus.write_byte_data(addr, command, data.byte)
        elif size == I2C_SMBUS_WORD_DATA:
            if read:
                data.word = bus.read_word_data(addr, command)
            else:
                bus.write_word_data(addr, command, data.word)
        elif size == I2C_SMBUS_PROC_CALL:
            data.word = bus.process_call(addr, command, data.word)
        elif size == I2C_SMBUS_I2C_BLOCK_DATA:
            length = min(data.block[0], I2C_SMBUS_BLOCK_MAX)
            if read:
                data.block[1:length + 1] = bus.read_i2c_block_data(addr, command, length)
            else:
                bus.write_i2c_block_data(addr, command, data.block[1:length + 1])
        elif size == I2C_SMBUS_BLOCK_DATA and not read \
                and self.funcs & I2cFunc.SMBUS_WRITE_BLOCK_DATA:
            bus.write_block_data(addr, command, data.block[1:data.block[0] + 1])
        else:  # SMBus block reads and block process calls: not on this controller
            raise OSError(errno.EOPNOTSUPP, os.strerror(errno.EOPNOTSUPP))


_DEVICE_FILES: dict[int, I2cDev] = {}
_real_ioctl = _smbus2.ioctl


def _ioctl(fd: int, request: int, arg: Any = 0, *rest: Any) -> Any:
    """smbus2's ``ioctl``: our device files go to their ``I2cDev``, others to the kernel."""
    device = _DEVICE_FILES.get(fd)
    if device is None:
        return _real_ioctl(fd, request, arg, *rest)
    return device.ioctl(request, arg)


class DeviceFile(Protocol):
    """What answers the ioctls on an emulated device file."""

    def ioctl(self, request: int, arg: Any = 0) -> int: ...


class EmulatedSMBus(SMBus):
    """``smbus2.SMBus`` on an emulated bus: every call runs smbus2's own code, down to
    the ioctl, which ``device`` answers (an ``I2cDev`` in front of ``bus`` if ``bus`` is a
    SimBus, else ``bus`` itself, e.g. the CPU meter's replay). Only opening and closing
    differ: the device file is ``os.devnull`` (its descriptor is the key to ``device``).

    wrap: applied to ``device.ioctl`` (the simulator's CPU meter keeps the kernel's
    side out of the firmware's time with it).
    """

    def __init__(self, bus: SimBus | DeviceFile, force: bool = False,
                 wrap: Callable[[Callable[..., int]], Callable[..., int]] | None = None) -> None:
        self.device = I2cDev(bus) if isinstance(bus, SimBus) else bus
        if wrap is not None:
            self.device.ioctl = wrap(self.device.ioctl)  # type: ignore[method-assign]
        super().__init__(None, force)
        _smbus2.ioctl = _ioctl  # idempotent: only our descriptors are diverted
        self.open(0)

    def open(self, bus: int | str) -> None:
        """Open the emulated device file (``bus`` is only a name here)."""
        self.close()
        self.fd = os.open(os.devnull, os.O_RDWR)
        _DEVICE_FILES[self.fd] = self.device
        opened = getattr(self.device, "opened", None)
        if opened is not None:
            opened()
        self.funcs = self._get_funcs()

    def close(self) -> None:
        """Close the device file."""
        if self.fd:
            _DEVICE_FILES.pop(self.fd, None)
        super().close()


__all__ = ["BCM2835_FUNCS", "DeviceFile", "EmulatedSMBus", "I2CDevice", "I2cDev", "Nack",
           "SimBus", "i2c_msg"]
