"""Our CSMS against stations nobody here wrote: the `ocpp` package's 2.0.1 ChargePoint and ocpp-rpc (npm) in strict
mode. Each boots, authorizes, runs a transaction with meter values and answers the CSMS's remote stop; the database
must then hold exactly what they sent."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from helpers.csms import csms_url, running_csms
from helpers.node_peer import node_peers_dir, script
from helpers.peers import their_station
from ocpp.v201 import call

pytestmark = pytest.mark.timeout(90)
PASSWORD = "their-station-password"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _meter(wh: float, w: float) -> list[dict[str, Any]]:
    return [{"timestamp": _now(), "sampled_value": [
        {"value": wh, "measurand": "Energy.Active.Import.Register", "unit_of_measure": {"unit": "Wh"}},
        {"value": w, "measurand": "Power.Active.Import", "unit_of_measure": {"unit": "W"}}]}]


async def test_ocpp_package_station_against_our_csms(tmp_path: Path) -> None:
    token = {"idToken": "PKG-TOKEN-1", "type": "ISO14443"}
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}", stations={"PKG-CS-1": PASSWORD},
                            tokens=[token]) as csms:
        async with their_station(csms_url(csms), "PKG-CS-1", PASSWORD) as cp:
            boot = await cp.call(call.BootNotification(
                charging_station={"model": "PKG", "vendor_name": "ocpp-package"}, reason="PowerUp"),
                suppress=False)
            assert boot.status == "Accepted" and boot.interval == 300
            await cp.call(call.StatusNotification(timestamp=_now(), connector_status="Occupied", evse_id=1,
                                                  connector_id=1), suppress=False)
            auth = await cp.call(call.Authorize(id_token={"id_token": "PKG-TOKEN-1", "type": "ISO14443"}),
                                 suppress=False)
            assert auth.id_token_info["status"] == "Accepted"
            bad = await cp.call(call.Authorize(id_token={"id_token": "NOPE", "type": "ISO14443"}), suppress=False)
            assert bad.id_token_info["status"] == "Unknown"
            tx = {"transaction_id": "pkg-tx-1", "charging_state": "Charging"}
            started = await cp.call(call.TransactionEvent(
                event_type="Started", timestamp=_now(), trigger_reason="Authorized", seq_no=0,
                transaction_info=tx, id_token={"id_token": "PKG-TOKEN-1", "type": "ISO14443"},
                evse={"id": 1, "connector_id": 1}, meter_value=_meter(0, 7400)), suppress=False)
            assert started.id_token_info["status"] == "Accepted"
            for seq, wh in ((1, 600.5), (2, 1200.0)):
                await cp.call(call.TransactionEvent(event_type="Updated", timestamp=_now(),
                                                    trigger_reason="MeterValuePeriodic", seq_no=seq,
                                                    transaction_info=tx, meter_value=_meter(wh, 7400)),
                              suppress=False)
            assert await csms.request_stop("PKG-CS-1", "pkg-tx-1") == {"status": "Accepted"}
            assert cp.stops == ["pkg-tx-1"]
            await cp.call(call.TransactionEvent(
                event_type="Ended", timestamp=_now(), trigger_reason="RemoteStop", seq_no=3,
                transaction_info={"transaction_id": "pkg-tx-1", "stopped_reason": "Remote",
                                  "charging_state": "Idle"}, meter_value=_meter(1250.0, 0)), suppress=False)
        got = csms.store.transaction("PKG-CS-1", "pkg-tx-1")
        assert got is not None and got["state"] == "Ended" and got["stoppedReason"] == "Remote"
        assert [e["seqNo"] for e in got["events"]] == [0, 1, 2, 3]
        energy = [m["value"] for m in got["meterValues"] if m["measurand"] == "Energy.Active.Import.Register"]
        assert energy == [0, 600.5, 1200.0, 1250.0]
        st = csms.store.station("PKG-CS-1")
        assert st.vendor == "ocpp-package" and st.connector_status == {"1/1": "Occupied"}


async def test_ocpp_rpc_strict_station_against_our_csms(tmp_path: Path) -> None:
    peers = node_peers_dir()
    if peers is None:
        pytest.skip("node/npm not available or the npm registry is unreachable: cannot install ocpp-rpc")
    password = "rpc-station-password-1"
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}", stations={"RPC-CS-1": password},
                            tokens=[{"idToken": "RPC-TOKEN-1", "type": "ISO14443"}]) as csms:
        proc = await asyncio.create_subprocess_exec(
            shutil.which("node") or "node", str(script("ocpp_rpc_station.js")), csms_url(csms), "RPC-CS-1", password,
            cwd=peers, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NODE_PATH": str(peers / "node_modules")})
        steps: list[dict[str, Any]] = []
        try:
            assert proc.stdout is not None and proc.stderr is not None
            while True:
                line = await asyncio.wait_for(proc.stdout.readline(), 30)
                assert line, f"ocpp-rpc station ended early: {steps} {(await proc.stderr.read()).decode()}"
                step = json.loads(line)
                steps.append(step)
                assert step["step"] != "error", step
                if step["step"] == "ready":
                    answer = await csms.request_stop("RPC-CS-1", step["data"]["transactionId"])
                    assert answer == {"status": "Accepted"}
                if step["step"] == "done":
                    break
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
        by_step = {s["step"]: s["data"] for s in steps}
        assert by_step["BootNotification"]["status"] == "Accepted"
        assert by_step["Authorize"]["idTokenInfo"]["status"] == "Accepted"
        got = csms.store.transaction("RPC-CS-1", "rpc-tx-1")
        assert got is not None and got["state"] == "Ended" and got["stoppedReason"] == "Remote"
        assert [e["eventType"] for e in got["events"]] == ["Started", "Updated", "Ended"]
        assert [m["value"] for m in got["meterValues"]] == [0, 1500.5, 3000]
