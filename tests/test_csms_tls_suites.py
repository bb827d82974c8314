"""The CSMS serves all four TLS 1.2 suites of the OCPP security rules (A00.FR.318): ECDHE-ECDSA with its ECDSA
server certificate and TLS_RSA with its RSA one, OpenSSL picking by what the client offers. Real TLS clients that
offer one suite each connect over a real socket, with Basic auth (profile 2), and boot."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from helpers.csms import PASSWORD, running_csms
from helpers.ocpp import raw_peer

from v2gstack.csms.assemble import ocpp_tls
from v2gstack.csms.settings import CsmsSettings
from v2gstack.ocpp import server_context
from v2gstack.pki.hierarchy import PkiConfig, create_pki
from v2gstack.pki.store import write_pki
from v2gstack.settings_file import SettingsError

SUITES = {  # OpenSSL name -> the key type of the certificate it needs
    "ECDHE-ECDSA-AES128-GCM-SHA256": ec.EllipticCurvePublicKey,
    "ECDHE-ECDSA-AES256-GCM-SHA384": ec.EllipticCurvePublicKey,
    "AES128-GCM-SHA256": rsa.RSAPublicKey,
    "AES256-GCM-SHA384": rsa.RSAPublicKey,
}
BOOT = {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PKI folder with both CSMS server certificates, written once."""
    folder = tmp_path_factory.mktemp("pki")
    write_pki(create_pki(PkiConfig(csms_rsa=True)), folder)
    return folder


def one_suite(pki_dir: Path, suite: str) -> ssl.SSLContext:
    """A client offering exactly one TLS 1.2 suite, trusting the CSMS root."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki_dir / "roots" / "csms_root.pem")
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(suite)
    return ctx


def both(pki_dir: Path) -> ssl.SSLContext:
    """The server context of `v2gstack csms --cert ... --rsa-cert ...`, assembled from the settings."""
    s = CsmsSettings()
    s.ocpp.security_profile = 2
    s.ocpp.tls.cert, s.ocpp.tls.key = str(pki_dir / "chains/csms.chain.pem"), str(pki_dir / "keys/csms.key.pem")
    s.ocpp.tls.rsa_cert = str(pki_dir / "chains/csms_rsa.chain.pem")
    s.ocpp.tls.rsa_key = str(pki_dir / "keys/csms_rsa.key.pem")
    ctx = ocpp_tls(s)
    assert ctx is not None
    return ctx


async def test_each_whitepaper_suite_connects_and_boots(pki_dir: Path, tmp_path: Path) -> None:
    """Each of the four suites alone: the handshake uses it, with the certificate of the right key type, and the
    station boots over it."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", security_profile=2, ssl=both(pki_dir)) as csms:
        url = f"wss://127.0.0.1:{csms.port}/ocpp"
        for i, (suite, key_type) in enumerate(SUITES.items()):
            async with raw_peer(url, "CS1", password=PASSWORD, ssl=one_suite(pki_dir, suite),
                                server_hostname="localhost") as peer:
                tls = peer.ws.transport.get_extra_info("ssl_object")
                assert tls.version() == "TLSv1.2" and tls.cipher()[0] == suite
                server_cert = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
                assert isinstance(server_cert.public_key(), key_type), suite
                answer = await peer.exchange([2, f"b{i}", "BootNotification", BOOT])
                assert answer[0] == 3 and answer[2]["status"] == "Accepted", (suite, answer)


async def test_one_ecdsa_certificate_alone_cannot_serve_the_rsa_suites(pki_dir: Path, tmp_path: Path) -> None:
    """What `--cert` alone gives (the defect this fixes): an RSA-only client finds no common suite."""
    ecdsa_only = server_context(pki_dir / "chains/csms.chain.pem", pki_dir / "keys/csms.key.pem")
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", security_profile=2, ssl=ecdsa_only) as csms:
        with pytest.raises(OSError):  # a handshake failure alert or a reset, as the timing has it
            async with raw_peer(f"wss://127.0.0.1:{csms.port}/ocpp", "CS1", password=PASSWORD,
                                ssl=one_suite(pki_dir, "AES128-GCM-SHA256"), server_hostname="localhost"):
                pass


def test_two_certificates_must_be_one_ecdsa_and_one_rsa(pki_dir: Path) -> None:
    """Two ECDSA certificates (or the RSA one given as --cert) are refused with the key named."""
    s = CsmsSettings()
    s.ocpp.security_profile = 2
    s.ocpp.tls.cert, s.ocpp.tls.key = str(pki_dir / "chains/csms.chain.pem"), str(pki_dir / "keys/csms.key.pem")
    s.ocpp.tls.rsa_cert, s.ocpp.tls.rsa_key = s.ocpp.tls.cert, s.ocpp.tls.key
    with pytest.raises(SettingsError, match="one ECDSA and one RSA"):
        ocpp_tls(s)
    s.ocpp.tls.rsa_cert = None
    assert list(s.ocpp.check()) == []
    s.ocpp.tls.cert, s.ocpp.tls.rsa_cert = None, str(pki_dir / "chains/csms_rsa.chain.pem")
    assert [k for k, _ in s.ocpp.check()][-1] == ("tls", "rsa_cert")
