"""``RollerClient``: the laptop's link to one roller, on bleak's public API only.

It speaks the protocol of docs/protocol.md through ``BleakScanner``, ``BleakClient``
and bleak-retry-connector's ``establish_connection``, on bleak's native backend or any
other (``BleBackend``: the Bumble one for virtual or USB controllers).

At each connection: read STATUS (protocol version check), subscribe to CONTROL
(indications), STATUS and STREAM (notifications), SET_TIME (learns the clock mapping),
STATUS, then RESUME from the first frame not yet received (the contiguous prefix).
Frames reach ``on_frames`` exactly once per (boot, seq) and as soon as they arrive
(``StreamReceiver``): live frames at once, journal backfill when it comes, so backfill
may follow later live frames (consumers sort by (boot, seq) when storing). The consumer
calls ``stored(seq)`` once it has stored what it was given; the client acknowledges
(ACK) about once a second, never past the contiguous prefix. After a disconnection it
reconnects by itself, with exponential backoff up to a cap, until ``stop()``. The
consumer's stored position (and what it stored beyond it) comes from outside
(``position=``, ``ahead=``), so a restarted host resumes without duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from bleak import BleakClient
from bleak.backends.device import BLEDevice
from bleak.exc import BleakError
from bleak_retry_connector import establish_connection

from firmware.protocol import (
    CONTROL_UUID,
    NO_SEQ,
    STATUS_UUID,
    STREAM_UUID,
    Ack,
    Buzz,
    BuzzPattern,
    Frame,
    GetStatus,
    ProtocolError,
    Request,
    Response,
    ResultCode,
    Resume,
    RollerCalibration,
    SetFence,
    SetTime,
    StartSession,
    Status,
    StopSession,
    Tare,
    TimeReply,
    Zero,
)
from host.ble.control import ControlPoint, RollerCommandError, RollerDisconnected
from host.ble.discovery import (
    BleBackend,
    FoundRoller,
    RollerIncompatible,
    find_roller,
    pair_roller,
    read_calibration,
    read_status,
    scan_rollers,
)
from host.stream import ClockMap, Hole, Received, StreamPosition, StreamReceiver

__all__ = ["BleBackend", "FoundRoller", "RollerClient", "RollerCommandError",
           "RollerDisconnected", "RollerIncompatible"]

logger = logging.getLogger(__name__)

CLOCK_BURST = 3
"""SET_TIMEs per clock sync; the shortest round trip is kept."""

STOP_WAIT_S = 5.0
"""How long ``RollerClient.stop`` waits for its link tasks to end, s."""

_LINK_ERRORS = (BleakError, TimeoutError, OSError, EOFError, RollerDisconnected,
                RollerCommandError, ProtocolError)


class RollerClient:
    """One roller: connection, stream, acknowledgements, commands (see the module).

    backend: which bleak backend (None: bleak's native one).
    on_frames: called with each batch of new frames (in the event loop), in arrival
        order: seq order within a live run and within a backfill run, but backfill may
        come after later live frames.
    on_status: called with each STATUS value received.
    on_hole: called with frames lost for good (the roller no longer has them).
    on_link: called with True/False when the link comes up or goes down.
    position: the consumer's contiguous stored prefix: every frame of that boot up to
        ``last_seq`` is stored (None: nothing stored yet). Persist ``position`` (the
        property) after storing a batch to have it.
    ahead: seqs of ``position``'s boot beyond ``position.last_seq`` the consumer stored
        too (backfill that came after later live frames): not delivered again.
    from_live_edge: with no ``position``, start at the live edge instead of taking
        the roller's journal (for a viewer that stores nothing).
    zone_count: zones per frame if known.
    request_timeout_s: control request + indicated response, s.
    connect_timeout_s: one connection with its setup, s.
    scan_timeout_s: looking for the roller's advertisements, s.
    backoff_s: (first, cap) delay between reconnection attempts, s; doubles each time.
    ack_interval_s: how often stored frames are acknowledged, s.
    resume_retry_s: while frames are missing, RESUME again when the prefix has not
        advanced for this long, s.
    clock_sync_s: sync the clock again after this long on one link (each sync is a burst
        of ``CLOCK_BURST`` SET_TIMEs; the map follows the sensor clock's rate), s.
    clock: the host's UTC clock, s since 1970.
    """

    def __init__(self, backend: BleBackend | None = None, *,
                 on_frames: Callable[[list[Frame]], None] | None = None,
                 on_status: Callable[[Status], None] | None = None,
                 on_hole: Callable[[Hole], None] | None = None,
                 on_link: Callable[[bool], None] | None = None,
                 position: StreamPosition | None = None, ahead: Iterable[int] = (),
                 from_live_edge: bool = False,
                 zone_count: int | None = None, request_timeout_s: float = 5.0,
                 connect_timeout_s: float = 20.0, scan_timeout_s: float = 10.0,
                 backoff_s: tuple[float, float] = (0.5, 30.0), ack_interval_s: float = 1.0,
                 resume_retry_s: float = 3.0, clock_sync_s: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        if not 0 < backoff_s[0] <= backoff_s[1]:
            raise ValueError(f"backoff_s must be (first, cap) with 0 < first <= cap: "
                             f"{backoff_s}")
        self.backend = backend or BleBackend()
        self.on_frames, self.on_status, self.on_hole, self.on_link = (
            on_frames, on_status, on_hole, on_link)
        self.from_live_edge = from_live_edge and position is None
        self.request_timeout_s = request_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.scan_timeout_s = scan_timeout_s
        self.backoff_s = backoff_s
        self.ack_interval_s = ack_interval_s
        self.resume_retry_s = resume_retry_s
        self.clock_sync_s = clock_sync_s
        self._clock = clock
        self._last_set_time = 0.0
        self.receiver = StreamReceiver(position, ahead=ahead, zone_count=zone_count)
        self.clock_map = ClockMap()
        self.last_status: Status | None = None
        self.calibration: RollerCalibration | None = None
        """What the roller learned of its parts, read at each link (and at pairing);
        None before, or from a roller without CALIBRATION."""
        self._control = ControlPoint(self._write_control, request_timeout_s)
        self._target: str | BLEDevice | None = None
        self._device: BLEDevice | None = None
        self._bleak: BleakClient | None = None
        self._stopping = False
        self._lost = asyncio.Event()
        self._up = asyncio.Event()  # link up: requests may go
        self._ready = asyncio.Event()  # link set up: frames flow, gaps are resumed
        self._started = False  # the stream's start point was chosen (first link)
        # boot id -> the consumer's stored seq (all it was given up to there is stored)
        self._stored: dict[int, int] = {} if position is None else {
            position.boot_id: position.last_seq}
        self._acked: StreamPosition | None = None  # the stored position is acked again
        self._last_resume = 0.0
        self._progress: tuple[int | None, int] = (None, -1)  # (boot, prefix) last seen
        self._progress_at = 0.0  # when the prefix last moved (time.monotonic), s
        self._loops: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ properties

    @property
    def connected(self) -> bool:
        """True while the link is up and set up (subscribed, clock set, resumed)."""
        return self._ready.is_set()

    @property
    def position(self) -> StreamPosition | None:
        """The contiguous prefix of the current boot: every frame up to its ``last_seq``
        was delivered (or is a reported hole, or precedes the start). Frames beyond it
        may have been delivered too (``receiver.ahead_seqs()``)."""
        return self.receiver.position

    @property
    def ack_position(self) -> StreamPosition | None:
        """What an ACK covers now: the consumer's stored seq of the current boot, capped
        at the contiguous prefix, so never a frame the consumer was not given nor one
        beyond a missing frame; None if nothing."""
        boot = self.receiver.boot_id
        stored = None if boot is None else self._stored.get(boot)
        prefix = None if boot is None else self.receiver.contiguous(boot)
        if stored is None or prefix is None:
            return None
        seq = min(stored, prefix.last_seq)
        return StreamPosition(prefix.boot_id, seq) if seq >= 0 else None

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Wait until the link is up and set up (TimeoutError after ``timeout_s``)."""
        async with asyncio.timeout(timeout_s):
            await self._ready.wait()

    # ------------------------------------------------------------------ discovery

    async def scan(self, timeout_s: float = 5.0,
                   on_found: Callable[[FoundRoller], None] | None = None
                   ) -> list[FoundRoller]:
        """Rollers advertising the roller service within ``timeout_s``; ``on_found``
        with each as it is first seen."""
        return await scan_rollers(timeout_s, self.backend, on_found)

    async def pair(self, address: str | BLEDevice, timeout_s: float = 30.0) -> Status:
        """Bond with the roller at ``address`` (in its pairing window); its STATUS (and
        its ``calibration``)."""
        status, self.calibration = await pair_roller(address, self.backend, timeout_s)
        return status

    # ------------------------------------------------------------------ lifecycle

    async def connect(self, address: str | BLEDevice) -> Status:
        """Connect to the roller, set the link up, then keep it up until ``stop()``.

        The first connection's errors are raised (BleakError, TimeoutError,
        RollerIncompatible ...); later ones are retried with backoff.
        """
        if self._loops:
            raise RuntimeError("RollerClient.connect: already started")
        self._target, self._stopping = address, False
        self._lost.clear()
        status = await self._connect_once()
        self._loops = [asyncio.create_task(self._supervise()),
                       asyncio.create_task(self._ack_loop())]
        return status

    async def stop(self) -> None:
        """Acknowledge what is stored, disconnect, stop reconnecting."""
        self._stopping = True
        self._lost.set()
        for task in self._loops:
            task.cancel()
        # Each loop ends at its next turn too (``_stopping``): a cancellation swallowed
        # below it (asyncio.wait_for on Python 3.11 loses one that meets its inner
        # future's completion) would otherwise hang this gather for good.
        pending: set[asyncio.Task] = set()
        if self._loops:
            _done, pending = await asyncio.wait(self._loops, timeout=STOP_WAIT_S)
        if pending:
            logger.warning("%d link task(s) did not stop within %.0f s; left behind",
                           len(pending), STOP_WAIT_S)
        self._loops = []
        if self.connected:
            try:
                await self.flush_ack(timeout_s=min(self.request_timeout_s, 2.0))
            except _LINK_ERRORS as error:
                logger.info("final ACK not sent: %s", error)
        client = self._bleak
        if client is not None:
            try:
                await client.disconnect()
            except (BleakError, TimeoutError) as error:
                logger.info("disconnect: %s", error)
        self._link_down(RollerDisconnected("stopped"))
        for task in list(self._tasks):
            task.cancel()

    async def _connect_once(self) -> Status:
        if self._device is None:
            self._device = self._target if isinstance(self._target, BLEDevice) else \
                await find_roller(str(self._target), self.scan_timeout_s, self.backend)
        device = self._device
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                client = await establish_connection(
                    BleakClient, device, device.name or device.address,
                    disconnected_callback=self._on_disconnected, max_attempts=2,
                    timeout=self.connect_timeout_s, **self.backend.client_kwargs())
        except BleakError:
            if not isinstance(self._target, BLEDevice):
                self._device = None  # scan again next time
            raise
        self._bleak = client
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                return await self._set_up(client)
        except BaseException:
            self._bleak = None
            self._up.clear()
            self._ready.clear()
            try:
                await client.disconnect()
            except (BleakError, TimeoutError):
                pass
            raise

    async def _set_up(self, client: BleakClient) -> Status:
        await read_status(client)  # the version check comes before anything else
        self.calibration = await read_calibration(client)
        if self.calibration is not None:
            self.clock_map.sensor_rate = 1.0 + self.calibration.imu_clock_error
        self._ready.clear()
        self.receiver.new_link()
        await client.start_notify(CONTROL_UUID, self._on_control)
        await client.start_notify(STATUS_UUID, self._on_status_value)
        await client.start_notify(STREAM_UUID, self._on_stream)
        self._up.set()
        await self.sync_clock()
        status = await self.status()
        if self.from_live_edge and not self._started:
            start = 0 if status.last_seq == NO_SEQ else status.last_seq + 1
            self._deliver(self.receiver.forget_before(status.boot_id, start))
        else:
            self._deliver(self.receiver.forget_before(status.boot_id, status.oldest_seq))
        self._started = True
        seq = self.receiver.next_seq
        if status.last_seq != NO_SEQ and seq <= status.last_seq:
            await self._resume(self.receiver.resume_request())
        self._ready.set()
        if self.on_link is not None:
            self._call(self.on_link, True)
        return status

    def _on_disconnected(self, client: BleakClient) -> None:
        if client is not self._bleak:
            return
        self._link_down(RollerDisconnected("the link was lost"))
        if not self._stopping:
            self._lost.set()

    def _link_down(self, error: BaseException) -> None:
        was_ready = self._ready.is_set()
        self._bleak = None
        self._up.clear()
        self._ready.clear()
        self._control.fail(error)
        if was_ready and self.on_link is not None:
            self._call(self.on_link, False)

    async def _supervise(self) -> None:
        delay = self.backoff_s[0]
        while not self._stopping:
            await self._lost.wait()
            self._lost.clear()
            if self._stopping:
                return
            try:
                await self._connect_once()
                delay = self.backoff_s[0]
            except RollerIncompatible as error:
                logger.error("roller incompatible, not reconnecting: %s", error)
                return
            except _LINK_ERRORS as error:
                logger.info("reconnect failed (%s); next try in %.1f s", error, delay)
                self._lost.set()
                await asyncio.sleep(delay)
                delay = min(delay * 2.0, self.backoff_s[1])

    async def _ack_loop(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.ack_interval_s)
            if not self._ready.is_set():
                continue
            try:
                await self.flush_ack()
                now = time.monotonic()
                if self._resume_due(now):
                    await self._resume(self.receiver.resume_request())
                if now - self._last_set_time > self.clock_sync_s:
                    await self.sync_clock()
            except _LINK_ERRORS as error:
                logger.info("ACK/RESUME not sent: %s", error)

    def _resume_due(self, now: float) -> bool:
        """True when frames are missing and the prefix has not advanced for
        ``resume_retry_s`` since it last moved or since the last RESUME (``now``: s,
        ``time.monotonic``). A long backfill that makes progress is left alone."""
        mark = (self.receiver.boot_id, self.receiver.next_seq)
        if mark != self._progress:
            self._progress, self._progress_at = mark, now
        if not self.receiver.waiting:
            return False
        return now - max(self._progress_at, self._last_resume) > self.resume_retry_s

    # ------------------------------------------------------------------ stream

    def _on_stream(self, _sender: Any, data: bytearray) -> None:
        self._deliver(self.receiver.feed(bytes(data)))

    def _on_control(self, _sender: Any, data: bytearray) -> None:
        self._control.on_indication(data)

    def _on_status_value(self, _sender: Any, data: bytearray) -> None:
        try:
            status = Status.decode(bytes(data))
        except ProtocolError as error:
            logger.warning("bad STATUS notification: %s", error)
            return
        self._update_status(status)

    def _update_status(self, status: Status) -> None:
        self.last_status = status
        if status.boot_id != self.receiver.boot_id and self._started:
            self._deliver(self.receiver.set_boot(status.boot_id))
        if self.on_status is not None:
            self._call(self.on_status, status)

    def _deliver(self, received: Received) -> None:
        for error in received.errors:
            logger.info("stream: %s", error)
        if received.frames and self.on_frames is not None:
            self._call(self.on_frames, received.frames)
        for hole in received.holes:
            logger.warning("frames lost for good: boot %d, seq %d..%d", hole.boot_id,
                           hole.first_seq, hole.last_seq)
            if self.on_hole is not None:
                self._call(self.on_hole, hole)
        if received.resume_from is not None and self._ready.is_set():
            self._spawn(self._resume_quietly(received.resume_from))

    async def _resume(self, seq: int) -> None:
        """RESUME from ``seq``, then learn from STATUS what the journal still has."""
        self._last_resume = time.monotonic()
        response = await self.request(Resume(seq), check=False)
        if response.status not in (ResultCode.SUCCESS, ResultCode.OUT_OF_RANGE):
            raise RollerCommandError(Resume(seq), response)
        status = await self.status()
        self._deliver(self.receiver.forget_before(status.boot_id, status.oldest_seq))

    async def _resume_quietly(self, seq: int) -> None:
        try:
            await self._resume(seq)
        except _LINK_ERRORS as error:
            logger.info("RESUME(%d) not sent: %s", seq, error)

    def stored(self, seq: int, boot_id: int | None = None) -> None:
        """The consumer has stored every frame of ``boot_id`` (default: the current
        boot) it was given up to ``seq`` (e.g. the highest seq of a batch it stored).
        The ACK, within ``ack_interval_s``, covers ``min(seq, contiguous prefix)``
        (``ack_position``): a frame still missing below ``seq`` is not acknowledged."""
        boot = self.receiver.boot_id if boot_id is None else boot_id
        last = None if boot is None else self.receiver.last_seq(boot)
        if boot is None or last is None or seq > last:
            raise ValueError(f"frame {seq} of boot {boot} was not delivered")
        if seq > self._stored.get(boot, -1):
            self._stored[boot] = seq

    async def flush_ack(self, timeout_s: float | None = None) -> None:
        """Acknowledge now what is stored, up to the contiguous prefix (only frames of
        the roller's current boot; see ``ack_position``)."""
        position = self.ack_position
        if position is None or position == self._acked:
            return
        await self.request(Ack(position.last_seq), timeout_s)
        self._acked = position

    # ------------------------------------------------------------------ commands

    async def request(self, request: Request, timeout_s: float | None = None,
                      check: bool = True) -> Response:
        """Send a control request, return its response (see ``ControlPoint.request``)."""
        if not self._up.is_set():
            raise RollerDisconnected("not connected")
        return await self._control.request(request, timeout_s, check)

    async def set_time(self) -> TimeReply:
        """SET_TIME with the host clock; the reply feeds ``clock_map``."""
        reply, sent, received = await self._exchange_time()
        self.clock_map.learn(reply, sent, received)
        return reply

    async def sync_clock(self, tries: int = CLOCK_BURST) -> TimeReply:
        """``tries`` SET_TIMEs in a row; only the one with the shortest round trip feeds
        ``clock_map`` (Bluetooth's delay varies; its minimum, nearly symmetric, does not:
        docs/host-ble.md "Clock")."""
        best = None
        for _ in range(tries):
            exchange = await self._exchange_time()
            if best is None or exchange[2] - exchange[1] < best[2] - best[1]:
                best = exchange
        assert best is not None
        self.clock_map.learn(*best)
        return best[0]

    async def _exchange_time(self) -> tuple[TimeReply, float, float]:
        """One SET_TIME: the reply, host UTC at sending and at receiving (s)."""
        self._last_set_time = time.monotonic()
        sent = self._clock()
        response = await self.request(SetTime.from_seconds(sent))
        received = self._clock()
        return TimeReply.decode(response.payload), sent, received

    async def status(self) -> Status:
        """The roller's STATUS (the control request, or a read at a small MTU)."""
        response = await self.request(GetStatus(), check=False)
        if response.status == ResultCode.NOT_ALLOWED and self._bleak is not None:
            status = await read_status(self._bleak)
        elif response.ok:
            status = Status.decode(response.payload)
        else:
            raise RollerCommandError(GetStatus(), response)
        self._update_status(status)
        return status

    async def zero(self) -> None:
        """Make the current roll position the zero."""
        await self.request(Zero())

    async def set_fence(self, position_m: float, hysteresis_m: float, approach_m: float
                        ) -> None:
        """Move the on-device lumbar fence (m from the zero, hysteresis and approach m)."""
        await self.request(SetFence(position_m, hysteresis_m, approach_m))

    async def buzz(self, pattern: BuzzPattern | int | str) -> None:
        """Play a haptic pattern (a ``BuzzPattern``, its value or its name)."""
        if isinstance(pattern, str):
            try:
                pattern = BuzzPattern[pattern.upper()]
            except KeyError:
                raise ValueError(f"unknown buzz pattern {pattern!r}") from None
        await self.request(Buzz(BuzzPattern(pattern)))

    async def start_session(self, session_id: int) -> None:
        """Start recording session ``session_id`` (u32, not 0)."""
        await self.request(StartSession(session_id))

    async def stop_session(self) -> None:
        """Acknowledge what is stored, then end the session."""
        await self.flush_ack()
        await self.request(StopSession())

    async def tare(self) -> None:
        """Nothing lies on the roller: zero the zone loads."""
        await self.request(Tare())

    # ------------------------------------------------------------------ plumbing

    async def _write_control(self, data: bytes) -> None:
        client = self._bleak
        if client is None:
            raise RollerDisconnected("not connected")
        await client.write_gatt_char(CONTROL_UUID, data, response=True)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _call(callback: Callable[..., None], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:  # the consumer's; the link must go on
            logger.exception("RollerClient callback %r failed", callback)
