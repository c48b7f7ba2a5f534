"""A progress bar on stderr for long work, shown only on a terminal (no dependency).

    bar = Progress("export")
    bar(0.5)      # fraction done, 0..1
    bar.done()    # clears the line

Not a terminal (a pipe, a file, a test): nothing is written.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``label [#######.......]  42 %`` redrawn on one line of ``stream`` (stderr), at
    most every ``min_interval_s``; silent unless ``stream`` is a TTY."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30,
                 min_interval_s: float = 0.1) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.min_interval_s = min_interval_s
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self._last = -1.0
        self._shown = False

    def __call__(self, fraction: float) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if fraction < 1.0 and now - self._last < self.min_interval_s:
            return
        self._last = now
        fraction = min(max(fraction, 0.0), 1.0)
        filled = round(fraction * self.width)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{fraction * 100:3.0f} %")
        self.stream.flush()
        self._shown = True

    def done(self) -> None:
        """Clear the bar's line."""
        if self.enabled and self._shown:
            self.stream.write("\r" + " " * (len(self.label) + self.width + 10) + "\r")
            self.stream.flush()
