"""The smart charging service (OCPP 2.0.1 block K): the installed profiles (profiles.py does the sans-I/O work), the
limit in force on each EVSE, composite schedules, persistence across restarts, and the listeners told of each change
(the transactions apply the new limit at once; the ISO 15118 bridge renegotiates)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .context import StationContext
from .link import Link
from .profiles import ChargingProfiles, Installed, Rejection

log = logging.getLogger(__name__)

Payload = dict[str, Any]
ProfileListener = Callable[[int], None]  # evse id (0: station-wide) after SetChargingProfile/ClearChargingProfile


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
        self._load()
        self._count()

    # ----- limits and schedules -----

    def limit_w(self, evse_id: int) -> float | None:
        """The charging-profile limit on the EVSE now, in W (None: no profile limits it)."""
        if not self.profiles.items:
            return None
        evse = self.ctx.evses[evse_id]
        tx = evse.tx
        limits = evse.hardware.limits
        return self.profiles.limit_w(evse_id, self.ctx.clock.wall().timestamp(), voltage=limits.nominal_voltage,
                                     default_phases=limits.phases,
                                     tx_start=tx.started_epoch if tx else None, tx_id=tx.id if tx else None)

    def composite_schedule(self, evse_id: int, duration_s: int, unit: str = "W", *,
                           max_periods: int | None = None) -> Payload:
        """GetCompositeSchedule for an EVSE (0: the station) from now, within the EVSE's own maximum; at most
        `max_periods` periods (default SmartChargingCtrlr.PeriodsPerSchedule), else Rejection."""
        ctx = self.ctx
        evse = ctx.evses.get(evse_id)
        tx = evse.tx if evse else None
        voltage, phases = (evse.hardware.limits.nominal_voltage, evse.hardware.limits.phases) if evse else (230.0, 3)
        if max_periods is None:
            max_periods = ctx.model.int("SmartChargingCtrlr", "PeriodsPerSchedule")
        return self.profiles.composite(evse_id, ctx.clock.wall().timestamp(), duration_s, unit, voltage=voltage,
                                       default_phases=phases, tx_start=tx.started_epoch if tx else None,
                                       tx_id=tx.id if tx else None,
                                       evse_max=evse.max_power_w if evse else sum(
                                           e.max_power_w for e in ctx.evses.values()), max_periods=max_periods)

    def subscribe(self, listener: ProfileListener) -> Callable[[], None]:
        """Call `listener(evse_id)` after each change of the profiles; returns the unsubscribe function."""
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener) if listener in self.listeners else None

    def changed(self, evse_id: int) -> None:
        """Tell the listeners that the profiles of an EVSE (0: the station) changed."""
        for listener in list(self.listeners):
            try:
                listener(evse_id)
            except Exception:
                log.exception("%s: profile listener failed", self.ctx.station_id)

    def end_transaction(self, transaction_id: str) -> None:
        """A transaction ended: its TxProfiles go."""
        self.profiles.end_transaction(transaction_id)
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
        """SetChargingProfile (K01): validate and install; the new limits apply at once."""
        active = {e.id: e.tx.id for e in self.ctx.evses.values() if e.tx is not None}
        try:
            self.profiles.set(p["evseId"], p["chargingProfile"], active)
        except Rejection as e:
            log.info("%s: SetChargingProfile rejected: %s", self.ctx.station_id, e.info)
            return {"status": "Rejected", "statusInfo": {"reasonCode": e.reason, "additionalInfo": e.info[:512]}}
        self.save()
        self.changed(p["evseId"])
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
