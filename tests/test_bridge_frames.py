"""The bridge's OCPP frame stream (station/bridge/tracing.py OcppFrames): which frames reach the sessions' timelines,
whether read as text first or parsed."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from v2gstack.station.bridge.tracing import OcppFrame, OcppFrames


class _Station:
    """The one StationPort call OcppFrames makes."""

    def __init__(self) -> None:
        self.listener: Callable[[str, str], None] | None = None

    def on_frame(self, listener: Callable[[str, str], None]) -> Callable[[], None]:
        self.listener = listener
        return lambda: None


def _frames() -> tuple[Callable[[str, str], None], list[OcppFrame]]:
    station = _Station()
    frames = OcppFrames(station)  # type: ignore[arg-type]
    seen: list[OcppFrame] = []

    def subscriber(frame: OcppFrame) -> bool:
        seen.append(frame)
        return frame.call

    frames.subscribers.append(subscriber)
    assert station.listener is not None
    return station.listener, seen


def _send(listener: Callable[[str, str], None], direction: str, message: list[Any], spaced: bool = False) -> None:
    listener(direction, json.dumps(message) if spaced else json.dumps(message, separators=(",", ":")))


def test_calls_that_name_a_session_and_their_answers_reach_the_sessions() -> None:
    listener, seen = _frames()
    _send(listener, "rx", [2, "a1", "SetChargingProfile", {"evseId": 1, "chargingProfile": {"id": 1}}])
    _send(listener, "tx", [3, "a1", {"status": "Accepted"}])
    _send(listener, "tx", [2, "b2", "TransactionEvent", {"transactionInfo": {"transactionId": "T1"}}], spaced=True)
    _send(listener, "rx", [4, "b2", "InternalError", "x", {}], spaced=True)
    _send(listener, "tx", [2, "c3", "Authorize", {"idToken": {"idToken": "X", "type": "Central"}}])
    assert [(f.action, f.call, f.error) for f in seen] == [
        ("SetChargingProfile", True, False), ("SetChargingProfile", False, False),
        ("TransactionEvent", True, False), ("TransactionEvent", False, True), ("Authorize", True, False)]


def test_calls_that_concern_no_session_and_unknown_answers_are_skipped() -> None:
    listener, seen = _frames()
    _send(listener, "rx", [2, "u1", "UpdateDynamicSchedule", {"chargingProfileId": 7, "scheduleUpdate": {"limit": 5}}])
    _send(listener, "tx", [3, "u1", {"status": "Accepted"}])
    _send(listener, "rx", [3, "nobody", {"evseId": 1}])
    _send(listener, "tx", [2, "h1", "Heartbeat", {}], spaced=True)
    listener("rx", "not json")
    listener("rx", '[2,"x1","SetChargingProfile"')
    assert seen == []


def test_escaped_keys_are_parsed_not_read_as_text() -> None:
    listener, seen = _frames()
    listener("rx", '[2,"e1","SetChargingProfile",{"\\u0065vseId":1,"chargingProfile":{"id":1}}]')
    listener("tx", '[3,"e\\u0031",{"status":"Accepted"}]')
    assert [(f.message_id, f.call) for f in seen] == [("e1", True), ("e1", False)]
