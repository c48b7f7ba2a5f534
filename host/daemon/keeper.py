"""``smartroller daemon``: the rollers' host in the background.

For every paired roller (the store's bonded devices, or the addresses given) a
``RollerKeeper`` keeps a ``RollerClient`` connected (it reconnects by itself when the
roller comes back in range), and for each batch of frames:

1. opens a session at the first frame with a body on the roller (none is open), and
   closes it after ``idle_close_s`` without one (or without any frame: the roller went
   away), or when the roller reboots;
2. runs the live analysis (``SessionAnalyzer``) and sends its cues (the lumbar warning,
   the approach cue, stop) and its fence to the roller;
3. stores the frames with their estimates, the strokes, dwells and events and the
   stream position in one transaction each (``host.store``);
4. acknowledges to the roller, once a second and only after the store is synced, what
   is stored: the roller keeps every frame until then, so a daemon killed at any moment
   loses nothing (the journal resends what it missed, backfill, when it is back);
5. publishes the live status (``host.daemon.live``) for ``smartroller live``;
6. guides a user with no calibration through one at the session's start
   (``host.daemon.guide``: the roller's buzz patterns, the live view's line).

A closed session is analysed again offline, all frames in order (the backfill
included), and its analysis replaced; a calibrated one updates the user's profile. On
start, sessions left recording by a killed daemon are continued (their analysis rebuilt
from what is stored) or closed when idle too long.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import math
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bleak.exc import BleakError

from firmware.protocol import BuzzPattern, Frame, FrameFlag
from host.analysis.frames import FrameColumns
from host.analysis.model import Event, EventKind
from host.analysis.profile import UserModel
from host.analysis.session import SessionAnalyzer, Update, analyze
from host.analysis.strokes import StrokeSegmenter
from host.analysis.warnings import Cue
from host.ble.client import RollerClient
from host.ble.control import RollerCommandError, RollerDisconnected
from host.ble.discovery import BleBackend
from host.daemon.guide import Buzz, CalibrationGuide
from host.daemon.live import LiveStatus, StatusWriter
from host.daemon.lock import DaemonLock, DaemonLocked
from host.store import CLOSED, Profile, Session, Store, StoreError
from host.stream import MAX_BOOTS, Hole

log = logging.getLogger("smartroller.daemon")

IDLE_CLOSE_S = 60.0
"""A session ends after this long without a body on the roller, s (sensor time)."""
RECOVER_IDLE_S = 600.0
"""On start, a session left recording whose newest frame is older is closed, s."""
ACK_EVERY_S = 1.0
"""How often the stored frames are synced and acknowledged, s."""
LATE_SETTLE_S = 3.0
"""An earlier boot's session that the journal sends late is analysed again once none of
its frames has come for this long (and when the daemon stops), s."""
PUBLISH_EVERY_S = 0.05
"""How often the live status is published, s (20 Hz: the dashboard's live page shows
every one; a file written and renamed, off the event loop: ``StatusWriter``)."""

STATUS_FLUSH_S = 2.0
"""How long a stopping daemon waits for its last live status to be written, s."""

_CUE_PATTERN = {Cue.LUMBAR: BuzzPattern.LUMBAR_WARNING, Cue.APPROACH: BuzzPattern.APPROACH,
                Cue.STOP: BuzzPattern.STOP}
_CONTACT = int(FrameFlag.IN_CONTACT)
_BACKFILL = int(FrameFlag.BACKFILL)
STALE_CUE_S = 2.0
"""A lumbar or approach cue (or a calibration step) for a frame more than this behind
the roller's newest live frame is not buzzed, s: the person it was for has moved on
(frames from the journal's backfill: a laptop that was away, a restart's gap), and the
roller's own fence guarded them then. STOP cues are always sent."""


_CONNECT_ERRORS = (BleakError, TimeoutError, OSError, RollerDisconnected, RollerCommandError)
_STORE_ERRORS = (StoreError, sqlite3.Error, OSError)
"""A write that failed: a full or read-only disk, a database that went away."""


def _full_disk(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or a quota) is full: space returns under the same
    mount, and the open store takes writes again by itself."""
    return (getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL"
            or getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT))


async def _first(*events: asyncio.Event) -> None:
    """Wait until one of ``events`` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds`` or until ``stop`` is set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


def _status_not_written(exc: OSError) -> None:
    log.warning("live status not written: %s", exc)


class DaemonError(RuntimeError):
    """The daemon cannot run (no profile, no roller): one line for the user."""


class TransportLost(RuntimeError):
    """The Bluetooth transport (the adapter's link to its controller) has ended: the
    daemon exits non-zero so that the service manager starts it again."""


TRANSPORT_CHECK_S = 1.0
"""How often the daemon checks that its Bluetooth transports are alive and that it
still holds its data directory's lock (``DaemonLock.renew``), s."""
LOCK_REFUSALS = 3
"""Checks in a row that find the data directory's new lock held by another process
before the daemon stops (another daemon took it, not a momentary holder)."""


async def _watch(stop: asyncio.Event, lock: DaemonLock | None,
                 say: Callable[[str], None]) -> None:
    """Until ``stop``: raise ``TransportLost`` when an adapter's transport ends; take the
    data directory's lock again when its file system was mounted again (the old lock
    stays on the old mount, where a second daemon would not see it), ``DaemonError`` if
    another daemon took the new one first."""
    from host.ble.bumble_adapter import lost_transports

    refused = 0  # checks in a row that found the new lock file held by another
    while not stop.is_set():
        lost = lost_transports()
        if lost:
            raise TransportLost(f"the Bluetooth transport {', '.join(lost)} was lost")
        if lock is not None:
            try:  # (a momentary holder, such as ``daemon_running``, has let go by the
                # next check: no waiting on the event loop)
                if lock.renew():
                    say(f"daemon: {lock.folder} was mounted again; its lock taken again")
                refused = 0
            except DaemonLocked as exc:
                refused += 1
                if refused >= LOCK_REFUSALS:
                    raise DaemonError(str(exc)) from None
            except OSError:
                pass  # not writable yet (read-only): the old lock stands, try again
        await _wait(stop, TRANSPORT_CHECK_S)


def user_model(profile: Profile) -> UserModel:
    """The analysis's model of a profile's user: stature and sex as the user set them,
    with what earlier calibrations taught (dropped if it no longer fits the stature)."""
    base = UserModel(stature_m=profile.stature_m, sex=profile.sex)
    if not profile.body:
        return base
    try:
        learned = UserModel.from_json(profile.body)
    except ValueError as exc:
        log.warning("profile %s: its learned body model is unusable (%s); starting afresh",
                    profile.name, exc)
        return base
    if abs(learned.stature_m - profile.stature_m) > 0.02:
        log.warning("profile %s: stature changed; earlier calibrations no longer apply",
                    profile.name)
        return base
    learned.stature_m, learned.sex = profile.stature_m, profile.sex
    return learned


WARNING_KINDS = (EventKind.LUMBAR_WARNING, EventKind.APPROACH)
"""Events the person felt (or not) as they rolled: the host's buzzes. A rebuilt analysis
keeps the stored ones as they were (``felt_warnings``)."""


def felt_warnings(stored: list[Event], rebuilt: list[Event], last_t: float,
                  new_from_t: float = math.inf, cut_t: float = math.nan) -> list[Event]:
    """The warnings a rebuilt session keeps: those ``stored`` (what the live pass warned,
    as it was), the rebuilt pass's from sensor time ``new_from_t`` on (frames no pass had
    analysed: an earlier boot's late backfill), and the rebuilt pass's warning still on
    at the last frame (``last_t``, s) when no stored one covers it (the live pass's own,
    open when the daemon stopped, never stored). Nothing else of the rebuilt pass: a
    warning the person never got is not added after the fact, nor one they got dropped.

    ``cut_t``: the sensor time (s) of the last frame an earlier pass over the late
    backfill had (the frame before ``new_from_t``). A stored warning ending there was
    ended by the end of those frames, not by the rolling: the rebuilt pass's warning
    that goes on through it takes its place."""
    kept = [e for e in stored if e.kind in WARNING_KINDS]
    cut = [e for e in kept if e.end_t is not None and abs(e.end_t - cut_t) <= 1e-6]
    kept = [e for e in kept if e not in cut]
    spans = [(e.start_t, math.inf if e.end_t is None else e.end_t) for e in kept]
    for e in rebuilt:
        if e.kind not in WARNING_KINDS:
            continue
        end = e.start_t if e.end_t is None else e.end_t
        open_at_end = end >= last_t and not any(a <= end and e.start_t <= b for a, b in spans)
        goes_on = any(c.kind is e.kind and e.start_t <= cut_t <= end for c in cut)
        if e.start_t >= new_from_t or open_at_end or goes_on:
            kept.append(e)
    return sorted(kept, key=lambda e: e.start_t)


def replay(cols: FrameColumns, user: UserModel) -> tuple[Update, SessionAnalyzer]:
    """The analysis over a session's frames in (boot, seq) order, not finished: the
    analyzer goes on with the frames to come (a rebuilt live analysis)."""
    analyzer = SessionAnalyzer(user, segmenter=StrokeSegmenter())
    return analyzer.feed_columns(cols.sorted()), analyzer


def offline_pass(store: Store, session: Session, user: UserModel,
                 keep: list[Event] = (), *, finish: bool = True,
                 new_from_t: float = math.inf) -> tuple[Update, SessionAnalyzer]:
    """Analyse a stored session again, all its frames in order, and replace its stored
    analysis (``keep``: events of the daemon's own to keep, e.g. link cuts). Positions,
    regions and strokes are the new pass's; the warnings are those stored
    (``felt_warnings``; ``new_from_t``: sensor time, s, from which its frames were not
    analysed before). ``finish``: the session ends (else the analyzer goes on live)."""
    frames = store.read_frames(session.id)
    cols = frames.columns()
    stored = [e for _, _, e in store.events(session.id)]
    if finish:
        update, analyzer = analyze(cols, user, segmenter=StrokeSegmenter())
    else:
        update, analyzer = replay(cols, user)
    last_t = float(cols.t[-1]) if finish and len(cols) else math.inf
    cut_t = math.nan  # (late frames only: the last frame an earlier pass had)
    if math.isfinite(new_from_t):
        before = cols.t[cols.t < new_from_t]
        cut_t = float(before.max()) if len(before) else math.nan
    events = [e for e in update.events if e.kind not in WARNING_KINDS]
    events += felt_warnings(stored, update.events, last_t, new_from_t, cut_t)
    store.replace_analysis(session.id, frames=frames, estimates=update.estimates,
                           strokes=update.strokes, dwells=update.dwells,
                           events=events + fence_events(cols) + list(keep))
    update.events = events
    return update, analyzer


def fence_events(cols: FrameColumns) -> list[Event]:
    """The roller's own fence buzzing: one ``ROLLER_FENCE`` event per run of frames with
    ``BEYOND_FENCE`` (within one boot), valued the deepest position reached (m)."""
    beyond = cols.has(FrameFlag.BEYOND_FENCE)
    if not beyond.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate(([0], beyond.astype(np.int8), [0]))))
    out = []
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        last = stop - 1
        if cols.boot[start] != cols.boot[last]:
            last = start + int(np.argmax(cols.boot[start:stop] != cols.boot[start])) - 1
        out.append(Event(EventKind.ROLLER_FENCE, float(cols.t[start]), float(cols.t[last]),
                         "the roller's own fence buzzed (below the rib cage by its fence)",
                         float(np.max(cols.position[start:last + 1]))))
    return out


def _by_boot(frames: list[Frame]) -> list[list[Frame]]:
    """Frames split by boot, each part in seq order, the parts by their first seq (the
    journal's seq goes on across boots, so that is the order they were made in)."""
    parts: dict[int, list[Frame]] = {}
    for f in frames:
        parts.setdefault(f.boot, []).append(f)
    out = [sorted(part, key=lambda f: f.seq) for part in parts.values()]
    return sorted(out, key=lambda part: part[0].seq)


class RollerKeeper:
    """One roller: its client, its session, its live analysis, its share of the store.

    store: the session store. backend: bleak backend. address: the roller.
    data_dir: where the live status is published. profile: the user rolling.
    idle_close_s: see ``IDLE_CLOSE_S``. say: where one-line news goes.
    """

    def __init__(self, store: Store, backend: BleBackend, address: str, data_dir: Path,
                 profile: Profile, *, idle_close_s: float = IDLE_CLOSE_S,
                 say: Callable[[str], None] = print,
                 client_options: dict | None = None) -> None:
        self.store, self.address, self.data_dir = store, address.upper(), data_dir
        self.profile = profile
        self.idle_close_s = idle_close_s
        self.say = say
        self._backend, self._client_options = backend, client_options or {}
        self.client = self._make_client()
        self.session: Session | None = None
        self.analyzer: SessionAnalyzer | None = None
        self.user = user_model(profile)
        self.status = LiveStatus(self.address)
        self.guide = CalibrationGuide(active=False)
        self._last_contact_t = -math.inf
        self._pending: dict[int, int] = {}  # boot -> highest seq stored, not yet acked
        self._down_since: float | None = None  # sensor time of the last frame before a cut
        self._last_t = math.nan
        self._live_t = -math.inf  # sensor time of the open session's newest live frame, s
        self._last_boot: int | None = None  # the roller's newest boot seen
        self._boot_seq = -1  # the newest seq seen (of any boot: the journal's seq goes on)
        self._contact_seq = -1  # the open session's earliest contact seen (its start)
        self._kept_seq = -1  # the open session's newest frame stored
        self._late_sessions: dict[int, float] = {}
        """Sessions given late frames, to analyse again: id -> sensor time (s) of the
        earliest late frame (inf: none, only to close)."""
        self._late_came: dict[int, float] = {}  # when late frames last came, per session
        self._published = 0.0
        self.status_writer = StatusWriter(data_dir, on_error=_status_not_written)
        self._tasks: set[asyncio.Task] = set()
        self.sessions_closed: list[int] = []
        self._closing_id: int | None = None  # the session being closed
        self.closing: asyncio.Task | None = None
        self._held: list[Frame] = []  # frames that came while a session was closing
        self._opening = False  # a session just opened: its first frames not yet analysed
        self._stale = False  # the live analysis missed frames the store now has
        self._last_arrival = time.monotonic()  # when frames last came (wall clock), s
        self._received_utc = math.nan  # ... and as UTC, s since 1970 (the live status)
        self._reconnected_event: int | None = None
        self.store_fault: str | None = None  # why the store cannot be written, None: it can
        self._store_gone = False  # the fault is no full disk: open the store again
        self._relink = asyncio.Event()  # reconnect from the stored position (after a fault)

    @property
    def _anchored(self) -> bool:
        """Whether the live analysis knows where on the back the positions are: it saw
        the boot's zero (``SessionAnalyzer.zeroed``, the roller's first contact). Without
        it nothing is estimated and the roller's own fence guards."""
        return self.analyzer is not None and self.analyzer.zeroed

    @property
    def _fresh_t(self) -> float:
        """Sensor time (s) from which the open session's cues are buzzed: ``STALE_CUE_S``
        behind its newest live frame (inf: none came live, all from the journal)."""
        return self._live_t - STALE_CUE_S if self._live_t > -math.inf else math.inf

    def _make_client(self) -> RollerClient:
        """A client that resumes the roller's stream where the store stands."""
        position, ahead = self.store.stream_position(self.address)
        return RollerClient(self._backend, on_frames=self._on_frames, on_hole=self._on_hole,
                            on_link=self._on_link, position=position, ahead=ahead,
                            **self._client_options)

    # -- running ------------------------------------------------------------------
    def resume(self, session: Session) -> None:
        """Continue ``session`` (left recording by a daemon that stopped): rebuild its
        analysis from the frames stored."""
        self.session = session
        self.guide = self._new_guide()
        self._rebuild()
        self.say(f"{self.address}: continuing session {session.id} "
                 f"({session.frame_count} frames stored)")

    def _rebuild(self) -> None:
        """The live analysis afresh from the session's stored frames (after a restart,
        or once the roller's journal has filled what the live analysis missed). Its
        warnings go on as the person has them: the live analysis's warner when it had
        the anchor; else (joined late: it warned nothing and set no fence) the rebuilt
        pass's, a warning it is in begun and buzzed at the newest frame
        (``Warner.take_over``), and its fence sent to the roller."""
        assert self.session is not None
        live = self.analyzer
        update, self.analyzer = offline_pass(self.store, self.session, self.user,
                                             self._link_events(self.session.id), finish=False)
        cols = update.frames
        if live is not None and live.zeroed:  # the warnings go on as the person has them
            self.analyzer.warner = live.warner
        elif live is not None and cols is not None and len(cols):
            # Joined late: the live pass had no anchor and warned nothing. The warnings
            # go on from where the rebuilt pass stands, as one pass's would (a fresh
            # warner took the tail of a warning it was in for a new approach); one it is
            # in begins at the newest frame, buzzed now.
            # The roller gets the fence the rebuilt pass stands at now: the replay took
            # it as sent, and it is sent again only once the belief moves.
            est = update.estimates
            cues = self.analyzer.warner.take_over(float(cols.t[-1]),
                                                  float(est.p_below_ribs[-1]),
                                                  float(est.p_near[-1]))
            self._send(Update(cues=cues, fence=update.fence), self._fresh_t)
        self._opening = self._stale = False
        if cols is not None and len(cols):
            self._last_t, self._last_boot = float(cols.t[-1]), int(cols.boot[-1])
            self._boot_seq = max(self._boot_seq, int(cols.seq[-1]))
            self._contact_seq, self._kept_seq = int(cols.seq[0]), int(cols.seq[-1])
            contact = cols.has(FrameFlag.IN_CONTACT)
            if contact.any():
                self._last_contact_t = float(cols.t[contact][-1])
        self.guide.follow(self.analyzer, 0)  # where the analysis stands, silently
        self.status.session_id = self.session.id
        self.status.strokes = len(update.strokes)
        self.status.warnings = sum(e.kind is EventKind.LUMBAR_WARNING for e in update.events)
        if not self._anchored:
            self.say(f"{self.address}: session {self.session.id} began before its frames "
                     "reached this host: the roller's own fence guards it")

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (trying again while the roller is out of range), then keep the roller
        until ``stop`` is set."""
        ack = asyncio.create_task(self._ack_loop(stop))
        try:
            delay = 1.0
            while not stop.is_set():
                try:
                    status = await self.client.connect(self.address)
                except _CONNECT_ERRORS as exc:
                    if delay == 1.0:
                        self.say(f"{self.address}: not reachable ({type(exc).__name__}: "
                                 f"{exc}); trying again")
                    await _wait(stop, delay)
                    delay = min(delay * 2, 30.0)
                    continue
                self.store.note_device(self.address, bonded=True)
                if self.client.calibration is not None:
                    self.store.note_calibration(self.address,
                                                self.client.calibration.encode())
                self.say(f"{self.address}: connected (battery {status.battery_text}, "
                         f"firmware {status.firmware_version})")
                await _first(stop, self._relink)
                if self._relink.is_set() and not stop.is_set():
                    self.client.on_link = None  # our own reconnect: no link lost, no event
                    await self.client.stop()
                    self.client = self._make_client()
                    self._relink.clear()  # storing again: the new link's frames
        finally:
            ack.cancel()
            await asyncio.gather(ack, return_exceptions=True)
            self._ack_now()
            await self.client.stop()
            if self.closing is not None:
                await asyncio.gather(self.closing, return_exceptions=True)
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self._analyse_late()
            if self.session is not None and not self.status.in_contact \
                    and self.store_fault is None:
                # Nobody on the roller: finished. Somebody on it: left recording, the
                # next start continues it (``smartroller sessions`` says interrupted).
                await self.close_session("the daemon stopped with nobody on the roller")
            # The last status written before the daemon goes (not waiting on a hung disk).
            await asyncio.to_thread(self.status_writer.flush, STATUS_FLUSH_S)

    async def close_session(self, reason: str) -> None:
        """End the open session now: final analysis offline, profile learning."""
        session, analyzer = self.session, self.analyzer
        if session is None or analyzer is None:
            return
        self.session, self.analyzer = None, None
        self._closing_id = session.id
        tail = analyzer.finish()
        self._store_analysis(session, tail)
        self._ack_now()
        stored = self.store.read_frames(session.id)
        cols = stored.columns()
        user = self.user
        update, offline = await asyncio.to_thread(
            lambda: analyze(cols, user, segmenter=StrokeSegmenter()))
        # The warnings as the live pass gave them (it saw every frame: it ended above).
        warned = [e for _, _, e in self.store.events(session.id)]
        update.events = [e for e in update.events if e.kind not in WARNING_KINDS] \
            + felt_warnings(warned, update.events, math.inf)
        # The frames analysed, not those stored by now (late backfill may have come).
        self.store.replace_analysis(session.id, frames=stored, estimates=update.estimates,
                                    strokes=update.strokes, dwells=update.dwells,
                                    events=update.events + fence_events(cols)
                                    + self._link_events(session.id))
        learned = offline.learned_model() if offline.zeroed else user
        if learned is not user:
            self.user = learned
            self.store.update_profile(self.profile.name, body=learned.to_json())
            self.say(f"{self.address}: calibration kept in profile {self.profile.name} "
                     f"(thoracic span {learned.span_m * 1e3:.0f} mm)")
        closed = self.store.close_session(session.id)
        self.sessions_closed.append(session.id)
        warnings = sum(e.kind is EventKind.LUMBAR_WARNING for e in update.events)
        self.say(f"{self.address}: session {session.id} closed ({reason}): "
                 f"{closed.frame_count} frames, {len(update.strokes)} strokes, "
                 f"{warnings} lumbar warning(s)")
        self.status.session_id = None
        self._publish(force=True)
        try:
            await self.client.stop_session()
        except Exception as exc:  # noqa: BLE001 - the roller may be gone
            log.info("stop session: %s", exc)

    # -- frames -------------------------------------------------------------------
    def _on_frames(self, frames: list[Frame]) -> None:
        if not frames:
            return
        self._last_arrival = time.monotonic()
        self._received_utc = time.time()  # the live status's received_utc
        if self.store_fault is not None or self._relink.is_set():
            # Neither stored nor acknowledged: the roller's journal keeps them. After a
            # fault the old link's frames wait for the new link too: they follow the
            # frames not stored, and storing them would move the stream position (and
            # the acknowledgement) past those, so the roller would drop them unsent.
            return
        groups = _by_boot(frames)
        try:
            while groups:
                if self.closing is not None:
                    for group in groups:  # kept (not acknowledged) until the close is done
                        self._held.extend(group)
                    return
                self._on_boot_frames(groups.pop(0))
        except _STORE_ERRORS as exc:
            self._store_failed(exc)

    def _on_boot_frames(self, frames: list[Frame]) -> None:
        """Frames of one boot, in seq order. Times compare only within a boot: the
        idle check is the boot's own; a newer boot (higher seq: the journal's seq goes on
        across boots) ends the session; an older boot's are late backfill."""
        boot = frames[0].boot
        if self._last_boot is not None and boot != self._last_boot:
            if frames[0].seq <= self._boot_seq:
                self._late_frames(frames)
                return
            self._last_boot, self._boot_seq = boot, frames[-1].seq
            self._last_t, self._last_contact_t = math.nan, -math.inf
            if self.session is not None:
                self._held.extend(frames)
                self._spawn_close("the roller restarted")
                return
        self._last_boot = boot
        if self._reconnected_event is not None and self.session is not None:
            self.store.end_event(self._reconnected_event, frames[0].t)
            self._reconnected_event = None
        if self.session is None:
            contact = [i for i, f in enumerate(frames) if f.flags & _CONTACT]
            if not contact:
                self._handled(frames)  # nobody rolling: nothing to keep
                self._note_times(frames)
                self._update_status(frames[-1], None)
                return
            self._handled(frames[:contact[0]])
            frames = frames[contact[0]:]
            self._open_session(frames[0])
        idle_at = self._idle_index(frames)
        if idle_at is not None:
            # The session ends there, but not before a frame it already has (backfill
            # under a live frame that came first): it keeps no hole.
            end = max(idle_at + 1, sum(f.seq < self._kept_seq for f in frames))
            self._held.extend(frames[end:])
            frames = frames[:end]
        self._keep(frames)
        if idle_at is not None:
            self._spawn_close(f"nobody on the roller for {self.idle_close_s:.0f} s")

    def _idle_index(self, frames: list[Frame]) -> int | None:
        """Index of the first frame ``idle_close_s`` after the last contact, if any;
        None while frames before these are missing (after a reconnect the live frames
        come before the journal's backfill: one from after the person got off must not
        end the session before the rolling the link missed has come)."""
        if self.client.receiver.waiting:
            return None
        last_contact = self._last_contact_t
        for i, f in enumerate(frames):
            if f.flags & _CONTACT:
                last_contact = max(last_contact, f.t)
            elif f.t - last_contact > self.idle_close_s:
                return i
        return None

    def _note_times(self, frames: list[Frame]) -> None:
        newest = frames[-1]
        self._boot_seq = max(self._boot_seq, newest.seq)
        self._last_t = newest.t if self._last_t != self._last_t else max(newest.t, self._last_t)
        contact = [f.t for f in frames if f.flags & _CONTACT]
        if contact:
            self._last_contact_t = max(self._last_contact_t, contact[-1])

    def _keep(self, frames: list[Frame]) -> None:
        """Analyse and store frames of the open session's boot, from its first contact
        on (the journal's backfill of the minutes before it, when the daemon joined
        late, is acknowledged, not kept: a session starts at its first contact)."""
        assert self.session is not None and self.analyzer is not None
        contact = next((f.seq for f in frames if f.flags & _CONTACT), self._contact_seq)
        self._contact_seq = min(self._contact_seq, contact)
        if frames[0].seq < self._contact_seq:
            self._handled([f for f in frames if f.seq < self._contact_seq])
            frames = [f for f in frames if f.seq >= self._contact_seq]
            if not frames:
                return
        update = self.analyzer.feed(frames)
        if self._opening:  # the session's first frames
            self._opening = False
            # A session seen from the roller's zero (its first contact) on knows where it
            # is on the back. One joined later waits for the journal's backfill.
            if self._anchored:
                self._buzz(self.guide.start())
            else:
                self._stale = True
        if update.frames is not None and len(update.frames) < len(frames):
            self._stale = True  # frames older than the analysis came: rebuild when whole
        estimates = self._estimates_for(frames, update)
        self.store.add_frames(self.session.id, frames, clock=self.client.clock_map,
                              position=self.client.position, estimates=estimates)
        self._kept_seq = max(self._kept_seq, frames[-1].seq)
        self._store_analysis(self.session, update)
        presses = sum(e.kind is EventKind.CALIBRATION for e in update.events)
        guided = self.guide.follow(self.analyzer, presses)
        live = [f.t for f in frames if not f.flags & _BACKFILL]
        if live:
            self._live_t = max(self._live_t, live[-1])
        fresh = self._fresh_t
        self._send(update, fresh)  # (none without an anchor: the roller's own fence guards)
        if self._anchored and frames[-1].t >= fresh:
            self._buzz(guided)
        self._handled(frames)
        self._note_times(frames)
        self._update_status(frames[-1], update)

    def _late_frames(self, frames: list[Frame]) -> None:
        """Backfill of an earlier boot that came after a newer boot's frames: into the
        session of that boot (one is opened if it has none and a body was on the
        roller), analysed again offline at the next acknowledgement."""
        boot = frames[0].boot
        target = next((s for s in reversed(self.store.sessions(self.address))
                       if s.last_boot == boot), None)
        contact = [f for f in frames if f.flags & _CONTACT]
        if target is None and not contact:
            self._handled(frames)
            return
        if target is None:
            self._handled(frames[:frames.index(contact[0])])
            frames = frames[frames.index(contact[0]):]
            utc = self.client.clock_map.frame_utc(contact[0])
            target = self.store.open_session(self.address, started_utc=utc,
                                             profile_id=self.profile.id,
                                             start_known=utc is not None)
            self.say(f"{self.address}: session {target.id} found in the roller's journal "
                     "(an earlier boot)")
        self.store.add_frames(target.id, frames, clock=self.client.clock_map)
        self._handled(frames)
        self._late_sessions[target.id] = min(self._late_sessions.get(target.id, math.inf),
                                             frames[0].t)
        self._late_came[target.id] = time.monotonic()

    def _open_session(self, first: Frame) -> None:
        utc = self.client.clock_map.frame_utc(first)
        self.session = self.store.open_session(self.address, started_utc=utc,
                                               profile_id=self.profile.id,
                                               start_known=utc is not None)
        self.analyzer = SessionAnalyzer(self.user, segmenter=StrokeSegmenter())
        self._live_t = -math.inf
        self._opening = True  # anchored or not: the analyzer tells once it has the frames
        self._contact_seq, self._kept_seq = first.seq, -1
        self._stale = False
        self._last_contact_t = first.t
        self.status = LiveStatus(self.address, connected=self.client.connected,
                                 session_id=self.session.id)
        self.say(f"{self.address}: session {self.session.id} started "
                 f"(profile {self.profile.name})")
        self._spawn(self._start_session(self.session.id))
        self.guide = self._new_guide()

    def _new_guide(self) -> CalibrationGuide:
        """The guide of a new session: on for a user with no calibration who has not
        chosen to skip it."""
        return CalibrationGuide(active=not self.user.calibrated
                                and not self.store.calibration_skipped(self.profile))

    async def _start_session(self, session_id: int) -> None:
        try:
            await self.client.start_session(session_id & 0xFFFFFFFF or 1)
        except Exception as exc:  # noqa: BLE001 - cosmetic: the roller's LED
            log.info("start session: %s", exc)

    @staticmethod
    def _estimates_for(frames: list[Frame], update: Update) -> list:
        """Per stored frame its live estimate (None for frames the live analysis did
        not take: backfill older than what it had; the offline pass fills those)."""
        if update.frames is None or not len(update.frames):
            return [None] * len(frames)
        index = {(int(b), int(s)): i for i, (b, s) in
                 enumerate(zip(update.frames.boot, update.frames.seq, strict=True))}
        est = update.estimates
        return [est.at(index[(f.boot, f.seq)]) if (f.boot, f.seq) in index else None
                for f in frames]

    def _store_analysis(self, session: Session, update: Update) -> None:
        if update.strokes:
            self.store.add_strokes(session.id, update.strokes)
            self.status.strokes += len(update.strokes)
        if update.dwells:
            self.store.add_dwells(session.id, update.dwells)
        for event in update.events:
            self.store.add_event(session.id, event)
            if event.kind is EventKind.LUMBAR_WARNING:
                self.status.warnings += 1
            if event.kind is EventKind.CALIBRATION:
                self.status.calibration = event.message
                self.status.calibrated = event.message.startswith("calibrated")
                self.say(f"{self.address}: {event.message}")
            self.status.message, self.status.message_t = event.message, event.start_t

    def _send(self, update: Update, fresh_t: float = -math.inf) -> None:
        """Send the update's fence, and its cues for frames from sensor time ``fresh_t``
        (s) on (STOP whenever it comes)."""
        for t, cue in update.cues:
            if cue is not Cue.STOP and t < fresh_t:
                continue
            self._spawn(self._command(self.client.buzz(_CUE_PATTERN[cue]), f"buzz {cue.value}"))
        if update.fence is not None:
            self._spawn(self._command(self.client.set_fence(*update.fence), "set fence"))

    def _buzz(self, buzzes: list[Buzz]) -> None:
        """Play the guide's patterns, each after its delay."""
        for delay, pattern in buzzes:
            self._spawn(self._command(self._later(delay, self.client.buzz, pattern),
                                      f"buzz {pattern.name.lower()}"))

    @staticmethod
    async def _later(delay_s: float, call: Callable, *args: object) -> None:
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        await call(*args)

    async def _command(self, request: object, what: str) -> None:
        try:
            await request  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - the roller's own fence still holds
            log.info("%s: %s", what, exc)

    def _handled(self, frames: list[Frame]) -> None:
        pending = self._pending
        for f in frames:
            pending[f.boot] = max(pending.get(f.boot, -1), f.seq)
        while len(pending) > MAX_BOOTS:  # (a roller announcing boot after boot: the
            del pending[next(iter(pending))]  # client follows no more than these either)

    # -- acknowledgement ----------------------------------------------------------
    async def _ack_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(ACK_EVERY_S)
            # Quiet as of now, when the loop has just listened: the work below (a
            # rebuild, a late session's pass, a store opened again) holds the loop, and
            # frames that come meanwhile wait for it; that time is not the roller's quiet.
            quiet = time.monotonic() - self._last_arrival
            if self.store_fault is not None and not self._retry_store():
                continue
            self._ack_now()
            self._analyse_late(LATE_SETTLE_S)
            if self.session is not None and self._stale and self.closing is None \
                    and not self.client.receiver.waiting:
                self._rebuild()  # the journal has filled what the live analysis missed
            if self.session is not None and quiet > self.idle_close_s:
                self._spawn_close(f"no frames for {self.idle_close_s:.0f} s")

    def _analyse_late(self, settle_s: float = 0.0) -> None:
        """Analyse again, offline, the sessions late frames went into (closing them),
        each once no late frame has come for it in ``settle_s``: a whole pass at every
        acknowledgement of a long backfill held the loop for the live session."""
        now = time.monotonic()
        try:
            for sid in sorted(self._late_sessions):
                if now - self._late_came.get(sid, -math.inf) < settle_s:
                    continue
                session = self.store.session(sid)
                if self.session is None or session.id != self.session.id:
                    offline_pass(self.store, session, self.user, self._link_events(session.id),
                                 new_from_t=self._late_sessions[session.id])
                    if session.state != CLOSED:
                        self.store.close_session(session.id)
                del self._late_sessions[session.id]
                self._late_came.pop(session.id, None)
        except _STORE_ERRORS as exc:
            self._store_failed(exc)

    # -- a store that cannot be written ----------------------------------------------
    def _store_failed(self, exc: BaseException) -> None:
        """Stop storing and acknowledging: the roller's journal keeps every frame until
        the store takes them again (``_retry_store``). Said once per fault."""
        reason = str(exc) or type(exc).__name__
        if self.store_fault is None:
            self.say(f"{self.address}: cannot store frames ({reason}): not acknowledging "
                     "them, the roller keeps them in its journal; trying again every "
                     f"{ACK_EVERY_S:.0f} s")
        self.store_fault = reason
        self._store_gone = self._store_gone or not _full_disk(exc)
        self._pending.clear()
        self._held.clear()
        self._stale = self.session is not None  # the analysis saw frames not stored
        self.status.fault = f"cannot store: {reason}"
        self._publish(force=True)

    def _retry_store(self) -> bool:
        """Whether the store takes writes again (a batch's worth and a sync); if so,
        reconnect from the stored position: the roller resends what was not stored.
        After a fault other than a full disk the store is opened again first: a file
        system the kernel made read-only (errors=remount-ro) comes back only as a new
        mount, which the old connection never sees."""
        try:
            if self._store_gone:
                self.store.reopen()
            self.store.check_writable()
            self.store.sync()
        except _STORE_ERRORS:
            return False
        self.say(f"{self.address}: storing again; the roller resends what was not stored")
        self.store_fault, self._store_gone = None, False
        self.status.fault = ""
        self._relink.set()
        self._publish(force=True)
        return True

    def _ack_now(self) -> None:
        """Sync the store, then tell the client what is stored (it acknowledges)."""
        if not self._pending or self.store_fault is not None:
            return
        pending, self._pending = self._pending, {}
        try:
            self.store.sync()
        except _STORE_ERRORS as exc:
            self._store_failed(exc)
            return
        for boot, seq in pending.items():
            try:
                self.client.stored(seq, boot)
            except ValueError:
                pass  # a boot the client no longer follows

    # -- the link -----------------------------------------------------------------
    def _on_link(self, up: bool) -> None:
        self.status.connected = up
        if not up and self._down_since is None:
            self._down_since = self._last_t
            self.say(f"{self.address}: link lost")
        elif up and self._down_since is not None:
            self.say(f"{self.address}: link back")
            if self.session is not None:
                self._reconnected_event = self.store.add_event(self.session.id, Event(
                    EventKind.DISCONNECT, self._down_since, None,
                    "the Bluetooth link was lost; the roller's journal filled the gap"))
            self._down_since = None
        self._publish(force=True)

    def _on_hole(self, hole: Hole) -> None:
        self.say(f"{self.address}: {hole.count} frame(s) lost for good")
        if self.session is not None:
            self.store.add_event(self.session.id, Event(
                EventKind.FRAMES_LOST, self._last_t, None,
                f"{hole.count} frames the roller could no longer resend", float(hole.count)))

    def _link_events(self, session_id: int) -> list[Event]:
        """Events the daemon itself recorded (the offline pass keeps them)."""
        kinds = (EventKind.DISCONNECT, EventKind.RECONNECT, EventKind.FRAMES_LOST)
        return [e for _, _, e in self.store.events(session_id) if e.kind in kinds]

    # -- status -------------------------------------------------------------------
    def _update_status(self, frame: Frame, update: Update | None) -> None:
        s = self.status
        s.connected = self.client.connected
        s.t = frame.t
        s.in_contact = bool(frame.flags & _CONTACT)
        s.position_mm = frame.position * 1e3
        s.zone_loads_n = [round(z, 1) for z in frame.zone_loads]
        s.total_load_n = frame.total_load
        s.received_utc = self._received_utc
        mapped = self.client.clock_map.frame_utc(frame)
        s.frame_utc = math.nan if mapped is None else mapped
        if update is not None and len(update.estimates):
            e = update.estimates.at(len(update.estimates) - 1)
            s.level, s.p_below = e.level, e.p_below_ribs
            s.region = e.region.label if e.region is not None else ""
            s.back_mm, s.sd_mm = e.back_m * 1e3, e.sd_m * 1e3
        else:
            s.level, s.p_below, s.region = math.nan, math.nan, ""
            s.back_mm, s.sd_mm = math.nan, math.nan
        # Buzzing: the analysis's warning (also after a rebuild), or the roller's own
        # fence (it clears with the flag).
        s.warning = bool(self.analyzer is not None and self.analyzer.warner.warning) \
            or bool(frame.flags & FrameFlag.BEYOND_FENCE)
        s.guide = self.guide.text if self.session is not None else ""
        s.uncalibrated = self.analyzer is not None and not self.analyzer.calibrated
        self._publish()

    def _publish(self, force: bool = False) -> None:
        now = time.time()
        if not force and now - self._published < PUBLISH_EVERY_S:
            return
        self._published = now
        self.status.utc = now
        self.status_writer.submit(self.status)

    # -- tasks --------------------------------------------------------------------
    def _spawn(self, coroutine: object) -> None:
        task = asyncio.ensure_future(coroutine)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _spawn_close(self, reason: str) -> None:
        if self.closing is not None and not self.closing.done():
            return
        self.closing = asyncio.ensure_future(self.close_session(reason))
        self.closing.add_done_callback(self._closed)

    def _closed(self, task: asyncio.Task) -> None:
        self.closing = None
        error = None if task.cancelled() else task.exception()
        if isinstance(error, _STORE_ERRORS):
            if self._closing_id is not None:  # closed once the store can
                self._late_sessions.setdefault(self._closing_id, math.inf)
            self._store_failed(error)
        elif error is not None:
            log.error("closing the session failed: %s", error)
        held, self._held = self._held, []
        if held:
            self._on_frames(held)


async def run_daemon(store: Store, backend: BleBackend, data_dir: Path, *,
                     addresses: list[str] | None = None, stop: asyncio.Event | None = None,
                     idle_close_s: float = IDLE_CLOSE_S, say: Callable[[str], None] = print,
                     client_options: dict | None = None,
                     keepers: list[RollerKeeper] | None = None) -> None:
    """Keep the rollers (``addresses``, default: the bonded devices) until ``stop``.

    One daemon per data directory: ``DaemonError`` naming the other's pid if another
    process keeps ``data_dir`` (``host.daemon.lock``)."""
    lock = DaemonLock(data_dir)
    try:
        lock.acquire()
    except DaemonLocked as exc:
        raise DaemonError(str(exc)) from None
    try:
        await _keep_rollers(store, backend, data_dir, addresses=addresses, stop=stop,
                            idle_close_s=idle_close_s, say=say,
                            client_options=client_options, keepers=keepers, lock=lock)
    finally:
        lock.release()


async def _keep_rollers(store: Store, backend: BleBackend, data_dir: Path, *,
                        addresses: list[str] | None, stop: asyncio.Event | None,
                        idle_close_s: float, say: Callable[[str], None],
                        client_options: dict | None,
                        keepers: list[RollerKeeper] | None,
                        lock: DaemonLock | None = None) -> None:
    profile = store.active_profile()
    if profile is None:
        raise DaemonError("no profile: create one with `smartroller profile create NAME "
                          "--stature 1.72` (the analysis needs your stature)")
    if addresses is None:
        addresses = [d.address for d in store.devices() if d.bonded]
    if not addresses:
        raise DaemonError("no paired roller: pair one with `smartroller pair ADDRESS`")
    stop = stop or asyncio.Event()
    resumable, closed = store.recover(RECOVER_IDLE_S)
    for session in closed:
        offline_pass(store, session, user_model(profile))
        say(f"session {session.id} was left recording; closed at its last frame")
    made = [RollerKeeper(store, backend, a, data_dir, profile, idle_close_s=idle_close_s,
                         say=say, client_options=client_options) for a in addresses]
    if keepers is not None:
        keepers.extend(made)
    for keeper in made:
        for session in resumable:
            if session.device == keeper.address:
                keeper.resume(session)
    say(f"daemon: keeping {', '.join(addresses)} for profile {profile.name}")
    watch = asyncio.ensure_future(_watch(stop, lock, say))
    keeping = asyncio.ensure_future(asyncio.gather(*(k.run(stop) for k in made)))
    try:
        await asyncio.wait([watch, keeping], return_when=asyncio.FIRST_COMPLETED)
        if watch.done() and watch.exception() is not None:
            say(f"daemon: {watch.exception()}; stopping (a service manager restarts it)")
        stop.set()
        await keeping  # the keepers stop cleanly: what is stored is acknowledged
        await watch
    except StoreError:
        stop.set()
        raise
    finally:
        stop.set()
        watch.cancel()
        await asyncio.gather(watch, keeping, return_exceptions=True)
