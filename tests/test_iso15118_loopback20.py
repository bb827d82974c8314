"""Our ISO 15118-20 EVCC against our SECC over real loopback sockets (SDP, TCP): every service in both control modes,
concurrent sessions, pause and resume, the SECC-side failures of a broken peer while others keep charging."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from v2gstack import exi
from v2gstack.iso15118 import EvccConfig, EVModel, SeccServer, SimulatedEVSE, SimulatedEVSEConfig, run_evcc
from v2gstack.iso15118.apphand import ISO_15118_20_DC, build_request
from v2gstack.iso15118.devcerts import make_secc_chain
from v2gstack.iso15118.messages.iso20_types import NEW_SESSION_ID20, message
from v2gstack.iso15118.msglog import MessageRecord
from v2gstack.iso15118.secc import SeccConfig, SeccSession
from v2gstack.iso15118.stream import ConnectionClosedError, V2GTPStream
from v2gstack.iso15118.tls import evcc_context
from v2gstack.iso15118.v2gtp import PayloadType, encode_frame
from v2gstack.trace.error_map import FailureKind

SIM = SimulatedEVSEConfig(discharge_loops=2, discharge_seconds=2)


@pytest.fixture
async def secc() -> AsyncIterator[SeccServer]:
    """A SECC offering -20, -2 and DIN on TCP, with SDP, on ephemeral ports of ::1."""
    records: list[MessageRecord] = []
    server = SeccServer(lambda: SimulatedEVSE(SIM), SeccConfig(protocols=("iso20", "iso2", "din")), host="::1",
                        sdp_port=0, on_message=records.append)
    server.records = records  # type: ignore[attr-defined]
    async with server:
        yield server


async def finished(server: SeccServer, count: int) -> list[SeccSession]:
    """Wait until `count` connections have been handled."""
    for _ in range(500):
        if len(server.finished) >= count:
            break
        await asyncio.sleep(0.01)
    return list(server.finished)


@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
@pytest.mark.parametrize("energy", ["ac", "dc", "ac_bpt", "dc_bpt"])
async def test_session_over_sdp_and_tcp(secc: SeccServer, energy: str, control: str) -> None:
    """Each -20 service and control mode over TCP, found by SDP; both sides log the same messages in the -20
    namespaces; BPT sessions move energy both ways."""
    records: list[MessageRecord] = []
    config = EvccConfig(protocols=("iso20", "iso2"), energy=energy, control=control, loops=4, loop_interval=0.01)
    result = await run_evcc(config, EVModel(speedup=20000), sdp_port=secc.addresses()["sdp"][1],
                            on_message=records.append)
    assert result.ok and result.protocol == "iso20" and result.charge_loops == 4, result.reason
    session = (await finished(secc, 1))[-1]
    assert session.ok and session.session_id == result.session_id and session.info is not None
    assert [r.name for r in records] == [r.name for r in secc.records]  # type: ignore[attr-defined]
    for r in records:
        assert exi.decode(r.namespace, r.exi) == r.doc
    kind = "iso20_dc" if energy.startswith("dc") else "iso20_ac"
    assert {r.namespace for r in records} == {"appHand", "iso20", kind}
    if energy.endswith("bpt"):  # the simulated EVSE asks for discharge first
        assert result.exported_wh > 0
    else:
        assert result.energy_wh > 0 and result.exported_wh == 0


async def test_concurrent_sessions(secc: SeccServer) -> None:
    """Eight -20 EVs at once, all four services and both modes."""
    port = secc.addresses()["tcp"]
    configs = [EvccConfig(protocols=("iso20",), energy=e, control=c, loops=5)
               for e in ("ac", "dc", "ac_bpt", "dc_bpt") for c in ("scheduled", "dynamic")]
    results = await asyncio.gather(*(run_evcc(c, EVModel(), secc=port) for c in configs))
    assert all(r.ok for r in results), [r.reason for r in results if not r.ok]
    assert len({r.session_id for r in results}) == 8


async def test_pause_and_resume(secc: SeccServer) -> None:
    """SessionStop(Pause) over TCP, then a new connection resumes the session by its SessionID."""
    port = secc.addresses()["tcp"]
    first = await run_evcc(EvccConfig(protocols=("iso20",), energy="dc_bpt", control="dynamic", loops=2,
                                      stop="Pause"), EVModel(), secc=port)
    assert first.ok and first.paused and len(secc.paused) == 1
    second = await run_evcc(EvccConfig(protocols=("iso20",), energy="dc_bpt", control="dynamic", loops=2,
                                       resume_session_id=first.session_id), EVModel(), secc=port)
    assert second.ok and second.session_id == first.session_id and len(secc.paused) == 0
    sessions = await finished(secc, 2)
    assert sessions[-1].info is not None and sessions[-1].info.resumed


async def test_wrong_payload_type_closes_only_that_connection(secc: SeccServer) -> None:
    """A -20 peer that sends WPT (0x8006) after the handshake is closed as a V2GTP error; a parallel session
    charges to the end."""
    port = secc.addresses()["tcp"]
    good = asyncio.create_task(run_evcc(EvccConfig(protocols=("iso20",), energy="ac", loops=15), EVModel(),
                                        secc=port))
    reader, writer = await asyncio.open_connection(*port)
    stream = V2GTPStream(reader, writer)
    await stream.send(exi.encode("appHand", build_request([ISO_15118_20_DC])[0]))
    answer = exi.decode("appHand", (await asyncio.wait_for(stream.recv(), 5)).payload)
    assert answer["supportedAppProtocolRes"]["ResponseCode"] == "OK_SuccessfulNegotiation"
    setup = message("SessionSetupReq", NEW_SESSION_ID20, {"EVCCID": "0A1B2C3D4E5F"})
    writer.write(encode_frame(PayloadType.ISO20_WPT, exi.encode("iso20", setup)))
    await writer.drain()
    with pytest.raises((ConnectionClosedError, ConnectionError)):
        await asyncio.wait_for(stream.recv(), 5)
    await stream.close()
    assert (await good).ok
    sessions = await finished(secc, 2)
    broken = [s for s in sessions if not s.ok]
    assert len(broken) == 1 and broken[0].end is not None and broken[0].end.kind is FailureKind.V2GTP_ERROR


async def test_iso20_is_never_chosen_over_tls12() -> None:
    """Over a TLS 1.2 connection the SECC does not offer -20 [V2G20-2356]: an EV offering -20 and -2 gets -2, one
    offering only -20 gets no protocol."""
    chain = make_secc_chain()
    async with SeccServer(SimulatedEVSE, SeccConfig(protocols=("iso20", "iso2")), host="::1", sdp=False, tcp=False,
                          tls=chain.server_context()) as server:
        port = server.addresses()["tls"]
        context = evcc_context(cadata=chain.root_pem.decode())
        both = await run_evcc(EvccConfig(protocols=("iso20", "iso2"), energy="dc", loops=2), EVModel(), secc=port,
                              tls=True, tls_context=context)
        assert both.ok and both.protocol == "iso2"
        only = await run_evcc(EvccConfig(protocols=("iso20",), energy="dc", loops=2), EVModel(), secc=port,
                              tls=True, tls_context=context)
        assert not only.ok and "Failed_NoNegotiation" in only.reason
        sessions = await finished(server, 2)
        assert sessions[-1].tls_version == "TLSv1.2" and sessions[-1].end is not None
        assert sessions[-1].end.kind is FailureKind.NO_COMMON_PROTOCOL
