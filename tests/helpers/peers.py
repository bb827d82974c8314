"""Peers nobody here wrote: `TheirStation`, the `ocpp` package's 2.0.1 ChargePoint playing a charging station against
one of our CSMS servers, connected with Basic auth and reading its websocket while the context lasts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result
from websockets.asyncio.client import ClientConnection, connect

from v2gstack.ocpp.auth import basic_auth_header


class TheirStation(ChargePoint):
    """A 2.0.1 station made with the `ocpp` package; it records the remote stops it is asked for and answers them
    with `stop_status`."""

    def __init__(self, station_id: str, ws: ClientConnection, *, response_timeout: float = 10,
                 stop_status: str = "Accepted") -> None:
        super().__init__(station_id, ws, response_timeout)
        self.stops: list[str] = []
        self.stop_status = stop_status

    @on("RequestStopTransaction")
    async def on_request_stop(self, transaction_id: str, **kw: Any) -> call_result.RequestStopTransaction:
        """Remote stop: remember it, answer with the configured status."""
        self.stops.append(transaction_id)
        return call_result.RequestStopTransaction(status=self.stop_status)


@asynccontextmanager
async def their_station(url: str, station_id: str, password: str, **options: Any) -> AsyncIterator[TheirStation]:
    """`TheirStation` connected to `url`/`station_id` with Basic auth, its reader running until the context ends
    (`options`: more TheirStation arguments)."""
    async with connect(f"{url}/{station_id}", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                       additional_headers={"Authorization": basic_auth_header(station_id, password)},
                       proxy=None) as ws:
        cp = TheirStation(station_id, ws, **options)
        reader = asyncio.create_task(cp.start())
        try:
            yield cp
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
