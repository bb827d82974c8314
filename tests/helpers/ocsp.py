"""OCSP helpers: a responder on a free port with a PKI that names it, and plain TCP servers standing in for whatever
a station might name as its responder (counting connections and the bytes they managed to send)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from v2gstack.pki.hierarchy import Pki, PkiConfig, create_pki
from v2gstack.pki.ocsp import OcspResponder, RevocationList, serve
from v2gstack.pki.store import write_pki


async def start_responder(folder: Path) -> tuple[Pki, OcspResponder, str, object]:
    """A responder on a free port, then a PKI whose AIA names it, written to `folder`."""
    responder = OcspResponder([], RevocationList(folder / "revoked.json"))
    server = await serve(responder)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/ocsp"
    pki = create_pki(PkiConfig(ocsp_url=url))
    write_pki(pki, folder)
    responder.cas = OcspResponder.from_pki_dir(folder).cas
    return pki, responder, url, server


@dataclass
class Listener:
    """A TCP server on loopback that counts connections and the bytes it managed to send."""

    port: int = 0
    connections: int = 0
    sent: int = 0
    server: asyncio.Server | None = field(default=None, repr=False)


@asynccontextmanager
async def listener(answer: Callable[[asyncio.StreamWriter, Listener], object]) -> AsyncIterator[Listener]:
    """Run `answer(writer, state)` (a coroutine) for each connection, after reading the request head."""
    state = Listener()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            await reader.readuntil(b"\r\n\r\n")
            await answer(writer, state)  # type: ignore[misc]
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    state.server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.port = state.server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        state.server.close()


def stream(total: int, content_length: int | None = None) -> Callable[[asyncio.StreamWriter, Listener], object]:
    """An answer of `total` body bytes sent in 64 KiB pieces, counting what the client took before it hung up."""
    async def answer(writer: asyncio.StreamWriter, state: Listener) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n"
        if content_length is not None:
            head += f"Content-Length: {content_length}\r\n".encode()
        writer.write(head + b"\r\n")
        chunk = b"\0" * 65536
        while state.sent < total:
            writer.write(chunk)
            await writer.drain()
            state.sent += len(chunk)
    return answer
