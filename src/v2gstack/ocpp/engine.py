"""Sans-I/O OCPP-J endpoint: received text in, events out; outgoing messages validated and built as text.

It knows nothing of sockets, tasks or handlers: the asyncio shell (connection.py) feeds it websocket messages and
sends the texts it returns, and any other event loop can do the same.
"""

from __future__ import annotations

import secrets
from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from fastjsonschema import JsonSchemaValueException

from . import frames
from .errors import CallErrorReceived, ErrorCode, OcppError, PayloadInvalid
from .frames import Frame, FrameError
from .schemas import SchemaStore, default_store, schema_error
from .versions import Version

_CALL, _RESULT, _ERROR, _RESULTERROR, _SEND = 2, 3, 4, 5, 6


@dataclass(slots=True)
class IncomingCall:
    """A valid CALL (or, when `send` is true, a 2.1 SEND) from the peer, for a handler to serve."""

    message_id: str
    action: str
    payload: dict[str, Any]
    send: bool = False


@dataclass(slots=True)
class Answer:
    """The peer's answer to one of our CALLs: `payload` when it succeeded, `error` when it did not."""

    message_id: str
    action: str
    payload: dict[str, Any] | None
    error: OcppError | None
    reply: str | None = None  # a CALLRESULTERROR to send back (2.1, answer failed validation)


@dataclass(slots=True)
class Reply:
    """A received message was refused: send `text` (a CALLERROR) back; `error` says why."""

    text: str
    error: OcppError


@dataclass(slots=True)
class Ignored:
    """A received message that, as the specification requires, gets no answer (logged by the caller)."""

    reason: str
    message_id: str = ""


@dataclass(slots=True)
class ResultErrorReceived:
    """The peer refused one of our CALLRESULTs with a CALLRESULTERROR (2.1)."""

    message_id: str
    error: CallErrorReceived


Event = IncomingCall | Answer | Reply | Ignored | ResultErrorReceived


class RpcEngine:
    """One side of one OCPP-J connection: framing, correlation, schema validation and CallError codes."""

    def __init__(
        self,
        version: Version | str,
        *,
        handled: Container[str] = (),
        schemas: SchemaStore | None = None,
        max_message_size: int = 65536,
        id_window: int = 1024,
    ) -> None:
        self.version = Version.parse(version)
        vs = (schemas or default_store())[self.version]
        self.actions = vs.actions  # every action the version defines
        self._requests = vs.requests
        self._responses = vs.responses
        self.handled = handled  # actions a handler serves: others are answered NotSupported
        self.max_message_size = max_message_size
        self._id_window = id_window
        self._seen: dict[str, None] = {}  # recent incoming CALL ids, oldest first, to refuse reuse
        self.pending: dict[str, str] = {}  # our CALLs awaiting an answer: message id -> action
        self._prefix = secrets.token_hex(4)
        self._counter = 0

    # ----- outgoing -----

    def next_id(self) -> str:
        """A message id unique on this connection (random prefix + counter; cheaper than a UUID)."""
        self._counter += 1
        return f"{self._prefix}-{self._counter}"

    def validate_request(self, action: str, payload: dict[str, Any]) -> None:
        """Raise PayloadInvalid (NotImplemented for an action the version lacks) unless `payload` fits `action`."""
        try:
            validator = self._requests[action]
        except KeyError:
            raise PayloadInvalid(ErrorCode.NOT_IMPLEMENTED, f"OCPP {self.version} has no action {action!r}") from None
        try:
            validator(payload)
        except JsonSchemaValueException as e:
            raise schema_error(e, self.version, f"{action} request") from None

    def make_call(self, action: str, payload: dict[str, Any], message_id: str | None = None, *,
                  validated: bool = False) -> tuple[str, str]:
        """Validate (unless the caller just did: `validated`) and serialize a CALL and remember it as pending;
        returns (message id, text)."""
        if not validated:
            self.validate_request(action, payload)
        mid = message_id or self.next_id()
        text = frames.build_call(mid, action, payload)
        self.pending[mid] = action
        return mid, text

    def make_send(self, action: str, payload: dict[str, Any]) -> str:
        """Validate and serialize a SEND (OCPP 2.1 only: never answered, not subject to the one-CALL rule)."""
        if self.version is not Version.V21:
            raise PayloadInvalid(ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED, f"SEND does not exist in OCPP {self.version}")
        self.validate_request(action, payload)
        return frames.build_send(self.next_id(), action, payload)

    def make_result(self, call: IncomingCall, payload: Any) -> tuple[str, OcppError | None]:
        """Validate and serialize the CALLRESULT for `call`; a CALLERROR instead (and the reason) if it is invalid."""
        try:
            if type(payload) is not dict:
                raise PayloadInvalid(ErrorCode.FORMAT_VIOLATION, f"handler returned {type(payload).__name__}, not dict")
            try:
                self._responses[call.action](payload)
            except JsonSchemaValueException as e:
                raise schema_error(e, self.version, f"{call.action} response") from None
            return frames.build_result(call.message_id, payload), None
        except (OcppError, TypeError, ValueError, RecursionError, KeyError) as e:
            err = e if isinstance(e, OcppError) else OcppError(ErrorCode.INTERNAL_ERROR, f"response not JSON: {e}")
            # The peer's request was fine; our answer was not: tell it so without sending the bad payload.
            text = self.make_error(call.message_id, ErrorCode.INTERNAL_ERROR,
                                   f"{call.action} response could not be produced", {})
            return text, err

    def make_error(self, message_id: str, code: ErrorCode, description: str = "",
                   details: dict[str, Any] | None = None) -> str:
        """Serialize a CALLERROR with this version's spelling of `code`."""
        return frames.build_error(message_id, code, description, details, self.version)

    def forget(self, message_id: str) -> None:
        """Stop waiting for the answer to a CALL (it timed out or was abandoned); a late answer is then ignored."""
        self.pending.pop(message_id, None)

    # ----- incoming -----

    def receive(self, text: str | bytes) -> Event:
        """Process one received websocket message and say what to do about it."""
        size = len(text)
        if size > self.max_message_size // 4 and self._too_big(text):
            return self._oversize(text)
        try:
            frame = frames.parse(text, self.version)
        except FrameError as e:
            return self._frame_error(e)
        t = frame.type
        if t == _CALL:
            return self._incoming_call(frame)
        if t == _RESULT:
            return self._incoming_result(frame)
        if t == _ERROR:
            return self._incoming_error(frame)
        if t == _SEND:
            return self._incoming_send(frame)
        return ResultErrorReceived(frame.id, self._error_from(frame))

    def _too_big(self, text: str | bytes) -> bool:
        """Whether the UTF-8 size of `text` exceeds max_message_size."""
        if len(text) > self.max_message_size:
            return True
        return isinstance(text, str) and len(text.encode("utf-8")) > self.max_message_size

    def _oversize(self, text: str | bytes) -> Event:
        """Refuse a frame above max_message_size, answering it when its head shows a CALL (B06.FR.17 style)."""
        description = f"message larger than {self.max_message_size} bytes"
        head = frames.peek_head(text)
        if head is None:
            return self._reply(frames.UNKNOWN_ID, ErrorCode.FORMAT_VIOLATION, description)
        mtype, mid = head
        if mtype == _CALL:
            return self._reply(mid, ErrorCode.FORMAT_VIOLATION, description)
        return self._frame_error(FrameError(ErrorCode.FORMAT_VIOLATION, mid, description, mtype))

    def _reply(self, message_id: str, code: ErrorCode, description: str,
               details: dict[str, Any] | None = None) -> Reply:
        """A CALLERROR to send back for a refused message."""
        return Reply(self.make_error(message_id, code, description, details), OcppError(code, description, details))

    def _frame_error(self, e: FrameError) -> Event:
        """Decide how to answer a malformed frame: CALLs get a CALLERROR, answers fail the pending CALL."""
        if e.code is None:
            return Ignored(e.description, e.message_id)
        t = e.frame_type
        if t is None or t == _CALL or e.code is ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED:
            return self._reply(e.message_id, e.code, e.description)
        if t in (_RESULT, _ERROR) and e.message_id in self.pending:
            action = self.pending.pop(e.message_id)
            error = PayloadInvalid(e.code, e.description)
            reply = None
            if t == _RESULT and self.version is Version.V21:
                reply = frames.build_error(e.message_id, e.code, e.description, None, self.version, _RESULTERROR)
            return Answer(e.message_id, action, None, error, reply)
        return Ignored(e.description, e.message_id)

    def _incoming_call(self, frame: Frame) -> Event:
        """Check a CALL's id, action and payload; an IncomingCall when a handler should serve it."""
        mid, action = frame.id, frame.action
        seen = self._seen
        if mid in seen:
            return self._reply(mid, ErrorCode.RPC_FRAMEWORK_ERROR, "MessageId reused on this connection")
        seen[mid] = None
        if len(seen) > self._id_window:
            del seen[next(iter(seen))]
        if action not in self.handled:
            if action in self.actions:
                return self._reply(mid, ErrorCode.NOT_SUPPORTED, f"{action} is not supported here")
            return self._reply(mid, ErrorCode.NOT_IMPLEMENTED, f"unknown action {action!r}")
        try:
            self._requests[action](frame.payload)
        except JsonSchemaValueException as e:
            err = schema_error(e, self.version, f"{action} request")
            return Reply(self.make_error(mid, err.code, err.description, err.details), err)
        except KeyError:  # a handler for an action this version does not define
            return self._reply(mid, ErrorCode.NOT_IMPLEMENTED, f"unknown action {action!r}")
        return IncomingCall(mid, action, frame.payload)  # type: ignore[arg-type]

    def _incoming_send(self, frame: Frame) -> Event:
        """Check a SEND (2.1); it is never answered, so problems only become Ignored events."""
        action = frame.action
        if action not in self.handled:
            return Ignored(f"SEND {action} has no handler", frame.id)
        try:
            self._requests[action](frame.payload)
        except JsonSchemaValueException as e:
            return Ignored(schema_error(e, self.version, f"SEND {action}").description, frame.id)
        except KeyError:
            return Ignored(f"SEND of unknown action {action!r}", frame.id)
        return IncomingCall(frame.id, action, frame.payload, True)  # type: ignore[arg-type]

    def _incoming_result(self, frame: Frame) -> Event:
        """Match a CALLRESULT to our pending CALL and validate it against the action's response schema."""
        mid = frame.id
        action = self.pending.pop(mid, None)
        if action is None:
            return Ignored("CALLRESULT for no pending CALL", mid)
        try:
            self._responses[action](frame.payload)
        except JsonSchemaValueException as e:
            err = schema_error(e, self.version, f"{action} response")
            reply = None
            if self.version is Version.V21:  # 2.1 FR.06: an invalid response is answered with a CALLRESULTERROR
                reply = frames.build_error(mid, err.code, err.description, err.details, self.version, _RESULTERROR)
            return Answer(mid, action, None, err, reply)
        return Answer(mid, action, frame.payload, None)

    def _incoming_error(self, frame: Frame) -> Event:
        """Match a CALLERROR to our pending CALL."""
        action = self.pending.pop(frame.id, None)
        if action is None:
            return Ignored(f"CALLERROR {frame.error_code} for no pending CALL", frame.id)
        return Answer(frame.id, action, None, self._error_from(frame))

    @staticmethod
    def _error_from(frame: Frame) -> CallErrorReceived:
        """The exception a received CALLERROR/CALLRESULTERROR stands for."""
        code = ErrorCode.parse(frame.error_code) or ErrorCode.GENERIC_ERROR
        return CallErrorReceived(code, frame.error_description, frame.error_details or {}, frame.error_code)
