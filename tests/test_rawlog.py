"""Raw logs: round trip, and truncated or corrupt logs are clear errors."""

import io

import numpy as np
import pytest

from firmware.config import default_config
from firmware.rawlog import RawLogError, RawLogWriter, open_log, read_header, read_records
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

