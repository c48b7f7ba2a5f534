"""Dating a session whose boot no host saw: an upper bound, honestly marked.

A roller with no real-time clock (a Pi Zero 2 W) knows only its sensor time since it
booted; the host maps that to UTC through the SET_TIME exchanges of a boot
(``host.clock``). A boot that rolled a session and ended before any host connected has
no exchange, so that session's frames have no UTC. What is known of it: its duration
(sensor time) and its place in the roller's journal (the seq goes on across boots), so
it ended before anything later in the journal happened: before a later session began
(its start, or its bound), before a later boot's first exchange, and before it reached
the host. ``start_bounds`` takes the latest of those that is certain, the earliest
such instant: the session's end is at the latest that, its start at the latest that
less its duration. The store keeps it as the session's start and end with
``start_known`` false; everything that shows the date says it is at the latest and
approximate (docs/store.md). Sessions so dated sort before the later ones.

Units: UTC and sensor times in s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["SessionSpan", "start_bounds"]


@dataclass(frozen=True)
class SessionSpan:
    """What dating needs of one session.

    session_id. boot: its boot id. first_seq, last_seq: the journal seqs of its first
    and last frame. first_t, last_t: their sensor times, s (NaN: not read; needed only
    for the sessions dated here). start_utc: its start as stored, s since 1970 (for
    a session not known, the bound so far). end_utc: its end as stored (None while
    recording). known: its start is its first frame's mapped UTC.
    """

    session_id: int
    boot: int
    first_seq: int
    last_seq: int
    first_t: float
    last_t: float
    start_utc: float
    end_utc: float | None
    known: bool


def start_bounds(spans: Iterable[SessionSpan], exchanges: Mapping[int, tuple[int, float]]
                 ) -> dict[int, tuple[float, float]]:
    """``{session id: (start, end)}``, UTC upper bounds (s since 1970), for each
    session of ``spans`` whose start is not known. ``spans``: the device's sessions;
    ``exchanges``: its mapped boots, ``boot -> (a seq of that boot, the UTC of its
    first SET_TIME exchange)``. The newest such session is dated first, so an older one
    is bounded by it."""
    spans = list(spans)
    starts = {s.session_id: s.start_utc for s in spans}
    out: dict[int, tuple[float, float]] = {}
    for span in sorted((s for s in spans if not s.known), key=lambda s: -s.last_seq):
        ends = [span.end_utc] if span.end_utc is not None else []
        for later in spans:
            if later.session_id == span.session_id or later.first_seq <= span.last_seq:
                continue
            gap = later.first_t - span.last_t  # sensor time between them, same boot
            ends.append(starts[later.session_id] - gap
                        if later.boot == span.boot and math.isfinite(gap) else
                        starts[later.session_id])
        ends += [utc for boot, (seq, utc) in exchanges.items()
                 if boot != span.boot and seq > span.last_seq]
        ends = [e for e in ends if math.isfinite(e)]
        if not ends:
            continue
        end = min(ends)
        start = end - max(0.0, span.last_t - span.first_t)
        starts[span.session_id] = start
        out[span.session_id] = (start, end)
    return out
