"""The V2G_Message envelope of DIN and -2 (Header with SessionID, Body with one message) and physical values."""

from __future__ import annotations

import functools
from typing import Any

NEW_SESSION_ID = "00"
_SHORT_MIN, _SHORT_MAX = -32768, 32767


class MessageError(ValueError):
    """A decoded document that is not a usable V2G message (no body element, wrong root...)."""


def v2g_message(session_id: str, name: str, body: dict[str, Any],
                signature: dict[str, Any] | None = None) -> dict[str, Any]:
    """{"V2G_Message": {"Header": {"SessionID": ..., "Signature"?: ...}, "Body": {name: body}}}."""
    header: dict[str, Any] = {"SessionID": session_id}
    if signature is not None:
        header["Signature"] = signature
    return {"V2G_Message": {"Header": header, "Body": {name: body}}}


def split(doc: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(SessionID, message name, message content) of a V2G_Message; MessageError if it has no body element."""
    msg = doc.get("V2G_Message")
    if msg is None:
        raise MessageError(f"expected V2G_Message, got {next(iter(doc), 'nothing')}")
    body = msg.get("Body") or {}
    if len(body) != 1:
        raise MessageError("V2G_Message has an empty Body")
    (name, content), = body.items()
    return msg["Header"]["SessionID"], name, content


def body_name(doc: dict[str, Any]) -> str:
    """The message name of any document (supportedAppProtocolReq, SessionSetupReq...), '?' if there is none."""
    msg = doc.get("V2G_Message")
    if msg is None:
        return next(iter(doc), "?")
    return next(iter(msg.get("Body") or {}), "?")


def same_session(a: str, b: str) -> bool:
    """Compare hexBinary SessionIDs whatever their letter case."""
    return a.upper() == b.upper()


def is_new_session_id(session_id: str) -> bool:
    """SessionID 0 (any length of zero bytes) asks for a new session."""
    return not session_id or int(session_id, 16) == 0


def pv(value: float, unit: str | None) -> dict[str, Any]:
    """A PhysicalValue: the finest multiplier (-3..3) that keeps Value in a short, trailing zeros moved to it. Each
    caller gets a dict of its own; the parts of recent values are looked up (a charge loop writes the same few)."""
    try:
        scaled, mult = _pv_parts(value)
    except TypeError:  # an unhashable value: worked out (and refused) the long way
        scaled, mult = _pv_parts.__wrapped__(value)
    out: dict[str, Any] = {"Value": scaled, "Multiplier": mult}
    if unit is not None:
        out["Unit"] = unit
    return out


@functools.lru_cache(maxsize=4096)
def _pv_parts(value: float) -> tuple[int, int]:
    """(Value, Multiplier) of a PhysicalValue of `value`."""
    for mult in range(-3, 4):
        scaled = round(value / 10**mult)
        if _SHORT_MIN <= scaled <= _SHORT_MAX:
            break
    else:
        mult, scaled = 3, max(_SHORT_MIN, min(_SHORT_MAX, round(value / 1000)))
    while mult < 0 and scaled % 10 == 0:
        scaled //= 10
        mult += 1
    return int(scaled), mult


def value(physical: dict[str, Any] | None) -> float | None:
    """The float of a PhysicalValue, None for a missing one."""
    if physical is None:
        return None
    return physical["Value"] * 10.0 ** physical["Multiplier"]


def short(x: float) -> int:
    """A float clipped into xs:short (DIN PMax)."""
    return max(_SHORT_MIN, min(_SHORT_MAX, round(x)))
