"""Benchmark work spread over processes, results in the order of the work."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_jobs(items: int) -> int:
    """One process per core, never more than there are ``items``."""
    return max(1, min(items, os.cpu_count() or 1))


def ordered_map(fn: Callable[[T], R], work: Sequence[T], jobs: int | None = None
                ) -> Iterator[R]:
    """``fn`` over ``work`` in ``jobs`` spawned processes (default: ``default_jobs``),
    yielding each result as soon as it and those before it are done; in this process
    when one job is asked for. ``fn`` must be importable (a module-level function)."""
    jobs = jobs or default_jobs(len(work))
    if jobs <= 1:
        yield from map(fn, work)
        return
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        yield from pool.imap(fn, work)
