"""A central system nobody here wrote: the `ocpp` package's OCPP 1.6 ChargePoint in the central-system role on a
`websockets` server, recording every CALL it receives and numbering transactions itself."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint, call_result
from websockets.asyncio.server import ServerConnection, serve

NOW = "2026-12-07T12:00:00Z"


class TheirCentralSystem(ChargePoint):
    """One station's connection at the `ocpp` package's 1.6 central system."""

    server: CentralSystem16

    async def route_message(self, raw_msg: str) -> None:
        """Record CALLs (camelCase, as received), then route them."""
        msg = json.loads(raw_msg)
        if msg[0] == 2:
            self.server.received.append((msg[2], msg[3]))
        await super().route_message(raw_msg)

    def _tag(self, id_tag: str) -> dict[str, Any]:
        return {"status": "Accepted" if id_tag in self.server.tags else "Invalid"}

    @on("BootNotification")
    async def on_boot(self, **kw: Any) -> Any:
        """Accepted."""
        return call_result.BootNotification(current_time=NOW, interval=300, status="Accepted")

    @on("Heartbeat")
    async def on_heartbeat(self, **kw: Any) -> Any:
        """The time."""
        return call_result.Heartbeat(current_time=NOW)

    @on("StatusNotification")
    async def on_status(self, **kw: Any) -> Any:
        """Noted."""
        return call_result.StatusNotification()

    @on("Authorize")
    async def on_authorize(self, id_tag: str) -> Any:
        """Accepted for the known tags."""
        return call_result.Authorize(id_tag_info=self._tag(id_tag))

    @on("StartTransaction")
    async def on_start(self, id_tag: str, **kw: Any) -> Any:
        """The next transaction id."""
        return call_result.StartTransaction(transaction_id=next(self.server.ids), id_tag_info=self._tag(id_tag))

    @on("StopTransaction")
    async def on_stop(self, **kw: Any) -> Any:
        """Noted."""
        return call_result.StopTransaction(id_tag_info=self._tag(kw["id_tag"]) if "id_tag" in kw else None)

    @on("MeterValues")
    async def on_meter_values(self, **kw: Any) -> Any:
        """Noted."""
        return call_result.MeterValues()

    @on("DataTransfer")
    async def on_data_transfer(self, vendor_id: str, **kw: Any) -> Any:
        """Accepted: what a central system without Plug & Charge says to everything."""
        return call_result.DataTransfer(status="Accepted")


@dataclass
class CentralSystem16:
    """The test central system: a `websockets` server (subprotocol ocpp1.6) whose connections are `ocpp` 1.6
    ChargePoints; `call(station, request)` sends a CALL and returns the answer."""

    tags: set[str] = field(default_factory=lambda: {"04A1B2C3"})
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    points: dict[str, TheirCentralSystem] = field(default_factory=dict)
    ids: Any = field(default_factory=lambda: itertools.count(100))
    port: int = 0

    @property
    def url(self) -> str:
        """The endpoint stations connect to."""
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def messages(self, action: str) -> list[dict[str, Any]]:
        """Payloads of every received CALL of `action`, in order."""
        return [p for a, p in self.received if a == action]

    async def call(self, station_id: str, request: Any) -> Any:
        """Send a CALL to a station and return its answer (snake_case)."""
        return await self.points[station_id].call(request, suppress=False)

    async def _handler(self, ws: ServerConnection) -> None:
        station_id = ws.request.path.rsplit("/", 1)[-1]  # type: ignore[union-attr]
        cp = TheirCentralSystem(station_id, ws, response_timeout=10)
        cp.server = self
        self.points[station_id] = cp
        with contextlib.suppress(Exception):
            await cp.start()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[CentralSystem16]:
        """Serve on a free 127.0.0.1 port while the context lasts."""
        async with serve(self._handler, "127.0.0.1", self.port, subprotocols=["ocpp1.6"]) as srv:  # type: ignore[list-item]
            self.port = srv.sockets[0].getsockname()[1]
            yield self
