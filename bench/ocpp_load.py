"""Load run: N simulated OCPP 2.0.1 stations on loopback against one v2gstack OCPP server process.

The server (this file with --serve) runs OcppServer with a CSMS router answering Heartbeat and TransactionEvent
(with meter values) through the full engine: schema validation of every CALL and CALLRESULT. The load generator
opens N websocket connections (profile 1, Basic auth) from one process and makes every station send a
TransactionEvent every `--interval` seconds, spread evenly; it reports connect time, messages/s, CALL -> CALLRESULT
latency p50/p99 and the server's CPU time and RSS. The generator shares the machine's cores with the server, so on a
small machine it limits the rate it can offer; it says how much it achieved.

    .venv/bin/python bench/ocpp_load.py --stations 2000 --interval 1 --duration 20

With `--db sqlite` (a fresh file) or `--db postgresql://...` (a scratch database: its tables are dropped first) the
server is the real CSMS (`v2gstack.csms.Csms`): stations come from its registry, every TransactionEvent and each of
its sampled values is committed before the answer, and the run ends by counting the stored events against the
answered ones. Station passwords are registered with a cheaper scrypt cost (n=2^10 instead of 2^14) so that 10,000
first handshakes do not take 1,000 CPU seconds; the handshake cost is not what this run measures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import websockets

PASSWORD = "load-test-password-0001"
ROOT = Path(__file__).resolve().parent.parent


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve_csms(port: int, db: str, stations: int) -> None:
    """The system under test with storage: the v2gstack CSMS on a fresh database with `stations` registered."""
    from sqlalchemy import insert

    from v2gstack.csms.models import Base, Station
    from v2gstack.csms.service import Csms, CsmsConfig
    from v2gstack.csms.store import Store, hash_password

    store = Store(db)
    Base.metadata.drop_all(store.engine)
    Base.metadata.create_all(store.engine)
    hashed = hash_password(PASSWORD, n=2**10)
    with store.session() as s:
        s.execute(insert(Station), [{"id": f"LOAD-{i}", "password_hash": hashed, "security_profile": 1,
                                     "connector_status": {}} for i in range(stations)])
    csms = Csms(store, CsmsConfig(security_profile=1, ping_interval=None, log_session_messages=False))
    await csms.start("127.0.0.1", port)
    print("ready", flush=True)
    await asyncio.Event().wait()


def stored_events(db: str) -> tuple[int, int]:
    """(TransactionEvents, sampled values) in the CSMS database."""
    from sqlalchemy import func, select

    from v2gstack.csms.models import MeterValue, TransactionEvent
    from v2gstack.csms.store import Store

    store = Store(db)
    try:
        with store.session() as s:
            return (s.scalar(select(func.count()).select_from(TransactionEvent)) or 0,
                    s.scalar(select(func.count()).select_from(MeterValue)) or 0)
    finally:
        store.close()


async def serve(port: int) -> None:
    """The system under test: the v2gstack OCPP server with a minimal CSMS router."""
    from v2gstack.ocpp import OcppServer, Router
    from v2gstack.ocpp.auth import AuthDecision, Credentials

    router = Router()

    @router.on("BootNotification")
    def boot(payload: dict) -> dict:
        return {"currentTime": "2026-11-23T10:00:00Z", "interval": 300, "status": "Accepted"}

    @router.on("Heartbeat")
    def heartbeat(payload: dict) -> dict:
        return {"currentTime": "2026-11-23T10:00:00Z"}

    @router.on("TransactionEvent")
    def transaction_event(payload: dict) -> dict:
        return {}

    def authenticate(cred: Credentials) -> AuthDecision:
        if not cred.station_id.startswith("LOAD-"):
            return AuthDecision.UNKNOWN_STATION
        return AuthDecision.ACCEPT if cred.password == PASSWORD else AuthDecision.BAD_CREDENTIALS

    server = OcppServer({"2.0.1": router}, security_profile=1, authenticator=authenticate, ping_interval=None)
    await server.start("127.0.0.1", port)
    print("ready", flush=True)
    await asyncio.Event().wait()


def event(station: int, seq: int) -> dict:
    return {
        "eventType": "Updated", "timestamp": "2026-11-23T10:00:00Z", "triggerReason": "MeterValuePeriodic",
        "seqNo": seq, "transactionInfo": {"transactionId": f"tx-{station}", "chargingState": "Charging"},
        "meterValue": [{"timestamp": "2026-11-23T10:00:00Z", "sampledValue": [
            {"value": 1000.0 + seq, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
            {"value": 7400.0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
            {"value": 32.0, "measurand": "Current.Import", "phase": "L1", "unitOfMeasure": {"unit": "A"}},
            {"value": 230.0, "measurand": "Voltage", "phase": "L1-N", "unitOfMeasure": {"unit": "V"}},
            {"value": 55.0, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}}]}],
    }


async def station(i: int, url: str, interval: float, until: float, start_at: float, lat: list[float],
                  errors: list[str]) -> None:
    auth = base64.b64encode(f"LOAD-{i}:{PASSWORD}".encode()).decode()
    try:
        async with websockets.connect(f"{url}/LOAD-{i}", subprotocols=["ocpp2.0.1"],
                                      additional_headers={"Authorization": f"Basic {auth}"},
                                      ping_interval=None, open_timeout=120, max_size=2**20) as ws:
            await asyncio.sleep(max(0.0, start_at - time.monotonic()) + random.random() * interval)
            seq = 0
            while time.monotonic() < until:
                t0 = time.perf_counter()
                await ws.send(json.dumps([2, f"{i}-{seq}", "TransactionEvent", event(i, seq)]))
                reply = json.loads(await ws.recv())
                if reply[0] != 3:
                    errors.append(str(reply)[:200])
                lat.append(time.perf_counter() - t0)
                seq += 1
                await asyncio.sleep(max(0.0, interval - (time.perf_counter() - t0)))
    except Exception as e:  # a refused or dropped connection is a result, not a crash of the generator
        errors.append(f"{type(e).__name__}: {e}"[:200])


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


async def generate(args: argparse.Namespace, pid: int) -> None:
    url = f"ws://127.0.0.1:{args.port}/ocpp"
    lat: list[float] = []
    errors: list[str] = []
    t_connect = time.monotonic()
    start_at = t_connect + args.ramp
    until = start_at + args.duration
    tasks = []
    for i in range(args.stations):
        tasks.append(asyncio.create_task(station(i, url, args.interval, until, start_at, lat, errors)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)  # accept backlog: connect in waves
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    cpu0, _ = proc_stats(pid)
    n0, t0 = len(lat), time.monotonic()
    await asyncio.gather(*tasks)
    n1, t1 = len(lat), time.monotonic()
    cpu1, rss = proc_stats(pid)
    lat_ms = sorted(x * 1000 for x in lat)
    rate = (n1 - n0) / (t1 - t0)
    p99 = lat_ms[int(len(lat_ms) * 0.99)] if lat_ms else float("nan")
    print(f"stations: {args.stations} (offered {args.stations / args.interval:.0f} msg/s), duration {t1 - t0:.1f} s")
    print(f"messages: {n1 - n0} in the measured window, {rate:.0f} msg/s; errors: {len(errors)}")
    if lat_ms:
        print(f"CALL -> CALLRESULT latency: p50 {statistics.median(lat_ms):.1f} ms, p99 {p99:.1f} ms, "
              f"max {lat_ms[-1]:.1f} ms")
    print(f"server: CPU {cpu1 - cpu0:.1f} s over the window ({(cpu1 - cpu0) / (t1 - t0) * 100:.0f} % of one core), "
          f"{(cpu1 - cpu0) / max(1, n1 - n0) * 1e6:.0f} us CPU per message, RSS {rss / 2**20:.0f} MiB")
    for e in sorted(set(errors))[:5]:
        print("  error:", e)
    if args.db:
        await asyncio.sleep(1.0)  # the last answers are out; their commits are done
        events, values = stored_events(args.db)
        answered = len(lat) - len([e for e in errors if e.startswith("[4")])
        print(f"storage: {events} TransactionEvents and {values} sampled values in the database; "
              f"{answered} events answered -> {'OK, none lost' if events == answered else 'MISMATCH'}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=19876)
    ap.add_argument("--stations", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between a station's TransactionEvents")
    ap.add_argument("--duration", type=float, default=15.0, help="measured seconds")
    ap.add_argument("--ramp", type=float, default=10.0, help="seconds to connect before measuring")
    ap.add_argument("--db", help="the real CSMS with storage: sqlite (a fresh file) or a scratch postgresql:// URL")
    args = ap.parse_args()
    raise_fd_limit()
    if args.serve:
        asyncio.run(serve_csms(args.port, args.db, args.stations) if args.db else serve(args.port))
        return 0
    if args.db == "sqlite":
        import tempfile

        args.db = f"sqlite:///{tempfile.mkdtemp(prefix='v2gstack-load-')}/csms.db"
    command = [sys.executable, __file__, "--serve", "--port", str(args.port), "--stations", str(args.stations)]
    if args.db:
        command += ["--db", args.db]
        print(f"CSMS with storage: {args.db.split('@')[-1]}")
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            print("server did not start", file=sys.stderr)
            return 1
        asyncio.run(generate(args, server.pid))
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
