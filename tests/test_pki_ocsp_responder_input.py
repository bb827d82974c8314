"""The OCSP responder answers every request it receives over real HTTP, whatever the request: a CertID with a hash
algorithm nobody knows gets malformedRequest, an oversized head or body 400, and it keeps serving afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.x509 import ocsp
from helpers.ocsp import start_responder

from v2gstack.pki.hierarchy import Pki
from v2gstack.pki.ocsp import MAX_HEAD, build_request, check_response
from v2gstack.pki.profiles import Kind

SHA256_OID = bytes.fromhex("0609608648016503040201")  # DER of 2.16.840.1.101.3.4.2.1
UNKNOWN_OID = bytes.fromhex("0609608648016503040263")  # 2.16.840.1.101.3.4.2.99: no such hash


@pytest.fixture
async def responder(tmp_path: Path) -> AsyncIterator[tuple[Pki, int]]:
    pki, _, _, server = await start_responder(tmp_path)
    try:
        yield pki, server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    finally:
        server.close()  # type: ignore[attr-defined]


async def exchange(port: int, raw: bytes) -> bytes:
    """Send raw bytes to the responder and read everything it answers until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def post(body: bytes) -> bytes:
    """An HTTP POST of an OCSP request."""
    return (b"POST /ocsp HTTP/1.1\r\nHost: x\r\nContent-Type: application/ocsp-request\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


async def test_unknown_hash_algorithm_is_malformed_request(responder: tuple[Pki, int]) -> None:
    pki, port = responder
    good = build_request(pki.cert(Kind.CONTRACT), pki.cert(Kind.MO_SUB_CA2))
    assert good.count(SHA256_OID) == 1
    raw = await exchange(port, post(good.replace(SHA256_OID, UNKNOWN_OID)))
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw[:200]
    assert ocsp.load_der_ocsp_response(body).response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    # and it keeps serving
    raw = await exchange(port, post(good))
    assert check_response(raw.partition(b"\r\n\r\n")[2], pki.cert(Kind.CONTRACT),
                          pki.cert(Kind.MO_SUB_CA2)) is ocsp.OCSPCertStatus.GOOD


async def test_oversized_requests_get_400(responder: tuple[Pki, int]) -> None:
    pki, port = responder
    big_header = b"GET /ocsp/AAAA HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 100_000 + b"\r\n\r\n"
    raw = await exchange(port, big_header)
    assert raw.startswith(b"HTTP/1.1 400"), raw[:200]
    assert len(big_header) > MAX_HEAD
    raw = await exchange(port, b"POST /ocsp HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + b"\0" * 100_000)
    assert raw.startswith(b"HTTP/1.1 400"), raw[:200]
    raw = await exchange(port, b"DELETE /ocsp HTTP/1.1\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 405"), raw[:200]
    good = build_request(pki.cert(Kind.CONTRACT), pki.cert(Kind.MO_SUB_CA2))
    assert (await exchange(port, post(good))).startswith(b"HTTP/1.1 200")
