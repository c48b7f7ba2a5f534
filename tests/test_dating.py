"""Dating sessions of boots no host saw (``host.store.dating``): upper bounds that keep
the journal's order."""

import math

import pytest

from host.store.dating import SessionSpan, start_bounds

NAN = math.nan


def test_two_unmapped_boots_before_a_mapped_one_are_bounded_in_journal_order():
    arrived = 5000.0  # when their frames reached the host (their dates so far)
    spans = [
        SessionSpan(1, 0xA, 0, 999, 10.0, 70.0, arrived, arrived + 1, False),    # boot A
        SessionSpan(2, 0xA, 1500, 1999, 90.0, 100.0, arrived, arrived + 1, False),
        SessionSpan(3, 0xB, 2000, 2999, 40.0, 80.0, arrived, arrived + 1, False),  # boot B
        SessionSpan(4, 0xC, 3500, 4000, NAN, NAN, 4000.0, 4100.0, True),  # mapped boot C
    ]
    bounds = start_bounds(spans, {0xC: (4000, 3990.0)})  # C's first exchange: 3990
    assert bounds[3] == (3950.0, 3990.0)  # ended before C's first exchange; 40 s long
    # the same boot: 20 s of sensor time between the end of 1 and the start of 2
    assert bounds[2] == (3940.0, 3950.0)
    assert bounds[1] == pytest.approx((3860.0, 3920.0))
    starts = [bounds[i][0] for i in (1, 2, 3)] + [4000.0]
    assert starts == sorted(starts)  # the journal's order
    assert 4 not in bounds  # a known start stays


def test_nothing_later_leaves_the_bound_it_has():
    spans = [SessionSpan(1, 0xA, 0, 99, 0.0, 30.0, 800.0, 900.0, False)]
    assert start_bounds(spans, {}) == {1: (870.0, 900.0)}  # it ended before it arrived
