"""What the SECC engines of all protocols share: the Reply the shell acts on, the store of paused sessions and the
failure kind of an answered code."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from ..trace.error_map import FailureKind, kind_of_code
from .evse import SessionInfo
from .model import Step
from .quickinit import quick_init
from .v2gtp import PayloadType


class PausedSessions:
    """Sessions paused with SessionStopReq(Pause), kept so that the EV can resume them by SessionID."""

    def __init__(self, max_sessions: int = 1024) -> None:
        self.max_sessions = max_sessions
        self._by_id: dict[str, SessionInfo] = {}

    def pause(self, info: SessionInfo) -> None:
        """Remember a paused session (the oldest one is forgotten when full)."""
        if len(self._by_id) >= self.max_sessions:
            self._by_id.pop(next(iter(self._by_id)))
        self._by_id[info.session_id.upper()] = info

    def resume(self, session_id: str, evcc_id: str, protocol: str) -> SessionInfo | None:
        """Take back a paused session if SessionID, EVCCID and protocol match."""
        info = self._by_id.get(session_id.upper())
        if info is None or info.evcc_id.upper() != evcc_id.upper() or info.protocol != protocol:
            return None
        del self._by_id[session_id.upper()]
        return info

    def __len__(self) -> int:
        """Number of paused sessions."""
        return len(self._by_id)


@quick_init
@dataclass(frozen=True)
class Reply:
    """What the shell does next: send `doc` (coded with namespace `ns`) if any, then close if `close`."""

    doc: dict[str, Any] | None
    ns: str
    name: str
    close: bool
    step: Step | None = None
    pending: Awaitable[dict[str, Any] | str] | None = None  # the shell awaits it, then calls complete()
    payload_type: int = PayloadType.EXI  # the V2GTP payload type to send `doc` with (-20: by message stream)


def failure_kind(step: Step | None, code: str) -> FailureKind:
    """The kind of answering `step` with a FAILED code: the code's own row, else a plain FAILED of Authorization
    (the EV was refused) or CableCheck (isolation), else OtherFailed."""
    kind = kind_of_code(code)
    if kind is FailureKind.OTHER_FAILED:
        if step is Step.AUTHORIZATION:
            return FailureKind.AUTHORIZATION_FAILED
        if step is Step.CABLE_CHECK:
            return FailureKind.ISOLATION_FAULT
    return kind
