"""The roller's attribute permissions, walked from outside against docs/protocol.md.

A plain Bumble central (not the project's host code) discovers every attribute of the
roller's GATT database and reads, writes (with response) and writes without response
each one, first unpaired, then bonded on the same connection; every answer is checked
against the "Attribute permissions" table of docs/protocol.md §1. The radio link has
30 ms connection events: a refusal must come back with the next one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

import pytest
from bumble import att
from bumble.core import UUID
from bumble.gatt import (
    GATT_APPEARANCE_CHARACTERISTIC,
    GATT_CLIENT_SUPPORTED_FEATURES_CHARACTERISTIC,
    GATT_DATABASE_HASH_CHARACTERISTIC,
    GATT_DEVICE_NAME_CHARACTERISTIC,
    GATT_PRIMARY_SERVICE_ATTRIBUTE_TYPE,
)

import firmware.protocol as protocol
from firmware.ble.access import ACCESS, Rule
from firmware.ble.link import RadioLink
from firmware.protocol import CONTROL_UUID, MANUFACTURER_NAME_UUID, StartSession, encode_request
from tests.test_ble_server import Host, Roller, host_connection, run

DOC = Path(__file__).resolve().parents[1] / "docs" / "protocol.md"
INTERVAL_S = 0.03
NEXT_EVENT_S = 2 * INTERVAL_S + 0.01
"""A round trip answered in the next connection event: the request waits for one event
(<= 30 ms), the answer goes out with the next (30 ms later); + 10 ms of slack."""
STALL_S = 2.0
"""No answer may take longer, s: Bumble alone stalled 6 s; a worker sharing 2 cores with
the end-to-end tests once took 0.54 s over a single answer, so this catches the stall
and not the machine's load (the median below holds the link's own timing)."""
E = att.ErrorCode


def documented_rules() -> dict[UUID, tuple[str, str, str]]:
    """(read, write, write without response) by attribute type, from docs/protocol.md."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index("| attribute | type | read | write | write without response |")
    rules: dict[UUID, tuple[str, str, str]] = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        for name in re.findall(r"`([^`]+)`", cells[1]):
            uuid = (UUID(getattr(protocol, name)) if name.endswith("_UUID")
                    else UUID.from_16_bits(int(name, 16)))
            rules[uuid] = (cells[2], cells[3], cells[4])
    return rules


def test_the_firewall_table_is_the_documented_one():
    rules = documented_rules()
    code = {uuid: (a.read.value, a.write.value) for uuid, a in ACCESS.items()}
    assert {uuid: r[:2] for uuid, r in rules.items()} == {
        uuid: rw for uuid, rw in code.items() if uuid in rules}
    # every rule in the code is documented, except Bumble types the roller does not use
    assert set(code) - set(rules) <= {UUID.from_16_bits(0x2801), UUID.from_16_bits(0x2802),
                                      UUID.from_16_bits(0x2B3A)}
    assert {r[2] for r in rules.values()} == {"no"}


def _probe(attribute_type: UUID) -> bytes:
    if attribute_type == UUID(CONTROL_UUID):
        return encode_request(StartSession(7))
    if attribute_type == GATT_DEVICE_NAME_CHARACTERISTIC:
        return b"pwned"
    return b"\x01\x00"


def _expected(rule: str, bonded: bool, write: bool) -> int | None:
    """The ATT error the rule gives (None: served)."""
    if rule == "no":
        return E.WRITE_NOT_PERMITTED if write else E.READ_NOT_PERMITTED
    if rule == "bonded" and not bonded:
        return E.INSUFFICIENT_AUTHENTICATION
    return None


async def _answer(coro) -> tuple[int | None, float]:  # noqa: ANN001
    began = time.monotonic()
    try:
        await coro
        code = None
    except att.ATT_Error as error:
        code = error.error_code
    return code, time.monotonic() - began


async def _walk(host: Host, attributes: list, bonded: bool, figures: dict) -> None:
    client = host.peer.gatt_client
    rules = documented_rules()
    for attribute in attributes:
        read_rule, write_rule, _ = rules[attribute.type]
        code, took = await _answer(client.read_value(attribute.handle, no_long_read=True))
        assert code == _expected(read_rule, bonded, write=False), (attribute, "read")
        value = _probe(attribute.type)
        code, took_w = await _answer(client.write_value(attribute.handle, value, True))
        assert code == _expected(write_rule, bonded, write=True), (attribute, "write")
        figures["answers"] += 2
        figures["refused"] += (_expected(read_rule, bonded, False) is not None) + (
            _expected(write_rule, bonded, True) is not None)
        figures["times_s"] += [took, took_w]
        assert max(took, took_w) < STALL_S, (attribute, took, took_w)


async def _public_values(host: Host, attributes: list) -> dict[int, bytes]:
    client = host.peer.gatt_client
    public = (GATT_DEVICE_NAME_CHARACTERISTIC, GATT_APPEARANCE_CHARACTERISTIC,
              GATT_CLIENT_SUPPORTED_FEATURES_CHARACTERISTIC, GATT_DATABASE_HASH_CHARACTERISTIC)
    return {a.handle: bytes(await client.read_value(a.handle))
            for a in attributes if a.type in public}


async def _write_commands(roller: Roller, host: Host, attributes: list) -> None:
    """Write Without Response to every attribute: nothing changes, nothing is executed."""
    client = host.peer.gatt_client
    before = await _public_values(host, attributes)
    dropped = roller.server.firewall.refused_commands
    for attribute in attributes:
        await client.write_value(attribute.handle, _probe(attribute.type), False)
    await asyncio.sleep(0.3)
    assert roller.server.firewall.refused_commands - dropped == len(attributes)
    assert await _public_values(host, attributes) == before  # no rename, no CSF change
    assert not roller.server.session.running  # START_SESSION was not executed
    subscribed = roller.device.gatt_server.subscribers.get(host_connection(roller), {})
    assert not any(v and v[0] for v in subscribed.values())  # no CCCD set by a command


async def _other_requests(host: Host, handles: dict[UUID, int]) -> None:
    """Read By Type, Read Multiple, Prepare Write, Find By Type Value, unpaired."""
    client = host.peer.gatt_client

    async def ask(pdu: att.ATT_PDU) -> att.ATT_PDU:
        return await client.send_request(pdu)
    name, manufacturer = handles[GATT_DEVICE_NAME_CHARACTERISTIC], handles[
        UUID(MANUFACTURER_NAME_UUID)]
    answer = await ask(att.ATT_Read_By_Type_Request(
        starting_handle=1, ending_handle=0xFFFF, attribute_type=UUID(MANUFACTURER_NAME_UUID)))
    assert answer.error_code == E.INSUFFICIENT_AUTHENTICATION
    answer = await ask(att.ATT_Read_By_Type_Request(
        starting_handle=1, ending_handle=0xFFFF, attribute_type=GATT_DEVICE_NAME_CHARACTERISTIC))
    assert isinstance(answer, att.ATT_Read_By_Type_Response)  # the public name
    answer = await ask(att.ATT_Read_Multiple_Request(set_of_handles=[name, manufacturer]))
    assert answer.error_code == E.INSUFFICIENT_AUTHENTICATION
    answer = await ask(att.ATT_Prepare_Write_Request(
        attribute_handle=name, value_offset=0, part_attribute_value=b"pwned"))
    assert answer.error_code == E.WRITE_NOT_PERMITTED
    answer = await ask(att.ATT_Find_By_Type_Value_Request(
        starting_handle=1, ending_handle=0xFFFF, attribute_type=UUID(MANUFACTURER_NAME_UUID),
        attribute_value=b"smartroller project"))
    assert answer.error_code == E.ATTRIBUTE_NOT_FOUND  # no guessing values by comparison
    answer = await ask(att.ATT_Find_By_Type_Value_Request(
        starting_handle=1, ending_handle=0xFFFF,
        attribute_type=GATT_PRIMARY_SERVICE_ATTRIBUTE_TYPE,
        attribute_value=bytes(UUID(protocol.SERVICE_UUID))))
    assert isinstance(answer, att.ATT_Find_By_Type_Value_Response)  # discovery works


def test_every_attribute_answers_as_documented_unpaired_and_bonded(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    logging.getLogger("bumble.gatt_client").setLevel(logging.ERROR)  # unsubscribed notes
    figures = {"answers": 0, "refused": 0, "times_s": []}

    async def scenario():
        link = RadioLink(interval_s=INTERVAL_S)
        roller = Roller(link, tmp_path / "keys.json")
        await roller.start()
        host = Host(link)
        await host.connect()
        attributes = await host.peer.gatt_client.discover_attributes()
        rules = documented_rules()
        assert len(attributes) == 40  # CALIBRATION: its declaration and value
        assert {a.type for a in attributes} <= set(rules)  # the table covers the database
        assert [a.handle for a in attributes] == list(range(1, 41))
        handles = {a.type: a.handle for a in attributes}
        figures["attributes"] = len(attributes)

        await _walk(host, attributes, bonded=False, figures=figures)
        await _write_commands(roller, host, attributes)
        await _other_requests(host, handles)
        assert not roller.server.session.running

        roller.server.open_pairing_window()
        await host.connection.pair()
        await asyncio.sleep(0.2)
        await _write_commands(roller, host, attributes)
        await _walk(host, attributes, bonded=True, figures=figures)
        assert roller.server.session.running  # the CONTROL write with response went through
        assert bytes(await host.peer.gatt_client.read_value(
            handles[GATT_DEVICE_NAME_CHARACTERISTIC])).decode() == roller.server.name
        subscribed = roller.device.gatt_server.subscribers[host_connection(roller)]
        assert len([v for v in subscribed.values() if v[0]]) == 5  # every CCCD written
        await host.disconnect()
        await roller.stop()
    run(scenario())
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert not tracebacks, tracebacks[0].getMessage()
    times = sorted(figures.pop("times_s"))
    median, worst = times[len(times) // 2], times[-1]
    print(f"\nattribute walk: {figures}, answer median {median * 1e3:.0f} ms, "
          f"95th {times[int(0.95 * len(times))] * 1e3:.0f} ms, max {worst * 1e3:.0f} ms")
    assert figures["answers"] == 4 * 40
    assert median < NEXT_EVENT_S


@pytest.mark.parametrize("rule", list(Rule))
def test_rules_map_to_bumble_permissions(rule):
    from firmware.ble.access import Access

    perms = Access(rule, rule).bumble_permissions()
    assert bool(perms & att.Attribute.READABLE) == (rule is not Rule.NO)
    assert bool(perms & att.Attribute.WRITE_REQUIRES_ENCRYPTION) == (rule is Rule.BONDED)
