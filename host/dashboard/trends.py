"""Per-week figures over the stored sessions: how a person's rolling changes.

A week is an ISO week of the session's start in UTC (Monday to Sunday; "2026-W49").
For each week with a session: the sessions, how many of them were calibrated, their
time in each spine region (s, from the per-frame estimates while in contact, as the
report counts it), the strokes, their mean amplitude (mm, over all the week's strokes)
and cadence (strokes per minute of rolling, over the week), and the lumbar warnings
per hour of session time.

One session's figures come from ``host.export.report.figures`` (the report's own
numbers). They cost a read of the session's frames (~20 ms for ten minutes), so
``FigureCache`` keeps them per session, keyed by what changes while a session records
(its frame count, state and end): a closed session is read once per server.
"""

from __future__ import annotations

import csv
import io
import math
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from host.analysis.model import LEVEL_NAMES, Region
from host.export.report import ReportFigures, figures
from host.store import SessionSummary, Store

__all__ = ["REGIONS", "FigureCache", "SessionRow", "WeekTrend", "session_rows", "trends_csv",
           "week_of", "weekly"]

REGIONS = tuple(r.label for r in Region)
"""The regions, top down, as the figures name them."""


@dataclass(frozen=True)
class SessionRow:
    """One session for the dashboard: its summary, whether its calibration completed,
    and its report figures."""

    summary: SessionSummary
    calibrated: bool
    figures: ReportFigures


@dataclass
class WeekTrend:
    """One week's figures (see the module docstring). week: "2026-W49"; monday: its
    first day (UTC date); region_s: s per region label."""

    week: str
    monday: str
    sessions: int = 0
    calibrated: int = 0
    duration_s: float = 0.0
    strokes: int = 0
    region_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(REGIONS, 0.0))
    warnings: int = 0
    _amplitude_sum_mm: float = 0.0
    _rolling_min: float = 0.0

    @property
    def mean_amplitude_mm(self) -> float:
        """Mean stroke amplitude, mm (NaN: no stroke)."""
        return self._amplitude_sum_mm / self.strokes if self.strokes else math.nan

    @property
    def cadence_per_min(self) -> float:
        """Strokes per minute of rolling over the week (NaN: no stroke)."""
        return self.strokes / 2 / self._rolling_min if self._rolling_min > 0 else math.nan

    @property
    def warnings_per_hour(self) -> float:
        """Lumbar warnings per hour of session time (NaN: no time)."""
        return self.warnings / (self.duration_s / 3600) if self.duration_s > 0 else math.nan

    def add(self, row: SessionRow) -> None:
        """Count one session in."""
        fig = row.figures
        self.sessions += 1
        self.calibrated += row.calibrated
        self.duration_s += fig.duration_s
        self.warnings += row.summary.warning_count
        for name, seconds in fig.level_s.items():
            level = LEVEL_NAMES.index(name)
            self.region_s[Region.at_level(level + 0.5).label] += seconds
        if fig.strokes:
            self.strokes += fig.strokes
            self._amplitude_sum_mm += fig.mean_amplitude_mm * fig.strokes
            if math.isfinite(fig.cadence_per_min) and fig.cadence_per_min > 0:
                self._rolling_min += fig.strokes / 2 / fig.cadence_per_min


def week_of(utc: float) -> tuple[str, str]:
    """(ISO week "2026-W49", its Monday "2026-11-30") of a UTC time, s since 1970."""
    day = datetime.fromtimestamp(utc, UTC).date()
    year, week, weekday = day.isocalendar()
    return f"{year}-W{week:02d}", (day - timedelta(days=weekday - 1)).isoformat()


class FigureCache:
    """Report figures per session, computed once per state of the session (thread-safe:
    the server computes them in worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._figures: dict[int, tuple[tuple, ReportFigures]] = {}

    def get(self, store: Store, summary: SessionSummary) -> ReportFigures:
        """The figures of ``summary``'s session, from the cache or read now."""
        s = summary.session
        key = (s.frame_count, s.state, s.ended_utc, summary.stroke_count,
               summary.warning_count)
        with self._lock:
            hit = self._figures.get(s.id)
        if hit is not None and hit[0] == key:
            return hit[1]
        fig = figures(store.load(s.id))
        with self._lock:
            self._figures[s.id] = (key, fig)
        return fig


def session_rows(store: Store, cache: FigureCache) -> list[SessionRow]:
    """Every stored session with its figures, oldest first."""
    calibrated = store.calibrated_sessions()
    return [SessionRow(s, s.session.id in calibrated, cache.get(store, s))
            for s in store.summaries()]


def weekly(rows: list[SessionRow]) -> list[WeekTrend]:
    """The weeks with sessions, oldest first."""
    weeks: dict[str, WeekTrend] = {}
    for row in rows:
        week, monday = week_of(row.summary.session.started_utc)
        weeks.setdefault(week, WeekTrend(week, monday)).add(row)
    return [weeks[w] for w in sorted(weeks)]


CSV_HEADER = ["week", "monday", "sessions", "sessions_calibrated", "duration_s",
              *(f"{r}_s" for r in REGIONS), "strokes", "mean_amplitude_mm",
              "cadence_per_min", "warnings", "warnings_per_hour"]


def _num(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else ""


def trends_csv(weeks: list[WeekTrend]) -> str:
    """The weeks as CSV (RFC 4180, CRLF, as docs/csv.md's files; units in the header;
    an empty field where a figure is not defined)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for w in weeks:
        writer.writerow([w.week, w.monday, w.sessions, w.calibrated, _num(w.duration_s, 1),
                         *(_num(w.region_s[r], 1) for r in REGIONS), w.strokes,
                         _num(w.mean_amplitude_mm, 1), _num(w.cadence_per_min, 1),
                         w.warnings, _num(w.warnings_per_hour, 2)])
    return out.getvalue()
