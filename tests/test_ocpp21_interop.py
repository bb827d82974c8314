"""Interop with the `ocpp` package's OCPP 2.1 ChargePoint (2.1.0) against our CSMS: the V2X messages it can express
run both ways; what it cannot express (per-phase V2X fields it would send) is shown with the evidence, without
bending our messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.csms import PASSWORD, api_client, csms_url, running_csms
from helpers.peers import their_station
from ocpp.exceptions import OCPPError
from ocpp.v21 import call

pytestmark = pytest.mark.timeout(60)
NOW = "2026-03-01T12:00:00Z"


async def test_ocpp_package_21_station_runs_v2x_with_our_csms(tmp_path: Path) -> None:
    """Their station boots over ocpp2.1, reports V2X charging needs and a transaction in CentralSetpoint; our CSMS
    sends it a V2X TxProfile (per-phase fields included: the package reads them correctly, inbound), a setpoint
    update, allowed energy transfer and an aFRR signal; their station pulls the Dynamic profile's values."""
    async with running_csms(f"sqlite:///{tmp_path / 'i.db'}") as csms, \
            their_station(csms_url(csms), "CS1", PASSWORD, version="2.1") as cp:
        assert cp.subprotocol == "ocpp2.1"
        boot = await cp.call(call.BootNotification(charging_station={"model": "M21", "vendor_name": "V2G"},
                                                   reason="PowerUp"), suppress=False)
        assert boot.status == "Accepted"
        await cp.call(call.TransactionEvent(
            event_type="Started", timestamp=NOW, trigger_reason="CablePluggedIn", seq_no=0,
            transaction_info={"transaction_id": "tx-pkg", "operation_mode": "CentralSetpoint"},
            evse={"id": 1, "connector_id": 1}, meter_value=[{"timestamp": NOW, "sampled_value": [
                {"value": 100.0, "measurand": "Energy.Active.Export.Register"}]}]), suppress=False)
        needs = await cp.call(call.NotifyEVChargingNeeds(evse_id=1, timestamp=NOW, charging_needs={
            "requested_energy_transfer": "DC_BPT", "control_mode": "DynamicControl",
            "mobility_needs_mode": "EVCC_SECC", "available_energy_transfer": ["DC", "DC_BPT"],
            "v2x_charging_parameters": {"max_discharge_power": 20000.0, "ev_max_v2x_energy_request": 30000.0}}),
            suppress=False)
        assert needs.status == "NoChargingProfile"  # no maximum charge power to compute a profile from (K15)
        async with api_client(csms, "operator") as api:
            r = await api.post("/api/stations/CS1/set-charging-profile", json={"evseId": 1, "chargingProfile": {
                "id": 5, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Dynamic",
                "transactionId": "tx-pkg", "chargingSchedule": [{"id": 1, "chargingRateUnit": "W",
                                                                "chargingSchedulePeriod": [{
                    "startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -6000.0,
                    "setpoint_L2": -2000.0, "setpoint_L3": -2000.0, "dischargeLimit": -9000.0,
                    "dischargeLimit_L2": -3000.0, "dischargeLimit_L3": -3000.0}]}]}})
            assert r.status_code == 200 and r.json()["response"]["status"] == "Accepted", r.json()
            r = await api.post("/api/stations/CS1/update-dynamic-schedule",
                               json={"chargingProfileId": 5, "scheduleUpdate": {"setpoint": -7000.0}})
            assert r.status_code == 200
            r = await api.post("/api/stations/CS1/notify-allowed-energy-transfer",
                               json={"transactionId": "tx-pkg", "allowedEnergyTransfer": ["DC", "DC_BPT"]})
            assert r.json()["response"]["status"] == "Accepted"
            r = await api.post("/api/stations/CS1/afrr-signal", json={"signal": 120})
            assert r.json()["response"]["status"] == "Accepted"
        pulled = await cp.call(call.PullDynamicScheduleUpdate(charging_profile_id=5), suppress=False)
        assert pulled.status == "Accepted" and pulled.schedule_update["setpoint"] == -7000.0
        assert pulled.schedule_update["discharge_limit_l2"] == -3000.0  # camel -> snake works inbound
    period = cp.seen[0][1]["charging_profile"]["charging_schedule"][0]["charging_schedule_period"][0]
    assert period["setpoint_l2"] == -2000.0 and period["discharge_limit_l3"] == -3000.0
    assert [a for a, _ in cp.seen] == ["SetChargingProfile", "UpdateDynamicSchedule", "NotifyAllowedEnergyTransfer",
                                       "AFRRSignal"]


async def test_what_the_ocpp_package_cannot_send(tmp_path: Path) -> None:
    """Evidence: the package's ChargePoint cannot send a per-phase V2X field. Its NotifyEVChargingNeeds with
    `max_discharge_power_l2` (V2XChargingParametersType.maxDischargePower_L2) is refused by its own validation
    (FormatViolation: 'maxDischargePowerL2' is no property) before anything reaches our CSMS, which stores no needs."""
    async with running_csms(f"sqlite:///{tmp_path / 'j.db'}") as csms, \
            their_station(csms_url(csms), "CS1", PASSWORD, version="2.1") as cp:
        with pytest.raises(OCPPError) as e:
            await cp.call(call.NotifyEVChargingNeeds(evse_id=1, charging_needs={
                "requested_energy_transfer": "AC_BPT",
                "v2x_charging_parameters": {"max_discharge_power": 7000.0, "max_discharge_power_l2": 2300.0}}),
                suppress=False)
        assert "maxDischargePowerL2" in str(e.value)
        await cp.call(call.Heartbeat(), suppress=False)  # the connection is fine; the CSMS saw no needs
        async with api_client(csms, "viewer") as api:
            assert (await api.get("/api/stations/CS1/charging-needs")).json() == []
