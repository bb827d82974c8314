"""The smart charging service (OCPP 2.0.1 and 2.1 block K): the installed profiles (profiles.py does the sans-I/O
work), the limit in force on each EVSE, composite schedules, persistence across restarts, and the listeners told of
each change (the transactions apply the new limit at once; the ISO 15118 bridge renegotiates).

Over OCPP 2.1 a SetChargingProfile is first checked by the V2X rules (ocpp/v2x.py) with the capabilities the device
model declares (SmartChargingCtrlr, V2XChargingCtrlr), and by `pre_check` (the V2X service: what the EV can do); the
composite schedule and the period in force come from ocpp/v2x_composite.py (discharge limits, setpoints, modes),
with the external actor's constraints (`set_external`) beside the installed profiles."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..ocpp.v2x import Capabilities, OperationMode, ProfileRejected, Quantity, check_profile
from ..ocpp.v2x_composite import CompositeTooLong, Electrical, compose_at, composite_schedule, next_change
from .context import StationContext
from .link import Link
from .profiles import ChargingProfiles, Installed, Rejection
from .v2x_target import total

log = logging.getLogger(__name__)

Payload = dict[str, Any]
ProfileListener = Callable[[int], None]  # evse id (0: station-wide) after SetChargingProfile/ClearChargingProfile
PreCheck = Callable[[int, Payload], None]  # (evseId, profile) -> raises ProfileRejected (2.1: what the EV can do)
EXTERNAL_PROFILE_ID = -1
"""Id of the station-local ChargingStationExternalConstraints profile that holds an external actor's values (never
sent: negative ids are the station's own)."""


class SmartCharging:
    """Charging profiles, limits and composite schedules of the station's EVSEs."""

    def __init__(self, ctx: StationContext, link: Link) -> None:
        self.ctx = ctx
        self.link = link
        model = ctx.model
        entries = model.find("SmartChargingCtrlr", "Entries", instance="ChargingProfiles")
        self.profiles = ChargingProfiles(  # the limits the device model declares
            list(ctx.evses), max_periods=model.int("SmartChargingCtrlr", "PeriodsPerSchedule"),
            max_profiles=int(entries.max_limit) if entries is not None and entries.max_limit else 32)
        self.listeners: list[ProfileListener] = []
        self.evse_listeners: dict[int, list[ProfileListener]] = {}  # told of their EVSE's and station-wide changes
        self.pre_check: PreCheck | None = None
        self.external: dict[int, Payload] = {}  # evse id -> the external actor's constraints as a profile
        self._generation = 0  # counts the station-wide changes of profiles and constraints: a memo of another count
        # is stale; a change on one EVSE counts in `_evse_generation` only, so that a setpoint to one car of a large
        # station does not make every other EVSE's next charge loop compose its period again
        self._evse_generation: dict[int, int] = {}
        # evse -> (inputs, since, until, period, its limit): the period in force, reused while its inputs (the change
        # counts, the transaction and its start, the supply) are the same and the station's clock reads within
        # [since, until): from when it was composed to the next instant any of its profiles can change
        self._memo: dict[int, tuple[tuple[Any, ...], float, float, Payload | None, float | None]] = {}
        self._limit_memo: dict[int, tuple[tuple[Any, ...], float, float, float | None]] = {}  # 2.0.1's limit, alike
        self._shared: tuple[tuple[int, int], dict[Any, Payload | None]] = ((-1, -1), {})  # periods of timeless sets
        self._load()
        self._count()

    # ----- limits and schedules -----

    def limit_w(self, evse_id: int) -> float | None:
        """The charging-profile limit on the EVSE now, in W (None: no profile limits it)."""
        if self.link.v21:
            if not self.profiles.items and not self.external:
                return None
            return self._now21(evse_id)[4]  # the period's limit, worked out once per composition
        if not self.profiles.items:
            return None
        evse = self.ctx.evses[evse_id]
        tx = evse.tx
        tx_id, tx_start = (tx.id, tx.started_epoch) if tx else (None, None)
        limits = evse.hardware.limits
        now = self.ctx.clock.epoch()
        inputs = (self._generation, self._evse_generation.get(evse_id, 0), getattr(self.profiles.items, "version", 0),
                  tx_id, tx_start, limits.nominal_voltage, limits.phases)
        memo = self._limit_memo.get(evse_id)
        if memo is not None and memo[0] == inputs and memo[1] <= now < memo[2]:  # as period_now's
            return memo[3]
        limit = self.profiles.limit_w(evse_id, now, voltage=limits.nominal_voltage, default_phases=limits.phases,
                                      tx_start=tx_start, tx_id=tx_id)
        until = min((next_change(i.profile, now, tx_start) for i in self.profiles.for_evse(evse_id)),
                    default=math.inf)
        self._limit_memo[evse_id] = (inputs, now, until, limit)
        return limit

    def items(self) -> list[tuple[int, Payload]]:
        """(evseId, profile) of every installed profile and the external actor's constraints."""
        return [(i.evse_id, i.profile) for i in self.profiles.items.values()] + [
            (e, p) for e, p in self.external.items()]

    def electrical(self, evse_id: int) -> Electrical:
        """How A and W convert on the EVSE (its supply voltage and phases; the station's defaults for 0)."""
        evse = self.ctx.evses.get(evse_id)
        if evse is None:
            return Electrical()
        return Electrical(evse.hardware.limits.nominal_voltage, evse.hardware.limits.phases)

    def period_now(self, evse_id: int) -> Payload | None:
        """The OCPP 2.1 composite period in force on the EVSE now, in W (None: no profile applies).

        Composed once and reused until the next instant at which it can change (`next_change` of each profile
        concerned: a period boundary, validFrom/validTo, a duration's end, a recurrence; a Relative profile's counted
        from the transaction's start), or at once after a change of its inputs: the profiles and the external
        constraints (`changed`, and every change of the installed set), the EVSE's transaction or its start, the
        supply. A clock that goes back before the composition, or jumps past `until`, composes again."""
        if not self.profiles.items and not self.external:
            return None
        return self._now21(evse_id)[3]

    def _now21(self, evse_id: int) -> tuple[tuple[Any, ...], float, float, Payload | None, float | None]:
        """period_now's memo entry for the EVSE, composed again when stale: (inputs, since, until, period, the
        period's charging limit in W: 0 when Idle, the per-phase limits summed, None without one)."""
        evse = self.ctx.evses[evse_id]
        tx = evse.tx
        tx_id, tx_start = (tx.id, tx.started_epoch) if tx else (None, None)
        now = self.ctx.clock.epoch()  # the station's clock (a simulation may run it faster, or jump it)
        limits = evse.hardware.limits
        inputs = (self._generation, self._evse_generation.get(evse_id, 0), getattr(self.profiles.items, "version", 0),
                  tx_id, tx_start, limits.nominal_voltage, limits.phases)
        memo = self._memo.get(evse_id)
        if memo is not None and memo[1] <= now < memo[2] and memo[0] == inputs:
            return memo
        # the EVSE's own and the station-wide entries only (no list of every EVSE's profiles: a charge loop asks)
        items = [(i.evse_id, i.profile) for i in self.profiles.for_evse(evse_id)
                 if _applies(i.evse_id, i.profile, evse_id, tx_id)]
        items += [(e, p) for e, p in self.external.items() if _applies(e, p, evse_id, tx_id)]
        electrical = Electrical(limits.nominal_voltage, limits.phases)
        if all(_timeless(p) for _, p in items):  # the same profiles give every EVSE of the same supply the same
            generation = (self._generation, inputs[2])  # period: composed once for all of them
            if self._shared[0] != generation or len(self._shared[1]) > 4 * len(self.ctx.evses) + 16:
                self._shared = (generation, {})  # (bounded: every change on one EVSE adds its key)
            own = any(e != 0 for e, _ in items)  # the EVSE's own entries: their changes count on the EVSE alone
            key = (tuple((e != 0, id(p)) for e, p in items), electrical, inputs[1] if own else None)
            period = self._shared[1].get(key, _MISSING)
            if period is _MISSING:
                period = self._shared[1][key] = compose_at(items, evse_id, now, "W", electrical) or None
            until = math.inf
        else:
            period = compose_at(items, evse_id, now, "W", electrical, tx_start) or None
            until = min((next_change(p, now, tx_start) for _, p in items), default=math.inf)
        if period is None:
            limit = None
        elif period.get("operationMode") == OperationMode.IDLE.value:
            limit = 0.0
        else:
            limit = total(period, Quantity.LIMIT)  # the per-phase limits summed
        memo = self._memo[evse_id] = (inputs, now, until, period, limit)
        return memo

    def capabilities(self, evse_id: int) -> Capabilities:
        """What the device model declares of the optional 2.1 features (the V2X rules check profiles against it)."""
        model = self.ctx.model
        modes: frozenset[OperationMode] = frozenset({OperationMode.CHARGING_ONLY})
        evses = [evse_id] if evse_id in self.ctx.evses else list(self.ctx.evses)
        enabled = [e for e in evses if model.bool("V2XChargingCtrlr", "Enabled", evse=e)]
        if enabled:  # the modes every EVSE concerned supports (station-wide profiles: all of them)
            modes = frozenset.intersection(*(frozenset(OperationMode(m) for m in model.members(
                "V2XChargingCtrlr", "SupportedOperationModes", evse=e)) for e in enabled))
            if len(enabled) < len(evses):
                modes = frozenset({OperationMode.CHARGING_ONLY})
        return Capabilities(
            rate_units=frozenset(model.members("SmartChargingCtrlr", "RateUnit")),
            supports_dynamic_profiles=model.bool("SmartChargingCtrlr", "SupportsDynamicProfiles"),
            supports_evse_sleep=model.bool("SmartChargingCtrlr", "SupportsEvseSleep"),
            supports_use_local_time=model.bool("SmartChargingCtrlr", "SupportsUseLocalTime"),
            supports_randomized_delay=model.bool("SmartChargingCtrlr", "SupportsRandomizedDelay"),
            supports_limit_at_soc=model.bool("SmartChargingCtrlr", "SupportsLimitAtSoC"),
            additional_purposes=frozenset(model.members("SmartChargingCtrlr", "SupportedAdditionalPurposes")),
            operation_modes=modes, ac_phase_switching=model.bool("SmartChargingCtrlr", "ACPhaseSwitchingSupported"),
            supply_phases=model.int("ChargingStation", "SupplyPhases"))

    def set_external(self, evse_id: int, period: Payload | None) -> None:
        """An external actor's constraints on the EVSE (`period`: limit, dischargeLimit in W), or their end (None);
        the limits apply at once."""
        if period is None:
            self.external.pop(evse_id, None)
        else:
            self.external[evse_id] = {
                "id": EXTERNAL_PROFILE_ID, "stackLevel": 0, "chargingProfilePurpose":
                    "ChargingStationExternalConstraints", "chargingProfileKind": "Dynamic", "chargingSchedule": [
                        {"id": EXTERNAL_PROFILE_ID, "chargingRateUnit": "W",
                         "chargingSchedulePeriod": [{"startPeriod": 0, **period}]}]}
        self.changed(evse_id)

    def composite_schedule(self, evse_id: int, duration_s: int, unit: str = "W", *,
                           max_periods: int | None = None) -> Payload:
        """GetCompositeSchedule for an EVSE (0: the station) from now, within the EVSE's own maximum; at most
        `max_periods` periods (default SmartChargingCtrlr.PeriodsPerSchedule), else Rejection."""
        if self.link.v21:
            return self._composite21(evse_id, duration_s, unit, max_periods=max_periods)
        ctx = self.ctx
        evse = ctx.evses.get(evse_id)
        tx = evse.tx if evse else None
        voltage, phases = (evse.hardware.limits.nominal_voltage, evse.hardware.limits.phases) if evse else (230.0, 3)
        if max_periods is None:
            max_periods = ctx.model.int("SmartChargingCtrlr", "PeriodsPerSchedule")
        return self.profiles.composite(evse_id, ctx.clock.epoch(), duration_s, unit, voltage=voltage,
                                       default_phases=phases, tx_start=tx.started_epoch if tx else None,
                                       tx_id=tx.id if tx else None,
                                       evse_max=evse.max_power_w if evse else sum(
                                           e.max_power_w for e in ctx.evses.values()), max_periods=max_periods)

    def _composite21(self, evse_id: int, duration_s: int, unit: str, *, max_periods: int | None) -> Payload:
        """The OCPP 2.1 composite schedule (v2x_composite: discharge limits, setpoints, operation modes); every period
        states the charging `limit`, at most the EVSE's rating (the station's: the sum of its EVSEs')."""
        ctx = self.ctx
        evse = ctx.evses.get(evse_id)
        tx = evse.tx if evse else None
        electrical = self.electrical(evse_id)
        rating = evse.max_power_w if evse else sum(e.max_power_w for e in ctx.evses.values())
        cap = rating if unit == "W" else rating / (electrical.voltage * electrical.default_phases)
        if max_periods is None:
            max_periods = ctx.model.int("SmartChargingCtrlr", "PeriodsPerSchedule")
        try:
            schedule = composite_schedule(self.items(), evse_id, ctx.clock.epoch(), duration_s, unit,
                                          tx_id=tx.id if tx else None, tx_start=tx.started_epoch if tx else None,
                                          electrical=electrical, default_limit=cap, max_periods=max_periods)
        except CompositeTooLong as e:
            raise Rejection("ValueTooHigh", str(e)) from None
        periods = schedule["chargingSchedulePeriod"] or [{"startPeriod": 0}]
        for period in periods:
            _cap_limit(period, cap, electrical.default_phases if unit == "W" else 1)
        schedule["chargingSchedulePeriod"] = periods
        return schedule

    def subscribe(self, listener: ProfileListener, evse_id: int | None = None) -> Callable[[], None]:
        """Call `listener(evse_id)` after each change of the profiles (with `evse_id`: only the changes of that EVSE
        and the station-wide ones, so that a change on one EVSE of a large station is not told to all of its
        EVSEs' listeners); returns the unsubscribe function."""
        group = self.listeners if evse_id is None else self.evse_listeners.setdefault(evse_id, [])
        group.append(listener)
        return lambda: group.remove(listener) if listener in group else None

    def changed(self, evse_id: int) -> None:
        """Tell the listeners that the profiles of an EVSE (0: the station) changed: those of every EVSE first (the
        transactions put the new limits on the hardware), then those of the EVSEs concerned."""
        if evse_id == 0:
            self._generation += 1
        else:
            self._evse_generation[evse_id] = self._evse_generation.get(evse_id, 0) + 1
        groups = [self.listeners]
        if evse_id == 0:
            groups += list(self.evse_listeners.values())
        elif evse_id in self.evse_listeners:
            groups.append(self.evse_listeners[evse_id])
        for group in groups:
            for listener in list(group):
                try:
                    listener(evse_id)
                except Exception:
                    log.exception("%s: profile listener failed", self.ctx.station_id)

    def end_transaction(self, transaction_id: str) -> None:
        """A transaction ended: its TxProfiles go."""
        self.profiles.end_transaction(transaction_id)
        self._generation += 1
        self._count()

    # ----- persistence -----

    def _count(self) -> None:
        """SmartChargingCtrlr.Entries is the number of installed profiles."""
        self.ctx.model.put("SmartChargingCtrlr", "Entries", str(len(self.profiles.items)), instance="ChargingProfiles")

    def save(self) -> None:
        """Keep the installed profiles in the state folder (they survive a restart, as K01 expects), and their
        number in SmartChargingCtrlr.Entries."""
        self._count()
        if self.ctx.config.state_dir is None:
            return
        path = Path(self.ctx.config.state_dir) / "charging_profiles.json"
        data = [{"evseId": i.evse_id, "chargingProfile": i.profile} for i in self.profiles.items.values()]
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)

    def _load(self) -> None:
        """Profiles saved by an earlier run (TxProfiles ended with their transactions and are not kept); each is
        checked again as if the CSMS had just sent it, and one that fails is dropped with a warning."""
        if self.ctx.config.state_dir is None:
            return
        path = Path(self.ctx.config.state_dir) / "charging_profiles.json"
        if not path.exists():
            return
        for item in json.loads(path.read_text()):
            profile = item["chargingProfile"]
            if profile["chargingProfilePurpose"] == "TxProfile":
                continue
            try:
                self.profiles.check(profile)
            except (Rejection, KeyError, TypeError) as e:
                log.warning("%s: dropping saved charging profile %s: %s", self.ctx.station_id,
                            profile.get("id"), getattr(e, "info", e))
                continue
            if len(self.profiles.items) < self.profiles.max_profiles:
                self.profiles.items[profile["id"]] = Installed(item["evseId"], profile)

    # ----- CSMS-initiated messages -----

    def handlers(self) -> dict[str, Callable[[Payload], Payload]]:
        """SetChargingProfile, ClearChargingProfile, GetChargingProfiles, GetCompositeSchedule."""
        return {"SetChargingProfile": self._set, "ClearChargingProfile": self._clear,
                "GetChargingProfiles": self._get, "GetCompositeSchedule": self._composite}

    def _set(self, p: Payload) -> Payload:
        """SetChargingProfile (K01): validate (2.1: the V2X rules and what the EV can do first) and install; the new
        limits apply at once."""
        active = {e.id: e.tx.id for e in self.ctx.evses.values() if e.tx is not None}
        if self.link.v21:
            try:
                check_profile(p["evseId"], p["chargingProfile"], self.capabilities(p["evseId"]))
                if self.pre_check is not None:
                    self.pre_check(p["evseId"], p["chargingProfile"])
            except ProfileRejected as e:
                log.info("%s: SetChargingProfile rejected by %s: %s", self.ctx.station_id, e.rule, e.info)
                return e.response()
        replaced = self.profiles.items.get(p["chargingProfile"]["id"])
        try:
            self.profiles.set(p["evseId"], p["chargingProfile"], active)
        except Rejection as e:
            log.info("%s: SetChargingProfile rejected: %s", self.ctx.station_id, e.info)
            return {"status": "Rejected", "statusInfo": {"reasonCode": e.reason, "additionalInfo": e.info[:512]}}
        self.changed(p["evseId"])  # the new limits first: the EV's next loop carries them
        if p["chargingProfile"]["chargingProfilePurpose"] != "TxProfile" or (
                replaced is not None and replaced.profile["chargingProfilePurpose"] != "TxProfile"):
            self.save()
        else:  # a TxProfile is never reloaded (it ends with its transaction): the file would not change what a
            self._count()  # restart loads, and writing it sits on the setpoint's path
        return {"status": "Accepted"}

    def _clear(self, p: Payload) -> Payload:
        """ClearChargingProfile (K10) by id or criteria."""
        criteria = p.get("chargingProfileCriteria") or {}
        if not self.profiles.clear(p.get("chargingProfileId"), criteria):
            return {"status": "Unknown"}
        self.save()
        self.changed(criteria.get("evseId", 0))
        return {"status": "Accepted"}

    def _get(self, p: Payload) -> Payload:
        """GetChargingProfiles (K09): answer, then ReportChargingProfiles per EVSE with the same requestId."""
        found = self.profiles.report(p.get("evseId"), p["chargingProfile"])
        if not found:
            return {"status": "NoProfiles"}
        self.ctx.spawn(self._report(p["requestId"], found), "report-profiles")
        return {"status": "Accepted"}

    async def _report(self, request_id: int, found: list[Installed]) -> None:
        """ReportChargingProfiles: one message per EVSE, tbc on all but the last."""
        by_evse: dict[int, list[Payload]] = {}
        for item in found:
            by_evse.setdefault(item.evse_id, []).append(item.profile)
        evse_ids = sorted(by_evse)
        for n, evse_id in enumerate(evse_ids):
            await self.link.try_call("ReportChargingProfiles", {
                "requestId": request_id, "chargingLimitSource": "CSO", "evseId": evse_id,
                "chargingProfile": by_evse[evse_id], "tbc": n < len(evse_ids) - 1})

    def _composite(self, p: Payload) -> Payload:
        """GetCompositeSchedule (K08) for an EVSE or (evseId 0) the station; Rejected (K08.FR.05/07) for an unknown
        EVSE, an unsupported unit, or a schedule longer than SmartChargingCtrlr.PeriodsPerSchedule periods."""
        unit = p.get("chargingRateUnit", "W")
        if p["evseId"] != 0 and p["evseId"] not in self.ctx.evses:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}
        if unit not in self.ctx.model.members("SmartChargingCtrlr", "RateUnit"):
            return {"status": "Rejected", "statusInfo": {"reasonCode": "UnsupportedRateUnit"}}
        if p["duration"] <= 0:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "ValuePositiveOnly",
                                                         "additionalInfo": "duration is at least 1 s"}}
        try:
            schedule = self.composite_schedule(p["evseId"], p["duration"], unit)
        except Rejection as e:
            log.info("%s: GetCompositeSchedule rejected: %s", self.ctx.station_id, e.info)
            return {"status": "Rejected", "statusInfo": {"reasonCode": e.reason, "additionalInfo": e.info[:512]}}
        return {"status": "Accepted", "schedule": schedule}


_MISSING: Any = object()


def _timeless(profile: Payload) -> bool:
    """Whether a profile's period in force does not depend on the time: a Dynamic profile (in force since it was set)
    without validity bounds, start or duration, which only a change (UpdateDynamicSchedule, a new profile) moves."""
    schedule = profile["chargingSchedule"][0]
    return profile["chargingProfileKind"] == "Dynamic" and "validFrom" not in profile and "validTo" not in profile \
        and "startSchedule" not in schedule and "duration" not in schedule


def _applies(item_evse: int, profile: Payload, evse_id: int, tx_id: str | None) -> bool:
    """Whether an installed profile can rule the EVSE (a TxProfile only for its own transaction)."""
    purpose = profile["chargingProfilePurpose"]
    if item_evse not in (0, evse_id):
        return False
    if purpose in ("TxProfile", "PriorityCharging"):
        return tx_id is not None and profile.get("transactionId") in (None, tx_id)
    return True


def _cap_limit(period: Payload, cap: float, phases: int) -> None:
    """A composite period's charging limit at most `cap` (per phase: cap / phases), the cap where none is given;
    setpoints stay within it. A period with any `_L2`/`_L3` value is per phase: its `limit` is L1's."""
    if any(k.endswith(("_L2", "_L3")) for k in period):
        for name in ("limit", "limit_L2", "limit_L3"):
            period[name] = round(min(period.get(name, cap / phases), cap / phases), 3) + 0.0
        return
    period["limit"] = round(cap if "limit" not in period else min(period["limit"], cap), 3) + 0.0
    if period.get("setpoint", 0.0) > period["limit"]:
        period["setpoint"] = period["limit"]
