"""The station's OCPP 2.1 V2X service: the target of each EVSE (v2x_target.py) from the composite period in force,
the grid frequency, the aFRR signal and an external actor; the control loop that keeps the hardware on it; and the
V2X messages: NotifyAllowedEnergyTransfer, UpdateDynamicSchedule, PullDynamicScheduleUpdate, AFRRSignal,
NotifyChargingLimit / ClearedChargingLimit for the external actor, and the 2.1 fields of NotifyEVChargingNeeds.

What the EV can do decides what the station accepts: an EV known not to discharge (ISO 15118-2 or DIN 70121, told by
the bridge's transaction facts, or a session without a bidirectional mode) gets a Rejected (`UnsupportedRequest`) for
any profile, schedule update or allowed energy transfer that asks it to discharge; the station can only limit its
charging. `target(evse_id)` is the station-side answer to "what should this EVSE's car do now" (the -20 bridge passes
it to the car); `on_target` listeners hear each change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..constants import GRID_SIM_VENDOR, ISO_FACTS_VENDOR
from ..hardware import GridFrequency, SimulatedGridFrequency
from ..ocpp.v2x import BIDIRECTIONAL, OperationMode, ProfileRejected, Quantity, check_schedule_update, phase_fields
from ..times import parse_rfc3339
from .context import StationContext
from .evse import Evse
from .link import Link
from .smart_charging import SmartCharging
from .v2x_target import STOPPED, EvseTarget, compute_target

log = logging.getLogger(__name__)

Payload = dict[str, Any]
TargetListener = Callable[[int, EvseTarget], None]
UNIDIRECTIONAL_PROTOCOLS = frozenset({"DIN70121", "ISO15118-2"})
"""Protocols whose EVs can only charge (the station can only limit their charging)."""
UPDATE_FIELDS = tuple(f for q in Quantity for f in phase_fields(q))
"""The fields of a ChargingScheduleUpdateType (K28)."""


@dataclass
class ExternalValues:
    """What an external actor (an EMS, a DSO's box) asks of one EVSE, in W: a setpoint (ExternalSetpoint) and
    limits (ExternalLimits and every other mode)."""

    source: str = "EMS"
    setpoint_w: float | None = None
    limit_w: float | None = None
    discharge_limit_w: float | None = None
    grid_critical: bool | None = None


class V2x:
    """V2X at the station: targets, the control loop and the V2X messages."""

    def __init__(self, ctx: StationContext, link: Link, smart_charging: SmartCharging,
                 frequency: GridFrequency | None = None) -> None:
        self.ctx = ctx
        self.link = link
        self.smart_charging = smart_charging
        self.frequency: GridFrequency = frequency or SimulatedGridFrequency(ctx.config.nominal_frequency)
        self.afrr: tuple[float, int] | None = None  # (epoch the signal applies from, signal)
        self.external: dict[int, ExternalValues] = {}
        self.allowed: dict[str, list[str]] = {}  # transactionId -> the energy transfer modes the CSMS allows
        self.ev_modes: dict[int, tuple[str | None, str | None]] = {}  # evse -> (protocol, energy transfer mode)
        self.targets: dict[int, EvseTarget] = {}  # what each EVSE was last told
        self.listeners: list[TargetListener] = []
        self.evse_listeners: dict[int, list[TargetListener]] = {}  # told of their own EVSE's changes only
        self.allowed_listeners: list[Callable[[int, list[str]], None]] = []  # -20: renegotiate the service
        self.apply: Callable[[int], None] = lambda evse_id: None  # the transactions put a target on the hardware
        self.ticks = 0  # control loop runs so far
        self._tick = asyncio.Condition()
        self._pulled: dict[int, float] = {}  # Dynamic profile id -> when it was last pulled (wall epoch)
        # evse -> (period, the other inputs, target): compute_target's last answer, reused while the composite period
        # is the same object (the smart charging's memo keeps it until its next boundary) and the inputs are equal
        self._target_memo: dict[int, tuple[Payload | None, tuple[Any, ...], EvseTarget]] = {}
        smart_charging.pre_check = self.check_profile
        link.data_transfer[GRID_SIM_VENDOR] = self._grid_data_transfer
        if isinstance(self.frequency, SimulatedGridFrequency):
            self.frequency.listeners.append(lambda _hz: self._react())

    # ----- what the EV can do -----

    def ev_facts(self, evse_id: int, custom_data: Payload) -> None:
        """The ISO facts of the EVSE's session (the bridge's TransactionEvent customData): its protocol."""
        if custom_data.get("vendorId") == ISO_FACTS_VENDOR:
            self.ev_modes[evse_id] = (custom_data.get("protocol"), self.ev_modes.get(evse_id, (None, None))[1])

    def ev_gone(self, evse_id: int) -> None:
        """The EV left: what it could do no longer counts."""
        self.ev_modes.pop(evse_id, None)

    def ev_charging_needs(self, evse_id: int, needs: Payload) -> None:
        """The EV's charging needs (a NotifyEVChargingNeeds' chargingNeeds): its requested energy transfer mode (a
        -20 EV asking DC_BPT can discharge, one asking DC cannot)."""
        protocol = self.ev_modes.get(evse_id, (None, None))[0]
        self.ev_modes[evse_id] = (protocol, needs.get("requestedEnergyTransfer"))

    def can_discharge(self, evse: Evse) -> bool:
        """Whether the EV on the EVSE may give power back: not an ISO 15118-2/DIN EV, not a session in a charging
        mode, and a bidirectional mode among those the CSMS allowed (when it said)."""
        if not self.ctx.model.bool("V2XChargingCtrlr", "Enabled", evse=evse.id):
            return False
        protocol, mode = self.ev_modes.get(evse.id, (None, None))
        if protocol in UNIDIRECTIONAL_PROTOCOLS or (mode is not None and mode not in BIDIRECTIONAL):
            return False
        allowed = self.allowed_modes(evse.id)
        return allowed is None or bool(BIDIRECTIONAL & set(allowed))

    def _known_unable(self, evse_id: int) -> str | None:
        """Why the EV on the EVSE cannot discharge, when the station knows it cannot (else None)."""
        protocol, mode = self.ev_modes.get(evse_id, (None, None))
        if protocol in UNIDIRECTIONAL_PROTOCOLS:
            return f"the EV on EVSE {evse_id} speaks {protocol}: the station can only limit its charging"
        if mode is not None and mode not in BIDIRECTIONAL:
            return f"the EV on EVSE {evse_id} charges in {mode}, not a bidirectional mode"
        return None

    def check_profile(self, evse_id: int, profile: Payload) -> None:
        """SetChargingProfile (2.1) for a transaction whose EV cannot discharge: a period asking for discharge is
        refused (UnsupportedRequest); limits on its charging are fine."""
        if profile["chargingProfilePurpose"] != "TxProfile":
            return
        why = self._known_unable(evse_id)
        if why is None:
            return
        for schedule in profile["chargingSchedule"]:
            for i, period in enumerate(schedule["chargingSchedulePeriod"]):
                if _asks_discharge(period):
                    raise ProfileRejected("v2gstack:EvCannotDischarge", "UnsupportedRequest", why,
                                          f"chargingSchedule[{schedule.get('id', 0)}].chargingSchedulePeriod[{i}]")

    # ----- targets -----

    def target(self, evse_id: int) -> EvseTarget:
        """What the EVSE should do now: the EV's power target (negative: discharge) and the hardware's limits."""
        evse = self.ctx.evses[evse_id]
        if not (evse.plugged and evse.authorized and evse.tx is not None and evse.operative and not evse.faulted):
            return STOPPED
        period = self.smart_charging.period_now(evse_id)
        external = self.external.get(evse_id)
        inputs = (evse.max_power_w, self.can_discharge(evse), self.frequency.frequency(), self._signal(),
                  external.setpoint_w if external else None)
        memo = self._target_memo.get(evse_id)
        if memo is not None and memo[0] is period and memo[1] == inputs:  # the same period (kept alive here)
            target = memo[2]
        else:
            target = compute_target(
                period, rating_w=inputs[0], discharge_rating_w=inputs[0], can_discharge=inputs[1],
                frequency_hz=inputs[2], afrr_signal=inputs[3], external_setpoint_w=inputs[4])
            self._target_memo[evse_id] = (period, inputs, target)
        if evse.soc is not None and evse.soc >= 100.0 and target.import_limit_w > 0:  # a full battery takes nothing
            target = EvseTarget(target.mode, None if target.setpoint_w is None else min(target.setpoint_w, 0.0),
                                0.0, target.export_limit_w, target.source)
        return target

    def effective_power_w(self, evse_id: int) -> float:
        """The power the EVSE's EV should take now (W, negative: give): the setpoint, or its own demand within the
        limits."""
        evse = self.ctx.evses[evse_id]
        return self.target(evse_id).power_for(evse.ev_power_w)

    def told(self, evse_id: int, target: EvseTarget) -> None:
        """The transactions put `target` on the EVSE's hardware: tell the listeners when it changed."""
        if self.targets.get(evse_id) == target:
            return
        self.targets[evse_id] = target
        for listener in [*self.listeners, *self.evse_listeners.get(evse_id, ())]:
            try:
                listener(evse_id, target)
            except Exception:
                log.exception("%s: target listener failed", self.ctx.station_id)

    def on_target(self, listener: TargetListener, evse_id: int | None = None) -> Callable[[], None]:
        """Hear each change of an EVSE's target (with `evse_id`: of that EVSE only, which costs a station of many
        EVSEs one call per change instead of one per EVSE); returns the unsubscribe function."""
        group = self.listeners if evse_id is None else self.evse_listeners.setdefault(evse_id, [])
        group.append(listener)
        return lambda: group.remove(listener) if listener in group else None

    def _signal(self) -> int | None:
        """The aFRR signal in force now (None before the first, or before its timestamp)."""
        if self.afrr is None or self.ctx.clock.epoch() < self.afrr[0]:
            return None
        return self.afrr[1]

    def _react(self) -> None:
        """Something the targets depend on changed (frequency, signal, external values): apply them at once."""
        for evse_id in self.ctx.evses:
            self.apply(evse_id)

    def step_frequency(self, hz: float) -> None:
        """Move the simulated grid frequency (ValueError for a source that cannot be stepped, or a bad value)."""
        if not isinstance(self.frequency, SimulatedGridFrequency):
            raise ValueError("the grid frequency comes from a measurement here, it cannot be stepped")
        self.frequency.step(hz)

    def _grid_data_transfer(self, p: Payload) -> Payload:
        """DataTransfer(GRID_SIM_VENDOR, "SetGridFrequency", "<Hz>"): a simulation knob to step the simulated grid
        frequency from afar (the CSMS API's data-transfer command); "GetGridFrequency" reads it."""
        message = p.get("messageId")
        if message == "GetGridFrequency":
            return {"status": "Accepted", "data": f"{self.frequency.frequency():g}"}
        if message != "SetGridFrequency":
            return {"status": "UnknownMessageId"}
        try:
            self.step_frequency(float(p.get("data", "")))
        except (TypeError, ValueError) as e:
            return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidValue", "additionalInfo": str(e)[:512]}}
        return {"status": "Accepted"}

    # ----- the control loop -----

    async def run(self) -> None:
        """Every control period: each EVSE back on its target (LocalFrequency follows a frequency that nobody
        announces, schedules move on), Dynamic profiles pulled when their dynUpdateInterval has passed."""
        while True:
            await self.ctx.clock.sleep(self.ctx.config.control_period_s)
            self._react()
            self._pull_due()
            async with self._tick:
                self.ticks += 1
                self._tick.notify_all()

    async def wait_ticks(self, n: int = 1) -> int:
        """Wait until the control loop has run `n` more times; the tick count then."""
        async with self._tick:
            goal = self.ticks + n
            await self._tick.wait_for(lambda: self.ticks >= goal)
            return self.ticks

    def _pull_due(self) -> None:
        """PullDynamicScheduleUpdate (K29) for each Dynamic profile whose dynUpdateInterval has passed."""
        if not self.link.v21 or not self.link.online:
            return
        now = self.ctx.clock.epoch()
        for item in list(self.smart_charging.profiles.items.values()):
            p = item.profile
            interval = p.get("dynUpdateInterval")
            if p["chargingProfileKind"] != "Dynamic" or not interval:
                continue
            last = self._pulled.setdefault(p["id"], now)
            if now - last >= interval:
                self._pulled[p["id"]] = now
                self.ctx.spawn(self.pull_dynamic(p["id"]), "pull-dynamic")

    async def pull_dynamic(self, profile_id: int) -> Payload | None:
        """PullDynamicScheduleUpdate for one Dynamic profile; an Accepted update is applied as UpdateDynamicSchedule
        would be. The CSMS's answer (None when it could not be asked)."""
        answer = await self.link.try_call("PullDynamicScheduleUpdate", {"chargingProfileId": profile_id})
        if answer is not None and answer.get("status") == "Accepted" and "scheduleUpdate" in answer:
            result = self._update(profile_id, answer["scheduleUpdate"])
            if result["status"] != "Accepted":
                log.warning("%s: the pulled update of profile %d is refused: %s", self.ctx.station_id, profile_id,
                            result.get("statusInfo"))
        return answer

    # ----- the external actor (Q05/Q06) -----

    def set_external(self, evse_id: int, *, setpoint_w: float | None = None, limit_w: float | None = None,
                     discharge_limit_w: float | None = None, source: str = "EMS",
                     grid_critical: bool | None = None) -> bool:
        """An external actor's setpoint and/or limits for the EVSE: applied at once and told to the CSMS
        (NotifyChargingLimit). False (nothing done) while SmartChargingCtrlr.ExternalControlSignalsEnabled is
        false."""
        if not self.ctx.model.bool("SmartChargingCtrlr", "ExternalControlSignalsEnabled"):
            log.info("%s: external control signals are disabled; ignoring %s", self.ctx.station_id, source)
            return False
        values = ExternalValues(source, setpoint_w, limit_w, discharge_limit_w, grid_critical)
        self.external[evse_id] = values
        limits = {k: v for k, v in (("limit", limit_w), ("dischargeLimit", discharge_limit_w)) if v is not None}
        self.smart_charging.set_external(evse_id, limits or None)
        self._react()
        self.link.notify("NotifyChargingLimit", self._charging_limit(evse_id, values))
        return True

    def clear_external(self, evse_id: int) -> None:
        """The external actor's values end (ClearedChargingLimit)."""
        values = self.external.pop(evse_id, None)
        if values is None:
            return
        self.smart_charging.set_external(evse_id, None)
        self._react()
        self.link.notify("ClearedChargingLimit", {"chargingLimitSource": values.source, "evseId": evse_id})

    def _charging_limit(self, evse_id: int, v: ExternalValues) -> Payload:
        """NotifyChargingLimitRequest of the external values (with the schedule when
        SmartChargingCtrlr.NotifyChargingLimitWithSchedules; 2.0.1: the charging limit alone)."""
        limit: Payload = {"chargingLimitSource": v.source}
        if v.grid_critical is not None:
            limit["isGridCritical"] = v.grid_critical
        payload: Payload = {"chargingLimit": limit, "evseId": evse_id}
        if self.ctx.model.bool("SmartChargingCtrlr", "NotifyChargingLimitWithSchedules"):
            evse = self.ctx.evses[evse_id]
            period: Payload = {"startPeriod": 0, "limit": evse.max_power_w if v.limit_w is None else v.limit_w}
            if self.link.v21:
                if v.discharge_limit_w is not None:
                    period["dischargeLimit"] = v.discharge_limit_w
                if v.setpoint_w is not None:
                    period["setpoint"] = v.setpoint_w
                period["operationMode"] = (OperationMode.EXTERNAL_SETPOINT if v.setpoint_w is not None
                                           else OperationMode.EXTERNAL_LIMITS).value
            payload["chargingSchedule"] = [{"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [period]}]
        return payload

    # ----- CSMS-initiated messages -----

    def handlers(self) -> dict[str, Callable[[Payload], Payload]]:
        """NotifyAllowedEnergyTransfer, UpdateDynamicSchedule, AFRRSignal (2.1 only: a 2.0.1 engine answers them
        NotImplemented)."""
        return {"NotifyAllowedEnergyTransfer": self._allowed_energy_transfer,
                "UpdateDynamicSchedule": lambda p: self._update(p["chargingProfileId"], p["scheduleUpdate"]),
                "AFRRSignal": self._afrr}

    def allowed_modes(self, evse_id: int) -> list[str] | None:
        """The energy transfer modes the CSMS allows the EVSE's transaction: its latest NotifyAllowedEnergyTransfer,
        else what the AuthorizeResponse of its authorization allowed (None: it did not say)."""
        evse = self.ctx.evses.get(evse_id)
        if evse is None:
            return None
        if evse.tx is not None and evse.tx.id in self.allowed:
            return self.allowed[evse.tx.id]
        return evse.allowed_energy_transfer

    def authorized(self, evse: Evse, modes: list[str] | None) -> None:
        """Q01 at authorization: the modes an OCPP 2.1 AuthorizeResponse allowed the EVSE's new authorization
        (absent from the answer: charging only; None: no answer told, e.g. 2.0.1, free vend, a remote start without
        AuthorizeRemoteStart). They replace an earlier NotifyAllowedEnergyTransfer of the running transaction (the
        latest word counts); the bridge hears them as it hears NotifyAllowedEnergyTransfer."""
        evse.allowed_energy_transfer = modes
        if modes is None:
            return
        if evse.tx is not None:
            self.allowed.pop(evse.tx.id, None)
        log.info("%s: EVSE %d authorized for %s", self.ctx.station_id, evse.id, ", ".join(modes))
        self._tell_allowed(evse.id, modes)

    def _tell_allowed(self, evse_id: int, modes: list[str]) -> None:
        """The allowed energy transfer of the EVSE changed: the listeners (the -20 bridge) hear it."""
        for listener in list(self.allowed_listeners):
            try:
                listener(evse_id, modes)
            except Exception:
                log.exception("%s: allowed energy transfer listener failed", self.ctx.station_id)

    def _allowed_energy_transfer(self, p: Payload) -> Payload:
        """Q01/Q02: the energy transfer modes the CSMS allows the transaction; an ISO 15118-20 EV renegotiates its
        service (the bridge listens). Rejected (reasonCode, why) for an unknown transaction (TxNotFound); a
        bidirectional mode while V2XChargingCtrlr.Enabled is false, or for an EV that cannot leave the mode it
        charges in (ISO 15118-2, DIN 70121: no service renegotiation) when that mode is not allowed, or for a -20 EV
        none of whose energy type (AC or DC: its session cannot change that) is allowed (UnsupportedRequest); only
        bidirectional modes for an EV known unable to discharge (UnsupportedRequest)."""
        tx_id, modes = p["transactionId"], list(p["allowedEnergyTransfer"])
        evse = next((e for e in self.ctx.evses.values() if e.tx is not None and e.tx.id == tx_id), None)
        if evse is None:
            return _rejected("TxNotFound", f"no transaction {tx_id}")
        protocol, mode = self.ev_modes.get(evse.id, (None, None))
        if set(modes) & BIDIRECTIONAL and not self.ctx.model.bool("V2XChargingCtrlr", "Enabled", evse=evse.id):
            return _rejected("UnsupportedRequest", f"V2XChargingCtrlr.Enabled is false on EVSE {evse.id}")
        if protocol in UNIDIRECTIONAL_PROTOCOLS and mode is not None and mode not in modes:
            return _rejected("UnsupportedRequest", f"the EV on EVSE {evse.id} speaks {protocol}, which cannot "
                             f"renegotiate its service: it charges in {mode}")
        if protocol == "ISO15118-20" and mode is not None and not set(modes) & _family(mode):
            return _rejected("UnsupportedRequest", f"the EV on EVSE {evse.id} charges in {mode}: its session "
                             f"cannot change to {', '.join(modes)}")
        why = self._known_unable(evse.id)
        if protocol != "ISO15118-20" and why is not None and not set(modes) - BIDIRECTIONAL:
            return _rejected("UnsupportedRequest", why)
        self.allowed[tx_id] = modes
        log.info("%s: EVSE %d allowed %s", self.ctx.station_id, evse.id, ", ".join(modes))
        self.apply(evse.id)
        self._tell_allowed(evse.id, modes)
        return {"status": "Accepted"}

    def _update(self, profile_id: int, update: Payload) -> Payload:
        """K28 UpdateDynamicSchedule (and an accepted pull): the Dynamic profile's one period takes the fields
        given, checked like a SetChargingProfile; Rejected for an unknown or non-Dynamic profile."""
        item = self.smart_charging.profiles.items.get(profile_id)
        if item is None or item.profile["chargingProfileKind"] != "Dynamic":
            return {"status": "Rejected", "statusInfo": {
                "reasonCode": "UnknownProfile" if item is None else "InvalidProfile",
                "additionalInfo": f"no Dynamic charging profile {profile_id}"}}
        profile = item.profile
        schedule = profile["chargingSchedule"][0]
        values = {k: v for k, v in update.items() if k in UPDATE_FIELDS}
        try:
            merged = check_schedule_update(values, schedule["chargingSchedulePeriod"][0],
                                           profile["chargingProfilePurpose"], schedule["chargingRateUnit"])
            if profile["chargingProfilePurpose"] == "TxProfile" and _asks_discharge(values):
                why = self._known_unable(item.evse_id)
                if why is not None:
                    raise ProfileRejected("v2gstack:EvCannotDischarge", "UnsupportedRequest", why, "scheduleUpdate")
        except ProfileRejected as e:
            log.info("%s: UpdateDynamicSchedule of %d rejected: %s", self.ctx.station_id, profile_id, e.info)
            return e.response()
        schedule["chargingSchedulePeriod"][0] = merged
        profile["dynUpdateTime"] = self.ctx.clock.timestamp()
        self.smart_charging.changed(item.evse_id)  # the new target first: the EV's next loop carries it
        if profile["chargingProfilePurpose"] != "TxProfile":  # a TxProfile is never reloaded (it ends with its
            self.smart_charging.save()                        # transaction): no file write on the setpoint path
        return {"status": "Accepted"}

    def _afrr(self, p: Payload) -> Payload:
        """Q08 aFRR: the signal that LocalFrequency periods map through their v2xSignalWattCurve from its
        timestamp on."""
        self.afrr = (parse_rfc3339(p["timestamp"]).timestamp(), int(p["signal"]))
        self._react()
        return {"status": "Accepted"}


NEEDS_21 = ("availableEnergyTransfer", "controlMode", "mobilityNeedsMode", "v2xChargingParameters", "evEnergyOffer",
            "derChargingParameters")
"""ChargingNeedsType fields OCPP 2.1 added (a 2.0.1 CSMS gets the request without them)."""


def charging_needs_for(version: str, payload: Payload) -> Payload:
    """A NotifyEVChargingNeedsRequest for the agreed version: as given for 2.1; without 2.1's fields (timestamp,
    the V2X needs, a 2.1-only requestedEnergyTransfer) for 2.0.1."""
    if version == "2.1":
        return payload
    needs = {k: v for k, v in payload["chargingNeeds"].items() if k not in NEEDS_21}
    if needs.get("requestedEnergyTransfer") not in ("AC_single_phase", "AC_two_phase", "AC_three_phase", "DC"):
        needs["requestedEnergyTransfer"] = "DC" if str(needs.get("requestedEnergyTransfer", "")).startswith(
            "DC") else "AC_three_phase"
    return {k: v for k, v in {**payload, "chargingNeeds": needs}.items() if k != "timestamp"}


def _rejected(code: str, why: str) -> Payload:
    """A Rejected answer with its reasonCode and why."""
    return {"status": "Rejected", "statusInfo": {"reasonCode": code, "additionalInfo": why[:512]}}


_DC_MODES = frozenset({"DC", "DC_BPT", "DC_ACDP", "DC_ACDP_BPT"})


def _family(mode: str) -> frozenset[str]:
    """The energy transfer modes of the same energy type (AC or DC) as `mode`: what a -20 service renegotiation can
    reach within the session (its supportedAppProtocol fixed AC or DC)."""
    if mode in _DC_MODES:
        return _DC_MODES
    return frozenset({"AC_single_phase", "AC_two_phase", "AC_three_phase", "AC_BPT", "AC_BPT_DER", "AC_DER"})


def _asks_discharge(period: Payload) -> bool:
    """Whether a period (or schedule update) commands the EV to give power back: a negative setpoint, a negative
    limit (2.0.1's way), a negative baseline or curve power (a dischargeLimit only allows it)."""
    negative = [period.get(f) for q in (Quantity.SETPOINT, Quantity.LIMIT) for f in phase_fields(q)]
    if any(isinstance(v, int | float) and v < 0 for v in negative):
        return True
    curves = [*period.get("v2xFreqWattCurve", ()), *period.get("v2xSignalWattCurve", ())]
    return period.get("v2xBaseline", 0) < 0 or any(c["power"] < 0 for c in curves)
