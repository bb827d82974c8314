"""A readable description of a certificate as (field, value) rows, for `pki inspect`."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from .der import DerError, alt_public_key, validity_time_tags
from .profiles import KEY_USAGE_FIELDS

X509_NAMES = {
    "digital_signature": "digitalSignature",
    "content_commitment": "nonRepudiation",
    "key_encipherment": "keyEncipherment",
    "data_encipherment": "dataEncipherment",
    "key_agreement": "keyAgreement",
    "key_cert_sign": "keyCertSign",
    "crl_sign": "cRLSign",
}


def _ext(cert: x509.Certificate, cls: type) -> object | None:
    """An extension's value, or None when absent."""
    try:
        return cert.extensions.get_extension_for_class(cls).value
    except x509.ExtensionNotFound:
        return None


def _key_usage(ku: object | None) -> str:
    """Key usage bits that are set."""
    if not isinstance(ku, x509.KeyUsage):
        return "-"
    return ", ".join(X509_NAMES[f] for f in KEY_USAGE_FIELDS if getattr(ku, f)) or "(none)"


def _basic_constraints(bc: object | None) -> str:
    """CA flag and path length."""
    if not isinstance(bc, x509.BasicConstraints):
        return "-"
    if not bc.ca:
        return "CA=false"
    return "CA=true, pathLen=" + ("unlimited" if bc.path_length is None else str(bc.path_length))


def _aia(aia: object | None) -> str:
    """Access method and location of each AIA entry."""
    if not isinstance(aia, x509.AuthorityInformationAccess):
        return "-"
    return "; ".join(f"{d.access_method._name}: {d.access_location.value}" for d in aia)


def _eku(eku: object | None) -> str:
    """Extended key usage names."""
    if not isinstance(eku, x509.ExtendedKeyUsage):
        return "-"
    return ", ".join(o._name for o in eku)


def _key_id(value: object | None) -> str:
    """A key identifier as hex."""
    if isinstance(value, x509.SubjectKeyIdentifier):
        return value.digest.hex(":")
    if isinstance(value, x509.AuthorityKeyIdentifier) and value.key_identifier:
        return value.key_identifier.hex(":")
    return "-"


def _alt_key(cert: x509.Certificate) -> str:
    """The key type of subjectAltPublicKeyInfo (ISO 15118-20 Ed448 OEM provisioning certificates carry X448)."""
    try:
        key = alt_public_key(cert)
    except DerError as exc:
        return f"unreadable: {exc}"
    return "-" if key is None else "X448"


def _time_encoding(cert: x509.Certificate) -> str:
    """UTCTime or GeneralizedTime, as the validity is encoded (ISO 15118-20 wants GeneralizedTime)."""
    names = {0x17: "UTCTime", 0x18: "GeneralizedTime"}
    try:
        tags = validity_time_tags(cert)
    except DerError:
        return "?"
    return " / ".join(names.get(t, hex(t)) for t in tags)


def describe(cert: x509.Certificate) -> list[tuple[str, str]]:
    """Subject, issuer, serial, validity, key, signature, extensions and fingerprints of a certificate."""
    pub = cert.public_key()
    curve = getattr(getattr(pub, "curve", None), "name", "")
    sig_hash = cert.signature_hash_algorithm
    return [
        ("Subject", cert.subject.rfc4514_string()),
        ("Issuer", cert.issuer.rfc4514_string()),
        ("Version", cert.version.name),
        ("Serial", format(cert.serial_number, "x")),
        ("Not before", cert.not_valid_before_utc.isoformat()),
        ("Not after", cert.not_valid_after_utc.isoformat()),
        ("Validity encoding", _time_encoding(cert)),
        ("Public key", f"{type(pub).__name__.lstrip('_')} {curve}".strip()),
        ("Signature", f"{cert.signature_algorithm_oid._name} ({sig_hash.name if sig_hash else '-'})"),
        ("Basic constraints", _basic_constraints(_ext(cert, x509.BasicConstraints))),
        ("Key usage", _key_usage(_ext(cert, x509.KeyUsage))),
        ("Extended key usage", _eku(_ext(cert, x509.ExtendedKeyUsage))),
        ("Subject key id", _key_id(_ext(cert, x509.SubjectKeyIdentifier))),
        ("Authority key id", _key_id(_ext(cert, x509.AuthorityKeyIdentifier))),
        ("AIA", _aia(_ext(cert, x509.AuthorityInformationAccess))),
        ("Alt public key", _alt_key(cert)),
        ("SHA-256 fingerprint", cert.fingerprint(hashes.SHA256()).hex(":").upper()),
        ("SHA-1 fingerprint", cert.fingerprint(hashes.SHA1()).hex(":").upper()),
    ]
