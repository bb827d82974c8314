"""ISO 15118-20 DC messages in the EXI JSON view (namespace `iso20_dc`): DC_ChargeParameterDiscovery (plain and
BPT), DC_CableCheck, DC_PreCharge, DC_ChargeLoop in its four control modes and DC_WeldingDetection.

Currents and powers the EV takes are positive, those it feeds back negative; limits are magnitudes.
"""

from __future__ import annotations

from dataclasses import fields

from ..model20 import (
    ControlMode,
    DCLimits20,
    DCLoopAnswer,
    DynamicSchedule,
    EVDCLimits,
    LoopRequest,
    LoopStatus,
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
    put,
    rational,
    read_evse_status,
    read_meter_info,
)

_EV_CPD = (("EVMaximumChargePower", "max_charge_power"), ("EVMinimumChargePower", "min_charge_power"),
           ("EVMaximumChargeCurrent", "max_charge_current"), ("EVMinimumChargeCurrent", "min_charge_current"),
           ("EVMaximumVoltage", "max_voltage"), ("EVMinimumVoltage", "min_voltage"))
_EV_CPD_BPT = (("EVMaximumDischargePower", "max_discharge_power"), ("EVMinimumDischargePower", "min_discharge_power"),
               ("EVMaximumDischargeCurrent", "max_discharge_current"),
               ("EVMinimumDischargeCurrent", "min_discharge_current"))
_EVSE = {f"EVSE{k[2:]}": v for k, v in _EV_CPD + _EV_CPD_BPT}  # EVSEMaximumChargePower -> max_charge_power
_LOOP_EVSE = ("EVSEMaximumChargePower", "EVSEMinimumChargePower", "EVSEMaximumChargeCurrent", "EVSEMaximumVoltage")
_LOOP_EVSE_BPT = ("EVSEMaximumDischargePower", "EVSEMinimumDischargePower", "EVSEMaximumDischargeCurrent",
                  "EVSEMinimumVoltage")
_LIMIT_FIELDS = frozenset(f.name for f in fields(DCLimits20))
_LOOP_LIMITS = tuple((name, _EVSE.get(name, "")) for name in _LOOP_EVSE + _LOOP_EVSE_BPT
                     if _EVSE.get(name, "") in _LIMIT_FIELDS)
"""(element, DCLimits20 field) of the limits a DC_ChargeLoopRes may carry."""


# ----- DC_ChargeParameterDiscovery -----

def dc_cpd_req(ev: EVDCLimits, bpt: bool) -> Body:
    """DC_ChargeParameterDiscoveryReq (BPT_DC_CPDReqEnergyTransferMode for BPT)."""
    mode: Body = {name: rational(getattr(ev, attr)) for name, attr in _EV_CPD}
    if ev.target_soc is not None:
        mode["TargetSOC"] = max(0, min(100, int(ev.target_soc)))
    if bpt:
        mode.update({name: rational(getattr(ev, attr) or 0.0) for name, attr in _EV_CPD_BPT})
        return {"BPT_DC_CPDReqEnergyTransferMode": mode}
    return {"DC_CPDReqEnergyTransferMode": mode}


def read_dc_cpd_req(body: Body) -> tuple[EVDCLimits, bool]:
    """(the EV's limits, BPT)."""
    bpt = "BPT_DC_CPDReqEnergyTransferMode" in body
    m = body["BPT_DC_CPDReqEnergyTransferMode" if bpt else "DC_CPDReqEnergyTransferMode"]
    values = {attr: abs(need(m[name], name)) for name, attr in _EV_CPD}
    extra = {attr: magnitude(m.get(name)) for name, attr in _EV_CPD_BPT}
    return EVDCLimits(**values, target_soc=m.get("TargetSOC"), **extra), bpt  # type: ignore[arg-type]


def dc_cpd_res(code: str, limits: DCLimits20, bpt: bool) -> Body:
    """DC_ChargeParameterDiscoveryRes."""
    mode: Body = {f"EVSE{name[2:]}": rational(getattr(limits, attr)) for name, attr in _EV_CPD}
    if bpt:
        mode.update({f"EVSE{name[2:]}": rational(getattr(limits, attr) or 0.0) for name, attr in _EV_CPD_BPT})
        return {"ResponseCode": code, "BPT_DC_CPDResEnergyTransferMode": mode}
    return {"ResponseCode": code, "DC_CPDResEnergyTransferMode": mode}


def read_dc_cpd_res(body: Body) -> tuple[DCLimits20, bool]:
    """(the EVSE's limits, BPT)."""
    bpt = "BPT_DC_CPDResEnergyTransferMode" in body
    m = body["BPT_DC_CPDResEnergyTransferMode" if bpt else "DC_CPDResEnergyTransferMode"]
    values = {attr: (magnitude(m.get(name)) if name.startswith("EVSE") and "Discharge" in name
                     else abs(need(m[name], name))) for name, attr in _EVSE.items()}
    return DCLimits20(**values), bpt  # type: ignore[arg-type]


# ----- DC_CableCheck, DC_PreCharge, DC_WeldingDetection -----

def cable_check_res(code: str, processing: str) -> Body:
    """DC_CableCheckRes."""
    return {"ResponseCode": code, "EVSEProcessing": processing}


def precharge_req(processing: str, present_voltage: float, target_voltage: float) -> Body:
    """DC_PreChargeReq: EVProcessing Ongoing while the EV waits for the voltage, Finished when it matches."""
    return {"EVProcessing": processing, "EVPresentVoltage": rational(present_voltage),
            "EVTargetVoltage": rational(target_voltage)}


def read_precharge_req(body: Body) -> tuple[str, float, float]:
    """(EVProcessing, EVPresentVoltage, EVTargetVoltage)."""
    return str(body["EVProcessing"]), need(body["EVPresentVoltage"]), need(body["EVTargetVoltage"])


def voltage_res(code: str, voltage: float) -> Body:
    """DC_PreChargeRes and DC_WeldingDetectionRes: EVSEPresentVoltage."""
    return {"ResponseCode": code, "EVSEPresentVoltage": rational(voltage)}


def read_voltage(body: Body) -> float:
    """EVSEPresentVoltage."""
    return need(body["EVSEPresentVoltage"], "EVSEPresentVoltage")


def welding_detection_req(processing: str = "Ongoing") -> Body:
    """DC_WeldingDetectionReq."""
    return {"EVProcessing": processing}


# ----- DC_ChargeLoop -----

def dc_loop_req(r: LoopRequest) -> Body:
    """DC_ChargeLoopReq in the request's control mode."""
    dynamic = r.control_mode is ControlMode.DYNAMIC
    mode: Body = {}
    energy_requests(mode, r.energy, dynamic)
    if dynamic:
        for name, x in (("EVMaximumChargePower", r.max_charge_power), ("EVMinimumChargePower", r.min_charge_power),
                        ("EVMaximumChargeCurrent", r.max_charge_current), ("EVMaximumVoltage", r.max_voltage),
                        ("EVMinimumVoltage", r.min_voltage)):
            mode[name] = rational(x or 0.0)
        if r.bpt:
            for name, x in (("EVMaximumDischargePower", r.max_discharge_power),
                            ("EVMinimumDischargePower", r.min_discharge_power),
                            ("EVMaximumDischargeCurrent", r.max_discharge_current)):
                mode[name] = rational(x or 0.0)
            if r.energy is not None and r.energy.max_v2x is not None and r.energy.min_v2x is not None:
                mode["EVMaximumV2XEnergyRequest"] = rational(r.energy.max_v2x)
                mode["EVMinimumV2XEnergyRequest"] = rational(r.energy.min_v2x)
    else:
        mode["EVTargetCurrent"] = rational(r.target_current or 0.0)
        mode["EVTargetVoltage"] = rational(r.target_voltage or 0.0)
        put(mode, "EVMaximumChargePower", r.max_charge_power)
        put(mode, "EVMinimumChargePower", r.min_charge_power)
        put(mode, "EVMaximumChargeCurrent", r.max_charge_current)
        put(mode, "EVMaximumVoltage", r.max_voltage)
        put(mode, "EVMinimumVoltage", r.min_voltage)
        if r.bpt:
            put(mode, "EVMaximumDischargePower", r.max_discharge_power)
            put(mode, "EVMinimumDischargePower", r.min_discharge_power)
            put(mode, "EVMaximumDischargeCurrent", r.max_discharge_current)
    out: Body = {}
    display = display_parameters(r.soc, complete=r.charging_complete)
    if display:
        out["DisplayParameters"] = display
    out["MeterInfoRequested"] = r.meter_requested
    out["EVPresentVoltage"] = rational(r.present_voltage or 0.0)
    out[loop_mode_name(r.control_mode, r.bpt, True, True)] = mode
    return out


def read_dc_loop_req(body: Body) -> LoopRequest:
    """The EV's DC_ChargeLoopReq."""
    mode, bpt, m = find_loop_mode(body, True, True)
    display = body.get("DisplayParameters") or {}
    scheduled = mode is ControlMode.SCHEDULED
    return LoopRequest(
        dc=True, control_mode=mode, bpt=bpt, soc=display.get("PresentSOC"),
        charging_complete=bool(display.get("ChargingComplete", False)),
        meter_requested=bool(body["MeterInfoRequested"]), present_voltage=need(body["EVPresentVoltage"]),
        target_current=need(m["EVTargetCurrent"], "EVTargetCurrent") if scheduled else None,
        target_voltage=need(m["EVTargetVoltage"], "EVTargetVoltage") if scheduled else None,
        max_charge_power=magnitude(m.get("EVMaximumChargePower")),
        min_charge_power=magnitude(m.get("EVMinimumChargePower")),
        max_charge_current=magnitude(m.get("EVMaximumChargeCurrent")), max_voltage=magnitude(m.get("EVMaximumVoltage")),
        min_voltage=magnitude(m.get("EVMinimumVoltage")),
        max_discharge_power=magnitude(m.get("EVMaximumDischargePower")),
        min_discharge_power=magnitude(m.get("EVMinimumDischargePower")),
        max_discharge_current=magnitude(m.get("EVMaximumDischargeCurrent")), energy=read_energy_requests(m))


def dc_loop_res(code: str, control_mode: ControlMode, bpt: bool, answer: DCLoopAnswer, status: LoopStatus,
                plan: DynamicSchedule | None = None, ack_max_delay: int | None = None) -> Body:
    """DC_ChargeLoopRes: the present output and the EVSE's limits (mandatory in dynamic mode: they are the
    target)."""
    out = loop_res_head(code, status)
    out["EVSEPresentCurrent"] = rational(answer.current)
    out["EVSEPresentVoltage"] = rational(answer.voltage)
    out["EVSEPowerLimitAchieved"] = answer.power_limit_achieved
    out["EVSECurrentLimitAchieved"] = answer.current_limit_achieved
    out["EVSEVoltageLimitAchieved"] = answer.voltage_limit_achieved
    mode: Body = {}
    lim = answer.limits
    if control_mode is ControlMode.DYNAMIC:
        dynamic_fields(mode, plan, ack_max_delay)
    values = {"EVSEMaximumChargePower": lim.max_charge_power, "EVSEMinimumChargePower": lim.min_charge_power,
              "EVSEMaximumChargeCurrent": lim.max_charge_current, "EVSEMaximumVoltage": lim.max_voltage,
              "EVSEMaximumDischargePower": lim.max_discharge_power or 0.0,
              "EVSEMinimumDischargePower": lim.min_discharge_power or 0.0,
              "EVSEMaximumDischargeCurrent": lim.max_discharge_current or 0.0, "EVSEMinimumVoltage": lim.min_voltage}
    for name in _LOOP_EVSE + (_LOOP_EVSE_BPT if bpt else ()):
        mode[name] = rational(values[name])
    out[loop_mode_name(control_mode, bpt, True, False)] = mode
    return out


def read_dc_loop_res(body: Body) -> tuple[float, float, dict[str, float], tuple[bool, bool, bool], LoopStatus]:
    """(present voltage, present current (signed), the limits present as {DCLimits20 field: value}, (power,
    current, voltage limit achieved), status)."""
    _, _, m = find_loop_mode(body, True, False)
    limits: dict[str, float] = {}
    for name, attr in _LOOP_LIMITS:
        x = magnitude(m.get(name))
        if x is not None:
            limits[attr] = x
    notification, delay = read_evse_status(body)
    status = LoopStatus(notification, delay, read_meter_info(body.get("MeterInfo")))
    flags = (bool(body["EVSEPowerLimitAchieved"]), bool(body["EVSECurrentLimitAchieved"]),
             bool(body["EVSEVoltageLimitAchieved"]))
    return (need(body["EVSEPresentVoltage"]), need(body["EVSEPresentCurrent"]), limits, flags, status)


def failed_dc(name: str, code: str) -> Body:
    """A FAILED response of a DC request with neutral placeholders for the mandatory elements."""
    if name == "DC_ChargeParameterDiscoveryRes":
        return dc_cpd_res(code, DCLimits20(0.0, 0.0, 0.0, 0.0, 0.0, 0.0), False)
    if name == "DC_CableCheckRes":
        return cable_check_res(code, "Finished")
    if name == "DC_ChargeLoopRes":
        return {"ResponseCode": code, "EVSEPresentCurrent": rational(0), "EVSEPresentVoltage": rational(0),
                "EVSEPowerLimitAchieved": False, "EVSECurrentLimitAchieved": False, "EVSEVoltageLimitAchieved": False,
                "Scheduled_DC_CLResControlMode": {}}
    return voltage_res(code, 0.0)  # DC_PreChargeRes, DC_WeldingDetectionRes
