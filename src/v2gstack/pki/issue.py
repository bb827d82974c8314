"""Key generation and signing of one certificate from a profile: P-256 with ECDSA-SHA-256 (ISO 15118-2, OCPP), or
the ISO 15118-20 sets secp521r1 with ECDSA-SHA-512 and Ed448 (X.509 v3 in all cases)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed448, x448
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from .algorithms import KeyAlgorithm, PrivateKey, key_identifier_method2, signature_hash
from .algorithms import new_key as _new_key
from .der import alt_public_key_extension, with_generalized_time
from .profiles import KEY_USAGE_FIELDS, Profile


@dataclass(frozen=True)
class Issued:
    """A certificate together with its private key (and, for an Ed448 OEM provisioning certificate, the X448 key of
    its subjectAltPublicKeyInfo)."""

    cert: x509.Certificate
    key: PrivateKey
    alt_key: x448.X448PrivateKey | None = None


def new_key(algorithm: KeyAlgorithm = KeyAlgorithm.P256) -> PrivateKey:
    """A fresh private key of an algorithm set (NIST P-256 by default, as ISO 15118-2 and OCPP use)."""
    return _new_key(algorithm)


def subject_name(cn: str, org: str, country: str | None, dc: str | None) -> x509.Name:
    """Subject DN with CN, O, C (when given) and, where the profile says so, the domainComponent (DC)."""
    attrs = [
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
    ]
    if country:
        attrs.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    if dc:
        attrs.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, dc))
    return x509.Name(attrs)


def key_usage(names: frozenset[str]) -> x509.KeyUsage:
    """A KeyUsage extension with exactly the named bits set."""
    flags = {f: f in names for f in KEY_USAGE_FIELDS}
    return x509.KeyUsage(encipher_only=False, decipher_only=False, **flags)


def _ski(profile: Profile, public: object) -> x509.SubjectKeyIdentifier:
    """The subject key identifier: RFC 5280 method 1 (SHA-1, -2) or method 2 (-20)."""
    if profile.ski_method2:
        return x509.SubjectKeyIdentifier(key_identifier_method2(public))
    return x509.SubjectKeyIdentifier.from_public_key(public)  # type: ignore[arg-type]


def issue(
    profile: Profile,
    subject: x509.Name,
    *,
    issuer: Issued | None = None,
    key: PrivateKey | None = None,
    algorithm: KeyAlgorithm = KeyAlgorithm.P256,
    not_before: dt.datetime | None = None,
    validity_days: int | None = None,
    ocsp_url: str | None = None,
    dns_names: tuple[str, ...] = (),
    alt_key: x448.X448PrivateKey | None = None,
) -> Issued:
    """Create and sign one certificate; self-signed when no issuer is given. The key is `key` or a new one of
    `algorithm`; the signature is the issuer key's (ECDSA-SHA-256 on P-256, ECDSA-SHA-512 on secp521r1, Ed448).
    `alt_key` adds its public half as subjectAltPublicKeyInfo (the X448 key of an Ed448 OEM provisioning cert)."""
    key = key or new_key(algorithm)
    start = not_before or dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=5)
    days = profile.validity_days if validity_days is None else validity_days
    signer_key = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else subject
    public = key.public_key()
    usage = profile.usage_for(isinstance(key, ed448.Ed448PrivateKey))
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=profile.ca, path_length=profile.path_length), critical=True)
        .add_extension(key_usage(usage), critical=True)
        .add_extension(_ski(profile, public), critical=False)
    )
    if profile.extended_key_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(profile.extended_key_usage)), critical=False)
    if dns_names:
        san = x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names])
        builder = builder.add_extension(san, critical=False)
    if alt_key is not None:
        builder = builder.add_extension(alt_public_key_extension(alt_key.public_key()), critical=False)
    if issuer is not None:
        ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        if ocsp_url:
            aia = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))
            builder = builder.add_extension(x509.AuthorityInformationAccess([aia]), critical=False)
    cert = builder.sign(signer_key, signature_hash(signer_key))
    if profile.generalized_time:
        cert = with_generalized_time(cert, signer_key)
    return Issued(cert, key, alt_key)
