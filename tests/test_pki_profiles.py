"""The created certificates against the ISO 15118-2 Annex F / OCPP profiles, field by field."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from v2gstack.pki import Kind, Pki, PkiConfig, create_pki

CA = {"key_cert_sign", "crl_sign"}
TLS = {"digital_signature", "key_agreement"}
# kind -> (CA, pathLen, key usage, DC, default validity days, EKU)
EXPECTED: dict[Kind, tuple[bool, int | None, set[str], str | None, int, set]] = {
    Kind.V2G_ROOT: (True, None, CA, "V2G", 40 * 365 + 10, set()),
    Kind.CPO_SUB_CA1: (True, 1, CA, "V2G", 4 * 365 + 1, set()),
    Kind.CPO_SUB_CA2: (True, 0, CA, "V2G", 2 * 365 + 1, set()),
    Kind.SECC: (False, None, {"digital_signature", "key_agreement"}, "CPO", 90, set()),
    Kind.CPS_SUB_CA1: (True, 1, CA, "V2G", 4 * 365 + 1, set()),
    Kind.CPS_SUB_CA2: (True, 0, CA, "V2G", 2 * 365 + 1, set()),
    Kind.CPS: (False, None, {"digital_signature"}, "CPS", 2 * 365 + 1, set()),
    Kind.MO_ROOT: (True, None, CA, "MO", 40 * 365 + 10, set()),
    Kind.MO_SUB_CA1: (True, 1, CA, "MO", 4 * 365 + 1, set()),
    Kind.MO_SUB_CA2: (True, 0, CA, "MO", 2 * 365 + 1, set()),
    Kind.CONTRACT: (False, None, {"digital_signature", "content_commitment"}, "MO", 2 * 365 + 1, set()),
    Kind.OEM_ROOT: (True, None, CA, "OEM", 40 * 365 + 10, set()),
    Kind.OEM_SUB_CA1: (True, 1, CA, "OEM", 4 * 365 + 1, set()),
    Kind.OEM_SUB_CA2: (True, 0, CA, "OEM", 2 * 365 + 1, set()),
    Kind.OEM_PROV: (False, None, {"digital_signature", "key_agreement"}, "OEM", 4 * 365 + 1, set()),
    Kind.CSMS_ROOT: (True, None, CA, None, 40 * 365 + 10, set()),
    Kind.CSMS: (False, None, TLS, None, 2 * 365 + 1, {ExtendedKeyUsageOID.SERVER_AUTH}),
    Kind.STATION: (False, None, TLS, None, 2 * 365 + 1, {ExtendedKeyUsageOID.CLIENT_AUTH}),
}
ALL_BITS = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)
CFG = PkiConfig(
    emaid="DE8AAC12345678",
    pcid="WMIV1234567890ABC1",
    evse_id="DE*ABC*E42*1",
    station_id="CS-42",
    ocsp_url="http://ocsp.test/ocsp",
    organization="Test Org",
    country="NL",
)


@pytest.fixture(scope="module")
def pki() -> Pki:
    """One PKI for all profile tests."""
    return create_pki(CFG)


def test_every_kind_created(pki: Pki) -> None:
    """All 18 certificates of the four ISO hierarchies and the OCPP one exist."""
    assert set(pki.items) == set(EXPECTED)


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_profile(pki: Pki, kind: Kind) -> None:
    """Version, key, signature, basic constraints, key usage, DN, validity, key ids, AIA and EKU of one kind."""
    ca, pathlen, usage, dc, days, eku = EXPECTED[kind]
    cert = pki.cert(kind)
    assert cert.version is x509.Version.v3
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is ca and bc.value.path_length == pathlen
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical
    assert {b for b in ALL_BITS if getattr(ku.value, b)} == usage
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Test Org"
    assert cert.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "NL"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)] == ([dc] if dc else [])
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=days)
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key)
    is_root = ca and pathlen is None
    if is_root:
        assert cert.issuer == cert.subject
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    else:
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        issuer = next(c.cert for c in pki.items.values() if c.cert.subject == cert.issuer)
        assert aki.key_identifier == issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        assert [(d.access_method, d.access_location.value) for d in aia] == [
            (AuthorityInformationAccessOID.OCSP, "http://ocsp.test/ocsp")
        ]
    if eku:
        assert set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == eku
    else:
        with pytest.raises(x509.ExtensionNotFound):
            cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)


@pytest.mark.parametrize(
    ("kind", "cn"),
    [
        (Kind.CONTRACT, "DE8AAC12345678"),
        (Kind.OEM_PROV, "WMIV1234567890ABC1"),
        (Kind.SECC, "DE*ABC*E42*1"),
        (Kind.STATION, "CS-42"),
        (Kind.CSMS, "localhost"),
    ],
)
def test_leaf_common_names(pki: Pki, kind: Kind, cn: str) -> None:
    """CN = eMAID, PCID, EVSE id, station id and CSMS host name."""
    assert pki.cert(kind).subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn


def test_csms_has_dns_name(pki: Pki) -> None:
    """The CSMS server certificate names its host in subjectAltName for TLS host checks."""
    san = pki.cert(Kind.CSMS).extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]


def test_issuers_follow_the_hierarchies(pki: Pki) -> None:
    """Each certificate is issued by the one above it in its hierarchy."""
    pairs = [
        (Kind.SECC, Kind.CPO_SUB_CA2),
        (Kind.CPO_SUB_CA2, Kind.CPO_SUB_CA1),
        (Kind.CPO_SUB_CA1, Kind.V2G_ROOT),
        (Kind.CPS, Kind.CPS_SUB_CA2),
        (Kind.CPS_SUB_CA2, Kind.CPS_SUB_CA1),
        (Kind.CPS_SUB_CA1, Kind.V2G_ROOT),
        (Kind.CONTRACT, Kind.MO_SUB_CA2),
        (Kind.MO_SUB_CA2, Kind.MO_SUB_CA1),
        (Kind.MO_SUB_CA1, Kind.MO_ROOT),
        (Kind.OEM_PROV, Kind.OEM_SUB_CA2),
        (Kind.OEM_SUB_CA2, Kind.OEM_SUB_CA1),
        (Kind.OEM_SUB_CA1, Kind.OEM_ROOT),
        (Kind.CSMS, Kind.CSMS_ROOT),
        (Kind.STATION, Kind.CSMS_ROOT),
    ]
    for child, parent in pairs:
        pki.cert(child).verify_directly_issued_by(pki.cert(parent))


def test_validity_overrides() -> None:
    """Leaf override and per-kind override change the validity; CAs keep their maximum."""
    pki = create_pki(PkiConfig(leaf_validity_days=10, validity_days={Kind.MO_SUB_CA2: 100}))
    span = {k: (i.cert.not_valid_after_utc - i.cert.not_valid_before_utc).days for k, i in pki.items.items()}
    assert span[Kind.SECC] == span[Kind.CONTRACT] == span[Kind.STATION] == 10
    assert span[Kind.MO_SUB_CA2] == 100
    assert span[Kind.V2G_ROOT] == 40 * 365 + 10


def test_ocpp_under_v2g() -> None:
    """With ocpp_under_v2g the CSMS and station certificates are issued by CPO Sub-CA 2 and no CSMS root is made."""
    pki = create_pki(PkiConfig(ocpp_under_v2g=True))
    assert Kind.CSMS_ROOT not in pki.items
    assert pki.cert(Kind.STATION).issuer == pki.cert(Kind.CPO_SUB_CA2).subject
    assert pki.root(Kind.CSMS) == pki.cert(Kind.V2G_ROOT)
