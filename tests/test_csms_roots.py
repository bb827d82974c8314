"""Trust anchors of the CSMS: install, list and remove roots by CLI and API."""

from __future__ import annotations

from pathlib import Path

from helpers.csms import api_client, running_csms
from typer.testing import CliRunner

from v2gstack.cli import app
from v2gstack.csms.store import Store
from v2gstack.pki.hierarchy import create_pki
from v2gstack.pki.profiles import Kind
from v2gstack.pki.store import cert_pem


def test_roots_by_cli(tmp_path: Path) -> None:
    pki = create_pki()
    mo = tmp_path / "mo.pem"
    mo.write_bytes(cert_pem(pki.cert(Kind.MO_ROOT)))
    url = f"sqlite:///{tmp_path / 'csms.db'}"
    runner = CliRunner()
    r = runner.invoke(app, ["csms", "add-root", str(mo), "--kind", "mo", "--db", url])
    assert r.exit_code == 0 and "MORootCertificate" in r.output
    fp = r.output.split()[1]
    r = runner.invoke(app, ["csms", "roots", "--db", url])
    assert fp in r.output and "MO Root CA" in r.output
    store = Store(url)
    try:
        [cert] = store.anchor_certificates("MORootCertificate")
        assert cert == pki.cert(Kind.MO_ROOT)
    finally:
        store.close()
    assert runner.invoke(app, ["csms", "add-root", str(mo), "--kind", "nope", "--db", url]).exit_code == 1
    (tmp_path / "bad.pem").write_text("not a certificate")
    assert runner.invoke(app, ["csms", "add-root", str(tmp_path / "bad.pem"), "--kind", "v2g", "--db", url]
                         ).exit_code == 1
    assert runner.invoke(app, ["csms", "remove-root", fp, "--db", url]).exit_code == 0
    assert runner.invoke(app, ["csms", "remove-root", fp, "--db", url]).exit_code == 1


async def test_roots_by_api(tmp_path: Path) -> None:
    pki = create_pki()
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}") as csms, api_client(csms) as api:
        pem = cert_pem(pki.cert(Kind.V2G_ROOT)).decode()
        r = await api.post("/api/roots", json={"kind": "V2GRootCertificate", "pem": pem})
        assert r.status_code == 201 and r.json()[0]["subject"].endswith("CN=V2G Root CA")
        fp = r.json()[0]["fingerprint"]
        assert [x["fingerprint"] for x in (await api.get("/api/roots?kind=V2GRootCertificate")).json()] == [fp]
        assert (await api.post("/api/roots", json={"kind": "V2GRootCertificate", "pem": "x"})).status_code == 422
        assert (await api.delete(f"/api/roots/{fp}")).status_code == 204
        assert (await api.delete(f"/api/roots/{fp}")).status_code == 404


async def test_revoke_through_the_api(tmp_path: Path) -> None:
    """POST /api/certificates/revoke marks a certificate of the CSMS's own CAs revoked for its OCSP responder."""
    from v2gstack.pki.ocsp import RevocationList
    from v2gstack.pki.store import write_pki

    pki = create_pki()
    write_pki(pki, tmp_path / "pki")
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}", pki_dir=str(tmp_path / "pki")) as csms, \
            api_client(csms) as api:
        contract = cert_pem(pki.cert(Kind.CONTRACT)).decode()
        r = await api.post("/api/certificates/revoke", json={"pem": contract, "reason": "key_compromise"})
        assert r.status_code == 200 and r.json()["reason"] == "key_compromise"
        assert RevocationList(tmp_path / "pki" / "revoked.json").lookup(
            pki.cert(Kind.MO_SUB_CA2), pki.cert(Kind.CONTRACT).serial_number) is not None
        assert (await api.post("/api/certificates/revoke", json={"pem": "x"})).status_code == 422
        stranger = cert_pem(create_pki().cert(Kind.CONTRACT)).decode()
        assert (await api.post("/api/certificates/revoke", json={"pem": stranger})).status_code == 404
