"""What the SECC tells the station, as typed events: how a session ended, each answer, the EV's chosen schedule,
each message, and failed TLS handshakes.

The SECC decides the facts where they happen (the code it answered, the timer, the EV leaving and what it last
answered, a transport error), so nobody downstream parses log text: `SessionEnded.kind` is looked up in the error
map (trace/error_map.py) as it is; `detail` is free text for humans only. A controller gets the session's events
through `EVSEController.on_event` (all of them, in order) and `session_ended` (once, to act on the end); the server's
`SeccObserver` gets the TLS failures that happen before any session exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..trace.error_map import FailureKind
from .model import ProfileEntry, Step
from .msglog import MessageRecord
from .quickinit import quick_init


@quick_init
@dataclass(frozen=True)
class SessionEnded:
    """The session (one connection) ended: its kind (one row of the error map), the ISO code answered if any."""

    kind: FailureKind
    detail: str  # for humans (logs, NotifyEvent techInfo); never parsed
    iso_code: str | None = None  # the FAILED_* / Failed_NoNegotiation code the SECC answered
    paused: bool = False  # SessionStopReq(Pause): the EV may resume with the same SessionID
    had_session: bool = True  # False: it ended before SessionSetup (no SessionInfo, no transaction)

    @property
    def ok(self) -> bool:
        """A normal end: the EV terminated or paused the session with SessionStopReq."""
        return self.kind in (FailureKind.NORMAL, FailureKind.PAUSED)


@quick_init
@dataclass(frozen=True)
class Answered:
    """A response was sent: `elapsed` seconds from the request's last byte to the response written; `late` when that
    exceeded V2G_SECC_Msg_Performance_Time; `ongoing` when it said EVSEProcessing=Ongoing."""

    name: str
    step: Step | None  # None: supportedAppProtocolRes
    response_code: str | None
    ongoing: bool
    late: bool
    elapsed: float


@quick_init
@dataclass(frozen=True)
class ScheduleChosen:
    """PowerDeliveryReq(Start) was answered OK: the SAScheduleTuple the EV chose and the charging profile it sent
    (empty for DIN, which has none)."""

    tuple_id: int | None
    profile: tuple[ProfileEntry, ...]


@quick_init
@dataclass(frozen=True)
class MessageExchanged:
    """One message on the wire (received before it is handled, sent after it left)."""

    record: MessageRecord


@quick_init
@dataclass(frozen=True)
class TlsFailed:
    """A TLS handshake on the SECC's TLS port failed (no session exists): the kind from OpenSSL's reason code."""

    peer: str
    kind: FailureKind  # TlsVersion, TlsCipherSuite or TlsFailure
    detail: str


SessionEvent = SessionEnded | Answered | ScheduleChosen | MessageExchanged
"""Everything a session tells its controller's `on_event`."""


class SeccObserver(Protocol):
    """Who hears what happens on a SeccServer outside any session (the station bridge of one EVSE)."""

    def tls_failed(self, event: TlsFailed) -> None:
        """A TLS handshake failed."""
        ...
