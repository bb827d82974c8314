"""The station's side of SLAC: a failed matching step reaches the CSMS through the error map (NotifyEvent
ConnectedEV/Problem, techCode = the step, techInfo = the car and the timer), lands in a timeline, and is counted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.bridge import bridged
from helpers.wait import until

from v2gstack.slac.outputs import Failed, PilotRequest
from v2gstack.station.settings import Iso15118
from v2gstack.trace.error_map import FailureKind

pytestmark = pytest.mark.timeout(120)


async def test_slac_failure_is_reported_through_the_error_map_and_counted(tmp_path: Path) -> None:
    async with bridged(tmp_path, evses=1) as rig:
        bridge = rig.bridges[0]
        ev = bytes.fromhex("0a1b2c3d4e5f")
        bridge.slac_output(Failed("CM_SLAC_MATCH.REQ", "TT_EVSE_match_session expired", ev))
        bridge.slac_output(Failed("CM_SLAC_PARM.REQ", "TT_EVSE_SLAC_init expired", final=True))
        bridge.slac_output(PilotRequest("E"))  # no pilot hook behind the simulated hardware: ignored

        def events() -> list[dict]:
            return [d for m in rig.csms.store.messages(station_id="CS1") if m["action"] == "NotifyEvent"
                    for d in m["payload"]["eventData"]]

        await until(lambda: len(events()) == 2)
        match, init = sorted(events(), key=lambda d: d["techCode"])
        assert match["techCode"] == "CM_SLAC_MATCH.REQ"
        assert match["techInfo"] == "EV 0a:1b:2c:3d:4e:5f: TT_EVSE_match_session expired"
        assert match["component"] == {"name": "ConnectedEV", "evse": {"id": 1}} and "transactionId" not in match
        assert init["techCode"] == "CM_SLAC_PARM.REQ" and init["techInfo"] == "EV unknown: TT_EVSE_SLAC_init expired"
        assert bridge.policy.slac_failures == {"CM_SLAC_MATCH.REQ": 1, "CM_SLAC_PARM.REQ": 1}
        errors = [json.loads(line) for path in rig.trace_dir.glob("*.jsonl") for line in path.read_text().splitlines()]
        assert sum(1 for r in errors if r["kind"] == "error" and r["what"] == FailureKind.SLAC_FAILED) == 2
        assert rig.csms.store.transactions("CS1") == []


def test_station_slac_setting_needs_interfaces() -> None:
    problems = [msg for _, msg in Iso15118(enabled=True, slac=True).check()]
    assert problems == ["SLAC needs the modems' interfaces (--secc-iface)"]
    assert not list(Iso15118(enabled=True, slac=True, interfaces=["eth1"]).check())
