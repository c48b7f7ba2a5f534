"""The roller's published protocol: frame stream, fragments, control point, status."""

from __future__ import annotations

import math
import random
import struct
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware import protocol as p
from firmware.protocol import (
    Ack,
    Buzz,
    BuzzPattern,
    Defragmenter,
    Fragmenter,
    FragmentGap,
    Frame,
    FrameFlag,
    GetStatus,
    ProtocolError,
    Response,
    ResultCode,
    Resume,
    RollerFault,
    RollerState,
    SetFence,
    SetTime,
    StartSession,
    Status,
    StopSession,
    StreamDecoder,
    StreamEncoder,
    Tare,
    TimeReply,
    Zero,
    decode_request,
    encode_request,
    quantise,
    wire_bytes_per_frame,
)

U32 = 0xFFFF_FFFF
FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frame(seq=0, t=0.0, position=0.1, velocity=0.0, angle=0.0, loads=(10.0, 20.0), flags=0):
    return Frame(seq, t, position, velocity, angle, tuple(loads), sum(loads), FrameFlag(flags))


def rolling(n, zones=8, period=0.01, seq0=0, flags=FrameFlag.IN_CONTACT):
    out = []
    for i in range(n):
        t = i * period
        pos = 0.12 + 0.05 * math.sin(math.pi * t)
        loads = tuple(30.0 + 20.0 * math.sin(math.pi * t + k) for k in range(zones))
        out.append(Frame(seq0 + i, t, pos, 0.05 * math.pi * math.cos(math.pi * t), pos / 0.073,
                         loads, sum(loads), flags))
    return out


def records(stream: bytes, zones: int):
    """Split a stream into (tag, record bytes) for checking the encoder's choices."""
    out, pos = [], 0
    while pos < len(stream):
        tag = stream[pos]
        size = {p.TAG_SYNC: p.SYNC_SIZE, p.TAG_FLAGS: 3, p.TAG_ANGLE: 3}.get(tag)
        if size is None:
            size = 1 + (tag & 0x7F) * p.frame_size(zones)
        out.append((tag, stream[pos:pos + size]))
        pos += size
    return out


# ------------------------------------------------------------------------------ identity


def test_uuids_are_distinct_valid_and_on_one_base():
    custom = [p.SERVICE_UUID, p.STREAM_UUID, p.CONTROL_UUID, p.STATUS_UUID]
    parsed = [uuid.UUID(u) for u in custom]
    assert len(set(parsed)) == 4
    assert all(str(u) == s for u, s in zip(parsed, custom, strict=True))
    assert {u[8:] for u in custom} == {"-5b0c-4d6e-8f3a-52a0113e5201"}
    assert p.DEVICE_INFORMATION_SERVICE_UUID == "0000180a-0000-1000-8000-00805f9b34fb"
    assert p.BATTERY_SERVICE_UUID == "0000180f-0000-1000-8000-00805f9b34fb"
    assert p.DEVICE_NAME_PREFIX == "smartroller"
    assert p.PROTOCOL_VERSION == 1


# ------------------------------------------------------------------------------ quantise


def test_quantise_units_saturation_and_wrap():
    q = quantise(frame(t=1.23449, position=0.12345, velocity=-0.00006, angle=3 * math.pi,
                       loads=(12.4, 300.0)), 2)
    assert q.t == 1.234 and q.position == 0.1234 and q.velocity == -0.0001
    assert q.zone_loads == (12.0, 255.0) and q.total_load == 267.0
    assert q.angle == -math.pi  # wrapped to [-pi, pi)
    q = quantise(frame(position=9.0, velocity=-9.0, loads=(-5.0, math.nan)), 2)
    assert q.position == 3.2767 and q.velocity == -3.2768 and q.zone_loads == (0.0, 0.0)
    q = quantise(frame(position=math.nan, velocity=math.inf, angle=math.inf), 2)
    assert (q.position, q.velocity, q.angle) == (0.0, 3.2767, 0.0)


def test_quantise_backfill_and_rejects_unsendable_frames():
    f = frame(flags=FrameFlag.IN_CONTACT | FrameFlag.BACKFILL)
    assert quantise(f, 2).flags == f.flags
    assert quantise(f, 2, backfill=False).flags == FrameFlag.IN_CONTACT
    assert quantise(frame(), 2, backfill=True).flags == FrameFlag.BACKFILL
    for bad in (frame(loads=(1.0,)), frame(seq=-1), frame(seq=U32 + 1), frame(t=-0.001),
                frame(t=math.nan), frame(t=5e6), frame(flags=0x10000)):
        with pytest.raises(ValueError):
            quantise(bad, 2)


finite = st.floats(allow_nan=False, allow_infinity=False)
anyfloat = st.floats()


@FAST
@given(st.integers(0, U32), st.integers(0, U32), anyfloat, anyfloat, anyfloat,
       st.lists(anyfloat, min_size=0, max_size=12), st.integers(0, 0xFFFF))
def test_quantise_is_idempotent(seq, t_ms, pos, vel, angle, loads, flags):
    f = Frame(seq, t_ms / 1000, pos, vel, angle, tuple(loads), 0.0, FrameFlag(flags))
    q = quantise(f, len(loads))
    assert quantise(q, len(loads)) == q
    assert abs(q.position) <= 3.2768 and abs(q.velocity) <= 3.2768
    assert -math.pi <= q.angle < math.pi


# ------------------------------------------------------------------------------ stream


def test_stream_layout_golden():
    enc = StreamEncoder(2, 0.01)
    f0 = frame(seq=7, t=1.5, position=0.1, velocity=-0.2, angle=math.pi / 2, loads=(10, 300),
               flags=FrameFlag.IN_CONTACT)
    f1 = frame(seq=8, t=1.51, position=0.1001, velocity=0.0, angle=math.pi / 2, loads=(0, 1),
               flags=FrameFlag.IN_CONTACT)
    data = enc.encode([f0, f1])
    sync = struct.pack("<BIIBHhBBI", 0x01, 7, 1500, 10, 1, 16384, 2, 0, 0)
    frames = bytes([0x82]) + struct.pack("<hh", 1000, -2000) + bytes([10, 255]) \
        + struct.pack("<hh", 1001, 0) + bytes([0, 1])
    assert data == sync + frames
    assert len(sync) == p.SYNC_SIZE == 20
    f2 = frame(seq=9, t=1.52, flags=FrameFlag.IN_CONTACT | FrameFlag.ZEROED)
    assert enc.encode([f2], backfill=False)[:3] == bytes([0x02, 0x01, 0x01])


def wild(rng: random.Random, typical: float) -> float:
    """Mostly typical values, some at and beyond the fixed-point limits, some not finite."""
    r = rng.random()
    if r < 0.8:
        return rng.uniform(-typical, typical)
    if r < 0.9:
        return rng.choice([-1.0, 1.0]) * rng.uniform(0.99, 1.01) * rng.choice([3.2767, 255.0])
    return rng.choice([math.nan, math.inf, -math.inf, 1e300, -1e300, -0.0, 5e-5, 0.5])


@st.composite
def frame_batches(draw, max_frames=80):
    """(zone_count, period_s, batches of (frames, backfill)) with occasional discontinuities.

    Hypothesis draws the structure; a seeded generator fills in the values (fast).
    """
    zones = draw(st.integers(0, 12))
    period_ms = draw(st.integers(1, 255))
    seq = draw(st.integers(0, U32 - 200_000))
    t_ms = draw(st.integers(0, U32 // 2))
    n = draw(st.integers(0, max_frames))
    rng = random.Random(draw(st.integers(0, 2**32)))
    # events at frame i: 0 seq jump, 1 time jump, 2 new flags
    events = {i: (kind, jump) for i, kind, jump in draw(st.lists(
        st.tuples(st.integers(0, max_frames), st.integers(0, 2), st.integers(1, 1000)),
        max_size=6))}
    flags = rng.randrange(0x10000)
    frames = []
    for i in range(n):
        kind, jump = events.get(i, (None, 0))
        if kind == 0:
            seq += jump
        elif kind == 1:
            t_ms += jump
        elif kind == 2:
            flags = rng.randrange(0x10000)
        frames.append(Frame(seq, t_ms / 1000, wild(rng, 0.5), wild(rng, 1.0), wild(rng, 50.0),
                            tuple(wild(rng, 150.0) for _ in range(zones)), 0.0,
                            FrameFlag(flags)))
        seq += 1
        t_ms += period_ms
    sizes = draw(st.lists(st.tuples(st.integers(1, 140), st.booleans()), min_size=1,
                          max_size=6))
    batches, i = [], 0
    for size, backfill in sizes:
        if i < n:
            batches.append((frames[i:i + size], backfill))
            i += size
    if i < n:
        batches.append((frames[i:], False))
    return zones, period_ms / 1000, batches


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def expected_frames(zones, batches):
    return [quantise(f, zones, backfill=b) for fs, b in batches for f in fs]


@FAST
@given(frame_batches(), st.lists(st.integers(0, 10_000), max_size=30))
def test_stream_round_trip_exact_angles(case, cuts):
    zones, period, batches = case
    enc = StreamEncoder(zones, period, angle_every=1)
    data = b"".join(enc.encode(fs, backfill=b) for fs, b in batches)
    dec = StreamDecoder(zones)
    got = [f for chunk in split(data, cuts) for f in dec.feed(chunk)]
    assert got == expected_frames(zones, batches)


@FAST
@given(frame_batches(), st.integers(1, 20))
def test_stream_round_trip_coarse_angle(case, angle_every):
    zones, period, batches = case
    enc = StreamEncoder(zones, period, angle_every=angle_every)
    data = b"".join(enc.encode(fs, backfill=b) for fs, b in batches)
    got = StreamDecoder().feed(data)
    want = expected_frames(zones, batches)
    assert [replace_angle(f) for f in got] == [replace_angle(f) for f in want]
    for i, f in enumerate(got):  # the angle is one sent within the last angle_every frames
        assert f.angle in {w.angle for w in want[max(0, i - angle_every + 1):i + 1]}


def replace_angle(f: Frame) -> Frame:
    return Frame(f.seq, f.t, f.position, f.velocity, 0.0, f.zone_loads, f.total_load, f.flags)


def test_sync_once_a_second_at_batch_starts_angle_every_ten_frames():
    enc = StreamEncoder(8, 0.01)
    frames = rolling(300)
    batches = [enc.encode(frames[i:i + 2]) for i in range(0, 300, 2)]
    syncs = [i for i, b in enumerate(batches) if b[0] == p.TAG_SYNC]
    assert syncs == [0, 50, 100]  # every 100 frames = 1 s
    assert all(p.TAG_SYNC not in [t for t, _ in records(b, 8)[1:]] for b in batches)
    angles = [i for i, b in enumerate(batches) if b[0] == p.TAG_ANGLE]
    assert angles == [i for i in range(150) if i % 5 == 0 and i % 50 != 0]
    # a batch with no ANGLE is one FRAMES record of 2 frames: 1 + 2 * (4 + 8) bytes
    assert len(batches[1]) == 25


def test_discontinuities_and_kind_changes_start_with_sync():
    enc = StreamEncoder(2, 0.01)
    enc.encode([frame(seq=0, t=0.0), frame(seq=1, t=0.01)])
    assert enc.encode([frame(seq=2, t=0.02)])[0] == 0x81
    assert enc.encode([frame(seq=4, t=0.03)])[0] == p.TAG_SYNC  # seq jump
    assert enc.encode([frame(seq=5, t=0.05)])[0] == p.TAG_SYNC  # time jump
    assert enc.encode([frame(seq=6, t=0.06)], backfill=True)[0] == p.TAG_SYNC  # kind
    assert enc.encode([frame(seq=7, t=0.07)], backfill=True)[0] == 0x81
    enc.reset()
    assert enc.encode([frame(seq=8, t=0.08)], backfill=True)[0] == p.TAG_SYNC


def test_long_batches_use_records_of_at_most_127_frames():
    frames = [replace_angle(f) for f in rolling(300, zones=1, period=0.005)]
    data = StreamEncoder(1, 0.005).encode(frames, backfill=True)
    tags = [t for t, _ in records(data, 1)]
    assert tags[0] == p.TAG_SYNC and p.TAG_FRAMES | 127 in tags
    got = StreamDecoder().feed(data)
    assert [f.seq for f in got] == list(range(300))
    assert all(f.flags & FrameFlag.BACKFILL for f in got)


def test_encoder_rejects_bad_setup_and_bad_frames_atomically():
    for period in (0.0, 0.0105, 0.256, -0.01):
        with pytest.raises(ValueError):
            StreamEncoder(8, period)
    with pytest.raises(ValueError):
        StreamEncoder(256, 0.01)
    enc = StreamEncoder(2, 0.01)
    first = enc.encode([frame(seq=0)])
    with pytest.raises(ValueError):
        enc.encode([frame(seq=1, t=0.01), frame(seq=2, t=0.02, loads=(1.0,))])
    assert enc.encode([frame(seq=1, t=0.01)])[0] == 0x81  # state unchanged by the failure
    assert first[0] == p.TAG_SYNC


def test_decoder_requires_sync_and_resets_on_errors():
    sync = struct.pack("<BIIBHhBBI", 1, 5, 100, 10, 0, 0, 1, 0, 0)
    body = bytes([0x81]) + struct.pack("<hh", 1, 2) + bytes([3])
    dec = StreamDecoder()
    with pytest.raises(ProtocolError):
        dec.feed(body)
    assert dec.feed(sync + body)[0].seq == 5
    for bad in (bytes([0x80]), bytes([0x04]), bytes([0x00])):
        with pytest.raises(ProtocolError) as err:
            dec.feed(bad)
        assert err.value.status_code == ResultCode.MALFORMED
        assert not dec.synced
        dec.feed(sync)
    for bad_sync in (struct.pack("<BIIBHhBBI", 1, 0, 0, 0, 0, 0, 1, 0, 0),  # period 0
                     struct.pack("<BIIBHhBBI", 1, 0, 0, 10, 0, 0, 1, 2, 0)):  # kind 2
        with pytest.raises(ProtocolError):
            StreamDecoder().feed(bad_sync)
    with pytest.raises(ProtocolError):
        StreamDecoder(zone_count=8).feed(sync)
    top = struct.pack("<BIIBHhBBI", 1, U32, 0, 10, 0, 0, 1, 0, 0)
    with pytest.raises(ProtocolError):  # the second frame's seq would pass u32
        StreamDecoder().feed(top + bytes([0x82]) + bytes(10))


# ------------------------------------------------------------------------------ fragments


@FAST
@given(st.integers(p.MIN_MTU, p.MAX_MTU),
       st.lists(st.tuples(st.binary(min_size=1, max_size=700), st.booleans(), st.booleans()),
                min_size=1, max_size=20))
def test_fragments_round_trip_any_mtu(mtu, pushes):
    frag, defrag = Fragmenter(mtu), Defragmenter()
    notes, sent, sync_offsets, offset = [], b"", set(), 0
    for i, (chunk, starts_sync, flush) in enumerate(pushes):
        chunk = (bytes([p.TAG_SYNC]) + chunk[1:]) if starts_sync or i == 0 else \
            bytes([chunk[0] | 0x02]) + chunk[1:]
        if chunk[0] == p.TAG_SYNC:
            sync_offsets.add(offset)
        frag.push(chunk)
        sent += chunk
        offset += len(chunk)
        notes += frag.pop_ready(flush=flush)
    notes += frag.pop_ready(flush=True)
    assert frag.pending == 0
    assert all(2 <= len(n) <= mtu - 3 for n in notes)
    assert [n[0] & 0x7F for n in notes] == [i % 128 for i in range(len(notes))]
    got, offset = b"", 0
    for n in notes:
        assert bool(n[0] & p.FRAGMENT_RESYNC) == (offset in sync_offsets)
        got += defrag.feed(n)
        offset += len(n) - 1
    assert got == sent
    # short payloads only end a push that is followed by a SYNC push, or a flush
    assert sum(len(n) < mtu - 3 for n in notes) <= len(pushes)


def test_fragmenter_cuts_full_payloads_early_and_the_rest_on_flush():
    frag = Fragmenter(23)
    frag.push(bytes([1]) + bytes(40))
    ready = frag.pop_ready(flush=False)
    assert [len(n) for n in ready] == [20, 20] and frag.pending == 3
    assert ready[0][0] == 0x80 and ready[1][0] == 0x01
    frag.push(bytes([0x81]) + bytes(5))
    assert frag.pop_ready(flush=False) == []
    assert [len(n) for n in frag.pop_ready(flush=True)] == [10]
    frag.push(bytes([0x81]) + bytes(5))
    frag.push(bytes([1]) + bytes(3))  # a SYNC push starts its own payload
    assert [n[0] for n in frag.pop_ready(flush=True)] == [0x03, 0x84]
    for mtu in (22, 518):
        with pytest.raises(ValueError):
            Fragmenter(mtu)


def test_defragmenter_waits_for_a_resync_fragment_and_detects_gaps():
    defrag = Defragmenter()
    assert defrag.feed(bytes([0x05, 0x81, 0])) == b""  # joined mid-stream: dropped
    assert defrag.feed(bytes([0x86, 0x01, 7])) == bytes([0x01, 7])
    assert defrag.feed(bytes([0x07, 9])) == bytes([9])
    with pytest.raises(FragmentGap) as gap:
        defrag.feed(bytes([0x09, 9]))
    assert (gap.value.expected, gap.value.received) == (8, 9)
    assert isinstance(gap.value, ProtocolError)
    assert defrag.feed(bytes([0x0A, 9])) == b""
    assert defrag.feed(bytes([0x8B, 0x01])) == bytes([0x01])
    assert defrag.feed(bytes([0x0C])) == b""  # header only
    with pytest.raises(ProtocolError):
        defrag.feed(b"")
    with pytest.raises(ProtocolError):
        defrag.feed(bytes([0x8D, 0x81]))  # marked resync without a SYNC


def stream_notes(frames, mtu, per_flush=2, zones=8):
    enc, frag, notes = StreamEncoder(zones, 0.01), Fragmenter(mtu), []
    for i in range(0, len(frames), per_flush):
        frag.push(enc.encode(frames[i:i + per_flush]))
        notes += frag.pop_ready(flush=True)
    return notes


def host_receive(notes):
    """The host's loop: frames, and the resume requests it would send."""
    defrag, dec, got, resumes = Defragmenter(), StreamDecoder(8), [], []
    for note in notes:
        try:
            data = defrag.feed(note)
        except FragmentGap:
            dec.reset()
            resumes.append(got[-1].seq + 1 if got else 0)
            continue
        got += dec.feed(data)
    return got, resumes


@FEW
@given(st.integers(p.MIN_MTU, p.MAX_MTU), st.integers(1, 8), st.data())
def test_lost_fragment_costs_frames_until_next_sync_then_resume_fills_them(mtu, per_flush,
                                                                           data):
    frames = rolling(350)
    want = {f.seq: quantise(f, 8) for f in frames}
    notes = stream_notes(frames, mtu, per_flush)
    lost = data.draw(st.integers(1, len(notes) - 2))
    got, resumes = host_receive(notes[:lost] + notes[lost + 1:])
    assert all(replace_angle(f) == replace_angle(want[f.seq]) for f in got)
    seqs = [f.seq for f in got]
    assert seqs == sorted(seqs)
    missing = sorted(set(want) - set(seqs))
    assert resumes == [missing[0]] if missing else resumes in ([], [350])
    if missing:
        assert missing == list(range(missing[0], missing[-1] + 1))  # one hole
        # back at the next resync fragment: 1 s, 2 s if the lost one came just before it
        assert len(missing) <= 2 * 100 + 2 * per_flush
        # the roller answers Resume(seq) with backfill from its journal
        enc = StreamEncoder(8, 0.01)
        backfill = enc.encode([f for f in frames if f.seq in missing], backfill=True)
        refill = StreamDecoder(8).feed(backfill)
        assert [f.seq for f in refill] == missing
        assert all(f.flags & FrameFlag.BACKFILL for f in refill)


@FEW
@given(st.integers(p.MIN_MTU, p.MAX_MTU), frame_batches(max_frames=120))
def test_encoder_fragmenter_decoder_pipeline(mtu, case):
    zones, period, batches = case
    enc, frag, defrag, dec = (StreamEncoder(zones, period, angle_every=1), Fragmenter(mtu),
                              Defragmenter(), StreamDecoder(zones))
    got = []
    for fs, backfill in batches:
        frag.push(enc.encode(fs, backfill=backfill))
        for note in frag.pop_ready(flush=len(fs) % 2 == 0):
            assert len(note) <= mtu - 3
            got += dec.feed(defrag.feed(note))
    for note in frag.pop_ready(flush=True):
        got += dec.feed(defrag.feed(note))
    assert got == expected_frames(zones, batches)


@pytest.mark.parametrize("mtu", [23, 247])
def test_bytes_per_frame_at_100_hz_with_two_frame_flushes(mtu):
    value_bytes = wire_bytes_per_frame(mtu, 2)
    assert value_bytes <= 16.0
    assert wire_bytes_per_frame(mtu, 2, att_header=True) > value_bytes
    print(f"MTU {mtu}: {value_bytes:.2f} B/frame "
          f"({wire_bytes_per_frame(mtu, 2, att_header=True):.2f} with ATT headers)")


def test_bytes_per_frame_figures_in_the_docs():
    assert round(wire_bytes_per_frame(23, 2), 2) == 13.98
    assert round(wire_bytes_per_frame(247, 2), 2) == 13.47


# ------------------------------------------------------------------------------ control


requests = st.one_of(
    st.builds(StartSession, st.integers(1, U32)),
    st.just(StopSession()), st.just(Zero()), st.just(Tare()), st.just(GetStatus()),
    st.builds(lambda a, b, c: SetFence(a / 1e6, b / 1e6, c / 1e6),
              st.integers(-2_000_000, 2_000_000), st.integers(0, 500_000),
              st.integers(0, 500_000)),
    st.builds(Buzz, st.sampled_from(BuzzPattern)),
    st.builds(Ack, st.integers(0, U32)),
    st.builds(Resume, st.integers(0, U32)),
    st.builds(SetTime, st.integers(0, 2**63 - 1)),
)


@FAST
@given(requests)
def test_request_round_trip(request):
    data = encode_request(request)
    assert data[0] == request.opcode
    assert decode_request(data) == request
    assert p.REQUEST_TYPES[request.opcode] is type(request)


def test_request_layouts_golden():
    assert encode_request(StartSession(0x01020304)) == bytes([1, 4, 3, 2, 1])
    assert encode_request(StopSession()) == bytes([2])
    assert encode_request(SetFence(0.25, 0.01, -0.0)) == \
        bytes([4]) + struct.pack("<iii", 250_000, 10_000, 0)
    assert encode_request(Buzz(BuzzPattern.LUMBAR_WARNING)) == bytes([5, 1])
    assert encode_request(Ack(7)) == bytes([6, 7, 0, 0, 0])
    assert encode_request(Resume(7)) == bytes([7, 7, 0, 0, 0])
    assert encode_request(SetTime.from_seconds(1.5)) == bytes([8]) + struct.pack("<q", 1_500_000)
    assert encode_request(GetStatus()) == bytes([0x0A])
    assert [b.name.lower() for b in BuzzPattern] == [
        "stop", "lumbar_warning", "approach", "paired", "ack", "fault", "calibrate_up",
        "calibrate_down", "landmark", "landmark_refused"]


@pytest.mark.parametrize("data, code", [
    (b"", ResultCode.MALFORMED),
    (bytes([0x0B]), ResultCode.UNKNOWN_OPCODE),
    (bytes([0x81, 0]), ResultCode.UNKNOWN_OPCODE),
    (bytes([0x01, 1, 2, 3]), ResultCode.MALFORMED),
    (bytes([0x02, 0]), ResultCode.MALFORMED),
    (bytes([0x01]) + struct.pack("<I", 0), ResultCode.OUT_OF_RANGE),
    (bytes([0x04]) + struct.pack("<iii", 2_000_001, 0, 0), ResultCode.OUT_OF_RANGE),
    (bytes([0x04]) + struct.pack("<iii", -2_000_001, 0, 0), ResultCode.OUT_OF_RANGE),
    (bytes([0x04]) + struct.pack("<iii", 0, -1, 0), ResultCode.OUT_OF_RANGE),
    (bytes([0x04]) + struct.pack("<iii", 0, 0, 500_001), ResultCode.OUT_OF_RANGE),
    (bytes([0x05, 10]), ResultCode.OUT_OF_RANGE),
    (bytes([0x08]) + struct.pack("<q", -1), ResultCode.OUT_OF_RANGE),
])
def test_bad_requests_give_their_status_code(data, code):
    with pytest.raises(ProtocolError) as err:
        decode_request(data)
    assert err.value.status_code == code
    response = err.value.response()
    assert response.status == code
    assert response.opcode == (data[0] if data else 0)


def test_invalid_requests_cannot_be_built():
    for build in (lambda: SetFence(math.nan, 0, 0), lambda: SetFence(0, 0.6, 0),
                  lambda: Buzz(10), lambda: Ack(-1), lambda: Resume(U32 + 1),
                  lambda: StartSession(True), lambda: SetTime(2**63)):
        with pytest.raises(ValueError):
            build()


@FAST
@given(st.integers(0, 255), st.sampled_from(ResultCode), st.binary(max_size=40))
def test_response_round_trip(opcode, status, payload):
    r = Response(opcode, status, payload)
    data = r.encode()
    assert data[:3] == bytes([0x80, opcode, status])
    assert Response.decode(data) == r
    assert r.ok == (status == ResultCode.SUCCESS)


@FAST
@given(st.integers(0, U32), st.integers(0, U32))
def test_time_reply_round_trip(t_ms, boot_id):
    reply = TimeReply(t_ms / 1000, boot_id)
    assert len(reply.encode()) == 8
    assert TimeReply.decode(reply.encode()) == reply
    resp = Response.decode(Response(p.Opcode.SET_TIME, payload=reply.encode()).encode())
    assert TimeReply.decode(resp.payload) == reply


# ------------------------------------------------------------------------------ status

statuses = st.builds(
    Status, st.sampled_from(RollerState), st.integers(0, 100),
    st.builds(RollerFault, st.integers(0, 0xFFFF)),
    st.builds("{}.{}.{}".format, st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
    st.integers(0, U32), st.integers(0, U32), st.integers(0, U32), st.integers(0, U32))


@FAST
@given(statuses)
def test_status_round_trip(status):
    data = status.encode()
    assert len(data) == Status.SIZE == 24 and data[0] == p.PROTOCOL_VERSION
    assert p.peek_protocol_version(data) == 1
    assert Status.decode(data) == status
    assert Status.SIZE + 6 <= p.STATUS_MIN_MTU


def test_status_layout_and_errors():
    s = Status(RollerState.SESSION, 87, RollerFault.IMU | RollerFault.LOW_BATTERY, "1.2.3",
               42, 0xA1B2C3D4, 1000, 10)
    assert s.encode() == bytes([1, 1, 87, 9, 0, 1, 2, 3]) + struct.pack(
        "<IIII", 42, 0xA1B2C3D4, 1000, 10)
    with pytest.raises(ProtocolError, match="version 2"):
        Status.decode(bytes([2]) + s.encode()[1:])
    for bad in (b"", s.encode()[:-1], s.encode() + b"\0",
                s.encode()[:1] + bytes([4]) + s.encode()[2:],
                s.encode()[:2] + bytes([101]) + s.encode()[3:]):
        with pytest.raises(ProtocolError):
            Status.decode(bad)
    for version in ("1.2", "1.2.256", "a.b.c", "1.2.3.4"):
        with pytest.raises(ValueError):
            Status(RollerState.IDLE, 50, RollerFault.NONE, version, 0, 0, p.NO_SEQ, 0)


# ------------------------------------------------------------------------------ fuzz


def only_protocol_errors(decode, data):
    try:
        decode(data)
    except ProtocolError:
        pass


@FAST
@given(st.binary(max_size=40))
def test_fuzz_request_and_response_decoders(data):
    only_protocol_errors(decode_request, data)
    only_protocol_errors(Response.decode, data)
    only_protocol_errors(TimeReply.decode, data)
    only_protocol_errors(Response.decode, bytes([0x80]) + data)
    if data:
        only_protocol_errors(decode_request, bytes([data[0] % 12]) + data[1:])


@FAST
@given(st.binary(max_size=30), st.binary(min_size=23, max_size=23))
def test_fuzz_status_decoder(data, body):
    only_protocol_errors(Status.decode, data)
    only_protocol_errors(Status.decode, bytes([1]) + body)


@FAST
@given(st.lists(st.binary(max_size=60), max_size=8), st.integers(0, 12), st.booleans())
def test_fuzz_stream_decoder(chunks, zones, prefix):
    dec = StreamDecoder()
    if prefix:
        chunks = [struct.pack("<BIIBHhBB", 1, 0, 0, 10, 0, 0, zones, 0)] + chunks
    for chunk in chunks:
        only_protocol_errors(dec.feed, chunk)


@FAST
@given(st.lists(st.binary(max_size=30), max_size=12))
def test_fuzz_defragmenter(notes):
    defrag = Defragmenter()
    for note in notes:
        only_protocol_errors(defrag.feed, note)


def test_status_says_when_the_battery_is_low_or_unknown():
    def status(pct, faults):
        return Status(RollerState.IDLE, pct, faults, "1.2.3", 0, 1, 0xFFFFFFFF, 0)
    assert status(64, RollerFault.NONE).battery_text == "64 %"
    assert status(8, RollerFault.LOW_BATTERY).battery_text.startswith("8 % (low")
    assert status(0, RollerFault.BATTERY_UNKNOWN).battery_text == "unknown"
    unknown = status(0, RollerFault.BATTERY_UNKNOWN | RollerFault.IMU)
    assert Status.decode(unknown.encode()).faults & RollerFault.BATTERY_UNKNOWN


def test_the_calibration_value_round_trips_with_its_layout():
    cal = p.RollerCalibration(0.0043, 612.25, 1765000000.0)
    data = cal.encode()
    assert len(data) == p.RollerCalibration.SIZE == 18 and data[0] == p.PROTOCOL_VERSION
    assert data == struct.pack("<BiIIiB", 1, 4_300_000, 612_250, 1765000000, 0, 0)
    assert p.RollerCalibration.decode(data) == cal
    assert cal.learned and cal.line() == "IMU clock +0.43 % (over 612 s)"
    scaled = p.RollerCalibration(0.0043, 612.25, 1765000000.0, -0.021, True)
    data = scaled.encode()
    assert data[13:] == struct.pack("<iB", -21_000_000, 1)
    assert p.RollerCalibration.decode(data) == scaled
    assert scaled.line() == "IMU clock +0.43 % (over 612 s), gyro scale -2.10 %"
    only_scale = p.RollerCalibration(gyro_scale_error=0.012, gyro_scale_learned=True)
    assert only_scale.learned and only_scale.line() == "gyro scale +1.20 %"


def test_the_older_13_byte_calibration_value_still_decodes_without_a_scale():
    old = struct.pack("<BiII", 1, 4_300_000, 612_250, 1765000000)
    cal = p.RollerCalibration.decode(old)
    assert cal == p.RollerCalibration(0.0043, 612.25, 1765000000.0)
    assert not cal.gyro_scale_learned and cal.gyro_scale_error == 0.0
    slow = p.RollerCalibration.decode(p.RollerCalibration(-0.0125, 30.0).encode())
    assert slow.imu_clock_error == pytest.approx(-0.0125) and slow.updated_utc == 0.0
    new = p.RollerCalibration()
    assert not new.learned and "not learned" in new.line()


def test_a_calibration_value_a_later_roller_grew_decodes_its_known_fields():
    """The value grows only at its end (docs/protocol.md §9): a later roller's fields
    after the 18 bytes this host knows are ignored, the known ones read."""
    scaled = p.RollerCalibration(0.0043, 612.25, 1765000000.0, -0.021, True)
    assert p.RollerCalibration.decode(scaled.encode() + bytes([7, 0, 0, 9])) == scaled


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (bytes([2]) + bytes(12), "version 2"),
    (bytes([1]) + bytes(11), "18 bytes"),
    (bytes([1]) + bytes(14), "18 bytes"),
    (bytes([1]) + bytes(16), "18 bytes"),
    (bytes([2]) + bytes(20), "version 2"),
    (struct.pack("<BiII", 1, 60_000_000, 1000, 0), "implausible"),
    (struct.pack("<BiIIiB", 1, 0, 1000, 0, 60_000_000, 1), "implausible"),
    (struct.pack("<BiIIiB", 1, 0, 1000, 0, 0, 2), "neither 0 nor 1"),
])
def test_a_bad_calibration_value_is_one_protocol_error(data, words):
    with pytest.raises(ProtocolError) as info:
        p.RollerCalibration.decode(data)
    assert words in str(info.value)


def test_a_calibration_out_of_range_cannot_be_built():
    for kwargs in ({"imu_clock_error": 0.06}, {"imu_clock_error": math.nan},
                   {"imu_clock_span_s": -1.0}, {"updated_utc": 2.0**33},
                   {"gyro_scale_error": 0.06}, {"gyro_scale_error": math.inf}):
        with pytest.raises(ProtocolError):
            p.RollerCalibration(**kwargs)


def test_a_frame_is_a_frozen_value_with_its_defaults():
    import dataclasses

    frame = p.Frame(3, 0.5, 0.1, 0.2, 0.3, (1.0, 2.0), 3.0)
    assert frame.flags == p.FrameFlag.NONE and frame.boot == 0
    assert frame == p.Frame(seq=3, t=0.5, position=0.1, velocity=0.2, angle=0.3,
                            zone_loads=(1.0, 2.0), total_load=3.0)
    assert hash(frame) == hash(p.Frame(3, 0.5, 0.1, 0.2, 0.3, (1.0, 2.0), 3.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.seq = 4  # type: ignore[misc]
    flagged = frame.with_flags(p.FrameFlag.BEYOND_FENCE)
    assert flagged == dataclasses.replace(frame, flags=p.FrameFlag.BEYOND_FENCE)
    assert [f.name for f in dataclasses.fields(p.Frame)] == [
        "seq", "t", "position", "velocity", "angle", "zone_loads", "total_load", "flags", "boot"]
