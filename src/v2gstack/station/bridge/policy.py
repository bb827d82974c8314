"""The OCPP policy of a bridged EVSE, talking to the station through `StationPort` only.

`EvsePolicy` is the EVSE's (its sessions, profile changes, NotifyEvent ids, failures outside any session);
`SessionPolicy` is one ISO session's: SessionSetup -> plug-in and the ISO facts in the transaction's customData;
EIM authorization (free vend, a token presented at the EVSE, or the CSMS's remote start) and Plug & Charge
(plug_and_charge.py); ChargeParameterDiscovery -> NotifyEVChargingNeeds and the composite schedule as the
SAScheduleTuple; the EV's chosen schedule -> NotifyEVChargingSchedule; a profile change -> ReNegotiation; a
transaction stopped by the CSMS or the station -> StopCharging; the end -> the error map's reports (NotifyEvent,
SecurityEventNotification, stoppedReason, Faulted) and the transaction's end.

ISO 15118-20 sessions take the same path: ScheduleExchange -> NotifyEVChargingNeeds with the -20 needs (iso20.py)
and, scheduled, the composite schedule as a ScheduleTuple; a profile change -> ScheduleRenegotiation (scheduled; in
dynamic mode the next charge loop carries the new target); StopCharging -> Terminate; -20 refusals answered with
the -20 WARNING_ codes.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import itertools
import time
from collections import Counter
from typing import Any

from ...constants import ISO_FACTS_VENDOR, MIRROR_VENDOR, PROTOCOL_NAMES
from ...iso15118.defaults20 import phase_voltage
from ...iso15118.events import MessageExchanged, ScheduleChosen, SessionEnded, SessionEvent, TlsFailed
from ...iso15118.evse import AuthorizationStatus, SessionInfo
from ...iso15118.model import EVChargeParameters, PMaxEntry, ProfileEntry, SASchedule, is_dc
from ...iso15118.model20 import ControlMode, DynamicSchedule, EnergyService, EVNeeds, ScheduleTuple
from ...iso15118.msglog import MessageRecord
from ...times import rfc3339
from ...trace.error_map import EV_CANNOT_DISCHARGE, FAILURES, FailureKind, IsoFailure, ev_problem_event, notify_event
from ..device_model import VENDOR_COMPONENT
from ..ports import EvseFacts, StationPort
from ..profiles import Rejection
from ..v2x_target import EvseTarget
from .config import BridgeConfig
from .iso20 import FOLLOWED, charging_needs20, service_allowed, tuples_from_composite
from .offer import Offer, outdated, pmax_offer, tuple_offer
from .pacer import RenegotiationPacer
from .plug_and_charge import authorize_contract, install_certificate
from .tracing import SESSION_ACTIONS, SessionLog, SessionTrace, frame_keys

Payload = dict[str, Any]

PMAX_ENTRIES = 1024
"""The most PMaxScheduleEntry elements an ISO 15118-2 PMaxSchedule holds (its XSD's maxOccurs)."""
KEEP_FINISHED = 100
"""Finished sessions an EVSE keeps (their timelines, for tests and the demo)."""


class EvsePolicy:
    """The OCPP side of one bridged EVSE: one active session at a time, the ones still closing their transaction,
    and the last finished ones."""

    def __init__(self, station: StationPort, evse_id: int, config: BridgeConfig,
                 pacer: RenegotiationPacer | None = None) -> None:
        self.station = station
        self.evse_id = evse_id
        self.config = config
        self.pacer = pacer or RenegotiationPacer()  # the station's renegotiation turns, shared by its EVSEs
        self.active: SessionPolicy | None = None
        self.ending: set[SessionPolicy] = set()  # ended ISO sessions whose OCPP transaction is still being closed
        self.finished: list[SessionPolicy] = []
        self.event_ids = itertools.count(int(time.time()) % 1_000_000)  # NotifyEvent eventIds of this EVSE
        self.slac_failures: Counter[str] = Counter()  # failed SLAC steps of this EVSE, by step
        station.on_profiles_changed(self._profiles_changed, evse_id)  # its own EVSE's and station-wide changes
        station.on_target(self._target_changed, evse_id)
        station.on_allowed_energy_transfer(self._allowed_changed)

    def session(self, trace: SessionTrace, log: SessionLog) -> SessionPolicy:
        """The policy of a new SECC connection; the EVSE has one EV at a time, so profile changes are its now."""
        self.active = SessionPolicy(self, trace, log)
        return self.active

    def tracing(self) -> list[SessionTrace]:
        """The timelines that record OCPP frames now: the active session's and those still closing."""
        return [s.trace for s in (self.active, *self.ending) if s is not None]

    def _profiles_changed(self, evse_id: int) -> None:
        if self.active is not None and evse_id in (0, self.evse_id):
            self.active.profiles_changed()

    def _target_changed(self, evse_id: int, target: EvseTarget) -> None:
        if self.active is not None and evse_id == self.evse_id:
            self.active.target_changed(target)

    def _allowed_changed(self, evse_id: int, modes: list[str]) -> None:
        if self.active is not None and evse_id == self.evse_id:
            self.active.allowed_changed(modes)

    def tls_failed(self, event: TlsFailed, trace: SessionTrace) -> None:
        """A TLS handshake failed (no ISO session): reported per the error map, with a timeline of its own."""
        failure = FAILURES[event.kind]
        trace.link(evseId=self.evse_id, stationId=self.station.station_id)
        trace.error(failure.kind, code=None, reason=event.detail, peer=event.peer,
                    securityEvent=failure.security_event)
        self.report_failure(failure, None, event.detail)
        trace.close()

    def slac_failed(self, step: str, reason: str, ev_mac: str | None, trace: SessionTrace) -> None:
        """A SLAC matching step failed (no ISO session yet): reported per the error map, counted by step, with a
        timeline of its own."""
        failure = FAILURES[FailureKind.SLAC_FAILED]
        self.slac_failures[step] += 1
        detail = f"EV {ev_mac or 'unknown'}: {reason}"
        trace.link(evseId=self.evse_id, stationId=self.station.station_id)
        trace.error(failure.kind, code=step, reason=detail, peer=ev_mac)
        self.report_failure(failure, step, detail)
        trace.close()

    def report_failure(self, failure: IsoFailure, code: str | None, reason: str,
                       transaction_id: str | None = None) -> None:
        """The OCPP messages of an ISO failure (trace/error_map.py): NotifyEvent and SecurityEventNotification."""
        now = self.station.clock.timestamp()
        if failure.notify:
            self.station.notify("NotifyEvent", {"generatedAt": now, "seqNo": 0, "eventData": [
                notify_event(failure, code, reason, self.evse_id, next(self.event_ids), now, transaction_id)]})
        if failure.security_event:
            self.station.notify("SecurityEventNotification", {
                "type": failure.security_event, "timestamp": now, "techInfo": f"EVSE {self.evse_id}: {reason}"[:255]})

    def closing(self, session: SessionPolicy, *, closing_transaction: bool = True) -> None:
        """The session's ISO side ended; its OCPP side (the transaction) closes in the background."""
        if self.active is session:
            self.active = None
        self.pacer.done(session)
        if closing_transaction:
            self.ending.add(session)
        self.finished.append(session)
        if len(self.finished) > KEEP_FINISHED:
            self.finished.pop(0)


class SessionPolicy:
    """The OCPP policy of one ISO session (controller.Policy)."""

    def __init__(self, evse: EvsePolicy, trace: SessionTrace, log: SessionLog) -> None:
        self.evse_policy = evse
        self.station = evse.station
        self.config = evse.config
        self.evse_no = evse.evse_id
        self.trace = trace
        self.log = log
        self.info: SessionInfo | None = None
        self.auth_task: asyncio.Task[Any] | None = None
        self.auth_result: str | None = None
        self.needs_sent = False
        self.renegotiate = False
        self.waits = False  # a renegotiation is due and waits for the station's turn (pacer.py)
        self.changed_at: float | None = None  # the last profile change, on the pacer's clock
        self.contactors = False
        self.tx_id: str | None = None
        self.stopped_remotely = False
        self.offered: dict[int, SASchedule] = {}  # the SAScheduleTuples of the last ChargeParameterDiscoveryRes
        self.refused_discharge = False  # the EV was asked to discharge and could not: reported once
        self.scheduled_setpoint: float | None = None  # -20 scheduled: the setpoint the offered tuple carries
        self.offer: Offer | None = None  # what the car was last offered (-2, -20 scheduled), to compare changes with
        self.discharge_offered: float | None = None  # -20 scheduled BPT: the discharge the station allowed then
        self.services_possible: tuple[str, ...] | None = None  # -20: the EVSE's services at the last ServiceDiscovery
        self.services_offered: tuple[str, ...] = ()  # -20: those the CSMS allowed, offered then
        self.change_service = False  # -20: the allowed energy transfer changed the offer: ServiceRenegotiation
        self.service_selected: str | None = None  # -20: the service the EV selected last
        self._evse_ids: dict[str, str] = {}  # protocol -> the EVSEID announced
        trace.concerns = self._concerns

    @property
    def evse(self) -> EvseFacts:
        """What the station knows of this EVSE now."""
        return self.station.evse(self.evse_no)

    @property
    def timeline(self) -> Any:
        """The session's timeline."""
        return self.trace.timeline

    def _concerns(self, action: str, p: Payload) -> bool:
        """Whether an OCPP CALL belongs on this session's timeline: its transaction, its EVSE, or its Authorize."""
        tx, evse = frame_keys(p)
        if tx is not None:
            return tx in (self.tx_id, self.evse.transaction_id)
        if evse is not None:
            return bool(evse == self.evse_no)
        return action in SESSION_ACTIONS and self.auth_task is not None and not self.auth_task.done()

    def _link_tx(self) -> None:
        tx_id = self.evse.transaction_id
        if tx_id is not None and tx_id != self.tx_id:
            self.tx_id = tx_id
            self.trace.link(transactionId=tx_id)

    # ----- identity, plug-in and the ISO facts -----

    def evse_id(self, protocol: str) -> str:
        """EVSEID: DIN is hexBinary, -2 the ISO form (country*operator*E id*n); worked out once per session (every
        charge-loop answer carries it)."""
        found = self._evse_ids.get(protocol)
        if found is not None:
            return found
        if protocol == "din":
            found = self.config.din_evse_id
        else:
            found = self.config.evse_ids.get(self.evse_no) or (
                f"DE*V2G*E{self.station.station_id.replace('-', '').replace('_', '')[:20]}*{self.evse_no}")
        self._evse_ids[protocol] = found
        return found

    def payment_options(self) -> list[str]:
        """EIM (ExternalPayment), and Plug & Charge (Contract) when ISO15118Ctrlr.PnCEnabled (the SECC offers it
        only over TLS)."""
        if self.station.settings.bool("ISO15118Ctrlr", "PnCEnabled"):
            return ["Contract", "ExternalPayment"]
        return ["ExternalPayment"]

    def energy_modes(self) -> list[str]:
        """The EVSE's energy transfer modes."""
        return list(self.config.energy_modes)

    def control_modes(self) -> tuple[str, ...]:
        """The -20 control modes offered, in order."""
        return self.config.control_modes

    def session_started(self, info: SessionInfo) -> None:
        """SessionSetup: the EV is there (plug-in), the ISO facts go to the timeline and the transaction."""
        self.info = info
        self.trace.link(sessionId=info.session_id, evccId=info.evcc_id, evseId=self.evse_no,
                        isoProtocol=PROTOCOL_NAMES.get(info.protocol, info.protocol),
                        stationId=self.station.station_id)
        self.trace.state("SessionStarted", resumed=info.resumed, tls=info.tls, peer=info.peer)
        self.station.spawn(self._plugged(), f"plug-{self.evse_no}")

    async def _plugged(self) -> None:
        await self.station.plug_in(self.evse_no)
        self._facts()

    def _facts(self) -> None:
        """The ISO facts the CSMS joins to the transaction (TransactionEvent customData)."""
        if self.info is None or self.evse.transaction_id is None:
            return
        self._link_tx()
        facts: Payload = {"vendorId": ISO_FACTS_VENDOR, "sessionId": self.info.session_id,
                          "evccId": self.info.evcc_id,
                          "protocol": PROTOCOL_NAMES.get(self.info.protocol, self.info.protocol),
                          "traceId": self.timeline.trace_id}
        if self.info.energy_mode:
            facts["energyTransferMode"] = self.info.energy_mode
        if self.info.control_mode is not None:
            facts["controlMode"] = self.info.control_mode.name.capitalize()
        self.station.set_transaction_data(self.evse_no, facts)

    def on_event(self, event: SessionEvent) -> None:
        """Each message goes to the CSMS when mirrored; the EV's chosen schedule (PowerDeliveryReq Start answered
        OK) becomes NotifyEVChargingSchedule. The end comes to session_ended."""
        if isinstance(event, MessageExchanged):
            self.message(event.record)
        elif isinstance(event, ScheduleChosen):
            if event.tuple_id is None and not event.profile and self._iso20:
                return  # -20 dynamic mode: no schedule, the station sets the power in every loop
            self.station.notify("NotifyEVChargingSchedule", self._ev_schedule(event.tuple_id, list(event.profile)))

    @property
    def _iso20(self) -> bool:
        return self.info is not None and self.info.protocol == "iso20"

    def message(self, record: MessageRecord) -> None:
        """A message the SECC received or sent: DataTransfer of its EXI when mirrored (our vendor component's
        MirrorISO15118Messages; gzip per MirrorISO15118Compression)."""
        settings = self.station.settings
        if not settings.bool(VENDOR_COMPONENT, "MirrorISO15118Messages"):
            return
        gz = settings.value(VENDOR_COMPONENT, "MirrorISO15118Compression") == "Gzip"
        data = gzip.compress(record.exi, mtime=0) if gz else record.exi
        self.station.notify("DataTransfer", {
            "vendorId": MIRROR_VENDOR.get(record.namespace, "ISO15118-20"), "messageId": record.name[:50],
            "data": "EXI::" + base64.b64encode(data).decode()})

    # ----- authorization -----

    def authorize(self, info: SessionInfo) -> AuthorizationStatus:
        """Ongoing while the station authorizes: Plug & Charge, free vend, a token presented here, or the CSMS's
        remote start."""
        self._facts()
        if self.evse.authorized:
            return self._authorized()
        if self.auth_result is not None:
            if self.auth_result != "Accepted":
                if info.protocol != "iso20":  # -20: the SECC answers the refusal's WARNING_ code (iso20_auth_code)
                    info.auth_code = info.auth_code or "FAILED"
                elif info.auth_code == "FAILED":
                    info.auth_code = None
                return AuthorizationStatus.REJECTED
            return self._authorized()
        if self.auth_task is None:
            if info.payment_option == "Contract" and info.emaid and info.contract_chain:
                self.trace.state("Authorizing", method="PlugAndCharge", eMAID=info.emaid)
                self.auth_task = self.station.spawn(self._authorize_contract(info), "iso-authorize")
            elif not self.station.settings.bool("AuthCtrlr", "Enabled"):
                self.trace.state("Authorizing", method="FreeVend")
                self.auth_task = self.station.spawn(self._authorize({"idToken": "", "type": "NoAuthorization"},
                                                                    check=False), "iso-authorize")
            elif self.config.id_token is not None:
                self.trace.state("Authorizing", method="IdToken", idToken=self.config.id_token["idToken"])
                self.auth_task = self.station.spawn(self._authorize(self.config.id_token), "iso-authorize")
            else:
                self.trace.state("Authorizing", method="WaitingForRemoteStart")
                self.auth_task = self.station.spawn(asyncio.sleep(0), "iso-authorize")
        return AuthorizationStatus.ONGOING

    async def _authorize(self, token: dict[str, str], check: bool = True) -> None:
        info = await self.station.authorize(self.evse_no, token, check=check)
        self.auth_result = info.get("status", "Invalid")
        self.trace.state("Authorized" if self.auth_result == "Accepted" else "AuthorizationRefused",
                         status=self.auth_result)

    async def _authorize_contract(self, info: SessionInfo) -> None:
        assert info.emaid is not None and info.contract_chain is not None
        decision = await authorize_contract(self.station, self.evse_no, info.emaid, info.contract_chain, self.trace)
        self.auth_result = decision.status
        if decision.iso_code is not None:
            info.auth_code = decision.iso_code

    def _authorized(self) -> AuthorizationStatus:
        self._link_tx()
        token = self.evse.id_token
        if token is not None:
            self.trace.link(idToken=token.get("idToken") or None)
        return AuthorizationStatus.ACCEPTED

    async def certificate_installation(self, info: SessionInfo, request: dict[str, Any],
                                       action: str = "Install") -> dict[str, Any] | str:
        """Certificate installation or update through the CSMS (Get15118EVCertificate; -20 with its schema)."""
        return await install_certificate(self.station, request, action, self.trace, protocol=info.protocol)

    # ----- charge parameters, schedules, limits -----

    def schedules(self, info: SessionInfo, ev: EVChargeParameters) -> list[SASchedule] | None:
        """NotifyEVChargingNeeds (once), then the composite schedule as one SAScheduleTuple."""
        self._renegotiated()
        self._facts()
        soc = ev.status.soc if ev.status is not None else None
        self.station.ev_update(self.evse_no, soc=float(soc) if soc is not None else None,
                               battery_wh=ev.energy_capacity)
        if not self.needs_sent:
            self.needs_sent = True
            self.station.notify("NotifyEVChargingNeeds", charging_needs(self.evse_no, ev,
                                                                        self.station.clock.epoch()))
        entries = self._pmax_entries()
        self.trace.state("ScheduleOffered", pmax=[(e.start, e.pmax) for e in entries])
        self.offer = pmax_offer(self.station.clock.now(), entries)
        offer = [SASchedule(1, entries)]
        self.offered = {t.tuple_id: t for t in offer}
        return offer

    def _pmax_entries(self) -> tuple[PMaxEntry, ...]:
        """The composite schedule from now as an ISO 15118-2 PMaxSchedule (the last entry until the schedule's
        end)."""
        entries = tuple(PMaxEntry(int(p["startPeriod"]), float(p["limit"])) for p in
                        self._composite()["chargingSchedulePeriod"])
        last = entries[-1]
        return (*entries[:-1], PMaxEntry(last.start, last.pmax, self.config.schedule_duration - last.start))

    def schedule_tuples(self, info: SessionInfo, needs: EVNeeds, discharge_w: float | None) -> list[ScheduleTuple]:
        """-20 scheduled: NotifyEVChargingNeeds (once), then the composite schedule as one ScheduleTuple (BPT: with
        a discharging schedule of `discharge_w`)."""
        self._needs20(info, needs)
        target = self.station.target(self.evse_no)
        self.scheduled_setpoint, self.discharge_offered = target.setpoint_w, discharge_w
        tuples, self.offer = self._tuples(discharge_w, target.setpoint_w)
        dis = tuples[0].discharging
        self.trace.state("ScheduleOffered", charging=[(e.duration, e.power) for e in tuples[0].charging.entries],
                         discharging=None if dis is None else [(e.duration, e.power) for e in dis.entries],
                         setpoint_w=target.setpoint_w)
        return tuples

    def _tuples(self, discharge_w: float | None, setpoint_w: float | None) -> tuple[list[ScheduleTuple], Offer]:
        """The composite schedule from now as -20 ScheduleTuples, and the offer they make (exact under a
        setpoint: the car follows the tuple's powers)."""
        periods = self._composite()["chargingSchedulePeriod"]
        tuples = tuples_from_composite(periods, self.config.schedule_duration, discharge_w, self.evse.max_power_w,
                                       setpoint_w)
        exact = setpoint_w is not None or any(p.get("operationMode") in FOLLOWED and p.get("setpoint") is not None
                                              for p in periods)
        return tuples, tuple_offer(self.station.clock.now(), tuples[0], exact)

    def dynamic_schedule(self, info: SessionInfo, needs: EVNeeds) -> DynamicSchedule:
        """-20 dynamic: NotifyEVChargingNeeds (once); the EV's own plan (the station sets the power per loop)."""
        self._needs20(info, needs)
        self.trace.state("DynamicControl", limit_w=self.station.limit_w(self.evse_no))
        return DynamicSchedule(needs.departure_time, needs.min_soc, needs.target_soc)

    def _needs20(self, info: SessionInfo, needs: EVNeeds) -> None:
        """A -20 ScheduleExchangeReq: the ISO facts, and the EV's needs to the CSMS once."""
        self._renegotiated()
        self._facts()
        if info.energy_mode != self.service_selected:
            self.service_selected = info.energy_mode
            self.trace.state("ServiceSelected", service=info.energy_mode,
                             controlMode=info.control_mode.name if info.control_mode else None)
        if self.needs_sent:
            return
        self.needs_sent = True
        lim = self.station.hardware(self.evse_no).limits
        modes = self.config.energy_modes
        phases = 1 if "AC_single_phase_core" in modes and "AC_three_phase_core" not in modes else lim.phases
        voltage = phase_voltage(lim.nominal_voltage)
        self.station.notify("NotifyEVChargingNeeds", charging_needs20(
            self.evse_no, info, needs, self.station.clock.epoch(), voltage, phases))

    def _composite(self) -> Payload:
        """The EVSE's composite schedule for the SAScheduleTuple: at most PMAX_ENTRIES periods; should the profiles
        need more, the limit in force now, for the whole schedule."""
        try:
            return self.station.composite_schedule(self.evse_no, self.config.schedule_duration, "W",
                                                   max_periods=PMAX_ENTRIES)
        except Rejection as e:
            self.log.warning("%s; offering the limit in force now", e.info)
            limit = self.station.limit_w(self.evse_no)
            return {"chargingSchedulePeriod": [{"startPeriod": 0, "limit": round(
                self.evse.max_power_w if limit is None else max(0.0, limit), 1)}]}

    def _ev_schedule(self, tuple_id: int | None, profile: list[ProfileEntry]) -> Payload:
        """NotifyEVChargingScheduleRequest: the EV's ChargingProfile (-2), or the SAScheduleTuple it chose when it
        sent none (DIN), from now on."""
        periods: list[Payload]
        if profile:
            periods = [{"startPeriod": e.start, "limit": float(e.max_power),
                        **({"numberPhases": int(e.max_phases)} if e.max_phases else {})} for e in profile]
        else:
            chosen = self.offered.get(tuple_id or 1) or next(iter(self.offered.values()), None)
            if chosen is not None:
                periods = [{"startPeriod": e.start, "limit": float(e.pmax)} for e in chosen.entries]
            else:
                periods = [{"startPeriod": p["startPeriod"], "limit": p["limit"]}
                           for p in self._composite()["chargingSchedulePeriod"]]
        return {"timeBase": self.station.clock.timestamp(), "evseId": self.evse_no, "chargingSchedule": {
            "id": tuple_id or 1, "chargingRateUnit": "W", "duration": self.config.schedule_duration,
            "chargingSchedulePeriod": periods}}

    def limit_w(self) -> float | None:
        """The charging-profile limit on the EVSE now."""
        return self.station.limit_w(self.evse_no)

    def max_power_w(self) -> float:
        """The EVSE's rating."""
        return self.evse.max_power_w

    def allow_discharge_w(self) -> float:
        """What an EV may feed back at most (BridgeConfig.allow_discharge_w)."""
        return self.config.allow_discharge_w

    def target(self) -> EvseTarget:
        """The station's target for the EVSE now (import/export limits; an OCPP 2.1 setpoint)."""
        return self.station.target(self.evse_no)

    def delivering(self) -> bool:
        """A transaction runs on the EVSE."""
        return self.evse.transaction_id is not None

    def ev_drawing(self, power_w: float, soc: float | None) -> None:
        """What the EV takes now: the station's power limit and the charging state follow."""
        self.station.ev_update(self.evse_no, demand_w=power_w, soc=soc)

    # ----- what the station wants the EV to do -----

    def contactors_changed(self, closed: bool) -> None:
        """The contactors closed (energy transfer) or opened."""
        self.contactors = closed

    def notification(self) -> str:
        """StopCharging when the transaction was stopped (CSMS or local), ReNegotiation after a profile change."""
        evse = self.evse
        if self.contactors and (evse.transaction_id is None or not evse.authorized):
            if not self.stopped_remotely:
                self.stopped_remotely = True
                self.trace.state("StopRequested", by="CSMS or station")
            return "StopCharging"
        if self.change_service and self.contactors and self._iso20:
            return "ServiceRenegotiation"  # -20 only: the EV selects a service again
        if self.renegotiate and self.contactors and self.info is not None and (
                self.info.protocol == "iso2" or self.info.control_mode is ControlMode.SCHEDULED):
            if self.evse_policy.pacer.turn(self, self.changed_at):  # the station's pace (pacer.py)
                return "ReNegotiation"  # -20: ScheduleRenegotiation (scheduled mode only)
            if not self.waits:  # asked in a later loop, which carries the new limit meanwhile
                self.waits = True
                self.trace.state("RenegotiationWaits")
        return "None"

    def _renegotiated(self) -> None:
        """The EV asks for its schedule (its first, or a renegotiation): nothing more to renegotiate for now, and
        the station's renegotiation turn is free."""
        self.renegotiate = self.waits = False
        self.evse_policy.pacer.done(self)

    def target_changed(self, target: EvseTarget) -> None:
        """The station's target for the EVSE changed (a setpoint, the grid frequency under LocalFrequency, limits):
        on the timeline, so that the next charge loop can be seen carrying it; a -20 scheduled EV renegotiates when
        the setpoint its tuple carries is no longer the one in force."""
        self.trace.state("TargetChanged", mode=target.mode, setpoint_w=target.setpoint_w,
                         import_limit_w=target.import_limit_w, export_limit_w=target.export_limit_w,
                         by=target.source)
        if (self.contactors and self.info is not None and self.info.control_mode is ControlMode.SCHEDULED
                and self._iso20 and target.setpoint_w != self.scheduled_setpoint):
            self.renegotiate = True

    def allowed_changed(self, modes: list[str]) -> None:
        """The CSMS changed the energy transfer modes allowed (NotifyAllowedEnergyTransfer, Accepted): on the
        timeline; a -20 EV whose offer they change renegotiates its service (EVSENotification ServiceRenegotiation
        in the next charge loop; before its first ServiceDiscovery the offer follows them anyway)."""
        self.trace.state("AllowedEnergyTransfer", modes=modes)
        selected = self.info.service if self.info is not None else None
        if not self._iso20 or self.services_possible is None or selected is None:
            return
        same = [s for s in self.services_possible if EnergyService[s].dc == selected.dc]  # the session's AC or DC
        now = tuple(s for s in same if service_allowed(s, modes))
        if now != tuple(s for s in self.services_offered if s in same):
            self.change_service = True
            self.trace.state("ServiceRenegotiationRequested", offered=list(self.services_offered), now=list(now))

    def offer_services(self, possible: list[str]) -> list[str]:
        """-20 ServiceDiscovery: of the EVSE's services, those the CSMS allows the transaction (all when it did not
        say); on the timeline. After a service renegotiation the EV's needs go to the CSMS again (its energy transfer
        mode may have changed)."""
        allowed = self.station.allowed_energy_transfer(self.evse_no)
        offered = [s for s in possible if service_allowed(s, allowed)]
        if self.services_possible is not None:
            self.needs_sent = False
        self.services_possible, self.services_offered = tuple(possible), tuple(offered)
        self.change_service = False
        self.trace.state("ServicesOffered", services=offered, allowed=allowed)
        return offered

    def discharge_refused(self, reason: str) -> None:
        """The station asks the EV to discharge and it cannot or will not: on the timeline and to the CSMS
        (NotifyEvent ConnectedEV/Problem, techCode EVCannotDischarge), once per session."""
        if self.refused_discharge:
            return
        self.refused_discharge = True
        self.trace.state("DischargeRefused", reason=reason)
        self.log.warning("EV cannot discharge: %s", reason)
        now = self.station.clock.timestamp()
        self.station.notify("NotifyEvent", {"generatedAt": now, "seqNo": 0, "eventData": [ev_problem_event(
            EV_CANNOT_DISCHARGE, reason, self.evse_no, next(self.evse_policy.event_ids), now,
            self.evse.transaction_id)]})

    def profiles_changed(self) -> None:
        """The CSMS changed a profile: a -2 or -20 scheduled EV renegotiates when the new composite schedule no longer
        fits what it was offered (offer.py; a change between the offer and the start of the energy transfer
        renegotiates once it has started); every EV gets the new limit in the charge loop."""
        why = self._offer_outdated()
        self.changed_at = self.evse_policy.pacer.clock()
        self.trace.state("ProfilesChanged", limit_w=self.station.limit_w(self.evse_no), renegotiate=why is not None,
                         why=why)
        if why is not None:
            self.renegotiate = True

    def _offer_outdated(self) -> str | None:
        """Why the car's schedule no longer fits the composite schedule now (None: it still fits, or the car has
        no schedule to renegotiate: DIN, -20 dynamic)."""
        info = self.info
        if self.offer is None or info is None or not (info.protocol == "iso2"
                                                      or info.control_mode is ControlMode.SCHEDULED):
            return None  # the first offer is made from the profiles in force then
        now = self.station.clock.now()
        if info.protocol == "iso2":
            return outdated(self.offer, pmax_offer(now, self._pmax_entries()))
        return outdated(self.offer, self._tuples(self.discharge_offered, self.target().setpoint_w)[1])

    # ----- the end -----

    def session_ended(self, info: SessionInfo | None, ended: SessionEnded) -> None:
        """Report the end in OCPP terms (the error map's row of its kind), end the transaction, and let the EVSE go.
        Before SessionSetup there is no transaction: only the reports."""
        failure, code, reason = FAILURES[ended.kind], ended.iso_code, ended.detail
        if info is None:
            if self.evse_policy.active is self:
                self.evse_policy.active = None
            self.trace.error(failure.kind, code=code, reason=reason, securityEvent=failure.security_event)
            self.evse_policy.report_failure(failure, code, reason)
            self.trace.close()
            return
        self.trace.state("SessionStopped", reason=reason, failure=failure.kind, code=code, paused=ended.paused)
        self.evse_policy.closing(self, closing_transaction=not ended.paused)
        if ended.paused:  # the EV may resume with the same SessionID: the transaction stays
            return
        if failure.notify:
            self.trace.error(failure.kind, code=code, reason=reason, stoppedReason=failure.stopped_reason,
                             securityEvent=failure.security_event, faulted=failure.faulted)
        self.station.spawn(self._report_end(failure, code, reason), f"iso-end-{self.evse_no}")

    async def _report_end(self, failure: IsoFailure, code: str | None, reason: str) -> None:
        st = self.station
        self.evse_policy.report_failure(failure, code, reason, self.evse.transaction_id)
        if failure.kind is FailureKind.NORMAL:
            await st.unplug(self.evse_no)
        else:
            await st.stop_transaction(self.evse_no, failure.stopped_reason, failure.trigger_reason)
            if failure.faulted:
                await st.set_fault(self.evse_no, True, failure.stopped_reason)
            await st.unplug(self.evse_no)
        self.trace.state("TransactionEnded", transactionId=self.tx_id)
        try:  # keep recording until the CSMS has the end of the transaction
            async with asyncio.timeout(60 * st.clock.scale + 30):
                await st.wait_queue_empty()
        except TimeoutError:
            pass
        finally:
            self.evse_policy.ending.discard(self)
            self.trace.close()


def _energy_transfer(mode: str) -> str:
    """ISO EnergyTransferMode -> OCPP EnergyTransferModeEnumType."""
    return {"AC_single_phase_core": "AC_single_phase", "AC_three_phase_core": "AC_three_phase"}.get(mode, "DC")


def charging_needs(evse_id: int, ev: EVChargeParameters, now: float) -> Payload:
    """NotifyEVChargingNeedsRequest from ChargeParameterDiscoveryReq (SI units, W/A/V/Wh); `now` in epoch s."""
    needs: Payload = {"requestedEnergyTransfer": _energy_transfer(ev.mode)}
    if ev.departure_time is not None:
        departure = now + ev.departure_time
        needs["departureTime"] = rfc3339(departure, timespec="seconds")
    if is_dc(ev.mode):
        dc: Payload = {"evMaxCurrent": int(ev.max_current or 0), "evMaxVoltage": int(ev.max_voltage or 0)}
        for key, value in (("energyAmount", ev.energy_request), ("evMaxPower", ev.max_power),
                           ("evEnergyCapacity", ev.energy_capacity), ("fullSoC", ev.full_soc),
                           ("bulkSoC", ev.bulk_soc)):
            if value is not None:
                dc[key] = int(value)
        if ev.status is not None:
            dc["stateOfCharge"] = int(ev.status.soc)
        needs["dcChargingParameters"] = dc
    else:
        needs["acChargingParameters"] = {"energyAmount": int(ev.energy_amount or 0),
                                         "evMinCurrent": int(ev.min_current or 0),
                                         "evMaxCurrent": int(ev.max_current or 0),
                                         "evMaxVoltage": int(ev.max_voltage or 0)}
    return {"evseId": evse_id, "chargingNeeds": needs}
