"""The EVCC state machine of ISO 15118-20 (AC, DC, AC_BPT, DC_BPT; scheduled and dynamic control), sans-I/O.

An EvccSession hands every response to `Evcc20.handle()` once supportedAppProtocol chose -20; time is passed in as
in the -2 machine and the session's sequence timers apply (communication setup, ongoing, cable check, precharge).
The EV selects the service of its energy type (falling back from BPT to the plain service when the SECC has no
BPT), the parameter set of its control mode, follows the schedule tuple it chose (scheduled) or the SECC's target
in every charge-loop answer (dynamic), and reacts to the SECC's notifications: Terminate and Pause end the energy
transfer (then SessionStop Terminate or Pause), ScheduleRenegotiation renegotiates, ServiceRenegotiation stops the
energy transfer and selects a service again (SessionStop ServiceRenegotiation -> ServiceDiscovery, when the SECC
announced it supports that; else the EV terminates), MeteringConfirmation gets the meter reading confirmed. The
charge loops and the power decisions are in evcc20_power.

Plug & Charge: with a -20 contract (`EvccConfig.contract20`) the EV answers the GenChallenge with the signed
PnC_AReqAuthorizationMode (pnc20) and signs the SignedMeteringData it confirms; without one but with its OEM
provisioning credentials (`oem20`) it first installs a contract (CertificateInstallation, the sealed key opened with
its OEM key) and keeps it in the result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, x448

from ..pki.algorithms import PrivateKey
from . import pnc20
from .evcc20_power import EvPower20
from .messages import iso20
from .messages.envelope import same_session
from .messages.iso20_ac import ac_cpd_req, read_ac_cpd_res
from .messages.iso20_dc import dc_cpd_req, precharge_req, read_dc_cpd_res, read_voltage, welding_detection_req
from .messages.iso20_schedule import ev_power_profile, read_schedule_exchange_res, schedule_exchange_req
from .messages.iso20_types import NEW_SESSION_ID20, REQUESTS20, Body, Iso20Error, message, response_name, split20
from .model20 import (
    ControlMode,
    DynamicSchedule,
    EnergyService,
    EVACLimits,
    EVDCLimits,
    EVNeeds,
    ParameterSet,
    PowerEntry,
    ScheduleTuple,
)
from .v2gtp import ISO20_STREAM, PayloadType

if TYPE_CHECKING:  # the session owns this engine; imported for the types only (no cycle at run time)
    from .evcc import EvccSession, Send, SessionResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Contract20:
    """The EV's -20 contract: eMAID, the contract certificate and its sub-CAs (leaf first), the key (secp521r1 or
    Ed448)."""

    emaid: str
    chain: list[x509.Certificate]
    key: PrivateKey


@dataclass(frozen=True)
class OemCredentials20:
    """The EV's OEM provisioning chain (leaf first) and key (with an Ed448 certificate also its X448 key), and the
    V2G roots it checks the CPS chain against."""

    chain: list[x509.Certificate]
    key: PrivateKey
    x448_key: x448.X448PrivateKey | None = None
    v2g_roots: list[x509.Certificate] = field(default_factory=list)

_SESSION_OK = ("OK_NewSessionEstablished", "OK_OldSessionJoined")
_PLAIN = {EnergyService.AC_BPT: EnergyService.AC, EnergyService.DC_BPT: EnergyService.DC}
Step20 = Callable[[Body, float], "Send | SessionResult"]


class Evcc20(EvPower20):
    """The -20 message flow of one EvccSession (the session keeps the timers, the result and the EV model)."""

    def __init__(self, session: EvccSession) -> None:
        self.s = session
        self.config = session.config
        self.ev = session.ev
        self.timers = session.timers
        self.service = EnergyService.named(self.config.energy)
        self.mode = ControlMode.named(self.config.control)
        self.waiting = ""  # the response we wait for
        self.refused: str | None = None  # a refused authorization's code: the session ends after SessionStop
        self.parameter_set: ParameterSet | None = None
        self.tuple: ScheduleTuple | None = None
        self.plan: DynamicSchedule | None = None
        self.renegotiating = False
        self.pausing = False  # the SECC asked for a pause
        self.precharge_target = 0.0
        self.precharged = False
        self.welding_requests = 0
        self.progress = "Start"
        self.metering_confirmations = 0
        self.renegotiations = 0
        self.renegotiation_supported = False  # ServiceDiscoveryRes ServiceRenegotiationSupported
        self.changing_service = False  # the SECC asked for a service renegotiation: SessionStop, then ServiceDiscovery
        self.services: list[str] = []  # the services selected, in order
        self.head: Body = {}
        self.challenge: bytes | None = None
        self.contract: Contract20 | None = self.config.contract20
        self.installed: Contract20 | None = None
        self.auth = "EIM"
        self._handlers: dict[str, Step20] = {
            "SessionSetupRes": self._session_setup_res, "AuthorizationSetupRes": self._authorization_setup_res,
            "AuthorizationRes": self._authorization_res, "ServiceDiscoveryRes": self._service_discovery_res,
            "ServiceDetailRes": self._service_detail_res, "ServiceSelectionRes": self._service_selection_res,
            "AC_ChargeParameterDiscoveryRes": self._cpd_res, "DC_ChargeParameterDiscoveryRes": self._cpd_res,
            "ScheduleExchangeRes": self._schedule_exchange_res, "DC_CableCheckRes": self._cable_check_res,
            "DC_PreChargeRes": self._precharge_res, "PowerDeliveryRes": self._power_delivery_res,
            "AC_ChargeLoopRes": self._ac_loop_res, "DC_ChargeLoopRes": self._dc_loop_res,
            "MeteringConfirmationRes": self._metering_confirmation_res,
            "DC_WeldingDetectionRes": self._welding_detection_res, "SessionStopRes": self._session_stop_res,
            "CertificateInstallationRes": self._certificate_installation_res,
        }
        super().__init__()

    @property
    def bpt(self) -> bool:
        """Whether the selected service transfers power both ways."""
        return self.service.bpt

    @property
    def dc(self) -> bool:
        """Whether the selected service is DC."""
        return self.service.dc

    def result_fields(self) -> dict[str, Any]:
        """The -20 facts of the SessionResult."""
        return {"exported_wh": round(self.ev.discharged_wh, 1), "service": self.service.name,
                "control_mode": self.mode.name, "metering_confirmations": self.metering_confirmations,
                "renegotiations": self.renegotiations, "installed_contract20": self.installed,
                "services": tuple(self.services)}

    # ----- sending and receiving -----

    def send(self, now: float, name: str, body: Body, delay: float = 0.0, signature: Body | None = None,
             payload_type: int | None = None) -> Send | SessionResult:
        """Send request `name` on its message stream (or the given side stream)."""
        step, ns = REQUESTS20[name]
        self.waiting = response_name(name)
        doc = message(name, self.s.session_id, body, signature)
        return self.s.send_document(now, doc, ns, step, delay, payload_type or ISO20_STREAM[ns])

    def start(self, now: float) -> Send | SessionResult:
        """After the handshake: SessionSetupReq (with a paused session's SessionID to resume it)."""
        self.s.session_id = self.config.resume_session_id or NEW_SESSION_ID20
        return self.send(now, "SessionSetupReq", iso20.session_setup_req(self.config.evcc_id))

    def handle(self, doc: dict[str, Any], now: float) -> Send | SessionResult:
        """Process one decoded response."""
        try:
            sid, name, body, head = split20(doc)
        except (Iso20Error, KeyError, TypeError) as e:
            return self.s.fail(f"unusable response: {e}")
        if name != self.waiting:
            return self.s.fail(f"expected {self.waiting}, got {name}")
        code = str(body.get("ResponseCode", ""))
        if code.startswith("FAILED"):
            return self.s.fail(f"SECC answered {name} with {code}", code)
        if name == "SessionSetupRes":
            if code not in _SESSION_OK:
                return self.s.fail(f"SECC answered {name} with {code}", code)
            self.s.session_id = sid
        elif not same_session(sid, self.s.session_id):
            return self.s.fail(f"{name} carries SessionID {sid}, ours is {self.s.session_id}")
        self.head = head
        try:
            return self._handlers[name](body, now)
        except (KeyError, TypeError, ValueError) as e:
            return self.s.fail(f"cannot process {name}: {type(e).__name__} {e}")

    # ----- setup, authorization, services -----

    def _session_setup_res(self, body: Body, now: float) -> Send | SessionResult:
        """SessionSetupRes -> AuthorizationSetupReq."""
        self.s.stop_timer("V2G_EVCC_CommunicationSetup_Timeout")
        self.s.evse_id = str(body["EVSEID"])
        code = body["ResponseCode"]
        if self.config.resume_session_id and code != "OK_OldSessionJoined":
            log.warning("EVCC: asked to resume %s, SECC answered %s", self.config.resume_session_id, code)
        log.info("%s: %s with EVSE %s", self.s.label, code, self.s.evse_id)
        return self.send(now, "AuthorizationSetupReq", {})

    def _authorization_setup_res(self, body: Body, now: float) -> Send | SessionResult:
        """AuthorizationSetupRes: EIM, or Plug & Charge when the SECC offers it (installing a contract first when
        the EV has none but its OEM provisioning credentials)."""
        services, installation, self.challenge = iso20.read_authorization_setup_res(body)
        want = "PnC" if self.config.payment == "Contract" else "EIM"
        if want == "PnC" and ("PnC" not in services or self.challenge is None) and "EIM" in services:
            log.info("EVCC: the SECC offers no Plug & Charge (%s); falling back to EIM", ", ".join(services))
            want = "EIM"
        if want not in services:
            return self.s.fail(f"SECC does not offer {want} (offers {', '.join(services)})")
        self.auth = want
        if want == "PnC" and self.contract is None:
            oem = self.config.oem20
            if oem is None or not installation:
                return self.s.fail("Plug & Charge without a -20 contract and no certificate installation to get one")
            doc = pnc20.installation_request(self.s.session_id, oem.chain, oem.key, oem.v2g_roots)
            return self.send_whole(now, doc)
        return self._authorize(now)

    def send_whole(self, now: float, doc: dict[str, Any], delay: float = 0.0) -> Send | SessionResult:
        """Send a request document built whole (with its own header, e.g. signed by pnc20)."""
        name = next(iter(doc))
        step, ns = REQUESTS20[name]
        self.waiting = response_name(name)
        return self.s.send_document(now, doc, ns, step, delay, ISO20_STREAM[ns])

    def _certificate_installation_res(self, body: Body, now: float) -> Send | SessionResult:
        """CertificateInstallationRes: the CPS chain and signature checked, the contract key opened -> PnC."""
        oem = self.config.oem20
        assert oem is not None
        try:
            got = pnc20.accept_installation({"CertificateInstallationRes": {"Header": self.head, **body}},
                                            oem.chain[0], oem.key, oem.x448_key, oem.v2g_roots)
        except pnc20.Pnc20Error as e:
            return self.s.fail(f"certificate installation refused: {e}", e.code)
        chain = [x509.load_der_x509_certificate(c) for c in got.chain]
        self.contract = self.installed = Contract20(got.emaid, chain, got.key)
        log.info("EVCC: contract %s installed", got.emaid)
        return self._authorize(now)

    def _authorize(self, now: float, delay: float = 0.0) -> Send | SessionResult:
        """AuthorizationReq: EIM, or PnC signed with the contract key over the GenChallenge (the ongoing timer runs
        until Finished)."""
        self.s.start_timer("V2G_EVCC_Ongoing_Timeout", self.timers.ongoing, now)
        if self.auth == "EIM":
            return self.send(now, "AuthorizationReq", iso20.authorization_req(), delay)
        assert self.contract is not None and self.challenge is not None
        challenge, key = self.challenge, self.contract.key
        if self.config.pnc_fault == "tampered-challenge":
            challenge = bytes(b ^ 0xFF for b in challenge)
        elif self.config.pnc_fault == "bad-signature":
            key = ec.generate_private_key(ec.SECP521R1()) if isinstance(key, ec.EllipticCurvePrivateKey) else \
                ed448.Ed448PrivateKey.generate()
        mode, signature = pnc20.pnc_authorization(challenge, self.contract.chain, key)
        return self.send(now, "AuthorizationReq", iso20.authorization_req(mode), delay, signature)

    def _authorization_res(self, body: Body, now: float) -> Send | SessionResult:
        """AuthorizationRes: repeat while Ongoing; a refusal (WARNING_) ends the session with SessionStop."""
        code = str(body["ResponseCode"])
        if code.startswith("WARNING"):
            self.refused = code
            log.warning("%s: authorization refused (%s)", self.s.label, code)
            return self.send(now, "SessionStopReq", iso20.session_stop_req("Terminate", "AuthorizationRefused"))
        if body["EVSEProcessing"] != "Finished":
            return self._authorize(now, self.config.ongoing_interval)
        self.s.stop_timer("V2G_EVCC_Ongoing_Timeout")
        return self.send(now, "ServiceDiscoveryReq", iso20.service_discovery_req())

    def _service_discovery_res(self, body: Body, now: float) -> Send | SessionResult:
        """ServiceDiscoveryRes: our service, or its plain twin when the SECC has no BPT -> ServiceDetailReq."""
        offered = {sid for sid, _free in iso20.read_service_discovery_res(body)}
        self.renegotiation_supported = bool(body.get("ServiceRenegotiationSupported", False))
        if int(self.service) not in offered:
            plain = _PLAIN.get(self.service)
            if plain is None or int(plain) not in offered:
                return self.s.fail(f"SECC offers no {self.service.name} service (offers {sorted(offered)})")
            log.info("EVCC: the SECC offers no %s; charging with %s", self.service.name, plain.name)
            self.service = plain
        return self.send(now, "ServiceDetailReq", iso20.service_detail_req(int(self.service)))

    def _service_detail_res(self, body: Body, now: float) -> Send | SessionResult:
        """ServiceDetailRes: the parameter set of our control mode -> ServiceSelectionReq."""
        _sid, sets = iso20.read_service_detail_res(body)
        chosen = next((p for p in sets if p.control_mode is self.mode), None)
        if chosen is None:
            return self.s.fail(f"SECC has no {self.service.name} parameter set with ControlMode {self.mode.name}")
        self.parameter_set = chosen
        self.services.append(self.service.name)
        return self.send(now, "ServiceSelectionReq", iso20.service_selection_req(int(self.service), chosen.set_id))

    def _service_selection_res(self, body: Body, now: float) -> Send | SessionResult:
        """ServiceSelectionRes -> AC_/DC_ChargeParameterDiscoveryReq with the EV's limits."""
        ev = self.ev
        if self.dc:
            limits = EVDCLimits(ev.dc_max_power, 0.0, ev.dc_max_current, 0.0, ev.dc_max_voltage, ev.dc_min_voltage,
                                int(ev.target_soc), *((ev.dc_max_discharge_power, 0.0, ev.dc_max_discharge_current,
                                                       0.0) if self.bpt else (None,) * 4))
            return self.send(now, "DC_ChargeParameterDiscoveryReq", dc_cpd_req(limits, self.bpt))
        ac = EVACLimits(ev.ac_max_power, ev.ac_min_power, ev.ac_max_discharge_power if self.bpt else None,
                        0.0 if self.bpt else None)
        return self.send(now, "AC_ChargeParameterDiscoveryReq", ac_cpd_req(ac, self.bpt))

    def _cpd_res(self, body: Body, now: float) -> Send | SessionResult:
        """AC_/DC_ChargeParameterDiscoveryRes: the EVSE's limits -> ScheduleExchangeReq."""
        if self.dc:
            self.evse_dc, _ = read_dc_cpd_res(body)
        else:
            self.evse_ac, _ = read_ac_cpd_res(body)
        return self._schedule_exchange(now)

    # ----- schedule, DC preparation, power delivery -----

    def needs(self) -> EVNeeds:
        """The EV's mobility needs for ScheduleExchangeReq (energies in Wh from the SoC window)."""
        ev = self.ev
        target, maximum = ev.energy_to(ev.target_soc), ev.energy_to(ev.max_soc)
        minimum = max(0.0, ev.energy_to(ev.min_soc))
        if self.mode is ControlMode.SCHEDULED:
            return EVNeeds(ControlMode.SCHEDULED, 1024, ev.departure_time, target_energy=max(0.0, target),
                           max_energy=max(0.0, maximum), min_energy=minimum)
        v2x = (maximum, ev.energy_to(ev.min_soc)) if self.bpt else (None, None)
        return EVNeeds(ControlMode.DYNAMIC, 1024, ev.departure_time, int(ev.min_soc), int(ev.target_soc), target,
                       maximum, minimum, *v2x)

    def _schedule_exchange(self, now: float, delay: float = 0.0) -> Send | SessionResult:
        """ScheduleExchangeReq (the ongoing timer runs until Finished; a renegotiation goes on its side stream)."""
        self.s.start_timer("V2G_EVCC_Ongoing_Timeout", self.timers.ongoing, now)
        side = PayloadType.ISO20_SCHEDULE_RENEGOTIATION if self.renegotiating else None
        return self.send(now, "ScheduleExchangeReq", schedule_exchange_req(self.needs()), delay, payload_type=side)

    def _schedule_exchange_res(self, body: Body, now: float) -> Send | SessionResult:
        """ScheduleExchangeRes: repeat while Ongoing; choose a tuple (scheduled) or take the plan (dynamic); then
        DC_CableCheck (DC) or PowerDelivery(Start)."""
        processing, tuples, plan, go_to_pause = read_schedule_exchange_res(body)
        if processing != "Finished":
            return self._schedule_exchange(now, self.config.ongoing_interval)
        self.s.stop_timer("V2G_EVCC_Ongoing_Timeout")
        if self.mode is ControlMode.SCHEDULED:
            if not tuples:
                return self.s.fail("ScheduleExchangeRes is Finished but has no ScheduleTuple")
            want = self.config.schedule_choice
            self.tuple = next((t for t in tuples if t.tuple_id == want), tuples[0])
            self.schedule_start = now
        else:
            if plan is None:
                return self.s.fail("ScheduleExchangeRes in dynamic mode has no Dynamic_SEResControlMode")
            self.plan = plan
        if go_to_pause:
            self.pausing = True
            if self.renegotiating:
                return self.power_delivery(now, "Stop")
            return self.session_stop(now)
        if self.renegotiating or not self.dc:
            return self.power_delivery(now, "Start")
        self.s.start_timer("V2G_EVCC_CableCheck_Timeout", self.timers.cable_check, now)
        return self.send(now, "DC_CableCheckReq", {})

    def _cable_check_res(self, body: Body, now: float) -> Send | SessionResult:
        """DC_CableCheckRes: repeat while Ongoing; then DC_PreChargeReq to the pack voltage."""
        if body["EVSEProcessing"] != "Finished":
            return self.send(now, "DC_CableCheckReq", {}, self.config.ongoing_interval)
        self.s.stop_timer("V2G_EVCC_CableCheck_Timeout")
        self.s.start_timer("V2G_EVCC_PreCharge_Timeout", self.timers.precharge20, now)
        self.precharge_target = round(self.ev.pack_voltage, 1)
        return self.send(now, "DC_PreChargeReq", precharge_req("Ongoing", self.precharge_target,
                                                                self.precharge_target))

    def _precharge_res(self, body: Body, now: float) -> Send | SessionResult:
        """DC_PreChargeRes: repeat until the EVSE's voltage is within tolerance, tell the SECC once with
        EVProcessing=Finished, then PowerDelivery(Start)."""
        present = read_voltage(body)
        if self.precharged:
            self.s.stop_timer("V2G_EVCC_PreCharge_Timeout")
            return self.power_delivery(now, "Start")
        done = abs(present - self.precharge_target) <= self.config.precharge_tolerance
        self.precharged = done
        return self.send(now, "DC_PreChargeReq", precharge_req("Finished" if done else "Ongoing",
                                                                self.precharge_target, self.precharge_target),
                         0.0 if done else self.config.ongoing_interval)

    def power_delivery(self, now: float, progress: str) -> Send | SessionResult:
        """PowerDeliveryReq: Start with the EV's power profile (scheduled: for the chosen tuple), Stop, or
        ScheduleRenegotiation."""
        self.progress = progress
        profile = None
        channel = None
        if progress == "Start":
            entries = self.planned_profile()
            tuple_id = self.tuple.tuple_id if self.mode is ControlMode.SCHEDULED and self.tuple else None
            profile = ev_power_profile(entries, tuple_id, True if tuple_id is not None else None)
            if self.bpt:
                channel = "Discharge" if entries and entries[0].power < 0 else "Charge"
        return self.send(now, "PowerDeliveryReq", iso20.power_delivery_req(progress, profile, channel=channel))

    def planned_profile(self) -> list[PowerEntry]:
        """The EV's planned power per schedule entry (scheduled) or its maximum until departure (dynamic)."""
        if self.mode is ControlMode.SCHEDULED and self.tuple is not None:
            out, offset = [], 0
            for entry in self.tuple.charging.entries:
                out.append(PowerEntry(entry.duration, self.scheduled_power(offset, plan=True)))
                offset += entry.duration
            return out
        return [PowerEntry(max(1, self.ev.departure_time), self.max_charge_power())]

    def _power_delivery_res(self, body: Body, now: float) -> Send | SessionResult:
        """PowerDeliveryRes: Start -> the charge loop; ScheduleRenegotiation -> ScheduleExchange; Stop ->
        WeldingDetection (DC) or SessionStop."""
        if self.progress == "Start":
            self.renegotiating = False
            if self._last_tick is None:  # after a renegotiation the energy keeps flowing at the last power
                self._tick(now)
            return self.charge_loop(now, 0.0)
        if self.progress == "ScheduleRenegotiation":
            self.renegotiating = True
            self.renegotiations += 1
            return self._schedule_exchange(now)
        if self._last_tick is not None:
            self.take(now, 0.0)  # the power flowed until the EVSE confirmed the stop
        if self.dc and self.config.welding_detection:
            return self.send(now, "DC_WeldingDetectionReq", welding_detection_req())
        return self.session_stop(now)

    def _welding_detection_res(self, body: Body, now: float) -> Send | SessionResult:
        """DC_WeldingDetectionRes: repeat until the output voltage is low (or the attempts are used up)."""
        self.welding_requests += 1
        if read_voltage(body) > 20.0 and self.welding_requests < self.config.max_welding_requests:
            return self.send(now, "DC_WeldingDetectionReq", welding_detection_req(), self.config.ongoing_interval)
        return self.session_stop(now)

    def service_renegotiation(self, now: float) -> Send | SessionResult:
        """The SECC asked for a service renegotiation: stop the energy transfer, then SessionStop(ServiceRenegotiation)
        (Terminate when the SECC did not announce it supports that)."""
        self.changing_service = self.renegotiation_supported
        return self.power_delivery(now, "Stop")

    def session_stop(self, now: float) -> Send | SessionResult:
        """SessionStopReq: ServiceRenegotiation when the SECC asked for it, Pause when configured or asked by the
        SECC, else Terminate."""
        if self.changing_service:
            return self.send(now, "SessionStopReq", iso20.session_stop_req("ServiceRenegotiation"))
        kind = "Pause" if self.config.stop == "Pause" or self.pausing else "Terminate"
        return self.send(now, "SessionStopReq", iso20.session_stop_req(kind))

    def _session_stop_res(self, body: Body, now: float) -> Send | SessionResult:
        """SessionStopRes: the end (not ok after a refused authorization), or after ServiceRenegotiation the services
        anew (the EV asks for its own service again; the SECC's offer decides)."""
        if self.changing_service:
            self.changing_service = self.precharged = False
            self.welding_requests = 0
            self.tuple, self.plan = None, None
            self.service = EnergyService.named(self.config.energy)
            log.info("%s: service renegotiation", self.s.label)
            return self.send(now, "ServiceDiscoveryReq", iso20.service_discovery_req())
        if self.refused is not None:
            return self.s.finish(False, f"authorization refused ({self.refused})", self.refused)
        paused = self.config.stop == "Pause" or self.pausing
        return self.s.finish(True, f"SessionStopRes {body['ResponseCode']} ({'Pause' if paused else 'Terminate'})",
                             str(body["ResponseCode"]), paused=paused)
