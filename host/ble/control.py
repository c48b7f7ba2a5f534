"""The roller's control point: a request written, its response indicated.

``ControlPoint`` sends one request at a time (write with response on CONTROL) and waits
for the indication that echoes its opcode (docs/protocol.md section 7). The waiter is
registered before the write, so a response indicated before the write's own ATT
response is not missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from firmware.protocol import ProtocolError, Request, Response, ResultCode, encode_request

__all__ = ["ControlPoint", "RollerCommandError", "RollerDisconnected"]

logger = logging.getLogger(__name__)


class RollerCommandError(Exception):
    """The roller answered a request with another status than SUCCESS.

    response: the ``Response`` (``status`` is the ``ResultCode``).
    """

    def __init__(self, request: Request, response: Response) -> None:
        super().__init__(f"{type(request).__name__}: roller answered "
                         f"{ResultCode(response.status).name}")
        self.request = request
        self.response = response


class RollerDisconnected(ConnectionError):
    """The roller is not connected (or the link was lost during the request)."""


class ControlPoint:
    """Requests and their indicated responses, one at a time.

    write: writes a request's bytes to CONTROL (with response).
    timeout_s: default time for the write and the response together, s.
    """

    def __init__(self, write: Callable[[bytes], Awaitable[None]], timeout_s: float) -> None:
        self._write = write
        self.timeout_s = timeout_s
        self._lock = asyncio.Lock()
        self._waiting: tuple[int, asyncio.Future[Response]] | None = None

    def on_indication(self, data: bytes | bytearray) -> None:
        """Feed a CONTROL indication (from the notify callback)."""
        try:
            response = Response.decode(bytes(data))
        except ProtocolError as error:
            logger.warning("control point: bad indication %s: %s", bytes(data).hex(), error)
            return
        waiting = self._waiting
        if waiting is None or waiting[0] != response.opcode or waiting[1].done():
            logger.warning("control point: unexpected response %s", response)
            return
        waiting[1].set_result(response)

    def fail(self, error: BaseException) -> None:
        """Fail the request in flight (the link is gone)."""
        waiting = self._waiting
        if waiting is not None and not waiting[1].done():
            waiting[1].set_exception(error)

    async def request(self, request: Request, timeout_s: float | None = None,
                      check: bool = True) -> Response:
        """Send ``request``, return its response.

        TimeoutError if no response within ``timeout_s`` (default ``self.timeout_s``);
        RollerCommandError if ``check`` and the status is not SUCCESS.
        """
        timeout = self.timeout_s if timeout_s is None else timeout_s
        async with self._lock:
            future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
            self._waiting = (int(request.opcode), future)
            try:
                async with asyncio.timeout(timeout):
                    await self._write(encode_request(request))
                    response = await future
            finally:
                self._waiting = None
                if future.done() and not future.cancelled():
                    future.exception()  # retrieved
        if check and not response.ok:
            raise RollerCommandError(request, response)
        return response
