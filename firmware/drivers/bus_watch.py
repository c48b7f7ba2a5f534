"""A hung I2C bus: seen by the drivers, recovered by the loop.

A part that holds SDA low (a brown-out in the middle of a byte, a glitch that put it
out of step) hangs the whole bus: every transfer to every part then times out, and the
controller driver returns ``OSError(errno.ETIMEDOUT)``, until the bus is recovered. A
NACK (``EREMOTEIO``) is one part's or one message's trouble and passes by itself; a
timeout does not, so it is not retried.

The drivers hand every bus error they catch to ``BusWatch.error``, which says whether
it was a timeout and, if so, marks the bus ``hung``. The loop (``firmware.app``) checks
``hung`` after its work and recovers the bus: it closes and reopens it (on the Pi the
I2C controller's recovery clocks the lines out) and re-initialises the parts, which
then go through their start-up times. Nothing here costs anything while the bus works.
"""

from __future__ import annotations

import errno

__all__ = ["BusWatch", "timed_out"]


def timed_out(exc: OSError) -> bool:
    """True if ``exc`` is a transfer that timed out (a hung bus), not a NACK."""
    return exc.errno == errno.ETIMEDOUT


class BusWatch:
    """What the drivers saw of the bus: ``hung`` once a transfer timed out (until the
    loop recovers it and calls ``recovered``); ``timeouts`` counts those transfers."""

    def __init__(self) -> None:
        self.hung = False
        self.timeouts = 0
        self.last: OSError | None = None
        """The timeout that marked the bus hung."""

    def error(self, exc: OSError) -> bool:
        """A driver caught ``exc`` from the bus: True if the bus hangs (do not retry)."""
        if exc.errno != errno.ETIMEDOUT:
            return False
        self.timeouts += 1
        if not self.hung:
            self.hung = True
            self.last = exc
        return True

    def recovered(self) -> None:
        """The bus was reopened: transfers may go through again."""
        self.hung = False
