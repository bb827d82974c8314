"""The SECC state machine of ISO 15118-20 (AC, DC, AC_BPT, DC_BPT; scheduled and dynamic control), sans-I/O.

A SeccSession hands every request to `Secc20.handle()` once supportedAppProtocol chose -20. Each request is allowed
only in its state: out of order -> FAILED_SequenceError, another SessionID -> FAILED_UnknownSession (the sequence is
checked first), and after any FAILED_* response the SECC closes. A refused authorization is answered with its -20
WARNING_ code; the EV then stops and the session ends with the refusal's kind. Responses go back on the V2GTP
payload type of their request (common messages 0x8002, AC 0x8003, DC 0x8004; the side streams 0x8101 schedule
renegotiation and 0x8102 metering confirmation are accepted for their messages).

The flow: SessionSetup (new, or resuming a paused session) -> AuthorizationSetup -> Authorization (EIM; Plug & Charge
through the -20 signature) -> ServiceDiscovery -> ServiceDetail* -> ServiceSelection -> {AC,DC}_ChargeParameter
Discovery -> ScheduleExchange -> (DC: CableCheck, PreCharge) -> PowerDelivery(Start) -> charge loop (with
MeteringConfirmation, ScheduleRenegotiation, Standby) -> PowerDelivery(Stop) -> (DC: WeldingDetection) ->
SessionStop(Terminate | Pause | ServiceRenegotiation: back to ServiceDiscovery, where the controller offers its
services anew). The AC/DC handlers are in secc20_power.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ..trace.error_map import FailureKind, iso20_auth_code, kind_of_code
from .events import ScheduleChosen
from .evse import AuthorizationStatus, SessionInfo
from .messages import iso20
from .messages.envelope import is_new_session_id, same_session
from .messages.iso20_ac import failed_ac
from .messages.iso20_dc import failed_dc
from .messages.iso20_schedule import (
    read_ev_power_profile,
    read_schedule_exchange_req,
    schedule_exchange_res_dynamic,
    schedule_exchange_res_scheduled,
)
from .messages.iso20_types import REQUESTS20, RESPONSE_CODES20, Body, Iso20Error, message, response_name, split20
from .model import ProfileEntry, Step
from .model20 import (
    SUPPORTED_SERVICES,
    ControlMode,
    DynamicSchedule,
    EnergyService,
    MeterReading20,
    Notification,
    PowerEntry,
    PowerSchedule,
    ScheduleTuple,
    ServiceOffer,
)
from .secc20_power import Power20, RequestRefused
from .secc_base import Reply, failure_kind
from .v2gtp import ISO20_NAMESPACE, PayloadType

if TYPE_CHECKING:  # the session owns this engine; imported for the type only (no cycle at run time)
    from .secc import SeccSession

log = logging.getLogger(__name__)

_SIDE_STREAMS: dict[int, frozenset[str]] = {
    PayloadType.ISO20_SCHEDULE_RENEGOTIATION: frozenset({"ScheduleExchangeReq", "PowerDeliveryReq"}),
    PayloadType.ISO20_METERING_CONFIRMATION: frozenset({"MeteringConfirmationReq"}),
}
_PROCESSING = {AuthorizationStatus.ACCEPTED: "Finished", AuthorizationStatus.ONGOING: "Ongoing",
               AuthorizationStatus.ONGOING_CUSTOMER: "Ongoing_WaitingForCustomerInteraction",
               AuthorizationStatus.REJECTED: "Finished"}
_TOLERANCE_W = 1.0


class Pnc20Hooks(Protocol):
    """The ISO 15118-20 Plug & Charge checks the SECC runs (the -20 signature over PnC_AReqAuthorizationMode with the
    GenChallenge, the contract chain, the signed metering data); each returns "OK" or the -20 code to answer."""

    def authorize(self, engine: Secc20, mode: Body, signature: Body | None) -> str:
        """AuthorizationReq(PnC): check the signature, the challenge and the contract; fill info.emaid and
        info.contract_chain."""
        ...

    def check_metering(self, engine: Secc20, data: Body, signature: Body | None) -> str:
        """MeteringConfirmationReq: the SignedMeteringData signed with the contract key."""
        ...


class Secc20(Power20):
    """The -20 message flow of one SeccSession (the session keeps the end, the events and the paused store)."""

    def __init__(self, session: SeccSession, dc: bool) -> None:
        self.session = session
        self.controller = session.controller
        self.dc_protocol = dc  # the SAP namespace offered: -20:DC or -20:AC
        self.dc = dc
        self.expected: frozenset[str] = frozenset({"SessionSetupReq"})
        self.offered: dict[int, ServiceOffer] = {}
        self.service: EnergyService | None = None
        self.mode = ControlMode.SCHEDULED
        self.bpt = False
        self.challenge: bytes | None = None
        self.auth_services: list[str] = []
        self.refusal: str | None = None  # the WARNING_ code of a refused authorization, until the EV stops
        self.tuples: dict[int, ScheduleTuple] = {}
        self.plan: DynamicSchedule | None = None
        self.renegotiating = False
        self.standby = False
        self.last_meter: MeterReading20 | None = None
        self.payload_type: int = PayloadType.ISO20_COMMON
        self._head: Body = {}
        self._handlers: dict[str, Callable[[Body], Body]] = {
            "SessionSetupReq": self._session_setup, "AuthorizationSetupReq": self._authorization_setup,
            "AuthorizationReq": self._authorization, "ServiceDiscoveryReq": self._service_discovery,
            "ServiceDetailReq": self._service_detail, "ServiceSelectionReq": self._service_selection,
            "ScheduleExchangeReq": self._schedule_exchange, "PowerDeliveryReq": self._power_delivery,
            "MeteringConfirmationReq": self._metering_confirmation, "SessionStopReq": self._session_stop,
            "AC_ChargeParameterDiscoveryReq": self._ac_cpd, "AC_ChargeLoopReq": self._ac_loop,
            "DC_ChargeParameterDiscoveryReq": self._dc_cpd, "DC_CableCheckReq": self._cable_check,
            "DC_PreChargeReq": self._precharge, "DC_ChargeLoopReq": self._dc_loop,
            "DC_WeldingDetectionReq": self._welding_detection,
        }

    @property
    def info(self) -> SessionInfo:
        """The session's SessionInfo (set by SessionSetup)."""
        assert self.session.info is not None
        return self.session.info

    def expected_names(self) -> list[str]:
        """The requests allowed next, for log lines."""
        return sorted(self.expected)

    # ----- dispatch -----

    def handle(self, doc: dict[str, Any], payload_type: int) -> Reply:
        """Process one decoded -20 request."""
        try:
            sid, name, body, head = split20(doc)
        except (Iso20Error, KeyError, TypeError) as e:
            return self.session.close_without_answer(FailureKind.EXI_ERROR, f"unusable message: {e}")
        found = REQUESTS20.get(name)
        if found is None:
            return self.session.close_without_answer(FailureKind.SEQUENCE_ERROR,
                                                     f"received {name}, which is not a request")
        step, ns = found
        main_stream = payload_type not in _SIDE_STREAMS
        self.payload_type = payload_type if not main_stream else PayloadType.ISO20_COMMON
        if (not main_stream and name not in _SIDE_STREAMS[payload_type]) or \
                (main_stream and ISO20_NAMESPACE.get(payload_type) != ns):
            return self._failed(name, sid, "FAILED_SequenceError",
                                f"{name} came with V2GTP payload type 0x{payload_type:04X}")
        if name not in self.expected:
            wanted = ", ".join(self.expected_names()) or "nothing"
            return self._failed(name, sid, "FAILED_SequenceError", f"{name} is out of sequence (expected {wanted})")
        if step is not Step.SESSION_SETUP and not same_session(sid, self.session.session_id):
            return self._failed(name, sid, "FAILED_UnknownSession",
                                f"{name} carries SessionID {sid}, this session is {self.session.session_id}")
        self._head = head
        if name == "CertificateInstallationReq":
            return self._certificate_installation(doc)
        try:
            res = self._handlers[name](body)
        except RequestRefused as e:
            return self._failed(name, sid, e.code, f"{name}: {e}", kind=e.kind)
        except (KeyError, TypeError, ValueError) as e:  # a request we cannot use (Iso20Error is a ValueError)
            return self._failed(name, sid, "FAILED", f"cannot process {name}: {type(e).__name__} {e}",
                                kind=FailureKind.OTHER_FAILED)
        return self._answer(name, step, ns, res)

    def _answer(self, name: str, step: Step, ns: str, res: Body, kind: FailureKind | None = None) -> Reply:
        """The Reply for a handler's response; a FAILED code ends the session and closes."""
        code = str(res.get("ResponseCode", ""))
        doc = message(response_name(name), self.session.session_id, res)
        ptype = self._reply_type(ns)
        if code.startswith("FAILED"):
            self.session.finish(kind or failure_kind(step, code), f"answered {response_name(name)} with {code}",
                                code=code)
            return Reply(doc, ns, response_name(name), True, step, payload_type=ptype)
        stop = name == "SessionStopReq" and not self.expected  # ServiceRenegotiation goes on to ServiceDiscovery
        return Reply(doc, ns, response_name(name), stop, step, payload_type=ptype)

    def _reply_type(self, ns: str) -> int:
        """The payload type of a response: its request's side stream, else the main stream of its namespace."""
        if self.payload_type in _SIDE_STREAMS:
            return self.payload_type
        return {"iso20": PayloadType.ISO20_COMMON, "iso20_ac": PayloadType.ISO20_AC,
                "iso20_dc": PayloadType.ISO20_DC}[ns]

    def _failed(self, name: str, received_sid: str, code: str, reason: str, kind: FailureKind | None = None) -> Reply:
        """Answer `name` with a FAILED_* code (under our SessionID once there is one) and close."""
        step, ns = REQUESTS20[name]
        res_name = response_name(name)
        body = failed_ac(res_name, code) if ns == "iso20_ac" else failed_dc(res_name, code) if ns == "iso20_dc" \
            else iso20.failed_common(res_name, code)
        sid = self.session.session_id if self.session.info else received_sid
        if len(sid) != 16:  # sessionIDType is 8 bytes
            sid = "0" * 16
        doc = message(res_name, sid, body)
        self.session.finish(kind or failure_kind(step, code), f"{reason}: answered {code}", code=code)
        return Reply(doc, ns, res_name, True, step, payload_type=self._reply_type(ns))

    def refused_kind(self) -> tuple[FailureKind, str] | None:
        """(kind, code) of an authorization refusal the EV has not got past, None if there is none."""
        if self.refusal is None:
            return None
        return kind_of_code(self.refusal), self.refusal

    def _loop_names(self) -> frozenset[str]:
        """The requests allowed during energy transfer."""
        return frozenset({"DC_ChargeLoopReq" if self.dc else "AC_ChargeLoopReq", "PowerDeliveryReq"})

    def _stoppable(self, names: set[str]) -> frozenset[str]:
        """`names` plus SessionStopReq (the EV may stop at any point outside energy transfer)."""
        return frozenset(names | {"SessionStopReq"})

    def notification(self) -> tuple[Notification, int]:
        """The controller's notification in -20 terms: StopCharging -> Terminate, ReNegotiation ->
        ScheduleRenegotiation, -20 values as they are."""
        st = self.controller.status()
        value = {"StopCharging": "Terminate", "ReNegotiation": "ScheduleRenegotiation"}.get(st.notification,
                                                                                            st.notification)
        try:
            note = Notification(value)
        except ValueError:
            note = Notification.NONE
        if note is Notification.SCHEDULE_RENEGOTIATION and self.renegotiating:
            note = Notification.NONE
        return note, st.notification_max_delay

    # ----- common requests -----

    def _session_setup(self, body: Body) -> Body:
        """SessionSetupReq: a new session, or a paused one joined again (same SessionID and EVCCID)."""
        s = self.session
        evcc_id = str(body["EVCCID"])
        rx_sid = str(self._head["SessionID"])
        resumed = None if is_new_session_id(rx_sid) else s.paused.resume(rx_sid, evcc_id, "iso20")
        if resumed is not None:
            s.info = resumed
            s.info.peer, s.info.tls, s.info.resumed = s.peer, s.tls, True
            s.session_id = resumed.session_id
            code = "OK_OldSessionJoined"
        else:
            s.session_id = s.new_session_id()
            s.info = SessionInfo(s.session_id, evcc_id, "iso20", s.peer, s.tls)
            code = "OK_NewSessionEstablished"
        self.controller.session_started(s.info)
        log.info("%s: %s for EVCCID %s", s.label, code, evcc_id)
        self.expected = self._stoppable({"AuthorizationSetupReq"})
        return iso20.session_setup_res(code, self.controller.evse_id("iso20"))

    def _authorization_setup(self, body: Body) -> Body:
        """AuthorizationSetupReq: EIM and, over TLS, Plug & Charge with a fresh GenChallenge."""
        options = self.controller.payment_options()
        services = ["EIM"] if "ExternalPayment" in options else []
        if "Contract" in options and self.session.tls and self.session.pnc20 is not None:
            services.append("PnC")
        self.auth_services = services or ["EIM"]
        self.challenge = secrets.token_bytes(16) if "PnC" in self.auth_services else None
        installation = "PnC" in self.auth_services
        names = {"AuthorizationReq"} | ({"CertificateInstallationReq"} if installation else set())
        self.expected = self._stoppable(names)
        return iso20.authorization_setup_res("OK", self.auth_services, installation, self.challenge)

    def _authorization(self, body: Body) -> Body:
        """AuthorizationReq: EIM or Plug & Charge (signature over PnC_AReqAuthorizationMode, GenChallenge, the
        contract chain); Ongoing until the controller decides; a refusal is a WARNING_ code."""
        service, mode = iso20.read_authorization_req(body)
        self.expected = self._stoppable({"AuthorizationReq"})
        if service not in self.auth_services:
            return self._refuse("WARNING_AuthorizationSelectionInvalid")
        pnc = service == "PnC"
        if pnc:
            assert self.session.pnc20 is not None and mode is not None
            code = self.session.pnc20.authorize(self, mode, self._head.get("Signature"))
            if code != "OK":
                return self._refuse(code) if not code.startswith("FAILED") else iso20.authorization_res(code,
                                                                                                        "Finished")
        else:
            self.info.payment_option = "ExternalPayment"
        result = self.controller.authorize(self.info)
        if result is AuthorizationStatus.REJECTED:
            return self._refuse(iso20_auth_code(self.info.auth_code, pnc))
        processing = _PROCESSING[result]
        if processing == "Finished":
            self.refusal = None
            self.expected = self._stoppable({"ServiceDiscoveryReq"})
        return iso20.authorization_res("OK", processing)

    def _refuse(self, code: str) -> Body:
        """An AuthorizationRes with a refusal: the EV may try again or stop."""
        self.refusal = code
        log.warning("%s: authorization refused: %s", self.session.label, code)
        return iso20.authorization_res(code, "Finished")

    def _certificate_installation(self, doc: dict[str, Any]) -> Reply:
        """CertificateInstallationReq: the controller (the station asks its CSMS) answers with the whole signed
        response document, asynchronously."""
        pending = self.controller.certificate_installation(self.info, doc)
        return Reply(None, "iso20", "CertificateInstallationRes", False, Step.CERTIFICATE_INSTALLATION,
                     pending=pending, payload_type=PayloadType.ISO20_COMMON)

    def complete(self, reply: Reply, result: dict[str, Any] | str) -> Reply:
        """Finish the pending CertificateInstallation: `result` is the response document or a FAILED_* code."""
        if isinstance(result, str):  # a -2 code of a -2 controller is answered as FAILED with the code's kind
            code = result if result in RESPONSE_CODES20 and result.startswith("FAILED") else "FAILED"
            return self._failed("CertificateInstallationReq", self.session.session_id, code,
                                f"{reply.name}: {result}", kind=failure_kind(reply.step, result))
        content = result.get("CertificateInstallationRes")
        if not isinstance(content, dict):
            return self._failed("CertificateInstallationReq", self.session.session_id, "FAILED",
                                "the certificate service answered no CertificateInstallationRes")
        content.setdefault("Header", {})["SessionID"] = self.session.session_id
        code = str(content.get("ResponseCode", ""))
        if code.startswith("FAILED"):
            self.session.finish(failure_kind(reply.step, code), f"answered {reply.name} with {code}", code=code)
            return Reply(result, "iso20", reply.name, True, reply.step, payload_type=PayloadType.ISO20_COMMON)
        self.expected = self._stoppable({"AuthorizationReq"})
        return Reply(result, "iso20", reply.name, False, reply.step, payload_type=PayloadType.ISO20_COMMON)

    def _service_discovery(self, body: Body) -> Body:
        """ServiceDiscoveryReq: the energy services of the negotiated energy type (AC or DC), those the EV named."""
        supported = iso20.read_service_discovery_req(body)
        offers = [o for o in self.controller.services20()
                  if o.service in SUPPORTED_SERVICES and o.service.dc == self.dc_protocol and o.parameter_sets]
        if supported is not None:
            offers = [o for o in offers if int(o.service) in supported] or offers
        self.offered = {int(o.service): o for o in offers}
        if not offers:
            raise RequestRefused("FAILED", FailureKind.WRONG_CHARGE_PARAMETER,
                                 f"no {'DC' if self.dc_protocol else 'AC'} energy transfer service to offer")
        self.expected = self._stoppable({"ServiceDetailReq", "ServiceSelectionReq"})
        return iso20.service_discovery_res("OK", offers, self.controller.service_renegotiation20())

    def _service_detail(self, body: Body) -> Body:
        """ServiceDetailReq: the parameter sets of an offered service."""
        sid = int(body["ServiceID"])
        offer = self.offered.get(sid)
        if offer is None:
            return iso20.service_detail_res("FAILED_ServiceIDInvalid", sid, ())
        return iso20.service_detail_res("OK", sid, offer.parameter_sets)

    def _service_selection(self, body: Body) -> Body:
        """ServiceSelectionReq: an offered service with one of its parameter sets (no value-added services)."""
        sid, set_id, vas = iso20.read_service_selection_req(body)
        offer = self.offered.get(sid)
        pset = offer.parameter_set(set_id) if offer is not None else None
        if offer is None or pset is None or pset.control_mode is None:
            return iso20.code_only("FAILED_NoEnergyTransferServiceSelected")
        if vas:
            return iso20.code_only("FAILED_ServiceSelectionInvalid")
        self.service, self.mode = offer.service, pset.control_mode
        self.dc, self.bpt = offer.service.dc, offer.service.bpt
        info = self.info
        info.service, info.parameter_set, info.control_mode = offer.service, pset, pset.control_mode
        info.energy_mode = offer.service.name
        self.expected = self._stoppable({"DC_ChargeParameterDiscoveryReq" if self.dc
                                         else "AC_ChargeParameterDiscoveryReq"})
        return iso20.code_only("OK")

    def _schedule_exchange(self, body: Body) -> Body:
        """ScheduleExchangeReq: up to 3 schedule tuples (scheduled) or the dynamic plan; Ongoing until ready."""
        needs = read_schedule_exchange_req(body)
        if needs.control_mode is not self.mode:
            raise RequestRefused("FAILED", FailureKind.WRONG_CHARGE_PARAMETER,
                                 f"{needs.control_mode.name} mode, the selected parameter set is {self.mode.name}")
        self.info.needs = needs
        done = frozenset({"PowerDeliveryReq"}) if self.renegotiating else \
            self._stoppable({"DC_CableCheckReq"} if self.dc else {"PowerDeliveryReq"})
        if self.mode is ControlMode.SCHEDULED:
            tuples = self.controller.schedule_tuples(self.info, needs)
            if tuples is None:
                self.expected = self._ongoing_names()
                return schedule_exchange_res_scheduled("OK", "Ongoing", ())
            tuples = [_trimmed(t, needs.max_supporting_points) for t in tuples[:3]]
            self.tuples = {t.tuple_id: t for t in tuples}
            self.info.schedule_tuples = tuples
            self.expected = done
            return schedule_exchange_res_scheduled("OK", "Finished", tuples)
        plan = self.controller.dynamic_schedule(self.info, needs)
        if plan is None:
            self.expected = self._ongoing_names()
            return schedule_exchange_res_dynamic("OK", "Ongoing", None)
        self.plan = plan
        self.expected = done
        return schedule_exchange_res_dynamic("OK", "Finished", plan)

    def _ongoing_names(self) -> frozenset[str]:
        """While ScheduleExchange is Ongoing: the EV repeats it (or stops, outside a renegotiation)."""
        return frozenset({"ScheduleExchangeReq"}) if self.renegotiating else self._stoppable({"ScheduleExchangeReq"})

    def _power_delivery(self, body: Body) -> Body:
        """PowerDeliveryReq: Start (the chosen tuple and the EV's profile checked, contactors closed), Stop,
        Standby, ScheduleRenegotiation; EVProcessing=Ongoing is answered OK and repeated."""
        progress, processing, profile, _channel = iso20.read_power_delivery_req(body)
        note, delay = self.notification()
        if processing == "Ongoing":
            self.expected = self.expected | {"PowerDeliveryReq"}
            return iso20.power_delivery_res("OK", note, delay)
        s = self.session
        if progress == "Start":
            code = self._start(profile)
            if code != "OK":
                return iso20.power_delivery_res(code)
            self.expected = self._loop_names()
        elif progress == "Stop":
            if s.charging:
                self.controller.set_contactors(False)
                s.charging = False
            self.standby = False
            self.expected = self._stoppable({"DC_WeldingDetectionReq"} if self.dc else set())
        elif progress == "Standby":
            if not s.charging:
                return iso20.power_delivery_res("FAILED_SequenceError")
            if not self.controller.standby_allowed():
                self.expected = self._loop_names()
                return iso20.power_delivery_res("WARNING_StandbyNotAllowed", note, delay)
            self.standby = True
            self.expected = self._loop_names()
        else:  # ScheduleRenegotiation
            if not s.charging:
                return iso20.power_delivery_res("FAILED_SequenceError")
            self.renegotiating = True
            self.expected = frozenset({"ScheduleExchangeReq"})
        return iso20.power_delivery_res("OK", note, delay)

    def _start(self, profile: Body | None) -> str:
        """PowerDeliveryReq(Start): check the selected tuple and the EV's power profile against it, close the
        contactors; "OK" or the FAILED code."""
        tuple_id: int | None = None
        entries: tuple[PowerEntry, ...] = ()
        if profile is not None:
            tuple_id, entries = read_ev_power_profile(profile)
        if self.mode is ControlMode.SCHEDULED:
            chosen = self.tuples.get(tuple_id) if tuple_id is not None else None
            if chosen is None:
                return "FAILED_ScheduleSelectionInvalid"
            if not _profile_fits(entries, chosen):
                return "FAILED_EVPowerProfileInvalid"
        elif tuple_id is not None:
            return "FAILED_EVPowerProfileInvalid"  # a scheduled profile in dynamic mode
        s = self.session
        if not s.charging:
            if not self.controller.set_contactors(True):
                return "FAILED_ContactorError"
            s.charging = True
        self.standby = self.renegotiating = False
        self.info.schedule_id = tuple_id
        starts, t = [], 0
        for e in entries:
            starts.append(ProfileEntry(t, e.power))
            t += e.duration
        s.choose(ScheduleChosen(tuple_id, tuple(starts)))
        return "OK"

    def _metering_confirmation(self, body: Body) -> Body:
        """MeteringConfirmationReq: the EV confirms the last meter reading (Plug & Charge: signed with its contract
        key)."""
        data = iso20.read_metering_confirmation_req(body)
        self.expected = self._loop_names() if self.session.charging else self._stoppable(set())
        if not same_session(str(data["SessionID"]), self.session.session_id):
            return iso20.code_only("FAILED")
        if self.info.payment_option == "Contract" and self.session.pnc20 is not None:
            code = self.session.pnc20.check_metering(self, data, self._head.get("Signature"))
            if code != "OK":
                return iso20.code_only(code)
        return iso20.code_only("OK")

    def _session_stop(self, body: Body) -> Body:
        """SessionStopReq: Terminate, Pause keeping the session for a resume, or ServiceRenegotiation (when the
        controller supports it: back to ServiceDiscovery in the same session, the energy transfer stopped). After a
        refused authorization the end is the refusal's kind."""
        kind = iso20.read_session_stop_req(body)
        if kind == "ServiceRenegotiation":
            if self.refusal is not None or not self.controller.service_renegotiation20():
                return iso20.code_only("FAILED_NoServiceRenegotiationSupported")
            log.info("%s: service renegotiation", self.session.label)
            self.tuples, self.plan, self.standby, self.renegotiating = {}, None, False, False
            self.expected = self._stoppable({"ServiceDiscoveryReq"})
            return iso20.code_only("OK")
        self.expected = frozenset()
        refused = self.refused_kind()
        if refused is not None:
            self.session.finish(refused[0], f"EV stopped after the authorization was refused ({refused[1]})",
                                code=refused[1])
        elif kind == "Pause":
            self.session.paused.pause(self.info)
            self.session.finish(FailureKind.PAUSED, "EV paused the session", paused=True)
        else:
            self.session.finish(FailureKind.NORMAL, "EV terminated the session")
        return iso20.code_only("OK")


def _trimmed(t: ScheduleTuple, points: int) -> ScheduleTuple:
    """A tuple with at most `points` entries per schedule (MaximumSupportingPoints)."""
    def cut(s: PowerSchedule | None) -> PowerSchedule | None:
        if s is None or len(s.entries) <= points:
            return s
        return PowerSchedule(s.entries[:points], s.time_anchor, s.available_energy, s.power_tolerance, s.prices)
    charging = cut(t.charging)
    assert charging is not None
    return ScheduleTuple(t.tuple_id, charging, cut(t.discharging))


def _profile_fits(entries: tuple[PowerEntry, ...], chosen: ScheduleTuple) -> bool:
    """Whether each profile entry stays within the tuple at its start: at most the charging schedule's power, at
    least minus the discharging schedule's (0 without one), within the schedule's power tolerance."""
    offset = 0.0
    tolerance = max(_TOLERANCE_W, chosen.charging.power_tolerance or 0.0)
    for e in entries:
        upper = chosen.charging.power_at(offset)
        lower = -(chosen.discharging.power_at(offset) if chosen.discharging else 0.0)
        if not lower - tolerance <= e.power <= upper + tolerance:
            return False
        offset += e.duration
    return True
