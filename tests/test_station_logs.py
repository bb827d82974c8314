"""Our station's GetLog (N01) against our CSMS over real sockets: the CSMS's API asks for the log, the station PUTs
its DiagnosticsLog (its OCPP frames, the BasicAuthPassword of a SetVariables masked) or SecurityLog to the
CSMS's upload endpoint over real HTTP, each LogStatusNotification lands in the request's history, and an upload the
CSMS refuses (larger than its cap) ends in UploadFailure after the retry; a location that is not http(s) is Rejected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from helpers.csms import api_token, auth, our_station, running_csms, served_api
from helpers.wait import until

from v2gstack.csms.diagnostics import op_log_requests
from v2gstack.ocpp.redact import MASK
from v2gstack.station import ChargingStation, StationConfig

SECRET = "a-rotated-secret-password-42"


def _request(csms: Any, rid: int) -> dict[str, Any]:
    return next((u for u in csms.store.run(op_log_requests, "CS1") if u["requestId"] == rid), {})


def _history(csms: Any, rid: int) -> list[str]:
    return [h["status"] for h in _request(csms, rid).get("history", [])]


async def test_get_log_uploads_to_the_csms(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", max_upload=64 * 1024) as csms, \
            served_api(csms) as base, our_station(csms) as st, \
            httpx.AsyncClient(base_url=base, headers=auth(api_token(csms, "admin"))) as admin:
        await st.wait_accepted()
        r = await admin.post("/api/stations/CS1/set-variables", json={"setVariableData": [{
            "component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"},
            "attributeValue": SECRET}]})
        assert r.json()["response"]["setVariableResult"][0]["attributeStatus"] == "Accepted", r.text
        st.notify("SecurityEventNotification", {"type": "SettingSystemTime", "timestamp": st.clock.timestamp()})
        await until(lambda: len(st.logs.lines["SecurityLog"]) == 1)

        r = await admin.post("/api/stations/CS1/logs", json={"logType": "DiagnosticsLog"})
        assert r.json()["response"]["status"] == "Accepted", r.text
        rid = r.json()["logRequest"]["requestId"]
        assert r.json()["response"]["filename"] == f"CS1-DiagnosticsLog-{rid}.log"
        await until(lambda: _history(csms, rid) == ["Uploading", "Uploaded"])
        file = (await admin.get(f"/api/stations/CS1/logs/{rid}/file")).content.decode()
        assert '"BootNotification"' in file and file.rstrip().endswith("}}]")  # up to the GetLog itself
        assert '"GetLog"' in file.splitlines()[-1]
        assert '"BasicAuthPassword"' in file and SECRET not in file and MASK in file
        assert _request(csms, rid)["size"] == len(file.encode())

        r = await admin.post("/api/stations/CS1/logs", json={"logType": "SecurityLog"})
        sec = r.json()["logRequest"]["requestId"]
        await until(lambda: _history(csms, sec) == ["Uploading", "Uploaded"])
        [line] = (await admin.get(f"/api/stations/CS1/logs/{sec}/file")).content.decode().splitlines()
        assert "SettingSystemTime" in line

        # larger than the CSMS takes: 413 each time, one retry, then UploadFailure
        st.logs.max_bytes = 1 << 20
        for _ in range(300):
            st.logs.record("tx", '[2,"x","Heartbeat",{"pad":"' + "p" * 300 + '"}]')
        r = await admin.post("/api/stations/CS1/logs", json={"logType": "DiagnosticsLog", "retries": 1,
                                                             "retryInterval": 1})
        big = r.json()["logRequest"]["requestId"]
        await until(lambda: _history(csms, big) == ["Uploading", "Uploading", "UploadFailure"])
        assert _request(csms, big)["size"] is None

        # a location the station cannot upload to
        answer = await csms.call("CS1", "GetLog", {"logType": "DiagnosticsLog", "requestId": 999,
                                                   "log": {"remoteLocation": "ftp://example.invalid/x"}})
        assert answer["status"] == "Rejected"


async def test_log_is_bounded() -> None:
    """The in-memory log keeps the newest lines within max_bytes."""
    st = ChargingStation(StationConfig("B1", "ws://127.0.0.1:9/ocpp"))
    st.logs.max_bytes = 1000
    for i in range(100):
        st.logs.record("tx", f'[2,"{i}","Heartbeat",{{}}]')
    lines = st.logs.text("DiagnosticsLog").decode().splitlines()
    assert 0 < len(lines) < 100 and lines[-1].endswith('[2,"99","Heartbeat",{}]')
    assert sum(len(x) + 1 for x in lines) <= 1000


async def test_get_log_over_ocpp16(tmp_path: Path) -> None:
    """GetLog through OCPP 1.6's security extension: the same upload to the CSMS, LogStatusNotification logged."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, served_api(csms) as base, \
            our_station(csms, versions=("1.6",)) as st, \
            httpx.AsyncClient(base_url=base, headers=auth(api_token(csms, "admin"))) as admin:
        await st.wait_accepted()
        r = await admin.post("/api/stations/CS1/logs", json={"logType": "DiagnosticsLog"})
        assert r.json()["response"]["status"] == "Accepted", r.text
        rid = r.json()["logRequest"]["requestId"]
        await until(lambda: _request(csms, rid).get("size") is not None)
        file = (await admin.get(f"/api/stations/CS1/logs/{rid}/file")).content.decode()
        assert '"chargePointModel"' in file  # the 1.6 frames as they went
        await until(lambda: [m["payload"]["status"] for m in csms.store.messages(station_id="CS1")
                             if m["action"] == "LogStatusNotification"] == ["Uploading", "Uploaded"])
