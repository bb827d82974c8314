"""OCPP-J frame parsing and building: the JSON arrays CALL, CALLRESULT, CALLERROR, CALLRESULTERROR and SEND."""

from __future__ import annotations

import json
import json.encoder
import json.scanner
import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import ErrorCode, cap_description
from .versions import MAX_MESSAGE_ID_LENGTH, MESSAGE_TYPES, MessageType, Version

UNKNOWN_ID = "-1"  # MessageId to answer with when the received one cannot be read (OCPP 2.x part 4)

_CALL, _RESULT, _ERROR, _RESULTERROR, _SEND = 2, 3, 4, 5, 6


def _reject_constant(name: str) -> Any:
    """Refuse NaN and Infinity, which Python's json accepts but JSON does not."""
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    """A JSON number as a float, refusing one too large for a double (`1e999`): Python would make it inf, which
    JSON (RFC 8259 section 6) cannot carry and a store or a peer would not take back."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:32]} is out of range")
    return value


_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"), check_circular=False)
_WS = " \t\n\r"

# json's C scanner and encoder, made once: JSONDecoder.decode and JSONEncoder.encode rebuild or wrap them in
# Python on every call, which costs more than the parsing itself for OCPP-sized messages.
_c_scan = json.scanner.c_make_scanner(_decoder) if json.scanner.c_make_scanner else None
_c_encode = (json.encoder.c_make_encoder(None, _encoder.default, json.encoder.c_encode_basestring, None, ":", ",",
                                         False, False, False)
             if json.encoder.c_make_encoder and json.encoder.c_encode_basestring else None)


def _decode(text: str) -> Any:
    """Parse one JSON document (whitespace around it allowed); ValueError if it is not JSON (NaN, Infinity and
    numbers beyond a double included)."""
    if _c_scan is None or not text or text[0] in _WS:
        return _decoder.decode(text)
    try:
        obj, end = _c_scan(text, 0)
    except StopIteration:
        raise ValueError("not JSON") from None
    if end != len(text) and text[end:].strip(_WS):
        raise ValueError("extra data after JSON")
    return obj


def loads(text: str | bytes) -> Any:
    """Parse a JSON document as RFC 8259 defines it (no NaN, Infinity or numbers beyond a double); ValueError if it
    is not one. For JSON that arrives from elsewhere than an OCPP frame (the CSMS API's bodies)."""
    return _decode(text if isinstance(text, str) else text.decode("utf-8"))


def _encode(obj: Any) -> str:
    """Serialize compactly, keeping non-ASCII as is, refusing NaN and Infinity."""
    if _c_encode is None:
        return _encoder.encode(obj)
    return "".join(_c_encode(obj, 0))

# Type and id of a frame too big to parse, read from its first bytes.
_HEAD = re.compile(r'\s*\[\s*([2-6])\s*,\s*"([^"\\]{1,36})"')


@dataclass(slots=True)
class Frame:
    """One received OCPP-J message; which fields are set depends on `type`."""

    type: int
    id: str
    action: str = ""  # CALL, SEND
    payload: dict[str, Any] | None = None  # CALL, CALLRESULT, SEND
    error_code: str = ""  # CALLERROR, CALLRESULTERROR: errorCode exactly as received
    error_description: str = ""
    error_details: dict[str, Any] | None = None


class FrameError(Exception):
    """A received text is not a well-formed frame; `code` None means the specification says to ignore it."""

    def __init__(self, code: ErrorCode | None, message_id: str, description: str, frame_type: int | None) -> None:
        super().__init__(description)
        self.code = code
        self.message_id = message_id
        self.description = description
        self.frame_type = frame_type  # the MessageTypeId, when it could be read


def parse(text: str | bytes, version: Version) -> Frame:
    """Parse one received websocket message into a Frame, or raise FrameError saying how to answer it."""
    try:
        if not isinstance(text, str):
            text = text.decode("utf-8")
        msg = _decode(text)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise FrameError(ErrorCode.FORMAT_VIOLATION, UNKNOWN_ID, "message is not valid JSON", None) from None
    if type(msg) is not list:
        raise FrameError(ErrorCode.FORMAT_VIOLATION, UNKNOWN_ID, "message is not a JSON array", None)
    n = len(msg)
    if n < 2:
        raise FrameError(ErrorCode.PROTOCOL_ERROR, UNKNOWN_ID, "message has fewer than 2 elements", None)
    mtype, mid = msg[0], msg[1]
    readable = type(mid) is str and 0 < len(mid) <= MAX_MESSAGE_ID_LENGTH
    if type(mtype) is not int:
        raise FrameError(ErrorCode.FORMAT_VIOLATION, mid if readable else UNKNOWN_ID,
                         "MessageTypeId is not an integer", None)
    if mtype not in MESSAGE_TYPES[version]:
        # OCPP-J 1.6 4.1.3: a message with an unknown MessageTypeId is ignored; 2.x answers MessageTypeNotSupported.
        code = None if version is Version.V16 else ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED
        raise FrameError(code, mid if readable else UNKNOWN_ID, f"MessageTypeId {mtype} is not supported", mtype)
    if not readable:
        why = "MessageId longer than 36 characters" if type(mid) is str and mid else "MessageId could not be read"
        raise FrameError(ErrorCode.RPC_FRAMEWORK_ERROR, mid if type(mid) is str and mid else UNKNOWN_ID, why, mtype)
    if mtype in (_CALL, _SEND):
        if n != 4:
            raise FrameError(ErrorCode.PROTOCOL_ERROR, mid, f"{MessageType(mtype).name} needs 4 elements, got {n}",
                             mtype)
        action, payload = msg[2], msg[3]
        if type(action) is not str or not action:
            raise FrameError(ErrorCode.FORMAT_VIOLATION, mid, "Action is not a string", mtype)
        if type(payload) is not dict:
            raise FrameError(ErrorCode.FORMAT_VIOLATION, mid, "Payload is not a JSON object", mtype)
        return Frame(mtype, mid, action, payload)
    if mtype == _RESULT:
        if n != 3:
            raise FrameError(ErrorCode.PROTOCOL_ERROR, mid, f"CALLRESULT needs 3 elements, got {n}", mtype)
        payload = msg[2]
        if type(payload) is not dict:
            raise FrameError(ErrorCode.FORMAT_VIOLATION, mid, "Payload is not a JSON object", mtype)
        return Frame(mtype, mid, payload=payload)
    # CALLERROR / CALLRESULTERROR: taken as leniently as possible, since refusing one helps nobody.
    code = msg[2] if n > 2 else None
    if type(code) is not str:
        raise FrameError(ErrorCode.FORMAT_VIOLATION, mid, "errorCode is not a string", mtype)
    description = msg[3] if n > 3 and type(msg[3]) is str else ""
    details = msg[4] if n > 4 and type(msg[4]) is dict else {}
    return Frame(mtype, mid, error_code=code, error_description=description, error_details=details)


def peek_head(text: str | bytes) -> tuple[int, str] | None:
    """MessageTypeId and MessageId from the start of a frame without parsing it (for oversize frames)."""
    head = text[:128]
    if not isinstance(head, str):
        head = head.decode("utf-8", "replace")
    m = _HEAD.match(head)
    return (int(m.group(1)), m.group(2)) if m else None


def build_call(message_id: str, action: str, payload: dict[str, Any]) -> str:
    """Serialize a CALL."""
    return _encode([_CALL, message_id, action, payload])


def build_result(message_id: str, payload: dict[str, Any]) -> str:
    """Serialize a CALLRESULT."""
    return _encode([_RESULT, message_id, payload])


def build_error(message_id: str, code: ErrorCode, description: str, details: dict[str, Any] | None,
                version: Version, message_type: int = _ERROR) -> str:
    """Serialize a CALLERROR (or, with message_type 5, a CALLRESULTERROR) with the version's code spelling."""
    try:
        return _encode([message_type, message_id, code.wire(version), cap_description(description), details or {}])
    except (TypeError, ValueError, RecursionError):  # details that are not JSON: send the error without them
        return _encode([message_type, message_id, code.wire(version), cap_description(description), {}])


def build_send(message_id: str, action: str, payload: dict[str, Any]) -> str:
    """Serialize a SEND (OCPP 2.1)."""
    return _encode([_SEND, message_id, action, payload])
