"""Provisioning (B02, B06-B08) between our CSMS and our station over a real socket: a new station is Pending until
the CSMS has read its device model (GetBaseReport -> NotifyReport, stored per station), then let in; GetVariables and
SetVariables from the API never exceed the station's ItemsPerMessage/BytesPerMessage (B06.FR.05), and the local list
takes the station's own ItemsPerMessage."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.csms import api_client, our_station, running_csms
from helpers.wait import until

from v2gstack.csms.device_model import op_limit

TOKENS = [{"idToken": "AA01", "type": "ISO14443"}, {"idToken": "BB02", "type": "ISO14443"}]


def _var(name: str, component: str = "OCPPCommCtrlr", instance: str | None = None) -> dict:
    variable = {"name": name, **({"instance": instance} if instance else {})}
    return {"component": {"name": component}, "variable": variable}


async def test_pending_until_the_device_model_is_read_then_limits_kept(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", tokens=TOKENS, pending_until_reported=True,
                            pending_interval=3600) as csms, \
            api_client(csms, "admin") as admin, api_client(csms, "viewer") as viewer:
        seen: list[str] = []
        csms.listeners.append(lambda station, action, payload: seen.append(action))
        async with our_station(csms) as st:
            frames: list[list] = []
            st.link.frame_listeners.append(lambda direction, text: frames.append(json.loads(text)))
            st.model.put("DeviceDataCtrlr", "ItemsPerMessage", "2", instance="GetVariables")
            st.model.put("DeviceDataCtrlr", "BytesPerMessage", "300", instance="SetVariables")
            st.model.put("LocalAuthListCtrlr", "ItemsPerMessage", "1")
            await st.wait_accepted()  # the hour-long Pending interval is cut short by TriggerMessage
            boots = [i for i, action in enumerate(seen) if action == "BootNotification"]
            assert len(boots) >= 2 and "NotifyReport" in seen[boots[0]:boots[-1]]  # Pending, the report, then in
            assert csms.store.station("CS1").boot_status == "Accepted"
            # read again (the limits set above may have been after the first report): GetBaseReport through the API
            r = await admin.post("/api/stations/CS1/base-report", json={"reportBase": "FullInventory"})
            assert r.json()["response"]["status"] == "Accepted"
            for component, variable, instance, value in (("DeviceDataCtrlr", "ItemsPerMessage", "GetVariables", 2),
                                                         ("DeviceDataCtrlr", "BytesPerMessage", "SetVariables", 300),
                                                         ("LocalAuthListCtrlr", "ItemsPerMessage", None, 1)):
                await until(lambda c=component, v=variable, i=instance, x=value:
                            csms.store.run(op_limit, "CS1", c, v, i) == x)
            model = (await viewer.get("/api/stations/CS1/device-model?component=DeviceDataCtrlr")).json()
            limits = {(v["variable"], v["variableInstance"]): v["value"] for v in model if v["type"] == "Actual"}
            assert limits[("ItemsPerMessage", "GetVariables")] == "2"
            assert len((await viewer.get("/api/stations/CS1/device-model")).json()) > 20
            # five variables at two per message: three GetVariables, never more than two items in one
            names = ["HeartbeatInterval", "MessageTimeout", "OfflineThreshold", "RetryBackOffWaitMinimum",
                     "RetryBackOffRepeatTimes"]
            items = [_var(n, instance="Default" if n == "MessageTimeout" else None) for n in names]
            r = await admin.post("/api/stations/CS1/variables/get", json={"getVariableData": items})
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["messages"] == 3 and out["itemsPerMessage"] == 2 and len(out["getVariableResult"]) == 5
            sent = [f[3] for f in frames if f[0] == 2 and f[2] == "GetVariables"]
            assert [len(p["getVariableData"]) for p in sent] == [2, 2, 1]
            # an item that alone is larger than the station takes: refused before anything is sent
            big = {**_var("HeartbeatInterval"), "attributeValue": "9" * 400}
            r = await admin.post("/api/stations/CS1/variables/set", json={"setVariableData": [big]})
            assert r.status_code == 422 and "BytesPerMessage" in r.json()["detail"]
            assert not [f for f in frames if f[0] == 2 and f[2] == "SetVariables"]
            small = {**_var("HeartbeatInterval"), "attributeValue": "120"}
            r = await admin.post("/api/stations/CS1/variables/set", json={"setVariableData": [small, small]})
            assert r.json()["setVariableResult"][0]["attributeStatus"] == "Accepted"
            # the local list follows the station's LocalAuthListCtrlr.ItemsPerMessage (1)
            r = await admin.post("/api/stations/CS1/local-list", json={"full": True})
            assert [m["entries"] for m in r.json()["messages"]] == [1, 1]
            # the second boot of a known station is Accepted at once
            seen.clear()
        async with our_station(csms) as st2:
            await st2.wait_accepted()
            await until(lambda: "BootNotification" in seen)
            assert seen.count("BootNotification") == 1
        # refusals: a report base the schema does not know, an operator setting variables
        assert (await admin.post("/api/stations/CS1/base-report", json={"reportBase": "All"})).status_code == 422
        async with api_client(csms, "operator") as operator:
            assert (await operator.post("/api/stations/CS1/variables/set", json={"setVariableData": [small]})
                    ).status_code == 403
