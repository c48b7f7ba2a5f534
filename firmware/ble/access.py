"""Who may read and write each attribute of the roller, enforced at the ATT layer.

Every attribute of the GATT database (GAP, GATT, Device Information, Battery, the
roller's service, their declarations and CCCDs) has a rule for reads and one for
writes, in ``ACCESS`` (by attribute type; the table in docs/protocol.md §1 is the same):

| rule | the roller answers |
| --- | --- |
| ``anyone`` | served to any connection (discovery, the public name) |
| ``bonded`` | served to an *authorised* link only (encrypted with a bond the roller serves); else *Insufficient Encryption* (0x0F) when the peer is bonded but the link is not encrypted, *Insufficient Authentication* (0x05) otherwise |
| ``no`` | *Read Not Permitted* (0x02) / *Write Not Permitted* (0x03), to everyone |

Write Without Response (and Signed Write) is accepted by no attribute: such a command
is dropped, as the core specification wants for a command the server does not accept.

Bumble 0.0.236's GATT server checks no write permission (a TODO in its
``gatt_server``), sends no answer at all when a read-only value is written (the
handler fails in its task) and executes Write Without Response on any writable value.
``AttributeFirewall`` therefore sits in front of it: it replaces the server's
``on_gatt_pdu`` and decides every read and write request by the table before Bumble
sees it. A refusal is answered at once, in the same event-loop turn as the request
(so within the connection event that follows it); only a ``bonded`` rule on a link
not yet authorised waits for the key store. An attribute type missing from the table
is refused both ways (fail closed). Bumble's own permission flags are set to match
(``bumble_permissions``), so its checks agree with ours.
"""  # noqa: E501

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from bumble import att
from bumble.core import UUID
from bumble.device import Connection
from bumble.gatt import (
    GATT_APPEARANCE_CHARACTERISTIC,
    GATT_CHARACTERISTIC_ATTRIBUTE_TYPE,
    GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR,
    GATT_CLIENT_SUPPORTED_FEATURES_CHARACTERISTIC,
    GATT_DATABASE_HASH_CHARACTERISTIC,
    GATT_DEVICE_NAME_CHARACTERISTIC,
    GATT_INCLUDE_ATTRIBUTE_TYPE,
    GATT_PRIMARY_SERVICE_ATTRIBUTE_TYPE,
    GATT_SECONDARY_SERVICE_ATTRIBUTE_TYPE,
    GATT_SERVER_SUPPORTED_FEATURES_CHARACTERISTIC,
    GATT_SERVICE_CHANGED_CHARACTERISTIC,
)
from bumble.gatt_server import Server

from firmware.protocol import (
    BATTERY_LEVEL_UUID,
    CALIBRATION_UUID,
    CONTROL_UUID,
    FIRMWARE_REVISION_UUID,
    HARDWARE_REVISION_UUID,
    MANUFACTURER_NAME_UUID,
    MODEL_NUMBER_UUID,
    SERIAL_NUMBER_UUID,
    STATUS_UUID,
    STREAM_UUID,
)

__all__ = ["ACCESS", "Access", "AttributeFirewall", "Rule", "access_of"]

log = logging.getLogger("smartroller.ble")


class Rule(Enum):
    """Who may do one operation on an attribute."""

    ANYONE = "anyone"
    BONDED = "bonded"
    NO = "no"


@dataclass(frozen=True)
class Access:
    """The rules of one attribute type: read and write (with response)."""

    read: Rule
    write: Rule

    def bumble_permissions(self) -> att.Attribute.Permissions:
        """Bumble's permission flags for these rules (encryption required for ``bonded``)."""
        perms = att.Attribute.Permissions(0)
        if self.read is not Rule.NO:
            perms |= att.Attribute.READABLE
        if self.read is Rule.BONDED:
            perms |= att.Attribute.READ_REQUIRES_ENCRYPTION
        if self.write is not Rule.NO:
            perms |= att.Attribute.WRITEABLE
        if self.write is Rule.BONDED:
            perms |= att.Attribute.WRITE_REQUIRES_ENCRYPTION
        return perms


_PUBLIC = Access(Rule.ANYONE, Rule.NO)
_PRIVATE = Access(Rule.BONDED, Rule.NO)
_HIDDEN = Access(Rule.NO, Rule.NO)

ACCESS: dict[UUID, Access] = {
    # declarations: GATT discovery is public, nothing may rewrite them
    GATT_PRIMARY_SERVICE_ATTRIBUTE_TYPE: _PUBLIC,
    GATT_SECONDARY_SERVICE_ATTRIBUTE_TYPE: _PUBLIC,
    GATT_INCLUDE_ATTRIBUTE_TYPE: _PUBLIC,
    GATT_CHARACTERISTIC_ATTRIBUTE_TYPE: _PUBLIC,
    # every CCCD: a subscription is a write, so it needs an authorised link
    GATT_CLIENT_CHARACTERISTIC_CONFIGURATION_DESCRIPTOR: Access(Rule.ANYONE, Rule.BONDED),
    # GAP: the name is advertised anyway; nobody renames the roller
    GATT_DEVICE_NAME_CHARACTERISTIC: _PUBLIC,
    GATT_APPEARANCE_CHARACTERISTIC: _PUBLIC,
    # GATT service
    GATT_SERVICE_CHANGED_CHARACTERISTIC: _HIDDEN,  # indicate only
    GATT_CLIENT_SUPPORTED_FEATURES_CHARACTERISTIC: Access(Rule.ANYONE, Rule.BONDED),
    GATT_DATABASE_HASH_CHARACTERISTIC: _PUBLIC,
    GATT_SERVER_SUPPORTED_FEATURES_CHARACTERISTIC: _PUBLIC,
    # the roller's service
    UUID(STREAM_UUID): _HIDDEN,  # notify only
    UUID(CONTROL_UUID): Access(Rule.NO, Rule.BONDED),  # write with response, indicate
    UUID(STATUS_UUID): _PRIVATE,
    UUID(CALIBRATION_UUID): _PRIVATE,
    # Device Information, Battery
    UUID(MANUFACTURER_NAME_UUID): _PRIVATE,
    UUID(MODEL_NUMBER_UUID): _PRIVATE,
    UUID(SERIAL_NUMBER_UUID): _PRIVATE,
    UUID(HARDWARE_REVISION_UUID): _PRIVATE,
    UUID(FIRMWARE_REVISION_UUID): _PRIVATE,
    UUID(BATTERY_LEVEL_UUID): _PRIVATE,
}
"""The rules by attribute type (docs/protocol.md §1, "Attribute permissions")."""

_SERVICE_TYPES = (GATT_PRIMARY_SERVICE_ATTRIBUTE_TYPE, GATT_SECONDARY_SERVICE_ATTRIBUTE_TYPE)
_O = att.Opcode
_COMMANDS = (_O.ATT_WRITE_COMMAND, _O.ATT_SIGNED_WRITE_COMMAND)
_ONE_READ = (_O.ATT_READ_REQUEST, _O.ATT_READ_BLOB_REQUEST)
_MANY_READS = (_O.ATT_READ_MULTIPLE_REQUEST, _O.ATT_READ_MULTIPLE_VARIABLE_REQUEST)
_WRITES = (_O.ATT_WRITE_REQUEST, _O.ATT_PREPARE_WRITE_REQUEST)


def access_of(attribute: att.Attribute) -> Access:
    """The rules of ``attribute`` (refused both ways if its type has none)."""
    return ACCESS.get(attribute.type, _HIDDEN)


Guard = Callable[[Connection], Awaitable[None]]
"""Raises ``ATT_Error`` (the code to answer) unless the link is authorised."""


class AttributeFirewall:
    """Decides every ATT read and write request by ``ACCESS`` before Bumble serves it.

    server: the device's GATT server (its ``on_gatt_pdu`` is replaced; call ``install``
        after every service is added).
    authorised: True when the connection is authorised now (no waiting).
    guard: the full check for a link not authorised yet (reads the key store).
    """

    def __init__(self, server: Server, authorised: Callable[[Connection], bool],
                 guard: Guard) -> None:
        self.server = server
        self.authorised = authorised
        self.guard = guard
        self.refused_commands = 0  # Write Without Response / Signed Write dropped
        self.refused_requests = 0  # requests answered with an error by the table
        self._serve = server.on_gatt_pdu
        self._tasks: set[asyncio.Task] = set()

    def install(self) -> None:
        """Set Bumble's permission flags from the table and take the server's ATT PDUs."""
        for attribute in self.server.attributes:
            attribute.permissions = access_of(attribute).bumble_permissions()
        self.server.on_gatt_pdu = self.on_gatt_pdu  # type: ignore[method-assign]

    # ------------------------------------------------------------------ dispatch
    def on_gatt_pdu(self, bearer: att.Bearer, pdu: att.ATT_PDU) -> None:
        """Refuse what the table refuses (at once), hand the rest to Bumble."""
        op = pdu.op_code
        if op in _COMMANDS:
            self.refused_commands += 1
            log.debug("write command to handle %#06x dropped", pdu.attribute_handle)
            return
        if op in _WRITES:
            self._check(bearer, pdu, [pdu.attribute_handle], write=True)
        elif op in _ONE_READ:
            self._check(bearer, pdu, [pdu.attribute_handle], write=False)
        elif op in _MANY_READS:
            self._check(bearer, pdu, list(pdu.set_of_handles), write=False)
        elif op == _O.ATT_READ_BY_TYPE_REQUEST:
            self._read_by_type(bearer, pdu)
        elif op == _O.ATT_FIND_BY_TYPE_VALUE_REQUEST and pdu.attribute_type not in _SERVICE_TYPES:
            # Bumble compares the values of any type: only service discovery is served
            self._refuse(bearer, pdu, pdu.starting_handle, att.ErrorCode.ATTRIBUTE_NOT_FOUND)
        else:
            self._serve(bearer, pdu)

    def _rules(self, handles: Sequence[int], write: bool) -> list[tuple[int, Rule]]:
        rules = []
        for handle in handles:
            attribute = self.server.get_attribute(handle)
            if attribute is None:  # Bumble answers Invalid Handle / Not Found
                continue
            access = access_of(attribute)
            rules.append((handle, access.write if write else access.read))
        return rules

    def _check(self, bearer: att.Bearer, pdu: att.ATT_PDU, handles: Sequence[int],
               write: bool) -> None:
        rules = self._rules(handles, write)
        refused = att.ErrorCode.WRITE_NOT_PERMITTED if write else att.ErrorCode.READ_NOT_PERMITTED
        for handle, rule in rules:
            if rule is Rule.NO:
                self._refuse(bearer, pdu, handle, refused)
                return
        bonded = [handle for handle, rule in rules if rule is Rule.BONDED]
        if not bonded or self.authorised(_connection(bearer)):
            self._serve(bearer, pdu)
            return

        async def check() -> None:
            try:
                await self.guard(_connection(bearer))
            except att.ATT_Error as error:
                self._refuse(bearer, pdu, bonded[0], error.error_code)
                return
            self._serve(bearer, pdu)
        self._spawn(check())

    def _read_by_type(self, bearer: att.Bearer, pdu: att.ATT_Read_By_Type_Request) -> None:
        """Rules go by type, so the first attribute of the type in range decides."""
        for attribute in self.server.attributes:
            if (attribute.type == pdu.attribute_type
                    and pdu.starting_handle <= attribute.handle <= pdu.ending_handle):
                self._check(bearer, pdu, [attribute.handle], write=False)
                return
        self._serve(bearer, pdu)  # nothing of the type: Bumble answers Not Found

    def _refuse(self, bearer: att.Bearer, pdu: att.ATT_PDU, handle: int,
                code: att.ErrorCode | int) -> None:
        self.refused_requests += 1
        self.server.send_response(bearer, att.ATT_Error_Response(
            request_opcode_in_error=pdu.op_code, attribute_handle_in_error=handle,
            error_code=code))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _connection(bearer: att.Bearer) -> Connection:
    return bearer.connection if att.is_enhanced_bearer(bearer) else bearer
