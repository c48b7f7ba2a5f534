"""The drivers' raw samples: the arrays built on demand equal what the bytes and codes say."""

from __future__ import annotations

import numpy as np

from firmware.samples import ImuBatch, ZoneScan


def fifo_bytes(rows: np.ndarray) -> bytes:
    return rows.astype(">i2").tobytes()


def test_a_batch_from_fifo_bytes_reads_as_the_big_endian_frames_say():
    rows = np.array([[1, -2, 16384, -32768, 32767, 0], [5, 6, -7, 8, -9, 10]], np.int16)
    batch = ImuBatch.from_fifo(40, 200.0, fifo_bytes(rows), gap=3)
    assert len(batch) == 2 and batch.first_index == 40 and batch.gap == 3
    assert [list(r) for r in batch.rows()] == rows.tolist()
    assert list(batch.values()) == rows.ravel().tolist()
    assert list(batch.values()[4::6]) == rows[:, 4].tolist()  # one field of every sample
    assert batch.raw.dtype == np.int16 and batch.raw.shape == (2, 6)
    assert (batch.raw == rows).all()
    assert np.allclose(batch.times(), [0.2, 0.205])
    plain = ImuBatch(40, 200.0, rows, 3)  # (as the raw log's reader makes them)
    assert len(plain) == 2 and plain.rows() == rows.tolist() and plain.raw is rows
    assert plain.values() == rows.ravel().tolist()


def test_a_scan_from_lists_keeps_its_own_copy():
    codes, answered = [10, -20, 30000, 0], [True, True, False, True]
    scan = ZoneScan.from_lists(0.5, codes, answered)
    codes[0], answered[0] = 99, False  # the scanner reuses its lists for the next scan
    assert scan.codes() == [10, -20, 30000, 0] and scan.answered() == [True, True, False, True]
    assert scan.raw.dtype == np.int16 and scan.raw.tolist() == [10, -20, 30000, 0]
    assert scan.ok.dtype == bool and scan.ok.tolist() == [True, True, False, True]
    scan.codes()[1] = 7  # a copy, not its own list
    assert scan.codes()[1] == -20
    plain = ZoneScan(0.5, np.array([1, 2], np.int16), np.array([True, False]))
    assert plain.codes() == [1, 2] and plain.answered() == [True, False]
