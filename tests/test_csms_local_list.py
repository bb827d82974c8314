"""Local authorization lists (D01-D03) between our CSMS and our station over a real socket: Full and Differential
updates from the CSMS's token registry (split by ItemsPerMessage), the versions both sides hold, reconciliation
after the station comes back without its list, and the API's refusals."""

from __future__ import annotations

from pathlib import Path

from helpers.csms import api_client, our_station, running_csms
from helpers.wait import until

from v2gstack.csms.local_list import op_list_state
from v2gstack.csms.store import op_put_id_token

TOKENS = [{"idToken": "AA01", "type": "ISO14443"}, {"idToken": "BB02", "type": "ISO14443", "status": "Blocked"}]


async def test_full_then_differential_then_reconciled_after_reconnect(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", tokens=TOKENS) as csms, \
            api_client(csms, "admin") as admin, api_client(csms, "operator") as operator:
        async with our_station(csms) as st:
            await st.wait_accepted()
            r = await admin.post("/api/stations/CS1/local-list", json={"full": True, "itemsPerMessage": 1})
            assert r.status_code == 200, r.text
            out = r.json()
            assert [(m["versionNumber"], m["updateType"], m["entries"], m["status"]) for m in out["messages"]] == [
                (1, "Full", 1, "Accepted"), (2, "Differential", 1, "Accepted")]
            assert st.authorization.local.list_version == 2 and len(st.authorization.local.local_list) == 2
            state = (await admin.get("/api/stations/CS1/local-list")).json()
            assert state["version"] == 2 and state["entries"] == 2
            assert state["list"]["ISO14443:BB02"] == {"status": "Blocked"}
            assert state["pending"] == {"changed": [], "removed": []}
            # the registry changes: one token gone, one new; the differential update carries exactly that
            csms.store.delete_id_token("AA01", "ISO14443")
            await csms.worker.run(op_put_id_token, "CC03", "ISO14443", "Accepted", "FLEET")
            state = (await admin.get("/api/stations/CS1/local-list")).json()
            assert state["pending"] == {"changed": ["ISO14443:CC03"], "removed": ["ISO14443:AA01"]}
            r = await admin.post("/api/stations/CS1/local-list", json={})
            [message] = r.json()["messages"]
            assert (message["versionNumber"], message["updateType"], message["entries"]) == (3, "Differential", 2)
            assert st.authorization.local.list_version == 3
            assert len(st.authorization.local.local_list) == 2  # BB02 and CC03
            nothing = (await admin.post("/api/stations/CS1/local-list", json={})).json()
            assert nothing["status"] == "UpToDate" and nothing["messages"] == []
            version = (await operator.post("/api/stations/CS1/local-list/version", json={})).json()
            assert version == {"stationVersion": 3, "version": 3, "inSync": True}
        # a station that comes back without its list (version 0): after its boot the CSMS sends the whole list
        async with our_station(csms) as st2:
            await st2.wait_accepted()
            await until(lambda: st2.authorization.local.list_version == 4)
            assert len(st2.authorization.local.local_list) == 2
            await until(lambda: csms.store.run(op_list_state, "CS1")["version"] == 4)  # its answer recorded too
            state = (await admin.get("/api/stations/CS1/local-list")).json()
            assert state["version"] == 4 and state["stationVersion"] == 0 and state["lastUpdateType"] == "Full"
        # refusals: operators may not send lists, unknown stations, stations offline
        assert (await operator.post("/api/stations/CS1/local-list", json={})).status_code == 403
        assert (await admin.post("/api/stations/NOPE/local-list", json={})).status_code == 404
        r = await admin.post("/api/stations/CS1/local-list", json={"full": True})
        assert r.status_code == 409 and "not connected" in r.json()["detail"]
        assert (await admin.post("/api/stations/CS1/local-list", json={"itemsPerMessage": 0})).status_code == 422
        audit = [a["action"] for a in csms.store.audit(station_id="CS1")]
        assert "SendLocalList" in audit and "GetLocalListVersion" in audit
