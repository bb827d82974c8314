"""ISO 15118 / OCPP PKI: hierarchies with the Annex F profiles, chain verification, OCSP request data."""

from __future__ import annotations

from .errors import (
    BasicConstraintsError,
    CertChainError,
    CertificateExpiredError,
    CertificateNotYetValidError,
    CertificateRevokedError,
    ContractCancelledError,
    IssuerNotFoundError,
    KeyUsageError,
    NoCertificateAvailableError,
    PathLengthError,
    PkiError,
    SignatureError,
    UnknownRootError,
)
from .hierarchy import Pki, PkiConfig, create_pki
from .issue import Issued, issue, new_key, subject_name
from .ocsp_data import OcspRequestData, chain_hash_data, ocsp_request_data
from .profiles import PROFILES, Kind, Profile
from .verify import Purpose, RevocationStatus, VerifiedChain, result_codes, verify_chain

__all__ = [
    "PROFILES",
    "BasicConstraintsError",
    "CertChainError",
    "CertificateExpiredError",
    "CertificateNotYetValidError",
    "CertificateRevokedError",
    "ContractCancelledError",
    "Issued",
    "IssuerNotFoundError",
    "KeyUsageError",
    "Kind",
    "NoCertificateAvailableError",
    "OcspRequestData",
    "PathLengthError",
    "Pki",
    "PkiConfig",
    "PkiError",
    "Profile",
    "Purpose",
    "RevocationStatus",
    "SignatureError",
    "UnknownRootError",
    "VerifiedChain",
    "chain_hash_data",
    "create_pki",
    "issue",
    "new_key",
    "ocsp_request_data",
    "result_codes",
    "subject_name",
    "verify_chain",
]
