"""The roller's published interface: GATT identity, frame stream, control point, status.

Pure Python, no I/O: the host imports this module and nothing else of the firmware.
Units in the code are SI (m, s, N, rad); the wire uses little-endian fixed-point
integers. docs/protocol.md is the byte-level specification; this module is its
reference implementation.

- GATT identity: ``SERVICE_UUID`` and its characteristics ``STREAM_UUID`` (notify),
  ``CONTROL_UUID`` (write with response + indicate), ``STATUS_UUID`` (read + notify).
- Frame stream: ``StreamEncoder`` -> ``Fragmenter`` -> notifications ->
  ``Defragmenter`` -> ``StreamDecoder``. ``quantise`` gives what a frame is after the
  trip; ``wire_bytes_per_frame`` measures the cost.
- Control point: request dataclasses (``SetFence`` ...), ``encode_request``,
  ``decode_request``, ``Response``, ``TimeReply``.
- Status: ``Status`` with ``RollerState`` and ``RollerFault``.

Every decoder raises only ``ProtocolError`` (a ``ValueError``) on bad bytes.
"""

from __future__ import annotations

import math
import re
import struct
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, fields
from enum import IntEnum, IntFlag
from typing import ClassVar

__all__ = [
    "ANGLE_UNIT_RAD", "BATTERY_LEVEL_UUID", "BATTERY_SERVICE_UUID", "CALIBRATION_UUID",
    "CONTROL_UUID",
    "DEVICE_INFORMATION_SERVICE_UUID", "DEVICE_NAME_PREFIX", "FENCE_BAND_LIMIT_M",
    "FENCE_LIMIT_M", "FIRMWARE_REVISION_UUID", "FRAGMENT_COUNTER_MASK", "FRAGMENT_RESYNC",
    "HARDWARE_REVISION_UUID", "KIND_BACKFILL", "KIND_LIVE", "LOAD_UNIT_N",
    "MANUFACTURER_NAME_UUID", "MAX_FRAMES_PER_RECORD", "MAX_MTU", "MIN_MTU",
    "MODEL_NUMBER_UUID", "NO_SEQ", "POSITION_UNIT_M", "PROTOCOL_VERSION", "REQUEST_TYPES",
    "RESPONSE_CODE", "SERIAL_NUMBER_UUID", "SERVICE_UUID", "STATUS_MIN_MTU", "STATUS_UUID",
    "STREAM_UUID", "SYNC_SIZE", "TAG_ANGLE", "TAG_FLAGS", "TAG_FRAMES", "TAG_SYNC",
    "TIME_UNIT_S", "VELOCITY_UNIT_M_S", "Ack", "Buzz", "BuzzPattern", "Defragmenter",
    "FragmentGap", "Fragmenter", "Frame", "FrameFlag", "GetStatus", "Opcode",
    "ProtocolError", "Request", "Response", "Resume", "ResultCode", "RollerCalibration",
    "RollerFault", "RollerState", "SetFence", "SetTime", "StartSession", "Status", "StopSession",
    "StreamDecoder", "StreamEncoder", "Tare", "TimeReply", "Zero", "decode_request",
    "encode_request", "frame_size", "peek_protocol_version", "quantise",
    "wire_bytes_per_frame",
]

PROTOCOL_VERSION = 1
"""Version of everything in this module; first byte of the ``Status`` payload."""

# --------------------------------------------------------------------------- GATT identity

DEVICE_NAME_PREFIX = "smartroller"
"""Advertised names start with this (e.g. ``smartroller-3f2a``)."""


def _custom_uuid(n: int) -> str:
    return f"a7e1{n:04x}-5b0c-4d6e-8f3a-52a0113e5201"


def _sig_uuid(short: int) -> str:
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


SERVICE_UUID = _custom_uuid(0)
"""The roller's primary service."""
STREAM_UUID = _custom_uuid(1)
"""Frame stream: notify. Fragments of the record stream (``Fragmenter``)."""
CONTROL_UUID = _custom_uuid(2)
"""Control point: write with response (requests) + indicate (``Response``)."""
STATUS_UUID = _custom_uuid(3)
"""Roller status: read + notify (``Status``)."""
CALIBRATION_UUID = _custom_uuid(4)
"""What the roller learned of its parts: read (``RollerCalibration``)."""

DEVICE_INFORMATION_SERVICE_UUID = _sig_uuid(0x180A)
MANUFACTURER_NAME_UUID = _sig_uuid(0x2A29)
MODEL_NUMBER_UUID = _sig_uuid(0x2A24)
SERIAL_NUMBER_UUID = _sig_uuid(0x2A25)
HARDWARE_REVISION_UUID = _sig_uuid(0x2A27)
FIRMWARE_REVISION_UUID = _sig_uuid(0x2A26)
BATTERY_SERVICE_UUID = _sig_uuid(0x180F)
BATTERY_LEVEL_UUID = _sig_uuid(0x2A19)

MIN_MTU = 23
"""Smallest ATT MTU (the default before an MTU exchange), bytes."""
MAX_MTU = 517
"""Largest ATT MTU, bytes."""

_U8, _U16, _U32 = 0xFF, 0xFFFF, 0xFFFF_FFFF
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1
NO_SEQ = _U32
"""``Status.last_seq`` before the first frame."""


# --------------------------------------------------------------------------- errors


class ResultCode(IntEnum):
    """Status byte of a control-point ``Response``."""

    SUCCESS = 0
    UNKNOWN_OPCODE = 1
    MALFORMED = 2  # wrong length or undecodable bytes
    NOT_ALLOWED = 3  # valid, but not in the roller's current state
    OUT_OF_RANGE = 4  # a value outside its documented range


class ProtocolError(ValueError):
    """Bytes that do not follow the protocol, or a message value out of range.

    status_code: the ``ResultCode`` the roller answers a bad request with.
    message: what is wrong.
    opcode: the request's opcode when known (for the error response), else None.
    """

    def __init__(self, status_code: ResultCode, message: str, opcode: int | None = None) -> None:
        super().__init__(message)
        self.status_code = ResultCode(status_code)
        self.message = message
        self.opcode = opcode

    def response(self) -> Response:
        """The control-point response that reports this error."""
        return Response(self.opcode if self.opcode is not None else 0, self.status_code)


class FragmentGap(ProtocolError):
    """A STREAM notification is missing (fragment counter jump).

    The host resyncs: ``StreamDecoder.reset()``, then ``Resume`` from the first seq it
    has not stored. The ``Defragmenter`` drops data until the next resync fragment.
    """

    def __init__(self, expected: int, received: int) -> None:
        super().__init__(ResultCode.MALFORMED,
                         f"fragment {received} received, {expected} expected")
        self.expected = expected
        self.received = received


def _malformed(message: str) -> ProtocolError:
    return ProtocolError(ResultCode.MALFORMED, message)


def _out_of_range(message: str) -> ProtocolError:
    return ProtocolError(ResultCode.OUT_OF_RANGE, message)


# --------------------------------------------------------------------------- frames


class FrameFlag(IntFlag):
    """Bits of ``Frame.flags``. A set bit describes the frame it is in."""

    NONE = 0
    IN_CONTACT = 1 << 0  # a body lies on the roller (total load above the contact threshold)
    IMU_GAP = 1 << 1  # IMU samples were lost just before this frame (FIFO overflow or fault)
    IMU_FAULT = 1 << 2  # the IMU is not answering or gives stale data; position is held
    ADC_FAULT = 1 << 3  # an ADC is not answering; its zones hold their last value
    LOAD_STALE = 1 << 4  # zone loads are older than two scan periods
    BEYOND_FENCE = 1 << 5  # the on-device fence is buzzing the lumbar warning
    UNCALIBRATED = 1 << 6  # the gyro offset is not known yet (rest or gravity's turn): the
    # position may be ~25 mm off, and is put right since the zero once it is known
    BACKFILL = 1 << 7  # resent from the journal, not live
    ZEROED = 1 << 8  # the position was zeroed at this frame
    IMU_CLONE = 1 << 9  # WHO_AM_I is not 0x68 (a clone part): works, but unverified
    BUTTON = 1 << 10  # the button was short-pressed with a body on the roller: a mark
    IMU_CLIPPED = 1 << 11  # the gyro read full scale: the turn beyond it came from gravity
    IMU_INCONSISTENT = 1 << 12  # gyro and gravity disagree (profile's axis or range): not tracked
    BUS_FAULT = 1 << 13  # the I2C bus hung and was recovered around this frame: data lost


@dataclass(frozen=True, slots=True, init=False)
class Frame:
    """One output sample of the roller.

    seq: sequence number, increasing by one per frame from boot.
    t: sensor time of the frame, s since the IMU started sampling (sensor clock).
    position: roll position along the back, m, relative to the zero, positive toward
        the feet.
    velocity: rate of change of position, m/s.
    angle: unwrapped roll angle of the roller, rad.
    zone_loads: force on each pressure zone, N, in zone order along the roller.
    total_load: sum of the zone loads, N.
    flags: ``FrameFlag`` bits.
    boot: boot id of the firmware run that made the frame (its sensor clock starts
        at that boot, so times of different boots do not compare).
    """

    seq: int
    t: float
    position: float
    velocity: float
    angle: float
    zone_loads: tuple[float, ...]
    total_load: float
    flags: FrameFlag = FrameFlag.NONE
    boot: int = 0

    def __init__(self, seq: int, t: float, position: float, velocity: float, angle: float,
                 zone_loads: tuple[float, ...], total_load: float,
                 flags: FrameFlag = FrameFlag.NONE, boot: int = 0) -> None:
        # (what a frozen dataclass's own __init__ does, through the slots' setters: its
        # object.__setattr__ per field costs ~2x as much, at 100 frames a second)
        _set_seq(self, seq)
        _set_t(self, t)
        _set_position(self, position)
        _set_velocity(self, velocity)
        _set_angle(self, angle)
        _set_zone_loads(self, zone_loads)
        _set_total_load(self, total_load)
        _set_flags(self, flags)
        _set_boot(self, boot)

    def with_flags(self, flags: FrameFlag) -> Frame:
        """A copy with ``flags`` set in addition to its own."""
        # (the constructor itself: ``dataclasses.replace`` costs ~5x as much per frame)
        return Frame(self.seq, self.t, self.position, self.velocity, self.angle,
                     self.zone_loads, self.total_load, self.flags | flags, self.boot)


(_set_seq, _set_t, _set_position, _set_velocity, _set_angle, _set_zone_loads, _set_total_load,
 _set_flags, _set_boot) = (getattr(Frame, field.name).__set__ for field in fields(Frame))


# Fixed point on the wire (docs/protocol.md, "Fixed point").
POSITION_UNIT_M = 1e-4
"""Position LSB: 0.1 mm (int16, saturating: +-3.2767 m)."""
VELOCITY_UNIT_M_S = 1e-4
"""Velocity LSB: 0.1 mm/s (int16, saturating: +-3.2767 m/s)."""
LOAD_UNIT_N = 1.0
"""Zone load LSB: 1 N (u8, saturating: 0..255 N)."""
ANGLE_UNIT_RAD = 2.0 * math.pi / 65536
"""Angle LSB: 2 pi / 65536 rad (int16, wrapped to [-pi, pi))."""
TIME_UNIT_S = 1e-3
"""Time LSB: 1 ms of sensor time (u32)."""


def _saturate(value: float, scale: float, lo: int, hi: int) -> int:
    """``value * scale`` rounded and clamped to [lo, hi]; NaN gives 0."""
    if math.isnan(value):
        return 0
    scaled = value * scale
    if scaled <= lo:
        return lo
    if scaled >= hi:
        return hi
    return round(scaled)


def _position_code(position_m: float) -> int:
    return _saturate(position_m, 1e4, -0x8000, 0x7FFF)


def _velocity_code(velocity_m_s: float) -> int:
    return _saturate(velocity_m_s, 1e4, -0x8000, 0x7FFF)


def _load_code(load_n: float) -> int:
    return _saturate(load_n, 1.0, 0, _U8)


def _angle_code(angle_rad: float) -> int:
    """Angle wrapped to int16 (2 pi / 65536 rad); non-finite gives 0."""
    if not math.isfinite(angle_rad):
        return 0
    code = round(math.fmod(angle_rad, 2.0 * math.pi) * (32768.0 / math.pi))
    return (code + 0x8000) % 0x10000 - 0x8000


def _time_code(t_s: float) -> int:
    """Sensor time in ms (u32); ValueError outside 0 .. 2**32 - 1 ms."""
    if not math.isfinite(t_s) or t_s < 0:
        raise ValueError(f"frame time {t_s} s is not a finite time >= 0")
    code = round(t_s * 1000.0)
    if code > _U32:
        raise ValueError(f"frame time {t_s} s beyond the u32 ms range")
    return code


def _check_frame(frame: Frame, zone_count: int) -> None:
    if len(frame.zone_loads) != zone_count:
        raise ValueError(f"frame {frame.seq}: {len(frame.zone_loads)} zones, not {zone_count}")
    if not 0 <= frame.seq <= _U32:
        raise ValueError(f"frame seq {frame.seq} outside u32")
    if not 0 <= int(frame.flags) <= _U16:
        raise ValueError(f"frame {frame.seq}: flags {int(frame.flags):#x} beyond 16 bits")
    if not 0 <= frame.boot <= _U32:
        raise ValueError(f"frame {frame.seq}: boot id {frame.boot} outside u32")


def _backfill_flags(flags: int, backfill: bool) -> FrameFlag:
    flags &= ~int(FrameFlag.BACKFILL)
    return FrameFlag(flags | (FrameFlag.BACKFILL if backfill else 0))


def quantise(frame: Frame, zone_count: int, *, backfill: bool | None = None) -> Frame:
    """``frame`` as it comes out of the wire: each field rounded to its fixed point.

    Position and velocity to 0.1 mm (/s) saturating at int16, zone loads to whole N in
    0..255, total load the sum of the quantised zones, angle wrapped to [-pi, pi) in
    steps of 2 pi / 65536 rad, time to whole ms. NaN values become 0. ``backfill``
    (when not None) sets or clears ``FrameFlag.BACKFILL`` as the stream kind does.
    ValueError if the frame cannot be sent at all (wrong zone count, seq or time
    outside u32, flags beyond 16 bits).
    """
    _check_frame(frame, zone_count)
    loads = [_load_code(x) for x in frame.zone_loads]
    flags = FrameFlag(int(frame.flags))
    if backfill is not None:
        flags = _backfill_flags(int(flags), backfill)
    return Frame(seq=frame.seq, t=_time_code(frame.t) / 1000.0,
                 position=_position_code(frame.position) / 1e4,
                 velocity=_velocity_code(frame.velocity) / 1e4,
                 angle=_angle_code(frame.angle) * ANGLE_UNIT_RAD,
                 zone_loads=tuple(float(x) for x in loads), total_load=float(sum(loads)),
                 flags=flags, boot=frame.boot)


# --------------------------------------------------------------------------- frame stream

TAG_SYNC = 0x01
TAG_FLAGS = 0x02
TAG_ANGLE = 0x03
TAG_FRAMES = 0x80
"""FRAMES record tag: ``0x80 | n``, n = 1..127 frames."""
MAX_FRAMES_PER_RECORD = 0x7F

KIND_LIVE = 0
KIND_BACKFILL = 1

_SYNC = struct.Struct("<BIIBHhBBI")  # tag, seq, t_ms, period, flags, angle, zones, kind, boot
_FLAGS = struct.Struct("<BH")
_ANGLE = struct.Struct("<Bh")
_MOTION = struct.Struct("<hh")  # position, velocity; then zones x u8
SYNC_SIZE = _SYNC.size  # 20


def frame_size(zone_count: int) -> int:
    """Bytes of one frame inside a FRAMES record: 4 + zone_count."""
    return _MOTION.size + zone_count


class StreamEncoder:
    """Frames -> the record stream (stateful; one per connection).

    zone_count: zones per frame (u8).
    frame_period_s: nominal frame period, s; a whole number of ms in 1..255.
    angle_every: an ANGLE record goes out when the angle has changed and at least this
        many frames passed since the last one (1 = every change: exact angles).
    sync_interval_s: a SYNC record goes out at least this often (s of frames).

    Frames whose seq and time follow the previous one (seq + 1, t + period) are packed
    into FRAMES records; anything else (first frame, gap, kind change) starts with a
    SYNC record. The BACKFILL bit of the frames is ignored: ``backfill`` decides it.
    """

    def __init__(self, zone_count: int, frame_period_s: float, *, angle_every: int = 10,
                 sync_interval_s: float = 1.0) -> None:
        if not 0 <= zone_count <= _U8:
            raise ValueError(f"zone_count {zone_count} outside 0..255")
        period_ms = round(frame_period_s * 1000.0)
        if not 1 <= period_ms <= _U8 or abs(period_ms / 1000.0 - frame_period_s) > 1e-9:
            raise ValueError(f"frame period {frame_period_s} s is not a whole 1..255 ms")
        if angle_every < 1:
            raise ValueError("angle_every must be >= 1")
        self.zone_count = zone_count
        self.period_ms = period_ms
        self.angle_every = angle_every
        self.sync_every = max(1, math.floor(sync_interval_s * 1000.0 / period_ms + 1e-9))
        self.reset()

    def reset(self) -> None:
        """Forget the stream state: the next frame starts with a SYNC record."""
        self._next_seq: int | None = None
        self._next_t_ms = 0
        self._kind = KIND_LIVE
        self._boot = 0
        self._flags = 0
        self._angle = 0
        self._since_sync = 0
        self._since_angle = 0

    def encode(self, frames: Sequence[Frame], backfill: bool = False) -> bytes:
        """The records for ``frames`` (whole records; empty for no frames).

        ValueError (nothing encoded, state unchanged) if a frame cannot be sent.
        """
        fields = [self._fields(frame) for frame in frames]
        kind = KIND_BACKFILL if backfill else KIND_LIVE
        out = bytearray()
        run: list[bytes] = []
        for i, (seq, t_ms, flags, angle, body, boot) in enumerate(fields):
            # A SYNC falling due inside this batch goes at its start: batches then begin
            # with it, and the Fragmenter makes such a batch start a resync fragment.
            ahead = min(len(fields), self.sync_every) if i == 0 else 1
            if (self._next_seq is None or seq != self._next_seq or t_ms != self._next_t_ms
                    or kind != self._kind or boot != self._boot
                    or self._since_sync + ahead > self.sync_every):
                self._flush(out, run)
                out += _SYNC.pack(TAG_SYNC, seq, t_ms, self.period_ms, flags, angle,
                                  self.zone_count, kind, boot)
                self._kind, self._flags, self._angle, self._boot = kind, flags, angle, boot
                self._since_sync = self._since_angle = 0
            else:
                if flags != self._flags:
                    self._flush(out, run)
                    out += _FLAGS.pack(TAG_FLAGS, flags)
                    self._flags = flags
                if angle != self._angle and self._since_angle >= self.angle_every:
                    self._flush(out, run)
                    out += _ANGLE.pack(TAG_ANGLE, angle)
                    self._angle = angle
                    self._since_angle = 0
            run.append(body)
            if len(run) == MAX_FRAMES_PER_RECORD:
                self._flush(out, run)
            self._next_seq = seq + 1
            self._next_t_ms = t_ms + self.period_ms
            self._since_sync += 1
            self._since_angle += 1
        self._flush(out, run)
        return bytes(out)

    def _fields(self, frame: Frame) -> tuple[int, int, int, int, bytes, int]:
        _check_frame(frame, self.zone_count)
        flags = int(frame.flags) & ~int(FrameFlag.BACKFILL)
        body = _MOTION.pack(_position_code(frame.position), _velocity_code(frame.velocity))
        body += bytes(_load_code(x) for x in frame.zone_loads)
        return frame.seq, _time_code(frame.t), flags, _angle_code(frame.angle), body, frame.boot

    @staticmethod
    def _flush(out: bytearray, run: list[bytes]) -> None:
        if run:
            out.append(TAG_FRAMES | len(run))
            for body in run:
                out += body
            run.clear()


class StreamDecoder:
    """The record stream -> frames (stateful; one per connection).

    zone_count: when given, a SYNC announcing another zone count is an error.

    Needs a SYNC record first, and again after ``reset()`` or any ``ProtocolError``
    (which resets it). Records may arrive split across ``feed`` calls.
    """

    def __init__(self, zone_count: int | None = None) -> None:
        self.zone_count = zone_count
        self.reset()

    def reset(self) -> None:
        """Drop buffered bytes and the stream state: wait for the next SYNC."""
        self._buf = bytearray()
        self.synced = False
        self._frames_left = 0
        self._next_seq = 0
        self._next_t_ms = 0
        self._period_ms = 0
        self._flags = 0
        self._angle = 0
        self._zones = 0
        self._boot = 0
        self._backfill = False

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data`` (stream bytes, any split), in order."""
        self._buf += data
        try:
            return self._parse()
        except ProtocolError:
            self.reset()
            raise

    def _parse(self) -> list[Frame]:
        buf = self._buf
        pos = 0
        out: list[Frame] = []
        while True:
            if self._frames_left:
                size = frame_size(self._zones)
                if len(buf) - pos < size:
                    break
                out.append(self._frame(buf, pos))
                pos += size
                self._frames_left -= 1
                continue
            if pos >= len(buf):
                break
            tag = buf[pos]
            if tag == TAG_SYNC:
                if len(buf) - pos < SYNC_SIZE:
                    break
                self._sync(*_SYNC.unpack_from(buf, pos)[1:])
                pos += SYNC_SIZE
            elif not self.synced:
                raise _malformed(f"record tag {tag:#04x} before a SYNC record")
            elif tag in (TAG_FLAGS, TAG_ANGLE):
                if len(buf) - pos < _FLAGS.size:
                    break
                if tag == TAG_FLAGS:
                    self._flags = _FLAGS.unpack_from(buf, pos)[1]
                else:
                    self._angle = _ANGLE.unpack_from(buf, pos)[1]
                pos += _FLAGS.size
            elif tag & TAG_FRAMES:
                self._frames_left = tag & MAX_FRAMES_PER_RECORD
                if not self._frames_left:
                    raise _malformed("FRAMES record of 0 frames")
                pos += 1
            else:
                raise _malformed(f"unknown record tag {tag:#04x}")
        del buf[:pos]
        return out

    def _sync(self, seq: int, t_ms: int, period_ms: int, flags: int, angle: int, zones: int,
              kind: int, boot: int) -> None:
        if period_ms == 0:
            raise _malformed("SYNC with a frame period of 0 ms")
        if kind not in (KIND_LIVE, KIND_BACKFILL):
            raise _malformed(f"SYNC with unknown stream kind {kind}")
        if self.zone_count is not None and zones != self.zone_count:
            raise _malformed(f"SYNC announces {zones} zones, not {self.zone_count}")
        self.synced = True
        self._next_seq, self._next_t_ms, self._period_ms = seq, t_ms, period_ms
        self._flags, self._angle, self._zones = flags, angle, zones
        self._backfill = kind == KIND_BACKFILL
        self._boot = boot

    def _frame(self, buf: bytearray, pos: int) -> Frame:
        if self._next_seq > _U32 or self._next_t_ms > _U32:
            raise _malformed("frame seq or time beyond u32")
        position, velocity = _MOTION.unpack_from(buf, pos)
        loads = buf[pos + _MOTION.size:pos + _MOTION.size + self._zones]
        frame = Frame(seq=self._next_seq, t=self._next_t_ms / 1000.0,
                      position=position / 1e4, velocity=velocity / 1e4,
                      angle=self._angle * ANGLE_UNIT_RAD,
                      zone_loads=tuple(float(x) for x in loads), total_load=float(sum(loads)),
                      flags=_backfill_flags(self._flags, self._backfill), boot=self._boot)
        self._next_seq += 1
        self._next_t_ms += self._period_ms
        return frame


# --------------------------------------------------------------------------- fragments

FRAGMENT_RESYNC = 0x80
"""Fragment header bit: this fragment's data begins with a SYNC record."""
FRAGMENT_COUNTER_MASK = 0x7F
"""Fragment header bits 0..6: fragment counter, mod 128."""


def _check_mtu(mtu: int) -> None:
    if not MIN_MTU <= mtu <= MAX_MTU:
        raise ValueError(f"ATT MTU {mtu} outside {MIN_MTU}..{MAX_MTU}")


class Fragmenter:
    """The record stream -> STREAM notification payloads of at most ``mtu - 3`` bytes.

    Each payload is a 1-byte header (bit 7 ``FRAGMENT_RESYNC``, bits 0..6 a counter
    mod 128) and the next stream bytes; records may span payloads. ``push`` takes whole
    records (``StreamEncoder.encode`` output); a push that begins with a SYNC record
    begins a new payload marked ``FRAGMENT_RESYNC``, so a host that lost a fragment can
    find its way back in.
    """

    def __init__(self, mtu: int) -> None:
        _check_mtu(mtu)
        self.mtu = mtu
        self.data_size = mtu - 4  # ATT notification header 3 bytes, fragment header 1
        self._counter = 0
        self._segments: deque[tuple[bytearray, bool]] = deque()

    @property
    def pending(self) -> int:
        """Stream bytes pushed and not yet popped."""
        return sum(len(data) for data, _ in self._segments)

    def push(self, stream_bytes: bytes) -> None:
        """Queue whole records."""
        if not stream_bytes:
            return
        if stream_bytes[0] == TAG_SYNC or not self._segments:
            self._segments.append((bytearray(stream_bytes), stream_bytes[0] == TAG_SYNC))
        else:
            self._segments[-1][0].extend(stream_bytes)

    def pop_ready(self, flush: bool) -> list[bytes]:
        """Payloads ready to notify: every full one, and with ``flush`` the rest too."""
        out: list[bytes] = []
        while self._segments:
            data, resync = self._segments[0]
            while len(data) >= self.data_size:
                out.append(self._payload(data[:self.data_size], resync))
                del data[:self.data_size]
                resync = False
            self._segments[0] = (data, resync)
            if data and len(self._segments) == 1 and not flush:
                break
            if data:  # flushed, or cut short before the next resync segment
                out.append(self._payload(data, resync))
            self._segments.popleft()
        return out

    def _payload(self, data: bytearray, resync: bool) -> bytes:
        header = self._counter | (FRAGMENT_RESYNC if resync else 0)
        self._counter = (self._counter + 1) & FRAGMENT_COUNTER_MASK
        return bytes((header,)) + bytes(data)


class Defragmenter:
    """STREAM notification payloads -> the record stream (one per connection).

    Starts (and restarts after a gap or ``reset()``) by dropping payloads until one
    marked ``FRAGMENT_RESYNC``, so the stream bytes it returns always begin with a SYNC.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Wait for the next resync fragment."""
        self._expected: int | None = None

    def feed(self, notification: bytes) -> bytes:
        """The stream bytes of one notification (b"" while waiting for a resync).

        Raises ``FragmentGap`` when a fragment is missing (the current one is dropped)
        and ``ProtocolError`` for a malformed payload.
        """
        if not notification:
            raise _malformed("empty STREAM notification")
        header = notification[0]
        counter = header & FRAGMENT_COUNTER_MASK
        resync = bool(header & FRAGMENT_RESYNC)
        data = bytes(notification[1:])
        if resync and (not data or data[0] != TAG_SYNC):
            self.reset()
            raise _malformed("resync fragment that does not begin with a SYNC record")
        if self._expected is None:
            if not resync:
                return b""
        elif counter != self._expected:
            expected = self._expected
            self.reset()
            raise FragmentGap(expected, counter)
        self._expected = (counter + 1) & FRAGMENT_COUNTER_MASK
        return data


def _sample_frames(count: int, zone_count: int, period_s: float) -> list[Frame]:
    """Frames of someone rolling the upper back: 5 cm strokes at 30 strokes/min."""
    frames = []
    for i in range(count):
        t = i * period_s
        phase = 2 * math.pi * 0.5 * t
        position = 0.12 + 0.05 * math.sin(phase)
        velocity = 0.05 * 2 * math.pi * 0.5 * math.cos(phase)
        loads = tuple(40.0 + 25.0 * math.sin(phase + k) for k in range(zone_count))
        frames.append(Frame(i, t, position, velocity, position / 0.073, loads, sum(loads),
                            FrameFlag.IN_CONTACT))
    return frames


def wire_bytes_per_frame(mtu: int, frames_per_flush: int, zone_count: int = 8, *,
                         frame_period_s: float = 0.01, seconds: float = 10.0,
                         att_header: bool = False) -> float:
    """Measured STREAM notification bytes per frame, live rolling, default encoder.

    The firmware's loop is run on synthetic frames: encode ``frames_per_flush`` frames,
    push, pop with flush. Counts notification values (fragment header included);
    ``att_header`` adds the 3-byte ATT notification header of each (opcode, handle).
    """
    count = max(frames_per_flush, round(seconds / frame_period_s))
    frames = _sample_frames(count, zone_count, frame_period_s)
    encoder = StreamEncoder(zone_count, frame_period_s)
    fragmenter = Fragmenter(mtu)
    total = 0
    for start in range(0, count, frames_per_flush):
        fragmenter.push(encoder.encode(frames[start:start + frames_per_flush]))
        for payload in fragmenter.pop_ready(flush=True):
            total += len(payload) + (3 if att_header else 0)
    return total / count


# --------------------------------------------------------------------------- control point

RESPONSE_CODE = 0x80
"""First byte of every control-point indication."""


class Opcode(IntEnum):
    """Control-point request opcodes."""

    START_SESSION = 0x01
    STOP_SESSION = 0x02
    ZERO = 0x03
    SET_FENCE = 0x04
    BUZZ = 0x05
    ACK = 0x06
    RESUME = 0x07
    SET_TIME = 0x08
    TARE = 0x09
    STATUS = 0x0A


class BuzzPattern(IntEnum):
    """Haptic patterns; ``name.lower()`` is the pattern's name in firmware.drivers.haptic."""

    STOP = 0
    LUMBAR_WARNING = 1
    APPROACH = 2
    PAIRED = 3
    ACK = 4
    FAULT = 5
    CALIBRATE_UP = 6
    CALIBRATE_DOWN = 7
    LANDMARK = 8
    LANDMARK_REFUSED = 9


FENCE_LIMIT_M = 2.0
"""SetFence.position_m must lie within +-this, m."""
FENCE_BAND_LIMIT_M = 0.5
"""SetFence.hysteresis_m and approach_m must lie within 0..this, m."""


def _check_uint(value: int, top: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise _out_of_range(f"{name} {value!r} outside 0..{top}")


class _Request:
    """Base of the request dataclasses: ``opcode`` and the payload ``_wire`` layout."""

    __slots__ = ()
    opcode: ClassVar[Opcode]
    _wire: ClassVar[struct.Struct] = struct.Struct("<")

    def _values(self) -> tuple[int, ...]:
        return ()

    @classmethod
    def _from_values(cls, *values: int) -> _Request:
        return cls(*values)


@dataclass(frozen=True, slots=True)
class StartSession(_Request):
    """Start recording a session. session_id: u32 chosen by the host, not 0."""

    opcode: ClassVar[Opcode] = Opcode.START_SESSION
    _wire: ClassVar[struct.Struct] = struct.Struct("<I")
    session_id: int

    def __post_init__(self) -> None:
        _check_uint(self.session_id, _U32, "session_id")
        if self.session_id == 0:
            raise _out_of_range("session_id 0 means no session")

    def _values(self) -> tuple[int, ...]:
        return (self.session_id,)


@dataclass(frozen=True, slots=True)
class StopSession(_Request):
    """End the session."""

    opcode: ClassVar[Opcode] = Opcode.STOP_SESSION


@dataclass(frozen=True, slots=True)
class Zero(_Request):
    """Make the current roll position the zero (frames carry ``FrameFlag.ZEROED``)."""

    opcode: ClassVar[Opcode] = Opcode.ZERO


@dataclass(frozen=True, slots=True)
class SetFence(_Request):
    """Move the on-device lumbar fence.

    position_m: fence, m from the zero toward the feet, within +-2 m.
    hysteresis_m: back above the fence by this much to stop the warning, m, 0..0.5.
    approach_m: approach cue within this above the fence, m, 0..0.5.
    On the wire: three int32 in um.
    """

    opcode: ClassVar[Opcode] = Opcode.SET_FENCE
    _wire: ClassVar[struct.Struct] = struct.Struct("<iii")
    position_m: float
    hysteresis_m: float
    approach_m: float

    def __post_init__(self) -> None:
        if not -FENCE_LIMIT_M <= self.position_m <= FENCE_LIMIT_M:
            raise _out_of_range(f"fence {self.position_m} m beyond +-{FENCE_LIMIT_M} m")
        for name in ("hysteresis_m", "approach_m"):
            value = getattr(self, name)
            if not 0.0 <= value <= FENCE_BAND_LIMIT_M:
                raise _out_of_range(f"{name} {value} outside 0..{FENCE_BAND_LIMIT_M} m")

    def _values(self) -> tuple[int, ...]:
        return (round(self.position_m * 1e6), round(self.hysteresis_m * 1e6),
                round(self.approach_m * 1e6))

    @classmethod
    def _from_values(cls, *values: int) -> SetFence:
        return cls(*(v / 1e6 for v in values))


@dataclass(frozen=True, slots=True)
class Buzz(_Request):
    """Play a haptic pattern (``BuzzPattern.STOP`` stops the one playing)."""

    opcode: ClassVar[Opcode] = Opcode.BUZZ
    _wire: ClassVar[struct.Struct] = struct.Struct("<B")
    pattern: BuzzPattern

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "pattern", BuzzPattern(self.pattern))
        except ValueError:
            raise _out_of_range(f"unknown buzz pattern {self.pattern!r}") from None

    def _values(self) -> tuple[int, ...]:
        return (int(self.pattern),)


@dataclass(frozen=True, slots=True)
class Ack(_Request):
    """The host has stored every frame up to and including ``seq`` (u32)."""

    opcode: ClassVar[Opcode] = Opcode.ACK
    _wire: ClassVar[struct.Struct] = struct.Struct("<I")
    seq: int

    def __post_init__(self) -> None:
        _check_uint(self.seq, _U32, "seq")

    def _values(self) -> tuple[int, ...]:
        return (self.seq,)


@dataclass(frozen=True, slots=True)
class Resume(_Request):
    """Resend journaled frames from ``seq`` (u32) on, as backfill."""

    opcode: ClassVar[Opcode] = Opcode.RESUME
    _wire: ClassVar[struct.Struct] = struct.Struct("<I")
    seq: int

    def __post_init__(self) -> None:
        _check_uint(self.seq, _U32, "seq")

    def _values(self) -> tuple[int, ...]:
        return (self.seq,)


@dataclass(frozen=True, slots=True)
class SetTime(_Request):
    """Tell the roller the host's clock: unix_time_us, UTC us since 1970 (int64 >= 0).

    Answered with a ``TimeReply`` payload.
    """

    opcode: ClassVar[Opcode] = Opcode.SET_TIME
    _wire: ClassVar[struct.Struct] = struct.Struct("<q")
    unix_time_us: int

    def __post_init__(self) -> None:
        _check_uint(self.unix_time_us, _I64_MAX, "unix_time_us")

    @classmethod
    def from_seconds(cls, unix_time_s: float) -> SetTime:
        """From a unix time in s (e.g. ``time.time()``)."""
        return cls(round(unix_time_s * 1e6))

    def _values(self) -> tuple[int, ...]:
        return (self.unix_time_us,)


@dataclass(frozen=True, slots=True)
class Tare(_Request):
    """Nothing lies on the roller: take the zone loads' zero."""

    opcode: ClassVar[Opcode] = Opcode.TARE


@dataclass(frozen=True, slots=True)
class GetStatus(_Request):
    """Ask for the ``Status`` (answered with it as the response payload)."""

    opcode: ClassVar[Opcode] = Opcode.STATUS


Request = (StartSession | StopSession | Zero | SetFence | Buzz | Ack | Resume | SetTime
           | Tare | GetStatus)
"""Any control-point request."""

REQUEST_TYPES: dict[Opcode, type[_Request]] = {
    cls.opcode: cls for cls in (StartSession, StopSession, Zero, SetFence, Buzz, Ack, Resume,
                                SetTime, Tare, GetStatus)}


def encode_request(request: Request) -> bytes:
    """The control-point write for ``request``: u8 opcode + payload."""
    return bytes((request.opcode,)) + request._wire.pack(*request._values())


def decode_request(data: bytes) -> Request:
    """Parse a control-point write.

    ProtocolError with UNKNOWN_OPCODE, MALFORMED (empty, wrong length) or OUT_OF_RANGE;
    its ``opcode`` is set when there was one, for ``ProtocolError.response()``.
    """
    if not data:
        raise _malformed("empty control-point write")
    opcode = data[0]
    cls = REQUEST_TYPES.get(opcode)  # type: ignore[call-overload]
    if cls is None:
        raise ProtocolError(ResultCode.UNKNOWN_OPCODE, f"unknown opcode {opcode:#04x}", opcode)
    if len(data) - 1 != cls._wire.size:
        raise ProtocolError(ResultCode.MALFORMED, f"{cls.__name__} takes {cls._wire.size} "
                            f"payload bytes, not {len(data) - 1}", opcode)
    try:
        return cls._from_values(*cls._wire.unpack_from(data, 1))  # type: ignore[return-value]
    except ProtocolError as error:
        error.opcode = opcode
        raise


@dataclass(frozen=True, slots=True)
class Response:
    """A control-point indication: 0x80, request opcode, status, payload.

    opcode: the request's opcode (u8, echoed even when unknown).
    status: ``ResultCode``.
    payload: SET_TIME -> ``TimeReply``, STATUS -> ``Status``; otherwise empty.
    """

    opcode: int
    status: ResultCode = ResultCode.SUCCESS
    payload: bytes = b""

    @property
    def ok(self) -> bool:
        """True for SUCCESS."""
        return self.status == ResultCode.SUCCESS

    def encode(self) -> bytes:
        """The indication's value."""
        if not 0 <= self.opcode <= _U8:
            raise ValueError(f"opcode {self.opcode} outside u8")
        return bytes((RESPONSE_CODE, self.opcode, int(self.status))) + bytes(self.payload)

    @classmethod
    def decode(cls, data: bytes) -> Response:
        """Parse an indication's value (ProtocolError if malformed)."""
        if len(data) < 3 or data[0] != RESPONSE_CODE:
            raise _malformed("not a control-point response")
        try:
            status = ResultCode(data[2])
        except ValueError:
            raise _malformed(f"unknown response status {data[2]}") from None
        return cls(data[1], status, bytes(data[3:]))


@dataclass(frozen=True, slots=True)
class TimeReply:
    """Payload of the SET_TIME response.

    sensor_t: roller sensor time when the request arrived, s (sent as u32 ms).
    boot_id: u32 that changes at every boot of the roller (sensor time restarts).
    """

    _wire: ClassVar[struct.Struct] = struct.Struct("<II")
    sensor_t: float
    boot_id: int

    def __post_init__(self) -> None:
        if not 0.0 <= self.sensor_t <= _U32 / 1000.0:
            raise _out_of_range(f"sensor_t {self.sensor_t} s outside the u32 ms range")
        _check_uint(self.boot_id, _U32, "boot_id")

    def encode(self) -> bytes:
        """The response payload."""
        return self._wire.pack(round(self.sensor_t * 1000.0), self.boot_id)

    @classmethod
    def decode(cls, data: bytes) -> TimeReply:
        """Parse the response payload (ProtocolError if malformed)."""
        if len(data) != cls._wire.size:
            raise _malformed(f"TimeReply is {cls._wire.size} bytes, not {len(data)}")
        t_ms, boot_id = cls._wire.unpack(data)
        return cls(t_ms / 1000.0, boot_id)


# --------------------------------------------------------------------------- status


class RollerState(IntEnum):
    """What the roller is doing."""

    IDLE = 0
    SESSION = 1
    PAIRING = 2
    FAULT = 3


class RollerFault(IntFlag):
    """Bits of ``Status.faults``."""

    NONE = 0
    IMU = 1 << 0
    ADC = 1 << 1
    JOURNAL_FULL = 1 << 2
    LOW_BATTERY = 1 << 3
    BATTERY_UNKNOWN = 1 << 4  # the fuel gauge does not answer (or none is fitted)


_VERSION_RE = re.compile(r"(\d{1,3})\.(\d{1,3})\.(\d{1,3})")


@dataclass(frozen=True, slots=True)
class Status:
    """The STATUS characteristic's value (also the STATUS response payload).

    state: ``RollerState``.
    battery_pct: battery charge, % (0..100; 0 with ``RollerFault.BATTERY_UNKNOWN``).
    faults: ``RollerFault`` bits (u16).
    firmware_version: "x.y.z", each part 0..255.
    session_id: the running or last session's id, 0 for none (u32).
    boot_id: changes at every boot (u32).
    last_seq: seq of the newest frame, ``NO_SEQ`` before the first one (u32).
    oldest_seq: seq of the oldest frame still in the journal (u32); the journal holds
        ``(last_seq - oldest_seq + 1) mod 2**32`` frames.
    On the wire (24 bytes) the protocol version comes first: see ``peek_protocol_version``.
    """

    _wire: ClassVar[struct.Struct] = struct.Struct("<BBBH3BIIII")
    state: RollerState
    battery_pct: int
    faults: RollerFault
    firmware_version: str
    session_id: int
    boot_id: int
    last_seq: int
    oldest_seq: int

    SIZE: ClassVar[int] = 24

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "state", RollerState(self.state))
        except ValueError:
            raise _out_of_range(f"unknown roller state {self.state!r}") from None
        _check_uint(self.battery_pct, 100, "battery_pct")
        _check_uint(int(self.faults), _U16, "faults")
        object.__setattr__(self, "faults", RollerFault(int(self.faults)))
        self._version_parts()
        for name in ("session_id", "boot_id", "last_seq", "oldest_seq"):
            _check_uint(getattr(self, name), _U32, name)

    def _version_parts(self) -> tuple[int, int, int]:
        match = _VERSION_RE.fullmatch(str(self.firmware_version))
        parts = tuple(int(x) for x in match.groups()) if match else ()
        if len(parts) != 3 or max(parts) > _U8:
            raise _out_of_range(f"firmware version {self.firmware_version!r} is not x.y.z "
                                "with parts 0..255")
        return parts  # type: ignore[return-value]

    @property
    def battery_text(self) -> str:
        """The battery as a person reads it: "64 %", "8 % (low: charge the roller)" or
        "unknown" (no fuel gauge answers)."""
        if self.faults & RollerFault.BATTERY_UNKNOWN:
            return "unknown"
        if self.faults & RollerFault.LOW_BATTERY:
            return f"{self.battery_pct} % (low: charge the roller)"
        return f"{self.battery_pct} %"

    def encode(self) -> bytes:
        """The characteristic value."""
        return self._wire.pack(PROTOCOL_VERSION, self.state, self.battery_pct, self.faults,
                               *self._version_parts(), self.session_id, self.boot_id,
                               self.last_seq, self.oldest_seq)

    @classmethod
    def decode(cls, data: bytes) -> Status:
        """Parse the characteristic value (ProtocolError if malformed or another version)."""
        _check_versioned(data, "Status", cls.SIZE)
        (_, state, battery, faults, major, minor, patch, session_id, boot_id, last_seq,
         oldest_seq) = cls._wire.unpack(data)
        if state not in RollerState._value2member_map_:
            raise _malformed(f"unknown roller state {state}")
        return cls(RollerState(state), battery, RollerFault(faults), f"{major}.{minor}.{patch}",
                   session_id, boot_id, last_seq, oldest_seq)


def peek_protocol_version(status_value: bytes) -> int:
    """The protocol version of a STATUS value: its first byte, in every version."""
    if not status_value:
        raise _malformed("empty Status")
    return status_value[0]


def _check_versioned(data: bytes, name: str, size: int) -> None:
    """A value that starts with the protocol version (STATUS, CALIBRATION): ours, and
    ``size`` bytes long; else ProtocolError."""
    if not data:
        raise _malformed(f"empty {name}")
    version = data[0]
    if version != PROTOCOL_VERSION:
        raise _malformed(f"roller speaks protocol version {version}, "
                         f"this host {PROTOCOL_VERSION}")
    if len(data) != size:
        raise _malformed(f"{name} is {size} bytes, not {len(data)}")


STATUS_MIN_MTU = Status.SIZE + 3 + 3
"""ATT MTU the STATUS response indication needs (notification: ``Status.SIZE + 3``)."""


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True, slots=True)
class RollerCalibration:
    """The CALIBRATION characteristic's value: what the roller has learned of its own
    parts (firmware/calibration.py), as it knows it at the read.

    imu_clock_error: the IMU's sample clock runs fast by this fraction against the Pi's
        monotonic clock (negative: slow); +-0.05 at most, sent in 1e-9 (i32).
    imu_clock_span_s: the run it was measured over, s (0: not measured, the datasheet's
        nominal clock; u32 ms on the wire).
    updated_utc: when the roller last stored its calibration, Unix time, s (0: never;
        u32 s on the wire).
    gyro_scale_error: the gyro's true turn per counted turn, less 1 (the odometry
        multiplies every rate by 1 + this); +-0.05 at most, sent in 1e-9 (i32).
    gyro_scale_learned: the scale was learned (else the nominal 1; u8 on the wire).
    On the wire (18 bytes) the protocol version comes first, as in ``Status``. A value
    of 13 bytes (a roller from before the gyro's scale was learned, same version) has
    no scale: it decodes with the nominal one, not learned. The value grows only at its
    end: bytes past the 18 this host knows are a later roller's fields, ignored.
    """

    _wire: ClassVar[struct.Struct] = struct.Struct("<BiIIiB")
    _wire_clock: ClassVar[struct.Struct] = struct.Struct("<BiII")
    imu_clock_error: float = 0.0
    imu_clock_span_s: float = 0.0
    updated_utc: float = 0.0
    gyro_scale_error: float = 0.0
    gyro_scale_learned: bool = False

    SIZE: ClassVar[int] = 18
    SIZE_CLOCK_ONLY: ClassVar[int] = 13
    """The value's size before the gyro's scale was added (still decoded)."""
    CLOCK_LIMIT: ClassVar[float] = 0.05
    """The largest clock error the value carries (the firmware's plausible range)."""
    SCALE_LIMIT: ClassVar[float] = 0.05
    """The largest gyro scale error the value carries (the firmware's plausible range)."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.imu_clock_error)
                and abs(self.imu_clock_error) <= self.CLOCK_LIMIT):
            raise _out_of_range(f"imu_clock_error {self.imu_clock_error} outside "
                                f"+-{self.CLOCK_LIMIT}")
        if not (math.isfinite(self.imu_clock_span_s)
                and 0.0 <= self.imu_clock_span_s * 1000.0 <= _U32):
            raise _out_of_range(f"imu_clock_span_s {self.imu_clock_span_s} outside the "
                                "u32 ms range")
        if not (math.isfinite(self.updated_utc) and 0.0 <= self.updated_utc <= _U32):
            raise _out_of_range(f"updated_utc {self.updated_utc} outside the u32 s range")
        if not (math.isfinite(self.gyro_scale_error)
                and abs(self.gyro_scale_error) <= self.SCALE_LIMIT):
            raise _out_of_range(f"gyro_scale_error {self.gyro_scale_error} outside "
                                f"+-{self.SCALE_LIMIT}")

    @property
    def learned(self) -> bool:
        """True once the roller has measured anything (else: the datasheets' values)."""
        return self.imu_clock_span_s > 0.0 or self.gyro_scale_learned

    def line(self) -> str:
        """One line for people: ``IMU clock +0.43 % (over 612 s), gyro scale -2.10 %``."""
        if not self.learned:
            return "not learned yet (the datasheets' nominal values)"
        parts = []
        if self.imu_clock_span_s > 0.0:
            parts.append(f"IMU clock {self.imu_clock_error * 100:+.2f} % "
                         f"(over {self.imu_clock_span_s:.0f} s)")
        if self.gyro_scale_learned:
            parts.append(f"gyro scale {self.gyro_scale_error * 100:+.2f} %")
        return ", ".join(parts)

    def encode(self) -> bytes:
        """The characteristic value."""
        return self._wire.pack(PROTOCOL_VERSION, round(self.imu_clock_error * 1e9),
                               round(self.imu_clock_span_s * 1000.0),
                               int(self.updated_utc), round(self.gyro_scale_error * 1e9),
                               1 if self.gyro_scale_learned else 0)

    @classmethod
    def decode(cls, data: bytes) -> RollerCalibration:
        """Parse the characteristic value: 18 bytes, the older 13, or more than 18 (a
        later roller's fields, appended: ignored; docs/protocol.md §9). ProtocolError if
        malformed or another version."""
        short = len(data) == cls.SIZE_CLOCK_ONLY
        known = short or len(data) >= cls.SIZE
        _check_versioned(data, "RollerCalibration", len(data) if known else cls.SIZE)
        if short:
            _, error_e9, span_ms, updated = cls._wire_clock.unpack(data)
            scale_e9, learned = 0, 0
        else:
            _, error_e9, span_ms, updated, scale_e9, learned = cls._wire.unpack_from(data)
        if abs(error_e9) > cls.CLOCK_LIMIT * 1e9:
            raise _malformed(f"IMU clock error {error_e9 / 1e7:+.2f} % is implausible")
        if abs(scale_e9) > cls.SCALE_LIMIT * 1e9:
            raise _malformed(f"gyro scale error {scale_e9 / 1e7:+.2f} % is implausible")
        if learned > 1:
            raise _malformed(f"gyro scale learned flag {learned} is neither 0 nor 1")
        return cls(error_e9 / 1e9, span_ms / 1000.0, float(updated), scale_e9 / 1e9,
                   bool(learned))
