"""ISO 15118-20 ScheduleExchange and the EV's power profile in the EXI JSON view (namespace `iso20`).

Scheduled mode: the SECC answers up to 3 ScheduleTuples, each a ChargingSchedule and (BPT) a DischargingSchedule of
PowerScheduleEntries (Power, Power_L2, Power_L3) with an AbsolutePriceSchedule or a PriceLevelSchedule; the EV
answers PowerDeliveryReq(Start) with the chosen SelectedScheduleTupleID in its EVPowerProfile. Dynamic mode: the EV
sends departure time, SoC and energy requests; the SECC answers what it plans with and then sets the power in each
charge-loop response.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..model20 import (
    AbsolutePrices,
    ControlMode,
    DynamicSchedule,
    EVNeeds,
    PowerEntry,
    PowerSchedule,
    PriceLevels,
    PriceRule,
    Prices,
    ScheduleTuple,
)
from .iso20_types import Body, Iso20Error, number, put, rational

MAX_TUPLES = 3
MAX_ENTRIES = 1024
MAX_PROFILE_ENTRIES = 2048
MIN_SUPPORTING_POINTS, MAX_SUPPORTING_POINTS = 12, 1024


# ----- power entries and price schedules -----

def _entry(e: PowerEntry, name: str = "Power") -> Body:
    """PowerScheduleEntryType (also the EV's EVPowerProfileEntry)."""
    out: Body = {"Duration": max(0, int(e.duration)), name: rational(e.power)}
    put(out, "Power_L2", e.power_l2)
    put(out, "Power_L3", e.power_l3)
    return out


def _read_entry(d: Body) -> PowerEntry:
    """A PowerEntry of a PowerScheduleEntryType."""
    return PowerEntry(int(d["Duration"]), float(number(d["Power"]) or 0.0), number(d.get("Power_L2")),
                      number(d.get("Power_L3")))


def prices(p: Prices) -> tuple[str, Body]:
    """(element name, content) of an AbsolutePriceSchedule or a PriceLevelSchedule."""
    if isinstance(p, PriceLevels):
        return "PriceLevelSchedule", {
            "TimeAnchor": 0, "PriceScheduleID": p.schedule_id, "NumberOfPriceLevels": p.levels,
            "PriceLevelScheduleEntries": {"PriceLevelScheduleEntry": [
                {"Duration": d, "PriceLevel": level} for d, level in p.entries[:MAX_ENTRIES]]}}
    return "AbsolutePriceSchedule", {
        "TimeAnchor": 0, "PriceScheduleID": p.schedule_id, "Currency": p.currency[:3], "Language": p.language[:3],
        "PriceAlgorithm": p.algorithm,
        "PriceRuleStacks": {"PriceRuleStack": [
            {"Duration": d, "PriceRule": [{"EnergyFee": rational(r.energy_fee),
                                           "PowerRangeStart": rational(r.power_range_start)} for r in rules[:8]]}
            for d, rules in p.stacks[:MAX_ENTRIES]]}}


def read_prices(parent: Body) -> Prices | None:
    """The price schedule inside `parent` (a ChargingSchedule or the dynamic control mode), None if none."""
    levels = parent.get("PriceLevelSchedule")
    if levels is not None:
        entries = tuple((int(e["Duration"]), int(e["PriceLevel"]))
                        for e in levels["PriceLevelScheduleEntries"]["PriceLevelScheduleEntry"])
        return PriceLevels(int(levels["PriceScheduleID"]), int(levels["NumberOfPriceLevels"]), entries)
    absolute = parent.get("AbsolutePriceSchedule")
    if absolute is None:
        return None
    stacks = tuple((int(s["Duration"]), tuple(PriceRule(float(number(r["EnergyFee"]) or 0.0),
                                                        float(number(r["PowerRangeStart"]) or 0.0))
                                              for r in s["PriceRule"]))
                   for s in absolute["PriceRuleStacks"]["PriceRuleStack"])
    return AbsolutePrices(int(absolute["PriceScheduleID"]), str(absolute["Currency"]), stacks,
                          str(absolute["Language"]), str(absolute["PriceAlgorithm"]))


def power_schedule(s: PowerSchedule) -> Body:
    """ChargingScheduleType: a PowerSchedule and the optional price schedule."""
    ps: Body = {"TimeAnchor": max(0, int(s.time_anchor))}
    put(ps, "AvailableEnergy", s.available_energy)
    put(ps, "PowerTolerance", s.power_tolerance)
    entries = list(s.entries[:MAX_ENTRIES]) or [PowerEntry(86400, 0.0)]
    ps["PowerScheduleEntries"] = {"PowerScheduleEntry": [_entry(e) for e in entries]}
    out: Body = {"PowerSchedule": ps}
    if s.prices is not None:
        name, content = prices(s.prices)
        out[name] = content
    return out


def read_power_schedule(d: Body) -> PowerSchedule:
    """A PowerSchedule of a ChargingScheduleType."""
    ps = d["PowerSchedule"]
    entries = tuple(_read_entry(e) for e in ps["PowerScheduleEntries"]["PowerScheduleEntry"])
    return PowerSchedule(entries, int(ps["TimeAnchor"]), number(ps.get("AvailableEnergy")),
                         number(ps.get("PowerTolerance")), read_prices(d))


# ----- ScheduleExchange -----

def schedule_exchange_req(needs: EVNeeds) -> Body:
    """ScheduleExchangeReq in the EV's control mode."""
    points = max(MIN_SUPPORTING_POINTS, min(MAX_SUPPORTING_POINTS, needs.max_supporting_points))
    mode: Body = {}
    if needs.control_mode is ControlMode.DYNAMIC:
        mode["DepartureTime"] = max(0, int(needs.departure_time or 0))
        for name, v in (("MinimumSOC", needs.min_soc), ("TargetSOC", needs.target_soc)):
            if v is not None:
                mode[name] = max(0, min(100, int(v)))
        mode["EVTargetEnergyRequest"] = rational(needs.target_energy or 0.0)
        mode["EVMaximumEnergyRequest"] = rational(needs.max_energy or 0.0)
        mode["EVMinimumEnergyRequest"] = rational(needs.min_energy or 0.0)
        if needs.max_v2x_energy is not None and needs.min_v2x_energy is not None:  # both or neither [V2G20-2681]
            mode["EVMaximumV2XEnergyRequest"] = rational(needs.max_v2x_energy)
            mode["EVMinimumV2XEnergyRequest"] = rational(needs.min_v2x_energy)
        return {"MaximumSupportingPoints": points, "Dynamic_SEReqControlMode": mode}
    if needs.departure_time is not None:
        mode["DepartureTime"] = max(0, int(needs.departure_time))
    put(mode, "EVTargetEnergyRequest", needs.target_energy)
    put(mode, "EVMaximumEnergyRequest", needs.max_energy)
    put(mode, "EVMinimumEnergyRequest", needs.min_energy)
    return {"MaximumSupportingPoints": points, "Scheduled_SEReqControlMode": mode}


def read_schedule_exchange_req(body: Body) -> EVNeeds:
    """The EV's needs in either control mode."""
    points = int(body["MaximumSupportingPoints"])
    dynamic = body.get("Dynamic_SEReqControlMode")
    if dynamic is not None:
        v2x = (number(dynamic.get("EVMaximumV2XEnergyRequest")), number(dynamic.get("EVMinimumV2XEnergyRequest")))
        if (v2x[0] is None) != (v2x[1] is None):
            raise Iso20Error("EVMaximumV2XEnergyRequest and EVMinimumV2XEnergyRequest go together")
        return EVNeeds(ControlMode.DYNAMIC, points, int(dynamic["DepartureTime"]), dynamic.get("MinimumSOC"),
                       dynamic.get("TargetSOC"), number(dynamic["EVTargetEnergyRequest"]),
                       number(dynamic["EVMaximumEnergyRequest"]), number(dynamic["EVMinimumEnergyRequest"]),
                       v2x[0], v2x[1])
    sched = body["Scheduled_SEReqControlMode"]
    offer = sched.get("EVEnergyOffer", {}).get("EVPowerSchedule", {}).get("EVPowerScheduleEntries", {})
    entries = tuple(PowerEntry(int(e["Duration"]), float(number(e["Power"]) or 0.0))
                    for e in offer.get("EVPowerScheduleEntry", []))
    return EVNeeds(ControlMode.SCHEDULED, points, sched.get("DepartureTime"), None, None,
                   number(sched.get("EVTargetEnergyRequest")), number(sched.get("EVMaximumEnergyRequest")),
                   number(sched.get("EVMinimumEnergyRequest")), offer=entries)


def schedule_exchange_res_scheduled(code: str, processing: str, tuples: Sequence[ScheduleTuple],
                                    go_to_pause: bool = False) -> Body:
    """ScheduleExchangeRes, scheduled: up to 3 ScheduleTuples (one placeholder tuple while Ongoing, since the
    schema needs one)."""
    out: Body = {"ResponseCode": code, "EVSEProcessing": processing}
    if go_to_pause:
        out["GoToPause"] = True
    items = list(tuples[:MAX_TUPLES]) or [ScheduleTuple(1, PowerSchedule((PowerEntry(86400, 0.0),)))]
    out["Scheduled_SEResControlMode"] = {"ScheduleTuple": [_tuple(t) for t in items]}
    return out


def _tuple(t: ScheduleTuple) -> Body:
    """ScheduleTupleType."""
    out: Body = {"ScheduleTupleID": t.tuple_id, "ChargingSchedule": power_schedule(t.charging)}
    if t.discharging is not None:
        out["DischargingSchedule"] = power_schedule(t.discharging)
    return out


def schedule_exchange_res_dynamic(code: str, processing: str, plan: DynamicSchedule | None,
                                  go_to_pause: bool = False) -> Body:
    """ScheduleExchangeRes, dynamic: what the SECC plans with (MinimumSOC <= TargetSOC [V2G20-1640])."""
    out: Body = {"ResponseCode": code, "EVSEProcessing": processing}
    if go_to_pause:
        out["GoToPause"] = True
    mode: Body = {}
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
        if plan.prices is not None:
            name, content = prices(plan.prices)
            mode[name] = content
    out["Dynamic_SEResControlMode"] = mode
    return out


def read_schedule_exchange_res(body: Body) -> tuple[str, list[ScheduleTuple] | None, DynamicSchedule | None, bool]:
    """(EVSEProcessing, schedule tuples (scheduled) or None, plan (dynamic) or None, GoToPause)."""
    processing = str(body["EVSEProcessing"])
    go_to_pause = bool(body.get("GoToPause", False))
    sched = body.get("Scheduled_SEResControlMode")
    if sched is not None:
        tuples = [ScheduleTuple(int(t["ScheduleTupleID"]), read_power_schedule(t["ChargingSchedule"]),
                                read_power_schedule(t["DischargingSchedule"]) if "DischargingSchedule" in t else None)
                  for t in sched["ScheduleTuple"]]
        return processing, tuples, None, go_to_pause
    dyn = body["Dynamic_SEResControlMode"]
    plan = DynamicSchedule(dyn.get("DepartureTime"), dyn.get("MinimumSOC"), dyn.get("TargetSOC"), read_prices(dyn))
    return processing, None, plan, go_to_pause


# ----- the EV's power profile (PowerDeliveryReq) -----

def ev_power_profile(entries: Sequence[PowerEntry], tuple_id: int | None, tolerance_ok: bool | None = None) -> Body:
    """EVPowerProfile: the EV's planned power (signed: negative = discharge), for the chosen tuple (scheduled) or
    Dynamic_EVPPTControlMode."""
    out: Body = {"TimeAnchor": 0}
    if tuple_id is not None:
        mode: Body = {"SelectedScheduleTupleID": tuple_id}
        if tolerance_ok is not None:
            mode["PowerToleranceAcceptance"] = "PowerToleranceConfirmed" if tolerance_ok else \
                "PowerToleranceNotConfirmed"
        out["Scheduled_EVPPTControlMode"] = mode
    else:
        out["Dynamic_EVPPTControlMode"] = {}
    items = list(entries[:MAX_PROFILE_ENTRIES]) or [PowerEntry(1, 0.0)]
    out["EVPowerProfileEntries"] = {"EVPowerProfileEntry": [_entry(e) for e in items]}
    return out


def read_ev_power_profile(d: Body) -> tuple[int | None, tuple[PowerEntry, ...]]:
    """(SelectedScheduleTupleID or None for dynamic, entries)."""
    sched = d.get("Scheduled_EVPPTControlMode")
    if sched is None and "Dynamic_EVPPTControlMode" not in d:
        raise Iso20Error("EVPowerProfile has no control mode")
    entries = tuple(_read_entry(e) for e in d["EVPowerProfileEntries"]["EVPowerProfileEntry"])
    return (int(sched["SelectedScheduleTupleID"]) if sched is not None else None), entries
