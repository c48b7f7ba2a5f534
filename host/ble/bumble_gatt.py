"""Bumble GATT client results -> bleak's GATT objects, Bumble errors -> bleak's.

``discover(client, uuids, mtu)`` walks the peer's services, characteristics and
descriptors and builds a ``BleakGATTServiceCollection`` whose objects carry the Bumble
proxies in ``obj``. ``bumble_call`` awaits a Bumble operation and raises what bleak's
backends raise: ``BleakGATTProtocolError`` for an ATT error response,
``asyncio.TimeoutError`` for timeouts, ``BleakError`` for the rest (a link lost under
an operation included: Bumble cancels it, which is not our caller's cancellation).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

from bleak.assigned_numbers import gatt_char_props_to_strs
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakError, BleakGATTProtocolError
from bumble import att, core, hci
from bumble.core import UUID
from bumble.gatt_client import Client

from host.ble.bumble_ad import uuid_from_le_bytes

__all__ = ["bumble_call", "bumble_uuid", "bleak_uuid", "discover"]

_T = TypeVar("_T")


def bleak_uuid(value: UUID) -> str:
    """A Bumble UUID -> bleak's 128-bit lower-case string."""
    return uuid_from_le_bytes(value.uuid_128_bytes)


def bumble_uuid(value: str) -> UUID:
    """bleak's UUID string -> a Bumble UUID (16-bit ones become 16-bit again)."""
    text = value.lower()
    if text.startswith("0000") and text.endswith("-0000-1000-8000-00805f9b34fb"):
        return UUID.from_16_bits(int(text[4:8], 16))
    return UUID(text)


async def bumble_call(awaitable: Awaitable[_T], what: str) -> _T:
    """Await a Bumble operation, translating its errors into bleak's."""
    try:
        return await awaitable
    except att.ATT_Error as error:
        raise BleakGATTProtocolError(error.error_code) from error
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise BleakError(f"{what}: the link was lost") from None
    except (core.TimeoutError, core.CommandTimeoutError, TimeoutError) as error:
        raise TimeoutError(f"{what}: timed out") from error
    except (hci.HCI_Error, core.BaseBumbleError) as error:
        raise BleakError(f"{what}: {error}") from error


async def discover(client: Client, uuids: Iterable[str] | None,
                   mtu: Callable[[], int]) -> BleakGATTServiceCollection:
    """Discover services (only ``uuids`` when given), their characteristics and
    descriptors. ``mtu`` gives the current ATT MTU (for write-without-response sizes)."""
    wanted = [bumble_uuid(u) for u in uuids] if uuids else []
    collection = BleakGATTServiceCollection()
    services = await bumble_call(client.discover_services(wanted), "service discovery")
    for service in services:
        bleak_service = BleakGATTService(service, service.handle, bleak_uuid(service.uuid))
        collection.add_service(bleak_service)
        characteristics = await bumble_call(client.discover_characteristics([], service),
                                            "characteristic discovery")
        for characteristic in characteristics:
            properties = sorted(gatt_char_props_to_strs(int(characteristic.properties) & 0xFF))
            bleak_char = BleakGATTCharacteristic(
                characteristic, characteristic.handle, bleak_uuid(characteristic.uuid),
                properties,  # type: ignore[arg-type]
                lambda: mtu() - 3, bleak_service)
            collection.add_characteristic(bleak_char)
            descriptors = await bumble_call(client.discover_descriptors(characteristic),
                                            "descriptor discovery")
            for descriptor in descriptors:
                collection.add_descriptor(BleakGATTDescriptor(
                    descriptor, descriptor.handle, bleak_uuid(descriptor.type), bleak_char))
    return collection
