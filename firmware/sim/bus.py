"""SimBus: an emulated I2C bus with the interface of ``smbus2.SMBus``.

Devices are attached at 7-bit addresses and see raw I2C messages, as on the wire:
``i2c_write(data)`` for a write message (the first byte is usually a register pointer)
and ``i2c_read(n)`` for a read message. Every smbus2 call is translated into the
messages the kernel would put on the bus, so register-pointer semantics, auto-increment
and FIFO ports behave as the real part does. A device raises ``Nack`` to refuse a
message; the bus then raises ``OSError(errno.EREMOTEIO)`` like the Linux driver, and
an address with no device does the same. With a clock, each transaction advances it
by its duration on the wire (9 bits per byte, plus start and stop).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Sequence
from typing import Any, Protocol

from smbus2 import i2c_msg
from smbus2.smbus2 import I2C_M_RD, I2C_SMBUS_BLOCK_MAX


class Nack(Exception):
    """Raised by an emulated device that does not acknowledge a message."""


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


class SimBus:
    """Drop-in for ``smbus2.SMBus`` over emulated devices.

    bus: the bus number (kept for ``repr`` only).
    clock: advanced by each transaction's duration (optional).
    bus_hz: SCL frequency, Hz (400 kHz: the Pi set up for fast mode).
    """

    def __init__(self, bus: int | str | None = None, force: bool = False, *,
                 clock: _Clock | None = None, bus_hz: float = 400_000.0) -> None:
        self.bus = bus
        self.force = force
        self.fd: int | None = None if bus is None else -1
        self.address: int | None = None
        self.clock = clock
        self.bus_hz = bus_hz
        self.transactions = 0
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

    # -- smbus2 housekeeping ------------------------------------------------------
    def __enter__(self) -> SimBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self, bus: int | str) -> None:
        """Open the bus (nothing to do for an emulated bus)."""
        self.bus = bus
        self.fd = -1

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
        try:
            if write is not None:
                device.i2c_write(write)
            return device.i2c_read(read) if read else b""
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
        """Combined transaction of ``smbus2.i2c_msg`` reads and writes (repeated starts)."""
        total = 0
        for msg in i2c_msgs:
            device = self._device(msg.addr, None)
            try:
                if msg.flags & I2C_M_RD:
                    data = device.i2c_read(msg.len)
                    ctypes.memmove(msg.buf, bytes(data), msg.len)
                else:
                    device.i2c_write(bytes(msg))
            except Nack:
                self._spend(total + 1)
                raise _remote_io_error() from None
            total += 1 + msg.len
        self._spend(total)


__all__ = ["I2CDevice", "Nack", "SimBus", "i2c_msg"]
