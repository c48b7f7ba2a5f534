"""Advertising data (AD structures) -> bleak's ``AdvertisementData``.

Pure: no Bumble objects, only ``(ad_type, bytes)`` pairs as Bumble's
``AdvertisingData.ad_structures`` holds them. Like BlueZ, successive reports of one
device (advertisement, scan response) are merged: the newest local name and TX power,
the union of service UUIDs, manufacturer and service data updated per key.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable
from typing import Any

from bleak.backends.scanner import AdvertisementData

__all__ = ["AD_TYPE", "advertisement_data", "uuid_from_le_bytes"]

AD_TYPE = {
    "uuid16": (0x02, 0x03), "uuid32": (0x04, 0x05), "uuid128": (0x06, 0x07),
    "name": (0x08, 0x09), "tx_power": (0x0A,), "service_data16": (0x16,),
    "service_data32": (0x20,), "service_data128": (0x21,), "manufacturer": (0xFF,),
}
"""Assigned numbers (Bluetooth Core Supplement, part A) of the AD types used here."""

_BASE = "-0000-1000-8000-00805f9b34fb"


def uuid_from_le_bytes(data: bytes) -> str:
    """A 16-, 32- or 128-bit UUID in little-endian bytes -> bleak's lower-case string."""
    if len(data) == 2:
        return f"0000{struct.unpack('<H', data)[0]:04x}{_BASE}"
    if len(data) == 4:
        return f"{struct.unpack('<I', data)[0]:08x}{_BASE}"
    if len(data) == 16:
        return str(uuid.UUID(bytes=bytes(reversed(data))))
    raise ValueError(f"a UUID is 2, 4 or 16 bytes, not {len(data)}")


def _uuid_list(data: bytes, size: int) -> list[str]:
    return [uuid_from_le_bytes(data[i:i + size]) for i in range(0, len(data) - size + 1, size)]


def advertisement_data(structures: Iterable[tuple[int, bytes]], rssi: int,
                       previous: AdvertisementData | None = None,
                       platform_data: tuple[Any, ...] = ()) -> AdvertisementData:
    """bleak's ``AdvertisementData`` of one report's AD ``structures`` (type, value),
    merged into the ``previous`` data of the same device if given. rssi in dBm."""
    name = previous.local_name if previous else None
    tx_power = previous.tx_power if previous else None
    manufacturer = dict(previous.manufacturer_data) if previous else {}
    service_data = dict(previous.service_data) if previous else {}
    service_uuids = list(previous.service_uuids) if previous else []
    short_name: str | None = None
    for ad_type, value in structures:
        value = bytes(value)
        if ad_type in AD_TYPE["uuid16"]:
            service_uuids += _uuid_list(value, 2)
        elif ad_type in AD_TYPE["uuid32"]:
            service_uuids += _uuid_list(value, 4)
        elif ad_type in AD_TYPE["uuid128"]:
            service_uuids += _uuid_list(value, 16)
        elif ad_type == AD_TYPE["name"][1]:
            name = value.decode("utf-8", errors="replace")
        elif ad_type == AD_TYPE["name"][0]:
            short_name = value.decode("utf-8", errors="replace")
        elif ad_type in AD_TYPE["tx_power"] and len(value) == 1:
            tx_power = struct.unpack("<b", value)[0]
        elif ad_type in AD_TYPE["manufacturer"] and len(value) >= 2:
            manufacturer[struct.unpack_from("<H", value)[0]] = value[2:]
        elif ad_type in AD_TYPE["service_data16"] and len(value) >= 2:
            service_data[uuid_from_le_bytes(value[:2])] = value[2:]
        elif ad_type in AD_TYPE["service_data32"] and len(value) >= 4:
            service_data[uuid_from_le_bytes(value[:4])] = value[4:]
        elif ad_type in AD_TYPE["service_data128"] and len(value) >= 16:
            service_data[uuid_from_le_bytes(value[:16])] = value[16:]
    if name is None:
        name = short_name
    return AdvertisementData(
        local_name=name, manufacturer_data=manufacturer, service_data=service_data,
        service_uuids=list(dict.fromkeys(service_uuids)), tx_power=tx_power, rssi=rssi,
        platform_data=platform_data)
