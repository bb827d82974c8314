"""The station's certificate management against our CSMS: InstallCertificate, GetInstalledCertificateIds,
DeleteCertificate, SignCertificate -> CertificateSigned (only for the key it asked for), GetCertificateStatus via the
CSMS and our OCSP responder."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
from cryptography.x509 import ocsp
from test_csms_support import our_station, running_csms
from test_pki_ocsp import start_responder
from test_station_support import until

from v2gstack.csms.api import create_app
from v2gstack.pki.ocsp import check_response
from v2gstack.pki.ocsp_data import ocsp_request_data
from v2gstack.pki.profiles import Kind
from v2gstack.pki.store import cert_pem
from v2gstack.station.certificates import hash_data


async def test_certificate_management_through_the_csms(tmp_path: Path) -> None:
    pki, _, url, ocsp_server = await start_responder(tmp_path / "pki")
    try:
        async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", pki_dir=str(tmp_path / "pki"),
                                ocsp_url=url, ocsp_allow=("127.0.0.0/8",)) as csms, \
                our_station(csms, state_dir=tmp_path / "station") as st, \
                httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(csms)), base_url="http://c") as api:
            await st.wait_accepted()
            mo = cert_pem(pki.cert(Kind.MO_ROOT)).decode()
            r = await api.post("/api/stations/CS1/install-certificate",
                               json={"certificateType": "MORootCertificate", "certificate": mo})
            assert r.json()["response"] == {"status": "Accepted"}
            leaf = cert_pem(pki.cert(Kind.CONTRACT)).decode()  # not a CA: refused
            r = await api.post("/api/stations/CS1/install-certificate",
                               json={"certificateType": "MORootCertificate", "certificate": leaf})
            assert r.json()["response"] == {"status": "Rejected"}
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
            assert await st.request_certificate("V2GCertificate") == "Accepted"
            await until(lambda: "V2GCertificate" in st.certificates.own)
            _key, chain = st.certificates.own["V2GCertificate"]
            assert chain[1] == pki.cert(Kind.CPO_SUB_CA2)
            assert (tmp_path / "station" / "certificates" / "V2GCertificate.chain.pem").exists()
            # a chain for a key the station never asked for is refused
            r = await api.post("/api/stations/CS1/certificate-signed", json={
                "certificateChain": cert_pem(pki.cert(Kind.SECC)).decode(), "certificateType": "V2GCertificate"})
            assert r.json()["response"] == {"status": "Rejected"}
            # GetCertificateStatus: the CSMS fetches the OCSP answer for the station
            status = await st.certificate_status(ocsp_request_data(chain[0], chain[1]))
            assert status is not None and status["status"] == "Accepted"
            raw = base64.b64decode(status["ocspResult"])
            assert check_response(raw, chain[0], chain[1]) is ocsp.OCSPCertStatus.GOOD
            # the CSMS keeps the checked answer until its nextUpdate: the same CertID needs no responder
            cached = await st.certificate_status({**ocsp_request_data(chain[0], chain[1]),
                                                  "responderURL": "http://127.0.0.1:9/ocsp"})
            assert cached is not None and cached["ocspResult"] == status["ocspResult"]
            down = await st.certificate_status({**ocsp_request_data(chain[1], pki.cert(Kind.CPO_SUB_CA1)),
                                                "responderURL": "http://127.0.0.1:9/ocsp"})
            assert down is not None and down["status"] == "Failed"
    finally:
        ocsp_server.close()  # type: ignore[attr-defined]
