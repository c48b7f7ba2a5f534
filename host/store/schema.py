"""The session store's schema: ordered migrations and the table of applied versions.

``MIGRATIONS`` are the steps, oldest first; ``migrate(conn)`` applies those a database
lacks, one transaction each, and refuses a database from a newer smartroller. A new
step is appended with the next version; an applied step never changes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass

from host.store.records import StoreError

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "applied_versions", "migrate"]


@dataclass(frozen=True)
class Migration:
    """One step of the schema: ``version`` (1, 2 ...), what it does, its SQL."""

    version: int
    description: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "devices, sessions, frames, stream positions, clocks, profiles", """
        CREATE TABLE devices (
            address TEXT PRIMARY KEY, name TEXT, first_seen_utc REAL NOT NULL,
            last_seen_utc REAL NOT NULL, bonded INTEGER NOT NULL DEFAULT 0,
            key_store TEXT);
        CREATE TABLE profiles (
            id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, stature_m REAL NOT NULL,
            sex TEXT, body TEXT NOT NULL DEFAULT '{}', created_utc REAL NOT NULL,
            updated_utc REAL NOT NULL);
        CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT);
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY AUTOINCREMENT, device TEXT NOT NULL,
            profile_id INTEGER REFERENCES profiles(id) ON DELETE SET NULL,
            state TEXT NOT NULL CHECK (state IN ('recording', 'closed')),
            started_utc REAL NOT NULL, ended_utc REAL, last_utc REAL,
            zone_count INTEGER, frame_count INTEGER NOT NULL DEFAULT 0, last_boot INTEGER);
        CREATE INDEX sessions_device ON sessions(device, state);
        CREATE TABLE frame_keys (
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            boot INTEGER NOT NULL, seq INTEGER NOT NULL,
            PRIMARY KEY (session_id, boot, seq)) WITHOUT ROWID;
        CREATE TABLE frame_blocks (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            count INTEGER NOT NULL, data BLOB NOT NULL);
        CREATE INDEX frame_blocks_session ON frame_blocks(session_id, count);
        CREATE TABLE stream_positions (
            device TEXT NOT NULL, boot_id INTEGER NOT NULL, last_seq INTEGER NOT NULL,
            serial INTEGER NOT NULL, PRIMARY KEY (device, boot_id));
        CREATE TABLE clocks (
            device TEXT NOT NULL, boot_id INTEGER NOT NULL, sensor_t REAL NOT NULL,
            utc REAL NOT NULL, round_trip_s REAL NOT NULL, PRIMARY KEY (device, boot_id));
    """),
    Migration(2, "analysis: per-frame estimates, strokes, dwells, events", """
        CREATE TABLE estimate_blocks (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            count INTEGER NOT NULL, data BLOB NOT NULL);
        CREATE INDEX estimate_blocks_session ON estimate_blocks(session_id, count);
        CREATE TABLE strokes (
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            idx INTEGER NOT NULL, boot INTEGER, start_t REAL NOT NULL, end_t REAL NOT NULL,
            direction INTEGER NOT NULL, start_m REAL NOT NULL, end_m REAL NOT NULL,
            peak_speed_m_s REAL NOT NULL, mean_speed_m_s REAL NOT NULL,
            mean_load_n REAL NOT NULL, max_load_n REAL NOT NULL, regions TEXT NOT NULL,
            PRIMARY KEY (session_id, idx));
        CREATE TABLE dwells (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            boot INTEGER, start_t REAL NOT NULL, end_t REAL NOT NULL,
            position_m REAL NOT NULL, mean_load_n REAL NOT NULL);
        CREATE INDEX dwells_session ON dwells(session_id);
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            boot INTEGER, kind TEXT NOT NULL, start_t REAL NOT NULL, end_t REAL,
            message TEXT NOT NULL, value REAL);
        CREATE INDEX events_session ON events(session_id, kind);
    """),
    Migration(3, "devices: the roller's own calibration as last read", """
        ALTER TABLE devices ADD COLUMN calibration BLOB;
        ALTER TABLE devices ADD COLUMN calibration_utc REAL;
    """),
    Migration(4, "clocks: every SET_TIME exchange of a boot, not only the newest", """
        CREATE TABLE clock_exchanges (
            device TEXT NOT NULL, boot_id INTEGER NOT NULL, sensor_t REAL NOT NULL,
            utc REAL NOT NULL, round_trip_s REAL NOT NULL,
            PRIMARY KEY (device, boot_id, sensor_t)) WITHOUT ROWID;
        INSERT INTO clock_exchanges SELECT device, boot_id, sensor_t, utc, round_trip_s
            FROM clocks;
        DROP TABLE clocks;
        ALTER TABLE clock_exchanges RENAME TO clocks;
    """),
    Migration(5, "sessions: whether the start is known (a boot no host saw: a bound)", """
        ALTER TABLE sessions ADD COLUMN start_known INTEGER NOT NULL DEFAULT 1;
        UPDATE sessions SET start_known = 0 WHERE last_utc IS NULL AND frame_count > 0;
    """),
)
SCHEMA_VERSION = MIGRATIONS[-1].version
"""The newest schema this code knows."""

_VERSION_TABLE = ("CREATE TABLE IF NOT EXISTS schema_version ("
                  "version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                  "applied_utc REAL NOT NULL)")


def applied_versions(conn: sqlite3.Connection) -> list[int]:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "schema_version" not in tables:
        if tables - {"sqlite_sequence"}:
            raise StoreError("not a smartroller database (it has other tables and no "
                             "schema_version)")
        return []
    return [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY version")]


def migrate(conn: sqlite3.Connection, up_to: int = SCHEMA_VERSION) -> list[int]:
    """Apply the migrations not yet applied, up to ``up_to``, one transaction each;
    returns the versions applied. StoreError for a database from a newer version."""
    applied = applied_versions(conn)
    newest = max(applied, default=0)
    if newest > SCHEMA_VERSION:
        raise StoreError(f"the database is from a newer smartroller (schema {newest}; this "
                         f"one knows up to {SCHEMA_VERSION}): upgrade smartroller")
    done = []
    for step in MIGRATIONS:
        if step.version in applied or step.version > up_to:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(_VERSION_TABLE)
            for statement in _statements(step.sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                         (step.version, step.description, time.time()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        done.append(step.version)
    return done


def _statements(sql: str) -> Iterator[str]:
    for part in sql.split(";"):
        if part.strip():
            yield part
