"""The roller's GATT server on Bumble, end to end on virtual controllers.

Each test runs in one process: the simulated roller (real firmware on emulated
hardware, in real time) with its ``RollerServer`` on one virtual controller, and a
plain Bumble central as the host on another, both on a ``RadioLink``.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from bumble.att import ATT_Error, ErrorCode
from bumble.core import UUID, AdvertisingData, ProtocolError
from bumble.device import Connection, Device, Peer
from bumble.hci import Address
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport import open_transport

import firmware
from firmware.ble.device import device_on_controller, roller_address
from firmware.ble.link import RadioController, RadioLink
from firmware.ble.server import RollerServer, roller_name
from firmware.ble.simcli import run_sim_with_radio
from firmware.ble.stream import BackfillPacing, HostStream
from firmware.drivers.panel import LedState
from firmware.journal import Journal
from firmware.protocol import (
    BATTERY_LEVEL_UUID,
    CALIBRATION_UUID,
    CONTROL_UUID,
    FIRMWARE_REVISION_UUID,
    SERVICE_UUID,
    STATUS_UUID,
    STREAM_UUID,
    Ack,
    Buzz,
    BuzzPattern,
    Defragmenter,
    Frame,
    FrameFlag,
    GetStatus,
    Response,
    ResultCode,
    Resume,
    RollerCalibration,
    RollerFault,
    RollerState,
    SetFence,
    SetTime,
    StartSession,
    Status,
    StopSession,
    StreamDecoder,
    Tare,
    TimeReply,
    Zero,
    encode_request,
)
from firmware.protocol import (
    ProtocolError as WireError,
)
from firmware.sim.parts import GaugePart
from firmware.sim.rig import SimRoller

ROLLER_ADDRESS = "F0:5E:ED:00:3F:2A"
HOST_ADDRESS = "E0:11:22:33:44:55"


def run(coro):  # noqa: ANN001, ANN201
    return asyncio.run(asyncio.wait_for(coro, 40.0))


# --------------------------------------------------------------------------- the rig


class Roller:
    """SimRoller + journal + RollerServer on a RadioController."""

    def __init__(self, link: RadioLink, keystore: Path, *, sim: SimRoller | None = None,
                 journal: Journal | None = None, **server_kw) -> None:
        self.link = link
        self.sim = sim or SimRoller(seed=3)
        self.journal = journal or Journal(None)
        self.controller = RadioController("roller", link=link)
        self.device = device_on_controller(self.controller, Address(ROLLER_ADDRESS))
        self.server = RollerServer(self.device, self.sim.firmware, self.journal,
                                   keystore_path=keystore, **server_kw)
        self.played: list[str] = []
        haptic = self.sim.firmware.haptic
        play = haptic.play

        def spy(pattern, now, **kw):
            self.played.append(pattern if isinstance(pattern, str) else pattern.name)
            return play(pattern, now, **kw)
        haptic.play = spy
        self.task: asyncio.Task | None = None

    async def start(self, speed: float = 1.0) -> None:
        await self.server.start()
        self.task = asyncio.create_task(self.sim.run_async(speed=speed, until=600.0))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        await self.server.stop()
        self.link.remove_controller(self.controller)


class Host:
    """A plain Bumble central playing the laptop."""

    def __init__(self, link: RadioLink, *, delegate: PairingDelegate | None = None,
                 mitm: bool = False) -> None:
        self.controller = RadioController("host", link=link)
        self.device: Device = device_on_controller(self.controller, Address(HOST_ADDRESS))
        delegate = delegate or PairingDelegate()
        self.device.pairing_config_factory = lambda _c: PairingConfig(
            sc=True, mitm=mitm, bonding=True, delegate=delegate)
        self.connection: Connection | None = None
        self.peer: Peer | None = None
        self.frames: list[Frame] = []
        self.stream_errors = 0
        self.notifications = 0
        self.responses: asyncio.Queue[Response] = asyncio.Queue()
        self.statuses: list[Status] = []

    async def connect(self, timeout: float = 5.0, mtu: int | None = 247) -> None:
        if not self.device.powered_on:
            await self.device.power_on()
        self.connection = await self.device.connect(Address(ROLLER_ADDRESS), timeout=timeout)
        self.peer = Peer(self.connection)
        if mtu:
            await self.peer.request_mtu(mtu)
        await self.peer.discover_services()
        await self.peer.discover_characteristics()
        self._defrag, self._decoder = Defragmenter(), StreamDecoder()

    def char(self, uuid: str):  # noqa: ANN201
        assert self.peer is not None
        return self.peer.get_characteristics_by_uuid(UUID(uuid))[0]

    async def subscribe(self) -> None:
        await self.char(CONTROL_UUID).subscribe(
            lambda v: self.responses.put_nowait(Response.decode(bytes(v))), prefer_notify=False)
        await self.char(STATUS_UUID).subscribe(
            lambda v: self.statuses.append(Status.decode(bytes(v))))
        await self.char(STREAM_UUID).subscribe(self._on_stream)

    def _on_stream(self, value: bytes) -> None:
        self.notifications += 1
        try:
            self.frames.extend(self._decoder.feed(self._defrag.feed(bytes(value))))
        except WireError:
            self.stream_errors += 1
            self._decoder.reset()

    async def request(self, data: bytes) -> Response:
        await self.char(CONTROL_UUID).write_value(data, with_response=True)
        return await asyncio.wait_for(self.responses.get(), 3.0)

    async def status(self) -> Status:
        return Status.decode(bytes(await self.char(STATUS_UUID).read_value()))

    async def disconnect(self) -> None:
        if self.connection is not None:
            await self.connection.disconnect()
            self.connection = None


async def bonded_pair(link: RadioLink, tmp_path: Path, **server_kw) -> tuple[Roller, Host]:
    roller = Roller(link, tmp_path / "keys.json", **server_kw)
    await roller.start()
    host = Host(link)
    await host.connect()
    roller.server.open_pairing_window()
    await host.connection.pair()
    await asyncio.sleep(0.05)
    return roller, host


# --------------------------------------------------------------------------- pure parts


def test_roller_name_from_address():
    assert roller_name(Address(ROLLER_ADDRESS)) == "smartroller-3f2a"


def test_roller_address_persists(tmp_path):
    first = roller_address(tmp_path / "address")
    assert first == roller_address(tmp_path / "address")
    assert first.is_static


def test_backfill_is_paced_behind_live_frames():
    journal = Journal(None)
    frames = [Frame(i, i * 0.01, 0.0, 0.0, 0.0, (1.0,) * 8, 8.0) for i in range(400)]
    for frame in frames[:300]:
        journal.append(frame)
    stream = HostStream(8, 0.01, 23, BackfillPacing(notifications_per_flush=4))
    assert stream.resume(301, journal) is ResultCode.OUT_OF_RANGE
    assert stream.resume(0, journal) is ResultCode.SUCCESS
    decoder, defrag = StreamDecoder(8), Defragmenter()
    got: list[Frame] = []
    notes = []
    for k in range(300, 400, 2):
        live = frames[k:k + 2]
        for frame in live:
            journal.append(frame)
        payloads = stream.flush(live, journal)
        notes.append(len(payloads))
        for payload in payloads:
            assert len(payload) <= 20
            batch = decoder.feed(defrag.feed(payload))
            got.extend(batch)
        assert [f.seq for f in got if not f.flags & FrameFlag.BACKFILL][-2:] == [k, k + 1]
    live_seqs = [f.seq for f in got if not f.flags & FrameFlag.BACKFILL]
    back_seqs = [f.seq for f in got if f.flags & FrameFlag.BACKFILL]
    assert live_seqs == list(range(300, 400))
    assert back_seqs == list(range(len(back_seqs)))  # in order, from the RESUME point
    assert 150 <= len(back_seqs) <= 300  # paced: ~170 frames/s at MTU 23
    assert max(notes) <= 10  # never a burst that would hold up the live frames


def test_resume_before_subscribing_covers_the_frames_made_meanwhile():
    journal = Journal(None)
    frames = [Frame(i, i * 0.01, 0.0, 0.0, 0.0, (1.0,) * 4, 4.0) for i in range(300)]
    stream = HostStream(4, 0.01, 247)
    decoder, defrag = StreamDecoder(4), Defragmenter()
    got: list[Frame] = []
    for frame in frames[:100]:
        journal.append(frame)
    assert stream.resume(40, journal) is ResultCode.SUCCESS  # not subscribed yet
    for k in range(100, 300, 2):
        for frame in frames[k:k + 2]:
            journal.append(frame)
        if k < 160:
            stream.pause()  # the flushes while STREAM is not subscribed
            continue
        for payload in stream.flush(frames[k:k + 2], journal):
            got.extend(decoder.feed(defrag.feed(payload)))
    assert sorted(f.seq for f in got) == list(range(40, 300))


# --------------------------------------------------------------------------- security


def test_pairing_in_window_bonds_and_keys_are_stored(tmp_path):
    async def scenario():
        link = RadioLink(interval_s=0.0)
        roller = Roller(link, tmp_path / "keys.json")
        await roller.start()
        host = Host(link)
        await host.connect()
        roller.server.open_pairing_window()
        assert roller.sim.firmware.panel.state is LedState.PAIRING
        assert (await asyncio.wait_for(_read_status_after_refusal(host), 3)) is None
        await host.connection.pair()
        await asyncio.sleep(0.1)
        status = await host.status()
        assert status.state is RollerState.IDLE  # the window closed on the bond
        assert "paired" in roller.played
        assert roller.sim.firmware.panel.state is LedState.CONNECTED
        keys = json.loads((tmp_path / "keys.json").read_text())
        (bonds,) = keys.values()
        assert HOST_ADDRESS in bonds and bonds[HOST_ADDRESS]["ltk"]["value"]
        assert (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600  # owner only
        info = bytes(await host.char(FIRMWARE_REVISION_UUID).read_value()).decode()
        assert info == firmware.__version__
        (level,) = bytes(await host.char(BATTERY_LEVEL_UUID).read_value())
        cell = roller.sim.battery.estimate_percent(roller.sim.clock.now())  # the gauge's
        assert abs(level - cell) <= 1 and status.battery_pct == level
        value = bytes(await host.char(CALIBRATION_UUID).read_value())  # bonded: served
        calibration = RollerCalibration.decode(value)
        kept = roller.sim.firmware.calibration()
        assert calibration.imu_clock_error == pytest.approx(kept.imu_clock_ratio - 1.0, abs=1e-4)
        assert calibration.imu_clock_span_s <= kept.imu_clock_span_s + 1e-3
        await host.disconnect()
        await roller.stop()
    run(scenario())


async def _read_status_after_refusal(host: Host) -> None:
    with pytest.raises(ATT_Error) as refused:
        await host.status()
    assert refused.value.error_code == ErrorCode.INSUFFICIENT_AUTHENTICATION
    return None


def test_pairing_outside_window_is_refused(tmp_path):
    async def scenario():
        link = RadioLink(interval_s=0.0)
        roller = Roller(link, tmp_path / "keys.json", pairing_window_s=0.3)
        await roller.start()
        fw = roller.sim.firmware
        await asyncio.sleep(0.1)
        fw.on_hold()  # the button held 3 s opens the window...
        assert roller.server.pairing_open() and fw.panel.state is LedState.PAIRING
        await asyncio.sleep(0.5)  # ...which closes by itself
        assert not roller.server.pairing_open() and fw.panel.state is LedState.IDLE
        assert roller.server.status().state is RollerState.IDLE
        host = Host(link)
        await host.connect()
        with pytest.raises(ProtocolError):
            await host.connection.pair()
        assert not (tmp_path / "keys.json").exists() or HOST_ADDRESS not in (
            tmp_path / "keys.json").read_text()
        await roller.stop()
    run(scenario())


def test_unbonded_central_gets_nothing_and_is_dropped(tmp_path):
    async def scenario():
        link = RadioLink(interval_s=0.0)
        roller = Roller(link, tmp_path / "keys.json", unauthorised_timeout_s=1.5)
        await roller.start()
        host = Host(link)
        await host.connect()
        for uuid in (STATUS_UUID, FIRMWARE_REVISION_UUID, BATTERY_LEVEL_UUID):
            with pytest.raises(ATT_Error) as refused:
                await host.char(uuid).read_value()
            assert refused.value.error_code == ErrorCode.INSUFFICIENT_AUTHENTICATION
        with pytest.raises(ATT_Error):
            await host.char(CONTROL_UUID).write_value(encode_request(StartSession(7)),
                                                      with_response=True)
        with pytest.raises(ATT_Error) as refused:  # the roller refuses the CCCD writes
            await host.subscribe()
        assert refused.value.error_code == ErrorCode.INSUFFICIENT_AUTHENTICATION
        roller.device.gatt_server.write_cccd(host_connection(roller), roller.server.gatt.stream,
                                             b"\x01\x00")  # as if Bumble had taken one...
        await asyncio.sleep(0.5)
        assert host.notifications == 0 and host.responses.empty()  # ...nothing is sent
        assert not roller.server.session.running
        gone = asyncio.get_running_loop().create_future()
        host.connection.on("disconnection", gone.set_result)
        await asyncio.wait_for(gone, 3.0)  # dropped after unauthorised_timeout_s
        await roller.stop()
    run(scenario())


def host_connection(roller: Roller) -> Connection:
    (link,) = roller.server.links.values()
    return link.connection


def test_passkey_mode_needs_the_passkey(tmp_path):
    class Keyboard(PairingDelegate):
        def __init__(self, number: int) -> None:
            super().__init__(io_capability=PairingDelegate.KEYBOARD_INPUT_ONLY)
            self.number = number

        async def get_number(self) -> int:
            return self.number

    async def scenario():
        link = RadioLink(interval_s=0.0)
        roller = Roller(link, tmp_path / "keys.json", passkey=123456)
        await roller.start()
        roller.server.open_pairing_window()
        # Just Works (no input on the host): Bumble completes it, the roller refuses it.
        host = Host(link)
        await host.connect()
        gone = asyncio.get_running_loop().create_future()
        host.connection.on("disconnection", gone.set_result)
        try:
            await host.connection.pair()
        except ProtocolError:
            pass
        await asyncio.wait_for(gone, 3.0)
        assert HOST_ADDRESS not in (tmp_path / "keys.json").read_text()
        # A wrong passkey fails, the right one bonds (authenticated key).
        roller.server.open_pairing_window()
        wrong = Host(link, delegate=Keyboard(654321), mitm=True)
        await wrong.connect()
        with pytest.raises(ProtocolError):
            await wrong.connection.pair()
        await wrong.disconnect()
        roller.server.open_pairing_window()
        right = Host(link, delegate=Keyboard(123456), mitm=True)
        await right.connect()
        await right.connection.pair()
        await asyncio.sleep(0.1)
        assert (await right.status()).firmware_version == "0.1.0"
        bond = json.loads((tmp_path / "keys.json").read_text())
        assert next(iter(bond.values()))[HOST_ADDRESS]["ltk"]["authenticated"] is True
        await right.disconnect()
        await roller.stop()
    run(scenario())


def test_bond_survives_a_roller_restart(tmp_path):
    async def scenario():
        link = RadioLink(interval_s=0.0)
        roller, host = await bonded_pair(link, tmp_path)
        await host.disconnect()
        await roller.stop()
        # A new roller process: new controller, new Device, same key store file.
        again = Roller(link, tmp_path / "keys.json")
        await again.start()
        assert not again.server.pairing_open()
        started = []
        again.device.on("pairing_start", started.append)
        await host.connect()
        with pytest.raises(ATT_Error) as refused:  # bonded, not encrypted yet
            await host.status()
        assert refused.value.error_code == ErrorCode.INSUFFICIENT_ENCRYPTION
        await host.connection.encrypt()
        await asyncio.sleep(0.05)
        assert (await host.status()).boot_id == again.sim.firmware.boot_id
        assert started == []  # no pairing: the stored bond was enough
        await host.disconnect()
        await again.stop()
    run(scenario())


def test_scan_finds_name_and_service(tmp_path):
    async def scenario():
        link = RadioLink(interval_s=0.0)
        roller = Roller(link, tmp_path / "keys.json")
        await roller.start()
        host = Host(link)
        await host.device.power_on()
        found = asyncio.get_running_loop().create_future()

        def on_advertisement(adv):
            name = adv.data.get(AdvertisingData.COMPLETE_LOCAL_NAME)
            if name and not found.done():
                found.set_result(adv)
        host.device.on("advertisement", on_advertisement)
        await host.device.start_scanning()
        adv = await asyncio.wait_for(found, 3.0)
        assert adv.data.get(AdvertisingData.COMPLETE_LOCAL_NAME) == "smartroller-3f2a"
        uuids = adv.data.get(AdvertisingData.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS)
        assert UUID(SERVICE_UUID) in uuids
        await roller.stop()
    run(scenario())


# --------------------------------------------------------------------------- streaming


def test_bonded_host_streams_resumes_and_acks(tmp_path):
    async def scenario():
        link = RadioLink(interval_s=0.03)  # a 30 ms connection interval
        roller, host = await bonded_pair(link, tmp_path)
        await asyncio.sleep(0.5)  # frames the host has not seen yet
        await host.subscribe()
        await asyncio.sleep(1.0)
        live = [f for f in host.frames if not f.flags & FrameFlag.BACKFILL]
        assert len(live) > 60 and host.stream_errors == 0
        assert [f.seq for f in live] == list(range(live[0].seq, live[0].seq + len(live)))
        assert live[0].boot == roller.sim.firmware.boot_id
        response = await host.request(encode_request(Resume(0)))
        assert response == Response(Resume.opcode)
        await asyncio.sleep(1.0)
        back = [f.seq for f in host.frames if f.flags & FrameFlag.BACKFILL]
        assert back == list(range(live[0].seq))  # exactly the missing ones
        seqs = sorted(f.seq for f in host.frames)
        assert seqs == list(range(seqs[-1] + 1))  # nothing lost, nothing twice
        assert (await host.request(encode_request(Ack(seqs[100])))).ok
        assert roller.journal.oldest_seq == seqs[100] + 1
        assert (await host.status()).oldest_seq == seqs[100] + 1
        beyond = await host.request(encode_request(Resume(roller.journal.next_seq + 50)))
        assert beyond.status is ResultCode.OUT_OF_RANGE
        await host.disconnect()
        await roller.stop()
    run(scenario())


def test_control_point_requests_and_malformed_writes(tmp_path):
    async def scenario():
        link = RadioLink(interval_s=0.0)
        roller, host = await bonded_pair(link, tmp_path)
        fw = roller.sim.firmware
        await host.subscribe()
        ok = await host.request(encode_request(GetStatus()))
        assert Status.decode(ok.payload).boot_id == fw.boot_id
        # Malformed and unknown requests get error responses, never a crash.
        assert await host.request(b"\x55") == Response(0x55, ResultCode.UNKNOWN_OPCODE)
        assert (await host.request(b"\x01\x00")).status is ResultCode.MALFORMED
        assert (await host.request(bytes([0x05, max(BuzzPattern) + 1]))).status is (
            ResultCode.OUT_OF_RANGE)
        assert (await host.request(b"\x06" + b"\xff" * 4)).status is ResultCode.OUT_OF_RANGE
        await host.char(CONTROL_UUID).write_value(b"", with_response=True)
        empty = await asyncio.wait_for(host.responses.get(), 3.0)
        assert empty == Response(0, ResultCode.MALFORMED)
        # The session and the commands.
        assert (await host.request(encode_request(StartSession(42)))).ok
        assert (await host.request(encode_request(StartSession(43)))).status is (
            ResultCode.NOT_ALLOWED)
        await asyncio.sleep(0.1)
        assert host.statuses and host.statuses[-1].state is RollerState.SESSION
        assert host.statuses[-1].session_id == 42
        assert fw.panel.state is LedState.SESSION
        t0 = time.time()
        reply = await host.request(encode_request(SetTime.from_seconds(t0)))
        time_reply = TimeReply.decode(reply.payload)
        assert time_reply.boot_id == fw.boot_id and time_reply.sensor_t > 0
        assert abs(roller.server.session.utc_offset_s - (t0 - time_reply.sensor_t)) < 0.2
        assert (await host.request(encode_request(SetFence(0.25, 0.02, 0.05)))).ok
        assert (fw.fence.position_m, fw.fence.hysteresis_m) == (0.25, 0.02)
        assert (await host.request(encode_request(Buzz(BuzzPattern.ACK)))).ok
        assert fw.haptic.playing == "ack"
        assert (await host.request(encode_request(Buzz(BuzzPattern.STOP)))).ok
        assert fw.haptic.playing is None
        assert (await host.request(encode_request(Zero()))).ok
        assert (await host.request(encode_request(Tare()))).ok
        assert (await host.request(encode_request(StopSession()))).ok
        assert (await host.request(encode_request(StopSession()))).status is (
            ResultCode.NOT_ALLOWED)
        # Streaming went on through all of it.
        before = len(host.frames)
        await asyncio.sleep(0.3)
        assert len(host.frames) > before + 15
        await host.disconnect()
        await roller.stop()
    run(scenario())


def test_status_request_at_mtu_23_and_long_read(tmp_path):
    async def scenario():
        link = RadioLink(interval_s=0.0)
        roller = Roller(link, tmp_path / "keys.json")
        await roller.start()
        host = Host(link)
        await host.connect(mtu=None)
        roller.server.open_pairing_window()
        await host.connection.pair()
        await asyncio.sleep(0.05)
        assert host.connection.att_mtu == 23
        await host.subscribe()
        response = await host.request(encode_request(GetStatus()))
        assert response.status is ResultCode.NOT_ALLOWED
        assert (await host.status()).state is RollerState.IDLE  # long read
        await asyncio.sleep(0.3)
        seqs = [f.seq for f in host.frames]
        assert len(seqs) > 15 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        await host.disconnect()
        await roller.stop()
    run(scenario())


def test_outage_reconnect_loses_and_duplicates_nothing(tmp_path):
    """Out of range for 2 s: connects fail (and return) meanwhile; after it, the host
    reconnects, RESUMEs from its last stored seq + 1 and ends with every frame once."""
    async def scenario():
        link = RadioLink(interval_s=0.03, supervision_timeout_s=0.5)
        roller, host = await bonded_pair(link, tmp_path)
        stored: dict[int, Frame] = {}
        duplicates = 0

        async def session() -> None:
            nonlocal duplicates
            await host.subscribe()
            first = min(stored) if stored else 0
            nxt = max(stored) + 1 if stored else first
            assert (await host.request(encode_request(Resume(nxt)))).ok

        await session()
        await asyncio.sleep(0.8)
        for frame in host.frames:
            duplicates += frame.seq in stored
            stored[frame.seq] = frame
        host.frames.clear()
        assert (await host.request(encode_request(Ack(max(stored))))).ok
        gone = asyncio.get_running_loop().create_future()
        host.connection.on("disconnection", gone.set_result)
        link.cut(2.0, roller.controller)
        assert await asyncio.wait_for(gone, 2.0) == 0x08  # supervision timeout
        for frame in host.frames:
            duplicates += frame.seq in stored
            stored[frame.seq] = frame
        host.frames.clear()
        t0 = time.monotonic()
        with pytest.raises(Exception) as failed:  # out of range: the connect gives up...
            await host.connect(timeout=0.4)
        assert "imeout" in type(failed.value).__name__ and time.monotonic() - t0 < 1.5
        while True:  # ...and a later one works (the cancel was completed)
            try:
                await host.connect(timeout=0.4)
                break
            except Exception:
                await asyncio.sleep(0.1)
        await host.connection.encrypt()
        await asyncio.sleep(0.05)
        await session()
        await asyncio.sleep(1.5)
        for frame in host.frames:
            duplicates += frame.seq in stored
            stored[frame.seq] = frame
        seqs = sorted(stored)
        assert seqs == list(range(seqs[0], seqs[-1] + 1))
        assert duplicates == 0
        assert any(f.flags & FrameFlag.BACKFILL for f in stored.values())
        assert link.dropped_connections == 2
        await host.disconnect()
        await roller.stop()
    run(scenario())


def test_sim_with_host_adapter_over_tcp(tmp_path):
    """``run_sim_with_radio``: a Bumble host attaches with tcp-client and streams."""
    async def scenario():
        ready = asyncio.get_running_loop().create_future()
        sim = SimRoller(seed=5)
        lines: list[str] = []
        port = _free_port()
        runner = asyncio.create_task(run_sim_with_radio(
            sim, f"tcp-server:127.0.0.1:{port}", until=4.0, state_dir=tmp_path,
            interval_ms=0, say=lines.append, ready=lambda s, k: ready.set_result(s)))
        server = await asyncio.wait_for(ready, 5.0)
        assert server.pairing_open()  # a roller without a bond comes up pairable
        async with await open_transport(f"tcp-client:127.0.0.1:{port}") as transport:
            from bumble.host import Host as BumbleHost
            device = Device(address=Address(HOST_ADDRESS),
                            host=BumbleHost(transport.source, transport.sink))
            await device.power_on()
            connection = await device.connect(server.device.static_address, timeout=3.0)
            await connection.pair()
            peer = Peer(connection)
            await peer.request_mtu(247)
            await peer.discover_services()
            await peer.discover_characteristics()
            frames: list[Frame] = []
            defrag, decoder = Defragmenter(), StreamDecoder()
            stream = peer.get_characteristics_by_uuid(UUID(STREAM_UUID))[0]
            await stream.subscribe(lambda v: frames.extend(decoder.feed(defrag.feed(v))))
            await asyncio.sleep(0.5)
            assert len(frames) > 20
            assert server.links
        await asyncio.sleep(0.2)
        assert not server.links  # the host went away: its adapter powered off
        summary = await runner
        assert summary.hosts == 1 and summary.frames > 300
        assert any("smartroller-" in line for line in lines)
        assert (tmp_path / "keys.json").exists() and (tmp_path / "address").exists()
    run(scenario())


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_status_carries_a_low_or_unknown_battery(tmp_path):
    async def scenario():
        link = RadioLink(interval_s=0.0)
        roller = Roller(link, tmp_path / "keys.json")
        roller.sim.battery.start_pct = 9.0
        roller.sim.battery.part = GaugePart()  # an exact gauge
        roller.sim.battery.settle()  # (a charge of 9 % from power-on)
        await roller.start(speed=50.0)
        await asyncio.sleep(0.1)
        status = roller.server.status()
        assert status.faults & RollerFault.LOW_BATTERY and status.battery_pct == 9
        assert not status.faults & RollerFault.BATTERY_UNKNOWN
        roller.sim.battery.vanish()
        polled = roller.sim.clock.now() + 10.0  # one poll period of the sim's clock
        while roller.sim.clock.now() < polled + 0.1:
            await asyncio.sleep(0.05)
        status = roller.server.status()
        assert status.faults & RollerFault.BATTERY_UNKNOWN and status.battery_pct == 0
        assert status.battery_text == "unknown"
        await roller.stop()
    run(scenario())


def test_an_ack_never_releases_frames_the_backfill_has_not_sent_yet():
    # The journal's seqs go on across boots: an older boot's frames (0..299) wait to be
    # sent while the host acknowledges this boot's live frames (300..).
    journal = Journal(None)
    frames = [Frame(i, i * 0.01, 0.0, 0.0, 0.0, (1.0,) * 8, 8.0) for i in range(340)]
    for frame in frames[:300]:
        journal.append(frame)
    stream = HostStream(8, 0.01, 23, BackfillPacing(notifications_per_flush=1))
    for frame in frames[300:302]:
        journal.append(frame)
    stream.flush(frames[300:302], journal)  # the live run starts at 300
    assert stream.resume(0, journal) is ResultCode.SUCCESS
    while stream.cursor == 0:
        stream.flush([], journal)  # paced: the first chunk of the backfill goes out
    sent = stream.cursor
    assert 0 < sent < 300
    assert stream.ack_limit(301) == sent - 1  # not the frames still waiting
    while stream.backfilling:
        stream.flush([], journal)
    assert stream.ack_limit(301) == 301  # all sent: the host's ACK stands
