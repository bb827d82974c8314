"""Our charging station against a CSMS made with the `ocpp` package, over real sockets on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from helpers.station import BAD_TOKEN, GOOD_TOKEN, CsmsServer, energy_of, running_station
from helpers.wait import until
from ocpp.v201 import call

pytestmark = pytest.mark.timeout(60)


def seconds(ts: str) -> float:
    """RFC 3339 timestamp -> epoch seconds."""
    return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def tx_events(csms: CsmsServer, tx_id: str | None = None) -> list[dict[str, Any]]:
    """TransactionEvents the CSMS received (of one transaction)."""
    return [e for e in csms.messages("TransactionEvent")
            if tx_id is None or e["transactionInfo"]["transactionId"] == tx_id]


async def test_boot_accepted_heartbeat_and_statuses() -> None:
    """Accepted -> heartbeat interval from the CSMS, a StatusNotification per connector, periodic heartbeats."""
    async with CsmsServer(interval=1).running() as csms, running_station(csms, evses=2) as st:
        await st.wait_accepted()
        await until(lambda: len(csms.messages("Heartbeat")) >= 2)
        boot = csms.messages("BootNotification")
        assert boot[0]["reason"] == "PowerUp" and boot[0]["chargingStation"]["model"] == "v2gstack-sim"
        assert st.model.value("OCPPCommCtrlr", "HeartbeatInterval") == "1"
        statuses = csms.messages("StatusNotification")
        assert sorted((s["evseId"], s["connectorStatus"]) for s in statuses[:2]) == [(1, "Available"),
                                                                                      (2, "Available")]


async def test_boot_pending_then_accepted() -> None:
    """Pending: configuration requests are served, others refused; BootNotification again until Accepted."""
    async with CsmsServer(boot_statuses=["Pending", "Pending", "Accepted"]).running() as csms, \
            running_station(csms, boot_retry_s=10_000) as st:
        await until(lambda: st.link.registration == "Pending" and "CS1" in csms.points)
        got = await csms.call("CS1", call.GetVariables(get_variable_data=[
            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]))
        assert got.get_variable_result[0]["attribute_status"] == "Accepted"
        with pytest.raises(Exception, match="SecurityError"):
            await csms.call("CS1", call.RequestStartTransaction(id_token=GOOD_TOKEN | {"id_token": "X"},
                                                                remote_start_id=1))
        assert csms.messages("StatusNotification") == []  # nothing but BootNotification while Pending
        trig = await csms.call("CS1", call.TriggerMessage(requested_message="BootNotification"))
        assert trig.status == "Accepted"
        await until(lambda: len(csms.messages("BootNotification")) == 2)
        trig = await csms.call("CS1", call.TriggerMessage(requested_message="BootNotification"))
        await st.wait_accepted()
        await until(lambda: len(csms.messages("StatusNotification")) == 1)
        assert [a for a, _ in csms.received][:3] == ["BootNotification"] * 3


async def test_boot_rejected_retries_later() -> None:
    """Rejected: the station refuses CSMS requests and sends BootNotification again after the wait."""
    async with CsmsServer(boot_statuses=["Rejected", "Accepted"]).running() as csms, \
            running_station(csms, boot_retry_s=25) as st:
        await until(lambda: st.link.registration == "Rejected" and "CS1" in csms.points)
        with pytest.raises(Exception, match="SecurityError"):
            await csms.call("CS1", call.GetVariables(get_variable_data=[
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]))
        await st.wait_accepted()
        await until(lambda: len(csms.received) == 3)
        assert [a for a, _ in csms.received] == ["BootNotification", "BootNotification", "StatusNotification"]


async def test_authorize_and_full_transaction_with_consistent_energy() -> None:
    """Plug in, Authorize, charge with periodic meter values, stop by token, unplug: the whole lifecycle."""
    async with CsmsServer().running() as csms, running_station(csms) as st:
        await st.wait_accepted()
        st.set_ev(1, power_w=7200.0, soc=40.0, battery_wh=60000.0)
        await st.plug_in(1)
        assert (await st.present_token(1, BAD_TOKEN))["status"] == "Invalid"
        assert (await st.present_token(1, GOOD_TOKEN))["status"] == "Accepted"
        tx_id = st.evses[1].tx.id  # type: ignore[union-attr]
        await until(lambda: len(tx_events(csms, tx_id)) >= 8)
        await st.present_token(1, GOOD_TOKEN)
        await st.unplug(1)
        await st.wait_queue_empty()
    events = tx_events(csms, tx_id)
    assert [e["seqNo"] for e in events] == list(range(len(events)))
    assert events[0]["eventType"] == "Started" and events[0]["triggerReason"] == "CablePluggedIn"
    assert events[0]["transactionInfo"]["chargingState"] == "EVConnected"
    triggers = [e["triggerReason"] for e in events]
    auth = events[triggers.index("Authorized")]
    assert auth["idToken"] == GOOD_TOKEN and sum("idToken" in e for e in events) == 1
    charging = events[triggers.index("ChargingStateChanged")]
    assert charging["transactionInfo"]["chargingState"] == "Charging"
    assert triggers.index("ChargingStateChanged") > triggers.index("Authorized")
    assert {e["eventType"] for e in events[1:-1]} == {"Updated"}
    assert "MeterValuePeriodic" in {e["triggerReason"] for e in events}
    end = events[-1]
    assert end["eventType"] == "Ended" and end["triggerReason"] == "StopAuthorized"
    assert end["transactionInfo"]["stoppedReason"] == "Local"
    assert not any(e.get("offline") for e in events)
    assert csms.messages("Authorize") == [{"idToken": BAD_TOKEN}, {"idToken": GOOD_TOKEN}]
    samples = [s for e in events for s in energy_of(e)]
    assert samples[-1][1] > samples[0][1]
    for (t0, e0, p0), (t1, e1, _) in itertools.pairwise(samples):
        assert e1 >= e0  # the import register never goes back
        expected = p0 * (seconds(t1) - seconds(t0)) / 3600.0  # power held between samples x elapsed time
        assert e1 - e0 == pytest.approx(expected, abs=0.5 + 0.02 * expected)
    soc = [v["value"] for e in events for mv in e.get("meterValue", []) for v in mv["sampledValue"]
           if v["measurand"] == "SoC"]
    assert soc[-1] > soc[0] == 40.0
    statuses = [s["connectorStatus"] for s in csms.messages("StatusNotification")]
    assert statuses == ["Available", "Occupied", "Available"]


async def test_local_list_and_cache_offline_authorization() -> None:
    """The cache remembers the CSMS's answer; LocalPreAuthorize then skips Authorize; the local list decides too."""
    async with CsmsServer().running() as csms, running_station(csms) as st:
        await st.wait_accepted()
        assert (await st.authorization.authorize_token(GOOD_TOKEN))["status"] == "Accepted"
        st.model.put("AuthCtrlr", "LocalPreAuthorize", "true")
        assert (await st.authorization.authorize_token(GOOD_TOKEN))["status"] == "Accepted"
        assert len(csms.messages("Authorize")) == 1
        answer = await csms.call("CS1", call.SendLocalList(version_number=3, update_type="Full",
                                                           local_authorization_list=[
                                                               {"id_token": {"id_token": "LOCAL1", "type": "Local"},
                                                                "id_token_info": {"status": "Accepted"}}]))
        assert answer.status == "Accepted"
        assert (await csms.call("CS1", call.GetLocalListVersion())).version_number == 3
        assert (await st.authorization.authorize_token({"idToken": "LOCAL1", "type": "Local"}))["status"] == "Accepted"
        assert (await csms.call("CS1", call.ClearCache())).status == "Accepted"
        assert (await st.authorization.authorize_token(GOOD_TOKEN))["status"] == "Accepted"
        assert len(csms.messages("Authorize")) == 2


async def test_remote_start_and_remote_stop() -> None:
    """RequestStartTransaction authorizes and starts; RequestStopTransaction ends it with stoppedReason Remote."""
    async with CsmsServer().running() as csms, running_station(csms) as st:
        await st.wait_accepted()
        st.set_ev(1, power_w=11000.0)
        answer = await csms.call("CS1", call.RequestStartTransaction(
            id_token={"id_token": "04A1B2C3", "type": "ISO14443"}, remote_start_id=42, evse_id=1))
        assert answer.status == "Accepted"
        await until(lambda: len(tx_events(csms)) >= 1)
        started = tx_events(csms)[0]
        assert started["triggerReason"] == "RemoteStart" and started["transactionInfo"]["remoteStartId"] == 42
        await st.plug_in(1)
        await until(lambda: any(e["transactionInfo"].get("chargingState") == "Charging" for e in tx_events(csms)))
        tx_id = started["transactionInfo"]["transactionId"]
        assert (await csms.call("CS1", call.RequestStopTransaction(transaction_id="nope"))).status == "Rejected"
        assert (await csms.call("CS1", call.RequestStopTransaction(transaction_id=tx_id))).status == "Accepted"
        await until(lambda: tx_events(csms)[-1]["eventType"] == "Ended")
        ended = tx_events(csms)[-1]
        assert ended["triggerReason"] == "RemoteStop" and ended["transactionInfo"]["stoppedReason"] == "Remote"
        assert [e["seqNo"] for e in tx_events(csms)] == list(range(len(tx_events(csms))))


async def test_reset_ends_transaction_and_boots_again() -> None:
    """Reset(OnIdle) while charging is Scheduled; Reset(Immediate) ends it and re-boots with RemoteReset."""
    async with CsmsServer().running() as csms, running_station(csms) as st:
        await st.wait_accepted()
        st.set_ev(1, power_w=3600.0)
        await st.plug_in(1)
        await st.present_token(1, GOOD_TOKEN)
        assert (await csms.call("CS1", call.Reset(type="OnIdle"))).status == "Scheduled"
        assert (await csms.call("CS1", call.Reset(type="Immediate"))).status == "Accepted"
        await until(lambda: len(csms.messages("BootNotification")) == 2)
        await st.wait_accepted()
        assert csms.messages("BootNotification")[1]["reason"] == "RemoteReset"
        await st.wait_queue_empty()
        ended = tx_events(csms)[-1]
        assert ended["eventType"] == "Ended" and ended["transactionInfo"]["stoppedReason"] == "ImmediateReset"
        assert ended["triggerReason"] == "ResetCommand"


async def test_set_get_variables_and_base_report() -> None:
    """SetVariables/GetVariables with each status; GetBaseReport -> NotifyReport parts; write-only password."""
    async with CsmsServer().running() as csms, running_station(csms) as st:
        await st.wait_accepted()
        hb = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
        res = await csms.call("CS1", call.SetVariables(set_variable_data=[
            hb | {"attribute_value": "77"},
            hb | {"attribute_value": "abc"},
            {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "Identity"}, "attribute_value": "x"},
            {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"},
             "attribute_value": "0123456789abcdef-new"},
            {"component": {"name": "NoSuchCtrlr"}, "variable": {"name": "X"}, "attribute_value": "1"},
            {"component": {"name": "TxCtrlr"}, "variable": {"name": "NoSuch"}, "attribute_value": "1"},
            hb | {"attribute_value": "5", "attribute_type": "Target"},
        ]))
        assert [r["attribute_status"] for r in res.set_variable_result] == [
            "Accepted", "Rejected", "Rejected", "Accepted", "UnknownComponent", "UnknownVariable",
            "NotSupportedAttributeType"]
        assert st.link.client.password == "0123456789abcdef-new"
        got = await csms.call("CS1", call.GetVariables(get_variable_data=[
            hb, {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}},
            {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "AvailabilityState"}},
            {"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStartPoint"}}]))
        r = got.get_variable_result
        assert (r[0]["attribute_status"], r[0]["attribute_value"]) == ("Accepted", "77")
        assert r[1]["attribute_status"] == "Rejected" and "attribute_value" not in r[1]
        assert r[2]["attribute_value"] == "Available" and r[3]["attribute_value"] == "EVConnected,Authorized"
        assert (await csms.call("CS1", call.GetBaseReport(request_id=9, report_base="FullInventory"))).status \
            == "Accepted"
        await until(lambda: bool(csms.messages("NotifyReport")) and not csms.messages("NotifyReport")[-1]["tbc"])
        parts = csms.messages("NotifyReport")
        assert [p["seqNo"] for p in parts] == list(range(len(parts))) and len(parts) > 1
        items = [d for p in parts for d in p["reportData"]]
        names = {(d["component"]["name"], d["variable"]["name"]) for d in items}
        for needed in [("OCPPCommCtrlr", "HeartbeatInterval"), ("SampledDataCtrlr", "TxUpdatedInterval"),
                       ("AuthCacheCtrlr", "Enabled"), ("LocalAuthListCtrlr", "Enabled"), ("TxCtrlr", "TxStopPoint"),
                       ("SecurityCtrlr", "SecurityProfile"), ("EVSE", "AvailabilityState")]:
            assert needed in names
        pw = next(d for d in items if d["variable"]["name"] == "BasicAuthPassword")
        assert "value" not in pw["variableAttribute"][0] and pw["variableAttribute"][0]["mutability"] == "WriteOnly"


async def test_basic_auth_password_is_checked_and_kept_owner_only(tmp_path: Path) -> None:
    """SecurityCtrlr.BasicAuthPassword takes a passwordString of 16 to 40 printable characters only (A00.FR.205):
    "abc" (the field finding), 41 characters and a control character are Rejected with reasonCode InvalidValue and
    change nothing; a good one is Accepted, used for the next connection, and stored in a device model file that is
    owner-only (0600) although the process umask would make new files world-readable."""
    pw = {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "BasicAuthPassword"}}
    state = tmp_path / "state"
    old_umask = os.umask(0o022)
    try:
        async with CsmsServer().running() as csms, running_station(csms, state_dir=state) as st:
            await st.wait_accepted()
            res = await csms.call("CS1", call.SetVariables(set_variable_data=[
                pw | {"attribute_value": "abc"},
                pw | {"attribute_value": "x" * 41},
                pw | {"attribute_value": "0123456789abcdef\n"},
            ]))
            for r in res.set_variable_result:
                assert r["attribute_status"] == "Rejected"
                assert r["attribute_status_info"]["reason_code"] == "InvalidValue"
            assert st.link.client.password is None and st.model.value("SecurityCtrlr", "BasicAuthPassword") == ""
            good = "Zq7*v-2Lm:p+Rt|9@x.k_W=3"
            res = await csms.call("CS1", call.SetVariables(set_variable_data=[pw | {"attribute_value": good}]))
            assert res.set_variable_result[0]["attribute_status"] == "Accepted"
            assert st.link.client.password == good
    finally:
        os.umask(old_umask)
    stored = state / "device_model.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700  # the station created the state folder
    values = {(c, n): v for c, _evse, n, _instance, v in json.loads(stored.read_text())}
    assert values[("SecurityCtrlr", "BasicAuthPassword")] == good
    assert not [f for f in state.iterdir() if f.name.endswith(".tmp")]


async def test_trigger_availability_unlock_and_data_transfer() -> None:
    """TriggerMessage, ChangeAvailability (status Unavailable), UnlockConnector, DataTransfer."""
    async with CsmsServer().running() as csms, running_station(csms) as st:
        await st.wait_accepted()
        assert (await csms.call("CS1", call.TriggerMessage(requested_message="Heartbeat"))).status == "Accepted"
        await until(lambda: len(csms.messages("Heartbeat")) == 1)
        assert (await csms.call("CS1", call.TriggerMessage(requested_message="MeterValues",
                                                           evse={"id": 1}))).status == "Accepted"
        await until(lambda: len(csms.messages("MeterValues")) == 1)
        assert (await csms.call("CS1", call.TriggerMessage(requested_message="TransactionEvent"))).status \
            == "Rejected"
        assert (await csms.call("CS1", call.TriggerMessage(requested_message="BootNotification"))).status \
            == "Rejected"
        assert (await csms.call("CS1", call.TriggerMessage(requested_message="SignV2GCertificate"))).status \
            == "NotImplemented"
        n = len(csms.messages("StatusNotification"))
        assert (await csms.call("CS1", call.TriggerMessage(requested_message="StatusNotification",
                                                           evse={"id": 1, "connector_id": 1}))).status == "Accepted"
        await until(lambda: len(csms.messages("StatusNotification")) == n + 1)
        assert (await csms.call("CS1", call.ChangeAvailability(operational_status="Inoperative",
                                                               evse={"id": 1}))).status == "Accepted"
        await until(lambda: csms.messages("StatusNotification")[-1]["connectorStatus"] == "Unavailable")
        assert (await csms.call("CS1", call.UnlockConnector(evse_id=1, connector_id=1))).status == "Unlocked"
        assert (await csms.call("CS1", call.UnlockConnector(evse_id=5, connector_id=1))).status == "UnknownConnector"
        st.link.data_transfer["acme"] = lambda p: {"status": "Accepted", "data": p.get("data")}
        dt_ = await csms.call("CS1", call.DataTransfer(vendor_id="acme", data="ping"))
        assert (dt_.status, dt_.data) == ("Accepted", "ping")
        assert (await csms.call("CS1", call.DataTransfer(vendor_id="other"))).status == "UnknownVendorId"


async def test_ev_connection_timeout_ends_an_unplugged_authorization() -> None:
    """Authorized but no EV within EVConnectionTimeOut: the transaction ends with Timeout / EVConnectTimeout."""
    async with CsmsServer().running() as csms, running_station(csms) as st:
        await st.wait_accepted()
        st.model.put("TxCtrlr", "EVConnectionTimeOut", "3")
        await st.present_token(1, GOOD_TOKEN)
        await until(lambda: bool(tx_events(csms)) and tx_events(csms)[-1]["eventType"] == "Ended")
        ended = tx_events(csms)[-1]
        assert ended["triggerReason"] == "EVConnectTimeout" and ended["transactionInfo"]["stoppedReason"] == "Timeout"
        assert not st.evses[1].authorized


async def test_fault_ends_the_transaction_and_reports_faulted() -> None:
    """A hardware fault: Ended (AbnormalCondition / the fault's reason), status Faulted, then Available again."""
    async with CsmsServer().running() as csms, running_station(csms) as st:
        await st.wait_accepted()
        st.set_ev(1, power_w=7000.0)
        await st.plug_in(1)
        await st.present_token(1, GOOD_TOKEN)
        await st.set_fault(1, True, "GroundFault")
        await st.unplug(1)
        await st.set_fault(1, False)
        await st.wait_queue_empty()
        await until(lambda: csms.messages("StatusNotification")[-1]["connectorStatus"] == "Available")
    ended = tx_events(csms)[-1]
    assert ended["triggerReason"] == "AbnormalCondition" and ended["transactionInfo"]["stoppedReason"] == "GroundFault"
    assert [s["connectorStatus"] for s in csms.messages("StatusNotification")] == [
        "Available", "Occupied", "Faulted", "Available"]


async def test_tx_stop_point_ev_connected_only() -> None:
    """TxStopPoint=EVConnected: the token stops the energy (Updated StopAuthorized); unplugging ends it."""
    async with CsmsServer().running() as csms, running_station(csms) as st:
        await st.wait_accepted()
        st.model.put("TxCtrlr", "TxStopPoint", "EVConnected")
        st.set_ev(1, power_w=7000.0)
        await st.plug_in(1)
        await st.present_token(1, GOOD_TOKEN)
        await st.present_token(1, GOOD_TOKEN)
        assert st.evses[1].tx is not None and st.hardware(1).meter().power_w == 0
        await st.unplug(1)
        await st.wait_queue_empty()
    events = tx_events(csms)
    stop = next(e for e in events if e["triggerReason"] == "StopAuthorized")
    assert stop["eventType"] == "Updated"
    assert events[-1]["eventType"] == "Ended" and events[-1]["transactionInfo"]["stoppedReason"] == "EVDisconnected"
