"""Our station speaking OCPP 1.6J (station/ocpp16.py maps its 2.0.1 services onto 1.6 at the connection): against
our CSMS, and against the `ocpp` package's 1.6 central system."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from helpers.central16 import CentralSystem16
from helpers.csms import api_client, our_station, running_csms
from helpers.node_peer import node_peers_dir, script
from helpers.station import GOOD_TOKEN, running_station
from helpers.wait import until
from ocpp.v16 import call

pytestmark = pytest.mark.timeout(60)


async def test_our_16_station_against_our_csms(tmp_path: Path) -> None:
    """Boot, statuses, authorize, a transaction with the CSMS's integer id and meter values, the ISO facts over
    DataTransfer, a 1.6 charging profile limiting the EVSE, configuration keys, and a remote stop."""
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}") as csms, \
            our_station(csms, versions=("1.6",), evses=2) as st, api_client(csms) as api:
        await st.wait_accepted()
        await until(lambda: (csms.store.station("CS1").connector_status or {}).get("2/1") == "Available")
        assert csms.store.station("CS1").ocpp_version == "1.6"
        st.set_ev(1, power_w=7000.0, soc=30.0, battery_wh=50000.0)
        await st.plug_in(1)
        assert (await st.present_token(1, GOOD_TOKEN))["status"] == "Accepted"
        await until(lambda: csms.active_transaction("CS1", 1) is not None)
        tx16 = csms.active_transaction("CS1", 1)
        assert tx16 is not None and tx16.isdigit()
        st.set_transaction_data(1, {"vendorId": "org.v2gstack.iso15118", "sessionId": "0A0B0C0D0E0F0102",
                                    "evccId": "00:11:22:33:44:55", "protocol": "urn:iso:15118:2:2013:MsgDef"})
        await until(lambda: len(csms.store.transaction("CS1", tx16)["meterValues"]) >= 4)
        await until(lambda: csms.store.transaction("CS1", tx16)["iso15118"].get("sessionId") is not None)
        r = await api.post("/api/stations/CS1/set-charging-profile", json={"connectorId": 1, "csChargingProfiles": {
            "chargingProfileId": 9, "stackLevel": 1, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative", "transactionId": int(tx16), "chargingSchedule": {
                "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 3680.0}]}}})
        assert r.json()["response"] == {"status": "Accepted"}
        assert st.limit_w(1) == 3680.0
        r = await api.post("/api/stations/CS1/get-composite-schedule",
                           json={"connectorId": 1, "duration": 600, "chargingRateUnit": "W"})
        composite = r.json()["response"]
        assert composite["status"] == "Accepted"
        assert composite["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] == 3680.0
        note_keys = ["ISO15118PnCEnabled", "CentralContractValidationAllowed", "ContractValidationOffline",
                     "CertSigningWaitMinimum", "CertSigningRepeatTimes"]  # the PnC application note's keys
        r = await api.post("/api/stations/CS1/get-configuration", json={"key": ["HeartbeatInterval", *note_keys,
                                                                                "Nope"]})
        conf = r.json()["response"]
        assert [k["key"] for k in conf["configurationKey"]] == ["HeartbeatInterval", *note_keys]
        assert conf["unknownKey"] == ["Nope"]
        r = await api.post("/api/stations/CS1/change-configuration", json={"key": "ISO15118PnCEnabled",
                                                                           "value": "true"})
        assert r.json()["response"] == {"status": "Accepted"} and st.model.bool("ISO15118Ctrlr", "PnCEnabled")
        r = await api.post("/api/stations/CS1/request-stop", json={"transactionId": int(tx16)})
        assert r.json()["response"] == {"status": "Accepted"}
        await until(lambda: csms.store.transaction("CS1", tx16)["state"] == "Ended")
        await st.unplug(1)
        await st.wait_queue_empty()
    record = csms.store.transaction("CS1", tx16)
    assert record["ocppVersion"] == "1.6" and record["stoppedReason"] == "Remote"
    assert record["idToken"] == GOOD_TOKEN["idToken"]
    assert record["iso15118"]["evccId"] == "00:11:22:33:44:55"
    assert record["energyImportWh"] is not None and record["energyImportWh"] > 0


async def test_our_16_station_against_the_ocpp_package_central_system() -> None:
    """The `ocpp` package's 1.6 central system: boot, statuses, Authorize, Start/Stop with its transaction id,
    MeterValues of that id; its RemoteStartTransaction starts charging and RemoteStopTransaction ends it."""
    central = CentralSystem16()
    async with central.running(), running_station(central, versions=("1.6",), password=None) as st:
        await st.wait_accepted()
        st.set_ev(1, power_w=7000.0, soc=30.0, battery_wh=50000.0)
        await st.plug_in(1)
        started = await central.call("CS1", call.RemoteStartTransaction(id_tag="04A1B2C3", connector_id=1))
        assert started.status == "Accepted"
        await until(lambda: len(central.messages("StartTransaction")) == 1)
        await until(lambda: len(central.messages("MeterValues")) >= 2)
        [start] = central.messages("StartTransaction")
        assert start["idTag"] == "04A1B2C3" and start["connectorId"] == 1
        assert {m["transactionId"] for m in central.messages("MeterValues")} == {100}
        profile = await central.call("CS1", call.SetChargingProfile(connector_id=0, cs_charging_profiles={
            "charging_profile_id": 1, "stack_level": 0, "charging_profile_purpose": "ChargePointMaxProfile",
            "charging_profile_kind": "Absolute", "charging_schedule": {
                "charging_rate_unit": "A", "start_schedule": "2026-01-01T00:00:00Z",
                "charging_schedule_period": [{"start_period": 0, "limit": 10.0}]}}))
        assert profile.status == "Accepted"
        assert st.limit_w(1) is not None and st.limit_w(1) < 7000.0
        stopped = await central.call("CS1", call.RemoteStopTransaction(transaction_id=100))
        assert stopped.status == "Accepted"
        assert (await central.call("CS1", call.RemoteStopTransaction(transaction_id=7))).status == "Rejected"
        await until(lambda: len(central.messages("StopTransaction")) == 1)
        unknown = await central.call("CS1", call.GetConfiguration(key=["NoSuchKey"]))
        assert unknown.unknown_key == ["NoSuchKey"]
    [stop] = central.messages("StopTransaction")
    assert stop["transactionId"] == 100 and stop["reason"] == "Remote" and stop["meterStop"] >= start["meterStart"]
    statuses = [(s["connectorId"], s["status"]) for s in central.messages("StatusNotification")]
    assert statuses == [(1, "Available"), (1, "Preparing"), (1, "Charging"), (1, "Finishing")]


async def test_our_16_station_against_ocpp_rpc_central_system() -> None:
    """ocpp-rpc (npm) in its server role, strict mode, ocpp1.6: our station boots, charges under its transaction id,
    and answers every CSMS-initiated command it serves; each message passes ocpp-rpc's own schema checks."""
    peers = node_peers_dir()
    if peers is None:
        pytest.skip("node/npm not available or the npm registry is unreachable: cannot install ocpp-rpc")
    proc = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node", str(script("ocpp_rpc_central16.js")), cwd=peers,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_PATH": str(peers / "node_modules")})
    steps: list[dict[str, Any]] = []
    try:
        assert proc.stdout is not None and proc.stderr is not None

        async def step() -> dict[str, Any]:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)  # type: ignore[union-attr]
            assert line, f"ocpp-rpc ended early: {steps} {(await proc.stderr.read()).decode()}"  # type: ignore[union-attr]
            steps.append(json.loads(line))
            assert steps[-1]["step"] != "error", steps[-1]
            return steps[-1]

        listening = await step()
        central = type("Central", (), {"url": f"ws://127.0.0.1:{listening['data']['port']}/ocpp"})()
        async with running_station(central, versions=("1.6",), password=None, evses=2) as st:
            await st.wait_accepted()
            st.set_ev(1, power_w=7000.0, soc=30.0, battery_wh=50000.0)
            await st.plug_in(1)
            assert (await st.present_token(1, GOOD_TOKEN))["status"] == "Accepted"
            while (await step())["step"] != "done":
                pass
    finally:
        if proc.returncode is None:
            proc.kill()  # the server runs until stopped
        await proc.wait()
    sent = {s["step"][5:]: s["data"] for s in steps if s["step"].startswith("sent:")}
    assert sent["GetConfiguration"]["response"]["unknownKey"] == ["NoSuchKey"]
    assert sent["ChangeConfiguration"]["response"] == {"status": "Accepted"}
    assert sent["SetChargingProfile"]["response"] == {"status": "Accepted"}
    assert sent["GetCompositeSchedule"]["response"]["status"] == "Accepted"
    assert sent["DataTransfer"]["response"]["status"] == "UnknownVendorId"
    assert sent["RemoteStopTransaction"]["response"] == {"status": "Accepted"}  # the last: the real transaction
    [start] = [s["data"] for s in steps if s["step"] == "StartTransaction"]
    [stop] = [s["data"] for s in steps if s["step"] == "StopTransaction"]
    assert stop["transactionId"] == 500 and stop["reason"] == "Remote" and start["idTag"] == GOOD_TOKEN["idToken"]
    assert sum(s["step"].startswith("sent:") for s in steps) == 20  # every command answered
    assert sent["GetLocalListVersion"]["response"] == {"listVersion": 2}  # the list SendLocalList installed
    assert sent["InstallCertificate"]["response"] == {"status": "Rejected"}  # not a certificate
    assert sent["UnlockConnector"]["response"] == {"status": "Unlocked"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_offline_transaction_reaches_a_16_central_system_later(tmp_path: Path) -> None:
    """A transaction authorized and ended while the central system is unreachable is queued as 2.0.1 events and
    delivered in order once it is up: StartTransaction, MeterValues with the id it assigns, StopTransaction."""
    central = CentralSystem16(port=_free_port())
    async with running_station(central, versions=("1.6",), password=None, state_dir=tmp_path / "st") as st:
        st.model.put("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "true")
        st.set_ev(1, power_w=7000.0, soc=30.0, battery_wh=50000.0)
        await st.plug_in(1)
        assert (await st.present_token(1, GOOD_TOKEN))["status"] == "Accepted"
        await until(lambda: len(st.queue) >= 4)
        await st.present_token(1, GOOD_TOKEN)
        await st.unplug(1)
        async with central.running():
            await st.wait_accepted()
            await st.wait_queue_empty()
    actions = [a for a, _ in central.received if a in ("StartTransaction", "MeterValues", "StopTransaction")]
    assert actions[0] == "StartTransaction" and actions[-1] == "StopTransaction" and "MeterValues" in actions
    assert {m["transactionId"] for m in central.messages("MeterValues")} == {100}
    [start], [stop] = central.messages("StartTransaction"), central.messages("StopTransaction")
    assert stop["transactionId"] == 100 and stop["meterStop"] > start["meterStart"]


async def test_transaction_ids_survive_a_restart(tmp_path: Path) -> None:
    """The station stops during a 1.6 transaction (as after a power loss); the next run ends it with PowerLoss under
    the transaction id the central system gave before the restart."""
    central = CentralSystem16()
    async with central.running():
        async with running_station(central, versions=("1.6",), password=None, state_dir=tmp_path / "st",
                                   tx_interval=30) as st:
            await st.wait_accepted()
            st.set_ev(1, power_w=7000.0, soc=30.0, battery_wh=50000.0)
            await st.plug_in(1)
            assert (await st.present_token(1, GOOD_TOKEN))["status"] == "Accepted"
            await until(lambda: len(central.messages("StartTransaction")) == 1)
            await st.wait_queue_empty()
        async with running_station(central, versions=("1.6",), password=None, state_dir=tmp_path / "st",
                                   tx_interval=30) as st:
            await st.wait_accepted()
            await st.wait_queue_empty()
    [stop] = central.messages("StopTransaction")
    assert stop["transactionId"] == 100 and stop["reason"] == "PowerLoss"
