"""Chain building and checking to a set of trust anchors, raising typed errors (see errors.py)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed448
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier, SignatureAlgorithmOID

from . import errors as e
from .algorithms import ISO20_ALGORITHMS, KeyAlgorithm, UnsupportedKeyError, algorithm_of


class Purpose(StrEnum):
    """What the leaf is used for; decides the key usage and extended key usage it must have."""

    SECC = "secc"
    CONTRACT = "contract"
    OEM = "oem"
    CPS = "cps"
    CSMS = "csms"
    STATION = "station"
    VEHICLE = "vehicle"  # ISO 15118-20 vehicle certificate: the EVCC's TLS client certificate


PURPOSE_KEY_USAGE: dict[Purpose, frozenset[str]] = {
    Purpose.SECC: frozenset({"digital_signature", "key_agreement"}),
    Purpose.CONTRACT: frozenset({"digital_signature"}),
    Purpose.OEM: frozenset({"digital_signature"}),
    Purpose.CPS: frozenset({"digital_signature"}),
    Purpose.CSMS: frozenset({"digital_signature"}),
    Purpose.STATION: frozenset({"digital_signature"}),
    Purpose.VEHICLE: frozenset({"digital_signature"}),
}
NO_KEY_AGREEMENT = frozenset({"key_agreement"})  # an Ed448 key cannot agree keys; its -20 SECC cert lacks the bit
PURPOSE_EKU: dict[Purpose, ObjectIdentifier] = {
    Purpose.CSMS: ExtendedKeyUsageOID.SERVER_AUTH,
    Purpose.STATION: ExtendedKeyUsageOID.CLIENT_AUTH,
    Purpose.SECC: ExtendedKeyUsageOID.SERVER_AUTH,  # checked only when the certificate has an EKU (-20 has one)
    Purpose.VEHICLE: ExtendedKeyUsageOID.CLIENT_AUTH,
}
# the signature each -20 key set makes: ECDSA-SHA-512 by secp521r1 keys, Ed448 by Ed448 keys
SIGNATURE_OIDS: dict[KeyAlgorithm, ObjectIdentifier] = {
    KeyAlgorithm.P256: SignatureAlgorithmOID.ECDSA_WITH_SHA256,
    KeyAlgorithm.SECP521: SignatureAlgorithmOID.ECDSA_WITH_SHA512,
    KeyAlgorithm.ED448: SignatureAlgorithmOID.ED448,
}


class RevocationStatus(StrEnum):
    """Answer of a revocation callback for one certificate."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"
    CONTRACT_CANCELLED = "contract_cancelled"


RevocationCheck = Callable[[x509.Certificate, x509.Certificate], RevocationStatus]


@dataclass(frozen=True)
class VerifiedChain:
    """A checked path: the leaf first, the trust anchor last."""

    path: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        """The end-entity certificate."""
        return self.path[0]

    @property
    def anchor(self) -> x509.Certificate:
        """The trust anchor the chain ends at."""
        return self.path[-1]


def _ext(cert: x509.Certificate, cls: type) -> object | None:
    """An extension's value, or None when absent."""
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _cn(cert: x509.Certificate) -> str:
    """A short name of a certificate for messages."""
    return cert.subject.rfc4514_string()


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when the issuer's key verifies the certificate's signature."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _key_id_matches(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """False only when both AKI and SKI are present and differ."""
    aki = _ext(cert, x509.AuthorityKeyIdentifier)
    ski = _ext(issuer, x509.SubjectKeyIdentifier)
    if not isinstance(aki, x509.AuthorityKeyIdentifier) or not isinstance(ski, x509.SubjectKeyIdentifier):
        return True
    return aki.key_identifier is None or aki.key_identifier == ski.digest


def find_issuer(cert: x509.Certificate, candidates: Sequence[x509.Certificate]) -> x509.Certificate | None:
    """The candidate named as issuer of cert whose key id (if both have one) matches; a verifying one if several."""
    named = [c for c in candidates if c.subject == cert.issuer and c != cert and _key_id_matches(cert, c)]
    if len(named) > 1:
        named = [c for c in named if _signed_by(cert, c)] or named
    return named[0] if named else None


def build_path(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    max_intermediates: int = 4,
) -> list[x509.Certificate]:
    """Order leaf, intermediates and one anchor into a path by name chaining (no signature or policy checks)."""
    path = [leaf]
    while True:
        current = path[-1]
        anchor = find_issuer(current, anchors)
        if anchor is not None:
            return [*path, anchor]
        if len(path) > max_intermediates:
            raise e.CertChainError(f"chain longer than {max_intermediates} sub-CAs", current)
        nxt = find_issuer(current, [c for c in intermediates if c not in path])
        if nxt is None:
            issuer = current.issuer.rfc4514_string()
            if current is leaf and intermediates:
                raise e.IssuerNotFoundError(f"issuer {issuer} of {_cn(current)} is not in the chain", current)
            raise e.UnknownRootError(f"chain does not end at a trust anchor: {issuer} is not trusted", current)
        path.append(nxt)


def _check_signatures(path: list[x509.Certificate]) -> None:
    """Every certificate but the anchor must be signed by the next one."""
    for cert, issuer in itertools.pairwise(path):
        try:
            cert.verify_directly_issued_by(issuer)
        except ValueError as exc:
            raise e.IssuerNotFoundError(f"{_cn(cert)} is not issued by {_cn(issuer)}: {exc}", cert) from None
        except (InvalidSignature, TypeError):
            raise e.SignatureError(f"signature of {_cn(cert)} does not verify with {_cn(issuer)}", cert) from None


def _check_cas(path: list[x509.Certificate]) -> None:
    """Basic constraints, keyCertSign and path length of every CA above the leaf."""
    for depth, ca in enumerate(path[1:], start=1):
        is_anchor = depth == len(path) - 1
        bc = _ext(ca, x509.BasicConstraints)
        if not isinstance(bc, x509.BasicConstraints) or not bc.ca:
            raise e.BasicConstraintsError(f"{_cn(ca)} issues certificates but is not a CA", ca)
        ku = _ext(ca, x509.KeyUsage)
        if ku is None and not is_anchor:
            raise e.KeyUsageError(f"{_cn(ca)} has no key usage extension", ca)
        if isinstance(ku, x509.KeyUsage) and not ku.key_cert_sign:
            raise e.KeyUsageError(f"{_cn(ca)} lacks keyCertSign", ca)
        below = depth - 1
        if bc.path_length is not None and below > bc.path_length:
            raise e.PathLengthError(f"{_cn(ca)} allows {bc.path_length} sub-CAs below it, chain has {below}", ca)


def _check_validity(path: list[x509.Certificate], at: dt.datetime) -> None:
    """Every certificate, the anchor included, must be valid at the given time."""
    for cert in path:
        if at < cert.not_valid_before_utc:
            raise e.CertificateNotYetValidError(f"{_cn(cert)} is not valid before {cert.not_valid_before_utc}", cert)
        if at > cert.not_valid_after_utc:
            raise e.CertificateExpiredError(f"{_cn(cert)} expired at {cert.not_valid_after_utc}", cert)


def check_purpose(leaf: x509.Certificate, purpose: Purpose) -> None:
    """The leaf must not be a CA and must carry the key usage (and EKU, if it has one) its purpose needs."""
    bc = _ext(leaf, x509.BasicConstraints)
    if isinstance(bc, x509.BasicConstraints) and bc.ca:
        raise e.BasicConstraintsError(f"{_cn(leaf)} is a CA, not a {purpose.value} leaf", leaf)
    ku = _ext(leaf, x509.KeyUsage)
    if not isinstance(ku, x509.KeyUsage):
        raise e.KeyUsageError(f"{_cn(leaf)} has no key usage extension", leaf)
    wanted_usage = PURPOSE_KEY_USAGE[purpose]
    if isinstance(leaf.public_key(), ed448.Ed448PublicKey):
        wanted_usage = wanted_usage - NO_KEY_AGREEMENT
    missing = sorted(u for u in wanted_usage if not getattr(ku, u))
    if missing:
        raise e.KeyUsageError(f"{_cn(leaf)} lacks {', '.join(missing)} for {purpose.value}", leaf)
    eku = _ext(leaf, x509.ExtendedKeyUsage)
    wanted = PURPOSE_EKU.get(purpose)
    if wanted is not None and isinstance(eku, x509.ExtendedKeyUsage) and wanted not in eku:
        raise e.KeyUsageError(f"{_cn(leaf)} extended key usage lacks {wanted.dotted_string}", leaf)


def check_algorithms(path: Sequence[x509.Certificate], allowed: frozenset[KeyAlgorithm]) -> None:
    """Every certificate's key must be of an allowed set and be signed as its issuer's set signs (secp521r1 keys sign
    ECDSA-SHA-512, Ed448 keys Ed448); the anchor's own signature included."""
    for i, cert in enumerate(path):
        try:
            algorithm = algorithm_of(cert.public_key())
        except UnsupportedKeyError as exc:
            raise e.AlgorithmError(f"{_cn(cert)}: {exc}", cert) from None
        if algorithm not in allowed:
            raise e.AlgorithmError(f"{_cn(cert)} has a {algorithm.value} key, allowed: "
                                   f"{', '.join(sorted(a.value for a in allowed))}", cert)
        issuer = path[i + 1] if i + 1 < len(path) else cert
        try:
            wanted = SIGNATURE_OIDS[algorithm_of(issuer.public_key())]
        except UnsupportedKeyError as exc:
            raise e.AlgorithmError(f"{_cn(issuer)}: {exc}", issuer) from None
        if cert.signature_algorithm_oid != wanted:
            raise e.AlgorithmError(f"{_cn(cert)} is signed with {cert.signature_algorithm_oid._name}, "
                                   f"its issuer's key signs {wanted._name}", cert)


def _check_revocation(path: list[x509.Certificate], revocation: RevocationCheck) -> None:
    """Ask the callback about every certificate below the anchor."""
    for cert, issuer in itertools.pairwise(path):
        status = revocation(cert, issuer)
        if status is RevocationStatus.REVOKED:
            raise e.CertificateRevokedError(f"{_cn(cert)} is revoked", cert)
        if status is RevocationStatus.CONTRACT_CANCELLED:
            raise e.ContractCancelledError(f"contract of {_cn(cert)} is cancelled", cert)


def verify_chain(
    leaf: x509.Certificate | None,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    *,
    at: dt.datetime | None = None,
    purpose: Purpose | None = None,
    revocation: RevocationCheck | None = None,
    max_intermediates: int = 4,
    algorithms: frozenset[KeyAlgorithm] | None = None,
) -> VerifiedChain:
    """Build and check leaf -> intermediates -> anchor; raise a PkiError subclass on the first failure.
    `algorithms` restricts every certificate to those key sets (ISO20_ALGORITHMS for an ISO 15118-20 chain)."""
    if leaf is None:
        raise e.NoCertificateAvailableError("no certificate")
    when = at or dt.datetime.now(dt.UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    path = build_path(leaf, intermediates, anchors, max_intermediates)
    if algorithms is not None:
        check_algorithms(path, algorithms)
    _check_signatures(path)
    _check_cas(path)
    _check_validity(path, when)
    if purpose is not None:
        check_purpose(leaf, purpose)
    if revocation is not None:
        _check_revocation(path, revocation)
    return VerifiedChain(tuple(path))


def iso20_result_code(exc: e.PkiError | None) -> str:
    """The ISO 15118-20 ResponseCode for a verification outcome (None means success)."""
    return "OK" if exc is None else exc.iso20_code


ISO20 = ISO20_ALGORITHMS


def result_codes(exc: e.PkiError | None) -> tuple[str, str]:
    """(ISO 15118 ResponseCode, OCPP AuthorizeCertificateStatus) for a verification outcome; None means success."""
    if exc is None:
        return e.ISO_OK, e.OCPP_OK
    return exc.iso_code, exc.ocpp_status
