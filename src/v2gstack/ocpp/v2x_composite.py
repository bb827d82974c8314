"""The OCPP 2.1 composite schedule with discharge, sans-I/O: which profile rules at each instant, and how the
V2X quantities of the ruling profiles combine into one CompositeScheduleType.

At each instant, per purpose, the valid profile with the highest stackLevel rules (an EVSE's own TxDefaultProfile
before the station-wide one); PriorityCharging overrides a TxProfile, which overrides a TxDefaultProfile (K21, K08).
That profile's period gives the operation mode, the setpoints and the V2X curves; it is combined with the
ChargingStationMaxProfile, ChargingStationExternalConstraints and LocalGeneration periods by:

- `limit`: the lowest charging limit wins;
- `dischargeLimit`: the least negative discharge limit wins (0 forbids discharging);
- `setpoint` (and `setpointReactive`): taken from the ruling transaction-level period, then clipped: a charging
  setpoint to the limit (V2X.03), a discharging one to the discharge limit (V2X.04);
- per phase: when any of the periods gives `_L2/_L3` values, every value is taken per phase (a total in W split over
  `numberPhases`, a value in A being per phase already) and combined phase by phase;
- an `Idle` period stops power transfer: limit 0 and dischargeLimit 0.

Time is epoch seconds. Work is bounded: at most `max_periods` periods found from at most EVALUATIONS_PER_PERIOD
times as many instants (recurring profiles are expanded lazily). The station's 2.0.1 composite (station/
smart_charging.py) computes the same for `limit` alone; it can delegate to `composite_schedule` with its installed
`(evseId, profile)` pairs.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..times import parse_rfc3339, rfc3339
from .v2x import OperationMode, Quantity, mode_of, phase_fields

Payload = dict[str, Any]
Phased = tuple[float, float | None, float | None]
"""A quantity of one period: total (or L1 when L2/L3 are given), L2, L3."""

STATION_WIDE = frozenset({"ChargingStationMaxProfile", "ChargingStationExternalConstraints", "LocalGeneration"})
LIMITING = ("ChargingStationMaxProfile", "ChargingStationExternalConstraints", "LocalGeneration")
TX_LEVEL = ("PriorityCharging", "TxProfile", "TxDefaultProfile")  # the first one in force rules
EVALUATIONS_PER_PERIOD = 4
DAY, WEEK = 86400, 7 * 86400
CARRIED = ("v2xBaseline", "v2xFreqWattCurve", "v2xSignalWattCurve", "preconditioningRequest", "evseSleep")
"""Fields of the ruling transaction-level period that the composite period carries unchanged."""


class CompositeTooLong(ValueError):
    """The composite schedule would need more periods than allowed (GetCompositeSchedule: Rejected, ValueTooHigh)."""


@dataclass(frozen=True)
class Electrical:
    """How A and W convert: the supply voltage per phase and the phases when a period does not say."""

    voltage: float = 230.0
    default_phases: int = 3


@dataclass(frozen=True)
class Ruling:
    """One profile's period in force at an instant, in the composite's unit."""

    purpose: str
    period: Payload
    phases: int
    values: dict[Quantity, Phased]


def composite_schedule(items: Iterable[tuple[int, Payload]], evse_id: int, start: float, duration: int,
                       unit: str = "W", *, tx_id: str | None = None, tx_start: float | None = None,
                       electrical: Electrical | None = None, default_limit: float | None = None,
                       max_periods: int = 1024) -> Payload:
    """The CompositeScheduleType of one EVSE from `start` for `duration` seconds over the installed profiles
    (`items`: (evseId the profile was set for, ChargingProfileType)); CompositeTooLong beyond `max_periods`."""
    electrical = electrical or Electrical()
    relevant = [(e, p) for e, p in items if _applies(e, p, evse_id, tx_id)]
    changes = heapq.merge(*(_breakpoints(p, start, duration, tx_start) for _, p in relevant))
    budget = EVALUATIONS_PER_PERIOD * max_periods
    periods: list[Payload] = []
    evaluated = 0
    last = -1.0
    for t in itertools.chain((0.0,), changes):
        if t >= duration:
            break
        if t <= last:
            continue
        last, evaluated = t, evaluated + 1
        if evaluated > budget:
            raise CompositeTooLong(f"more than {budget} profile changes within {duration} s")
        period = compose_at(relevant, evse_id, start + t, unit, electrical, tx_start, default_limit)
        period = {"startPeriod": int(t), **period}
        if periods and periods[-1]["startPeriod"] == period["startPeriod"]:
            periods.pop()  # two changes within one second: the later one holds
        if periods and _same(periods[-1], period):
            continue
        periods.append(period)
        if len(periods) > max_periods:
            raise CompositeTooLong(f"the composite schedule for {duration} s has more than {max_periods} periods")
    return {"evseId": evse_id, "duration": duration, "scheduleStart": rfc3339(start, timespec="seconds"),
            "chargingRateUnit": unit, "chargingSchedulePeriod": periods}


def compose_at(items: Iterable[tuple[int, Payload]], evse_id: int, at: float, unit: str,
               electrical: Electrical | None = None, tx_start: float | None = None,
               default_limit: float | None = None) -> Payload:
    """The composite period (without startPeriod) at one instant from the profiles that apply to the EVSE."""
    electrical = electrical or Electrical()
    best: dict[str, tuple[int, Payload, Payload, Payload]] = {}  # purpose -> (level, profile, schedule, period)
    for item_evse, profile in items:
        found = period_at(profile, at, tx_start)
        if found is None:
            continue
        schedule, period = found
        purpose = profile["chargingProfilePurpose"]
        level = profile["stackLevel"] + (1000 if item_evse == evse_id and item_evse != 0 else 0)
        if purpose not in best or level > best[purpose][0]:
            best[purpose] = (level, profile, schedule, period)
    rulings = {purpose: _ruling(purpose, schedule, period, unit, electrical)
               for purpose, (_, _, schedule, period) in best.items()}
    return combine([rulings[p] for p in TX_LEVEL if p in rulings][:1], [rulings[p] for p in LIMITING if p in rulings],
                   unit, default_limit)


def combine(tx: list[Ruling], limiting: list[Ruling], unit: str, default_limit: float | None = None) -> Payload:
    """One composite period from the ruling transaction-level period (at most one) and the limiting ones."""
    everyone = tx + limiting
    per_phase = any(r.values[q][1] is not None or r.values[q][2] is not None
                    for r in everyone for q in r.values)
    phases = min((r.phases for r in everyone), default=3)
    ruling = tx[0] if tx else None
    mode = mode_of(ruling.period) if ruling is not None else OperationMode.CHARGING_ONLY

    def gather(q: Quantity, rulings: list[Ruling]) -> list[tuple[float, ...]]:
        return [_spread(r.values[q], unit, r.phases) if per_phase else (r.values[q][0],)
                for r in rulings if q in r.values]

    limits = gather(Quantity.LIMIT, everyone)
    discharges = gather(Quantity.DISCHARGE_LIMIT, everyone)
    limit = tuple(map(min, zip(*limits, strict=True))) if limits else None
    discharge = tuple(map(max, zip(*discharges, strict=True))) if discharges else None
    if limit is None and default_limit is not None and mode is OperationMode.CHARGING_ONLY:
        limit = _spread((default_limit, None, None), unit, phases) if per_phase else (default_limit,)
    if mode is OperationMode.IDLE:
        width = 3 if per_phase else 1
        limit, discharge = (0.0,) * width, (0.0,) * width
    out: Payload = {}
    if ruling is not None and mode is not OperationMode.CHARGING_ONLY:
        out["operationMode"] = mode.value
    _put(out, Quantity.LIMIT, limit)
    _put(out, Quantity.DISCHARGE_LIMIT, discharge)
    if ruling is not None and mode is not OperationMode.IDLE:
        for q in (Quantity.SETPOINT, Quantity.SETPOINT_REACTIVE):
            found = gather(q, [ruling])
            if not found:
                continue
            value = found[0]
            if q is Quantity.SETPOINT:
                value = tuple(_clip(v, None if limit is None else limit[i], None if discharge is None else discharge[i])
                              for i, v in enumerate(value))
            _put(out, q, value)
        for name in CARRIED:
            if name in ruling.period:
                out[name] = ruling.period[name]
    if "numberPhases" in (ruling.period if ruling else {}) or any("numberPhases" in r.period for r in everyone):
        out["numberPhases"] = phases
    return out


def _clip(setpoint: float, limit: float | None, discharge: float | None) -> float:
    """V2X.03/V2X.04: a charging setpoint stays at or below the limit, a discharging one at or above the discharge
    limit (a discharge limit of 0 turns a discharging setpoint into 0)."""
    if setpoint >= 0:
        return setpoint if limit is None else min(setpoint, max(limit, 0.0))
    return setpoint if discharge is None else max(setpoint, discharge)


def _put(out: Payload, q: Quantity, value: tuple[float, ...] | None) -> None:
    """Write a combined quantity as the schema spells it: the total, or L1 with _L2 and _L3."""
    if value is None:
        return
    names = phase_fields(q)
    for name, v in zip(names, value, strict=False):
        out[name] = round(v, 3) + 0.0  # + 0.0: no -0.0 in the JSON


def _spread(value: Phased, unit: str, phases: int) -> tuple[float, float, float]:
    """A quantity per phase (L1, L2, L3): as given when L2/L3 are, else a W total split over the phases in use (an A
    value is per phase already); phases beyond `phases` carry 0."""
    total, l2, l3 = value
    if l2 is not None or l3 is not None:
        return total, total if l2 is None else l2, total if l3 is None else l3
    each = total / phases if unit == "W" else total
    return tuple(each if i < phases else 0.0 for i in range(3))  # type: ignore[return-value]


def _ruling(purpose: str, schedule: Payload, period: Payload, unit: str, electrical: Electrical) -> Ruling:
    """A period's quantities converted to `unit` (A <-> W with the supply voltage and the period's phases)."""
    phases = period.get("numberPhases") or electrical.default_phases
    src = schedule["chargingRateUnit"]
    values: dict[Quantity, Phased] = {}
    for q, names in _QUANTITY_FIELDS:
        if names[0] not in period:
            continue
        per_phase = names[1] in period or names[2] in period
        factor = 1.0
        if src != unit:
            factor = electrical.voltage * (1 if per_phase else phases)
            if src == "W":
                factor = 1.0 / factor
        values[q] = tuple(None if n not in period else float(period[n]) * factor  # type: ignore[assignment]
                          for n in names)
    return Ruling(purpose, period, phases, values)


_QUANTITY_FIELDS = tuple((q, phase_fields(q)) for q in Quantity)  # built once: every composite period reads them


def _same(a: Payload, b: Payload) -> bool:
    """Whether two composite periods differ only in their start."""
    return {k: v for k, v in a.items() if k != "startPeriod"} == {k: v for k, v in b.items() if k != "startPeriod"}


def _applies(item_evse: int, profile: Payload, evse_id: int, tx_id: str | None) -> bool:
    """Whether a profile set for `item_evse` can limit `evse_id` (0: the station's own connection)."""
    purpose = profile["chargingProfilePurpose"]
    if purpose in STATION_WIDE:
        return item_evse in (0, evse_id)
    if evse_id == 0 or item_evse not in (0, evse_id):
        return False
    if purpose in ("TxProfile", "PriorityCharging"):
        return tx_id is not None and profile.get("transactionId") in (None, tx_id)
    return True


@functools.lru_cache(maxsize=4096)
def epoch(value: str) -> float:
    """An RFC 3339 time in epoch seconds (cached: every composition reads the same few profile times)."""
    return parse_rfc3339(value).timestamp()


def _cycle(profile: Payload) -> int:
    """The repeat period of a Recurring profile (0: none)."""
    if profile["chargingProfileKind"] != "Recurring":
        return 0
    return DAY if profile.get("recurrencyKind") == "Daily" else WEEK


def _schedule_start(profile: Payload, schedule: Payload, at: float, tx_start: float | None) -> float | None:
    """When period 0 of the schedule in force at `at` starts (None: it has not started, e.g. Relative without a
    transaction); a Dynamic profile without startSchedule has always started."""
    kind = profile["chargingProfileKind"]
    if kind == "Relative":
        return tx_start
    if "startSchedule" not in schedule:
        return -math.inf if kind == "Dynamic" else None
    start = epoch(schedule["startSchedule"])
    cycle = _cycle(profile)
    if cycle and at >= start:
        start += ((at - start) // cycle) * cycle
    return start


def period_at(profile: Payload, at: float, tx_start: float | None = None) -> tuple[Payload, Payload] | None:
    """(schedule, period) of a profile in force at `at`, or None (outside validity, before start, after duration)."""
    if "validFrom" in profile and at < epoch(profile["validFrom"]):
        return None
    if "validTo" in profile and at >= epoch(profile["validTo"]):
        return None
    schedule = profile["chargingSchedule"][0]
    start = _schedule_start(profile, schedule, at, tx_start)
    if start is None or at < start:
        return None
    offset = at - start
    if "duration" in schedule and offset >= schedule["duration"]:
        return None
    current = None
    for period in schedule["chargingSchedulePeriod"]:
        if period["startPeriod"] <= offset:
            current = period
    return None if current is None else (schedule, current)


def next_change(profile: Payload, at: float, tx_start: float | None = None) -> float:
    """The first instant after `at` at which `period_at(profile, ., tx_start)` can differ from its value at `at`:
    the next validFrom/validTo, schedule start, period start, duration end or recurrence (math.inf: none, e.g. a
    Dynamic profile without start, or a Relative one without transaction). A composite of several profiles stays
    the same until the earliest of theirs, so a caller may reuse it until then (never past a real change: the
    instants are those `period_at` compares against, computed the same way)."""
    soonest = math.inf
    for key in ("validFrom", "validTo"):
        if key in profile:
            edge = epoch(profile[key])
            if at < edge < soonest:
                soonest = edge
    schedule = profile["chargingSchedule"][0]
    start = _schedule_start(profile, schedule, at, tx_start)
    if start is None or math.isinf(start):
        return soonest
    if at < start:
        return min(soonest, start)
    offset = at - start
    cycle = _cycle(profile)
    for mark in itertools.chain((p["startPeriod"] for p in schedule["chargingSchedulePeriod"]),
                                (schedule["duration"],) if "duration" in schedule else (),
                                (cycle,) if cycle else ()):
        if offset < mark and start + mark < soonest:
            soonest = start + mark
    return soonest


def _breakpoints(profile: Payload, start: float, duration: int, tx_start: float | None) -> Iterator[float]:
    """Offsets from `start`, ascending, where this profile's period may change (lazy for recurring profiles)."""
    edges = sorted(epoch(profile[k]) - start for k in ("validFrom", "validTo") if k in profile)
    schedule = profile["chargingSchedule"][0]
    first = _schedule_start(profile, schedule, start, tx_start)
    if first is None or math.isinf(first):
        return iter(edges)
    offsets = sorted({float(p["startPeriod"]) for p in schedule["chargingSchedulePeriod"]}
                     | ({float(schedule["duration"])} if "duration" in schedule else set()))
    cycle = _cycle(profile)

    def points() -> Iterator[float]:
        base = first
        while base - start < duration:
            for offset in offsets:
                if not cycle or offset < cycle:
                    yield base + offset - start
            if not cycle:
                return
            base += cycle

    return heapq.merge(edges, points())
