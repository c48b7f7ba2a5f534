"""One Bumble Device per HCI transport, shared by every scanner and client of a process.

``open_adapter(transport, key_store)`` opens (or returns the already open)
``BumbleAdapter``: a Bumble ``Device`` powered on over any Bumble transport
(``tcp-client:127.0.0.1:9102``, ``usb:0``, ``hci-socket:0`` ...), with

- a stable host identity: a random static address kept as the namespace of the
  ``JsonKeyStore`` file, so a restarted host is the same peer to bonded rollers;
- the bonding keys in that ``JsonKeyStore`` (a host path; 0600 in a 0700 directory:
  ``host.ble.keystore``);
- shared scanning: listeners come and go, the controller scans while any is there;
- an address book of the devices seen (address type matters in LE);
- a ``LeConnector`` that never cancels a connection attempt (see bumble_connect).

Adapters live until ``close_adapters()`` (or the end of their event loop): opening an
HCI transport and powering on costs more than keeping it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from bleak.exc import BleakError
from bumble import hci
from bumble.device import Advertisement, Device, DeviceConfiguration
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport import open_transport
from bumble.transport.common import Transport

from host.ble.bumble_connect import LeConnector
from host.ble.keystore import PrivateKeyStore

__all__ = ["HOST_NAME", "BumbleAdapter", "close_adapters", "default_key_store_path",
           "lost_transports", "open_adapter"]

logger = logging.getLogger(__name__)

HOST_NAME = "smartroller-host"
"""GAP name of the host's Bumble device."""

AdvertisementListener = Callable[[Advertisement], None]


def default_key_store_path() -> Path:
    """Where bonding keys go when no path is given: the data directory
    (``host.paths.data_dir``: ``$SMARTROLLER_DATA_DIR`` or the user's)."""
    from host.paths import data_dir

    return data_dir() / "ble-keys.json"


def host_identity(key_store: Path) -> hci.Address:
    """The host's random static address: the namespace already in ``key_store`` (the
    first that is a static address, in sorted order), else a new one."""
    try:
        namespaces = sorted(json.loads(key_store.read_text(encoding="utf-8")))
    except (FileNotFoundError, ValueError, TypeError):
        namespaces = []
    for name in namespaces:
        try:
            address = hci.Address(name, hci.Address.RANDOM_DEVICE_ADDRESS)
        except ValueError:  # Bumble's InvalidArgumentError is one
            continue
        if address.is_static:
            return address
    return hci.Address.generate_static_address()


class BumbleAdapter:
    """A powered-on Bumble Device on ``transport`` (use ``open_adapter``).

    transport: Bumble transport name.
    key_store: path of the JSON key store.
    """

    def __init__(self, transport: str, key_store: Path) -> None:
        self.transport = transport
        self.key_store = key_store
        self.device: Device | None = None
        self.connector: LeConnector | None = None
        self.pairing_delegate: PairingDelegate = PairingDelegate()
        self._hci: Transport | None = None
        self._listeners: list[tuple[AdvertisementListener, bool]] = []
        self._scan_active: bool | None = None
        self._scan_lock = asyncio.Lock()
        self._addresses: dict[str, hci.Address] = {}

    @property
    def label(self) -> str:
        """The transport, for messages."""
        return f"bumble[{self.transport}]"

    async def open(self) -> None:
        """Open the transport and power the device on."""
        identity = host_identity(self.key_store)
        try:
            keystore = PrivateKeyStore(identity.to_string(False), self.key_store)
        except OSError as error:
            raise BleakError(f"{self.label}: key store {self.key_store}: "
                             f"{error.strerror or error}") from error
        try:
            self._hci = await open_transport(self.transport)
        except Exception as error:  # Bumble raises many kinds (OSError, ValueError ...)
            raise BleakError(f"{self.label}: cannot open the transport: {error}") from error
        config = DeviceConfiguration()
        config.load_from_dict({"name": HOST_NAME, "address": identity.to_string(False)})
        device = Device.from_config_with_hci(config, self._hci.source, self._hci.sink)
        device.keystore = keystore
        device.pairing_config_factory = lambda _connection: PairingConfig(
            sc=True, mitm=self.pairing_delegate.io_capability
            != PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT,
            bonding=True, delegate=self.pairing_delegate)
        device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        try:
            await asyncio.wait_for(device.power_on(), 10.0)
        except Exception as error:
            await self._hci.close()
            raise BleakError(f"{self.label}: the controller does not answer: {error}") \
                from error
        self.device = device
        self.connector = LeConnector(device, self.label)

    async def close(self) -> None:
        """Disconnect everything, stop scanning, close the transport."""
        device, self.device = self.device, None
        if self.connector is not None:
            await self.connector.close()
        if device is not None:
            if self._scan_active is not None:
                self._listeners.clear()
                self._scan_active = None
                try:
                    await device.stop_scanning()
                except Exception as error:  # closing anyway
                    logger.debug("%s: stop scanning at close: %r", self.label, error)
            for connection in list(device.connections.values()):
                try:
                    await asyncio.wait_for(connection.disconnect(), 5.0)
                except Exception as error:  # closing anyway
                    logger.debug("%s: disconnect at close: %r", self.label, error)
            try:
                await device.power_off()
            except Exception as error:  # closing anyway
                logger.debug("%s: power off: %r", self.label, error)
        if self._hci is not None:
            await self._hci.close()
            self._hci: Transport | None = None

    @property
    def lost(self) -> bool:
        """True once the HCI transport has ended (the controller's TCP peer or USB
        device went away): nothing works on this adapter any more."""
        return self._hci is not None and self._hci.source.terminated.done()

    def require_device(self) -> Device:
        """The device; BleakError if closed."""
        if self.device is None:
            raise BleakError(f"{self.label}: closed")
        return self.device

    # ------------------------------------------------------------------ addresses

    def remember(self, address: hci.Address) -> None:
        """Note the type of an address seen advertising."""
        self._addresses[address.to_string(False)] = address

    def known_address(self, text: str) -> hci.Address | None:
        """The address seen for ``text`` (``AA:BB:..``, ``/P`` for public), or None."""
        if text.upper().endswith("/P"):
            return hci.Address(text)
        return self._addresses.get(text.upper())

    async def bonded(self, address: hci.Address) -> bool:
        """True if the key store holds keys for ``address``."""
        keystore = self.require_device().keystore
        return keystore is not None and await keystore.get(str(address)) is not None

    async def bonded_address(self, text: str) -> hci.Address | None:
        """The bonded peer named ``text`` with its stored address type, or None."""
        keystore = self.require_device().keystore
        keys = await keystore.get(text.upper()) if keystore is not None else None
        if keys is None:
            return None
        address_type = keys.address_type
        if address_type is None:
            address_type = hci.Address.RANDOM_DEVICE_ADDRESS
        return hci.Address(text.upper(), hci.AddressType(address_type))

    async def find(self, text: str, timeout: float) -> hci.Address | None:
        """Scan up to ``timeout`` s for the device whose address is ``text``."""
        if (address := self.known_address(text)) is not None:
            return address
        found: asyncio.Future[hci.Address] = asyncio.get_running_loop().create_future()

        def listener(advertisement: Advertisement) -> None:
            if advertisement.address.to_string(False) == text.upper() and not found.done():
                found.set_result(advertisement.address)

        await self.start_scanning(listener, active=False)
        try:
            return await asyncio.wait_for(found, timeout)
        except TimeoutError:
            return None
        finally:
            await self.stop_scanning(listener)

    # ------------------------------------------------------------------ scanning

    async def start_scanning(self, listener: AdvertisementListener, active: bool) -> None:
        """Deliver advertisements to ``listener`` until ``stop_scanning``; the controller
        scans actively while any listener wants it."""
        async with self._scan_lock:
            self._listeners.append((listener, active))
            await self._update_scanning()

    async def stop_scanning(self, listener: AdvertisementListener) -> None:
        """Stop delivering to ``listener``; the controller stops when none is left."""
        async with self._scan_lock:
            self._listeners = [(f, a) for f, a in self._listeners if f is not listener]
            await self._update_scanning()

    async def _update_scanning(self) -> None:
        device = self.device
        if device is None:
            return
        want = any(active for _, active in self._listeners) if self._listeners else None
        if want == self._scan_active:
            return
        if self._scan_active is not None:
            await device.stop_scanning()
        if want is not None:
            await device.start_scanning(active=want, filter_duplicates=False)
        self._scan_active = want

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        self.remember(advertisement.address)
        for listener, _ in list(self._listeners):
            try:
                listener(advertisement)
            except Exception:  # one listener must not break the others
                logger.exception("%s: advertisement listener failed", self.label)


_adapters: dict[str, tuple[asyncio.AbstractEventLoop, BumbleAdapter]] = {}
_opening: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[BumbleAdapter]]] = {}


async def open_adapter(transport: str, key_store: str | os.PathLike[str] | None = None
                       ) -> BumbleAdapter:
    """The process's adapter on ``transport``, opened on first use.

    key_store: JSON key store path; None takes the open adapter's, or
    ``default_key_store_path()``. A different path than the open adapter's is a
    BleakError (the key store names the host's identity).
    """
    if not transport or not isinstance(transport, str):
        raise BleakError("the Bumble backend needs transport='<bumble transport>', "
                         "e.g. 'tcp-client:127.0.0.1:9102' or 'usb:0'")
    loop = asyncio.get_running_loop()
    if transport in _adapters and _adapters[transport][0] is not loop:
        del _adapters[transport]  # its event loop is gone (an earlier asyncio.run)
    if transport in _opening and _opening[transport][0] is not loop:
        del _opening[transport]
    wanted = Path(key_store).expanduser().resolve() if key_store is not None else None
    if transport in _adapters:
        adapter = _adapters[transport][1]
    elif transport in _opening:
        adapter = await asyncio.shield(_opening[transport][1])
    else:
        pending: asyncio.Future[BumbleAdapter] = loop.create_future()
        _opening[transport] = (loop, pending)
        adapter = BumbleAdapter(transport, wanted or default_key_store_path())
        try:
            await adapter.open()
        except BaseException as error:
            pending.set_exception(error)
            pending.exception()  # retrieved: only concurrent openers care
            raise
        finally:
            _opening.pop(transport, None)
        _adapters[transport] = (loop, adapter)
        pending.set_result(adapter)
    if wanted is not None and wanted != adapter.key_store:
        raise BleakError(f"{adapter.label} already uses the key store {adapter.key_store}, "
                         f"not {wanted}")
    return adapter


def lost_transports() -> list[str]:
    """The transports of this event loop's adapters that have ended (see ``lost``)."""
    loop = asyncio.get_running_loop()
    return [t for t, (lp, adapter) in _adapters.items() if lp is loop and adapter.lost]


async def close_adapters() -> None:
    """Close every adapter of the running event loop."""
    loop = asyncio.get_running_loop()
    for transport in [t for t, (lp, _) in _adapters.items() if lp is loop]:
        _, adapter = _adapters.pop(transport)
        await adapter.close()
