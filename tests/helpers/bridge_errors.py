"""Checks of the ISO 15118 -> OCPP error map at a bridged station (helpers.bridge's Rig): what reached the CSMS
(NotifyEvent, SecurityEventNotification, StatusNotification Faulted, the transaction's stoppedReason and
triggerReason) and the session timelines."""

from __future__ import annotations

import json
from typing import Any

from helpers.bridge import Rig
from helpers.wait import until
from v2gstack.trace.error_map import FAILURES, FailureKind


def sent(rig: Rig, action: str) -> list[dict[str, Any]]:
    """The payloads of the CALLs of `action` the CSMS logged."""
    return [m["payload"] for m in rig.csms.store.messages(station_id="CS1") if m["action"] == action]


def events(rig: Rig) -> list[dict[str, Any]]:
    """Every NotifyEvent eventData the CSMS got."""
    return [d for p in sent(rig, "NotifyEvent") for d in p["eventData"]]


def connector_status(rig: Rig) -> str | None:
    """The connector's last status at the CSMS."""
    station = rig.csms.store.station("CS1")
    return None if station is None else (station.connector_status or {}).get("1/1")


def timeline_errors(rig: Rig) -> list[str]:
    """The error records of every session timeline."""
    out = []
    for path in rig.trace_dir.glob("*.jsonl"):
        out += [r["what"] for r in map(json.loads, path.read_text().splitlines()) if r["kind"] == "error"]
    return out


async def reported(rig: Rig, kind: FailureKind, tech_code: str, *, transaction: bool = True) -> None:
    """The OCPP reports the error map names for `kind` reached the CSMS, and the timeline has the error."""
    f = FAILURES[kind]
    if f.notify:
        await until(lambda: any(d["techCode"] == tech_code for d in events(rig)))
        [data] = [d for d in events(rig) if d["techCode"] == tech_code]
        assert data["component"] == {"name": "ConnectedEV", "evse": {"id": 1}}
        assert (data["variable"], data["trigger"], data["actualValue"]) == ({"name": "Problem"}, "Alerting", "true")
    if f.security_event:
        await until(lambda: f.security_event in [p["type"] for p in sent(rig, "SecurityEventNotification")])
    if transaction:
        await until(lambda: bool(rig.csms.store.transactions("CS1"))
                    and rig.csms.store.transactions("CS1")[0]["state"] == "Ended")
        [tx] = rig.csms.store.transactions("CS1")
        full = rig.csms.store.transaction("CS1", tx["transactionId"])
        assert (full["stoppedReason"], full["events"][-1]["triggerReason"]) == (f.stopped_reason, f.trigger_reason)
        if f.notify:
            assert data["transactionId"] == tx["transactionId"]
    else:
        assert rig.csms.store.transactions("CS1") == []
    if f.faulted:  # the CSMS keeps each connector's last StatusNotification
        await until(lambda: connector_status(rig) == "Faulted")
    else:
        assert connector_status(rig) != "Faulted"
    if f.notify:
        assert kind in timeline_errors(rig)
