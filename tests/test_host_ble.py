"""The host's Bluetooth side against a tiny Bumble roller of the tests' own.

Two Bumble virtual controllers on a ``LocalLink``: the host's is served on a local TCP
port and opened as ``tcp-client:127.0.0.1:PORT`` (the way a real deployment opens a
transport), the test roller's is driven in-process. The roller speaks only
firmware.protocol (StreamEncoder, Fragmenter, requests and responses): it is not the
product's GATT server, just enough of one to test the bleak backend and RollerClient.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time
from collections.abc import Awaitable, Callable

import pytest
from bleak import BleakClient, BleakScanner
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bleak_retry_connector import establish_connection
from bumble import hci
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.host import Host
from bumble.link import LocalLink
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink
from bumble.transport.tcp_server import open_tcp_server_transport_with_socket

from firmware.protocol import (
    CALIBRATION_UUID,
    CONTROL_UUID,
    NO_SEQ,
    SERVICE_UUID,
    STATUS_UUID,
    STREAM_UUID,
    Ack,
    Fragmenter,
    Frame,
    FrameFlag,
    GetStatus,
    Opcode,
    ProtocolError,
    Request,
    Response,
    Resume,
    RollerCalibration,
    RollerFault,
    RollerState,
    SetTime,
    Status,
    StreamEncoder,
    TimeReply,
    decode_request,
)
from host.ble.bumble_backend import BleakClientBumble, BleakScannerBumble, close_adapters
from host.ble.client import BleBackend, RollerClient, RollerIncompatible
from host.cli import devices as cli
from host.stream import StreamPosition

ROLLER = "F0:00:00:00:00:01"
OTHER = "F0:00:00:00:00:02"
DEBUG_UUID = "a7e1ffff-5b0c-4d6e-8f3a-52a0113e5201"
OTHER_SERVICE = "0000180d-0000-1000-8000-00805f9b34fb"
PROPS = Characteristic.Properties
PERMS = Characteristic.Permissions


def run(test: Callable[[], Awaitable[None]], timeout_s: float = 20.0) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout_s))


async def until(predicate: Callable[[], bool], timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():
            await asyncio.sleep(0.01)


class _Gate(PairingDelegate):
    def __init__(self, roller: FakeRoller) -> None:
        super().__init__()
        self.roller = roller

    async def accept(self) -> bool:
        return self.roller.pairing_open


class FakeRoller:
    """A roller GATT server on a Bumble virtual controller, speaking firmware.protocol."""

    def __init__(self, link: LocalLink, address: str = ROLLER, *, boot_id: int = 7,
                 zones: int = 2, pairing_open: bool = True, capacity: int = 100_000,
                 service: str = SERVICE_UUID, calibration: bytes | None = None) -> None:
        self.controller = Controller(f"roller-{address}", link=link)
        self.device = Device(name="smartroller-test", address=hci.Address(address),
                             host=Host(self.controller, AsyncPipeSink(self.controller)))
        self.device.pairing_config_factory = lambda _c: PairingConfig(
            sc=True, mitm=False, bonding=True, delegate=_Gate(self))
        self.boot_id, self.zones, self.capacity, self.service = boot_id, zones, capacity, service
        self.pairing_open = pairing_open
        self.journal: list[Frame] = []
        self.next_seq = 0
        self.session_id = 0
        self.requests: list[Request] = []
        self.silent: set[int] = set()  # opcodes left unanswered
        self.drop = 0  # STREAM notifications to lose
        self.backfill_gate: asyncio.Event | None = None  # RESUME backfill waits for it
        self.debug_writes: list[bytes] = []
        self.connection: Connection | None = None
        self._encoder: StreamEncoder | None = None
        self._fragmenter: Fragmenter | None = None
        self._send_lock = asyncio.Lock()
        self.stream = Characteristic(STREAM_UUID, PROPS.NOTIFY, PERMS.READ_REQUIRES_ENCRYPTION,
                                     b"")
        self.control = Characteristic(CONTROL_UUID, PROPS.WRITE | PROPS.INDICATE,
                                      PERMS.WRITE_REQUIRES_ENCRYPTION,
                                      CharacteristicValue(write=self._on_control))
        self.status_char = Characteristic(
            STATUS_UUID, PROPS.READ | PROPS.NOTIFY, PERMS.READ_REQUIRES_ENCRYPTION,
            CharacteristicValue(read=lambda _c: self.status().encode()))
        self.debug = Characteristic(
            DEBUG_UUID, PROPS.READ | PROPS.WRITE | PROPS.WRITE_WITHOUT_RESPONSE | PROPS.NOTIFY,
            PERMS.READABLE | PERMS.WRITEABLE,
            CharacteristicValue(read=lambda _c: b"debug",
                                write=lambda _c, v: self.debug_writes.append(bytes(v))))
        chars = [self.stream, self.control, self.status_char, self.debug]
        self.calibration = calibration  # the CALIBRATION value (None: an older roller)
        if calibration is not None:
            chars.append(Characteristic(
                CALIBRATION_UUID, PROPS.READ, PERMS.READ_REQUIRES_ENCRYPTION,
                CharacteristicValue(read=lambda _c: self.calibration)))
        self.device.add_service(Service(service, chars))
        self.device.on(Device.EVENT_CONNECTION, self._on_connection)
        self.device.on("characteristic_subscription", self._on_subscription)
        self._listening = False

    async def start(self, advertise: bool = True) -> FakeRoller:
        await self.device.power_on()
        if advertise:
            await self.advertise()
        return self

    async def advertise(self) -> None:
        ad = AdvertisingData([
            (AdvertisingData.COMPLETE_LOCAL_NAME, b"smartroller-test"),
            (AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS,
             UUID(self.service).to_bytes())])
        await self.device.start_advertising(advertising_data=bytes(ad), auto_restart=True,
                                            advertising_interval_min=20,
                                            advertising_interval_max=20)

    def _on_connection(self, connection: Connection) -> None:
        self.connection = connection
        self._listening = False

        def gone(_reason: int) -> None:
            if self.connection is connection:
                self.connection = None

        connection.once(Connection.EVENT_DISCONNECTION, gone)

    def _on_subscription(self, _connection: Connection, characteristic: Characteristic,
                         notify: bool, _indicate: bool) -> None:
        if characteristic is self.stream:  # a fresh stream: it begins with a resync
            self._listening = notify
            self._encoder = StreamEncoder(self.zones, 0.01)
            self._fragmenter = None

    def status(self) -> Status:
        last = self.next_seq - 1 if self.next_seq else NO_SEQ
        oldest = self.journal[0].seq if self.journal else self.next_seq
        state = RollerState.PAIRING if self.pairing_open else RollerState.IDLE
        return Status(state, 80, RollerFault.NONE, "1.2.3", self.session_id, self.boot_id,
                      last, oldest)

    def make(self, n: int) -> list[Frame]:
        frames = []
        for _ in range(n):
            seq = self.next_seq
            self.next_seq += 1
            frames.append(Frame(seq, 1.0 + seq * 0.01, (seq % 1000) * 1e-4, 0.01, 0.0,
                                (10.0, float(seq % 200)), 10.0 + seq % 200,
                                FrameFlag.IN_CONTACT, self.boot_id))
        self.journal += frames
        del self.journal[:max(0, len(self.journal) - self.capacity)]
        return frames

    async def produce(self, n: int) -> list[Frame]:
        """Make ``n`` frames and stream them live (if a bonded host listens)."""
        frames = self.make(n)
        await self._send(frames, backfill=False)
        return frames

    async def _send(self, frames: list[Frame], backfill: bool) -> None:
        connection = self.connection
        if connection is None or not connection.is_encrypted or not self._listening:
            return
        async with self._send_lock:
            assert self._encoder is not None
            if self._fragmenter is None:
                self._fragmenter = Fragmenter(connection.att_mtu)
            for start in range(0, len(frames), 20):
                self._fragmenter.push(self._encoder.encode(frames[start:start + 20], backfill))
                for payload in self._fragmenter.pop_ready(flush=True):
                    if self.drop:
                        self.drop -= 1
                        continue
                    await self.device.notify_subscriber(connection, self.stream, payload)

    async def _on_control(self, connection: Connection, value: bytes) -> None:
        try:
            request = decode_request(bytes(value))
        except ProtocolError as error:
            response = error.response()
            request = None
        else:
            self.requests.append(request)
            response = self._answer(request)
        if request is not None and request.opcode in self.silent:
            return
        asyncio.ensure_future(self._respond(connection, response, request))

    def _answer(self, request: Request) -> Response:
        if isinstance(request, SetTime):
            sensor_t = self.next_seq * 0.01 + 1.0
            return Response(request.opcode, payload=TimeReply(sensor_t, self.boot_id).encode())
        if isinstance(request, GetStatus):
            return Response(request.opcode, payload=self.status().encode())
        if isinstance(request, Ack):
            self.journal = [f for f in self.journal if f.seq > request.seq]
        if request.opcode == Opcode.START_SESSION:
            self.session_id = request.session_id  # type: ignore[union-attr]
        return Response(request.opcode)

    async def _respond(self, connection: Connection, response: Response,
                       request: Request | None) -> None:
        await self.device.indicate_subscriber(connection, self.control, response.encode())
        if isinstance(request, Resume):
            if self.backfill_gate is not None:
                await self.backfill_gate.wait()
            await self._send([f for f in self.journal if f.seq >= request.seq], backfill=True)

    async def drop_link(self) -> None:
        assert self.connection is not None
        await self.connection.disconnect()


class _NoDelaySink:
    """Bumble's tcp-server transport leaves Nagle on: every ATT round trip would wait
    ~40 ms for a delayed ACK. Turn it off on the accepted socket."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self._done: object = None

    def on_packet(self, packet: bytes) -> None:
        transport = self.inner.transport  # type: ignore[attr-defined]
        if transport is not None and transport is not self._done:
            transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP,
                                                          socket.TCP_NODELAY, 1)
            self._done = transport
        self.inner.on_packet(packet)  # type: ignore[attr-defined]


class Radio:
    """A LocalLink; the host's controller is served at ``transport``."""

    async def __aenter__(self) -> Radio:
        self.link = LocalLink()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.transport = f"tcp-client:127.0.0.1:{sock.getsockname()[1]}"
        self._server = await open_tcp_server_transport_with_socket(sock)
        self.host_controller = Controller("host", host_source=self._server.source,
                                          host_sink=_NoDelaySink(self._server.sink),
                                          link=self.link)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await close_adapters()
        await self._server.close()

    async def roller(self, address: str = ROLLER, advertise: bool = True,
                     **kwargs: object) -> FakeRoller:
        return await FakeRoller(self.link, address, **kwargs).start(advertise)  # type: ignore


def bumble_kwargs(radio: Radio, tmp_path) -> dict[str, object]:
    return {"backend": BleakClientBumble, "transport": radio.transport,
            "key_store": str(tmp_path / "keys.json")}


async def find(radio: Radio, tmp_path, address: str = ROLLER):
    device = await BleakScanner.find_device_by_address(
        address, timeout=3.0, backend=BleakScannerBumble, transport=radio.transport,
        key_store=str(tmp_path / "keys.json"))
    assert device is not None
    return device


# --------------------------------------------------------------------------- bleak facade


def test_scan_finds_the_roller_by_service_uuid(tmp_path):
    async def test() -> None:
        async with Radio() as radio:
            await radio.roller()
            await radio.roller(OTHER, service=OTHER_SERVICE)
            found = await BleakScanner.discover(
                timeout=0.5, service_uuids=[SERVICE_UUID], return_adv=True,
                backend=BleakScannerBumble, transport=radio.transport,
                key_store=str(tmp_path / "keys.json"))
            assert list(found) == [ROLLER]
            device, adv = found[ROLLER]
            assert adv.local_name == "smartroller-test" == device.name
            assert adv.service_uuids == [SERVICE_UUID] and adv.rssi == -50
            everything = await BleakScanner.discover(
                timeout=0.3, backend=BleakScannerBumble, transport=radio.transport)
            assert {d.address for d in everything} == {ROLLER, OTHER}
            rollers = await RollerClient(BleBackend.bumble(radio.transport)).scan(0.3)
            assert [r.address for r in rollers] == [ROLLER]

    run(test)


def test_connect_pair_read_write_notify_indicate(tmp_path):
    async def test() -> None:
        async with Radio() as radio:
            roller = await radio.roller()
            device = await find(radio, tmp_path)
            client = BleakClient(device, **bumble_kwargs(radio, tmp_path))
            await client.connect()
            assert client.is_connected and client.mtu_size == 517
            service = client.services.get_service(SERVICE_UUID)
            assert {c.uuid for c in service.characteristics} == {
                STREAM_UUID, CONTROL_UUID, STATUS_UUID, DEBUG_UUID}
            with pytest.raises(BleakGATTProtocolError) as refused:
                await client.read_gatt_char(STATUS_UUID)
            assert refused.value.code == 0x0F  # insufficient encryption: not bonded
            await client.pair()
            keys = json.loads((tmp_path / "keys.json").read_text())
            assert [list(peers) for peers in keys.values()] == [[ROLLER]]
            assert (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600  # owner only
            assert Status.decode(bytes(await client.read_gatt_char(STATUS_UUID))).boot_id == 7
            assert await client.read_gatt_char(DEBUG_UUID) == b"debug"
            await client.write_gatt_char(DEBUG_UUID, b"\x01\x02", response=False)
            await client.write_gatt_char(DEBUG_UUID, b"\x03", response=True)
            await until(lambda: roller.debug_writes == [b"\x01\x02", b"\x03"])

            notified: list[bytes] = []
            indicated: list[bytes] = []
            await client.start_notify(STREAM_UUID, lambda _c, d: notified.append(bytes(d)))
            await client.start_notify(CONTROL_UUID, lambda _c, d: indicated.append(bytes(d)))
            await roller.produce(30)
            await until(lambda: len(notified) >= 2)
            assert notified[0][0] & 0x80  # a resync fragment first
            await client.write_gatt_char(CONTROL_UUID, bytes([Opcode.STATUS]), response=True)
            await until(lambda: indicated)
            assert Response.decode(indicated[0]).opcode == Opcode.STATUS
            await client.stop_notify(STREAM_UUID)
            count = len(notified)
            await roller.produce(10)
            await asyncio.sleep(0.05)
            assert len(notified) == count
            await client.disconnect()
            assert not client.is_connected

    run(test)


def test_disconnect_callback_reconnect_and_bond_reuse(tmp_path):
    async def test() -> None:
        async with Radio() as radio:
            roller = await radio.roller()
            device = await find(radio, tmp_path)
            lost = asyncio.Event()
            client = BleakClient(device, lambda _c: lost.set(), pair=True,
                                 **bumble_kwargs(radio, tmp_path))
            await client.connect()
            await roller.drop_link()
            await asyncio.wait_for(lost.wait(), 2.0)
            assert not client.is_connected
            with pytest.raises(BleakError):
                await client.read_gatt_char(STATUS_UUID)
            lost.clear()
            await client.connect()  # the stored bond encrypts the new link by itself
            assert roller.connection is not None and roller.connection.is_encrypted
            assert (await client.read_gatt_char(STATUS_UUID))[0] == 1
            await client.disconnect()
            assert lost.is_set()  # the callback runs on asked-for disconnections too

    run(test)


def test_establish_connection_and_address_strings(tmp_path):
    async def test() -> None:
        async with Radio() as radio:
            await radio.roller()
            device = await find(radio, tmp_path)
            client = await establish_connection(BleakClient, device, "roller", pair=True,
                                                **bumble_kwargs(radio, tmp_path))
            assert client.is_connected
            await client.disconnect()
            # a bare address string: found again by scanning (as bleak's backends do)
            async with BleakClient(ROLLER, timeout=3.0, **bumble_kwargs(radio, tmp_path)) as c2:
                assert (await c2.read_gatt_char(STATUS_UUID))[0] == 1
            with pytest.raises(BleakDeviceNotFoundError):
                await BleakClient("F0:00:00:00:00:99", timeout=0.3,
                                  **bumble_kwargs(radio, tmp_path)).connect()
            async with BleakClient(device, **bumble_kwargs(radio, tmp_path)) as c3:
                await c3.unpair()  # forgets the bond and disconnects
                assert not c3.is_connected
            assert json.loads((tmp_path / "keys.json").read_text()) == {
                k: {} for k in json.loads((tmp_path / "keys.json").read_text())}

    run(test)


def test_connect_timeout_and_a_late_advertiser(tmp_path):
    async def test() -> None:
        async with Radio() as radio:
            roller = await radio.roller()
            other = await radio.roller(OTHER)
            device, other_device = await find(radio, tmp_path), await find(radio, tmp_path, OTHER)
            await roller.device.stop_advertising()  # seen, then gone quiet
            await other.device.stop_advertising()
            client = BleakClient(device, timeout=0.3, **bumble_kwargs(radio, tmp_path))
            with pytest.raises(asyncio.TimeoutError):
                await client.connect()
            with pytest.raises(BleakError, match="still pending"):
                await BleakClient(other_device, timeout=0.3,
                                  **bumble_kwargs(radio, tmp_path)).connect()
            # Bumble's controller never finishes a cancelled attempt: ours stays
            # pending instead, and completes once the roller advertises again.
            await roller.advertise()
            await client.connect(timeout=3.0)
            assert client.is_connected
            with pytest.raises(BleakError, match="already connected"):
                await BleakClient(device, timeout=0.3, **bumble_kwargs(radio, tmp_path)
                                  ).connect()
            await client.disconnect()



def test_a_stray_attempt_left_by_an_earlier_host_is_taken_over(tmp_path):
    async def test() -> None:
        async with Radio() as radio:
            roller = await radio.roller()
            device = await find(radio, tmp_path)
            await roller.device.stop_advertising()
            with pytest.raises(asyncio.TimeoutError):
                await BleakClient(device, timeout=0.2, **bumble_kwargs(radio, tmp_path)
                                  ).connect()
            await close_adapters()  # that host is gone; its attempt stays in the controller
            assert radio.host_controller.pending_le_connection is not None
            client = BleakClient(device, timeout=3.0, **bumble_kwargs(radio, tmp_path))
            connecting = asyncio.ensure_future(client.connect())
            await asyncio.sleep(0.2)  # refused: COMMAND_DISALLOWED, so it waits
            await roller.advertise()
            await connecting
            assert client.is_connected
            await client.disconnect()

    run(test)


# --------------------------------------------------------------------------- RollerClient


class Consumer:
    """Stores frames (a list, in arrival order) and tells the client what is stored."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.holes: list = []
        self.links: list[bool] = []
        self.client: RollerClient | None = None

    def on_frames(self, frames: list[Frame]) -> None:
        self.frames += frames
        if self.client is not None:
            self.client.stored(max(f.seq for f in frames))

    def seqs(self) -> list[int]:
        return [f.seq for f in self.frames]


def roller_client(radio: Radio, tmp_path, consumer: Consumer, **kwargs: object) -> RollerClient:
    client = RollerClient(BleBackend.bumble(radio.transport, tmp_path / "keys.json"),
                          on_frames=consumer.on_frames, on_hole=consumer.holes.append,
                          on_link=consumer.links.append, backoff_s=(0.05, 0.2),
                          ack_interval_s=0.05, request_timeout_s=2.0, connect_timeout_s=3.0,
                          scan_timeout_s=2.0, **kwargs)  # type: ignore[arg-type]
    consumer.client = client
    return client


def test_roller_client_streams_acks_resumes_and_reconnects(tmp_path):
    async def test() -> None:
        async with Radio() as radio:
            roller = await radio.roller()
            consumer = Consumer()
            client = roller_client(radio, tmp_path, consumer)
            with pytest.raises(BleakGATTProtocolError):  # not bonded: STATUS refused
                await client.connect(ROLLER)
            status = await client.pair(ROLLER)
            assert status.state == RollerState.PAIRING
            roller.make(50)  # frames from before the host connected: in the journal
            status = await client.connect(ROLLER)
            assert [type(r).__name__ for r in roller.requests[:5]] == [
                "SetTime", "SetTime", "SetTime", "GetStatus", "Resume"]  # a clock burst
            await until(lambda: len(consumer.frames) == 50)
            await roller.produce(40)
            await until(lambda: len(consumer.frames) == 90)
            assert consumer.seqs() == list(range(90))
            await until(lambda: roller.journal == [])  # acknowledged once stored
            assert client.clock_map.knows(7)

            def resumes() -> list[int]:
                return [r.seq for r in roller.requests if isinstance(r, Resume)]

            assert resumes() == [0]
            roller.drop = 1  # a lost notification: a gap, RESUME, backfill
            await roller.produce(60)
            await until(lambda: len(consumer.frames) == 150)
            assert consumer.seqs() == list(range(150))
            assert len(resumes()) == 2 and 90 <= resumes()[1] < 150

            await roller.drop_link()  # the link drops; frames keep coming meanwhile
            roller.make(30)
            await until(lambda: consumer.links[-2:] == [False, True])
            await roller.produce(20)
            await until(lambda: len(consumer.frames) == 200)
            assert consumer.seqs() == list(range(200))  # exactly once, in order
            assert consumer.holes == [] and resumes()[-1] == 150

            await client.zero()
            await client.buzz("approach")
            await client.set_fence(0.3, 0.02, 0.05)
            await client.tare()
            await client.start_session(42)
            assert (await client.status()).session_id == 42
            await client.stop_session()
            names = [type(r).__name__ for r in roller.requests]
            for name in ("Zero", "Buzz", "SetFence", "Tare", "StartSession", "StopSession"):
                assert name in names
            roller.silent.add(Opcode.TARE)
            with pytest.raises(TimeoutError):
                await client.tare()
            await client.stop()
            assert not client.connected

    run(test, 30.0)


@pytest.mark.parametrize("ahead", [(), range(80, 90)])
def test_restarted_host_resumes_without_duplicates(tmp_path, ahead):
    async def test() -> None:
        async with Radio() as radio:
            roller = await radio.roller()
            await RollerClient(BleBackend.bumble(radio.transport, tmp_path / "keys.json")
                               ).pair(ROLLER)
            roller.make(100)
            # the daemon stored frames 0..59 (and maybe 80..89, come live beside a
            # backfill) before it was restarted, acknowledged 0..39
            roller.journal = [f for f in roller.journal if f.seq >= 40]
            consumer = Consumer()
            client = roller_client(radio, tmp_path, consumer,
                                   position=StreamPosition(7, 59), ahead=ahead)
            await client.connect(ROLLER)
            expected = [s for s in range(60, 100) if s not in ahead]
            await until(lambda: len(consumer.frames) == len(expected))
            assert consumer.seqs() == expected
            await until(lambda: roller.journal == [])
            await client.stop()
            assert len(consumer.frames) == len(expected)

    run(test)


def test_live_frames_come_at_once_and_ack_waits_for_the_missing(tmp_path):
    async def test() -> None:
        async with Radio() as radio:
            roller = await radio.roller()
            await RollerClient(BleBackend.bumble(radio.transport, tmp_path / "keys.json")
                               ).pair(ROLLER)
            roller.make(50)  # in the journal: the host's RESUME(0) will backfill them...
            roller.backfill_gate = asyncio.Event()  # ...but not yet
            consumer = Consumer()
            client = roller_client(radio, tmp_path, consumer, resume_retry_s=30.0)
            await client.connect(ROLLER)
            await roller.produce(20)
            await until(lambda: len(consumer.frames) == 20)
            assert consumer.seqs() == list(range(50, 70))  # live frames not held back
            assert client.receiver.waiting and client.position == StreamPosition(7, -1)
            await asyncio.sleep(0.3)  # six ACK intervals: stored up to 69, but 0..49 missing
            assert client.ack_position is None
            assert not any(isinstance(r, Ack) for r in roller.requests)
            assert len(roller.journal) == 70
            roller.backfill_gate.set()
            await until(lambda: len(consumer.frames) == 70)
            assert consumer.seqs() == list(range(50, 70)) + list(range(50))  # no duplicate
            await until(lambda: roller.journal == [])
            acks = [r.seq for r in roller.requests if isinstance(r, Ack)]
            assert acks == sorted(acks) and acks[-1] == 69
            assert [r.seq for r in roller.requests if isinstance(r, Resume)] == [0]
            await client.stop()

    run(test, timeout_s=60.0)  # a guard against a hang: pairing, connecting (three
    # SET_TIMEs) and 70 frames took over 20 s on a loaded machine


def test_journal_overflow_is_a_hole(tmp_path):
    async def test() -> None:
        async with Radio() as radio:
            roller = await radio.roller(capacity=50)
            await RollerClient(BleBackend.bumble(radio.transport, tmp_path / "keys.json")
                               ).pair(ROLLER)
            roller.make(10)
            consumer = Consumer()
            client = roller_client(radio, tmp_path, consumer)
            await client.connect(ROLLER)
            await until(lambda: len(consumer.frames) == 10 and roller.journal == [])
            await roller.drop_link()
            roller.make(120)  # more than the journal holds while the host is away
            await until(lambda: len(consumer.frames) == 60)
            assert [(h.first_seq, h.last_seq) for h in consumer.holes] == [(10, 79)]
            assert consumer.seqs() == list(range(10)) + list(range(80, 130))
            await client.stop()

    run(test)


def test_live_edge_viewer_and_incompatible_roller(tmp_path):
    async def test() -> None:
        async with Radio() as radio:
            roller = await radio.roller()
            await RollerClient(BleBackend.bumble(radio.transport, tmp_path / "keys.json")
                               ).pair(ROLLER)
            roller.make(100)
            frames: list[Frame] = []
            client = RollerClient(BleBackend.bumble(radio.transport), on_frames=frames.extend,
                                  from_live_edge=True)
            await client.connect(ROLLER)
            await roller.produce(5)
            await until(lambda: len(frames) == 5)
            assert [f.seq for f in frames] == list(range(100, 105))
            assert not any(isinstance(r, (Resume, Ack)) for r in roller.requests)
            await client.stop()
            roller.status_char.value = CharacteristicValue(read=lambda _c: b"\x02" + bytes(23))
            with pytest.raises(RollerIncompatible):
                await RollerClient(BleBackend.bumble(radio.transport)).connect(ROLLER)

    run(test)


# --------------------------------------------------------------------------- CLI


class _Clocked(io.StringIO):
    """A text stream that keeps when each write came (``time.monotonic()``, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        if text.strip():
            self.writes.append((time.monotonic(), text))
        return super().write(text)


def test_cli_scan_pair_stream(tmp_path):
    keys = str(tmp_path / "keys.json")
    results: dict[str, tuple[int, str, str]] = {}
    scan_out, scan_err, started = _Clocked(), _Clocked(), []

    def call(name: str, fn: Callable[..., int], *args: object, **kwargs: object) -> None:
        out, err = io.StringIO(), io.StringIO()
        results[name] = (fn(*args, out=out, err=err, **kwargs), out.getvalue(), err.getvalue())

    async def test() -> None:
        async with Radio() as radio:
            roller = await radio.roller()
            loop = asyncio.get_running_loop()
            started.append(time.monotonic())
            code = await loop.run_in_executor(None, lambda: cli.cmd_scan(
                radio.transport, 3.0, key_store=keys, out=scan_out, err=scan_err))
            results["scan"] = (code, scan_out.getvalue(), scan_err.getvalue())
            await loop.run_in_executor(None, lambda: call(
                "pair", cli.cmd_pair, ROLLER.lower(), radio.transport, key_store=keys))

            async def feed() -> None:
                while True:
                    await roller.produce(2)
                    await asyncio.sleep(0.02)

            feeder = asyncio.ensure_future(feed())
            await loop.run_in_executor(None, lambda: call(
                "stream", cli.cmd_stream, ROLLER, radio.transport, 0.5, key_store=keys))
            feeder.cancel()

    run(test)
    code, out, err = results["scan"]
    assert code == 0 and out.startswith(ROLLER) and "smartroller-test" in out
    assert err == "1 roller found within 3 s\n"
    # the roller is printed as it is seen, long before the 3-s scan ends
    printed, ended = scan_out.writes[0][0], scan_err.writes[0][0]
    assert printed - started[0] < 2.0 and ended - printed > 1.0
    code, out, _ = results["pair"]
    assert code == 0 and "paired with" in out and "boot=7" in out
    code, out, err = results["stream"]
    assert code == 0 and "connected to" in err
    lines = out.splitlines()
    assert lines and all(line.startswith("7:") and "pos=" in line for line in lines)


def test_cli_pair_says_what_it_waits_for_and_that_nothing_came(tmp_path):
    err = _Clocked()

    async def test() -> None:
        async with Radio() as radio:
            await radio.roller()  # another roller advertises
            started = time.monotonic()
            code = await asyncio.get_running_loop().run_in_executor(None, lambda: cli.cmd_pair(
                OTHER, radio.transport, timeout_s=1.5, key_store=str(tmp_path / "k.json"),
                data_dir=str(tmp_path / "data"), out=io.StringIO(), err=err))
            assert code == 1
            assert err.writes[0][0] - started < 0.5  # said at once, before looking

    run(test)
    assert err.getvalue().splitlines() == [
        f"looking for {OTHER} for up to 1.5 s; hold the roller's button 3 s to open its "
        "pairing window",
        f"smartroller: error: no roller {OTHER} seen within 1.5 s: is it on, near, and in "
        "its pairing window (its LED flickering)?"]


def test_cli_bad_input_is_one_line_exit_2():
    err = io.StringIO()
    assert cli.cmd_pair("not-an-address", err=err) == 2
    assert err.getvalue().count("\n") == 1 and "error" in err.getvalue()
    err = io.StringIO()
    assert cli.cmd_stream(ROLLER, "bogus", err=err) == 2
    assert cli.cmd_stream(ROLLER, "tcp-client:x:1", seconds=-1, err=io.StringIO()) == 2
    assert cli.cmd_scan("tcp-client:127.0.0.1:1", timeout_s=0, err=io.StringIO()) == 2
    err = io.StringIO()
    assert cli.cmd_scan("tcp-client:127.0.0.1:1", timeout_s=0.1, err=err) == 1
    assert err.getvalue().count("\n") == 1


# --------------------------------------------------------------------------- calibration


def test_the_client_reads_the_rollers_own_calibration_at_pairing_and_each_link(tmp_path):
    learned = RollerCalibration(0.0043, 612.0, 1765000000.0)

    async def test() -> None:
        async with Radio() as radio:
            roller = await radio.roller(calibration=learned.encode())
            client = roller_client(radio, tmp_path, Consumer())
            assert client.calibration is None
            await client.pair(ROLLER)
            assert client.calibration == learned
            roller.calibration = RollerCalibration(0.0041, 1800.0, 1765003600.0).encode()
            await client.connect(ROLLER)  # read again on the link: refined since
            assert client.calibration == RollerCalibration(0.0041, 1800.0, 1765003600.0)
            await client.stop()

    run(test)


@pytest.mark.parametrize("value", [None, b"\x01\x02"])
def test_a_roller_without_a_readable_calibration_still_connects(tmp_path, value, caplog):
    async def test() -> None:
        async with Radio() as radio:
            roller = await radio.roller(calibration=value)
            client = roller_client(radio, tmp_path, Consumer())
            await client.pair(ROLLER)
            roller.make(5)
            status = await client.connect(ROLLER)
            assert status.boot_id == 7 and client.calibration is None
            await client.stop()

    run(test)
    assert ("CALIBRATION is unreadable" in caplog.text) == (value is not None)


def test_pair_keeps_the_calibration_and_devices_shows_it(tmp_path, capsys):
    learned = RollerCalibration(-0.0021, 95.0, 1765000000.0, 0.0215, True)
    data, keys = tmp_path / "data", str(tmp_path / "keys.json")
    out = io.StringIO()

    async def test() -> None:
        async with Radio() as radio:
            await radio.roller(calibration=learned.encode())
            code = await asyncio.get_running_loop().run_in_executor(None, lambda: cli.cmd_pair(
                ROLLER, radio.transport, key_store=keys, data_dir=str(data), out=out,
                err=io.StringIO()))
            assert code == 0

    run(test)
    assert ("its calibration: IMU clock -0.21 % (over 95 s), gyro scale +2.15 %"
            in out.getvalue())
    from host.cli import main as main_cli

    capsys.readouterr()
    assert main_cli.main(["devices", "--data-dir", str(data)]) == 0
    assert ("  calibration: IMU clock -0.21 % (over 95 s), gyro scale +2.15 % (read 20"
            in capsys.readouterr().out)
    assert main_cli.main(["devices", "--json", "--data-dir", str(data)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["calibration"]["imu_clock_error"] == pytest.approx(-0.0021)
    assert row["calibration"]["gyro_scale_error"] == pytest.approx(0.0215)
    assert row["calibration"]["imu_clock_span_s"] == 95.0 and row["calibration"]["learned"]


def test_stop_ends_even_when_a_cancellation_is_swallowed(tmp_path):
    """asyncio.wait_for on Python 3.11 can lose a cancellation that meets its inner
    future's completion; an ACK loop that lost its cancellation must still end at stop
    (the full suite once hung 60 s in ``stop``'s wait for the loops)."""
    async def test() -> None:
        client = RollerClient(BleBackend.bumble(None, tmp_path / "keys.json"),
                              ack_interval_s=0.01)
        swallowed = []

        async def flush_ack(timeout_s: float | None = None) -> None:
            try:
                await asyncio.sleep(0.05)
            except asyncio.CancelledError:
                swallowed.append(True)  # as wait_for's race does: the loop goes on

        client.flush_ack = flush_ack  # type: ignore[method-assign]
        client._ready.set()
        client._loops = [asyncio.create_task(client._ack_loop())]
        await asyncio.sleep(0.03)  # the loop is in flush_ack now
        await asyncio.wait_for(client.stop(), 2.0)
        assert swallowed and client._loops == []

    run(test, timeout_s=10.0)
