"""ISO 15118 smart charging at the CSMS (OCPP K15-K17): the answer to NotifyEVChargingNeeds and the TxProfile that
an Accepted answer promises.

NotifyEVChargingNeedsResponse is a promise (2.0.1: Accepted "a schedule will be provided", Processing "gathering
information", Rejected "service not available"; 2.1 adds NoChargingProfile). The policy here keeps it:

- Accepted only when a profile can be computed and the EVSE's transaction is known: right after the answer the CSMS
  sends SetChargingProfile with a TxProfile for that transaction (K15.FR.03 / K17.FR.03);
- Processing when the needs are usable but no transaction runs on the EVSE yet: the profile follows the first
  TransactionEvent that names the EVSE (a TxProfile needs the transactionId, K01.FR.03);
- Rejected (2.0.1) or NoChargingProfile (2.1) when the needs give nothing to compute from (no EV maximum), when the
  operator switched automatic profiles off, or (2.1) under DynamicControl, where the CSMS steers with setpoints.

The profile sits at stack level 0 with id 15000 + EVSE: what an operator or the grid control sends for the same
transaction goes above it (stack level 1 and up; the station refuses a second TxProfile at the same level).

The profile is flat (one period): the energy the EV asks for spread evenly until its departure time, within the EV's
maximum (and minimum, AC) and the operator's per-EVSE limit, at the EV's maximum when there is no departure time or
energy; W for DC, A (per phase, at the nominal voltage) for AC. NotifyEVChargingSchedule is checked against the
profile sent: a schedule above it is Rejected (K17: the station renegotiates). When a dispatching grid control is
attached (csms/grid_control.py), its scheduler's TxProfiles are the schedule: the needs are answered Accepted (or
Processing without a transaction) and this policy sends nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..times import parse_rfc3339, rfc3339
from . import v2x_state
from .errors import CommandError

if TYPE_CHECKING:
    from .service import Csms

log = logging.getLogger(__name__)
Payload = dict[str, Any]

NEEDS_PROFILE_BASE = 15000
"""Profile id of the TxProfile the CSMS computes for EVSE n: NEEDS_PROFILE_BASE + n (a new one replaces the last)."""
NOMINAL_VOLTAGE = 230.0  # V per phase: what an AC current limit is computed with
PROFILE_SLACK = 60.0  # s: an EV period that starts this close to the profile's end is taken as after it
PHASES = {"AC_single_phase": 1, "AC_two_phase": 2, "AC_three_phase": 3}


@dataclass(frozen=True)
class Plan:
    """A flat schedule: the limit in `unit` (W or A), phases (AC), and until when it holds (None: open)."""

    unit: str
    limit: float
    phases: int | None
    duration: int | None


def plan(needs: Payload, now: datetime, max_power_w: float | None = None) -> Plan | None:
    """The flat schedule for ChargingNeedsType `needs` (2.0.1 or 2.1), None when there is no EV maximum to keep
    within. `max_power_w`: the operator's limit for the EVSE (None: the EV's maximum alone)."""
    mode = str(needs.get("requestedEnergyTransfer", ""))
    departure = needs.get("departureTime")
    seconds = (parse_rfc3339(departure) - now).total_seconds() if departure else None
    hours = seconds / 3600 if seconds is not None and seconds > 0 else None
    if mode in PHASES:
        ac = needs.get("acChargingParameters") or {}
        phases = PHASES[mode]
        top = float(ac.get("evMaxCurrent") or 0)
        if top <= 0:
            return None
        if max_power_w is not None:
            top = min(top, max_power_w / (NOMINAL_VOLTAGE * phases))
        low = min(float(ac.get("evMinCurrent") or 0), top)
        energy = float(ac.get("energyAmount") or 0)
        limit = top if not (hours and energy) else energy / hours / (NOMINAL_VOLTAGE * phases)
        return Plan("A", _round(max(low, min(top, limit))), phases, _duration(seconds))
    dc = needs.get("dcChargingParameters") or {}
    v2x = needs.get("v2xChargingParameters") or {}
    top = float(dc.get("evMaxPower") or v2x.get("maxChargePower") or 0) or \
        float(dc.get("evMaxCurrent") or 0) * float(dc.get("evMaxVoltage") or 0)
    if top <= 0:
        return None
    if max_power_w is not None:
        top = min(top, max_power_w)
    energy = float(dc.get("energyAmount") or v2x.get("targetEnergyRequest") or 0)
    limit = top if not (hours and energy) else min(top, energy / hours)
    return Plan("W", _round(limit), None, _duration(seconds))


def _round(value: float) -> float:
    """One decimal (OCPP limits are decimals with one digit of precision, 2.0.1 schedule periods)."""
    return math.floor(value * 10) / 10


def _duration(seconds: float | None) -> int | None:
    """The schedule's duration: until the departure (None: open-ended or departed)."""
    return int(seconds) if seconds is not None and seconds >= 1 else None


def tx_profile(evse_id: int, transaction_id: str, p: Plan, now: datetime) -> Payload:
    """SetChargingProfileRequest with the plan as an Absolute TxProfile for the transaction."""
    period: Payload = {"startPeriod": 0, "limit": p.limit}
    if p.phases is not None:
        period["numberPhases"] = p.phases
    schedule: Payload = {"id": 1, "startSchedule": rfc3339(now, timespec="seconds"), "chargingRateUnit": p.unit,
                         "chargingSchedulePeriod": [period]}
    if p.duration is not None:
        schedule["duration"] = p.duration
    return {"evseId": evse_id, "chargingProfile": {
        "id": NEEDS_PROFILE_BASE + evse_id, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute", "transactionId": transaction_id, "chargingSchedule": [schedule]}}


class NeedsService:
    """K15-K17 on top of a Csms: the NotifyEVChargingNeeds/NotifyEVChargingSchedule handlers' decisions and the
    profiles they lead to (what was sent, and the station's answer, stored with the needs)."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms
        self.pending: dict[tuple[str, int], tuple[int, Payload]] = {}  # (station, evse) -> (needs row, needs)
        self.sent: dict[tuple[str, int], tuple[Plan, datetime]] = {}  # each EVSE's latest profile: plan, start

    def _refused(self, station_id: str, reason: str, info: str) -> Payload:
        """Rejected (2.0.1) or NoChargingProfile (2.1): no schedule will follow."""
        status = "NoChargingProfile" if self.csms.version_of(station_id) == "2.1" else "Rejected"
        return {"status": status, "statusInfo": {"reasonCode": reason, "additionalInfo": info}}

    def answer(self, station_id: str, evse_id: int, transaction_id: str | None, needs: Payload,
               row: int) -> Payload:
        """The NotifyEVChargingNeedsResponse (Accepted: the caller then calls `follow`, last thing before it
        answers)."""
        config = self.csms.config
        if self.grid_plans():  # the grid control's plan is the schedule: its TxProfile follows the transaction
            return {"status": "Accepted"} if transaction_id is not None else {"status": "Processing", "statusInfo": {
                "reasonCode": "NoTransaction", "additionalInfo": "the grid plan follows the EVSE's transaction"}}
        if not config.needs_profiles:
            return self._refused(station_id, "NoProfile", "this CSMS sends no profiles for charging needs")
        if needs.get("controlMode") == "DynamicControl":  # 2.1: setpoints (Dynamic profiles), not a schedule
            return self._refused(station_id, "DynamicControl", "under DynamicControl the CSMS sends setpoints "
                                                               "(Dynamic profiles), no schedule")
        if plan(needs, datetime.now().astimezone(), config.needs_max_power_w) is None:
            return self._refused(station_id, "MissingParam", "the needs name no EV maximum to compute a profile")
        if transaction_id is None:
            self.pending[(station_id, evse_id)] = (row, needs)
            return {"status": "Processing", "statusInfo": {
                "reasonCode": "NoTransaction", "additionalInfo": "the profile follows the EVSE's transaction"}}
        return {"status": "Accepted"}

    def grid_plans(self) -> bool:
        """Whether a dispatching grid control (csms/grid_control.py) plans the sessions: then its TxProfiles keep
        the promise and this policy sends none."""
        grid = self.csms.grid
        return grid is not None and bool(grid.config.dispatch)

    def follow(self, station_id: str, evse_id: int, transaction_id: str, needs: Payload, row: int) -> None:
        """Send the promised profile in the background, once the answer has gone out."""
        if self.grid_plans():
            return
        self.csms._spawn(self.send(station_id, evse_id, transaction_id, needs, row))

    def transaction_seen(self, station_id: str, evse_id: int, transaction_id: str) -> None:
        """A transaction runs on an EVSE: the profile answered with Processing goes out now."""
        pending = self.pending.pop((station_id, evse_id), None)
        if pending is not None:
            self.csms._spawn(self.send(station_id, evse_id, transaction_id, pending[1], pending[0]))

    def forget(self, station_id: str, evse_id: int) -> None:
        """The EVSE's transaction ended: no profile is pending for it any more."""
        self.pending.pop((station_id, evse_id), None)
        self.sent.pop((station_id, evse_id), None)

    async def send(self, station_id: str, evse_id: int, transaction_id: str, needs: Payload, row: int) -> None:
        """SetChargingProfile with the TxProfile of the needs (after the needs' answer has gone out)."""
        await asyncio.sleep(0.01)  # let the NotifyEVChargingNeedsResponse go out first (as CertificateSigned does)
        now = datetime.now().astimezone()
        p = plan(needs, now, self.csms.config.needs_max_power_w)
        if p is None:
            return
        request = tx_profile(evse_id, transaction_id, p, now)
        try:
            answer = await self.csms.call(station_id, "SetChargingProfile", request)
        except CommandError as e:
            log.warning("station %s EVSE %d: the TxProfile for the EV's needs was not delivered: %s", station_id,
                        evse_id, e)
            answer = {"status": "NotDelivered", "detail": str(e)[:200]}
        else:
            if answer.get("status") == "Accepted":
                self.sent[(station_id, evse_id)] = (p, now)
        await self.csms.worker.run(v2x_state.op_needs_profile, row, request["chargingProfile"], answer)
        log.info("station %s EVSE %d: TxProfile %s %s for the EV's needs -> %s", station_id, evse_id, p.limit,
                 p.unit, answer.get("status"))

    def check_schedule(self, station_id: str, p: Payload) -> Payload:
        """NotifyEVChargingScheduleResponse: Rejected when a period of the EV's schedule is above the profile the
        CSMS sent for the EVSE (same unit), so the station renegotiates (K17); Accepted otherwise."""
        entry = self.sent.get((station_id, p["evseId"]))
        schedule = p["chargingSchedule"]
        unit = schedule.get("chargingRateUnit")
        if entry is None or unit not in ("W", "A"):
            return {"status": "Accepted"}
        sent, start = entry
        allowed = sent.limit
        if unit != sent.unit:  # A <-> W per phase at the nominal voltage (the EV's schedule is usually in W)
            watts_per_amp = NOMINAL_VOLTAGE * (sent.phases or 1)
            allowed = sent.limit * watts_per_amp if unit == "W" else sent.limit / watts_per_amp
        base = parse_rfc3339(p["timeBase"])
        ends = None if sent.duration is None else (start - base).total_seconds() + sent.duration - PROFILE_SLACK
        over = [float(period["limit"]) for period in schedule.get("chargingSchedulePeriod", [])
                if (ends is None or period["startPeriod"] < ends)  # after the profile's end the EV is free
                and float(period.get("limit") or 0) > allowed * 1.001]  # the station rounds
        if over:
            return {"status": "Rejected", "statusInfo": {
                "reasonCode": "ExceedsLimit",
                "additionalInfo": f"the schedule asks {max(over)} {unit}; the profile allows {allowed:g} {unit}"}}
        return {"status": "Accepted"}

