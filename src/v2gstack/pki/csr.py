"""Signing certificate requests (PKCS#10) for stations: OCPP SignCertificate -> CertificateSigned.

A station asks for a ChargingStationCertificate (its OCPP client certificate, CN = station identity) or a
V2GCertificate (its SECC certificate for ISO 15118 TLS). The request's own signature, key type (P-256, or secp521r1 /
Ed448 for ISO 15118-20) and subject are checked before anything is signed; the certificate gets the profile of its
kind, never what the CSR asks for, signed the way the issuer's key signs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from .algorithms import signature_hash
from .issue import Issued, key_usage
from .profiles import PROFILES, Kind


class CsrError(ValueError):
    """A certificate request that cannot be signed; `reason` is a short code for OCPP statusInfo (<= 20 chars)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class SignedCertificate:
    """The new certificate and the chain to send (leaf first, then the issuing sub-CAs, no root)."""

    cert: x509.Certificate
    chain: tuple[x509.Certificate, ...]


def load_csr(pem: str | bytes) -> x509.CertificateSigningRequest:
    """Parse a PEM CSR (OCPP sends it PEM-encoded), checking its self-signature and key type."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        csr = x509.load_pem_x509_csr(data)
    except ValueError as e:
        raise CsrError("InvalidCSR", f"not a PEM certificate signing request: {e}") from None
    if not csr.is_signature_valid:
        raise CsrError("InvalidSignature", "the CSR's signature does not verify with its own key")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | ed448.Ed448PublicKey) or (
            isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name not in ("secp256r1", "secp521r1")):
        raise CsrError("InvalidKey", "the CSR's key is not P-256, secp521r1 (ISO 15118-20) or Ed448 (ISO 15118-20)")
    return csr


def common_name(csr: x509.CertificateSigningRequest) -> str:
    """The subject CN of a request ('' if none)."""
    values = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def sign_csr(csr: x509.CertificateSigningRequest, kind: Kind, issuer: Issued,
             chain: tuple[x509.Certificate, ...] = (), *, ocsp_url: str | None = None,
             validity_days: int | None = None) -> SignedCertificate:
    """Issue a certificate of `kind` (Kind.STATION or Kind.SECC) for the request, signed by `issuer`.

    `chain` is what lies between the issuer and the root (nearest first) and is appended after the issuer.
    """
    profile = PROFILES[kind]
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    public = csr.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(issuer.cert.subject)
        .public_key(public)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=validity_days or profile.validity_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(profile.key_usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)  # type: ignore[arg-type]
    )
    if profile.extended_key_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(profile.extended_key_usage)), critical=False)
    ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                                    critical=False)
    if ocsp_url:
        aia = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))
        builder = builder.add_extension(x509.AuthorityInformationAccess([aia]), critical=False)
    cert = builder.sign(issuer.key, signature_hash(issuer.key))
    return SignedCertificate(cert, (cert, issuer.cert, *chain))
