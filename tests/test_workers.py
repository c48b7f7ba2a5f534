"""Bench work over processes: every result, in the order of the work."""

import math

import pytest

from host.bench.workers import default_jobs, ordered_map


@pytest.mark.parametrize("jobs", [1, 2])
def test_results_come_in_the_order_of_the_work(jobs):
    work = [9, 1, 7, 3, 5, 0, 8]
    assert list(ordered_map(math.factorial, work, jobs)) == [math.factorial(n) for n in work]


def test_no_more_processes_than_work():
    assert default_jobs(1) == 1 and default_jobs(0) == 1
    assert 1 <= default_jobs(1000)
