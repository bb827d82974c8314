"""ISO 15118 / OCPP PKI: hierarchies with the -2 Annex F and -20 Annex B profiles, chain checks, OCSP data."""

from __future__ import annotations

from .algorithms import ISO20_ALGORITHMS, KeyAlgorithm, PrivateKey, algorithm_of
from .errors import (
    AlgorithmError,
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
from .hierarchy import Edition, Pki, PkiConfig, create_pki
from .issue import Issued, issue, new_key, subject_name
from .ocsp_data import OcspRequestData, chain_hash_data, ocsp_request_data
from .profiles import PROFILES, PROFILES_20, Kind, Profile
from .verify import Purpose, RevocationStatus, VerifiedChain, iso20_result_code, result_codes, verify_chain

__all__ = [
    "ISO20_ALGORITHMS",
    "PROFILES",
    "PROFILES_20",
    "AlgorithmError",
    "BasicConstraintsError",
    "CertChainError",
    "CertificateExpiredError",
    "CertificateNotYetValidError",
    "CertificateRevokedError",
    "ContractCancelledError",
    "Edition",
    "Issued",
    "IssuerNotFoundError",
    "KeyAlgorithm",
    "KeyUsageError",
    "Kind",
    "NoCertificateAvailableError",
    "OcspRequestData",
    "PathLengthError",
    "Pki",
    "PkiConfig",
    "PkiError",
    "PrivateKey",
    "Profile",
    "Purpose",
    "RevocationStatus",
    "SignatureError",
    "UnknownRootError",
    "VerifiedChain",
    "algorithm_of",
    "chain_hash_data",
    "create_pki",
    "iso20_result_code",
    "issue",
    "new_key",
    "ocsp_request_data",
    "result_codes",
    "subject_name",
    "verify_chain",
]
