"""OCPP 2.1 V2X charging-profile rules, sans-I/O: operation modes, the fields each mode needs or forbids, and the
checks of SetChargingProfile (a station applies them, a CSMS applies them before sending), each failing with the
`SetChargingProfileResponse` status and reasonCode the specification gives.

The tables are the ones of the OCPP 2.1 specification as EVerest libocpp encodes them (operationMode per
chargingProfilePurpose, limits and setpoints per operationMode); requirement ids (K01.FR.xx, Q08.FR.xx, V2X.xx) name
each rule. Field names are the 2.1 JSON schema's (`dischargeLimit_L2`, never `dischargeLimitL2`). What a station
supports (SmartChargingCtrlr and V2XChargingCtrlr variables) is given as `Capabilities`; the defaults accept every
optional feature, which is what a CSMS checks before it knows a station's device model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, get_args

Payload = dict[str, Any]


class OperationMode(StrEnum):
    """OperationModeEnumType (2.1): what the EV does during a period; absent means ChargingOnly."""

    IDLE = "Idle"
    CHARGING_ONLY = "ChargingOnly"
    CENTRAL_SETPOINT = "CentralSetpoint"
    EXTERNAL_SETPOINT = "ExternalSetpoint"
    EXTERNAL_LIMITS = "ExternalLimits"
    CENTRAL_FREQUENCY = "CentralFrequency"
    LOCAL_FREQUENCY = "LocalFrequency"
    LOCAL_LOAD_BALANCING = "LocalLoadBalancing"


class Quantity(StrEnum):
    """The four period quantities an operation mode requires, allows or forbids (each with `_L2`/`_L3`)."""

    LIMIT = "limit"
    DISCHARGE_LIMIT = "dischargeLimit"
    SETPOINT = "setpoint"
    SETPOINT_REACTIVE = "setpointReactive"


EnergyTransferMode = Literal["AC_single_phase", "AC_two_phase", "AC_three_phase", "DC", "AC_BPT", "AC_BPT_DER",
                             "AC_DER", "DC_BPT", "DC_ACDP", "DC_ACDP_BPT", "WPT"]
"""EnergyTransferModeEnumType (2.1)."""
ENERGY_TRANSFER_MODES: tuple[str, ...] = get_args(EnergyTransferMode)
BIDIRECTIONAL = frozenset({"AC_BPT", "AC_BPT_DER", "DC_BPT", "DC_ACDP_BPT"})
"""Energy transfer modes in which the EV may give power back."""
CHARGING_ONLY = tuple(m for m in ENERGY_TRANSFER_MODES if m not in BIDIRECTIONAL)
"""What an AuthorizeResponse without `allowedEnergyTransfer` allows: "If omitted this defaults to charging only"."""
PHASE_SUFFIXES = ("", "_L2", "_L3")
ALL_MODES = frozenset(OperationMode)
TX_PURPOSES = frozenset({"TxProfile", "TxDefaultProfile"})


@functools.cache
def phase_fields(q: Quantity | str) -> tuple[str, str, str]:
    """The three field names of a quantity: total (or L1), L2, L3, spelled as the 2.1 schema does (cached: every
    composite period asks for them, a station of 100 EVSEs some 20,000 times a minute)."""
    return tuple(f"{q}{s}" for s in PHASE_SUFFIXES)  # type: ignore[return-value]


PER_PHASE_FIELDS: tuple[str, ...] = tuple(f for q in Quantity for f in phase_fields(q)[1:])
"""Every per-phase field of ChargingSchedulePeriodType (the ones the `ocpp` package misspells)."""

# "Table: operationMode for various ChargingProfilePurposes" (OCPP 2.1 part 2, K01; libocpp's Table 95).
PURPOSE_MODES: dict[str, frozenset[OperationMode]] = {
    "TxProfile": ALL_MODES,
    "TxDefaultProfile": ALL_MODES,
    "PriorityCharging": frozenset({OperationMode.CHARGING_ONLY}),
    "ChargingStationMaxProfile": frozenset({OperationMode.CHARGING_ONLY}),
    "ChargingStationExternalConstraints": frozenset({OperationMode.CHARGING_ONLY, OperationMode.EXTERNAL_LIMITS,
                                                     OperationMode.EXTERNAL_SETPOINT}),
    "LocalGeneration": frozenset({OperationMode.CHARGING_ONLY, OperationMode.EXTERNAL_LIMITS}),
}


@dataclass(frozen=True)
class ModeFields:
    """The quantities a period of one operation mode must carry and may carry; any other is refused."""

    required: frozenset[Quantity]
    optional: frozenset[Quantity] = frozenset()

    def allows(self, q: Quantity) -> bool:
        """Whether a period of this mode may carry `q` at all."""
        return q in self.required or q in self.optional


_Q = Quantity
# "Table: limits and setpoints per operation mode" (OCPP 2.1 part 2; Q08.FR.04, Q10.FR.01/02 among others).
MODE_FIELDS: dict[OperationMode, ModeFields] = {
    OperationMode.CHARGING_ONLY: ModeFields(frozenset({_Q.LIMIT})),
    OperationMode.CENTRAL_SETPOINT: ModeFields(frozenset({_Q.SETPOINT}),
                                               frozenset({_Q.LIMIT, _Q.DISCHARGE_LIMIT, _Q.SETPOINT_REACTIVE})),
    OperationMode.CENTRAL_FREQUENCY: ModeFields(frozenset({_Q.SETPOINT}), frozenset({_Q.LIMIT, _Q.DISCHARGE_LIMIT})),
    OperationMode.EXTERNAL_SETPOINT: ModeFields(frozenset(), frozenset({_Q.LIMIT, _Q.DISCHARGE_LIMIT})),
    OperationMode.LOCAL_FREQUENCY: ModeFields(frozenset()),
    OperationMode.EXTERNAL_LIMITS: ModeFields(frozenset()),
    OperationMode.LOCAL_LOAD_BALANCING: ModeFields(frozenset()),
    OperationMode.IDLE: ModeFields(frozenset()),
}

MAX_VALUE = {"W": 10_000_000.0, "A": 10_000.0}
"""Largest magnitude of a limit, setpoint or curve power (10 MW, 10 kA): beyond it a value is a mistake or an
attack (v2gstack's bound, as the station's smart charging has it)."""


@dataclass(frozen=True)
class Capabilities:
    """What a station supports of the optional 2.1 smart-charging features (its device model variables)."""

    rate_units: frozenset[str] = frozenset({"A", "W"})  # SmartChargingCtrlr.RateUnit
    supports_dynamic_profiles: bool = True  # SmartChargingCtrlr.SupportsDynamicProfiles
    supports_evse_sleep: bool = True  # SmartChargingCtrlr.SupportsEvseSleep
    supports_use_local_time: bool = True  # SmartChargingCtrlr.SupportsUseLocalTime
    supports_randomized_delay: bool = True  # SmartChargingCtrlr.SupportsRandomizedDelay
    supports_limit_at_soc: bool = True  # SmartChargingCtrlr.SupportsLimitAtSoC
    additional_purposes: frozenset[str] = frozenset({"PriorityCharging", "LocalGeneration"})
    operation_modes: frozenset[OperationMode] = ALL_MODES  # V2XChargingCtrlr.SupportedOperationModes
    dc: bool = False  # the EVSE is DC (numberPhases/phaseToUse then concern its AC input)
    dc_input_phase_control: bool = False  # EVSE.DCInputPhaseControl
    ac_phase_switching: bool = True  # SmartChargingCtrlr.ACPhaseSwitchingSupported
    supply_phases: int = 3  # ChargingStation.SupplyPhases
    max_external_constraints_id: int | None = None  # SmartChargingCtrlr.MaxExternalConstraintsId


class ProfileRejected(Exception):
    """A charging profile (or schedule update) that breaks a rule: `rule` names the requirement, `reason_code` is
    the statusInfo reasonCode (<= 20 characters), `info` says what is wrong, `path` where."""

    def __init__(self, rule: str, reason_code: str, info: str, path: str = "chargingProfile") -> None:
        super().__init__(f"{rule}: {info} ({path})")
        self.rule = rule
        self.reason_code = reason_code
        self.info = info
        self.path = path

    def status_info(self) -> Payload:
        """StatusInfoType for the Rejected answer: the reasonCode and, as additionalInfo, the rule and its text."""
        return {"reasonCode": self.reason_code, "additionalInfo": f"{self.rule}: {self.info} at {self.path}"[:1024]}

    def response(self) -> Payload:
        """The SetChargingProfileResponse (or UpdateDynamicScheduleResponse) a station answers."""
        return {"status": "Rejected", "statusInfo": self.status_info()}

    def to_dict(self) -> Payload:
        """The refusal as plain data (the CSMS API's 422 body)."""
        return {"rule": self.rule, "reasonCode": self.reason_code, "info": self.info, "path": self.path}


def mode_of(period: Payload) -> OperationMode:
    """A period's operation mode (absent: ChargingOnly)."""
    return OperationMode(period.get("operationMode", OperationMode.CHARGING_ONLY))


def set_charging_profile_response(evse_id: int, profile: Payload, caps: Capabilities | None = None) -> Payload:
    """The SetChargingProfileResponse a 2.1 station answers for `profile` as far as these rules decide."""
    try:
        check_profile(evse_id, profile, caps)
    except ProfileRejected as e:
        return e.response()
    return {"status": "Accepted"}


def check_profile(evse_id: int, profile: Payload, caps: Capabilities | None = None) -> None:
    """Every rule of a SetChargingProfile that the profile alone decides; ProfileRejected at the first broken one.

    The rules that need the station's state (an active transaction on the EVSE, stack levels of installed profiles,
    rate limits) are the station's: see `check_transaction` for the one a CSMS can check from what it knows."""
    caps = caps or Capabilities()
    purpose = profile["chargingProfilePurpose"]
    kind = profile["chargingProfileKind"]
    _check_purpose(evse_id, profile, purpose, kind, caps)
    schedules = profile["chargingSchedule"]
    if kind == "Dynamic" and (len(schedules) != 1 or len(schedules[0]["chargingSchedulePeriod"]) != 1):
        raise ProfileRejected("K28.FR.01", "InvalidSchedule",
                              "a Dynamic profile has exactly one schedule with one period", "chargingSchedule")
    for i, schedule in enumerate(schedules):
        _check_schedule(profile, schedule, f"chargingSchedule[{i}]", caps)


def check_transaction(profile: Payload, active: dict[int, str], evse_id: int) -> None:
    """K01.FR.09/33 as the CSMS knows them: a TxProfile names the transaction running on its EVSE."""
    if profile["chargingProfilePurpose"] != "TxProfile":
        return
    running = active.get(evse_id)
    if running is None:
        raise ProfileRejected("K01.FR.09", "TxNotFound", f"no transaction runs on EVSE {evse_id}")
    if profile.get("transactionId") not in (None, running):
        raise ProfileRejected("K01.FR.33", "TxNotFound",
                              f"transaction {profile['transactionId']} does not run on EVSE {evse_id}")


def _check_purpose(evse_id: int, profile: Payload, purpose: str, kind: str, caps: Capabilities) -> None:
    """The rules of the purpose and kind: where a profile may be set and what it may carry."""
    if purpose == "ChargingStationMaxProfile":
        if evse_id != 0:
            raise ProfileRejected("K01.FR.38", "InvalidValue", "a ChargingStationMaxProfile is set on evseId 0",
                                  "evseId")
        if kind == "Relative":
            raise ProfileRejected("K01.FR.38", "InvalidValue", "a ChargingStationMaxProfile is not Relative",
                                  "chargingProfile.chargingProfileKind")
    if purpose == "TxProfile":
        if evse_id <= 0:
            raise ProfileRejected("K01.FR.16", "InvalidValue", "a TxProfile is set on one EVSE (evseId > 0)", "evseId")
        if "transactionId" not in profile:
            raise ProfileRejected("K01.FR.03", "MissingParam", "a TxProfile names its transactionId",
                                  "chargingProfile.transactionId")
    elif "transactionId" in profile:
        raise ProfileRejected("K01.FR.03", "InvalidValue", "only a TxProfile names a transactionId",
                              "chargingProfile.transactionId")
    if purpose in ("PriorityCharging", "LocalGeneration") and purpose not in caps.additional_purposes:
        raise ProfileRejected("K01.FR.120", "UnsupportedPurpose", f"{purpose} is not supported",
                              "chargingProfile.chargingProfilePurpose")
    if kind == "Dynamic" and not caps.supports_dynamic_profiles:
        raise ProfileRejected("K01.FR.121", "UnsupportedKind", "Dynamic profiles are not supported",
                              "chargingProfile.chargingProfileKind")
    if kind != "Dynamic" and ("dynUpdateInterval" in profile or "dynUpdateTime" in profile):
        raise ProfileRejected("K01.FR.122", "InvalidProfile", "dynUpdateInterval/dynUpdateTime need a Dynamic profile",
                              "chargingProfile.dynUpdateInterval")
    limit = caps.max_external_constraints_id
    if limit is not None and purpose != "ChargingStationExternalConstraints" and profile["id"] <= limit:
        raise ProfileRejected("K01.FR.81", "InvalidProfileId",
                              f"ids up to {limit} are external constraints (MaxExternalConstraintsId)",
                              "chargingProfile.id")


def _check_schedule(profile: Payload, schedule: Payload, path: str, caps: Capabilities) -> None:
    """The rules of one ChargingScheduleType and its periods."""
    purpose, kind = profile["chargingProfilePurpose"], profile["chargingProfileKind"]
    unit = schedule["chargingRateUnit"]
    if unit not in caps.rate_units:
        raise ProfileRejected("K01.FR.26", "UnsupportedRateUnit", f"chargingRateUnit {unit} is not supported",
                              f"{path}.chargingRateUnit")
    delay = schedule.get("randomizedDelay")
    if delay and purpose not in TX_PURPOSES:
        raise ProfileRejected("K01.FR.95", "InvalidSchedule", "randomizedDelay only in a TxProfile or TxDefaultProfile",
                              f"{path}.randomizedDelay")
    if delay is not None and not caps.supports_randomized_delay:
        raise ProfileRejected("K01.FR.124", "InvalidSchedule", "randomizedDelay is not supported",
                              f"{path}.randomizedDelay")
    if schedule.get("useLocalTime") and not caps.supports_use_local_time:
        raise ProfileRejected("K01.FR.123", "InvalidSchedule", "useLocalTime is not supported",
                              f"{path}.useLocalTime")
    if "limitAtSoC" in schedule and not caps.supports_limit_at_soc:
        raise ProfileRejected("K01.FR.125", "InvalidSchedule", "limitAtSoC is not supported", f"{path}.limitAtSoC")
    if purpose == "PriorityCharging" and "duration" in schedule:
        raise ProfileRejected("K01.FR.70", "InvalidSchedule", "a PriorityCharging schedule has no duration",
                              f"{path}.duration")
    if kind in ("Absolute", "Recurring") and "startSchedule" not in schedule:
        raise ProfileRejected("K01.FR.40", "InvalidSchedule", f"an {kind} schedule has a startSchedule",
                              f"{path}.startSchedule")
    if kind == "Relative" and "startSchedule" in schedule:
        raise ProfileRejected("K01.FR.41", "InvalidSchedule", "a Relative schedule has no startSchedule",
                              f"{path}.startSchedule")
    for name in ("minChargingRate",):
        if name in schedule:
            _finite(schedule[name], unit, f"{path}.{name}")
    periods = schedule["chargingSchedulePeriod"]
    if periods[0]["startPeriod"] != 0:
        raise ProfileRejected("K01.FR.31", "InvalidSchedule", "the first period starts at 0",
                              f"{path}.chargingSchedulePeriod[0].startPeriod")
    for i in range(1, len(periods)):
        if periods[i]["startPeriod"] <= periods[i - 1]["startPeriod"]:
            raise ProfileRejected("K01.FR.35", "InvalidSchedule", "periods start in increasing order",
                                  f"{path}.chargingSchedulePeriod[{i}].startPeriod")
    for i, period in enumerate(periods):
        check_period(period, purpose, unit, caps, f"{path}.chargingSchedulePeriod[{i}]")


def check_period(period: Payload, purpose: str, unit: str, caps: Capabilities | None = None,
                 path: str = "chargingSchedulePeriod") -> None:
    """The rules of one ChargingSchedulePeriodType in a profile of `purpose` with `unit`."""
    caps = caps or _DEFAULT_CAPS
    phases, to_use = period.get("numberPhases"), period.get("phaseToUse")
    if to_use is not None and phases != 1:
        raise ProfileRejected("K01.FR.19", "InvalidSchedule", "phaseToUse only with numberPhases 1",
                              f"{path}.phaseToUse")
    if to_use is not None and not caps.ac_phase_switching:
        raise ProfileRejected("K01.FR.20", "InvalidSchedule", "phaseToUse needs ACPhaseSwitchingSupported",
                              f"{path}.phaseToUse")
    if caps.dc and (phases is not None or to_use is not None) and not caps.dc_input_phase_control:
        raise ProfileRejected("K01.FR.44", "NoPhaseForDC", "numberPhases/phaseToUse on a DC EVSE without "
                              "DCInputPhaseControl", f"{path}.numberPhases")
    if not caps.dc and phases is not None and phases > caps.supply_phases:
        raise ProfileRejected("K01.FR.45", "InvalidSchedule",
                              f"numberPhases {phases} exceeds the {caps.supply_phases} supply phases",
                              f"{path}.numberPhases")
    mode = mode_of(period)
    if purpose == "PriorityCharging" and mode is not OperationMode.CHARGING_ONLY:
        raise ProfileRejected("K01.FR.71", "InvalidSchedule", "a PriorityCharging period is ChargingOnly",
                              f"{path}.operationMode")
    allowed = PURPOSE_MODES.get(purpose, ALL_MODES)
    if mode not in allowed:
        raise ProfileRejected("OperationModePerPurpose", "InvalidSchedule",
                              f"operationMode {mode} is not allowed in a {purpose} (allowed: "
                              f"{', '.join(sorted(allowed))})", f"{path}.operationMode")
    if mode not in caps.operation_modes:
        raise ProfileRejected("SupportedOperationModes", "InvalidSchedule",
                              f"operationMode {mode} is not in V2XChargingCtrlr.SupportedOperationModes",
                              f"{path}.operationMode")
    if mode is OperationMode.LOCAL_FREQUENCY and unit != "W":
        raise ProfileRejected("Q08.FR.05", "UnsupportedRateUnit", "LocalFrequency periods are in W",
                              "chargingRateUnit")
    if period.get("evseSleep") and not caps.supports_evse_sleep:
        raise ProfileRejected("K01.FR.126", "InvalidSchedule", "evseSleep is not supported", f"{path}.evseSleep")
    for name in _VALUE_FIELDS:
        if name in period:
            _finite(period[name], unit, f"{path}.{name}")
    fields = MODE_FIELDS[mode]
    for q, names in _QUANTITY_FIELDS:
        present = [n for n in names if n in period]
        if q in fields.required and names[0] not in period:
            raise ProfileRejected("LimitsSetpointsPerMode", "InvalidSchedule",
                                  f"operationMode {mode} requires {q}", f"{path}.{q}")
        if present and not fields.allows(q):
            raise ProfileRejected("LimitsSetpointsPerMode", "InvalidSchedule",
                                  f"operationMode {mode} does not take {present[0]}", f"{path}.{present[0]}")
        if (names[1] in period or names[2] in period) and names[0] not in period:
            raise ProfileRejected("v2gstack:PhaseWithoutL1", "InvalidSchedule",
                                  f"{present[0]} is given without {names[0]} (L1)", f"{path}.{present[0]}")
    if mode is OperationMode.LOCAL_FREQUENCY and (len(period.get("v2xFreqWattCurve", ())) < 2
                                                  or "v2xBaseline" not in period):
        raise ProfileRejected("Q08.FR.02", "NoFreqWattCurve",
                              "LocalFrequency needs v2xBaseline and a v2xFreqWattCurve of at least 2 points",
                              f"{path}.v2xFreqWattCurve")
    _check_curve(period.get("v2xFreqWattCurve"), "frequency", unit, f"{path}.v2xFreqWattCurve")
    _check_curve(period.get("v2xSignalWattCurve"), "signal", unit, f"{path}.v2xSignalWattCurve")
    _check_signs(period, path)
    _check_setpoint_range(period, path)
    if purpose != "TxProfile":
        extra = next((f for f in PER_PHASE_FIELDS if f in period), None)
        if extra is not None:
            raise ProfileRejected("V2X.10", "InvalidSchedule", f"per-phase values ({extra}) only in a TxProfile",
                                  f"{path}.{extra}")


_DEFAULT_CAPS = Capabilities()
_QUANTITY_FIELDS = tuple((q, phase_fields(q)) for q in Quantity)  # (quantity, its three field names), built once
_VALUE_FIELDS = ("v2xBaseline", *(f for _, names in _QUANTITY_FIELDS for f in names))


def check_schedule_update(update: Payload, period: Payload, purpose: str = "TxProfile",
                          unit: str = "W") -> Payload:
    """K28: an UpdateDynamicSchedule's ChargingScheduleUpdateType applied to the Dynamic profile's one period;
    returns the updated period, or raises ProfileRejected when the result breaks the period rules."""
    merged = {**period, **{k: v for k, v in update.items() if k != "customData"}}
    check_period(merged, purpose, unit, path="scheduleUpdate")
    return merged


def _finite(value: Any, unit: str, path: str) -> None:
    """A number the station can act on: finite and within MAX_VALUE of its unit."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ProfileRejected("v2gstack:FiniteValue", "InvalidValue", f"{value!r} is not a finite number", path)
    if abs(value) > MAX_VALUE.get(unit, MAX_VALUE["W"]):
        raise ProfileRejected("v2gstack:FiniteValue", "ValueTooHigh",
                              f"{value:g} {unit} is beyond {MAX_VALUE[unit]:g} {unit}", path)


def _check_curve(points: Iterable[Payload] | None, axis: str, unit: str, path: str) -> None:
    """A frequency-watt or signal-watt curve is a function: its x values ascend strictly, its powers are finite."""
    if points is None:
        return
    last = -math.inf
    for i, point in enumerate(points):
        x = point[axis]
        _finite(x, "W", f"{path}[{i}].{axis}")
        _finite(point["power"], "W", f"{path}[{i}].power")
        if x <= last:
            raise ProfileRejected("v2gstack:CurveAscending", "InvalidSchedule",
                                  f"the curve's {axis} values ascend strictly", f"{path}[{i}].{axis}")
        last = x


def _check_signs(period: Payload, path: str) -> None:
    """Setpoints of L1, L2 and L3 charge or discharge together (libocpp: ChargingSchedulePeriodSignDifference)."""
    for q in (Quantity.SETPOINT, Quantity.SETPOINT_REACTIVE):
        values = [period[n] for n in phase_fields(q) if n in period]
        if any(v > 0 for v in values) and any(v < 0 for v in values):
            raise ProfileRejected("SetpointSignDifference", "InvalidSchedule",
                                  f"{q} values of the phases differ in sign", f"{path}.{q}")


def _check_setpoint_range(period: Payload, path: str) -> None:
    """V2X.05: a setpoint lies within [dischargeLimit, limit] of its phase, where those are given."""
    for sp, lim, dis in zip(phase_fields(Quantity.SETPOINT), phase_fields(Quantity.LIMIT),
                            phase_fields(Quantity.DISCHARGE_LIMIT), strict=True):
        if sp not in period:
            continue
        value = period[sp]
        if lim in period and value > period[lim] >= 0:
            raise ProfileRejected("V2X.05", "InvalidSchedule", f"{sp} {value:g} is above {lim} {period[lim]:g}",
                                  f"{path}.{sp}")
        if dis in period and value < period[dis]:
            raise ProfileRejected("V2X.05", "InvalidSchedule", f"{sp} {value:g} is below {dis} {period[dis]:g}",
                                  f"{path}.{sp}")


@dataclass(frozen=True)
class Rule:
    """One rule as documentation and tests list it: requirement id, reasonCode, what it says."""

    rule: str
    reason_code: str
    text: str


RULES: tuple[Rule, ...] = (
    Rule("K01.FR.03", "MissingParam", "a TxProfile names its transactionId; no other purpose does (InvalidValue)"),
    Rule("K01.FR.16", "InvalidValue", "a TxProfile is set on one EVSE (evseId > 0)"),
    Rule("K01.FR.38", "InvalidValue", "a ChargingStationMaxProfile is set on evseId 0 and is not Relative"),
    Rule("K01.FR.81", "InvalidProfileId", "ids up to MaxExternalConstraintsId are external constraints"),
    Rule("K01.FR.120", "UnsupportedPurpose", "PriorityCharging/LocalGeneration only if SupportedAdditionalPurposes"),
    Rule("K01.FR.121", "UnsupportedKind", "Dynamic only if SupportsDynamicProfiles"),
    Rule("K01.FR.122", "InvalidProfile", "dynUpdateInterval/dynUpdateTime only in a Dynamic profile"),
    Rule("K28.FR.01", "InvalidSchedule", "a Dynamic profile has one schedule with one period"),
    Rule("K01.FR.26", "UnsupportedRateUnit", "chargingRateUnit among SmartChargingCtrlr.RateUnit"),
    Rule("K01.FR.95", "InvalidSchedule", "randomizedDelay only in TxProfile/TxDefaultProfile"),
    Rule("K01.FR.123", "InvalidSchedule", "useLocalTime only if SupportsUseLocalTime"),
    Rule("K01.FR.124", "InvalidSchedule", "randomizedDelay only if SupportsRandomizedDelay"),
    Rule("K01.FR.125", "InvalidSchedule", "limitAtSoC only if SupportsLimitAtSoC"),
    Rule("K01.FR.70", "InvalidSchedule", "a PriorityCharging schedule has no duration"),
    Rule("K01.FR.40", "InvalidSchedule", "Absolute and Recurring schedules have a startSchedule"),
    Rule("K01.FR.41", "InvalidSchedule", "a Relative schedule has no startSchedule"),
    Rule("K01.FR.31", "InvalidSchedule", "the first period starts at 0"),
    Rule("K01.FR.35", "InvalidSchedule", "periods start in increasing order"),
    Rule("K01.FR.19", "InvalidSchedule", "phaseToUse only with numberPhases 1"),
    Rule("K01.FR.20", "InvalidSchedule", "phaseToUse only if ACPhaseSwitchingSupported"),
    Rule("K01.FR.44", "NoPhaseForDC", "no numberPhases/phaseToUse on a DC EVSE without DCInputPhaseControl"),
    Rule("K01.FR.45", "InvalidSchedule", "numberPhases at most the station's supply phases"),
    Rule("K01.FR.71", "InvalidSchedule", "PriorityCharging periods are ChargingOnly"),
    Rule("OperationModePerPurpose", "InvalidSchedule", "operationMode allowed for the purpose (PURPOSE_MODES)"),
    Rule("SupportedOperationModes", "InvalidSchedule", "operationMode among V2XChargingCtrlr.SupportedOperationModes"),
    Rule("Q08.FR.05", "UnsupportedRateUnit", "LocalFrequency periods are in W"),
    Rule("K01.FR.126", "InvalidSchedule", "evseSleep only if SupportsEvseSleep"),
    Rule("v2gstack:FiniteValue", "InvalidValue", "values are finite (ValueTooHigh: within 10 MW / 10 kA)"),
    Rule("LimitsSetpointsPerMode", "InvalidSchedule", "limits and setpoints per operationMode (MODE_FIELDS): "
                                                      "required ones "
                                         "present, forbidden ones absent"),
    Rule("v2gstack:PhaseWithoutL1", "InvalidSchedule", "an _L2/_L3 value comes with its L1 value"),
    Rule("Q08.FR.02", "NoFreqWattCurve", "LocalFrequency has v2xBaseline and >= 2 v2xFreqWattCurve points"),
    Rule("v2gstack:CurveAscending", "InvalidSchedule", "curve points ascend strictly in frequency (signal)"),
    Rule("SetpointSignDifference", "InvalidSchedule", "setpoints of L1/L2/L3 have one sign"),
    Rule("V2X.05", "InvalidSchedule", "a setpoint lies within [dischargeLimit, limit]"),
    Rule("V2X.10", "InvalidSchedule", "per-phase (_L2/_L3) values only in a TxProfile"),
    Rule("K01.FR.09", "TxNotFound", "a TxProfile's EVSE runs a transaction (K01.FR.33: the one it names)"),
)
"""Every rule the checks above apply, in the order they apply them (docs/v2x.md lists the same)."""
