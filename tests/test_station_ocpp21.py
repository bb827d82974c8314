"""Our station with our CSMS over OCPP 2.1, real sockets both ways: version negotiation, the V2X use cases Q01-Q10
the station takes part in (what it answers, and what its hardware then does: the scripted EV follows the station's
target, negative = export), the V2X validation rules with their rejections, the rules the station's device model
and its EV add, and what an ISO 15118-2 EV is refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from helpers.csms import api_client, running_csms
from helpers.v2x import MeasuredFrequency, profile, start_transaction, station21

from v2gstack.constants import ISO_FACTS_VENDOR
from v2gstack.hardware import ocmf
from v2gstack.times import rfc3339

pytestmark = pytest.mark.timeout(120)
Payload = dict[str, Any]
NOW = "2026-03-01T12:00:00Z"


def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'csms.db'}"


def calls_from(csms: Any) -> list[tuple[str, Payload]]:
    """Every CALL the CSMS gets from its stations, in order (action, payload)."""
    seen: list[tuple[str, Payload]] = []
    csms.listeners.append(lambda _sid, action, payload: seen.append((action, payload)))
    return seen


async def test_the_station_offers_21_and_201_and_runs_the_agreed_version(tmp_path: Path) -> None:
    """Offering both, our station and our CSMS agree on 2.1 (the CSMS stores it); a CSMS that speaks 2.0.1 only gets
    2.0.1 from the same station, which then answers 2.1-only actions NotImplemented and sends no 2.1 fields."""
    async with running_csms(db(tmp_path)) as csms, station21(csms) as st:
        assert st.link.version == "2.1" and csms.version_of("CS1") == "2.1"
        assert csms.store.station("CS1").ocpp_version == "2.1"
    async with running_csms(f"sqlite:///{tmp_path / 'b.db'}", allowed_versions=("2.0.1",)) as csms, \
            station21(csms) as st:
        assert st.link.version == "2.0.1" and csms.version_of("CS1") == "2.0.1"
        tx_id = await start_transaction(st)
        with pytest.raises(Exception, match=r"NotImplemented|no action"):
            await csms.call("CS1", "UpdateDynamicSchedule", {"chargingProfileId": 1, "scheduleUpdate": {}})
        await st.transactions.send_meter_values(st.evses[1])
        async with api_client(csms, "viewer") as api:
            values = (await api.get("/api/stations/CS1/meter-values")).json()
        assert "Power.Active.Setpoint" not in {v["measurand"] for v in values} and tx_id


async def test_q01_q02_v2x_authorization_and_charging_only_before_v2x(tmp_path: Path) -> None:
    """Q01/Q02: the EV's V2X charging needs reach the CSMS with their 2.1 fields; the CSMS allows DC only (charging
    only first): the station accepts, tells its renegotiation listener, and a discharging setpoint gives no export;
    allowing DC_BPT lets the EV discharge. An unknown transaction is refused (TxNotFound)."""
    async with running_csms(db(tmp_path)) as csms, station21(csms) as st:
        tx_id = await start_transaction(st)
        renegotiated: list[tuple[int, list[str]]] = []
        st.v2x.allowed_listeners.append(lambda e, modes: renegotiated.append((e, modes)))
        st.notify("NotifyEVChargingNeeds", {"evseId": 1, "timestamp": st.clock.timestamp(), "chargingNeeds": {
            "requestedEnergyTransfer": "DC_BPT", "availableEnergyTransfer": ["DC", "DC_BPT"],
            "controlMode": "DynamicControl", "mobilityNeedsMode": "EVCC_SECC",
            "v2xChargingParameters": {"maxChargePower": 11000.0, "maxDischargePower": 11000.0,
                                      "evMinV2XEnergyRequest": -5000.0, "evMaxV2XEnergyRequest": 20000.0},
            "evEnergyOffer": {"evPowerSchedule": {"timeAnchor": NOW, "evPowerScheduleEntries": [
                {"duration": 3600, "power": -7000.0}]}}}})
        async with api_client(csms, "operator") as api:
            for _ in range(200):
                needs = (await api.get("/api/stations/CS1/charging-needs")).json()
                if needs:
                    break
                await st.clock.sleep(1)
            assert needs[0]["controlMode"] == "DynamicControl" and needs[0]["transactionId"] == tx_id
            assert needs[0]["v2xChargingParameters"]["maxDischargePower"] == 11000.0
            assert needs[0]["evEnergyOffer"]["evPowerSchedule"]["evPowerScheduleEntries"][0]["power"] == -7000.0
            r = await api.post("/api/stations/CS1/notify-allowed-energy-transfer",
                               json={"transactionId": tx_id, "allowedEnergyTransfer": ["DC"]})
            assert r.json()["response"] == {"status": "Accepted"}
            assert renegotiated == [(1, ["DC"])]
            r = await api.post("/api/stations/CS1/evse/1/setpoint", json={"setpoint": -7000.0})
            assert r.json()["response"]["status"] == "Accepted"
            target = st.target(1)
            assert target.setpoint_w == 0.0 and target.export_limit_w == 0.0  # no bidirectional mode allowed yet
            assert st.hardware(1).meter().power_w == 0.0
            r = await api.post("/api/stations/CS1/notify-allowed-energy-transfer",
                               json={"transactionId": tx_id, "allowedEnergyTransfer": ["DC", "DC_BPT"]})
            assert r.json()["response"] == {"status": "Accepted"}
            assert st.target(1).setpoint_w == -7000.0 and st.hardware(1).meter().power_w == -7000.0
            r = await api.post("/api/stations/CS1/notify-allowed-energy-transfer",
                               json={"transactionId": "no-such-tx", "allowedEnergyTransfer": ["DC"]})
            assert r.json()["response"]["status"] == "Rejected"
            assert r.json()["response"]["statusInfo"]["reasonCode"] == "TxNotFound"
            tx = (await api.get(f"/api/transactions/{tx_id}")).json()
        assert tx["v2x"]["allowedEnergyTransfer"] == ["DC", "DC_BPT"]


async def test_q03_q04_q07_central_setpoints_schedules_and_dynamic_updates(tmp_path: Path) -> None:
    """Q03 a CentralSetpoint schedule, Q04 the dynamic setpoint (Dynamic TxProfile, then UpdateDynamicSchedule,
    then a PullDynamicScheduleUpdate of values the CSMS kept), Q07 CentralFrequency: the EV follows each setpoint at
    once (the meter's power is the setpoint), the TransactionEvents tell the operation mode and carry
    Power.Active.Setpoint and the export power."""
    async with running_csms(db(tmp_path)) as csms, station21(csms) as st:
        seen = calls_from(csms)
        tx_id = await start_transaction(st)
        # Q03: a schedule: discharge 6 kW now, charge 4 kW from 60 s
        sched = profile(30, [{"operationMode": "CentralSetpoint", "setpoint": -6000.0, "dischargeLimit": -11000.0},
                             {"operationMode": "CentralSetpoint", "setpoint": 4000.0}], tx_id=tx_id)
        async with api_client(csms, "operator") as api:
            r = await api.post("/api/stations/CS1/set-charging-profile", json={"evseId": 1, "chargingProfile": sched})
            assert r.json()["response"] == {"status": "Accepted"}
            assert st.target(1).setpoint_w == -6000.0 and st.hardware(1).meter().power_w == -6000.0
            # Q04: the setpoint shortcut: a Dynamic CentralSetpoint TxProfile at a higher stack level
            r = await api.post("/api/stations/CS1/evse/1/setpoint", json={"setpoint": -7000.0, "stackLevel": 1,
                                                                           "dischargeLimit": -11000.0})
            assert r.json()["action"] == "SetChargingProfile" and r.json()["response"]["status"] == "Accepted"
            assert st.hardware(1).meter().power_w == -7000.0
            r = await api.post("/api/stations/CS1/evse/1/setpoint", json={"setpoint": -9000.0})
            assert r.json()["action"] == "UpdateDynamicSchedule" and r.json()["response"]["status"] == "Accepted"
            assert st.target(1).setpoint_w == -9000.0 and st.hardware(1).meter().power_w == -9000.0
            # the CSMS keeps new values without pushing them; the station pulls them (K29)
            r = await api.post("/api/stations/CS1/update-dynamic-schedule", json={
                "chargingProfileId": 21001, "scheduleUpdate": {"setpoint": 2500.0}, "push": False})
            assert r.status_code == 200 and st.target(1).setpoint_w == -9000.0
            pulled = await st.v2x.pull_dynamic(21001)
            assert pulled is not None and pulled["status"] == "Accepted"
            assert st.target(1).setpoint_w == 2500.0 and st.hardware(1).meter().power_w == 2500.0
            # an update beyond the profile's dischargeLimit breaks V2X.05 at the station too
            answer = await csms.call("CS1", "UpdateDynamicSchedule", {"chargingProfileId": 21001,
                                                                     "scheduleUpdate": {"setpoint": -12000.0}})
            assert answer["status"] == "Rejected" and answer["statusInfo"]["reasonCode"] == "InvalidSchedule"
            unknown = await csms.call("CS1", "UpdateDynamicSchedule", {"chargingProfileId": 4242,
                                                                      "scheduleUpdate": {"setpoint": 1.0}})
            assert unknown["status"] == "Rejected"
            # Q07: CentralFrequency follows the CSMS's setpoint the same way
            freq = profile(31, [{"operationMode": "CentralFrequency", "setpoint": -3000.0}], tx_id=tx_id, stack=2,
                           kind="Dynamic")
            r = await api.post("/api/stations/CS1/set-charging-profile", json={"evseId": 1, "chargingProfile": freq})
            assert r.json()["response"] == {"status": "Accepted"}
            assert st.target(1).mode == "CentralFrequency" and st.hardware(1).meter().power_w == -3000.0
            r = await api.post("/api/stations/CS1/update-dynamic-schedule",
                               json={"chargingProfileId": 31, "scheduleUpdate": {"setpoint": -1000.0}})
            assert r.json()["response"]["status"] == "Accepted" and st.hardware(1).meter().power_w == -1000.0
        trigger = await csms.call("CS1", "TriggerMessage", {"requestedMessage": "TransactionEvent", "evse": {"id": 1}})
        assert trigger["status"] == "Accepted"
        await st.wait_queue_empty()
    events = [p for a, p in seen if a == "TransactionEvent"]
    modes = [e["transactionInfo"]["operationMode"] for e in events if "operationMode" in e["transactionInfo"]]
    assert modes == ["CentralSetpoint", "CentralFrequency"]
    assert {e["triggerReason"] for e in events} >= {"OperationModeChanged"}
    last = {v["measurand"]: v["value"] for v in events[-1]["meterValue"][0]["sampledValue"]}
    assert last["Power.Active.Setpoint"] == -1000.0 and last["Power.Active.Export"] == 1000.0
    assert last["Energy.Active.Net"] == round(last["Energy.Active.Import.Register"]
                                              - last["Energy.Active.Export.Register"], 3)


async def test_a_station_wide_setpoint_moves_every_evse_with_one_call(tmp_path: Path) -> None:
    """The setpoint shortcut on EVSE 0: one Dynamic CentralSetpoint TxDefaultProfile (evseId 0) that every EVSE's
    transaction follows, then UpdateDynamicSchedule of it: one CALL per setpoint, whatever the number of EVSEs."""
    async with running_csms(db(tmp_path)) as csms, station21(csms, evses=2) as st:
        for evse in (1, 2):
            await start_transaction(st, evse)
        calls: list[str] = []
        csms.server.connections["CS1"].frame_listeners.append(
            lambda direction, text: calls.append(json.loads(text)[2]) if direction == "tx" and text.startswith("[2,")
            else None)
        async with api_client(csms, "operator") as api:
            r = await api.post("/api/stations/CS1/evse/0/setpoint", json={"setpoint": -4000.0})
            assert r.json()["action"] == "SetChargingProfile" and r.json()["response"]["status"] == "Accepted"
            sent = r.json()["request"]
            assert sent["evseId"] == 0 and "transactionId" not in sent["chargingProfile"]
            assert (sent["chargingProfile"]["chargingProfilePurpose"], sent["chargingProfile"]["chargingProfileKind"]
                    ) == ("TxDefaultProfile", "Dynamic")
            assert [st.target(e).setpoint_w for e in (1, 2)] == [-4000.0, -4000.0]
            r = await api.post("/api/stations/CS1/evse/0/setpoint", json={"setpoint": -6000.0})
            assert r.json()["action"] == "UpdateDynamicSchedule" and r.json()["response"]["status"] == "Accepted"
            assert r.json()["request"] == {"chargingProfileId": 21000, "scheduleUpdate": {"setpoint": -6000.0}}
            assert [st.target(e).setpoint_w for e in (1, 2)] == [-6000.0, -6000.0]
            assert [st.hardware(e).meter().power_w for e in (1, 2)] == [-6000.0, -6000.0]
        assert calls == ["SetChargingProfile", "UpdateDynamicSchedule"]


async def test_a_setpoint_reinstalls_the_dynamic_profile_the_station_no_longer_holds(tmp_path: Path) -> None:
    """The setpoint shortcut once the station has lost its Dynamic profile (a restart keeps no TxProfile; a transaction
    that just ended there drops it before its TransactionEvent reaches the CSMS: seen in the v2x bench as setpoints
    refused UnknownProfile): the UpdateDynamicSchedule is answered UnknownProfile, and the CSMS sends the whole
    profile again, with the values it holds, in the same request; then updates go on as before."""
    async with running_csms(db(tmp_path)) as csms, station21(csms) as st:
        await start_transaction(st)
        first = await csms.v2x.setpoint("CS1", 1, {"setpoint": -5000.0, "dischargeLimit": -9000.0})
        assert first["action"] == "SetChargingProfile" and first["response"] == {"status": "Accepted"}
        assert (await csms.v2x.setpoint("CS1", 1, {"setpoint": -6000.0}))["action"] == "UpdateDynamicSchedule"
        assert st.smart_charging.profiles.clear(21001)  # the station loses it
        st.smart_charging.changed(1)
        again = await csms.v2x.setpoint("CS1", 1, {"setpoint": -7000.0})
        assert again["action"] == "SetChargingProfile" and again["response"] == {"status": "Accepted"}
        period = again["request"]["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]
        assert (period["setpoint"], period["dischargeLimit"]) == (-7000.0, -9000.0)
        assert st.target(1).setpoint_w == -7000.0 and st.hardware(1).meter().power_w == -7000.0
        after = await csms.v2x.setpoint("CS1", 1, {"setpoint": -3000.0})
        assert after["action"] == "UpdateDynamicSchedule" and after["response"] == {"status": "Accepted"}
        assert st.target(1).setpoint_w == -3000.0


async def test_q05_q06_external_setpoint_and_limits(tmp_path: Path) -> None:
    """Q05: an ExternalSetpoint profile from the CSMS; the external actor's setpoint is followed, within its limits,
    once SmartChargingCtrlr.ExternalControlSignalsEnabled lets it in (refused before). Q06: an external actor's
    limits (ExternalLimits) bound the EV and reach the CSMS as NotifyChargingLimit with the schedule; their end as
    ClearedChargingLimit."""
    async with running_csms(db(tmp_path)) as csms, station21(csms) as st:
        seen = calls_from(csms)
        tx_id = await start_transaction(st, power_w=11000.0)
        ext = profile(40, [{"operationMode": "ExternalSetpoint", "dischargeLimit": -8000.0}], tx_id=tx_id)
        assert (await csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": ext}))["status"] == \
            "Accepted"
        assert st.target(1).setpoint_w is None  # no external setpoint yet: the EV chooses within the limits
        assert not st.set_external_limit(1, setpoint_w=-4000.0)  # external control signals are disabled
        answer = await csms.call("CS1", "SetVariables", {"setVariableData": [
            {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "ExternalControlSignalsEnabled"},
             "attributeValue": "true"},
            {"component": {"name": "SmartChargingCtrlr"}, "variable": {"name": "NotifyChargingLimitWithSchedules"},
             "attributeValue": "true"}]})
        assert {r["attributeStatus"] for r in answer["setVariableResult"]} == {"Accepted"}
        assert st.set_external_limit(1, setpoint_w=-9500.0, source="EMS")
        target = st.target(1)
        assert (target.mode, target.source, target.setpoint_w) == ("ExternalSetpoint", "External", -8000.0)
        assert st.hardware(1).meter().power_w == -8000.0  # clipped to the profile's dischargeLimit
        # Q06: the external actor limits instead (ExternalLimits): the EV's own 11 kW demand is held to 3 kW
        limits = profile(41, [{"operationMode": "ExternalLimits"}], tx_id=tx_id, stack=1)
        assert (await csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": limits}))["status"] \
            == "Accepted"
        assert st.set_external_limit(1, limit_w=3000.0, discharge_limit_w=-2000.0, source="DSO",
                                     grid_critical=True)
        target = st.target(1)
        assert (target.mode, target.import_limit_w, target.export_limit_w) == ("ExternalLimits", 3000.0, 2000.0)
        assert st.hardware(1).meter().power_w == 3000.0
        st.v2x.clear_external(1)
        assert st.hardware(1).meter().power_w == 11000.0
        await st.wait_queue_empty()
        for _ in range(100):
            if any(a == "ClearedChargingLimit" for a, _ in seen):
                break
            await st.clock.sleep(1)
    limits_sent = [p for a, p in seen if a == "NotifyChargingLimit"]
    assert [p["chargingLimit"]["chargingLimitSource"] for p in limits_sent] == ["EMS", "DSO"]
    assert limits_sent[1]["chargingLimit"]["isGridCritical"] is True
    assert limits_sent[1]["chargingSchedule"][0]["chargingSchedulePeriod"][0] == {
        "startPeriod": 0, "limit": 3000.0, "dischargeLimit": -2000.0, "operationMode": "ExternalLimits"}
    assert [p for a, p in seen if a == "ClearedChargingLimit"] == [{"chargingLimitSource": "DSO", "evseId": 1}]


CURVE = [{"frequency": 49.8, "power": -10000.0}, {"frequency": 50.0, "power": 0.0},
         {"frequency": 50.2, "power": 10000.0}]


async def test_q08_local_frequency_follows_a_frequency_step_within_one_period(tmp_path: Path) -> None:
    """Q08 (FCR): a LocalFrequency profile; the grid frequency steps from 50.0 to 49.9 Hz on a measurement nobody
    announces: by the next run of the control loop (one period) the EV gives 5 kW (baseline 0 + the curve at 49.9),
    and the CSMS sent nothing meanwhile. A step of the simulated source applies at once."""
    grid = MeasuredFrequency(50.0)
    async with running_csms(db(tmp_path)) as csms, station21(csms, frequency=grid) as st:
        tx_id = await start_transaction(st)
        local = profile(50, [{"operationMode": "LocalFrequency", "v2xBaseline": 0.0, "v2xFreqWattCurve": CURVE}],
                        tx_id=tx_id)
        assert (await csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": local}))["status"] == \
            "Accepted"
        assert st.target(1).setpoint_w == 0.0 and st.hardware(1).meter().power_w == 0.0
        frames: list[tuple[str, str]] = []
        st.on_frame(lambda direction, text: frames.append((direction, text)))
        grid.hz = 49.9
        await st.v2x.wait_ticks(1)  # the first run of the control loop after the step
        assert st.target(1).setpoint_w == -5000.0 and st.hardware(1).meter().power_w == -5000.0
        csms_calls = [t for d, t in frames if d == "rx" and json.loads(t)[0] == 2]
        assert csms_calls == []  # the station reacted without asking the CSMS
        grid.hz = 50.1
        await st.v2x.wait_ticks(1)
        assert st.hardware(1).meter().power_w == 5000.0
    async with running_csms(f"sqlite:///{tmp_path / 'b.db'}") as csms, station21(csms) as st:
        tx_id = await start_transaction(st)
        local = profile(51, [{"operationMode": "LocalFrequency", "v2xBaseline": 1000.0, "v2xFreqWattCurve": CURVE,
                              "v2xSignalWattCurve": [{"signal": -100, "power": -4000.0},
                                                     {"signal": 100, "power": 4000.0}]}], tx_id=tx_id)
        assert (await csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": local}))["status"] == \
            "Accepted"
        st.step_frequency(49.85)  # the simulated source tells the station at once
        assert st.hardware(1).meter().power_w == pytest.approx(1000.0 - 7500.0)
        async with api_client(csms, "operator") as api:  # Q08 aFRR: the signal maps through the signal-watt curve
            r = await api.post("/api/stations/CS1/afrr-signal", json={"signal": 50, "timestamp": st.clock.timestamp()})
        assert r.json()["response"] == {"status": "Accepted"}
        assert st.target(1).setpoint_w == pytest.approx(1000.0 - 7500.0 + 2000.0)
        with pytest.raises(ValueError):
            st.step_frequency(float("nan"))


async def test_q09_local_load_balancing_and_q10_idle(tmp_path: Path) -> None:
    """Q09: LocalLoadBalancing lets the EV choose within the station's limits (a ChargingStationMaxProfile of
    6 kW); Q10: Idle stops power transfer (limits 0, the charging state SuspendedEVSE) and ChargingOnly gives it
    back."""
    async with running_csms(db(tmp_path)) as csms, station21(csms) as st:
        seen = calls_from(csms)
        tx_id = await start_transaction(st, power_w=9000.0)
        cap = profile(60, [{"limit": 6000.0}], purpose="ChargingStationMaxProfile", kind="Absolute",
                      startSchedule="2020-01-01T00:00:00Z")
        balance = profile(61, [{"operationMode": "LocalLoadBalancing"}], tx_id=tx_id)
        for evse, p in ((0, cap), (1, balance)):
            assert (await csms.call("CS1", "SetChargingProfile", {"evseId": evse, "chargingProfile": p}))[
                "status"] == "Accepted"
        target = st.target(1)
        assert (target.mode, target.setpoint_w, target.import_limit_w) == ("LocalLoadBalancing", None, 6000.0)
        assert st.hardware(1).meter().power_w == 6000.0
        idle = profile(62, [{"operationMode": "Idle"}], tx_id=tx_id, stack=1)
        assert (await csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": idle}))["status"] \
            == "Accepted"
        target = st.target(1)
        assert (target.import_limit_w, target.export_limit_w) == (0.0, 0.0)
        assert st.hardware(1).meter().power_w == 0.0 and st.evses[1].tx.charging_state == "SuspendedEVSE"
        assert (await csms.call("CS1", "ClearChargingProfile", {"chargingProfileId": 62}))["status"] == "Accepted"
        assert st.hardware(1).meter().power_w == 6000.0
        await st.wait_queue_empty()
    states = [p["transactionInfo"].get("chargingState") for a, p in seen if a == "TransactionEvent"]
    assert "SuspendedEVSE" in states and states[-1] == "Charging"


def _bad(tx_id: str) -> list[tuple[str, int, Payload, str]]:
    """(what, evseId, profile, reasonCode) of profiles a 2.1 station refuses, one per rule (sent past the CSMS's
    own checks)."""
    def tx(period: Payload, **kw: Any) -> Payload:
        return profile(70, [period], tx_id=tx_id, **kw)
    return [
        ("setpoint below dischargeLimit (V2X.05)", 1,
         tx({"operationMode": "CentralSetpoint", "setpoint": -9000.0, "dischargeLimit": -5000.0}), "InvalidSchedule"),
        ("CentralSetpoint without setpoint", 1, tx({"operationMode": "CentralSetpoint", "limit": 5000.0}),
         "InvalidSchedule"),
        ("ChargingOnly with a setpoint", 1, tx({"limit": 5000.0, "setpoint": 1000.0}), "InvalidSchedule"),
        ("LocalFrequency without a curve (Q08.FR.02)", 1,
         tx({"operationMode": "LocalFrequency", "v2xBaseline": 0.0}), "NoFreqWattCurve"),
        ("LocalFrequency in A (Q08.FR.05)", 1,
         tx({"operationMode": "LocalFrequency", "v2xBaseline": 0.0, "v2xFreqWattCurve": CURVE}, unit="A"),
         "UnsupportedRateUnit"),
        ("setpoints of different signs", 1, tx({"operationMode": "CentralSetpoint", "setpoint": 1000.0,
                                               "setpoint_L2": -1000.0, "setpoint_L3": 1000.0}), "InvalidSchedule"),
        ("per-phase values outside a TxProfile (V2X.10)", 1,
         profile(71, [{"limit": 5000.0, "limit_L2": 5000.0, "limit_L3": 5000.0}], purpose="TxDefaultProfile"),
         "InvalidSchedule"),
        ("CentralSetpoint in a ChargingStationMaxProfile", 0,
         profile(72, [{"operationMode": "CentralSetpoint", "setpoint": 1.0}], purpose="ChargingStationMaxProfile",
                 kind="Absolute", startSchedule=NOW), "InvalidSchedule"),
        ("a Relative ChargingStationMaxProfile (K01.FR.38)", 0,
         profile(73, [{"limit": 1.0}], purpose="ChargingStationMaxProfile"), "InvalidValue"),
        ("a TxProfile without transactionId (K01.FR.03)", 1, profile(74, [{"limit": 1.0}]), "MissingParam"),
        ("Dynamic with two periods (K28.FR.01)", 1,
         profile(75, [{"limit": 1.0}, {"limit": 2.0}], kind="Dynamic", tx_id=tx_id), "InvalidSchedule"),
        ("dynUpdateInterval outside Dynamic (K01.FR.122)", 1, tx({"limit": 1.0}, dynUpdateInterval=10),
         "InvalidProfile"),
        ("evseSleep unsupported (K01.FR.126)", 1, tx({"limit": 1.0, "evseSleep": True}), "InvalidSchedule"),
        ("PriorityCharging unsupported (K01.FR.120)", 1,
         profile(76, [{"limit": 1.0}], purpose="PriorityCharging"), "UnsupportedPurpose"),
        ("a setpoint beyond 10 MW", 1, tx({"operationMode": "CentralSetpoint", "setpoint": -2e7}), "ValueTooHigh"),
        ("a curve that is no function", 1, tx({"operationMode": "LocalFrequency", "v2xBaseline": 0.0,
                                               "v2xFreqWattCurve": [CURVE[1], CURVE[0]]}), "InvalidSchedule"),
        ("a TxProfile for another transaction (K01.FR.33)", 1, profile(77, [{"limit": 1.0}], tx_id="other"),
         "TxNotFound"),
    ]


async def test_v2x_rules_refuse_with_their_reason_codes(tmp_path: Path) -> None:
    """Each V2X rule's refusal as the station answers it over 2.1 (status Rejected, the reasonCode, the rule in
    additionalInfo); the device model gates the modes (V2XChargingCtrlr.Enabled false: only ChargingOnly); an
    ISO 15118-2 EV is refused discharge (UnsupportedRequest: profile, update, allowed energy transfer) but its
    charging may be limited."""
    async with running_csms(db(tmp_path)) as csms, station21(csms) as st:
        tx_id = await start_transaction(st)
        for what, evse, bad, code in _bad(tx_id):
            answer = await csms.call("CS1", "SetChargingProfile", {"evseId": evse, "chargingProfile": bad})
            assert answer["status"] == "Rejected", what
            assert answer["statusInfo"]["reasonCode"] == code, (what, answer)
        assert st.smart_charging.profiles.items == {}
        setpoint = profile(80, [{"operationMode": "CentralSetpoint", "setpoint": -5000.0}], tx_id=tx_id)
        answer = await csms.call("CS1", "SetVariables", {"setVariableData": [{
            "component": {"name": "V2XChargingCtrlr", "evse": {"id": 1}}, "variable": {"name": "Enabled"},
            "attributeValue": "false"}]})
        assert answer["setVariableResult"][0]["attributeStatus"] == "Accepted"
        answer = await csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": setpoint})
        assert answer["status"] == "Rejected" and "SupportedOperationModes" in answer["statusInfo"]["additionalInfo"]
        st.model.put("V2XChargingCtrlr", "Enabled", "true", evse=1)
        # an ISO 15118-2 EV (the bridge's transaction facts say so)
        st.set_transaction_data(1, {"vendorId": ISO_FACTS_VENDOR, "protocol": "ISO15118-2",
                                    "energyTransferMode": "AC_three_phase"})
        answer = await csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": setpoint})
        assert answer["status"] == "Rejected" and answer["statusInfo"]["reasonCode"] == "UnsupportedRequest"
        charge = profile(81, [{"operationMode": "CentralSetpoint", "setpoint": 4000.0, "dischargeLimit": -3000.0}],
                         tx_id=tx_id, kind="Dynamic")
        assert (await csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": charge}))[
            "status"] == "Accepted"
        target = st.target(1)
        assert (target.setpoint_w, target.export_limit_w) == (4000.0, 0.0)  # it may not give anything back
        update = await csms.call("CS1", "UpdateDynamicSchedule", {"chargingProfileId": 81,
                                                                  "scheduleUpdate": {"setpoint": -2000.0}})
        assert update["status"] == "Rejected" and update["statusInfo"]["reasonCode"] == "UnsupportedRequest"
        allowed = await csms.call("CS1", "NotifyAllowedEnergyTransfer", {"transactionId": tx_id,
                                                                          "allowedEnergyTransfer": ["AC_BPT"]})
        assert allowed["status"] == "Rejected" and allowed["statusInfo"]["reasonCode"] == "UnsupportedRequest"
        assert st.hardware(1).meter().power_w == 4000.0


async def test_composite_schedule_with_discharge_by_hand(tmp_path: Path) -> None:
    """GetCompositeSchedule over 2.1 against a hand computation. Installed: a TxProfile (Absolute from S)
    CentralSetpoint -8000 W with dischargeLimit -10000 W for 600 s, then CentralSetpoint +7000 W with limit 9000 W;
    a ChargingStationMaxProfile of 5000 W from S + 300 s; the external actor's dischargeLimit -6000 W.
    By hand, from S:
      0..300 s:   limit = min(11000 rating) = 11000; dischargeLimit = max(-10000, -6000) = -6000;
                  setpoint -8000 clipped to the discharge limit (V2X.04) = -6000;
      300..600 s: limit = min(11000, 5000) = 5000; dischargeLimit -6000; setpoint -6000;
      600.. s:    limit = min(9000, 5000) = 5000; dischargeLimit -6000 (the external one); setpoint 7000 clipped to
                  the limit (V2X.03) = 5000.
    In A (230 V, 3 phases: W / 690): the same periods, 11000/690 = 15.942, 5000/690 = 7.246, 6000/690 = 8.696."""
    async with running_csms(db(tmp_path)) as csms, station21(csms, time_scale=1.0) as st:
        tx_id = await start_transaction(st)
        start = int(st.clock.wall().timestamp()) - 1
        s_text = rfc3339(start, timespec="seconds")
        tx = profile(90, [{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -8000.0,
                           "dischargeLimit": -10000.0},
                          {"startPeriod": 600, "operationMode": "CentralSetpoint", "setpoint": 7000.0,
                           "limit": 9000.0}], tx_id=tx_id, kind="Absolute", startSchedule=s_text)
        cap = profile(91, [{"startPeriod": 0, "limit": 11000.0}, {"startPeriod": 300, "limit": 5000.0}],
                      purpose="ChargingStationMaxProfile", kind="Absolute", startSchedule=s_text)
        for evse, p in ((1, tx), (0, cap)):
            assert (await csms.call("CS1", "SetChargingProfile", {"evseId": evse, "chargingProfile": p}))[
                "status"] == "Accepted"
        st.model.put("SmartChargingCtrlr", "ExternalControlSignalsEnabled", "true")
        assert st.set_external_limit(1, discharge_limit_w=-6000.0)
        answer = await csms.call("CS1", "GetCompositeSchedule", {"evseId": 1, "duration": 1200,
                                                                 "chargingRateUnit": "W"})
        amps = await csms.call("CS1", "GetCompositeSchedule", {"evseId": 1, "duration": 1200,
                                                               "chargingRateUnit": "A"})
        elapsed = int(st.clock.wall().timestamp()) - start + 1  # S to now, whole seconds (bounds the lag below)
    assert answer["status"] == "Accepted", answer
    periods = answer["schedule"]["chargingSchedulePeriod"]
    expected = [(0, 11000.0, -6000.0, -6000.0), (300, 5000.0, -6000.0, -6000.0), (600, 5000.0, -6000.0, 5000.0)]
    offset = answer["schedule"]["scheduleStart"]
    assert offset >= s_text
    got = [(p["startPeriod"], p["limit"], p["dischargeLimit"], p["setpoint"]) for p in periods]
    assert [g[1:] for g in got] == [e[1:] for e in expected], got
    lag = expected[1][0] - got[1][0]  # the request came a moment after S: every change is that much earlier
    assert 0 <= lag <= elapsed and got[2][0] == 600 - lag
    assert all(p["operationMode"] == "CentralSetpoint" for p in periods)
    a_periods = [(p["limit"], p["dischargeLimit"], p["setpoint"]) for p in amps["schedule"]["chargingSchedulePeriod"]]
    assert a_periods == [(15.942, -8.696, -8.696), (7.246, -8.696, -8.696), (7.246, -8.696, 7.246)], a_periods


async def test_export_energy_and_signed_meter_values(tmp_path: Path) -> None:
    """The EV discharges at 7 kW under a CentralSetpoint profile: the CSMS's export energy for the transaction equals
    the station meter's within 1 %; every register the station sends is OCMF-signed by the simulated meter, whose key
    the CSMS read from the device model (GetBaseReport: FiscalMetering.PublicKey): all 'valid'; a record changed on
    the way is flagged bad."""
    async with running_csms(db(tmp_path)) as csms, station21(csms, tx_interval=5) as st:
        answer = await csms.call("CS1", "SetVariables", {"setVariableData": [{
            "component": {"name": "SampledDataCtrlr"}, "variable": {"name": "SignReadings"},
            "attributeValue": "true"}]})
        assert answer["setVariableResult"][0]["attributeStatus"] == "Accepted"
        assert (await csms.call("CS1", "GetBaseReport", {"requestId": 1, "reportBase": "FullInventory"}))[
            "status"] == "Accepted"
        async with api_client(csms, "admin") as api:
            for _ in range(200):
                keys = (await api.get("/api/stations/CS1/meter-keys")).json()
                if keys:
                    break
                await st.clock.sleep(1)
        assert keys[0]["publicKey"] == st.hardware(1).public_key() and keys[0]["source"] == "deviceModel"
        before = st.hardware(1).meter().export_wh
        tx_id = await start_transaction(st)
        async with api_client(csms, "operator") as api:
            r = await api.post("/api/stations/CS1/evse/1/setpoint", json={"setpoint": -7000.0, "dynamic": False})
            assert r.json()["response"]["status"] == "Accepted"
        await st.clock.sleep(30)
        await st.stop_transaction(1, "Local")
        station_export = st.hardware(1).meter().export_wh - before
        reading = st.evses[1].reading()
        signed = st.transactions.sampled(st.evses[1], reading, "Other", st.clock.timestamp())
        tampered = json.loads(json.dumps(signed[0]))
        record = ocmf.parse(base64.b64decode(tampered["signedMeterValue"]["signedMeterData"]).decode())
        signed_wh = round(reading.import_wh, 3)
        changed = record.text().replace(f'"RV":{signed_wh}', f'"RV":{signed_wh + 1}')
        assert changed != record.text()
        tampered["signedMeterValue"]["signedMeterData"] = base64.b64encode(changed.encode()).decode()
        await st.link.call("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": st.clock.timestamp(),
                                                                        "sampledValue": [signed[1], tampered]}]})
        await st.wait_queue_empty()
        async with api_client(csms, "viewer") as api:
            tx = (await api.get(f"/api/transactions/{tx_id}")).json()
            values = (await api.get("/api/stations/CS1/meter-values")).json()
    assert station_export > 30 * 7000 / 3600 * 0.9  # it did discharge (about 58 Wh in 30 simulated s)
    assert abs(tx["energyExportWh"] - station_export) <= 0.01 * station_export, (tx["energyExportWh"], station_export)
    verdicts = {m["signature"] for m in tx["meterValues"] if m.get("signature")}
    assert verdicts == {"valid"} and tx["v2x"]["badSignatures"] == 0
    loose = {(m["measurand"], m["signature"]) for m in values if m["transactionId"] is None and m.get("signature")}
    assert loose == {("Energy.Active.Export.Register", "valid"), ("Energy.Active.Import.Register", "invalid")}


async def test_per_phase_values_reach_the_station_and_its_composite(tmp_path: Path) -> None:
    """A per-phase CentralSetpoint TxProfile through the CSMS API (our engine spells `setpoint_L2` as the schema
    does): the station follows the sum, -2000 - 2000 - 1000 = -5000 W, within the summed discharge limits
    (7000 W); its composite is per phase, each phase's limit the rating's third (11000 / 3 = 3666.667 W). A phase
    beyond its own discharge limit (L3 -1500 below -1000) is refused (V2X.05) by the CSMS before it is sent, and by
    the station when sent past the CSMS's checks."""
    async with running_csms(db(tmp_path)) as csms, station21(csms) as st:
        tx_id = await start_transaction(st)
        phased = profile(95, [{"operationMode": "CentralSetpoint", "setpoint": -2000.0, "setpoint_L2": -2000.0,
                               "setpoint_L3": -1500.0, "dischargeLimit": -3000.0, "dischargeLimit_L2": -3000.0,
                               "dischargeLimit_L3": -1000.0}], tx_id=tx_id)
        async with api_client(csms, "operator") as api:
            r = await api.post("/api/stations/CS1/set-charging-profile", json={"evseId": 1, "chargingProfile": phased})
            assert r.status_code == 422 and r.json()["rule"] == "V2X.05"
            answer = await csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": phased})
            assert answer["status"] == "Rejected" and "V2X.05" in answer["statusInfo"]["additionalInfo"]
            phased["chargingSchedule"][0]["chargingSchedulePeriod"][0]["setpoint_L3"] = -1000.0
            r = await api.post("/api/stations/CS1/set-charging-profile", json={"evseId": 1, "chargingProfile": phased})
        assert r.json()["response"] == {"status": "Accepted"}, r.json()
        target = st.target(1)
        assert (target.setpoint_w, target.export_limit_w) == (-5000.0, 7000.0)
        assert st.hardware(1).meter().power_w == pytest.approx(-5000.0)
        answer = await csms.call("CS1", "GetCompositeSchedule", {"evseId": 1, "duration": 60})
    period = answer["schedule"]["chargingSchedulePeriod"][0]
    assert period == {"startPeriod": 0, "operationMode": "CentralSetpoint", "limit": 3666.667,
                      "limit_L2": 3666.667, "limit_L3": 3666.667, "dischargeLimit": -3000.0,
                      "dischargeLimit_L2": -3000.0, "dischargeLimit_L3": -1000.0, "setpoint": -2000.0,
                      "setpoint_L2": -2000.0, "setpoint_L3": -1000.0}


async def test_the_grid_frequency_knob_through_the_csms(tmp_path: Path) -> None:
    """The simulated grid frequency stepped from afar: DataTransfer org.v2gstack.grid SetGridFrequency (the CSMS
    API's data-transfer command); a value that is no frequency is Rejected."""
    async with running_csms(db(tmp_path)) as csms, station21(csms, nominal_frequency=50.0) as st:
        async with api_client(csms, "admin") as api:  # DataTransfer is an admin's command
            r = await api.post("/api/stations/CS1/data-transfer", json={
                "vendorId": "org.v2gstack.grid", "messageId": "SetGridFrequency", "data": "49.9"})
            assert r.json()["response"]["status"] == "Accepted"
            r = await api.post("/api/stations/CS1/data-transfer", json={
                "vendorId": "org.v2gstack.grid", "messageId": "GetGridFrequency"})
            assert r.json()["response"] == {"status": "Accepted", "data": "49.9"}
            r = await api.post("/api/stations/CS1/data-transfer", json={
                "vendorId": "org.v2gstack.grid", "messageId": "SetGridFrequency", "data": "nan"})
            assert r.json()["response"]["status"] == "Rejected"
        assert st.v2x.frequency.frequency() == 49.9
