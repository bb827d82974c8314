"""The one table that maps ISO 15118 / DIN 70121 failures to their OCPP 2.0.1 reports, and OCPP answers back to ISO.

A failed ISO session (a FAILED_* response code sent or received, a timer that expired, a TLS, V2GTP or EXI error, an
unexpected disconnect) becomes, on the OCPP side: the TransactionEvent stoppedReason/triggerReason that ends the
transaction, a NotifyEvent on the EVSE's ConnectedEV component (variable Problem, techCode = the ISO code), a
SecurityEventNotification for security failures, and StatusNotification Faulted when the EVSE cannot be used.
The SECC decides the `FailureKind` where the failure happens (iso15118/events.py `SessionEnded`); this table is
looked up by that kind, never by the wording of a reason. docs/error-mapping.md is generated from this module
(`markdown()`); a test keeps them equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FailureKind(StrEnum):
    """How an ISO 15118 / DIN 70121 session ended: decided by the SECC where it happens, one row of the table each."""

    NORMAL = "Normal"
    PAUSED = "Paused"
    NO_COMMON_PROTOCOL = "NoCommonProtocol"
    SEQUENCE_ERROR = "SequenceError"
    UNKNOWN_SESSION = "UnknownSession"
    AUTHORIZATION_FAILED = "AuthorizationFailed"
    WRONG_CHARGE_PARAMETER = "WrongChargeParameter"
    ISOLATION_FAULT = "IsolationFault"
    CONTACTOR_ERROR = "ContactorError"
    PROFILE_INVALID = "ProfileInvalid"
    CERTIFICATE_ERROR = "CertificateError"
    SIGNATURE_ERROR = "SignatureError"
    OTHER_FAILED = "OtherFailed"
    SEQUENCE_TIMEOUT = "SequenceTimeout"
    COMMUNICATION_SETUP_TIMEOUT = "CommunicationSetupTimeout"
    PERFORMANCE_TIMEOUT = "PerformanceTimeout"
    ONGOING_TIMEOUT = "OngoingTimeout"
    TLS_VERSION = "TlsVersion"
    TLS_CIPHER_SUITE = "TlsCipherSuite"
    TLS_FAILURE = "TlsFailure"
    V2GTP_ERROR = "V2gtpError"
    EXI_ERROR = "ExiError"
    DISCONNECTED = "Disconnected"
    INTERNAL_ERROR = "InternalError"
    SHUTDOWN = "Shutdown"
    SLAC_FAILED = "SlacFailed"


@dataclass(frozen=True)
class IsoFailure:
    """How one kind of ISO 15118 failure is reported in OCPP 2.0.1."""

    kind: FailureKind
    description: str
    stopped_reason: str  # ReasonEnumType
    trigger_reason: str  # TriggerReasonEnumType of the Ended event
    notify: bool = True  # NotifyEvent ConnectedEV/Problem
    security_event: str | None = None  # SecurityEventNotification type
    faulted: bool = False  # StatusNotification Faulted (the EVSE needs attention before the next session)


_K = FailureKind
FAILURES: dict[FailureKind, IsoFailure] = {f.kind: f for f in [
    IsoFailure(_K.NORMAL, "SessionStopReq(Terminate) answered OK: the EV ended the session", "EVDisconnected",
               "EVCommunicationLost", notify=False),
    IsoFailure(_K.PAUSED, "SessionStopReq(Pause) (-2): the EV pauses and may resume with the same SessionID",
               "StoppedByEV", "ChargingStateChanged", notify=False),
    IsoFailure(_K.NO_COMMON_PROTOCOL, "supportedAppProtocolRes Failed_NoNegotiation: no common protocol", "Other",
               "AbnormalCondition"),
    IsoFailure(_K.SEQUENCE_ERROR, "FAILED_SequenceError: a request out of order", "Other", "AbnormalCondition"),
    IsoFailure(_K.UNKNOWN_SESSION, "FAILED_UnknownSession: a SessionID that is not this session's", "Other",
               "AbnormalCondition"),
    IsoFailure(_K.AUTHORIZATION_FAILED, "Authorization answered FAILED (EIM: the idToken was refused); -20: a "
               "WARNING_ authorization code, after which the EV stops", "DeAuthorized", "Deauthorized"),
    IsoFailure(_K.WRONG_CHARGE_PARAMETER, "FAILED_WrongChargeParameter / FAILED_WrongEnergyTransferMode; a service or "
               "parameter set that was not offered", "Other", "AbnormalCondition"),
    IsoFailure(_K.ISOLATION_FAULT, "CableCheck FAILED: isolation Invalid or Fault", "GroundFault", "AbnormalCondition",
               faulted=True),
    IsoFailure(_K.CONTACTOR_ERROR, "FAILED_ContactorError / FAILED_PowerDeliveryNotApplied", "Other",
               "AbnormalCondition", faulted=True),
    IsoFailure(_K.PROFILE_INVALID, "FAILED_ChargingProfileInvalid / FAILED_TariffSelectionInvalid; -20: a schedule "
               "tuple or EV power profile that does not fit", "Other", "AbnormalCondition"),
    IsoFailure(_K.CERTIFICATE_ERROR, "FAILED_CertChainError, FAILED_CertificateExpired, FAILED_CertificateRevoked, "
               "FAILED_NoCertificateAvailable, FAILED_ContractCanceled", "DeAuthorized", "Deauthorized",
               security_event="InvalidContractCertificate"),
    IsoFailure(_K.SIGNATURE_ERROR, "FAILED_SignatureError, FAILED_ChallengeInvalid, FAILED_MeteringSignatureNotValid",
               "DeAuthorized", "Deauthorized", security_event="InvalidContractSignature"),
    IsoFailure(_K.OTHER_FAILED, "any other FAILED response code", "Other", "AbnormalCondition"),
    IsoFailure(_K.SEQUENCE_TIMEOUT, "V2G_SECC_Sequence_Timeout: the EV sent no request in time", "Timeout",
               "EVCommunicationLost"),
    IsoFailure(_K.COMMUNICATION_SETUP_TIMEOUT, "the EV connected but set up no session (SessionSetup) before the "
               "SECC's sequence timer expired (the SECC's view of V2G_EVCC_CommunicationSetup_Timeout)", "Timeout",
               "EVCommunicationLost"),
    IsoFailure(_K.PERFORMANCE_TIMEOUT, "the SECC answered later than V2G_SECC_Msg_Performance_Time and the EV left "
               "(its V2G_EVCC_Msg_Timeout)", "Timeout", "EVCommunicationLost"),
    IsoFailure(_K.ONGOING_TIMEOUT, "the EV left while the SECC answered EVSEProcessing=Ongoing (its "
               "V2G_EVCC_Ongoing_Timeout: authorization or charging schedule not ready in time)", "Timeout",
               "EVCommunicationLost"),
    IsoFailure(_K.TLS_VERSION, "TLS handshake failed: protocol version not accepted", "Other", "AbnormalCondition",
               security_event="InvalidTLSVersion"),
    IsoFailure(_K.TLS_CIPHER_SUITE, "TLS handshake failed: no common cipher suite", "Other", "AbnormalCondition",
               security_event="InvalidTLSCipherSuite"),
    IsoFailure(_K.TLS_FAILURE, "TLS handshake failed otherwise (the EV refused our certificate, or no TLS at all)",
               "Other", "AbnormalCondition", security_event="TLSHandshakeFailed"),
    IsoFailure(_K.V2GTP_ERROR, "V2GTP error: bad header, payload type or length (the SECC closes)", "Other",
               "AbnormalCondition", security_event="InvalidMessages"),
    IsoFailure(_K.EXI_ERROR, "undecodable EXI (the SECC closes)", "Other", "AbnormalCondition",
               security_event="InvalidMessages"),
    IsoFailure(_K.DISCONNECTED, "the EV closed the TCP/TLS connection outside SessionStop", "EVDisconnected",
               "EVCommunicationLost"),
    IsoFailure(_K.INTERNAL_ERROR, "the SECC or the station failed while handling a request", "Other",
               "AbnormalCondition", faulted=True),
    IsoFailure(_K.SHUTDOWN, "the SECC was stopped (station reset or shutdown)", "Reboot", "ResetCommand",
               notify=False),
    IsoFailure(_K.SLAC_FAILED, "SLAC (ISO 15118-3) matching failed before any ISO session: techCode is the step "
               "(the message that did not come), techInfo names the car's MAC and the timer (TT_EVSE_SLAC_init, "
               "TT_match_sequence, TT_match_response, TT_EVSE_match_MNBC, TT_EVSE_match_session)", "Other",
               "AbnormalCondition"),
]}

_CODE_KIND: dict[str, FailureKind] = {
    "FAILED_SequenceError": _K.SEQUENCE_ERROR, "FAILED_UnknownSession": _K.UNKNOWN_SESSION,
    "FAILED_WrongChargeParameter": _K.WRONG_CHARGE_PARAMETER,
    "FAILED_WrongEnergyTransferMode": _K.WRONG_CHARGE_PARAMETER,
    "FAILED_ContactorError": _K.CONTACTOR_ERROR, "FAILED_PowerDeliveryNotApplied": _K.CONTACTOR_ERROR,
    "FAILED_ChargingProfileInvalid": _K.PROFILE_INVALID, "FAILED_TariffSelectionInvalid": _K.PROFILE_INVALID,
    "FAILED_CertChainError": _K.CERTIFICATE_ERROR, "FAILED_CertificateExpired": _K.CERTIFICATE_ERROR,
    "FAILED_CertificateRevoked": _K.CERTIFICATE_ERROR, "FAILED_NoCertificateAvailable": _K.CERTIFICATE_ERROR,
    "FAILED_ContractCanceled": _K.CERTIFICATE_ERROR, "FAILED_SignatureError": _K.SIGNATURE_ERROR,
    "FAILED_ChallengeInvalid": _K.SIGNATURE_ERROR, "FAILED_MeteringSignatureNotValid": _K.SIGNATURE_ERROR,
    "Failed_NoNegotiation": _K.NO_COMMON_PROTOCOL,
    # ISO 15118-20
    "FAILED_ScheduleSelectionInvalid": _K.PROFILE_INVALID, "FAILED_EVPowerProfileInvalid": _K.PROFILE_INVALID,
    "FAILED_EVPowerProfileViolation": _K.PROFILE_INVALID, "FAILED_PowerToleranceNotConfirmed": _K.PROFILE_INVALID,
    "FAILED_ScheduleRenegotiation": _K.PROFILE_INVALID,
    "FAILED_NoEnergyTransferServiceSelected": _K.WRONG_CHARGE_PARAMETER,
    "FAILED_ServiceSelectionInvalid": _K.WRONG_CHARGE_PARAMETER, "FAILED_ServiceIDInvalid": _K.WRONG_CHARGE_PARAMETER,
    "FAILED_NoServiceRenegotiationSupported": _K.WRONG_CHARGE_PARAMETER,
    "WARNING_EIMAuthorizationFailure": _K.AUTHORIZATION_FAILED,
    "WARNING_AuthorizationSelectionInvalid": _K.AUTHORIZATION_FAILED, "WARNING_eMSPUnknown": _K.AUTHORIZATION_FAILED,
    "WARNING_GeneralPnCAuthorizationError": _K.AUTHORIZATION_FAILED,
    "WARNING_CertificateExpired": _K.CERTIFICATE_ERROR, "WARNING_CertificateNotYetValid": _K.CERTIFICATE_ERROR,
    "WARNING_CertificateRevoked": _K.CERTIFICATE_ERROR, "WARNING_CertificateValidationError": _K.CERTIFICATE_ERROR,
    "WARNING_NoCertificateAvailable": _K.CERTIFICATE_ERROR, "WARNING_NoContractMatchingPCIDFound": _K.CERTIFICATE_ERROR,
    "WARNING_ChallengeInvalid": _K.SIGNATURE_ERROR,
}


def kind_of_code(code: str) -> FailureKind:
    """The failure kind of a FAILED ISO response code (or the handshake's Failed_NoNegotiation, or a -20 WARNING_
    authorization code) the SECC answered; codes without a row of their own are OtherFailed (the SECC refines plain
    FAILED by the step it answered)."""
    return _CODE_KIND.get(code, _K.OTHER_FAILED)


# ISO 15118-2 authorization codes (what -2 controllers set for a refusal) -> the ISO 15118-20 AuthorizationRes code
ISO2_TO_ISO20_AUTH: dict[str, str] = {
    "FAILED_CertificateExpired": "WARNING_CertificateExpired",
    "FAILED_CertificateRevoked": "WARNING_CertificateRevoked",
    "FAILED_CertChainError": "WARNING_CertificateValidationError",
    "FAILED_NoCertificateAvailable": "WARNING_NoCertificateAvailable",
    "FAILED_ContractCanceled": "WARNING_GeneralPnCAuthorizationError",
    "FAILED_SignatureError": "FAILED_SignatureError",
    "FAILED_ChallengeInvalid": "WARNING_ChallengeInvalid",
}


def iso20_auth_code(code: str | None, pnc: bool) -> str:
    """The -20 AuthorizationRes code of a refusal: a -20 code as it is, a -2 one translated, otherwise the general
    refusal of the authorization service (WARNING_GeneralPnCAuthorizationError or WARNING_EIMAuthorizationFailure)."""
    if code and (code.startswith("WARNING_") or code in ("FAILED", "FAILED_SignatureError")):
        return code
    if code in ISO2_TO_ISO20_AUTH:
        return ISO2_TO_ISO20_AUTH[code]
    return "WARNING_GeneralPnCAuthorizationError" if pnc else "WARNING_EIMAuthorizationFailure"


def notify_event(failure: IsoFailure, code: str | None, reason: str, evse_id: int, event_id: int, timestamp: str,
                 transaction_id: str | None = None) -> dict[str, object]:
    """The NotifyEvent EventData for a failure: ConnectedEV/Problem on the EVSE, techCode = the ISO code."""
    return ev_problem_event(code or failure.kind, reason, evse_id, event_id, timestamp, transaction_id)


EV_CANNOT_DISCHARGE = "EVCannotDischarge"
"""techCode of the NotifyEvent when the station asks an EV to discharge (an OCPP 2.1 setpoint) and the EV cannot or
will not (no BPT service, no discharge power left, its minimum SoC)."""


def ev_problem_event(tech_code: str, reason: str, evse_id: int, event_id: int, timestamp: str,
                     transaction_id: str | None = None) -> dict[str, object]:
    """NotifyEvent EventData: ConnectedEV/Problem on the EVSE alerting, with `tech_code` and `reason`."""
    data: dict[str, object] = {
        "eventId": event_id, "timestamp": timestamp, "trigger": "Alerting", "actualValue": "true",
        "techCode": tech_code[:50], "techInfo": reason[:500],
        "eventNotificationType": "HardWiredNotification",
        "component": {"name": "ConnectedEV", "evse": {"id": evse_id}}, "variable": {"name": "Problem"},
    }
    if transaction_id is not None:
        data["transactionId"] = transaction_id
    return data


# OCPP 2.0.1 idTokenInfo.status (Authorize, TransactionEvent, RequestStart) -> the ISO 15118-2 answer
AUTHORIZE_TO_ISO: dict[str, tuple[str, str]] = {
    "Accepted": ("OK", "Finished"),
    "Blocked": ("FAILED", "Finished"),
    "ConcurrentTx": ("FAILED", "Finished"),
    "Expired": ("FAILED", "Finished"),
    "Invalid": ("FAILED", "Finished"),
    "NoCredit": ("FAILED", "Finished"),
    "NotAllowedTypeEVSE": ("FAILED", "Finished"),
    "NotAtThisLocation": ("FAILED", "Finished"),
    "NotAtThisTime": ("FAILED", "Finished"),
    "Unknown": ("FAILED", "Finished"),
}
# OCPP 2.0.1 AuthorizeCertificateStatusEnumType (Plug & Charge) -> ISO 15118-2 ResponseCode
CERTIFICATE_TO_ISO: dict[str, str] = {
    "Accepted": "OK",
    "SignatureError": "FAILED_SignatureError",
    "CertificateExpired": "FAILED_CertificateExpired",
    "CertificateRevoked": "FAILED_CertificateRevoked",
    "NoCertificateAvailable": "FAILED_NoCertificateAvailable",
    "CertChainError": "FAILED_CertChainError",
    "ContractCancelled": "FAILED_ContractCanceled",
}


def markdown() -> str:
    """docs/error-mapping.md, generated from the tables above."""
    lines = [
        "# Error mapping between ISO 15118 and OCPP 2.0.1",
        "",
        "Generated from `src/v2gstack/trace/error_map.py` (`python -m v2gstack.trace.error_map > "
        "docs/error-mapping.md`); a test keeps the two equal.",
        "",
        "## ISO 15118 / DIN 70121 failure -> OCPP",
        "",
        "When an SECC session ends, the SECC names the kind of the end where it happens (the code it answered, the "
        "timer that expired, the transport error, or the EV leaving and what the SECC last answered) and the station "
        "bridge looks the kind up here and reports it: the transaction ends with "
        "the stoppedReason and triggerReason below; a NotifyEvent (component `ConnectedEV` of the EVSE, variable "
        "`Problem`, actualValue `true`, trigger `Alerting`, techCode = the ISO response code or the kind, techInfo = "
        "the SECC's reason) is sent where marked; a SecurityEventNotification of the given type for security "
        "failures; StatusNotification `Faulted` where the EVSE needs attention. Security event types come from the "
        "OCPP 2.0.1 security events list where it has one (InvalidTLSVersion, InvalidTLSCipherSuite, "
        "InvalidMessages); it has no entries for contract certificates or other TLS handshake failures, so "
        "InvalidContractCertificate, InvalidContractSignature and TLSHandshakeFailed are our own (the type is a free "
        "string of up to 50 characters). The station is the SECC, so the codes are the ones it sends; an EV that "
        "gives up (its own timeouts) is seen as a disconnect and told apart by what the SECC last answered: "
        "`Ongoing` -> OngoingTimeout, an answer later than the performance time -> PerformanceTimeout.",
        "",
        "| kind | ISO side | stoppedReason | triggerReason | NotifyEvent | SecurityEventNotification | Faulted |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in FAILURES.values():
        lines.append(f"| {f.kind} | {f.description} | {f.stopped_reason} | {f.trigger_reason} | "
                     f"{'yes' if f.notify else 'no'} | {f.security_event or '-'} | {'yes' if f.faulted else 'no'} |")
    lines += ["", "ISO response codes by kind (a plain `FAILED` is AuthorizationFailed when it answers Authorization"
              " or ContractAuthentication, IsolationFault when it answers CableCheck, OtherFailed otherwise; the "
              "ISO 15118-20 WARNING_ codes of AuthorizationRes end the session when the EV stops after them):", ""]
    for code, kind in _CODE_KIND.items():
        if code.startswith(("FAILED", "WARNING")):
            lines.append(f"- `{code}` -> {kind}")
    lines += ["", "## OCPP -> ISO 15118", "", "EIM: the idTokenInfo status of Authorize (or of the RequestStart"
              "Transaction's authorization) decides the AuthorizationRes:", "",
              "| idTokenInfo.status | ResponseCode | EVSEProcessing |", "|---|---|---|"]
    for status, (code, processing) in AUTHORIZE_TO_ISO.items():
        lines.append(f"| {status} | {code} | {processing} |")
    lines += ["", "While the answer is pending the SECC answers `OK` with EVSEProcessing `Ongoing` (DIN/-2).", "",
              "Plug & Charge: Authorize's certificateStatus decides the ISO ResponseCode:", "",
              "| certificateStatus | ResponseCode |", "|---|---|"]
    for status, code in CERTIFICATE_TO_ISO.items():
        lines.append(f"| {status} | {code} |")
    lines += ["", "ISO 15118-20 answers a refused authorization with WARNING_ codes (EVSEProcessing `Finished`): a "
              "-2 code a controller gives is translated, anything else is WARNING_EIMAuthorizationFailure (EIM) or "
              "WARNING_GeneralPnCAuthorizationError (Plug & Charge):", "", "| -2 code | -20 code |", "|---|---|"]
    for code2, code20 in ISO2_TO_ISO20_AUTH.items():
        lines.append(f"| {code2} | {code20} |")
    lines += ["", "A CSMS RequestStopTransaction makes the SECC answer the next charge-loop request with "
              "EVSENotification `StopCharging`; the transaction ends with stoppedReason `Remote`, triggerReason "
              "`RemoteStop`. A charging profile that changes during charging makes it answer `ReNegotiation` (-2) "
              "once; DIN has no renegotiation, so there the new limit applies through the EVSE's maximum current or "
              "power in the charge loop.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
