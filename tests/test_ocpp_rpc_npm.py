"""Interop with ocpp-rpc (npm) in strict mode: a 2.0.1 station made with it talks to our OCPP server.

The station runs boot, heartbeat, status, authorize, a transaction with meter values, and answers a
RequestStopTransaction the CSMS side sends; ocpp-rpc validates every message in both directions with its own
copy of the official schemas, so a schema slip on our side fails its call.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest
from helpers.node_peer import node_peers_dir, script

from v2gstack.ocpp import OcppServer, Router, StaticAuthenticator

PASSWORD = "rpc-station-password-1"


@pytest.fixture(scope="module")
def peers() -> Path:
    where = node_peers_dir()
    if where is None:
        pytest.skip("node/npm not available or the npm registry is unreachable: cannot install ocpp-rpc")
    return where


def csms_router(seen: list[tuple[str, dict]]) -> Router:
    router = Router()
    now = "2026-11-23T10:00:00Z"

    @router.on("BootNotification")
    def boot(payload: dict) -> dict:
        seen.append(("BootNotification", payload))
        return {"currentTime": now, "interval": 300, "status": "Accepted"}

    @router.on("Heartbeat")
    def heartbeat(payload: dict) -> dict:
        return {"currentTime": now}

    @router.on("StatusNotification")
    def status(payload: dict) -> dict:
        seen.append(("StatusNotification", payload))
        return {}

    @router.on("Authorize")
    def authorize(payload: dict) -> dict:
        return {"idTokenInfo": {"status": "Accepted"}}

    @router.on("TransactionEvent")
    def transaction_event(payload: dict) -> dict:
        seen.append(("TransactionEvent", payload))
        return {"idTokenInfo": {"status": "Accepted"}} if "idToken" in payload else {}

    return router


async def test_ocpp_rpc_strict_station_against_our_server(peers: Path) -> None:
    seen: list[tuple[str, dict]] = []
    server = OcppServer({"2.0.1": csms_router(seen)}, security_profile=1,
                        authenticator=StaticAuthenticator({"RPC-CS-1": PASSWORD}))
    await server.start("127.0.0.1", 0)
    proc = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node", str(script("ocpp_rpc_station.js")),
        f"ws://127.0.0.1:{server.port}/ocpp", "RPC-CS-1", PASSWORD,
        cwd=peers, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_PATH": str(peers / "node_modules")},
    )
    steps: list[dict] = []
    try:
        assert proc.stdout is not None
        while True:
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, f"ocpp-rpc station ended early: {steps} {(await proc.stderr.read()).decode()}"  # type: ignore[union-attr]
            step = json.loads(line)
            steps.append(step)
            assert step["step"] != "error", step
            if step["step"] == "ready":
                answer = await server.connections["RPC-CS-1"].call(
                    "RequestStopTransaction", {"transactionId": step["data"]["transactionId"]})
                assert answer == {"status": "Accepted"}
            if step["step"] == "done":
                break
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
        await server.close()
    names = [s["step"] for s in steps]
    assert names == ["BootNotification", "Heartbeat", "StatusNotification", "Authorize", "TransactionEvent",
                     "TransactionEvent", "ready", "RequestStopTransaction", "TransactionEvent", "done"]
    assert steps[0]["data"]["status"] == "Accepted"
    assert [p["eventType"] for name, p in seen if name == "TransactionEvent"] == ["Started", "Updated", "Ended"]
