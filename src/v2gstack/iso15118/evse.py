"""What the SECC asks of the charging station: the EVSEController protocol, implemented by the station (or a sim).

Every method is synchronous and must return at once: slow work (an OCPP Authorize, an isolation test, a schedule
from the CSMS) is started on the first call and reported as Ongoing until done, which maps directly onto the
standards' EVSEProcessing=Ongoing loops (the certificate services are the exception: coroutines the shell awaits
within the performance time). All values are SI floats; the message modules do the unit coding. Implementers
subclass EVSEController so that the optional hooks (on_event, contract_check, the certificate services) have their
declared defaults; the SECC calls every method directly, never looked up by name.

ISO 15118-20 adds the methods after the optional hooks: the services and their parameter sets, AC/DC limits with
discharge (BPT), schedule tuples with discharging schedules, the dynamic plan and a target in every charge-loop
answer (negative power: discharge). Their default bodies (defaults20.py) answer from the -2 methods above, so a -2
controller serves -20 sessions as it is, charging only. Notifications of -20 come from `status().notification`:
StopCharging -> Terminate, ReNegotiation -> ScheduleRenegotiation, or a -20 value (Pause, Terminate,
ScheduleRenegotiation, MeteringConfirmation, ExitStandby) as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from . import defaults20
from .events import SessionEnded, SessionEvent
from .model import (
    ACEVSEParameters,
    CurrentDemand,
    DCEVSEParameters,
    DCOutput,
    EVChargeParameters,
    EVSEStatus,
    MeterReading,
    SASchedule,
    Service,
)
from .model20 import (
    ACLimits20,
    ACLoopAnswer,
    ControlMode,
    DCLimits20,
    DCLoopAnswer,
    DynamicSchedule,
    EnergyService,
    EVACLimits,
    EVDCLimits,
    EVNeeds,
    LoopRequest,
    MeterReading20,
    ParameterSet,
    ScheduleTuple,
    ServiceOffer,
)


class AuthorizationStatus(StrEnum):
    """Result of an authorization check (EIM: the station decides, e.g. RFID or a CSMS Authorize)."""

    ACCEPTED = "Accepted"
    ONGOING = "Ongoing"
    ONGOING_CUSTOMER = "OngoingWaitingForCustomer"
    REJECTED = "Rejected"


@dataclass
class SessionInfo:
    """What the SECC knows about one communication session; given to every controller call that needs context."""

    session_id: str
    evcc_id: str
    protocol: str
    peer: str = ""
    tls: bool = False
    resumed: bool = False
    payment_option: str | None = None
    energy_mode: str | None = None
    ev: EVChargeParameters | None = None
    schedule_id: int | None = None
    emaid: str | None = None  # Plug & Charge: from PaymentDetailsReq
    contract_chain: list[bytes] | None = None  # Plug & Charge: contract certificate, then sub-CAs (DER)
    auth_code: str | None = None  # the ResponseCode a controller wants for a refused authorization (FAILED_*)
    # ISO 15118-20
    service: EnergyService | None = None  # the energy transfer service the EV selected
    parameter_set: ParameterSet | None = None  # ... and its parameter set
    control_mode: ControlMode | None = None  # scheduled or dynamic (from the parameter set)
    ev_limits: EVACLimits | EVDCLimits | None = None  # AC/DC_ChargeParameterDiscoveryReq
    needs: EVNeeds | None = None  # ScheduleExchangeReq: departure time, SoC and energy requests
    schedule_tuples: list[ScheduleTuple] | None = None  # scheduled mode: what the SECC offered


@dataclass(frozen=True)
class CableCheckResult:
    """Isolation test state: done or still running, and the isolation level measured."""

    done: bool
    isolation: str = "Valid"


class EVSEController(Protocol):
    """The station side of the SECC (one instance per session)."""

    def evse_id(self, protocol: str) -> str:
        """EVSEID for `protocol` ('iso2': string of 7-37 characters, 'din': hexBinary)."""
        ...

    def payment_options(self) -> list[str]:
        """Payment options to offer (EIM: ['ExternalPayment'])."""
        ...

    def energy_modes(self) -> list[str]:
        """EnergyTransferMode values this EVSE supports."""
        ...

    def services(self) -> list[Service]:
        """Value-added services to list (may be empty)."""
        ...

    def session_started(self, info: SessionInfo) -> None:
        """A session was set up (new or resumed)."""
        ...

    def authorize(self, info: SessionInfo) -> AuthorizationStatus:
        """EIM authorization; called for every Authorization/ContractAuthentication request."""
        ...

    def schedules(self, info: SessionInfo, ev: EVChargeParameters) -> list[SASchedule] | None:
        """The SAScheduleList for the EV's needs, or None while it is still being computed."""
        ...

    def ac_parameters(self) -> ACEVSEParameters:
        """AC limits for ChargeParameterDiscoveryRes."""
        ...

    def dc_parameters(self) -> DCEVSEParameters:
        """DC limits for ChargeParameterDiscoveryRes."""
        ...

    def status(self) -> EVSEStatus:
        """The EVSE status to put in the next response (notification StopCharging / ReNegotiation...)."""
        ...

    def cable_check(self) -> CableCheckResult:
        """Start or continue the isolation test."""
        ...

    def precharge(self, voltage: float, current: float) -> float:
        """Drive the output toward the EV's target voltage with limited current; return the present voltage."""
        ...

    def set_contactors(self, closed: bool) -> bool:
        """Close (start of energy transfer) or open the contactors; False if that failed."""
        ...

    def ac_max_current(self) -> float | None:
        """The AC current limit now, reported in ChargingStatusRes."""
        ...

    def current_demand(self, demand: CurrentDemand) -> DCOutput:
        """Apply the EV's DC targets; report the present output and limits."""
        ...

    def welding_detection(self) -> float:
        """The present output voltage after the contactors opened."""
        ...

    def meter(self) -> MeterReading | None:
        """The meter reading to report, None if there is no meter."""
        ...

    def receipt_required(self) -> bool:
        """Whether the EV must confirm the meter reading with MeteringReceiptReq."""
        ...

    def session_ended(self, info: SessionInfo | None, ended: SessionEnded) -> None:
        """The session ended (once per connection, normally or not): `ended.kind` names how (the error map's row);
        `info` is None when it ended before SessionSetup."""
        ...

    # ----- optional hooks with defaults (inherited by subclasses) -----

    def on_event(self, event: SessionEvent) -> None:
        """Every event of the session in order: each message (MessageExchanged), each answer (Answered), the EV's
        chosen schedule (ScheduleChosen) and the end (SessionEnded, also given to session_ended). Default: ignore."""

    def contract_check(self, info: SessionInfo, emaid: str, chain: list[bytes]) -> str:
        """Plug & Charge, PaymentDetailsReq: the station's own check of the contract chain (DER, leaf first) after the
        SECC's form and validity checks; "OK" or the FAILED_* code to answer. Default: "OK"."""
        return "OK"

    async def certificate_installation(self, info: SessionInfo, request: dict[str, Any]) -> dict[str, Any] | str:
        """CertificateInstallationReq (the whole request document): the signed response document, or a FAILED_* code.
        Default: no installation service (FAILED_NoCertificateAvailable)."""
        return "FAILED_NoCertificateAvailable"

    async def certificate_update(self, info: SessionInfo, request: dict[str, Any]) -> dict[str, Any] | str:
        """CertificateUpdateReq, as certificate_installation. Default: FAILED_NoCertificateAvailable."""
        return "FAILED_NoCertificateAvailable"

    # ----- ISO 15118-20 (certificate_installation serves -20 too: with info.protocol "iso20" the request is the -20
    # CertificateInstallationReq document and the answer a -20 CertificateInstallationRes document) -----

    def services20(self) -> list[ServiceOffer]:
        """The energy transfer services (AC=1, DC=2, AC_BPT=5, DC_BPT=6) with their parameter sets (ControlMode,
        MobilityNeedsMode, Pricing, connector, nominal voltage; BPT: BPTChannel, GeneratorMode). Default: AC and/or
        DC as energy_modes() says, each with a scheduled (id 1) and a dynamic (id 2) set; no BPT."""
        return defaults20.services_from_modes(self.energy_modes(), self.ac_parameters().nominal_voltage)

    def ac_limits20(self, info: SessionInfo, ev: EVACLimits, bpt: bool) -> ACLimits20:
        """AC_ChargeParameterDiscoveryRes: total power limits (W) and, with BPT, discharge limits. Default: the AC
        current limits of ac_parameters() times voltage and phases, no discharge."""
        return defaults20.ac_limits(self.ac_parameters(), _phases(self.energy_modes()), bpt)

    def dc_limits20(self, info: SessionInfo, ev: EVDCLimits, bpt: bool) -> DCLimits20:
        """DC_ChargeParameterDiscoveryRes: the DC limits and, with BPT, discharge limits. Default: dc_parameters(),
        no discharge."""
        return defaults20.dc_limits(self.dc_parameters(), bpt)

    def schedule_tuples(self, info: SessionInfo, needs: EVNeeds) -> list[ScheduleTuple] | None:
        """Scheduled mode: up to 3 ScheduleTuples (with BPT a DischargingSchedule each), None while they are being
        computed (EVSEProcessing=Ongoing). Default: the SAScheduleList of schedules() as charging schedules, a
        discharging schedule at the discharge limit for BPT."""
        service = info.service or EnergyService.DC
        energy = needs.target_energy if needs.target_energy is not None else needs.max_energy
        schedules = self.schedules(info, defaults20.ev_parameters(service, needs.departure_time, energy))
        if schedules is None:
            return None
        return defaults20.tuples_from_sa_schedules(schedules, 0.0 if service.bpt else None)

    def dynamic_schedule(self, info: SessionInfo, needs: EVNeeds) -> DynamicSchedule | None:
        """Dynamic mode: the departure time and SoC targets the SECC plans with, None while computing. Default: the
        EV's own."""
        return DynamicSchedule(needs.departure_time, needs.min_soc, needs.target_soc)

    def ac_charge_loop20(self, info: SessionInfo, request: LoopRequest) -> ACLoopAnswer:
        """Each AC_ChargeLoopReq: the target active power (W, negative: discharge; required in dynamic mode, a limit
        in scheduled mode) and the power flowing now. Default: ac_max_current() as power within the EV's maximum."""
        return defaults20.ac_loop(self.ac_max_current(), self.ac_parameters(), _phases(self.energy_modes()),
                                  request)

    def dc_charge_loop20(self, info: SessionInfo, request: LoopRequest) -> DCLoopAnswer:
        """Each DC_ChargeLoopReq: the present output (current negative: discharge) and the limits; in dynamic mode
        the limits are the target. Default: current_demand() with the EV's targets (scheduled) or maxima
        (dynamic), charging only."""
        bpt = info.service is not None and info.service.bpt
        limits = self.dc_limits20(info, info.ev_limits, bpt) if isinstance(info.ev_limits, EVDCLimits) else \
            defaults20.dc_limits(self.dc_parameters(), bpt)
        out = self.current_demand(defaults20.dc_demand(request, limits))
        return defaults20.dc_answer(out, limits)

    def meter20(self) -> MeterReading20 | None:
        """The meter reading with imported and exported energy (Wh). Default: meter() as imported energy."""
        return defaults20.meter20(self.meter())

    def service_renegotiation20(self) -> bool:
        """Whether the SECC offers service renegotiation (ServiceDiscoveryRes ServiceRenegotiationSupported; then
        SessionStopReq(ServiceRenegotiation) goes back to ServiceDiscovery). Default: no."""
        return False

    def standby_allowed(self) -> bool:
        """Whether PowerDeliveryReq(Standby) is accepted (else WARNING_StandbyNotAllowed). Default: no."""
        return False


def _phases(modes: list[str]) -> int:
    """Phases of an AC EVSE by its energy modes."""
    return 3 if "AC_three_phase_core" in modes else 1

