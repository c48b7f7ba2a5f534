"""Finding and pairing rollers with bleak's public API, on any bleak backend.

``BleBackend`` says which backend to use: bleak's native one for the platform
(``BleBackend.native()``) or the Bumble one on a transport (``BleBackend.bumble(T)``).
``scan_rollers`` lists the rollers advertising ``SERVICE_UUID``; ``find_roller`` finds
one by address; ``pair_roller`` bonds with one and reads its STATUS and CALIBRATION.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bleak import BleakClient, BleakScanner
from bleak.backends.client import BaseBleakClient
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, BaseBleakScanner
from bleak.exc import BleakCharacteristicNotFoundError, BleakDeviceNotFoundError, BleakError
from bleak_retry_connector import establish_connection

from firmware.protocol import (
    CALIBRATION_UUID,
    SERVICE_UUID,
    STATUS_UUID,
    ProtocolError,
    RollerCalibration,
    Status,
)

__all__ = ["BleBackend", "FoundRoller", "RollerIncompatible", "find_roller", "pair_roller",
           "read_calibration", "read_status", "scan_rollers"]

logger = logging.getLogger(__name__)


class RollerIncompatible(BleakError):
    """The roller speaks another protocol version (or not ours at all): update."""


@dataclass(frozen=True)
class BleBackend:
    """Which bleak backend to use.

    scanner, client: backend classes (None: bleak's native backend for the platform).
    kwargs: extra keyword arguments for ``BleakScanner`` and ``BleakClient`` (e.g.
        ``transport`` and ``key_store`` for Bumble, ``bluez`` for BlueZ).
    """

    scanner: type[BaseBleakScanner] | None = None
    client: type[BaseBleakClient] | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def native(cls, adapter: str | None = None) -> BleBackend:
        """bleak's backend for this platform; ``adapter`` e.g. "hci1" (BlueZ only)."""
        return cls(kwargs={"bluez": {"adapter": adapter}} if adapter else {})

    @classmethod
    def bumble(cls, transport: str, key_store: str | os.PathLike[str] | None = None
               ) -> BleBackend:
        """The Bumble backend on ``transport`` (e.g. "tcp-client:127.0.0.1:9102", "usb:0"),
        bonds kept in the JSON file ``key_store`` (None: the default path)."""
        from host.ble.bumble_backend import BleakClientBumble, BleakScannerBumble

        kwargs: dict[str, Any] = {"transport": transport}
        if key_store is not None:
            kwargs["key_store"] = key_store
        return cls(BleakScannerBumble, BleakClientBumble, kwargs)

    def scanner_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``BleakScanner``."""
        return {"backend": self.scanner, **self.kwargs}

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``BleakClient`` / ``establish_connection``."""
        return {"backend": self.client, **self.kwargs}


@dataclass(frozen=True)
class FoundRoller:
    """A roller seen advertising.

    address: its Bluetooth address (a UUID on macOS).
    name: advertised name, None if none.
    rssi: signal strength, dBm.
    device: bleak's ``BLEDevice``, to connect without scanning again.
    """

    address: str
    name: str | None
    rssi: int
    device: BLEDevice


async def scan_rollers(timeout_s: float = 5.0, backend: BleBackend | None = None,
                       on_found: Callable[[FoundRoller], None] | None = None
                       ) -> list[FoundRoller]:
    """The rollers advertising ``SERVICE_UUID`` within ``timeout_s``, strongest first
    (each with its latest signal strength); ``on_found`` is called with each one the
    moment it is first seen."""
    backend = backend or BleBackend()
    seen: dict[str, FoundRoller] = {}

    def detected(device: BLEDevice, adv: AdvertisementData) -> None:
        if SERVICE_UUID not in [u.lower() for u in adv.service_uuids]:
            return
        first = device.address not in seen
        seen[device.address] = FoundRoller(device.address, adv.local_name or device.name,
                                           adv.rssi, device)
        if first and on_found is not None:
            on_found(seen[device.address])

    async with BleakScanner(detected, service_uuids=[SERVICE_UUID],
                            **backend.scanner_kwargs()):
        await asyncio.sleep(timeout_s)
    return sorted(seen.values(), key=lambda r: (-r.rssi, r.address))


async def find_roller(address: str, timeout_s: float = 10.0,
                      backend: BleBackend | None = None) -> BLEDevice:
    """The roller with ``address``, seen advertising within ``timeout_s``.

    BleakDeviceNotFoundError if it was not seen.
    """
    backend = backend or BleBackend()
    device = await BleakScanner.find_device_by_address(address, timeout=timeout_s,
                                                       **backend.scanner_kwargs())
    if device is None:
        raise BleakDeviceNotFoundError(address, f"no roller {address} seen advertising "
                                                f"within {timeout_s:g} s")
    return device


async def read_status(client: BleakClient) -> Status:
    """Read STATUS (works at any MTU); RollerIncompatible for another protocol version."""
    value = bytes(await client.read_gatt_char(STATUS_UUID))
    try:
        return Status.decode(value)
    except ProtocolError as error:
        raise RollerIncompatible(f"{error}: update the roller or this host") from error


async def read_calibration(client: BleakClient) -> RollerCalibration | None:
    """Read CALIBRATION: what the roller learned of its parts. None from a roller without
    it (an older firmware) or with a value this host cannot read (logged: the roller
    works without it being shown)."""
    try:
        value = bytes(await client.read_gatt_char(CALIBRATION_UUID))
    except BleakCharacteristicNotFoundError:
        return None
    try:
        return RollerCalibration.decode(value)
    except ProtocolError as error:
        logger.warning("the roller's CALIBRATION is unreadable (%s): not shown", error)
        return None


async def pair_roller(address: str | BLEDevice, backend: BleBackend | None = None,
                      timeout_s: float = 30.0) -> tuple[Status, RollerCalibration | None]:
    """Bond with the roller (it must be in its pairing window); read its STATUS and its
    CALIBRATION (None: see ``read_calibration``).

    The bond's keys stay with the backend (the Bumble backend's key store, or the OS).
    """
    backend = backend or BleBackend()
    device = address if isinstance(address, BLEDevice) else await find_roller(
        address, timeout_s, backend)
    client = await establish_connection(BleakClient, device, device.name or device.address,
                                        max_attempts=2, timeout=timeout_s,
                                        **backend.client_kwargs())
    try:
        await client.pair()
        status = await read_status(client)
        return status, await read_calibration(client)
    finally:
        await client.disconnect()
