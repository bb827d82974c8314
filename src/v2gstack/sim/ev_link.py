"""A faulty EV <-> SECC link for scenarios: a loopback TCP relay that can be cut, can delay every V2GTP message, and
can corrupt the EXI of the EV's next request (the bytes on the wire, as a bad cable or a broken modem would)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..iso15118.v2gtp import HEADER_LENGTH

log = logging.getLogger(__name__)


class FaultyLink:
    """Relays one EV's connections to its SECC; `cut()`, `delay_s` and `corrupt_next()` are the faults."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.delay_s = 0.0
        self.cuts = 0
        self.corrupted = 0
        self._corrupt = False
        self.address: tuple[str, int] = ("127.0.0.1", 0)  # after start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> tuple[str, int]:
        """Listen on loopback; the (host, port) the EV connects to."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.address = ("127.0.0.1", int(self._server.sockets[0].getsockname()[1]))
        return self.address

    def cut(self) -> None:
        """Drop every connection at once (both sides see the other close)."""
        self.cuts += 1
        for w in list(self._writers):
            w.transport.abort()

    def corrupt_next(self) -> None:
        """Garble the EXI of the EV's next V2GTP message (its header stays valid: the SECC must fail decoding it)."""
        self._corrupt = True

    async def close(self) -> None:
        """Stop listening and drop what is still connected."""
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, ev_r: asyncio.StreamReader, ev_w: asyncio.StreamWriter) -> None:
        try:
            secc_r, secc_w = await asyncio.open_connection(*self.target)
        except OSError:
            ev_w.close()
            return
        self._writers |= {ev_w, secc_w}
        up = asyncio.create_task(self._pump(ev_r, secc_w, from_ev=True))
        down = asyncio.create_task(self._pump(secc_r, ev_w, from_ev=False))
        try:
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (up, down):
                task.cancel()
            for w in (ev_w, secc_w):
                self._writers.discard(w)
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, from_ev: bool) -> None:
        """Forward whole V2GTP messages (header + payload), each after the current delay."""
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header = await reader.readexactly(HEADER_LENGTH)
                payload = bytearray(await reader.readexactly(int.from_bytes(header[4:8], "big")))
                if from_ev and self._corrupt and payload:
                    self._corrupt = False
                    self.corrupted += 1
                    payload[:] = b"\xff" * len(payload)  # no EXI header ("10" distinguishing bits) survives this
                    log.info("corrupted the EXI of a %d-byte message from the EV", len(payload))
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                writer.write(header + payload)
                await writer.drain()
