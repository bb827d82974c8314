"""What the SECC asks of the charging station: the EVSEController protocol, implemented by the station (or a sim).

Every method is synchronous and must return at once: slow work (an OCPP Authorize, an isolation test, a schedule
from the CSMS) is started on the first call and reported as Ongoing until done, which maps directly onto the
standards' EVSEProcessing=Ongoing loops (the certificate services are the exception: coroutines the shell awaits
within the performance time). All values are SI floats; the message modules do the unit coding. Implementers
subclass EVSEController so that the optional hooks (on_event, contract_check, the certificate services) have their
declared defaults; the SECC calls every method directly, never looked up by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

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
