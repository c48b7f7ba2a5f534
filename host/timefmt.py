"""Times for people and files: ISO 8601 UTC with milliseconds, durations."""

from __future__ import annotations

import math
from datetime import UTC, datetime

__all__ = ["duration_text", "iso_utc", "parse_iso_utc"]


def iso_utc(utc: float | None) -> str:
    """``2026-03-01T08:15:02.125Z`` for UTC seconds since 1970; "" for None or NaN."""
    if utc is None or not math.isfinite(utc):
        return ""
    stamp = datetime.fromtimestamp(round(utc, 3), UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def parse_iso_utc(text: str) -> float:
    """UTC seconds since 1970 of an ``iso_utc`` string (ValueError if it is not one)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def duration_text(seconds: float) -> str:
    """``1:02:03``, ``12:05`` (h:mm:ss, or m:ss under an hour)."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
