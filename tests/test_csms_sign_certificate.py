"""SignCertificate -> CertificateSigned: the CSMS checks a station's CSR and sends back a chain that verifies."""

from __future__ import annotations

from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers.csms import PASSWORD, csms_url, running_csms
from helpers.ocpp import raw_peer

from v2gstack.pki.hierarchy import create_pki
from v2gstack.pki.profiles import Kind
from v2gstack.pki.store import write_pki
from v2gstack.pki.verify import Purpose, verify_chain


def _csr(cn: str, key: ec.EllipticCurvePrivateKey | None = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Station maker")]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


async def test_sign_certificate_both_types_and_refusals(tmp_path: Path) -> None:
    pki = create_pki()
    write_pki(pki, tmp_path / "pki")
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}", pki_dir=str(tmp_path / "pki")) as csms, \
            raw_peer(csms_url(csms), "CS1", password=PASSWORD) as peer:
        for n, (kind, cn, root, purpose) in enumerate([
                ("V2GCertificate", "DE*V2G*E0001*1", Kind.V2G_ROOT, Purpose.SECC),
                ("ChargingStationCertificate", "CS1", Kind.CSMS_ROOT, Purpose.STATION)]):
            answer = await peer.exchange([2, f"s{n}", "SignCertificate", {"csr": _csr(cn), "certificateType": kind}])
            assert answer == [3, f"s{n}", {"status": "Accepted"}]
            call = await peer.recv()
            assert call[0] == 2 and call[2] == "CertificateSigned" and call[3]["certificateType"] == kind
            await peer.send([3, call[1], {"status": "Accepted"}])
            leaf, *rest = x509.load_pem_x509_certificates(call[3]["certificateChain"].encode())
            assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
            verify_chain(leaf, rest, [pki.cert(root)], purpose=purpose)  # raises if the chain or usage is wrong
        # a station may only ask for a client certificate in its own name
        answer = await peer.exchange([2, "x1", "SignCertificate", {"csr": _csr("CS999"),
                                                                   "certificateType": "ChargingStationCertificate"}])
        assert answer[2]["status"] == "Rejected" and answer[2]["statusInfo"]["reasonCode"] == "InvalidCSR"
        # an RSA key or garbage is refused
        answer = await peer.exchange([2, "x2", "SignCertificate", {"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAA"}])
        assert answer[2]["status"] == "Rejected" and answer[2]["statusInfo"]["reasonCode"] == "InvalidCSR"
        # the connection still works
        assert (await peer.exchange([2, "h", "Heartbeat", {}]))[0] == 3


async def test_sign_certificate_without_ca_is_rejected(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}") as csms, \
            raw_peer(csms_url(csms), "CS1", password=PASSWORD) as peer:
        answer = await peer.exchange([2, "s", "SignCertificate", {"csr": _csr("CS1")}])
        assert answer[2] == {"status": "Rejected", "statusInfo": {"reasonCode": "NoCA",
                                                                   "additionalInfo": "this CSMS signs no certificates"}}
