"""Interop: the `ocpp` package's OCPP 2.1 CSMS role (2.1.0, on a `websockets` server) against our station, over a
real socket. Everything it can express of V2X runs: a Dynamic CentralSetpoint TxProfile, UpdateDynamicSchedule, a
LocalFrequency profile with its curve, NotifyAllowedEnergyTransfer, AFRRSignal, GetCompositeSchedule with
discharge, and the answer to our PullDynamicScheduleUpdate; it validates every message of ours against its 2.1
schemas (V2X charging needs, NotifyChargingLimit, transaction events with the 2.1 measurands). What it cannot
express: any per-phase V2X field (it renames `setpoint_l2` to `setpointL2` and refuses its own message before
sending it), shown here with the evidence."""

from __future__ import annotations

import pytest
from helpers.v2x import TheirCsms21, start_transaction, station21, their_csms21
from ocpp.exceptions import FormatViolationError
from ocpp.v21 import call

pytestmark = pytest.mark.timeout(60)


async def test_ocpp_package_21_csms_runs_v2x_against_our_station() -> None:
    points: dict[str, TheirCsms21] = {}
    async with their_csms21(points) as url, station21(url, tx_interval=1) as st:
        assert st.link.version == "2.1"
        refusals: list[str] = []  # a CALLERROR from their CSMS: one of our messages broke its 2.1 schemas
        st.on_frame(lambda direction, text: refusals.append(text) if direction == "rx" and text.startswith("[4")
                    else None)
        tx_id = await start_transaction(st)
        cp = points["CS1"]
        st.notify("NotifyEVChargingNeeds", {"evseId": 1, "timestamp": st.clock.timestamp(), "chargingNeeds": {
            "requestedEnergyTransfer": "AC_BPT", "availableEnergyTransfer": ["AC_three_phase", "AC_BPT"],
            "controlMode": "DynamicControl", "v2xChargingParameters": {"maxDischargePower": 11000.0}}})
        answer = await cp.call(call.SetChargingProfile(evse_id=1, charging_profile={
            "id": 7, "stack_level": 0, "charging_profile_purpose": "TxProfile", "charging_profile_kind": "Dynamic",
            "transaction_id": tx_id, "charging_schedule": [{"id": 7, "charging_rate_unit": "W",
                                                            "charging_schedule_period": [{
                "start_period": 0, "operation_mode": "CentralSetpoint", "setpoint": -6000.0,
                "discharge_limit": -11000.0}]}]}), suppress=False)
        assert answer.status == "Accepted" and st.hardware(1).meter().power_w == -6000.0
        answer = await cp.call(call.UpdateDynamicSchedule(charging_profile_id=7, schedule_update={"setpoint": -8000.0}),
                               suppress=False)
        assert answer.status == "Accepted" and st.hardware(1).meter().power_w == -8000.0
        composite = await cp.call(call.GetCompositeSchedule(duration=300, evse_id=1, charging_rate_unit="W"),
                                  suppress=False)
        period = composite.schedule["charging_schedule_period"][0]
        assert composite.status == "Accepted"
        assert (period["operation_mode"], period["setpoint"], period["discharge_limit"], period["limit"]) == (
            "CentralSetpoint", -8000.0, -11000.0, 11000.0)
        cp.pull_answer = {"status": "Accepted", "schedule_update": {"setpoint": -4000.0, "discharge_limit": -5000.0}}
        pulled = await st.v2x.pull_dynamic(7)
        assert pulled is not None and pulled["scheduleUpdate"] == {"setpoint": -4000.0, "dischargeLimit": -5000.0}
        assert st.hardware(1).meter().power_w == -4000.0
        answer = await cp.call(call.NotifyAllowedEnergyTransfer(transaction_id=tx_id,
                                                                allowed_energy_transfer=["AC_three_phase", "AC_BPT"]),
                               suppress=False)
        assert answer.status == "Accepted"
        answer = await cp.call(call.SetChargingProfile(evse_id=1, charging_profile={
            "id": 8, "stack_level": 1, "charging_profile_purpose": "TxProfile", "charging_profile_kind": "Relative",
            "transaction_id": tx_id, "charging_schedule": [{"id": 8, "charging_rate_unit": "W",
                                                            "charging_schedule_period": [{
                "start_period": 0, "operation_mode": "LocalFrequency", "v2x_baseline": 0.0,
                "v2x_freq_watt_curve": [{"frequency": 49.8, "power": -10000.0}, {"frequency": 50.2, "power": 10000.0}],
                "v2x_signal_watt_curve": [{"signal": 0, "power": 0.0}, {"signal": 100, "power": 2000.0}]}]}]}),
            suppress=False)
        assert answer.status == "Accepted"
        st.step_frequency(49.9)
        assert st.target(1).setpoint_w == pytest.approx(-5000.0)
        answer = await cp.call(call.AFRRSignal(timestamp=st.clock.timestamp(), signal=50), suppress=False)
        assert answer.status == "Accepted" and st.target(1).setpoint_w == pytest.approx(-4000.0)
        st.model.put("SmartChargingCtrlr", "ExternalControlSignalsEnabled", "true")
        st.model.put("SmartChargingCtrlr", "NotifyChargingLimitWithSchedules", "true")
        assert st.set_external_limit(1, limit_w=7000.0, discharge_limit_w=-3000.0)
        # what the package cannot express: a per-phase field (refused by its own validation, nothing is sent)
        before = len(st.smart_charging.profiles.items)
        with pytest.raises(FormatViolationError, match="setpointL2"):
            await cp.call(call.UpdateDynamicSchedule(charging_profile_id=7, schedule_update={
                "setpoint": -3000.0, "setpoint_l2": -1000.0, "setpoint_l3": -1000.0}), suppress=False)
        with pytest.raises(FormatViolationError, match="dischargeLimitL2"):
            await cp.call(call.SetChargingProfile(evse_id=1, charging_profile={
                "id": 9, "stack_level": 2, "charging_profile_purpose": "TxProfile",
                "charging_profile_kind": "Relative", "transaction_id": tx_id, "charging_schedule": [{
                    "id": 9, "charging_rate_unit": "W", "charging_schedule_period": [{
                        "start_period": 0, "operation_mode": "CentralSetpoint", "setpoint": -3000.0,
                        "discharge_limit": -6000.0, "discharge_limit_l2": -2000.0}]}]}), suppress=False)
        assert len(st.smart_charging.profiles.items) == before
        await st.clock.sleep(3)
        await st.stop_transaction(1, "Local")
        await st.wait_queue_empty()
    assert refusals == []
    actions = {a for a, _ in cp.received}
    assert {"BootNotification", "TransactionEvent", "NotifyEVChargingNeeds", "PullDynamicScheduleUpdate",
            "NotifyChargingLimit"} <= actions
    events = [p for a, p in cp.received if a == "TransactionEvent"]
    measurands = {v["measurand"] for e in events for mv in e.get("meterValue", []) for v in mv["sampledValue"]}
    assert {"Power.Active.Setpoint", "Energy.Active.Net", "Power.Active.Export"} <= measurands
    assert {e["transactionInfo"].get("operationMode") for e in events} >= {"CentralSetpoint", "LocalFrequency"}
    assert events[-1]["eventType"] == "Ended"
