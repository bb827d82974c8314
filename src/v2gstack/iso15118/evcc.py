"""The EVCC state machine for DIN SPEC 70121 (DC) and ISO 15118-2 (AC and DC), EIM and Plug & Charge, sans-I/O;
ISO 15118-20 sessions run in Evcc20 (evcc20.py) once the handshake chose it.

`start(now)` gives the first request (supportedAppProtocolReq); each decoded response goes to `handle(doc, now)`,
which returns the next `Send` (request, how long to wait before sending it, how long to wait for its answer) or the
final `SessionResult`. `on_timeout(now)` ends the session when the shell's wait expires; the result names the timer.
Time is passed in (monotonic seconds), so the machine is deterministic and testable without sleeping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from . import xmldsig
from .apphand import NegotiationError, build_request, protocols, read_response
from .ev import EVModel
from .evcc20 import Evcc20
from .evcc_config import Contract, EvccConfig, OemCredentials, Send, SessionResult
from .evcc_pnc import EvccPnc
from .messages import Iso2Messages, MessageError, for_protocol, split
from .messages.envelope import NEW_SESSION_ID, same_session
from .model import (
    AC_MODES,
    ACEVSEParameters,
    CurrentDemand,
    DCEVSEParameters,
    EVChargeParameters,
    EVSEStatus,
    MeterReading,
    ProfileEntry,
    SASchedule,
    Step,
    is_dc,
)
from .timers import EvccTimers
from .v2gtp import ISO20_NAMESPACE, PayloadType

__all__ = ["Contract", "EvccConfig", "EvccSession", "EvccTimers", "OemCredentials", "Send", "SessionResult"]

log = logging.getLogger(__name__)

Body = dict[str, Any]
_SESSION_OK = ("OK_NewSessionEstablished", "OK_OldSessionJoined")
_EVSE_STOP_CODES = frozenset({"EVSE_Shutdown", "EVSE_UtilityInterruptEvent", "EVSE_EmergencyShutdown",
                              "EVSE_Malfunction"})


class EvccSession(EvccPnc):
    """The EV side of one communication session (the Plug & Charge steps of DIN/-2: evcc_pnc.py)."""

    def __init__(self, config: EvccConfig | None = None, ev: EVModel | None = None) -> None:
        self.config = config or EvccConfig()
        self.ev = ev or EVModel()
        self.timers = self.config.timers
        self.protocol: str | None = None
        self.msgs: Iso2Messages | None = None
        self.session_id = NEW_SESSION_ID
        self.payment = self.config.payment
        self.challenge: bytes | None = None
        self.contract: Contract | None = self.config.contract
        self.installed: Contract | None = None  # a contract installed in this session (CertificateInstallation)
        self.rx_header: dict[str, Any] = {}
        self.evse_id: str | None = None
        self.waiting: Step | None = None  # the step whose response we wait for; None = handshake
        self.mode = self.config.dc_mode if self.config.dc else self.config.ac_mode
        self.iso20: Evcc20 | None = None  # the -20 engine, once negotiated
        self.schedule: SASchedule | None = None
        self.evse_params: ACEVSEParameters | DCEVSEParameters | None = None
        self.ac_limit: float | None = None
        self.dc_limits: tuple[float | None, float | None] = (None, None)  # (max current, max power)
        self.precharge_target = 0.0
        self.progress = "Start"
        self.renegotiating = False
        self.charge_loops = 0
        self.welding_requests = 0
        self.pending_details: list[int] = []
        self.service_parameters: dict[int, Body] = {}
        self.charge_service_id = 1
        self.messages = 0
        self.result: SessionResult | None = None
        self._schema_ids: dict[int, Any] = {}
        self._deadlines: dict[str, float] = {}  # timer label -> monotonic deadline
        self._timeout_label = ""
        self._last_tick: float | None = None
        self._power = 0.0  # the power the last charge-loop response set
        self._loop_status = EVSEStatus()
        self._handlers: dict[Step, Callable[[Body, float], Send | SessionResult]] = {
            Step.SESSION_SETUP: self._after_session_setup, Step.SERVICE_DISCOVERY: self._after_service_discovery,
            Step.SERVICE_DETAIL: self._after_service_detail, Step.PAYMENT_SERVICE_SELECTION: self._after_payment,
            Step.AUTHORIZATION: self._after_authorization, Step.CHARGE_PARAMETER_DISCOVERY: self._after_cpd,
            Step.PAYMENT_DETAILS: self._after_payment_details,
            Step.CERTIFICATE_INSTALLATION: self._after_certificate_installation,
            Step.CERTIFICATE_UPDATE: self._after_certificate_update,
            Step.CABLE_CHECK: self._after_cable_check, Step.PRE_CHARGE: self._after_precharge,
            Step.POWER_DELIVERY: self._after_power_delivery, Step.CHARGING_STATUS: self._after_charging_status,
            Step.CURRENT_DEMAND: self._after_current_demand, Step.METERING_RECEIPT: self._after_metering_receipt,
            Step.WELDING_DETECTION: self._after_welding_detection, Step.SESSION_STOP: self._after_session_stop,
        }

    # ----- what the shell reads -----

    @property
    def rx_namespace(self) -> str:
        """EXI namespace of the next response (-20: its CommonMessages; see rx_namespace_for)."""
        if self.iso20 is not None:
            return "iso20"
        return self.protocol or "appHand"

    def rx_namespace_for(self, payload_type: int) -> str | None:
        """The EXI namespace of a response that came with V2GTP `payload_type`; None if the protocol does not allow
        it (the shell then ends the session: a V2GTP error)."""
        if self.iso20 is not None:
            ns = ISO20_NAMESPACE.get(payload_type)
            return ns if ns in ("iso20", "iso20_ac", "iso20_dc") else None
        return self.rx_namespace if payload_type == PayloadType.EXI else None

    @property
    def label(self) -> str:
        """Session label for log lines."""
        return f"EVCC session {self.session_id}"

    # ----- events from the shell -----

    def start(self, now: float) -> Send:
        """The connection is up: the supportedAppProtocolReq, and the communication setup timer starts."""
        doc, self._schema_ids = build_request(protocols(self.config.protocols, self.config.dc))
        self._start_timer("V2G_EVCC_CommunicationSetup_Timeout", self.timers.communication_setup, now)
        return self._send_doc(now, doc, "appHand", "supportedAppProtocolReq", None,
                              self.timers.message_timeout("", None), "supportedAppProtocolRes")

    def handle(self, doc: dict[str, Any], now: float) -> Send | SessionResult:
        """Process one decoded response."""
        if self.result is not None:
            raise RuntimeError("session already ended")
        self.messages += 1
        if self.waiting is None and self.protocol is None:
            return self._after_handshake(doc, now)
        if self.iso20 is not None:
            return self.iso20.handle(doc, now)
        assert self.msgs is not None and self.waiting is not None
        try:
            sid, name, body = split(doc)
        except MessageError as e:
            return self._fail(f"unusable response: {e}")
        expected = self.msgs.res_name(self.waiting)
        if name != expected:
            return self._fail(f"expected {expected}, got {name}")
        code = str(body.get("ResponseCode", ""))
        if code.startswith("FAILED"):
            return self._fail(f"SECC answered {name} with {code}", code)
        if self.waiting is Step.SESSION_SETUP:
            if code not in _SESSION_OK:
                return self._fail(f"SECC answered {name} with {code}", code)
            self.session_id = sid
        elif not same_session(sid, self.session_id):
            return self._fail(f"{name} carries SessionID {sid}, ours is {self.session_id}")
        self.rx_header = doc["V2G_Message"].get("Header") or {}
        try:
            return self._handlers[self.waiting](body, now)
        except (KeyError, TypeError, ValueError) as e:
            return self._fail(f"cannot process {name}: {type(e).__name__} {e}")

    def on_timeout(self, now: float) -> SessionResult:
        """The wait for a response expired."""
        return self._fail(f"{self._timeout_label} expired")

    def on_closed(self, reason: str) -> SessionResult:
        """The connection ended (peer closed, framing or EXI error)."""
        return self.result or self._fail(reason)

    # ----- helpers -----

    def _finish(self, ok: bool, reason: str, code: str | None = None, paused: bool | None = None) -> SessionResult:
        """Build and log the result."""
        if paused is None:
            paused = ok and self.config.stop == "Pause" and self.protocol == "iso2"
        extra: dict[str, Any] = self.iso20.result_fields() if self.iso20 is not None else {}
        self.result = SessionResult(ok=ok, reason=reason, protocol=self.protocol, session_id=self.session_id,
                                    evse_id=self.evse_id, response_code=code, paused=paused,
                                    charge_loops=self.charge_loops, soc=round(self.ev.soc, 2),
                                    energy_wh=round(self.ev.energy_wh, 1),
                                    max_step_wh=round(self.ev.max_step_wh, 1), messages=self.messages,
                                    installed_contract=self.installed, **extra)
        (log.info if ok else log.warning)("%s ended: %s", self.label, reason)
        return self.result

    def _fail(self, reason: str, code: str | None = None) -> SessionResult:
        """End the session unsuccessfully."""
        return self._finish(False, reason, code)

    def _send_doc(self, now: float, doc: dict[str, Any], ns: str, name: str, step: Step | None, msg_timeout: float,
                  res_name: str, delay: float = 0.0) -> Send:
        """A Send whose timeout is the nearest of the message timeout and the running sequence timers."""
        sent_at = now + delay
        timeout, label = msg_timeout, f"V2G_EVCC_Msg_Timeout ({msg_timeout:g} s) waiting for {res_name}"
        for timer, deadline in self._deadlines.items():
            left = deadline - sent_at
            if left < timeout:
                timeout, label = max(0.0, left), timer
        self._timeout_label = label
        return Send(doc, ns, name, timeout, delay, step)

    def send_document(self, now: float, doc: dict[str, Any], ns: str, step: Step, delay: float = 0.0,
                      payload_type: int = PayloadType.EXI) -> Send | SessionResult:
        """Send a whole request document (the -20 engine's), unless a sequence timer has already run out."""
        for timer, deadline in self._deadlines.items():
            if deadline <= now + delay:
                return self._fail(f"{timer} expired")
        self.waiting = step
        name = next(iter(doc))
        send = self._send_doc(now, doc, ns, name, step, self.timers.message_timeout("iso20", step),
                              name[:-3] + "Res", delay)
        return Send(send.doc, send.ns, send.name, send.timeout, send.delay, send.step, payload_type)

    # what protocol engines (Evcc20) use of the session
    fail = _fail
    finish = _finish

    def start_timer(self, name: str, seconds: float, now: float) -> None:
        """Start a sequence timer unless it already runs."""
        self._start_timer(name, seconds, now)

    def stop_timer(self, name: str) -> None:
        """Stop a sequence timer."""
        self._stop_timer(name)

    def _send(self, now: float, step: Step, body: Body, delay: float = 0.0,
              signature: dict[str, Any] | None = None) -> Send | SessionResult:
        """Send the request of `step`, unless a sequence timer has already run out."""
        assert self.msgs is not None and self.protocol is not None
        for timer, deadline in self._deadlines.items():
            if deadline <= now + delay:
                return self._fail(f"{timer} expired")
        self.waiting = step
        doc = (self.msgs.request(self.session_id, step, body, signature) if signature is not None
               else self.msgs.request(self.session_id, step, body))
        return self._send_doc(now, doc, self.msgs.ns,
                              self.msgs.req_name(step), step, self.timers.message_timeout(self.protocol, step),
                              self.msgs.res_name(step), delay)

    def _start_timer(self, name: str, seconds: float, now: float) -> None:
        """Start a sequence timer unless it already runs."""
        self._deadlines.setdefault(f"{name} ({seconds:g} s)", now + seconds)

    def _stop_timer(self, name: str) -> None:
        """Stop a sequence timer."""
        for key in [k for k in self._deadlines if k.startswith(name)]:
            del self._deadlines[key]

    def _take(self, now: float, power_w: float) -> None:
        """Energy since the previous response at the power that response set, then the new power from now on (the
        EVSE's meter integrates the same way: each response's power holds until the next)."""
        self.ev.charge(self._power, self._tick(now))
        self._power = power_w

    def _tick(self, now: float) -> float:
        """Seconds since the previous charge-loop response."""
        dt = 0.0 if self._last_tick is None else now - self._last_tick
        self._last_tick = now
        return dt

    # ----- response handlers: each returns the next request or the result -----

    def _after_handshake(self, doc: dict[str, Any], now: float) -> Send | SessionResult:
        """supportedAppProtocolRes -> SessionSetupReq (with a paused session's SessionID to resume it)."""
        try:
            chosen, code = read_response(doc, self._schema_ids)
        except NegotiationError as e:
            return self._fail(f"protocol negotiation failed: {e}")
        log.info("EVCC negotiated %s (%s)", chosen.title, code)
        if chosen.kind == "iso20":
            self.protocol = "iso20"
            self.iso20 = Evcc20(self)
            return self.iso20.start(now)
        self.protocol = chosen.key
        self.msgs = for_protocol(chosen.key)
        if self.config.resume_session_id:
            self.session_id = self.config.resume_session_id
        return self._send(now, Step.SESSION_SETUP, self.msgs.session_setup_req(self.config.evcc_id))

    def _after_session_setup(self, body: Body, now: float) -> Send | SessionResult:
        """SessionSetupRes -> ServiceDiscoveryReq."""
        assert self.msgs is not None
        self._stop_timer("V2G_EVCC_CommunicationSetup_Timeout")
        self.evse_id = self.msgs.read_session_setup_res(body)
        code = body["ResponseCode"]
        if self.config.resume_session_id and code != "OK_OldSessionJoined":
            log.warning("%s: asked to resume %s, SECC answered %s", self.label, self.config.resume_session_id, code)
        log.info("%s: %s with EVSE %s", self.label, code, self.evse_id)
        return self._send(now, Step.SERVICE_DISCOVERY, self.msgs.service_discovery_req())

    def _after_service_discovery(self, body: Body, now: float) -> Send | SessionResult:
        """ServiceDiscoveryRes: check payment option and energy mode -> ServiceDetailReq or payment selection."""
        assert self.msgs is not None
        options, modes, self.charge_service_id, services = self.msgs.read_service_discovery_res(body)
        self.payment = self.config.payment
        if self.payment == "Contract" and "Contract" not in options and "ExternalPayment" in options:
            log.info("EVCC: the SECC offers no Plug & Charge (%s); falling back to EIM", ", ".join(options))
            self.payment = "ExternalPayment"
        if self.payment not in options:
            return self._fail(f"SECC does not offer {self.payment} (offers {', '.join(options)})")
        if self.mode not in modes:
            same_kind = [m for m in modes if is_dc(m) == self.config.dc and
                         (m in AC_MODES or is_dc(m))]
            if not same_kind:
                return self._fail(f"SECC offers no {self.config.energy.upper()} energy transfer mode "
                                  f"({', '.join(modes)})")
            self.mode = same_kind[0]
        if self.config.service_details and self.protocol == "iso2":
            self.pending_details = [s.service_id for s in services]
            if self.pending_details:
                return self._send(now, Step.SERVICE_DETAIL, self.msgs.service_detail_req(self.pending_details.pop(0)))
        return self._payment_selection(now)

    def _payment_selection(self, now: float) -> Send | SessionResult:
        """PaymentServiceSelectionReq / ServicePaymentSelectionReq for the charge service."""
        assert self.msgs is not None
        return self._send(now, Step.PAYMENT_SERVICE_SELECTION,
                          self.msgs.payment_selection_req(self.payment, [self.charge_service_id]))

    def _after_service_detail(self, body: Body, now: float) -> Send | SessionResult:
        """ServiceDetailRes -> the next ServiceDetailReq or the payment selection."""
        assert self.msgs is not None
        self.service_parameters[int(body["ServiceID"])] = body.get("ServiceParameterList", {})
        if self.pending_details:
            return self._send(now, Step.SERVICE_DETAIL, self.msgs.service_detail_req(self.pending_details.pop(0)))
        return self._payment_selection(now)

    def _after_payment(self, body: Body, now: float) -> Send | SessionResult:
        """Payment selected -> PaymentDetailsReq (Plug & Charge) or AuthorizationReq / ContractAuthenticationReq."""
        assert self.msgs is not None
        if self.payment == "Contract":
            return self._contract_request(now)
        self._start_timer("V2G_EVCC_Ongoing_Timeout", self.timers.ongoing, now)
        return self._send(now, Step.AUTHORIZATION, self.msgs.authorization_req())

    def _after_authorization(self, body: Body, now: float) -> Send | SessionResult:
        """Repeat while Ongoing; when Finished -> ChargeParameterDiscoveryReq."""
        assert self.msgs is not None
        if body["EVSEProcessing"] != "Finished":
            if self.payment == "Contract":
                return self._signed_authorization(now, self.config.ongoing_interval)
            return self._send(now, Step.AUTHORIZATION, self.msgs.authorization_req(), self.config.ongoing_interval)
        self._stop_timer("V2G_EVCC_Ongoing_Timeout")
        return self._charge_parameter_discovery(now)

    def _ev_parameters(self) -> EVChargeParameters:
        """What the EV model asks for."""
        ev = self.ev
        if is_dc(self.mode):
            return EVChargeParameters(mode=self.mode, departure_time=ev.departure_time, status=ev.dc_status(),
                                      max_current=ev.dc_max_current, max_voltage=ev.dc_max_voltage,
                                      max_power=ev.dc_max_power, energy_capacity=ev.capacity_wh,
                                      energy_request=ev.requested_energy, full_soc=ev.full_soc, bulk_soc=ev.bulk_soc)
        return EVChargeParameters(mode=self.mode, departure_time=ev.departure_time,
                                  energy_amount=ev.requested_energy, max_voltage=ev.ac_max_voltage,
                                  max_current=ev.ac_max_current, min_current=ev.ac_min_current)

    def _charge_parameter_discovery(self, now: float, delay: float = 0.0) -> Send | SessionResult:
        """ChargeParameterDiscoveryReq (the ongoing timer runs until Finished)."""
        assert self.msgs is not None
        self._start_timer("V2G_EVCC_Ongoing_Timeout", self.timers.ongoing, now)
        return self._send(now, Step.CHARGE_PARAMETER_DISCOVERY, self.msgs.cpd_req(self._ev_parameters()), delay)

    def _after_cpd(self, body: Body, now: float) -> Send | SessionResult:
        """ChargeParameterDiscoveryRes: repeat while Ongoing; take the first schedule; DC -> CableCheck, AC -> start."""
        assert self.msgs is not None
        processing, schedules, params, _ = self.msgs.read_cpd_res(body)
        if processing != "Finished":
            return self._charge_parameter_discovery(now, self.config.ongoing_interval)
        self._stop_timer("V2G_EVCC_Ongoing_Timeout")
        if not schedules:
            return self._fail("ChargeParameterDiscoveryRes is Finished but has no SAScheduleList")
        if params is None or isinstance(params, DCEVSEParameters) != is_dc(self.mode):
            return self._fail("ChargeParameterDiscoveryRes has no EVSE charge parameters for our energy mode")
        self.schedule, self.evse_params = schedules[0], params
        if isinstance(params, DCEVSEParameters):
            self.dc_limits = (params.max_current, params.max_power)
        else:
            self.ac_limit = params.max_current
        if self.renegotiating or not is_dc(self.mode):
            self.renegotiating = False
            return self._power_delivery(now, "Start")
        self._start_timer("V2G_EVCC_CableCheck_Timeout", self.timers.cable_check, now)
        return self._send(now, Step.CABLE_CHECK, self.msgs.ev_status_req(self.ev.dc_status()))

    def _after_cable_check(self, body: Body, now: float) -> Send | SessionResult:
        """Repeat while Ongoing; then PreChargeReq to the pack voltage (the precharge timer starts)."""
        assert self.msgs is not None
        if body["EVSEProcessing"] != "Finished":
            return self._send(now, Step.CABLE_CHECK, self.msgs.ev_status_req(self.ev.dc_status()),
                              self.config.ongoing_interval)
        self._stop_timer("V2G_EVCC_CableCheck_Timeout")
        self._start_timer("V2G_EVCC_PreCharge_Timeout", self.timers.precharge, now)
        self.precharge_target = round(self.ev.pack_voltage, 1)
        return self._precharge(now)

    def _precharge(self, now: float, delay: float = 0.0) -> Send | SessionResult:
        """PreChargeReq at the pack voltage with a small current."""
        assert self.msgs is not None
        return self._send(now, Step.PRE_CHARGE, self.msgs.precharge_req(self.ev.dc_status(), self.precharge_target,
                                                                         2.0), delay)

    def _after_precharge(self, body: Body, now: float) -> Send | SessionResult:
        """Repeat until the EVSE's voltage is within tolerance of the target; then PowerDeliveryReq Start."""
        assert self.msgs is not None
        present = self.msgs.read_present_voltage(body)
        if abs(present - self.precharge_target) > self.config.precharge_tolerance:
            return self._precharge(now, self.config.ongoing_interval)
        self._stop_timer("V2G_EVCC_PreCharge_Timeout")
        return self._power_delivery(now, "Start")

    def _power_delivery(self, now: float, progress: str) -> Send | SessionResult:
        """PowerDeliveryReq with ChargeProgress Start / Stop / Renegotiate (DIN: ReadyToChargeState)."""
        assert self.msgs is not None and self.schedule is not None
        self.progress = progress
        dc = is_dc(self.mode)
        profile = None
        if progress == "Start" and self.protocol == "iso2":
            ev_max = self.ev.dc_max_power if dc else self.ev.ac_power(self.ev.ac_max_current, 230.0)
            profile = _fit_profile([ProfileEntry(e.start, min(e.pmax, ev_max)) for e in self.schedule.entries])
        status = self.ev.dc_status() if dc else None
        body = self.msgs.power_delivery_req(progress, self.schedule.tuple_id, profile, status,
                                            complete=progress == "Stop" and self.ev.full,
                                            bulk_complete=False if dc else None)
        return self._send(now, Step.POWER_DELIVERY, body)

    def _after_power_delivery(self, body: Body, now: float) -> Send | SessionResult:
        """Start -> charge loop; Stop -> WeldingDetection (DC) or SessionStop; Renegotiate -> ChargeParameter..."""
        assert self.msgs is not None
        if self.progress == "Start":
            if self._last_tick is None:  # after a renegotiation the energy keeps flowing at the last power
                self._tick(now)
            return self._charge_loop(now, 0.0)
        if self.progress == "Renegotiate":
            self.renegotiating = True
            return self._charge_parameter_discovery(now)
        if self._last_tick is not None:
            self._take(now, 0.0)  # the current flowed until the EVSE confirmed the stop (contactors open)
        if is_dc(self.mode) and self.config.welding_detection:
            return self._send(now, Step.WELDING_DETECTION, self.msgs.ev_status_req(self.ev.dc_status(ready=False)))
        return self._session_stop(now)

    def _charge_loop(self, now: float, delay: float) -> Send | SessionResult:
        """The next ChargingStatusReq (AC) or CurrentDemandReq (DC)."""
        assert self.msgs is not None
        if not is_dc(self.mode):
            return self._send(now, Step.CHARGING_STATUS, self.msgs.charging_status_req(), delay)
        voltage, current = self.ev.dc_request(*self.dc_limits)
        power = voltage * current
        demand = CurrentDemand(status=self.ev.dc_status(), target_current=current, target_voltage=voltage,
                               max_voltage=self.ev.dc_max_voltage, max_current=self.ev.dc_max_current,
                               max_power=self.ev.dc_max_power, bulk_complete=self.ev.soc >= self.ev.bulk_soc,
                               complete=self.ev.full,
                               remaining_time_full=self.ev.remaining_time(power, self.ev.full_soc),
                               remaining_time_bulk=self.ev.remaining_time(power, self.ev.bulk_soc))
        return self._send(now, Step.CURRENT_DEMAND, self.msgs.current_demand_req(demand), delay)

    def _next_in_loop(self, now: float, status: EVSEStatus) -> Send | SessionResult:
        """Continue the charge loop, or stop/renegotiate as the EV or the EVSE wants."""
        loops = self.config.loops
        if status.notification == "StopCharging" or status.status_code in _EVSE_STOP_CODES:
            log.info("%s: EVSE asks to stop (%s, %s)", self.label, status.notification, status.status_code)
            return self._power_delivery(now, "Stop")
        if (loops and self.charge_loops >= loops) or self.ev.full:
            return self._power_delivery(now, "Stop")
        if status.notification == "ReNegotiation" and self.protocol == "iso2":
            return self._power_delivery(now, "Renegotiate")
        return self._charge_loop(now, self.config.loop_interval)

    def _after_charging_status(self, body: Body, now: float) -> Send | SessionResult:
        """ChargingStatusRes: charge the battery for the elapsed time; MeteringReceipt if required."""
        assert self.msgs is not None
        max_current, meter, receipt, status = self.msgs.read_charging_status_res(body)
        if max_current is not None:
            self.ac_limit = max_current
        nominal = self.evse_params.nominal_voltage if isinstance(self.evse_params, ACEVSEParameters) else 230.0
        self._take(now, self.ev.ac_power(self.ac_limit, nominal))
        self.charge_loops += 1
        if receipt and meter is not None and self.protocol == "iso2":
            self._loop_status = status
            return self._metering_receipt(now, meter)
        return self._next_in_loop(now, status)

    def _after_current_demand(self, body: Body, now: float) -> Send | SessionResult:
        """CurrentDemandRes: charge with the EVSE's present output; MeteringReceipt if required."""
        assert self.msgs is not None
        out, meter, receipt = self.msgs.read_current_demand_res(body)
        status = self.msgs.read_evse_status(body)
        # a limit of 0 is a limit (the CSMS's plan gives a car nothing for now): only an absent one keeps the last
        self.dc_limits = (self.dc_limits[0] if out.max_current is None else out.max_current,
                          self.dc_limits[1] if out.max_power is None else out.max_power)
        self._take(now, out.voltage * out.current)
        self.charge_loops += 1
        if receipt and meter is not None and self.protocol == "iso2":
            self._loop_status = status
            return self._metering_receipt(now, meter)
        return self._next_in_loop(now, status)

    def _metering_receipt(self, now: float, meter: MeterReading) -> Send | SessionResult:
        """MeteringReceiptReq; with Plug & Charge signed with the contract key over the request (Id)."""
        assert self.msgs is not None
        tuple_id = self.schedule.tuple_id if self.schedule else None
        if self.payment == "Contract" and self.contract is not None:
            req = self.msgs.metering_receipt_req(self.session_id, tuple_id, meter, ref_id="ID2")
            signature = xmldsig.sign(self.msgs.ns, [("ID2", "MeteringReceiptReq", req)], self.contract.key)
            return self._send(now, Step.METERING_RECEIPT, req, signature=signature)
        return self._send(now, Step.METERING_RECEIPT, self.msgs.metering_receipt_req(self.session_id, tuple_id, meter))

    def _after_metering_receipt(self, body: Body, now: float) -> Send | SessionResult:
        """MeteringReceiptRes -> back to the charge loop."""
        return self._next_in_loop(now, self._loop_status)

    def _after_welding_detection(self, body: Body, now: float) -> Send | SessionResult:
        """Repeat until the output voltage is low (or the attempts are used up) -> SessionStopReq."""
        assert self.msgs is not None
        self.welding_requests += 1
        voltage = self.msgs.read_present_voltage(body)
        if voltage > 20.0 and self.welding_requests < self.config.max_welding_requests:
            return self._send(now, Step.WELDING_DETECTION, self.msgs.ev_status_req(self.ev.dc_status(ready=False)),
                              self.config.ongoing_interval)
        return self._session_stop(now)

    def _session_stop(self, now: float) -> Send | SessionResult:
        """SessionStopReq (Terminate, or Pause in -2)."""
        assert self.msgs is not None
        kind = self.config.stop if self.protocol == "iso2" else "Terminate"
        return self._send(now, Step.SESSION_STOP, self.msgs.session_stop_req(kind))

    def _after_session_stop(self, body: Body, now: float) -> Send | SessionResult:
        """SessionStopRes OK: the session ended as planned."""
        kind = self.config.stop if self.protocol == "iso2" else "Terminate"
        return self._finish(True, f"SessionStopRes {body['ResponseCode']} ({kind})", body["ResponseCode"])


MAX_PROFILE_ENTRIES = 24
"""ISO 15118-2 ChargingProfile: at most 24 ProfileEntry elements (the XSD's maxOccurs)."""


def _fit_profile(entries: list[ProfileEntry]) -> list[ProfileEntry]:
    """The EV's ChargingProfile for a PMaxSchedule of any length: equal neighbours merged, and beyond 24 entries
    the 24th holds the lowest power of all that follow it (the profile stays within the schedule's limits)."""
    merged: list[ProfileEntry] = []
    for e in entries:
        if not merged or merged[-1].max_power != e.max_power:
            merged.append(e)
    if len(merged) <= MAX_PROFILE_ENTRIES:
        return merged
    tail = merged[MAX_PROFILE_ENTRIES - 1:]
    return [*merged[:MAX_PROFILE_ENTRIES - 1], ProfileEntry(tail[0].start, min(e.max_power for e in tail))]
