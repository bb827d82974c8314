"""ISO 15118-20 AC messages in the EXI JSON view (namespace `iso20_ac`): AC_ChargeParameterDiscovery (plain and BPT)
and AC_ChargeLoop in its four control modes (Scheduled, Dynamic, BPT_Scheduled, BPT_Dynamic).

Powers are totals over the phases (we send no _L2/_L3 values and read only the total); the EV's present power and
the EVSE's target are signed (negative: discharge), limits are magnitudes.
"""

from __future__ import annotations

from ..model20 import (
    ACLimits20,
    ACLoopAnswer,
    ControlMode,
    DynamicSchedule,
    EVACLimits,
    LoopRequest,
    LoopStatus,
    MeterReading20,
)
from .iso20_loop import (
    dynamic_fields,
    energy_requests,
    find_loop_mode,
    loop_mode_name,
    loop_res_head,
    read_energy_requests,
)
from .iso20_types import (
    Body,
    display_parameters,
    magnitude,
    need,
    number,
    put,
    rational,
    read_evse_status,
    read_meter_info,
)

# ----- AC_ChargeParameterDiscovery -----

def ac_cpd_req(ev: EVACLimits, bpt: bool) -> Body:
    """AC_ChargeParameterDiscoveryReq (BPT_AC_CPDReqEnergyTransferMode for BPT)."""
    mode: Body = {"EVMaximumChargePower": rational(ev.max_charge_power),
                  "EVMinimumChargePower": rational(ev.min_charge_power)}
    if bpt:
        mode["EVMaximumDischargePower"] = rational(ev.max_discharge_power or 0.0)
        mode["EVMinimumDischargePower"] = rational(ev.min_discharge_power or 0.0)
        return {"BPT_AC_CPDReqEnergyTransferMode": mode}
    return {"AC_CPDReqEnergyTransferMode": mode}


def read_ac_cpd_req(body: Body) -> tuple[EVACLimits, bool]:
    """(the EV's limits, BPT)."""
    bpt = "BPT_AC_CPDReqEnergyTransferMode" in body
    m = body["BPT_AC_CPDReqEnergyTransferMode" if bpt else "AC_CPDReqEnergyTransferMode"]
    return EVACLimits(abs(need(m["EVMaximumChargePower"])), abs(need(m["EVMinimumChargePower"])),
                      magnitude(m.get("EVMaximumDischargePower")), magnitude(m.get("EVMinimumDischargePower"))), bpt


def ac_cpd_res(code: str, limits: ACLimits20, bpt: bool) -> Body:
    """AC_ChargeParameterDiscoveryRes."""
    mode: Body = {"EVSEMaximumChargePower": rational(limits.max_charge_power),
                  "EVSEMinimumChargePower": rational(limits.min_charge_power),
                  "EVSENominalFrequency": rational(limits.nominal_frequency)}
    put(mode, "EVSEPresentActivePower", limits.present_power)
    if bpt:
        mode["EVSEMaximumDischargePower"] = rational(limits.max_discharge_power or 0.0)
        mode["EVSEMinimumDischargePower"] = rational(limits.min_discharge_power or 0.0)
        return {"ResponseCode": code, "BPT_AC_CPDResEnergyTransferMode": mode}
    return {"ResponseCode": code, "AC_CPDResEnergyTransferMode": mode}


def read_ac_cpd_res(body: Body) -> tuple[ACLimits20, bool]:
    """(the EVSE's limits, BPT)."""
    bpt = "BPT_AC_CPDResEnergyTransferMode" in body
    m = body["BPT_AC_CPDResEnergyTransferMode" if bpt else "AC_CPDResEnergyTransferMode"]
    return ACLimits20(abs(need(m["EVSEMaximumChargePower"])), abs(need(m["EVSEMinimumChargePower"])),
                      need(m["EVSENominalFrequency"]), magnitude(m.get("EVSEMaximumDischargePower")),
                      magnitude(m.get("EVSEMinimumDischargePower")), number(m.get("EVSEPresentActivePower"))), bpt


# ----- AC_ChargeLoop -----

def ac_loop_req(r: LoopRequest) -> Body:
    """AC_ChargeLoopReq in the request's control mode."""
    dynamic = r.control_mode is ControlMode.DYNAMIC
    mode: Body = {}
    energy_requests(mode, r.energy, dynamic)
    if dynamic:
        mode["EVMaximumChargePower"] = rational(r.max_charge_power or 0.0)
        mode["EVMinimumChargePower"] = rational(r.min_charge_power or 0.0)
    else:
        put(mode, "EVMaximumChargePower", r.max_charge_power)
        put(mode, "EVMinimumChargePower", r.min_charge_power)
    mode["EVPresentActivePower"] = rational(r.present_power or 0.0)
    if dynamic:
        mode["EVPresentReactivePower"] = rational(0.0)
    if r.bpt:
        if dynamic:
            mode["EVMaximumDischargePower"] = rational(r.max_discharge_power or 0.0)
            mode["EVMinimumDischargePower"] = rational(r.min_discharge_power or 0.0)
            if r.energy is not None and r.energy.max_v2x is not None and r.energy.min_v2x is not None:
                mode["EVMaximumV2XEnergyRequest"] = rational(r.energy.max_v2x)
                mode["EVMinimumV2XEnergyRequest"] = rational(r.energy.min_v2x)
        else:
            put(mode, "EVMaximumDischargePower", r.max_discharge_power)
            put(mode, "EVMinimumDischargePower", r.min_discharge_power)
    out: Body = {}
    display = display_parameters(r.soc, complete=r.charging_complete)
    if display:
        out["DisplayParameters"] = display
    out["MeterInfoRequested"] = r.meter_requested
    out[loop_mode_name(r.control_mode, r.bpt, False, True)] = mode
    return out


def read_ac_loop_req(body: Body) -> LoopRequest:
    """The EV's AC_ChargeLoopReq."""
    mode, bpt, m = find_loop_mode(body, False, True)
    display = body.get("DisplayParameters") or {}
    return LoopRequest(dc=False, control_mode=mode, bpt=bpt, soc=display.get("PresentSOC"),
                       charging_complete=bool(display.get("ChargingComplete", False)),
                       meter_requested=bool(body["MeterInfoRequested"]),
                       present_power=need(m["EVPresentActivePower"], "EVPresentActivePower"),
                       max_charge_power=magnitude(m.get("EVMaximumChargePower")),
                       min_charge_power=magnitude(m.get("EVMinimumChargePower")),
                       max_discharge_power=magnitude(m.get("EVMaximumDischargePower")),
                       min_discharge_power=magnitude(m.get("EVMinimumDischargePower")), energy=read_energy_requests(m))


def ac_loop_res(code: str, control_mode: ControlMode, bpt: bool, answer: ACLoopAnswer, status: LoopStatus,
                plan: DynamicSchedule | None = None, ack_max_delay: int | None = None) -> Body:
    """AC_ChargeLoopRes: the target active power (mandatory in dynamic mode) and the present power."""
    out = loop_res_head(code, status)
    put(out, "EVSETargetFrequency", answer.frequency)
    mode: Body = {}
    if control_mode is ControlMode.DYNAMIC:
        dynamic_fields(mode, plan, ack_max_delay)
        mode["EVSETargetActivePower"] = rational(answer.target_power or 0.0)
    else:
        put(mode, "EVSETargetActivePower", answer.target_power)
    put(mode, "EVSEPresentActivePower", answer.present_power)
    out[loop_mode_name(control_mode, bpt, False, False)] = mode
    return out


def read_ac_loop_res(body: Body) -> tuple[ACLoopAnswer, LoopStatus]:
    """(the EVSE's answer, its status: notification, meter reading)."""
    _, _, m = find_loop_mode(body, False, False)
    notification, delay = read_evse_status(body)
    meter: MeterReading20 | None = read_meter_info(body.get("MeterInfo"))
    answer = ACLoopAnswer(number(m.get("EVSETargetActivePower")), number(m.get("EVSEPresentActivePower")),
                          number(body.get("EVSETargetFrequency")))
    return answer, LoopStatus(notification, delay, meter)


def failed_ac(name: str, code: str) -> Body:
    """A FAILED response of an AC request with neutral placeholders for the mandatory elements."""
    if name == "AC_ChargeParameterDiscoveryRes":
        return ac_cpd_res(code, ACLimits20(0.0, 0.0), False)
    return {"ResponseCode": code, "Scheduled_AC_CLResControlMode": {}}  # AC_ChargeLoopRes
