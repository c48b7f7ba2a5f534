"""One host's frame stream: live batches first, then journal backfill, paced.

``HostStream`` is the per-connection state the roller keeps for a host: its own
``StreamEncoder`` and ``Fragmenter`` (sized to the connection's ATT MTU), the live run
and the backfill cursor. ``flush(live, journal)`` is called at every firmware drain
(every 20 ms) and returns the STREAM notification values to send, in order.

Live and backfill share the one record stream (the host has one decoder), so a
switch of kind costs a SYNC record each way. Backfill therefore goes in chunks of
at least ``min_chunk_frames`` (10) frames, after the live frames of a flush, and at a
paced rate: every flush adds ``notifications_per_flush`` notifications' worth of
bytes to a credit, a chunk spends it. Live frames are never held back.

Resume rules (docs/bluetooth.md, "Backfill"):

- The *live run* is the unbroken sequence of live frames sent to this host since
  it subscribed (``live_from`` is its first seq; ``None`` before it starts).
- ``RESUME(s)`` with ``s`` before the live run resends ``[s, live_from)``: the rest
  went out live on this connection (reconnection case: no duplicates).
- ``RESUME(s)`` inside the live run (the host lost notifications) or with no live run
  restarts the live run at the next flush (its first batch begins with a SYNC, so
  a resync fragment) and resends ``[s, start of the new run)``.
- While the host does not listen (STREAM not subscribed) the live run is broken; a
  requested backfill then runs up to the start of the next live run.
- Frames the journal no longer holds (acknowledged or dropped when full) are
  skipped: the host sees the hole in seq.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from firmware.protocol import (
    SYNC_SIZE,
    Fragmenter,
    Frame,
    ResultCode,
    StreamEncoder,
    frame_size,
)


class FrameJournal(Protocol):
    """What the stream needs of ``firmware.journal.Journal``."""

    @property
    def next_seq(self) -> int:
        """Seq the next appended frame gets (last seq + 1)."""

    @property
    def oldest_seq(self) -> int | None:
        """Seq of the oldest frame still held (None: holds none)."""

    def read(self, from_seq: int, limit: int) -> list[Frame]:
        """Up to ``limit`` held frames from ``from_seq`` on, in seq order."""


@dataclass(frozen=True)
class BackfillPacing:
    """How fast backfill goes out beside the live stream.

    notifications_per_flush: average backfill budget per flush (20 ms), in
        notifications of the connection's size (MTU - 3 bytes).
    min_chunk_frames: smallest chunk worth its two SYNC records (unless fewer remain).
    max_chunk_frames: largest chunk in one flush.
    """

    notifications_per_flush: float = 4.0
    min_chunk_frames: int = 10
    max_chunk_frames: int = 254

    def __post_init__(self) -> None:
        if not self.notifications_per_flush > 0:
            raise ValueError("notifications_per_flush must be > 0")
        if not 1 <= self.min_chunk_frames <= self.max_chunk_frames:
            raise ValueError("need 1 <= min_chunk_frames <= max_chunk_frames")


class HostStream:
    """Frame stream state for one connected host.

    zone_count: zones per frame. frame_period_s: frame period, s (whole ms).
    mtu: the connection's ATT MTU, bytes. pacing: backfill pacing.
    """

    def __init__(self, zone_count: int, frame_period_s: float, mtu: int,
                 pacing: BackfillPacing | None = None) -> None:
        self.encoder = StreamEncoder(zone_count, frame_period_s)
        self.fragmenter = Fragmenter(mtu)
        self.pacing = pacing or BackfillPacing()
        self._frame_bytes = frame_size(zone_count)
        self.live_from: int | None = None
        self.cursor: int | None = None  # next backfill seq, None: no backfill running
        self._end: int | None = None  # backfill stops here; None: at the live run's start
        self._credit = 0.0
        self.backfilled = 0  # frames sent as backfill (statistics)

    # -- connection events -----------------------------------------------------------
    @property
    def mtu(self) -> int:
        """ATT MTU the notifications are cut for, bytes."""
        return self.fragmenter.mtu

    def set_mtu(self, mtu: int) -> None:
        """Cut later notifications for a new ATT MTU (bytes); the counter goes on."""
        Fragmenter(mtu)  # validates
        self.fragmenter.mtu = mtu
        self.fragmenter.data_size = mtu - 4

    def pause(self) -> None:
        """The host is not listening now (STREAM not subscribed): the live run breaks.

        A requested backfill is kept and now ends at the start of the next live run,
        so it also covers the frames made meanwhile (a host may RESUME first and
        subscribe after).
        """
        self.live_from = None
        self._end = None
        self._credit = 0.0

    @property
    def backfilling(self) -> bool:
        """True while a backfill is running."""
        return self.cursor is not None

    def ack_limit(self, seq: int) -> int:
        """The newest seq an ``ACK(seq)`` of this host may release: while a backfill
        runs, the frames from its cursor on have not been sent to the host yet (the
        journal's seqs go on across boots, so an ACK of this boot's live frames is
        above an older boot's frames still waiting to be sent)."""
        return seq if self.cursor is None else min(seq, self.cursor - 1)

    def resume(self, seq: int, journal: FrameJournal) -> ResultCode:
        """Handle ``RESUME(seq)``: OUT_OF_RANGE beyond the live edge, else SUCCESS."""
        if seq > journal.next_seq:
            return ResultCode.OUT_OF_RANGE
        if self.live_from is not None and seq < self.live_from:
            self._end = self.live_from
        else:
            # The host misses frames of the live run (or there is none): restart the run
            # at the next flush, behind a SYNC, and backfill up to it.
            self.live_from = None
            self.encoder.reset()
            self._end = None
        self.cursor = seq
        return ResultCode.SUCCESS

    # -- every drain -----------------------------------------------------------------
    def flush(self, live: Sequence[Frame], journal: FrameJournal) -> list[bytes]:
        """Notification values for this flush: ``live`` frames first, then backfill."""
        if live:
            if self.live_from is None:
                self.live_from = live[0].seq
            self.fragmenter.push(self.encoder.encode(live))
        self._backfill(journal)
        return self.fragmenter.pop_ready(flush=True)

    def _backfill(self, journal: FrameJournal) -> None:
        if self.cursor is None:
            return
        end = self._end
        if end is None:
            end = self.live_from if self.live_from is not None else journal.next_seq
            if self.live_from is not None:
                self._end = end
        oldest = journal.oldest_seq
        cursor = max(self.cursor, end if oldest is None else oldest)
        remaining = end - cursor
        if remaining <= 0:
            self.cursor = self._end = None
            self._credit = 0.0
            return
        self.cursor = cursor
        budget = self.pacing.notifications_per_flush * (self.mtu - 4)
        overhead = 2 * SYNC_SIZE + 2  # SYNC in, SYNC back to live, FRAMES tags
        min_cost = overhead + self.pacing.min_chunk_frames * self._frame_bytes
        self._credit = min(self._credit + budget, max(2.0 * budget, float(min_cost)))
        affordable = int((self._credit - overhead) // self._frame_bytes)
        count = min(remaining, affordable, self.pacing.max_chunk_frames)
        if count < min(remaining, self.pacing.min_chunk_frames):
            return
        frames = [f for f in journal.read(cursor, count) if cursor <= f.seq < end]
        if not frames:
            self.cursor = self._end = None  # nothing left to send (journal trimmed)
            return
        try:
            data = self.encoder.encode(frames, backfill=True)
        except ValueError:  # a frame that cannot be sent: skip the chunk
            data = b""
        self.fragmenter.push(data)
        self._credit -= len(data) + SYNC_SIZE
        self.cursor = frames[-1].seq + 1
        self.backfilled += len(frames)
