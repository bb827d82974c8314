"""Per-station security profiles on one CSMS process (A00/A05) over real sockets and real TLS: profile 1, 2 and 3
stations each on their own listener; a station below its stored profile refused (403); a station that connects
with a higher profile has its stored profile raised, and the lower one is refused from then on; the A05 upgrade
procedure sent by the API (SetNetworkProfile, NetworkConfigurationPriority, Reset) and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.csms import PASSWORD as PASSWORD_OURS
from helpers.csms import api_client, csms_url, our_station, running_csms
from helpers.ocpp import Pki, make_pki, refused_with
from helpers.peers import their_station
from helpers.wait import until

from v2gstack.csms.security_profiles import op_raise_security_profile
from v2gstack.csms.service import Csms
from v2gstack.ocpp import HandshakeRefused, Router, StationClient, client_context, server_context

PASSWORD = "registry-password-01"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki()


async def heartbeat(client: StationClient) -> None:
    """Connect, prove the session works, close."""
    conn = await client.connect()
    try:
        assert "currentTime" in await conn.call("Heartbeat", {})
    finally:
        await conn.close()


def profile_of(csms: Csms, station_id: str) -> int:
    st = csms.store.station(station_id)
    assert st is not None
    return st.security_profile


async def test_three_profiles_on_one_csms(tmp_path: Path, pki: Pki) -> None:
    stations: dict[str, str | None] = {"P1": PASSWORD, "P2": PASSWORD, "CS001": None}
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations=stations, security_profile=1) as csms:
        await csms.worker.run(op_raise_security_profile, "P2", 2)
        await csms.worker.run(op_raise_security_profile, "CS001", 3)
        p2 = await csms.add_listener("127.0.0.1", 0, 2, server_context(pki.server_cert, pki.server_key))
        p3 = await csms.add_listener("127.0.0.1", 0, 3, server_context(pki.server_cert, pki.server_key,
                                                                       client_ca=pki.root))
        ws, wss2, wss3 = csms_url(csms), f"wss://127.0.0.1:{p2}/ocpp", f"wss://127.0.0.1:{p3}/ocpp"
        r, trust = Router(), client_context(pki.root)
        cert = client_context(pki.root, certfile=pki.cs1_cert, keyfile=pki.cs1_key)
        # each on its own listener
        await heartbeat(StationClient(ws, "P1", r, password=PASSWORD))
        await heartbeat(StationClient(wss2, "P2", r, password=PASSWORD, ssl=trust))
        await heartbeat(StationClient(wss3, "CS001", r, ssl=cert))
        assert (profile_of(csms, "P1"), profile_of(csms, "P2"), profile_of(csms, "CS001")) == (1, 2, 3)
        # below the stored profile: refused, even with the right password
        assert await refused_with(StationClient(ws, "P2", r, password=PASSWORD)) == 403
        # a listener's own checks stay: no password on profile 2, no client certificate on profile 3
        assert await refused_with(StationClient(wss2, "P2", r, password="wrong-password-123", ssl=trust)) == 401
        with pytest.raises((OSError, HandshakeRefused, TimeoutError)):
            await StationClient(wss3, "CS001", r, ssl=trust, open_timeout=5).connect()
        # P1 comes back with profile 2: upgraded, and profile 1 is refused from then on
        await heartbeat(StationClient(wss2, "P1", r, password=PASSWORD, ssl=trust))
        assert profile_of(csms, "P1") == 2
        assert await refused_with(StationClient(ws, "P1", r, password=PASSWORD)) == 403
        await csms.close()  # every listener closes
        with pytest.raises(OSError):
            await StationClient(wss2, "P2", r, password=PASSWORD, ssl=trust, open_timeout=5).connect()


async def test_a05_upgrade_procedure(tmp_path: Path, pki: Pki) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"PKG": PASSWORD, "OFF": PASSWORD}) as csms, \
            api_client(csms, "admin") as admin, api_client(csms, "operator") as operator:
        p2 = await csms.add_listener("127.0.0.1", 0, 2, server_context(pki.server_cert, pki.server_key))
        wss2 = f"wss://127.0.0.1:{p2}/ocpp"
        async with their_station(csms_url(csms), "PKG", PASSWORD, statuses={"SetVariables": "Accepted"}) as cp:
            body = {"securityProfile": 2, "url": wss2, "configurationSlot": 2}
            assert (await operator.post("/api/stations/PKG/security-profile", json=body)).status_code == 403
            r = await admin.post("/api/stations/PKG/security-profile", json=body)
            assert r.status_code == 200, r.text
            [network] = cp.actions("SetNetworkProfile")
            assert network["configuration_slot"] == 2
            data = network["connection_data"]
            assert data["security_profile"] == 2 and data["ocpp_csms_url"] == wss2
            [variables] = cp.actions("SetVariables")
            assert variables["set_variable_data"][0]["attribute_value"] == "2"
            assert cp.actions("Reset") == [{"type": "OnIdle"}]
            assert profile_of(csms, "PKG") == 1  # not before the station comes back with it
            # refusals: not above the current profile, a ws:// URL, an offline station
            bad = await admin.post("/api/stations/PKG/security-profile", json={**body, "url": "ws://x:1/ocpp"})
            assert bad.status_code == 422
        # the station reboots into its new profile
        await heartbeat(StationClient(wss2, "PKG", Router(), password=PASSWORD, ssl=client_context(pki.root)))
        assert profile_of(csms, "PKG") == 2
        assert (await admin.post("/api/stations/PKG/security-profile", json=body)).status_code == 422
        assert (await admin.post("/api/stations/OFF/security-profile", json=body)).status_code == 409
        async with their_station(csms_url(csms), "OFF", PASSWORD) as refusing:  # SetVariables CALLERROR: 502
            r = await admin.post("/api/stations/OFF/security-profile", json=body)
            assert r.status_code == 502 and len(refusing.actions("SetNetworkProfile")) == 1


async def test_a05_with_our_station(tmp_path: Path, pki: Pki) -> None:
    """Our station (NetworkConnectionProfiles) takes the upgrade: it reboots onto the profile 2 listener with TLS,
    its stored profile becomes 2, and profile 1 is refused to it from then on."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, api_client(csms, "admin") as admin:
        p2 = await csms.add_listener("127.0.0.1", 0, 2, server_context(pki.server_cert, pki.server_key))
        wss2 = f"wss://127.0.0.1:{p2}/ocpp"
        async with our_station(csms, ssl=client_context(pki.root)) as st:
            await st.wait_accepted()
            first = st.link.client.connection
            r = await admin.post("/api/stations/CS1/security-profile", json={"securityProfile": 2, "url": wss2})
            assert r.status_code == 200, r.text
            assert r.json()["Reset"]["status"] == "Accepted"
            await until(lambda: st.online and st.link.client.connection is not first)
            assert st.link.client.url.startswith(wss2)
            await until(lambda: profile_of(csms, "CS1") == 2)
            assert await refused_with(StationClient(csms_url(csms), "CS1", Router(), password=PASSWORD_OURS)) == 403
