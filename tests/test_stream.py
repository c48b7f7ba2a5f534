"""host.stream: notifications -> frames exactly once and at once, gaps, clock -> UTC."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings, target
from hypothesis import strategies as st

from firmware.protocol import (
    Defragmenter,
    Fragmenter,
    Frame,
    FrameFlag,
    ProtocolError,
    StreamDecoder,
    StreamEncoder,
    TimeReply,
    quantise,
)
from host.ble.client import RollerClient
from host.stream import (
    MAX_BOOTS,
    ClockMap,
    ClockSample,
    Hole,
    StreamPosition,
    StreamReceiver,
    _BootTrack,
)

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


def seqs_of(delivered: list[Frame]) -> list[int]:
    return [f.seq for f in delivered]


def test_lost_fragment_delivers_later_live_at_once_and_backfill_fills_the_gap():
    receiver = StreamReceiver()
    link = Link()
    notes = link.send(frames(0, 40))
    del notes[10]  # lost
    delivered, resumes, _ = feed_all(receiver, notes)
    seqs = seqs_of(delivered)
    resume = next(s for s in range(40) if s not in seqs)
    assert resumes == [resume]  # once, from the first frame missing
    assert receiver.next_seq == resume  # nothing decodable after the gap until a SYNC
    assert receiver.position == StreamPosition(7, resume - 1)
    # the roller answers RESUME(resume) with backfill interleaved with live frames
    notes = (link.send(frames(resume, 6), backfill=True) + link.send(frames(40, 10))
             + link.send(frames(resume + 6, 40 - resume - 6), backfill=True))
    more, again, holes = feed_all(receiver, notes)
    got = seqs + seqs_of(more)
    assert sorted(got) == list(range(50)) and len(got) == 50
    assert again == [] and holes == []
    # in arrival order: live 40..49 before the rest of the backfill
    assert seqs_of(more)[6:16] == list(range(40, 50))
    assert not receiver.waiting and receiver.next_seq == 50


def test_seq_jump_delivers_at_once_and_resumes_from_the_prefix():
    receiver = StreamReceiver(StreamPosition(7, 9))
    link = Link()
    got, resumes, _ = feed_all(receiver, link.send(frames(20, 2)))
    assert seqs_of(got) == [20, 21] and resumes == [10]
    assert receiver.waiting and receiver.ahead == 2 and receiver.next_seq == 10
    assert receiver.position == StreamPosition(7, 9) and receiver.last_seq(7) == 21
    assert receiver.ahead_seqs() == [(20, 21)]
    more, again, _ = feed_all(receiver, link.send(frames(22, 2)))
    assert seqs_of(more) == [22, 23] and again == []  # reported once per gap
    filled, _, _ = feed_all(receiver, link.send(frames(8, 16), backfill=True))
    assert seqs_of(filled) == list(range(10, 20))  # overlap with stored and live dropped
    assert all(f.flags & FrameFlag.BACKFILL for f in filled)
    assert not receiver.waiting and receiver.next_seq == 24 and receiver.ahead == 0
    assert receiver.resume_request() == 24


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


def test_restart_with_frames_stored_beyond_the_prefix():
    receiver = StreamReceiver(StreamPosition(7, 9), ahead=[*range(20, 30), 33])
    assert receiver.next_seq == 10 and receiver.waiting
    assert receiver.ahead_seqs() == [(20, 29), (33, 33)]
    link = Link()
    got, _, _ = feed_all(receiver, link.send(frames(36, 4))
                         + link.send(frames(10, 30), backfill=True))
    assert seqs_of(got) == [36, 37, 38, 39, *range(10, 20), 30, 31, 32, 34, 35]
    assert receiver.next_seq == 40 and not receiver.waiting
    with pytest.raises(ValueError):
        StreamReceiver(ahead=[3])


def test_journal_overflow_becomes_a_hole():
    receiver = StreamReceiver(StreamPosition(7, 9))
    got = receiver.forget_before(7, 25)
    assert got.holes == [Hole(7, 10, 24)] and got.holes[0].count == 15
    assert receiver.next_seq == 25
    fresh = StreamReceiver()
    assert fresh.forget_before(3, 100).holes == []  # a boot never stored: just the start
    assert fresh.next_seq == 100 and fresh.boot_id == 3
    assert fresh.position == StreamPosition(3, 99)


def test_journal_overflow_hole_leaves_out_what_came_live():
    receiver = StreamReceiver(StreamPosition(7, 9))
    link = Link()
    feed_all(receiver, link.send(frames(15, 3)) + link.send(frames(30, 5)))
    got = receiver.forget_before(7, 32)
    assert got.holes == [Hole(7, 10, 14), Hole(7, 18, 29)] and got.frames == []
    assert receiver.next_seq == 35 and not receiver.waiting


def test_backfill_skipping_frames_means_the_roller_lost_them():
    receiver = StreamReceiver(StreamPosition(7, 9))
    assert receiver.resume_request() == 10  # RESUME(10) sent: backfill comes
    link = Link()
    notes = (link.send(frames(10, 5), backfill=True) + link.send(frames(40, 2))
             + link.send(frames(20, 20), backfill=True))
    got, resumes, holes = feed_all(receiver, notes)
    assert holes == [Hole(7, 15, 19)]  # one backfill run, no stream error: gone
    assert seqs_of(got) == [*range(10, 15), 40, 41, *range(20, 40)]
    assert resumes == [] and receiver.next_seq == 42 and not receiver.waiting
    # after a stream error the next backfill frame starts a new run: no conclusion
    notes = link.send(frames(42, 4), backfill=True)
    del notes[1]
    notes += link.send(frames(50, 2), backfill=True)
    _, _, holes = feed_all(receiver, notes)
    assert holes == []


def test_too_many_gaps_give_up_the_oldest():
    receiver = StreamReceiver(StreamPosition(7, 9), max_gaps=2)
    link = Link()
    got, _, holes = feed_all(receiver, link.send(frames(12, 1)) + link.send(frames(15, 1))
                             + link.send(frames(18, 1)))
    assert seqs_of(got) == [12, 15, 18]
    assert holes == [Hole(7, 10, 11)] and receiver.next_seq == 13
    assert receiver.ahead_seqs() == [(15, 15), (18, 18)]


def test_a_long_backfill_is_never_given_up():
    """One gap with 10 min of live frames beyond it (reconnections between) stays one
    interval: no hole, whatever its age or size."""
    receiver = StreamReceiver(StreamPosition(7, 9), max_gaps=1)
    link = Link()
    for first in range(100, 60_000, 5000):
        feed_all(receiver, link.send(frames(first, 2)))
        receiver.new_link()
        link = Link()
        _, _, holes = feed_all(receiver, link.send(frames(first + 2, 4998)))
        assert holes == []
    assert receiver.ahead_seqs() == [(100, 60_099)] and receiver.next_seq == 10


def test_new_boot_restarts_seq_without_dropping_its_frames():
    receiver = StreamReceiver(StreamPosition(7, 500))
    link = Link()
    delivered, resumes, _ = feed_all(receiver, link.send(frames(0, 10, boot=8)))
    assert [(f.boot, f.seq) for f in delivered] == [(8, s) for s in range(10)]
    assert receiver.boot_id == 8 and receiver.last_seq(7) == 500 and resumes == []
    # a late frame of the old boot is delivered if new, never twice
    old, _, _ = feed_all(receiver, link.send(frames(499, 3, boot=7)))
    assert [(f.boot, f.seq) for f in old] == [(7, 501)]
    old, _, _ = feed_all(receiver, link.send(frames(504, 2, boot=7))
                         + link.send(frames(500, 6, boot=7)))
    assert [(f.boot, f.seq) for f in old] == [(7, s) for s in (504, 505, 502, 503)]
    assert receiver.boot_id == 8 and receiver.next_seq == 10


def test_boot_change_from_status_gives_up_the_gaps():
    receiver = StreamReceiver(StreamPosition(7, 9))
    got, _, _ = feed_all(receiver, Link().send(frames(12, 2)))
    assert seqs_of(got) == [12, 13]  # delivered at once, not held
    changed = receiver.set_boot(9)
    assert changed.holes == [Hole(7, 10, 11)] and changed.frames == []
    assert receiver.boot_id == 9 and receiver.next_seq == 0
    assert receiver.contiguous(7) == StreamPosition(7, 13)


def test_corrupt_notification_resyncs():
    receiver = StreamReceiver(zone_count=ZONES)
    link = Link()
    notes = link.send(frames(0, 30))
    bad = bytes([notes[3][0]]) + b"\x7f" * (len(notes[3]) - 1)  # garbage record tags
    notes[3] = bad
    delivered, resumes, _ = feed_all(receiver, notes)
    assert resumes == [receiver.next_seq]
    assert seqs_of(delivered)[:resumes[0]] == list(range(resumes[0]))
    fill, _, _ = feed_all(receiver, link.send(frames(resumes[0], 30 - resumes[0]), True))
    got = seqs_of(delivered + fill)
    assert sorted(got) == list(range(30)) and len(got) == 30


@FEW
@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=40),
       st.integers(0, 20))
def test_boot_track_matches_a_set(ranges, start):
    """``_BootTrack.cover`` against a plain set: what is new, the prefix, the runs."""
    track = _BootTrack(start, known=True)
    done = set(range(start))
    for first, length in ranges:
        last = first + length - 1
        new = track.cover(first, last)
        fresh = sorted(set(range(first, last + 1)) - done)
        assert [s for a, b in new for s in range(a, b + 1)] == fresh
        done.update(fresh)
        prefix = next(s for s in range(len(done) + 2) if s not in done)
        assert track.next == prefix
        beyond = sorted(s for s in done if s > prefix)
        assert [s for a, b in track.runs for s in range(a, b + 1)] == beyond
        assert track.ahead == len(beyond)
        assert all(b[0] > a[1] + 1 for a, b in zip(track.runs, track.runs[1:], strict=False))


class ListJournal:
    """Just enough of the roller's journal for ``firmware.ble.stream.HostStream``."""

    def __init__(self, held: list[Frame]) -> None:
        self.held = held

    @property
    def next_seq(self) -> int:
        return self.held[-1].seq + 1

    @property
    def oldest_seq(self) -> int | None:
        return self.held[0].seq if self.held else None

    def read(self, from_seq: int, limit: int) -> list[Frame]:
        return [f for f in self.held if f.seq >= from_seq][:limit]


@pytest.mark.parametrize("lose", [False, True])
@pytest.mark.parametrize("mtu", [23, 247])
def test_live_frames_come_out_in_their_flush_beside_the_roller_backfill(mtu, lose):
    """The roller's own stream (live first, paced backfill after): 10 s of journal to
    backfill, and every live frame is delivered by the notifications of its own flush.
    With a live notification lost while the backfill runs, answering each reported
    ``resume_from`` (no retry timer) completes the stream."""
    from firmware.ble.stream import HostStream

    sent = frames(0, 2000)
    journal = ListJournal(sent[:1000])
    stream = HostStream(ZONES, 0.01, mtu)
    receiver = StreamReceiver()
    receiver.forget_before(7, 0)
    delivered: list[int] = []
    pending_flushes = 0
    resumes: list[int] = []
    lost_at = 1100 if lose else None
    first = 1000
    while first < 2000 or receiver.waiting:  # one flush per 20 ms, 2 live frames each
        assert first < 2500, "the stream never completed"
        live = sent[first:first + 2] if first < 2000 else []
        journal.held += live
        got: list[Frame] = []
        notes = stream.flush(live, journal)
        if first == lost_at:
            del notes[0]
        for note in notes:
            received = receiver.feed(note)
            got += received.frames
            assert received.holes == []
            if received.resume_from is not None:
                resumes.append(received.resume_from)
                assert stream.resume(received.resume_from, journal) == 0
        if lost_at is None or not lost_at <= first < lost_at + 120:  # resync within 1.2 s
            assert [f.seq for f in got if not f.flags & FrameFlag.BACKFILL] == [
                s for s in (first, first + 1) if s < 2000]
        pending_flushes += receiver.waiting
        if first == 1000:  # connected, live started: the client sends RESUME
            assert stream.resume(receiver.resume_request(), journal) == 0
        delivered += seqs_of(got)
        first += 2
    assert sorted(delivered) == list(range(2000)) and not receiver.waiting
    assert pending_flushes > (50 if mtu == 23 else 3)  # backfill ran beside live (MTU 23: > 1 s)
    if lose:
        assert 1 <= len(resumes) <= 3 and any(s >= 1100 for s in resumes)


class Shadow:
    """An independent defragmenter + decoder fed the same notifications: which frames
    each notification completes (the receiver's own reset rules, docs/protocol.md 6)."""

    def __init__(self) -> None:
        self.defrag, self.decoder = Defragmenter(), StreamDecoder(ZONES)

    def feed(self, notification: bytes) -> list[Frame]:
        try:
            data = self.defrag.feed(notification)
        except ProtocolError:
            self.decoder.reset()
            return []
        try:
            return self.decoder.feed(data) if data else []
        except ProtocolError:
            self.defrag.reset()
            return []


@FEW
@given(st.data())
def test_any_loss_and_duplication_delivers_each_frame_once_at_once(data):
    """Property: lost notifications, repeated and interleaved backfill, reconnects and
    restarts give every frame exactly once, each in the ``feed`` call that carried it
    (live frames too while a backfill is pending), and the resume point and the ACKed
    seq are always the contiguous prefix."""
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1)))
    total = data.draw(st.integers(20, 150))
    sent = frames(0, total)
    stored = data.draw(st.integers(-1, 10))
    # a restarted host may have stored some backfill beyond its prefix already
    ahead = data.draw(st.sets(st.integers(stored + 2, total - 1), max_size=8)
                      if stored >= 0 else st.just(set()))
    position = StreamPosition(7, stored) if stored >= 0 else None
    client = RollerClient(position=position, ahead=ahead)  # no link: stream + ACK logic
    receiver = client.receiver
    receiver.forget_before(7, 0)
    have = set(range(stored + 1)) | ahead  # stored by the consumer
    consumer_stored = stored  # what it told the client (stored(seq))
    delivered: list[Frame] = []
    live_while_pending = 0

    def prefix() -> int:
        return next(s for s in range(total + 2) if s not in have)

    def feed(notes: list[bytes], shadow: Shadow) -> None:
        nonlocal consumer_stored, live_while_pending
        for note in notes:
            carried = shadow.feed(note)
            pending = receiver.waiting
            got = receiver.feed(note)
            new = [f for f in carried if f.seq not in have]
            assert got.frames == new  # every new frame in the call that carried it
            live = [f for f in carried if not f.flags & FrameFlag.BACKFILL
                    and f.seq not in have]
            assert all(f in got.frames for f in live)
            if pending:
                live_while_pending += len(live)
            assert got.holes == []
            have.update(f.seq for f in got.frames)
            delivered.extend(got.frames)
            assert receiver.next_seq == prefix()  # the resume point: first seq missing
            assert receiver.position == StreamPosition(7, prefix() - 1)
            if got.resume_from is not None:
                assert got.resume_from == prefix()
            if got.frames and rng.random() < 0.7:  # the consumer stores, tells (or lags)
                top = max(f.seq for f in got.frames)
                client.stored(top)
                consumer_stored = max(consumer_stored, top)
            ack = min(consumer_stored, prefix() - 1)
            assert client.ack_position == (StreamPosition(7, ack) if ack >= 0 else None)

    link, shadow = Link(mtu=rng.choice([23, 40, 185])), Shadow()
    backlog: list[Frame] = []  # the roller's backfill still to send on this link
    made = 0
    for _ in range(300):
        if made >= total and not receiver.waiting and not backlog:
            break
        notes: list[bytes] = []
        if made < total:  # live first, as the roller does
            batch = sent[made:made + rng.randint(1, 12)]
            made += len(batch)
            notes += link.send(batch)
        if backlog:  # then a chunk of backfill beside it
            size = rng.randint(1, 15)
            chunk, backlog = backlog[:size], backlog[size:]
            notes += link.send(chunk, backfill=True)
        feed([n for n in notes if rng.random() > 0.1], shadow)  # losses
        if rng.random() < 0.05:  # a reconnection: fresh state on both sides, RESUME
            receiver.new_link()
            link, shadow = Link(mtu=rng.choice([23, 40, 185])), Shadow()
            backlog = sent[receiver.resume_request():made]
        elif receiver.waiting and (not backlog or rng.random() < 0.1):
            start = receiver.resume_request()  # a RESUME (again): the backfill restarts
            assert start == prefix()
            backlog = sent[max(0, start - rng.randint(0, 5)):made]
    # at the end, one clean backfill from where the host stands completes everything
    receiver.new_link()
    link, shadow = Link(), Shadow()
    feed(link.send(sent[receiver.resume_request():], backfill=True), shadow)
    seqs = seqs_of(delivered)
    assert len(seqs) == len(set(seqs))
    assert sorted(seqs) == sorted(set(range(stored + 1, total)) - ahead)
    assert receiver.next_seq == total and not receiver.waiting
    assert client.ack_position == (StreamPosition(7, min(consumer_stored, total - 1))
                                   if consumer_stored >= 0 else None)
    target(float(live_while_pending))  # steer the search to live-beside-backfill cases


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


def test_a_roller_announcing_endless_boot_ids_does_not_grow_the_host():
    receiver = StreamReceiver(zone_count=4)
    rng = random.Random(19)
    boots = [rng.randrange(2**32) for _ in range(20_000)]
    for boot in boots:
        receiver.set_boot(boot)
    assert len(receiver._tracks) == MAX_BOOTS  # not 20 000
    assert receiver.boot_id == boots[-1] and list(receiver._tracks)[-MAX_BOOTS:] == boots[
        -MAX_BOOTS:]


def test_a_late_host_gets_every_boot_the_journal_holds_with_seqs_going_on_across_boots():
    # The roller's journal numbers frames across boots: boot 1 is 0..99, boot 2 100..179,
    # boot 3 (running) 180..; a host that joins at 250 gets boot 3 live and the rest as
    # backfill from 0. Nothing of boot 3 below its first live frame is lost, and the
    # earlier boots' backfill does not make them the current boot.
    receiver = StreamReceiver()
    receiver.forget_before(3, 0)  # STATUS: boot 3, the journal's oldest seq is 0
    link = Link()  # one connection: live and backfill in one stream
    got, resumes, holes = feed_all(receiver, link.send(frames(250, 4, boot=3)))
    assert resumes == [0]
    backfill = frames(0, 100, boot=1) + frames(100, 80, boot=2) + frames(180, 70, boot=3)
    more, _, more_holes = feed_all(receiver, link.send(backfill, backfill=True))
    got += more
    holes += more_holes
    assert holes == [] and receiver.boot_id == 3
    delivered = sorted((f.boot, f.seq) for f in got)
    assert delivered == sorted([(1, s) for s in range(100)] + [(2, s) for s in range(100, 180)]
                               + [(3, s) for s in range(180, 254)])
    assert receiver.contiguous(3) == StreamPosition(3, 253)
