"""Our station against our CSMS, on SQLite and PostgreSQL: boot, statuses, authorization, transactions with every
meter value recorded, remote start/stop and the REST API's view of all of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.csms import PASSWORD, TOKEN, api_client, make_db_url, our_station, running_csms
from helpers.wait import until

from v2gstack.station import simulate_session


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_db_url(request.param, tmp_path)


async def test_boot_statuses_and_a_full_session_are_recorded(db_url: str) -> None:
    async with running_csms(db_url) as csms, our_station(csms) as st:
        await st.wait_accepted()
        await until(lambda: (csms.store.station("CS1").connector_status or {}).get("1/1") == "Available")
        info = await simulate_session(st, 1, token=TOKEN["idToken"], seconds=30, power_w=11000.0)
        assert info["status"] == "Accepted"
        await st.wait_queue_empty()
        [tx] = csms.store.transactions("CS1")
        full = csms.store.transaction("CS1", tx["transactionId"])
        assert full is not None and full["state"] == "Ended" and full["idToken"] == TOKEN["idToken"]
        assert [e["seqNo"] for e in full["events"]] == list(range(len(full["events"])))
        assert full["events"][0]["eventType"] == "Started" and full["events"][-1]["eventType"] == "Ended"
        energy = [m["value"] for m in full["meterValues"] if m["measurand"] == "Energy.Active.Import.Register"]
        assert energy == sorted(energy) and energy[-1] > 0
        # the last recorded register is what the station's meter says
        assert energy[-1] == pytest.approx(st.hardware(1).meter().import_wh, abs=1.0)
        st_row = csms.store.station("CS1")
        assert st_row.boot_status == "Accepted" and st_row.vendor == "v2gstack"
        async with api_client(csms) as api:
            stations = (await api.get("/api/stations")).json()
            assert stations[0]["id"] == "CS1" and stations[0]["online"] is True
            got = (await api.get(f"/api/transactions/{tx['transactionId']}")).json()
            assert got["state"] == "Ended" and len(got["meterValues"]) == len(full["meterValues"])
            assert (await api.get("/api/transactions/nope")).status_code == 404
            timeline = (await api.get(f"/api/timeline/{tx['transactionId']}")).json()
            assert [e["name"] for e in timeline].count("TransactionEvent") == len(full["events"])
            assert timeline[0]["source"] == "csms" and "Started" in timeline[0]["details"]
            assert (await api.get("/api/timeline/nope")).status_code == 404


async def test_unknown_and_blocked_tokens_are_refused(db_url: str) -> None:
    tokens = [TOKEN, {"idToken": "BLOCKED1", "type": "ISO14443", "status": "Blocked"}]
    async with running_csms(db_url, tokens=tokens) as csms, our_station(csms) as st:
        await st.wait_accepted()
        authorize = st.authorization.authorize_token
        assert (await authorize({"idToken": "BLOCKED1", "type": "ISO14443"}))["status"] == "Blocked"
        assert (await authorize({"idToken": "NOSUCH", "type": "ISO14443"}))["status"] == "Unknown"
        assert (await authorize(TOKEN))["status"] == "Accepted"
        logged = csms.store.messages(station_id="CS1")
        assert [m["response"]["idTokenInfo"]["status"] for m in logged if m["action"] == "Authorize"] == [
            "Blocked", "Unknown", "Accepted"]


async def test_remote_start_stop_and_commands_through_the_api(db_url: str) -> None:
    async with running_csms(db_url) as csms, our_station(csms) as st, api_client(csms) as api:
        await st.wait_accepted()
        st.set_ev(1, power_w=7000.0)
        await st.plug_in(1)
        r = await api.post("/api/stations/CS1/request-start", json={"idToken": TOKEN, "evseId": 1})
        assert r.status_code == 200 and r.json()["response"]["status"] == "Accepted"
        await until(lambda: csms.active_transaction("CS1", 1) is not None)
        tx_id = csms.active_transaction("CS1", 1)
        await until(lambda: (csms.store.transaction("CS1", tx_id) or {}).get("chargingState") == "Charging")
        r = await api.post("/api/stations/CS1/get-variables", json={"getVariableData": [
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]})
        assert r.json()["response"]["getVariableResult"][0]["attributeStatus"] == "Accepted"
        r = await api.post("/api/stations/CS1/set-variables", json={"setVariableData": [
            {"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"},
             "attributeValue": "2"}]})
        assert r.json()["response"]["setVariableResult"][0]["attributeStatus"] == "Accepted"
        assert st.model.value("SampledDataCtrlr", "TxUpdatedInterval") == "2"
        r = await api.post("/api/stations/CS1/trigger-message", json={"requestedMessage": "Heartbeat"})
        assert r.json()["response"]["status"] == "Accepted"
        # refused before sending: the payload does not fit the schema
        r = await api.post("/api/stations/CS1/request-stop", json={"transactionId": 42})
        assert r.status_code == 422 and "transactionId" in r.json()["detail"]
        r = await api.post("/api/stations/CS1/no-such-command", json={})
        assert r.status_code == 404
        r = await api.post("/api/stations/CS404/reset", json={"type": "Immediate"})
        assert r.status_code == 409
        r = await api.post("/api/stations/CS1/request-stop", json={"transactionId": tx_id})
        assert r.json()["response"]["status"] == "Accepted"
        await until(lambda: (csms.store.transaction("CS1", tx_id) or {}).get("state") == "Ended")
        tx = (await api.get(f"/api/transactions/{tx_id}")).json()
        assert tx["stoppedReason"] == "Remote"
        stops = [m for m in tx["messages"] if m["action"] == "RequestStopTransaction"]
        assert len(stops) == 1 and stops[0]["direction"] == "tx" and stops[0]["response"] == {"status": "Accepted"}


async def test_registry_api(db_url: str) -> None:
    async with running_csms(db_url) as csms, api_client(csms) as api:
        r = await api.post("/api/stations", json={"id": "CS2", "password": "short"})
        assert r.status_code == 422
        r = await api.post("/api/stations", json={"id": "CS2", "password": PASSWORD})
        assert r.status_code == 201 and r.json()["hasPassword"] is True and "password" not in r.json()
        assert (await api.post("/api/stations", json={"id": "CS2"})).status_code == 409
        assert (await api.get("/api/stations/CS2")).json()["online"] is False
        r = await api.post("/api/idtokens", json={"idToken": "CAFE0001", "status": "Blocked"})
        assert r.status_code == 201 and r.json()["status"] == "Blocked"
        assert (await api.post("/api/idtokens", json={"idToken": "X", "status": "Nope"})).status_code == 422
        assert (await api.get("/api/idtokens/ISO14443/CAFE0001")).json()["status"] == "Blocked"
        assert (await api.delete("/api/idtokens/ISO14443/CAFE0001")).status_code == 204
        assert (await api.get("/api/idtokens/ISO14443/CAFE0001")).status_code == 404
        assert (await api.delete("/api/stations/CS2")).status_code == 204
        assert (await api.get("/api/stations/CS2")).status_code == 404
        schema = (await api.get("/openapi.json")).json()
        assert "/api/stations/{station_id}/{command}" in schema["paths"]


async def test_every_csms_command_reaches_the_station(db_url: str) -> None:
    """Each CSMS-initiated 2.0.1 message our station implements, sent through the API, gets a valid answer."""
    if "postgresql" in db_url:
        pytest.skip("the command path does not touch the database; SQLite covers it")
    async with running_csms(db_url) as csms, our_station(csms) as st, api_client(csms) as api:
        await st.wait_accepted()
        cases = [
            ("change-availability", {"operationalStatus": "Inoperative", "evse": {"id": 1}}, "Accepted"),
            ("change-availability", {"operationalStatus": "Operative", "evse": {"id": 1}}, "Accepted"),
            ("unlock-connector", {"evseId": 1, "connectorId": 1}, None),
            ("get-base-report", {"requestId": 7, "reportBase": "ConfigurationInventory"}, "Accepted"),
            ("data-transfer", {"vendorId": "com.example", "messageId": "x"}, "UnknownVendorId"),
            ("clear-cache", {}, "Accepted"),
            ("send-local-list", {"versionNumber": 3, "updateType": "Full", "localAuthorizationList": [
                {"idToken": TOKEN, "idTokenInfo": {"status": "Accepted"}}]}, "Accepted"),
            ("get-local-list-version", {}, None),
            ("set-charging-profile", {"evseId": 0, "chargingProfile": {
                "id": 1, "stackLevel": 0, "chargingProfilePurpose": "ChargingStationMaxProfile",
                "chargingProfileKind": "Absolute", "chargingSchedule": [{  # OCPP 2.1: never Relative (K01.FR.38)
                    "id": 1, "chargingRateUnit": "W", "startSchedule": "2024-01-01T00:00:00Z",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 22000}]}]}},
             "Accepted"),
            ("get-composite-schedule", {"evseId": 1, "duration": 600}, "Accepted"),
            ("clear-charging-profile", {"chargingProfileId": 1}, "Accepted"),
        ]
        for command, payload, status in cases:
            r = await api.post(f"/api/stations/CS1/{command}", json=payload)
            assert r.status_code == 200, (command, r.text)
            if status is not None:
                assert r.json()["response"]["status"] == status, (command, r.json())
        assert (await api.post("/api/stations/CS1/call-GetLocalListVersion", json={})).json()["response"][
            "versionNumber"] == 3
        await until(lambda: any(m["action"] == "NotifyReport" for m in csms.store.messages(station_id="CS1")))
        # an action the station does not implement comes back as the station's CALLERROR, as 502
        r = await api.post("/api/stations/CS1/call-ClearVariableMonitoring", json={"id": [1]})
        assert r.status_code == 502 and r.json()["code"] in ("NotSupported", "NotImplemented")
        r = await api.post("/api/stations/CS1/reset", json={"type": "OnIdle"})  # idle: it reboots at once
        assert r.json()["response"]["status"] == "Accepted"
        await until(lambda: st.availability.reboots >= 1 and st.link.registration == "Accepted" and csms.online("CS1"))
