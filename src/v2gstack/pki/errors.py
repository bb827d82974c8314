"""Typed chain-verification errors and their ISO 15118-2, ISO 15118-20 and OCPP 2.0.1 result codes."""

from __future__ import annotations

from cryptography import x509


class PkiError(Exception):
    """Base of every PKI failure; carries the ISO 15118-2 ResponseCode and OCPP AuthorizeCertificateStatus."""

    iso_code: str = "FAILED_CertChainError"
    iso20_code: str = "WARNING_CertificateValidationError"  # -20 has no FAILED_CertChainError
    ocpp_status: str = "CertChainError"

    def __init__(self, message: str, cert: x509.Certificate | None = None) -> None:
        """Keep the message and, when known, the certificate the failure is about."""
        super().__init__(message)
        self.cert = cert


class CertChainError(PkiError):
    """The chain cannot be built or a constraint on it does not hold."""


class UnknownRootError(CertChainError):
    """The chain does not end at any configured trust anchor."""


class AlgorithmError(CertChainError):
    """A certificate's key or signature is not of an allowed algorithm set (e.g. P-256 where -20 wants secp521r1 with
    ECDSA-SHA-512 or Ed448 [V2G20-2674, V2G20-2319])."""


class IssuerNotFoundError(CertChainError):
    """No certificate in the chain or the anchors is named as the issuer of a certificate."""


class BasicConstraintsError(CertChainError):
    """A certificate used as a CA is not a CA (e.g. a leaf used as CA), or a leaf is a CA."""


class PathLengthError(CertChainError):
    """A CA's pathLenConstraint is exceeded by the CAs below it."""


class KeyUsageError(CertChainError):
    """A CA lacks keyCertSign, or the leaf lacks the key usage its purpose needs."""


class SignatureError(PkiError):
    """A certificate's signature does not verify with its issuer's public key."""

    iso_code = "FAILED_CertChainError"
    ocpp_status = "SignatureError"


class CertificateExpiredError(PkiError):
    """A certificate of the chain is past its notAfter."""

    iso_code = "FAILED_CertificateExpired"
    iso20_code = "WARNING_CertificateExpired"
    ocpp_status = "CertificateExpired"


class CertificateNotYetValidError(CertificateExpiredError):
    """A certificate of the chain is before its notBefore (-2 and OCPP have no own code; -20 has one)."""

    iso20_code = "WARNING_CertificateNotYetValid"


class CertificateRevokedError(PkiError):
    """A certificate of the chain is revoked according to the revocation callback."""

    iso_code = "FAILED_CertificateRevoked"
    iso20_code = "WARNING_CertificateRevoked"
    ocpp_status = "CertificateRevoked"


class ContractCancelledError(PkiError):
    """The contract behind the certificate was cancelled by the mobility operator."""

    iso_code = "FAILED_ContractCanceled"
    iso20_code = "WARNING_GeneralPnCAuthorizationError"  # -20 has no contract-cancelled code
    ocpp_status = "ContractCancelled"


class NoCertificateAvailableError(PkiError):
    """There is no certificate to check."""

    iso_code = "FAILED_NoCertificateAvailable"
    iso20_code = "WARNING_NoCertificateAvailable"
    ocpp_status = "NoCertificateAvailable"


ISO_OK = "OK"
OCPP_OK = "Accepted"
