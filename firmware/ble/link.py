"""The virtual radio: Bumble controllers on a link with connection timing and outages.

Bumble's ``LocalLink`` joins virtual controllers with no timing and no loss. The
simulated roller needs a little more of the real radio:

- ``RadioLink`` delivers link-layer traffic (ACL data and LL control PDUs, in one
  FIFO so their order holds) only at connection-event boundaries, every
  ``interval_s`` (30 ms by default): a request/response round trip costs one to two
  intervals, as on air. ``cut(duration_s)`` takes a controller (or the whole link) out
  of range: advertising is not heard, traffic is held; if the cut lasts longer than
  the supervision timeout the connections drop on both sides (reason 0x08,
  connection timeout) and the held traffic is lost, and no connection can be made
  until the cut ends.
- ``RadioController`` is Bumble's virtual controller with three fixes:
  1. *LE_Create_Connection_Cancel*: the stock controller answers it with success but
     keeps the pending connection and never sends the LE Connection Complete
     event, so ``Device.connect(timeout=...)`` hangs after its timeout and every later
     connect fails with COMMAND_DISALLOWED. Here the cancel clears the pending
     connection and completes it with status 0x02 (unknown connection identifier),
     as the specification requires, so Bumble raises ``TimeoutError`` and the next
     connect works.
  2. *Scan responses*: the stock controller reports the advertising data a second
     time as the scan response; here the scanner gets the advertiser's scan response
     data (the roller's name lives there, legacy advertising holds 31 bytes).
  3. *Reset / host gone*: the stock HCI Reset keeps connections and advertising; here
     a reset or the loss of the host's TCP connection powers the controller off (its
     connections drop on the peer's side with reason 0x15), like a real adapter
     being unplugged.
- ``HostAdapter`` serves one ``RadioController`` over TCP (``tcp-server:H:P``) so a
  host process attaches to the roller's link with ``tcp-client:H:P``.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from bumble import hci
from bumble.controller import Controller
from bumble.core import PhysicalTransport
from bumble.link import LocalLink
from bumble.transport.common import StreamPacketSink, StreamPacketSource

log = logging.getLogger("smartroller.ble.link")

CONNECTION_INTERVAL_S = 0.030
"""Default connection interval of the virtual link, s."""
SUPERVISION_TIMEOUT_S = 1.0
"""Default supervision timeout: a cut longer than this drops the connections, s."""

_POWER_OFF = hci.HCI_ErrorCode.REMOTE_DEVICE_TERMINATED_CONNECTION_DUE_TO_POWER_OFF_ERROR
_TIMEOUT = hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR


@dataclass
class _Pdu:
    src: Controller
    dst: Controller
    deliver: Callable[[], None]


class RadioLink(LocalLink):
    """A ``LocalLink`` with connection-interval timing and range cuts.

    interval_s: connection interval, s (0: deliver at once, as ``LocalLink``).
    supervision_timeout_s: a cut longer than this drops the connections, s.
    """

    def __init__(self, interval_s: float = CONNECTION_INTERVAL_S,
                 supervision_timeout_s: float = SUPERVISION_TIMEOUT_S) -> None:
        super().__init__()
        if interval_s < 0 or supervision_timeout_s <= 0:
            raise ValueError("need interval_s >= 0 and supervision_timeout_s > 0")
        self.interval_s = float(interval_s)
        self.supervision_timeout_s = float(supervision_timeout_s)
        self._queue: deque[_Pdu] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._cuts: dict[Controller | None, float] = {}  # controller (None: all) -> end
        self.lost_pdus = 0
        self.dropped_connections = 0

    # ------------------------------------------------------------------ outages
    def cut(self, duration_s: float, controller: Controller | None = None) -> None:
        """Take ``controller`` (None: every controller) out of range for ``duration_s`` s.

        Connections through it drop after the supervision timeout if the cut lasts
        that long; no advertising is heard and no connection made until it ends.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + duration_s
        self._cuts[controller] = max(self._cuts.get(controller, -math.inf), end)
        log.info("radio cut for %.1f s (%s)", duration_s,
                 controller.name if controller else "whole link")
        if duration_s >= self.supervision_timeout_s:
            loop.call_later(self.supervision_timeout_s, self._supervise)

    def restore(self) -> None:
        """End every cut now."""
        self._cuts.clear()
        self._arm()

    def out_of_range(self, controller: Controller) -> bool:
        """True while ``controller`` is cut off."""
        now = asyncio.get_running_loop().time()
        return now < self._cuts.get(controller, -math.inf) or now < self._cuts.get(
            None, -math.inf)

    def _blocked(self, a: Controller | None, b: Controller | None) -> bool:
        return (a is not None and self.out_of_range(a)) or (
            b is not None and self.out_of_range(b))

    def _supervise(self) -> None:
        """Drop the connections whose ends cannot hear each other (supervision timeout)."""
        dropped: list[tuple[Controller, Controller]] = []
        for controller in list(self.controllers):
            for connection in list(controller.le_connections.values()):
                peer = self.find_le_controller(connection.peer_address)
                if not self._blocked(controller, peer):
                    continue
                controller.on_le_disconnected(connection, _TIMEOUT)
                if peer is not None:
                    dropped.append((controller, peer))
                self.dropped_connections += 1
        if dropped:
            log.info("supervision timeout: %d connection ends dropped", len(dropped))
            pairs = {frozenset(p) for p in dropped}
            kept = deque(p for p in self._queue if frozenset((p.src, p.dst)) not in pairs)
            self.lost_pdus += len(self._queue) - len(kept)
            self._queue = kept

    # ------------------------------------------------------------------ LocalLink hooks
    def send_advertising_pdu(self, sender_controller: Controller, packet: object) -> None:
        """Advertising (and CONNECT_IND) reaches every controller in range at once."""
        loop = asyncio.get_running_loop()
        for controller in self.controllers:
            if controller is not sender_controller and not self._blocked(
                    sender_controller, controller):
                loop.call_soon(controller.on_ll_advertising_pdu, packet)

    def send_acl_data(self, sender_controller: Controller, destination_address: hci.Address,
                      transport: PhysicalTransport, data: bytes) -> None:
        """LE ACL data goes out at the next connection event."""
        if transport != PhysicalTransport.LE:
            super().send_acl_data(sender_controller, destination_address, transport, data)
            return
        dst = self.find_le_controller(destination_address)
        if dst is None:
            return
        source = sender_controller.random_address

        def deliver() -> None:
            if source in dst.le_connections:  # else the link went down meanwhile
                dst.on_link_acl_data(source, transport, data)
        self._enqueue(_Pdu(sender_controller, dst, deliver))

    def send_ll_control_pdu(self, sender_address: hci.Address, receiver_address: hci.Address,
                            packet: object) -> None:
        """LL control PDUs go out at the next connection event, in order with the data."""
        dst = self.find_le_controller(receiver_address)
        src = self.find_le_controller(sender_address)
        if dst is None or src is None:
            log.debug("LL control PDU to an unknown controller dropped: %s", packet)
            return

        def deliver() -> None:
            if sender_address in dst.le_connections:  # else the link went down meanwhile
                dst.on_ll_control_pdu(sender_address, packet)
        self._enqueue(_Pdu(src, dst, deliver))

    # ------------------------------------------------------------------ timing
    def _enqueue(self, pdu: _Pdu) -> None:
        self._queue.append(pdu)
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None or not self._queue:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        when = now
        if self.interval_s > 0:
            when = (math.floor(now / self.interval_s) + 1) * self.interval_s
        if all(self._blocked(p.src, p.dst) for p in self._queue):
            ends = [end for end in self._cuts.values() if end > now]
            when = max(when, min(ends) if ends else now)
        self._timer = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        batch, self._queue = self._queue, deque()
        held: deque[_Pdu] = deque()
        for pdu in batch:
            if self._blocked(pdu.src, pdu.dst):
                held.append(pdu)
            else:
                pdu.deliver()
        held.extend(self._queue)  # sent while delivering: after the held ones
        self._queue = held
        self._arm()


class RadioController(Controller):
    """Bumble's virtual controller with the fixes listed in the module doc."""

    def on_hci_le_create_connection_cancel_command(
            self, _command: hci.HCI_LE_Create_Connection_Cancel_Command,
    ) -> hci.HCI_StatusReturnParameters:
        """Cancel the pending connection and complete it with UNKNOWN_CONNECTION_ID."""
        pending = self.pending_le_connection
        if pending is None:
            return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR)
        self.pending_le_connection = None
        # After the Command Complete event (sent when this returns).
        asyncio.get_running_loop().call_soon(self._connection_cancelled, pending)
        return hci.HCI_StatusReturnParameters(hci.HCI_ErrorCode.SUCCESS)

    def _connection_cancelled(self, pending: object) -> None:
        self.send_hci_packet(hci.HCI_LE_Connection_Complete_Event(
            status=hci.HCI_ErrorCode.UNKNOWN_CONNECTION_IDENTIFIER_ERROR,
            connection_handle=0, role=hci.Role.CENTRAL,
            peer_address_type=pending.peer_address_type,  # type: ignore[attr-defined]
            peer_address=pending.peer_address,  # type: ignore[attr-defined]
            connection_interval=0, peripheral_latency=0, supervision_timeout=0,
            central_clock_accuracy=0))

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        """Give scan-response reports the advertiser's scan response data."""
        if isinstance(packet, hci.HCI_LE_Advertising_Report_Event):
            for report in packet.reports:
                if report.event_type == hci.HCI_LE_Advertising_Report_Event.EventType.SCAN_RSP:
                    report.data = self._scan_response(report.address)
        elif isinstance(packet, hci.HCI_LE_Extended_Advertising_Report_Event):
            scan_rsp = hci.HCI_LE_Extended_Advertising_Report_Event.EventType.SCAN_RESPONSE
            for report in packet.reports:
                if report.event_type & scan_rsp:
                    report.data = self._scan_response(report.address)
        super().send_hci_packet(packet)

    def _scan_response(self, address: hci.Address) -> bytes:
        for controller in self.link.controllers:
            legacy = controller.le_legacy_advertiser
            if legacy.enabled and legacy.address == address:
                return bytes(legacy.scan_response_data)
            for advertising_set in controller.advertising_sets.values():
                if advertising_set.enabled and advertising_set.address == address:
                    return bytes(advertising_set.scan_response_data)
        return b""

    def power_off(self) -> None:
        """Drop every LE connection (the peers see 0x15, power off), stop advertising,
        scanning and connecting."""
        for connection in list(self.le_connections.values()):
            peer = self.link.find_le_controller(connection.peer_address)
            if peer is not None and peer is not self:
                peer_connection = peer.le_connections.get(connection.self_address)
                if peer_connection is not None:
                    peer.on_le_disconnected(peer_connection, _POWER_OFF)
            self.on_le_disconnected(connection, _POWER_OFF)
        self.le_legacy_advertiser.stop()
        for advertising_set in self.advertising_sets.values():
            advertising_set.stop()
        self.advertising_sets.clear()
        self.pending_le_connection = None
        self.le_scan_enable = False

    def on_hci_reset_command(self, command: hci.HCI_Reset_Command
                             ) -> hci.HCI_StatusReturnParameters:
        """A reset forgets connections and advertising too."""
        if self.le_connections or self.is_advertising:
            self.power_off()
        return super().on_hci_reset_command(command)


class HostAdapter:
    """Serves a ``RadioController`` to one host process over TCP at a time.

    controller: the controller a host drives (its HCI over the TCP stream, H4 framing).
    When the host goes away the controller is powered off (``RadioController.power_off``).
    """

    def __init__(self, controller: RadioController) -> None:
        self.controller = controller
        self.server: asyncio.Server | None = None
        self._current: asyncio.Transport | None = None
        self.clients = 0

    async def listen(self, host: str, port: int) -> asyncio.Server:
        """Accept hosts on ``host:port`` (TCP)."""
        self.server = await asyncio.get_running_loop().create_server(
            lambda: _HciClient(self), host, port)
        return self.server

    @property
    def port(self) -> int:
        """The TCP port listened on (after ``listen``)."""
        assert self.server is not None and self.server.sockets
        return int(self.server.sockets[0].getsockname()[1])

    def close(self) -> None:
        """Stop listening and drop the host."""
        if self._current is not None:
            self._current.close()
        if self.server is not None:
            self.server.close()


class _HciClient(asyncio.Protocol):
    def __init__(self, adapter: HostAdapter) -> None:
        self.adapter = adapter
        self.source: StreamPacketSource | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        adapter = self.adapter
        if adapter._current is not None:
            log.warning("a host is already attached: refusing another")
            transport.close()
            return
        adapter._current = transport  # type: ignore[assignment]
        adapter.clients += 1
        self.source = StreamPacketSource()
        self.source.set_packet_sink(adapter.controller)
        adapter.controller.host = StreamPacketSink(transport)  # type: ignore[arg-type]
        log.info("host attached to the virtual radio")

    def data_received(self, data: bytes) -> None:
        if self.source is not None:
            self.source.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        adapter = self.adapter
        if self.source is None:
            return
        self.source = None
        adapter._current = None
        adapter.controller.host = None
        adapter.controller.power_off()
        log.info("host detached from the virtual radio")
