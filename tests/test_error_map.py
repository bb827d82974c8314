"""The ISO 15118 -> OCPP error table: the documentation is generated from it, it is looked up by FailureKind, and ISO
response codes name their kind. (How the SECC decides the kind of each ending: test_iso15118_secc_events.py.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from v2gstack.trace.error_map import FAILURES, FailureKind, kind_of_code, markdown, notify_event

DOC = Path(__file__).resolve().parent.parent / "docs" / "error-mapping.md"
TRACE = Path(__file__).resolve().parent.parent / "src" / "v2gstack" / "trace"


def test_docs_match_the_table() -> None:
    assert DOC.read_text() == markdown(), "regenerate: python -m v2gstack.trace.error_map > docs/error-mapping.md"


def test_one_row_per_kind() -> None:
    assert list(FAILURES) == list(FailureKind)
    assert all(FAILURES[kind].kind is kind for kind in FailureKind)


@pytest.mark.parametrize(("code", "kind"), [
    ("FAILED_SequenceError", FailureKind.SEQUENCE_ERROR),
    ("FAILED_UnknownSession", FailureKind.UNKNOWN_SESSION),
    ("FAILED_WrongChargeParameter", FailureKind.WRONG_CHARGE_PARAMETER),
    ("FAILED_WrongEnergyTransferMode", FailureKind.WRONG_CHARGE_PARAMETER),
    ("FAILED_ContactorError", FailureKind.CONTACTOR_ERROR),
    ("FAILED_PowerDeliveryNotApplied", FailureKind.CONTACTOR_ERROR),
    ("FAILED_ChargingProfileInvalid", FailureKind.PROFILE_INVALID),
    ("FAILED_TariffSelectionInvalid", FailureKind.PROFILE_INVALID),
    ("FAILED_CertChainError", FailureKind.CERTIFICATE_ERROR),
    ("FAILED_CertificateExpired", FailureKind.CERTIFICATE_ERROR),
    ("FAILED_CertificateRevoked", FailureKind.CERTIFICATE_ERROR),
    ("FAILED_NoCertificateAvailable", FailureKind.CERTIFICATE_ERROR),
    ("FAILED_ContractCanceled", FailureKind.CERTIFICATE_ERROR),
    ("FAILED_SignatureError", FailureKind.SIGNATURE_ERROR),
    ("FAILED_ChallengeInvalid", FailureKind.SIGNATURE_ERROR),
    ("FAILED_MeteringSignatureNotValid", FailureKind.SIGNATURE_ERROR),
    ("Failed_NoNegotiation", FailureKind.NO_COMMON_PROTOCOL),
    ("FAILED_PaymentSelectionInvalid", FailureKind.OTHER_FAILED),
    ("FAILED", FailureKind.OTHER_FAILED),
])
def test_kind_of_code(code: str, kind: FailureKind) -> None:
    assert kind_of_code(code) is kind


def test_no_classification_by_wording() -> None:
    """Nothing under trace/ decides a kind by searching reason or detail text."""
    sources = sorted(TRACE.rglob("*.py"))
    assert len(sources) >= 5
    found = [f"{path.name}: {line}" for path in sources for line in path.read_text().splitlines()
             if re.search(r"in (reason|detail)\b", line)]
    assert found == []


def test_every_failure_maps_to_valid_ocpp_values() -> None:
    reasons = {"DeAuthorized", "EmergencyStop", "EnergyLimitReached", "EVDisconnected", "GroundFault", "ImmediateReset",
               "Local", "LocalOutOfCredit", "MasterPass", "Other", "OvercurrentFault", "PowerLoss", "PowerQuality",
               "Reboot", "Remote", "SOCLimitReached", "StoppedByEV", "TimeLimitReached", "Timeout"}
    for f in FAILURES.values():
        assert f.stopped_reason in reasons, f
        assert f.security_event is None or len(f.security_event) <= 50
        data = notify_event(f, None, "x" * 600, 1, 1, "2026-11-24T00:00:00Z")
        assert len(data["techInfo"]) == 500 and data["component"] == {"name": "ConnectedEV", "evse": {"id": 1}}
        assert data["techCode"] == f.kind.value
