"""The station's certificate management against our CSMS: InstallCertificate (roots only), GetInstalledCertificateIds,
DeleteCertificate, SignCertificate -> CertificateSigned (only for the key it asked for), GetCertificateStatus via the
CSMS and our OCSP responder; keys on disk owner-only."""

from __future__ import annotations

import base64
import datetime as dt
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from helpers.csms import api_client, our_station, running_csms
from helpers.ocsp import start_responder
from helpers.wait import until

from v2gstack.pki.ocsp import check_response
from v2gstack.pki.ocsp_data import ocsp_request_data
from v2gstack.pki.profiles import Kind
from v2gstack.pki.store import cert_pem
from v2gstack.station.certificates import CertificateStore, InstallRefused, hash_data


async def test_certificate_management_through_the_csms(tmp_path: Path) -> None:
    pki, _, url, ocsp_server = await start_responder(tmp_path / "pki")
    try:
        async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", pki_dir=str(tmp_path / "pki"),
                                ocsp_url=url, ocsp_allow=("127.0.0.0/8",)) as csms, \
                our_station(csms, state_dir=tmp_path / "station") as st, \
                api_client(csms) as api:
            await st.wait_accepted()
            mo = cert_pem(pki.cert(Kind.MO_ROOT)).decode()
            r = await api.post("/api/stations/CS1/install-certificate",
                               json={"certificateType": "MORootCertificate", "certificate": mo})
            assert r.json()["response"] == {"status": "Accepted"}
            leaf = cert_pem(pki.cert(Kind.CONTRACT)).decode()  # not a CA: refused
            r = await api.post("/api/stations/CS1/install-certificate",
                               json={"certificateType": "MORootCertificate", "certificate": leaf})
            assert r.json()["response"]["status"] == "Rejected"
            assert r.json()["response"]["statusInfo"]["reasonCode"] == "InvalidCertificate"
            r = await api.post("/api/stations/CS1/get-installed-certificate-ids",
                               json={"certificateType": ["MORootCertificate"]})
            [entry] = r.json()["response"]["certificateHashDataChain"]
            assert entry["certificateHashData"] == hash_data(pki.cert(Kind.MO_ROOT))
            r = await api.post("/api/stations/CS1/delete-certificate",
                               json={"certificateHashData": entry["certificateHashData"]})
            assert r.json()["response"] == {"status": "Accepted"}
            r = await api.post("/api/stations/CS1/get-installed-certificate-ids", json={})
            assert r.json()["response"] == {"status": "NotFound"}
            # the station asks for its SECC certificate; the CSMS's CPO Sub-CA signs it
            assert await st.certificates.request("V2GCertificate") == "Accepted"
            await until(lambda: "V2GCertificate" in st.certificates.store.own)
            _key, chain = st.certificates.store.own["V2GCertificate"]
            assert chain[1] == pki.cert(Kind.CPO_SUB_CA2)
            assert (tmp_path / "station" / "certificates" / "V2GCertificate.chain.pem").exists()
            # a chain for a key the station never asked for is refused
            r = await api.post("/api/stations/CS1/certificate-signed", json={
                "certificateChain": cert_pem(pki.cert(Kind.SECC)).decode(), "certificateType": "V2GCertificate"})
            assert r.json()["response"] == {"status": "Rejected"}
            # GetCertificateStatus: the CSMS fetches the OCSP answer for the station
            status = await st.certificates.status(ocsp_request_data(chain[0], chain[1]))
            assert status is not None and status["status"] == "Accepted"
            raw = base64.b64decode(status["ocspResult"])
            assert check_response(raw, chain[0], chain[1]) is ocsp.OCSPCertStatus.GOOD
            # the CSMS keeps the checked answer until its nextUpdate: the same CertID needs no responder
            cached = await st.certificates.status({**ocsp_request_data(chain[0], chain[1]),
                                                  "responderURL": "http://127.0.0.1:9/ocsp"})
            assert cached is not None and cached["ocspResult"] == status["ocspResult"]
            down = await st.certificates.status({**ocsp_request_data(chain[1], pki.cert(Kind.CPO_SUB_CA1)),
                                                "responderURL": "http://127.0.0.1:9/ocsp"})
            assert down is not None and down["status"] == "Failed"
    finally:
        ocsp_server.close()  # type: ignore[attr-defined]


def _self_signed(name: str, *, ca: bool = True, days: tuple[int, int] = (-1, 30)) -> str:
    """A self-signed certificate valid from now + days[0] to now + days[1] (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now + dt.timedelta(days=days[0]))
            .not_valid_after(now + dt.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert_pem(cert).decode()


async def test_install_certificate_takes_only_a_valid_root(tmp_path: Path) -> None:
    """A sub-CA sent as a root (the field finding), a leaf, an expired or not yet valid root, a bundle and garbage
    are Rejected with reasonCode InvalidCertificate over a real OCPP link; the real root is Accepted, and only it is
    listed afterwards."""
    pki, _, _url, ocsp_server = await start_responder(tmp_path / "pki")
    root = cert_pem(pki.cert(Kind.V2G_ROOT)).decode()
    refused = {
        "sub-CA": cert_pem(pki.cert(Kind.CPO_SUB_CA1)).decode(),
        "leaf": cert_pem(pki.cert(Kind.SECC)).decode(),
        "expired": _self_signed("Old Root", days=(-60, -1)),
        "not yet valid": _self_signed("Future Root", days=(2, 30)),
        "self-signed leaf": _self_signed("Not A CA", ca=False),
        "bundle": root + cert_pem(pki.cert(Kind.MO_ROOT)).decode(),
        "garbage": "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
    }
    try:
        async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, \
                our_station(csms, state_dir=tmp_path / "station") as st:
            await st.wait_accepted()
            for what, pem in refused.items():
                answer = await csms.call("CS1", "InstallCertificate",
                                         {"certificateType": "V2GRootCertificate", "certificate": pem})
                assert answer["status"] == "Rejected", what
                assert answer["statusInfo"]["reasonCode"] == "InvalidCertificate", what
            answer = await csms.call("CS1", "InstallCertificate",
                                     {"certificateType": "V2GRootCertificate", "certificate": root})
            assert answer == {"status": "Accepted"}
            listed = await csms.call("CS1", "GetInstalledCertificateIds", {})
            assert [e["certificateHashData"] for e in listed["certificateHashDataChain"]] == [
                hash_data(pki.cert(Kind.V2G_ROOT))]
    finally:
        ocsp_server.close()  # type: ignore[attr-defined]


def test_a_root_that_cannot_be_stored_fails_and_is_not_kept(tmp_path: Path) -> None:
    """Failed (a valid root, but the store's folder cannot be written): the store stays as it was."""
    blocked = tmp_path / "certificates"
    blocked.write_text("a file where the certificate folder should be")
    store = CertificateStore(blocked)
    with pytest.raises(InstallRefused) as info:
        store.install("CSMSRootCertificate", _self_signed("CSMS Root"))
    assert info.value.status == "Failed" and info.value.answer()["statusInfo"]["reasonCode"] == "InternalError"
    assert store.installed() == []


async def test_private_key_file_is_created_owner_only_and_never_through_a_link(tmp_path: Path) -> None:
    """The station's private key lands in a file that is 0600 from its creation (a fresh file renamed into place):
    a symlink planted where the key goes is replaced, not followed, so the key never reaches the link's target."""
    _pki, _, url, ocsp_server = await start_responder(tmp_path / "pki")
    folder = tmp_path / "station" / "certificates"
    folder.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.pem"
    elsewhere.write_text("")
    os.chmod(elsewhere, 0o644)
    (folder / "V2GCertificate.key.pem").symlink_to(elsewhere)
    old_umask = os.umask(0o022)
    try:
        async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", pki_dir=str(tmp_path / "pki"),
                                ocsp_url=url) as csms, \
                our_station(csms, state_dir=tmp_path / "station") as st:
            await st.wait_accepted()
            assert await st.certificates.request("V2GCertificate") == "Accepted"
            await until(lambda: "V2GCertificate" in st.certificates.store.own)
    finally:
        os.umask(old_umask)
        ocsp_server.close()  # type: ignore[attr-defined]
    key_file = folder / "V2GCertificate.key.pem"
    assert not key_file.is_symlink() and b"PRIVATE KEY" in key_file.read_bytes()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert elsewhere.read_text() == ""  # the key did not follow the link
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in folder.iterdir())
