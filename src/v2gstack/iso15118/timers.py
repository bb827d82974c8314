"""Timer values of ISO 15118-2, DIN SPEC 70121 and ISO 15118-20, in seconds; configurable so tests can shrink them.

EVCC, -2/DIN: V2G_EVCC_Msg_Timeout per request (2 s; 5 s for ServiceDetail, PaymentDetails, PowerDelivery (-2) and
the certificate messages; 0.25 s for CurrentDemand), V2G_EVCC_CommunicationSetup_Timeout 20 s (connection to
SessionSetupRes), V2G_EVCC_Ongoing_Timeout 60 s (EVSEProcessing=Ongoing loops), V2G_EVCC_CableCheck_Timeout 40 s,
V2G_EVCC_PreCharge_Timeout 7 s. SECC: V2G_SECC_Sequence_Timeout 60 s between requests and
V2G_SECC_Msg_Performance_Time (message timeout minus 0.5 s; 25 ms for CurrentDemandRes), which we log, not enforce.

ISO 15118-20 (Table 215 common, Tables 216/217 AC/DC; the sources are cited in docs/iso15118.md, "-20 timers"):
V2G_EVCC_Msg_Timeout 2 s, 5 s for ServiceDetailReq and CertificateInstallationReq, 0.5 s for AC_ChargeLoopReq and
DC_ChargeLoopReq [V2G20-1499/1501]; V2G_SECC_Sequence_Timeout 60 s, but 0.5 s after an AC_/DC_ChargeLoopRes
[V2G20-1500/1502]: an EV that goes silent while the contactors are closed is dropped in half a second;
V2G_EVCC_PreCharge_Timeout 10 s and the other EVCC sequence timers as in -2 (the reference implementations' values,
no public excerpt of Table 215 gives them). The SECC's -20 performance times are 1.5 s and 4.5 s as in -2; for the
charge loops our policy, half of the EV's 0.5 s (0.25 s), leaving the rest for the transport.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from .model import Step

_LONG_ISO2 = frozenset({Step.SERVICE_DETAIL, Step.PAYMENT_DETAILS, Step.POWER_DELIVERY,
                        Step.CERTIFICATE_INSTALLATION, Step.CERTIFICATE_UPDATE})
_LONG_ISO20 = frozenset({Step.SERVICE_DETAIL, Step.CERTIFICATE_INSTALLATION})


def _family(protocol: str) -> str:
    """'iso20' for any -20 protocol key (iso20, iso20_ac, iso20_dc), else the key."""
    return "iso20" if protocol.startswith("iso20") else protocol


@dataclass(frozen=True)
class EvccTimers:
    """The EVCC's timeouts."""

    msg: float = 2.0
    msg_long: float = 5.0
    current_demand: float = 0.25
    charge_loop: float = 0.5  # -20 AC_ChargeLoop / DC_ChargeLoop
    communication_setup: float = 20.0
    ongoing: float = 60.0
    cable_check: float = 40.0
    precharge: float = 7.0
    precharge20: float = 10.0  # -20 V2G_EVCC_PreCharge_Timeout

    def message_timeout(self, protocol: str, step: Step | None) -> float:
        """V2G_EVCC_Msg_Timeout for the response to `step` (None: supportedAppProtocolReq)."""
        family = _family(protocol)
        if family == "iso20":
            if step is Step.CHARGE_LOOP:
                return self.charge_loop
            return self.msg_long if step in _LONG_ISO20 else self.msg
        if step is Step.CURRENT_DEMAND:
            return self.current_demand
        if family == "iso2" and step in _LONG_ISO2:
            return self.msg_long
        return self.msg

    def scaled(self, factor: float) -> EvccTimers:
        """All values multiplied by `factor` (tests use small ones)."""
        return replace(self, **{f.name: getattr(self, f.name) * factor for f in fields(self)})


@dataclass(frozen=True)
class SeccTimers:
    """The SECC's timeout and the performance times it checks itself against."""

    sequence: float = 60.0
    performance: float = 1.5
    performance_long: float = 4.5
    performance_current_demand: float = 0.025
    performance_charge_loop: float = 0.25  # -20 charge loops (policy: half the EV's 0.5 s)
    sequence_charge_loop: float = 0.5  # -20 V2G_SECC_Sequence_Timeout after AC_/DC_ChargeLoopRes (Tables 216/217)

    def sequence_timeout(self, protocol: str, last_step: Step | None) -> float:
        """V2G_SECC_Sequence_Timeout while waiting for the request after an answer to `last_step`."""
        if _family(protocol) == "iso20" and last_step is Step.CHARGE_LOOP:
            return self.sequence_charge_loop
        return self.sequence

    def scaled(self, factor: float) -> SeccTimers:
        """All values multiplied by `factor` (slow test peers; tests use small ones)."""
        return replace(self, **{f.name: getattr(self, f.name) * factor for f in fields(self)})

    def performance_time(self, protocol: str, step: Step | None) -> float:
        """V2G_SECC_Msg_Performance_Time for the response to `step`."""
        family = _family(protocol)
        if family == "iso20":
            if step is Step.CHARGE_LOOP:
                return self.performance_charge_loop
            return self.performance_long if step in _LONG_ISO20 else self.performance
        if step is Step.CURRENT_DEMAND:
            return self.performance_current_demand
        if family == "iso2" and step in _LONG_ISO2:
            return self.performance_long
        return self.performance
