"""The roller's GATT table: its own service, Device Information and Battery.

Every value is read or written through a guard (``Guard``) that refuses a link which
is not encrypted with a key of a bonded host: the ATT error is *Insufficient
Encryption* when the roller holds a bond for the peer but the link is not encrypted
yet (the host should encrypt), and *Insufficient Authentication* otherwise (no bond,
or a bond the roller does not serve: the host would have to pair, which only works
in the pairing window). The server sends nothing to a link the guard would refuse
(see server.py). Who may read and write each attribute, CCCDs and the GAP and GATT
services included, is decided before Bumble sees a request by ``access.py``; the
guards here and the refusals of STREAM and CONTROL reads stand behind it.

| service / characteristic | UUID | properties |
| --- | --- | --- |
| roller service | ``SERVICE_UUID`` | |
| STREAM | ``STREAM_UUID`` | notify |
| CONTROL | ``CONTROL_UUID`` | write (with response), indicate |
| STATUS | ``STATUS_UUID`` | read, notify |
| CALIBRATION | ``CALIBRATION_UUID`` | read |
| Device Information | 0x180A | manufacturer 0x2A29, model 0x2A24, serial 0x2A25, hardware rev. 0x2A27, firmware rev. 0x2A26 (read) |
| Battery | 0x180F | battery level 0x2A19 (read, notify), % |
"""  # noqa: E501

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bumble.att import ATT_Error, AttributeValue, ErrorCode
from bumble.device import Connection
from bumble.gatt import Characteristic, Service

from firmware.protocol import (
    BATTERY_LEVEL_UUID,
    BATTERY_SERVICE_UUID,
    CALIBRATION_UUID,
    CONTROL_UUID,
    DEVICE_INFORMATION_SERVICE_UUID,
    FIRMWARE_REVISION_UUID,
    HARDWARE_REVISION_UUID,
    MANUFACTURER_NAME_UUID,
    MODEL_NUMBER_UUID,
    SERIAL_NUMBER_UUID,
    SERVICE_UUID,
    STATUS_UUID,
    STREAM_UUID,
)

Guard = Callable[[Connection], Awaitable[None]]
"""Raises ``ATT_Error`` unless the connection may use the roller's attributes."""

_P = Characteristic.Properties
_READ = Characteristic.Permissions.READABLE
_WRITE = Characteristic.Permissions.WRITEABLE
_NONE = Characteristic.Permissions(0)


@dataclass(frozen=True)
class DeviceInfo:
    """Device Information strings (UTF-8)."""

    manufacturer: str = "smartroller project"
    model: str = "smartroller SR-1"
    serial: str = ""
    hardware_revision: str = "A"
    firmware_revision: str = "0.0.0"


class RollerGatt:
    """The GATT services of the roller.

    guard: access check for every read and write.
    read_status: the STATUS value (24 bytes).
    write_control: handles a CONTROL write (the response goes out by indication).
    battery_pct: the battery level, % (0..100).
    info: Device Information strings (``info`` may be replaced later: read at each read).
    read_calibration: the CALIBRATION value (18 bytes, ``RollerCalibration``).
    """

    def __init__(self, guard: Guard, read_status: Callable[[], bytes],
                 write_control: Callable[[Connection, bytes], None],
                 battery_pct: Callable[[], int], info: DeviceInfo,
                 read_calibration: Callable[[], bytes]) -> None:
        self._guard = guard
        self._read_status = read_status
        self._read_calibration = read_calibration
        self._write_control = write_control
        self._battery_pct = battery_pct
        self.info = info

        self.stream = Characteristic(STREAM_UUID, _P.NOTIFY, _NONE,
                                     AttributeValue(read=self._not_readable))
        self.control = Characteristic(CONTROL_UUID, _P.WRITE | _P.INDICATE, _WRITE,
                                      AttributeValue(read=self._not_readable,
                                                     write=self._on_control))
        self.status = Characteristic(STATUS_UUID, _P.READ | _P.NOTIFY, _READ,
                                     AttributeValue(read=self._on_status))
        self.calibration = Characteristic(CALIBRATION_UUID, _P.READ, _READ,
                                          AttributeValue(read=self._on_calibration))
        self.battery_level = Characteristic(BATTERY_LEVEL_UUID, _P.READ | _P.NOTIFY, _READ,
                                            AttributeValue(read=self._on_battery))
        info_chars = [
            self._text(MANUFACTURER_NAME_UUID, "manufacturer"),
            self._text(MODEL_NUMBER_UUID, "model"),
            self._text(SERIAL_NUMBER_UUID, "serial"),
            self._text(HARDWARE_REVISION_UUID, "hardware_revision"),
            self._text(FIRMWARE_REVISION_UUID, "firmware_revision"),
        ]
        self.services = [
            Service(SERVICE_UUID, [self.stream, self.control, self.status,
                                   self.calibration]),
            Service(DEVICE_INFORMATION_SERVICE_UUID, info_chars),
            Service(BATTERY_SERVICE_UUID, [self.battery_level]),
        ]

    def _text(self, uuid: str, field: str) -> Characteristic:
        async def read(connection: Connection) -> bytes:
            await self._guard(connection)
            return str(getattr(self.info, field)).encode("utf-8")
        return Characteristic(uuid, _P.READ, _READ, AttributeValue(read=read))

    async def _not_readable(self, connection: Connection) -> bytes:
        raise ATT_Error(ErrorCode.READ_NOT_PERMITTED)

    async def _on_status(self, connection: Connection) -> bytes:
        await self._guard(connection)
        return self._read_status()

    async def _on_calibration(self, connection: Connection) -> bytes:
        await self._guard(connection)
        return self._read_calibration()

    async def _on_battery(self, connection: Connection) -> bytes:
        await self._guard(connection)
        return bytes((self._battery_pct(),))

    async def _on_control(self, connection: Connection, value: bytes) -> None:
        await self._guard(connection)
        self._write_control(connection, bytes(value))
