"""A stored session -> CSV files: samples.csv, strokes.csv, dwells.csv, events.csv.

RFC 4180 (Python's ``csv`` module: CRLF line ends, fields quoted only when they hold a
comma, a quote or a line break, quotes doubled), UTF-8 without a byte-order mark, one
header row whose names carry the units (mm, mm/s, N, s, deg). Times are ISO 8601 UTC
with milliseconds (``2026-05-28T20:26:40.125Z``) plus seconds since the session's start.
docs/csv.md documents every column.

The files are written atomically: each goes to a temporary file in the output directory,
is fsynced, and only when all are complete are they renamed into place; an export that
fails leaves no partial file (and the previous export's files, if any, untouched).
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from firmware.protocol import FrameFlag
from host.analysis.model import LEVEL_NAMES, EventKind, Region
from host.paths import DataDirError, check_dir, new_file_mode
from host.store import SessionData
from host.timefmt import iso_utc

__all__ = ["EVENT_UNITS", "FILES", "ExportError", "dwell_rows", "event_rows", "export_session",
           "sample_header", "stroke_rows"]

FILES = ("samples.csv", "strokes.csv", "dwells.csv", "events.csv")
"""What an export writes, in this order."""

EVENT_UNITS: dict[EventKind, tuple[str, float, int]] = {
    EventKind.LUMBAR_WARNING: ("probability", 1.0, 3), EventKind.APPROACH: ("probability", 1.0, 3),
    EventKind.ROLLER_FENCE: ("mm", 1e3, 1), EventKind.LONG_STROKE: ("mm", 1e3, 1),
    EventKind.FAST_STROKE: ("mm_s", 1e3, 1), EventKind.FENCE_SET: ("mm", 1e3, 1),
    EventKind.CALIBRATION: ("mm", 1e3, 1), EventKind.FRAMES_LOST: ("frames", 1.0, 0),
    EventKind.UNCALIBRATED: ("whole_session", 1.0, 0),
}
"""Unit of ``Event.value`` in events.csv per kind, the factor from the stored SI value
and the decimals (model.py: depths, amplitudes and positions in m, speeds in m/s,
frames counted; a lumbar warning's value is the highest probability, 0..1, that the
roller was below the rib cage). Other kinds keep the stored value, with no unit."""

STROKE_HEADER = ["index", "start_utc", "end_utc", "start_s", "end_s", "duration_s",
                 "direction", "start_mm", "end_mm", "amplitude_mm", "peak_speed_mm_s",
                 "mean_speed_mm_s", "mean_load_n", "max_load_n", "regions", "boot"]
DWELL_HEADER = ["start_utc", "end_utc", "start_s", "end_s", "duration_s", "position_mm",
                "mean_load_n", "boot"]
EVENT_HEADER = ["id", "kind", "start_utc", "end_utc", "start_s", "end_s", "duration_s",
                "value", "value_unit", "message", "boot"]

ROWS_PER_CHUNK = 20_000


class ExportError(ValueError):
    """The export cannot be written (bad output directory, disk full ...): one line."""


def sample_header(zone_count: int) -> list[str]:
    """The columns of samples.csv for ``zone_count`` zones."""
    return ["utc", "t_s", "boot", "seq", "sensor_t_s", "position_mm", "velocity_mm_s",
            "angle_deg", "load_total_n", *[f"load_zone_{i + 1}_n" for i in range(zone_count)],
            "in_contact", "beyond_fence", "flags", "level", "vertebra", "region",
            "p_below_ribs", "back_mm", "back_sd_mm"]


def _num(value: float | None, digits: int) -> str:
    """``value`` with ``digits`` decimals; "" for None or NaN; never "-0.0"."""
    if value is None or not math.isfinite(value):
        return ""
    text = f"{value:.{digits}f}"
    if text.startswith("-") and not text.strip("-0."):
        text = text[1:]
    return text


def _iso_array(utc: np.ndarray) -> np.ndarray:
    """ISO 8601 strings (ms, Z) of UTC seconds; "" where NaN."""
    out = np.full(len(utc), "", dtype=object)
    ok = np.isfinite(utc)
    if ok.any():
        ms = np.round(utc[ok] * 1e3).astype("int64").astype("datetime64[ms]")
        out[ok] = np.char.add(np.datetime_as_string(ms, unit="ms"), "Z")
    return out


def _elapsed(data: SessionData, boot: np.ndarray, t: np.ndarray, utc: np.ndarray
             ) -> np.ndarray:
    """Seconds since the session's start: from UTC where mapped; for an unmapped first
    boot, from sensor time relative to the session's first frame; else NaN."""
    out = utc - data.session.started_utc
    missing = ~np.isfinite(utc)
    frames = data.frames
    if missing.any() and len(frames):
        first_boot, t0 = frames.boot[0], frames.t[0]
        sel = missing & (boot == first_boot)
        out[sel] = t[sel] - t0
    return out


def _times(data: SessionData, boot: int | None, t: float | None) -> tuple[str, str]:
    """(ISO UTC, seconds since start) of sensor time ``t`` of ``boot``."""
    if t is None:
        return "", ""
    utc = data.to_utc(boot, t)
    u = np.array([math.nan if utc is None else utc])
    b = np.array([-1 if boot is None else boot])
    elapsed = _elapsed(data, b, np.array([t]), u)[0]
    return iso_utc(utc), _num(float(elapsed), 3)


def _column(values: np.ndarray, digits: int, scale: float = 1.0) -> list[str]:
    """A float column as text with ``digits`` decimals; "" for NaN; no "-0.0"."""
    text = [f"{v:.{digits}f}" for v in (values * scale).tolist()]
    zero = f"-{0:.{digits}f}"
    return ["" if x == "nan" else (x[1:] if x == zero else x) for x in text]


def sample_rows(data: SessionData, start: int = 0, stop: int | None = None
                ) -> Iterable[Sequence[str]]:
    """samples.csv rows (without the header) of frames ``start:stop``."""
    f, e = data.frames, data.estimates
    stop = len(f) if stop is None else stop
    sl = slice(start, stop)
    utc = f.utc[sl]
    flags = f.flags[sl].astype(np.int64)
    level = e.level[sl].astype(np.float64)
    known = np.isfinite(level)
    names = np.array([*LEVEL_NAMES, ""], dtype=object)
    index = np.where(known, np.clip(np.floor(np.nan_to_num(level)), 0,
                                    len(LEVEL_NAMES) - 1), len(LEVEL_NAMES)).astype(int)
    regions = np.array([*(r.label for r in Region), ""], dtype=object)
    region = e.region[sl].astype(int)
    columns: list[Sequence[str]] = [
        _iso_array(utc).tolist(),
        _column(_elapsed(data, f.boot[sl], f.t[sl], utc), 3),
        [str(b) for b in f.boot[sl].tolist()], [str(q) for q in f.seq[sl].tolist()],
        _column(f.t[sl], 3), _column(f.position[sl], 2, 1e3), _column(f.velocity[sl], 1, 1e3),
        _column(np.degrees(f.angle[sl]), 2), _column(f.total_load[sl], 1),
        *[_column(f.zones[sl, z], 1) for z in range(f.zones.shape[1])],
        np.where(flags & int(FrameFlag.IN_CONTACT), "1", "0").tolist(),
        np.where(flags & int(FrameFlag.BEYOND_FENCE), "1", "0").tolist(),
        [str(x) for x in flags.tolist()],
        _column(level, 2), names[index].tolist(),
        regions[np.where(region >= 0, region, len(regions) - 1)].tolist(),
        _column(e.p_below_ribs[sl], 3), _column(e.back_m[sl], 1, 1e3),
        _column(e.sd_m[sl], 1, 1e3)]
    return zip(*columns, strict=True)


def stroke_rows(data: SessionData) -> list[list[str]]:
    """strokes.csv rows."""
    rows = []
    for boot, s in data.strokes:
        start_utc, start_s = _times(data, boot, s.start_t)
        end_utc, end_s = _times(data, boot, s.end_t)
        rows.append([str(s.index), start_utc, end_utc, start_s, end_s, _num(s.duration_s, 3),
                     "toward_feet" if s.direction > 0 else "toward_head",
                     _num(s.start_m * 1e3, 1), _num(s.end_m * 1e3, 1),
                     _num(s.amplitude_m * 1e3, 1), _num(s.peak_speed_m_s * 1e3, 1),
                     _num(s.mean_speed_m_s * 1e3, 1), _num(s.mean_load_n, 1),
                     _num(s.max_load_n, 1), ";".join(s.regions),
                     "" if boot is None else str(boot)])
    return rows


def dwell_rows(data: SessionData) -> list[list[str]]:
    """dwells.csv rows."""
    rows = []
    for boot, d in data.dwells:
        start_utc, start_s = _times(data, boot, d.start_t)
        end_utc, end_s = _times(data, boot, d.end_t)
        rows.append([start_utc, end_utc, start_s, end_s, _num(d.duration_s, 3),
                     _num(d.position_m * 1e3, 1), _num(d.mean_load_n, 1),
                     "" if boot is None else str(boot)])
    return rows


def event_rows(data: SessionData) -> list[list[str]]:
    """events.csv rows."""
    rows = []
    for event_id, boot, ev in data.events:
        start_utc, start_s = _times(data, boot, ev.start_t)
        end_utc, end_s = _times(data, boot, ev.end_t)
        unit, factor, digits = EVENT_UNITS.get(ev.kind, ("", 1.0, 6))
        duration = ev.duration_s
        rows.append([str(event_id), str(ev.kind), start_utc, end_utc, start_s, end_s,
                     "" if duration is None else _num(duration, 3),
                     "" if ev.value is None else _num(ev.value * factor, digits),
                     unit if ev.value is not None else "", ev.message,
                     "" if boot is None else str(boot)])
    return rows


def _write_csv(directory: Path, name: str, header: Sequence[str],
               chunks: Iterable[Iterable[Sequence[Any]]],
               temps: list[tuple[Path, Path]]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    temps.append((Path(tmp), directory / name))
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
        if hasattr(os, "fchmod"):  # mkstemp's 0600 -> the mode of any new file of the user's
            os.fchmod(fh.fileno(), new_file_mode())
        writer = csv.writer(fh, lineterminator="\r\n")
        writer.writerow(header)
        for rows in chunks:
            writer.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not possible on every platform (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def export_session(data: SessionData, out_dir: str | os.PathLike[str],
                   progress: Callable[[float], None] | None = None) -> list[Path]:
    """Write the CSV files of ``data`` into ``out_dir`` (created if missing); returns
    their paths. ExportError (nothing written) if the directory cannot be used or a
    write fails."""
    directory = Path(out_dir).expanduser()
    try:
        check_dir(directory, "output directory")
    except DataDirError as exc:
        raise ExportError(str(exc)) from None
    n = len(data.frames)
    zone_count = data.frames.zones.shape[1] if n else (data.session.zone_count or 0)
    temps: list[tuple[Path, Path]] = []

    def sample_chunks() -> Iterable[Iterable[list[str]]]:
        for start in range(0, n, ROWS_PER_CHUNK):
            yield sample_rows(data, start, min(n, start + ROWS_PER_CHUNK))
            if progress:
                progress(min(1.0, (start + ROWS_PER_CHUNK) / max(n, 1)) * 0.95)

    try:
        _write_csv(directory, FILES[0], sample_header(zone_count), sample_chunks(), temps)
        _write_csv(directory, FILES[1], STROKE_HEADER, [stroke_rows(data)], temps)
        _write_csv(directory, FILES[2], DWELL_HEADER, [dwell_rows(data)], temps)
        _write_csv(directory, FILES[3], EVENT_HEADER, [event_rows(data)], temps)
        for tmp, final in temps:
            os.replace(tmp, final)
        _fsync_dir(directory)
    except OSError as exc:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise ExportError(f"cannot write the export to {directory}: "
                          f"{exc.strerror or exc}") from None
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise
    if progress:
        progress(1.0)
    return [final for _, final in temps]
