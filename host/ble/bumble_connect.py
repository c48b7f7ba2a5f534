"""LE connections on a Bumble Device without ever cancelling an attempt.

Bumble's virtual controller (``bumble.controller.Controller``) answers
LE_Create_Connection_Cancel with success but never finishes the attempt: it stays
pending in the controller (which then refuses every later LE_Create_Connection with
COMMAND_DISALLOWED) and completes whenever the target advertises again, even much
later, even after the host that asked for it went away. Bumble's ``Device.connect``
sends that cancel on timeout and then waits forever.

``LeConnector`` therefore never cancels:

- one attempt at a time, started with no timeout; a caller's timeout only ends its own
  wait (``asyncio.TimeoutError``), the attempt stays pending;
- a later ``connect`` to the same address joins the pending attempt; to another address
  it fails at once (``BleakError``) while one is pending, and so does a second link to a
  peer already connected (Bumble's controller would leave that attempt pending for good);
- every new central connection, whoever asked for it (also a stray one left by an
  earlier host process on the same controller), is *parked*: the next ``connect`` to
  that address takes it; unclaimed, it is disconnected after ``park_s``;
- COMMAND_DISALLOWED (a stray attempt of an earlier process) makes callers wait for the
  stray connection to arrive, until their timeout.

On a real controller this costs nothing but a pending attempt that a later connect to
the same device completes.
"""

from __future__ import annotations

import asyncio
import logging

from bleak.exc import BleakError
from bumble import core, hci
from bumble.device import Connection, Device

__all__ = ["DEFAULT_PARK_S", "LeConnector"]

logger = logging.getLogger(__name__)

DEFAULT_PARK_S = 30.0
"""How long an unclaimed central connection is kept before disconnecting it, s."""
_BUSY_RETRY_S = 0.5
"""Wait before asking a busy controller (COMMAND_DISALLOWED) again, s."""


class LeConnector:
    """Connects a Bumble ``device`` as central without cancelling attempts (see module).

    label: names the transport in messages.
    park_s: how long an unclaimed connection is kept, s.
    """

    def __init__(self, device: Device, label: str, park_s: float = DEFAULT_PARK_S) -> None:
        self._device = device
        self._label = label
        self.park_s = park_s
        self._attempt: asyncio.Task[Connection] | None = None
        self._target: hci.Address | None = None
        self._parked: dict[bytes, tuple[Connection, asyncio.TimerHandle]] = {}
        self._failures: dict[bytes, BaseException] = {}
        self._changed = asyncio.Event()
        self._busy_until = 0.0  # loop time before which the controller is not asked again
        self._closed = False
        device.on(Device.EVENT_CONNECTION, self._on_connection)
        self._allow_stray_connections()

    @property
    def pending(self) -> hci.Address | None:
        """Address of the attempt pending in the controller, None if none."""
        return self._target if self._attempt is not None else None

    async def connect(self, address: hci.Address, timeout: float) -> Connection:
        """A new connection to ``address`` within ``timeout`` s.

        asyncio.TimeoutError when none came in time (the attempt stays pending);
        BleakError when another address is being connected or the attempt failed.
        """
        if self._closed:
            raise BleakError(f"{self._label}: closed")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key = bytes(address)
        self._failures.pop(key, None)
        while True:
            connection = self._claim(key)
            if connection is not None:
                return connection
            if (failure := self._failures.pop(key, None)) is not None:
                raise BleakError(f"{self._label}: connecting to {address} failed: "
                                 f"{failure}") from failure
            if loop.time() >= self._busy_until:
                self._kick(address)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(
                    f"{self._label}: no connection to {address} within {timeout:g} s "
                    "(the attempt stays pending and completes when it advertises)")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, _BUSY_RETRY_S))
            except TimeoutError:
                pass

    async def close(self) -> None:
        """Disconnect the parked connections; forget the pending attempt."""
        self._closed = True
        self._device.remove_listener(Device.EVENT_CONNECTION, self._on_connection)
        for connection, timer in list(self._parked.values()):
            timer.cancel()
            await _disconnect_quietly(connection)
        self._parked.clear()
        if self._attempt is not None:
            self._attempt.cancel()

    # ------------------------------------------------------------------ internals

    def _kick(self, address: hci.Address) -> None:
        key = bytes(address)
        if any(bytes(c.peer_address) == key and c.role == hci.Role.CENTRAL
               for c in self._device.connections.values()):
            # A second link to one peer: real controllers refuse it, Bumble's would
            # leave the attempt pending for good.
            raise BleakError(f"{self._label}: already connected to {address}")
        if self._attempt is not None:
            if self._target is not None and bytes(self._target) != bytes(address):
                raise BleakError(
                    f"{self._label}: a connection attempt to {self._target} is still "
                    "pending (Bumble controllers cannot cancel one); it ends when that "
                    "device advertises")
            return
        self._target = address
        self._attempt = asyncio.ensure_future(self._device.connect(address, timeout=None))
        self._attempt.add_done_callback(self._attempt_done)

    def _attempt_done(self, task: asyncio.Task[Connection]) -> None:
        self._attempt = None
        self._allow_stray_connections()
        target = self._target
        if not task.cancelled() and (error := task.exception()) is not None:
            if isinstance(error, hci.HCI_Error) and (
                    error.error_code == hci.HCI_ErrorCode.COMMAND_DISALLOWED_ERROR):
                logger.info("%s: controller busy with an earlier attempt; waiting for it",
                            self._label)
                self._busy_until = asyncio.get_running_loop().time() + _BUSY_RETRY_S
            elif target is not None:
                self._failures[bytes(target)] = error
        self._changed.set()

    def _allow_stray_connections(self) -> None:
        # Bumble asserts it knows the own address type of every central connection;
        # between attempts it is None, so a stray connection would be lost.
        if self._device.connect_own_address_type is None:
            self._device.connect_own_address_type = hci.OwnAddressType.RANDOM

    def _on_connection(self, connection: Connection) -> None:
        if (connection.role != hci.Role.CENTRAL
                or connection.transport != core.PhysicalTransport.LE):
            return
        key = bytes(connection.peer_address)
        timer = asyncio.get_running_loop().call_later(self.park_s, self._expire, key)
        self._parked[key] = (connection, timer)
        connection.once(Connection.EVENT_DISCONNECTION,
                        lambda _reason: self._unpark(key, connection))
        self._changed.set()

    def _claim(self, key: bytes) -> Connection | None:
        entry = self._parked.pop(key, None)
        if entry is None:
            return None
        connection, timer = entry
        timer.cancel()
        return connection

    def _unpark(self, key: bytes, connection: Connection) -> None:
        entry = self._parked.get(key)
        if entry is not None and entry[0] is connection:
            entry[1].cancel()
            del self._parked[key]

    def _expire(self, key: bytes) -> None:
        entry = self._parked.pop(key, None)
        if entry is not None:
            logger.info("%s: dropping an unclaimed connection to %s", self._label,
                        entry[0].peer_address)
            asyncio.ensure_future(_disconnect_quietly(entry[0]))


async def _disconnect_quietly(connection: Connection) -> None:
    """Disconnect, ignoring a link already gone."""
    try:
        await asyncio.wait_for(connection.disconnect(), 5.0)
    except (core.BaseBumbleError, TimeoutError) as error:
        logger.debug("disconnect of %s: %r", connection.peer_address, error)
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        logger.debug("disconnect of %s: link already gone", connection.peer_address)
