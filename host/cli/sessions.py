"""``smartroller sessions | show | export | report``: the stored sessions.

    smartroller sessions [--json]
    smartroller show SESSION [--json]
    smartroller export SESSION|latest --out DIR [--force]
    smartroller report SESSION|latest [--out FILE] [--force]

Every one takes ``--data-dir DIR`` (else ``$SMARTROLLER_DATA_DIR``, else the user's data
directory). SESSION is a session id (``smartroller sessions`` lists them) or
``latest``. Errors are one line on stderr, exit status 2 (an unknown session, a bad
directory or value, a corrupt or newer database). ``export`` and ``report`` do not
replace files that are there (one line, exit 2) unless ``--force``; what they write
gets the mode of any new file of the user's (0644 with umask 022).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from host.cli.common import UsageError, add_data_dir, open_user_store, run_on_store
from host.daemon.lock import daemon_running
from host.store import APPROXIMATE_START, RECORDING, Session, Store, StoreError
from host.timefmt import duration_text

__all__ = ["COMMANDS", "add_parsers", "run"]

COMMANDS = ("sessions", "show", "export", "report")


def _session_ref(text: str) -> str:
    if text == "latest" or re.fullmatch(r"[1-9][0-9]{0,17}", text):
        return text
    raise argparse.ArgumentTypeError(f"expected a session id (see 'smartroller sessions') "
                                     f"or 'latest': {text!r}")


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``sessions``, ``show``, ``export`` and ``report`` to the sub-parsers."""
    p = add_data_dir(sub.add_parser("sessions", help="list the stored sessions"))
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add_data_dir(sub.add_parser("show", help="one session's figures"))
    p.add_argument("session", type=_session_ref, metavar="SESSION", help="id or 'latest'")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = add_data_dir(sub.add_parser("export", help="write a session's CSV files"))
    p.add_argument("session", type=_session_ref, metavar="SESSION", help="id or 'latest'")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="directory for samples.csv, strokes.csv, dwells.csv, events.csv")
    p.add_argument("--force", action="store_true", help="replace the files if they are there")
    p = add_data_dir(sub.add_parser("report", help="write a session's HTML report"))
    p.add_argument("session", type=_session_ref, metavar="SESSION", help="id or 'latest'")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="HTML file (default: smartroller-session-ID.html here)")
    p.add_argument("--force", action="store_true", help="replace the file if it is there")


def run(args: argparse.Namespace, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    """Run ``args.command`` (one of ``COMMANDS``); its exit status."""
    from host.export.csv import ExportError

    handlers: dict[str, Callable[[argparse.Namespace, TextIO], None]] = {
        "sessions": cmd_sessions, "show": cmd_show, "export": cmd_export,
        "report": cmd_report}
    return run_on_store(lambda: handlers[args.command](args, out or sys.stdout), err,
                        (ExportError,), data_dir=args.data_dir)


def _resolve(store: Store | None, ref: str) -> Session:
    if store is None:
        raise StoreError("no session recorded yet" if ref == "latest" else f"no session {ref}")
    return store.latest_session() if ref == "latest" else store.session(int(ref))


def _profile_name(store: Store, session: Session) -> str | None:
    if session.profile_id is None:
        return None
    profile = store.profile_by_id(session.profile_id)
    return None if profile is None else profile.name


def cmd_sessions(args: argparse.Namespace, out: TextIO) -> None:
    """``smartroller sessions``."""
    store = open_user_store(args, create=False)
    if store is not None:
        store.check()  # a damaged store says so rather than listing what it can
    summaries = [] if store is None else store.summaries()
    if args.json:
        print(json.dumps([s.as_dict() for s in summaries], indent=2), file=out)
        return
    if not summaries:
        print("no sessions yet", file=out)
        return
    print(f"{'id':>5}  {'device':17}  {'start (UTC)':19}  {'duration':>8}  {'frames':>7}  "
          f"{'strokes':>7}  {'warnings':>8}  state", file=out)
    # A session left recording while no daemon runs is unfinished: the daemon stopped
    # with it open; its next start continues or closes it.
    idle = store is not None and not daemon_running(store.path.parent)
    for summary in summaries:
        s = summary.session
        state = s.state
        if state == RECORDING and idle:
            state += " (interrupted: the daemon stopped; its next start closes it)"
        print(f"{s.id:>5}  {s.device:17}  {s.start_text():19}  "
              f"{duration_text(s.duration_s):>8}  {s.frame_count:>7}  "
              f"{summary.stroke_count:>7}  {summary.warning_count:>8}  {state}", file=out)
    if not all(summary.session.start_known for summary in summaries):
        print(f"<= ... (approx.): {APPROXIMATE_START}", file=out)


def cmd_show(args: argparse.Namespace, out: TextIO) -> None:
    """``smartroller show SESSION``."""
    from host.export.report import figures

    store = open_user_store(args, create=False)
    session = _resolve(store, args.session)
    assert store is not None
    fig = figures(store.load(session.id))
    summary = store.summary(session.id).as_dict()
    info = {**summary, "profile": _profile_name(store, session),
            "mean_amplitude_mm": _round(fig.mean_amplitude_mm, 1),
            "cadence_per_min": _round(fig.cadence_per_min, 1),
            "mean_load_n": _round(fig.mean_load_n, 1), "max_load_n": _round(fig.max_load_n, 1),
            "contact_s": _round(fig.contact_s, 1), "warned_s": _round(fig.warned_s, 1),
            "below_ribs_s": _round(fig.below_ribs_s, 1),
            "time_per_level_s": {k: round(v, 1) for k, v in fig.level_s.items()}}
    if args.json:
        print(json.dumps(info, indent=2), file=out)
        return
    for key, value in info.items():
        if key == "time_per_level_s":
            value = "  ".join(f"{k} {v:g}" for k, v in value.items()) or "-"
        print(f"{key:18} {'-' if value is None else value}", file=out)


def _round(value: float, digits: int) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


def cmd_export(args: argparse.Namespace, out: TextIO) -> None:
    """``smartroller export SESSION --out DIR``."""
    from host.cli.progress import Progress
    from host.export.csv import FILES, export_session

    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file, not a directory")
    there = [name for name in FILES if (args.out / name).exists()] if args.out.is_dir() else []
    if there and not args.force:
        raise UsageError(f"--out {args.out} already holds {', '.join(there)}: give --force "
                         "to replace them, or another directory")
    store = open_user_store(args, create=False)
    session = _resolve(store, args.session)
    assert store is not None
    bar = Progress(f"session {session.id}")
    data = store.load(session.id, progress=lambda x: bar(0.3 * x))
    try:
        paths = export_session(data, args.out, progress=lambda x: bar(0.3 + 0.7 * x))
    finally:
        bar.done()
    for path in paths:
        print(path, file=out)


def cmd_report(args: argparse.Namespace, out: TextIO) -> None:
    """``smartroller report SESSION [--out FILE]``."""
    from host.cli.progress import Progress
    from host.export.report import write_report

    store = open_user_store(args, create=False)
    session = _resolve(store, args.session)
    assert store is not None
    target = args.out or Path(f"smartroller-session-{session.id}.html")
    if target.is_dir():
        raise UsageError(f"--out {target} is a directory; give a file name")
    if not target.parent.exists() or not target.parent.is_dir():
        raise UsageError(f"--out {target}: no directory {target.parent}")
    if target.exists() and not args.force:
        raise UsageError(f"{target} is already there: give --force to replace it, or "
                         "--out another file")
    bar = Progress(f"session {session.id}")
    try:
        data = store.load(session.id, progress=lambda x: bar(0.8 * x))
        path = write_report(data, target, _profile_name(store, session))
        bar(1.0)
    finally:
        bar.done()
    print(path, file=out)
