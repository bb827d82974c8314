"""The station's CALLs to the CSMS fail with typed errors, each logged as what it is: the link down (Offline), a
CALLERROR (CallRefused with its code), a bug of ours (OwnPayloadInvalid: never sent, logged as a bug) and an answer
that breaks the schema (AnswerInvalid). The CSMS is a scripted peer on an in-memory link."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from helpers.memory_link import RawCsms

from v2gstack.ocpp import BackOff, Version, schemas
from v2gstack.ocpp.schemas import SchemaStore
from v2gstack.station import ChargingStation, StationConfig
from v2gstack.station.errors import AnswerInvalid, CallRefused, Offline, OwnPayloadInvalid
from v2gstack.station.link import SESSION_ACTIONS

pytestmark = pytest.mark.timeout(30)

EVENT = {"generatedAt": "2024-05-01T12:00:00Z", "seqNo": 0, "eventData": [{
    "eventId": 1, "timestamp": "2024-05-01T12:00:00Z", "trigger": "Alerting", "actualValue": "true",
    "eventNotificationType": "HardWiredNotification", "component": {"name": "ConnectedEV"},
    "variable": {"name": "Problem"}}]}


def _script(action: str, payload: dict[str, Any]) -> list[Any] | None:
    if action == "NotifyEvent":
        return [4, "", "NotSupported", "no events here", {}]
    if action == "Heartbeat" and payload == {}:
        return [3, "", {"currentTime": 42}]  # not a date-time string
    return None


def _station(raw: RawCsms) -> ChargingStation:
    config = StationConfig("CS1", "ws://in-memory/ocpp", call_timeout=5.0, ping_interval=None,
                           backoff=BackOff(0.02, 0.02, 1))
    return ChargingStation(config, dial=raw.dial)


async def _until(predicate: Any) -> None:
    while not predicate():
        await asyncio.sleep(0.01)


async def test_each_call_failure_has_its_own_type(caplog: pytest.LogCaptureFixture) -> None:
    raw = RawCsms(_script)
    st = _station(raw)
    with pytest.raises(Offline):  # not started: not connected
        await st.call("Heartbeat", {})
    with caplog.at_level(logging.ERROR), pytest.raises(OwnPayloadInvalid):  # our bug shows even offline
        await st.call("StatusNotification", {"evseId": 1})
    assert any("BUG" in r.getMessage() and "StatusNotification" in r.getMessage() for r in caplog.records)
    await st.start()
    try:
        await st.wait_accepted()
        with pytest.raises(CallRefused) as refused:
            await st.call("NotifyEvent", EVENT)
        assert refused.value.code == "NotSupported" and refused.value.reason == "no events here"
        with pytest.raises(AnswerInvalid):
            await st.call("Heartbeat", {})
        sent = len(raw.received)
        with pytest.raises(OwnPayloadInvalid):
            await st.call("Heartbeat", {"bogus": 1})
        assert len(raw.received) == sent  # never sent
        await raw.close()
        await _until(lambda: not st.online)
        with pytest.raises(Offline):
            await st.call("NotifyEvent", EVENT)
    finally:
        await st.stop()


async def test_notify_logs_each_kind_distinctly(caplog: pytest.LogCaptureFixture) -> None:
    raw = RawCsms(_script)
    st = _station(raw)
    await st.start()
    try:
        await st.wait_accepted()
        with caplog.at_level(logging.INFO, logger="v2gstack.station.link"):
            st.notify("NotifyEvent", EVENT)
            st.notify("Heartbeat", {})
            st.notify("Heartbeat", {"bogus": 1})
            await _until(lambda: len([r for r in caplog.records if r.name == "v2gstack.station.link"]) >= 3)
            await raw.close()
            await _until(lambda: not st.online)
            st.notify("NotifyEvent", EVENT)
            await _until(lambda: any("NotifyEvent not sent" in r.getMessage() for r in caplog.records))
    finally:
        await st.stop()
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "v2gstack.station.link"]
    for level, start in [("WARNING", "CS1: the CSMS refused NotifyEvent: NotSupported"),
                         ("WARNING", "CS1: the CSMS's answer to Heartbeat breaks the schema"),
                         ("ERROR", "CS1: BUG: our Heartbeat request breaks the OCPP schema"),
                         ("INFO", "CS1: NotifyEvent not sent: not connected")]:
        assert any(lv == level and text.startswith(start) for lv, text in lines), "\n".join(map(str, lines))


async def test_session_validators_are_compiled_off_the_loop_once_booted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the CSMS accepts the boot, the validators of what a charging session sends are loaded in a thread (the 2.1
    TransactionEvent module's source takes ~0.15 s to compile where no bytecode is at hand: on the event loop, in the
    first session, it would hold up every SECC's answers); the process-wide store is a fresh one here, so nothing
    else loaded them."""
    fresh = SchemaStore()
    monkeypatch.setattr(schemas, "_default", fresh)
    st = _station(RawCsms())
    await st.start()
    try:
        await st.wait_accepted()
        compiled = fresh[Version.parse(st.link.version)]
        wanted = {a for a in SESSION_ACTIONS if a in compiled.actions}
        assert "TransactionEvent" in wanted
        await asyncio.wait_for(_until(lambda: wanted <= set(compiled.requests) and "TransactionEvent" in
                                      compiled.responses), 20)
    finally:
        await st.stop()


async def test_a_faster_simulation_does_not_shorten_the_wait_for_the_csms() -> None:
    """time_scale speeds up simulated time (meter values, intervals), not the network and the CSMS: a CALL still
    waits OCPPCommCtrlr.MessageTimeout in real seconds (scaled, a 30 s timeout at 1/600 would end after 50 ms;
    the demo's Plug & Charge Authorize, with its OCSP check, was once cut off that way)."""
    raw = RawCsms()
    raw.delays["Heartbeat"] = 0.2
    st = ChargingStation(StationConfig("CS1", "ws://in-memory/ocpp", time_scale=1 / 600, ping_interval=None,
                                       backoff=BackOff(0.02, 0.02, 1)), dial=raw.dial)
    await st.start()
    try:
        await st.wait_accepted()
        assert "currentTime" in await st.call("Heartbeat", {})
    finally:
        await st.stop()
