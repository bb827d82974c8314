"""Display messages at our station (O01-O06) driven by our CSMS's API over real sockets: what the station accepts
and refuses (format, priority, unknown transaction, too many), its NotifyDisplayMessages stored by the CSMS,
clearing, what a display shows now, and the messages kept across a restart from the state folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.csms import api_client, our_station, running_csms
from helpers.wait import until

from v2gstack.csms.display import op_list


def _msg(mid: int, priority: str = "InFront", fmt: str = "UTF8", **more: Any) -> dict[str, Any]:
    return {"id": mid, "priority": priority, "message": {"format": fmt, "content": f"message {mid}"}, **more}


@pytest.mark.parametrize("version", ["2.1", "2.0.1"])
async def test_display_messages_at_our_station(tmp_path: Path, version: str) -> None:
    state = tmp_path / "state"
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, api_client(csms, "operator") as api:
        async with our_station(csms, state_dir=state, versions=(version,)) as st:
            await st.wait_accepted()
            assert st.link.version == version

            async def put(m: dict[str, Any]) -> str:
                r = await api.post("/api/stations/CS1/display-messages", json=m)
                assert r.status_code == 200, r.text
                return str(r.json()["response"]["status"])

            assert await put(_msg(11)) == "Accepted"
            assert await put(_msg(12, "AlwaysFront", "ASCII")) == "Accepted"
            assert await put(_msg(13, startDateTime=later)) == "Accepted"  # valid only from tomorrow
            assert await put(_msg(14, fmt="HTML")) == "NotSupportedMessageFormat"
            assert await put(_msg(15, transactionId="no-such-tx")) == "UnknownTransaction"
            assert await put(_msg(11, "NormalCycle")) == "Accepted"  # same id: replaced
            assert sorted(st.display.messages) == [11, 12, 13]
            assert st.display.messages[11]["priority"] == "NormalCycle"
            assert [m["id"] for m in st.display.shown()] == [12, 11]  # AlwaysFront first; 13 not yet
            st.model.put("DisplayMessageCtrlr", "DisplayMessages", "3")
            assert await put(_msg(16)) == "Rejected"  # full
            # GetDisplayMessages: the station reports what it keeps; the CSMS stores the report
            r = await api.post("/api/stations/CS1/display-messages/query", json={"priority": "AlwaysFront"})
            assert r.json()["response"]["status"] == "Accepted"

            def reported() -> dict[int, Any]:
                return {m["id"]: m.get("reported") for m in csms.store.run(op_list, "CS1", False)}

            await until(lambda: bool(reported().get(12)))
            shown = {m["id"]: m.get("reported") for m in (await api.get("/api/stations/CS1/display-messages")).json()}
            assert shown[12]["priority"] == "AlwaysFront" and not shown.get(11)
            r = await api.post("/api/stations/CS1/display-messages/query", json={"id": [99]})
            assert r.json()["response"]["status"] == "Unknown"
            # cleared at the station and at the CSMS
            r = await api.delete("/api/stations/CS1/display-messages/11")
            assert r.json()["response"]["status"] == "Accepted" and r.json()["message"]["status"] == "Cleared"
            assert 11 not in st.display.messages
            r = await api.delete("/api/stations/CS1/display-messages/11")
            assert r.json()["response"]["status"] == "Unknown"
        async with our_station(csms, state_dir=state) as again:  # kept in the state folder
            assert sorted(again.display.messages) == [12, 13]
