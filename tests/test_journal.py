"""Store-and-forward journal: nothing unacked lost, nothing acked resent, restarts survive."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.journal import ACKED_NAME, SEGMENT_GLOB, Journal
from firmware.protocol import Frame, FrameFlag

RECORD_BYTES = 87  # one 8-zone record: 4 length + 79 payload + 4 CRC
SMALL = {"ram_frames": 10, "flush_every": 5, "segment_bytes": 1000}


def frame(seq: int, zones: int = 8, boot: int = 7) -> Frame:
    """A frame whose f64 fields need full precision and whose loads are exact in f32."""
    loads = tuple(z + (seq % 13) * 0.25 for z in range(zones))
    return Frame(seq, seq * 0.01 + 1e-9, 0.123456789012 + seq * 1e-7, -0.3 / 7, seq * 0.1 + 1e-12,
                 loads, sum(loads), FrameFlag.IN_CONTACT | FrameFlag(seq & 0x3F0), boot)


def filled(directory: Path | None, count: int, **kwargs: int) -> tuple[Journal, list[Frame]]:
    journal = Journal(directory, **kwargs)
    frames = [frame(seq) for seq in range(count)]
    for f in frames:
        journal.append(f)
    return journal, frames


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob(SEGMENT_GLOB))


def test_append_read_ack_round_trip_in_ram() -> None:
    journal, frames = filled(None, 10)
    assert journal.read(0, 100) == frames
    assert journal.read(3, 2) == frames[3:5]
    assert journal.read(10, 5) == [] and journal.read(0, 0) == []
    assert (journal.last_seq, journal.next_seq, journal.oldest_seq) == (9, 10, 0)
    journal.ack(4)
    assert journal.read(0, 100) == frames[5:]
    assert (journal.acked_seq, journal.oldest_seq) == (4, 5)
    journal.ack(2)  # older: ignored
    journal.ack(4)  # idempotent
    assert journal.acked_seq == 4 and journal.read(0, 100) == frames[5:]
    journal.ack(1000)  # beyond the newest: everything
    assert journal.read(0, 100) == [] and journal.oldest_seq is None
    assert (journal.acked_seq, journal.lost, journal.full) == (9, 0, False)


def test_empty_journal() -> None:
    journal = Journal(None)
    assert (journal.last_seq, journal.acked_seq, journal.oldest_seq, journal.next_seq) == (
        None, None, None, 0)
    journal.ack(5)
    assert journal.acked_seq is None and journal.read(0, 10) == []


def test_read_from_file_after_ram_eviction(tmp_path: Path) -> None:
    journal, frames = filled(tmp_path, 60, **SMALL)
    assert len(segments(tmp_path)) > 2
    assert journal.read(0, 1000) == frames  # full precision from the file
    assert journal.read(12, 3) == frames[12:15]
    assert journal.read(45, 10) == frames[45:55]  # file, then RAM
    journal.ack(20)
    assert journal.read(0, 4) == frames[21:25] and journal.oldest_seq == 21


def test_restart_keeps_last_seq_acked_and_unacked_frames(tmp_path: Path) -> None:
    journal, frames = filled(tmp_path, 30, **SMALL)
    journal.ack(9)
    journal.close()
    assert (tmp_path / ACKED_NAME).read_text() == "9\n"
    assert not (tmp_path / (ACKED_NAME + ".tmp")).exists()
    with Journal(tmp_path, **SMALL) as again:
        assert (again.last_seq, again.next_seq, again.acked_seq, again.oldest_seq) == (
            29, 30, 9, 10)
        assert again.read(0, 100) == frames[10:]
        with pytest.raises(ValueError):
            again.append(frame(29))
        more = [frame(seq) for seq in range(30, 35)]
        for f in more:
            again.append(f)
        assert again.read(0, 100) == frames[10:] + more


def test_restart_after_everything_acked_keeps_the_numbering(tmp_path: Path) -> None:
    journal, _ = filled(tmp_path, 40, **SMALL)
    journal.ack(39)
    journal.close()
    with Journal(tmp_path, **SMALL) as again:
        assert (again.last_seq, again.next_seq, again.oldest_seq) == (39, 40, None)
        assert len(segments(tmp_path)) == 1


def test_power_cut_loses_only_the_unflushed_frames(tmp_path: Path) -> None:
    journal, frames = filled(tmp_path, 30, flush_every=100)
    journal.flush()
    for seq in range(30, 35):
        journal.append(frame(seq))
    again = Journal(tmp_path)  # the first one never closed: its buffer is gone
    assert again.last_seq == 29 and again.read(0, 100) == frames


TORN_TAILS = [
    pytest.param(lambda data: data[:-3], 49, id="cut"),
    pytest.param(lambda data: data[:-RECORD_BYTES + 2], 49, id="only-the-length"),
    pytest.param(lambda data: data + b"\x07\x00\x00\x00garbage", 50, id="garbage-after"),
    pytest.param(lambda data: data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:], 49,
                 id="bad-crc"),
]


@pytest.mark.parametrize(("damage", "kept"), TORN_TAILS)
def test_torn_tail_is_cut_and_the_good_frames_kept(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                   damage: object, kept: int) -> None:
    journal, frames = filled(tmp_path, 50, **SMALL)
    journal.close()
    newest = segments(tmp_path)[-1]
    newest.write_bytes(damage(newest.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="smartroller.journal"):
        again = Journal(tmp_path, **SMALL)
    assert len(caplog.records) == 1 and "keeping" in caplog.messages[0]
    assert newest.stat().st_size % RECORD_BYTES == 0  # cut at a record boundary
    assert again.last_seq == kept - 1 and again.read(0, 100) == frames[:kept]
    more = [frame(seq) for seq in range(kept, kept + 20)]
    for f in more:
        again.append(f)
    again.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="smartroller.journal"):
        third = Journal(tmp_path, **SMALL)
    assert caplog.records == []  # clean now
    assert third.read(0, 1000) == frames[:kept] + more


def test_numbering_survives_a_newest_segment_torn_to_nothing(tmp_path: Path) -> None:
    journal, _ = filled(tmp_path, 20, **SMALL)  # segments from 0 (15 frames) and 15
    journal.ack(10)
    journal.ack(14)  # deletes the first segment; not saved yet (once a second)
    newest = segments(tmp_path)[-1]
    newest.write_bytes(newest.read_bytes()[:2])  # power cut: the new segment never landed
    again = Journal(tmp_path, **SMALL)  # the first one never closed
    assert again.acked_seq == 10 and again.next_seq >= 15  # seq 11..14 reached the host
    assert again.read(0, 100) == []


@pytest.mark.parametrize("ram_frames", [10, 100])  # 100 frames: more than the files hold
def test_bounded_files_drop_the_oldest_segment_and_count_lost(tmp_path: Path,
                                                              ram_frames: int) -> None:
    sizes = {**SMALL, "ram_frames": ram_frames, "max_bytes": 3000}
    journal, frames = filled(tmp_path, 200, **sizes)
    assert sum(p.stat().st_size for p in segments(tmp_path)) <= 3000
    held = journal.read(0, 1000)
    assert journal.full and journal.lost > 0
    assert held == frames[journal.oldest_seq:]  # the newest kept, contiguous
    assert journal.lost + len(held) == len(frames)
    journal.ack(199)
    assert not journal.full and journal.lost == len(frames) - len(held)


def test_ram_only_ring_drops_the_oldest_and_counts_lost() -> None:
    journal, frames = filled(None, 25, ram_frames=10)
    assert (journal.lost, journal.full, journal.oldest_seq) == (15, True, 15)
    assert journal.read(0, 100) == frames[15:]
    journal.ack(20)
    assert not journal.full


def test_acked_segments_are_deleted(tmp_path: Path) -> None:
    journal, frames = filled(tmp_path, 100, **SMALL)
    before = segments(tmp_path)
    journal.ack(50)
    after = segments(tmp_path)
    assert 1 < len(after) < len(before)
    first = int(after[0].name[8:18])
    second = int(after[1].name[8:18])
    assert first <= 51 < second  # the first one left holds frame 51
    assert journal.read(0, 1000) == frames[51:]
    journal.ack(99)
    assert len(segments(tmp_path)) == 1  # the newest stays: it carries last_seq
    journal.close()
    with Journal(tmp_path, **SMALL) as again:
        assert again.oldest_seq is None and again.next_seq == 100


def test_seq_must_increase_and_frames_must_fit(tmp_path: Path) -> None:
    journal, _ = filled(tmp_path, 5)
    for seq in (4, 2):
        with pytest.raises(ValueError):
            journal.append(frame(seq))
    with pytest.raises(ValueError):
        journal.append(frame(6, zones=300))  # more zones than a u8
    with pytest.raises(ValueError):
        journal.append(frame(2**32))
    assert journal.last_seq == 4 and len(journal.read(0, 100)) == 5
    journal.append(frame(7))  # gaps are fine
    assert journal.next_seq == 8


def test_unreadable_acked_file_resends_everything(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    journal, frames = filled(tmp_path, 20, **SMALL)
    journal.ack(5)
    journal.close()
    (tmp_path / ACKED_NAME).write_text("x")
    with caplog.at_level(logging.WARNING, logger="smartroller.journal"):
        again = Journal(tmp_path, **SMALL)
    assert again.acked_seq is None and caplog.records
    assert again.read(0, 100)[-14:] == frames[6:]  # nothing unacked is lost


def damage(path: Path, offset: int) -> None:
    """Flip the bits of one byte of a file."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


MIDDLE = [
    pytest.param(RECORD_BYTES * 3 + 30, id="payload"),  # the CRC catches it
    pytest.param(RECORD_BYTES * 3 + 1, id="length"),  # the record's bounds are lost
    pytest.param(30, id="first-record"),  # no good record before it to follow
]


@pytest.mark.parametrize("offset", MIDDLE)
@pytest.mark.parametrize("which", [0, -1], ids=["older-segment", "newest-segment"])
def test_a_damaged_record_loses_only_its_frame(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                               offset: int, which: int) -> None:
    """Damage inside a segment (not a torn tail) lost every later frame of the segment
    (and in the newest one cut them off, so that seqs were used again)."""
    journal, frames = filled(tmp_path, 50, **SMALL)  # segments of 15 frames: 0, 15, 30, 45
    journal.close()
    segment = segments(tmp_path)[which]
    size = segment.stat().st_size
    damage(segment, offset)
    with caplog.at_level(logging.WARNING, logger="smartroller.journal"):
        again = Journal(tmp_path, **SMALL)
        got = again.read(0, 100)
    bad = int(segment.name[8:18]) + offset // RECORD_BYTES
    assert got == [f for f in frames if f.seq != bad]
    assert again.last_seq == 49 and again.lost == 1 and segment.stat().st_size == size
    assert len(caplog.records) == 1 and f"frame(s) {bad}-{bad} lost" in caplog.messages[0]
    again.append(frame(50))
    again.close()
    assert [f.seq for f in Journal(tmp_path, **SMALL).read(45, 100)] == \
        [s for s in range(45, 51) if s != bad]


def test_damage_found_when_read_is_left_out_once(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The records were checked only when a segment was first scanned: a byte changed
    on the card after that reached the host as a wrong frame."""
    journal, frames = filled(tmp_path, 50, ram_frames=10, flush_every=5, segment_bytes=10**5)
    journal.flush()
    assert journal.read(0, 100) == frames  # scanned: all good
    damage(segments(tmp_path)[0], RECORD_BYTES * 7 + 40)
    with caplog.at_level(logging.WARNING, logger="smartroller.journal"):
        got = journal.read(0, 5) + journal.read(5, 100)
    assert got == frames[:7] + frames[8:]
    assert journal.lost == 1 and len(caplog.records) == 1
    assert "frame(s) 7-7 lost" in caplog.messages[0] and "when read" in caplog.messages[0]
    assert journal.read(0, 100) == got and len(caplog.records) == 1  # said once


def test_the_host_is_told_a_damaged_frame_is_lost(tmp_path: Path) -> None:
    """The roller's backfill skips the damaged frame: the host's receiver records the
    hole (the usual path of frames the journal no longer has)."""
    from firmware.ble.stream import HostStream
    from firmware.protocol import ResultCode
    from host.stream import Hole, StreamPosition, StreamReceiver

    journal, frames = filled(tmp_path, 50, **SMALL)
    journal.close()
    damage(segments(tmp_path)[1], RECORD_BYTES * 2 + 30)  # frame 17
    journal = Journal(tmp_path, **SMALL)
    receiver = StreamReceiver(StreamPosition(7, 9))
    stream = HostStream(8, 0.01, 247)
    assert stream.resume(receiver.resume_request(), journal) is ResultCode.SUCCESS
    got, holes = [], []
    for _ in range(20):
        for payload in stream.flush([], journal):
            received = receiver.feed(payload)
            got += received.frames
            holes += received.holes
    assert holes == [Hole(7, 17, 17)]
    assert [f.seq for f in got] == [s for s in range(10, 50) if s != 17]


def test_other_zone_counts_round_trip(tmp_path: Path) -> None:
    journal = Journal(tmp_path, **SMALL)
    frames = [frame(seq, zones=seq % 4) for seq in range(20)]
    for f in frames:
        journal.append(f)
    journal.close()
    assert Journal(tmp_path, **SMALL).read(0, 100) == frames


# --------------------------------------------------------------------------- property

PROPERTY_SIZES = {"ram_frames": 6, "flush_every": 3, "segment_bytes": 400, "max_bytes": 10**7}

operations = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(1, 25), st.integers(1, 3)),  # count, seq step
    st.tuples(st.just("ack"), st.integers(0, 10**6)),  # picks one of the appended seqs
    st.tuples(st.just("read"), st.integers(1, 30)),  # limit
    st.tuples(st.just("restart"), st.just(0)),
    st.tuples(st.just("flush"), st.just(0)),
), max_size=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_any_interleaving_keeps_every_unacked_frame_once(ops: list[tuple]) -> None:
    # durability is not the point here, and an fsync per segment would make it slow
    with tempfile.TemporaryDirectory() as tmp, mock.patch("os.fsync"):
        journal = Journal(Path(tmp), **PROPERTY_SIZES)
        appended: list[Frame] = []
        acked = -1
        cursor = 0  # the host reader's next from_seq
        delivered: set[int] = set()
        for op, a, *rest in ops:
            if op == "append":
                for _ in range(a):
                    f = frame(journal.next_seq + rest[0] - 1)
                    journal.append(f)
                    appended.append(f)
            elif op == "ack" and appended:
                seq = appended[a % len(appended)].seq
                journal.ack(seq)
                acked = max(acked, seq)
            elif op == "read":
                got = journal.read(cursor, a)
                assert all(f.seq > acked and f.seq not in delivered for f in got)
                assert got == [f for f in appended if f.seq > acked and f.seq >= cursor][:a]
                delivered.update(f.seq for f in got)
                cursor = got[-1].seq + 1 if got else cursor
            elif op == "restart":
                journal.close()
                journal = Journal(Path(tmp), **PROPERTY_SIZES)
            elif op == "flush":
                journal.flush()
            unacked = [f for f in appended if f.seq > acked]
            assert journal.read(0, 10**6) == unacked
            assert journal.oldest_seq == (unacked[0].seq if unacked else None)
            assert journal.last_seq == (appended[-1].seq if appended else None)
            assert journal.acked_seq == (acked if acked >= 0 else None)
            assert (journal.lost, journal.full) == (0, False)
        journal.close()
