"""The timeline of each bridged session: the ISO 15118 messages as the SECC parsed them (typed events), the OCPP
frames that concern its EVSE or transaction (the station's frame stream, parsed once for all sessions), and the
bridge's own states and errors, in one file (trace/timeline.py). And the per-session logger."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from ...iso15118.events import MessageExchanged, ScheduleChosen, SessionEvent
from ...iso15118.msglog import MessageRecord
from ...trace.timeline import Timeline
from ..ports import StationPort

Payload = dict[str, Any]


class SessionLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The logger of one bridged session: every line starts with the station, the EVSE and (once known) the
    SessionID."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        """Prefix the session's label."""
        extra = self.extra or {}
        session = f" session {extra['session']}" if extra.get("session") else ""
        return f"{extra.get('station')} EVSE {extra.get('evse')}{session}: {msg}", kwargs


@dataclass(frozen=True)
class OcppFrame:
    """One OCPP-J frame as the station sent or received it, parsed once: a CALL (`action`, `payload`), or the answer
    to one (`action` names the CALL; `error` for a CALLERROR)."""

    direction: str  # "rx" or "tx"
    message: list[Any]  # the frame itself
    message_id: str
    action: str
    payload: Payload
    call: bool
    error: bool = False


def frame_keys(payload: Payload) -> tuple[Any, Any]:
    """(transactionId, evseId) a CALL names, either may be None: what ties it to one session's timeline."""
    tx = (payload.get("transactionInfo") or {}).get("transactionId") or payload.get("transactionId") or (
        payload.get("chargingProfile") or {}).get("transactionId")
    return tx, payload.get("evseId", (payload.get("evse") or {}).get("id"))


SESSION_ACTIONS = frozenset({"Authorize"})
"""CALLs that concern a session without naming a transaction or an EVSE (the one a session is waiting for)."""
_TIE_KEYS = ('"transactionId"', '"evseId"', '"evse"', *(f'"{a}"' for a in sorted(SESSION_ACTIONS)))
"""What a CALL's text holds when frame_keys can find a key in it, or it is a SESSION_ACTIONS CALL (no escapes)."""
_HEAD = re.compile(r'\s*\[\s*([234])\s*,\s*"([^"\\]*)"')
"""An OCPP-J frame's message type and id, read from its text."""


class OcppFrames:
    """The station's OCPP frames, parsed once and handed to the sessions they may concern: a CALL that names a
    transaction or an EVSE (or is in SESSION_ACTIONS) to every subscriber, an answer only to the subscribers that
    recorded its CALL. A CALL that can concern no session (e.g. UpdateDynamicSchedule: only a profile id) costs one
    parse, not one look per EVSE: with 100 EVSEs that look was most of the station's time per CALL."""

    MAX_PENDING = 4096
    """CALLs remembered to name their answers (bounded: answers that never come are forgotten oldest first)."""

    def __init__(self, station: StationPort) -> None:
        self.subscribers: list[Callable[[OcppFrame], bool]] = []  # True: recorded (wants the answer)
        self._calls: dict[str, tuple[str, list[Callable[[OcppFrame], bool]]]] = {}  # mid -> (action, recorders)
        station.on_frame(self._frame)

    def _frame(self, direction: str, text: str) -> None:
        """Parse a frame once; skip what is not an OCPP-J frame or concerns no session. A frame without escapes is
        first read as text: a CALL none of whose keys can tie it to a session, or the answer to a CALL that no
        session recorded (a CSMS's setpoint CALLs and the station's answers), is skipped without parsing it."""
        if not self.subscribers:
            return
        if "\\" not in text:
            head = _HEAD.match(text)
            if head is not None:
                if head[1] == "2":
                    if not any(key in text for key in _TIE_KEYS):
                        return
                elif head[2] not in self._calls:
                    return
        try:
            message = json.loads(text)
        except ValueError:
            return
        if not isinstance(message, list) or len(message) < 3 or not isinstance(message[1], str):
            return
        if message[0] == 2 and len(message) >= 4 and isinstance(message[3], dict):
            action = str(message[2])
            if action not in SESSION_ACTIONS and frame_keys(message[3]) == (None, None):
                return
            frame = OcppFrame(direction, message, message[1], action, message[3], True)
            recorders = [s for s in list(self.subscribers) if s(frame)]
            if recorders:
                if len(self._calls) >= self.MAX_PENDING:
                    self._calls.pop(next(iter(self._calls)))
                self._calls[message[1]] = (action, recorders)
        elif message[0] in (3, 4) and message[1] in self._calls:
            action, recorders = self._calls.pop(message[1])
            payload = message[2] if message[0] == 3 and isinstance(message[2], dict) else {}
            frame = OcppFrame(direction, message, message[1], action, payload, False, message[0] == 4)
            for subscriber in recorders:
                subscriber(frame)


class SessionTrace:
    """The timeline of one session. `concerns(action, payload)` (the OCPP policy's) says which CALLs are its; the
    answers to those CALLs are recorded with them."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.concerns: Callable[[str, Payload], bool] = lambda action, payload: False
        self._mids: set[str] = set()  # the CALLs recorded, whose answers are recorded too

    def message(self, r: MessageRecord) -> None:
        """A message as the SECC parsed it (its name is read from the document only if its record is built)."""
        self.timeline.iso(r.direction, r.namespace, None, r.doc, r.exi, r.session_id)

    def event(self, event: SessionEvent) -> None:
        """A typed event of the SECC: messages as parsed, the EV's chosen schedule."""
        if isinstance(event, MessageExchanged):
            self.message(event.record)
        elif isinstance(event, ScheduleChosen):
            self.timeline.state("ScheduleChosen", saScheduleTupleId=event.tuple_id,
                                profile=[(e.start, e.max_power) for e in event.profile])

    def frame(self, frame: OcppFrame) -> bool:
        """An OCPP frame: recorded when it concerns this session (or answers a CALL that did); True when it
        recorded a CALL (its answer is wanted)."""
        if frame.call:
            if self.concerns(frame.action, frame.payload):
                self._mids.add(frame.message_id)
                self.timeline.ocpp(frame.direction, frame.message)
                return True
        elif frame.message_id in self._mids:
            self._mids.discard(frame.message_id)
            self.timeline.ocpp(frame.direction, frame.message,
                               action=f"{frame.action}{' CALLERROR' if frame.error else 'Response'}")
        return False

    def link(self, **ids: Any) -> None:
        """Identifiers that join this timeline to others (SessionID, transactionId, idToken...)."""
        self.timeline.link(**ids)

    def state(self, what: str, **facts: Any) -> None:
        """A state of the bridge."""
        self.timeline.state(what, **facts)

    def error(self, kind: str, **facts: Any) -> None:
        """An error (a FailureKind or the bridge's own)."""
        self.timeline.error(kind, **facts)

    def close(self) -> None:
        """The session is over for good."""
        self.timeline.close()
