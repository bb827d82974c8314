"""ISO 15118-20 PKI: both algorithm sets, the Annex B encoding details (method-2 key identifiers, GeneralizedTime,
CN+O leaves, X448 subjectAltPublicKeyInfo), chain checks with -20 algorithms and purposes, CLI, OCSP with Ed448."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, x448
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID
from typer.testing import CliRunner

from v2gstack.cli import app
from v2gstack.pki import errors
from v2gstack.pki.algorithms import ISO20_ALGORITHMS, KeyAlgorithm, key_identifier_method2, new_key
from v2gstack.pki.csr import CsrError, load_csr, sign_csr
from v2gstack.pki.der import GENERALIZED_TIME, UTC_TIME, alt_public_key, validity_time_tags
from v2gstack.pki.hierarchy import CHAINS_20, Edition, Pki, PkiConfig, create_pki
from v2gstack.pki.issue import issue, subject_name
from v2gstack.pki.ocsp import OcspResponder, RevocationList, build_request
from v2gstack.pki.profiles import PROFILES_20, Kind
from v2gstack.pki.verify import Purpose, verify_chain

PURPOSES = {Kind.SECC: Purpose.SECC, Kind.CPS: Purpose.CPS, Kind.CONTRACT: Purpose.CONTRACT,
            Kind.OEM_PROV: Purpose.OEM, Kind.VEHICLE: Purpose.VEHICLE}


@pytest.fixture(scope="module", params=[KeyAlgorithm.SECP521, KeyAlgorithm.ED448], ids=["secp521r1", "ed448"])
def pki(request: pytest.FixtureRequest) -> Pki:
    return create_pki(PkiConfig(edition=Edition.ISO20, algorithm=request.param))


def _ext(cert: x509.Certificate, cls: type) -> object:
    return cert.extensions.get_extension_for_class(cls).value


def test_keys_and_signatures_follow_the_algorithm_set(pki: Pki) -> None:
    for kind, item in pki.items.items():
        key, cert = item.key, item.cert
        if kind in (Kind.CSMS_ROOT, Kind.CSMS, Kind.STATION):  # OCPP keeps P-256
            assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
            continue
        if pki.algorithm is KeyAlgorithm.ED448:
            assert isinstance(key, ed448.Ed448PrivateKey), kind
            assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ED448
        else:
            assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp521r1", kind
            assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA512


def test_annex_b_encoding(pki: Pki) -> None:
    for kind in PROFILES_20:
        if kind in (Kind.CSMS_ROOT, Kind.CSMS, Kind.STATION):
            continue
        cert = pki.cert(kind)
        ski = _ext(cert, x509.SubjectKeyIdentifier).digest  # type: ignore[attr-defined]
        assert len(ski) == 8 and ski[0] >> 4 == 0b0100, kind  # RFC 5280 method 2 [V2G20-1852]
        assert ski == key_identifier_method2(cert.public_key())
        assert validity_time_tags(cert) == (GENERALIZED_TIME, GENERALIZED_TIME), kind
    for leaf, above in CHAINS_20.items():
        if leaf in (Kind.CSMS, Kind.STATION):
            continue
        aki = _ext(pki.cert(leaf), x509.AuthorityKeyIdentifier).key_identifier  # type: ignore[attr-defined]
        assert aki == _ext(pki.cert(above[0]), x509.SubjectKeyIdentifier).digest  # type: ignore[attr-defined]


def test_ski_method2_by_hand() -> None:
    key = ec.generate_private_key(ec.SECP521R1()).public_key()
    point = key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    low60 = int.from_bytes(hashlib.sha1(point).digest()[-8:], "big") & ((1 << 60) - 1)
    assert key_identifier_method2(key) == ((0b0100 << 60) | low60).to_bytes(8, "big")


def test_leaf_subjects_and_usages(pki: Pki) -> None:
    cfg = PkiConfig()
    names = {Kind.SECC: (cfg.seccid, cfg.operator), Kind.CONTRACT: (cfg.emaid, cfg.emsp),
             Kind.OEM_PROV: (cfg.pcid, cfg.oem), Kind.VEHICLE: (cfg.evccid, cfg.oem)}
    for kind, (cn, org) in names.items():
        subject = pki.cert(kind).subject
        assert {a.oid for a in subject} == {NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME}, kind  # nothing else
        assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
        assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == org
    ed = pki.algorithm is KeyAlgorithm.ED448
    secc_ku = _ext(pki.cert(Kind.SECC), x509.KeyUsage)
    assert secc_ku.digital_signature and secc_ku.key_agreement is not ed  # type: ignore[attr-defined]
    assert list(_ext(pki.cert(Kind.SECC), x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert list(_ext(pki.cert(Kind.VEHICLE), x509.ExtendedKeyUsage)) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert _ext(pki.cert(Kind.OEM_PROV), x509.KeyUsage).key_agreement  # type: ignore[attr-defined]  # [V2G20-822]
    cps_dc = pki.cert(Kind.CPS).subject.get_attributes_for_oid(NameOID.DOMAIN_COMPONENT)
    assert [a.value for a in cps_dc] == ["CPS"]


def test_ed448_oem_provisioning_carries_an_x448_key(pki: Pki) -> None:
    item = pki.items[Kind.OEM_PROV]
    alt = alt_public_key(item.cert)
    if pki.algorithm is KeyAlgorithm.SECP521:
        assert alt is None and item.alt_key is None
        return
    assert isinstance(alt, x448.X448PublicKey) and item.alt_key is not None
    raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
    assert alt.public_bytes(*raw) == item.alt_key.public_key().public_bytes(*raw)


def test_every_leaf_verifies_with_iso20_algorithms_and_its_purpose(pki: Pki) -> None:
    for leaf, purpose in PURPOSES.items():
        chain = verify_chain(pki.cert(leaf), pki.intermediates(leaf), [pki.root(leaf)], purpose=purpose,
                             algorithms=ISO20_ALGORITHMS)
        assert chain.anchor == pki.root(leaf)


def test_iso2_certificate_refused_in_an_iso20_chain(pki: Pki) -> None:
    p2 = create_pki()
    with pytest.raises(errors.AlgorithmError) as err:
        verify_chain(p2.cert(Kind.CONTRACT), p2.intermediates(Kind.CONTRACT), [p2.root(Kind.CONTRACT)],
                     algorithms=ISO20_ALGORITHMS)
    assert err.value.iso20_code == "WARNING_CertificateValidationError"
    # a P-256 leaf under the -20 sub-CA: the leaf's key is refused even though the chain signatures hold
    p256_leaf = issue(PROFILES_20[Kind.CONTRACT], subject_name("DEV2GP256LEAF1", "eMSP", None, None),
                      issuer=pki.items[Kind.MO_SUB_CA2], algorithm=KeyAlgorithm.P256)
    verify_chain(p256_leaf.cert, pki.intermediates(Kind.CONTRACT), [pki.root(Kind.CONTRACT)])  # no restriction: OK
    with pytest.raises(errors.AlgorithmError, match="p256"):
        verify_chain(p256_leaf.cert, pki.intermediates(Kind.CONTRACT), [pki.root(Kind.CONTRACT)],
                     algorithms=ISO20_ALGORITHMS)


def test_purpose_checks_refuse_the_wrong_leaf(pki: Pki) -> None:
    with pytest.raises(errors.KeyUsageError, match="extended key usage"):  # a SECC certificate as vehicle certificate
        verify_chain(pki.cert(Kind.SECC), pki.intermediates(Kind.SECC), [pki.root(Kind.SECC)],
                     purpose=Purpose.VEHICLE)


def test_expired_and_not_yet_valid_give_iso20_codes(pki: Pki) -> None:
    leaf = Kind.CONTRACT
    args = (pki.cert(leaf), pki.intermediates(leaf), [pki.root(leaf)])
    with pytest.raises(errors.CertificateExpiredError) as late:
        verify_chain(*args, at=dt.datetime.now(dt.UTC) + dt.timedelta(days=3 * 365))
    assert late.value.iso20_code == "WARNING_CertificateExpired"
    with pytest.raises(errors.CertificateNotYetValidError) as early:
        verify_chain(*args, at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    assert early.value.iso20_code == "WARNING_CertificateNotYetValid"


def test_iso2_default_is_unchanged() -> None:
    p2 = create_pki()
    cert = p2.cert(Kind.SECC)
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    assert validity_time_tags(cert) == (UTC_TIME, UTC_TIME)
    assert len(_ext(cert, x509.SubjectKeyIdentifier).digest) == 20  # type: ignore[attr-defined]
    assert Kind.VEHICLE not in p2.items


def test_ocsp_responder_signs_with_an_ed448_ca(tmp_path: Path) -> None:
    p = create_pki(PkiConfig(edition=Edition.ISO20, algorithm=KeyAlgorithm.ED448))
    responder = OcspResponder([p.items[Kind.MO_SUB_CA2]], RevocationList(tmp_path / "revoked.json"))
    der = responder.respond(build_request(p.cert(Kind.CONTRACT), p.cert(Kind.MO_SUB_CA2)))
    resp = ocsp.load_der_ocsp_response(der)
    assert resp.certificate_status is ocsp.OCSPCertStatus.GOOD
    p.cert(Kind.MO_SUB_CA2).public_key().verify(resp.signature, resp.tbs_response_bytes)  # type: ignore[union-attr]


def test_cli_create_inspect_verify_iso20(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "pki"
    res = runner.invoke(app, ["pki", "create", "--out", str(out), "--profile", "iso20", "--algorithm", "ed448",
                              "--seccid", "DEV2GS0000000000000000000000000000000020"])
    assert res.exit_code == 0, res.output
    assert "ISO 15118-20, ed448" in res.output
    assert (out / "keys" / "oem_prov.x448.key.pem").exists() and (out / "stores" / "ev" / "vehicle.p12").exists()
    res = runner.invoke(app, ["pki", "inspect", str(out / "certs" / "oem_prov.pem")])
    assert res.exit_code == 0 and "GeneralizedTime" in res.output and "X448" in res.output
    res = runner.invoke(app, ["pki", "verify", str(out / "stores" / "ev" / "vehicle.chain.pem"), "--roots",
                              str(out / "roots"), "--purpose", "vehicle", "--iso20"])
    assert res.exit_code == 0 and res.output.startswith("OK") and "ISO-20 OK" in res.output, res.output
    res = runner.invoke(app, ["pki", "verify", str(out / "chains" / "secc.chain.pem"), "--roots",
                              str(out / "roots"), "--purpose", "vehicle", "--iso20"])
    assert res.exit_code == 1 and "KeyUsageError" in res.output and "WARNING_CertificateValidationError" in res.output
    two = tmp_path / "pki2"
    assert runner.invoke(app, ["pki", "create", "--out", str(two)]).exit_code == 0
    res = runner.invoke(app, ["pki", "verify", str(two / "chains" / "contract.chain.pem"), "--roots",
                              str(two / "roots"), "--iso20"])
    assert res.exit_code == 1 and "AlgorithmError" in res.output
    res = runner.invoke(app, ["pki", "create", "--out", str(tmp_path / "x"), "--profile", "iso20", "--algorithm",
                              "p256"])
    assert res.exit_code == 2


def test_csr_with_iso20_keys_signed_by_an_iso20_ca(pki: Pki) -> None:
    """A station's SignCertificate (V2GCertificate) with a -20 key, signed the way the -20 CPO sub-CA signs."""
    key = new_key(pki.algorithm)
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject_name("DEV2GS1", "CPO", None, None)).sign(
        key, None if pki.algorithm is KeyAlgorithm.ED448 else hashes.SHA512())
    signed = sign_csr(load_csr(csr.public_bytes(serialization.Encoding.PEM)), Kind.SECC,
                      pki.items[Kind.CPO_SUB_CA2], (pki.cert(Kind.CPO_SUB_CA1),))
    verify_chain(signed.cert, signed.chain[1:], [pki.root(Kind.SECC)], algorithms=ISO20_ALGORITHMS)
    p384 = ec.generate_private_key(ec.SECP384R1())
    other = x509.CertificateSigningRequestBuilder().subject_name(subject_name("X", "CPO", None, None)).sign(
        p384, hashes.SHA384())
    with pytest.raises(CsrError) as err:
        load_csr(other.public_bytes(serialization.Encoding.PEM))
    assert err.value.reason == "InvalidKey"
