"""Virtual time for the simulated roller.

``SimClock`` is the one clock every emulated part reads: the I2C bus advances it by the
time each transaction takes on the wire, the firmware loop sleeps on it, and the
devices derive their state (FIFO fill, conversion done) from it. With ``speed`` > 0
sleeping also waits real time (``speed`` = virtual seconds per real second), so a demo
runs at human pace; with ``speed`` = 0 it runs as fast as the CPU allows.
"""

from __future__ import annotations

import time


class SimClock:
    """A virtual monotonic clock, s."""

    def __init__(self, start: float = 0.0, speed: float = 0.0) -> None:
        self._t = float(start)
        self.speed = float(speed)
        self._wall0 = time.monotonic()
        self._virt0 = self._t

    def now(self) -> float:
        """Current virtual time, s."""
        return self._t

    def advance(self, dt: float) -> None:
        """Move virtual time forward by ``dt`` s (negative values are ignored)."""
        if dt > 0:
            self._t += dt

    def sleep_until(self, t: float) -> None:
        """Jump to virtual time ``t`` (s); with ``speed`` > 0 also wait the real time."""
        if t > self._t:
            self._t = t
        if self.speed > 0:
            wall_due = self._wall0 + (self._t - self._virt0) / self.speed
            delay = wall_due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
