"""The store's user profiles: who rolls (name, stature, sex) and what the analysis has
learned of their body (``body``: JSON, replaced whole), which one is active (the
one new sessions get), and whether its user chose to skip the guided calibration
(``calibration_skipped``: a setting per profile, dropped with the profile).

A name is 1 to 64 characters on one line; a stature within ``STATURE_RANGE_M`` (m).
"""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

from host.store.connection import StoreConnection, now_utc
from host.store.records import SEXES, STATURE_RANGE_M, Profile, StoreError

__all__ = ["ProfileTables"]


class ProfileTables(StoreConnection):
    """The profiles of the store's users."""

    @staticmethod
    def _check_profile(name: str | None, stature_m: float | None, sex: str | None) -> None:
        if name is not None and (not name.strip() or len(name) > 64 or "\n" in name):
            raise StoreError(f"profile name {name!r}: 1 to 64 characters on one line")
        if stature_m is not None:
            low, high = STATURE_RANGE_M
            if not (math.isfinite(stature_m) and low <= stature_m <= high):
                raise StoreError(f"stature {stature_m} m is out of range ({low} .. {high} m)")
        if sex is not None and sex not in SEXES:
            raise StoreError(f"sex {sex!r}: expected one of {', '.join(SEXES)}")

    def create_profile(self, name: str, stature_m: float, sex: str | None = None,
                       body: dict[str, Any] | None = None) -> Profile:
        """A new profile; the first one becomes the active profile."""
        self._check_profile(name, stature_m, sex)
        now = now_utc()
        try:
            with self._write() as conn:
                cur = conn.execute("INSERT INTO profiles (name, stature_m, sex, body, "
                                   "created_utc, updated_utc) VALUES (?, ?, ?, ?, ?, ?)",
                                   (name, stature_m, sex, json.dumps(body or {}), now, now))
                conn.execute("INSERT OR IGNORE INTO settings VALUES ('active_profile', ?)",
                             (str(cur.lastrowid),))
        except sqlite3.IntegrityError:
            raise StoreError(f"a profile named {name!r} exists already") from None
        profile = self.profile(name)
        assert profile is not None
        return profile

    def update_profile(self, name: str, *, stature_m: float | None = None,
                       sex: str | None = None, body: dict[str, Any] | None = None,
                       rename: str | None = None) -> Profile:
        """Change a profile's stature, sex, analysis data (``body``, replaced whole) or
        name; StoreError if there is no such profile."""
        self._check_profile(rename, stature_m, sex)
        if self.profile(name) is None:
            raise StoreError(f"no profile named {name!r}")
        sets, args = ["updated_utc = ?"], [now_utc()]
        for column, value in (("stature_m", stature_m), ("sex", sex), ("name", rename),
                              ("body", None if body is None else json.dumps(body))):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(value)
        try:
            with self._write() as conn:
                conn.execute(f"UPDATE profiles SET {', '.join(sets)} WHERE name = ?",
                             (*args, name))
        except sqlite3.IntegrityError:
            raise StoreError(f"a profile named {rename!r} exists already") from None
        profile = self.profile(rename or name)
        assert profile is not None
        return profile

    def delete_profile(self, name: str) -> None:
        """Remove a profile (sessions keep their data, without the profile)."""
        with self._write() as conn:
            row = conn.execute("SELECT id FROM profiles WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise StoreError(f"no profile named {name!r}")
            conn.execute("DELETE FROM profiles WHERE id = ?", (row[0],))
            conn.execute("DELETE FROM settings WHERE key = ?", (_skip_key(row[0]),))

    def _profile_row(self, where: str, arg: Any) -> Profile | None:
        row = self._conn.execute("SELECT id, name, stature_m, sex, body, created_utc, "
                                 f"updated_utc FROM profiles WHERE {where}", (arg,)).fetchone()
        if row is None:
            return None
        return Profile(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6])

    def profile(self, name: str) -> Profile | None:
        """The profile named ``name``, None if none."""
        return self._profile_row("name = ?", name)

    def profile_by_id(self, profile_id: int) -> Profile | None:
        """The profile with ``profile_id``, None if none."""
        return self._profile_row("id = ?", profile_id)

    def profiles(self) -> list[Profile]:
        """Every profile, by name."""
        names = [r[0] for r in self._conn.execute("SELECT name FROM profiles ORDER BY name")]
        return [p for p in map(self.profile, names) if p is not None]

    def set_active_profile(self, name: str) -> Profile:
        """Make ``name`` the active profile (the one new sessions get)."""
        profile = self.profile(name)
        if profile is None:
            raise StoreError(f"no profile named {name!r}")
        with self._write() as conn:
            conn.execute("INSERT OR REPLACE INTO settings VALUES ('active_profile', ?)",
                         (str(profile.id),))
        return profile

    def set_calibration_skipped(self, name: str, skipped: bool) -> Profile:
        """Whether ``name``'s user skips the guided calibration at the start of a
        session (``smartroller calibrate --skip``; False: guide them again)."""
        profile = self.profile(name)
        if profile is None:
            raise StoreError(f"no profile named {name!r}")
        with self._write() as conn:
            if skipped:
                conn.execute("INSERT OR REPLACE INTO settings VALUES (?, '1')",
                             (_skip_key(profile.id),))
            else:
                conn.execute("DELETE FROM settings WHERE key = ?", (_skip_key(profile.id),))
        return profile

    def calibration_skipped(self, profile: Profile) -> bool:
        """Whether ``profile``'s user chose to skip the guided calibration."""
        return self._one("SELECT value FROM settings WHERE key = ?",
                         (_skip_key(profile.id),)) is not None

    def active_profile(self) -> Profile | None:
        """The active profile, None if there is none."""
        value = self._one("SELECT value FROM settings WHERE key = 'active_profile'")
        return None if value is None else self.profile_by_id(int(value))


def _skip_key(profile_id: int) -> str:
    """The settings key of a profile's choice to skip the guided calibration."""
    return f"skip_calibration:{profile_id}"
