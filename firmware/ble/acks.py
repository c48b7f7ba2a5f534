"""Acknowledgements per bonded host: a frame leaves the journal once every host has it.

Each bonded host that sends ``ACK(s)`` becomes an *owner* of the journal from then on:
``HostAcks`` keeps its own mark (the newest seq it stored) and releases from the journal
(``journal.ack``) only up to the **lowest mark of all owners**, so one host's ACK never
drops frames another host has not stored yet. With one host this is the journal's ack
as before.

- Marks only move forward (an older ACK of a host is ignored); a host's mark is at
  most the journal's ``last_seq``.
- ``forget(host)`` removes an owner (its bond is gone): the others' marks then decide.
  ``keep_only(hosts)`` does so for every owner not in ``hosts`` (the bonds at start).
- At most ``max_hosts`` owners (default 8): a further host is refused (``ack`` returns
  False: the roller answers ``NOT_ALLOWED``), so the table stays small.
- The marks are saved (0600, atomically: ``firmware.files.write_private``) to ``path``
  at every change, and read back at start, each at most the journal's ``last_seq``
  (none when the journal is empty: a RAM journal starts again at seq 0); an unreadable
  file is logged and ignored (the journal's own ``acked`` still holds what all owners
  had stored).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Protocol

from firmware.files import write_private

__all__ = ["HostAcks"]

log = logging.getLogger("smartroller.ble")


class AckedJournal(Protocol):
    """What ``HostAcks`` needs of ``firmware.journal.Journal``."""

    @property
    def last_seq(self) -> int | None:
        """Newest frame's seq (None: none ever)."""

    def ack(self, seq: int) -> None:
        """Release every frame <= ``seq``."""


class HostAcks:
    """Per-host acknowledgement marks in front of the journal (see the module doc).

    journal: the frame journal. path: where the marks are kept (None: RAM only).
    max_hosts: most owners at once.
    """

    def __init__(self, journal: AckedJournal, path: Path | None = None,
                 max_hosts: int = 8) -> None:
        self.journal = journal
        self.path = path
        self.max_hosts = max_hosts
        last = journal.last_seq
        self.marks: dict[str, int] = {} if last is None else {
            host: min(mark, last) for host, mark in self._load().items()}

    def ack(self, host: str, seq: int) -> bool:
        """``host`` stored every frame <= ``seq``; False if it cannot be an owner."""
        if host not in self.marks and len(self.marks) >= self.max_hosts:
            return False
        last = self.journal.last_seq
        seq = seq if last is None else min(seq, last)
        if seq <= self.marks.get(host, -1):
            return True
        self.marks[host] = seq
        self._changed()
        return True

    def forget(self, host: str) -> None:
        """``host`` owns nothing any more (its bond went)."""
        if self.marks.pop(host, None) is not None:
            self._changed()

    def keep_only(self, hosts: set[str]) -> None:
        """Forget every owner not in ``hosts`` (the bonded hosts)."""
        for host in [h for h in self.marks if h not in hosts]:
            self.forget(host)

    @property
    def released(self) -> int | None:
        """The lowest mark: every owner stored the frames up to it (None: no owner)."""
        return min(self.marks.values()) if self.marks else None

    def _changed(self) -> None:
        if self.released is not None:
            self.journal.ack(self.released)
        if self.path is not None:
            write_private(self.path, json.dumps(self.marks, sort_keys=True))

    def _load(self) -> dict[str, int]:
        if self.path is None:
            return {}
        try:
            marks = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            log.warning("host acks %s unreadable (%s): ignored", self.path, exc)
            return {}
        if not isinstance(marks, dict) or not all(
                isinstance(k, str) and type(v) is int and v >= 0 for k, v in marks.items()):
            log.warning("host acks %s unreadable: ignored", self.path)
            return {}
        return dict(list(marks.items())[:self.max_hosts])
