"""TLS over a plain asyncio stream with the ssl module's memory BIOs, so that a failed handshake sends its alert.

asyncio's TLS transport (Python 3.11) drops what OpenSSL writes when a handshake fails (CPython gh-98078): the peer
sees the TCP connection reset and cannot tell why, where RFC 8446 section 6.2 requires the fatal alert
(handshake_failure when no group or suite is shared, unknown_ca / bad_certificate for a certificate the other side
does not trust, protocol_version below TLS 1.3). Interop with the reference stack showed it: its P-256-only EVCC got
ConnectionResetError from our -20 SECC. `TlsConnection` drives the handshake itself, writes the alert before it
closes, and then stands in for the StreamReader/StreamWriter pair that V2GTPStream reads and writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

_CHUNK = 65536


class TlsConnection:
    """One TLS connection (either side) over a connected plain stream pair; `reader`/`writer` after `handshake()`."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext, *,
                 server_side: bool) -> None:
        self.raw_reader, self.raw_writer = reader, writer
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.ssl_object = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side,
                                           server_hostname=None)
        self.reader = TlsReader(self)
        self.writer = TlsWriter(self)

    def flush(self) -> None:
        """Hand what OpenSSL wrote (records, alerts) to the socket."""
        data = self._outgoing.read()
        if data:
            self.raw_writer.write(data)

    async def fill(self) -> bool:
        """Feed the next bytes from the socket to OpenSSL; False at EOF."""
        data = await self.raw_reader.read(_CHUNK)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    async def handshake(self) -> None:
        """Run the handshake; on failure send the alert OpenSSL wrote, then raise its ssl.SSLError."""
        while True:
            try:
                self.ssl_object.do_handshake()
            except ssl.SSLWantReadError:
                self.flush()
                await self.raw_writer.drain()
                await self.fill()  # at EOF the next do_handshake raises SSLEOFError
                continue
            except ssl.SSLError:
                self.flush()  # the fatal alert
                with contextlib.suppress(ConnectionError, OSError):
                    await self.raw_writer.drain()
                raise
            self.flush()
            await self.raw_writer.drain()
            return


class TlsReader:
    """The StreamReader side: decrypted application data."""

    def __init__(self, conn: TlsConnection) -> None:
        self._conn = conn

    async def read(self, n: int = -1) -> bytes:
        """Up to `n` bytes of application data; b"" when the peer closed (close_notify or EOF). A record error
        sends its alert and raises ssl.SSLError."""
        conn = self._conn
        while True:
            try:
                return conn.ssl_object.read(n if n > 0 else _CHUNK)
            except ssl.SSLWantReadError:
                conn.flush()  # e.g. a KeyUpdate answer
                await conn.fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            except ssl.SSLError:
                conn.flush()
                raise


class TlsWriter:
    """The StreamWriter side: encrypt and write; the plain writer's connection facts, plus the ssl_object."""

    def __init__(self, conn: TlsConnection) -> None:
        self._conn = conn

    @property
    def transport(self) -> asyncio.WriteTransport:
        """The socket's transport (abort() drops the connection)."""
        return self._conn.raw_writer.transport  # type: ignore[return-value]

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """'ssl_object' is the TLS object; everything else comes from the socket."""
        if name == "ssl_object":
            return self._conn.ssl_object
        return self._conn.raw_writer.get_extra_info(name, default)

    def write(self, data: bytes) -> None:
        """Encrypt `data` and queue the records."""
        self._conn.ssl_object.write(data)
        self._conn.flush()

    async def drain(self) -> None:
        """Wait until the socket's buffer has room."""
        await self._conn.raw_writer.drain()

    def is_closing(self) -> bool:
        """Whether the socket is closing."""
        return self._conn.raw_writer.is_closing()

    def close(self) -> None:
        """Send close_notify (without waiting for the peer's) and close the socket."""
        with contextlib.suppress(ssl.SSLError, ValueError):
            self._conn.ssl_object.unwrap()
        with contextlib.suppress(ConnectionError, OSError):
            self._conn.flush()
        self._conn.raw_writer.close()

    async def wait_closed(self) -> None:
        """Wait until the socket is closed."""
        await self._conn.raw_writer.wait_closed()


async def tls_accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     context: ssl.SSLContext) -> TlsConnection:
    """The server side of a TLS handshake on an accepted connection (the alert sent if it fails)."""
    conn = TlsConnection(reader, writer, context, server_side=True)
    await conn.handshake()
    return conn


async def tls_connect(host: str, port: int, context: ssl.SSLContext) -> TlsConnection:
    """Connect over TCP and run the client side of a TLS handshake (the alert sent if it fails; no hostname: the
    SECC is found by SDP and authenticated by its chain)."""
    reader, writer = await asyncio.open_connection(host, port)
    conn = TlsConnection(reader, writer, context, server_side=False)
    try:
        await conn.handshake()
    except BaseException:
        writer.close()
        raise
    return conn
