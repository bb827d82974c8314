"""A light OCPP 2.0.1 station for cluster drills: many per process, transactions only, failover between CSMS URLs.

No EVSE, meter or device model: it boots, then runs transactions one after another on EVSE 1 (Started, `updates`
Updated events with a meter value, Ended), each event sent until it is answered (the offline queue of a real station,
one message deep: a message whose answer was lost is sent again after the reconnect, to whichever CSMS). It connects
through StationClient with several CSMS addresses (the next after a failed attempt) and back-off with jitter, boots
on every new connection, and records what it needs for the drill's checks: every acknowledged TransactionEvent, when
its connection dropped and when it was booted again and where, and the commands it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ..ocpp import (
    BackOff,
    CallErrorReceived,
    CallTimeoutError,
    Connection,
    ConnectionClosedError,
    Router,
    StationClient,
)
from ..times import rfc3339

log = logging.getLogger(__name__)

Payload = dict[str, Any]


@dataclass
class Reconnect:
    """One connection loss, the connection and the boot that followed it (monotonic times) and the CSMS it went to."""

    lost_at: float
    opened_at: float  # the websocket to the new CSMS was open (the back-off and failed attempts lie before it)
    booted_at: float  # BootNotification Accepted there
    url: str


@dataclass
class LightStationStats:
    """What one light station saw."""

    acked: list[tuple[str, int, str]] = field(default_factory=list)  # (transactionId, seqNo, eventType) answered
    reconnects: list[Reconnect] = field(default_factory=list)
    commands: list[tuple[str, Payload]] = field(default_factory=list)  # CSMS-initiated CALLs (action, payload)
    resent: int = 0  # messages sent again after a loss (answer lost, connection dropped, CALLERROR)
    booted_url: str | None = None  # the CSMS it is booted at now


class LightStation:
    """One station: `start()`, `stop()`; `stats` as it goes."""

    def __init__(self, station_id: str, urls: list[str], password: str | None, *, updates: int = 3,
                 interval_s: float = 0.5, backoff: BackOff | None = None, call_timeout: float = 20.0) -> None:
        self.station_id = station_id
        self.urls = urls
        self.updates = updates
        self.interval_s = interval_s
        self.stats = LightStationStats()
        self.running = True  # transactions go on while set; stop_transactions() lets the last one end
        self._booted = asyncio.Event()
        self._open_tx: str | None = None  # the transaction running now
        self._lost_at: float | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        router = Router()
        for action in ("TriggerMessage", "SetChargingProfile", "ClearChargingProfile"):
            router.add(action, self._command(action))
        router.add("GetVariables", self._get_variables)
        self.client = StationClient(urls[0], station_id, router, password=password, call_timeout=call_timeout,
                                    ping_interval=None, compression=None, open_timeout=15.0,
                                    backoff=backoff or BackOff(0.5, 1.0, 3), on_connect=self._on_connect,
                                    endpoints=lambda: self.urls, attempts_per_endpoint=lambda: 1)

    def _command(self, action: str) -> Any:
        def handle(p: Payload) -> Payload:
            self.stats.commands.append((action, p))
            return {"status": "Accepted"}
        return handle

    def _get_variables(self, p: Payload) -> Payload:
        self.stats.commands.append(("GetVariables", p))
        return {"getVariableResult": [{"attributeStatus": "UnknownVariable", "component": d["component"],
                                       "variable": d["variable"]} for d in p["getVariableData"]]}

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self.client.run(), name=f"{self.station_id}-link"),
                       asyncio.create_task(self._transactions(), name=f"{self.station_id}-tx")]

    async def stop(self) -> None:
        """Stop at once (an open transaction stays open: call stop_transactions and wait first to end it)."""
        self.running = False
        await self.client.stop()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def stop_transactions(self) -> None:
        """End the running transaction normally and start no new one."""
        self.running = False

    @property
    def idle(self) -> bool:
        """No transaction running (after stop_transactions: its Ended event was answered)."""
        return not self.running and self._open_tx is None

    async def _on_connect(self, conn: Connection) -> None:
        opened = time.monotonic()
        self._booted.clear()
        while True:  # until Accepted: a busy CSMS's late answer or CALLERROR is no reason to give up the link
            try:
                answer = await conn.call("BootNotification", {"reason": "PowerUp", "chargingStation": {
                    "model": "light", "vendorName": "v2gstack"}})
            except ConnectionClosedError:
                return
            except (CallTimeoutError, CallErrorReceived) as e:
                log.info("%s: BootNotification not answered (%s): again", self.station_id, type(e).__name__)
                await asyncio.sleep(1.0)
                continue
            if answer["status"] == "Accepted":
                break
            await asyncio.sleep(min(float(answer.get("interval") or 1), 5.0))
        now = time.monotonic()
        if self._lost_at is not None:
            self.stats.reconnects.append(Reconnect(self._lost_at, opened, now, self.client.csms_url))
            self._lost_at = None
        self.stats.booted_url = self.client.csms_url
        self._booted.set()
        asyncio.get_running_loop().create_task(self._watch(conn))

    async def _watch(self, conn: Connection) -> None:
        """The booted connection dropped: when (the next boot makes it a Reconnect)."""
        await conn.wait_closed()
        self._lost_at = time.monotonic()
        self._booted.clear()
        self.stats.booted_url = None

    async def _send(self, action: str, p: Payload) -> Payload:
        """Send until answered: after a drop, on the next connection (a replay the CSMS stores once)."""
        first = True
        while True:
            await self._booted.wait()
            conn = self.client.connection
            if conn is None:
                await asyncio.sleep(0.05)
                continue
            if not first:
                self.stats.resent += 1
            first = False
            try:
                return await conn.call(action, p)
            except (ConnectionClosedError, CallTimeoutError):
                await asyncio.sleep(0.05)
            except CallErrorReceived as e:  # e.g. the node could not publish the event: later again
                log.info("%s: %s answered %s, sending it again", self.station_id, action, e.wire_code)
                await asyncio.sleep(0.5)

    async def _transactions(self) -> None:
        n = 0
        while self.running:  # a transaction that started runs to its Ended event
            n += 1
            tx = f"{self.station_id}-T{n}"
            self._open_tx = tx
            for seq, kind in enumerate(["Started"] + ["Updated"] * self.updates + ["Ended"]):
                p = _event(kind, tx, seq, 1000.0 * n + 100.0 * seq)
                await self._send("TransactionEvent", p)
                self.stats.acked.append((tx, seq, kind))
                await asyncio.sleep(self.interval_s)
            self._open_tx = None


def _event(kind: str, tx: str, seq: int, wh: float) -> Payload:
    """A TransactionEvent of a light station's transaction on EVSE 1."""
    now = rfc3339()
    p: Payload = {"eventType": kind, "timestamp": now, "seqNo": seq,
                  "triggerReason": {"Started": "Authorized", "Updated": "MeterValuePeriodic",
                                    "Ended": "StopAuthorized"}[kind],
                  "transactionInfo": {"transactionId": tx,
                                      "chargingState": "EVConnected" if kind == "Ended" else "Charging"},
                  "meterValue": [{"timestamp": now, "sampledValue": [
                      {"value": wh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}]}]}
    if kind == "Started":
        p["evse"] = {"id": 1, "connectorId": 1}
        p["idToken"] = {"idToken": "LIGHT0001", "type": "Central"}
    if kind == "Ended":
        p["transactionInfo"]["stoppedReason"] = "Local"
    return p
