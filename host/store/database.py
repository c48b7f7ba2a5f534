"""The session store: SQLite in the user's data directory (docs/store.md).

One file (``smartroller.db``, see ``host.paths``) holds devices and their stream
positions, rolling sessions with their frames, per-frame spine estimates, strokes,
dwells and events, the roller clocks' UTC mappings, and user profiles.

- **WAL**, ``synchronous=NORMAL``: every write is one transaction, committed before the
  call returns; a killed process (SIGKILL at any moment) loses nothing committed and
  leaves nothing half-written. An OS crash or power loss may lose the last commits
  since the WAL was last synced: ``sync()`` makes everything durable (one fsync; call it
  before acknowledging frames to the roller), ``Store(..., durable=True)`` syncs every
  commit (about 1 ms more per commit).
- **Versioned schema**: ``schema_version`` lists the applied versions; ``MIGRATIONS``
  are ordered steps, applied in one transaction each when an older database is opened;
  a database from a newer smartroller is refused (``StoreError``, one line).
- **Sessions** are ``recording`` until ``close_session``; a daemon that restarts calls
  ``recover()``: it closes the sessions idle too long (end = their last frame) and
  returns the others, which the daemon may go on appending to.
- **Frames** come in arrival order (live first, backfill later). Each ``add_frames``
  call stores one block (a packed array) of the frames new to the session (a
  ``(boot, seq)`` already stored is ignored), plus their keys, the session's counters
  and the device's stream position, in one transaction. Reading sorts by
  ``(boot, seq)``. Small blocks are merged into large ones as the session grows and at
  its close, so reading an hour (360,000 frames) back into numpy arrays takes a tenth of
  a second.

Units are SI (m, s, N, rad); times are the roller's sensor time (``Frame.t``, s, one
boot) or UTC (s since 1970). Nothing here knows Bluetooth: the daemon hands in frames,
``ClockMap``s and ``StreamPosition``s.
"""

from __future__ import annotations

import math
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from firmware.protocol import Frame
from host.analysis.model import Dwell, Event, EventKind, Region, SpineEstimate, Stroke
from host.paths import DataDirError, check_dir, database_path
from host.store.connection import now_utc as _now
from host.store.dating import SessionSpan, start_bounds
from host.store.profiles import ProfileTables
from host.store.records import (
    APPROXIMATE_START,
    CLOSED,
    ESTIMATE_DTYPE,
    ESTIMATE_STRUCT,
    RECORDING,
    SEXES,
    WARNING_KINDS,
    Device,
    Estimates,
    Frames,
    Profile,
    Session,
    SessionData,
    SessionSummary,
    StoreError,
    estimate_dtype,
    frame_dtype,
    frame_key,
    frame_struct,
    newest_estimates,
)
from host.store.rollers import RollerTables
from host.store.schema import MIGRATIONS, SCHEMA_VERSION, Migration, migrate
from host.stream import ClockMap, StreamPosition

__all__ = ["APPROXIMATE_START", "CLOSED", "MIGRATIONS", "RECORDING", "SCHEMA_VERSION",
           "SEXES", "WARNING_KINDS", "Device", "Estimates", "Frames", "Migration", "Profile",
           "Session", "SessionData",
           "SessionSummary", "Store", "StoreError", "estimate_dtype", "frame_dtype", "migrate",
           "open_store"]

SMALL_BLOCK = 512
"""Blocks with fewer frames are merged when ``MERGE_AT`` of them have piled up."""
MERGE_AT = 1024
BIG_BLOCK = 16384
"""Frames per block after a merge."""

# --------------------------------------------------------------------------- the store


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


class Store(RollerTables, ProfileTables):
    """The SQLite session store at ``path`` (created with its schema if missing).

    durable: fsync every commit (``synchronous=FULL``) instead of on ``sync()``.
    readonly: open for reading only (no migration, no creation).
    Use as a context manager, or call ``close()``. One ``Store`` per thread.

    The rollers' rows (devices, clocks, stream positions) are ``RollerTables``', the
    profiles ``ProfileTables``'; sessions, their frames and their analysis are here.
    """

    # ------------------------------------------------------------------ sessions

    _SESSION_COLUMNS = ("id, device, profile_id, state, started_utc, ended_utc, last_utc, "
                        "zone_count, frame_count, last_boot, start_known")

    def open_session(self, device: str, started_utc: float | None = None, *,
                     profile_id: int | None = None, zone_count: int | None = None,
                     start_known: bool = True) -> Session:
        """Start a session of ``device`` (state ``RECORDING``) at ``started_utc``
        (default now); ``profile_id`` default: the active profile. ``start_known``
        False: its first frame has no UTC (a boot no host saw), the start is a bound
        (``host.store.dating``; the close bounds it closer)."""
        if profile_id is None:
            active = self.active_profile()
            profile_id = None if active is None else active.id
        start = _now() if started_utc is None else started_utc
        with self._write() as conn:
            cur = conn.execute("INSERT INTO sessions (device, profile_id, state, started_utc, "
                               "zone_count, start_known) VALUES (?, ?, 'recording', ?, ?, ?)",
                               (device.upper(), profile_id, start, zone_count,
                                int(start_known)))
        return self.session(int(cur.lastrowid or 0))

    def _session_or_none(self, session_id: int) -> Session | None:
        row = self._conn.execute(f"SELECT {self._SESSION_COLUMNS} FROM sessions WHERE id = ?",
                                 (session_id,)).fetchone()
        return None if row is None else Session(*row)

    def session(self, session_id: int) -> Session:
        """The session with ``session_id``; StoreError if there is none."""
        session = self._session_or_none(session_id)
        if session is None:
            raise StoreError(f"no session {session_id}")
        return session

    def latest_session(self) -> Session:
        """The most recently started session; StoreError if there is none."""
        sid = self._one("SELECT id FROM sessions ORDER BY started_utc DESC, id DESC LIMIT 1")
        if sid is None:
            raise StoreError("no session recorded yet")
        return self.session(sid)

    def sessions(self, device: str | None = None, state: str | None = None) -> list[Session]:
        """Sessions (of ``device``, in ``state`` if given), oldest first."""
        where, args = [], []
        if device is not None:
            where.append("device = ?")
            args.append(device.upper())
        if state is not None:
            where.append("state = ?")
            args.append(state)
        sql = f"SELECT {self._SESSION_COLUMNS} FROM sessions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [Session(*r) for r in self._conn.execute(sql + " ORDER BY started_utc, id", args)]

    def summaries(self) -> list[SessionSummary]:
        """Every session with its stroke and warning counts, oldest first."""
        marks = ",".join("?" * len(WARNING_KINDS))
        rows = self._conn.execute(
            f"SELECT {', '.join('s.' + c.strip() for c in self._SESSION_COLUMNS.split(','))}, "
            "(SELECT count(*) FROM strokes k WHERE k.session_id = s.id), "
            f"(SELECT count(*) FROM events e WHERE e.session_id = s.id AND e.kind IN ({marks})) "
            "FROM sessions s ORDER BY s.started_utc, s.id", [str(k) for k in WARNING_KINDS])
        return [SessionSummary(Session(*r[:11]), r[11], r[12]) for r in rows]

    def summary(self, session_id: int) -> SessionSummary:
        """One session with its counts."""
        for summary in self.summaries():
            if summary.session.id == session_id:
                return summary
        raise StoreError(f"no session {session_id}")

    def calibrated_sessions(self) -> set[int]:
        """Ids of the sessions whose calibration completed (a ``calibration`` event
        whose message starts with "calibrated", as the analysis words it)."""
        rows = self._conn.execute("SELECT DISTINCT session_id FROM events WHERE kind = ? "
                                  "AND message LIKE 'calibrated%'",
                                  (str(EventKind.CALIBRATION),))
        return {r[0] for r in rows}

    def close_session(self, session_id: int, ended_utc: float | None = None) -> Session:
        """End a session (state ``CLOSED``) at ``ended_utc`` (default: its newest frame's
        UTC, else now), filling in UTC its frames lacked and merging its frame blocks.

        Its start becomes the UTC of its first frame when that is known (the daemon
        may have opened it at a later one: it joined late and the roller's journal sent
        the start afterwards), so that no frame of it lies before its start. Both come
        from the clock mapping as it is now (refined since the frames were stored).
        A session whose first frame has no UTC (its boot was never mapped) gets upper
        bounds instead, ``start_known`` false, as do the device's other such sessions
        (``host.store.dating``: a later session bounds an earlier one)."""
        session = self.session(session_id)
        first, newest = self._frame_utc_span(session)
        end = ended_utc if ended_utc is not None else (
            newest if newest is not None else session.last_utc if session.last_utc is not None
            else _now())
        start = session.started_utc if first is None else first
        known = first is not None or (session.frame_count == 0 and session.start_known)
        with self._write() as conn:
            self._merge_blocks(conn, session, BIG_BLOCK)
            conn.execute("UPDATE sessions SET state = 'closed', started_utc = ?, ended_utc = ?, "
                         "last_utc = coalesce(?, last_utc), start_known = ? WHERE id = ?",
                         (start, max(end, start), newest, int(known), session_id))
            self._bound_unknown_starts(conn, session.device)
        return self.session(session_id)

    def _bound_unknown_starts(self, conn: sqlite3.Connection, device: str) -> None:
        """Date the closed sessions of ``device`` whose start is not known by their
        upper bounds (``host.store.dating.start_bounds``)."""
        if conn.execute("SELECT 1 FROM sessions WHERE device = ? AND start_known = 0 "
                        "AND state = 'closed' LIMIT 1", (device,)).fetchone() is None:
            return
        spans = []
        for session in self.sessions(device):
            if session.last_boot is None or not session.frame_count:
                continue
            if session.start_known:
                first, last = conn.execute(
                    "SELECT min(seq), max(seq) FROM frame_keys WHERE session_id = ? AND "
                    "boot = ?", (session.id, session.last_boot)).fetchone()
                t0 = t1 = math.nan
            else:
                first, last, t0, t1 = self._ends(session)
            if first is None:
                continue
            spans.append(SessionSpan(session.id, session.last_boot, first, last, t0, t1,
                                     session.started_utc, session.ended_utc,
                                     bool(session.start_known)
                                     or session.state != CLOSED))
        seqs = dict(conn.execute("SELECT boot_id, last_seq FROM stream_positions WHERE "
                                 "device = ?", (device,)).fetchall())
        for span in spans:
            seqs[span.boot] = max(seqs.get(span.boot, -1), span.last_seq)
        exchanges = {boot: (seqs[boot], utc) for boot, utc in conn.execute(
            "SELECT boot_id, min(utc) FROM clocks WHERE device = ? GROUP BY boot_id",
            (device,)) if boot in seqs}
        for session_id, (start, end) in start_bounds(spans, exchanges).items():
            conn.execute("UPDATE sessions SET started_utc = ?, ended_utc = ? WHERE id = ?",
                         (start, end, session_id))

    def _ends(self, session: Session) -> tuple[int, int, float, float]:
        """The seq and sensor time (s) of the session's first and last frame, in (boot,
        seq) order: its frames decoded once per frame count (``_bound_unknown_starts``
        asks at every close of the device's sessions; a closed session's frames change
        only when late backfill adds some)."""
        cache: dict[int, tuple[int, tuple[int, int, float, float]]] = \
            self.__dict__.setdefault("_ends_cache", {})
        hit = cache.get(session.id)
        if hit is not None and hit[0] == session.frame_count:
            return hit[1]
        rec = self._frame_records(session)
        ends = (int(rec["seq"][0]), int(rec["seq"][-1]), float(rec["t"][0]),
                float(rec["t"][-1]))
        cache[session.id] = (session.frame_count, ends)
        return ends

    def _frame_utc_span(self, session: Session) -> tuple[float | None, float | None]:
        """UTC of the session's first frame and its newest mapped one (None: no frame,
        or not mapped)."""
        utc = self._frame_records(session)["utc"]
        first = float(utc[0]) if len(utc) else math.nan
        mapped = utc[np.isfinite(utc)]
        return (first if math.isfinite(first) else None,
                float(mapped.max()) if len(mapped) else None)

    def recover(self, idle_s: float = 600.0, now_utc: float | None = None
                ) -> tuple[list[Session], list[Session]]:
        """After a restart: close the recording sessions whose newest frame (or start)
        is more than ``idle_s`` old (they end at their newest frame); return ``(still
        recording, closed now)``. Every frame committed before the crash is kept."""
        now = _now() if now_utc is None else now_utc
        resumable, closed = [], []
        for session in self.sessions(state=RECORDING):
            newest = session.last_utc if session.last_utc is not None else session.started_utc
            if now - newest > idle_s:
                closed.append(self.close_session(session.id, newest))
            else:
                resumable.append(session)
        return resumable, closed

    def recording_session(self, device: str) -> Session | None:
        """The newest session of ``device`` still recording, None if none."""
        found = self.sessions(device, RECORDING)
        return found[-1] if found else None

    def delete_session(self, session_id: int) -> None:
        """Remove a session and everything in it."""
        with self._write() as conn:
            if conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount == 0:
                raise StoreError(f"no session {session_id}")

    # ------------------------------------------------------------------ frames

    def add_frames(self, session_id: int, frames: Sequence[Frame], *,
                   clock: ClockMap | None = None, utc: Sequence[float | None] | None = None,
                   position: StreamPosition | None = None,
                   estimates: Sequence[SpineEstimate | None] | None = None) -> int:
        """Store a batch of frames in one transaction; returns how many were new.

        frames: in any order; a ``(boot, seq)`` the session already has is ignored.
        clock: the daemon's ``ClockMap``: each frame's UTC is ``clock.frame_utc(frame)``
            and the mappings of the frames' boots are kept (frames stored before their
            boot was mapped get their UTC from it when read). ``utc``: per-frame UTC
            instead (None entries: not mapped).
        position: the device's stream position after these frames (``RollerClient.
            position``), saved in the same transaction: acknowledge to the roller only
            after this returns.
        estimates: per-frame spine estimates aligned with ``frames`` (None entries: none
            yet), stored with them.
        """
        session = self.session(session_id)
        if not frames:
            if position is not None:
                with self._write() as conn:
                    self._save_position(conn, session.device, position)
            return 0
        zone_count = len(frames[0].zone_loads)
        if any(len(f.zone_loads) != zone_count for f in frames):
            raise StoreError("frames of one batch have different zone counts")
        if session.zone_count is not None and session.zone_count != zone_count:
            raise StoreError(f"session {session_id} has {session.zone_count} zones, these "
                             f"frames {zone_count}")
        if utc is not None and len(utc) != len(frames):
            raise StoreError("utc must have one value per frame")
        if estimates is not None and len(estimates) != len(frames):
            raise StoreError("estimates must have one value per frame")
        with self._write() as conn:
            new = self._new_indexes(conn, session_id, frames)
            if new:
                self._insert_frames(conn, session, frames, new, zone_count, clock, utc)
                if estimates is not None:
                    rows = [(frames[i], estimates[i]) for i in new if estimates[i] is not None]
                    self._insert_estimates(conn, session_id, rows)
            if clock is not None:
                for boot in {f.boot for f in frames}:
                    self._save_new_clocks(conn, session.device, clock, boot)
            if position is not None:
                self._save_position(conn, session.device, position)
        return len(new)

    @staticmethod
    def _new_indexes(conn: sqlite3.Connection, session_id: int, frames: Sequence[Frame]
                     ) -> list[int]:
        """Indexes of the frames the session does not have (first of duplicates in the
        batch), their keys inserted."""
        new, seen = [], set()
        insert = conn.execute
        for i, f in enumerate(frames):
            key = (f.boot, f.seq)
            if key in seen:
                continue
            seen.add(key)
            if insert("INSERT OR IGNORE INTO frame_keys VALUES (?, ?, ?)",
                      (session_id, f.boot, f.seq)).rowcount:
                new.append(i)
        return new

    def _insert_frames(self, conn: sqlite3.Connection, session: Session,
                       frames: Sequence[Frame], new: list[int], zone_count: int,
                       clock: ClockMap | None, utc: Sequence[float | None] | None) -> None:
        pack = frame_struct(zone_count).pack
        parts, newest_utc = [], session.last_utc
        nan = math.nan
        for i in new:
            f = frames[i]
            u = utc[i] if utc is not None else (clock.frame_utc(f) if clock is not None
                                                else None)
            if u is not None and (newest_utc is None or u > newest_utc):
                newest_utc = u
            parts.append(pack(f.boot, f.seq, f.t, nan if u is None else u, f.position,
                              f.velocity, f.angle, f.total_load, int(f.flags) & 0xFFFF,
                              *f.zone_loads))
        conn.execute("INSERT INTO frame_blocks (session_id, count, data) VALUES (?, ?, ?)",
                     (session.id, len(parts), b"".join(parts)))
        last_boot = frames[new[-1]].boot
        conn.execute("UPDATE sessions SET frame_count = frame_count + ?, last_utc = ?, "
                     "zone_count = ?, last_boot = ? WHERE id = ?",
                     (len(parts), newest_utc, zone_count, last_boot, session.id))
        small = self._one_in(conn, "SELECT count(*) FROM frame_blocks WHERE session_id = ? "
                             "AND count < ?", (session.id, SMALL_BLOCK))
        if small >= MERGE_AT:
            self._merge_blocks(conn, session, SMALL_BLOCK)

    @staticmethod
    def _one_in(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> Any:
        return conn.execute(sql, args).fetchone()[0]

    def _merge_blocks(self, conn: sqlite3.Connection, session: Session, below: int) -> None:
        """Merge the session's frame blocks of fewer than ``below`` frames into sorted
        blocks of ``BIG_BLOCK``, filling UTC from the stored clock mappings."""
        if session.zone_count is None:
            zone_count = self._one_in(conn, "SELECT zone_count FROM sessions WHERE id = ?",
                                      (session.id,))
            if zone_count is None:
                return
        else:
            zone_count = session.zone_count
        rows = conn.execute("SELECT id, data FROM frame_blocks WHERE session_id = ? AND "
                            "count < ?", (session.id, below)).fetchall()
        if not rows:
            return
        rec = np.frombuffer(b"".join(r[1] for r in rows), dtype=frame_dtype(zone_count)).copy()
        rec = rec[np.lexsort((rec["seq"], rec["boot"]))]
        self._fill_utc(conn, session.device, rec)
        conn.execute(f"DELETE FROM frame_blocks WHERE id IN ({','.join('?' * len(rows))})",
                     [r[0] for r in rows])
        for start in range(0, len(rec), BIG_BLOCK):
            part = rec[start:start + BIG_BLOCK]
            conn.execute("INSERT INTO frame_blocks (session_id, count, data) VALUES (?, ?, ?)",
                         (session.id, len(part), part.tobytes()))
        self._merge_estimates(conn, session.id, below)

    @staticmethod
    def _merge_estimates(conn: sqlite3.Connection, session_id: int, below: int) -> None:
        """Merge the session's estimate blocks of fewer than ``below`` records into
        sorted blocks, keeping the newest estimate of each frame."""
        rows = conn.execute("SELECT id, data FROM estimate_blocks WHERE session_id = ? AND "
                            "count < ? ORDER BY id", (session_id, below)).fetchall()
        if len(rows) < 2:
            return
        rec, _ = newest_estimates(np.frombuffer(b"".join(r[1] for r in rows),
                                                 dtype=ESTIMATE_DTYPE))
        conn.execute(f"DELETE FROM estimate_blocks WHERE id IN ({','.join('?' * len(rows))})",
                     [r[0] for r in rows])
        for start in range(0, len(rec), BIG_BLOCK):
            part = rec[start:start + BIG_BLOCK]
            conn.execute("INSERT INTO estimate_blocks (session_id, count, data) VALUES "
                         "(?, ?, ?)", (session_id, len(part), part.tobytes()))

    def read_frames(self, session_id: int) -> Frames:
        """The session's frames in ``(boot, seq)`` order, each once; UTC filled in from
        the clock mappings for frames stored before their boot was mapped."""
        session = self.session(session_id)
        rec = self._frame_records(session)
        return Frames.from_records(rec)

    def _frame_records(self, session: Session) -> np.ndarray:
        dtype = frame_dtype(session.zone_count or 0)
        blob = b"".join(r[0] for r in self._conn.execute(
            "SELECT data FROM frame_blocks WHERE session_id = ?", (session.id,)))
        rec = np.frombuffer(blob, dtype=dtype).copy()
        if len(rec):
            order = np.lexsort((rec["seq"], rec["boot"]))
            rec = rec[order]
            self._fill_utc(self._conn, session.device, rec)
        return rec

    def iter_frames(self, session_id: int) -> Iterator[Frame]:
        """The session's frames as ``Frame``s, in ``(boot, seq)`` order."""
        frames = self.read_frames(session_id)
        for i in range(len(frames)):
            yield frames.frame(i)

    # ------------------------------------------------------------------ analysis

    @staticmethod
    def _insert_estimates(conn: sqlite3.Connection, session_id: int,
                          rows: Iterable[tuple[Frame, SpineEstimate]]) -> None:
        pack = ESTIMATE_STRUCT.pack
        parts = [pack(f.boot, f.seq, e.level, -1 if e.region is None else int(e.region),
                      e.p_below_ribs, e.back_m, e.sd_m) for f, e in rows]
        if parts:
            conn.execute("INSERT INTO estimate_blocks (session_id, count, data) VALUES "
                         "(?, ?, ?)", (session_id, len(parts), b"".join(parts)))

    def add_estimates(self, session_id: int, frames: Sequence[Frame],
                      estimates: Sequence[SpineEstimate]) -> None:
        """Store spine estimates of frames (a newer estimate of a frame replaces an
        older one when read)."""
        self.session(session_id)
        if len(frames) != len(estimates):
            raise StoreError("estimates must have one value per frame")
        with self._write() as conn:
            self._insert_estimates(conn, session_id, zip(frames, estimates, strict=True))

    def read_estimates(self, session_id: int, frames: Frames | None = None) -> Estimates:
        """The session's estimates aligned with ``frames`` (default: ``read_frames``);
        frames without one are NaN / -1."""
        frames = self.read_frames(session_id) if frames is None else frames
        blob = b"".join(r[0] for r in self._conn.execute(
            "SELECT data FROM estimate_blocks WHERE session_id = ? ORDER BY id", (session_id,)))
        out = Estimates.unknown(len(frames))
        rec = np.frombuffer(blob, dtype=ESTIMATE_DTYPE)
        if not len(rec) or not len(frames):
            return out
        rec, keys = newest_estimates(rec)
        frame_keys = frame_key(frames.boot, frames.seq)
        pos = np.searchsorted(frame_keys, keys)
        ok = pos < len(frame_keys)
        ok[ok] = frame_keys[pos[ok]] == keys[ok]
        pos, rec = pos[ok], rec[ok]
        out.level[pos] = rec["level"]
        out.region[pos] = rec["region"]
        out.p_below_ribs[pos] = rec["p_below_ribs"]
        out.back_m[pos] = rec["back_m"]
        out.sd_m[pos] = rec["sd_m"]
        return out

    def _default_boot(self, session_id: int, boot: int | None) -> int | None:
        return boot if boot is not None else self.session(session_id).last_boot

    @staticmethod
    def _stroke_row(session_id: int, boot: int | None, s: Stroke) -> tuple:
        return (session_id, s.index, boot, s.start_t, s.end_t, s.direction, s.start_m, s.end_m,
                s.peak_speed_m_s, s.mean_speed_m_s, s.mean_load_n, s.max_load_n,
                ",".join(s.regions))

    def add_strokes(self, session_id: int, strokes: Iterable[Stroke],
                    boot: int | None = None) -> None:
        """Store strokes (a stroke with an index already stored replaces it); their
        times are sensor times of ``boot`` (default: the session's newest boot)."""
        boot = self._default_boot(session_id, boot)
        with self._write() as conn:
            conn.executemany("INSERT OR REPLACE INTO strokes VALUES "
                             "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             [self._stroke_row(session_id, boot, s) for s in strokes])

    def add_dwells(self, session_id: int, dwells: Iterable[Dwell],
                   boot: int | None = None) -> None:
        """Store dwells (sensor times of ``boot``, default the session's newest)."""
        boot = self._default_boot(session_id, boot)
        with self._write() as conn:
            conn.executemany("INSERT INTO dwells (session_id, boot, start_t, end_t, "
                             "position_m, mean_load_n) VALUES (?, ?, ?, ?, ?, ?)",
                             [(session_id, boot, d.start_t, d.end_t, d.position_m,
                               d.mean_load_n) for d in dwells])

    def add_event(self, session_id: int, event: Event, boot: int | None = None) -> int:
        """Store one event (sensor times of ``boot``, default the session's newest);
        returns its id (for ``end_event``)."""
        boot = self._default_boot(session_id, boot)
        with self._write() as conn:
            cur = conn.execute(*self._event_insert(session_id, boot, event))
        return int(cur.lastrowid or 0)

    @staticmethod
    def _event_insert(session_id: int, boot: int | None, e: Event) -> tuple[str, tuple]:
        return ("INSERT INTO events (session_id, boot, kind, start_t, end_t, message, value) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session_id, boot, str(e.kind), e.start_t, e.end_t, e.message,
                 _finite_or_none(e.value)))

    def end_event(self, event_id: int, end_t: float, value: float | None = None) -> None:
        """Set the end (sensor time, s) of an event stored open, and its value if given."""
        with self._write() as conn:
            n = conn.execute("UPDATE events SET end_t = ?, value = coalesce(?, value) "
                             "WHERE id = ?", (end_t, _finite_or_none(value), event_id)).rowcount
        if n == 0:
            raise StoreError(f"no event {event_id}")

    def replace_analysis(self, session_id: int, *, frames: Frames | None = None,
                         estimates: Estimates | None = None,
                         strokes: Sequence[Stroke] = (), dwells: Sequence[Dwell] = (),
                         events: Sequence[Event] = (), boot: int | None = None) -> None:
        """Replace the session's whole analysis in one transaction (the offline pass):
        ``estimates`` aligned with ``frames`` (default: ``read_frames``; None: drop the
        stored estimates), strokes, dwells and events (times of ``boot``)."""
        session = self.session(session_id)
        boot = boot if boot is not None else session.last_boot
        if estimates is not None:
            frames = self.read_frames(session_id) if frames is None else frames
            if len(estimates) != len(frames):
                raise StoreError(f"{len(estimates)} estimates for {len(frames)} frames")
        with self._write() as conn:
            for table in ("estimate_blocks", "strokes", "dwells", "events"):
                conn.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
            if estimates is not None and frames is not None and len(frames):
                rec = np.empty(len(frames), dtype=ESTIMATE_DTYPE)
                rec["boot"], rec["seq"] = frames.boot, frames.seq
                rec["level"], rec["region"] = estimates.level, estimates.region
                rec["p_below_ribs"] = estimates.p_below_ribs
                rec["back_m"], rec["sd_m"] = estimates.back_m, estimates.sd_m
                for start in range(0, len(rec), BIG_BLOCK):
                    part = rec[start:start + BIG_BLOCK]
                    conn.execute("INSERT INTO estimate_blocks (session_id, count, data) "
                                 "VALUES (?, ?, ?)", (session_id, len(part), part.tobytes()))
            conn.executemany("INSERT INTO strokes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             [self._stroke_row(session_id, boot, s) for s in strokes])
            conn.executemany("INSERT INTO dwells (session_id, boot, start_t, end_t, "
                             "position_m, mean_load_n) VALUES (?, ?, ?, ?, ?, ?)",
                             [(session_id, boot, d.start_t, d.end_t, d.position_m,
                               d.mean_load_n) for d in dwells])
            for event in events:
                conn.execute(*self._event_insert(session_id, boot, event))

    def strokes(self, session_id: int) -> list[tuple[int | None, Stroke]]:
        """``(boot, stroke)`` of the session, by index."""
        rows = self._conn.execute("SELECT idx, boot, start_t, end_t, direction, start_m, end_m, "
                                  "peak_speed_m_s, mean_speed_m_s, mean_load_n, max_load_n, "
                                  "regions FROM strokes WHERE session_id = ? ORDER BY idx",
                                  (session_id,))
        return [(r[1], Stroke(r[0], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                              tuple(x for x in r[11].split(",") if x))) for r in rows]

    def dwells(self, session_id: int) -> list[tuple[int | None, Dwell]]:
        """``(boot, dwell)`` of the session, by start."""
        rows = self._conn.execute("SELECT boot, start_t, end_t, position_m, mean_load_n FROM "
                                  "dwells WHERE session_id = ? ORDER BY boot, start_t, id",
                                  (session_id,))
        return [(r[0], Dwell(r[1], r[2], r[3], r[4])) for r in rows]

    def events(self, session_id: int) -> list[tuple[int, int | None, Event]]:
        """``(id, boot, event)`` of the session, in the order they were stored."""
        rows = self._conn.execute("SELECT id, boot, kind, start_t, end_t, message, value FROM "
                                  "events WHERE session_id = ? ORDER BY id", (session_id,))
        return [(r[0], r[1], Event(EventKind(r[2]), r[3], r[4], r[5], r[6])) for r in rows]

    def load(self, session_id: int,
             progress: Callable[[float], None] | None = None) -> SessionData:
        """Everything of one session (``progress(fraction)`` called as parts load)."""
        session = self.session(session_id)
        frames = self.read_frames(session_id)
        if progress:
            progress(0.6)
        estimates = self.read_estimates(session_id, frames)
        if progress:
            progress(0.9)
        return SessionData(session, frames, estimates, self.strokes(session_id),
                           self.dwells(session_id), self.events(session_id),
                           self._clocks(self._conn, session.device))


def region_of(value: int) -> Region | None:
    """A stored region value as a ``Region`` (None for -1)."""
    return None if value < 0 else Region(value)


def open_store(data_dir: str | os.PathLike[str] | None = None, *, create: bool = True,
               durable: bool = False) -> Store:
    """The store in the data directory (``host.paths.data_dir``); ``create``: make the
    directory and the database if missing, else StoreError when there is none."""
    path = database_path(data_dir)
    try:
        check_dir(path.parent, create=create, private=True)
    except DataDirError as exc:
        if not create and not path.parent.exists():
            raise StoreError(f"no session store in {path.parent} (nothing recorded yet)") \
                from None
        raise StoreError(str(exc)) from None
    if not create and not path.exists():
        raise StoreError(f"no session store in {path.parent} (nothing recorded yet)")
    return Store(path, durable=durable)
