"""Two bonded hosts do not harm each other: per-host ACKs, and the fence's range.

A second host's ACK must not release frames the first host has not stored (it made
the first host's daemon lose 960 frames), and a host may set the fence only within
the hardware profile's ranges.
"""

from __future__ import annotations

import json
import stat

from firmware.ble.acks import HostAcks
from firmware.ble.control import ControlPoint, Session
from firmware.journal import Journal
from firmware.protocol import Ack, Frame, ResultCode, SetFence, encode_request
from firmware.sim.rig import SimRoller


def journal_with(n: int) -> Journal:
    journal = Journal(None)
    for i in range(n):
        journal.append(Frame(i, i * 0.01, 0.0, 0.0, 0.0, (1.0,) * 4, 4.0))
    return journal


class FakeHost:
    def __init__(self, identity: str) -> None:
        self.identity = identity
        self.stream = None
        self.mtu = 247


def control(journal: Journal, acks: HostAcks | None) -> tuple[ControlPoint, SimRoller]:
    sim = SimRoller(seed=3)
    return ControlPoint(sim.firmware, journal, Session(), lambda: None, lambda: None,
                        acks), sim


def test_a_second_hosts_ack_does_not_release_the_first_hosts_frames():
    journal = journal_with(2000)
    point, _ = control(journal, HostAcks(journal))
    a, b = FakeHost("AA:00:00:00:00:01"), FakeHost("BB:00:00:00:00:02")
    assert point.handle(encode_request(Ack(39)), a).ok
    assert point.handle(encode_request(Ack(999)), b).ok  # B is ahead...
    assert journal.oldest_seq == 40  # ...A's frames 40.. stay
    assert [f.seq for f in journal.read(40, 960)] == list(range(40, 1000))
    assert point.handle(encode_request(Ack(1500)), a).ok
    assert journal.oldest_seq == 1000  # now both have up to 999
    assert point.handle(encode_request(Ack(10)), b).ok  # an older ACK changes nothing
    assert journal.oldest_seq == 1000


def test_without_per_host_acks_the_second_host_would_drop_the_first_hosts_frames():
    journal = journal_with(2000)  # the old behaviour, for contrast: one shared mark
    point, _ = control(journal, None)
    point.handle(encode_request(Ack(39)), FakeHost("A"))
    point.handle(encode_request(Ack(999)), FakeHost("B"))
    assert journal.oldest_seq == 1000


def test_owners_are_bounded_forgotten_and_kept_across_restarts(tmp_path):
    journal = journal_with(100)
    acks = HostAcks(journal, tmp_path / "host-acks.json", max_hosts=2)
    assert acks.ack("A", 10) and acks.ack("B", 50)
    assert not acks.ack("C", 60)  # a third owner is refused
    assert stat.S_IMODE((tmp_path / "host-acks.json").stat().st_mode) == 0o600
    again = HostAcks(journal, tmp_path / "host-acks.json", max_hosts=2)
    assert again.marks == {"A": 10, "B": 50}
    again.forget("A")  # A's bond went: B's mark decides
    assert journal.oldest_seq == 51
    assert HostAcks(journal_with(0), tmp_path / "host-acks.json").marks == {}  # new journal
    (tmp_path / "host-acks.json").write_text("{not json")
    assert HostAcks(journal, tmp_path / "host-acks.json").marks == {}
    (tmp_path / "host-acks.json").write_text(json.dumps({"A": -1}))
    assert HostAcks(journal, tmp_path / "host-acks.json").marks == {}


def test_fence_outside_the_profiles_range_is_refused():
    journal = journal_with(10)
    point, sim = control(journal, HostAcks(journal))
    fence = sim.firmware.fence
    before = (fence.position_m, fence.hysteresis_m, fence.approach_m)
    host = FakeHost("A")
    for bad in (SetFence(1.9, 0.01, 0.02), SetFence(-0.5, 0.01, 0.02),
                SetFence(0.2, 0.3, 0.02), SetFence(0.2, 0.01, 0.4)):
        response = point.handle(encode_request(bad), host)
        assert response.status == ResultCode.OUT_OF_RANGE, bad
    assert (fence.position_m, fence.hysteresis_m, fence.approach_m) == before
    assert point.handle(encode_request(SetFence(0.25, 0.02, 0.05)), host).ok
    assert fence.position_m == 0.25
