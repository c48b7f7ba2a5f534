"""Combined I2C transactions built once and issued many times (``Transfer``).

A ``Transfer`` is one fixed combined transaction (``smbus2.i2c_msg`` messages with
repeated starts, as ``SMBus.i2c_rdwr`` sends them): calling it sends the same messages,
puts what the reads got into the same buffers, and raises the same ``OSError``s as
``bus.i2c_rdwr(*msgs)``. On an ``smbus2.SMBus`` it issues the ``I2C_RDWR`` ioctl itself
on the bus's current file descriptor (a bus reopened after it hung is followed), with
the kernel's ``i2c_rdwr_ioctl_data`` built once: ``SMBus.i2c_rdwr`` builds that ctypes
array and its pointer again on every call, ~4 us of Python per transaction, and the
zone scanner and the IMU drain issue ~500 transactions a second. On any other bus (a
test double, a bus without ``fd``) it calls ``bus.i2c_rdwr(*msgs)``.
"""

from __future__ import annotations

from typing import Any

from smbus2 import SMBus, i2c_msg
from smbus2 import smbus2 as _smbus2
from smbus2.smbus2 import I2C_RDWR, i2c_rdwr_ioctl_data

__all__ = ["Transfer"]


class Transfer:
    """One combined transaction of ``msgs`` on ``bus``, prepared; call it to send it.

    The messages (and their buffers: a read's bytes land in its own ``buf``) are kept
    alive by the ``Transfer``; they must not be replaced, only their buffers read.
    """

    __slots__ = ("bus", "msgs", "_data")

    def __init__(self, bus: Any, *msgs: i2c_msg) -> None:
        if not msgs:
            raise ValueError("a transaction of no messages")
        self.bus = bus
        self.msgs = msgs
        create = i2c_rdwr_ioctl_data.create  # (its stub wants a sequence: it takes *msgs)
        self._data = create(*msgs) if isinstance(bus, SMBus) else None  # type: ignore[arg-type]

    def __call__(self) -> None:
        """Send the transaction (raises ``OSError`` as ``SMBus.i2c_rdwr`` does)."""
        data = self._data
        if data is None:
            self.bus.i2c_rdwr(*self.msgs)
        else:  # (smbus2's module-level ioctl, looked up now: what SMBus.i2c_rdwr calls)
            _smbus2.ioctl(self.bus.fd, I2C_RDWR, data)  # type: ignore[attr-defined]
