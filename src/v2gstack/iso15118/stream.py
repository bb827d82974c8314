"""The asyncio side of V2GTP on TCP or TLS: send frames, receive reassembled frames, each wait bounded by a timeout.

Every EXI payload type is accepted on the stream (0x8001 and the -20 ones); the session decides which of them its
protocol allows and how to decode each. Plain TCP connections use `V2GTPProtocol` (an asyncio Protocol that cuts
frames as bytes arrive and keeps one lazily moved timer per connection for the timeouts: no StreamReader, no
timeout object, no timer handle per message); TLS connections (tls_stream) and tests use `V2GTPStream` over a
reader/writer pair. Both have the same interface (`FrameStream`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from .v2gtp import DEFAULT_MAX_PAYLOAD, EXI_PAYLOADS, Frame, FrameDecoder, PayloadType, V2GTPError, encode_frame

_READ_CHUNK = 65536
_KEEP_TIMER = 1.0
"""V2GTPProtocol keeps its timer armed after a wait only when it fires more than this many seconds later (the
SECC's 60 s sequence timeout: the next waits reuse it, and it fires at most once a second); a nearer one (the EV's
0.25-2 s message timeouts, -20's 0.5 s sequence timeout) is cancelled, as asyncio.timeout does, since letting it
fire would wake the event loop once per message for nothing."""
_PAUSE_FRAMES = 16
"""Frames received and not yet taken at which V2GTPProtocol stops reading from the socket until the session takes
them (a request/response peer has one at a time): a peer that floods cannot fill memory."""


class ConnectionClosedError(ConnectionError):
    """The peer closed the connection at a frame boundary."""


class FrameStream(Protocol):
    """What the SECC and EVCC shells use of a connection."""

    @property
    def peer(self) -> str:
        """host:port of the other end, for logs."""
        ...

    @property
    def ssl_object(self) -> object | None:
        """The TLS object of the connection, None on plain TCP."""
        ...

    async def recv(self, timeout: float | None = None) -> Frame:
        """The next complete frame; TimeoutError when none is complete within `timeout` s."""
        ...

    async def send(self, payload: bytes, payload_type: int = PayloadType.EXI) -> None:
        """Frame `payload` and write it."""
        ...

    def abort(self) -> None:
        """Drop the connection at once."""
        ...

    async def close(self) -> None:
        """Close the connection."""
        ...


def _peer_text(info: Any) -> str:
    """host:port (IPv6 in brackets) of a peername."""
    if not info:
        return "?"
    host, port = info[0], info[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class V2GTPStream:
    """One TCP/TLS connection carrying V2GTP frames with EXI payloads, over a StreamReader/StreamWriter pair (or
    tls_stream's stand-ins)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(EXI_PAYLOADS, max_payload)
        self._frames: deque[Frame] = deque()

    @property
    def peer(self) -> str:
        """host:port of the other end, for logs."""
        return _peer_text(self.writer.get_extra_info("peername"))

    @property
    def ssl_object(self) -> object | None:
        """The TLS object of the connection, None on plain TCP."""
        return self.writer.get_extra_info("ssl_object")

    async def recv(self, timeout: float | None = None) -> Frame:
        """The next complete frame; ConnectionClosedError at EOF, a V2GTPError on bad framing, TimeoutError when
        none is complete within `timeout` s (None: no limit)."""
        if self._frames:
            return self._frames.popleft()
        if timeout is None:
            return await self._read_frame()
        async with asyncio.timeout(timeout):  # no task per message, as wait_for would make
            return await self._read_frame()

    async def _read_frame(self) -> Frame:
        """Read until a frame is complete."""
        while not self._frames:
            data = await self.reader.read(_READ_CHUNK)
            if not data:
                self.decoder.eof()
                raise ConnectionClosedError("peer closed the connection")
            self._frames.extend(self.decoder.feed(data))
        return self._frames.popleft()

    async def send(self, payload: bytes, payload_type: int = PayloadType.EXI) -> None:
        """Frame `payload` and write it."""
        self.writer.write(encode_frame(payload_type, payload))
        await self.writer.drain()

    def abort(self) -> None:
        """Drop the connection at once (server shutdown)."""
        self.writer.transport.abort()

    async def close(self) -> None:
        """Close the connection, ignoring a peer that is already gone."""
        if self.writer.is_closing():
            return
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError, asyncio.TimeoutError):
            await asyncio.wait_for(self.writer.wait_closed(), 1.0)


class V2GTPProtocol(asyncio.Protocol):
    """One plain TCP connection carrying V2GTP frames: frames are cut from the bytes as they arrive and handed to
    the one task that waits in `recv`.

    The timeout of `recv` is exactly `asyncio.timeout(timeout)` around the wait (the deadline counts from the call;
    a frame already complete is returned at once; TimeoutError when the deadline passes first), for less: one timer
    per connection is armed at or before the deadline of the running wait and, when it fires, either fails the wait
    (its deadline reached) or moves itself to the wait's later deadline. A wait that ends leaves a far timer armed
    for the next waits (_KEEP_TIMER) and cancels a near one; a timer that fires while nobody waits is dropped."""

    def __init__(self, on_connected: Callable[[V2GTPProtocol], Coroutine[Any, Any, None]] | None = None, *,
                 max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        """`on_connected(stream)`, when given, is run as a task once the connection is made (a server's
        connection handler)."""
        self.decoder = FrameDecoder(EXI_PAYLOADS, max_payload)
        self._on_connected = on_connected
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._frames: deque[Frame] = deque()
        self._error: BaseException | None = None  # bad framing, or the connection's loss
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._deadline: float | None = None  # of the running wait (None: no limit)
        self._timer: asyncio.Handle | None = None  # armed at or before the running wait's deadline
        self._timer_when = 0.0  # the loop time it is armed for
        self._paused_reading = False
        self._paused_writing = False
        self._drain: asyncio.Future[None] | None = None
        self._lost = False
        self._closed: asyncio.Future[None] = self._loop.create_future()
        self.task: asyncio.Task[None] | None = None  # the on_connected task

    # ----- asyncio.Protocol -----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport; start the connection handler."""
        self._transport = transport  # type: ignore[assignment]
        if self._on_connected is not None:
            self.task = self._loop.create_task(self._on_connected(self))

    def data_received(self, data: bytes) -> None:
        """Cut frames; wake the waiting task."""
        if self._error is not None:
            return
        try:
            frames = self.decoder.feed(data)
        except V2GTPError as e:
            self._error = e
        else:
            if frames:
                self._frames.extend(frames)
            if not self._paused_reading and len(self._frames) >= _PAUSE_FRAMES:
                self._paused_reading = True
                assert self._transport is not None
                self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        """The peer closed its side: the waiting task sees the end; keep the transport for our last writes."""
        self._eof = True
        self._wake()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone (an error, our close or abort)."""
        self._lost = True
        if exc is None:
            self._eof = True
        elif self._error is None:
            self._error = exc
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_exception(ConnectionResetError("Connection lost"))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._closed.done():
            self._closed.set_result(None)

    def pause_writing(self) -> None:
        """The transport's buffer is full: sends wait."""
        self._paused_writing = True

    def resume_writing(self) -> None:
        """The transport's buffer drained."""
        self._paused_writing = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # ----- the stream -----

    @property
    def peer(self) -> str:
        """host:port of the other end, for logs."""
        return _peer_text(self._transport.get_extra_info("peername") if self._transport is not None else None)

    @property
    def ssl_object(self) -> object | None:
        """Always None: plain TCP."""
        return None

    async def recv(self, timeout: float | None = None) -> Frame:
        """The next complete frame; ConnectionClosedError at EOF, a V2GTPError on bad framing, the connection's
        error if it was lost, TimeoutError when no frame is complete within `timeout` s (None: no limit)."""
        frames = self._frames
        if not frames:
            deadline = None if timeout is None else self._loop.time() + timeout
            while not frames:
                if self._error is not None:
                    raise self._error
                if self._eof:
                    self.decoder.eof()
                    raise ConnectionClosedError("peer closed the connection")
                await self._wait(deadline, timeout)
        frame = frames.popleft()
        if self._paused_reading and len(frames) < _PAUSE_FRAMES:
            self._paused_reading = False
            assert self._transport is not None
            self._transport.resume_reading()
        return frame

    async def _wait(self, deadline: float | None, timeout: float | None) -> None:
        """Until data, the end or an error arrives; TimeoutError at `deadline` (loop time, None: no limit) of a
        wait of `timeout` s."""
        loop = self._loop
        waiter = self._waiter = loop.create_future()
        self._deadline = deadline
        if deadline is not None:
            timer = self._timer
            if timer is None or self._timer_when > deadline:
                if timer is not None:
                    timer.cancel()
                self._timer_when = deadline
                # as asyncio.timeout: a deadline already passed expires on the next turn of the loop
                if timeout is not None and timeout <= 0:
                    self._timer = loop.call_soon(self._expire)
                else:
                    self._timer = loop.call_at(deadline, self._expire)
        try:
            await waiter
        finally:
            self._waiter = None
            timer = self._timer
            if timer is not None and self._timer_when - loop.time() < _KEEP_TIMER:
                timer.cancel()  # a cancelled timer wakes nobody; one left to fire would cost a turn of the loop
                self._timer = None

    def _expire(self) -> None:
        """The timer fired: fail the wait whose deadline it reached, move it to the running wait's later deadline,
        or drop it (nobody waits, or the wait has no limit)."""
        self._timer = None
        waiter, deadline = self._waiter, self._deadline
        if waiter is None or waiter.done() or deadline is None:
            return
        if self._timer_when < deadline:
            self._timer_when = deadline
            self._timer = self._loop.call_at(deadline, self._expire)
            return
        waiter.set_exception(TimeoutError())

    def _wake(self) -> None:
        """Let the waiting task look again."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def send(self, payload: bytes, payload_type: int = PayloadType.EXI) -> None:
        """Frame `payload` and write it; wait while the transport's buffer is full (as StreamWriter.drain)."""
        transport = self._transport
        if transport is None or self._lost:
            raise ConnectionResetError("Connection lost")
        transport.write(encode_frame(payload_type, payload))
        if self._paused_writing:
            self._drain = self._loop.create_future()
            try:
                await self._drain
            finally:
                self._drain = None

    def abort(self) -> None:
        """Drop the connection at once (server shutdown)."""
        if self._transport is not None:
            self._transport.abort()

    async def close(self) -> None:
        """Close the connection, ignoring a peer that is already gone."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.close()
        with contextlib.suppress(ConnectionError, OSError, asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._closed), 1.0)


async def open_v2gtp(host: str, port: int, *, max_payload: int = DEFAULT_MAX_PAYLOAD) -> V2GTPProtocol:
    """A plain TCP connection to `host`:`port` as a V2GTPProtocol (what asyncio.open_connection does for streams)."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(lambda: V2GTPProtocol(max_payload=max_payload), host, port)
    return protocol
