"""The one table that maps ISO 15118 / DIN 70121 failures to their OCPP 2.0.1 reports, and OCPP answers back to ISO.

A failed ISO session (a FAILED_* response code sent or received, a timer that expired, a TLS, V2GTP or EXI error, an
unexpected disconnect) becomes, on the OCPP side: the TransactionEvent stoppedReason/triggerReason that ends the
transaction, a NotifyEvent on the EVSE's ConnectedEV component (variable Problem, techCode = the ISO code), a
SecurityEventNotification for security failures, and StatusNotification Faulted when the EVSE cannot be used.
docs/error-mapping.md is generated from this module (`markdown()`); a test keeps them equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class IsoFailure:
    """How one kind of ISO 15118 failure is reported in OCPP 2.0.1."""

    kind: str
    description: str
    stopped_reason: str  # ReasonEnumType
    trigger_reason: str  # TriggerReasonEnumType of the Ended event
    notify: bool = True  # NotifyEvent ConnectedEV/Problem
    security_event: str | None = None  # SecurityEventNotification type
    faulted: bool = False  # StatusNotification Faulted (the EVSE needs attention before the next session)


FAILURES: dict[str, IsoFailure] = {f.kind: f for f in [
    IsoFailure("Normal", "SessionStopReq(Terminate) answered OK: the EV ended the session", "EVDisconnected",
               "EVCommunicationLost", notify=False),
    IsoFailure("Paused", "SessionStopReq(Pause) (-2): the EV pauses and may resume with the same SessionID",
               "StoppedByEV", "ChargingStateChanged", notify=False),
    IsoFailure("NoCommonProtocol", "supportedAppProtocolRes Failed_NoNegotiation: no common protocol", "Other",
               "AbnormalCondition"),
    IsoFailure("SequenceError", "FAILED_SequenceError: a request out of order", "Other", "AbnormalCondition"),
    IsoFailure("UnknownSession", "FAILED_UnknownSession: a SessionID that is not this session's", "Other",
               "AbnormalCondition"),
    IsoFailure("AuthorizationFailed", "Authorization answered FAILED (EIM: the idToken was refused)", "DeAuthorized",
               "Deauthorized"),
    IsoFailure("WrongChargeParameter", "FAILED_WrongChargeParameter / FAILED_WrongEnergyTransferMode", "Other",
               "AbnormalCondition"),
    IsoFailure("IsolationFault", "CableCheck FAILED: isolation Invalid or Fault", "GroundFault", "AbnormalCondition",
               faulted=True),
    IsoFailure("ContactorError", "FAILED_ContactorError / FAILED_PowerDeliveryNotApplied", "Other",
               "AbnormalCondition", faulted=True),
    IsoFailure("ProfileInvalid", "FAILED_ChargingProfileInvalid / FAILED_TariffSelectionInvalid", "Other",
               "AbnormalCondition"),
    IsoFailure("CertificateError", "FAILED_CertChainError, FAILED_CertificateExpired, FAILED_CertificateRevoked, "
               "FAILED_NoCertificateAvailable, FAILED_ContractCanceled", "DeAuthorized", "Deauthorized",
               security_event="InvalidContractCertificate"),
    IsoFailure("SignatureError", "FAILED_SignatureError, FAILED_ChallengeInvalid, FAILED_MeteringSignatureNotValid",
               "DeAuthorized", "Deauthorized", security_event="InvalidContractSignature"),
    IsoFailure("OtherFailed", "any other FAILED response code", "Other", "AbnormalCondition"),
    IsoFailure("SequenceTimeout", "V2G_SECC_Sequence_Timeout: the EV sent no request in time", "Timeout",
               "EVCommunicationLost"),
    IsoFailure("CommunicationSetupTimeout", "the EV connected but set up no session (SessionSetup) before the SECC's "
               "sequence timer expired (the SECC's view of V2G_EVCC_CommunicationSetup_Timeout)", "Timeout",
               "EVCommunicationLost"),
    IsoFailure("PerformanceTimeout", "the SECC answered later than V2G_SECC_Msg_Performance_Time and the EV left "
               "(its V2G_EVCC_Msg_Timeout)", "Timeout", "EVCommunicationLost"),
    IsoFailure("OngoingTimeout", "the EV left while the SECC answered EVSEProcessing=Ongoing (its "
               "V2G_EVCC_Ongoing_Timeout: authorization or charging schedule not ready in time)", "Timeout",
               "EVCommunicationLost"),
    IsoFailure("TlsVersion", "TLS handshake failed: protocol version not accepted", "Other", "AbnormalCondition",
               security_event="InvalidTLSVersion"),
    IsoFailure("TlsCipherSuite", "TLS handshake failed: no common cipher suite", "Other", "AbnormalCondition",
               security_event="InvalidTLSCipherSuite"),
    IsoFailure("TlsFailure", "TLS handshake failed otherwise (the EV refused our certificate, or no TLS at all)",
               "Other", "AbnormalCondition", security_event="TLSHandshakeFailed"),
    IsoFailure("V2gtpError", "V2GTP error: bad header, payload type or length (the SECC closes)", "Other",
               "AbnormalCondition", security_event="InvalidMessages"),
    IsoFailure("ExiError", "undecodable EXI (the SECC closes)", "Other", "AbnormalCondition",
               security_event="InvalidMessages"),
    IsoFailure("Disconnected", "the EV closed the TCP/TLS connection outside SessionStop", "EVDisconnected",
               "EVCommunicationLost"),
    IsoFailure("InternalError", "the SECC or the station failed while handling a request", "Other",
               "AbnormalCondition", faulted=True),
    IsoFailure("Shutdown", "the SECC was stopped (station reset or shutdown)", "Reboot", "ResetCommand",
               notify=False),
]}

_CODE_KIND = {
    "FAILED_SequenceError": "SequenceError", "FAILED_UnknownSession": "UnknownSession",
    "FAILED_WrongChargeParameter": "WrongChargeParameter", "FAILED_WrongEnergyTransferMode": "WrongChargeParameter",
    "FAILED_ContactorError": "ContactorError", "FAILED_PowerDeliveryNotApplied": "ContactorError",
    "FAILED_ChargingProfileInvalid": "ProfileInvalid", "FAILED_TariffSelectionInvalid": "ProfileInvalid",
    "FAILED_CertChainError": "CertificateError", "FAILED_CertificateExpired": "CertificateError",
    "FAILED_CertificateRevoked": "CertificateError", "FAILED_NoCertificateAvailable": "CertificateError",
    "FAILED_ContractCanceled": "CertificateError", "FAILED_SignatureError": "SignatureError",
    "FAILED_ChallengeInvalid": "SignatureError", "FAILED_MeteringSignatureNotValid": "SignatureError",
}
_CODE = re.compile(r"\b(FAILED(?:_\w+)?)\b")


def classify(reason: str, *, session: bool = True, ongoing: bool = False,
             late: bool = False) -> tuple[IsoFailure, str | None]:
    """The failure kind of an SECC session end reason, and the ISO response code it names (if any).

    The context refines timeouts the SECC cannot see itself: `session` false (no SessionSetup yet), `ongoing` (the
    last answer was EVSEProcessing=Ongoing) and `late` (the last answer missed its performance time)."""
    failure, code = _classify(reason)
    if failure.kind == "SequenceTimeout" and not session:
        return FAILURES["CommunicationSetupTimeout"], None
    if failure.kind == "Disconnected":
        if ongoing:
            return FAILURES["OngoingTimeout"], None
        if late:
            return FAILURES["PerformanceTimeout"], None
    return failure, code


def _classify(reason: str) -> tuple[IsoFailure, str | None]:
    if reason.startswith("EV terminated"):
        return FAILURES["Normal"], None
    if reason.startswith("EV paused"):
        return FAILURES["Paused"], None
    if "Failed_NoNegotiation" in reason or "no common application protocol" in reason:
        return FAILURES["NoCommonProtocol"], "Failed_NoNegotiation"
    m = _CODE.search(reason)
    if m is not None:
        code = m.group(1)
        if code in _CODE_KIND:
            return FAILURES[_CODE_KIND[code]], code
        if "Authorization" in reason or "ContractAuthentication" in reason:
            return FAILURES["AuthorizationFailed"], code
        if "CableCheck" in reason:
            return FAILURES["IsolationFault"], code
        return FAILURES["OtherFailed"], code
    if "TLS" in reason or "SSL" in reason:
        upper = reason.upper()
        if any(k in upper for k in ("UNSUPPORTED_PROTOCOL", "VERSION_TOO_LOW", "VERSION_TOO_HIGH",
                                    "ALERT_PROTOCOL_VERSION")):
            return FAILURES["TlsVersion"], None
        if "NO_SHARED_CIPHER" in upper or "NO_CIPHERS" in upper:
            return FAILURES["TlsCipherSuite"], None
        return FAILURES["TlsFailure"], None
    for needle, kind in (("Sequence_Timeout", "SequenceTimeout"), ("CommunicationSetup", "CommunicationSetupTimeout"),
                         ("V2GTP", "V2gtpError"),
                         ("undecodable EXI", "ExiError"), ("closed the connection", "Disconnected"),
                         ("connection error", "Disconnected"), ("shutting down", "Shutdown"),
                         ("internal error", "InternalError")):
        if needle in reason:
            return FAILURES[kind], None
    return FAILURES["InternalError"], None


def notify_event(failure: IsoFailure, code: str | None, reason: str, evse_id: int, event_id: int, timestamp: str,
                 transaction_id: str | None = None) -> dict[str, object]:
    """The NotifyEvent EventData for a failure: ConnectedEV/Problem on the EVSE, techCode = the ISO code."""
    data: dict[str, object] = {
        "eventId": event_id, "timestamp": timestamp, "trigger": "Alerting", "actualValue": "true",
        "techCode": (code or failure.kind)[:50], "techInfo": reason[:500],
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
        "When an SECC session ends, the station bridge classifies the end and reports it: the transaction ends with "
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
    lines += ["", "ISO response codes by kind:", ""]
    for code, kind in _CODE_KIND.items():
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
    lines += ["", "A CSMS RequestStopTransaction makes the SECC answer the next charge-loop request with "
              "EVSENotification `StopCharging`; the transaction ends with stoppedReason `Remote`, triggerReason "
              "`RemoteStop`. A charging profile that changes during charging makes it answer `ReNegotiation` (-2) "
              "once; DIN has no renegotiation, so there the new limit applies through the EVSE's maximum current or "
              "power in the charge loop.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(), end="")
