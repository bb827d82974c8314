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


def test_ocpp_under_v2g_verifies() -> None:
    """Station and CSMS certificates issued by CPO Sub-CA 2 verify against the V2G root."""
    pki = create_pki(PkiConfig(ocpp_under_v2g=True))
    for kind, purpose in [(Kind.STATION, Purpose.STATION), (Kind.CSMS, Purpose.CSMS)]:
        assert check(pki, pki.cert(kind), pki.intermediates(kind), purpose=purpose).anchor == pki.cert(Kind.V2G_ROOT)


def expect(
    exc_type: type[p.PkiError], iso: str, ocpp_status: str, fn: Callable[..., object], *args: object, **kw: object
) -> p.PkiError:
    """Run fn, require exc_type, and check its ISO and OCPP codes."""
    with pytest.raises(exc_type) as info:
        fn(*args, **kw)
    assert p.result_codes(info.value) == (iso, ocpp_status)
    return info.value


def test_expired(pki: Pki) -> None:
    """After the leaf's notAfter: CertificateExpired."""
    leaf = pki.cert(Kind.CONTRACT)
    at = leaf.not_valid_after_utc + dt.timedelta(seconds=1)
    err = expect(
        p.CertificateExpiredError,
        "FAILED_CertificateExpired",
        "CertificateExpired",
        check,
        pki,
        leaf,
        pki.intermediates(Kind.CONTRACT),
        at=at,
    )
    assert err.cert == leaf


def test_expired_sub_ca() -> None:
    """An expired sub-CA with a valid leaf is also CertificateExpired."""
    pki = create_pki(PkiConfig(validity_days={Kind.MO_SUB_CA1: 30}))
    at = pki.cert(Kind.MO_SUB_CA1).not_valid_after_utc + dt.timedelta(days=1)
    err = expect(
        p.CertificateExpiredError,
        "FAILED_CertificateExpired",
        "CertificateExpired",
        check,
        pki,
        pki.cert(Kind.CONTRACT),
        pki.intermediates(Kind.CONTRACT),
        at=at,
    )
    assert err.cert == pki.cert(Kind.MO_SUB_CA1)


def test_not_yet_valid(pki: Pki) -> None:
    """Before notBefore: CertificateNotYetValid, reported as expired in -2 and OCPP."""
    at = pki.cert(Kind.SECC).not_valid_before_utc - dt.timedelta(seconds=1)
    err = expect(
        p.CertificateNotYetValidError,
        "FAILED_CertificateExpired",
        "CertificateExpired",
        check,
        pki,
        pki.cert(Kind.SECC),
        pki.intermediates(Kind.SECC),
        at=at,
    )
    assert isinstance(err, p.CertificateNotYetValidError) and err.iso20_code == "WARNING_CertificateNotYetValid"


def test_naive_time_is_utc(pki: Pki) -> None:
    """A naive --at time is read as UTC."""
    at = (pki.cert(Kind.SECC).not_valid_after_utc + dt.timedelta(days=1)).replace(tzinfo=None)
    with pytest.raises(p.CertificateExpiredError):
        check(pki, pki.cert(Kind.SECC), pki.intermediates(Kind.SECC), at=at)


def test_wrong_issuer(pki: Pki) -> None:
    """SECC leaf sent with the CPS sub-CAs: its issuer is not in the chain."""
    expect(
        p.IssuerNotFoundError,
        "FAILED_CertChainError",
        "CertChainError",
        check,
        pki,
        pki.cert(Kind.SECC),
        pki.intermediates(Kind.CPS),
    )


def test_forged_issuer_signature(pki: Pki) -> None:
    """A leaf naming CPO Sub-CA 2 as issuer but signed by another key: SignatureError."""
    fake = Issued(pki.cert(Kind.CPO_SUB_CA2), p.new_key())
    leaf = issue(PROFILES[Kind.SECC], subject_name("X", "O", "DE", "CPO"), issuer=fake).cert
    expect(p.SignatureError, "FAILED_CertChainError", "SignatureError", check, pki, leaf, pki.intermediates(Kind.SECC))


def test_tampered_signature_bytes(pki: Pki) -> None:
    """A flipped bit in the signature value of the contract leaf: SignatureError."""
    der = bytearray(pki.cert(Kind.CONTRACT).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    leaf = x509.load_der_x509_certificate(bytes(der))
    expect(
        p.SignatureError, "FAILED_CertChainError", "SignatureError", check, pki, leaf, pki.intermediates(Kind.CONTRACT)
    )


def test_ca_without_key_cert_sign(pki: Pki) -> None:
    """A sub-CA whose key usage lacks keyCertSign: KeyUsageError."""
    bad = dataclasses.replace(PROFILES[Kind.CPO_SUB_CA2], key_usage=frozenset({"crl_sign"}))
    ca = issue(bad, subject_name("Bad CA", "O", "DE", "V2G"), issuer=pki.items[Kind.CPO_SUB_CA1])
    leaf = issue(PROFILES[Kind.SECC], subject_name("S", "O", "DE", "CPO"), issuer=ca).cert
    err = expect(
        p.KeyUsageError,
        "FAILED_CertChainError",
        "CertChainError",
        check,
        pki,
        leaf,
        [ca.cert, pki.cert(Kind.CPO_SUB_CA1)],
    )
    assert err.cert == ca.cert


def test_path_length_exceeded(pki: Pki) -> None:
    """CPO Sub-CA 2 (pathLen 0) issuing another CA that issues the leaf: PathLengthError."""
    extra = issue(
        PROFILES[Kind.CPO_SUB_CA2], subject_name("Extra CA", "O", "DE", "V2G"), issuer=pki.items[Kind.CPO_SUB_CA2]
    )
    leaf = issue(PROFILES[Kind.SECC], subject_name("S", "O", "DE", "CPO"), issuer=extra).cert
    err = expect(
        p.PathLengthError,
        "FAILED_CertChainError",
        "CertChainError",
        check,
        pki,
        leaf,
        [extra.cert, *pki.intermediates(Kind.SECC)],
    )
    assert err.cert == pki.cert(Kind.CPO_SUB_CA2)


def test_leaf_used_as_ca(pki: Pki) -> None:
    """A certificate issued by the SECC leaf: BasicConstraintsError."""
    leaf = issue(PROFILES[Kind.SECC], subject_name("S2", "O", "DE", "CPO"), issuer=pki.items[Kind.SECC]).cert
    expect(
        p.BasicConstraintsError,
        "FAILED_CertChainError",
        "CertChainError",
        check,
        pki,
        leaf,
        [pki.cert(Kind.SECC), *pki.intermediates(Kind.SECC)],
    )


def test_ca_as_leaf_for_purpose(pki: Pki) -> None:
    """A CA presented as a SECC leaf: BasicConstraintsError."""
    expect(
        p.BasicConstraintsError,
        "FAILED_CertChainError",
        "CertChainError",
        check,
        pki,
        pki.cert(Kind.CPO_SUB_CA2),
        [pki.cert(Kind.CPO_SUB_CA1)],
        purpose=Purpose.SECC,
    )


def test_unknown_root(pki: Pki) -> None:
    """SECC chain checked against the MO root only: UnknownRootError."""
    expect(
        p.UnknownRootError,
        "FAILED_CertChainError",
        "CertChainError",
        check,
        pki,
        pki.cert(Kind.SECC),
        pki.intermediates(Kind.SECC),
        roots=[pki.cert(Kind.MO_ROOT)],
    )


def test_same_name_other_root(pki: Pki) -> None:
    """A different root with the same name as the V2G root (other key id) is an unknown root."""
    other = create_pki()
    expect(
        p.UnknownRootError,
        "FAILED_CertChainError",
        "CertChainError",
        check,
        pki,
        pki.cert(Kind.SECC),
        pki.intermediates(Kind.SECC),
        roots=[other.cert(Kind.V2G_ROOT)],
    )


def test_same_name_roots_pick_the_right_key(pki: Pki) -> None:
    """With two same-name roots (key roll-over) the one with the matching key is used."""
    other = create_pki()
    roots = [other.cert(Kind.V2G_ROOT), pki.cert(Kind.V2G_ROOT)]
    assert check(pki, pki.cert(Kind.SECC), pki.intermediates(Kind.SECC), roots=roots).anchor == roots[1]


def test_no_certificate(pki: Pki) -> None:
    """No leaf at all: NoCertificateAvailable."""
    expect(
        p.NoCertificateAvailableError, "FAILED_NoCertificateAvailable", "NoCertificateAvailable", check, pki, None, []
    )


@pytest.mark.parametrize(
    ("kind", "purpose"),
    [(Kind.CONTRACT, Purpose.SECC), (Kind.CSMS, Purpose.STATION), (Kind.STATION, Purpose.CSMS)],
)
def test_wrong_purpose(pki: Pki, kind: Kind, purpose: Purpose) -> None:
    """Key usage or extended key usage not fit for the purpose: KeyUsageError."""
    expect(
        p.KeyUsageError,
        "FAILED_CertChainError",
        "CertChainError",
        check,
        pki,
        pki.cert(kind),
        pki.intermediates(kind),
        purpose=purpose,
    )


def test_revoked_via_callback(pki: Pki) -> None:
    """The callback sees each (cert, issuer) pair below the anchor; REVOKED gives CertificateRevoked."""
    seen: list[tuple[x509.Certificate, x509.Certificate]] = []
    target = pki.cert(Kind.MO_SUB_CA2)

    def revocation(cert: x509.Certificate, issuer: x509.Certificate) -> RevocationStatus:
        seen.append((cert, issuer))
        return RevocationStatus.REVOKED if cert == target else RevocationStatus.GOOD

    err = expect(
        p.CertificateRevokedError,
        "FAILED_CertificateRevoked",
        "CertificateRevoked",
        check,
        pki,
        pki.cert(Kind.CONTRACT),
        pki.intermediates(Kind.CONTRACT),
        revocation=revocation,
    )
    assert err.cert == target
    assert seen == [(pki.cert(Kind.CONTRACT), target), (target, pki.cert(Kind.MO_SUB_CA1))]


def test_good_and_unknown_revocation_pass(pki: Pki) -> None:
    """GOOD and UNKNOWN answers do not fail the chain."""
    for status in (RevocationStatus.GOOD, RevocationStatus.UNKNOWN):
        check(pki, pki.cert(Kind.CONTRACT), pki.intermediates(Kind.CONTRACT), revocation=lambda c, i, s=status: s)


def test_contract_cancelled(pki: Pki) -> None:
    """CONTRACT_CANCELLED from the callback: ContractCancelled."""
    expect(
        p.ContractCancelledError,
        "FAILED_ContractCanceled",
        "ContractCancelled",
        check,
        pki,
        pki.cert(Kind.CONTRACT),
        pki.intermediates(Kind.CONTRACT),
        revocation=lambda c, i: RevocationStatus.CONTRACT_CANCELLED,
    )


def test_chain_too_long(pki: Pki) -> None:
    """More sub-CAs than allowed: CertChainError."""
    expect(
        p.CertChainError,
        "FAILED_CertChainError",
        "CertChainError",
        check,
        pki,
        pki.cert(Kind.SECC),
        pki.intermediates(Kind.SECC),
        max_intermediates=1,
    )


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
