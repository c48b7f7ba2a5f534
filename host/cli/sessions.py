"""The user's commands of ``smartroller``: sessions, show, export, report, profile,
devices, forget.

    smartroller sessions [--json]
    smartroller show SESSION [--json]
    smartroller export SESSION|latest --out DIR
    smartroller report SESSION|latest [--out FILE]
    smartroller profile [show|list|create|update|use ...]
    smartroller devices [--json]
    smartroller forget ADDRESS [--adapter A] [--keys FILE]

Every one takes ``--data-dir DIR`` (else ``$SMARTROLLER_DATA_DIR``, else the user's data
directory). SESSION is a session id (``smartroller sessions`` lists them) or
``latest``. Errors are one line on stderr: exit status 2 for bad input (an unknown
session or profile, a bad directory or value, a corrupt or newer database), 1 when the
system's Bluetooth refuses to remove a bond. ``add_user_parsers`` and
``run_user_command`` wire them into the ``smartroller`` parser.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, TextIO

from host.paths import DataDirError, check_dir, database_path
from host.store import SEXES, Session, Store, StoreError
from host.timefmt import duration_text, iso_utc

__all__ = ["COMMANDS", "UserError", "add_user_parsers", "run_user_command"]

PROG = "smartroller"
COMMANDS = ("sessions", "show", "export", "report", "profile", "devices", "forget")
EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class UserError(ValueError):
    """Bad input on the command line: one line, exit status 2."""


# --------------------------------------------------------------------------- arguments


def _session_ref(text: str) -> str:
    if text == "latest" or re.fullmatch(r"[1-9][0-9]{0,17}", text):
        return text
    raise argparse.ArgumentTypeError(f"expected a session id (see 'smartroller sessions') "
                                     f"or 'latest': {text!r}")


def parse_stature(text: str) -> float:
    """A stature in m from "1.72", "1.72m" or "172cm"."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*(m|cm)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a stature: {text!r} (e.g. 1.72 or 172cm)")
    value = float(match.group(1)) / (100.0 if match.group(2) == "cm" else 1.0)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a stature: {text!r}")
    return value


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make ``parser`` report bad arguments in one line (no usage block), exit 2."""
    def error(message: str) -> NoReturn:
        parser.exit(EXIT_USAGE, f"{parser.prog}: error: {message}\n")

    parser.error = error  # type: ignore[method-assign]


def add_user_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the user's commands to the ``smartroller`` sub-parsers."""
    def data_dir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        _one_line_errors(p)
        p.add_argument("--data-dir", metavar="DIR",
                       help="where the session store is (default: $SMARTROLLER_DATA_DIR, "
                            "else the user's data directory)")
        return p

    p = data_dir(sub.add_parser("sessions", help="list the stored sessions"))
    p.add_argument("--json", action="store_true", help="print JSON")
    p = data_dir(sub.add_parser("show", help="one session's figures"))
    p.add_argument("session", type=_session_ref, metavar="SESSION", help="id or 'latest'")
    p.add_argument("--json", action="store_true", help="print JSON")
    p = data_dir(sub.add_parser("export", help="write a session's CSV files"))
    p.add_argument("session", type=_session_ref, metavar="SESSION", help="id or 'latest'")
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="directory for samples.csv, strokes.csv, dwells.csv, events.csv")
    p = data_dir(sub.add_parser("report", help="write a session's HTML report"))
    p.add_argument("session", type=_session_ref, metavar="SESSION", help="id or 'latest'")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="HTML file (default: smartroller-session-ID.html here)")

    prof = data_dir(sub.add_parser("profile", help="show, list, create, update or choose "
                                   "user profiles"))
    psub = prof.add_subparsers(dest="profile_command")
    show = data_dir(psub.add_parser("show", help="a profile (default: the active one)"))
    show.add_argument("name", nargs="?")
    show.add_argument("--json", action="store_true")
    lst = data_dir(psub.add_parser("list", help="every profile"))
    lst.add_argument("--json", action="store_true")
    for name in ("create", "update"):
        c = data_dir(psub.add_parser(name, help=f"{name} a profile"))
        c.add_argument("name")
        c.add_argument("--stature", type=parse_stature, required=name == "create",
                       help="standing height: 1.72 (m) or 172cm")
        c.add_argument("--sex", choices=SEXES, help="the body model's proportions")
        if name == "update":
            c.add_argument("--rename", metavar="NEW", help="new name")
        else:
            c.add_argument("--use", action="store_true", help="make it the active profile")
    use = data_dir(psub.add_parser("use", help="make a profile the active one"))
    use.add_argument("name")

    p = data_dir(sub.add_parser("devices", help="list the known rollers"))
    p.add_argument("--json", action="store_true", help="print JSON")
    p = data_dir(sub.add_parser("forget", help="remove a roller and its bond"))
    p.add_argument("address")
    p.add_argument("--adapter", metavar="A",
                   help="hciN, or a Bumble transport (the bond is then in --keys)")
    p.add_argument("--keys", metavar="FILE", type=Path,
                   help="the Bumble backend's key store (default: the one 'pair' uses)")


# --------------------------------------------------------------------------- store access


def _open(args: argparse.Namespace, create: bool) -> Store | None:
    """The store of ``--data-dir``; None when there is none yet and ``create`` is off."""
    path = database_path(args.data_dir)
    try:
        if path.parent.exists() or create:
            check_dir(path.parent, create=create)
    except DataDirError as exc:
        raise UserError(str(exc)) from None
    if not create and not path.exists():
        return None
    return Store(path)


def _resolve(store: Store | None, ref: str) -> Session:
    if store is None:
        raise StoreError("no session recorded yet" if ref == "latest" else f"no session {ref}")
    return store.latest_session() if ref == "latest" else store.session(int(ref))


def _profile_name(store: Store, session: Session) -> str | None:
    if session.profile_id is None:
        return None
    profile = store.profile_by_id(session.profile_id)
    return None if profile is None else profile.name


# --------------------------------------------------------------------------- commands


def cmd_sessions(args: argparse.Namespace, out: TextIO) -> None:
    """``smartroller sessions``."""
    store = _open(args, create=False)
    summaries = [] if store is None else store.summaries()
    if args.json:
        print(json.dumps([s.as_dict() for s in summaries], indent=2), file=out)
        return
    if not summaries:
        print("no sessions yet", file=out)
        return
    print(f"{'id':>5}  {'device':17}  {'start (UTC)':19}  {'duration':>8}  {'frames':>7}  "
          f"{'strokes':>7}  {'warnings':>8}  state", file=out)
    for summary in summaries:
        s = summary.session
        print(f"{s.id:>5}  {s.device:17}  {iso_utc(s.started_utc)[:19].replace('T', ' ')}  "
              f"{duration_text(s.duration_s):>8}  {s.frame_count:>7}  "
              f"{summary.stroke_count:>7}  {summary.warning_count:>8}  {s.state}", file=out)


def cmd_show(args: argparse.Namespace, out: TextIO) -> None:
    """``smartroller show SESSION``."""
    from host.export.report import figures

    store = _open(args, create=False)
    session = _resolve(store, args.session)
    assert store is not None
    fig = figures(store.load(session.id))
    summary = store.summary(session.id).as_dict()
    info = {**summary, "profile": _profile_name(store, session),
            "mean_amplitude_mm": _round(fig.mean_amplitude_mm, 1),
            "cadence_per_min": _round(fig.cadence_per_min, 1),
            "mean_load_n": _round(fig.mean_load_n, 1), "max_load_n": _round(fig.max_load_n, 1),
            "contact_s": _round(fig.contact_s, 1), "below_ribs_s": _round(fig.below_ribs_s, 1),
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
    from host.export.csv import export_session

    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file, not a directory")
    store = _open(args, create=False)
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

    store = _open(args, create=False)
    session = _resolve(store, args.session)
    assert store is not None
    target = args.out or Path(f"smartroller-session-{session.id}.html")
    if target.is_dir():
        raise UserError(f"--out {target} is a directory; give a file name")
    if not target.parent.exists() or not target.parent.is_dir():
        raise UserError(f"--out {target}: no directory {target.parent}")
    bar = Progress(f"session {session.id}")
    try:
        data = store.load(session.id, progress=lambda x: bar(0.8 * x))
        path = write_report(data, target, _profile_name(store, session))
        bar(1.0)
    finally:
        bar.done()
    print(path, file=out)


def calibration_text(body: dict) -> str | None:
    """What the analysis's data in a profile says of its calibration (None: none yet).

    Knows the analysis's user model (``calibrations``, ``span_m``: host/analysis/
    profile.py) and a plain ``calibration`` object; anything else is not shown."""
    count = body.get("calibrations")
    span = body.get("span_m")
    if isinstance(count, int) and count > 0:
        text = f"{count} calibrated session(s)"
        if isinstance(span, int | float):
            text += f", thoracic span {span * 1000:.0f} mm"
        return text
    calibration = body.get("calibration")
    if isinstance(calibration, dict) and calibration:
        return "; ".join(f"{k}={v}" for k, v in calibration.items())
    return None


def _profile_dict(store: Store, name: str | None = None) -> dict:
    profile = store.profile(name) if name else store.active_profile()
    if profile is None:
        raise StoreError(f"no profile named {name!r}" if name else
                         "no profile yet: smartroller profile create NAME --stature 1.72")
    active = store.active_profile()
    calibration = calibration_text(profile.body)
    return {"name": profile.name, "stature_m": profile.stature_m, "sex": profile.sex,
            "active": active is not None and active.id == profile.id,
            "calibrated": calibration is not None, "calibration": calibration,
            "created_utc": iso_utc(profile.created_utc),
            "updated_utc": iso_utc(profile.updated_utc)}


def cmd_profile(args: argparse.Namespace, out: TextIO) -> None:
    """``smartroller profile ...``."""
    command = args.profile_command or "show"
    store = _open(args, create=command in ("create", "update", "use"))
    if store is None:
        if command == "list":
            print("[]" if getattr(args, "json", False) else "no profiles yet", file=out)
            return
        raise StoreError("no profile yet: smartroller profile create NAME --stature 1.72")
    if command == "create":
        store.create_profile(args.name, args.stature, args.sex)
        if args.use:
            store.set_active_profile(args.name)
        info = _profile_dict(store, args.name)
    elif command == "update":
        if args.stature is None and args.sex is None and args.rename is None:
            raise UserError("nothing to update: give --stature, --sex or --rename")
        store.update_profile(args.name, stature_m=args.stature, sex=args.sex,
                             rename=args.rename)
        info = _profile_dict(store, args.rename or args.name)
    elif command == "use":
        store.set_active_profile(args.name)
        info = _profile_dict(store, args.name)
    elif command == "list":
        profiles = [_profile_dict(store, p.name) for p in store.profiles()]
        if args.json:
            print(json.dumps(profiles, indent=2), file=out)
        for p in [] if args.json else profiles:
            print(f"{'*' if p['active'] else ' '} {p['name']:20} {p['stature_m']:.2f} m  "
                  f"{p['sex'] or '-':6}  {'calibrated' if p['calibrated'] else 'not calibrated'}",
                  file=out)
        if not profiles and not args.json:
            print("no profiles yet", file=out)
        return
    else:
        info = _profile_dict(store, getattr(args, "name", None))
        if getattr(args, "json", False):
            print(json.dumps(info, indent=2), file=out)
            return
    for key, value in info.items():
        if key == "calibration":
            key = "calibration (made by 'smartroller calibrate')"
        print(f"{key}: {'-' if value is None else value}", file=out)


def cmd_devices(args: argparse.Namespace, out: TextIO) -> None:
    """``smartroller devices``."""
    store = _open(args, create=False)
    devices = [] if store is None else store.devices()
    rows = [{"address": d.address, "name": d.name, "first_seen_utc": iso_utc(d.first_seen_utc),
             "last_seen_utc": iso_utc(d.last_seen_utc), "bonded": d.bonded,
             "key_store": d.key_store} for d in devices]
    if args.json:
        print(json.dumps(rows, indent=2), file=out)
        return
    if not rows:
        print("no rollers yet: smartroller scan, then smartroller pair ADDRESS", file=out)
    for r in rows:
        print(f"{r['address']}  {r['name'] or '-':20}  last seen {r['last_seen_utc'][:19]}  "
              f"{'bonded' if r['bonded'] else 'not bonded'}", file=out)


def cmd_forget(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """``smartroller forget ADDRESS``: the device leaves the store, its bond the Bumble
    key store (``--keys``, a Bumble ``--adapter``, or the key store the store recorded
    for it) or else the OS (bleak's native backend; also any bond in the default Bumble
    key store)."""
    from host.ble.bonds import BondRemovalUnsupported, remove_bumble_bond, unpair_native
    from host.cli.devices import UsageError, check_address

    try:
        address = check_address(args.address)
    except UsageError as exc:
        raise UserError(str(exc)) from None
    adapter = args.adapter
    if adapter is not None and ":" not in adapter and not re.fullmatch(r"hci\d+", adapter):
        raise UserError(f"--adapter {adapter!r}: expected hciN or a Bumble transport")
    store = _open(args, create=False)
    device = None if store is None else store.device(address)
    bumble = args.keys is not None or (adapter is not None and ":" in adapter)
    key_store = args.keys
    if key_store is None and device is not None and device.key_store and adapter is None:
        key_store, bumble = Path(device.key_store), True
    if key_store is None:
        from host.ble.bumble_adapter import default_key_store_path

        key_store = default_key_store_path()
    if key_store.is_dir():
        raise UserError(f"--keys {key_store} is a directory, not a key store file")
    try:
        removed = remove_bumble_bond(key_store, address)
    except (ValueError, OSError) as exc:
        raise UserError(str(exc)) from None
    in_store = store.forget_device(address) if store is not None else False
    done = [f"bond deleted from {key_store}"] if removed else []
    if in_store:
        done.insert(0, "removed from the store")
    if bumble or removed:
        if not done:
            raise UserError(f"unknown roller {address}: not in the store and no bond in "
                            f"{key_store}")
        print(f"{address}: {', '.join(done)}", file=out)
        return EXIT_OK
    try:
        asyncio.run(unpair_native(address, adapter))
        done.append("bond removed from the system's Bluetooth")
        status = EXIT_OK
    except BondRemovalUnsupported as exc:
        print(f"{PROG}: {exc}: remove {address} in the system's Bluetooth settings", file=err)
        status = EXIT_OK if in_store else EXIT_FAILURE
    except Exception as exc:  # BleakError, OSError (no BlueZ), TimeoutError ...
        reason = f"{type(exc).__name__}: {exc}".rstrip(": ")
        print(f"{PROG}: error: the system's Bluetooth did not remove a bond with {address} "
              f"({reason}); remove it in the system's Bluetooth settings", file=err)
        status = EXIT_FAILURE
    if done:
        print(f"{address}: {', '.join(done)}", file=out)
    return status


def run_user_command(args: argparse.Namespace, out: TextIO | None = None,
                     err: TextIO | None = None) -> int | None:
    """Run ``args.command`` if it is one of ours (its exit status), else None."""
    if args.command not in COMMANDS:
        return None
    out, err = out or sys.stdout, err or sys.stderr
    handlers: dict[str, Callable[[argparse.Namespace, TextIO], None]] = {
        "sessions": cmd_sessions, "show": cmd_show, "export": cmd_export,
        "report": cmd_report, "profile": cmd_profile, "devices": cmd_devices}
    from host.export.csv import ExportError

    try:
        if args.command == "forget":
            return cmd_forget(args, out, err)
        handlers[args.command](args, out)
    except (UserError, StoreError, ExportError, DataDirError) as exc:
        print(f"{PROG}: error: {exc}", file=err)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{PROG}: error: {exc.strerror or exc}"
              f"{': ' + str(exc.filename) if exc.filename else ''}", file=err)
        return EXIT_USAGE
    return EXIT_OK
