"""The station's V2X parts without sockets: the target per operation mode (v2x_target.py), the curves, the meter
values per OCPP version (checked against the official schemas of each version through our engine), the simulated
meter's OCMF records as the CSMS verifies them, and the 2.1 charging needs a 2.0.1 CSMS gets."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from v2gstack.csms import signed_meter
from v2gstack.hardware import SimulatedGridFrequency, SimulatedHardware, ocmf
from v2gstack.ocpp import RpcEngine
from v2gstack.station import ChargingStation, StationConfig
from v2gstack.station.metering import queued_for, sampled_values
from v2gstack.station.v2x import charging_needs_for
from v2gstack.station.v2x_target import compute_target, curve_power

CURVE = [{"frequency": 49.8, "power": -10000.0}, {"frequency": 50.0, "power": 0.0},
         {"frequency": 50.2, "power": 10000.0}]
NOW = "2026-03-01T12:00:00Z"


def target(period: dict | None, *, can: bool = True, hz: float = 50.0, signal: int | None = None,
           external: float | None = None) -> tuple:
    t = compute_target(period, rating_w=11000.0, discharge_rating_w=11000.0, can_discharge=can, frequency_hz=hz,
                       afrr_signal=signal, external_setpoint_w=external)
    return t.mode, t.setpoint_w, t.import_limit_w, t.export_limit_w, t.source


def test_the_target_per_operation_mode() -> None:
    """Each mode's row of docs/v2x.md ("The station side"), worked out by hand."""
    assert target(None) == ("ChargingOnly", None, 11000.0, 11000.0, "EV")  # no profile: the 2.0.1 station's reach
    assert target({"limit": 5000.0}) == ("ChargingOnly", None, 5000.0, 0.0, "EV")
    assert target({"limit": -4000.0}) == ("ChargingOnly", None, 0.0, 4000.0, "EV")  # 2.0.1: a negative limit
    assert target({"operationMode": "CentralSetpoint", "setpoint": -7000.0, "dischargeLimit": -5000.0}) == (
        "CentralSetpoint", -5000.0, 11000.0, 5000.0, "CSMS")
    assert target({"operationMode": "CentralFrequency", "setpoint": 20000.0}) == (
        "CentralFrequency", 11000.0, 11000.0, 11000.0, "CSMS")  # within the rating
    assert target({"operationMode": "CentralSetpoint", "setpoint": -7000.0}, can=False) == (
        "CentralSetpoint", 0.0, 0.0, 0.0, "CSMS")  # an EV that cannot discharge: limited to the nearest, 0 W
    assert target({"operationMode": "CentralSetpoint", "setpoint": 6000.0}, can=False) == (
        "CentralSetpoint", 6000.0, 6000.0, 0.0, "CSMS")  # an EV that only charges is held by the limit
    assert target({"operationMode": "CentralSetpoint", "setpoint": -2000.0, "setpoint_L2": -2000.0,
                   "setpoint_L3": -1000.0}) == ("CentralSetpoint", -5000.0, 11000.0, 11000.0, "CSMS")  # phases add
    assert target({"operationMode": "ExternalSetpoint", "limit": 3000.0}, external=6000.0) == (
        "ExternalSetpoint", 3000.0, 3000.0, 11000.0, "External")
    assert target({"operationMode": "ExternalSetpoint"}) == ("ExternalSetpoint", None, 11000.0, 11000.0, "External")
    assert target({"operationMode": "ExternalLimits", "limit": 4000.0, "dischargeLimit": -1000.0}) == (
        "ExternalLimits", None, 4000.0, 1000.0, "EV")
    assert target({"operationMode": "LocalLoadBalancing", "limit": 6000.0}) == (
        "LocalLoadBalancing", None, 6000.0, 11000.0, "EV")
    local = {"operationMode": "LocalFrequency", "v2xBaseline": 500.0, "v2xFreqWattCurve": CURVE,
             "v2xSignalWattCurve": [{"signal": -100, "power": -4000.0}, {"signal": 100, "power": 4000.0}]}
    assert target(local, hz=49.9) == ("LocalFrequency", 500.0 - 5000.0, 11000.0, 11000.0, "LocalFrequency")
    assert target(local, hz=49.9, signal=-50)[1] == pytest.approx(500.0 - 5000.0 - 2000.0)
    assert target(local, hz=47.0)[1] == 500.0 - 10000.0  # flat beyond the curve's ends
    assert target({"operationMode": "Idle"}) == ("Idle", 0.0, 0.0, 0.0, "Idle")


def test_curves_interpolate_linearly_and_stay_flat_beyond_their_ends() -> None:
    assert curve_power(CURVE, "frequency", 50.1) == pytest.approx(5000.0)
    assert curve_power(list(reversed(CURVE)), "frequency", 49.95) == pytest.approx(-2500.0)  # order does not matter
    assert curve_power(CURVE, "frequency", 55.0) == 10000.0 and curve_power(CURVE, "frequency", 45.0) == -10000.0


def test_the_simulated_grid_frequency_steps_and_tells() -> None:
    grid = SimulatedGridFrequency(50.0)
    heard: list[float] = []
    grid.listeners.append(heard.append)
    grid.step(49.95)
    assert grid.frequency() == 49.95 and heard == [49.95]
    for bad in (float("inf"), float("nan"), 0.0, -50.0):
        with pytest.raises(ValueError):
            grid.step(bad)


def test_meter_values_per_version_are_schema_valid_and_signed_as_the_csms_checks() -> None:
    """A signed reading in 2.0.1 (publicKey present, empty) and 2.1 (publicKey only when asked; the setpoint) passes
    each version's MeterValues schema; the CSMS's check finds the records valid with the meter's key, and a 2.0.1
    CSMS never gets Power.Active.Setpoint."""
    clock = [0.0]
    hw = SimulatedHardware(clock=lambda: clock[0], meter_id="M-1")
    hw.set_power_limit(11000.0, 11000.0)
    hw.ac_draw(-7000.0 / 690.0, 3)
    clock[0] = 3600.0
    reading = hw.meter()
    assert round(reading.export_wh, 3) == 7000.0
    signed = hw.signed_reading(reading, NOW, "T")
    assert ocmf.verify(signed.record, hw.public_key()) is ocmf.Verdict.VALID
    for version, with_key in (("2.0.1", False), ("2.0.1", True), ("2.1", False), ("2.1", True)):
        values = sampled_values(reading, "Sample.Periodic", 55.0, version=version, setpoint_w=-7000.0, signed=signed,
                                public_key=with_key)
        RpcEngine(version).validate_request("MeterValues", {"evseId": 1, "meterValue": [
            {"timestamp": NOW, "sampledValue": values}]})
        measurands = {v["measurand"]: v for v in values}
        assert ("Power.Active.Setpoint" in measurands) is (version == "2.1")
        assert measurands["Energy.Active.Net"]["value"] == -7000.0
        for name in ("Energy.Active.Import.Register", "Energy.Active.Export.Register"):
            sv = measurands[name]
            assert ("publicKey" in sv["signedMeterValue"]) is (with_key or version == "2.0.1")
            assert signed_meter.verdict(sv, hw.public_key()) == "valid"
            assert signed_meter.verdict(sv, None) == ("validMessageKey" if with_key else "noKey")
        record = base64.b64decode(measurands["Energy.Active.Export.Register"]["signedMeterValue"]["signedMeterData"])
        assert ocmf.parse(record.decode()).readings_wh() == [0.0, 7000.0]
    other = SimulatedHardware(meter_id="M-2")
    sv = sampled_values(reading, "Trigger", signed=signed, version="2.1")[0]
    assert signed_meter.verdict(sv, other.public_key()) == "invalid"  # another meter's key


def test_a_201_csms_gets_the_charging_needs_without_21_fields() -> None:
    needs = {"evseId": 1, "timestamp": NOW, "maxScheduleTuples": 3, "chargingNeeds": {
        "requestedEnergyTransfer": "DC_BPT", "availableEnergyTransfer": ["DC", "DC_BPT"],
        "controlMode": "DynamicControl", "mobilityNeedsMode": "EVCC",
        "v2xChargingParameters": {"maxDischargePower": 11000.0},
        "dcChargingParameters": {"evMaxCurrent": 100, "evMaxVoltage": 400}}}
    assert charging_needs_for("2.1", needs) is needs
    RpcEngine("2.1").validate_request("NotifyEVChargingNeeds", needs)
    old = charging_needs_for("2.0.1", needs)
    RpcEngine("2.0.1").validate_request("NotifyEVChargingNeeds", old)
    assert old == {"evseId": 1, "maxScheduleTuples": 3, "chargingNeeds": {
        "requestedEnergyTransfer": "DC", "dcChargingParameters": {"evMaxCurrent": 100, "evMaxVoltage": 400}}}



def test_the_simulated_meter_keeps_its_key_in_the_state_folder(tmp_path: Path) -> None:
    """A meter keeps its key: the station's state folder holds it (owner-only), the device model publishes it, a
    restarted station signs with the same key; without a state folder every start makes a new one."""
    def key_of(state: Path | None) -> str:
        st = ChargingStation(StationConfig("CS1", "ws://127.0.0.1:1/ocpp", state_dir=state))
        key = st.model.value("FiscalMetering", "PublicKey", evse=1)
        assert key == st.hardware(1).public_key()  # type: ignore[attr-defined]
        st.queue.close()
        return key

    first = key_of(tmp_path)
    assert key_of(tmp_path) == first and (tmp_path / "meter-key-1.pem").stat().st_mode & 0o077 == 0
    assert key_of(None) != key_of(None)


def test_a_queued_21_event_goes_over_a_201_connection_without_21_fields() -> None:
    """A TransactionEvent queued while the link spoke 2.1 (operationMode, Power.Active.Setpoint, a signed value without
    the key), sent after the CSMS came back speaking 2.0.1: valid under 2.0.1's schema, 2.1's fields gone."""
    hw = SimulatedHardware(meter_id="M-1")
    reading = hw.meter()
    values = sampled_values(reading, "Sample.Periodic", version="2.1", setpoint_w=-7000.0,
                            signed=hw.signed_reading(reading, NOW, "T"))
    event = {"eventType": "Updated", "timestamp": NOW, "triggerReason": "OperationModeChanged", "seqNo": 3,
             "transactionInfo": {"transactionId": "tx-1", "operationMode": "CentralSetpoint"},
             "meterValue": [{"timestamp": NOW, "sampledValue": values},
                            {"timestamp": NOW, "sampledValue": [v for v in values
                                                                if v["measurand"] == "Power.Active.Setpoint"]}]}
    RpcEngine("2.1").validate_request("TransactionEvent", event)
    assert queued_for("TransactionEvent", event, "2.1") is event
    old = queued_for("TransactionEvent", event, "2.0.1")
    RpcEngine("2.0.1").validate_request("TransactionEvent", old)
    assert old["triggerReason"] == "ChargingStateChanged" and "operationMode" not in old["transactionInfo"]
    assert len(old["meterValue"]) == 1 and event["meterValue"][1]["sampledValue"]  # the original is untouched
    assert event["transactionInfo"]["operationMode"] == "CentralSetpoint" and event["triggerReason"] == \
        "OperationModeChanged" and len(event["meterValue"][0]["sampledValue"]) == len(values)
    assert all("signingMethod" in sv["signedMeterValue"] for sv in old["meterValue"][0]["sampledValue"]
               if "signedMeterValue" in sv)
