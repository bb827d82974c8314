"""Display messages (O01-O06) and firmware updates (L01) kept by our CSMS, with the `ocpp` package's ChargePoint as
the station over real sockets (our station does not take them yet): what was set and answered, what the station
reported, clearing; UpdateFirmware's request and its FirmwareStatusNotification history; the firmware file served
for download over real HTTP; the API's refusals."""

from __future__ import annotations

from pathlib import Path

import httpx
from helpers.csms import PASSWORD, api_client, api_token, auth, csms_url, running_csms, served_api
from helpers.peers import their_station
from ocpp.v201 import call

MESSAGE = {"id": 11, "priority": "InFront", "state": "Charging",
           "message": {"format": "UTF8", "language": "en", "content": "Fast charging: 0.45 EUR/kWh"}}


async def test_display_messages(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"PKG": PASSWORD}) as csms, \
            their_station(csms_url(csms), "PKG", PASSWORD) as cp, \
            api_client(csms, "operator") as api, api_client(csms, "viewer") as viewer:
        r = await api.post("/api/stations/PKG/display-messages", json=MESSAGE)
        assert r.status_code == 200 and r.json()["response"] == {"status": "Accepted"}
        assert cp.actions("SetDisplayMessage")[0]["message"]["id"] == 11
        cp.statuses["SetDisplayMessage"] = "NotSupportedPriority"
        r = await api.post("/api/stations/PKG/display-messages", json={**MESSAGE, "id": 12,
                                                                       "priority": "AlwaysFront"})
        assert r.json()["message"]["status"] == "NotSupportedPriority"
        shown = {m["id"]: m for m in (await viewer.get("/api/stations/PKG/display-messages")).json()}
        assert shown[11]["status"] == "Accepted" and shown[11]["state"] == "Charging"
        assert shown[11]["message"]["content"].startswith("Fast charging")
        # O04: the station reports what it shows (one the CSMS never set, too)
        r = await api.post("/api/stations/PKG/display-messages/query", json={"priority": "InFront"})
        request_id = r.json()["request"]["requestId"]
        assert cp.actions("GetDisplayMessages")[0]["request_id"] == request_id
        await cp.call(call.NotifyDisplayMessages(request_id=request_id, message_info=[
            {"id": 11, "priority": "InFront", "message": {"format": "UTF8", "content": "Fast charging: 0.45 EUR/kWh"}},
            {"id": 99, "priority": "NormalCycle", "message": {"format": "ASCII", "content": "Welcome"}}]),
            suppress=False)
        shown = {m["id"]: m for m in (await viewer.get("/api/stations/PKG/display-messages")).json()}
        assert shown[11]["reported"]["priority"] == "InFront" and shown[99]["status"] == "Reported"
        # O05: cleared once the station accepted
        r = await api.delete("/api/stations/PKG/display-messages/11")
        assert r.json()["message"]["status"] == "Cleared" and cp.actions("ClearDisplayMessage") == [{"id": 11}]
        assert 11 not in {m["id"] for m in (await viewer.get("/api/stations/PKG/display-messages")).json()}
        assert 11 in {m["id"] for m in (await viewer.get("/api/stations/PKG/display-messages?cleared=true")).json()}
        # refusals: an end before the start, a message the schema refuses, a viewer
        bad = {**MESSAGE, "startDateTime": "2030-01-02T00:00:00Z", "endDateTime": "2030-01-01T00:00:00Z"}
        assert (await api.post("/api/stations/PKG/display-messages", json=bad)).status_code == 422
        r = await api.post("/api/stations/PKG/display-messages", json={"id": 1, "priority": "Loud"})
        assert r.status_code == 422 and "invalid SetDisplayMessage" in r.json()["detail"]
        assert (await viewer.post("/api/stations/PKG/display-messages", json=MESSAGE)).status_code == 403
        assert len(cp.actions("SetDisplayMessage")) == 2


async def test_firmware_update_and_download(tmp_path: Path) -> None:
    folder = tmp_path / "firmware"
    folder.mkdir()
    (folder / "fw-2.0.bin").write_bytes(b"\x7fFW" * 1000)
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"PKG": PASSWORD},
                            firmware_dir=str(folder)) as csms, served_api(csms) as base, \
            their_station(csms_url(csms), "PKG", PASSWORD) as cp:
        async with httpx.AsyncClient(base_url=base, headers=auth(api_token(csms, "admin"))) as admin:
            firmware = {"location": f"{base}/firmware/fw-2.0.bin", "retrieveDateTime": "2026-01-01T00:00:00Z",
                        "signature": "c2lnbmF0dXJl", "signingCertificate": "-----BEGIN CERTIFICATE-----\nx\n"}
            r = await admin.post("/api/stations/PKG/firmware", json={"firmware": firmware, "retries": 2})
            assert r.status_code == 200, r.text
            rid = r.json()["update"]["requestId"]
            [sent] = cp.actions("UpdateFirmware")
            assert sent["request_id"] == rid and sent["firmware"]["location"].endswith("/firmware/fw-2.0.bin")
            # the station downloads from the CSMS (no API token), then reports each step
            async with httpx.AsyncClient() as station_http:
                got = await station_http.get(sent["firmware"]["location"])
                assert got.status_code == 200 and got.content == b"\x7fFW" * 1000
                assert (await station_http.get(f"{base}/firmware/..%2Fc.db")).status_code == 404
                assert (await station_http.get(f"{base}/firmware/missing.bin")).status_code == 404
            for status in ("Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"):
                await cp.call(call.FirmwareStatusNotification(status=status, request_id=rid), suppress=False)
            await cp.call(call.FirmwareStatusNotification(status="Idle"), suppress=False)  # no request: ignored
            [update] = (await admin.get("/api/stations/PKG/firmware")).json()
            assert update["answer"] == "Accepted" and update["status"] == "Installed"
            assert [h["status"] for h in update["history"]] == ["Downloading", "Downloaded", "SignatureVerified",
                                                               "Installing", "Installed"]
            r = await admin.post("/api/stations/PKG/firmware", json={"firmware": {"retrieveDateTime": "x"}})
            assert r.status_code == 422
        async with httpx.AsyncClient(base_url=base, headers=auth(api_token(csms, "operator"))) as operator:
            r = await operator.post("/api/stations/PKG/firmware", json={"firmware": firmware})
            assert r.status_code == 403


async def test_firmware_campaign(tmp_path: Path) -> None:
    """One firmware to several stations under one campaign: each connected station gets UpdateFirmware, an offline
    one is listed as not sent, and the campaign counts the stations by their latest status."""
    stations = {"PKG": PASSWORD, "PKG2": PASSWORD, "OFF": PASSWORD}
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations=stations) as csms, \
            their_station(csms_url(csms), "PKG", PASSWORD) as one, \
            their_station(csms_url(csms), "PKG2", PASSWORD, statuses={"UpdateFirmware": "Rejected"}) as two, \
            api_client(csms, "admin") as admin, api_client(csms, "viewer") as viewer:
        firmware = {"location": "https://firmware.example/fw-3.1.bin", "retrieveDateTime": "2026-01-01T00:00:00Z"}
        r = await admin.post("/api/firmware/campaigns", json={"stationIds": ["PKG", "PKG2", "OFF"],
                                                              "firmware": firmware})
        assert r.status_code == 200, r.text
        out = r.json()
        by_station = {x["stationId"]: x for x in out["results"]}
        assert by_station["PKG"]["answer"] == "Accepted" and by_station["PKG2"]["answer"] == "Rejected"
        assert by_station["OFF"]["status"] == 409
        assert len(one.actions("UpdateFirmware")) == len(two.actions("UpdateFirmware")) == 1
        await one.call(call.FirmwareStatusNotification(status="Downloading",
                                                       request_id=by_station["PKG"]["requestId"]), suppress=False)
        got = (await viewer.get(f"/api/firmware/campaigns/{out['campaign']}")).json()
        assert got["stations"] == 2 and got["byStatus"] == {"Downloading": 1, "Rejected": 1}
        assert (await viewer.get("/api/firmware/campaigns/nope")).status_code == 404
        assert (await viewer.post("/api/firmware/campaigns", json={"stationIds": ["PKG"], "firmware": firmware})
                ).status_code == 403
