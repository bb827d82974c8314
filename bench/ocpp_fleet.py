"""The fleet side of `ocpp_load.py --mix`: light OCPP 2.0.1 stations, one asyncio loop per generator process.

Each station connects (from one of several 127.0.0.x source addresses: loopback gives ~28,000 ephemeral ports per
source address), boots, obeys a Pending or Rejected `interval` (sending nothing else meanwhile, B02/B03), reconnects
after a lost or failed connection as OCPP 2.0.1 tells a station to (the RetryBackOff* variables of OCPPCommCtrlr:
wait minimum * 2^attempt, doubled at most RepeatTimes times, plus random 0..RandomRange; never less than a refusal's
Retry-After: `BackOff.wait` of v2gstack.ocpp, the rule our own station uses), reports its connector, then runs the
message mix with the intervals a station would use: a Heartbeat
every HeartbeatInterval of the BootNotificationResponse, transactions (Started, Updated with five sampled values every
`meter_interval`, Ended) with StatusNotifications at each start and end. At `outage_at` every connection is dropped at
once (an outage): every station has lost its connection at the same instant, reconnects by the back-off rule (the
first attempt after minimum + random 0..range), boots again (reason PowerUp) and end the transactions the
outage interrupted (stoppedReason PowerLoss). Latencies are recorded per action with their send time; the process
prints one JSON document on stdout.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.exceptions import InvalidStatus

from v2gstack.ocpp import BackOff
from v2gstack.ocpp.client import retry_after_seconds

PASSWORD = "load-test-password-0001"


@dataclass
class Plan:
    """What one generator process runs (times on the monotonic clock, shared by all processes of the machine)."""

    first: int
    last: int
    ports: list[int]  # one per CSMS node; station i goes to node i % len(ports)
    sources: int  # source addresses 127.0.0.1 .. 127.0.0.<sources>
    start_at: float  # the first connection
    ramp_rate: float  # connections per second of this process (0: all at once)
    outage_at: float  # every connection dropped at this time (0: no outage)
    until: float  # the stations stop sending
    meter_interval: float = 60.0
    busy: float = 0.2  # share of time a station is in a transaction
    session_s: float = 1800.0  # mean length of a transaction
    retry_min: float = 3.0  # RetryBackOffWaitMinimum (s), as our station's device model ships it
    retry_range: float = 10.0  # RetryBackOffRandomRange (s)
    retry_repeat: int = 5  # RetryBackOffRepeatTimes

    @property
    def backoff(self) -> BackOff:
        return BackOff(self.retry_min, self.retry_range, self.retry_repeat)


@dataclass
class Record:
    """What the stations of one process saw."""

    lat: dict[str, list[tuple[float, float, int]]] = field(default_factory=dict)  # action -> [(sent, s, node)]
    accepted: list[tuple[int, float]] = field(default_factory=list)  # (boot round, when Accepted)
    connected: list[tuple[int, float]] = field(default_factory=list)  # (round, when the websocket opened)
    counts: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    max_hint: int = 0  # the longest Pending/Rejected interval told

    def note(self, action: str, sent: float, seconds: float, node: int) -> None:
        self.lat.setdefault(action, []).append((sent, seconds, node))


class Outage(Exception):
    """The power went: drop the connection, boot again."""


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def meter(seq: int) -> list[dict[str, Any]]:
    return [{"timestamp": now_iso(), "sampledValue": [
        {"value": 1000.0 + 10 * seq, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
        {"value": 7400.0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
        {"value": 32.0, "measurand": "Current.Import", "phase": "L1", "unitOfMeasure": {"unit": "A"}},
        {"value": 230.0, "measurand": "Voltage", "phase": "L1-N", "unitOfMeasure": {"unit": "V"}},
        {"value": 55.0, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}}]}]


class Fleet:
    """The stations of one process and the outage that hits them all."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.rec = Record()
        self.round = 0  # 0 before the outage, 1 after
        self.sleepers: set[asyncio.Future[None]] = set()
        self.sockets: set[Any] = set()

    async def run(self) -> Record:
        loop = asyncio.get_running_loop()
        if self.plan.outage_at:
            loop.call_at(self.plan.outage_at - time.monotonic() + loop.time(), self.outage)
        tasks = []
        for n, i in enumerate(range(self.plan.first, self.plan.last)):
            delay = n / self.plan.ramp_rate if self.plan.ramp_rate > 0 else 0.0
            tasks.append(asyncio.create_task(self.station(i, self.plan.start_at + delay)))
        await asyncio.gather(*tasks)
        return self.rec

    def outage(self) -> None:
        """Every connection dropped at once; every sleeping station wakes to reconnect."""
        self.round = 1
        for ws in list(self.sockets):
            ws.transport.abort()
        for fut in list(self.sleepers):
            if not fut.done():
                fut.set_result(None)

    async def nap(self, until: float, wake: bool = True) -> bool:
        """Sleep until a monotonic time, or the outage (if `wake`); False when the outage woke us (or the run is
        over). A station backing off before a reconnect is not woken: the outage changes nothing for it."""
        r = self.round
        delay = min(until, self.plan.until) - time.monotonic()
        if delay > 0 and not wake:
            await asyncio.sleep(delay)
        elif delay > 0:
            loop = asyncio.get_running_loop()
            fut: asyncio.Future[None] = loop.create_future()
            handle = loop.call_later(delay, lambda: fut.done() or fut.set_result(None))
            self.sleepers.add(fut)
            try:
                await fut
            finally:
                self.sleepers.discard(fut)
                handle.cancel()
        return self.round == r and time.monotonic() < self.plan.until

    async def station(self, i: int, start: float) -> None:
        await self.nap(start)
        in_tx: str | None = None  # the open transaction (a power cut ends it after the next boot)
        seq = 0
        backoff = self.plan.backoff
        attempt = -1  # failed attempts since the last open websocket (-1: the very first, no wait)
        while time.monotonic() < self.plan.until:
            r = self.round
            try:
                ws = await self.connect(i)
            except InvalidStatus as e:
                status = e.response.status_code
                self.rec.counts[f"http_{status}"] += 1
                attempt += 1
                await self.nap(time.monotonic() + backoff.wait(
                    attempt, retry_after_seconds(e.response.headers.get("Retry-After"))), wake=False)
                continue
            except (TimeoutError, OSError, websockets.exceptions.WebSocketException) as e:
                self.rec.errors[f"connect: {type(e).__name__}: {e}"[:120]] += 1
                attempt += 1
                await self.nap(time.monotonic() + backoff.wait(attempt), wake=False)
                continue
            attempt = 0
            self.rec.connected.append((r, time.monotonic()))
            self.sockets.add(ws)
            try:
                if self.round != r:
                    raise Outage
                in_tx, seq = await self.session(ws, i, r, in_tx, seq)
            except (Outage, websockets.exceptions.ConnectionClosed):
                if self.round == r and time.monotonic() < self.plan.until:
                    self.rec.errors["connection closed by the CSMS"] += 1
            finally:
                self.sockets.discard(ws)
                ws.transport.abort()
            if time.monotonic() < self.plan.until:  # the connection is lost: the first attempt waits too
                self.rec.counts["reconnect"] += 1
                await self.nap(time.monotonic() + backoff.wait(attempt), wake=False)

    async def connect(self, i: int) -> Any:
        p = self.plan
        auth = base64.b64encode(f"LOAD-{i}:{PASSWORD}".encode()).decode()
        port = p.ports[i % len(p.ports)]
        source = f"127.0.0.{1 + (i // len(p.ports)) % p.sources}"
        return await websockets.connect(
            f"ws://127.0.0.1:{port}/ocpp/LOAD-{i}", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
            additional_headers={"Authorization": f"Basic {auth}"}, compression=None, ping_interval=None,
            open_timeout=60, close_timeout=1, max_size=2**20, local_addr=(source, 0))

    async def call(self, ws: Any, i: int, r: int, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """One CALL and its CALLRESULT (CALLs from the CSMS meanwhile are refused: this station has no services)."""
        if self.round != r:
            raise Outage
        msg_id = f"{random.getrandbits(48):x}"
        sent, t0 = time.monotonic(), time.perf_counter()
        await ws.send(json.dumps([2, msg_id, action, payload]))
        while True:
            reply = json.loads(await ws.recv())
            if reply[0] == 2:
                await ws.send(json.dumps([4, reply[1], "NotImplemented", "load generator", {}]))
                continue
            if reply[1] == msg_id:
                break
        self.rec.note(action, sent, time.perf_counter() - t0, i % len(self.plan.ports))
        self.rec.counts[action] += 1
        if reply[0] != 3:
            self.rec.errors[f"{action}: CALLERROR {reply[2]}"] += 1
            return {}
        return dict(reply[2])

    async def session(self, ws: Any, i: int, r: int, in_tx: str | None, seq: int) -> tuple[str | None, int]:
        """Boot until Accepted, then the message mix until the run ends or the outage comes."""
        p = self.plan
        while True:
            answer = await self.call(ws, i, r, "BootNotification", {
                "reason": "PowerUp", "chargingStation": {"model": "LoadSim", "vendorName": "v2gstack"}})
            status = answer.get("status")
            if status == "Accepted":
                break
            interval = int(answer.get("interval") or 10)
            self.rec.counts[f"boot_{status}"] += 1
            self.rec.max_hint = max(self.rec.max_hint, interval)
            if not await self.nap(time.monotonic() + interval):  # B02/B03: nothing else until the interval is over
                raise Outage
        self.rec.accepted.append((r, time.monotonic()))
        heartbeat = float(answer.get("interval") or 300)
        if in_tx is not None:  # the power cut ended it
            await self.call(ws, i, r, "TransactionEvent", {
                "eventType": "Ended", "timestamp": now_iso(), "triggerReason": "AbnormalCondition", "seqNo": seq,
                "offline": True, "transactionInfo": {"transactionId": in_tx, "stoppedReason": "PowerLoss"},
                "meterValue": meter(seq)})
            in_tx = None
        await self.call(ws, i, r, "StatusNotification", {"timestamp": now_iso(), "connectorStatus": "Available",
                                                      "evseId": 1, "connectorId": 1})
        rnd = random.Random(i * 7919 + r)
        t = time.monotonic()
        next_hb = t + rnd.random() * heartbeat
        idle_mean = p.session_s * (1 - p.busy) / max(p.busy, 1e-6)
        # the stationary state: busy with probability `busy`, already some way into the session
        next_tx = t if rnd.random() < p.busy else t + rnd.expovariate(1 / idle_mean)
        next_meter = end_at = 0.0
        n = 0
        while True:
            due = min(next_hb, next_tx if in_tx is None else min(next_meter, end_at))
            if not await self.nap(due):
                if self.round != r:
                    raise Outage
                return in_tx, seq
            t = time.monotonic()
            if t >= next_hb:
                await self.call(ws, i, r, "Heartbeat", {})
                next_hb = t + heartbeat
            elif in_tx is None:
                n += 1
                in_tx, seq = f"L{i}-{r}-{n}", 0
                await self.call(ws, i, r, "StatusNotification", {"timestamp": now_iso(), "connectorStatus": "Occupied",
                                                              "evseId": 1, "connectorId": 1})
                await self.call(ws, i, r, "TransactionEvent", {
                    "eventType": "Started", "timestamp": now_iso(), "triggerReason": "CablePluggedIn", "seqNo": seq,
                    "transactionInfo": {"transactionId": in_tx, "chargingState": "Charging"},
                    "evse": {"id": 1, "connectorId": 1}, "meterValue": meter(seq)})
                next_meter = t + rnd.random() * p.meter_interval
                end_at = t + rnd.expovariate(1 / p.session_s)
            elif t >= end_at:
                seq += 1
                await self.call(ws, i, r, "TransactionEvent", {
                    "eventType": "Ended", "timestamp": now_iso(), "triggerReason": "EVCommunicationLost",
                    "seqNo": seq, "transactionInfo": {"transactionId": in_tx, "stoppedReason": "EVDisconnected"},
                    "meterValue": meter(seq)})
                await self.call(ws, i, r, "StatusNotification", {"timestamp": now_iso(), "connectorStatus": "Available",
                                                              "evseId": 1, "connectorId": 1})
                in_tx = None
                next_tx = t + rnd.expovariate(1 / idle_mean)
            else:
                seq += 1
                await self.call(ws, i, r, "TransactionEvent", {
                    "eventType": "Updated", "timestamp": now_iso(), "triggerReason": "MeterValuePeriodic",
                    "seqNo": seq, "transactionInfo": {"transactionId": in_tx, "chargingState": "Charging"},
                    "meterValue": meter(seq)})
                next_meter = t + p.meter_interval


def run_part(plan: Plan) -> dict[str, Any]:
    """Run one process's stations; the JSON-able record."""
    rec = asyncio.run(Fleet(plan).run())
    return {"lat": rec.lat, "accepted": rec.accepted, "connected": rec.connected, "counts": dict(rec.counts),
            "errors": dict(rec.errors), "max_hint": rec.max_hint}
