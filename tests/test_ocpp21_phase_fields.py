"""The `ocpp` package's known 2.1 naming bug is not ours: every per-phase field (`*_L2`, `*_L3`) the official OCPP 2.1
schemas define goes through our engine as the schema spells it and validates against the official schema with an
independent validator (`jsonschema`, not the engine's fastjsonschema). The package's own conversion is shown to
produce keys no schema has, which is why its ChargePoint cannot send these fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ocpp.charge_point import snake_to_camel_case

from v2gstack.ocpp import RpcEngine
from v2gstack.ocpp.engine import IncomingCall
from v2gstack.ocpp.schemas import ocpp_package_schema_root
from v2gstack.ocpp.v2x import PER_PHASE_FIELDS

SCHEMAS = ocpp_package_schema_root() / "v21" / "schemas"
T0 = "2026-03-01T12:00:00Z"


def _schema(name: str) -> dict[str, Any]:
    with open(SCHEMAS / f"{name}.json", encoding="utf-8-sig") as f:
        return json.load(f)


def per_phase_definitions() -> dict[str, set[str]]:
    """Every definition of every 2.1 schema that has per-phase properties: definition name -> those properties."""
    out: dict[str, set[str]] = {}
    for path in sorted(Path(SCHEMAS).glob("*.json")):
        with open(path, encoding="utf-8-sig") as f:
            schema = json.load(f)
        for name, definition in schema.get("definitions", {}).items():
            fields = {p for p in definition.get("properties", {}) if p.endswith(("_L2", "_L3"))}
            if fields:
                out.setdefault(name, set()).update(fields)
    return out


def _phased(names: list[str], value: float) -> dict[str, float]:
    """`name`, `name_L2` and `name_L3` for each name."""
    return {f"{n}{s}": value for n in names for s in ("", "_L2", "_L3")}


PERIOD = {"startPeriod": 0, "operationMode": "CentralSetpoint",
          **_phased(["limit"], 4000.0), **_phased(["dischargeLimit", "setpoint"], -2000.0),
          **_phased(["setpointReactive"], 100.0)}
UPDATE = {k: v for k, v in PERIOD.items() if k not in ("startPeriod", "operationMode")}
V2X_PARAMETERS = {**_phased(["minChargePower", "maxChargePower", "minDischargePower", "maxDischargePower"], 3700.0),
                  "minChargeCurrent": 6.0, "maxChargeCurrent": 16.0, "minVoltage": 200.0, "maxVoltage": 250.0,
                  "evMinV2XEnergyRequest": -5000.0, "evMaxV2XEnergyRequest": 20000.0}
DER_PARAMETERS = {**_phased(["maxChargeApparentPower", "maxDischargeApparentPower", "maxChargeReactivePower",
                             "minChargeReactivePower", "maxDischargeReactivePower", "minDischargeReactivePower"],
                            1000.0),
                  "evSupportedDERControl": ["FreqDroop"]}
CALLS: list[tuple[str, dict[str, Any]]] = [
    ("SetChargingProfile", {"evseId": 1, "chargingProfile": {
        "id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
        "transactionId": "tx-1",
        "chargingSchedule": [{"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [PERIOD]}]}}),
    ("UpdateDynamicSchedule", {"chargingProfileId": 1, "scheduleUpdate": UPDATE}),
    ("NotifyEVChargingNeeds", {"evseId": 1, "timestamp": T0, "chargingNeeds": {
        "requestedEnergyTransfer": "AC_BPT_DER", "controlMode": "DynamicControl",
        "v2xChargingParameters": V2X_PARAMETERS, "derChargingParameters": DER_PARAMETERS}}),
    ("NotifyEVChargingSchedule", {"timeBase": T0, "evseId": 1, "chargingSchedule": {
        "id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [
            {"startPeriod": 0, **_phased(["limit"], 3700.0)}]}}),
    ("NotifyChargingLimit", {"chargingLimit": {"chargingLimitSource": "EMS"}, "evseId": 1, "chargingSchedule": [
        {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [
            {"startPeriod": 0, "operationMode": "ExternalSetpoint", **_phased(["limit"], 3000.0),
             **_phased(["dischargeLimit"], -3000.0)}]}]}),
]
RESULTS: list[tuple[str, dict[str, Any]]] = [
    ("PullDynamicScheduleUpdate", {"status": "Accepted", "scheduleUpdate": UPDATE}),
    ("GetCompositeSchedule", {"status": "Accepted", "schedule": {
        "evseId": 1, "duration": 60, "scheduleStart": T0, "chargingRateUnit": "W",
        "chargingSchedulePeriod": [PERIOD]}}),
]


def _sent_keys(value: Any) -> set[str]:
    """Every object key anywhere in a JSON value."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _sent_keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _sent_keys(v)}
    return set()


@pytest.mark.parametrize(("action", "payload"), CALLS, ids=[a for a, _ in CALLS])
def test_per_phase_fields_go_out_as_the_schema_spells_them(action: str, payload: dict[str, Any]) -> None:
    """Our engine builds the CALL; the frame on the wire carries `dischargeLimit_L2` & co. unchanged and validates
    against the official request schema with jsonschema."""
    _, text = RpcEngine("2.1").make_call(action, payload)
    frame = json.loads(text)
    assert frame[0] == 2 and frame[2] == action and frame[3] == payload
    jsonschema.Draft7Validator(_schema(f"{action}Request")).validate(frame[3])
    assert any(k.endswith(("_L2", "_L3")) for k in _sent_keys(frame[3]))


@pytest.mark.parametrize(("action", "payload"), RESULTS, ids=[a for a, _ in RESULTS])
def test_per_phase_fields_in_our_answers(action: str, payload: dict[str, Any]) -> None:
    """The same for CALLRESULTs we answer (a station's GetCompositeSchedule, a CSMS's PullDynamicScheduleUpdate)."""
    text, error = RpcEngine("2.1").make_result(IncomingCall("m1", action, {}), payload)
    assert error is None
    frame = json.loads(text)
    assert frame[0] == 3 and frame[2] == payload
    jsonschema.Draft7Validator(_schema(f"{action}Response")).validate(frame[2])


def test_every_per_phase_field_of_the_21_schemas_is_covered() -> None:
    """The payloads above carry every per-phase property of every 2.1 definition that has one (whichever message
    uses it), and PER_PHASE_FIELDS names exactly those of ChargingSchedulePeriodType."""
    sent = set().union(*(_sent_keys(p) for _, p in CALLS + RESULTS))
    definitions = per_phase_definitions()
    assert {"ChargingSchedulePeriodType", "ChargingScheduleUpdateType", "V2XChargingParametersType",
            "DERChargingParametersType"} <= set(definitions)
    missing = {name: fields - sent for name, fields in definitions.items() if fields - sent}
    assert not missing
    assert set(PER_PHASE_FIELDS) == definitions["ChargingSchedulePeriodType"]


def test_the_ocpp_package_renames_per_phase_fields() -> None:
    """Evidence of the package's bug (ocpp 2.1.0, `charge_point.snake_to_camel_case`): its snake_case names of the
    per-phase fields, and even the schema's own spelling, come out as keys no 2.1 schema defines, so the package's
    ChargePoint refuses its own SetChargingProfile (its validation raises FormatViolation before sending)."""
    schema_keys = set().union(*per_phase_definitions().values())
    theirs = snake_to_camel_case({"discharge_limit_l2": 1, "setpoint_l3": 1, "max_discharge_power_l2": 1,
                                  "dischargeLimit_L2": 1})
    assert set(theirs) == {"dischargeLimitL2", "setpointL3", "maxDischargePowerL2"}
    assert not set(theirs) & schema_keys
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        jsonschema.Draft7Validator(_schema("UpdateDynamicScheduleRequest")).validate(
            {"chargingProfileId": 1, "scheduleUpdate": snake_to_camel_case({"discharge_limit_l2": -1.0})})
