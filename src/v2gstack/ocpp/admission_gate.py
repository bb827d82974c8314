"""The cheapest answer a busy OCPP server can give a new socket: a pre-built HTTP 503 with a Retry-After, written by
a bare asyncio protocol the moment the socket is accepted, without websockets' connection, HTTP parser or handler
task. In a reconnect storm most sockets are refused, so their cost bounds how many stations a node can turn away
per second (bench/refusal_cost.py measures it)."""

from __future__ import annotations

import asyncio
import functools

MAX_REQUEST = 16384  # bytes of the refused request read (so that closing sends a FIN, not a reset) before closing


@functools.lru_cache(maxsize=256)
def busy_response(retry_after: int, reason: str) -> bytes:
    """The whole HTTP/1.1 503 answer, built once per (Retry-After, reason)."""
    body = (reason + "\n").encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\n"
            b"Retry-After: %d\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % (retry_after, len(body))) + body


class BusyRefusal(asyncio.Protocol):
    """Writes `response` at once, reads the request up to its blank line, then closes (or aborts after `timeout`
    seconds without one). Closing before the request is read would make the kernel reset the connection, and a
    reset can make the client lose the answer it has not read yet."""

    __slots__ = ("got", "live", "response", "seen", "timeout", "timer", "transport")

    def __init__(self, response: bytes, timeout: float, live: set[BusyRefusal] | None = None) -> None:
        self.live = live  # the refusals still open (the server aborts them when it closes)
        self.response = response
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.seen = b""
        self.got = 0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.live is not None:
            self.live.add(self)
        transport.write(self.response)  # type: ignore[attr-defined]
        self.timer = asyncio.get_running_loop().call_later(self.timeout, transport.abort)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        tail = self.seen + data
        self.got += len(data)
        if b"\r\n\r\n" in tail or self.got > MAX_REQUEST:
            assert self.transport is not None
            self.transport.close()
        else:
            self.seen = tail[-3:]  # only the end matters: the blank line may straddle two reads

    def eof_received(self) -> bool | None:
        return False  # close

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.live is not None:
            self.live.discard(self)
