"""``smartroller``: the laptop's command line, put together from its command groups.

    smartroller demo [--duration S] [--speed X] [--seed N] [--scenario FILE]   (demo)
    smartroller bench [--scenario FILE ...] [--seeds N] [--duration S] [--json] (bench)
    smartroller scan | pair | stream | devices | forget                      (devices)
    smartroller sessions | show | export | report                           (sessions)
    smartroller profile [show|list|create|update|use]                        (profile)
    smartroller daemon | live | calibrate                                     (daemon)
    smartroller dashboard [--port 8765] [--host ADDR]                      (dashboard)

Errors are one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from firmware.schema import SchemaError
from host.cli.common import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, PROG

GROUPS = ("demo", "bench", "devices", "sessions", "profile", "daemon", "dashboard")
"""The command groups, modules of ``host.cli``, in the order of the help."""


def _groups() -> list[ModuleType]:
    return [importlib.import_module(f"host.cli.{name}") for name in GROUPS]


def _parser(groups: list[ModuleType]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="smartroller on the laptop")
    sub = p.add_subparsers(dest="command", required=True)
    for group in groups:
        group.add_parsers(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``smartroller``; returns the exit status."""
    groups = _groups()
    args = _parser(groups).parse_args(argv)
    group = next(g for g in groups if args.command in g.COMMANDS)
    try:
        return group.run(args)
    except SchemaError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RuntimeError as exc:  # a simulated run that could not finish
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
