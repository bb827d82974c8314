"""The SECC state machine for DIN SPEC 70121 and ISO 15118-2 (AC and DC; EIM and Plug & Charge), sans-I/O;
ISO 15118-20 sessions run in Secc20 (secc20.py) once the handshake chose it.

One `SeccSession` per TCP/TLS connection: feed it each decoded request with `handle()`, send the Reply it returns,
close when the Reply says so. It first negotiates the protocol (supportedAppProtocol), then accepts in each state
only the requests the standards allow next. Bad input follows the standards: an unknown or out-of-order request gets
its response with FAILED_SequenceError, a wrong SessionID FAILED_UnknownSession (the sequence is checked first, as
the reference stack does), and after any FAILED_* response the SECC closes the connection. The shell waits at most
`timeout` seconds (V2G_SECC_Sequence_Timeout) for each request and calls `on_timeout()` when it expires.

The session tells its controller what happens as typed events (iso15118/events.py): the shell reports each message
(`exchanged`), each response sent with its elapsed time (`sent`) and a connection that ended outside the message flow
(`on_closed` with the FailureKind it saw); the session decides how it ended (`SessionEnded.kind`) where it knows why.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509

from ..trace.error_map import FailureKind
from . import xmldsig
from .apphand import ISO_15118_20_DC, AppProtocol, negotiate, protocols
from .events import Answered, MessageExchanged, ScheduleChosen, SessionEnded
from .evse import AuthorizationStatus, EVSEController, SessionInfo
from .messages import Iso2Messages, MessageError, body_name, for_protocol, split
from .messages.envelope import NEW_SESSION_ID, is_new_session_id, same_session
from .model import EVSEStatus, Processing, SASchedule, Step, is_dc
from .msglog import MessageRecord
from .pnc import contract_precheck
from .secc20 import Pnc20Hooks, Secc20
from .secc20_pnc import Pnc20Checks
from .secc_base import PausedSessions, Reply, failure_kind
from .secc_pnc import SeccPnc
from .timers import SeccTimers
from .v2gtp import ISO20_NAMESPACE, PayloadType

__all__ = ["PausedSessions", "Reply", "SeccConfig", "SeccSession", "SeccTimers", "contract_precheck"]

log = logging.getLogger(__name__)

Body = dict[str, Any]
_CHARGE_SERVICE_ID = 1
_AUTH_PROCESSING = {
    AuthorizationStatus.ACCEPTED: Processing.FINISHED,
    AuthorizationStatus.ONGOING: Processing.ONGOING,
    AuthorizationStatus.ONGOING_CUSTOMER: Processing.ONGOING_CUSTOMER,
    AuthorizationStatus.REJECTED: Processing.FINISHED,
}


@dataclass(frozen=True)
class SeccConfig:
    """What the SECC offers and how long it waits ("iso20" stands for the -20 AC and DC namespaces)."""

    protocols: tuple[str, ...] = ("iso2", "din")
    timers: SeccTimers = field(default_factory=SeccTimers)


class SeccSession(SeccPnc):
    """The SECC side of one communication session (one connection)."""

    def __init__(self, controller: EVSEController, config: SeccConfig | None = None,
                 paused: PausedSessions | None = None, *, peer: str = "", tls: bool = False,
                 new_session_id: Callable[[], str] = lambda: secrets.token_hex(8).upper(),
                 pnc20: Pnc20Hooks | None = None, tls_version: str | None = None) -> None:
        self.controller = controller
        self.config = config or SeccConfig()
        self.paused = paused if paused is not None else PausedSessions()
        self.peer = peer
        self.tls = tls
        self.new_session_id = new_session_id
        self.tls_version = tls_version  # e.g. "TLSv1.3" (the shell's ssl object), None on TCP
        self.supported: list[AppProtocol] = protocols(self.config.protocols)
        if tls and tls_version is not None and tls_version != "TLSv1.3":  # -20 never over TLS 1.2 [V2G20-2356]
            self.supported = [p for p in self.supported if p.kind != "iso20"]
        self.protocol: AppProtocol | None = None
        self.msgs: Iso2Messages | None = None
        self.iso20: Secc20 | None = None  # the -20 engine, once negotiated
        self.pnc20: Pnc20Hooks | None = pnc20 or Pnc20Checks()  # ISO 15118-20 Plug & Charge checks
        self.session_id = NEW_SESSION_ID
        self.info: SessionInfo | None = None
        self.expected: frozenset[Step] = frozenset()
        self.dc = False
        self.charging = False
        self.renegotiating = False
        self.schedules: dict[int, SASchedule] = {}
        self.offered_modes: list[str] = []
        self.offered_payment: list[str] = []
        self.offered_services: dict[int, Any] = {}
        self.ended = False
        self.ok = False
        self.end_reason = ""
        self.end: SessionEnded | None = None
        self.last_answer: Answered | None = None
        self._chosen: ScheduleChosen | None = None  # PowerDeliveryReq Start accepted: told once the answer is sent
        self.requests = 0
        self._rx_session_id = NEW_SESSION_ID
        self._rx_header: dict[str, Any] = {}
        self.challenge: bytes | None = None
        self.contract_verified = False
        self._handlers: dict[Step, Callable[[Body], Body]] = {
            Step.SESSION_SETUP: self._session_setup, Step.SERVICE_DISCOVERY: self._service_discovery,
            Step.SERVICE_DETAIL: self._service_detail, Step.PAYMENT_SERVICE_SELECTION: self._payment_selection,
            Step.AUTHORIZATION: self._authorization, Step.CHARGE_PARAMETER_DISCOVERY: self._charge_parameters,
            Step.PAYMENT_DETAILS: self._payment_details,
            Step.CABLE_CHECK: self._cable_check, Step.PRE_CHARGE: self._precharge,
            Step.POWER_DELIVERY: self._power_delivery, Step.CHARGING_STATUS: self._charging_status,
            Step.CURRENT_DEMAND: self._current_demand, Step.METERING_RECEIPT: self._metering_receipt,
            Step.WELDING_DETECTION: self._welding_detection, Step.SESSION_STOP: self._session_stop,
        }

    # ----- what the shell reads -----

    @property
    def rx_namespace(self) -> str:
        """EXI namespace of the next request: appHand until negotiated, then the protocol's ("iso20": the -20
        CommonMessages; AC and DC messages come on their own payload types, see rx_namespace_for)."""
        if self.protocol is None:
            return "appHand"
        return "iso20" if self.iso20 is not None else self.protocol.key

    def rx_namespace_for(self, payload_type: int) -> str | None:
        """The EXI namespace of a request that came with V2GTP `payload_type`; None if the protocol does not allow
        that payload type (the shell then closes: a V2GTP error)."""
        if self.iso20 is not None:
            ns = ISO20_NAMESPACE.get(payload_type)
            return ns if ns in ("iso20", "iso20_ac", "iso20_dc") else None
        return self.rx_namespace if payload_type == PayloadType.EXI else None

    @property
    def timeout(self) -> float:
        """Seconds to wait for the next request (V2G_SECC_Sequence_Timeout): -20 after a charge-loop answer 0.5 s
        (Tables 216/217), else 60 s."""
        last = self.last_answer
        return self.config.timers.sequence_timeout(self.rx_namespace, last.step if last is not None else None)

    @property
    def label(self) -> str:
        """Session label for log lines."""
        return f"SECC {self.peer} session {self.session_id}"

    # ----- events from the shell -----

    def handle(self, doc: dict[str, Any], payload_type: int = PayloadType.EXI) -> Reply:
        """Process one decoded request (that came with V2GTP `payload_type`); return what to send and whether to
        close afterwards."""
        if self.ended:
            raise RuntimeError("session already ended")
        self.requests += 1
        if self.protocol is None:
            return self._handshake(doc)
        if self.iso20 is not None:
            return self.iso20.handle(doc, payload_type)
        assert self.msgs is not None
        try:
            sid, name, body = split(doc)
        except MessageError as e:
            return self._close(FailureKind.EXI_ERROR, f"unusable message: {e}")
        found = self.msgs.lookup(name)
        if found is None or not found[1]:
            return self._close(FailureKind.SEQUENCE_ERROR, f"received {name}, which is not a request")
        step = found[0]
        if step not in self.expected or step not in self.msgs.steps_in_use:
            wanted = ", ".join(sorted(self.msgs.req_name(s) for s in self.expected)) or "nothing"
            return self._failed(step, sid, "FAILED_SequenceError", f"{name} is out of sequence (expected {wanted})")
        if step is not Step.SESSION_SETUP and not same_session(sid, self.session_id):
            return self._failed(step, sid, "FAILED_UnknownSession",
                                f"{name} carries SessionID {sid}, this session is {self.session_id}")
        self._rx_session_id = sid
        self._rx_header = doc["V2G_Message"].get("Header") or {}
        if step in (Step.CERTIFICATE_INSTALLATION, Step.CERTIFICATE_UPDATE):
            return self._certificate_installation(doc, step)
        try:
            res = self._handlers[step](body)
        except (KeyError, TypeError, ValueError) as e:  # a request we cannot use: not the EV's authorization failing
            return self._failed(step, sid, "FAILED", f"cannot process {name}: {type(e).__name__} {e}",
                                kind=FailureKind.OTHER_FAILED)
        code = res.get("ResponseCode", "")
        doc_out = self.msgs.response(self.session_id, step, res)
        if code.startswith("FAILED"):
            self._end(failure_kind(step, code), f"answered {self.msgs.res_name(step)} with {code}", code=code)
            return Reply(doc_out, self.msgs.ns, self.msgs.res_name(step), True, step)
        close = step is Step.SESSION_STOP
        return Reply(doc_out, self.msgs.ns, self.msgs.res_name(step), close, step)

    def on_timeout(self) -> str:
        """The sequence timeout expired: end the session (CommunicationSetupTimeout before SessionSetup); return the
        log reason."""
        if self.iso20 is not None:
            wanted = ", ".join(self.iso20.expected_names())
        elif self.msgs is not None:
            wanted = ", ".join(sorted(self.msgs.req_name(s) for s in self.expected))
        else:
            wanted = "supportedAppProtocolReq"
        reason = f"V2G_SECC_Sequence_Timeout ({self.timeout:g} s) expired waiting for {wanted or 'a request'}"
        self._end(FailureKind.SEQUENCE_TIMEOUT if self.info is not None else FailureKind.COMMUNICATION_SETUP_TIMEOUT,
                  reason)
        return reason

    def on_closed(self, kind: FailureKind, detail: str) -> None:
        """The connection ended outside the message flow: the shell names what it saw (Disconnected, V2gtpError,
        ExiError, Shutdown, InternalError). An EV that left is told apart by our last answer: Ongoing ->
        OngoingTimeout (its V2G_EVCC_Ongoing_Timeout), late -> PerformanceTimeout (its V2G_EVCC_Msg_Timeout)."""
        if self.ended:
            return
        last = self.last_answer
        refused = self.iso20.refused_kind() if self.iso20 is not None else None
        if kind is FailureKind.DISCONNECTED and refused is not None:  # -20: the EV left after a refusal
            self._end(refused[0], f"{detail} after the authorization was refused ({refused[1]})", code=refused[1])
            return
        if kind is FailureKind.DISCONNECTED and last is not None:
            if last.ongoing:
                kind = FailureKind.ONGOING_TIMEOUT
            elif last.late:
                kind = FailureKind.PERFORMANCE_TIMEOUT
        self._end(kind, detail)

    def exchanged(self, record: MessageRecord) -> None:
        """The shell received (before handle) or sent (after it left) one message: tell the controller."""
        self.controller.on_event(MessageExchanged(record))

    def sent(self, reply: Reply, elapsed: float) -> Answered:
        """The shell wrote `reply`'s response `elapsed` seconds after the request's last byte: remember whether it was
        Ongoing or late (for the kind of a later disconnect) and tell the controller (and the EV's chosen schedule
        once PowerDeliveryReq Start is answered OK)."""
        assert reply.doc is not None
        content = _content(reply.doc)
        code = content.get("ResponseCode")
        limit = self.config.timers.performance_time(self.rx_namespace, reply.step)
        answered = Answered(reply.name, reply.step, None if code is None else str(code),
                            str(content.get("EVSEProcessing", "")).startswith("Ongoing"), elapsed > limit, elapsed)
        if answered.late:
            log.warning("%s: %s took %.1f ms, over the %.0f ms performance time", self.label, reply.name,
                        elapsed * 1000, limit * 1000)
        self.last_answer = answered
        self.controller.on_event(answered)
        chosen, self._chosen = self._chosen, None
        if chosen is not None and reply.step is Step.POWER_DELIVERY and answered.response_code == "OK":
            self.controller.on_event(chosen)
        return answered

    # ----- helpers -----

    def _end(self, kind: FailureKind, detail: str, *, code: str | None = None, paused: bool = False) -> None:
        """Mark the session ended, tell the controller how (SessionEnded), log one line."""
        if self.ended:
            return
        ended = SessionEnded(kind, detail, code, paused, self.info is not None)
        self.ended, self.ok, self.end_reason, self.end = True, ended.ok, detail, ended
        if self.info is not None and self.charging:
            self.controller.set_contactors(False)
            self.charging = False
        self.controller.on_event(ended)
        self.controller.session_ended(self.info, ended)
        (log.info if ended.ok else log.warning)("%s ended (%s): %s", self.label, kind, detail)

    def _close(self, kind: FailureKind, detail: str) -> Reply:
        """End without a response (nothing to answer)."""
        self._end(kind, detail)
        return Reply(None, self.rx_namespace, "", True)

    # what protocol engines (Secc20) use of the session
    finish = _end
    close_without_answer = _close

    def choose(self, event: ScheduleChosen) -> None:
        """The EV's chosen schedule, told to the controller once the PowerDelivery answer (OK) has been sent."""
        self._chosen = event

    def _failed(self, step: Step, received_session_id: str, code: str, reason: str,
                kind: FailureKind | None = None) -> Reply:
        """Answer `step` with a FAILED_* code (under our SessionID once there is one) and close; the kind follows
        from the code and the step unless given."""
        assert self.msgs is not None
        body = self.msgs.failed_res(step, code, self.dc)
        doc = self.msgs.response(self.session_id if self.info else received_session_id, step, body)
        self._end(kind or failure_kind(step, code), f"{reason}: answered {code}", code=code)
        return Reply(doc, self.msgs.ns, self.msgs.res_name(step), True, step)

    def _status(self) -> EVSEStatus:
        """The controller's EVSE status."""
        return self.controller.status()

    def _handshake(self, doc: dict[str, Any]) -> Reply:
        """supportedAppProtocolReq -> supportedAppProtocolRes; close when nothing matches."""
        if "supportedAppProtocolReq" not in doc:
            return self._close(FailureKind.SEQUENCE_ERROR, f"expected supportedAppProtocolReq, got {body_name(doc)}")
        n = negotiate(doc, self.supported)
        if n.protocol is None:
            self._end(FailureKind.NO_COMMON_PROTOCOL, f"no common application protocol: answered {n.code}",
                      code=n.code)
            return Reply(n.response, "appHand", "supportedAppProtocolRes", True)
        self.protocol = n.protocol
        log.info("SECC %s negotiated %s (%s)", self.peer, n.protocol.title, n.code)
        if n.protocol.kind == "iso20":
            self.iso20 = Secc20(self, dc=n.protocol is ISO_15118_20_DC)
            return Reply(n.response, "appHand", "supportedAppProtocolRes", False)
        self.msgs = for_protocol(n.protocol.key)
        modes = self.controller.energy_modes()
        self.dc = n.protocol.key == "din" or not any(not is_dc(m) for m in modes)
        self.expected = frozenset({Step.SESSION_SETUP})
        return Reply(n.response, "appHand", "supportedAppProtocolRes", False)

    def _loop_steps(self, receipt: bool = False) -> frozenset[Step]:
        """Requests allowed during energy transfer (MeteringReceiptReq only right after ReceiptRequired=true)."""
        loop = {Step.CURRENT_DEMAND if self.dc else Step.CHARGING_STATUS, Step.POWER_DELIVERY}
        if receipt:
            loop.add(Step.METERING_RECEIPT)
        return frozenset(loop)

    # ----- request handlers: each returns the response body and sets the next expected requests -----

    def _session_setup(self, body: Body) -> Body:
        """SessionSetupReq: new session, or rejoin a paused one with the same SessionID and EVCCID."""
        assert self.msgs is not None and self.protocol is not None
        evcc_id = self.msgs.read_session_setup_req(body)
        resumed = None
        if not is_new_session_id(self._rx_session_id):
            resumed = self.paused.resume(self._rx_session_id, evcc_id, self.protocol.key)
        if resumed is not None:
            self.info = resumed
            self.info.peer, self.info.tls, self.info.resumed = self.peer, self.tls, True
            self.session_id = resumed.session_id
            code = "OK_OldSessionJoined"
        else:
            self.session_id = self.new_session_id()
            self.info = SessionInfo(self.session_id, evcc_id, self.protocol.key, self.peer, self.tls)
            code = "OK_NewSessionEstablished"
        self.controller.session_started(self.info)
        log.info("%s: %s for EVCCID %s", self.label, code, evcc_id)
        self.expected = frozenset({Step.SERVICE_DISCOVERY})
        return self.msgs.session_setup_res(code, self.controller.evse_id(self.protocol.key), int(time.time()))

    def _service_discovery(self, body: Body) -> Body:
        """ServiceDiscoveryReq: payment options, the charge service and value-added services."""
        assert self.msgs is not None
        self.offered_modes = self.controller.energy_modes()
        # Plug & Charge needs TLS (ISO 15118-2): without it only EIM is offered
        self.offered_payment = [o for o in self.controller.payment_options() if o != "Contract" or self.tls]
        services = self.controller.services()
        category = body.get("ServiceCategory")
        if category is not None:
            services = [s for s in services if s.category == category]
        self.offered_services = {s.service_id: s for s in services}
        self.expected = frozenset({Step.SERVICE_DETAIL, Step.PAYMENT_SERVICE_SELECTION})
        return self.msgs.service_discovery_res("OK", self.offered_payment, self.offered_modes, services)

    def _service_detail(self, body: Body) -> Body:
        """ServiceDetailReq (-2): parameter sets of an offered service."""
        assert self.msgs is not None
        sid = self.msgs.read_service_detail_req(body)
        if sid != _CHARGE_SERVICE_ID and sid not in self.offered_services:
            return self.msgs.service_detail_res("FAILED_ServiceIDInvalid", sid, None)
        return self.msgs.service_detail_res("OK", sid, self.offered_services.get(sid))

    def _payment_selection(self, body: Body) -> Body:
        """PaymentServiceSelectionReq / ServicePaymentSelectionReq."""
        assert self.msgs is not None and self.info is not None
        option, ids = self.msgs.read_payment_selection_req(body)
        if option not in self.offered_payment:
            return self.msgs.payment_selection_res("FAILED_PaymentSelectionInvalid")
        if _CHARGE_SERVICE_ID not in ids:
            return self.msgs.payment_selection_res(self.msgs.no_charge_service_code)
        if any(i != _CHARGE_SERVICE_ID and i not in self.offered_services for i in ids):
            return self.msgs.payment_selection_res("FAILED_ServiceSelectionInvalid")
        self.info.payment_option = option
        self.expected = frozenset({Step.PAYMENT_DETAILS, Step.CERTIFICATE_INSTALLATION, Step.CERTIFICATE_UPDATE}
                                  if option == "Contract" else {Step.AUTHORIZATION})
        return self.msgs.payment_selection_res("OK")

    def _authorization(self, body: Body) -> Body:
        """AuthorizationReq / ContractAuthenticationReq: Ongoing until the controller decides. With Plug & Charge the
        request is signed with the contract key over the GenChallenge of PaymentDetailsRes."""
        assert self.msgs is not None and self.info is not None
        if self.info.payment_option == "Contract":
            # the first AuthorizationReq is signed; repeats after Ongoing may come without Id and GenChallenge
            repeat = self.contract_verified and "Id" not in body and "GenChallenge" not in body
            failed = None if repeat else self._check_signed_authorization(body)
            if failed is not None:
                return self.msgs.authorization_res(failed, Processing.FINISHED)
            self.contract_verified = True
        result = self.controller.authorize(self.info)
        processing = _AUTH_PROCESSING[result]
        if result is AuthorizationStatus.REJECTED:
            return self.msgs.authorization_res(self.info.auth_code or "FAILED", processing)
        if processing is Processing.FINISHED:
            self.expected = frozenset({Step.CHARGE_PARAMETER_DISCOVERY})
        return self.msgs.authorization_res("OK", processing)

    def complete(self, reply: Reply, result: dict[str, Any] | str) -> Reply:
        """Finish a pending reply: `result` is the response document, or a FAILED_* code."""
        if self.iso20 is not None:
            return self.iso20.complete(reply, result)
        assert self.msgs is not None and reply.step is not None
        if isinstance(result, str):
            return self._failed(reply.step, self.session_id, result, f"{reply.name}: {result}")
        message = result["V2G_Message"]
        message["Header"]["SessionID"] = self.session_id
        body = next(iter(message["Body"].values()))
        code = str(body.get("ResponseCode", ""))
        if code.startswith("FAILED"):
            self._end(failure_kind(reply.step, code), f"answered {reply.name} with {code}", code=code)
            return Reply(result, self.msgs.ns, reply.name, True, reply.step)
        self.expected = frozenset({Step.PAYMENT_DETAILS})
        return Reply(result, self.msgs.ns, reply.name, False, reply.step)

    def _charge_parameters(self, body: Body) -> Body:
        """ChargeParameterDiscoveryReq: check mode and parameters, answer limits and schedules (or Ongoing)."""
        assert self.msgs is not None and self.info is not None
        ev = self.msgs.read_cpd_req(body)
        dc = is_dc(ev.mode)
        params = self.controller.dc_parameters() if dc else self.controller.ac_parameters()
        if ev.mode not in self.offered_modes:
            return self.msgs.cpd_res(self.msgs.wrong_mode_code, "Finished", None, params, self._status())
        if (dc and ev.status is None) or (not dc and ev.energy_amount is None) or (self.charging and dc != self.dc):
            return self.msgs.cpd_res("FAILED_WrongChargeParameter", "Finished", None, params, self._status())
        self.dc = dc
        self.info.energy_mode, self.info.ev = ev.mode, ev
        schedules = self.controller.schedules(self.info, ev)
        if schedules is None:
            return self.msgs.cpd_res("OK", "Ongoing", None, params, self._status())
        max_tuples = body.get("MaxEntriesSAScheduleTuple")
        if max_tuples:
            schedules = schedules[:max_tuples]
        self.schedules = {s.tuple_id: s for s in schedules}
        if self.renegotiating or not dc:
            self.expected = frozenset({Step.POWER_DELIVERY, Step.SESSION_STOP})
        else:
            self.expected = frozenset({Step.CABLE_CHECK, Step.SESSION_STOP})
        self.renegotiating = False
        return self.msgs.cpd_res("OK", "Finished", schedules, params, self._status())

    def _cable_check(self, body: Body) -> Body:
        """CableCheckReq: Ongoing while the isolation test runs."""
        assert self.msgs is not None
        result = self.controller.cable_check()
        if not result.done:
            status = EVSEStatus(isolation=result.isolation, status_code="EVSE_IsolationMonitoringActive")
            return self.msgs.cable_check_res("OK", status, "Ongoing")
        if result.isolation in ("Invalid", "Fault"):
            status = EVSEStatus(isolation=result.isolation, status_code="EVSE_Malfunction")
            return self.msgs.cable_check_res("FAILED", status, "Finished")
        self.expected = frozenset({Step.PRE_CHARGE})
        return self.msgs.cable_check_res("OK", self._status(), "Finished")

    def _precharge(self, body: Body) -> Body:
        """PreChargeReq: drive the output voltage toward the EV's target."""
        assert self.msgs is not None
        _, voltage, current = self.msgs.read_precharge_req(body)
        present = self.controller.precharge(voltage, current)
        self.expected = frozenset({Step.PRE_CHARGE, Step.POWER_DELIVERY})
        return self.msgs.precharge_res("OK", self._status(), present)

    def _power_delivery(self, body: Body) -> Body:
        """PowerDeliveryReq: Start (check schedule and profile, close contactors), Stop, or Renegotiate."""
        assert self.msgs is not None and self.info is not None
        progress, tuple_id, profile, _, _ = self.msgs.read_power_delivery_req(body)
        self._chosen = None
        if progress == "Start":
            if tuple_id is None:
                tuple_id = next(iter(self.schedules), 1)
            schedule = self.schedules.get(tuple_id)
            if schedule is None:
                return self.msgs.power_delivery_res("FAILED_TariffSelectionInvalid", self._status(), self.dc)
            limit = max(e.pmax for e in schedule.entries)
            if any(p.max_power > limit * 1.001 + 1 for p in profile):
                return self.msgs.power_delivery_res("FAILED_ChargingProfileInvalid", self._status(), self.dc)
            if not self.charging:
                if not self.controller.set_contactors(True):
                    return self.msgs.power_delivery_res(self.msgs.contactor_error_code, self._status(), self.dc)
                self.charging = True
            self.info.schedule_id = tuple_id
            self._chosen = ScheduleChosen(tuple_id, tuple(profile))
            self.expected = self._loop_steps()
        elif progress == "Stop":
            if self.charging:
                self.controller.set_contactors(False)
                self.charging = False
            after = {Step.WELDING_DETECTION, Step.SESSION_STOP} if self.dc else {Step.SESSION_STOP}
            self.expected = frozenset(after)
        else:  # Renegotiate
            if not self.charging:
                return self.msgs.failed_res(Step.POWER_DELIVERY, "FAILED_SequenceError", self.dc)
            self.renegotiating = True
            self.expected = frozenset({Step.CHARGE_PARAMETER_DISCOVERY})
        return self.msgs.power_delivery_res("OK", self._status(), self.dc)

    def _charging_status(self, body: Body) -> Body:
        """ChargingStatusReq (AC charge loop)."""
        assert self.msgs is not None and self.info is not None and self.protocol is not None
        max_current = self.controller.ac_max_current()
        receipt = self.controller.receipt_required() and self.protocol.key == "iso2"
        self.expected = self._loop_steps(receipt)
        return self.msgs.charging_status_res("OK", self.controller.evse_id(self.protocol.key),
                                             self.info.schedule_id or 1, max_current, self.controller.meter(),
                                             receipt, self._status())

    def _current_demand(self, body: Body) -> Body:
        """CurrentDemandReq (DC charge loop)."""
        assert self.msgs is not None and self.info is not None and self.protocol is not None
        demand = self.msgs.read_current_demand_req(body)
        out = self.controller.current_demand(demand)
        receipt = self.controller.receipt_required() and self.protocol.key == "iso2"
        self.expected = self._loop_steps(receipt)
        return self.msgs.current_demand_res("OK", self._status(), out, self.controller.evse_id(self.protocol.key),
                                            self.info.schedule_id or 1, self.controller.meter(),
                                            receipt if receipt else None)

    def _metering_receipt(self, body: Body) -> Body:
        """MeteringReceiptReq (-2): the EV confirms a meter reading (EIM: unsigned; Plug & Charge: signed)."""
        assert self.msgs is not None
        sid, _, _ = self.msgs.read_metering_receipt_req(body)
        if not same_session(sid, self.session_id):
            return self.msgs.metering_receipt_res("FAILED_UnknownSession", self._status(), self.dc)
        if self.info is not None and self.info.payment_option == "Contract" and self.info.contract_chain:
            leaf = x509.load_der_x509_certificate(self.info.contract_chain[0])
            try:  # Plug & Charge: the EV signs the receipt with its contract key
                xmldsig.verify(self.msgs.ns, self._rx_header.get("Signature"),
                               {str(body.get("Id", "")): ("MeteringReceiptReq", body)},
                               leaf.public_key())  # type: ignore[arg-type]
            except xmldsig.SignatureError as e:
                log.warning("%s: MeteringReceiptReq signature: %s", self.label, e)
                return self.msgs.metering_receipt_res("FAILED_MeteringSignatureNotValid", self._status(), self.dc)
        self.expected = self._loop_steps()
        return self.msgs.metering_receipt_res("OK", self._status(), self.dc)

    def _welding_detection(self, body: Body) -> Body:
        """WeldingDetectionReq: report the decaying output voltage."""
        assert self.msgs is not None
        voltage = self.controller.welding_detection()
        self.expected = frozenset({Step.WELDING_DETECTION, Step.SESSION_STOP})
        return self.msgs.welding_detection_res("OK", self._status(), voltage)

    def _session_stop(self, body: Body) -> Body:
        """SessionStopReq: Terminate, or Pause (-2) keeping the session for a later resume."""
        assert self.msgs is not None and self.info is not None
        kind = self.msgs.read_session_stop_req(body)
        paused = kind == "Pause"
        if paused:
            self.paused.pause(self.info)
        self.expected = frozenset()
        self._end(FailureKind.PAUSED if paused else FailureKind.NORMAL,
                  f"EV {'paused' if paused else 'terminated'} the session", paused=paused)
        return self.msgs.session_stop_res("OK")



def _content(doc: dict[str, Any]) -> dict[str, Any]:
    """The body element's content of a response document (V2G_Message or the handshake's)."""
    message = doc.get("V2G_Message")
    content = next(iter(message["Body"].values()), {}) if message else next(iter(doc.values()), {})
    return content if isinstance(content, dict) else {}
