"""Helpers for the station tests: a CSMS made with the `ocpp` package on a `websockets` server, and our station."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from v2gstack.ocpp import BackOff
from v2gstack.station import ChargingStation, StationConfig

NOW = "2024-05-01T12:00:00Z"
GOOD_TOKEN = {"idToken": "04A1B2C3", "type": "ISO14443"}
BAD_TOKEN = {"idToken": "DEADBEEF", "type": "ISO14443"}
SCALE = 0.02  # real seconds per simulated second in the tests


class TheirCsms(ChargePoint):
    """The `ocpp` package's 2.0.1 CSMS role for one station connection; it records every CALL it receives."""

    server: CsmsServer

    async def route_message(self, raw_msg: str) -> None:
        """Record CALLs (camelCase, as received), route them, and drop the connection when the test asks."""
        msg = json.loads(raw_msg)
        if msg[0] == 2:
            self.server.received.append((msg[2], msg[3]))
        await super().route_message(raw_msg)
        if msg[0] == 2 and self.server.drop_after is not None and self.server.drop_after(msg[2], msg[3]):
            self.server.drop_after = None
            self.server.accepting = False
            await self._connection.close()

    @on("BootNotification")
    async def on_boot(self, charging_station: dict[str, Any], reason: str, **kw: Any) -> Any:
        """Answer with the next scripted registration status."""
        s = self.server
        status = s.boot_statuses.pop(0) if len(s.boot_statuses) > 1 else s.boot_statuses[0]
        return call_result.BootNotification(current_time=NOW, interval=s.interval if status == "Accepted" else 0,
                                            status=status)

    @on("Heartbeat")
    async def on_heartbeat(self, **kw: Any) -> Any:
        """The time."""
        return call_result.Heartbeat(current_time=NOW)

    @on("StatusNotification")
    async def on_status(self, **kw: Any) -> Any:
        """Noted."""
        return call_result.StatusNotification()

    @on("Authorize")
    async def on_authorize(self, id_token: dict[str, Any], **kw: Any) -> Any:
        """Accept the known tokens."""
        return call_result.Authorize(id_token_info={"status": self.server.token_status(id_token)})

    @on("TransactionEvent")
    async def on_transaction_event(self, **kw: Any) -> Any:
        """Accept; tell the token's status when there is one."""
        if "id_token" in kw:
            return call_result.TransactionEvent(id_token_info={"status": self.server.token_status(kw["id_token"])})
        return call_result.TransactionEvent()

    @on("NotifyReport")
    async def on_notify_report(self, **kw: Any) -> Any:
        """Noted."""
        return call_result.NotifyReport()

    @on("MeterValues")
    async def on_meter_values(self, **kw: Any) -> Any:
        """Noted."""
        return call_result.MeterValues()


@dataclass
class CsmsServer:
    """The test CSMS: a `websockets` server whose connections are `ocpp` ChargePoints."""

    boot_statuses: list[str] = field(default_factory=lambda: ["Accepted"])
    interval: int = 300
    accepting: bool = True
    tokens: set[str] = field(default_factory=lambda: {GOOD_TOKEN["idToken"]})
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    points: dict[str, TheirCsms] = field(default_factory=dict)
    drop_after: Callable[[str, dict[str, Any]], bool] | None = None
    connects: int = 0
    port: int = 0

    def token_status(self, token: dict[str, Any]) -> str:
        """Accepted for known tokens, else Invalid."""
        return "Accepted" if token["id_token"] in self.tokens else "Invalid"

    @property
    def url(self) -> str:
        """The endpoint stations connect to."""
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def messages(self, action: str) -> list[dict[str, Any]]:
        """Payloads of every received CALL of `action`, in order."""
        return [p for a, p in self.received if a == action]

    async def call(self, station_id: str, request: Any) -> Any:
        """Send a CSMS-initiated CALL and return the answer (snake_case dataclass)."""
        return await self.points[station_id].call(request, suppress=False)

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        """Refuse connections while the test wants the CSMS unreachable."""
        if not self.accepting:
            return conn.respond(503, "not now\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        """One station connection."""
        station_id = ws.request.path.rsplit("/", 1)[-1]  # type: ignore[union-attr]
        cp = TheirCsms(station_id, ws, response_timeout=10)
        cp.server = self
        self.points[station_id] = cp
        self.connects += 1
        with contextlib.suppress(Exception):
            await cp.start()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[CsmsServer]:
        """Serve on a free 127.0.0.1 port while the context lasts."""
        async with serve(self._handler, "127.0.0.1", self.port, subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                         process_request=self._process_request) as srv:
            self.port = srv.sockets[0].getsockname()[1]
            yield self


def station_config(csms: CsmsServer, station_id: str = "CS1", **kw: Any) -> StationConfig:
    """A station configuration for the tests: fast clock, quick reconnects."""
    kw.setdefault("time_scale", SCALE)
    kw.setdefault("boot_retry_s", 1.0)
    return StationConfig(station_id, csms.url, backoff=BackOff(0.02, 0.02, 1), call_timeout=5.0,
                         ping_interval=None, **kw)


@asynccontextmanager
async def running_station(csms: CsmsServer, station_id: str = "CS1", *, tx_interval: int = 1,
                          state_dir: Path | None = None, **kw: Any) -> AsyncIterator[ChargingStation]:
    """A started station (TxUpdatedInterval `tx_interval` simulated seconds), stopped afterwards."""
    st = ChargingStation(station_config(csms, station_id, state_dir=state_dir, **kw))
    st.model.put("SampledDataCtrlr", "TxUpdatedInterval", str(tx_interval))
    await st.start()
    try:
        yield st
    finally:
        await st.stop()


def energy_of(event: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(timestamp, import Wh, import power W) for each meter value of a TransactionEvent."""
    out = []
    for mv in event.get("meterValue", []):
        values = {v["measurand"]: v["value"] for v in mv["sampledValue"]}
        out.append((mv["timestamp"], values["Energy.Active.Import.Register"], values.get("Power.Active.Import", 0.0)))
    return out


def record_emitted(st: ChargingStation) -> list[dict[str, Any]]:
    """Every TransactionEvent the station puts in its queue, in order."""
    emitted: list[dict[str, Any]] = []
    push = st.queue.push

    def recording(action: str, payload: dict[str, Any]) -> int:
        """Note the payload, then queue it."""
        emitted.append(payload)
        return push(action, payload)

    st.queue.push = recording  # type: ignore[method-assign]
    return emitted
