"""Raw sensor logs: what the sensors said, so any roller's session can be re-processed.

Format (little-endian; documented in docs/rawlog.md):

    magic   8 bytes  b"SRRAW\\x00\\x01\\n"
    header  u32 length, that many bytes of UTF-8 JSON, u32 CRC-32 of the JSON
    records each: u8 kind, u32 payload length, payload, u32 CRC-32 of kind+length+payload

The header holds the format version, the hardware profile (so the sensor scales,
rates and calibration travel with the data), where the log came from and, under
``calibration``, what the roller had learned of its parts when the log began (the
fields of ``firmware.calibration.Calibration``: the pipeline starts its gyro scale from
it, so a replay does too). ``calibration`` came later within version 1: a reader
ignores keys it does not know, and a log without it replays from the datasheets'
nominal values. Record kinds:

    b"I"  IMU batch: u64 first_index, u32 gap, u16 n, then n*6 int16 register values
          (accel x,y,z, gyro x,y,z) as drained from the FIFO
    b"Z"  zone scan: f64 sensor time (s), u8 zones, u16 ok-bitmask, zones*int16 codes

A log cut short (power lost mid-write) or damaged is reported with the byte offset of
the first bad record (a bad header with the header's offset);
``read_records(..., salvage=True)`` yields what came before it.
"""

from __future__ import annotations

import dataclasses
import json
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from firmware.calibration import Calibration
from firmware.config import Config
from firmware.samples import ImuBatch, ZoneScan
from firmware.schema import SchemaError, build

MAGIC = b"SRRAW\x00\x01\n"
VERSION = 1
_HEAD = struct.Struct("<BI")
_CRC = struct.Struct("<I")
_IMU = struct.Struct("<QIH")
_ZONE = struct.Struct("<dBH")
HEADER_OFFSET = len(MAGIC) + 4
"""Byte offset of the header's JSON."""


class RawLogError(ValueError):
    """The file is not a raw log, or it is truncated or corrupt. ``str()`` is one line."""


class RawLogWriter:
    """Appends records to an open binary file; call ``close()`` to flush.

    calibration: what the roller had learned of its parts when its pipeline started
        (``Firmware.start_calibration``); None: not known, the key is left out.
    boot_id / first_seq: the boot id the roller stamps on its frames and its first
        frame's sequence number (``Firmware.boot_id``, the pipeline's first seq), so a
        replay numbers its frames as the roller streamed them; None: left out.
    """

    def __init__(self, fh: BinaryIO, config: Config, source: str,
                 calibration: Calibration | None = None, boot_id: int | None = None,
                 first_seq: int | None = None) -> None:
        self.fh = fh
        fields: dict = {"format": "smartroller-raw", "version": VERSION, "source": source,
                        "config": dataclasses.asdict(config)}
        if calibration is not None:
            fields["calibration"] = dataclasses.asdict(calibration)
        for key, value in (("boot_id", boot_id), ("first_seq", first_seq)):
            if value is not None:
                fields[key] = _u32(value, key, "RawLogWriter")
        header = json.dumps(fields, allow_nan=False).encode()
        fh.write(MAGIC + _CRC.pack(len(header)) + header + _CRC.pack(zlib.crc32(header)))
        self.records = 0

    def _record(self, kind: bytes, payload: bytes) -> None:
        head = _HEAD.pack(kind[0], len(payload))
        self.fh.write(head + payload + _CRC.pack(zlib.crc32(payload, zlib.crc32(head))))
        self.records += 1

    def write(self, item: ImuBatch | ZoneScan, sensor_t: float) -> None:
        """Append an IMU batch or a zone scan (``sensor_t``: the scan's sensor time, s)."""
        if isinstance(item, ImuBatch):
            raw = np.ascontiguousarray(item.raw, dtype="<i2")
            self._record(b"I", _IMU.pack(item.first_index, item.gap, len(raw)) + raw.tobytes())
        else:
            ok = sum(1 << i for i, good in enumerate(item.ok) if good)
            raw = np.ascontiguousarray(item.raw, dtype="<i2")
            self._record(b"Z", _ZONE.pack(sensor_t, len(raw), ok) + raw.tobytes())

    def close(self) -> None:
        """Flush to the file."""
        self.fh.flush()


@dataclasses.dataclass
class RawLog:
    """A parsed header: the profile, where the log came from and the calibration the
    roller started from (None: a log written before it was recorded)."""

    config: Config
    source: str
    calibration: Calibration | None = None
    boot_id: int = 0
    """The boot id of the roller's frames (0: a log written before the header held it)."""
    first_seq: int = 0
    """The sequence number of the roller's first frame of the log."""


def read_header(fh: BinaryIO) -> RawLog:
    """Read and check the magic and header."""
    magic = fh.read(len(MAGIC))
    if magic != MAGIC:
        raise RawLogError("not a smartroller raw log (bad magic)")
    (length,) = _unpack(_CRC, fh.read(4), "header length")
    body = fh.read(length)
    (crc,) = _unpack(_CRC, fh.read(4), "header")
    where = f"header at byte {HEADER_OFFSET}"
    if len(body) != length or zlib.crc32(body) != crc:
        raise RawLogError(f"{where} is truncated or corrupt")
    try:
        header = json.loads(body)
        if header.get("version") != VERSION:
            raise RawLogError(f"{where}: unsupported raw log version {header.get('version')!r}")
        if "config" not in header:
            raise RawLogError(f"{where}: no hardware profile (the header's config)")
        config = build(Config, header["config"], "header.config")
        calibration = header.get("calibration")
        if calibration is not None:
            calibration = _calibration(calibration, where)
        boot_id = _u32(header.get("boot_id", 0), "boot_id", where)
        first_seq = _u32(header.get("first_seq", 0), "first_seq", where)
    except RawLogError:
        raise
    except SchemaError as exc:
        raise RawLogError(f"{where}: the profile is not valid: {exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # ValueError: bad
        # JSON, UTF-8 or a number of more digits than Python converts
        raise RawLogError(f"{where} is not valid: {exc}") from None
    return RawLog(config, str(header.get("source", "")), calibration, boot_id, first_seq)


def _u32(value: object, key: str, where: str) -> int:
    """``value`` as a u32 (``RawLogError`` naming ``key`` otherwise)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise RawLogError(f"{where}: {key} must be a whole number 0..2**32-1, not {value!r}")
    return value


def _calibration(data: object, where: str) -> Calibration:
    """The header's ``calibration`` (``Calibration.from_fields``); ``RawLogError`` naming
    the field if a value is not a plausible number."""
    try:
        return Calibration.from_fields(data)
    except ValueError as exc:
        raise RawLogError(f"{where}: calibration{'.' if isinstance(data, dict) else ' '}"
                          f"{exc}") from None


def _unpack(st: struct.Struct, data: bytes, what: str) -> tuple:
    if len(data) != st.size:
        raise RawLogError(f"truncated in the {what}")
    return st.unpack(data)


def read_records(fh: BinaryIO, config: Config, salvage: bool = False
                 ) -> Iterator[tuple[ImuBatch | ZoneScan, float]]:
    """Yield (item, sensor_t) per record; a bad record raises unless ``salvage``."""
    rate = config.imu.sample_rate_hz
    index = 0
    while True:
        offset = fh.tell()
        head = fh.read(_HEAD.size)
        if not head:
            return
        try:
            if len(head) != _HEAD.size:
                raise RawLogError("record header cut short")
            kind, length = _HEAD.unpack(head)
            if length > 1 << 20:
                raise RawLogError("record length is implausible")
            payload = fh.read(length)
            crc = fh.read(4)
            if len(payload) != length or len(crc) != 4:
                raise RawLogError("record cut short")
            if zlib.crc32(payload, zlib.crc32(head)) != _CRC.unpack(crc)[0]:
                raise RawLogError("checksum mismatch")
            yield _decode(kind, payload, rate)
        except RawLogError as exc:
            if salvage:
                return
            raise RawLogError(f"record {index} at byte {offset}: {exc} "
                              "(replay --salvage keeps what comes before)") from None
        index += 1


def _decode(kind: int, payload: bytes, rate: float) -> tuple[ImuBatch | ZoneScan, float]:
    if kind == ord("I"):
        first, gap, n = _unpack(_IMU, payload[:_IMU.size], "IMU record")
        if len(payload) != _IMU.size + 12 * n:
            raise RawLogError("IMU record length does not match its sample count")
        raw = np.frombuffer(payload, "<i2", offset=_IMU.size).reshape(n, 6).astype(np.int16)
        batch = ImuBatch(first, rate, raw, gap)
        return batch, batch.t0
    if kind == ord("Z"):
        t, zones, ok = _unpack(_ZONE, payload[:_ZONE.size], "zone record")
        if len(payload) != _ZONE.size + 2 * zones:
            raise RawLogError("zone record length does not match its zone count")
        raw = np.frombuffer(payload, "<i2", offset=_ZONE.size).astype(np.int16)
        mask = np.array([bool(ok >> i & 1) for i in range(zones)])
        return ZoneScan(t, raw, mask), t
    raise RawLogError(f"unknown record kind {kind!r}")


def open_log(path: str | Path) -> tuple[BinaryIO, RawLog]:
    """Open a raw log and read its header (the caller closes the file)."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - returned to the caller
    except OSError as exc:
        raise RawLogError(f"{path}: {exc.strerror}") from None
    try:
        return fh, read_header(fh)
    except RawLogError as exc:
        fh.close()
        raise RawLogError(f"{path}: {exc}") from None
