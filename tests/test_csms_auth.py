"""The CSMS's station authentication against its registry, per security profile: who gets in and who does not."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from helpers.csms import running_csms
from helpers.ocpp import Pki, make_pki, refused_with, tls_handshake, tls_probe_context
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from v2gstack.csms.service import Csms
from v2gstack.ocpp import HandshakeRefused, Router, StationClient, client_context, server_context
from v2gstack.ocpp.auth import basic_auth_header
from v2gstack.ocpp.throttle import ThrottlePolicy

PASSWORD = "registry-password-01"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


def _url(csms: Csms, scheme: str) -> str:
    return f"{scheme}://127.0.0.1:{csms.port}/ocpp"


async def heartbeat(client: StationClient) -> None:
    """Connect, prove the session works (a Heartbeat answered with the time), close."""
    conn = await client.connect()
    try:
        assert "currentTime" in await conn.call("Heartbeat", {})
    finally:
        await conn.close()


async def test_profile1_registry_passwords(tmp_path: Path) -> None:
    # five refusals from one address: more than the guessing throttle lets pass (test_csms_auth_throttle.py)
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"CS1": PASSWORD, "NOPW": None},
                            auth_throttle=ThrottlePolicy(free_failures=10)) as csms:
        url, r = _url(csms, "ws"), Router()
        await heartbeat(StationClient(url, "CS1", r, password=PASSWORD))
        await heartbeat(StationClient(url, "CS1", r, password=PASSWORD))  # the remembered, fast path
        assert await refused_with(StationClient(url, "CS1", r, password="wrong-password-123")) == 401
        assert await refused_with(StationClient(url, "CS9", r, password=PASSWORD)) == 401  # not 404: see below
        assert await refused_with(StationClient(url, "NOPW", r, password=PASSWORD)) == 401  # registered without one
        # a password changed in the registry takes effect at once, even for a station seen before
        csms.store.set_station_password("CS1", "the-new-password-02")
        assert await refused_with(StationClient(url, "CS1", r, password=PASSWORD)) == 401
        await heartbeat(StationClient(url, "CS1", r, password="the-new-password-02"))


async def test_profile2_tls_and_registry(tmp_path: Path, pki: Pki) -> None:
    ctx = server_context(pki.server_cert, pki.server_key)
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"CS1": PASSWORD}, security_profile=2,
                            ssl=ctx) as csms:
        url, r, client = _url(csms, "wss"), Router(), client_context(pki.root)
        await heartbeat(StationClient(url, "CS1", r, password=PASSWORD, ssl=client))
        assert await refused_with(StationClient(url, "CS1", r, password="wrong-password-123", ssl=client)) == 401
        assert await refused_with(StationClient(url, "CS7", r, password=PASSWORD, ssl=client)) == 401
        assert await tls_handshake(csms.server, tls_probe_context(pki, ssl.TLSVersion.TLSv1_1,
                                                                    "ALL:@SECLEVEL=0")) is None
        with pytest.raises((OSError, HandshakeRefused, TimeoutError)):
            await StationClient(_url(csms, "ws"), "CS1", r, password=PASSWORD, open_timeout=5).connect()


async def test_profile3_client_certificates_and_registry(tmp_path: Path, pki: Pki) -> None:
    ctx = server_context(pki.server_cert, pki.server_key, client_ca=pki.root)
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"CS001": None}, security_profile=3,
                            ssl=ctx) as csms:
        url, r = _url(csms, "wss"), Router()
        await heartbeat(StationClient(url, "CS001", r, ssl=client_context(pki.root, certfile=pki.cs1_cert,
                                                                          keyfile=pki.cs1_key)))
        cs2 = client_context(pki.root, certfile=pki.cs2_cert, keyfile=pki.cs2_key)
        assert await refused_with(StationClient(url, "CS002", r, ssl=cs2)) == 404  # valid certificate, not registered
        assert await refused_with(StationClient(url, "CS001", r, ssl=cs2)) == 403  # CN CS002 posing as CS001
        for bad in (client_context(pki.root), client_context(pki.root, certfile=pki.rogue_cert, keyfile=pki.rogue_key)):
            with pytest.raises((OSError, HandshakeRefused, TimeoutError)):
                await StationClient(url, "CS001", r, ssl=bad, open_timeout=5).connect()


async def _refusal(url: str, station_id: str, password: str, ssl_ctx: ssl.SSLContext | None = None
                   ) -> tuple[int, str | None, bytes]:
    """The whole HTTP answer to a refused handshake: status, WWW-Authenticate, body."""
    with pytest.raises(InvalidStatus) as info:
        async with connect(f"{url}/{station_id}", subprotocols=["ocpp2.0.1"], ssl=ssl_ctx,  # type: ignore[list-item]
                           additional_headers={"Authorization": basic_auth_header(station_id, password)},
                           proxy=None, open_timeout=30):
            pass
    response = info.value.response
    return response.status_code, response.headers.get("WWW-Authenticate"), response.body or b""


@pytest.mark.parametrize("profile", [1, 2])
async def test_unknown_stations_are_refused_exactly_like_wrong_passwords(tmp_path: Path, pki: Pki,
                                                                         profile: int) -> None:
    """With Basic auth (A00: 401 for a wrong password) an unknown station id gets the very same 401, so the
    handshake does not tell which station ids exist (it used to answer 404); the operator's log still says why."""
    ctx = server_context(pki.server_cert, pki.server_key) if profile == 2 else None
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"CS1": PASSWORD, "NOPW": None},
                            security_profile=profile, ssl=ctx) as csms:
        url = _url(csms, "wss" if profile == 2 else "ws")
        client = client_context(pki.root) if profile == 2 else None
        wrong = await _refusal(url, "CS1", "wrong-password-123", client)
        assert wrong[0] == 401 and wrong[1] is not None and wrong[1].startswith("Basic")
        assert await _refusal(url, "CS9", "wrong-password-123", client) == wrong  # unknown
        assert await _refusal(url, "NOPW", "wrong-password-123", client) == wrong  # registered without a password
