"""The frame stream on the host: notifications -> frames, each exactly once, at once.

Pure (no BLE, no I/O). ``StreamReceiver`` takes STREAM notification values and gives
back the frames the consumer has not had yet, as soon as they arrive, with what to
``RESUME`` from when something is missing and the holes that can never be filled.
``ClockMap`` (host/clock.py, re-exported here) turns a frame's sensor time into UTC
from ``SET_TIME`` exchanges, one mapping per boot of the roller.

Order: frames come out in **arrival order**, each ``(boot, seq)`` exactly once. Within
a live run and within a backfill run that is seq order, but the roller sends live
frames first and journal backfill beside them, so backfill may come after later live
frames (after a gap, a reconnection, at the first connection). Live frames are never
held back behind missing ones: the daemon warns from them. A consumer that needs seq
order sorts by ``(boot, seq)`` when storing.

What stays contiguous: the *prefix* of a boot, the first seq not received (every frame
before it was delivered, is a reported ``Hole``, or lies before where this host's
stream starts). ``RESUME`` asks from it, ``position`` reports it, and the client never
acknowledges past it. Frames delivered beyond the prefix are kept as a short list of
seq ranges, pruned as the prefix advances.

Positions are per boot: sensor time restarts at every boot of the roller, and a position
is ``(boot_id, seq)`` (``StreamPosition``). The roller's journal numbers frames across
boots (a new boot goes on from the journal's next seq), so an earlier boot's frames,
backfilled behind the current boot's live ones, keep a track of their own (they do not
make their boot current), and a backfill run that goes on from one boot into the next
shows where the next one's frames start (the seqs before them were the earlier boots').
The consumer's stored position (and any frames it stored beyond it), given at
construction, make a restarted host
skip what it already stored.
docs/protocol.md section 6 is the contract; docs/host-ble.md describes the choices.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from operator import itemgetter

from firmware.protocol import (
    Defragmenter,
    Frame,
    FrameFlag,
    ProtocolError,
    StreamDecoder,
)
from host.clock import ClockMap, ClockSample

__all__ = ["MAX_BOOTS", "ClockMap", "ClockSample", "Hole", "Received", "StreamPosition",
           "StreamReceiver"]

DEFAULT_MAX_GAPS = 64
"""Gaps (runs of missing frames before delivered ones) open at once in a boot before the
oldest is given up as a ``Hole``: the bound on the receiver's memory."""

MAX_BOOTS = 16
"""Boots tracked at once (a roller reboots a few times a day; 20 000 boot ids is a faulty
or hostile roller): beyond it the least recently current boot is forgotten (its gaps were
already reported as holes when it stopped being current; a frame of it arriving later is
delivered again, and the store drops it as a duplicate by (boot, seq))."""

_LAST = itemgetter(1)


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a host stands in a boot: boot id (u32) and the last seq (u32) of its
    contiguous prefix, i.e. every frame of that boot up to ``last_seq`` is stored (or
    known lost, or before where the host's stream starts). ``last_seq`` -1: the stream
    starts at seq 0 and nothing is stored yet."""

    boot_id: int
    last_seq: int


@dataclass(frozen=True, slots=True)
class Hole:
    """Frames lost for good: seqs ``first_seq..last_seq`` (inclusive) of ``boot_id``."""

    boot_id: int
    first_seq: int
    last_seq: int

    @property
    def count(self) -> int:
        """Number of frames lost."""
        return self.last_seq - self.first_seq + 1


@dataclass(slots=True)
class Received:
    """What one call of the receiver produced.

    frames: new frames for the consumer in arrival order, each never given before (no
        duplicates, whatever the overlap of live and backfill). In seq order within a
        live run and within a backfill run; backfill may follow later live frames.
    resume_from: when set, the host should send ``Resume(resume_from)``: the first seq
        of the current boot it does not have (the prefix). Reported once per gap.
    holes: frames that the roller no longer has (journal overflow, reboot).
    errors: protocol errors met (FragmentGap, malformed records), for the log.
    """

    frames: list[Frame] = field(default_factory=list)
    resume_from: int | None = None
    holes: list[Hole] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class _BootTrack:
    """What one boot's frames the host has: the contiguous prefix, and runs beyond it.

    next: the prefix, first seq not delivered: every seq before it was delivered, given
        up as a hole, or lies before the start.
    known: the start is set (a stored position, ``forget_before``, or frames delivered
        from the prefix on); until then ``next`` is a provisional 0.
    runs: sorted, disjoint, non-adjacent ``[first, last]`` seq ranges delivered beyond
        a missing frame (every ``first > next``); ``ahead`` counts their frames.
    """

    __slots__ = ("ahead", "known", "next", "runs")

    def __init__(self, next_seq: int = 0, known: bool = False) -> None:
        self.next = next_seq
        self.known = known
        self.runs: list[list[int]] = []
        self.ahead = 0

    @property
    def newest(self) -> int:
        """Highest seq delivered (or given up); ``next - 1`` when nothing is ahead."""
        return self.runs[-1][1] if self.runs else self.next - 1

    def add(self, seq: int) -> bool:
        """Note frame ``seq`` delivered; False if it already was (or is before the
        prefix). The common cases (next in line, extends the newest run) are O(1)."""
        runs = self.runs
        if seq == self.next:
            self.next = seq + 1
            self.known = True
            if runs and runs[0][0] == self.next:
                self._absorb()
            return True
        if runs and seq == runs[-1][1] + 1:
            runs[-1][1] = seq
            self.ahead += 1
            return True
        return bool(self.cover(seq, seq))

    def cover(self, first: int, last: int) -> list[tuple[int, int]]:
        """Mark seqs ``first..last`` (inclusive) as done (delivered or given up); returns
        the sub-ranges that were not done before, in order."""
        first = max(first, self.next)
        if first > last:
            return []
        runs = self.runs
        lo = bisect_left(runs, first - 1, key=_LAST)  # first run touching [first, last]
        hi, cursor, new = lo, first, []
        start, end = first, last
        while hi < len(runs) and runs[hi][0] <= last + 1:
            run_first, run_last = runs[hi]
            if run_first > cursor:
                new.append((cursor, min(run_first - 1, last)))
            cursor = max(cursor, run_last + 1)
            start, end = min(start, run_first), max(end, run_last)
            hi += 1
        if cursor <= last:
            new.append((cursor, last))
        runs[lo:hi] = [[start, end]]
        self.ahead += sum(b - a + 1 for a, b in new)
        if runs[0][0] == self.next:
            self.known = True
            self._absorb()
        return new

    def give_up_first(self) -> tuple[int, int]:
        """Declare the first gap done (lost); returns it. Needs a run."""
        gap = (self.next, self.runs[0][0] - 1)
        self.cover(*gap)
        return gap

    def _absorb(self) -> None:
        first, last = self.runs.pop(0)
        self.ahead -= last - first + 1
        self.next = last + 1


class StreamReceiver:
    """STREAM notifications -> new frames at once, gaps -> what to RESUME from.

    position: the consumer's contiguous stored prefix (None: nothing stored yet); frames
        up to it are never delivered.
    ahead: seqs of ``position``'s boot beyond ``position.last_seq`` that the consumer
        stored too (backfill that came after later live frames); never delivered again.
    zone_count: zones per frame, when known (a SYNC announcing another count is an error).
    max_gaps: gaps open at once per boot (memory bound); beyond it the oldest gap is
        declared a ``Hole``. A gap is never given up for its age or size: the roller
        still has those frames until it says otherwise (STATUS ``oldest_seq``, a seq jump
        inside its backfill) or the boot changes.

    One receiver lives as long as the host's view of a roller (across reconnections):
    call ``new_link()`` at each connection. The current boot is the one of the newest
    STATUS (``set_boot``) or of the first frame of a boot never seen. Every new frame is
    delivered in the ``feed`` call that completes it, live or backfill, current or older
    boot; duplicates (backfill overlapping live, repeated RESUMEs, reconnections, a
    restarted host) are dropped.
    """

    def __init__(self, position: StreamPosition | None = None, *, ahead: Iterable[int] = (),
                 zone_count: int | None = None, max_gaps: int = DEFAULT_MAX_GAPS) -> None:
        if max_gaps < 1:
            raise ValueError("max_gaps must be >= 1")
        self.zone_count = zone_count
        self.max_gaps = max_gaps
        self._tracks: dict[int, _BootTrack] = {}
        self._boot: int | None = None
        if position is not None:
            if position.last_seq < -1:
                raise ValueError(f"bad stored position {position}")
            track = _BootTrack(position.last_seq + 1, known=True)
            for seq in ahead:
                track.add(seq)
            self._tracks[position.boot_id] = track
            self._boot = position.boot_id
        elif any(True for _ in ahead):
            raise ValueError("ahead needs the position it is ahead of")
        self._resume_sent: int | None = None
        self.new_link()

    # ------------------------------------------------------------------ state

    @property
    def boot_id(self) -> int | None:
        """Boot id of the current boot, None before any is known."""
        return self._boot

    @property
    def next_seq(self) -> int:
        """The prefix: first seq of the current boot not received (0 for a boot not
        seen). Frames beyond it may have been delivered already."""
        track = self._current()
        return 0 if track is None else track.next

    @property
    def position(self) -> StreamPosition | None:
        """The contiguous prefix of the current boot (``last_seq`` = ``next_seq - 1``),
        None while the host has no start in it. What to persist, with ``ahead_seqs()``,
        for a restart."""
        return None if self._boot is None else self.contiguous(self._boot)

    def contiguous(self, boot_id: int) -> StreamPosition | None:
        """The contiguous prefix of ``boot_id``: every frame up to its ``last_seq`` was
        delivered, is a reported hole or precedes the start; None if no start."""
        track = self._tracks.get(boot_id)
        if track is None or not track.known:
            return None
        return StreamPosition(boot_id, track.next - 1)

    def last_seq(self, boot_id: int) -> int | None:
        """Newest seq delivered for ``boot_id`` (may be beyond a missing one), None if
        none."""
        track = self._tracks.get(boot_id)
        if track is None or (not track.known and not track.runs) or track.newest < 0:
            return None
        return track.newest

    def ahead_seqs(self, boot_id: int | None = None) -> list[tuple[int, int]]:
        """Ranges ``(first, last)`` delivered beyond the prefix of ``boot_id`` (default:
        the current boot), in seq order."""
        boot = self._boot if boot_id is None else boot_id
        track = None if boot is None else self._tracks.get(boot)
        return [] if track is None else [(a, b) for a, b in track.runs]

    @property
    def waiting(self) -> bool:
        """True while frames are missing before delivered ones (a gap being resumed)."""
        track = self._current()
        return track is not None and bool(track.runs)

    @property
    def ahead(self) -> int:
        """Frames of the current boot delivered beyond the prefix."""
        track = self._current()
        return 0 if track is None else track.ahead

    # ------------------------------------------------------------------ inputs

    def new_link(self) -> None:
        """A new connection: fresh defragmenter and decoder (the roller restarts too)."""
        self._defrag = Defragmenter()
        self._decoder = StreamDecoder(self.zone_count)
        self._resume_sent = None
        # where the roller's live run on this link starts, as far as the host saw: its
        # backfill for a RESUME before it ends there
        self._live_from: int | None = None
        self._backfill_next: tuple[int, int] | None = None  # (boot, seq) of this run

    def feed(self, notification: bytes) -> Received:
        """One STREAM notification value -> new frames, gap report, holes."""
        out = Received()
        try:
            data = self._defrag.feed(bytes(notification))
        except ProtocolError as error:  # FragmentGap, or a malformed fragment: both reset
            self._decoder.reset()
            self._stream_error(error, out)
            return out
        if not data:
            return out
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as error:  # the decoder reset itself
            self._defrag.reset()
            self._stream_error(error, out)
            return out
        for frame in frames:
            self._accept(frame, out)
        self._settle()
        track = self._current()
        if track is not None and track.runs and self._resume_sent is None:
            out.resume_from = self._asked(track.next)  # a gap: ask for it, once
        return out

    def set_boot(self, boot_id: int) -> Received:
        """The roller runs boot ``boot_id`` (from STATUS). Gaps left in an older current
        boot can never be filled: they are reported as holes."""
        out = Received()
        if boot_id != self._boot:
            self._switch_boot(boot_id, out)
        return out

    def forget_before(self, boot_id: int, oldest_seq: int) -> Received:
        """The roller's journal of ``boot_id`` starts at ``oldest_seq``: frames before it
        will never come. A boot the host has a start in gets a ``Hole`` for those it
        lacks; for a boot it has none of, this only sets where the stream starts."""
        out = self.set_boot(boot_id)
        track = self._tracks[boot_id]
        known = track.known
        skipped = track.cover(track.next, oldest_seq - 1)
        if known:
            out.holes += [Hole(boot_id, a, b) for a, b in skipped]
        track.known = True
        self._settle()
        return out

    def resume_request(self) -> int:
        """Where to RESUME from now (the prefix, first seq missing), noted as requested."""
        return self._asked(self.next_seq)

    # ------------------------------------------------------------------ internals

    def _asked(self, seq: int) -> int:
        """Note ``RESUME(seq)`` as requested; returns ``seq``. A RESUME inside the live
        run makes the roller restart the run (docs/protocol.md section 6): its start is
        learnt again from the next live frame."""
        self._resume_sent = seq
        if self._live_from is not None and seq >= self._live_from:
            self._live_from = None
        return seq

    def _current(self) -> _BootTrack | None:
        return None if self._boot is None else self._tracks.get(self._boot)

    def _stream_error(self, error: ProtocolError, out: Received) -> None:
        """Something was lost (or garbled): ask for it, unless that RESUME is out."""
        out.errors.append(str(error))
        self._backfill_next = None
        seq = self.next_seq
        if seq != self._resume_sent:
            out.resume_from = self._asked(seq)

    def _accept(self, frame: Frame, out: Received) -> None:
        boot, seq = frame.boot, frame.seq
        backfill = bool(frame.flags & FrameFlag.BACKFILL)
        if self._boot is None or (boot != self._boot and boot not in self._tracks
                                  and not backfill):
            self._switch_boot(boot, out)
        elif boot not in self._tracks:
            # An earlier boot's frames from the journal: a track of their own, behind
            # the current boot's (which stays current: its live frames go on).
            self._tracks = {boot: _BootTrack(), **self._tracks}
            while len(self._tracks) > MAX_BOOTS:
                del self._tracks[next(iter(self._tracks))]
        track = self._tracks[boot]
        if frame.flags & FrameFlag.BACKFILL:
            self._check_backfill_run(boot, seq, track, out)
        elif boot == self._boot and self._live_from is None:
            self._live_from = seq
        if not track.add(seq):
            return  # duplicate (backfill overlapping live, or already stored)
        out.frames.append(frame)
        if track.runs:
            self._limit(boot, track, out)

    def _check_backfill_run(self, boot: int, seq: int, track: _BootTrack,
                            out: Received) -> None:
        """Within one backfill run on a clean stream the roller skips only frames its
        journal no longer holds (docs/protocol.md section 6): those are holes."""
        expected = self._backfill_next
        self._backfill_next = (boot, seq + 1)
        if expected is not None and expected[0] != boot and track.next < seq:
            # The run went on from an earlier boot into this one: the journal's seqs go
            # on across boots, so this boot's frames start here; the seqs before were
            # the earlier boots', not this one's missing frames.
            track.cover(track.next, seq - 1)
            track.known = True
            return
        if expected is None or expected[0] != boot or seq <= expected[1]:
            return
        out.holes += [Hole(boot, a, b) for a, b in track.cover(expected[1], seq - 1)]

    def _limit(self, boot: int, track: _BootTrack, out: Received) -> None:
        """Bound the open gaps: give up the oldest beyond ``max_gaps``."""
        while len(track.runs) > self.max_gaps:
            known = track.known
            first, last = track.give_up_first()
            if known:
                out.holes.append(Hole(boot, first, last))

    def _settle(self) -> None:
        """Forget the RESUME asked for once its backfill is over: the roller backfills up
        to the start of its live run, so once the prefix has passed it a gap left (live
        frames lost meanwhile) needs a new RESUME, inside the live run."""
        track = self._current()
        if (self._resume_sent is not None and track is not None
                and self._live_from is not None and track.next > self._live_from):
            self._resume_sent = None

    def _switch_boot(self, boot_id: int, out: Received) -> None:
        old, track = self._boot, self._current()
        if old is not None and track is not None and track.runs:
            known = track.known
            skipped = track.cover(track.next, track.newest)
            if known:
                out.holes += [Hole(old, a, b) for a, b in skipped]
        track = self._tracks.pop(boot_id, None)  # the current boot goes last (newest)
        self._tracks[boot_id] = track if track is not None else _BootTrack()
        while len(self._tracks) > MAX_BOOTS:
            del self._tracks[next(iter(self._tracks))]
        self._boot = boot_id
        self._resume_sent = self._live_from = None
