"""The CSMS process from start to its first charging session: start-up time, each action's first and second answer
time, RSS.

The CSMS runs alone in its own process, started as an operator starts it (`python -m v2gstack csms --config
csms.toml`, SQLite, no REST API, OCPP 2.1 only). Once it accepts connections, one OCPP 2.1 station (raw websocket
frames from this process) runs a charging session twice, one message at a time: BootNotification, StatusNotification,
Authorize, TransactionEvent Started / Updated (with meter values) / Ended, MeterValues, NotifyEVChargingNeeds,
Heartbeat. The first round is the first time the CSMS meets each action (its validators are loaded or compiled
then), the second is the same work warm. Measured: the time from spawning the process to its port accepting
connections, CALL -> CALLRESULT per action in each round, and the process's RSS and peak RSS (VmHWM) from /proc.

    .venv/bin/python bench/csms_first_calls.py
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from v2gstack.csms.store import Store  # noqa: E402

STATION_ID = "FIRSTCALLS01"
PASSWORD = "first-calls-station-password"
TOKEN = "04A1B2C3"
NOW = "2026-12-07T12:00:00Z"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, bytes."""
    found = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(found["VmRSS"].split()[0]) * 1024, int(found["VmHWM"].split()[0]) * 1024


def session(tx: str) -> list[tuple[str, dict[str, Any]]]:
    """The station's messages of one charging session (OCPP 2.1), in order."""
    token = {"idToken": TOKEN, "type": "ISO14443"}
    meter = [{"timestamp": NOW, "sampledValue": [{"value": 11000.0, "measurand": "Power.Active.Import"},
                                                 {"value": 1234.5, "measurand": "Energy.Active.Import.Register"}]}]

    def event(kind: str, seq: int, trigger: str, **extra: Any) -> dict[str, Any]:
        return {"eventType": kind, "timestamp": NOW, "triggerReason": trigger, "seqNo": seq,
                "transactionInfo": {"transactionId": tx, "chargingState": "Charging"}, **extra}

    return [
        ("BootNotification", {"chargingStation": {"model": "M1", "vendorName": "V2G"}, "reason": "PowerUp"}),
        ("StatusNotification", {"timestamp": NOW, "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1}),
        ("Authorize", {"idToken": token}),
        ("TransactionEvent", event("Started", 0, "Authorized", idToken=token, evse={"id": 1, "connectorId": 1})),
        ("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": "AC_three_phase",
                                                                   "acChargingParameters": {
                                                                       "energyAmount": 20000, "evMinCurrent": 6,
                                                                       "evMaxCurrent": 32, "evMaxVoltage": 400}}}),
        ("TransactionEvent", event("Updated", 1, "MeterValuePeriodic", meterValue=meter)),
        ("MeterValues", {"evseId": 1, "meterValue": meter}),
        ("TransactionEvent", event("Ended", 2, "EVCommunicationLost", meterValue=meter)),
        ("Heartbeat", {}),
    ]


async def run_round(ws: Any, tx: str) -> list[tuple[str, float]]:
    """One session, one CALL at a time; (action, seconds to its CALLRESULT) each. CSMS CALLs get a plain answer."""
    times: list[tuple[str, float]] = []
    for n, (action, payload) in enumerate(session(tx)):
        mid = f"{tx}-{n}"
        t0 = time.perf_counter()
        await ws.send(json.dumps([2, mid, action, payload]))
        while True:
            frame = json.loads(await ws.recv())
            if frame[0] == 2:  # a CALL of the CSMS (e.g. after the boot): answered with an empty-ish Accepted
                await ws.send(json.dumps([3, frame[1], {"status": "Accepted"}]))
                continue
            if frame[1] == mid:
                break
        if frame[0] != 3:
            raise RuntimeError(f"{action}: {frame}")
        times.append((action, time.perf_counter() - t0))
    return times


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="v2gstack-csms-first-"))
    store = Store(f"sqlite:///{folder / 'csms.db'}")
    store.add_station(STATION_ID, PASSWORD)
    store.put_id_token(TOKEN)
    store.close()
    port = free_port()
    config = folder / "csms.toml"
    config.write_text(f'[ocpp]\nport = {port}\nversions = ["2.1"]\nping_interval = 0.0\n\n'
                      f'[database]\nurl = "sqlite:///{folder / "csms.db"}"\n\n[api]\nport = 0\n')
    t0 = time.perf_counter()
    csms = subprocess.Popen([sys.executable, "-m", "v2gstack", "csms", "--config", str(config)],
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.DEVNULL,
                            stderr=open(folder / "csms.log", "w"))  # noqa: SIM115 (the child keeps it)
    try:
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if csms.poll() is not None or time.perf_counter() - t0 > 60:
                raise RuntimeError(f"the CSMS did not start: {(folder / 'csms.log').read_text()}")
            await asyncio.sleep(0.01)
        started = time.perf_counter() - t0
        rss_started, hwm_started = memory(csms.pid)
        auth = base64.b64encode(f"{STATION_ID}:{PASSWORD}".encode()).decode()
        async with websockets.connect(f"ws://127.0.0.1:{port}/ocpp/{STATION_ID}", subprotocols=["ocpp2.1"],
                                      additional_headers={"Authorization": f"Basic {auth}"}) as ws:
            first = await run_round(ws, "tx-first")
            second = await run_round(ws, "tx-second")
            await asyncio.sleep(0.5)
            rss, hwm = memory(csms.pid)
    finally:
        csms.terminate()
        csms.wait(10)
    mib = 2**20
    print(f"CSMS process (SQLite, OCPP 2.1, no API): accepting connections {started:.2f} s after spawn, "
          f"RSS then {rss_started / mib:.1f} MiB (peak so far {hwm_started / mib:.1f} MiB)")
    print(f"{'action':24} {'first':>9} {'second':>9}")
    for (action, a), (_, b) in zip(first, second, strict=True):
        print(f"{action:24} {a * 1000:7.1f} ms {b * 1000:7.1f} ms")
    print(f"session total: first {sum(t for _, t in first) * 1000:.0f} ms, second "
          f"{sum(t for _, t in second) * 1000:.0f} ms")
    print(f"RSS after the two sessions {rss / mib:.1f} MiB, peak (VmHWM) {hwm / mib:.1f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    asyncio.run(main(parser.parse_args()))
