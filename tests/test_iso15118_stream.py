"""V2GTPProtocol, the plain-TCP V2GTP stream of the SECC and EVCC shells: frames, the end of the connection, and
its timeout (one lazily moved timer per connection) behaving as asyncio.timeout around each wait."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from v2gstack.iso15118 import stream as stream_module
from v2gstack.iso15118.stream import ConnectionClosedError, V2GTPProtocol, open_v2gtp
from v2gstack.iso15118.v2gtp import BadVersionError, PayloadType, TruncatedFrameError, encode_frame

EXI = PayloadType.EXI


class Peer:
    """The other end of the connection as raw bytes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def write(self, data: bytes) -> None:
        """Send raw bytes."""
        self.writer.write(data)
        await self.writer.drain()


@pytest.fixture
async def pair() -> AsyncIterator[tuple[V2GTPProtocol, Peer]]:
    """A V2GTPProtocol client connected to a raw stream server on loopback."""
    accepted: asyncio.Queue[Peer] = asyncio.Queue()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(Peer(reader, writer))

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stream = await open_v2gtp("127.0.0.1", port)
    peer = await accepted.get()
    try:
        yield stream, peer
    finally:
        stream.abort()
        peer.writer.transport.abort()
        server.close()
        await server.wait_closed()


async def test_frames_split_and_joined(pair: tuple[V2GTPProtocol, Peer]) -> None:
    """Frames split over writes and joined in one come out whole, in order; what we send arrives framed."""
    stream, peer = pair
    data = encode_frame(EXI, b"abc") + encode_frame(PayloadType.ISO20_DC, bytes(300))
    await peer.write(data[:5])
    await asyncio.sleep(0.01)
    await peer.write(data[5:])
    first = await stream.recv(2.0)
    second = await stream.recv(2.0)
    assert (first.payload_type, first.payload) == (EXI, b"abc")
    assert (second.payload_type, second.payload) == (PayloadType.ISO20_DC, bytes(300))
    await stream.send(b"\x80\x98")
    assert await peer.reader.readexactly(10) == encode_frame(EXI, b"\x80\x98")
    assert stream.peer.startswith("127.0.0.1:") and stream.ssl_object is None


async def test_timeout_when_nothing_comes(pair: tuple[V2GTPProtocol, Peer]) -> None:
    """No frame within the timeout: TimeoutError; a frame that comes later is still received."""
    stream, peer = pair
    with pytest.raises(TimeoutError):
        await stream.recv(0.05)
    await peer.write(encode_frame(EXI, b"late"))
    assert (await stream.recv(2.0)).payload == b"late"


async def test_a_partial_frame_does_not_end_the_wait(pair: tuple[V2GTPProtocol, Peer]) -> None:
    """Half a frame before the deadline is not a frame: the wait still times out."""
    stream, peer = pair
    await peer.write(encode_frame(EXI, b"abcdef")[:9])
    with pytest.raises(TimeoutError):
        await stream.recv(0.05)
    await peer.write(b"bcdef")
    assert (await stream.recv(2.0)).payload == b"abcdef"


@pytest.mark.parametrize("keep", [stream_module._KEEP_TIMER, 0.0])
async def test_the_timer_follows_each_wait(pair: tuple[V2GTPProtocol, Peer], keep: float,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A long timeout, then a short one: the short one expires on its own deadline (the armed timer is moved
    earlier); then a longer one after the short: the old timer's firing does not end it (it moves later)."""
    monkeypatch.setattr(stream_module, "_KEEP_TIMER", keep)  # 0: every timer is kept and moved
    stream, peer = pair
    await peer.write(encode_frame(EXI, b"1"))
    assert (await stream.recv(60.0)).payload == b"1"  # arms the timer 60 s ahead
    with pytest.raises(TimeoutError):
        await stream.recv(0.05)  # must not wait for the 60 s timer
    await peer.write(encode_frame(EXI, b"2"))
    assert (await stream.recv(0.1)).payload == b"2"  # arms the timer 0.1 s ahead (kept with keep=0)
    task = asyncio.ensure_future(stream.recv(30.0))  # its deadline is after the armed timer's
    await asyncio.sleep(0.3)  # the old timer fired meanwhile
    assert not task.done()
    await peer.write(encode_frame(EXI, b"3"))
    assert (await task).payload == b"3"


@pytest.mark.parametrize("keep", [stream_module._KEEP_TIMER, 0.0])
async def test_a_timer_that_fires_while_nobody_waits(pair: tuple[V2GTPProtocol, Peer], keep: float,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The timer of a finished wait fires while nobody waits: nothing happens, and the next wait keeps its own
    deadline (times out, or gets its frame)."""
    monkeypatch.setattr(stream_module, "_KEEP_TIMER", keep)  # 0: every timer is kept and moved
    stream, peer = pair
    await peer.write(encode_frame(EXI, b"1"))
    assert (await stream.recv(0.02)).payload == b"1"
    await asyncio.sleep(0.05)  # the timer fired with nobody waiting
    with pytest.raises(TimeoutError):
        await stream.recv(0.05)
    with pytest.raises(TimeoutError):
        await stream.recv(0)  # as asyncio.timeout(0): expired at once
    await peer.write(encode_frame(EXI, b"2"))
    assert (await stream.recv(None)).payload == b"2"


@pytest.mark.parametrize("keep", [stream_module._KEEP_TIMER, 0.0])
async def test_no_limit_is_not_ended_by_an_old_timer(pair: tuple[V2GTPProtocol, Peer], keep: float,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait without a timeout is not ended by the timer a timed wait left armed."""
    monkeypatch.setattr(stream_module, "_KEEP_TIMER", keep)  # 0: every timer is kept and moved
    stream, peer = pair
    await peer.write(encode_frame(EXI, b"1"))
    assert (await stream.recv(0.03)).payload == b"1"
    task = asyncio.ensure_future(stream.recv())
    await asyncio.sleep(0.08)
    assert not task.done()
    await peer.write(encode_frame(EXI, b"2"))
    assert (await task).payload == b"2"


async def test_a_frame_already_received_is_returned_even_with_no_time(pair: tuple[V2GTPProtocol, Peer]) -> None:
    """As asyncio.timeout(0) around a read that need not wait: a complete frame is returned."""
    stream, peer = pair
    await peer.write(encode_frame(EXI, b"a") + encode_frame(EXI, b"b"))
    assert (await stream.recv(2.0)).payload == b"a"
    assert (await stream.recv(0)).payload == b"b"


async def test_end_and_errors(pair: tuple[V2GTPProtocol, Peer]) -> None:
    """Frames before the end are received; then ConnectionClosedError; sending after the loss fails."""
    stream, peer = pair
    await peer.write(encode_frame(EXI, b"last"))
    peer.writer.close()
    assert (await stream.recv(2.0)).payload == b"last"
    with pytest.raises(ConnectionClosedError):
        await stream.recv(2.0)
    await stream.close()
    with pytest.raises(ConnectionResetError):
        await stream.send(b"x")


async def test_end_inside_a_frame_and_bad_framing(pair: tuple[V2GTPProtocol, Peer]) -> None:
    """The end inside a frame is a TruncatedFrameError; a bad header a V2GTPError, which stays."""
    stream, peer = pair
    await peer.write(encode_frame(EXI, b"abc")[:6])
    peer.writer.close()
    with pytest.raises(TruncatedFrameError):
        await stream.recv(2.0)


async def test_bad_header(pair: tuple[V2GTPProtocol, Peer]) -> None:
    """A bad header fails the wait with its V2GTPError, and every later one."""
    stream, peer = pair
    await peer.write(b"\x02\xfd\x80\x01\x00\x00\x00\x00")
    with pytest.raises(BadVersionError):
        await stream.recv(2.0)
    with pytest.raises(BadVersionError):
        await stream.recv(2.0)


async def test_a_flood_pauses_reading(pair: tuple[V2GTPProtocol, Peer]) -> None:
    """Many frames not taken pause the socket's reading; taking them resumes it and every frame arrives."""
    stream, peer = pair
    await peer.write(b"".join(encode_frame(EXI, bytes([i])) for i in range(100)))
    got = [(await stream.recv(2.0)).payload[0] for _ in range(100)]
    assert got == list(range(100))
