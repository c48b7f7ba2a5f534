"""bleak backend on Bumble: the scanner, the client and the adapter registry.

    from bleak import BleakClient, BleakScanner
    from host.ble.bumble_backend import BleakClientBumble, BleakScannerBumble

    devices = await BleakScanner.discover(service_uuids=[SERVICE_UUID],
                                          backend=BleakScannerBumble, transport=T)
    async with BleakClient(devices[0], backend=BleakClientBumble, transport=T,
                           key_store="keys.json") as client: ...

One Bumble Device per transport is shared by every scanner and client of the process
(``bumble_adapter``); ``close_adapters()`` closes them. docs/host-ble.md has the details.
"""

from host.ble.bumble_adapter import BumbleAdapter, close_adapters, open_adapter
from host.ble.bumble_client import BleakClientBumble
from host.ble.bumble_scanner import BleakScannerBumble

__all__ = ["BleakClientBumble", "BleakScannerBumble", "BumbleAdapter", "close_adapters",
           "open_adapter"]
