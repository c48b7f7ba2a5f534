"""The live page's feed: the daemon's live status files, watched and pushed.

The daemon replaces ``live/<ADDRESS>.json`` in the data directory up to 20 times a
second while frames come (``host.daemon.live``). ``LiveFeed`` looks at those files
every ``POLL_S`` (a ``stat`` each: cheap), reads them when one changed, and hands each
subscriber (a page's WebSocket) the newest message; a subscriber that is slower gets
the newest message, never a queue of old ones. With nothing changing it still sends
one every ``HEARTBEAT_S``, so that a daemon that stops shows as stopped. With no page
open it looks at nothing (no ``stat``, no lock tried, no profile read) until one
subscribes, which gets a fresh message at once, not the last one of before.

``live_message`` decides what the page says, plainly (``state``):

- ``no_daemon``: no fresh status and no daemon holds the data directory's lock;
- ``not_connected``: a daemon runs but no roller is connected;
- ``connected``: a roller's status (the newest, when several publish), with its flags:
  ``warning`` (the lumbar buzz is on), ``calibration`` ("calibrating", "calibrated",
  "uncalibrated": neither the session nor the profile is calibrated, or "").

Times in a message are s since 1970 (UTC): the status's ``frame_utc`` (the frame on
the roller's clock), ``received_utc`` (at the daemon), ``utc`` (published), and the
message's ``sent_utc`` (sent by this server); the page adds when it drew it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from host.daemon.live import CALIBRATION_STEPS, LiveStatus, read_statuses
from host.daemon.lock import daemon_running

__all__ = ["DAEMON_CHECK_S", "HEARTBEAT_S", "POLL_S", "LiveFeed", "live_message"]

POLL_S = 0.02
"""How often the status files are looked at, s (50 Hz: above the daemon's 20 Hz)."""
HEARTBEAT_S = 1.0
"""A message at least this often, changed or not, s."""
DAEMON_CHECK_S = 1.0
"""How often the daemon's lock is tried when nothing is published, s."""

log = logging.getLogger("smartroller.dashboard")


def live_message(statuses: list[LiveStatus], daemon_up: bool, folder: Path,
                 profile: dict[str, Any] | None) -> dict[str, Any]:
    """What the live page shows now (see the module docstring). ``statuses``: the
    fresh ones, newest first; ``profile``: the active profile's figures (its
    ``calibrated`` flag), None when there is none."""
    if not statuses:
        if daemon_up:
            return {"state": "not_connected", "title": "Roller not connected",
                    "line": "The daemon runs, but no roller is connected: switch the roller "
                            "on (a paired roller connects by itself).", "status": None}
        return {"state": "no_daemon", "title": "No daemon",
                "line": f"No daemon is running in {folder}: start `smartroller daemon` "
                        "(or give the dashboard the --data-dir the daemon uses).",
                "status": None}
    status = statuses[0]
    if not status.connected:
        return {"state": "not_connected", "title": "Roller not connected",
                "line": f"The roller {status.address} is not connected: switch it on, or "
                        "bring it closer to this computer.",
                "status": json.loads(status.to_json())}
    if status.calibrated:
        calibration = "calibrated"
    elif status.calibration:
        calibration = "calibrating"
    elif profile is None or not profile.get("calibrated"):
        calibration = "uncalibrated"
    else:
        calibration = ""
    return {"state": "connected", "title": "Roller connected",
            "line": "", "warning": status.warning, "calibration": calibration,
            "steps": list(CALIBRATION_STEPS) if calibration in ("calibrating",
                                                                "uncalibrated") else [],
            "status": json.loads(status.to_json())}


def _stamp(folder: Path) -> tuple:
    """What changes when a status file is replaced: names, inodes, sizes, times."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return ()
    out = []
    for entry in entries:
        if entry.name.endswith(".json"):
            try:
                st = entry.stat()
            except OSError:
                continue
            out.append((entry.name, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(sorted(out))


class LiveFeed:
    """Watches ``data_dir``'s live files and pushes messages to subscribers.

    profile: returns the active profile's figures (``app``'s, read from the store in a
    worker thread), asked at start and every ``profile_every_s``.
    """

    def __init__(self, data_dir: Path,
                 profile: Callable[[], Awaitable[dict[str, Any] | None]],
                 profile_every_s: float = 5.0) -> None:
        self.data_dir = Path(data_dir)
        self._profile_source = profile
        self._profile_every_s = profile_every_s
        self.profile: dict[str, Any] | None = None
        self._subscribers: set[asyncio.Queue[str]] = set()
        self._task: asyncio.Task | None = None
        self._watched = asyncio.Event()  # set while someone subscribes
        self.latest: dict[str, Any] | None = None
        self.polls = 0
        """Looks at the live files so far (a page open: every ``POLL_S``; none: none)."""

    def subscribe(self) -> asyncio.Queue[str]:
        """A queue holding the newest message (at most one waits): the current one if
        the feed is being watched, else the first fresh one."""
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=1)
        if self.latest is not None and self._watched.is_set():
            queue.put_nowait(self._encode(self.latest))
        self._subscribers.add(queue)
        self._watched.set()
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        """Stop sending to ``queue``."""
        self._subscribers.discard(queue)
        if not self._subscribers:
            self._watched.clear()

    def start(self) -> None:
        """Start watching (in the running event loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop watching."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    @staticmethod
    def _encode(message: dict[str, Any]) -> str:
        return json.dumps({**message, "sent_utc": time.time()})

    def _push(self, message: dict[str, Any]) -> None:
        self.latest = message
        text = self._encode(message)
        for queue in self._subscribers:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(text)

    async def _run(self) -> None:
        folder = self.data_dir / "live"
        stamp: tuple | None = None
        sent = checked = asked = -1e9
        daemon_up = False
        loop = asyncio.get_running_loop()
        while True:
            if not self._watched.is_set():
                await self._watched.wait()
                sent = asked = checked = -1e9  # a fresh message (profile, lock) at once
            self.polls += 1
            now = time.monotonic()
            if now - asked >= self._profile_every_s:
                asked = now
                try:
                    self.profile = await self._profile_source()
                except Exception as exc:  # the store may be busy or gone: keep the last
                    log.warning("profile not read: %s", exc)
            new = _stamp(folder)
            if new != stamp or now - sent >= HEARTBEAT_S:
                stamp = new
                statuses = read_statuses(self.data_dir)
                if statuses:
                    checked = -1e9  # when they stop, ask the lock at once
                elif now - checked >= DAEMON_CHECK_S:
                    checked = now
                    daemon_up = await loop.run_in_executor(None, daemon_running,
                                                           self.data_dir)
                self._push(live_message(statuses, daemon_up, self.data_dir, self.profile))
                sent = now
            await asyncio.sleep(POLL_S)
