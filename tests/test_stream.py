"""host.stream: notifications -> frames exactly once and in order, gaps, clock -> UTC."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.protocol import (
    Fragmenter,
    Frame,
    FrameFlag,
    StreamEncoder,
    TimeReply,
    quantise,
)
from host.stream import ClockMap, ClockSample, Hole, StreamPosition, StreamReceiver

ZONES = 2
FEW = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frames(first: int, n: int, boot: int = 7) -> list[Frame]:
    return [Frame(s, 1.0 + s * 0.01, (s % 500) * 1e-4, 0.02, 0.0, (10.0, float(s % 100)),
                  10.0 + s % 100, FrameFlag.IN_CONTACT, boot) for s in range(first, first + n)]


class Link:
    """The roller side of one connection: encoder + fragmenter -> notifications."""

    def __init__(self, mtu: int = 23) -> None:
        self.encoder = StreamEncoder(ZONES, 0.01)
        self.fragmenter = Fragmenter(mtu)

    def send(self, batch: list[Frame], backfill: bool = False) -> list[bytes]:
        out: list[bytes] = []
        for i in range(0, len(batch), 2):
            self.fragmenter.push(self.encoder.encode(batch[i:i + 2], backfill))
            out += self.fragmenter.pop_ready(flush=True)
        return out


def feed_all(receiver: StreamReceiver, notifications: list[bytes]):
    delivered, resumes, holes = [], [], []
    for n in notifications:
        got = receiver.feed(n)
        delivered += got.frames
        holes += got.holes
        if got.resume_from is not None:
            resumes.append(got.resume_from)
    return delivered, resumes, holes


def test_decodes_what_the_roller_sends():
    receiver = StreamReceiver(zone_count=ZONES)
    sent = frames(0, 50)
    delivered, resumes, holes = feed_all(receiver, Link().send(sent))
    assert delivered == [quantise(f, ZONES, backfill=False) for f in sent]
    assert resumes == [] and holes == []
    assert receiver.position == StreamPosition(7, 49) and receiver.next_seq == 50


def test_lost_fragment_asks_resume_once_and_backfill_fills_the_gap():
    receiver = StreamReceiver()
    link = Link()
    notes = link.send(frames(0, 40))
    del notes[10]  # lost
    delivered, resumes, _ = feed_all(receiver, notes)
    assert resumes == [delivered[-1].seq + 1]  # once, from the first frame missing
    resume = resumes[0]
    # the roller answers RESUME(resume) with backfill interleaved with live frames
    notes = (link.send(frames(resume, 6), backfill=True) + link.send(frames(40, 10))
             + link.send(frames(resume + 6, 40 - resume - 6), backfill=True))
    more, _, _ = feed_all(receiver, notes)
    seqs = [f.seq for f in delivered + more]
    assert seqs == list(range(50))
    assert not receiver.waiting


def test_seq_jump_holds_later_frames_until_the_missing_come():
    receiver = StreamReceiver(StreamPosition(7, 9))
    link = Link()
    got, resumes, _ = feed_all(receiver, link.send(frames(20, 2)))
    assert got == [] and resumes == [10] and receiver.held == 2
    _, again, _ = feed_all(receiver, link.send(frames(22, 2)))
    assert again == []  # reported once per gap
    filled, _, _ = feed_all(receiver, link.send(frames(10, 10), backfill=True))
    assert [f.seq for f in filled] == list(range(10, 24))
    assert filled[0].flags & FrameFlag.BACKFILL and not filled[-1].flags & FrameFlag.BACKFILL


def test_duplicates_are_dropped_across_links_and_restarts():
    receiver = StreamReceiver(StreamPosition(7, 29))  # a restarted host stored 0..29
    link = Link()
    delivered, _, _ = feed_all(receiver, link.send(frames(20, 20), backfill=True))
    assert [f.seq for f in delivered] == list(range(30, 40))
    receiver.new_link()  # reconnection: the roller starts a new encoder too
    link = Link()
    again, _, _ = feed_all(receiver, link.send(frames(25, 20), backfill=True)
                           + link.send(frames(45, 5)))
    assert [f.seq for f in again] == list(range(40, 50))


def test_journal_overflow_becomes_a_hole():
    receiver = StreamReceiver(StreamPosition(7, 9))
    got = receiver.forget_before(7, 25)
    assert got.holes == [Hole(7, 10, 24)] and got.holes[0].count == 15
    assert receiver.next_seq == 25
    fresh = StreamReceiver()
    assert fresh.forget_before(3, 100).holes == []  # a boot never stored: just the start
    assert fresh.next_seq == 100 and fresh.boot_id == 3


def test_held_frames_released_with_holes_when_too_many():
    receiver = StreamReceiver(StreamPosition(7, 9), max_held=5)
    link = Link()
    delivered, _, holes = feed_all(receiver, link.send(frames(15, 6)))
    assert holes == [Hole(7, 10, 14)]
    assert [f.seq for f in delivered] == list(range(15, 21))


def test_new_boot_restarts_seq_without_dropping_its_frames():
    receiver = StreamReceiver(StreamPosition(7, 500))
    link = Link()
    delivered, resumes, _ = feed_all(receiver, link.send(frames(0, 10, boot=8)))
    assert [(f.boot, f.seq) for f in delivered] == [(8, s) for s in range(10)]
    assert receiver.boot_id == 8 and receiver.last_seq(7) == 500 and resumes == []
    # a late frame of the old boot is delivered if new, never twice
    old, _, _ = feed_all(receiver, link.send(frames(499, 3, boot=7)))
    assert [(f.boot, f.seq) for f in old] == [(7, 501)]


def test_boot_change_from_status_gives_up_held_frames():
    receiver = StreamReceiver(StreamPosition(7, 9))
    feed_all(receiver, Link().send(frames(12, 2)))
    got = receiver.set_boot(9)
    assert got.holes == [Hole(7, 10, 11)] and [f.seq for f in got.frames] == [12, 13]
    assert receiver.boot_id == 9 and receiver.next_seq == 0


def test_corrupt_notification_resyncs():
    receiver = StreamReceiver(zone_count=ZONES)
    link = Link()
    notes = link.send(frames(0, 30))
    bad = bytes([notes[3][0]]) + b"\x7f" * (len(notes[3]) - 1)  # garbage record tags
    notes[3] = bad
    delivered, resumes, _ = feed_all(receiver, notes)
    assert resumes and [f.seq for f in delivered] == list(range(len(delivered)))
    fill, _, _ = feed_all(receiver, link.send(frames(resumes[0], 30 - resumes[0]), True))
    assert [f.seq for f in delivered + fill] == list(range(30))


@FEW
@given(st.data())
def test_any_loss_and_duplication_delivers_each_frame_once_in_order(data):
    """Property: lost notifications, repeated backfill, reconnects and restarts never
    give a frame twice or out of order, and RESUME answers always complete the stream."""
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    total = data.draw(st.integers(20, 150))
    sent = frames(0, total)
    stored = data.draw(st.integers(-1, 10))
    receiver = StreamReceiver(StreamPosition(7, stored) if stored >= 0 else None)
    receiver.forget_before(7, 0)
    delivered: list[Frame] = []
    link = Link(mtu=rng.choice([23, 40, 185]))
    position = 0
    for _ in range(200):
        if position >= total and not receiver.waiting:
            break
        if position < total:
            batch = sent[position:position + rng.randint(1, 12)]
            position += len(batch)
            notes = link.send(batch)
            notes = [n for n in notes if rng.random() > 0.1]  # losses
            got, resumes, _ = feed_all(receiver, notes)
            delivered += got
        if rng.random() < 0.05:  # a reconnection
            receiver.new_link()
            link = Link(mtu=rng.choice([23, 40, 185]))
        if receiver.waiting or rng.random() < 0.3:  # a RESUME answered with backfill
            start = receiver.resume_request()
            end = position
            replay = link.send(sent[max(0, start - rng.randint(0, 5)):end], backfill=True)
            got, _, _ = feed_all(receiver, replay)
            delivered += got
    # at the end, one clean backfill from where the host stands completes everything
    receiver.new_link()
    link = Link()
    got, _, _ = feed_all(receiver, link.send(sent[receiver.next_seq:], backfill=True))
    delivered += got
    seqs = [f.seq for f in delivered]
    assert seqs == list(range(stored + 1, total))


def test_clock_map_midpoint_per_boot():
    clock = ClockMap()
    sample = clock.learn(TimeReply(10.0, 7), sent_utc=1000.0, received_utc=1000.2)
    assert sample == ClockSample(7, 10.0, 1000.1, pytest.approx(0.2))
    assert clock.to_utc(7, 12.5) == pytest.approx(1002.6)
    assert clock.to_utc(8, 12.5) is None  # no mapping for that boot: never borrowed
    frame = frames(0, 1, boot=8)[0]
    assert clock.frame_utc(frame) is None
    clock.learn(TimeReply(0.5, 8), 2000.0, 2000.0)
    assert clock.frame_utc(frame) == pytest.approx(2000.5)
    assert clock.to_utc(7, 12.5) == pytest.approx(1002.6)  # boot 7 kept
    clock.learn(TimeReply(20.0, 7), 1010.0, 1010.1)  # newer exchange: follows drift
    assert clock.to_utc(7, 20.0) == pytest.approx(1010.05)
    restored = ClockMap(clock.samples())
    assert restored.to_utc(8, 1.0) == clock.to_utc(8, 1.0)
    with pytest.raises(ValueError):
        clock.learn(TimeReply(1.0, 7), 5.0, 4.0)


@FEW
@given(st.floats(0, 4e6), st.floats(1e9, 2e9), st.floats(0, 2.0), st.integers(0, 2**32 - 1),
       st.floats(0, 1e4))
def test_clock_map_error_within_half_round_trip(sensor_t, utc_at_reply, rtt, boot, later):
    """If the reply was stamped anywhere within the round trip, the mapping errs by at
    most half of it."""
    reply = TimeReply(round(sensor_t * 1000) / 1000, boot)
    true_offset = utc_at_reply - reply.sensor_t
    sent = utc_at_reply - rtt * 0.3
    clock = ClockMap()
    clock.learn(reply, sent, sent + rtt)
    mapped = clock.to_utc(boot, reply.sensor_t + later)
    assert abs(mapped - (reply.sensor_t + later + true_offset)) <= rtt / 2 + 1e-6
    assert clock.to_utc((boot + 1) % 2**32, 1.0) is None
