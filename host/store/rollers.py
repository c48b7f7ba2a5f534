"""The store's rows of each roller: the device (name, bond, key store), its boots'
sensor-time -> UTC mappings (clocks) and where its stream resumes (stream positions).

Addresses are kept upper-case. Forgetting a device removes its rows here; its sessions
stay (they are the user's data).
"""

from __future__ import annotations

import os
import sqlite3

import numpy as np

from firmware.protocol import ProtocolError, RollerCalibration
from host.store.connection import StoreConnection, now_utc
from host.store.records import Device
from host.stream import ClockMap, ClockSample, StreamPosition

__all__ = ["RollerTables"]

_DEVICE_COLUMNS = ("address, name, first_seen_utc, last_seen_utc, bonded, key_store, "
                   "calibration, calibration_utc")


def _device(row: tuple) -> Device:
    return Device(row[0], row[1], row[2], row[3], bool(row[4]), row[5],
                  None if row[6] is None else bytes(row[6]), row[7])


class RollerTables(StoreConnection):
    """Devices, clocks and stream positions of the store's rollers."""

    def note_device(self, address: str, *, name: str | None = None,
                    seen_utc: float | None = None, bonded: bool | None = None,
                    key_store: str | os.PathLike[str] | None = None) -> Device:
        """Add or update a device: seen at ``seen_utc`` (default now); ``name``,
        ``bonded`` and ``key_store`` change only when given."""
        address = address.upper()
        seen = now_utc() if seen_utc is None else seen_utc
        ks = None if key_store is None else str(key_store)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO devices (address, name, first_seen_utc, last_seen_utc, bonded, "
                "key_store) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(address) DO UPDATE SET "
                "name = coalesce(excluded.name, name), "
                "first_seen_utc = min(first_seen_utc, excluded.first_seen_utc), "
                "last_seen_utc = max(last_seen_utc, excluded.last_seen_utc), "
                "bonded = CASE WHEN ? IS NULL THEN bonded ELSE excluded.bonded END, "
                "key_store = coalesce(excluded.key_store, key_store)",
                (address, name, seen, seen, int(bool(bonded)), ks, bonded))
        device = self.device(address)
        assert device is not None
        return device

    def note_calibration(self, address: str, value: bytes,
                         read_utc: float | None = None) -> None:
        """Keep the CALIBRATION value a known device gave at ``read_utc`` (default now)
        (``firmware.protocol.RollerCalibration`` bytes; the store keeps them as read)."""
        with self._write() as conn:
            conn.execute("UPDATE devices SET calibration = ?, calibration_utc = ? "
                         "WHERE address = ?", (bytes(value), now_utc() if read_utc is None
                                               else read_utc, address.upper()))

    def device(self, address: str) -> Device | None:
        """The device with ``address``, None if unknown."""
        row = self._conn.execute(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE address = ?",
                                 (address.upper(),)).fetchone()
        return None if row is None else _device(row)

    def devices(self) -> list[Device]:
        """Every known device, most recently seen first."""
        rows = self._conn.execute(f"SELECT {_DEVICE_COLUMNS} FROM devices "
                                  "ORDER BY last_seen_utc DESC, address")
        return [_device(r) for r in rows]

    def forget_device(self, address: str) -> bool:
        """Remove a device, its stream positions and clock mappings (its sessions stay:
        they are the user's data). False if it was not known."""
        address = address.upper()
        with self._write() as conn:
            n = conn.execute("DELETE FROM devices WHERE address = ?", (address,)).rowcount
            conn.execute("DELETE FROM stream_positions WHERE device = ?", (address,))
            conn.execute("DELETE FROM clocks WHERE device = ?", (address,))
        return n > 0

    def _clocks(self, conn: sqlite3.Connection, device: str) -> ClockMap:
        """The device's stored exchanges as a ``ClockMap``, with the roller's own clock
        ratio (its stored CALIBRATION) where exchanges do not measure the rate."""
        rows = conn.execute("SELECT boot_id, sensor_t, utc, round_trip_s FROM clocks "
                            "WHERE device = ?", (device,))
        return ClockMap((ClockSample(*r) for r in rows), self._sensor_rate(conn, device))

    @staticmethod
    def _sensor_rate(conn: sqlite3.Connection, device: str) -> float:
        row = conn.execute("SELECT calibration FROM devices WHERE address = ?",
                           (device,)).fetchone()
        if row is None or row[0] is None:
            return 1.0
        try:
            return 1.0 + RollerCalibration.decode(bytes(row[0])).imu_clock_error
        except ProtocolError:
            return 1.0  # kept as read; a value this host cannot parse says nothing

    def _fill_utc(self, conn: sqlite3.Connection, device: str, rec: np.ndarray) -> None:
        """Map the frames of every boot with exchanges through the current mapping (the
        stored UTC of the others is kept: None/NaN, or a caller's own ``utc=``)."""
        clock = self._clocks(conn, device)
        boots = rec["boot"]
        for boot in np.unique(boots):
            sel = boots == boot
            utc = clock.to_utc_array(int(boot), rec["t"][sel])
            if utc is not None:
                rec["utc"][sel] = utc

    def set_clock(self, device: str, sample: ClockSample) -> None:
        """Keep a SET_TIME exchange of one of the device's boots."""
        with self._write() as conn:
            self._save_clocks(conn, device.upper(), [sample])

    @staticmethod
    def _save_clocks(conn: sqlite3.Connection, device: str,
                     samples: list[ClockSample]) -> None:
        """Keep exchanges (of one sensor time, the shorter round trip wins)."""
        conn.executemany(
            "INSERT INTO clocks VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
            "utc = excluded.utc, round_trip_s = excluded.round_trip_s "
            "WHERE excluded.round_trip_s < round_trip_s",
            [(device, s.boot_id, s.sensor_t, s.utc, s.round_trip_s) for s in samples])

    def _save_new_clocks(self, conn: sqlite3.Connection, device: str, clock: ClockMap,
                         boot_id: int) -> None:
        """Keep the exchanges of ``boot_id`` in ``clock`` newer than the stored ones
        (exchanges of a boot come in sensor-time order)."""
        newest = conn.execute("SELECT max(sensor_t) FROM clocks WHERE device = ? AND "
                              "boot_id = ?", (device, boot_id)).fetchone()[0]
        samples = clock.samples(boot_id)
        if newest is not None:
            samples = [s for s in samples if s.sensor_t > newest]
        if samples:
            self._save_clocks(conn, device, samples)

    def clock_map(self, device: str) -> ClockMap:
        """The stored mappings of ``device``'s boots."""
        return self._clocks(self._conn, device.upper())

    @staticmethod
    def _save_position(conn: sqlite3.Connection, device: str, position: StreamPosition) -> None:
        conn.execute("INSERT OR REPLACE INTO stream_positions VALUES (?, ?, ?, "
                     "(SELECT coalesce(max(serial), 0) + 1 FROM stream_positions))",
                     (device, position.boot_id, position.last_seq))

    def save_position(self, device: str, position: StreamPosition) -> None:
        """Save ``device``'s stream position alone (frames came with ``add_frames``)."""
        with self._write() as conn:
            self._save_position(conn, device.upper(), position)

    def stream_position(self, device: str) -> tuple[StreamPosition | None, list[int]]:
        """Where ``device``'s stream resumes: its newest saved position (None if none)
        and the seqs of that boot stored beyond it, in any session; for
        ``RollerClient(position=..., ahead=...)``."""
        device = device.upper()
        row = self._conn.execute("SELECT boot_id, last_seq FROM stream_positions WHERE "
                                 "device = ? ORDER BY serial DESC LIMIT 1", (device,)).fetchone()
        if row is None:
            return None, []
        position = StreamPosition(row[0], row[1])
        ahead = [r[0] for r in self._conn.execute(
            "SELECT k.seq FROM frame_keys k JOIN sessions s ON s.id = k.session_id "
            "WHERE s.device = ? AND k.boot = ? AND k.seq > ? ORDER BY k.seq",
            (device, position.boot_id, position.last_seq))]
        return position, sorted(set(ahead))
