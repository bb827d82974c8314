"""The asyncio side of V2GTP on TCP or TLS: send frames, receive reassembled frames from a StreamReader.

Every EXI payload type is accepted on the stream (0x8001 and the -20 ones); the session decides which of them its
protocol allows and how to decode each."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from .v2gtp import DEFAULT_MAX_PAYLOAD, EXI_PAYLOADS, Frame, FrameDecoder, PayloadType, encode_frame

_READ_CHUNK = 65536


class ConnectionClosedError(ConnectionError):
    """The peer closed the connection at a frame boundary."""


class V2GTPStream:
    """One TCP/TLS connection carrying V2GTP frames with EXI payloads."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder(EXI_PAYLOADS, max_payload)
        self._frames: deque[Frame] = deque()

    @property
    def peer(self) -> str:
        """host:port of the other end, for logs."""
        info = self.writer.get_extra_info("peername")
        if not info:
            return "?"
        host, port = info[0], info[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def ssl_object(self) -> object | None:
        """The TLS object of the connection, None on plain TCP."""
        return self.writer.get_extra_info("ssl_object")

    async def recv(self) -> Frame:
        """The next complete frame; ConnectionClosedError at EOF, a V2GTPError on bad framing."""
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
