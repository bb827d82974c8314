"""Chain verification: every hierarchy verifies, every failure path raises the right typed error and codes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from v2gstack import pki as p
from v2gstack.pki import Kind, Pki, PkiConfig, Purpose, RevocationStatus, create_pki, verify_chain
from v2gstack.pki.issue import Issued, issue, subject_name
from v2gstack.pki.profiles import PROFILES
from v2gstack.pki.store import load_certs, write_pki

LEAVES = [
    (Kind.SECC, Purpose.SECC),
    (Kind.CPS, Purpose.CPS),
    (Kind.CONTRACT, Purpose.CONTRACT),
    (Kind.OEM_PROV, Purpose.OEM),
    (Kind.CSMS, Purpose.CSMS),
    (Kind.STATION, Purpose.STATION),
]


@pytest.fixture(scope="module")
def pki() -> Pki:
    """One PKI for all verification tests."""
    return create_pki()


def anchors(pki: Pki) -> list[x509.Certificate]:
    """All roots of the PKI."""
    return [pki.cert(k) for k in pki.roots]


def check(pki: Pki, leaf: x509.Certificate, chain: list[x509.Certificate], **kw: object) -> p.VerifiedChain:
    """verify_chain against all roots of the PKI."""
    return verify_chain(leaf, chain, kw.pop("roots", anchors(pki)), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "purpose"), LEAVES)
def test_every_hierarchy_verifies(pki: Pki, kind: Kind, purpose: Purpose) -> None:
    """Each leaf verifies to its own root, also with sub-CAs in any order and extra unrelated certificates."""
    chain = pki.intermediates(kind)
    result = check(pki, pki.cert(kind), chain, purpose=purpose)
    assert result.leaf == pki.cert(kind) and result.anchor == pki.root(kind)
    assert len(result.path) == len(chain) + 2
    shuffled = [*reversed(chain), pki.cert(Kind.OEM_SUB_CA1), pki.cert(Kind.MO_SUB_CA2)]
    assert check(pki, pki.cert(kind), shuffled, purpose=purpose).path == result.path
    assert p.result_codes(None) == ("OK", "Accepted")


def test_sub_ca_as_trust_anchor(pki: Pki) -> None:
    """A configured sub-CA can be the trust anchor (shorter path)."""
    result = verify_chain(pki.cert(Kind.SECC), pki.intermediates(Kind.SECC), [pki.cert(Kind.CPO_SUB_CA1)])
    assert result.anchor == pki.cert(Kind.CPO_SUB_CA1) and len(result.path) == 3


def test_other_layout_contract_ca_under_mo_root() -> None:
    """The layout contract cert -> contract CA -> sub-CA -> MO root verifies with an MO root anchor."""
    root = issue(PROFILES[Kind.MO_ROOT], subject_name("Some MO Root", "MO", "DE", "MO"))
    sub = issue(PROFILES[Kind.MO_SUB_CA1], subject_name("Sub", "MO", "DE", "MO"), issuer=root)
    contract_ca = issue(PROFILES[Kind.MO_SUB_CA2], subject_name("Contract CA", "MO", "DE", "MO"), issuer=sub)
    leaf = issue(PROFILES[Kind.CONTRACT], subject_name("DE8AAX1", "MO", "DE", "MO"), issuer=contract_ca)
    result = verify_chain(leaf.cert, [sub.cert, contract_ca.cert], [root.cert], purpose=Purpose.CONTRACT)
    assert result.anchor == root.cert


@pytest.mark.parametrize(("kind", "purpose"), [(Kind.STATION, Purpose.STATION), (Kind.CSMS, Purpose.CSMS)])
def test_ocpp_under_v2g_verifies(kind: Kind, purpose: Purpose) -> None:
    """Station and CSMS certificates issued by CPO Sub-CA 2 verify against the V2G root."""
    pki = create_pki(PkiConfig(ocpp_under_v2g=True))
    assert check(pki, pki.cert(kind), pki.intermediates(kind), purpose=purpose).anchor == pki.cert(Kind.V2G_ROOT)


@dataclasses.dataclass
class Case:
    """What one failing verification is given (`roots` None: all roots of the test PKI) and, when the error names
    one, the certificate at fault."""

    leaf: x509.Certificate | None
    chain: list[x509.Certificate]
    kw: dict[str, object] = dataclasses.field(default_factory=dict)
    roots: list[x509.Certificate] | None = None
    at_fault: x509.Certificate | None = None


@dataclasses.dataclass(frozen=True)
class Failure:
    """One way a chain fails: how to make the case from the test PKI, the exact typed error and its ISO 15118-2
    ResponseCode and OCPP certificate status (and its ISO 15118-20 code where the case is about it)."""

    build: Callable[[Pki], Case]
    error: type[p.PkiError]
    iso: str
    ocpp: str
    iso20: str | None = None


def leaf_case(kind: Kind, **kw: object) -> Callable[[Pki], Case]:
    """The test PKI's own `kind` leaf with its sub-CAs, verified with `kw`."""
    return lambda pki: Case(pki.cert(kind), pki.intermediates(kind), kw)


def expired(pki: Pki) -> Case:
    """After the leaf's notAfter."""
    leaf = pki.cert(Kind.CONTRACT)
    return Case(leaf, pki.intermediates(Kind.CONTRACT), {"at": leaf.not_valid_after_utc + dt.timedelta(seconds=1)},
                at_fault=leaf)


def expired_sub_ca(_: Pki) -> Case:
    """An expired sub-CA with a valid leaf (a PKI of its own, whose MO Sub-CA 1 lives 30 days)."""
    own = create_pki(PkiConfig(validity_days={Kind.MO_SUB_CA1: 30}))
    at = own.cert(Kind.MO_SUB_CA1).not_valid_after_utc + dt.timedelta(days=1)
    return Case(own.cert(Kind.CONTRACT), own.intermediates(Kind.CONTRACT), {"at": at}, roots=anchors(own),
                at_fault=own.cert(Kind.MO_SUB_CA1))


def not_yet_valid(pki: Pki) -> Case:
    """Before the leaf's notBefore."""
    at = pki.cert(Kind.SECC).not_valid_before_utc - dt.timedelta(seconds=1)
    return Case(pki.cert(Kind.SECC), pki.intermediates(Kind.SECC), {"at": at})


def naive_time(pki: Pki) -> Case:
    """A naive --at time a day after the leaf's notAfter: read as UTC, so expired."""
    at = (pki.cert(Kind.SECC).not_valid_after_utc + dt.timedelta(days=1)).replace(tzinfo=None)
    return Case(pki.cert(Kind.SECC), pki.intermediates(Kind.SECC), {"at": at})


def wrong_issuer(pki: Pki) -> Case:
    """SECC leaf sent with the CPS sub-CAs: its issuer is not in the chain."""
    return Case(pki.cert(Kind.SECC), pki.intermediates(Kind.CPS))


def forged_issuer_signature(pki: Pki) -> Case:
    """A leaf naming CPO Sub-CA 2 as issuer but signed by another key."""
    fake = Issued(pki.cert(Kind.CPO_SUB_CA2), p.new_key())
    return Case(issue(PROFILES[Kind.SECC], subject_name("X", "O", "DE", "CPO"), issuer=fake).cert,
                pki.intermediates(Kind.SECC))


def tampered_signature_bytes(pki: Pki) -> Case:
    """A flipped bit in the signature value of the contract leaf."""
    der = bytearray(pki.cert(Kind.CONTRACT).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    return Case(x509.load_der_x509_certificate(bytes(der)), pki.intermediates(Kind.CONTRACT))


def ca_without_key_cert_sign(pki: Pki) -> Case:
    """A sub-CA whose key usage lacks keyCertSign."""
    bad = dataclasses.replace(PROFILES[Kind.CPO_SUB_CA2], key_usage=frozenset({"crl_sign"}))
    ca = issue(bad, subject_name("Bad CA", "O", "DE", "V2G"), issuer=pki.items[Kind.CPO_SUB_CA1])
    leaf = issue(PROFILES[Kind.SECC], subject_name("S", "O", "DE", "CPO"), issuer=ca).cert
    return Case(leaf, [ca.cert, pki.cert(Kind.CPO_SUB_CA1)], at_fault=ca.cert)


def path_length_exceeded(pki: Pki) -> Case:
    """CPO Sub-CA 2 (pathLen 0) issuing another CA that issues the leaf."""
    extra = issue(PROFILES[Kind.CPO_SUB_CA2], subject_name("Extra CA", "O", "DE", "V2G"),
                  issuer=pki.items[Kind.CPO_SUB_CA2])
    leaf = issue(PROFILES[Kind.SECC], subject_name("S", "O", "DE", "CPO"), issuer=extra).cert
    return Case(leaf, [extra.cert, *pki.intermediates(Kind.SECC)], at_fault=pki.cert(Kind.CPO_SUB_CA2))


def leaf_used_as_ca(pki: Pki) -> Case:
    """A certificate issued by the SECC leaf."""
    leaf = issue(PROFILES[Kind.SECC], subject_name("S2", "O", "DE", "CPO"), issuer=pki.items[Kind.SECC]).cert
    return Case(leaf, [pki.cert(Kind.SECC), *pki.intermediates(Kind.SECC)])


def ca_as_leaf_for_purpose(pki: Pki) -> Case:
    """A CA presented as a SECC leaf."""
    return Case(pki.cert(Kind.CPO_SUB_CA2), [pki.cert(Kind.CPO_SUB_CA1)], {"purpose": Purpose.SECC})


def unknown_root(pki: Pki) -> Case:
    """SECC chain checked against the MO root only."""
    return Case(pki.cert(Kind.SECC), pki.intermediates(Kind.SECC), roots=[pki.cert(Kind.MO_ROOT)])


def same_name_other_root(pki: Pki) -> Case:
    """A different root with the same name as the V2G root (other key id)."""
    return Case(pki.cert(Kind.SECC), pki.intermediates(Kind.SECC), roots=[create_pki().cert(Kind.V2G_ROOT)])


def no_certificate(pki: Pki) -> Case:
    """No leaf at all."""
    return Case(None, [])


CHAIN_ERROR = ("FAILED_CertChainError", "CertChainError")
EXPIRED = ("FAILED_CertificateExpired", "CertificateExpired")
FAILURES = [
    pytest.param(Failure(expired, p.CertificateExpiredError, *EXPIRED), id="expired"),
    pytest.param(Failure(expired_sub_ca, p.CertificateExpiredError, *EXPIRED), id="expired-sub-ca"),
    pytest.param(Failure(not_yet_valid, p.CertificateNotYetValidError, *EXPIRED, "WARNING_CertificateNotYetValid"),
                 id="not-yet-valid"),  # reported as expired in -2 and OCPP
    pytest.param(Failure(naive_time, p.CertificateExpiredError, *EXPIRED), id="naive-time-is-utc"),
    pytest.param(Failure(wrong_issuer, p.IssuerNotFoundError, *CHAIN_ERROR), id="wrong-issuer"),
    pytest.param(Failure(forged_issuer_signature, p.SignatureError, "FAILED_CertChainError", "SignatureError"),
                 id="forged-issuer-signature"),
    pytest.param(Failure(tampered_signature_bytes, p.SignatureError, "FAILED_CertChainError", "SignatureError"),
                 id="tampered-signature-bytes"),
    pytest.param(Failure(ca_without_key_cert_sign, p.KeyUsageError, *CHAIN_ERROR), id="ca-without-keyCertSign"),
    pytest.param(Failure(path_length_exceeded, p.PathLengthError, *CHAIN_ERROR), id="path-length-exceeded"),
    pytest.param(Failure(leaf_used_as_ca, p.BasicConstraintsError, *CHAIN_ERROR), id="leaf-used-as-ca"),
    pytest.param(Failure(ca_as_leaf_for_purpose, p.BasicConstraintsError, *CHAIN_ERROR), id="ca-as-leaf"),
    pytest.param(Failure(unknown_root, p.UnknownRootError, *CHAIN_ERROR), id="unknown-root"),
    pytest.param(Failure(same_name_other_root, p.UnknownRootError, *CHAIN_ERROR), id="same-name-other-root"),
    pytest.param(Failure(no_certificate, p.NoCertificateAvailableError, "FAILED_NoCertificateAvailable",
                         "NoCertificateAvailable"), id="no-certificate"),
    # key usage or extended key usage not fit for the purpose
    *(pytest.param(Failure(leaf_case(kind, purpose=purpose), p.KeyUsageError, *CHAIN_ERROR),
                   id=f"wrong-purpose-{kind.value}-as-{purpose.value}")
      for kind, purpose in [(Kind.CONTRACT, Purpose.SECC), (Kind.CSMS, Purpose.STATION),
                            (Kind.STATION, Purpose.CSMS)]),
    pytest.param(Failure(leaf_case(Kind.CONTRACT, revocation=lambda c, i: RevocationStatus.CONTRACT_CANCELLED),
                         p.ContractCancelledError, "FAILED_ContractCanceled", "ContractCancelled"),
                 id="contract-cancelled"),
    pytest.param(Failure(leaf_case(Kind.SECC, max_intermediates=1), p.CertChainError, *CHAIN_ERROR),
                 id="chain-too-long"),  # more sub-CAs than allowed
]


@pytest.mark.parametrize("failure", FAILURES)
def test_failure_raises_its_typed_error_and_codes(pki: Pki, failure: Failure) -> None:
    """Each failure path raises exactly its typed error, carrying its ISO 15118-2 and OCPP codes (and the certificate
    at fault when the error names one)."""
    case = failure.build(pki)
    with pytest.raises(p.PkiError) as info:
        verify_chain(case.leaf, case.chain, anchors(pki) if case.roots is None else case.roots,  # type: ignore[arg-type]
                     **case.kw)  # type: ignore[arg-type]
    err = info.value
    assert type(err) is failure.error, err
    assert p.result_codes(err) == (failure.iso, failure.ocpp)
    if case.at_fault is not None:
        assert err.cert == case.at_fault
    if failure.iso20 is not None:
        assert err.iso20_code == failure.iso20


def test_same_name_roots_pick_the_right_key(pki: Pki) -> None:
    """With two same-name roots (key roll-over) the one with the matching key is used."""
    other = create_pki()
    roots = [other.cert(Kind.V2G_ROOT), pki.cert(Kind.V2G_ROOT)]
    assert check(pki, pki.cert(Kind.SECC), pki.intermediates(Kind.SECC), roots=roots).anchor == roots[1]


def test_revoked_via_callback(pki: Pki) -> None:
    """The callback sees each (cert, issuer) pair below the anchor; REVOKED gives CertificateRevoked."""
    seen: list[tuple[x509.Certificate, x509.Certificate]] = []
    target = pki.cert(Kind.MO_SUB_CA2)

    def revocation(cert: x509.Certificate, issuer: x509.Certificate) -> RevocationStatus:
        seen.append((cert, issuer))
        return RevocationStatus.REVOKED if cert == target else RevocationStatus.GOOD

    with pytest.raises(p.CertificateRevokedError) as info:
        check(pki, pki.cert(Kind.CONTRACT), pki.intermediates(Kind.CONTRACT), revocation=revocation)
    assert p.result_codes(info.value) == ("FAILED_CertificateRevoked", "CertificateRevoked")
    assert info.value.cert == target
    assert seen == [(pki.cert(Kind.CONTRACT), target), (target, pki.cert(Kind.MO_SUB_CA1))]


@pytest.mark.parametrize("status", [RevocationStatus.GOOD, RevocationStatus.UNKNOWN])
def test_good_and_unknown_revocation_pass(pki: Pki, status: RevocationStatus) -> None:
    """GOOD and UNKNOWN answers do not fail the chain."""
    result = check(pki, pki.cert(Kind.CONTRACT), pki.intermediates(Kind.CONTRACT), revocation=lambda c, i: status)
    assert result.leaf == pki.cert(Kind.CONTRACT)


@pytest.mark.parametrize("kind", [Kind.CONTRACT, Kind.SECC, Kind.OEM_PROV])
def test_hash_data_matches_ocsp_request_builder(pki: Pki, kind: Kind) -> None:
    """issuerNameHash, issuerKeyHash and serial agree with cryptography's own OCSP request for each chain item."""
    path = check(pki, pki.cert(kind), pki.intermediates(kind)).path
    items = p.chain_hash_data(path)
    assert len(items) == len(path) - 1 == 3
    for item, cert, issuer in zip(items, path, path[1:], strict=False):
        req = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
        assert item["hashAlgorithm"] == "SHA256"
        assert item["issuerNameHash"] == req.issuer_name_hash.hex()
        assert item["issuerKeyHash"] == req.issuer_key_hash.hex()
        assert int(item["serialNumber"], 16) == req.serial_number == cert.serial_number
        assert item["responderURL"] == "http://localhost:8080/ocsp"


def test_hash_data_without_aia(pki: Pki) -> None:
    """A certificate without AIA gets an empty responderURL."""
    root = pki.cert(Kind.V2G_ROOT)
    assert p.ocsp_request_data(root, root)["responderURL"] == ""


def test_written_files_verify(pki: Pki, tmp_path: Path) -> None:
    """Chain files written to disk load back and verify (DER and PEM)."""
    write_pki(pki, tmp_path)
    chain = load_certs(tmp_path / "chains" / "secc.chain.pem")
    assert chain[0] == load_certs(tmp_path / "certs" / "secc.der")[0]
    roots = load_certs(tmp_path / "stores" / "ev" / "trust" / "v2g_root.pem")
    assert verify_chain(chain[0], chain[1:], roots, purpose=Purpose.SECC).anchor == pki.cert(Kind.V2G_ROOT)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
@pytest.mark.parametrize("kind", [k for k, _ in LEAVES])
def test_openssl_agrees(pki: Pki, kind: Kind, tmp_path: Path) -> None:
    """An independent verifier (openssl verify -x509_strict) accepts every written chain."""
    write_pki(pki, tmp_path)
    root = tmp_path / "roots" / f"{pki.chains[kind][-1].value}.pem"
    cmd = [
        "openssl",
        "verify",
        "-x509_strict",
        "-CAfile",
        str(root),
        "-untrusted",
        str(tmp_path / "chains" / f"{kind.value}.chain.pem"),
        str(tmp_path / "certs" / f"{kind.value}.pem"),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr
