"""Bad input and timeouts on both sides, over loopback sockets: the SECC answers or closes as the standards say,
logs why, and keeps serving other sessions; the EVCC ends with a result naming the cause."""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from v2gstack import exi
from v2gstack.iso15118 import (
    EvccConfig,
    EvccTimers,
    SeccConfig,
    SeccServer,
    SimulatedEVSE,
    SimulatedEVSEConfig,
    run_evcc,
)
from v2gstack.iso15118.apphand import DIN_70121, ISO_15118_2, build_request
from v2gstack.iso15118.messages import v2g_message
from v2gstack.iso15118.secc import SeccSession
from v2gstack.iso15118.stream import ConnectionClosedError, V2GTPStream
from v2gstack.iso15118.timers import SeccTimers
from v2gstack.iso15118.v2gtp import PayloadType, encode_frame

FAST = EvccTimers().scaled(0.1)  # 0.2 s per message, 0.025 s CurrentDemand, 2 s communication setup ...


class Raw:
    """A hand-driven V2GTP client."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.stream = V2GTPStream(reader, writer)

    @classmethod
    async def connect(cls, address: tuple[str, int]) -> Raw:
        """Open a TCP connection."""
        return cls(*await asyncio.open_connection(*address))

    async def send_raw(self, data: bytes) -> None:
        """Write raw bytes."""
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, ns: str, doc: dict[str, Any]) -> None:
        """Send one EXI message in a V2GTP frame."""
        await self.send_raw(encode_frame(PayloadType.EXI, exi.encode(ns, doc)))

    async def recv(self, ns: str) -> dict[str, Any]:
        """Receive and decode one message."""
        return exi.decode(ns, (await asyncio.wait_for(self.stream.recv(), 5)).payload)

    async def closed_by_peer(self) -> bool:
        """Whether the SECC closes the connection (instead of sending more)."""
        try:
            await asyncio.wait_for(self.stream.recv(), 5)
        except (ConnectionClosedError, ConnectionError):
            return True
        return False

    async def handshake(self) -> None:
        """Negotiate ISO 15118-2."""
        await self.send("appHand", build_request([ISO_15118_2])[0])
        assert (await self.recv("appHand"))["supportedAppProtocolRes"]["ResponseCode"] == "OK_SuccessfulNegotiation"

    async def session_setup(self) -> str:
        """Handshake and SessionSetup; return the SessionID."""
        await self.handshake()
        await self.send("iso2", v2g_message("00", "SessionSetupReq", {"EVCCID": "0A1B2C3D4E5F"}))
        return (await self.recv("iso2"))["V2G_Message"]["Header"]["SessionID"]

    async def close(self) -> None:
        """Close the connection."""
        await self.stream.close()


@pytest.fixture
async def secc() -> AsyncIterator[SeccServer]:
    """A SECC on ::1 (TCP only, 4 KiB frame limit, no SDP)."""
    async with SeccServer(SimulatedEVSE, host="::1", sdp=False, max_payload=4096) as server:
        yield server


async def finished(server: SeccServer, count: int = 1) -> list[SeccSession]:
    """Wait until `count` connections have been handled."""
    for _ in range(500):
        if len(server.finished) >= count:
            break
        await asyncio.sleep(0.01)
    return list(server.finished)


def body(doc: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, content) of a V2G_Message body."""
    (name, content), = doc["V2G_Message"]["Body"].items()
    return name, content


# ----- V2GTP and EXI errors close only the offending connection -----


@pytest.mark.parametrize(("data", "reason"), [
    (bytes.fromhex("02fd800100000001") + b"\x80", "V2GTP error (bad-version)"),
    (bytes.fromhex("01ff800100000001") + b"\x80", "V2GTP error (bad-version)"),
    (bytes.fromhex("01fe900000000002") + b"\x10\x00", "V2GTP error (bad-payload-type)"),
    (bytes.fromhex("01fe800100010000"), "V2GTP error (oversize)"),
    (bytes.fromhex("01fe80010000000a") + b"\x80\x00", "V2GTP error (truncated)"),
    (bytes.fromhex("01fe8001"), "V2GTP error (truncated)"),
    (encode_frame(PayloadType.EXI, b"\x80\xff\xff\xff"), "undecodable EXI (appHand"),
    (encode_frame(PayloadType.EXI, b"not exi"), "undecodable EXI (appHand"),
])
async def test_broken_frames_close_the_connection(secc: SeccServer, data: bytes, reason: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Framing and EXI errors close that connection with a logged reason; a parallel session completes."""
    caplog.set_level(logging.WARNING, "v2gstack.iso15118")
    bad = await Raw.connect(secc.addresses()["tcp"])
    good = asyncio.create_task(run_evcc(EvccConfig(loops=20), secc=secc.addresses()["tcp"]))
    await bad.send_raw(data)
    bad.writer.write_eof()
    assert await bad.closed_by_peer()
    await bad.close()
    assert (await good).ok  # the other session is unaffected
    sessions = await finished(secc, 2)
    broken = [s for s in sessions if not s.ok]
    assert len(broken) == 1 and broken[0].end_reason.startswith(reason), broken[0].end_reason
    assert reason in caplog.text


async def test_undecodable_exi_after_negotiation(secc: SeccServer) -> None:
    """Undecodable -2 EXI after the handshake closes the connection too."""
    raw = await Raw.connect(secc.addresses()["tcp"])
    await raw.session_setup()
    await raw.send_raw(encode_frame(PayloadType.EXI, b"\x80\x98\x02\xff\xff"))
    assert await raw.closed_by_peer()
    await raw.close()
    assert (await finished(secc))[0].end_reason.startswith("undecodable EXI (iso2")


# ----- FAILED_SequenceError / FAILED_UnknownSession -----


async def test_out_of_order_request_gets_sequence_error(secc: SeccServer) -> None:
    """A request before SessionSetup gets FAILED_SequenceError and the connection closes."""
    raw = await Raw.connect(secc.addresses()["tcp"])
    await raw.handshake()
    await raw.send("iso2", v2g_message("00", "ServiceDiscoveryReq", {}))
    name, content = body(await raw.recv("iso2"))
    assert (name, content["ResponseCode"]) == ("ServiceDiscoveryRes", "FAILED_SequenceError")
    assert await raw.closed_by_peer()
    await raw.close()
    assert "out of sequence" in (await finished(secc))[0].end_reason


async def test_later_out_of_order_request(secc: SeccServer) -> None:
    """PowerDeliveryReq right after SessionSetup: FAILED_SequenceError with the mandatory EVSE status."""
    raw = await Raw.connect(secc.addresses()["tcp"])
    sid = await raw.session_setup()
    await raw.send("iso2", v2g_message(sid, "PowerDeliveryReq", {"ChargeProgress": "Start", "SAScheduleTupleID": 1}))
    name, content = body(await raw.recv("iso2"))
    assert (name, content["ResponseCode"]) == ("PowerDeliveryRes", "FAILED_SequenceError")
    assert "AC_EVSEStatus" in content  # the mandatory parts are there
    assert await raw.closed_by_peer()
    await raw.close()


async def test_unsupported_request_gets_sequence_error(secc: SeccServer) -> None:
    """A Plug & Charge request under EIM gets its response with FAILED_SequenceError."""
    raw = await Raw.connect(secc.addresses()["tcp"])
    sid = await raw.session_setup()
    cert = base64.b64encode(b"\x30\x03\x02\x01\x01").decode()
    await raw.send("iso2", v2g_message(sid, "CertificateInstallationReq", {
        "Id": "id1", "OEMProvisioningCert": cert,
        "ListOfRootCertificateIDs": {"RootCertificateID": [{"X509IssuerName": "CN=V2GRootCA",
                                                            "X509SerialNumber": 1}]}}))
    name, content = body(await raw.recv("iso2"))
    assert (name, content["ResponseCode"]) == ("CertificateInstallationRes", "FAILED_SequenceError")
    assert await raw.closed_by_peer()
    await raw.close()


async def test_din_rejects_ac_messages(secc: SeccServer) -> None:
    """ChargingStatusReq is no DIN DC message: FAILED_SequenceError."""
    raw = await Raw.connect(secc.addresses()["tcp"])
    await raw.send("appHand", build_request([DIN_70121])[0])
    await raw.recv("appHand")
    await raw.send("din", v2g_message("00", "SessionSetupReq", {"EVCCID": "0A1B2C3D4E5F"}))
    sid = (await raw.recv("din"))["V2G_Message"]["Header"]["SessionID"]
    await raw.send("din", v2g_message(sid, "ChargingStatusReq", {}))
    name, content = body(await raw.recv("din"))
    assert (name, content["ResponseCode"]) == ("ChargingStatusRes", "FAILED_SequenceError")
    await raw.close()


async def test_wrong_session_id_gets_unknown_session(secc: SeccServer) -> None:
    """Another SessionID: FAILED_UnknownSession under our SessionID, then close."""
    raw = await Raw.connect(secc.addresses()["tcp"])
    sid = await raw.session_setup()
    other = "0102030405060708" if sid != "0102030405060708" else "0807060504030201"
    await raw.send("iso2", v2g_message(other, "ServiceDiscoveryReq", {}))
    reply = await raw.recv("iso2")
    name, content = body(reply)
    assert (name, content["ResponseCode"]) == ("ServiceDiscoveryRes", "FAILED_UnknownSession")
    assert reply["V2G_Message"]["Header"]["SessionID"] == sid
    assert await raw.closed_by_peer()
    await raw.close()
    assert f"carries SessionID {other}" in (await finished(secc))[0].end_reason


async def test_response_message_or_wrong_first_message_closes(secc: SeccServer) -> None:
    """Messages that cannot be answered close the connection without a response."""
    raw = await Raw.connect(secc.addresses()["tcp"])
    sid = await raw.session_setup()
    await raw.send("iso2", v2g_message(sid, "SessionStopRes", {"ResponseCode": "OK"}))
    assert await raw.closed_by_peer()
    await raw.close()
    raw = await Raw.connect(secc.addresses()["tcp"])
    await raw.send("appHand", {"supportedAppProtocolRes": {"ResponseCode": "OK_SuccessfulNegotiation"}})
    assert await raw.closed_by_peer()
    await raw.close()
    reasons = [s.end_reason for s in await finished(secc, 2)]
    assert "received SessionStopRes, which is not a request" in reasons[0]
    assert "expected supportedAppProtocolReq, got supportedAppProtocolRes" in reasons[1]


async def test_no_common_protocol() -> None:
    """No common protocol: the EVCC reports Failed_NoNegotiation, the SECC ends the session."""
    async with SeccServer(SimulatedEVSE, SeccConfig(protocols=("din",)), host="::1", sdp=False) as server:
        result = await run_evcc(EvccConfig(protocols=("iso2",)), secc=server.addresses()["tcp"])
        sessions = await finished(server)
    assert not result.ok and "Failed_NoNegotiation" in result.reason
    assert "Failed_NoNegotiation" in sessions[0].end_reason


# ----- timeouts -----


async def test_secc_sequence_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """V2G_SECC_Sequence_Timeout ends a silent session with a log line."""
    caplog.set_level(logging.WARNING, "v2gstack.iso15118")
    config = SeccConfig(timers=SeccTimers(sequence=0.2))
    async with SeccServer(SimulatedEVSE, config, host="::1", sdp=False) as server:
        raw = await Raw.connect(server.addresses()["tcp"])
        await raw.session_setup()
        assert await raw.closed_by_peer()
        await raw.close()
        sessions = await finished(server)
    assert "V2G_SECC_Sequence_Timeout (0.2 s) expired waiting for ServiceDiscoveryReq" in sessions[0].end_reason
    assert "V2G_SECC_Sequence_Timeout" in caplog.text


async def dropping_secc(drop: str) -> asyncio.Server:
    """A SECC that never sends the response named `drop` (and then waits for the EV to give up)."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection, dropping one response."""
        stream = V2GTPStream(reader, writer)
        session = SeccSession(SimulatedEVSE(), SeccConfig())
        try:
            while not session.ended:
                frame = await stream.recv()
                reply = session.handle(exi.decode(session.rx_namespace, frame.payload))
                if reply.doc is not None and reply.name != drop:
                    await stream.send(exi.encode(reply.ns, reply.doc))
        except (ConnectionClosedError, ConnectionError):
            pass
        finally:
            await stream.close()

    return await asyncio.start_server(handle, "::1", 0)


@pytest.mark.parametrize(("protocol", "energy", "drop", "expect"), [
    ("iso2", "ac", "supportedAppProtocolRes", "V2G_EVCC_Msg_Timeout (0.2 s) waiting for supportedAppProtocolRes"),
    ("iso2", "ac", "ChargeParameterDiscoveryRes",
     "V2G_EVCC_Msg_Timeout (0.2 s) waiting for ChargeParameterDiscoveryRes"),
    ("iso2", "ac", "PowerDeliveryRes", "V2G_EVCC_Msg_Timeout (0.5 s) waiting for PowerDeliveryRes"),
    ("iso2", "dc", "CurrentDemandRes", "V2G_EVCC_Msg_Timeout (0.025 s) waiting for CurrentDemandRes"),
    ("din", "dc", "ContractAuthenticationRes", "V2G_EVCC_Msg_Timeout (0.2 s) waiting for ContractAuthenticationRes"),
    ("din", "dc", "WeldingDetectionRes", "V2G_EVCC_Msg_Timeout (0.2 s) waiting for WeldingDetectionRes"),
])
async def test_evcc_message_timeouts(protocol: str, energy: str, drop: str, expect: str,
                                     caplog: pytest.LogCaptureFixture) -> None:
    """A missing response ends the EVCC session with the message timeout named in the reason and the log."""
    caplog.set_level(logging.WARNING, "v2gstack.iso15118")
    server = await dropping_secc(drop)
    try:
        result = await run_evcc(EvccConfig(protocols=(protocol,), energy=energy, loops=2, timers=FAST),
                                secc=server.sockets[0].getsockname()[:2])
    finally:
        server.close()
        await server.wait_closed()
    assert not result.ok and result.reason == f"{expect} expired"
    assert expect in caplog.text


async def test_evcc_communication_setup_timeout() -> None:
    """V2G_EVCC_CommunicationSetup_Timeout caps the wait for SessionSetupRes."""
    server = await dropping_secc("SessionSetupRes")
    timers = EvccTimers(msg=5.0, communication_setup=0.3)
    try:
        result = await run_evcc(EvccConfig(timers=timers), secc=server.sockets[0].getsockname()[:2])
    finally:
        server.close()
        await server.wait_closed()
    assert not result.ok and result.reason.startswith("V2G_EVCC_CommunicationSetup_Timeout")


@pytest.mark.parametrize(("sim", "timer", "label"), [
    (SimulatedEVSEConfig(auth_ongoing_rounds=10**6), "ongoing", "V2G_EVCC_Ongoing_Timeout (0.3 s) expired"),
    (SimulatedEVSEConfig(schedule_ongoing_rounds=10**6), "ongoing", "V2G_EVCC_Ongoing_Timeout (0.3 s) expired"),
    (SimulatedEVSEConfig(cable_check_rounds=10**6), "cable_check", "V2G_EVCC_CableCheck_Timeout (0.3 s) expired"),
    (SimulatedEVSEConfig(precharge_step=0.0), "precharge", "V2G_EVCC_PreCharge_Timeout (0.3 s) expired"),
])
async def test_evcc_loop_timeouts(sim: SimulatedEVSEConfig, timer: str, label: str) -> None:
    """Ongoing, CableCheck and PreCharge loops end at their timers; the SECC sees the EV leave."""
    timers = EvccTimers(**{timer: 0.3})
    async with SeccServer(lambda: SimulatedEVSE(sim), host="::1", sdp=False) as server:
        result = await run_evcc(EvccConfig(energy="dc", timers=timers, ongoing_interval=0.02),
                                secc=server.addresses()["tcp"])
        sessions = await finished(server)
    assert not result.ok and result.reason == label
    assert not sessions[0].ok and sessions[0].end_reason.startswith("EVCC closed the connection")


async def test_evcc_sdp_timeout_and_refused_connection() -> None:
    """No SDP answer and a refused connection are clean failures."""
    result = await run_evcc(EvccConfig(), sdp_port=9, sdp_requests=3, sdp_interval=0.01)
    assert not result.ok and result.reason == "SDP: no SDP response after 3 requests 0.01 s apart"
    probe = await asyncio.start_server(lambda r, w: None, "::1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()
    result = await run_evcc(EvccConfig(), secc=("::1", port))
    assert not result.ok and result.reason.startswith(f"cannot connect to [::1]:{port} over TCP")


async def test_evcc_gets_garbage_from_secc() -> None:
    """Undecodable EXI and bad V2GTP from the SECC end the EVCC session."""
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer anything with undecodable EXI."""
        await reader.read(100)
        writer.write(encode_frame(PayloadType.EXI, b"\x80\xff\xff"))
        await reader.read(100)
        writer.close()

    async def bad_header(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Answer anything with an SDP payload type on TCP."""
        await reader.read(100)
        writer.write(b"\x01\xfe\x90\x01\x00\x00\x00\x00")
        await reader.read(100)
        writer.close()

    for handler, reason in ((garbage, "undecodable EXI from SECC (appHand)"),
                            (bad_header, "V2GTP error from SECC (bad-payload-type)")):
        server = await asyncio.start_server(handler, "::1", 0)
        try:
            result = await run_evcc(EvccConfig(), secc=server.sockets[0].getsockname()[:2])
        finally:
            server.close()
            await server.wait_closed()
        assert not result.ok and result.reason.startswith(reason), result.reason
