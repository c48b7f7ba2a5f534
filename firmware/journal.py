"""Store-and-forward journal: every frame is kept until the host acknowledges it as stored.

The firmware appends each ``Frame`` (``append``) and streams from here (``read``); the
host's ``ACK(s)`` (``ack``) releases every frame up to ``s``. Frames live in two places:

- a RAM ring of the newest unacked frames (``ram_frames``, 60 s at 100 frames/s): the
  live stream and short resumes are served from it;
- append-only segment files on the SD card (``directory``), so frames survive a firmware
  restart or a power cut, and a session rolled while no host was connected is synced
  later. ``directory=None`` keeps RAM only (tests, no SD card): then a full ring drops
  its oldest unacked frame.

File format (all integers little-endian)::

    journal-<first_seq:010d>.seg   one segment: records of frames in seq order, the
                                   first one ``first_seq``; only the newest is appended to
        record   u32 length, payload (length bytes), u32 CRC-32 (zlib) of the payload
        payload  u32 seq, u32 boot, f64 t (s), f64 position (m), f64 velocity (m/s),
                 f64 angle (rad), u16 flags, u8 zones, zones x f32 zone load (N),
                 f32 total load (N)             (79 bytes + 8 framing with 8 zones)
    acked                          ASCII decimal: newest seq the host acknowledged;
                                   written to ``acked.tmp``, fsynced, ``os.replace``d

The directory is created 0700 (an existing one tightened: ``firmware.files``): the
frames are the person's rolling, for the roller's user only.

Values keep full precision (not the wire's fixed point); loads are float32 (7 digits).

Rules:

- ``append`` packs the record into a bytearray; the buffer is written (no fsync) every
  ``flush_every`` frames and by ``flush()``, which also fsyncs the segment and saves
  ``acked`` (the firmware calls it about once a second and at stop). A power cut loses
  at most the frames since the last flush. ``acked`` is saved at most once a second
  otherwise.
- A new segment starts when the newest reaches ``segment_bytes`` (the old one is
  fsynced first, so only the newest segment can have a torn tail).
- Every record carries its CRC-32, checked when a segment is scanned (the newest on
  open, older ones when first needed) and again at every read from the file (the card
  may change after the scan).
- A damaged tail of the newest segment (power lost mid-write: a truncated or corrupt
  record with no good one after it) is logged once and cut off, so new records append
  cleanly. Damage anywhere else (a bad byte on the card) loses only the damaged
  records: the scan goes on at the next good record (the next offset where a whole
  record with its CRC and a higher seq is found), reads skip them, and their frames
  (the seqs between the good records around the damage; at a segment's tail, up to the
  next segment's first) are logged and counted in ``lost``. The host, whose backfill
  then skips those seqs, records them as a hole (docs/protocol.md section 6).
- A segment whose frames are all acked is deleted (the newest one stays: it carries
  ``last_seq`` across a restart).
- When the files exceed ``max_bytes`` the oldest segment is dropped: its unacked frames
  are counted in ``lost``, ``full`` is set (Status fault JOURNAL_FULL) and it is logged.
  ``full`` clears once acks leave room for a whole segment again.
- When the RAM ring is full its oldest frame leaves RAM only (it is in the file).

seq is a u32 shared by all boots; wrap-around (497 days at 100 frames/s) is not handled.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
import struct
import time
import zlib
from array import array
from collections import deque
from itertools import islice
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, NamedTuple

from firmware.files import private_dir
from firmware.protocol import Frame, FrameFlag

__all__ = ["ACKED_NAME", "ACK_SAVE_PERIOD_S", "SEGMENT_GLOB", "Journal", "segment_name"]

ACKED_NAME = "acked"
"""Name of the file holding the acknowledged seq."""
SEGMENT_GLOB = "journal-*.seg"
"""Glob matching the segment files."""
ACK_SAVE_PERIOD_S = 1.0
"""``ack`` saves the acked seq at most this often, s (``flush``/``close`` always do)."""

_U32 = 0xFFFF_FFFF
_U32_STRUCT = struct.Struct("<I")  # record length, CRC, seq
_HEAD = struct.Struct("<IIddddHB")  # payload up to the zone count
_RECORDS: dict[int, struct.Struct] = {}  # zone count -> length + payload
_LOADS: dict[int, struct.Struct] = {}  # zone count -> zone loads + total
_LENGTH = re.compile(rb"(?s)(?=(?:[\x2f-\xff]\x00|.[\x01-\x04])\x00\x00)")
"""Where a record may start: a u32 length of 47 to 1067 bytes (``_HEAD`` and 0 to 255
zones), as searched past damage (so a stretch of zeros or noise is passed at C speed)."""


def segment_name(first_seq: int) -> str:
    """File name of the segment whose first frame is ``first_seq``."""
    return f"journal-{first_seq:010d}.seg"


def _record_struct(zones: int) -> struct.Struct:
    rec = _RECORDS.get(zones)
    if rec is None:
        rec = _RECORDS[zones] = struct.Struct(f"<I{_HEAD.format[1:]}{zones + 1}f")
    return rec


def _loads_struct(zones: int) -> struct.Struct:
    loads = _LOADS.get(zones)
    if loads is None:
        loads = _LOADS[zones] = struct.Struct(f"<{zones + 1}f")
    return loads


def _decode(data: bytes, pos: int) -> Frame:
    """The frame of the payload starting at ``data[pos]``."""
    seq, boot, t, position, velocity, angle, flags, zones = _HEAD.unpack_from(data, pos)
    *loads, total = _loads_struct(zones).unpack_from(data, pos + _HEAD.size)
    return Frame(seq, t, position, velocity, angle, tuple(loads), total, FrameFlag(flags), boot)


def _record_at(data: bytes, view: memoryview, pos: int, after: int | None) -> tuple[int, int] | str:
    """The record at ``data[pos]``: (its seq, the next record's offset), or what is wrong
    with it (``after``: its seq must be higher)."""
    if len(data) - pos < 4 + _HEAD.size + 4:
        return "truncated record"
    (length,) = _U32_STRUCT.unpack_from(data, pos)
    end = pos + 4 + length
    if length < _HEAD.size or end + 4 > len(data):
        return "truncated or bad-length record"
    if zlib.crc32(view[pos + 4:end]) != _U32_STRUCT.unpack_from(data, end)[0]:
        return "CRC mismatch"
    (seq,) = _U32_STRUCT.unpack_from(data, pos + 4)
    zones = data[pos + 4 + _HEAD.size - 1]
    if length != _HEAD.size + 4 * (zones + 1) or (after is not None and seq <= after):
        return "malformed record"
    return seq, end + 4


def _next_record(data: bytes, view: memoryview, pos: int, after: int | None,
                 length: int | None) -> int | None:
    """Offset of the first good record after ``pos`` (None: none): first where a record
    of ``length`` (the last good one's) would start, else at every byte."""
    if length is not None:
        needle = _U32_STRUCT.pack(length)
        at = data.find(needle, pos + 1)
        while at != -1:
            if not isinstance(_record_at(data, view, at, after), str):
                return at
            at = data.find(needle, at + 1)
    for match in _LENGTH.finditer(data, pos + 1):
        if not isinstance(_record_at(data, view, match.start(), after), str):
            return match.start()
    return None


class _Damage(NamedTuple):
    """Bytes of a segment that hold no good record: ``size`` bytes at ``offset``, the
    first ``reason``, between the good records of seqs ``before`` and ``after`` (None:
    none before, none after: a damaged tail)."""

    offset: int
    size: int
    reason: str
    before: int | None
    after: int | None


def _scan(data: bytes) -> tuple[array, array, int, list[_Damage]]:
    """Index the records of a segment's bytes, skipping damaged ones.

    Returns (seqs, offsets, good_bytes, damage): each good record's seq and byte offset,
    the end of the last good record, and the damaged stretches in file order.
    """
    seqs, offsets = array("I"), array("I")
    view, pos, good, damage = memoryview(data), 0, 0, []
    while pos < len(data):
        before = seqs[-1] if seqs else None
        got = _record_at(data, view, pos, before)
        if isinstance(got, str):
            length = _U32_STRUCT.unpack_from(data, offsets[-1])[0] if seqs else None
            resume = _next_record(data, view, pos, before, length)
            end = len(data) if resume is None else resume
            after = None if resume is None else _U32_STRUCT.unpack_from(data, resume + 4)[0]
            damage.append(_Damage(pos, end - pos, got, before, after))
            pos = end
            continue
        seqs.append(got[0])
        offsets.append(pos)
        pos = good = got[1]
    return seqs, offsets, good, damage


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Segment:
    """One segment file: first seq, size (bytes) and, once scanned, its record index."""

    __slots__ = ("first_seq", "path", "size", "seqs", "offsets")

    def __init__(self, path: Path, first_seq: int, size: int, indexed: bool = False) -> None:
        self.path = path
        self.first_seq = first_seq
        self.size = size
        self.seqs: array | None = array("I") if indexed else None
        self.offsets: array | None = array("I") if indexed else None


class Journal:
    """Frames kept until acknowledged: a RAM ring plus bounded segment files.

    directory: where the segment files live (created if missing); None: RAM only.
    ram_frames: frames the RAM ring holds (at least ``flush_every`` with a directory).
    max_bytes: bound of the segment files, bytes (at least two segments).
    segment_bytes: a new segment starts once the newest reaches this size, bytes.
    flush_every: buffered frames are written to the file every this many appends.
    logger: where damage and drops are reported.

    ``lost``: frames dropped unacked because a bound was hit, or whose records were
    found damaged (since this open).
    ``full``: True while the journal is at its bound (Status fault JOURNAL_FULL).
    """

    def __init__(self, directory: Path | None, *, ram_frames: int = 6000,
                 max_bytes: int = 64 * 2**20, segment_bytes: int = 2**20,
                 flush_every: int = 100, logger: logging.Logger | None = None) -> None:
        if ram_frames < 1 or flush_every < 1:
            raise ValueError("ram_frames and flush_every must be at least 1")
        if directory is not None and (flush_every > ram_frames or 2 * segment_bytes > max_bytes
                                      or segment_bytes < 1):
            raise ValueError("need flush_every <= ram_frames and 1 <= 2 * segment_bytes "
                             "<= max_bytes")
        self.directory = None if directory is None else Path(directory)
        self.ram_frames = ram_frames
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.flush_every = flush_every
        self.log = logger or logging.getLogger("smartroller.journal")
        self.lost = 0
        self.full = False
        self._ram: deque[Frame] = deque()
        self._last: int | None = None
        self._acked: int | None = None
        self._floor = 0  # frames below this seq are gone (acked or dropped)
        self._segments: list[_Segment] = []
        self._bytes = 0  # size of all segment files
        self._fh: BinaryIO | None = None  # the newest segment, open for append
        self._buf = bytearray()
        self._buf_seqs: list[int] = []
        self._buf_offsets: list[int] = []
        self._saved_acked: int | None = None
        self._saved_at = -float("inf")
        self._closed = False
        if self.directory is not None:
            self._open(self.directory)

    # ------------------------------------------------------------------ properties

    @property
    def last_seq(self) -> int | None:
        """seq of the newest frame appended (also by an earlier run), None if none ever."""
        return self._last

    @property
    def acked_seq(self) -> int | None:
        """Newest seq the host acknowledged, None if none."""
        return self._acked

    @property
    def oldest_seq(self) -> int | None:
        """seq of the oldest frame still held (unacked), None if none."""
        for seg in self._segments_from(self._floor):
            seqs = self._index(seg).seqs
            j = bisect.bisect_left(seqs, self._floor)
            if j < len(seqs):
                return min(seqs[j], self._ram[0].seq) if self._ram else seqs[j]
        return self._ram[0].seq if self._ram else None

    @property
    def next_seq(self) -> int:
        """seq for a (restarted) firmware's next frame: ``last_seq + 1``, 0 if empty."""
        return 0 if self._last is None else self._last + 1

    # ------------------------------------------------------------------ API

    def append(self, frame: Frame) -> None:
        """Keep ``frame`` until acknowledged. ValueError if its seq does not increase
        (or a field does not fit the record: seq/boot u32, flags u16, <= 255 zones)."""
        if self._closed:
            raise ValueError("journal is closed")
        seq = frame.seq
        if not 0 <= seq <= _U32 or (self._last is not None and seq <= self._last):
            raise ValueError(f"frame seq {seq} does not follow {self._last}")
        if self.directory is not None:
            self._buffer(frame)
        ram = self._ram
        if len(ram) >= self.ram_frames:
            oldest = ram.popleft()
            if self.directory is None:
                self._drop_from_ram(oldest)
        ram.append(frame)
        self._last = seq
        if len(self._buf_seqs) >= self.flush_every:
            self._write()

    def ack(self, seq: int) -> None:
        """The host stored every frame <= ``seq``: release them. Older acks are ignored."""
        if self._last is None or seq < 0:
            return
        seq = min(seq, self._last)
        if self._acked is not None and seq <= self._acked:
            return
        self._acked = seq
        self._floor = max(self._floor, seq + 1)
        ram = self._ram
        while ram and ram[0].seq <= seq:
            ram.popleft()
        self._delete_released()
        if self.full and self._has_room():
            self.full = False
        self._save_acked(force=False)

    def read(self, from_seq: int, limit: int) -> list[Frame]:
        """Up to ``limit`` unacked frames with seq >= ``from_seq``, oldest first.

        From RAM when they are there, else from the segment files.
        """
        if limit <= 0:
            return []
        start = max(from_seq, self._floor)
        ram = self._ram
        ram_first = ram[0].seq if ram else None
        out: list[Frame] = []
        if ram_first is None or start < ram_first:
            out = self._read_files(start, limit, ram_first)
        if len(out) < limit and ram:
            i = bisect.bisect_left(ram, start, key=_seq_of)
            out.extend(islice(ram, i, i + limit - len(out)))
        return out

    def flush(self) -> None:
        """Write the buffered frames, fsync the segment and save the acked seq."""
        if self.directory is None or self._closed:
            return
        self._write()
        if self._fh is not None:
            os.fsync(self._fh.fileno())
        self._save_acked(force=True)

    def close(self) -> None:
        """Flush and close the files. Further appends raise ValueError."""
        if self._closed:
            return
        self.flush()
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._closed = True

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    # ------------------------------------------------------------------ opening

    def _open(self, directory: Path) -> None:
        private_dir(directory)  # 0700: the person's rolling
        self._acked = self._saved_acked = self._load_acked(directory / ACKED_NAME)
        if self._acked is not None:
            self._floor = self._acked + 1
        for path in directory.glob(SEGMENT_GLOB):
            try:
                first = int(path.name[len("journal-"):-len(".seg")])
            except ValueError:
                continue
            self._segments.append(_Segment(path, first, path.stat().st_size))
        self._segments.sort(key=lambda seg: seg.first_seq)
        self._bytes = sum(seg.size for seg in self._segments)
        known = [] if self._acked is None else [self._acked]
        if self._segments:
            newest = self._index(self._segments[-1])
            known.append(newest.seqs[-1] if newest.seqs else newest.first_seq - 1)
        self._last = max(known) if known and max(known) >= 0 else None
        self._delete_released()

    def _load_acked(self, path: Path) -> int | None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            value = int(text.strip())
            if not 0 <= value <= _U32:
                raise ValueError
        except ValueError:
            self.log.warning("journal: unreadable %s file %r; resending all it holds",
                             ACKED_NAME, text[:20])
            return None
        return value

    def _index(self, seg: _Segment) -> _Segment:
        """``seg`` with its record index, scanning the file the first time."""
        if seg.seqs is None:
            seg.seqs, seg.offsets, good, damage = _scan(seg.path.read_bytes())
            newest = seg is self._segments[-1]
            for d in damage:
                if d.after is None and newest:  # a torn tail: cut it so appends stay clean
                    self.log.warning("journal %s: %s at byte %d of %d; keeping the %d "
                                     "frames before it", seg.path.name, d.reason, d.offset,
                                     seg.size, len(seg.seqs))
                    os.truncate(seg.path, good)
                    self._bytes -= seg.size - good
                    seg.size = good
                    continue
                first = seg.first_seq if d.before is None else d.before + 1
                last = self._next_first_seq(seg) - 1 if d.after is None else d.after - 1
                self._lose(seg, first, last, f"{d.reason} at byte {d.offset} of {seg.size} "
                                             f"({d.size} bytes skipped)")
        return seg

    def _next_first_seq(self, seg: _Segment) -> int:
        """The first seq of the segment after ``seg`` (an older one's frames end below)."""
        i = self._segments.index(seg)
        return self._segments[i + 1].first_seq

    def _lose(self, seg: _Segment, first: int, last: int, what: str) -> None:
        """Frames ``first..last`` of ``seg`` are damaged: counted in ``lost`` (those not
        acknowledged) and logged. Reads skip them: the host sees the hole in seq."""
        unacked = max(0, last - max(first, self._floor) + 1)
        self.lost += unacked
        self.log.warning("journal %s: %s: frame(s) %d-%d lost (%d not acknowledged)",
                         seg.path.name, what, first, last, unacked)

    # ------------------------------------------------------------------ writing

    def _buffer(self, frame: Frame) -> None:
        loads = frame.zone_loads
        rec = _record_struct(len(loads))
        try:
            body = rec.pack(rec.size - 4, frame.seq, frame.boot, frame.t, frame.position,
                            frame.velocity, frame.angle, int(frame.flags), len(loads), *loads,
                            frame.total_load)
        except struct.error as error:
            raise ValueError(f"frame {frame.seq} does not fit a journal record: {error}") from None
        buf = self._buf
        self._buf_offsets.append(len(buf))
        self._buf_seqs.append(frame.seq)
        buf += body
        buf += _U32_STRUCT.pack(zlib.crc32(memoryview(body)[4:]))

    def _write(self) -> None:
        """Append the buffer to the newest segment (no fsync); enforce ``max_bytes``."""
        if not self._buf_seqs:
            return
        seg = self._segments[-1] if self._segments else None
        if seg is None or seg.size >= self.segment_bytes:
            seg = self._start_segment(self._buf_seqs[0])
        if self._fh is None:
            self._fh = open(seg.path, "ab")  # kept open while appending
        self._fh.write(self._buf)
        self._fh.flush()
        seg.seqs.extend(self._buf_seqs)
        seg.offsets.extend(seg.size + offset for offset in self._buf_offsets)
        seg.size += len(self._buf)
        self._bytes += len(self._buf)
        self._buf.clear()
        self._buf_seqs.clear()
        self._buf_offsets.clear()
        while self._bytes > self.max_bytes and len(self._segments) > 1:
            self._drop_oldest_segment()

    def _start_segment(self, first_seq: int) -> _Segment:
        if self._fh is not None:  # the finished segment is made durable first
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        seg = _Segment(self.directory / segment_name(first_seq), first_seq, 0, indexed=True)
        self._fh = open(seg.path, "ab")  # kept open while appending
        _fsync_dir(self.directory)
        self._segments.append(seg)
        self._delete_released()  # the previous segment may be all acked by now
        return seg

    def _save_acked(self, *, force: bool) -> None:
        if self.directory is None or self._acked is None or self._acked == self._saved_acked:
            return
        now = time.monotonic()
        if not force and now - self._saved_at < ACK_SAVE_PERIOD_S:
            return
        tmp = self.directory / (ACKED_NAME + ".tmp")
        with open(tmp, "w") as fh:
            fh.write(f"{self._acked}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.directory / ACKED_NAME)
        self._saved_acked, self._saved_at = self._acked, now

    # ------------------------------------------------------------------ releasing, dropping

    def _delete_released(self) -> None:
        """Delete the segments (but the newest) whose frames are all acked or dropped."""
        segs = self._segments
        while len(segs) > 1 and segs[1].first_seq <= self._floor:
            seg = segs.pop(0)
            seg.path.unlink(missing_ok=True)
            self._bytes -= seg.size

    def _drop_oldest_segment(self) -> None:
        seg = self._index(self._segments[0])
        unacked = len(seg.seqs) - bisect.bisect_left(seg.seqs, self._floor)
        self._segments.pop(0)
        seg.path.unlink(missing_ok=True)
        self._bytes -= seg.size
        self._floor = max(self._floor, self._segments[0].first_seq)
        ram = self._ram
        while ram and ram[0].seq < self._floor:
            ram.popleft()
        self.lost += unacked
        self.full = True
        self.log.warning("journal over %d bytes: dropped %s with %d unacked frames "
                         "(%d lost since start)", self.max_bytes, seg.path.name, unacked,
                         self.lost)

    def _drop_from_ram(self, frame: Frame) -> None:
        """RAM only: the full ring lets go of its oldest (unacked) frame."""
        self.lost += 1
        self._floor = frame.seq + 1
        if not self.full:
            self.log.warning("journal RAM full (%d frames): dropping the oldest unacked "
                             "frames", self.ram_frames)
        self.full = True

    def _has_room(self) -> bool:
        if self.directory is None:
            return len(self._ram) < self.ram_frames
        return self._bytes + self.segment_bytes <= self.max_bytes

    # ------------------------------------------------------------------ reading

    def _segments_from(self, seq: int) -> list[_Segment]:
        """The segments that may hold frames >= ``seq``."""
        i = bisect.bisect_right(self._segments, seq, key=_first_seq_of) - 1
        return self._segments[max(i, 0):]

    def _read_files(self, start: int, limit: int, stop: int | None) -> list[Frame]:
        """Up to ``limit`` frames from the files with ``start <= seq < stop``."""
        out: list[Frame] = []
        for seg in self._segments_from(start):
            if len(out) >= limit or (stop is not None and seg.first_seq >= stop):
                break
            while len(out) < limit:  # again when damaged records were left out
                seqs = self._index(seg).seqs
                j = bisect.bisect_left(seqs, start)
                k = len(seqs) if stop is None else bisect.bisect_left(seqs, stop)
                k = min(k, j + limit - len(out))
                if j >= k:
                    break
                start = seqs[k - 1] + 1
                out.extend(self._load(seg, j, k))
        return out

    def _load(self, seg: _Segment, j: int, k: int) -> list[Frame]:
        """Records ``j`` to ``k - 1`` of an indexed segment, each checked again (its CRC:
        the card may have changed since the scan); a damaged one is left out of the
        index and the result, and lost (``_lose``)."""
        offsets, seqs = seg.offsets, seg.seqs
        begin = offsets[j]
        end = offsets[k] if k < len(offsets) else seg.size
        with open(seg.path, "rb") as fh:
            fh.seek(begin)
            data = fh.read(end - begin)
        view, out, damaged = memoryview(data), [], []
        for i in range(j, k):
            pos = offsets[i] - begin
            got = _record_at(data, view, pos, None)
            if isinstance(got, str) or got[0] != seqs[i]:
                damaged.append((i, "the record changed since it was written" if
                                not isinstance(got, str) else got))
                continue
            out.append(_decode(data, pos + 4))
        for i, reason in reversed(damaged):
            seq, offset = seqs[i], offsets[i]
            del seqs[i], offsets[i]
            self._lose(seg, seq, seq, f"{reason} at byte {offset}, found when read")
        return out


def _seq_of(frame: Frame) -> int:
    return frame.seq


def _first_seq_of(seg: _Segment) -> int:
    return seg.first_seq
