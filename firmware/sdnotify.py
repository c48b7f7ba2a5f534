"""Telling systemd how the firmware is doing: ``sd_notify`` in a few lines, no dependency.

systemd (``Type=notify``, ``WatchdogSec=``) passes ``NOTIFY_SOCKET`` (a Unix datagram
socket path; ``@name`` is in the abstract namespace) and ``WATCHDOG_USEC`` (the watchdog
timeout, us; ``WATCHDOG_PID`` names the process it is meant for). ``notify("READY=1")``
sends one datagram (sd_notify(3)); without ``NOTIFY_SOCKET`` it does nothing and returns
False, so the firmware runs the same by hand. ``Watchdog`` sends ``WATCHDOG=1`` at half
the timeout when kicked from the firmware loop: a loop that hangs is restarted by
systemd. Sending never blocks (a full socket queue drops the message); send errors
are logged once and never stop the firmware.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

__all__ = ["Watchdog", "notify", "watchdog_timeout_s"]

log = logging.getLogger("smartroller.sdnotify")
_failed = False


def notify(state: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` ("READY=1", "WATCHDOG=1", "STATUS=...", lines joined by newlines)
    to systemd; False when not run by systemd (no ``NOTIFY_SOCKET``) or if sending fails."""
    global _failed
    path = (os.environ if environ is None else environ).get("NOTIFY_SOCKET", "")
    if not path:
        return False
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)  # a full queue drops the message, never the loop
            sock.connect(address)
            sock.send(state.encode())
    except OSError as exc:
        if not _failed:
            log.warning("sd_notify to %s failed: %s", path, exc)
        _failed = True
        return False
    _failed = False
    return True


def watchdog_timeout_s(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd set for this process (s), None if there is none."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


class Watchdog:
    """Keeps systemd's watchdog fed from a loop: call ``kick()`` as often as you like;
    it sends ``WATCHDOG=1`` once per half timeout. Inactive (kicks are free) without a
    watchdog timeout.

    environ: the environment (default ``os.environ``); clock: monotonic time, s.
    """

    def __init__(self, environ: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.environ = os.environ if environ is None else environ
        timeout = watchdog_timeout_s(self.environ)
        self.interval_s = None if timeout is None else timeout / 2.0
        self._clock = clock
        self._next = -float("inf")
        self.sent = 0

    @property
    def active(self) -> bool:
        """True when systemd watches this process."""
        return self.interval_s is not None

    def kick(self) -> None:
        """Send ``WATCHDOG=1`` if half the timeout has passed since the last one."""
        if self.interval_s is None:
            return
        now = self._clock()
        if now >= self._next:
            self._next = now + self.interval_s
            if notify("WATCHDOG=1", self.environ):
                self.sent += 1

    def wrap(self, should_stop: Callable[[], bool] | None) -> Callable[[], bool]:
        """A ``should_stop`` for ``Firmware.run_async`` that kicks at every loop pass."""
        def check() -> bool:
            self.kick()
            return bool(should_stop and should_stop())
        return check
