"""ISO 15118-20 in OCPP terms (sans-I/O): what an EV's -20 needs become in NotifyEVChargingNeeds, and the EVSE's
composite schedule as -20 ScheduleTuples.

The request is made in OCPP 2.1's terms, which carry -20 natively (requestedEnergyTransfer AC_BPT / DC_BPT,
controlMode, mobilityNeedsMode, v2xChargingParameters); the station drops what 2.0.1 lacks for a 2.0.1 CSMS
(station/v2x.py charging_needs_for: DC_BPT becomes DC). So that a 2.0.1 CSMS keeps the -20 facts too (the energy
service and control mode, the SoC window, the energy requests, the EV's discharge limits), they also travel in
`chargingNeeds.customData` under our ISO facts vendor id. A negative composite limit (a TxProfile may carry one) is a
discharge: the charging schedule says 0 there; the discharging schedule offers what the station allows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...constants import ISO_FACTS_VENDOR
from ...iso15118.evse import SessionInfo
from ...iso15118.model20 import (
    ControlMode,
    EVACLimits,
    EVDCLimits,
    EVNeeds,
    Parameter,
    PowerEntry,
    PowerSchedule,
    PriceLevels,
    ScheduleTuple,
)
from ...times import rfc3339

Payload = dict[str, Any]


def _put(target: Payload, key: str, value: float | int | str | None, integer: bool = True) -> None:
    """Set `key` unless the value is unknown (ints where the OCPP schema wants integers)."""
    if value is not None:
        target[key] = round(value) if integer and not isinstance(value, str) else (
            float(value) if not isinstance(value, str) else value)


def charging_needs20(evse_id: int, info: SessionInfo, needs: EVNeeds, now: float, phase_voltage: float,
                     phases: int) -> Payload:
    """NotifyEVChargingNeedsRequest from the -20 session: the service's AC or DC parameters from
    {AC,DC}_ChargeParameterDiscoveryReq, the departure time and energy request from ScheduleExchangeReq, and in
    customData what 2.0.1 has no field for (`now` in epoch s; AC currents from the EV's power over `phases`)."""
    service = info.service
    dc = service.dc if service is not None else isinstance(info.ev_limits, EVDCLimits)
    mode = "DC" if dc else ("AC_three_phase" if phases == 3 else "AC_single_phase")
    if service is not None and service.bpt:
        mode = "DC_BPT" if dc else "AC_BPT"  # OCPP 2.1 (a 2.0.1 CSMS gets DC / AC_three_phase)
    chargeable: Payload = {"requestedEnergyTransfer": mode,
                           "controlMode": "DynamicControl" if needs.control_mode is ControlMode.DYNAMIC
                           else "ScheduledControl"}
    mobility = info.parameter_set.values.get(Parameter.MOBILITY_NEEDS_MODE) if info.parameter_set else None
    if mobility in (1, 2):
        chargeable["mobilityNeedsMode"] = "EVCC" if mobility == 1 else "EVCC_SECC"
    if needs.departure_time is not None:
        chargeable["departureTime"] = rfc3339(now + needs.departure_time, timespec="seconds")
    energy = needs.target_energy if needs.target_energy is not None else needs.max_energy
    ev = info.ev_limits
    if dc:
        params: Payload = {}
        if isinstance(ev, EVDCLimits):
            params = {"evMaxCurrent": int(ev.max_charge_current), "evMaxVoltage": int(ev.max_voltage)}
            _put(params, "evMaxPower", ev.max_charge_power)
        else:
            params = {"evMaxCurrent": 0, "evMaxVoltage": 0}
        _put(params, "energyAmount", energy)
        _put(params, "fullSoC", needs.target_soc)
        chargeable["dcChargingParameters"] = params
    else:
        per_amp = phase_voltage * phases
        params = {"energyAmount": int(energy or 0), "evMinCurrent": 0, "evMaxCurrent": 0,
                  "evMaxVoltage": round(phase_voltage)}
        if isinstance(ev, EVACLimits) and per_amp > 0:
            params["evMinCurrent"] = round(ev.min_charge_power / per_amp)
            params["evMaxCurrent"] = round(ev.max_charge_power / per_amp)
        chargeable["acChargingParameters"] = params
    chargeable["v2xChargingParameters"] = v2x_parameters(info, needs)
    chargeable["customData"] = iso20_needs_facts(info, needs)
    return {"evseId": evse_id, "chargingNeeds": chargeable}


def v2x_parameters(info: SessionInfo, needs: EVNeeds) -> Payload:
    """OCPP 2.1 V2XChargingParametersType from the EV's -20 limits and needs (W, A, V, Wh, %)."""
    out: Payload = {}
    ev = info.ev_limits
    if ev is not None:
        for key, value in (("minChargePower", ev.min_charge_power), ("maxChargePower", ev.max_charge_power),
                           ("minDischargePower", ev.min_discharge_power),
                           ("maxDischargePower", ev.max_discharge_power)):
            _put(out, key, value if value is None else abs(value), integer=False)
    if isinstance(ev, EVDCLimits):
        for key, value in (("minChargeCurrent", ev.min_charge_current), ("maxChargeCurrent", ev.max_charge_current),
                           ("minDischargeCurrent", ev.min_discharge_current),
                           ("maxDischargeCurrent", ev.max_discharge_current), ("minVoltage", ev.min_voltage),
                           ("maxVoltage", ev.max_voltage)):
            _put(out, key, value if value is None else abs(value), integer=False)
    for key, value in (("evTargetEnergyRequest", needs.target_energy), ("evMinEnergyRequest", needs.min_energy),
                       ("evMaxEnergyRequest", needs.max_energy), ("evMinV2XEnergyRequest", needs.min_v2x_energy),
                       ("evMaxV2XEnergyRequest", needs.max_v2x_energy)):
        _put(out, key, value, integer=False)
    _put(out, "targetSoC", needs.target_soc)
    return out


def iso20_needs_facts(info: SessionInfo, needs: EVNeeds) -> Payload:
    """The -20 facts of the EV's needs that OCPP 2.0.1 has no field for (W, A, Wh, %)."""
    facts: Payload = {"vendorId": ISO_FACTS_VENDOR}
    _put(facts, "energyService", info.service.name if info.service is not None else None)
    _put(facts, "controlMode", needs.control_mode.name.capitalize())
    for key, value in (("minSoC", needs.min_soc),
                       ("targetSoC", needs.target_soc), ("targetEnergy", needs.target_energy),
                       ("maxEnergy", needs.max_energy), ("minEnergy", needs.min_energy),
                       ("maxV2XEnergy", needs.max_v2x_energy), ("minV2XEnergy", needs.min_v2x_energy)):
        _put(facts, key, value)
    ev = info.ev_limits
    if ev is not None:
        _put(facts, "evMaxChargePower", ev.max_charge_power)
        _put(facts, "evMinChargePower", ev.min_charge_power)
        _put(facts, "evMaxDischargePower", ev.max_discharge_power)
        _put(facts, "evMinDischargePower", ev.min_discharge_power)
    if isinstance(ev, EVDCLimits):
        _put(facts, "evMaxDischargeCurrent", ev.max_discharge_current)
        _put(facts, "evMinVoltage", ev.min_voltage)
    return facts


FOLLOWED = frozenset({"CentralSetpoint", "CentralFrequency", "ExternalSetpoint", "LocalFrequency"})
"""OCPP 2.1 operation modes whose periods carry a setpoint the EV is to follow."""


def _period_powers(p: Payload, discharge_w: float | None, rating_w: float,
                   setpoint: float | None) -> tuple[float, float]:
    """(charging, discharging) power of one composite period for a ScheduleTuple (W, both >= 0): a setpoint (OCPP
    2.1) is the power in its direction and 0 in the other; without one, the limit (0 where negative: 2.0.1's
    discharge) and the discharge the station allows within the period's dischargeLimit; Idle: nothing."""
    down = max(0.0, discharge_w or 0.0)
    if p.get("operationMode") == "Idle":
        return 0.0, 0.0
    limit = float(p["limit"]) if "limit" in p else rating_w
    if "dischargeLimit" in p:
        down = min(down, max(0.0, -float(p["dischargeLimit"])))
    if setpoint is not None:
        return min(max(0.0, limit), max(0.0, setpoint)), min(down, max(0.0, -setpoint))
    return max(0.0, limit), down


def tuples_from_composite(periods: Sequence[Payload], duration: int, discharge_w: float | None,
                          rating_w: float = 0.0, setpoint_now: float | None = None) -> list[ScheduleTuple]:
    """One ScheduleTuple (id 1) of the composite schedule's periods (W; startPeriod s from now) for `duration` s.
    The charging schedule holds each period's charging power, the discharging schedule (BPT, with `discharge_w` the
    most the station allows) its discharging power: under a setpoint (OCPP 2.1 CentralSetpoint, CentralFrequency;
    the period in force takes `setpoint_now`, the station's target, which also covers LocalFrequency and
    ExternalSetpoint) the setpoint in its direction and 0 in the other; otherwise the limit (0 where negative: a
    discharge) and what the station allows back. A period without a limit (2.1) charges up to `rating_w`. Both
    carry a one-level PriceLevelSchedule (the station has no tariff of its own; some EVs refuse a schedule without
    prices)."""
    items = sorted(periods, key=lambda p: int(p["startPeriod"]))
    charging_entries, discharging_entries = [], []
    for i, p in enumerate(items):
        start = int(p["startPeriod"])
        if start >= duration:
            break
        end = min(duration, int(items[i + 1]["startPeriod"])) if i + 1 < len(items) else duration
        if end > start:
            setpoint = p.get("setpoint") if p.get("operationMode") in FOLLOWED else None
            if start == 0 and setpoint_now is not None:
                setpoint = setpoint_now
            up, down = _period_powers(p, discharge_w, rating_w, None if setpoint is None else float(setpoint))
            charging_entries.append(PowerEntry(end - start, up))
            discharging_entries.append(PowerEntry(end - start, down))
    if not charging_entries:
        charging_entries.append(PowerEntry(duration, 0.0))
        discharging_entries.append(PowerEntry(duration, max(0.0, discharge_w or 0.0)))
    charging = PowerSchedule(tuple(charging_entries), prices=PriceLevels(1, 1, ((duration, 0),)))
    discharging = None
    if discharge_w is not None:
        discharging = PowerSchedule(tuple(discharging_entries), prices=PriceLevels(2, 1, ((duration, 0),)))
    return [ScheduleTuple(1, charging, discharging)]


_SERVICE_MODES: dict[str, frozenset[str]] = {
    "AC": frozenset({"AC_single_phase", "AC_two_phase", "AC_three_phase"}),
    "AC_BPT": frozenset({"AC_BPT", "AC_BPT_DER"}),
}
"""-20 energy services whose OCPP 2.1 EnergyTransferMode names differ (the others share their name: DC, DC_BPT,
DC_ACDP, DC_ACDP_BPT, AC_DER, WPT)."""


def service_allowed(service: str, allowed: Sequence[str] | None) -> bool:
    """Whether the -20 energy service (EnergyService name) is among the OCPP 2.1 energy transfer modes the CSMS
    allows (NotifyAllowedEnergyTransfer; None: it did not say, everything is)."""
    if allowed is None:
        return True
    return bool(_SERVICE_MODES.get(service, frozenset({service})) & set(allowed))

