"""The ISO 15118 -> OCPP error table: the documentation is generated from it, and SECC end reasons classify."""

from __future__ import annotations

from pathlib import Path

import pytest

from v2gstack.trace.error_map import FAILURES, classify, markdown, notify_event

DOC = Path(__file__).resolve().parent.parent / "docs" / "error-mapping.md"


def test_docs_match_the_table() -> None:
    assert DOC.read_text() == markdown(), "regenerate: python -m v2gstack.trace.error_map > docs/error-mapping.md"


@pytest.mark.parametrize(("reason", "kind", "code"), [
    ("EV terminated the session", "Normal", None),
    ("EV paused the session", "Paused", None),
    ("AuthorizationReq is out of sequence (expected x): answered FAILED_SequenceError", "SequenceError",
     "FAILED_SequenceError"),
    ("answered AuthorizationRes with FAILED", "AuthorizationFailed", "FAILED"),
    ("answered CableCheckRes with FAILED", "IsolationFault", "FAILED"),
    ("answered AuthorizationRes with FAILED_CertificateRevoked", "CertificateError", "FAILED_CertificateRevoked"),
    ("answered AuthorizationRes with FAILED_SignatureError", "SignatureError", "FAILED_SignatureError"),
    ("V2G_SECC_Sequence_Timeout (60 s) expired waiting for CurrentDemandReq", "SequenceTimeout", None),
    ("V2GTP error (bad version): ...", "V2gtpError", None),
    ("undecodable EXI (iso2, 5 bytes): ...", "ExiError", None),
    ("EVCC closed the connection", "Disconnected", None),
    ("no common application protocol: answered Failed_NoNegotiation", "NoCommonProtocol", "Failed_NoNegotiation"),
    ("something nobody expected", "InternalError", None),
])
def test_classify(reason: str, kind: str, code: str | None) -> None:
    failure, got = classify(reason)
    assert (failure.kind, got) == (kind, code)


@pytest.mark.parametrize(("reason", "context", "kind"), [
    ("V2G_SECC_Sequence_Timeout (60 s) expired waiting for SessionSetupReq", {"session": False},
     "CommunicationSetupTimeout"),
    ("EVCC closed the connection", {"ongoing": True}, "OngoingTimeout"),
    ("EVCC closed the connection (reset)", {"late": True}, "PerformanceTimeout"),
    ("EVCC closed the connection", {"ongoing": True, "late": True}, "OngoingTimeout"),
    ("answered AuthorizationRes with FAILED", {"ongoing": True}, "AuthorizationFailed"),
    ("TLS handshake failed (UNSUPPORTED_PROTOCOL): [SSL: UNSUPPORTED_PROTOCOL] unsupported protocol", {},
     "TlsVersion"),
    ("TLS handshake failed (NO_SHARED_CIPHER): [SSL: NO_SHARED_CIPHER] no shared cipher", {}, "TlsCipherSuite"),
    ("TLS handshake failed (WRONG_VERSION_NUMBER): [SSL: WRONG_VERSION_NUMBER] wrong version number", {},
     "TlsFailure"),
    ("TLS handshake failed (TLSV1_ALERT_UNKNOWN_CA): ...", {}, "TlsFailure"),
])
def test_classify_with_context(reason: str, context: dict[str, bool], kind: str) -> None:
    assert classify(reason, **context)[0].kind == kind


def test_every_failure_maps_to_valid_ocpp_values() -> None:
    reasons = {"DeAuthorized", "EmergencyStop", "EnergyLimitReached", "EVDisconnected", "GroundFault", "ImmediateReset",
               "Local", "LocalOutOfCredit", "MasterPass", "Other", "OvercurrentFault", "PowerLoss", "PowerQuality",
               "Reboot", "Remote", "SOCLimitReached", "StoppedByEV", "TimeLimitReached", "Timeout"}
    for f in FAILURES.values():
        assert f.stopped_reason in reasons, f
        assert f.security_event is None or len(f.security_event) <= 50
        data = notify_event(f, None, "x" * 600, 1, 1, "2026-11-24T00:00:00Z")
        assert len(data["techInfo"]) == 500 and data["component"] == {"name": "ConnectedEV", "evse": {"id": 1}}
