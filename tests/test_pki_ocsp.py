"""The OCSP responder and client over real HTTP on loopback: good, revoked (live), unauthorized, malformed, GET and
POST, nonce; responses that must be refused; the CLI."""

from __future__ import annotations

import base64
import datetime
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from helpers.ocsp import start_responder
from typer.testing import CliRunner

from v2gstack.cli import app
from v2gstack.pki.fetch_policy import FetchPolicy
from v2gstack.pki.hierarchy import Pki, create_pki
from v2gstack.pki.ocsp import (
    OcspError,
    OcspResponder,
    RevocationList,
    build_request,
    build_request_by_hash,
    check_response,
    fetch,
    status_of,
)
from v2gstack.pki.ocsp_data import ocsp_request_data
from v2gstack.pki.profiles import Kind
from v2gstack.pki.store import cert_pem, write_pki

LOOPBACK = FetchPolicy(allow=("127.0.0.0/8",))  # our responders listen on loopback, which is refused by default


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Pki, OcspResponder, str, Path]]:
    pki, responder, url, server = await start_responder(tmp_path)
    try:
        yield pki, responder, url, tmp_path
    finally:
        server.close()  # type: ignore[attr-defined]


async def test_good_then_revoked_live(setup) -> None:  # type: ignore[no-untyped-def]
    pki, _responder, url, folder = setup
    leaf, issuer = pki.cert(Kind.CONTRACT), pki.cert(Kind.MO_SUB_CA2)
    # the AIA URL points at the responder
    assert await status_of(leaf, issuer, policy=LOOPBACK) is ocsp.OCSPCertStatus.GOOD
    assert await status_of(pki.cert(Kind.SECC), pki.cert(Kind.CPO_SUB_CA2),
                           policy=LOOPBACK) is ocsp.OCSPCertStatus.GOOD
    RevocationList(folder / "revoked.json").revoke(leaf, issuer, "key_compromise")  # another writer, same file
    assert await status_of(leaf, issuer, policy=LOOPBACK) is ocsp.OCSPCertStatus.REVOKED
    resp = ocsp.load_der_ocsp_response(await fetch(url, build_request(leaf, issuer), policy=LOOPBACK))
    assert resp.revocation_reason.name == "key_compromise"


async def test_nonce_get_and_hash_requests(setup) -> None:  # type: ignore[no-untyped-def]
    pki, _, url, _ = setup
    leaf, issuer = pki.cert(Kind.CONTRACT), pki.cert(Kind.MO_SUB_CA2)
    nonce = b"0123456789abcdef"
    resp = ocsp.load_der_ocsp_response(await fetch(url, build_request(leaf, issuer, nonce), policy=LOOPBACK))
    from cryptography import x509

    assert resp.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    # OCPP's OCSPRequestData (SHA-256 hashes) makes the same request
    by_hash = build_request_by_hash(ocsp_request_data(leaf, issuer))
    assert check_response(await fetch(url, by_hash, policy=LOOPBACK), leaf, issuer) is ocsp.OCSPCertStatus.GOOD
    # GET with the request in the path
    import asyncio

    target = urllib.parse.quote(base64.b64encode(build_request(leaf, issuer)).decode(), safe="")
    host, port = url.split("//")[1].split("/")[0].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /ocsp/{target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    assert raw.startswith(b"HTTP/1.1 200") and check_response(raw.split(b"\r\n\r\n", 1)[1], leaf, issuer) is \
        ocsp.OCSPCertStatus.GOOD


async def test_refusals(setup) -> None:  # type: ignore[no-untyped-def]
    pki, _, url, _ = setup
    leaf, issuer = pki.cert(Kind.CONTRACT), pki.cert(Kind.MO_SUB_CA2)
    malformed = ocsp.load_der_ocsp_response(await fetch(url, b"not an OCSP request", policy=LOOPBACK))
    assert malformed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    other = create_pki()
    foreign = ocsp.load_der_ocsp_response(await fetch(url, build_request(other.cert(Kind.CONTRACT),
                                                                         other.cert(Kind.MO_SUB_CA2)), policy=LOOPBACK))
    assert foreign.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    with pytest.raises(OcspError, match="UNAUTHORIZED"):
        check_response(await fetch(url, build_request(other.cert(Kind.CONTRACT), other.cert(Kind.MO_SUB_CA2)),
                                   policy=LOOPBACK),
                       other.cert(Kind.CONTRACT), other.cert(Kind.MO_SUB_CA2))
    # a response signed by another CA (another PKI's MO Sub-CA 2) is refused for our certificate's issuer
    req = ocsp.load_der_ocsp_request(build_request(leaf, issuer))
    now = datetime.datetime.now(datetime.UTC)
    forged = ocsp.OCSPResponseBuilder().add_response_by_hash(
        req.issuer_name_hash, req.issuer_key_hash, req.serial_number, req.hash_algorithm, ocsp.OCSPCertStatus.GOOD,
        now, now + datetime.timedelta(hours=1), None, None,
    ).responder_id(ocsp.OCSPResponderEncoding.HASH, other.cert(Kind.MO_SUB_CA2)).sign(
        other.items[Kind.MO_SUB_CA2].key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    with pytest.raises(OcspError, match="signature"):
        check_response(forged, leaf, issuer)
    # an answer about another certificate is refused
    with pytest.raises(OcspError, match="another certificate"):
        check_response(await fetch(url, build_request(pki.cert(Kind.MO_SUB_CA2), pki.cert(Kind.MO_SUB_CA1)),
                                   policy=LOOPBACK),
                       leaf, issuer)
    with pytest.raises(OcspError, match="unreachable"):
        await fetch("http://127.0.0.1:9/ocsp", build_request(leaf, issuer), timeout=2, policy=LOOPBACK)


def test_cli_revoke_and_list(tmp_path: Path) -> None:
    pki = create_pki()
    write_pki(pki, tmp_path)
    (tmp_path / "contract.pem").write_bytes(cert_pem(pki.cert(Kind.CONTRACT)))
    runner = CliRunner()
    r = runner.invoke(app, ["pki", "revoke", str(tmp_path / "contract.pem"), "--dir", str(tmp_path), "--reason",
                            "superseded"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["pki", "revoked", "--dir", str(tmp_path)])
    assert f"{pki.cert(Kind.CONTRACT).serial_number:x}" in r.output and "superseded" in r.output
    r = runner.invoke(app, ["pki", "revoke", str(tmp_path / "contract.pem"), "--dir", str(tmp_path), "--reason",
                            "bored"])
    assert r.exit_code == 2
    assert RevocationList(tmp_path / "revoked.json").lookup(pki.cert(Kind.MO_SUB_CA2),
                                                            pki.cert(Kind.CONTRACT).serial_number) is not None
