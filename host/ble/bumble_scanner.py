"""``BleakScannerBumble``: bleak's scanner interface on a Bumble Device.

Use it through bleak's facade::

    BleakScanner(service_uuids=[SERVICE_UUID], backend=BleakScannerBumble,
                 transport="tcp-client:127.0.0.1:9102", key_store="keys.json")

Extra keyword arguments (``transport``, ``key_store``) reach this backend. Each report
becomes a ``BLEDevice`` (``address`` "AA:BB:CC:DD:EE:FF", ``details`` a dict with the
Bumble address and the transport) and an ``AdvertisementData`` merged across the
device's reports, as BlueZ does.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from bleak.backends.scanner import (
    AdvertisementData,
    AdvertisementDataCallback,
    BaseBleakScanner,
)
from bleak.exc import BleakError
from bumble.device import Advertisement

from host.ble.bumble_ad import advertisement_data
from host.ble.bumble_adapter import BumbleAdapter, open_adapter

__all__ = ["BleakScannerBumble"]


class BleakScannerBumble(BaseBleakScanner):
    """bleak scanner backend on Bumble.

    detection_callback, service_uuids, scanning_mode: as ``BleakScanner``.
    transport: Bumble transport name (required).
    key_store: path of the JSON key store shared with the clients (None: the open
        adapter's or the default).
    """

    def __init__(self, detection_callback: AdvertisementDataCallback | None,
                 service_uuids: list[str] | None,
                 scanning_mode: Literal["active", "passive"] = "active", *,
                 transport: str | None = None,
                 key_store: str | os.PathLike[str] | None = None, **kwargs: Any) -> None:
        super().__init__(detection_callback, service_uuids)
        if scanning_mode not in ("active", "passive"):
            raise BleakError(f"scanning_mode must be 'active' or 'passive', not "
                             f"{scanning_mode!r}")
        self._active = scanning_mode == "active"
        self._transport = transport
        self._key_store = key_store
        self._adapter: BumbleAdapter | None = None
        self._data: dict[str, AdvertisementData] = {}

    async def start(self) -> None:
        """Start scanning (clears ``seen_devices``)."""
        if self._adapter is not None:
            return
        self.seen_devices = {}
        self._data = {}
        adapter = await open_adapter(self._transport or "", self._key_store)
        await adapter.start_scanning(self._on_advertisement, self._active)
        self._adapter = adapter

    async def stop(self) -> None:
        """Stop scanning."""
        adapter, self._adapter = self._adapter, None
        if adapter is not None:
            await adapter.stop_scanning(self._on_advertisement)

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        adapter = self._adapter
        if adapter is None:
            return
        address = advertisement.address.to_string(False)
        data = advertisement_data(advertisement.data.ad_structures, advertisement.rssi,
                                  self._data.get(address), (advertisement,))
        self._data[address] = data
        if not self.is_allowed_uuid(data.service_uuids):
            return
        details = {"source": adapter.label, "transport": adapter.transport,
                   "address": advertisement.address}
        device = self.create_or_update_device(address, address, data.local_name, details, data)
        self.call_detection_callbacks(device, data)
