"""End to end: our EVs (ISO 15118-2 AC/DC, DIN DC) -> SECC + bridge -> our station -> our CSMS, real sockets."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from helpers.bridge import bridged
from helpers.wait import until

from v2gstack.csms.timeline import merged_timeline
from v2gstack.station.bridge import BridgeConfig
from v2gstack.station.device_model import VENDOR_COMPONENT

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(("protocol", "energy"), [("din", "dc"), ("iso2", "ac"), ("iso2", "dc")])
async def test_session_becomes_a_transaction_with_the_evs_energy(tmp_path: Path, protocol: str, energy: str) -> None:
    async with bridged(tmp_path, evses=1) as rig:
        result = await rig.ev(1, protocol, energy, loops=30, interval=0.05)
        assert result.ok, result.reason
        await until(lambda: rig.station.evses[1].tx is None)
        await rig.station.wait_queue_empty()
        [tx] = rig.csms.store.transactions("CS1")
        full = rig.csms.store.transaction("CS1", tx["transactionId"])
        assert full["state"] == "Ended" and full["stoppedReason"] == "EVDisconnected"
        iso = full["iso15118"]
        assert iso["sessionId"] == result.session_id and iso["evccId"] == "0A0B0C0D0E01"
        assert iso["protocol"] == {"din": "DIN70121", "iso2": "ISO15118-2"}[protocol]
        energy_wh = [m["value"] for m in full["meterValues"] if m["measurand"] == "Energy.Active.Import.Register"]
        assert energy_wh[-1] == pytest.approx(result.energy_wh, rel=0.05, abs=2.0)
        assert result.energy_wh > 50
        needs = [m for m in rig.csms.store.messages(station_id="CS1") if m["action"] == "NotifyEVChargingNeeds"]
        assert needs and needs[0]["payload"]["chargingNeeds"]["requestedEnergyTransfer"] == (
            "DC" if energy == "dc" else "AC_three_phase")
        # the CSMS answers the needs with a TxProfile (K15): -2 renegotiates within it, so the latest schedule counts
        *_, chosen = [m["payload"] for m in rig.csms.store.messages(station_id="CS1")
                      if m["action"] == "NotifyEVChargingSchedule"]
        periods = chosen["chargingSchedule"]["chargingSchedulePeriod"]
        session = rig.bridges[0].finished[0]
        *_, profile = [r["profile"] for r in session.timeline.records if r.get("what") == "ScheduleChosen"]
        if protocol == "iso2":  # the EV's ChargingProfile from PowerDeliveryReq
            assert [(p["startPeriod"], p["limit"]) for p in periods] == [tuple(e) for e in profile]
        else:  # DIN sends no profile: the SAScheduleTuple it chose
            assert profile == [] and periods == [{"startPeriod": 0, "limit": 50000.0}]


def _tx(rig) -> dict:  # type: ignore[no-untyped-def]
    [tx] = rig.csms.store.transactions("CS1")
    return rig.csms.store.transaction("CS1", tx["transactionId"])


async def test_csms_remote_stop_ends_the_iso_session(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1) as rig:
        ev = asyncio.create_task(rig.ev(1, "iso2", "dc", loops=0, interval=0.05))  # until the EVSE says stop
        await until(lambda: rig.csms.active_transaction("CS1", 1) is not None
                    and rig.station.hardware(1).meter().power_w)
        tx_id = rig.csms.active_transaction("CS1", 1)
        assert await rig.csms.request_stop("CS1", tx_id) == {"status": "Accepted"}
        result = await asyncio.wait_for(ev, 30)
        assert result.ok, result.reason  # the EV stopped properly: PowerDelivery Stop, SessionStop
        await rig.station.wait_queue_empty()
        tx = _tx(rig)
        assert tx["stoppedReason"] == "Remote" and tx["events"][-1]["triggerReason"] == "RemoteStop"
        statuses = [s for s in rig.bridges[0].finished[0].timeline.records if s.get("what") == "StopRequested"]
        assert statuses


async def test_profile_change_renegotiates_and_lowers_the_evs_power(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1) as rig:
        # the EV charges until the CSMS stops it: a busy machine must not run it out of loops before it renegotiates
        ev = asyncio.create_task(rig.ev(1, "iso2", "dc", loops=0, interval=0.05))
        # power may flow before the CSMS has stored the transaction's start: wait for both
        await until(lambda: rig.station.hardware(1).meter().power_w > 40_000
                    and rig.csms.active_transaction("CS1", 1) is not None)
        tx_id = rig.csms.active_transaction("CS1", 1)
        profile = {"id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "transactionId": tx_id,
                   "chargingProfileKind": "Relative", "chargingSchedule": [{
                       "id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                                     "limit": 11000}]}]}
        answer = await rig.csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
        assert answer == {"status": "Accepted"}
        await until(lambda: 0 < rig.station.hardware(1).meter().power_w <= 11000)
        # the new limit reaches the car's charge loop before it renegotiates: stop it only once it has
        await until(lambda: sum(r.get("what") == "ScheduleOffered" for r in rig.records(1)) == 2)
        assert await rig.csms.request_stop("CS1", tx_id) == {"status": "Accepted"}
        result = await asyncio.wait_for(ev, 60)
        assert result.ok, result.reason
        session = rig.bridges[0].finished[0]
        offered = [r["pmax"] for r in session.timeline.records if r.get("what") == "ScheduleOffered"]
        assert len(offered) == 2 and offered[0][0][1] == 50000.0 and offered[1][0][1] == 11000.0  # renegotiated
        iso_names = [r["message"] for r in session.timeline.records if r["protocol"] == "iso15118"]
        assert iso_names.count("ChargeParameterDiscoveryReq") == 2
        await rig.station.wait_queue_empty()
        chosen = [m["payload"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
                  for m in rig.csms.store.messages(station_id="CS1") if m["action"] == "NotifyEVChargingSchedule"]
        assert chosen[0] > 11000 and chosen[-1] == 11000.0 and len(chosen) == 2  # the EV's new choice is reported


async def test_eim_waits_for_the_csms_remote_start(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=2, free=False) as rig:
        ev = asyncio.create_task(rig.ev(2, "iso2", "ac", loops=10, interval=0.02))
        await until(lambda: rig.bridges[1].active is not None and rig.bridges[1].active.auth_task is not None)
        assert not ev.done()  # Authorization answered Ongoing meanwhile
        answer = await rig.csms.request_start("CS1", {"idToken": "04A1B2C3", "type": "ISO14443"}, evse_id=2)
        assert answer["status"] == "Accepted"
        result = await asyncio.wait_for(ev, 30)
        assert result.ok, result.reason
        await rig.station.wait_queue_empty()
        tx = _tx(rig)
        assert tx["idToken"] == "04A1B2C3" and tx["evseId"] == 2


async def test_refused_token_fails_the_iso_authorization(tmp_path: Path) -> None:
    config = BridgeConfig(id_token={"idToken": "NOT-REGISTERED", "type": "ISO14443"})
    async with bridged(tmp_path, evses=1, free=False, config=config) as rig:
        result = await rig.ev(1, "iso2", "ac", loops=5)
        assert not result.ok and result.response_code == "FAILED"
        await until(lambda: rig.station.evses[1].tx is None)
        await rig.station.wait_queue_empty()
        tx = _tx(rig)
        assert tx["stoppedReason"] == "DeAuthorized"
        events = [m for m in rig.csms.store.messages(station_id="CS1") if m["action"] == "NotifyEvent"]
        assert events and events[0]["payload"]["eventData"][0]["component"]["name"] == "ConnectedEV"


async def test_undecodable_exi_maps_to_notify_and_security_events(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1) as rig:
        host, port = rig.address(1)
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(bytes.fromhex("01FE8001000000") + b"\x04" + b"\xff\xff\xff\xff")  # V2GTP EXI, garbage body
        await writer.drain()
        await asyncio.wait_for(reader.read(), 10)  # the SECC closes the connection
        writer.close()
        await until(lambda: any(m["action"] == "SecurityEventNotification"
                                for m in rig.csms.store.messages(station_id="CS1")))
        sec = [m for m in rig.csms.store.messages(station_id="CS1") if m["action"] == "SecurityEventNotification"]
        assert sec[0]["payload"]["type"] == "InvalidMessages"
        # a healthy EV is served right after
        result = await rig.ev(1, "iso2", "ac", loops=3)
        assert result.ok, result.reason


async def test_trace_shows_both_protocols_for_one_session(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1) as rig:
        rig.station.model.put(VENDOR_COMPONENT, "MirrorISO15118Messages", "true")
        result = await rig.ev(1, "din", "dc", loops=5)
        assert result.ok
        await until(lambda: rig.station.evses[1].tx is None)
        await rig.station.wait_queue_empty()
        await until(lambda: not rig.bridges[0].ending)
        tx = _tx(rig)
        entries = merged_timeline(result.session_id, trace_dir=rig.trace_dir, store=rig.csms.store)
        sides = {(e.source, e.protocol) for e in entries}
        assert {("station", "iso15118"), ("station", "ocpp"), ("csms", "ocpp")} <= sides
        names = [e.name for e in entries]
        assert "SessionSetupReq" in names and "TransactionEvent" in names and "NotifyEVChargingNeeds" in names
        mirrored = [e.details.split()[2] for e in entries if e.source == "csms" and "ISO mirror" in e.details]
        assert "din:SessionSetupRes" in mirrored and "din:CurrentDemandReq" in mirrored  # decoded by the CSMS
        assert merged_timeline(tx["transactionId"], trace_dir=rig.trace_dir, store=rig.csms.store)


async def test_endless_composite_schedule_does_not_disturb_a_running_session(tmp_path: Path) -> None:
    """The field finding: GetCompositeSchedule for 2^31-1 s on a station with a recurring profile built 596,524
    periods on the event loop that also serves the SECC. Now, while our -2 DC EV charges at the bridged station, the
    CSMS sets a daily recurring profile whose limit changes every hour and asks for that duration: the answer is
    Rejected with a reason (a few hours of it fit in SmartChargingCtrlr.PeriodsPerSchedule periods), and the EV's
    session ends normally, with no timeout of any kind, on the same OCPP link."""
    async with bridged(tmp_path, evses=1) as rig:
        ev = asyncio.create_task(rig.ev(1, "iso2", "dc", loops=40, interval=0.05))
        await until(lambda: rig.station.hardware(1).meter().power_w > 0)
        link = rig.station.link.client.connection
        hourly = [{"startPeriod": 3600 * h, "limit": 45000.0 - 5000 * (h % 2)} for h in range(24)]
        profile = {"id": 30, "stackLevel": 0, "chargingProfilePurpose": "ChargingStationMaxProfile",
                   "chargingProfileKind": "Recurring", "recurrencyKind": "Daily", "chargingSchedule": [{
                       "id": 1, "chargingRateUnit": "W", "startSchedule": "2026-01-01T00:00:00Z",
                       "chargingSchedulePeriod": hourly}]}
        answer = await rig.csms.call("CS1", "SetChargingProfile", {"evseId": 0, "chargingProfile": profile})
        assert answer == {"status": "Accepted"}
        endless = await rig.csms.call("CS1", "GetCompositeSchedule", {"evseId": 1, "duration": 2**31 - 1})
        assert endless["status"] == "Rejected" and "schedule" not in endless
        assert endless["statusInfo"]["reasonCode"] == "ValueTooHigh"
        hours = await rig.csms.call("CS1", "GetCompositeSchedule", {"evseId": 1, "duration": 5 * 3600})
        assert hours["status"] == "Accepted" and 5 <= len(hours["schedule"]["chargingSchedulePeriod"]) <= 6
        result = await asyncio.wait_for(ev, 60)
        assert result.ok, result.reason
        await until(lambda: rig.station.evses[1].tx is None)
        session = rig.bridges[0].finished[0]
        [stopped] = [r for r in session.timeline.records if r.get("what") == "SessionStopped"]
        assert stopped["failure"] == "Normal", stopped
        assert not [r for r in session.timeline.records if r["kind"] == "error"]
        assert rig.station.link.client.connection is link and rig.station.online  # the OCPP link was never dropped
        await rig.station.wait_queue_empty()
        assert _tx(rig)["stoppedReason"] == "EVDisconnected"
