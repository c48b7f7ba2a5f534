"""The dashboard's HTML: every page whole from the server, one stylesheet and the live
page's one script, both shipped in the package (``static/``); no CDN, no web font.

- ``live_page(body)``: the back from C7 to L5 drawn for the active profile (``Back``):
  the vertebrae coloured by region (the report's colours), the end of the rib cage
  marked, and the roller's mark with its uncertainty band, moved by ``static/live.js``
  from the pushed status; the region and level in words, the load per zone, strokes,
  cadence, the lumbar warning as a full-width red state, calibration guidance.
- ``sessions_page(rows)``: the stored sessions, each opening its report and CSVs.
- ``trends_page(weeks)``: the per-week figures and their CSV.
- ``error_page(status, title, line)``: a page that says what is wrong and what to do.

Every text from the store or the files is escaped. Lengths in the drawing are mm along
the back from C7 (the SVG's user units).
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass

from host.analysis.anatomy import BodyModel
from host.analysis.model import LEVEL_NAMES, RIB_CAGE_END_LEVEL, Region
from host.dashboard.trends import REGIONS, WeekTrend
from host.export.report import REGION_COLOURS
from host.store import APPROXIMATE_START, SessionSummary
from host.timefmt import duration_text

__all__ = ["DEFAULT_STATURE_M", "Back", "error_page", "live_page", "sessions_page",
           "trends_page"]

DEFAULT_STATURE_M = 1.70
"""The back drawn when there is no profile, m."""
_ESC = html.escape
_NAV = (("live", "/", "Live"), ("sessions", "/sessions", "Sessions"),
        ("trends", "/trends", "Trends"))


@dataclass(frozen=True)
class Back:
    """The back to draw: ``boundaries_mm`` (19 level starts, mm from C7, as
    ``BodyModel.boundaries_m``), the profile's name and stature (m), and whether the
    profile is calibrated (the span measured rather than taken from stature)."""

    boundaries_mm: tuple[float, ...]
    profile: str | None
    stature_m: float
    calibrated: bool

    @classmethod
    def of(cls, body: BodyModel | None, profile: str | None, calibrated: bool) -> Back:
        """The back of ``body`` (None: the average back of ``DEFAULT_STATURE_M``)."""
        body = body or BodyModel.from_stature(DEFAULT_STATURE_M)
        return cls(tuple(round(float(b) * 1e3, 1) for b in body.boundaries_m), profile,
                   body.stature_m, calibrated)

    def as_dict(self) -> dict:
        """JSON-ready, for the page's script and the live feed."""
        return {"boundaries_mm": list(self.boundaries_mm), "profile": self.profile,
                "stature_m": self.stature_m, "calibrated": self.calibrated}


def _page(title: str, active: str, body: str, script: str = "") -> str:
    here = ' class="here"'
    nav = "".join(f'<a href="{href}"{here if key == active else ""}>{text}</a>'
                  for key, href, text in _NAV)
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"/>'
            '<meta name="viewport" content="width=device-width, initial-scale=1"/>'
            f"<title>{_ESC(title)} · smartroller</title>"
            '<link rel="stylesheet" href="/static/style.css"/></head>'
            f'<body data-page="{active}"><nav><span class="brand">smartroller</span>{nav}</nav>'
            f"<main>{body}</main>{script}</body></html>\n")


def error_page(status: int, title: str, line: str) -> str:
    """A page for what went wrong (``status``: the HTTP status it goes with)."""
    return _page(title, "", f'<section class="problem" data-status="{status}">'
                            f"<h1>{_ESC(title)}</h1><p>{_ESC(line)}</p>"
                            '<p><a href="/sessions">Sessions</a> · <a href="/">Live</a></p>'
                            "</section>")


# --------------------------------------------------------------------------- live

_W = 300.0
"""Width of the drawing, mm."""
_SPINE_X, _SPINE_W = 130.0, 56.0


def back_svg(back: Back) -> str:
    """The back as SVG (see the module docstring); the roller's mark is hidden until
    the script places it."""
    b = back.boundaries_mm
    top, bottom = -30.0, b[-1] + 30.0
    parts = [f'<svg id="back" viewBox="0 {top:.0f} {_W:.0f} {bottom - top:.0f}" '
             f'role="img" aria-label="the back from C7 to L5" '
             f'data-boundaries="{_ESC(json.dumps(list(b)))}">']
    for i, name in enumerate(LEVEL_NAMES):
        y0, y1 = b[i], b[i + 1]
        region = Region.at_level(i + 0.5)
        parts.append(f'<rect class="vertebra" data-level="{name}" x="{_SPINE_X}" '
                     f'y="{y0 + 1:.1f}" width="{_SPINE_W}" height="{max(y1 - y0 - 2, 1):.1f}" '
                     f'rx="4" fill="{REGION_COLOURS[region]}"/>')
        if i % 2 == 0 or i == len(LEVEL_NAMES) - 1:
            parts.append(f'<text class="level" x="{_SPINE_X - 8}" y="{(y0 + y1) / 2 + 5:.1f}" '
                         f'text-anchor="end">{name}</text>')
    for region in Region:
        levels = [i for i in range(len(LEVEL_NAMES)) if Region.at_level(i + 0.5) is region]
        y = (b[levels[0]] + b[levels[-1] + 1]) / 2
        parts.append(f'<text class="region" x="{_SPINE_X + _SPINE_W + 10}" y="{y + 5:.1f}">'
                     f'{region.label.replace("_", " ")}</text>')
    ribs = b[int(RIB_CAGE_END_LEVEL)]
    parts.append(f'<line id="ribs" x1="0" x2="{_W:.0f}" y1="{ribs}" y2="{ribs}"/>'
                 f'<text class="ribs" x="{_W - 4:.0f}" y="{ribs + 18:.1f}" text-anchor="end">'
                 "end of the rib cage (T12/L1)</text>")
    parts.append('<g id="roller" visibility="hidden">'
                 f'<rect id="roller-sd" x="10" width="{_W - 20:.0f}" y="-10" height="20"/>'
                 f'<rect id="roller-body" x="40" width="{_W - 80:.0f}" y="-9" height="18" '
                 'rx="9"/></g></svg>')
    return "".join(parts)


def live_page(back: Back) -> str:
    """The live page (its figures filled in by ``static/live.js``)."""
    who = (f"drawn for {_ESC(back.profile)} ({back.stature_m * 100:.0f} cm"
           f"{', calibrated' if back.calibrated else ''})" if back.profile else
           f"no profile: drawn for an average {DEFAULT_STATURE_M * 100:.0f} cm back")
    body = (
        '<div id="warning" hidden="hidden">STOP: below the rib cage. Roll back up.</div>'
        '<section id="state" data-state="connecting"><h1 id="title">Connecting …</h1>'
        '<p id="line"></p></section>'
        '<div class="live">'
        f'<figure>{back_svg(back)}<figcaption>{who}</figcaption></figure>'
        '<section class="figures">'
        '<p id="where" class="big">—</p><p id="below"></p>'
        '<div id="calibration" hidden="hidden"><h2 id="calibration-title"></h2>'
        '<p id="calibration-message"></p><div id="steps"></div></div>'
        '<h2>Load per zone</h2><div id="zones"></div><p id="load"></p>'
        '<dl><dt>Strokes</dt><dd id="strokes">—</dd><dt>Cadence</dt><dd id="cadence">—</dd>'
        '<dt>Lumbar warnings</dt><dd id="warnings">—</dd></dl>'
        '<p id="message"></p><p id="fault"></p>'
        '<p class="small"><span id="rate"></span> <span id="latency"></span></p>'
        "</section></div>")
    script = (f'<script id="back-data" type="application/json">{_json_in_html(back.as_dict())}'
              '</script><script src="/static/live.js"></script>')
    return _page("Live", "live", body, script)


def _json_in_html(value: object) -> str:
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e")


# --------------------------------------------------------------------------- sessions


def sessions_page(summaries: list[SessionSummary], calibrated: set[int]) -> str:
    """The stored sessions, newest first."""
    if not summaries:
        return _page("Sessions", "sessions", "<h1>Sessions</h1>"
                     '<p id="empty">No session recorded yet.</p>')
    rows = []
    for summary in reversed(summaries):
        s = summary.session
        sid = s.id
        csvs = " ".join(f'<a href="/sessions/{sid}/{name}.csv" download="">{name}</a>'
                        for name in ("samples", "strokes", "dwells", "events"))
        rows.append(
            f'<tr data-session="{sid}"><td class="n">{sid}</td>'
            f'<td><a href="/sessions/{sid}/report"'
            + ("" if s.start_known else f' title="{_ESC(APPROXIMATE_START)}"')
            + f">{_ESC(s.start_text(seconds=False))}</a></td>"
            f'<td class="n">{duration_text(s.duration_s)}</td>'
            f'<td class="n">{summary.stroke_count}</td>'
            f'<td class="n{" warn" if summary.warning_count else ""}">'
            f"{summary.warning_count}</td>"
            f'<td>{"yes" if sid in calibrated else "no"}</td>'
            f"<td>{_ESC(s.state)}</td><td>{csvs}</td></tr>")
    table = ('<table id="sessions"><thead><tr><th>id</th><th>start (UTC)</th>'
             "<th>duration</th><th>strokes</th><th>warnings</th><th>calibrated</th>"
             f"<th>state</th><th>CSV</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return _page("Sessions", "sessions",
                 f"<h1>Sessions</h1><p>{len(summaries)} session(s); each date opens its "
                 f"report.</p>{table}")


# --------------------------------------------------------------------------- trends


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}" if math.isfinite(value) else "–"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f}"


def trends_page(weeks: list[WeekTrend]) -> str:
    """The per-week figures, newest week first, with a bar per region."""
    if not weeks:
        return _page("Trends", "trends", "<h1>Trends</h1>"
                     '<p id="empty">No session recorded yet.</p>')
    longest = max(max(w.region_s.values()) for w in weeks) or 1.0
    rows = []
    for w in reversed(weeks):
        bars = "".join(
            f'<span class="bar" title="{r.replace("_", " ")}: {_minutes(w.region_s[r])} min" '
            f'style="width:{100 * w.region_s[r] / longest:.1f}%;'
            f'background:{REGION_COLOURS[Region[r.upper()]]}"></span>' for r in REGIONS)
        rows.append(
            f'<tr data-week="{w.week}"><td>{w.week}<br/><small>{w.monday}</small></td>'
            f'<td class="n">{w.sessions}</td><td class="n">{w.calibrated}</td>'
            + "".join(f'<td class="n" data-region="{r}">{_minutes(w.region_s[r])}</td>'
                      for r in REGIONS)
            + f'<td class="bars">{bars}</td><td class="n">{w.strokes}</td>'
            f'<td class="n">{_fmt(w.mean_amplitude_mm, 0)}</td>'
            f'<td class="n">{_fmt(w.cadence_per_min, 1)}</td>'
            f'<td class="n{" warn" if w.warnings else ""}">{_fmt(w.warnings_per_hour, 1)}</td>'
            "</tr>")
    heads = "".join(f"<th>{r.replace('_', ' ')}, min</th>" for r in REGIONS)
    table = ('<table id="trends"><thead><tr><th>week</th><th>sessions</th>'
             f"<th>calibrated</th>{heads}<th>time per region</th><th>strokes</th>"
             "<th>mean amplitude, mm</th><th>cadence, /min</th><th>warnings per hour</th>"
             f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")
    return _page("Trends", "trends",
                 "<h1>Trends</h1><p>Per ISO week (UTC), newest first. Time per region: "
                 "minutes on the roller with the estimated level in the region. "
                 '<a id="trends-csv" href="/trends.csv" download="">The same as CSV</a>.</p>'
                 f"{table}")
