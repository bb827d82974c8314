"""Fault tests: the websocket drops in the middle of a transaction; the station restarts with a non-empty queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.station import GOOD_TOKEN, CsmsServer, record_emitted, running_station
from helpers.wait import until

pytestmark = pytest.mark.timeout(60)


def meter_values(events: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """(timestamp, import register) of every meter value in the events."""
    return [(mv["timestamp"], v["value"]) for e in events for mv in e.get("meterValue", [])
            for v in mv["sampledValue"] if v["measurand"] == "Energy.Active.Import.Register"]


async def test_drop_mid_transaction_queues_and_replays_exactly_once() -> None:
    """Events made while the CSMS is unreachable carry offline=true and arrive after reconnecting, in order, once."""
    async with CsmsServer().running() as csms, running_station(csms) as st:
        emitted = record_emitted(st)
        await st.wait_accepted()
        st.set_ev(1, power_w=11000.0, soc=20.0, battery_wh=50000.0)
        await st.plug_in(1)
        await st.present_token(1, GOOD_TOKEN)
        await until(lambda: len(csms.messages("TransactionEvent")) >= 4)
        csms.drop_after = lambda action, p: action == "TransactionEvent" and p["triggerReason"] == "MeterValuePeriodic"
        await until(lambda: not st.connected)
        made_online = len(emitted)
        await until(lambda: len(emitted) >= made_online + 3)  # periodic meter values pile up on disk
        await st.present_token(1, GOOD_TOKEN)  # the driver stops while offline: no Authorize needed
        await st.unplug(1)
        csms.accepting = True
        await st.wait_queue_empty()
        await until(lambda: csms.messages("StatusNotification")[-1]["connectorStatus"] == "Available")
    events = csms.messages("TransactionEvent")
    assert events == emitted  # every event, in order, exactly once, unchanged
    assert [e["seqNo"] for e in events] == list(range(len(events)))
    flags = [bool(e.get("offline")) for e in events]
    assert flags == sorted(flags) and not flags[0]  # online events, then the ones made offline
    assert all(flags[made_online:]) and len(events) - made_online >= 4
    assert events[-1]["eventType"] == "Ended" and events[-1]["transactionInfo"]["stoppedReason"] == "Local"
    mv = meter_values(events)
    assert len(mv) == len({t for t, _ in mv}) and [e for _, e in mv] == sorted(e for _, e in mv)
    assert len(csms.messages("BootNotification")) == 1 and csms.connects == 2
    assert len(csms.messages("Authorize")) == 1


async def test_restart_with_non_empty_queue_delivers_it(tmp_path: Path) -> None:
    """The queue is on disk: a new station process on the same state folder sends it, and ends the open
    transaction (PowerLoss) with the next seqNo."""
    async with CsmsServer().running() as csms:
        async with running_station(csms, state_dir=tmp_path) as first:
            emitted = record_emitted(first)
            await first.wait_accepted()
            first.set_ev(1, power_w=7000.0)
            await first.plug_in(1)
            await first.present_token(1, GOOD_TOKEN)
            await until(lambda: len(csms.messages("TransactionEvent")) >= 3)
            csms.drop_after = lambda action, p: action == "TransactionEvent"
            await until(lambda: not first.connected)
            made_online = len(emitted)
            await until(lambda: len(emitted) >= made_online + 2)
        waiting = [m.payload for m in _reopen_queue(tmp_path)]
        assert waiting == emitted[-len(waiting):] and waiting[-1]["offline"] is True  # (the first ones may have
        # been made before the station noticed the drop: those are queued too, without the offline flag)
        csms.accepting = True
        async with running_station(csms, state_dir=tmp_path) as second:
            await second.wait_accepted()
            await second.wait_queue_empty()
            register = second.hardware(1).meter().import_wh  # the meter does not reset with the process
    events = csms.messages("TransactionEvent")
    assert [e["seqNo"] for e in events] == list(range(len(events)))
    assert events[:-1] == emitted  # what the first process made, once each, then the second's Ended
    end = events[-1]
    assert end["eventType"] == "Ended" and end["transactionInfo"]["stoppedReason"] == "PowerLoss"
    assert end["offline"] is True and end["transactionInfo"]["transactionId"] == events[0]["transactionInfo"][
        "transactionId"]
    assert [b["reason"] for b in csms.messages("BootNotification")] == ["PowerUp", "PowerUp"]
    assert register == pytest.approx(max(e for _, e in meter_values(emitted)), abs=1e-3) and register > 0


def _reopen_queue(state_dir: Path) -> list[Any]:
    """What is waiting in a stopped station's queue."""
    from v2gstack.station import OfflineQueue

    q = OfflineQueue(state_dir / "queue.sqlite")
    try:
        return q.items()
    finally:
        q.close()


async def test_offline_authorization_uses_the_cache() -> None:
    """Offline, a token the CSMS accepted before starts a transaction (LocalAuthorizeOffline); an unknown one not."""
    async with CsmsServer().running() as csms, running_station(csms, evses=2) as st:
        await st.wait_accepted()
        assert (await st.authorization.authorize_token(GOOD_TOKEN))["status"] == "Accepted"
        csms.accepting = False
        await csms.points["CS1"]._connection.close()
        await until(lambda: not st.connected)
        assert (await st.present_token(2, {"idToken": "NEW", "type": "ISO14443"}))["status"] == "Unknown"
        assert st.evses[2].tx is None
        await st.plug_in(1)
        assert (await st.present_token(1, GOOD_TOKEN))["status"] == "Accepted"
        await st.present_token(1, GOOD_TOKEN)
        csms.accepting = True
        await st.wait_queue_empty()
    events = csms.messages("TransactionEvent")
    assert [e["triggerReason"] for e in events][:2] == ["CablePluggedIn", "Authorized"]
    assert all(e["offline"] for e in events) and events[-1]["eventType"] == "Ended"
    assert len(csms.messages("Authorize")) == 1
