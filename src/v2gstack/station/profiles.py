"""Charging profiles of an OCPP 2.0.1 station (functional block K), sans-I/O: validation, storage, composite schedule.

Profiles are kept as the CSMS sent them (the schema's camelCase dicts). Time is the station's wall clock in epoch
seconds. The composite schedule follows K08: for each purpose the valid profile with the highest stackLevel rules at
each instant; a TxProfile overrides the TxDefaultProfile for its transaction; the result is the lowest of that,
ChargingStationMaxProfile and ChargingStationExternalConstraints. Limits convert between A and W with the profile's
numberPhases (default 3) and the supply voltage.

Work is bounded for anything the CSMS sends: at most `max_profiles` installed profiles, limits finite and within
MAX_LIMIT, and a composite schedule of at most `max_periods` periods found from at most EVALUATIONS_PER_PERIOD times
as many limit changes (a recurring profile's changes are generated lazily, so a huge duration costs nothing more).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..times import parse_rfc3339, rfc3339

Profile = dict[str, Any]
STATION_WIDE = ("ChargingStationMaxProfile", "ChargingStationExternalConstraints")
WEEK, DAY = 7 * 86400, 86400
MAX_LIMIT = {"W": 10_000_000.0, "A": 10_000.0}
"""The largest limit magnitude a schedule may carry (10 MW, 10 kA): beyond it a value is a mistake or an attack."""
EVALUATIONS_PER_PERIOD = 4
"""Limit changes looked at per period a composite schedule may have (changes that do not change the result count
too, so that the work stays bounded when many of them cancel out)."""


@dataclass
class Installed:
    """A profile and the EVSE it was set for (0 = the whole station)."""

    evse_id: int
    profile: Profile


@dataclass(frozen=True)
class Rejection(Exception):
    """A request the station refuses (SetChargingProfile, GetCompositeSchedule): the statusInfo reasonCode
    (<= 20 chars) and a description."""

    reason: str
    info: str


@functools.lru_cache(maxsize=4096)
def epoch(value: str) -> float:
    """An RFC 3339 time in epoch seconds (cached: the composite schedule reads the same few times very often)."""
    return parse_rfc3339(value).timestamp()


class _Installed(dict[int, Installed]):
    """The installed profiles by id; counts its changes (`version`) so that the per-EVSE index is rebuilt only
    after one."""

    version = 0

    def __setitem__(self, key: int, value: Installed) -> None:
        self.version += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: int) -> None:
        self.version += 1
        super().__delitem__(key)

    def pop(self, key: int, *default: Any) -> Any:  # type: ignore[override]
        self.version += 1
        return super().pop(key, *default)

    def popitem(self) -> tuple[int, Installed]:
        self.version += 1
        return super().popitem()

    def clear(self) -> None:
        self.version += 1
        super().clear()

    def update(self, *args: Any, **kwargs: Any) -> None:
        self.version += 1
        super().update(*args, **kwargs)

    def setdefault(self, key: int, default: Any = None) -> Any:
        self.version += 1
        return super().setdefault(key, default)


class ChargingProfiles:
    """The installed profiles of one station."""

    def __init__(self, evse_ids: list[int], max_schedules: int = 3, max_periods: int = 24,
                 max_profiles: int = 32) -> None:
        self.evse_ids = set(evse_ids)
        self.max_schedules = max_schedules
        self.max_periods = max_periods
        self.max_profiles = max_profiles
        self.items: dict[int, Installed] = _Installed()  # by profile id
        self._index: tuple[int, dict[int, list[Installed]]] = (-1, {})  # (items' version, evse id -> its items)

    def for_evse(self, evse_id: int) -> list[Installed]:
        """The profiles set for the EVSE itself and the station-wide ones (evseId 0): what can rule it. Looked up
        in an index kept per EVSE (rebuilt after a change of the installed set), so a charge loop's question costs
        the same with 1 or 100 EVSEs on the station."""
        version = getattr(self.items, "version", None)
        built, index = self._index
        if version is None or built != version:
            index = {}
            for item in self.items.values():
                index.setdefault(item.evse_id, []).append(item)
            if version is not None:
                self._index = (version, index)
        if evse_id == 0:
            return index.get(0, [])
        return index.get(0, []) + index.get(evse_id, [])

    # ----- SetChargingProfile -----

    def set(self, evse_id: int, profile: Profile, active_tx: dict[int, str]) -> None:
        """Install (or replace, same id) a profile; raise Rejection with the reason the station refuses it.

        `active_tx` maps EVSE id -> running transactionId (a TxProfile needs one)."""
        purpose = profile["chargingProfilePurpose"]
        if evse_id != 0 and evse_id not in self.evse_ids:
            raise Rejection("UnknownEvse", f"no EVSE {evse_id}")
        if purpose in STATION_WIDE and evse_id != 0:
            raise Rejection("InvalidProfile", f"a {purpose} is set on evseId 0")
        if purpose == "TxProfile":
            if evse_id == 0:
                raise Rejection("InvalidProfile", "a TxProfile is set on one EVSE")
            running = active_tx.get(evse_id)
            if running is None:
                raise Rejection("TxNotFound", f"no transaction on EVSE {evse_id}")
            wanted = profile.get("transactionId")
            if wanted is not None and wanted != running:
                raise Rejection("TxNotFound", f"transaction {wanted} does not run on EVSE {evse_id}")
        elif "transactionId" in profile:
            raise Rejection("InvalidProfile", "only a TxProfile names a transaction")
        self.check(profile)
        if profile["id"] not in self.items and len(self.items) >= self.max_profiles:
            raise Rejection("TooManyElements", f"at most {self.max_profiles} charging profiles are installed")
        for other in self.items.values():
            p = other.profile
            if (p["id"] != profile["id"] and other.evse_id == evse_id and p["chargingProfilePurpose"] == purpose
                    and p["stackLevel"] == profile["stackLevel"]):
                raise Rejection("DuplicateProfile",
                                f"profile {p['id']} has the same stackLevel and purpose on this EVSE")
        self.items[profile["id"]] = Installed(evse_id, profile)

    def check(self, profile: Profile) -> None:
        """The checks of a profile by itself (kind, schedules, periods, limits, times); Rejection if it fails one.
        Run on every SetChargingProfile and on every profile read back from disk."""
        kind = profile["chargingProfileKind"]
        purpose = profile["chargingProfilePurpose"]
        if kind == "Recurring" and "recurrencyKind" not in profile:
            raise Rejection("InvalidProfile", "a Recurring profile needs recurrencyKind")
        for key in ("validFrom", "validTo"):
            if key in profile:
                _time(profile[key], key)
        schedules = profile["chargingSchedule"]
        if len(schedules) > self.max_schedules:
            raise Rejection("InvalidSchedule", f"at most {self.max_schedules} schedules")
        for sched in schedules:
            periods = sched["chargingSchedulePeriod"]
            if len(periods) > self.max_periods:
                raise Rejection("InvalidSchedule", f"at most {self.max_periods} periods per schedule")
            starts = [p["startPeriod"] for p in periods]
            if not starts or starts[0] != 0 or any(b <= a for a, b in itertools.pairwise(starts)):
                raise Rejection("InvalidSchedule", "periods start at 0 and increase")
            if kind in ("Absolute", "Recurring") and "startSchedule" not in sched:
                raise Rejection("InvalidSchedule", f"an {kind} schedule needs startSchedule")
            if "startSchedule" in sched:
                _time(sched["startSchedule"], "startSchedule")
            if sched.get("duration", 0) < 0:
                raise Rejection("InvalidSchedule", "a negative schedule duration")
            unit = sched["chargingRateUnit"]
            for name, value in [("minChargingRate", sched.get("minChargingRate", 0.0)),
                                *(("limit", p["limit"]) for p in periods if "limit" in p)]:
                _check_limit(name, value, unit)
            if any(p.get("limit", 0) < 0 for p in periods) and purpose != "TxProfile":
                raise Rejection("InvalidSchedule", "negative limits (discharge) only in a TxProfile")
            for p in periods:
                if not 1 <= p.get("numberPhases", 3) <= 3 or not 1 <= p.get("phaseToUse", 1) <= 3:
                    raise Rejection("InvalidSchedule", "numberPhases and phaseToUse are 1, 2 or 3")

    # ----- ClearChargingProfile / GetChargingProfiles -----

    def clear(self, profile_id: int | None = None, criteria: dict[str, Any] | None = None) -> bool:
        """Remove the profiles matching the id or the criteria (evseId, chargingProfilePurpose, stackLevel)."""
        criteria = criteria or {}
        gone = [pid for pid, item in self.items.items() if _matches(item, profile_id, criteria)]
        for pid in gone:
            del self.items[pid]
        return bool(gone)

    def end_transaction(self, transaction_id: str) -> None:
        """A transaction ended: its TxProfiles go (a TxProfile lives as long as its transaction)."""
        for pid in [pid for pid, i in self.items.items() if i.profile["chargingProfilePurpose"] == "TxProfile"
                    and i.profile.get("transactionId") in (None, transaction_id)]:
            del self.items[pid]

    def report(self, evse_id: int | None, criterion: dict[str, Any]) -> list[Installed]:
        """The installed profiles GetChargingProfiles selects."""
        ids = set(criterion.get("chargingProfileId") or [])
        out = []
        for item in self.items.values():
            p = item.profile
            if evse_id is not None and item.evse_id != evse_id:
                continue
            if ids and p["id"] not in ids:
                continue
            if "chargingProfilePurpose" in criterion and p["chargingProfilePurpose"] != criterion[
                    "chargingProfilePurpose"]:
                continue
            if "stackLevel" in criterion and p["stackLevel"] != criterion["stackLevel"]:
                continue
            out.append(item)
        return out

    # ----- composite schedule -----

    def composite(self, evse_id: int, start: float, duration: int, unit: str = "W", *, voltage: float = 230.0,
                  default_phases: int = 3, tx_start: float | None = None, tx_id: str | None = None,
                  evse_max: float | None = None, max_periods: int = 1024) -> Profile:
        """The CompositeScheduleType for one EVSE (0: the station's own limits) from `start` for `duration` s.

        Rejection (ValueTooHigh) when it would need more than `max_periods` periods, or more than
        EVALUATIONS_PER_PERIOD x `max_periods` limit changes to find them (K08.FR.05: a schedule the station cannot
        report): the work is bounded whatever the duration."""
        items = self._ruling(evse_id, tx_start, tx_id)  # only their limits can change this EVSE's: a station of
        # ten EVSEs composes one EVSE from its own profiles and the station-wide ones, not from all ten EVSEs'
        changes = heapq.merge(*(_breakpoints(item.profile, start, duration, tx_start) for item in items))
        budget = EVALUATIONS_PER_PERIOD * max_periods
        periods: list[dict[str, Any]] = []
        evaluated = 0
        last = -1.0
        for t in itertools.chain((0.0,), changes):
            if t >= duration:
                break
            if t <= last or (evaluated and t <= 0):
                continue
            last, evaluated = t, evaluated + 1
            if evaluated > budget:
                raise _too_long(duration, max_periods)
            limit, phases = self._limit_at(evse_id, start + t, unit, voltage, default_phases, tx_start, items)
            if evse_max is not None:
                cap = evse_max if unit == "W" else evse_max / (voltage * (phases or default_phases))
                limit = cap if limit is None else min(limit, cap)
            if limit is None:
                continue
            period = {"startPeriod": int(t), "limit": round(limit, 1), "numberPhases": phases or default_phases}
            if periods and periods[-1]["startPeriod"] == period["startPeriod"]:
                periods.pop()  # two changes within one second: the later one holds
            if periods and periods[-1]["limit"] == period["limit"] and \
                    periods[-1]["numberPhases"] == period["numberPhases"]:
                continue
            periods.append(period)
            if len(periods) > max_periods:
                raise _too_long(duration, max_periods)
        if not periods:  # nothing limits: the EVSE's own maximum, or 0 when unknown
            periods = [{"startPeriod": 0, "limit": 0.0 if evse_max is None else round(
                evse_max if unit == "W" else evse_max / (voltage * default_phases), 1),
                "numberPhases": default_phases}]
        return {"evseId": evse_id, "duration": duration, "scheduleStart": rfc3339(start, timespec="seconds"),
                "chargingRateUnit": unit, "chargingSchedulePeriod": periods}

    def limit_w(self, evse_id: int, at: float, *, voltage: float = 230.0, default_phases: int = 3,
                tx_start: float | None = None, tx_id: str | None = None) -> float | None:
        """The composite limit in W at one instant (None: no profile limits this EVSE)."""
        return self._limit_at(evse_id, at, "W", voltage, default_phases, tx_start,
                              self._ruling(evse_id, tx_start, tx_id))[0]

    def _ruling(self, evse_id: int, tx_start: float | None, tx_id: str | None) -> list[Installed]:
        """The installed profiles that can rule the EVSE (0: the station's own limits) with this transaction (from
        the per-EVSE index: its own and the station-wide ones)."""
        out = []
        for item in self.for_evse(evse_id):
            p = item.profile
            purpose = p["chargingProfilePurpose"]
            if purpose in STATION_WIDE:
                if item.evse_id != 0:
                    continue
            elif item.evse_id not in (0, evse_id) or evse_id == 0:
                continue
            if purpose == "TxProfile" and (tx_id is None or p.get("transactionId") not in (None, tx_id)):
                continue
            if purpose in ("TxDefaultProfile", "TxProfile") and p["chargingProfileKind"] == "Relative" \
                    and tx_start is None:
                continue
            out.append(item)
        return out

    def _limit_at(self, evse_id: int, at: float, unit: str, voltage: float, default_phases: int,
                  tx_start: float | None, items: list[Installed]) -> tuple[float | None, int | None]:
        """(limit in `unit`, phases) at `at` from `items`, the profiles that can rule the EVSE (`_ruling`)."""
        by_purpose: dict[str, tuple[int, float, int | None]] = {}  # purpose -> (stackLevel, limit W, phases)
        for item in items:
            p = item.profile
            purpose = p["chargingProfilePurpose"]
            period = _period_at(p, at, tx_start)
            if period is None:
                continue
            sched, per = period
            if "limit" not in per:  # an OCPP 2.1 period without a charging limit (e.g. a setpoint's)
                continue
            phases = per.get("numberPhases")
            watts = _to_watts(per["limit"], sched["chargingRateUnit"], voltage, phases or default_phases)
            level = p["stackLevel"] + (1000 if item.evse_id == evse_id and purpose == "TxDefaultProfile" else 0)
            best = by_purpose.get(purpose)
            if best is None or level > best[0]:
                by_purpose[purpose] = (level, watts, phases)
        tx_limit = by_purpose.get("TxProfile") or by_purpose.get("TxDefaultProfile")
        candidates = [v for v in (tx_limit, by_purpose.get("ChargingStationMaxProfile"),
                                  by_purpose.get("ChargingStationExternalConstraints")) if v is not None]
        if not candidates:
            return None, None
        _, watts, phases = min(candidates, key=lambda v: v[1])
        if unit == "W":
            return watts, phases
        return watts / (voltage * (phases or default_phases)), phases


def _to_watts(limit: float, unit: str, voltage: float, phases: int) -> float:
    return float(limit) if unit == "W" else float(limit) * voltage * phases


def _matches(item: Installed, profile_id: int | None, criteria: dict[str, Any]) -> bool:
    p = item.profile
    if profile_id is not None:
        return p["id"] == profile_id
    if "evseId" in criteria and item.evse_id != criteria["evseId"]:
        return False
    if "chargingProfilePurpose" in criteria and p["chargingProfilePurpose"] != criteria["chargingProfilePurpose"]:
        return False
    return not ("stackLevel" in criteria and p["stackLevel"] != criteria["stackLevel"])


def _schedule_start(p: Profile, sched: dict[str, Any], at: float, tx_start: float | None) -> float | None:
    """When the schedule's period 0 starts for the instant `at` (recurring profiles repeat)."""
    kind = p["chargingProfileKind"]
    if kind == "Relative":
        return tx_start
    if "startSchedule" not in sched:  # an OCPP 2.1 Dynamic profile: in force since it was set
        return -math.inf if kind == "Dynamic" else None
    start = epoch(sched["startSchedule"])
    if kind == "Recurring":
        cycle = DAY if p.get("recurrencyKind") == "Daily" else WEEK
        if at >= start:
            start += ((at - start) // cycle) * cycle
    return start


def _period_at(p: Profile, at: float, tx_start: float | None) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(schedule, period) of a profile in force at `at`, or None."""
    if "validFrom" in p and at < epoch(p["validFrom"]):
        return None
    if "validTo" in p and at >= epoch(p["validTo"]):
        return None
    sched = p["chargingSchedule"][0]
    start = _schedule_start(p, sched, at, tx_start)
    if start is None or at < start:
        return None
    offset = at - start
    if "duration" in sched and offset >= sched["duration"]:
        return None
    current = None
    for per in sched["chargingSchedulePeriod"]:
        if per["startPeriod"] <= offset:
            current = per
    return (sched, current) if current is not None else None


def _breakpoints(p: Profile, start: float, duration: int, tx_start: float | None) -> Iterator[float]:
    """Offsets from `start`, ascending, where this profile's own limit changes before `duration` (a period with the
    limit of the one before it, or a recurring schedule that ends where it begins, is no change); lazy, so that a
    recurring profile costs only as many cycles as the caller reads."""
    edges = sorted(epoch(p[key]) - start for key in ("validFrom", "validTo") if key in p)
    sched = p["chargingSchedule"][0]
    first = _schedule_start(p, sched, start, tx_start)
    if first is None:
        return iter(edges)
    periods = sched["chargingSchedulePeriod"]
    values = [(per.get("limit"), per.get("numberPhases")) for per in periods]
    offsets = {0.0} | {float(per["startPeriod"]) for per, before, now in zip(periods[1:], values, values[1:],
                                                                           strict=False) if now != before}
    cycle = 0.0
    if p["chargingProfileKind"] == "Recurring":
        cycle = DAY if p.get("recurrencyKind") == "Daily" else WEEK
    if "duration" in sched and (not cycle or sched["duration"] < cycle):
        offsets.add(float(sched["duration"]))
    if cycle:
        offsets = {o for o in offsets if o < cycle}  # the next cycle starts there anyway
    ordered = sorted(offsets)
    seamless = cycle and float(sched.get("duration", cycle)) >= cycle and values[-1] == values[0]
    later = ordered[1:] if seamless else ordered  # a cycle that begins with the limit the last one ended with

    def points() -> Iterator[float]:
        """Each cycle's changes, cycle after cycle, until the window ends."""
        base, this = first, ordered
        while base - start < duration:
            for offset in this:
                yield base + offset - start
            if not cycle:
                return
            base, this = base + cycle, later

    return heapq.merge(edges, points())


def _too_long(duration: int, max_periods: int) -> Rejection:
    """The refusal of a composite schedule that is too long to report."""
    return Rejection("ValueTooHigh", f"the composite schedule for {duration} s has more than {max_periods} periods "
                                     "(SmartChargingCtrlr.PeriodsPerSchedule); ask for a shorter duration")


def _time(value: Any, name: str) -> float:
    """A profile's date-time field in epoch seconds; Rejection when it is not one."""
    try:
        return epoch(value)
    except (TypeError, ValueError, OverflowError, AttributeError):
        raise Rejection("InvalidValue", f"{name} is not a date-time") from None


def _check_limit(name: str, value: Any, unit: str) -> None:
    """A limit must be a finite number of sane size (the JSON parser may hand over inf or nan for 1e999)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise Rejection("InvalidValue", f"{name} is not a finite number")
    if abs(value) > MAX_LIMIT[unit]:
        raise Rejection("ValueTooHigh", f"{name} {value:g} {unit} is beyond {MAX_LIMIT[unit]:g} {unit}")
