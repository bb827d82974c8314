"""The `pki` typer app: create, inspect and verify through CliRunner."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from typer.testing import CliRunner

from v2gstack.pki.cli import app

runner = CliRunner()
SECRET = "pw-not-to-be-printed"


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PKI created once by the CLI with a password from the environment."""
    d = tmp_path_factory.mktemp("pki")
    res = runner.invoke(
        app,
        [
            "create",
            "--out",
            str(d),
            "--emaid",
            "DE-8AA-1A2B3C4D5-X",
            "--pcid",
            "WMIV1234567890ABC1",
            "--evse-id",
            "DE*ABC*E1*1",
            "--station-id",
            "CS-7",
            "--ocsp-url",
            "http://ocsp.test/r",
            "--valid-days",
            "30",
        ],
        env={"V2GSTACK_PKI_PASSWORD": SECRET},
    )
    assert res.exit_code == 0, res.output
    assert SECRET not in res.output and "PRIVATE KEY" not in res.output
    return d


def cn(path: Path) -> str:
    """CN of the first certificate of a PEM file."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_create_layout(out: Path) -> None:
    """Certificates, keys, chains, roots, role stores and manifest exist with the requested names."""
    for name in (
        "v2g_root",
        "cpo_sub_ca1",
        "cpo_sub_ca2",
        "secc",
        "cps",
        "mo_root",
        "contract",
        "oem_prov",
        "csms",
        "station",
        "csms_root",
    ):
        assert (out / "certs" / f"{name}.pem").is_file() and (out / "certs" / f"{name}.der").is_file()
        assert (out / "keys" / f"{name}.key.pem").is_file()
    assert cn(out / "certs" / "contract.pem") == "DE-8AA-1A2B3C4D5-X"
    assert cn(out / "certs" / "oem_prov.pem") == "WMIV1234567890ABC1"
    assert cn(out / "certs" / "secc.pem") == "DE*ABC*E1*1"
    assert cn(out / "certs" / "station.pem") == "CS-7"
    assert len(x509.load_pem_x509_certificates((out / "chains" / "secc.chain.pem").read_bytes())) == 3
    assert {p.name for p in (out / "roots").iterdir()} == {
        "v2g_root.pem",
        "mo_root.pem",
        "oem_root.pem",
        "csms_root.pem",
    }
    assert (out / "stores" / "ev" / "contract.p12").is_file() and (out / "stores" / "secc" / "secc.p12").is_file()
    assert (out / "manifest.json").is_file()
    assert SECRET not in (out / "manifest.json").read_text()


def test_create_writes_both_csms_server_certificates(out: Path) -> None:
    """The CSMS gets an ECDSA and an RSA server certificate (the four TLS suites of A00.FR.318), same names, both
    under the CSMS root; the RSA key can encipher (TLS_RSA key exchange) and is encrypted like the others."""
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    ecdsa = x509.load_pem_x509_certificate((out / "certs" / "csms.pem").read_bytes())
    chain = x509.load_pem_x509_certificates((out / "chains" / "csms_rsa.chain.pem").read_bytes())
    root = x509.load_pem_x509_certificate((out / "roots" / "csms_root.pem").read_bytes())
    assert isinstance(ecdsa.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(chain[0].public_key(), rsa.RSAPublicKey) and chain[0].public_key().key_size >= 2048
    assert chain[0].subject == ecdsa.subject and chain[-1].issuer == root.subject
    chain[0].verify_directly_issued_by(root)
    assert chain[0].extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment
    key = serialization.load_pem_private_key((out / "keys" / "csms_rsa.key.pem").read_bytes(), SECRET.encode())
    assert key.public_key() == chain[0].public_key()
    assert (out / "stores" / "csms" / "csms_rsa.chain.pem").is_file()


def test_keys_encrypted(out: Path) -> None:
    """PKCS#8 keys and PKCS#12 stores need the password; the files are owner-only."""
    key_file = out / "keys" / "contract.key.pem"
    assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
    assert key_file.stat().st_mode & 0o077 == 0
    with pytest.raises(TypeError):
        serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    key = serialization.load_pem_private_key(key_file.read_bytes(), password=SECRET.encode())
    cert = x509.load_pem_x509_certificate((out / "certs" / "contract.pem").read_bytes())
    assert key.public_key() == cert.public_key()
    p12 = pkcs12.load_pkcs12((out / "stores" / "ev" / "contract.p12").read_bytes(), SECRET.encode())
    assert p12.cert is not None and p12.cert.certificate == cert and len(p12.additional_certs) == 2


def test_unencrypted_keys(tmp_path: Path) -> None:
    """Without a password the keys are plain PKCS#8."""
    res = runner.invoke(app, ["create", "--out", str(tmp_path), "--ocpp-under-v2g"], env={"V2GSTACK_PKI_PASSWORD": ""})
    assert res.exit_code == 0, res.output
    assert b"-----BEGIN PRIVATE KEY" in (tmp_path / "keys" / "secc.key.pem").read_bytes()
    assert not (tmp_path / "certs" / "csms_root.pem").exists()
    assert (tmp_path / "stores" / "station" / "trust" / "v2g_root.pem").is_file()


def test_inspect(out: Path) -> None:
    """inspect shows subject, issuer, validity, key usage, basic constraints, AIA and fingerprints."""
    res = runner.invoke(app, ["inspect", str(out / "certs" / "secc.pem")], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for text in (
        "DE*ABC*E1*1",
        "CPO Sub-CA 2",
        "Not after",
        "digitalSignature, keyAgreement",
        "CA=false",
        "OCSP: http://ocsp.test/r",
        "SHA-256 fingerprint",
        "DC=CPO",
    ):
        assert text in res.output
    res = runner.invoke(app, ["inspect", str(out / "certs" / "cpo_sub_ca1.der")], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "CA=true, pathLen=1" in res.output and "keyCertSign, cRLSign" in res.output


def test_verify_ok(out: Path) -> None:
    """verify prints OK, exits 0 and can print the OCPP hash data."""
    res = runner.invoke(
        app,
        [
            "verify",
            str(out / "chains" / "contract.chain.pem"),
            "--roots",
            str(out / "roots"),
            "--purpose",
            "contract",
            "--hash-data",
        ],
    )
    assert res.exit_code == 0, res.output
    assert res.output.startswith("OK:") and '"issuerKeyHash"' in res.output
    res = runner.invoke(
        app,
        [
            "verify",
            str(out / "certs" / "secc.der"),
            "--chain",
            str(out / "certs" / "cpo_sub_ca2.pem"),
            "--chain",
            str(out / "certs" / "cpo_sub_ca1.pem"),
            "--roots",
            str(out / "roots" / "v2g_root.pem"),
            "--purpose",
            "secc",
        ],
    )
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--roots", "roots/oem_root.pem"], "UnknownRootError"),
        (["--roots", "roots", "--at", "2100-01-01T00:00:00Z"], "FAILED_CertificateExpired"),
        (["--roots", "roots", "--at", "2000-01-01"], "CertificateNotYetValidError"),
        (["--roots", "roots", "--purpose", "secc"], "KeyUsageError"),
    ],
)
def test_verify_failures(out: Path, args: list[str], expected: str) -> None:
    """verify prints the precise failure and exits 1."""
    args = [str(out / a) if a.startswith("roots") else a for a in args]
    res = runner.invoke(app, ["verify", str(out / "chains" / "contract.chain.pem"), *args])
    assert res.exit_code == 1
    assert res.output.startswith("FAILED:") and expected in res.output


def test_verify_bad_time(out: Path) -> None:
    """An unreadable --at is a usage error."""
    res = runner.invoke(
        app, ["verify", str(out / "certs" / "secc.pem"), "--roots", str(out / "roots"), "--at", "yesterday"]
    )
    assert res.exit_code == 2
