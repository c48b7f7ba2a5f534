"""The control point: a host's request in, the firmware acts, a ``Response`` out.

``ControlPoint.handle(data, host)`` decodes one CONTROL write and executes it on the
running ``Firmware`` and the journal. It never raises: a malformed payload or an
unknown opcode gives the error ``Response`` of ``ProtocolError.response()``, an
unexpected failure a ``NOT_ALLOWED`` response (and a log line), and the firmware keeps
streaming either way.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from firmware.config import FenceConfig
from firmware.protocol import (
    NO_SEQ,
    STATUS_MIN_MTU,
    Ack,
    Buzz,
    BuzzPattern,
    GetStatus,
    ProtocolError,
    Request,
    Response,
    ResultCode,
    Resume,
    SetFence,
    SetTime,
    StartSession,
    Status,
    StopSession,
    Tare,
    TimeReply,
    Zero,
    decode_request,
)

if TYPE_CHECKING:
    from firmware.app import Firmware
    from firmware.ble.acks import HostAcks
    from firmware.ble.stream import HostStream

log = logging.getLogger("smartroller.ble.control")


class AckJournal(Protocol):
    """What the control point needs of ``firmware.journal.Journal``."""

    @property
    def next_seq(self) -> int:
        """Seq the next appended frame gets."""

    def ack(self, seq: int) -> None:
        """The host stored every frame up to and including ``seq``."""


@dataclass
class Session:
    """The roller's session state, as the host set it.

    session_id: running or last session id (0: none). running: a session is running.
    utc_offset_s: unix time minus sensor time from the last SET_TIME, s (None before).
    """

    session_id: int = 0
    running: bool = False
    utc_offset_s: float | None = None


class HostContext(Protocol):
    """What a request may touch of the host that sent it."""

    @property
    def stream(self) -> HostStream | None:
        """The host's frame stream (None if it has none)."""

    @property
    def mtu(self) -> int:
        """The connection's ATT MTU, bytes."""

    @property
    def identity(self) -> str:
        """The host's identity address (its bond's name in the key store)."""


class ControlPoint:
    """Executes control-point requests.

    firmware: the running firmware. journal: the frame journal.
    session: the session state (shared with the Status).
    status: builds the current ``Status``.
    on_change: called after a request changed what Status shows (state, session).
    acks: per-host acknowledgements (None: an ACK releases the journal directly).
    """

    def __init__(self, firmware: Firmware, journal: AckJournal, session: Session,
                 status: Callable[[], Status], on_change: Callable[[], None],
                 acks: HostAcks | None = None) -> None:
        self.firmware = firmware
        self.journal = journal
        self.acks = acks
        self.session = session
        self.status = status
        self.on_change = on_change

    def handle(self, data: bytes, host: HostContext) -> Response:
        """The response to the CONTROL write ``data`` from ``host`` (never raises)."""
        opcode = data[0] if data else 0
        try:
            return self.execute(decode_request(bytes(data)), host)
        except ProtocolError as error:
            log.info("control point: %s", error.message)
            return error.response()
        except Exception:  # a bug must not stop the roller: answer, log, go on
            log.exception("control point: request %r failed", bytes(data).hex())
            return Response(opcode, ResultCode.NOT_ALLOWED)

    def execute(self, request: Request, host: HostContext) -> Response:
        """Carry out a decoded request."""
        fw = self.firmware
        now = fw.clock.now()
        opcode = request.opcode
        match request:
            case StartSession(session_id=session_id):
                if self.session.running:
                    return Response(opcode, ResultCode.NOT_ALLOWED)
                self.session.session_id, self.session.running = session_id, True
                self.on_change()
            case StopSession():
                if not self.session.running:
                    return Response(opcode, ResultCode.NOT_ALLOWED)
                self.session.running = False
                self.on_change()
            case Zero():
                fw.pipeline.arm_zero()
            case SetFence(position_m=position, hysteresis_m=hysteresis, approach_m=approach):
                if not fence_allowed(position, hysteresis, approach):
                    return Response(opcode, ResultCode.OUT_OF_RANGE)
                fw.fence.set(position, hysteresis, approach)
            case Buzz(pattern=pattern):
                return Response(opcode, self._buzz(pattern, now))
            case Ack(seq=seq):
                if seq >= self.journal.next_seq:
                    return Response(opcode, ResultCode.OUT_OF_RANGE)
                if host.stream is not None:  # never what was not sent yet
                    seq = host.stream.ack_limit(seq)
                if seq < 0:
                    return Response(opcode)
                if self.acks is None:
                    self.journal.ack(seq)
                elif not self.acks.ack(host.identity, seq):
                    return Response(opcode, ResultCode.NOT_ALLOWED)  # too many owners
            case Resume(seq=seq):
                if host.stream is None:
                    return Response(opcode, ResultCode.NOT_ALLOWED)
                return Response(opcode, host.stream.resume(seq, self.journal))
            case SetTime(unix_time_us=unix_us):
                sensor_t = max(0.0, fw.imu.clock_to_sensor(now))
                self.session.utc_offset_s = unix_us / 1e6 - sensor_t
                return Response(opcode, payload=TimeReply(sensor_t, fw.boot_id).encode())
            case Tare():
                fw.pipeline.tare_now()
            case GetStatus():
                if host.mtu < STATUS_MIN_MTU:
                    return Response(opcode, ResultCode.NOT_ALLOWED)
                return Response(opcode, payload=self.status().encode())
        return Response(opcode)

    def _buzz(self, pattern: BuzzPattern, now: float) -> ResultCode:
        haptic = self.firmware.haptic
        if pattern is BuzzPattern.STOP:
            if self.firmware.fence.beyond and haptic.playing == "lumbar_warning":
                return ResultCode.NOT_ALLOWED  # the on-device safety warning stays on
            haptic.stop(now)
            return ResultCode.SUCCESS
        played = haptic.play(pattern.name.lower(), now)
        return ResultCode.SUCCESS if played else ResultCode.NOT_ALLOWED


def fence_allowed(position_m: float, hysteresis_m: float, approach_m: float) -> bool:
    """True when a SET_FENCE lies within the hardware profile's ranges for the fence
    (``FenceConfig``: position 0..0.5 m from the zero, hysteresis and approach
    0..0.1 m): a host may move the fence only where a profile could put it."""
    ranges = {f.name: f.metadata["range"] for f in dataclasses.fields(FenceConfig)
              if f.metadata.get("range")}
    values = {"position_m": position_m, "hysteresis_m": hysteresis_m,
              "approach_m": approach_m}
    return all(ranges[name][0] <= value <= ranges[name][1] for name, value in values.items())


def seq_or_none(value: int | None) -> int:
    """A journal seq for the Status: ``NO_SEQ`` when there is none."""
    return NO_SEQ if value is None else int(value) & NO_SEQ
