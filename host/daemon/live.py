"""The live view: what the daemon knows now, drawn in a terminal.

The daemon publishes a ``LiveStatus`` 20 times a second while frames come, as a small JSON file per
roller in the data directory (``live/<address>.json``, replaced atomically), so that
``smartroller live`` and ``smartroller calibrate`` can show it from another process
without talking to the daemon or to the roller. A data directory that takes no file
(a read-only disk: the moment the daemon must say it is not storing) gets the status in
the runtime directory instead (``fallback_dir``: ``$XDG_RUNTIME_DIR``, else the
temporary directory, per user and data directory); ``read_statuses`` reads both, the
newest status of each roller wins. ``render`` draws it: a spine diagram
with the roller's place and region, the load per zone, the stroke count and warnings.

The daemon hands its statuses to a ``StatusWriter``, which writes them in a thread of
its own: a write takes ~0.5 ms on a laptop's disk but tens of ms in its tail (more on a
slow or stalled disk), and in the event loop it would hold up the frames, their
acknowledgements and the roller's cues for as long. A status written late is replaced
by the newest, never queued behind it.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from host.analysis.calibration import UNCALIBRATED_NOTE
from host.analysis.model import level_name

STALE_S = 5.0
"""A status older than this (s) means no daemon is publishing."""
MESSAGE_S = 5.0
"""How long the view shows an event's line (a cue: "close to the bottom of the ribs"),
s of the roller's sensor time after the event."""
_BARS = " ▁▂▃▄▅▆▇█"

CALIBRATION_STEPS = (
    "Calibration: two landmarks, held still and marked with the roller's button.",
    "1. Lie on the roller and raise your hips as you do to roll.",
    "2. Roll up until the roller is at the top of your shoulders (just below the bony "
    "bump at the base of your neck). Hold still, then press the button once.",
    "3. Roll down until the roller is at the bottom of your ribs. Hold still, then press "
    "the button once. (The roller may buzz there: that is the warning zone.)",
)
"""What the person does to calibrate (``smartroller calibrate`` says it, the dashboard
shows it)."""


@dataclass
class LiveStatus:
    """A snapshot of one roller's session.

    address: the roller. connected: the Bluetooth link is up. session_id: the session
    being recorded (None: nobody rolling). utc: when this was written, s since 1970.
    t: the roller's sensor time of the newest frame, s. in_contact: a body on the roller.
    position_mm: roller position from its zero, mm. level: continuous vertebral level
    (NaN unknown). region: region label ("" unknown). p_below: probability below the
    rib cage. zone_loads_n: N per zone. total_load_n: N. strokes: strokes so far.
    warnings: lumbar warnings so far. warning: the lumbar warning is on now.
    calibration: "" or the last calibration message. calibrated: the session's
    calibration is complete. message: the newest event's line; message_t: that event's
    sensor time, s (the view shows it for ``MESSAGE_S``). fault: what keeps the
    daemon from storing ("" none: e.g. a full disk; the roller keeps the frames).
    guide: the guided calibration's step, what to do ("" not guided,
    ``host.daemon.guide``). uncalibrated: the session's analysis has no calibration.
    back_mm: the estimated contact, mm from C7 along the back; sd_mm: its 1 SD, mm
    (NaN unknown). frame_utc: the newest frame's time on the roller's clock mapped to
    UTC, s since 1970 (NaN: not mapped yet); received_utc: when the daemon received
    it, s since 1970 (with ``utc``, the publish time: the latency to a screen).
    """

    address: str
    connected: bool = False
    session_id: int | None = None
    utc: float = 0.0
    t: float = math.nan
    in_contact: bool = False
    position_mm: float = math.nan
    level: float = math.nan
    region: str = ""
    p_below: float = math.nan
    zone_loads_n: list[float] = field(default_factory=list)
    total_load_n: float = 0.0
    strokes: int = 0
    warnings: int = 0
    warning: bool = False
    calibration: str = ""
    calibrated: bool = False
    message: str = ""
    message_t: float = math.nan
    fault: str = ""
    guide: str = ""
    uncalibrated: bool = False
    back_mm: float = math.nan
    sd_mm: float = math.nan
    frame_utc: float = math.nan
    received_utc: float = math.nan

    def to_json(self) -> str:
        """One line of JSON (NaN as null)."""
        data = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> LiveStatus:
        """Back from ``to_json``; ValueError when it is not one."""
        try:
            data = json.loads(text)
            names = set(cls.__dataclass_fields__)
            values = {k: (math.nan if v is None and k in _FLOATS else v)
                      for k, v in data.items() if k in names}
            return cls(**values)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a live status: {exc}") from None


_FLOATS = {"t", "position_mm", "level", "p_below", "message_t", "back_mm", "sd_mm",
           "frame_utc", "received_utc"}


def status_path(data_dir: Path, address: str) -> Path:
    """Where the daemon publishes ``address``'s status."""
    return Path(data_dir) / "live" / (address.upper().replace(":", "-") + ".json")


def fallback_dir(data_dir: Path) -> Path:
    """Where the statuses go when the data directory takes no file (read-only): a
    folder of the runtime directory (``$XDG_RUNTIME_DIR``, else the temporary
    directory) named for the user and the data directory's absolute path."""
    runtime = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    key = hashlib.sha256(str(Path(data_dir).absolute()).encode()).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(runtime) / f"smartroller-{uid}" / f"live-{key}"


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def publish(data_dir: Path, status: LiveStatus) -> None:
    """Replace the roller's status file atomically.

    On a full disk (no room for the new file: the moment the daemon must say it is not
    storing) the existing file is overwritten in place instead, in one write padded
    with spaces to its old length (JSON allows them), which needs no new block while
    the status fits the file's first one (4 KiB; a status is ~0.5 KiB). A reader may
    then, rarely, see a torn file: ``read_statuses`` skips it. Where the data directory
    takes no write at all (read-only), the status goes to ``fallback_dir`` (0700).
    OSError when neither takes it."""
    _publish_text(Path(data_dir), status.address, (status.to_json() + "\n").encode())


def _publish_text(data_dir: Path, address: str, text: bytes) -> None:
    """``publish``'s write of ``text`` (a status's JSON) for ``address``."""
    try:
        _publish_in(data_dir / "live", address, text, in_place=True)
    except OSError as exc:
        try:
            folder = fallback_dir(data_dir)
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            _publish_in(folder, address, text, in_place=False)
        except OSError:
            raise exc from None


def _publish_in(folder: Path, address: str, text: bytes, in_place: bool) -> None:
    """Replace ``address``'s status file in ``folder`` by ``text`` atomically;
    ``in_place``: on a full disk overwrite the existing file instead (``publish``)."""
    path = folder / status_path(folder, address).name
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_bytes(text)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # (a read-only folder: there is no tmp file either)
        if not in_place or exc.errno not in _NO_SPACE or not path.exists():
            raise
        _overwrite(path, text)


def _overwrite(path: Path, text: bytes) -> None:
    """Write ``text`` over the start of ``path`` in one write, padded with spaces to
    the file's length (so no old byte is left after it)."""
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, text.ljust(os.fstat(fd).st_size, b" "), 0)
    finally:
        os.close(fd)


class StatusWriter:
    """Publishes statuses (``publish``) in a thread of its own, so that a slow disk
    delays the status files, never the caller. ``submit`` takes a snapshot and returns
    at once; per roller only the newest status not yet written waits (a status submitted
    during a slow write replaces the one waiting). The thread ends when idle for
    ``IDLE_S`` and starts again with the next status.

    data_dir: where the status files are. on_error: called (in the writer's thread)
    with the OSError of a write that failed; the next status is written all the same.
    """

    IDLE_S = 1.0
    """The writer's thread ends after this long with nothing to write, s."""

    def __init__(self, data_dir: Path,
                 on_error: Callable[[OSError], None] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.on_error = on_error
        self._waiting: dict[str, bytes] = {}  # address -> the newest status not written
        self._writing = 0  # statuses being written now
        self._running = False
        self._cond = threading.Condition()

    def submit(self, status: LiveStatus) -> None:
        """Publish ``status`` as it is now (its JSON taken here: ~0.05 ms)."""
        text = (status.to_json() + "\n").encode()
        with self._cond:
            self._waiting[status.address] = text
            self._cond.notify()
            if self._running:
                return
            self._running = True
        threading.Thread(target=self._run, name="live-status", daemon=True).start()

    def flush(self, timeout_s: float = 2.0) -> bool:
        """Wait until every status submitted is written (or failed); False if that
        took longer than ``timeout_s`` (s: a disk that hangs)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._waiting and not self._writing,
                                       timeout_s)

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._cond.wait_for(lambda: self._waiting, self.IDLE_S):
                    self._running = False
                    return
                batch, self._waiting = self._waiting, {}
                self._writing = len(batch)
            for address, text in batch.items():
                try:
                    _publish_text(self.data_dir, address, text)
                except OSError as exc:
                    if self.on_error is not None:
                        self.on_error(exc)
            with self._cond:
                self._writing = 0
                self._cond.notify_all()


def read_statuses(data_dir: Path, now: float | None = None) -> list[LiveStatus]:
    """The fresh statuses published for ``data_dir`` (newest first; one per roller, the
    newest of the data directory's and ``fallback_dir``'s)."""
    now = time.time() if now is None else now
    newest: dict[str, LiveStatus] = {}
    for folder in (Path(data_dir) / "live", fallback_dir(data_dir)):
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                status = LiveStatus.from_json(path.read_text())
            except (OSError, ValueError):
                continue
            known = newest.get(status.address)
            if now - status.utc <= STALE_S and (known is None or status.utc > known.utc):
                newest[status.address] = status
    return sorted(newest.values(), key=lambda s: -s.utc)


# --------------------------------------------------------------------------- drawing

_SPINE = [(0, "C7"), (1, "T1"), (3, "T3"), (5, "T5"), (7, "T7"), (9, "T9"), (11, "T11"),
          (13, "L1"), (15, "L3"), (17, "L5")]
"""The diagram's rows: (level index, name); a row stands for its vertebra and those down
to the next row's (T3: T3 and T4), as a continuous level ``x`` lies in ``floor(x)``."""
_REGION_OF_ROW = ["cervical", "upper thoracic", "upper thoracic", "mid thoracic",
                  "mid thoracic", "lower thoracic", "lower thoracic", "LUMBAR", "LUMBAR",
                  "LUMBAR"]


def _row_of(level: float) -> int:
    """The diagram's row of a continuous level (-1 unknown): the last row at or above
    the vertebra ``level`` lies in, the same vertebra ``level_name`` names."""
    if not math.isfinite(level):
        return -1
    vertebra = min(max(math.floor(level), 0), _SPINE[-1][0])
    return max(i for i, (first, _) in enumerate(_SPINE) if first <= vertebra)


def render(status: LiveStatus, width: int | None = None) -> list[str]:
    """The live view as lines of text, each at most ``width`` columns (default: the
    terminal's width)."""
    if width is None:
        width = shutil.get_terminal_size().columns
    head = f"smartroller {status.address}  " + (
        "connected" if status.connected else "not connected")
    if status.session_id is not None:
        head += f"  session {status.session_id}"
    lines = [head[:width]]
    marker_row = _row_of(status.level)
    for i, (level, name) in enumerate(_SPINE):
        here = i == marker_row
        if level >= 13:
            bone = "░░" if here and status.warning else "::"
        else:
            bone = "██" if level >= 1 else "▒▒"
        mark = f" ◀ roller at {level_name(status.level)}" if here else ""
        if here and status.warning:
            mark += "  BUZZ: below the rib cage"
        lines.append(f"  {name:>3} {bone} {_REGION_OF_ROW[i]:<15}{mark}"[:width])
    if not status.in_contact:
        where = "off the roller"
    elif math.isfinite(status.level):
        where = (f"at {level_name(status.level)} ({status.region.replace('_', ' ')}), "
                 f"{status.p_below:.0%} likely below the ribs")
    else:
        where = "on the roller, place not known yet"
    lines.append(f"  roller {status.position_mm:+6.0f} mm from its zero: {where}"[:width]
                 if math.isfinite(status.position_mm) else f"  {where}"[:width])
    zones = "".join(_BARS[min(len(_BARS) - 1, max(0, round(z / 60.0 * 8)))]
                    for z in status.zone_loads_n)
    lines.append(f"  load {status.total_load_n:5.0f} N  zones [{zones}]"[:width])
    lines.append(f"  strokes {status.strokes}   lumbar warnings {status.warnings}"[:width])
    if status.guide:
        lines.append(f"  {status.guide}"[:width])
    if status.calibration:
        lines.append(f"  calibration: {status.calibration}"[:width])
    if status.uncalibrated and status.session_id is not None:
        lines.append("  UNCALIBRATED: the warning and the roller's fence keep a wider margin"
                     [:width])
        lines += [line[:width] for line in textwrap.wrap(
            f"what calibrating changes: {UNCALIBRATED_NOTE}", max(width, 30),
            initial_indent="    ", subsequent_indent="    ")]
    if status.message and 0.0 <= status.t - status.message_t <= MESSAGE_S:  # NaN: no
        lines.append(f"  {status.message}"[:width])
    if status.fault:
        lines.append(f"  NOT STORING: {status.fault} (the roller keeps the frames)"[:width])
    return lines


def live_line(status: LiveStatus) -> str:
    """The live view in one line (for a log, or output that is not a terminal)."""
    if not status.in_contact:
        where = "off the roller"
    elif math.isfinite(status.level):
        where = (f"{level_name(status.level):>3} {status.region.replace('_', ' '):<14} "
                 f"{status.p_below:4.0%} below")
    else:
        where = "on the roller"
    buzz = "  BUZZ: below the rib cage" if status.warning else ""
    t = f"{status.t:6.1f} s" if math.isfinite(status.t) else "      -"
    pos = f"{status.position_mm:+5.0f} mm" if math.isfinite(status.position_mm) else "     -"
    return (f"{t}  {pos}  {where:<32} {status.total_load_n:4.0f} N  strokes "
            f"{status.strokes:3d}  warnings {status.warnings}{buzz}")
