"""What the EVCC machines take and give: the EV's configuration (EvccConfig, with its -2 and -20 credentials), the
next request to send (Send) and how a session ended (SessionResult)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from .apphand import protocols
from .evcc20 import Contract20, OemCredentials20
from .model import Step
from .quickinit import quick_init
from .timers import EvccTimers, SeccTimers
from .v2gtp import PayloadType


@dataclass(frozen=True)
class Contract:
    """The EV's contract credentials for Plug & Charge: eMAID, contract certificate chain (DER, leaf first), key."""

    emaid: str
    chain: list[bytes]
    key: ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class OemCredentials:
    """The EV's OEM provisioning certificate and key, and the V2G roots it trusts (for the CPS chain)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    v2g_roots: list[x509.Certificate]


@dataclass(frozen=True)
class EvccConfig:
    """How the EV behaves on the wire."""

    protocols: tuple[str, ...] = ("iso2",)  # offered in priority order ("iso20": the -20 namespace of the energy)
    energy: str = "dc"  # "ac" or "dc"; with -20 also "ac_bpt" or "dc_bpt" (-2/DIN then run "ac"/"dc")
    control: str = "scheduled"  # -20 control mode: "scheduled" or "dynamic"
    ac_mode: str = "AC_three_phase_core"
    dc_mode: str = "DC_extended"
    evcc_id: str = "0A1B2C3D4E5F"  # the EV's MAC address
    payment: str = "ExternalPayment"
    loops: int = 10  # charge-loop requests before stopping; 0 = until full or the EVSE says StopCharging
    loop_interval: float = 0.0  # pause between charge-loop requests
    ongoing_interval: float = 0.0  # pause before repeating a request answered with Ongoing
    precharge_tolerance: float = 20.0  # volts
    welding_detection: bool = True
    max_welding_requests: int = 10
    service_details: bool = False  # ask ServiceDetail for each listed value-added service (-2)
    stop: str = "Terminate"  # or "Pause" (-2 only)
    contract: Contract | None = None  # Plug & Charge (payment="Contract", -2 over TLS)
    oem: OemCredentials | None = None  # without a contract: install one with the OEM provisioning certificate
    update_contract: bool = False  # with a contract: renew it first (CertificateUpdate), then charge with the new one
    pnc_fault: str | None = None  # tests and demos: "bad-signature", "tampered-challenge", "emaid-mismatch" (-2),
    # "bad-metering-signature" (-20)
    v2g_roots: tuple[Any, ...] = ()  # V2G roots to check the CPS chain of an update (installation: oem.v2g_roots)
    resume_session_id: str | None = None  # SessionID of a paused session to resume
    contract20: Contract20 | None = None  # -20 Plug & Charge (payment="Contract"): secp521r1 or Ed448 contract
    oem20: OemCredentials20 | None = None  # -20 without a contract: install one with the OEM provisioning credentials
    schedule_choice: int | None = None  # -20 scheduled: the ScheduleTupleID to choose (default: the first)
    meter_info_requested: bool = False  # -20: ask for the meter reading in every charge-loop request
    timers: EvccTimers = field(default_factory=EvccTimers)

    def __post_init__(self) -> None:
        """Refuse impossible combinations."""
        if self.energy not in ("ac", "dc", "ac_bpt", "dc_bpt"):
            raise ValueError("energy must be 'ac', 'dc', 'ac_bpt' or 'dc_bpt'")
        protocols(self.protocols, self.dc)
        if self.energy.startswith("ac") and "din" in self.protocols:
            raise ValueError("DIN SPEC 70121 is DC only: offer iso2 or iso20 for AC")
        if self.energy.endswith("_bpt") and "iso20" not in self.protocols:
            raise ValueError("bidirectional power transfer needs ISO 15118-20: offer iso20")
        if self.control not in ("scheduled", "dynamic"):
            raise ValueError("control must be 'scheduled' or 'dynamic'")
        if self.stop not in ("Terminate", "Pause"):
            raise ValueError("stop must be 'Terminate' or 'Pause'")
        if "iso20" in self.protocols and self.loop_interval >= SeccTimers().sequence_charge_loop:
            raise ValueError("ISO 15118-20: the SECC waits at most 0.5 s for the next charge-loop request "
                             "(V2G_SECC_Sequence_Timeout, Tables 216/217): keep the loop interval below that")

    @property
    def dc(self) -> bool:
        """Whether the EV charges DC."""
        return self.energy.startswith("dc")


@quick_init
@dataclass(frozen=True)
class Send:
    """The next request: wait `delay` s, send `doc` coded with `ns`, then wait at most `timeout` s for the answer."""

    doc: dict[str, Any]
    ns: str
    name: str
    timeout: float
    delay: float = 0.0
    step: Step | None = None
    payload_type: int = PayloadType.EXI  # the V2GTP payload type (-20: by message stream)


@dataclass(frozen=True)
class SessionResult:
    """How the session ended."""

    ok: bool
    reason: str
    protocol: str | None = None
    session_id: str | None = None
    evse_id: str | None = None
    response_code: str | None = None
    paused: bool = False
    charge_loops: int = 0
    soc: float = 0.0
    energy_wh: float = 0.0
    max_step_wh: float = 0.0  # the most the EV counted for one charge-loop interval (at the power last answered)
    messages: int = 0
    installed_contract: Contract | None = None  # a contract this session installed (keep it for the next one)
    exported_wh: float = 0.0  # -20 BPT: energy fed back
    service: str | None = None  # -20: the energy transfer service (AC, DC, AC_BPT, DC_BPT)
    control_mode: str | None = None  # -20: SCHEDULED or DYNAMIC
    metering_confirmations: int = 0  # -20: MeteringConfirmationReq sent
    renegotiations: int = 0  # -20: schedule renegotiations done
    services: tuple[str, ...] = ()  # -20: the energy services selected, in order (more than one: service renegotiation)
    installed_contract20: Contract20 | None = None  # -20: a contract this session installed
