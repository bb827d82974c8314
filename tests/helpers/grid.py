"""Helpers for the grid tests: a raw OCPP 2.1 station (sends the CALLs a test writes, accepts the CSMS's CALLs and
keeps them), signal JSON, and a CSMS with grid control."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from v2gstack.csms.service import Csms
from v2gstack.ocpp.auth import basic_auth_header

from .csms import PASSWORD


class RawStation:
    """A raw OCPP-J station on a websocket: `call` sends, the CSMS's CALLs are answered Accepted and kept."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._results: asyncio.Queue[list[Any]] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for text in self.ws:
                frame = json.loads(text)
                if frame[0] == 2:
                    self.received.append((frame[2], frame[3]))
                    await self.ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
                else:
                    await self._results.put(frame)

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a CALL; its CALLRESULT payload."""
        mid = uuid.uuid4().hex[:12]
        await self.ws.send(json.dumps([2, mid, action, payload]))
        frame = await asyncio.wait_for(self._results.get(), 10)
        assert frame[0] == 3 and frame[1] == mid, frame
        return frame[2]

    def profiles(self) -> list[dict[str, Any]]:
        """The SetChargingProfile requests received, oldest first."""
        return [p for a, p in self.received if a == "SetChargingProfile"]


@asynccontextmanager
async def raw_station(csms: Csms, station: str = "CS1", version: str = "ocpp2.1") -> AsyncIterator[RawStation]:
    """A raw station connected to our CSMS with the station password of helpers.csms."""
    async with connect(f"ws://127.0.0.1:{csms.port}/ocpp/{station}", subprotocols=[version],  # type: ignore[list-item]
                       additional_headers={"Authorization": basic_auth_header(station, PASSWORD)}, proxy=None) as ws:
        st = RawStation(ws)
        try:
            yield st
        finally:
            st._task.cancel()


def now_plus(minutes: float) -> str:
    """RFC 3339 UTC time `minutes` from now."""
    return (datetime.now(UTC) + timedelta(minutes=minutes)).isoformat()


def signal(sid: str, minutes: float = 30, start: float = -0.05, target: dict[str, str] | None = None,
           **values: float) -> dict[str, Any]:
    """A one-interval signal starting (just before) now."""
    return {"id": sid, "target": target or {"kind": "site", "id": "site"},
            "intervals": [{"start": now_plus(start), "end": now_plus(start + minutes), **values}]}


def started(tx: str, evse: int, seq: int = 0) -> dict[str, Any]:
    """A TransactionEvent Started on an EVSE."""
    return {"eventType": "Started", "timestamp": datetime.now(UTC).isoformat(), "triggerReason": "CablePluggedIn",
            "seqNo": seq, "transactionInfo": {"transactionId": tx, "chargingState": "EVConnected"},
            "evse": {"id": evse, "connectorId": 1}}


def bpt_needs(evse: int, *, departure_h: float = 6.0, target_wh: float = 20_000.0, max_w: float = 11_000.0,
              min_wh: float = -20_000.0) -> dict[str, Any]:
    """NotifyEVChargingNeeds of a DC_BPT car (OCPP 2.1)."""
    return {"evseId": evse, "timestamp": datetime.now(UTC).isoformat(), "chargingNeeds": {
        "requestedEnergyTransfer": "DC_BPT", "availableEnergyTransfer": ["DC", "DC_BPT"],
        "controlMode": "ScheduledControl", "departureTime": now_plus(departure_h * 60),
        "v2xChargingParameters": {"maxChargePower": max_w, "maxDischargePower": max_w,
                                  "evMinV2XEnergyRequest": min_wh, "evMaxV2XEnergyRequest": 40_000.0,
                                  "evTargetEnergyRequest": target_wh}}}
