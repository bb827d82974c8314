"""Engine issues found while building the station, kept as regression tests."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

from v2gstack.ocpp import Connection, ConnectionClosedError, Router


class SendBlocksThenFails:
    """A websocket whose send() waits until the receiving side has died, then fails (a drop during send)."""

    def __init__(self) -> None:
        self.recv_died = asyncio.Event()

    async def send(self, message: str) -> None:
        """Block until recv() failed, then fail too."""
        await self.recv_died.wait()
        raise ConnectionError("gone")

    async def recv(self) -> str:
        """Fail shortly after the CALL started sending."""
        await asyncio.sleep(0.01)  # let call() register its future and start sending
        self.recv_died.set()
        raise ConnectionError("gone")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Nothing to close."""


async def test_drop_during_send_leaves_no_unretrieved_future() -> None:
    """A connection that dies while a CALL is being sent must not leave an unretrieved future behind."""
    loop = asyncio.get_running_loop()
    problems: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: problems.append(ctx))
    conn = Connection(SendBlocksThenFails(), "2.0.1", Router(), station_id="CS1")
    conn.start()
    with pytest.raises(ConnectionClosedError):
        await conn.call("Heartbeat", {})
    await conn.wait_closed()
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert not [p for p in problems if "never retrieved" in p.get("message", "")]
