"""The session store: SQLite in the user's data directory (docs/store.md).

- ``database``: ``Store`` (devices, profiles, sessions, frames, estimates, strokes,
  events) and ``open_store``.
- ``schema``: the versioned schema as ordered migrations.
- ``records``: what the store holds as Python values (rows, packed layouts, errors).

Product code imports from here; nothing here knows Bluetooth or the simulator.
"""

from host.store.connection import store_failure
from host.store.database import (
    APPROXIMATE_START,
    CLOSED,
    MIGRATIONS,
    RECORDING,
    SCHEMA_VERSION,
    SEXES,
    WARNING_KINDS,
    Device,
    Estimates,
    Frames,
    Migration,
    Profile,
    Session,
    SessionData,
    SessionSummary,
    Store,
    StoreError,
    estimate_dtype,
    frame_dtype,
    migrate,
    open_store,
)

__all__ = ["APPROXIMATE_START", "CLOSED", "MIGRATIONS", "RECORDING", "SCHEMA_VERSION",
           "SEXES", "WARNING_KINDS", "Device", "Estimates", "Frames", "Migration", "Profile",
           "Session", "SessionData",
           "SessionSummary", "Store", "StoreError", "estimate_dtype", "frame_dtype", "migrate",
           "open_store", "store_failure"]
