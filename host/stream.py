"""The frame stream on the host: notifications -> frames, exactly once, in order.

Pure (no BLE, no I/O). ``StreamReceiver`` takes STREAM notification values and gives
back the frames the consumer has not had yet, in seq order per boot, with what to
``RESUME`` from when something is missing and the holes that can never be filled.
``ClockMap`` turns a frame's sensor time into UTC from ``SET_TIME`` replies, one
mapping per boot of the roller.

Positions are per boot: seq and sensor time restart at every boot of the roller, so a
position is ``(boot_id, seq)`` (``StreamPosition``). The consumer's stored position,
given at construction, makes a restarted host skip what it already stored.
docs/protocol.md section 6 is the contract; docs/host-ble.md describes the choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware.protocol import (
    Defragmenter,
    FragmentGap,
    Frame,
    ProtocolError,
    StreamDecoder,
    TimeReply,
)

__all__ = ["ClockMap", "ClockSample", "Hole", "Received", "StreamPosition", "StreamReceiver"]

DEFAULT_MAX_HELD = 6000
"""Frames held back behind a missing one before giving up on it (60 s at 100 Hz)."""


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """The newest frame the host has: boot id (u32) and seq (u32) of that boot."""

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

    frames: new frames for the consumer, in seq order within each boot, never given
        before (no duplicates, whatever the overlap of live and backfill).
    resume_from: when set, the host should send ``Resume(resume_from)``: the first seq
        of the current boot it does not have. Reported once per gap.
    holes: frames that the roller no longer has (journal overflow, reboot).
    errors: protocol errors met (FragmentGap, malformed records), for the log.
    """

    frames: list[Frame] = field(default_factory=list)
    resume_from: int | None = None
    holes: list[Hole] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class StreamReceiver:
    """STREAM notifications -> new frames in order, gaps -> what to RESUME from.

    position: the consumer's last stored frame (None: nothing stored yet); frames at or
        before it are never delivered.
    zone_count: zones per frame, when known (a SYNC announcing another count is an error).
    max_held: frames held back behind a missing one; beyond it the missing frames are
        declared a ``Hole`` and the held frames delivered.

    One receiver lives as long as the host's view of a roller (across reconnections):
    call ``new_link()`` at each connection. The current boot is the one of the newest
    STATUS (``set_boot``) or of the first frame of a boot never seen; within it, frames
    are delivered strictly in seq order, and later ones wait for the missing ones.
    Frames of an older, already known boot are delivered if new, in arrival order.
    """

    def __init__(self, position: StreamPosition | None = None, *, zone_count: int | None = None,
                 max_held: int = DEFAULT_MAX_HELD) -> None:
        if max_held < 1:
            raise ValueError("max_held must be >= 1")
        self.zone_count = zone_count
        self.max_held = max_held
        self._last: dict[int, int] = {}  # boot id -> last delivered seq
        self._boot: int | None = None
        if position is not None:
            self._last[position.boot_id] = position.last_seq
            self._boot = position.boot_id
        self._held: dict[int, Frame] = {}
        self._resume_sent: int | None = None
        self.new_link()

    # ------------------------------------------------------------------ state

    @property
    def boot_id(self) -> int | None:
        """Boot id of the current boot, None before any is known."""
        return self._boot

    @property
    def next_seq(self) -> int:
        """First seq of the current boot not delivered yet (0 for a boot not seen)."""
        if self._boot is None:
            return 0
        return self._last.get(self._boot, -1) + 1

    @property
    def position(self) -> StreamPosition | None:
        """Newest frame delivered in the current boot, None if none."""
        if self._boot is None or self._boot not in self._last:
            return None
        return StreamPosition(self._boot, self._last[self._boot])

    def last_seq(self, boot_id: int) -> int | None:
        """Last seq delivered for ``boot_id``, None if none."""
        return self._last.get(boot_id)

    @property
    def waiting(self) -> bool:
        """True while frames are held back behind a missing one."""
        return bool(self._held)

    @property
    def held(self) -> int:
        """Number of frames held back behind a missing one."""
        return len(self._held)

    # ------------------------------------------------------------------ inputs

    def new_link(self) -> None:
        """A new connection: fresh defragmenter and decoder (the roller restarts too)."""
        self._defrag = Defragmenter()
        self._decoder = StreamDecoder(self.zone_count)
        self._resume_sent = None

    def feed(self, notification: bytes) -> Received:
        """One STREAM notification value -> new frames, gap report, holes."""
        out = Received()
        try:
            data = self._defrag.feed(bytes(notification))
        except FragmentGap as error:
            self._decoder.reset()
            out.errors.append(str(error))
            self._want_resume(out)
            return out
        except ProtocolError as error:  # malformed fragment: the defragmenter reset itself
            self._decoder.reset()
            out.errors.append(str(error))
            self._want_resume(out)
            return out
        if not data:
            return out
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as error:  # the decoder reset itself
            self._defrag.reset()
            out.errors.append(str(error))
            self._want_resume(out)
            return out
        for frame in frames:
            self._accept(frame, out)
        return out

    def set_boot(self, boot_id: int) -> Received:
        """The roller runs boot ``boot_id`` (from STATUS). Held frames of an older
        current boot can never be completed: they are delivered, the gaps are holes."""
        out = Received()
        if boot_id != self._boot:
            self._switch_boot(boot_id, out)
        return out

    def forget_before(self, boot_id: int, oldest_seq: int) -> Received:
        """The roller's journal of ``boot_id`` starts at ``oldest_seq``: frames before it
        will never come. A boot the host has stored frames of gets a ``Hole`` for them;
        for a boot it has none of, this only sets where the stream starts."""
        out = self.set_boot(boot_id)
        expected = self.next_seq
        if oldest_seq > expected:
            if boot_id in self._last:
                out.holes.append(Hole(boot_id, expected, oldest_seq - 1))
            self._last[boot_id] = oldest_seq - 1
            for seq in [s for s in self._held if s < oldest_seq]:
                del self._held[seq]
            self._drain(out)
        return out

    def resume_request(self) -> int:
        """Where to RESUME from now (the first seq missing), noted as requested."""
        self._resume_sent = self.next_seq
        return self._resume_sent

    # ------------------------------------------------------------------ internals

    def _want_resume(self, out: Received) -> None:
        seq = self.next_seq
        if seq != self._resume_sent:
            self._resume_sent = seq
            out.resume_from = seq

    def _accept(self, frame: Frame, out: Received) -> None:
        boot = frame.boot
        if self._boot is None or (boot != self._boot and boot not in self._last):
            self._switch_boot(boot, out)
        if boot != self._boot:  # an older boot: deliver if new, no ordering wait
            if frame.seq > self._last.get(boot, -1):
                self._last[boot] = frame.seq
                out.frames.append(frame)
            return
        expected = self.next_seq
        if frame.seq < expected:
            return  # duplicate (backfill overlapping live, or already stored)
        if frame.seq > expected:
            self._held.setdefault(frame.seq, frame)
            self._want_resume(out)
            if len(self._held) > self.max_held:
                self._give_up(out)
            return
        self._deliver(frame, out)
        self._drain(out)

    def _deliver(self, frame: Frame, out: Received) -> None:
        self._last[frame.boot] = frame.seq
        out.frames.append(frame)
        if self._resume_sent is not None and frame.seq >= self._resume_sent:
            self._resume_sent = None

    def _drain(self, out: Received) -> None:
        while (frame := self._held.pop(self.next_seq, None)) is not None:
            self._deliver(frame, out)

    def _give_up(self, out: Received) -> None:
        """Declare everything missing before the held frames lost; deliver them."""
        boot = self._boot
        assert boot is not None
        for seq in sorted(self._held):
            expected = self.next_seq
            if seq > expected:
                out.holes.append(Hole(boot, expected, seq - 1))
            self._deliver(self._held.pop(seq), out)

    def _switch_boot(self, boot_id: int, out: Received) -> None:
        if self._boot is not None and self._held:
            self._give_up(out)
        self._held.clear()
        self._boot = boot_id
        self._resume_sent = None


# --------------------------------------------------------------------------- clock


@dataclass(frozen=True, slots=True)
class ClockSample:
    """One SET_TIME exchange.

    boot_id: the roller's boot (u32).
    sensor_t: roller sensor time when the request arrived, s.
    utc: host UTC at that moment, s since 1970: midpoint of send and receive.
    round_trip_s: host receive minus send time, s (the mapping is good to half of it).
    """

    boot_id: int
    sensor_t: float
    utc: float
    round_trip_s: float

    @property
    def offset_s(self) -> float:
        """UTC minus sensor time, s."""
        return self.utc - self.sensor_t


class ClockMap:
    """Sensor time -> UTC, one mapping per boot of the roller.

    ``learn`` takes each SET_TIME reply with the host's own UTC at sending and at
    receiving; the newest exchange of a boot replaces the older one (repeat SET_TIME in
    long sessions to follow the drift of the sensor clock). A boot without an exchange
    has no mapping: ``to_utc`` returns None, never another boot's mapping.
    """

    def __init__(self, samples: list[ClockSample] | tuple[ClockSample, ...] = ()) -> None:
        self._by_boot: dict[int, ClockSample] = {}
        for sample in samples:
            self._by_boot[sample.boot_id] = sample

    def learn(self, reply: TimeReply, sent_utc: float, received_utc: float) -> ClockSample:
        """Record a SET_TIME exchange: ``reply`` received at ``received_utc`` for a
        request sent at ``sent_utc`` (host UTC, s). Returns the sample kept."""
        if received_utc < sent_utc:
            raise ValueError(f"reply received ({received_utc}) before sending ({sent_utc})")
        sample = ClockSample(reply.boot_id, reply.sensor_t, (sent_utc + received_utc) / 2.0,
                             received_utc - sent_utc)
        self._by_boot[reply.boot_id] = sample
        return sample

    def knows(self, boot_id: int) -> bool:
        """True if ``boot_id`` has a mapping."""
        return boot_id in self._by_boot

    def sample(self, boot_id: int) -> ClockSample | None:
        """The exchange ``boot_id`` is mapped with, None if none."""
        return self._by_boot.get(boot_id)

    def samples(self) -> list[ClockSample]:
        """Every boot's mapping (to persist; ``ClockMap(samples)`` restores it)."""
        return list(self._by_boot.values())

    def to_utc(self, boot_id: int, sensor_t: float) -> float | None:
        """UTC (s since 1970) of sensor time ``sensor_t`` (s) of boot ``boot_id``, or None
        if that boot has no mapping."""
        sample = self._by_boot.get(boot_id)
        if sample is None:
            return None
        return sensor_t + sample.offset_s

    def frame_utc(self, frame: Frame) -> float | None:
        """UTC of ``frame`` (s since 1970), None if its boot has no mapping."""
        return self.to_utc(frame.boot, frame.t)
