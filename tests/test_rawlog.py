"""Raw logs: round trip, and truncated or corrupt logs are clear errors."""

import dataclasses
import io
import json
import struct
import zlib

import numpy as np
import pytest

from firmware.calibration import Calibration
from firmware.config import default_config
from firmware.rawlog import (
    MAGIC,
    RawLogError,
    RawLogWriter,
    open_log,
    read_header,
    read_records,
)
from firmware.samples import ImuBatch, ZoneScan


def make_log(path=None):
    config = default_config()
    buf = io.BytesIO()
    writer = RawLogWriter(buf, config, "test")
    rng = np.random.default_rng(1)
    items = []
    for k in range(5):
        batch = ImuBatch(4 * k + (3 if k == 3 else 0), 200.0,
                         rng.integers(-32768, 32767, (4, 6)).astype(np.int16), 3 if k == 3 else 0)
        scan = ZoneScan(0.02 * k, rng.integers(0, 32767, 8).astype(np.int16),
                        np.array([True] * 7 + [k != 2]))
        writer.write(batch, batch.t0)
        writer.write(scan, 0.02 * k + 0.001)
        items += [(batch, batch.t0), (scan, 0.02 * k + 0.001)]
    writer.close()
    data = buf.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data, items


def test_round_trip_keeps_every_register_value():
    data, items = make_log()
    fh = io.BytesIO(data)
    log = read_header(fh)
    assert log.config == default_config() and log.source == "test"
    out = list(read_records(fh, log.config))
    assert len(out) == len(items)
    for (a, ta), (b, tb) in zip(out, items, strict=True):
        assert type(a) is type(b) and ta == pytest.approx(tb)
        np.testing.assert_array_equal(a.raw, b.raw)
        if isinstance(a, ImuBatch):
            assert (a.first_index, a.gap) == (b.first_index, b.gap)
        else:
            np.testing.assert_array_equal(a.ok, b.ok)


@pytest.mark.parametrize("cut", [1, 7, 30])
def test_truncated_log_is_a_clear_error(cut):
    data, _ = make_log()
    fh = io.BytesIO(data[:-cut])
    log = read_header(fh)
    with pytest.raises(RawLogError, match=r"record 9 at byte \d+: .*cut short"):
        list(read_records(fh, log.config))


def test_salvage_keeps_records_before_the_damage():
    data, items = make_log()
    fh = io.BytesIO(data[:-5])
    log = read_header(fh)
    assert len(list(read_records(fh, log.config, salvage=True))) == len(items) - 1


def test_flipped_bit_is_caught_by_the_checksum():
    data, _ = make_log()
    damaged = bytearray(data)
    damaged[len(data) - 40] ^= 0x10  # inside the last records
    fh = io.BytesIO(bytes(damaged))
    log = read_header(fh)
    with pytest.raises(RawLogError, match="checksum|unknown record|implausible|cut short"):
        list(read_records(fh, log.config))


@pytest.mark.parametrize("data, message", [
    (b"", "bad magic"),
    (b"PK\x03\x04 not a log", "bad magic"),
])
def test_not_a_log(tmp_path, data, message):
    path = tmp_path / "x.srraw"
    path.write_bytes(data)
    with pytest.raises(RawLogError, match=message):
        open_log(path)


def test_corrupt_header(tmp_path):
    data, _ = make_log()
    damaged = bytearray(data)
    damaged[20] ^= 0xFF
    path = tmp_path / "x.srraw"
    path.write_bytes(bytes(damaged))
    with pytest.raises(RawLogError, match="header"):
        open_log(path)


def test_missing_file(tmp_path):
    with pytest.raises(RawLogError, match="No such file"):
        open_log(tmp_path / "none.srraw")



LEARNED = Calibration(imu_clock_ratio=1.0043, imu_clock_span_s=612.0, gyro_scale=0.9712,
                      gyro_scale_weight=1.1e5, updated_utc=1765000000.0)


def log_with_header(**fields):
    """A log of no records whose header holds ``fields`` besides the usual ones."""
    header = json.dumps({"format": "smartroller-raw", "version": 1, "source": "test",
                         "config": dataclasses.asdict(default_config()), **fields}).encode()
    return io.BytesIO(MAGIC + struct.pack("<I", len(header)) + header
                      + struct.pack("<I", zlib.crc32(header)))


def test_the_header_keeps_the_calibration_the_roller_started_from():
    buf = io.BytesIO()
    RawLogWriter(buf, default_config(), "test", LEARNED).close()
    buf.seek(0)
    assert read_header(buf).calibration == LEARNED


def test_the_header_keeps_the_rollers_boot_id_and_first_seq():
    buf = io.BytesIO()
    RawLogWriter(buf, default_config(), "test", boot_id=0xDEADBEEF, first_seq=4321).close()
    buf.seek(0)
    log = read_header(buf)
    assert (log.boot_id, log.first_seq) == (0xDEADBEEF, 4321)
    older = read_header(log_with_header())  # written before the header held them
    assert (older.boot_id, older.first_seq) == (0, 0)


@pytest.mark.parametrize("fields, message", [
    ({"boot_id": -1}, "boot_id must be a whole number"),
    ({"boot_id": 2**32}, "boot_id must be a whole number"),
    ({"first_seq": 1.5}, "first_seq must be a whole number"),
    ({"first_seq": True}, "first_seq must be a whole number"),
])
def test_a_bad_boot_id_or_first_seq_is_one_line(fields, message):
    with pytest.raises(RawLogError, match=message) as info:
        read_header(log_with_header(**fields))
    assert str(info.value).startswith("header at byte 12: ") and "\n" not in str(info.value)


def test_a_log_without_the_calibration_says_so():
    data, _ = make_log()  # written without it, as before the header held it
    assert b'"calibration"' not in data
    log = read_header(io.BytesIO(data))
    assert log.calibration is None


def test_keys_the_reader_does_not_know_are_ignored():
    # A newer writer's: version 1 readers ignore unknown keys (that is how the
    # calibration came into version 1).
    log = read_header(log_with_header(calibration={**dataclasses.asdict(LEARNED),
                                                   "accel_scale": 1.01}, future={"x": 1}))
    assert log.calibration == LEARNED
    partial = read_header(log_with_header(calibration={"gyro_scale": 0.98}))
    assert partial.calibration == Calibration(gyro_scale=0.98)  # the rest: nominal


@pytest.mark.parametrize("calibration, message", [
    ({"gyro_scale": 1.3}, "calibration.gyro_scale 1.3 is outside 0.95..1.05"),
    ({"imu_clock_ratio": 0.5}, "calibration.imu_clock_ratio 0.5 is outside"),
    ({"gyro_scale_weight": -1.0}, "calibration.gyro_scale_weight -1.0 is not a finite"),
    ({"imu_clock_span_s": float("inf")}, "calibration.imu_clock_span_s inf is not a finite"),
    ({"gyro_scale": "0.98"}, "calibration.gyro_scale '0.98' is not a number"),
    ({"gyro_scale": True}, "calibration.gyro_scale True is not a number"),
    ([0.98], r"calibration \[0.98\] is not an object"),
])
def test_a_bad_calibration_is_one_line_with_the_header_s_offset(calibration, message):
    with pytest.raises(RawLogError, match=message) as info:
        read_header(log_with_header(calibration=calibration))
    assert str(info.value).startswith("header at byte 12: ") and "\n" not in str(info.value)


@pytest.mark.parametrize("body", [b"\xff\xfe not UTF-8", b"[1, 2]", b'{"version": 1}',
                                  b'{"version": 1, "config": {}, "calibration": {"gyro_scale": '
                                  + b"9" * 400 + b"}}",
                                  b'{"version": 1, "x": ' + b"9" * 5000 + b"}"])
def test_a_header_that_is_not_valid_is_one_line(body):
    fh = io.BytesIO(MAGIC + struct.pack("<I", len(body)) + body
                    + struct.pack("<I", zlib.crc32(body)))
    with pytest.raises(RawLogError, match="^header at byte 12") as info:
        read_header(fh)
    assert "\n" not in str(info.value)


def test_a_header_with_no_hardware_profile_says_so():
    body = b'{"format": "smartroller-raw", "version": 1, "source": "test"}'
    fh = io.BytesIO(MAGIC + struct.pack("<I", len(body)) + body
                    + struct.pack("<I", zlib.crc32(body)))
    with pytest.raises(RawLogError, match="^header at byte 12: no hardware profile"):
        read_header(fh)
