"""The roller's GATT server on a Bumble ``Device``: advertising, security, streaming.

``RollerServer(device, firmware, journal, keystore_path=...)`` attaches to a Bumble
device (real controller on a Pi, virtual one in simulation) and to the running
``Firmware``. ``await start()`` powers the device on, names it ``smartroller-XXXX``
(last two bytes of its address), advertises, and from then on every firmware frame
goes to the journal and, at every drain (20 ms), to each authorised host.

A host is *authorised* when its link is encrypted with a bonded key the roller
serves (Secure Connections; authenticated by passkey in passkey mode). Every read
and write is decided by the attribute table of ``access.py`` before Bumble sees it
(only authorised hosts read the roller's values or write anything), and only
authorised hosts get notifications and indications: every send is gated here too.
Unauthorised connections are dropped after ``unauthorised_timeout_s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from bumble import hci
from bumble.att import ATT_Error, ATT_Handle_Value_Notification, ErrorCode
from bumble.core import UUID, AdvertisingData, PhysicalTransport
from bumble.device import Connection, Device
from bumble.gatt import GATT_DEVICE_NAME_CHARACTERISTIC, Characteristic
from bumble.keys import PairingKeys

import firmware
from firmware.ble.access import AttributeFirewall
from firmware.ble.acks import HostAcks
from firmware.ble.control import ControlPoint, Session, seq_or_none
from firmware.ble.keystore import PrivateKeyStore
from firmware.ble.pairing import (
    PAIRING_WINDOW_S,
    PairingWindow,
    RollerPairingDelegate,
    bond_is_valid,
    check_passkey,
    pairing_config,
)
from firmware.ble.services import DeviceInfo, RollerGatt
from firmware.ble.stream import BackfillPacing, HostStream
from firmware.drivers.panel import LedState
from firmware.protocol import (
    DEVICE_NAME_PREFIX,
    NO_SEQ,
    SERVICE_UUID,
    Frame,
    FrameFlag,
    Response,
    RollerFault,
    RollerState,
    Status,
)

if TYPE_CHECKING:
    from firmware.app import Firmware
    from firmware.journal import Journal

log = logging.getLogger("smartroller.ble")

JOURNAL_FLUSH_S = 1.0
"""The server flushes the journal (write + fsync) this often, firmware clock s."""
HOUSEKEEPING_S = 0.1
"""Period of the pairing-window / status / idle-link checks when no frames come, s."""
_CCCD_NOTIFY, _CCCD_INDICATE = 0x01, 0x02
HOST_ACKS_NAME = "host-acks.json"
"""The per-host acknowledgement marks, next to the key store (``acks.py``)."""


def roller_name(address: hci.Address) -> str:
    """``smartroller-XXXX``: the last two bytes of the address, lower-case hex."""
    octets = address.to_string(False).split(":")
    return f"{DEVICE_NAME_PREFIX}-{octets[-2]}{octets[-1]}".lower()


def advertising_data() -> bytes:
    """Flags (LE general discoverable, no BR/EDR) and the roller's service UUID."""
    return bytes(AdvertisingData([
        (AdvertisingData.FLAGS, bytes((0x06,))),
        (AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
         bytes(UUID(SERVICE_UUID))),
    ]))


def scan_response_data(name: str) -> bytes:
    """The complete local name (legacy advertising data holds 31 bytes: not both)."""
    return bytes(AdvertisingData([(AdvertisingData.COMPLETE_LOCAL_NAME, name.encode())]))


class HostLink:
    """One connected central and what the roller keeps for it.

    connection: the Bumble connection. stream: its frame stream.
    connected_at: loop time of the connection, s.
    """

    def __init__(self, connection: Connection, stream: HostStream, connected_at: float) -> None:
        self.connection = connection
        self.stream = stream
        self.connected_at = connected_at
        self.authorised = False

    @property
    def mtu(self) -> int:
        """The connection's ATT MTU, bytes."""
        return int(self.connection.att_mtu)

    @property
    def identity(self) -> str:
        """The peer's identity address (resolved from its IRK once bonded)."""
        return str(self.connection.peer_address)


class RollerServer:
    """GATT server of the roller (see the module doc).

    device: Bumble device (not yet powered on, or powered on: ``start`` copes).
    firmware: the running firmware. journal: ``firmware.journal.Journal``.
    keystore_path: JSON file of the bonds (Bumble's format, kept 0600 in a 0700 directory:
        ``PrivateKeyStore``); kept across restarts.
    passkey: static 6-digit passkey: pairing then needs it (MITM protection); None:
        Just Works.
    pairing_window_s: how long ``open_pairing_window`` opens it, s.
    pacing: backfill pacing. battery_pct: battery level source, % (None: unknown; default:
        the firmware's fuel gauge).
    hardware_revision: Device Information hardware revision string.
    max_connections: keep advertising while fewer hosts are connected.
    unauthorised_timeout_s: drop a connection not authorised after this long, s.
    advertising_interval_ms: advertising interval, ms.
    """

    def __init__(self, device: Device, firmware: Firmware, journal: Journal, *,
                 keystore_path: str | Path, passkey: int | None = None,
                 pairing_window_s: float = PAIRING_WINDOW_S,
                 pacing: BackfillPacing | None = None,
                 battery_pct: Callable[[], float | None] | None = None,
                 hardware_revision: str = "A", max_connections: int = 2,
                 unauthorised_timeout_s: float = 30.0,
                 advertising_interval_ms: float = 100.0) -> None:
        self.device = device
        self.firmware = firmware
        self.journal = journal
        self.passkey = check_passkey(passkey)
        self.window = PairingWindow(pairing_window_s)
        self.pacing = pacing or BackfillPacing()
        self.battery_pct = battery_pct or firmware.battery_pct
        self.max_connections = max_connections
        self.unauthorised_timeout_s = unauthorised_timeout_s
        self.advertising_interval_ms = advertising_interval_ms
        self.session = Session()
        self.name = DEVICE_NAME_PREFIX
        self.links: dict[int, HostLink] = {}
        self._pending: list[Frame] = []
        self._flush_scheduled = False
        self._last_flags = FrameFlag.NONE
        self._status_key: tuple | None = None
        self._led: LedState | None = None
        self._tasks: set[asyncio.Task] = set()
        self._housekeeper: asyncio.Task | None = None
        self._running = False
        self._journal_flush_at = 0.0
        self.backfilled_closed = 0  # frames backfilled on connections now closed
        self.unjournaled = 0  # frames the journal refused (seq not increasing)
        rate = firmware.config.frames.rate_hz
        self.frame_period_s = round(1000.0 / rate) / 1000.0
        self.zone_count = firmware.config.zones.count

        device.keystore = PrivateKeyStore(None, keystore_path)
        delegate = RollerPairingDelegate(self.pairing_open, self.passkey)
        mitm = self.passkey is not None
        device.pairing_config_factory = lambda _connection: pairing_config(delegate, mitm=mitm)
        self.acks = HostAcks(journal, Path(keystore_path).with_name(HOST_ACKS_NAME))
        self.control = ControlPoint(firmware, journal, self.session, self.status,
                                    self._state_changed, self.acks)
        self.gatt = RollerGatt(self._guard, lambda: self.status().encode(),
                               self._on_control_write, self.battery_level,
                               DeviceInfo(hardware_revision=hardware_revision,
                                          firmware_revision=firmware_version()),
                               lambda: self.firmware.calibration().published().encode())
        device.add_services(self.gatt.services)
        self.firewall = AttributeFirewall(device.gatt_server, self._authorised, self._guard)
        self.firewall.install()
        device.on(device.EVENT_CONNECTION, self._on_connection)

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        """Power the device on (if needed), take the name, hook the firmware, advertise."""
        if self.device.keystore is not None:  # a bond removed while off owns nothing
            self.acks.keep_only({name for name, _ in await self.device.keystore.get_all()})
        if not self.device.powered_on:
            await self.device.power_on()
        else:  # the key store was replaced after power-on: reload the resolving list
            await self.device.refresh_resolving_list()
        address = self.device.static_address
        if address in (hci.Address.ANY, hci.Address.ANY_RANDOM):
            address = self.device.public_address
        self.name = roller_name(address)
        self.device.name = self.name
        for attribute in self.device.gatt_server.attributes:
            if isinstance(attribute, Characteristic) and (
                    attribute.uuid == GATT_DEVICE_NAME_CHARACTERISTIC):
                attribute.value = self.name.encode()
        self.gatt.info = replace(self.gatt.info, serial=address.to_string(False))
        self.firmware.frame_sinks.append(self._on_frame)
        self.firmware.on_hold = lambda: self.open_pairing_window()
        self._running = True
        self._housekeeper = asyncio.create_task(self._housekeeping_loop())
        await self._ensure_advertising()
        log.info("%s advertising (%s)", self.name, address)

    async def stop(self) -> None:
        """Journal the last frames, stop advertising, drop every host, unhook the firmware."""
        if self._running:
            self.flush()
        self._running = False
        if self._on_frame in self.firmware.frame_sinks:
            self.firmware.frame_sinks.remove(self._on_frame)
        self.firmware.on_hold = None
        if self._housekeeper is not None:
            self._housekeeper.cancel()
        for task in list(self._tasks):
            task.cancel()
        self.journal.flush()
        if self.device.powered_on:
            await self.device.stop_advertising()
            for link in list(self.links.values()):
                try:
                    await link.connection.disconnect()
                except Exception as exc:  # already gone
                    log.debug("disconnect at stop: %s", exc)

    @property
    def backfilled(self) -> int:
        """Frames sent as backfill since start, all connections."""
        return self.backfilled_closed + sum(k.stream.backfilled for k in self.links.values())

    # ------------------------------------------------------------------ pairing window
    def open_pairing_window(self, now: float | None = None) -> None:
        """Accept new bonds for ``pairing_window_s`` from ``now`` (firmware clock, s)."""
        now = self.firmware.clock.now() if now is None else now
        self.window.open(now)
        log.info("pairing window open for %.0f s", self.window.duration_s)
        self._state_changed()

    def pairing_open(self) -> bool:
        """True while the pairing window is open."""
        return self.window.is_open(self.firmware.clock.now())

    # ------------------------------------------------------------------ status
    def faults(self) -> RollerFault:
        """Current faults, from the latest frame and the journal."""
        faults = RollerFault.NONE
        if self._last_flags & FrameFlag.IMU_FAULT:
            faults |= RollerFault.IMU
        if self._last_flags & FrameFlag.ADC_FAULT:
            faults |= RollerFault.ADC
        if self.journal.full:
            faults |= RollerFault.JOURNAL_FULL
        battery = self.battery_pct()
        if battery is None:
            faults |= RollerFault.BATTERY_UNKNOWN
        elif battery <= self.firmware.config.battery.low_pct:
            faults |= RollerFault.LOW_BATTERY
        return faults

    def battery_level(self) -> int:
        """The battery level as reported, % (0 while unknown: ``BATTERY_UNKNOWN`` says so)."""
        battery = self.battery_pct()
        return 0 if battery is None else min(100, max(0, round(battery)))

    def state(self) -> RollerState:
        """PAIRING while the window is open, FAULT on a sensor fault, else SESSION/IDLE."""
        if self.pairing_open():
            return RollerState.PAIRING
        if self.faults() & (RollerFault.IMU | RollerFault.ADC):
            return RollerState.FAULT
        return RollerState.SESSION if self.session.running else RollerState.IDLE

    def status(self) -> Status:
        """The STATUS value now."""
        last = seq_or_none(self.journal.last_seq)
        oldest = self.journal.oldest_seq
        if oldest is None:
            oldest = (last + 1) & NO_SEQ
        return Status(self.state(), self.battery_level(), self.faults(), firmware_version(),
                      self.session.session_id, self.firmware.boot_id, last, int(oldest) & NO_SEQ)

    def _state_changed(self) -> None:
        """Show a changed state on the LED; notify STATUS when what it shows changed."""
        now = self.firmware.clock.now()
        if self.window.is_open(now):
            led = LedState.PAIRING
        elif self.session.running:
            led = LedState.SESSION
        elif any(link.authorised for link in self.links.values()):
            led = LedState.CONNECTED
        else:
            led = LedState.IDLE
        if led is not self._led:  # on changes only: the firmware sets the LED too
            self._led = led
            if self.firmware.panel.state is not LedState.BOOTING:
                self.firmware.panel.set_state(led, now)
        key = (self.state(), self.battery_level(), self.faults(), self.session.session_id)
        if key == self._status_key:
            return
        self._status_key = key
        listeners = [link for link in self._listeners(self.gatt.status, _CCCD_NOTIFY)
                     if link.mtu >= Status.SIZE + 3]
        if listeners:
            value = self.status().encode()
            for link in listeners:
                self._notify(link, self.gatt.status, value)

    # ------------------------------------------------------------------ frames
    def _on_frame(self, frame: Frame) -> None:
        self._pending.append(frame)
        self._last_flags = frame.flags
        if self._flush_scheduled:
            return
        self._flush_scheduled = True
        try:
            asyncio.get_running_loop().call_soon(self.flush)
        except RuntimeError:  # no event loop (firmware run synchronously): flush now
            self.flush()

    def flush(self) -> None:
        """Journal the frames of this drain and send them (and backfill) to each host."""
        self._flush_scheduled = False
        frames, self._pending = self._pending, []
        if not self._running:  # a flush scheduled just before stop()
            return
        for frame in frames:
            try:
                self.journal.append(frame)
            except ValueError as exc:  # seq not increasing: not journaled, still sent
                self.unjournaled += 1
                if self.unjournaled == 1:
                    log.warning("frame not journaled (further ones counted): %s", exc)
        now = self.firmware.clock.now()
        if now >= self._journal_flush_at:
            self._journal_flush_at = now + JOURNAL_FLUSH_S
            self.journal.flush()
        for link in self.links.values():
            if not (link.authorised and self._subscribed(link, self.gatt.stream, _CCCD_NOTIFY)):
                link.stream.pause()
                continue
            for payload in link.stream.flush(frames, self.journal):
                self._notify(link, self.gatt.stream, payload)
        self._housekeeping()

    def _housekeeping(self) -> None:
        now = self.firmware.clock.now()
        if self.window.closes_at > -float("inf") and not self.window.is_open(now):
            self.window.close()
            log.info("pairing window closed")
        self._state_changed()
        try:
            loop_now = asyncio.get_running_loop().time()
        except RuntimeError:  # flushed outside the event loop: no connections to police
            return
        for link in list(self.links.values()):
            if not link.authorised and (
                    loop_now - link.connected_at > self.unauthorised_timeout_s):
                link.connected_at = float("inf")  # once
                log.info("dropping %s: not authorised", link.connection.peer_address)
                self._spawn(link.connection.disconnect(
                    hci.HCI_ErrorCode.REMOTE_USER_TERMINATED_CONNECTION_ERROR))

    async def _housekeeping_loop(self) -> None:
        while self._running:
            await asyncio.sleep(HOUSEKEEPING_S)
            try:
                self._housekeeping()
            except Exception:  # pragma: no cover - never stop the roller
                log.exception("housekeeping failed")

    # ------------------------------------------------------------------ sending
    def _subscribed(self, link: HostLink, characteristic: Characteristic, bit: int) -> bool:
        cccds = self.device.gatt_server.subscribers.get(link.connection, {})
        cccd = cccds.get(characteristic.handle)
        return bool(cccd) and len(cccd) == 2 and bool(cccd[0] & bit)

    def _listeners(self, characteristic: Characteristic, bit: int) -> list[HostLink]:
        return [link for link in self.links.values()
                if link.authorised and self._subscribed(link, characteristic, bit)]

    def _notify(self, link: HostLink, characteristic: Characteristic, value: bytes) -> None:
        pdu = ATT_Handle_Value_Notification(attribute_handle=characteristic.handle,
                                            attribute_value=value[:link.mtu - 3])
        self.device.gatt_server.send_gatt_pdu(link.connection, bytes(pdu))

    def _indicate(self, link: HostLink, response: Response) -> None:
        if not (link.authorised and self._subscribed(link, self.gatt.control, _CCCD_INDICATE)):
            log.info("control response dropped: CONTROL indications not enabled")
            return
        value = response.encode()[:link.mtu - 3]
        self._spawn(self.device.indicate_subscriber(link.connection, self.gatt.control, value))

    def _spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.info("BLE task failed: %s", task.exception())

    # ------------------------------------------------------------------ control point
    def _on_control_write(self, connection: Connection, value: bytes) -> None:
        link = self.links.get(connection.handle)
        if link is None:  # pragma: no cover - the guard let it through
            return
        response = self.control.handle(value, link)
        self._indicate(link, response)

    # ------------------------------------------------------------------ security
    def _authorised(self, connection: Connection) -> bool:
        link = self.links.get(connection.handle)
        return link is not None and link.authorised

    async def _guard(self, connection: Connection) -> None:
        link = self.links.get(connection.handle)
        if link is not None and not link.authorised:
            await self._authorise(link)
        if link is not None and link.authorised:
            return
        code = ErrorCode.INSUFFICIENT_AUTHENTICATION
        if not connection.is_encrypted and self._bond_ok(await self._keys(connection)):
            code = ErrorCode.INSUFFICIENT_ENCRYPTION  # bonded: the host should encrypt
        raise ATT_Error(code)

    async def _keys(self, connection: Connection) -> PairingKeys | None:
        if self.device.keystore is None:  # pragma: no cover
            return None
        return await self.device.keystore.get(str(connection.peer_address))

    def _bond_ok(self, keys: PairingKeys | None) -> bool:
        return bond_is_valid(keys, require_mitm=self.passkey is not None)

    async def _authorise(self, link: HostLink) -> None:
        connection = link.connection
        ok = bool(connection.is_encrypted) and self._bond_ok(await self._keys(connection))
        if ok == link.authorised or link.connection.handle not in self.links:
            return
        link.authorised = ok
        if ok:
            log.info("host %s authorised", connection.peer_address)
        else:
            link.stream.pause()
        self._state_changed()

    def _on_paired(self, link: HostLink, keys: PairingKeys) -> None:
        """A pairing completed (keys already stored): keep the bond or refuse it."""
        connection = link.connection
        if not self._bond_ok(keys):
            log.warning("bond with %s refused (%s)", connection.peer_address,
                        "not passkey-authenticated" if keys.ltk else "legacy pairing")
            self._spawn(self._refuse_bond(connection))
            return
        self.window.close()  # at once, so a Status read right after shows it closed
        self.firmware.haptic.play("paired", self.firmware.clock.now())
        log.info("bonded with %s", connection.peer_address)
        self._state_changed()
        self._spawn(self._authorise(link))

    async def _refuse_bond(self, connection: Connection) -> None:
        if self.device.keystore is not None:
            await self.device.keystore.delete(str(connection.peer_address))
        self.acks.forget(str(connection.peer_address))
        await connection.disconnect(hci.HCI_ErrorCode.AUTHENTICATION_FAILURE_ERROR)

    # ------------------------------------------------------------------ connections
    def _on_connection(self, connection: Connection) -> None:
        if connection.transport != PhysicalTransport.LE or connection.role != hci.Role.PERIPHERAL:
            return
        loop = asyncio.get_running_loop()
        stream = HostStream(self.zone_count, self.frame_period_s, connection.att_mtu, self.pacing)
        link = HostLink(connection, stream, loop.time())
        self.links[connection.handle] = link
        log.info("connection from %s", connection.peer_address)

        def authorise(*_: object) -> None:
            self._spawn(self._authorise(link))

        connection.on(connection.EVENT_CONNECTION_ENCRYPTION_CHANGE, authorise)
        connection.on(connection.EVENT_CONNECTION_ENCRYPTION_KEY_REFRESH, authorise)
        connection.on(connection.EVENT_PAIRING, lambda keys: self._on_paired(link, keys))
        connection.on(connection.EVENT_PAIRING_FAILURE,
                      lambda reason: log.info("pairing with %s failed: %s",
                                              connection.peer_address, reason))
        connection.on(connection.EVENT_CONNECTION_ATT_MTU_UPDATE,
                      lambda *_: stream.set_mtu(connection.att_mtu))
        connection.on(connection.EVENT_DISCONNECTION,
                      lambda reason: self._on_disconnection(link, reason))
        self._spawn(self._ensure_advertising())

    def _on_disconnection(self, link: HostLink, reason: int) -> None:
        self.links.pop(link.connection.handle, None)
        self.backfilled_closed += link.stream.backfilled
        log.info("host %s disconnected (reason %#04x)", link.connection.peer_address, reason)
        self._state_changed()
        if self._running:
            self._spawn(self._ensure_advertising())

    async def _ensure_advertising(self) -> None:
        if not self._running or len(self.links) >= self.max_connections:
            return
        if self.device.is_advertising:
            return
        await self.device.start_advertising(
            advertising_data=advertising_data(), scan_response_data=scan_response_data(
                self.name), advertising_interval_min=self.advertising_interval_ms,
            advertising_interval_max=self.advertising_interval_ms)


def firmware_version() -> str:
    """The firmware's version, x.y.z."""
    return firmware.__version__
