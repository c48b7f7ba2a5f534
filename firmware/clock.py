"""Clocks the firmware loop waits on.

The firmware never times samples with its loop: sample times come from the sensor clock
(sample index / rate). The loop clock only decides when to look at the hardware again.
``MonotonicClock`` is the real one; ``firmware.sim.clock.SimClock`` advances virtual time.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A source of time in seconds and a way to wait for it."""

    def now(self) -> float:
        """Current time, s (monotonic, arbitrary origin)."""

    def sleep_until(self, t: float) -> None:
        """Block until ``now() >= t`` (t in s)."""


class MonotonicClock:
    """The real clock: ``time.monotonic`` and ``time.sleep``."""

    def now(self) -> float:
        """Current monotonic time, s."""
        return time.monotonic()

    def sleep_until(self, t: float) -> None:
        """Sleep until the monotonic time ``t`` (s); returns at once if it has passed."""
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
