"""Diagnostics (N01, N04, N07) with the `ocpp` package's ChargePoint as the station (our station does not take GetLog
or SetVariableMonitoring yet): GetLog names a one-time upload URL on our CSMS's API (served by uvicorn on a real
socket), the station uploads there (PUT raw, POST multipart) and reports LogStatusNotification; monitors are stored
under the ids the station gave; NotifyEvent data is stored and served."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import httpx
from helpers.csms import PASSWORD, api_token, auth, csms_url, running_csms, served_api
from helpers.peers import their_station
from ocpp.v201 import call

LOG = b"2026-12-07T00:00:00Z boot\n" * 100


async def test_log_upload_to_the_csms(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"PKG": PASSWORD}, max_upload=8192) as csms, \
            served_api(csms) as base, their_station(csms_url(csms), "PKG", PASSWORD) as cp:
        admin = httpx.AsyncClient(base_url=base, headers=auth(api_token(csms, "admin")))
        viewer = httpx.AsyncClient(base_url=base, headers=auth(api_token(csms, "viewer")))
        station = httpx.AsyncClient()  # the station's HTTP client: no API token
        try:
            r = await admin.post("/api/stations/PKG/logs", json={"logType": "DiagnosticsLog"})
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["response"]["status"] == "Accepted" and out["logRequest"]["filename"] == "diagnostics.log"
            assert "(secret)" in out["request"]["log"]["remoteLocation"]  # the secret is not echoed to the API
            [sent] = cp.actions("GetLog")
            url = sent["log"]["remote_location"]
            assert url.startswith(f"{base}/upload/logs/") and sent["request_id"] == out["logRequest"]["requestId"]
            rid = sent["request_id"]
            await cp.call(call.LogStatusNotification(status="Uploading", request_id=rid), suppress=False)
            assert (await station.put(url, content=LOG, headers={"Content-Type": "text/plain"})).status_code == 201
            await cp.call(call.LogStatusNotification(status="Uploaded", request_id=rid), suppress=False)
            [listed] = (await viewer.get("/api/stations/PKG/logs")).json()
            assert [h["status"] for h in listed["history"]] == ["Uploading", "Uploaded"]
            assert listed["status"] == "Uploaded" and listed["size"] == len(LOG)
            assert listed["sha256"] == hashlib.sha256(LOG).hexdigest()
            assert (await viewer.get(f"/api/stations/PKG/logs/{rid}/file")).status_code == 403  # admins only
            assert (await admin.get(f"/api/stations/PKG/logs/{rid}/file")).content == LOG
            # the secret works once; unknown secrets are refused
            assert (await station.put(url, content=b"again")).status_code == 404
            assert (await station.put(f"{base}/upload/logs/guess", content=b"x")).status_code == 404
            # a second request: multipart POST (as many stations upload), and an oversized one is refused
            await admin.post("/api/stations/PKG/logs", json={"logType": "SecurityLog"})
            url2 = cp.actions("GetLog")[1]["log"]["remote_location"]
            assert (await station.post(url2, content=b"x" * 9000)).status_code == 413
            r = await station.post(url2, files={"file": ("security.log", b"security events\n", "text/plain")})
            assert r.status_code == 201, r.text
            second = (await viewer.get("/api/stations/PKG/logs")).json()[0]
            assert second["filename"] == "security.log" and second["size"] == len(b"security events\n")
            # bad input: an unknown log type, a viewer
            assert (await admin.post("/api/stations/PKG/logs", json={"logType": "Everything"})).status_code == 422
            assert (await viewer.post("/api/stations/PKG/logs", json={})).status_code == 403
        finally:
            for client in (admin, viewer, station):
                await client.aclose()


async def test_monitors_and_events(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"PKG": PASSWORD}) as csms, \
            served_api(csms) as base, their_station(csms_url(csms), "PKG", PASSWORD) as cp:
        async with httpx.AsyncClient(base_url=base, headers=auth(api_token(csms, "admin"))) as admin:
            monitors = [
                {"value": 90.0, "type": "UpperThreshold", "severity": 4,
                 "component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Temperature"}},
                {"value": 1.0, "type": "Delta", "severity": 2, "component": {"name": "UnknownThing"},
                 "variable": {"name": "X"}}]
            r = await admin.post("/api/stations/PKG/monitors", json={"setMonitoringData": monitors})
            assert r.status_code == 200, r.text
            assert [(x["status"], x["stored"]) for x in r.json()["results"]] == [("Accepted", True),
                                                                               ("UnknownComponent", False)]
            [stored] = (await admin.get("/api/stations/PKG/monitors")).json()
            assert stored["id"] == 1 and stored["type"] == "UpperThreshold" and stored["value"] == 90.0
            # the monitor triggers: the station's NotifyEvent is stored and served
            now = datetime.now(UTC).isoformat()
            await cp.call(call.NotifyEvent(generated_at=now, seq_no=0, event_data=[{
                "event_id": 7, "timestamp": now, "trigger": "Alerting", "actual_value": "93.5",
                "event_notification_type": "CustomMonitor", "variable_monitoring_id": 1, "tech_code": "OverTemp",
                "component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Temperature"}}]),
                suppress=False)
            [event] = (await admin.get("/api/stations/PKG/events?component=EVSE")).json()
            assert (event["eventId"], event["actualValue"], event["variableMonitoringId"], event["techCode"]) == (
                7, "93.5", 1, "OverTemp")
            assert (await admin.get("/api/stations/PKG/events?component=Other")).json() == []
            r = await admin.post("/api/stations/PKG/monitors/clear", json={"ids": [1]})
            assert r.json()["removed"] == 1 and (await admin.get("/api/stations/PKG/monitors")).json() == []
            # bad input: a monitor the schema refuses, no ids
            r = await admin.post("/api/stations/PKG/monitors", json={"setMonitoringData": [{"value": 1}]})
            assert r.status_code == 422 and "invalid SetVariableMonitoring" in r.json()["detail"]
            assert (await admin.post("/api/stations/PKG/monitors/clear", json={"ids": []})).status_code == 422
        async with httpx.AsyncClient(base_url=base, headers=auth(api_token(csms, "operator"))) as operator:
            assert (await operator.post("/api/stations/PKG/monitors", json={"setMonitoringData": monitors})
                    ).status_code == 403


async def test_customer_information(tmp_path: Path) -> None:
    """N09/N10: CustomerInformation (admin), the station's NotifyCustomerInformation parts stored in order with the
    request; a part for a request the CSMS never made is answered and not stored; operators may not ask."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"PKG": PASSWORD}) as csms, \
            served_api(csms) as base, their_station(csms_url(csms), "PKG", PASSWORD) as cp:
        async with httpx.AsyncClient(base_url=base, headers=auth(api_token(csms, "admin"))) as admin:
            body = {"report": True, "clear": False, "idToken": {"idToken": "04A1B2C3", "type": "ISO14443"}}
            r = await admin.post("/api/stations/PKG/customer-information", json=body)
            assert r.status_code == 200, r.text
            rid = r.json()["customerRequest"]["requestId"]
            assert cp.actions("CustomerInformation")[0]["request_id"] == rid
            now = datetime.now(UTC).isoformat()
            for seq, (data, tbc) in enumerate((("sessions: 3; ", True), ("last: 2026-12-06", False))):
                await cp.call(call.NotifyCustomerInformation(data=data, seq_no=seq, generated_at=now,
                                                             request_id=rid, tbc=tbc), suppress=False)
            await cp.call(call.NotifyCustomerInformation(data="x", seq_no=0, generated_at=now, request_id=999),
                          suppress=False)
            [stored] = (await admin.get("/api/stations/PKG/customer-information")).json()
            assert (stored["data"], stored["parts"], stored["complete"], stored["answer"]) == (
                "sessions: 3; last: 2026-12-06", 2, True, "Accepted")
            r = await admin.post("/api/stations/PKG/customer-information", json={"report": "yes"})
            assert r.status_code == 422
        async with httpx.AsyncClient(base_url=base, headers=auth(api_token(csms, "operator"))) as operator:
            assert (await operator.get("/api/stations/PKG/customer-information")).status_code == 403
