"""Our EVCC against our SECC over real loopback sockets: SDP, TCP and TLS, all three flows, concurrency, resume."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from v2gstack import exi
from v2gstack.iso15118 import EvccConfig, EvccTimers, EVModel, SeccServer, SimulatedEVSE, SimulatedEVSEConfig, run_evcc
from v2gstack.iso15118.devcerts import SeccChain, make_secc_chain
from v2gstack.iso15118.msglog import MessageRecord
from v2gstack.iso15118.tls import evcc_context

FLOWS = [("din", "dc"), ("iso2", "ac"), ("iso2", "dc")]
LENIENT = EvccTimers().scaled(8)  # the EVs' timeouts x8 where a test checks behaviour, not speed


@pytest.fixture(scope="module")
def chain() -> SeccChain:
    """One SECC certificate chain for the module."""
    return make_secc_chain()


@pytest.fixture
async def secc(chain: SeccChain) -> AsyncIterator[SeccServer]:
    """A SECC with TCP and TLS listeners and SDP on ephemeral ports of ::1."""
    records: list[MessageRecord] = []
    server = SeccServer(SimulatedEVSE, host="::1", tls=chain.server_context(), sdp_port=0, on_message=records.append)
    server.records = records  # type: ignore[attr-defined]
    async with server:
        yield server


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
@pytest.mark.parametrize(("protocol", "energy"), FLOWS)
async def test_session_over_sdp(secc: SeccServer, chain: SeccChain, protocol: str, energy: str, tls: bool) -> None:
    """Each flow over TCP and TLS, found by SDP; both sides log the same messages."""
    records: list[MessageRecord] = []
    config = EvccConfig(protocols=(protocol,), energy=energy, loops=3)
    result = await run_evcc(config, EVModel(), tls=tls, sdp_port=secc.addresses()["sdp"][1],
                            tls_context=evcc_context(cadata=chain.root_pem.decode()) if tls else None,
                            on_message=records.append)
    assert result.ok, result.reason
    assert result.protocol == protocol and result.response_code == "OK" and result.charge_loops == 3
    session = secc.finished[-1]
    assert session.ok and session.tls is tls and session.session_id == result.session_id
    # the per-message log: both sides saw the same messages, each record's hex decodes to its JSON
    assert [r.name for r in records] == [r.name for r in secc.records]  # type: ignore[attr-defined]
    assert records[0].name == "supportedAppProtocolReq" and records[-1].name == "SessionStopRes"
    for r in records:
        assert exi.decode(r.namespace, r.exi) == r.doc
        assert r.session_id in ("00", result.session_id) and r.role == "EVCC"
    assert {r.namespace for r in records} == {"appHand", protocol}


async def test_tls_requested_but_only_tcp_offered() -> None:
    """The EV follows the SECC's SDP answer when it offers only TCP."""
    async with SeccServer(SimulatedEVSE, host="::1", sdp_port=0) as server:
        result = await run_evcc(EvccConfig(loops=1), tls=True, sdp_port=server.addresses()["sdp"][1])
    assert result.ok and not server.finished[-1].tls


async def test_ipv4_loopback_and_direct_address() -> None:
    """IPv4 loopback through SDP, and a direct address without SDP."""
    async with SeccServer(SimulatedEVSE, host="127.0.0.1", sdp_port=0) as server:
        via_sdp = await run_evcc(EvccConfig(loops=1), sdp_host="127.0.0.1", sdp_port=server.addresses()["sdp"][1])
        direct = await run_evcc(EvccConfig(loops=1), secc=server.addresses()["tcp"])
    assert via_sdp.ok and direct.ok


async def test_many_concurrent_sessions(secc: SeccServer, chain: SeccChain) -> None:
    """24 concurrent sessions of all flows over TCP and TLS all complete. What is checked is that they do not mix
    up, not how fast one process answers 24 EVs: the EVs' timeouts are stretched (a CI run's 600 ms stall of the
    busy test process once ended nine of them at the 0.25 s CurrentDemandRes timeout, which test_iso15118_bad_input
    checks on its own)."""
    root = chain.root_pem.decode()
    sdp_port = secc.addresses()["sdp"][1]
    runs = []
    for i in range(24):
        protocol, energy = FLOWS[i % 3]
        tls = i % 2 == 1
        config = EvccConfig(protocols=(protocol,), energy=energy, loops=5, evcc_id=f"0A0000000{i:03X}",
                            timers=LENIENT)
        runs.append(run_evcc(config, EVModel(soc=20 + i), tls=tls, sdp_port=sdp_port,
                             tls_context=evcc_context(cadata=root) if tls else None))
    results = await asyncio.gather(*runs)
    assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
    assert len({r.session_id for r in results}) == 24
    assert len(secc.finished) == 24 and all(s.ok for s in secc.finished) and not secc.active


async def test_pause_then_resume_on_a_new_connection(secc: SeccServer) -> None:
    """Pause, reconnect, resume with the same SessionID."""
    address = secc.addresses()["tcp"]
    first = await run_evcc(EvccConfig(protocols=("iso2",), energy="ac", loops=2, stop="Pause"), secc=address)
    assert first.ok and first.paused
    second = await run_evcc(EvccConfig(protocols=("iso2",), energy="ac", loops=2,
                                       resume_session_id=first.session_id), secc=address)
    assert second.ok and second.session_id == first.session_id
    assert secc.finished[-1].info is not None and secc.finished[-1].info.resumed


async def test_offer_both_protocols_secc_picks_by_ev_priority() -> None:
    """An EV offering DIN and -2 gets its first choice."""
    async with SeccServer(SimulatedEVSE, host="::1", sdp=False) as server:
        address = server.addresses()["tcp"]
        r1 = await run_evcc(EvccConfig(protocols=("din", "iso2"), loops=1), secc=address)
        r2 = await run_evcc(EvccConfig(protocols=("iso2", "din"), loops=1), secc=address)
    assert (r1.ok, r1.protocol, r2.ok, r2.protocol) == (True, "din", True, "iso2")


async def test_ongoing_authorization_over_sockets() -> None:
    """Ongoing loops over real sockets."""
    sim = SimulatedEVSEConfig(auth_ongoing_rounds=5, schedule_ongoing_rounds=2)
    async with SeccServer(lambda: SimulatedEVSE(sim), host="::1", sdp=False) as server:
        result = await run_evcc(EvccConfig(loops=2, ongoing_interval=0.01), secc=server.addresses()["tcp"])
    assert result.ok and result.messages > 20


IFACE = os.environ.get("V2GSTACK_TEST_IFACE")


@pytest.mark.skipif(not IFACE, reason="set V2GSTACK_TEST_IFACE to an interface with an IPv6 link-local address "
                                      "to test multicast SDP and link-local TCP on a real link")
async def test_multicast_sdp_on_an_interface() -> None:
    """SDP multicast to ff02::1 and TCP to the link-local address of a real interface."""
    assert IFACE is not None
    async with SeccServer(SimulatedEVSE, iface=IFACE, sdp_port=15219) as server:
        result = await run_evcc(EvccConfig(loops=2), iface=IFACE, sdp_port=15219)
        assert server.addresses()["tcp"][0].startswith("fe80:")
    assert result.ok and server.finished[-1].ok
