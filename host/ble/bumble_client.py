"""``BleakClientBumble``: bleak's client interface on a Bumble Device.

Use it through bleak's facade (or bleak-retry-connector's ``establish_connection``)::

    BleakClient(device, backend=BleakClientBumble,
                transport="tcp-client:127.0.0.1:9102", key_store="keys.json")

Behaviour, as bleak's own backends:

- ``connect(timeout=...)`` finds the device (an address string is looked up in what the
  adapter has seen, in the bonds, else scanned for), connects, exchanges the MTU
  (``mtu`` keyword, default 517), encrypts with the stored bond if there is one (or
  pairs when ``BleakClient(pair=True)``), discovers services into ``self.services``.
  Timeouts raise ``asyncio.TimeoutError``; a device never seen ``BleakDeviceNotFoundError``.
- ``pair()`` pairs with LE Secure Connections and bonding (Just Works unless a
  ``pairing_delegate`` with I/O capabilities is given); the keys go to the adapter's
  ``JsonKeyStore`` (``key_store`` keyword: a host path).
- notifications and indications are delivered by calling the callback with a
  ``bytearray``; notify is preferred when a characteristic has both.
- the disconnected callback runs on every disconnection after a successful connect,
  asked for or not (as BlueZ does).
- ATT error responses raise ``BleakGATTProtocolError``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from bleak.args import SizedBuffer
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bumble import hci
from bumble.device import Connection
from bumble.pairing import PairingDelegate

from host.ble.bumble_adapter import BumbleAdapter, open_adapter
from host.ble.bumble_gatt import bumble_call, discover

__all__ = ["DEFAULT_MTU", "BleakClientBumble"]

logger = logging.getLogger(__name__)

DEFAULT_MTU = 517
"""ATT MTU asked for at connection, bytes (the peer may settle for less)."""
_ATT_DEFAULT_MTU = 23
_CCCD_UUID = "00002902-0000-1000-8000-00805f9b34fb"


class BleakClientBumble(BaseBleakClient):
    """bleak client backend on Bumble (see the module docstring).

    address_or_ble_device: a ``BLEDevice`` from ``BleakScannerBumble`` or an address
        ("AA:BB:CC:DD:EE:FF", "/P" suffix for a public one).
    services: only discover these service UUIDs (bleak passes them normalised).
    transport: Bumble transport (default: the one the BLEDevice was seen on).
    key_store: JSON key store path (None: the open adapter's, or the default).
    mtu: ATT MTU to ask for, bytes.
    pairing_delegate: Bumble ``PairingDelegate`` for pairing (default: Just Works).
    """

    def __init__(self, address_or_ble_device: BLEDevice | str,
                 services: set[str] | None = None, *,
                 disconnected_callback: Any = None, timeout: float = 10.0,
                 transport: str | None = None,
                 key_store: str | os.PathLike[str] | None = None, mtu: int = DEFAULT_MTU,
                 pairing_delegate: PairingDelegate | None = None, **kwargs: Any) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback,
                         timeout=timeout)
        details: dict[str, Any] = {}
        self._name: str | None = None
        if isinstance(address_or_ble_device, BLEDevice):
            self._name = address_or_ble_device.name
            if isinstance(address_or_ble_device.details, dict):
                details = address_or_ble_device.details
        self._transport = transport or details.get("transport")
        self._hint: hci.Address | None = details.get("address")
        self._key_store = key_store
        self._services_filter = services
        self._mtu = mtu
        self._pairing_delegate = pairing_delegate
        self._adapter: BumbleAdapter | None = None
        self._connection: Connection | None = None
        self._subscribers: dict[int, Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ properties

    @property
    def name(self) -> str:
        """The advertised name, else the address with dashes."""
        return self._name or self.address.replace(":", "-")

    @property
    def mtu_size(self) -> int:
        """The negotiated ATT MTU, bytes (23 when not connected)."""
        return self._connection.att_mtu if self._connection else _ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        """True while the link is up."""
        return self._connection is not None

    # ------------------------------------------------------------------ connection

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        """Connect, secure (bond or ``pair``), discover services; see the module."""
        if self._connection is not None:
            raise BleakError("Client is already connected")
        timeout = float(kwargs.get("timeout", self._timeout))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        adapter = await open_adapter(self._transport or "", self._key_store)
        if self._pairing_delegate is not None:
            adapter.pairing_delegate = self._pairing_delegate
        peer = await self._resolve(adapter, timeout)
        connector = adapter.connector
        assert connector is not None
        connection = await connector.connect(peer, max(deadline - loop.time(), 0.0))
        self._adapter = adapter
        self._attach(connection)
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 0.5)):
                await self._setup(connection, pair)
        except BaseException:
            self._detach(connection)
            if connection.handle in adapter.require_device().connections:
                asyncio.ensure_future(_disconnect(connection))
            raise

    async def _resolve(self, adapter: BumbleAdapter, timeout: float) -> hci.Address:
        if self._hint is not None:
            return self._hint
        address = adapter.known_address(self.address) or await adapter.bonded_address(
            self.address) or await adapter.find(self.address, timeout)
        if address is None:
            raise BleakDeviceNotFoundError(
                self.address, f"Device with address {self.address} was not found.")
        return address

    async def _setup(self, connection: Connection, pair: bool) -> None:
        try:
            await bumble_call(connection.gatt_client.request_mtu(self._mtu), "MTU exchange")
        except BleakGATTProtocolError as error:
            logger.info("%s: MTU exchange refused (%s); using 23", self.address, error)
        adapter = self._adapter
        assert adapter is not None
        if await adapter.bonded(connection.peer_address):
            try:
                await bumble_call(connection.encrypt(), "encryption")
            except BleakError as error:
                logger.warning("%s: encryption with the stored bond failed: %s",
                               self.address, error)
                if pair:
                    await self._pair(connection)
        elif pair:
            await self._pair(connection)
        self.services = await discover(connection.gatt_client, self._services_filter,
                                       lambda: connection.att_mtu)

    def _attach(self, connection: Connection) -> None:
        self._connection = connection
        connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        connection.on(Connection.EVENT_SECURITY_REQUEST, self._on_security_request)

    def _detach(self, connection: Connection) -> None:
        connection.remove_listener(Connection.EVENT_DISCONNECTION, self._on_disconnection)
        connection.remove_listener(Connection.EVENT_SECURITY_REQUEST,
                                   self._on_security_request)
        if self._connection is connection:
            self._connection = None
            self._subscribers.clear()
            self.services = None

    def _on_disconnection(self, reason: int) -> None:
        connection = self._connection
        if connection is None:
            return
        logger.debug("%s: disconnected (reason %s)", self.address, reason)
        self._detach(connection)
        if self._disconnected_callback is not None:
            try:
                self._disconnected_callback()
            except Exception:  # the callback is the user's
                logger.exception("%s: disconnected callback failed", self.address)

    def _on_security_request(self, _auth_req: int) -> None:
        connection = self._connection
        if connection is None or connection.is_encrypted:
            return

        async def secure() -> None:
            adapter = self._adapter
            if adapter is not None and await adapter.bonded(connection.peer_address):
                try:
                    await bumble_call(connection.encrypt(), "encryption")
                except BleakError as error:
                    logger.warning("%s: encryption on request failed: %s", self.address, error)
            else:
                logger.info("%s: peer asks for security; not bonded, call pair()",
                            self.address)

        task = asyncio.ensure_future(secure())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def disconnect(self) -> None:
        """Disconnect (the disconnected callback runs)."""
        connection = self._connection
        if connection is None:
            return
        try:
            await asyncio.wait_for(bumble_call(connection.disconnect(), "disconnect"), 10.0)
        except BleakError as error:  # already gone
            logger.debug("%s: disconnect: %s", self.address, error)
        if self._connection is connection:  # no disconnection event came
            self._on_disconnection(hci.HCI_CONNECTION_TERMINATED_BY_LOCAL_HOST_ERROR)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Pair and bond (or encrypt with the existing bond); keys go to the key store."""
        connection = self._require()
        timeout = float(kwargs.get("timeout", self._timeout))
        async with asyncio.timeout(timeout):
            await self._pair(connection)

    async def _pair(self, connection: Connection) -> None:
        adapter = self._adapter
        assert adapter is not None
        if await adapter.bonded(connection.peer_address):
            if connection.is_encrypted:
                return
            try:
                await bumble_call(connection.encrypt(), "encryption")
                return
            except BleakError as error:
                logger.warning("%s: stored bond refused (%s); pairing again", self.address,
                               error)
            if self._connection is not connection:
                raise BleakError(f"{self.address}: the link was lost")
        await bumble_call(connection.pair(), "pairing")

    async def unpair(self) -> None:
        """Forget the bond (delete its keys) and disconnect."""
        adapter = await open_adapter(self._transport or "", self._key_store)
        keystore = adapter.require_device().keystore
        connection = self._connection
        names = {self.address.upper()}
        if connection is not None:
            names.add(str(connection.peer_address))
        for name in names:
            if keystore is not None and await keystore.get(name) is not None:
                await keystore.delete(name)
        await self.disconnect()

    def _require(self) -> Connection:
        if self._connection is None:
            raise BleakError("Not connected")
        return self._connection

    # ------------------------------------------------------------------ GATT

    async def read_gatt_char(self, characteristic: BleakGATTCharacteristic, *,
                             use_cached: bool = False, **kwargs: Any) -> bytearray:
        """Read a characteristic value (long values included)."""
        client = self._require().gatt_client
        if use_cached and (cached := client.cached_values.get(characteristic.handle)):
            return bytearray(cached[1])
        value = await bumble_call(client.read_value(characteristic.handle),
                                  f"read {characteristic.uuid}")
        return bytearray(value)

    async def read_gatt_descriptor(self, descriptor: BleakGATTDescriptor, *,
                                   use_cached: bool = False, **kwargs: Any) -> bytearray:
        """Read a descriptor value."""
        client = self._require().gatt_client
        if use_cached and (cached := client.cached_values.get(descriptor.handle)):
            return bytearray(cached[1])
        value = await bumble_call(client.read_value(descriptor.handle),
                                  f"read descriptor {descriptor.uuid}")
        return bytearray(value)

    async def write_gatt_char(self, characteristic: BleakGATTCharacteristic,
                              data: SizedBuffer, response: bool) -> None:
        """Write a value, with response (a request) or without (a command)."""
        connection = self._require()
        value = bytes(data)
        if not response and len(value) > connection.att_mtu - 3:
            raise BleakError(f"{len(value)} bytes exceed the write-without-response size "
                             f"{connection.att_mtu - 3}")
        await bumble_call(connection.gatt_client.write_value(
            characteristic.handle, value, with_response=response),
            f"write {characteristic.uuid}")

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor,
                                    data: SizedBuffer) -> None:
        """Write a descriptor value (with response)."""
        client = self._require().gatt_client
        await bumble_call(client.write_value(descriptor.handle, bytes(data), with_response=True),
                          f"write descriptor {descriptor.uuid}")

    async def start_notify(self, characteristic: BleakGATTCharacteristic,
                           callback: NotifyCallback, **kwargs: Any) -> None:
        """Enable notifications (or indications) and deliver each value to ``callback``."""
        client = self._require().gatt_client
        if not {"notify", "indicate"} & set(characteristic.properties):
            raise BleakError(f"Characteristic {characteristic.uuid} does not support "
                             "notifications or indications")
        if characteristic.get_descriptor(_CCCD_UUID) is None:
            raise BleakError(f"Characteristic {characteristic.uuid} has no CCCD")

        def subscriber(value: bytes) -> None:
            try:
                callback(bytearray(value))
            except Exception:  # the callback is the user's
                logger.exception("%s: notification callback failed", self.address)

        if (old := self._subscribers.pop(characteristic.handle, None)) is not None:
            client.notification_subscribers.get(characteristic.handle, set()).discard(old)
            client.indication_subscribers.get(characteristic.handle, set()).discard(old)
        self._subscribers[characteristic.handle] = subscriber
        await bumble_call(client.subscribe(characteristic.obj, subscriber, prefer_notify=True),
                          f"subscribe {characteristic.uuid}")

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        """Disable notifications/indications of ``characteristic``."""
        client = self._require().gatt_client
        subscriber = self._subscribers.pop(characteristic.handle, None)
        if subscriber is None:
            return
        await bumble_call(client.unsubscribe(characteristic.obj, subscriber),
                          f"unsubscribe {characteristic.uuid}")


async def _disconnect(connection: Connection) -> None:
    try:
        await asyncio.wait_for(bumble_call(connection.disconnect(), "disconnect"), 5.0)
    except (BleakError, TimeoutError) as error:
        logger.debug("disconnect after a failed setup: %s", error)
