"""V2GTP framing, SDP codec and SDP over UDP on loopback, TLS contexts: the transport layer of ISO 15118."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from v2gstack.iso15118.devcerts import make_secc_chain
from v2gstack.iso15118.sdp import SDPError, SDPRequest, SDPResponse, Security, Transport
from v2gstack.iso15118.sdp_io import SDPTimeoutError, discover, start_sdp_server
from v2gstack.iso15118.tls import V2G_TLS12_CIPHERS, evcc_context
from v2gstack.iso15118.v2gtp import (
    BadVersionError,
    Frame,
    FrameDecoder,
    LengthMismatchError,
    PayloadTooLargeError,
    PayloadType,
    TruncatedFrameError,
    UnexpectedPayloadTypeError,
    decode_datagram,
    decode_header,
    encode_frame,
)

EXI = PayloadType.EXI

# ----- V2GTP -----


def test_header_layout() -> None:
    """The 8-byte header: version, inverse, payload type, length."""
    assert encode_frame(EXI, b"\x80\x98") == bytes.fromhex("01fe8001000000028098")
    assert encode_frame(PayloadType.SDP_REQUEST, b"\x10\x00") == bytes.fromhex("01fe9000000000021000")


def test_decoder_reassembles_frames_split_and_joined() -> None:
    """Frames split over and joined in chunks come out whole."""
    data = encode_frame(EXI, b"abc") + encode_frame(EXI, b"") + encode_frame(EXI, bytes(300))
    dec = FrameDecoder()
    frames: list[Frame] = []
    for i in range(0, len(data), 5):
        frames += dec.feed(data[i:i + 5])
    assert [f.payload for f in frames] == [b"abc", b"", bytes(300)]
    assert dec.buffered == 0
    dec.eof()


@given(st.lists(st.binary(max_size=40), max_size=6), st.lists(st.integers(1, 17), min_size=1))
def test_decoder_any_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    """Any chunking of any frames gives back the payloads."""
    data = b"".join(encode_frame(EXI, p) for p in payloads)
    dec = FrameDecoder()
    out: list[bytes] = []
    pos, i = 0, 0
    while pos < len(data):
        n = cuts[i % len(cuts)]
        out += [f.payload for f in dec.feed(data[pos:pos + n])]
        pos, i = pos + n, i + 1
    assert out == payloads


@pytest.mark.parametrize(("header", "error"), [
    (bytes.fromhex("02fd800100000001"), BadVersionError),
    (bytes.fromhex("01fd800100000001"), BadVersionError),
    (bytes.fromhex("01fe900000000002"), UnexpectedPayloadTypeError),  # SDP on the TCP channel
    (bytes.fromhex("01fe123400000001"), UnexpectedPayloadTypeError),
    (bytes.fromhex("01fe8001ffffffff"), PayloadTooLargeError),
])
def test_decoder_rejects_bad_headers(header: bytes, error: type[Exception]) -> None:
    """Bad version, inverse, payload type or length raise typed errors; the decoder stays failed."""
    dec = FrameDecoder(max_payload=1024)
    with pytest.raises(error):
        dec.feed(header + b"x")
    with pytest.raises(error):  # stays failed
        dec.feed(b"")


def test_oversize_is_checked_against_the_limit() -> None:
    """The payload limit is inclusive."""
    dec = FrameDecoder(max_payload=10)
    assert dec.feed(encode_frame(EXI, bytes(10)))[0].payload == bytes(10)
    with pytest.raises(PayloadTooLargeError, match="exceeds the maximum of 10"):
        dec.feed(encode_frame(EXI, bytes(11)))


@pytest.mark.parametrize("data", [encode_frame(EXI, b"abcdef")[:5], encode_frame(EXI, b"abcdef")[:11]])
def test_truncated_stream(data: bytes) -> None:
    """EOF inside a header or payload is a TruncatedFrameError."""
    dec = FrameDecoder()
    assert dec.feed(data) == []
    with pytest.raises(TruncatedFrameError):
        dec.eof()


def test_datagram_checks() -> None:
    """A datagram must hold exactly one frame."""
    ok = encode_frame(PayloadType.SDP_REQUEST, b"\x10\x00")
    assert decode_datagram(ok, (PayloadType.SDP_REQUEST,)).payload == b"\x10\x00"
    with pytest.raises(LengthMismatchError):
        decode_datagram(ok + b"\x00", (PayloadType.SDP_REQUEST,))
    with pytest.raises(TruncatedFrameError):
        decode_datagram(ok[:-1], (PayloadType.SDP_REQUEST,))
    with pytest.raises(TruncatedFrameError):
        decode_header(b"\x01\xfe", (EXI,), 100)


# ----- SDP codec -----


def test_sdp_request_bytes() -> None:
    """SDP request bytes."""
    assert SDPRequest(Security.NO_TLS).to_datagram() == bytes.fromhex("01fe9000000000021000")
    assert SDPRequest.from_datagram(bytes.fromhex("01fe9000000000020000")) == SDPRequest(Security.TLS, Transport.TCP)


def test_sdp_response_round_trip_and_ipv4_mapping() -> None:
    """SDP response layout, scope stripping and IPv4 mapping."""
    r = SDPResponse.for_host("fe80::1%eth0", 64109, Security.TLS)
    assert r.address == ipaddress.IPv6Address("fe80::1") and r.host == "fe80::1"
    data = r.to_datagram()
    assert data[:8] == bytes.fromhex("01fe900100000014") and len(data) == 28
    assert SDPResponse.from_datagram(data) == r
    v4 = SDPResponse.from_datagram(SDPResponse.for_host("127.0.0.1", 5000, Security.NO_TLS).to_datagram())
    assert v4.host == "127.0.0.1" and v4.port == 5000 and v4.security is Security.NO_TLS


@pytest.mark.parametrize("data", [
    bytes.fromhex("01fe900000000002"),  # no payload
    bytes.fromhex("01fe9000000000022000"),  # undefined security byte
    bytes.fromhex("01fe9000000000021001"),  # undefined transport byte
    bytes.fromhex("01fe8001000000021000"),  # EXI payload type
])
def test_sdp_request_rejects(data: bytes) -> None:
    """Malformed SDP requests are refused."""
    with pytest.raises(SDPError):
        SDPRequest.from_datagram(data)


def test_sdp_response_rejects_port_zero() -> None:
    """A response announcing port 0 is refused."""
    payload = ipaddress.IPv6Address("::1").packed + bytes([0, 0, 0x10, 0])
    with pytest.raises(SDPError, match="port 0"):
        SDPResponse.from_payload(payload)


# ----- SDP over UDP on loopback -----


@pytest.mark.parametrize("host", ["::1", "127.0.0.1"])
async def test_sdp_unicast_on_loopback(host: str) -> None:
    """SDP unicast on IPv6 and IPv4 loopback."""
    seen: list[SDPRequest] = []

    def answer(req: SDPRequest) -> SDPResponse:
        """SDP responder for the test."""
        seen.append(req)
        return SDPResponse.for_host(host, 4242, req.security)

    server = await start_sdp_server(answer, host=host, port=0)
    try:
        res = await discover(SDPRequest(Security.TLS), host=host, port=server.port, interval=0.5)
    finally:
        server.close()
    assert res.host == host and res.port == 4242 and res.security is Security.TLS
    assert seen == [SDPRequest(Security.TLS)]


async def test_sdp_client_retries_until_answered() -> None:
    """The EVCC repeats its request until an answer comes."""
    calls = 0

    def answer(req: SDPRequest) -> SDPResponse | None:
        """SDP responder for the test."""
        nonlocal calls
        calls += 1
        return None if calls < 3 else SDPResponse.for_host("::1", 1234, Security.NO_TLS)

    server = await start_sdp_server(answer, host="::1", port=0)
    try:
        res = await discover(SDPRequest(Security.NO_TLS), host="::1", port=server.port, interval=0.02)
    finally:
        server.close()
    assert calls == 3 and res.port == 1234


async def test_sdp_client_gives_up_after_max_requests() -> None:
    """The EVCC stops after the maximum number of requests."""
    calls = 0

    def silent(req: SDPRequest) -> None:
        """An SDP responder that never answers."""
        nonlocal calls
        calls += 1

    server = await start_sdp_server(silent, host="::1", port=0)
    try:
        with pytest.raises(SDPTimeoutError, match="after 4 requests"):
            await discover(SDPRequest(Security.NO_TLS), host="::1", port=server.port, max_requests=4, interval=0.01)
    finally:
        server.close()
    assert calls == 4


async def test_sdp_server_ignores_garbage() -> None:
    """The SECC ignores invalid datagrams and answers valid ones."""
    server = await start_sdp_server(lambda r: SDPResponse.for_host("::1", 1, r.security), host="::1", port=0)
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[bytes] = asyncio.Queue()

    class P(asyncio.DatagramProtocol):
        """Collects datagrams."""
        def datagram_received(self, data: bytes, addr: object) -> None:
            """Queue the datagram."""
            got.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(P, remote_addr=("::1", server.port))
    try:
        transport.sendto(b"\x01\xfe\x90\x00\x00\x00\x00\x05hello")  # bad length
        transport.sendto(SDPRequest(Security.NO_TLS).to_datagram())
        reply = await asyncio.wait_for(got.get(), 2)
    finally:
        transport.close()
        server.close()
    assert SDPResponse.from_datagram(reply).security is Security.NO_TLS
    assert got.empty()


# ----- TLS -----


async def test_tls_handshake_uses_the_v2g_suite_and_checks_the_root() -> None:
    """TLS 1.2 with the V2G suite; a foreign root fails the handshake."""
    chain = make_secc_chain()
    other = make_secc_chain()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Echo four bytes."""
        writer.write(await reader.read(4))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "::1", 0, ssl=chain.server_context())
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("::1", port, ssl=evcc_context(cadata=chain.root_pem.decode()),
                                                       server_hostname="")
        obj = writer.get_extra_info("ssl_object")
        assert obj.version() == "TLSv1.2" and obj.cipher()[0] == V2G_TLS12_CIPHERS
        assert obj.getpeercert()["subject"][0][0] == ("commonName", "SECCCert")
        writer.write(b"ping")
        assert await reader.read(4) == b"ping"
        writer.close()
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.open_connection("::1", port, ssl=evcc_context(cadata=other.root_pem.decode()),
                                          server_hostname="")
    finally:
        server.close()
        await server.wait_closed()


def test_tls_contexts_pin_tls12() -> None:
    """Contexts allow TLS 1.2 and the V2G suite only."""
    ctx = evcc_context()
    assert ctx.minimum_version == ctx.maximum_version == ssl.TLSVersion.TLSv1_2
    assert [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"] == [V2G_TLS12_CIPHERS]
    assert ctx.verify_mode == ssl.CERT_NONE
