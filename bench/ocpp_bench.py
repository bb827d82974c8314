"""CPU per OCPP message through the whole RPC engine, v2gstack vs the `ocpp` package, measured in the same run.

Path measured for each received CALL: parse the frame, validate the request against its JSON schema, dispatch to the
handler, build the CALLRESULT, validate it, hand the text to the websocket (an in-memory fake here, for both).
Ours: `Connection.handle_text` with sync handlers (inline fast path) and with async handlers (one task per CALL).
Theirs: `ChargePoint.route_message` of the `ocpp` package, with its default (schema validation in a thread
executor) and with `ocpp.messages.ASYNC_VALIDATION = False`. CPU is time.process_time (all threads), best of
--repeat runs of --iterations messages.

Run: python bench/ocpp_bench.py [--iterations N] [--repeat R]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import ocpp.messages
from ocpp.routing import on
from ocpp.v201 import ChargePoint, call_result

from v2gstack.ocpp import Connection, Router

NOW = "2024-05-01T12:00:00Z"
MESSAGES: dict[str, dict[str, Any]] = {
    "Heartbeat": {},
    "Authorize": {"idToken": {"idToken": "04A1B2C3", "type": "ISO14443"}},
    "TransactionEvent": {
        "eventType": "Updated", "timestamp": NOW, "triggerReason": "MeterValuePeriodic", "seqNo": 3,
        "transactionInfo": {"transactionId": "tx-1", "chargingState": "Charging"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": NOW, "sampledValue": [
            {"value": 1234.5, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
            {"value": 0.0, "measurand": "Energy.Active.Export.Register", "unitOfMeasure": {"unit": "Wh"}},
            {"value": 7200.0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
            {"value": 0.0, "measurand": "Power.Active.Export", "unitOfMeasure": {"unit": "W"}},
            {"value": 54, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}},
        ]}],
    },
}
RESPONSES: dict[str, dict[str, Any]] = {
    "Heartbeat": {"currentTime": NOW},
    "Authorize": {"idTokenInfo": {"status": "Accepted"}},
    "TransactionEvent": {},
}


class FakeSocket:
    """In-memory websocket: keeps the last text sent."""

    def __init__(self) -> None:
        self.last = ""

    async def send(self, message: str) -> None:
        """Keep the text."""
        self.last = message

    async def recv(self) -> str:
        """Never used by the benchmark."""
        raise ConnectionError

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Nothing to close."""


def our_router(asynchronous: bool) -> Router:
    """Handlers returning the fixed responses, sync or async."""
    router = Router()
    for action, response in RESPONSES.items():
        if asynchronous:
            async def handler(payload: dict[str, Any], _r: dict[str, Any] = response) -> dict[str, Any]:
                return _r
        else:
            def handler(payload: dict[str, Any], _r: dict[str, Any] = response) -> dict[str, Any]:  # type: ignore[misc]
                return _r
        router.add(action, handler)
    return router


class TheirCsms(ChargePoint):
    """The `ocpp` package's CSMS side with the same three handlers."""

    @on("Heartbeat")
    async def on_heartbeat(self, **kw: Any) -> Any:
        """Heartbeat -> current time."""
        return call_result.Heartbeat(current_time=NOW)

    @on("Authorize")
    async def on_authorize(self, id_token: dict[str, Any], **kw: Any) -> Any:
        """Authorize -> Accepted."""
        return call_result.Authorize(id_token_info={"status": "Accepted"})

    @on("TransactionEvent")
    async def on_transaction_event(self, **kw: Any) -> Any:
        """TransactionEvent -> empty answer."""
        return call_result.TransactionEvent()


def frames(action: str, n: int, tag: str) -> list[str]:
    """n CALL texts with distinct message ids (an engine refuses reused ids)."""
    body = json.dumps(MESSAGES[action], separators=(",", ":"))
    return [f'[2,"{tag}-{i}","{action}",{body}]' for i in range(n)]


async def measure(step: Callable[[str], Awaitable[None]], texts: list[str],
                  after: Callable[[], Awaitable[None]]) -> float:
    """CPU seconds per message to push `texts` through `step`."""
    start = time.process_time()
    for text in texts:
        await step(text)
        await after()
    return (time.process_time() - start) / len(texts)


async def nothing() -> None:
    """No extra work between messages."""


async def yield_once() -> None:
    """Let the handler task run (async handlers answer from their own task)."""
    await asyncio.sleep(0)


async def run(iterations: int, repeat: int) -> list[dict[str, Any]]:
    """Measure each message type on every path; best of `repeat`."""
    rows = []
    for action in MESSAGES:
        best: dict[str, float] = {}
        for r in range(repeat + 1):  # run 0 warms up (schema compilation, caches)
            n = max(iterations // 10, 50) if r == 0 else iterations
            results: dict[str, float] = {}
            for name, asynchronous in (("ours_sync", False), ("ours_async", True)):
                ws = FakeSocket()
                conn = Connection(ws, "2.0.1", our_router(asynchronous), station_id="bench")
                results[name] = await measure(conn.handle_text, frames(action, n, f"{name}{r}"),
                                              yield_once if asynchronous else nothing)
                assert ws.last.startswith("[3,"), ws.last
            for name, threaded in (("ocpp_default", True), ("ocpp_no_thread", False)):
                ocpp.messages.ASYNC_VALIDATION = threaded
                sock = FakeSocket()
                cp = TheirCsms("bench", sock)
                results[name] = await measure(cp.route_message, frames(action, n // 4 or 1, f"{name}{r}"), nothing)
                assert sock.last.startswith("[3,"), sock.last
            ocpp.messages.ASYNC_VALIDATION = True
            if r:
                for k, v in results.items():
                    best[k] = min(best.get(k, v), v)
        rows.append({"action": action, **{k: v * 1e6 for k, v in best.items()}})
    return rows


def main() -> None:
    """Print microseconds of CPU per message and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=5000,
                        help="messages per run of our engine (a quarter of it for the ocpp package)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per path (best is reported)")
    args = parser.parse_args()
    logging.disable(logging.INFO)  # the ocpp package logs every message at INFO
    rows = asyncio.run(run(args.iterations, args.repeat))
    print("CPU per received CALL (us): parse + validate + dispatch + build response + validate + send")
    header = (f"{'message':<18}{'ours sync':>10}{'ours async':>11}{'ocpp':>9}{'ocpp*':>9}"
              f"{'ocpp/sync':>11}{'ocpp/async':>11}{'ocpp*/sync':>11}{'ocpp*/async':>12}")
    print(header)
    for row in rows:
        ours_s, ours_a, theirs, theirs_nt = (row[k] for k in ("ours_sync", "ours_async", "ocpp_default",
                                                               "ocpp_no_thread"))
        print(f"{row['action']:<18}{ours_s:>10.1f}{ours_a:>11.1f}{theirs:>9.1f}{theirs_nt:>9.1f}"
              f"{theirs / ours_s:>10.1f}x{theirs / ours_a:>10.1f}x"
              f"{theirs_nt / ours_s:>10.1f}x{theirs_nt / ours_a:>11.1f}x")
    print("ocpp = the ocpp package as shipped (validation in a thread executor); "
          "ocpp* = same with ASYNC_VALIDATION = False")


if __name__ == "__main__":
    main()
