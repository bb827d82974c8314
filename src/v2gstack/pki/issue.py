"""Key generation and signing of one certificate from a profile (P-256, ECDSA with SHA-256, X.509 v3)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from .profiles import KEY_USAGE_FIELDS, Profile


@dataclass(frozen=True)
class Issued:
    """A certificate together with its private key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh NIST P-256 (secp256r1) private key."""
    return ec.generate_private_key(ec.SECP256R1())


def subject_name(cn: str, org: str, country: str, dc: str | None) -> x509.Name:
    """Subject DN with CN, O, C and, where the profile says so, the domainComponent (DC)."""
    attrs = [
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COUNTRY_NAME, country),
    ]
    if dc:
        attrs.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, dc))
    return x509.Name(attrs)


def key_usage(names: frozenset[str]) -> x509.KeyUsage:
    """A KeyUsage extension with exactly the named bits set."""
    flags = {f: f in names for f in KEY_USAGE_FIELDS}
    return x509.KeyUsage(encipher_only=False, decipher_only=False, **flags)


def issue(
    profile: Profile,
    subject: x509.Name,
    *,
    issuer: Issued | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
    not_before: dt.datetime | None = None,
    validity_days: int | None = None,
    ocsp_url: str | None = None,
    dns_names: tuple[str, ...] = (),
) -> Issued:
    """Create and sign one certificate; self-signed when no issuer is given."""
    key = key or new_key()
    start = not_before or dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    days = profile.validity_days if validity_days is None else validity_days
    signer_key = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else subject
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=profile.ca, path_length=profile.path_length), critical=True)
        .add_extension(key_usage(profile.key_usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    if profile.extended_key_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(profile.extended_key_usage)), critical=False)
    if dns_names:
        san = x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names])
        builder = builder.add_extension(san, critical=False)
    if issuer is not None:
        ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        if ocsp_url:
            aia = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))
            builder = builder.add_extension(x509.AuthorityInformationAccess([aia]), critical=False)
    return Issued(builder.sign(signer_key, hashes.SHA256()), key)
