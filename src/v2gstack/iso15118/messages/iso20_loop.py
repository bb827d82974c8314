"""Pieces shared by the AC and DC charge loops of ISO 15118-20: the control-mode element names (Scheduled, Dynamic,
BPT_Scheduled, BPT_Dynamic), the energy requests of dynamic mode, the dynamic response fields and the response head
(ResponseCode, EVSEStatus, MeterInfo)."""

from __future__ import annotations

from ..model20 import ControlMode, DynamicSchedule, EnergyRequest, LoopStatus, Notification
from .iso20_types import Body, Iso20Error, evse_status, meter_info, need, number, rational


def _mode_name(mode: ControlMode, bpt: bool, dc: bool, request: bool) -> str:
    """The element name of a charge loop's control mode, worked out."""
    return (f"{'BPT_' if bpt else ''}{'Scheduled' if mode is ControlMode.SCHEDULED else 'Dynamic'}_"
            f"{'DC' if dc else 'AC'}_CL{'Req' if request else 'Res'}ControlMode")


_MODE_NAMES = {(mode, bpt, dc, request): _mode_name(mode, bpt, dc, request)
               for mode in ControlMode for bpt in (False, True) for dc in (False, True) for request in (False, True)}
_MODES_OF = {(dc, request): tuple((_MODE_NAMES[mode, bpt, dc, request], mode, bpt)
                                  for mode in ControlMode for bpt in (False, True))
             for dc in (False, True) for request in (False, True)}
"""(element name, control mode, BPT) of each control mode a charge-loop message of (DC, request) may carry, in the
order they are looked for."""


def loop_mode_name(mode: ControlMode, bpt: bool, dc: bool, request: bool) -> str:
    """The element name of a charge loop's control mode, e.g. BPT_Dynamic_DC_CLResControlMode."""
    return _MODE_NAMES[mode, bpt, dc, request]


def find_loop_mode(body: Body, dc: bool, request: bool) -> tuple[ControlMode, bool, Body]:
    """(control mode, BPT, content) of whichever control-mode element a charge-loop message carries."""
    for name, mode, bpt in _MODES_OF[dc, request]:
        content = body.get(name)
        if content is not None:
            return mode, bpt, content
    raise Iso20Error("charge-loop message without a control mode")


def energy_requests(mode: Body, e: EnergyRequest | None, required: bool) -> None:
    """The energy requests of a charge-loop request (mandatory in dynamic mode)."""
    if e is None:
        if required:
            raise Iso20Error("dynamic mode needs the energy requests")
        return
    if e.departure_time is not None and required:
        mode["DepartureTime"] = max(0, int(e.departure_time))
    mode["EVTargetEnergyRequest"] = rational(e.target)
    mode["EVMaximumEnergyRequest"] = rational(e.maximum)
    mode["EVMinimumEnergyRequest"] = rational(e.minimum)


def read_energy_requests(mode: Body) -> EnergyRequest | None:
    """The energy requests of a charge-loop request, None if absent."""
    if "EVTargetEnergyRequest" not in mode:
        return None
    return EnergyRequest(need(mode["EVTargetEnergyRequest"]), need(mode.get("EVMaximumEnergyRequest"), "maximum"),
                         need(mode.get("EVMinimumEnergyRequest"), "minimum"),
                         number(mode.get("EVMaximumV2XEnergyRequest")), number(mode.get("EVMinimumV2XEnergyRequest")),
                         mode.get("DepartureTime"))


def dynamic_fields(mode: Body, plan: DynamicSchedule | None, ack_max_delay: int | None) -> None:
    """The Dynamic_CLResControlMode base fields: departure time, SoC targets, AckMaxDelay."""
    if plan is not None:
        if plan.departure_time is not None:
            mode["DepartureTime"] = max(0, int(plan.departure_time))
        low, high = plan.min_soc, plan.target_soc
        if low is not None and high is not None and low > high:
            low = high
        if low is not None:
            mode["MinimumSOC"] = max(0, min(100, int(low)))
        if high is not None:
            mode["TargetSOC"] = max(0, min(100, int(high)))
    if ack_max_delay is not None:
        mode["AckMaxDelay"] = max(0, min(65535, int(ack_max_delay)))


def loop_res_head(code: str, status: LoopStatus) -> Body:
    """ResponseCode, EVSEStatus and MeterInfo of a charge-loop response."""
    out: Body = {"ResponseCode": code}
    if status.notification is not Notification.NONE:
        out["EVSEStatus"] = evse_status(status.notification, status.max_delay)
    if status.meter is not None:
        out["MeterInfo"] = meter_info(status.meter)
    return out
