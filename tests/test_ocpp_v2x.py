"""OCPP 2.1 V2X rules (ocpp/v2x.py) and the composite schedule with discharge (ocpp/v2x_composite.py): every
validation rule with the reasonCode it answers, good profiles of every operation mode accepted and valid against the
official 2.1 schema, and composite schedules checked against expectations computed by hand."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from v2gstack.ocpp import RpcEngine
from v2gstack.ocpp.v2x import (
    MODE_FIELDS,
    PURPOSE_MODES,
    RULES,
    Capabilities,
    OperationMode,
    ProfileRejected,
    check_profile,
    check_schedule_update,
    check_transaction,
    set_charging_profile_response,
)
from v2gstack.ocpp.v2x_composite import CompositeTooLong, Electrical, composite_schedule

T0 = "2026-03-01T12:00:00Z"
T0_EPOCH = 1772366400.0
CURVE = [{"frequency": 49.8, "power": 11000.0}, {"frequency": 50.0, "power": 0.0},
         {"frequency": 50.2, "power": -11000.0}]
GOOD_PERIODS: dict[OperationMode, dict[str, Any]] = {
    OperationMode.CHARGING_ONLY: {"limit": 11000.0},
    OperationMode.CENTRAL_SETPOINT: {"setpoint": -7000.0, "limit": 11000.0, "dischargeLimit": -11000.0,
                                     "setpointReactive": 500.0},
    OperationMode.CENTRAL_FREQUENCY: {"setpoint": 3000.0, "dischargeLimit": -5000.0},
    OperationMode.EXTERNAL_SETPOINT: {"limit": 7000.0, "dischargeLimit": -7000.0},
    OperationMode.EXTERNAL_LIMITS: {},
    OperationMode.LOCAL_FREQUENCY: {"v2xBaseline": 0.0, "v2xFreqWattCurve": CURVE},
    OperationMode.LOCAL_LOAD_BALANCING: {},
    OperationMode.IDLE: {},
}


def tx_profile(period: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """A valid TxProfile (W, Absolute) with one period; `kw` replaces profile fields."""
    p = {"id": 10, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Absolute",
         "transactionId": "tx-1",
         "chargingSchedule": [{"id": 1, "startSchedule": T0, "chargingRateUnit": "W",
                               "chargingSchedulePeriod": [{"startPeriod": 0, "operationMode": "CentralSetpoint",
                                                           **(period or {"setpoint": -5000.0})}]}]}
    p.update(kw)
    return p


def schema_errors(action: str, payload: dict[str, Any]) -> None:
    """Raise unless `payload` is a valid 2.1 request of `action` (our engine, the official schema)."""
    RpcEngine("2.1").validate_request(action, payload)


@pytest.mark.parametrize("mode", list(OperationMode))
def test_every_mode_has_a_valid_tx_profile(mode: OperationMode) -> None:
    """A TxProfile period of each operation mode with the fields its row of the table allows is Accepted, and is a
    valid SetChargingProfileRequest of the 2.1 schema."""
    profile = tx_profile({"operationMode": mode.value, **GOOD_PERIODS[mode]})
    assert set_charging_profile_response(1, profile) == {"status": "Accepted"}
    schema_errors("SetChargingProfile", {"evseId": 1, "chargingProfile": profile})


def _mutate(profile: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `profile` with the dotted `path` (list indexes as numbers) set; value None deletes it."""
    out = copy.deepcopy(profile)
    *parents, last = path.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is None:
        del node[last]
    else:
        node[int(last) if last.isdigit() else last] = value
    return out


P0 = "chargingSchedule.0.chargingSchedulePeriod.0"
S0 = "chargingSchedule.0"
BAD: list[tuple[str, int, dict[str, Any], Capabilities | None, str, str]] = [
    # (case, evseId, profile, capabilities, rule, reasonCode)
    ("max profile on an EVSE", 1, tx_profile({"limit": 5.0, "operationMode": "ChargingOnly"},
                                             chargingProfilePurpose="ChargingStationMaxProfile", transactionId=None),
     None, "K01.FR.38", "InvalidValue"),
    ("TxProfile on evse 0", 0, tx_profile(), None, "K01.FR.16", "InvalidValue"),
    ("TxProfile without transactionId", 1, _mutate(tx_profile(), "transactionId", None), None, "K01.FR.03",
     "MissingParam"),
    ("transactionId on a TxDefaultProfile", 1, tx_profile(chargingProfilePurpose="TxDefaultProfile"), None,
     "K01.FR.03", "InvalidValue"),
    ("priority charging unsupported", 1, _mutate(tx_profile({"limit": 1.0, "operationMode": "ChargingOnly"},
                                                            chargingProfilePurpose="PriorityCharging"),
                                                 "transactionId", None),
     Capabilities(additional_purposes=frozenset()), "K01.FR.120", "UnsupportedPurpose"),
    ("dynamic unsupported", 1, tx_profile(chargingProfileKind="Dynamic"),
     Capabilities(supports_dynamic_profiles=False), "K01.FR.121", "UnsupportedKind"),
    ("dynUpdateInterval on Absolute", 1, tx_profile(dynUpdateInterval=60), None, "K01.FR.122", "InvalidProfile"),
    ("dynamic with two periods", 1, _mutate(tx_profile(chargingProfileKind="Dynamic"),
                                            "chargingSchedule.0.chargingSchedulePeriod",
                                            [{"startPeriod": 0, "limit": 1.0}, {"startPeriod": 10, "limit": 2.0}]),
     None, "K28.FR.01", "InvalidSchedule"),
    ("id of an external constraint", 1, tx_profile(id=3), Capabilities(max_external_constraints_id=5), "K01.FR.81",
     "InvalidProfileId"),
    ("rate unit A unsupported", 1, _mutate(tx_profile(), f"{S0}.chargingRateUnit", "A"),
     Capabilities(rate_units=frozenset({"W"})), "K01.FR.26", "UnsupportedRateUnit"),
    ("randomizedDelay on max profile", 0, _mutate(tx_profile({"limit": 5.0}, transactionId=None,
                                                             chargingProfilePurpose="ChargingStationMaxProfile"),
                                                  f"{S0}.randomizedDelay", 30), None, "K01.FR.95", "InvalidSchedule"),
    ("useLocalTime unsupported", 1, _mutate(tx_profile(), f"{S0}.useLocalTime", True),
     Capabilities(supports_use_local_time=False), "K01.FR.123", "InvalidSchedule"),
    ("randomizedDelay unsupported", 1, _mutate(tx_profile(), f"{S0}.randomizedDelay", 10),
     Capabilities(supports_randomized_delay=False), "K01.FR.124", "InvalidSchedule"),
    ("limitAtSoC unsupported", 1, _mutate(tx_profile(), f"{S0}.limitAtSoC", {"soc": 80, "limit": 3000.0}),
     Capabilities(supports_limit_at_soc=False), "K01.FR.125", "InvalidSchedule"),
    ("priority charging with duration", 1, _mutate(_mutate(tx_profile({"limit": 1.0}, transactionId=None,
                                                                      chargingProfilePurpose="PriorityCharging"),
                                                           f"{S0}.duration", 600), "transactionId", None),
     None, "K01.FR.70", "InvalidSchedule"),
    ("absolute without startSchedule", 1, _mutate(tx_profile(), f"{S0}.startSchedule", None), None, "K01.FR.40",
     "InvalidSchedule"),
    ("relative with startSchedule", 1, tx_profile(chargingProfileKind="Relative"), None, "K01.FR.41",
     "InvalidSchedule"),
    ("first period not at 0", 1, _mutate(tx_profile(), f"{P0}.startPeriod", 5), None, "K01.FR.31", "InvalidSchedule"),
    ("periods out of order", 1, _mutate(tx_profile(), f"{S0}.chargingSchedulePeriod",
                                        [{"startPeriod": 0, "limit": 5.0}, {"startPeriod": 0, "limit": 6.0}]),
     None, "K01.FR.35", "InvalidSchedule"),
    ("phaseToUse with 3 phases", 1, tx_profile({"setpoint": 5.0, "numberPhases": 3, "phaseToUse": 1}), None,
     "K01.FR.19", "InvalidSchedule"),
    ("phaseToUse without phase switching", 1, tx_profile({"setpoint": 5.0, "numberPhases": 1, "phaseToUse": 2}),
     Capabilities(ac_phase_switching=False), "K01.FR.20", "InvalidSchedule"),
    ("numberPhases on DC", 1, tx_profile({"setpoint": 5.0, "numberPhases": 3}), Capabilities(dc=True), "K01.FR.44",
     "NoPhaseForDC"),
    ("more phases than supplied", 1, tx_profile({"setpoint": 5.0, "numberPhases": 3}),
     Capabilities(supply_phases=1), "K01.FR.45", "InvalidSchedule"),
    ("priority charging not ChargingOnly", 1, _mutate(tx_profile(chargingProfilePurpose="PriorityCharging"),
                                                      "transactionId", None),
     None, "K01.FR.71", "InvalidSchedule"),
    ("setpoint in a max profile", 0, tx_profile(chargingProfilePurpose="ChargingStationMaxProfile",
                                                transactionId=None),
     None, "OperationModePerPurpose", "InvalidSchedule"),
    ("LocalFrequency in external constraints", 0,
     tx_profile({"operationMode": "LocalFrequency", **GOOD_PERIODS[OperationMode.LOCAL_FREQUENCY]},
                chargingProfilePurpose="ChargingStationExternalConstraints", transactionId=None),
     None, "OperationModePerPurpose", "InvalidSchedule"),
    ("mode the station lacks", 1, tx_profile(),
     Capabilities(operation_modes=frozenset({OperationMode.CHARGING_ONLY})), "SupportedOperationModes",
     "InvalidSchedule"),
    ("LocalFrequency in A", 1, _mutate(tx_profile({"operationMode": "LocalFrequency",
                                                   **GOOD_PERIODS[OperationMode.LOCAL_FREQUENCY]}),
                                       f"{S0}.chargingRateUnit", "A"), None, "Q08.FR.05", "UnsupportedRateUnit"),
    ("evseSleep unsupported", 1, tx_profile({"setpoint": 5.0, "evseSleep": True}),
     Capabilities(supports_evse_sleep=False), "K01.FR.126", "InvalidSchedule"),
    ("CentralSetpoint without setpoint", 1, tx_profile({"limit": 5000.0}), None, "LimitsSetpointsPerMode",
     "InvalidSchedule"),
    ("CentralFrequency without setpoint", 1, tx_profile({"operationMode": "CentralFrequency", "limit": 5.0}), None,
     "LimitsSetpointsPerMode", "InvalidSchedule"),
    ("ChargingOnly without limit", 1, tx_profile({"operationMode": "ChargingOnly"}), None, "LimitsSetpointsPerMode",
     "InvalidSchedule"),
    ("ChargingOnly with a setpoint", 1, tx_profile({"operationMode": "ChargingOnly", "limit": 5.0, "setpoint": 1.0}),
     None, "LimitsSetpointsPerMode", "InvalidSchedule"),
    ("Idle with a limit", 1, tx_profile({"operationMode": "Idle", "limit": 0.0}), None, "LimitsSetpointsPerMode",
     "InvalidSchedule"),
    ("ExternalLimits with a dischargeLimit", 1, tx_profile({"operationMode": "ExternalLimits",
                                                            "dischargeLimit": -1.0}), None,
     "LimitsSetpointsPerMode", "InvalidSchedule"),
    ("ExternalSetpoint with a setpoint", 1, tx_profile({"operationMode": "ExternalSetpoint", "setpoint": 1.0}), None,
     "LimitsSetpointsPerMode", "InvalidSchedule"),
    ("CentralFrequency with setpointReactive", 1, tx_profile({"operationMode": "CentralFrequency", "setpoint": 1.0,
                                                              "setpointReactive": 1.0}), None,
     "LimitsSetpointsPerMode", "InvalidSchedule"),
    ("LocalLoadBalancing with a limit", 1, tx_profile({"operationMode": "LocalLoadBalancing", "limit": 1.0}), None,
     "LimitsSetpointsPerMode", "InvalidSchedule"),
    ("L2 without L1", 1, tx_profile({"setpoint": 1.0, "limit_L2": 3.0}), None, "v2gstack:PhaseWithoutL1",
     "InvalidSchedule"),
    ("LocalFrequency with one point", 1, tx_profile({"operationMode": "LocalFrequency", "v2xBaseline": 0.0,
                                                     "v2xFreqWattCurve": CURVE[:1]}), None, "Q08.FR.02",
     "NoFreqWattCurve"),
    ("LocalFrequency without baseline", 1, tx_profile({"operationMode": "LocalFrequency",
                                                       "v2xFreqWattCurve": CURVE}), None, "Q08.FR.02",
     "NoFreqWattCurve"),
    ("curve not ascending", 1, tx_profile({"operationMode": "LocalFrequency", "v2xBaseline": 0.0,
                                           "v2xFreqWattCurve": CURVE[::-1]}), None, "v2gstack:CurveAscending",
     "InvalidSchedule"),
    ("setpoint signs differ", 1, tx_profile({"setpoint": 1000.0, "setpoint_L2": -1000.0, "setpoint_L3": 1000.0}),
     None, "SetpointSignDifference", "InvalidSchedule"),
    ("setpoint above limit", 1, tx_profile({"setpoint": 8000.0, "limit": 5000.0}), None, "V2X.05", "InvalidSchedule"),
    ("setpoint below dischargeLimit", 1, tx_profile({"setpoint": -5000.0, "dischargeLimit": -3000.0}), None, "V2X.05",
     "InvalidSchedule"),
    ("L3 setpoint below its dischargeLimit", 1, tx_profile({"setpoint": -1000.0, "setpoint_L2": -1000.0,
                                                            "setpoint_L3": -3000.0, "dischargeLimit": -2000.0,
                                                            "dischargeLimit_L2": -2000.0,
                                                            "dischargeLimit_L3": -2000.0}), None, "V2X.05",
     "InvalidSchedule"),
    ("per-phase values in a TxDefaultProfile", 1,
     _mutate(tx_profile({"setpoint": -1000.0, "dischargeLimit": -2000.0, "dischargeLimit_L2": -2000.0},
                        chargingProfilePurpose="TxDefaultProfile"), "transactionId", None), None, "V2X.10",
     "InvalidSchedule"),
    ("huge setpoint", 1, tx_profile({"setpoint": -1e9}), None, "v2gstack:FiniteValue", "ValueTooHigh"),
]


@pytest.mark.parametrize(("case", "evse", "profile", "caps", "rule", "reason"), BAD, ids=[b[0] for b in BAD])
def test_every_rule_rejects_with_its_reason_code(case: str, evse: int, profile: dict[str, Any],
                                                 caps: Capabilities | None, rule: str, reason: str) -> None:
    """Each broken rule gives Rejected with the reasonCode of the specification; the same profile with the
    capability (or the field) it lacked passes that rule. The payload still fits the schema: these are the rules the
    schema cannot express."""
    profile = {k: v for k, v in profile.items() if v is not None}
    with pytest.raises(ProfileRejected) as e:
        check_profile(evse, profile, caps)
    assert (e.value.rule, e.value.reason_code) == (rule, reason), e.value
    answer = set_charging_profile_response(evse, profile, caps)
    assert answer["status"] == "Rejected" and answer["statusInfo"]["reasonCode"] == reason
    assert len(answer["statusInfo"]["reasonCode"]) <= 20 and rule in answer["statusInfo"]["additionalInfo"]
    schema_errors("SetChargingProfile", {"evseId": evse, "chargingProfile": profile})


def test_the_rule_table_lists_every_rule_the_tests_break() -> None:
    """RULES (what docs/v2x.md lists) names every rule a test above breaks, and each once."""
    names = [r.rule for r in RULES]
    assert len(names) == len(set(names))
    assert {b[4] for b in BAD} <= set(names)


def test_tables_as_libocpp_encodes_them() -> None:
    """The two tables: ChargingStationMaxProfile and PriorityCharging only ChargingOnly, external constraints with
    ExternalLimits/ExternalSetpoint, Tx purposes everything; CentralSetpoint needs a setpoint and may carry
    limit, dischargeLimit and setpointReactive."""
    assert PURPOSE_MODES["ChargingStationMaxProfile"] == {OperationMode.CHARGING_ONLY}
    assert PURPOSE_MODES["LocalGeneration"] == {OperationMode.CHARGING_ONLY, OperationMode.EXTERNAL_LIMITS}
    assert len(PURPOSE_MODES["TxDefaultProfile"]) == 8
    central = MODE_FIELDS[OperationMode.CENTRAL_SETPOINT]
    assert {q.value for q in central.required} == {"setpoint"}
    assert {q.value for q in central.optional} == {"limit", "dischargeLimit", "setpointReactive"}


def test_transaction_rule_and_schedule_updates() -> None:
    """K01.FR.09/33 from the CSMS's view of running transactions; K28 updates must fit the period's mode."""
    with pytest.raises(ProfileRejected) as e:
        check_transaction(tx_profile(), {}, 1)
    assert e.value.reason_code == "TxNotFound"
    with pytest.raises(ProfileRejected) as e:
        check_transaction(tx_profile(), {1: "tx-2"}, 1)
    assert e.value.rule == "K01.FR.33"
    check_transaction(tx_profile(), {1: "tx-1"}, 1)
    period = {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -3000.0, "dischargeLimit": -5000.0}
    assert check_schedule_update({"setpoint": -4000.0}, period)["setpoint"] == -4000.0
    with pytest.raises(ProfileRejected) as e:
        check_schedule_update({"setpoint": -6000.0}, period)  # beyond the period's dischargeLimit
    assert e.value.rule == "V2X.05"


# ----------------------------------------------------------------------------------------------- composite


def profile(pid: int, purpose: str, periods: list[dict[str, Any]], *, unit: str = "W", level: int = 0,
            start: str = T0, duration: int | None = None, **kw: Any) -> dict[str, Any]:
    """An Absolute profile starting at `start`."""
    schedule: dict[str, Any] = {"id": pid, "startSchedule": start, "chargingRateUnit": unit,
                                "chargingSchedulePeriod": periods}
    if duration is not None:
        schedule["duration"] = duration
    return {"id": pid, "stackLevel": level, "chargingProfilePurpose": purpose, "chargingProfileKind": "Absolute",
            "chargingSchedule": [schedule], **kw}


def periods_of(items: list[tuple[int, dict[str, Any]]], duration: int, unit: str = "W",
               **kw: Any) -> list[dict[str, Any]]:
    """The composite periods of EVSE 1 (transaction tx-1) from T0; every profile is first checked by the rules."""
    for evse, p in items:
        check_profile(evse, p)
    out = composite_schedule(items, 1, T0_EPOCH, duration, unit, tx_id="tx-1", **kw)
    assert out["scheduleStart"] == T0 and out["evseId"] == 1
    schema_errors("NotifyEVChargingSchedule", {"timeBase": T0, "evseId": 1, "chargingSchedule": {
        "id": 1, "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{k: v for k, v in p.items() if k in ("startPeriod", "limit", "limit_L2",
                                                                         "limit_L3")} for p in
                                   out["chargingSchedulePeriod"]]}})
    return out["chargingSchedulePeriod"]


def test_composite_least_negative_discharge_limit_wins_and_setpoints_are_clipped() -> None:
    """Tx: 0-600 s CentralSetpoint setpoint -8 kW, limit 11 kW, dischargeLimit -10 kW; from 600 s setpoint +5 kW,
    limit 11 kW. Max profile: 7 kW. External constraints (0-300 s): ExternalSetpoint limit 9 kW, dischargeLimit -6 kW.

    By hand:
      0-300:   limit min(11, 7, 9) = 7 kW; dischargeLimit max(-10, -6) = -6 kW; setpoint -8 kW clipped to -6 kW.
      300-600: constraints over: limit min(11, 7) = 7 kW; dischargeLimit -10 kW; setpoint -8 kW stays.
      600-900: limit 7 kW; no period gives a dischargeLimit; setpoint +5 kW is below 7 kW and stays.
    """
    items = [
        (1, profile(1, "TxProfile", [
            {"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -8000.0, "limit": 11000.0,
             "dischargeLimit": -10000.0},
            {"startPeriod": 600, "operationMode": "CentralSetpoint", "setpoint": 5000.0, "limit": 11000.0}],
            transactionId="tx-1")),
        (0, profile(2, "ChargingStationMaxProfile", [{"startPeriod": 0, "limit": 7000.0}])),
        (0, profile(3, "ChargingStationExternalConstraints", [
            {"startPeriod": 0, "operationMode": "ExternalSetpoint", "limit": 9000.0, "dischargeLimit": -6000.0}],
            duration=300)),
    ]
    assert periods_of(items, 900) == [
        {"startPeriod": 0, "operationMode": "CentralSetpoint", "limit": 7000.0, "dischargeLimit": -6000.0,
         "setpoint": -6000.0},
        {"startPeriod": 300, "operationMode": "CentralSetpoint", "limit": 7000.0, "dischargeLimit": -10000.0,
         "setpoint": -8000.0},
        {"startPeriod": 600, "operationMode": "CentralSetpoint", "limit": 7000.0, "setpoint": 5000.0},
    ]


def test_composite_per_phase_values() -> None:
    """Tx (per phase, W): setpoints -2500/-3000/-1000, dischargeLimits -2500/-4000/-4000, limits 4000 each.
    Max profile 9000 W total over 3 phases = 3000 W per phase; external constraints dischargeLimit -6000 W total =
    -2000 W per phase.

    By hand, phase by phase: limit min(4000, 3000) = 3000; dischargeLimit L1 max(-2500, -2000) = -2000, L2 and L3
    max(-4000, -2000) = -2000; setpoint L1 -2500 -> -2000, L2 -3000 -> -2000, L3 -1000 stays.
    """
    items = [
        (1, profile(1, "TxProfile", [{
            "startPeriod": 0, "operationMode": "CentralSetpoint",
            "setpoint": -2500.0, "setpoint_L2": -3000.0, "setpoint_L3": -1000.0,
            "dischargeLimit": -2500.0, "dischargeLimit_L2": -4000.0, "dischargeLimit_L3": -4000.0,
            "limit": 4000.0, "limit_L2": 4000.0, "limit_L3": 4000.0}], transactionId="tx-1")),
        (0, profile(2, "ChargingStationMaxProfile", [{"startPeriod": 0, "limit": 9000.0}])),
        (0, profile(3, "ChargingStationExternalConstraints", [
            {"startPeriod": 0, "operationMode": "ExternalSetpoint", "dischargeLimit": -6000.0}])),
    ]
    assert periods_of(items, 600) == [{
        "startPeriod": 0, "operationMode": "CentralSetpoint",
        "limit": 3000.0, "limit_L2": 3000.0, "limit_L3": 3000.0,
        "dischargeLimit": -2000.0, "dischargeLimit_L2": -2000.0, "dischargeLimit_L3": -2000.0,
        "setpoint": -2000.0, "setpoint_L2": -2000.0, "setpoint_L3": -1000.0}]


def test_composite_converts_amperes_to_watts() -> None:
    """TxDefaultProfile in A on 3 phases: setpoint -16 A, dischargeLimit -20 A; external constraints in W with
    dischargeLimit -6900 W; the composite in W at 230 V.

    By hand: setpoint -16 x 230 x 3 = -11040 W; dischargeLimit max(-20 x 690 = -13800, -6900) = -6900 W, so the
    setpoint is clipped to -6900 W; the Max profile's 11000 W is the limit; numberPhases 3 is reported.
    """
    items = [
        (1, profile(1, "TxDefaultProfile", [{"startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -16.0,
                                             "dischargeLimit": -20.0, "numberPhases": 3}], unit="A")),
        (0, profile(2, "ChargingStationMaxProfile", [{"startPeriod": 0, "limit": 11000.0}])),
        (0, profile(3, "ChargingStationExternalConstraints", [
            {"startPeriod": 0, "operationMode": "ExternalSetpoint", "dischargeLimit": -6900.0}])),
    ]
    assert periods_of(items, 60, electrical=Electrical(230.0)) == [
        {"startPeriod": 0, "operationMode": "CentralSetpoint", "limit": 11000.0, "dischargeLimit": -6900.0,
         "setpoint": -6900.0, "numberPhases": 3}]


def test_composite_idle_priority_charging_and_curves() -> None:
    """Tx: Idle 0-300 s, then ChargingOnly 5 kW. PriorityCharging (from 100 s) ChargingOnly 8 kW overrides it.
    Max profile 7 kW. A TxDefaultProfile of EVSE 1 (LocalFrequency) is overridden by the TxProfile throughout.

    By hand: 0-100 Idle: limit 0 and dischargeLimit 0 (no power transfer); from 100 the PriorityCharging period
    rules: limit min(8, 7) = 7 kW, ChargingOnly; the TxProfile's change at 300 s changes nothing while it rules.
    Without the TxProfile and priority charging, the LocalFrequency period rules, carrying its baseline and curve
    with the Max profile's 7 kW limit.
    """
    tx = (1, profile(1, "TxProfile", [{"startPeriod": 0, "operationMode": "Idle"},
                                      {"startPeriod": 300, "limit": 5000.0}], transactionId="tx-1"))
    priority = (1, profile(2, "PriorityCharging", [{"startPeriod": 0, "limit": 8000.0}],
                           start="2026-03-01T12:01:40Z"))
    maximum = (0, profile(3, "ChargingStationMaxProfile", [{"startPeriod": 0, "limit": 7000.0}]))
    local = (1, profile(4, "TxDefaultProfile", [{"startPeriod": 0, "operationMode": "LocalFrequency",
                                                 "v2xBaseline": 1000.0, "v2xFreqWattCurve": CURVE}]))
    assert periods_of([tx, priority, maximum, local], 600) == [
        {"startPeriod": 0, "operationMode": "Idle", "limit": 0.0, "dischargeLimit": 0.0},
        {"startPeriod": 100, "limit": 7000.0},
    ]
    assert periods_of([maximum, local], 600) == [
        {"startPeriod": 0, "operationMode": "LocalFrequency", "limit": 7000.0, "v2xBaseline": 1000.0,
         "v2xFreqWattCurve": CURVE}]


def test_composite_is_bounded() -> None:
    """A recurring profile of many periods over a long window stops at max_periods (GetCompositeSchedule answers
    ValueTooHigh) instead of computing a huge schedule."""
    periods = [{"startPeriod": 60 * i, "limit": float(1000 + (i % 2) * 1000)} for i in range(24)]
    recurring = profile(1, "TxDefaultProfile", periods, chargingProfileKind="Recurring", recurrencyKind="Daily")
    with pytest.raises(CompositeTooLong):
        composite_schedule([(1, recurring)], 1, T0_EPOCH, 86400 * 365, "W", max_periods=50)
