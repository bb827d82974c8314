"""The OCSP fetch policy (which targets, names resolved first), the bounded fetch (size cap, https) and the cache of
checked answers, on their own; over loopback sockets where they fetch."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
from cryptography.x509 import ocsp
from helpers.ocpp import make_pki
from helpers.ocsp import listener, stream
from helpers.wait import until

from v2gstack.pki.fetch_policy import AllowEntry, FetchPolicy, TargetRefused
from v2gstack.pki.hierarchy import create_pki
from v2gstack.pki.ocsp import OcspError, OcspRefused, OcspResponder, build_request, fetch, unsuccessful
from v2gstack.pki.ocsp_cache import OcspCache, cert_id
from v2gstack.pki.ocsp_data import ocsp_request_data
from v2gstack.pki.profiles import Kind
from v2gstack.pki.store import write_pki


async def test_fetch_reads_at_most_the_cap() -> None:
    policy = FetchPolicy(allow=("127.0.0.1",), max_response=65536)
    async with listener(stream(64 << 20)) as endless:
        with pytest.raises(OcspError, match="larger than 65536"):
            await fetch(f"http://127.0.0.1:{endless.port}/", b"x", policy=policy)
        await until(lambda: endless.sent > 0)
        assert endless.sent < 32 << 20
    async with listener(stream(0, content_length=300 << 20)) as announced:
        with pytest.raises(OcspError, match="larger than"):
            await fetch(f"http://127.0.0.1:{announced.port}/", b"x", policy=policy)
    async with listener(stream(65536, content_length=65536)) as fits:
        assert len(await fetch(f"http://127.0.0.1:{fits.port}/", b"x", policy=policy)) == 65536


async def test_fetch_over_https() -> None:
    """https responders are verified like any TLS server (here with the test root)."""
    certs = make_pki()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(certs.server_cert, certs.server_key)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        client_ctx = ssl.create_default_context(cafile=str(certs.root))
        body = await fetch(f"https://localhost:{port}/ocsp", b"x", policy=FetchPolicy(allow=("localhost",)),
                           ssl_context=client_ctx)
        assert body == b"hello"
        with pytest.raises(OcspError, match="unreachable"):  # the system CAs do not know the test root
            await fetch(f"https://localhost:{port}/ocsp", b"x", policy=FetchPolicy(allow=("localhost",)))
    finally:
        server.close()


async def test_names_are_resolved_before_the_check() -> None:
    with pytest.raises(OcspRefused):
        await fetch("http://localhost/ocsp", b"x")  # a name, but a loopback one
    with pytest.raises(TargetRefused, match="not a public address"):
        await FetchPolicy().resolve("http://localhost:80/")
    assert (await FetchPolicy(allow=("localhost",)).resolve("http://localhost:8080/x?y")).path == "/x?y"
    assert (await FetchPolicy(allow_private=True).resolve("http://127.0.0.1/")).port == 80


def ip(text: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return [ipaddress.ip_address(text)]


@pytest.mark.parametrize(("policy", "host", "port", "address", "allowed"), [
    (FetchPolicy(), "ocsp.example", 80, "93.184.216.34", True),
    (FetchPolicy(), "ocsp.example", 443, "2606:2800:220:1::", True),
    (FetchPolicy(), "ocsp.example", 22, "93.184.216.34", False),  # odd port, not listed
    (FetchPolicy(), "ocsp.example", 80, "10.1.2.3", False),
    (FetchPolicy(), "ocsp.example", 80, "169.254.169.254", False),  # link-local (cloud metadata)
    (FetchPolicy(), "ocsp.example", 80, "::ffff:10.0.0.1", False),
    (FetchPolicy(), "ocsp.example", 80, "fe80::1", False),
    (FetchPolicy(), "ocsp.example", 80, "100.64.0.1", False),  # carrier-grade NAT
    (FetchPolicy(allow_private=True), "ocsp.example", 80, "10.1.2.3", True),
    (FetchPolicy(allow_private=True), "ocsp.example", 80, "0.0.0.0", False),
    (FetchPolicy(allow_private=True), "ocsp.example", 8080, "10.1.2.3", False),
    (FetchPolicy(allow=("10.0.0.0/8",)), "ocsp.example", 8080, "10.1.2.3", True),
    (FetchPolicy(allow=("ocsp.internal:8080",)), "OCSP.internal.", 8080, "10.1.2.3", True),
    (FetchPolicy(allow=("ocsp.internal:8080",)), "ocsp.internal", 8081, "10.1.2.3", False),
    (FetchPolicy(allow=("[::1]:9000",)), "::1", 9000, "::1", True),
    (FetchPolicy(allow=("ocsp.internal",), allow_only=True), "ocsp.example", 80, "93.184.216.34", False),
    (FetchPolicy(allow=("ocsp.internal",), allow_only=True), "ocsp.internal", 80, "10.1.2.3", True),
])
def test_policy_decisions(policy: FetchPolicy, host: str, port: int, address: str, allowed: bool) -> None:
    if allowed:
        policy.check(host, port, ip(address))
    else:
        with pytest.raises(TargetRefused):
            policy.check(host, port, ip(address))


@pytest.mark.parametrize("entry", ["", "host:", "host:99999", "[::1", "[::1]x", "10.0.0.0/33", "a:b:c"])
def test_bad_allow_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        AllowEntry.parse(entry)


def test_cache_keeps_checked_answers_until_next_update(tmp_path: Path) -> None:
    """The cache: until nextUpdate (or max_age), least recently used out beyond its size, no unknown status."""
    pki = create_pki()
    write_pki(pki, tmp_path)
    responder = OcspResponder.from_pki_dir(tmp_path)
    now = [dt.datetime.now(dt.UTC)]
    cache = OcspCache(max_entries=2, max_age=dt.timedelta(hours=2), clock=lambda: now[0])

    def answer(cert: Kind, issuer: Kind) -> tuple[tuple[str, str, str, int], bytes]:
        data = ocsp_request_data(pki.cert(cert), pki.cert(issuer))
        return cert_id(data), responder.respond(build_request(pki.cert(cert), pki.cert(issuer)))

    k1, a1 = answer(Kind.CONTRACT, Kind.MO_SUB_CA2)
    k2, a2 = answer(Kind.MO_SUB_CA2, Kind.MO_SUB_CA1)
    k3, a3 = answer(Kind.SECC, Kind.CPO_SUB_CA2)
    assert cache.put(k1, a1) is not None and cache.get(k1).status is ocsp.OCSPCertStatus.GOOD  # type: ignore[union-attr]
    cache.put(k2, a2)
    cache.get(k1)  # k1 used last: k2 goes when k3 comes
    cache.put(k3, a3)
    assert cache.get(k2) is None and cache.get(k1) is not None and cache.get(k3) is not None
    now[0] += responder.validity + dt.timedelta(seconds=1)  # past nextUpdate
    assert cache.get(k1) is None and len(cache) == 1
    assert OcspCache(max_entries=0).put(k1, a1) is None
    assert cache.put(k1, unsuccessful(ocsp.OCSPResponseStatus.TRY_LATER)) is None



async def test_odd_ports_and_unlisted_names_are_refused_before_any_lookup() -> None:
    """A name that cannot resolve: had it been looked up, the answer would be OSError (unresolvable), not a refusal."""
    name = "no-such-host.invalid"
    with pytest.raises(TargetRefused, match="port 22"):
        await FetchPolicy().resolve(f"http://{name}:22/")
    with pytest.raises(TargetRefused, match="allow list"):
        await FetchPolicy(allow=("ocsp.internal",), allow_only=True).resolve(f"http://{name}/")
