"""``smartroller profile``: who rolls (the analysis needs the stature).

    smartroller profile [show [NAME]] [--json]
    smartroller profile list [--json]
    smartroller profile create NAME --stature 1.72 [--sex female|male] [--use]
    smartroller profile update NAME [--stature S] [--sex X] [--rename NEW]
    smartroller profile use NAME

Each takes ``--data-dir DIR``. Errors are one line on stderr, exit status 2 (an
unknown profile, a bad value, a bad directory).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from typing import TextIO

from host.cli.common import UsageError, add_data_dir, open_user_store, run_on_store
from host.store import SEXES, Store, StoreError
from host.timefmt import iso_utc

__all__ = ["COMMANDS", "add_parsers", "calibration_text", "parse_stature", "run"]

COMMANDS = ("profile",)


def parse_stature(text: str) -> float:
    """A stature in m from "1.72", "1.72m" or "172cm"."""
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*(m|cm)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a stature: {text!r} (e.g. 1.72 or 172cm)")
    value = float(match.group(1)) / (100.0 if match.group(2) == "cm" else 1.0)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a stature: {text!r}")
    return value


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``profile`` and its sub-commands to the sub-parsers."""
    prof = add_data_dir(sub.add_parser("profile", help="show, list, create, update or choose "
                                       "user profiles"))
    psub = prof.add_subparsers(dest="profile_command")
    show = add_data_dir(psub.add_parser("show", help="a profile (default: the active one)"))
    show.add_argument("name", nargs="?")
    show.add_argument("--json", action="store_true")
    lst = add_data_dir(psub.add_parser("list", help="every profile"))
    lst.add_argument("--json", action="store_true")
    for name in ("create", "update"):
        c = add_data_dir(psub.add_parser(name, help=f"{name} a profile"))
        c.add_argument("name")
        c.add_argument("--stature", type=parse_stature, required=name == "create",
                       help="standing height: 1.72 (m) or 172cm")
        c.add_argument("--sex", choices=SEXES, help="the body model's proportions")
        if name == "update":
            c.add_argument("--rename", metavar="NEW", help="new name")
        else:
            c.add_argument("--use", action="store_true", help="make it the active profile")
    use = add_data_dir(psub.add_parser("use", help="make a profile the active one"))
    use.add_argument("name")


def run(args: argparse.Namespace, out: TextIO | None = None,
        err: TextIO | None = None) -> int:
    """Run ``smartroller profile ...``; its exit status."""
    return run_on_store(lambda: cmd_profile(args, out or sys.stdout), err,
                        data_dir=args.data_dir)


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
            "calibration_skipped": store.calibration_skipped(profile),
            "created_utc": iso_utc(profile.created_utc),
            "updated_utc": iso_utc(profile.updated_utc)}


def cmd_profile(args: argparse.Namespace, out: TextIO) -> None:
    """``smartroller profile ...``."""
    command = args.profile_command or "show"
    store = open_user_store(args, create=command in ("create", "update", "use"))
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
            raise UsageError("nothing to update: give --stature, --sex or --rename")
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
        if key == "calibration_skipped":
            key = "calibration skipped (`smartroller calibrate --skip`; no guide)"
        print(f"{key}: {'-' if value is None else value}", file=out)
