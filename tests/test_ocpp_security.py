"""Security profiles 1-3 with real TLS on 127.0.0.1, subprotocol negotiation, keepalive and reconnection."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from helpers.ocpp import (
    NOW,
    PASSWORD,
    Pki,
    csms_router,
    make_pki,
    refused_with,
    tls_handshake,
    tls_probe_context,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from v2gstack.ocpp import (
    BackOff,
    Connection,
    Credentials,
    HandshakeRefused,
    OcppServer,
    Router,
    SecurityProfile,
    StaticAuthenticator,
    StationClient,
    client_context,
    server_context,
)

pytestmark = pytest.mark.timeout(60)

KNOWN = {"CS001": PASSWORD, "CS1": PASSWORD, "CS2": "another-password-16"}


@pytest.fixture(scope="module")
def pki() -> Pki:
    """The test PKI (made once)."""
    return make_pki()


class Recorder:
    """Remembers which stations the server let in, and with what credentials."""

    def __init__(self) -> None:
        self.accepted: list[Credentials] = []

    def __call__(self, conn: Connection) -> None:
        """on_connect hook."""
        self.accepted.append(conn.data["credentials"])


async def started(profile: int, pki: Pki, recorder: Recorder, **kw: Any) -> OcppServer:
    """A CSMS server for `profile`, running on a free port."""
    ctx = None
    if profile == 2:
        ctx = server_context(pki.server_cert, pki.server_key)
    elif profile == 3:
        ctx = server_context(pki.server_cert, pki.server_key, client_ca=pki.root)
    srv = OcppServer({"2.0.1": csms_router()}, security_profile=profile, ssl=ctx,
                     authenticator=StaticAuthenticator(KNOWN), on_connect=recorder, **kw)
    await srv.start()
    return srv


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    """A fresh on_connect recorder."""
    yield Recorder()


def endpoint(srv: OcppServer, scheme: str = "ws") -> str:
    """The server's OCPP endpoint URL."""
    return f"{scheme}://127.0.0.1:{srv.port}/ocpp"


async def heartbeat(client: StationClient) -> None:
    """Connect, prove the session works, close."""
    conn = await client.connect()
    try:
        assert await conn.call("Heartbeat", {}) == {"currentTime": NOW}
    finally:
        await conn.close()


def test_pki_is_consistent() -> None:
    """The generated station certificates carry the identities the security tests rely on."""
    pki = make_pki()
    cn = x509.load_pem_x509_certificate(pki.cs1_cert.read_bytes()).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert cn[0].value == "CS001"


# ----- profile 1: ws + Basic auth -----

async def test_profile1_accepts_right_station_and_refuses_the_rest(pki: Pki, recorder: Recorder) -> None:
    """Right id + password connects; wrong password 401, no credentials 401, another station's credentials 401,
    unknown station 401 (as a wrong password: ids are not disclosed), wrong path 404, malformed identity 404."""
    srv = await started(1, pki, recorder)
    try:
        url, r = endpoint(srv), Router()
        await heartbeat(StationClient(url, "CS1", r, password=PASSWORD))
        assert [c.station_id for c in recorder.accepted] == ["CS1"]
        assert recorder.accepted[0].password == PASSWORD
        assert await refused_with(StationClient(url, "CS1", r, password="wrong-password-123")) == 401
        assert await refused_with(StationClient(url, "CS1", r)) == 401
        assert await refused_with(StationClient(url, "CS9", r, password=PASSWORD)) == 401
        assert await refused_with(StationClient(f"ws://127.0.0.1:{srv.port}/other", "CS1", r, password=PASSWORD)) == 404
        assert await refused_with(StationClient(url, "CS:1", r, password=PASSWORD)) == 404
        # CS2's own valid credentials, presented for CS1's URL
        async with asyncio.timeout(10):
            with pytest.raises(Exception) as info:
                async with connect(f"{url}/CS1", subprotocols=["ocpp2.0.1"], proxy=None,  # type: ignore[list-item]
                                   additional_headers={"Authorization": _basic("CS2", KNOWN["CS2"])}):
                    pass
        assert getattr(getattr(info.value, "response", None), "status_code", None) == 401
        assert len(recorder.accepted) == 1
    finally:
        await srv.close()


def _basic(user: str, password: str) -> str:
    """A Basic auth header value."""
    from v2gstack.ocpp.auth import basic_auth_header

    return basic_auth_header(user, password)


async def test_no_agreed_subprotocol_is_refused(pki: Pki, recorder: Recorder) -> None:
    """A station offering no OCPP version we speak is closed right after the handshake (1002)."""
    srv = await started(1, pki, recorder)
    try:
        client = StationClient(endpoint(srv), "CS1", Router(), password=PASSWORD, versions=["1.6"])
        with pytest.raises(HandshakeRefused) as info:
            await client.connect()
        assert info.value.status == 0
        async with connect(f"{endpoint(srv)}/CS1", proxy=None,
                           additional_headers={"Authorization": _basic("CS1", PASSWORD)}) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1002
        assert recorder.accepted == []
    finally:
        await srv.close()


async def test_version_negotiation_prefers_the_servers_order(pki: Pki, recorder: Recorder) -> None:
    """A station offering 2.1 and 2.0.1 to a server speaking 2.0.1 gets 2.0.1."""
    srv = await started(1, pki, recorder)
    try:
        client = StationClient(endpoint(srv), "CS1", Router(), password=PASSWORD, versions=["2.1", "2.0.1"])
        conn = await client.connect()
        assert conn.version.value == "2.0.1" and conn.ws.subprotocol == "ocpp2.0.1"
        await conn.close()
    finally:
        await srv.close()


# ----- profile 2: wss + Basic auth -----

async def test_profile2_tls_and_basic_auth(pki: Pki, recorder: Recorder) -> None:
    """TLS with the CSMS certificate plus Basic auth; wrong password and unknown station 401, plain ws fails."""
    srv = await started(2, pki, recorder)
    try:
        url, r, ctx = endpoint(srv, "wss"), Router(), client_context(pki.root)
        await heartbeat(StationClient(url, "CS1", r, password=PASSWORD, ssl=ctx))
        assert await refused_with(StationClient(url, "CS1", r, password="wrong-password-123", ssl=ctx)) == 401
        assert await refused_with(StationClient(url, "CS7", r, password=PASSWORD, ssl=ctx)) == 401
        with pytest.raises((OSError, HandshakeRefused, TimeoutError)):
            await StationClient(endpoint(srv, "ws"), "CS1", r, password=PASSWORD, open_timeout=5).connect()
        untrusting = client_context(pki.cs1_cert)  # trusts some other certificate, not the CSMS's root
        with pytest.raises(ssl.SSLError):
            await StationClient(url, "CS1", r, password=PASSWORD, ssl=untrusting).connect()
        assert [c.station_id for c in recorder.accepted] == ["CS1"]
    finally:
        await srv.close()


async def test_tls_below_12_and_other_ciphers_are_refused(pki: Pki, recorder: Recorder) -> None:
    """TLS 1.0/1.1 and TLS 1.2 suites outside the OCPP list fail; TLS 1.2 with an OCPP suite and TLS 1.3 work."""
    srv = await started(2, pki, recorder)
    try:
        assert await tls_handshake(srv, tls_probe_context(pki, ssl.TLSVersion.TLSv1_1, "ALL:@SECLEVEL=0")) is None
        assert await tls_handshake(srv, tls_probe_context(pki, ssl.TLSVersion.TLSv1_2,
                                                            "ECDHE-ECDSA-CHACHA20-POLY1305")) is None
        cbc = tls_probe_context(pki, ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA")
        assert await tls_handshake(srv, cbc) is None
        ok12 = await tls_handshake(srv, tls_probe_context(pki, ssl.TLSVersion.TLSv1_2, "ALL"))
        assert ok12 is not None and ok12[0] == "TLSv1.2" and ok12[1] in srv_ciphers()
        ok13 = await tls_handshake(srv, tls_probe_context(pki, ssl.TLSVersion.TLSv1_3, "ALL"))
        assert ok13 is not None and ok13[0] == "TLSv1.3"
    finally:
        await srv.close()


def srv_ciphers() -> set[str]:
    """The TLS 1.2 suites the OCPP security rules name."""
    from v2gstack.ocpp.tls import OCPP_TLS12_CIPHERS

    return set(OCPP_TLS12_CIPHERS.split(":"))


# ----- profile 3: wss + client certificate -----

async def test_profile3_client_certificates(pki: Pki, recorder: Recorder) -> None:
    """Identity is the certificate CN and must match the URL; missing or untrusted certificates never get in."""
    srv = await started(3, pki, recorder)
    try:
        url, r = endpoint(srv, "wss"), Router()
        cs1 = client_context(pki.root, certfile=pki.cs1_cert, keyfile=pki.cs1_key)
        await heartbeat(StationClient(url, "CS001", r, ssl=cs1))
        assert [(c.station_id, c.certificate_cn) for c in recorder.accepted] == [("CS001", "CS001")]
        assert recorder.accepted[0].password is None and recorder.accepted[0].certificate_der
        cs2 = client_context(pki.root, certfile=pki.cs2_cert, keyfile=pki.cs2_key)
        assert await refused_with(StationClient(url, "CS001", r, ssl=cs2)) == 403  # CN CS002 posing as CS001
        assert await refused_with(StationClient(url, "CS002", r, ssl=cs2)) == 404  # valid CN, unknown station
        for ctx in (client_context(pki.root),  # no client certificate
                    client_context(pki.root, certfile=pki.rogue_cert, keyfile=pki.rogue_key)):  # untrusted CA
            with pytest.raises((OSError, HandshakeRefused, TimeoutError)) as info:
                await StationClient(url, "CS001", r, ssl=ctx, open_timeout=5).connect()
            assert getattr(info.value, "status", 0) == 0  # refused by TLS itself, before any HTTP answer
        assert len(recorder.accepted) == 1
    finally:
        await srv.close()


def test_server_refuses_settings_that_do_not_make_a_profile(pki: Pki) -> None:
    """Profile 2/3 need TLS, 3 needs required client certificates, 1 runs without TLS, all need authentication."""
    auth = StaticAuthenticator(KNOWN)
    routers = {"2.0.1": Router()}
    with pytest.raises(ValueError):
        OcppServer(routers, security_profile=2, authenticator=auth)
    with pytest.raises(ValueError):
        OcppServer(routers, security_profile=3, authenticator=auth, ssl=server_context(pki.server_cert, pki.server_key))
    with pytest.raises(ValueError):
        OcppServer(routers, security_profile=1, authenticator=auth, ssl=server_context(pki.server_cert, pki.server_key))
    with pytest.raises(ValueError):
        OcppServer(routers, security_profile=SecurityProfile.BASIC)


# ----- keepalive and reconnection -----

async def test_ping_pong_keepalive(pki: Pki, recorder: Recorder) -> None:
    """With a short ping interval the station measures a pong round trip and the session stays usable."""
    srv = await started(1, pki, recorder, ping_interval=0.05)
    try:
        conn = await StationClient(endpoint(srv), "CS1", Router(), password=PASSWORD, ping_interval=0.05).connect()
        while conn.ws.latency == 0:  # type: ignore[attr-defined]
            await asyncio.sleep(0.02)
        assert await conn.call("Heartbeat", {}) == {"currentTime": NOW}
        await conn.close()
    finally:
        await srv.close()


def test_backoff_doubles_and_adds_jitter() -> None:
    """RetryBackOff semantics: minimum doubles per attempt up to repeat_times; jitter adds 0..random_range."""
    b = BackOff(wait_minimum=2.0, random_range=5.0, repeat_times=3)
    assert [b.delay(n, rng=lambda: 0.0) for n in range(6)] == [2.0, 4.0, 8.0, 16.0, 16.0, 16.0]
    assert b.delay(0, rng=lambda: 1.0) == 7.0


async def test_station_reconnects_with_backoff(pki: Pki, recorder: Recorder) -> None:
    """The station keeps trying while the CSMS is down, connects when it comes up, and reconnects after a drop."""
    probe = await started(1, pki, recorder)
    port = probe.port
    await probe.close()  # nothing listens on `port` now
    boots: list[str] = []

    async def on_connect(conn: Connection) -> None:
        boots.append((await conn.call("BootNotification", {
            "chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"}))["status"])

    client = StationClient(f"ws://127.0.0.1:{port}/ocpp", "CS1", Router(), password=PASSWORD, on_connect=on_connect,
                           backoff=BackOff(wait_minimum=0.02, random_range=0.02, repeat_times=2))
    runner = asyncio.create_task(client.run())
    srv = None
    try:
        await asyncio.sleep(0.1)  # a few refused attempts
        assert client.connects == 0
        srv = OcppServer({"2.0.1": csms_router()}, authenticator=StaticAuthenticator(KNOWN), on_connect=recorder)
        await srv.start(port=port)
        first = await asyncio.wait_for(client.wait_connected(), 10)
        while not boots:
            await asyncio.sleep(0.01)
        await srv.connections["CS1"].close()  # the CSMS drops the station
        await first.wait_closed()
        second = await asyncio.wait_for(client.wait_connected(), 10)
        while len(boots) < 2:
            await asyncio.sleep(0.01)
        assert second is not first and client.connects == 2 and boots == ["Accepted", "Accepted"]
    finally:
        await client.stop()
        await asyncio.wait_for(runner, 10)
        if srv is not None:
            await srv.close()
