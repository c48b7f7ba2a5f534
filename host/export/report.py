"""A stored session -> one self-contained HTML report (inline SVG, no script, no network).

``render_report(data)`` returns the page: a summary (duration, strokes, amplitude,
cadence, load, warnings, time below the rib cage, and for a session analysed with no
calibration that it was uncalibrated and what calibrating would change), the roller's
position over time on bands coloured by the estimated spine region, with the strokes'
turning points and the warnings, the total load over time, the time spent over each
vertebral level, and the events. ``write_report`` writes it atomically. The page is
well-formed XML (polyglot HTML5), so any XML parser reads it.

Long sessions are drawn from min/max envelopes, one pair per pixel column, so the page
stays small (~100 kB) whatever the session's length.
"""

from __future__ import annotations

import html
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware.protocol import FrameFlag
from host.analysis.model import LEVEL_NAMES, RIB_CAGE_END_LEVEL, EventKind, Region
from host.analysis.warnings import WarningPolicy
from host.paths import atomic_write_text, new_file_mode
from host.store import APPROXIMATE_START, SessionData
from host.timefmt import duration_text, iso_utc

__all__ = ["REGION_COLOURS", "ReportFigures", "figures", "render_report", "write_report"]

REGION_COLOURS = {Region.CERVICAL: "#d9d2e9", Region.UPPER_THORACIC: "#cfe2f3",
                  Region.MID_THORACIC: "#d9ead3", Region.LOWER_THORACIC: "#fff2cc",
                  Region.LUMBAR: "#f4cccc"}
WARNING_COLOUR = "#cc0000"
WIDTH, PLOT_W = 960, 860
LEFT = 70
MAX_FRAME_GAP_S = 0.1
"""A gap between frames longer than this counts as no time spent (a disconnection)."""


@dataclass(frozen=True)
class ReportFigures:
    """The figures the report shows (also for tests and the CLI's ``show``).

    duration_s: session duration. frames: stored. strokes: count. mean_amplitude_mm,
    cadence_per_min (strokes per minute of rolling), mean_load_n and max_load_n (in
    contact), warnings (lumbar warnings), warned_s (their total duration: the buzz
    starts at P(below the ribs) over the policy's 20 %, a precaution, so it can run while
    the estimated level is still above the rib cage), contact_s (time in contact),
    below_ribs_s (time with the estimated level below T12/L1), level_s: seconds per
    vertebral level name.
    """

    duration_s: float
    frames: int
    strokes: int
    mean_amplitude_mm: float
    cadence_per_min: float
    mean_load_n: float
    max_load_n: float
    warnings: int
    warned_s: float
    contact_s: float
    below_ribs_s: float
    level_s: dict[str, float]


def _frame_dt(data: SessionData) -> np.ndarray:
    f = data.frames
    if len(f) < 2:
        return np.zeros(len(f))
    dt = np.diff(f.t, append=f.t[-1])
    same = np.append(f.boot[1:] == f.boot[:-1], False)
    typical = float(np.median(dt[same])) if same.any() else 0.01
    dt = np.where(same & (dt > 0) & (dt <= MAX_FRAME_GAP_S), dt, 0.0)
    dt[-1] = typical
    return dt


def _elapsed(data: SessionData) -> np.ndarray:
    f = data.frames
    out = f.utc - data.session.started_utc
    missing = ~np.isfinite(out)
    if missing.any() and len(f):
        out[missing] = f.t[missing] - f.t[0]
    return out


def figures(data: SessionData) -> ReportFigures:
    """The report's figures for ``data``."""
    f, e = data.frames, data.estimates
    dt = _frame_dt(data)
    contact = (f.flags & int(FrameFlag.IN_CONTACT)) != 0 if len(f) else np.zeros(0, bool)
    known = contact & np.isfinite(e.level)
    level_s: dict[str, float] = {}
    if known.any():
        idx = np.clip(np.floor(e.level[known]), 0, len(LEVEL_NAMES) - 1).astype(int)
        sums = np.bincount(idx, weights=dt[known], minlength=len(LEVEL_NAMES))
        level_s = {name: float(s) for name, s in zip(LEVEL_NAMES, sums, strict=True) if s > 0}
    strokes = [s for _, s in data.strokes]
    rolling_s = sum(s.duration_s for s in strokes)
    loads = f.total_load[contact]
    return ReportFigures(
        duration_s=data.session.duration_s, frames=len(f), strokes=len(strokes),
        mean_amplitude_mm=float(np.mean([s.amplitude_m for s in strokes]) * 1e3)
        if strokes else math.nan,
        cadence_per_min=len(strokes) / 2 / (rolling_s / 60) if rolling_s > 0 else math.nan,
        mean_load_n=float(loads.mean()) if len(loads) else math.nan,
        max_load_n=float(loads.max()) if len(loads) else math.nan,
        warnings=sum(1 for _, _, ev in data.events if ev.kind is EventKind.LUMBAR_WARNING),
        warned_s=sum(ev.duration_s or 0.0 for _, _, ev in data.events
                     if ev.kind is EventKind.LUMBAR_WARNING),
        contact_s=float(dt[contact].sum()),
        below_ribs_s=float(dt[known & (e.level >= RIB_CAGE_END_LEVEL)].sum()),
        level_s=level_s)


# --------------------------------------------------------------------------- drawing


def _fmt(value: float, digits: int = 0, unit: str = "") -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}{unit}"


def _envelope(x: np.ndarray, y: np.ndarray, x0: float, x1: float, columns: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel column: (column centre x, min y, max y), columns without data dropped."""
    ok = np.isfinite(y)
    x, y = x[ok], y[ok]
    if not len(x):
        return np.zeros(0), np.zeros(0), np.zeros(0)
    col = np.clip(((x - x0) / max(x1 - x0, 1e-9) * columns).astype(int), 0, columns - 1)
    lo = np.full(columns, np.inf)
    hi = np.full(columns, -np.inf)
    np.minimum.at(lo, col, y)
    np.maximum.at(hi, col, y)
    have = np.isfinite(lo)
    centres = x0 + (np.arange(columns) + 0.5) / columns * (x1 - x0)
    return centres[have], lo[have], hi[have]


class _Plot:
    """An SVG time plot: x = seconds since the start, y = a value range (top to bottom)."""

    def __init__(self, title: str, height: int, x1: float, y_top: float, y_bottom: float,
                 y_label: str) -> None:
        self.height, self.x1 = height, max(x1, 1e-3)
        self.y_top, self.y_bottom = y_top, y_bottom
        self.parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
                      f'height="{height + 40}" viewBox="0 0 {WIDTH} {height + 40}" '
                      f'role="img" aria-label="{html.escape(title)}">',
                      f'<title>{html.escape(title)}</title>']
        self.y_label = y_label

    def x(self, seconds: float) -> float:
        return LEFT + seconds / self.x1 * PLOT_W

    def y(self, value: float) -> float:
        span = self.y_bottom - self.y_top or 1.0
        return 10 + (value - self.y_top) / span * self.height

    def band(self, s0: float, s1: float, colour: str, opacity: float = 1.0,
             label: str = "") -> None:
        x0, x1 = self.x(s0), self.x(s1)
        tip = f"<title>{html.escape(label)}</title>" if label else ""
        self.parts.append(f'<rect x="{x0:.1f}" y="10" width="{max(x1 - x0, 0.5):.1f}" '
                          f'height="{self.height}" fill="{colour}" '
                          f'fill-opacity="{opacity}">{tip}</rect>')

    def envelope(self, x: np.ndarray, y: np.ndarray, colour: str) -> None:
        cx, lo, hi = _envelope(x, y, 0.0, self.x1, PLOT_W)
        if not len(cx):
            return
        pts = [f"{self.x(a):.1f},{self.y(b):.1f}" for a, b in zip(cx, lo, strict=True)]
        if (hi - lo).max() > 0:
            pts += [f"{self.x(a):.1f},{self.y(b):.1f}"
                    for a, b in zip(cx[::-1], hi[::-1], strict=True)]
            self.parts.append(f'<polygon points="{" ".join(pts)}" fill="{colour}" '
                              f'stroke="{colour}" stroke-width="1" stroke-linejoin="round"/>')
        else:
            self.parts.append(f'<polyline points="{" ".join(pts)}" fill="none" '
                              f'stroke="{colour}" stroke-width="1.5"/>')

    def dots(self, points: list[tuple[float, float]], colour: str, label: str) -> None:
        self.parts.append(f'<g fill="{colour}"><title>{html.escape(label)}</title>')
        self.parts += [f'<circle cx="{self.x(a):.1f}" cy="{self.y(b):.1f}" r="2"/>'
                       for a, b in points if math.isfinite(b)]
        self.parts.append("</g>")

    def axes(self, y_ticks: list[float]) -> str:
        p, h = self.parts, self.height
        p.append(f'<rect x="{LEFT}" y="10" width="{PLOT_W}" height="{h}" fill="none" '
                 'stroke="#444"/>')
        for v in y_ticks:
            y = self.y(v)
            p.append(f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" '
                     'stroke="#444"/>')
            p.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{v:g}</text>')
        step = _nice_step(self.x1 / 8)
        t = 0.0
        while t <= self.x1 + 1e-9:
            x = self.x(t)
            p.append(f'<line x1="{x:.1f}" y1="{10 + h}" x2="{x:.1f}" y2="{14 + h}" '
                     'stroke="#444"/>')
            p.append(f'<text x="{x:.1f}" y="{28 + h}" text-anchor="middle">'
                     f'{duration_text(t) if self.x1 >= 120 else f"{t:g}"}</text>')
            t += step
        p.append(f'<text x="12" y="{10 + h / 2:.0f}" transform="rotate(-90 12 {10 + h / 2:.0f})"'
                 f' text-anchor="middle">{html.escape(self.y_label)}</text>')
        p.append(f'<text x="{LEFT + PLOT_W}" y="{h + 40}" text-anchor="end">'
                 f'{"time since the start (m:ss)" if self.x1 >= 120 else "time since the start, s"}'
                 '</text>')
        p.append("</svg>")
        return "".join(p)


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * magnitude:
            return m * magnitude
    return 10 * magnitude


def _ticks(lo: float, hi: float) -> list[float]:
    step = _nice_step((hi - lo) / 5)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 6) for i in range(int((hi - first) / step) + 1)]


def _runs(values: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, stop, value) runs of equal values."""
    if not len(values):
        return []
    edges = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], edges])
    stops = np.concatenate([edges, [len(values)]])
    return [(int(a), int(b), int(values[a])) for a, b in zip(starts, stops, strict=True)]


def _position_svg(data: SessionData, elapsed: np.ndarray, end_s: float) -> str:
    f, e = data.frames, data.estimates
    pos_mm = f.position * 1e3
    lo, hi = (np.nanmin(pos_mm), np.nanmax(pos_mm)) if len(f) else (-50.0, 50.0)
    pad = max(5.0, (hi - lo) * 0.08)
    plot = _Plot("Roller position over time, on the estimated spine regions", 260, end_s,
                 lo - pad, hi + pad, "position, mm (toward the feet: down)")
    # region bands from the per-pixel majority region
    if len(f):
        col = np.clip((elapsed / plot.x1 * PLOT_W).astype(int), 0, PLOT_W - 1)
        region = np.where(e.region >= 0, e.region, -1).astype(int)
        counts = np.stack([np.bincount(col[region == r], minlength=PLOT_W)
                           for r in range(len(Region))])
        per_col = np.where(counts.sum(axis=0) > 0, counts.argmax(axis=0), -1)
        for a, b, r in _runs(per_col):
            if r >= 0:
                plot.band(a / PLOT_W * plot.x1, b / PLOT_W * plot.x1, REGION_COLOURS[Region(r)],
                          label=Region(r).label.replace("_", " "))
    for _, boot, ev in data.events:
        if ev.kind in (EventKind.LUMBAR_WARNING, EventKind.ROLLER_FENCE):
            s0 = _event_elapsed(data, boot, ev.start_t)
            s1 = _event_elapsed(data, boot, ev.end_t if ev.end_t is not None else ev.start_t)
            if s0 is not None:
                plot.band(s0, max(s1 or s0, s0 + plot.x1 / PLOT_W), WARNING_COLOUR, 0.35,
                          f"{ev.kind}: {ev.message}")
    plot.envelope(elapsed, pos_mm, "#1f4e79")
    turns = []
    for boot, s in data.strokes:
        t = _event_elapsed(data, boot, s.end_t)
        if t is not None:
            turns.append((t, s.end_m * 1e3))
    plot.dots(turns, "#e69138", "stroke turning points")
    return plot.axes(_ticks(lo - pad, hi + pad))


def _event_elapsed(data: SessionData, boot: int | None, t: float | None) -> float | None:
    if t is None:
        return None
    utc = data.to_utc(boot, t)
    if utc is not None:
        return utc - data.session.started_utc
    f = data.frames
    if len(f) and boot == int(f.boot[0]):
        return t - float(f.t[0])
    return None


def _load_svg(data: SessionData, elapsed: np.ndarray, end_s: float) -> str:
    f = data.frames
    top = float(np.nanmax(f.total_load)) if len(f) else 100.0
    top = max(top * 1.1, 10.0)
    plot = _Plot("Total load on the roller over time", 140, end_s, top, 0.0, "load, N")
    plot.envelope(elapsed, f.total_load, "#38761d")
    return plot.axes(_ticks(0.0, top))


def _levels_svg(fig: ReportFigures) -> str:
    names = list(LEVEL_NAMES)
    row, top = 16, 10
    height = top + row * len(names) + 30
    most = max(fig.level_s.values(), default=1.0) or 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="time per vertebral level">',
             "<title>Time spent over each vertebral level</title>"]
    for i, name in enumerate(names):
        seconds = fig.level_s.get(name, 0.0)
        y = top + i * row
        region = Region.at_level(i + 0.5)
        colour = WARNING_COLOUR if region is Region.LUMBAR else "#3d85c6"
        w = seconds / most * (PLOT_W - 120)
        parts.append(f'<text x="{LEFT - 6}" y="{y + 12}" text-anchor="end">{name}</text>')
        parts.append(f'<rect x="{LEFT}" y="{y + 2}" width="{w:.1f}" height="{row - 4}" '
                     f'fill="{colour}"><title>{name}: {seconds:.1f} s</title></rect>')
        if seconds > 0:
            parts.append(f'<text x="{LEFT + w + 6:.1f}" y="{y + 12}">{seconds:.1f} s</text>')
    y_rib = top + int(RIB_CAGE_END_LEVEL) * row
    parts.append(f'<line x1="{LEFT - 40}" y1="{y_rib}" x2="{LEFT + PLOT_W}" y2="{y_rib}" '
                 f'stroke="{WARNING_COLOUR}" stroke-dasharray="4 3"/>')
    parts.append(f'<text x="{LEFT + PLOT_W}" y="{y_rib - 3}" text-anchor="end" '
                 f'fill="{WARNING_COLOUR}">end of the rib cage (T12/L1): do not roll below</text>')
    parts.append("</svg>")
    return "".join(parts)


_CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1000px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; text-align: left;
 border-bottom: 1px solid #ddd; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
svg text { font-size: 11px; fill: #333; } .legend span { display: inline-block;
 padding: 1px 8px; margin-right: 6px; border: 1px solid #bbb; }
.warn { color: #cc0000; font-weight: bold; }
.uncalibrated { border-left: 4px solid #e69138; padding: 4px 10px; background: #fdf3e7; }
"""


def _calibration_text(data: SessionData) -> tuple[str, str] | None:
    """(the summary's word on the calibration, the notice to show or "") from the
    session's ``UNCALIBRATED`` event (host/analysis/session.py); None without one (a
    user calibrated by the profile, or a session analysed before it existed)."""
    marks = [ev for _, _, ev in data.events if ev.kind is EventKind.UNCALIBRATED]
    if not marks:
        return None
    if any(ev.value == 1.0 for ev in marks):
        whole = next(ev for ev in marks if ev.value == 1.0)
        return ("none: an uncalibrated session", "This session is uncalibrated: "
                + whole.message.removeprefix("uncalibrated session: ") + ".")
    return ("in this session (uncalibrated before it: the warning kept a wider margin)", "")


def _buzz_threshold(data: SessionData) -> str:
    """P(below the ribs) at which the session's lumbar warning started, as words: the
    conservative one of an uncalibrated session (host/analysis/session.py)."""
    policy = WarningPolicy()
    whole = any(ev.kind is EventKind.UNCALIBRATED and ev.value == 1.0
                for _, _, ev in data.events)
    if whole:
        return (f"{policy.uncalibrated_on_probability:.0%} likely below the rib cage or "
                "more (uncalibrated)")
    return f"{policy.on_probability:.0%} likely below the rib cage or more"


def render_report(data: SessionData, profile_name: str | None = None) -> str:
    """The HTML page of ``data``."""
    s = data.session
    fig = figures(data)
    elapsed = _elapsed(data)
    end_s = max(s.duration_s, float(np.nanmax(elapsed)) if len(elapsed) else 0.0, 1.0)
    esc = html.escape
    rows = [("Device", esc(s.device)), ("Profile", esc(profile_name or "-")),
            ("Start (UTC)", iso_utc(s.started_utc) if s.start_known else
             f"at the latest {iso_utc(s.started_utc)}, approximate: {APPROXIMATE_START}"),
            ("End (UTC)", iso_utc(s.end_utc) if s.start_known else
             f"at the latest {iso_utc(s.end_utc)}, approximate"),
            ("State", esc(s.state)), ("Duration", duration_text(fig.duration_s)),
            ("Frames", str(fig.frames)), ("Strokes", str(fig.strokes)),
            ("Mean stroke amplitude", _fmt(fig.mean_amplitude_mm, 1, " mm")),
            ("Cadence", _fmt(fig.cadence_per_min, 1, " strokes/min")),
            ("Time on the roller", _fmt(fig.contact_s, 1, " s")),
            ("Mean / max load", f"{_fmt(fig.mean_load_n, 0)} / {_fmt(fig.max_load_n, 0)} N"),
            ("Lumbar warnings", str(fig.warnings)),
            (f"Time warned (the buzz: {_buzz_threshold(data)})",
             _fmt(fig.warned_s, 1, " s")),
            ("Time with the estimated level below the rib cage",
             _fmt(fig.below_ribs_s, 1, " s"))]
    calibration = _calibration_text(data)
    if calibration is not None:
        rows.insert(2, ("Calibration", esc(calibration[0])))
    summary = "".join(f'<tr><th>{k}</th><td class="n"'
                      f'{" id=" + chr(34) + "warnings" + chr(34) if k == "Lumbar warnings" else ""}'
                      f'>{v}</td></tr>' for k, v in rows)
    legend = "".join(f'<span style="background:{c}">{r.label.replace("_", " ")}</span>'
                     for r, c in REGION_COLOURS.items())
    legend += (f'<span style="background:{WARNING_COLOUR};color:white">warning</span>'
               '<span>orange dots: stroke turning points</span>')
    events = "".join(
        f"<tr><td>{esc(str(ev.kind))}</td><td class=\"n\">"
        f"{_fmt(_event_elapsed(data, boot, ev.start_t) or math.nan, 1)}</td>"
        f"<td class=\"n\">{_fmt(ev.duration_s if ev.duration_s is not None else math.nan, 1)}"
        f"</td><td>{esc(ev.message)}</td></tr>" for _, boot, ev in data.events)
    warn = (f'<p class="warn">{fig.warnings} lumbar warning(s): the roller went below the rib '
            "cage. Keep it between the bottom of the ribs and the top of the shoulder "
            "blades.</p>") if fig.warnings else ""
    if calibration is not None and calibration[1]:
        warn += f'<p class="uncalibrated" id="uncalibrated">{esc(calibration[1])}</p>'
    return (
        '<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml" lang="en"><head>'
        '<meta charset="utf-8"/>'
        f"<title>smartroller session {s.id}</title><style>{_CSS}</style></head><body>"
        f"<h1>smartroller session {s.id}: {esc(s.start_text(seconds=False))}"
        f" UTC, {duration_text(fig.duration_s)}</h1>{warn}"
        f'<table id="summary">{summary}</table>'
        f'<h2>Position and spine region</h2><p class="legend">{legend}</p>'
        f"{_position_svg(data, elapsed, end_s)}"
        f"<h2>Load</h2>{_load_svg(data, elapsed, end_s)}"
        f"<h2>Time per vertebral level (on the roller)</h2>{_levels_svg(fig)}"
        "<h2>Events</h2>"
        '<table id="events"><tr><th>kind</th><th>start, s</th><th>duration, s</th>'
        f"<th>message</th></tr>{events}</table>"
        "<p>Positions are the roller's own (0 where the session was zeroed, + toward the "
        "feet); regions and levels are estimates with the uncertainty docs/algorithms.md "
        "describes.</p></body></html>\n")


def write_report(data: SessionData, path: str | os.PathLike[str],
                 profile_name: str | None = None) -> Path:
    """Write the report to ``path`` atomically (temp file, fsync, rename), with the
    mode of any new file of the user's (``new_file_mode``: 0644 with umask 022)."""
    target = Path(path).expanduser()
    return atomic_write_text(target, render_report(data, profile_name), new_file_mode())
