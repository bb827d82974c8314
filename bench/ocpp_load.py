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
first handshakes do not take 1,000 CPU seconds, and the CSMS's password-verification budget (a guard against
guessing) is lifted; the handshake cost is not what this run measures.

`--compare` runs the CSMS twice in one command, each on a fresh database and with the same load: first with the
write path before batch forms (every TransactionEvent its own statements, `StoreWorker(batch_forms=False)`), then
with the batched one, and prints both with their ratio. `--procs N` spreads the stations over N generator processes
(one process cannot offer more than ~2,000 msg/s). `--profile FILE` writes the CSMS's cProfile statistics (event
loop and database thread) when it stops.

    .venv/bin/python bench/ocpp_load.py --db sqlite --compare --stations 2000 --interval 1 --procs 2
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import cProfile
import json
import os
import pstats
import random
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import websockets

PASSWORD = "load-test-password-0001"
ROOT = Path(__file__).resolve().parent.parent


def raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve_csms(port: int, db: str, stations: int, old_path: bool = False) -> None:
    """The system under test with storage: the v2gstack CSMS on a fresh database with `stations` registered."""
    from sqlalchemy import insert

    from v2gstack.csms.models import Base, Station
    from v2gstack.csms.service import Csms, CsmsConfig
    from v2gstack.csms.store import Store, hash_password
    from v2gstack.ocpp.throttle import ThrottlePolicy

    store = Store(db)
    Base.metadata.drop_all(store.engine)
    Base.metadata.create_all(store.engine)
    hashed = hash_password(PASSWORD, n=2**10)
    with store.session() as s:
        s.execute(insert(Station), [{"id": f"LOAD-{i}", "password_hash": hashed, "security_profile": 1,
                                     "connector_status": {}} for i in range(stations)])
    # the connect storm of a load run is not password guessing: the verification budget covers every station
    policy = ThrottlePolicy(verify_rate=1e6, verify_burst=10**6)
    csms = Csms(store, CsmsConfig(security_profile=1, ping_interval=None, log_session_messages=False,
                                  auth_throttle=policy))
    if old_path:
        csms.worker.batch_forms = {}  # every operation with its own statements, as before batch forms existed
    await csms.start("127.0.0.1", port)
    print("ready", flush=True)
    await asyncio.Event().wait()


def stored_events(db: str) -> tuple[int, int, int]:
    """(TransactionEvents, distinct (station, transaction, seqNo) among them, sampled values) in the database."""
    from sqlalchemy import func, select

    from v2gstack.csms.models import MeterValue, TransactionEvent
    from v2gstack.csms.store import Store

    store = Store(db)
    try:
        with store.session() as s:
            keys = select(TransactionEvent.station_id, TransactionEvent.transaction_id,
                          TransactionEvent.seq_no).distinct().subquery()
            return (s.scalar(select(func.count()).select_from(TransactionEvent)) or 0,
                    s.scalar(select(func.count()).select_from(keys)) or 0,
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


async def station(i: int, url: str, interval: float, until: float, start_at: float, lat: list[tuple[float, float]],
                  errors: list[str]) -> None:
    auth = base64.b64encode(f"LOAD-{i}:{PASSWORD}".encode()).decode()
    try:
        async with websockets.connect(f"{url}/LOAD-{i}", subprotocols=["ocpp2.0.1"],
                                      additional_headers={"Authorization": f"Basic {auth}"},
                                      ping_interval=None, open_timeout=120, max_size=2**20) as ws:
            await asyncio.sleep(max(0.0, start_at - time.monotonic()) + random.random() * interval)
            seq = 0
            while time.monotonic() < until:
                sent, t0 = time.monotonic(), time.perf_counter()
                await ws.send(json.dumps([2, f"{i}-{seq}", "TransactionEvent", event(i, seq)]))
                reply = json.loads(await ws.recv())
                if reply[0] != 3:
                    errors.append(str(reply)[:200])
                lat.append((sent, time.perf_counter() - t0))
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


async def generate_part(port: int, first: int, last: int, interval: float, start_at: float,
                        until: float) -> tuple[list[tuple[float, float]], list[str]]:
    """Stations first..last-1 of the run, connected in waves, sending until `until` (monotonic clock)."""
    url = f"ws://127.0.0.1:{port}/ocpp"
    lat: list[tuple[float, float]] = []
    errors: list[str] = []
    tasks = []
    for n, i in enumerate(range(first, last)):
        tasks.append(asyncio.create_task(station(i, url, interval, until, start_at, lat, errors)))
        if n % 200 == 199:
            await asyncio.sleep(0.05)  # accept backlog: connect in waves
    await asyncio.gather(*tasks)
    return lat, errors


def generate(args: argparse.Namespace, pid: int) -> dict[str, float | int | str]:
    """Drive the load from `--procs` generator processes; the figures of the measured window."""
    start_at = time.monotonic() + args.ramp
    until = start_at + args.duration
    share = -(-args.stations // args.procs)
    parts = [subprocess.Popen([sys.executable, __file__, "--gen-part",
                               f"{k * share}:{min(args.stations, (k + 1) * share)}:{start_at}:{until}",
                               "--port", str(args.port), "--interval", str(args.interval)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT) for k in range(args.procs)]
    time.sleep(max(0.0, start_at - time.monotonic()))
    cpu0, _ = proc_stats(pid)
    t0 = time.monotonic()
    outputs = [json.loads(p.communicate()[0]) for p in parts]
    t1 = time.monotonic()
    cpu1, rss = proc_stats(pid)
    lat = [x for o in outputs for x in o["lat"]]
    errors = [e for o in outputs for e in o["errors"]]
    window = sorted(d * 1000 for sent, d in lat if start_at <= sent < until)
    rate = len(window) / args.duration
    p99 = window[int(len(window) * 0.99)] if window else float("nan")
    out: dict[str, float | int | str] = {
        "offered": args.stations / args.interval, "rate": rate, "errors": len(errors),
        "p50": statistics.median(window) if window else float("nan"), "p99": p99,
        "max": window[-1] if window else float("nan"),
        "cpu_per_msg_us": (cpu1 - cpu0) / max(1, len(window)) * 1e6, "cpu_share": (cpu1 - cpu0) / (t1 - t0),
        "rss_mib": rss / 2**20, "answered": len(lat) - len([e for e in errors if e.startswith("[4")])}
    print(f"  {args.stations} stations (offered {out['offered']:.0f} msg/s): {rate:.0f} msg/s in the "
          f"{args.duration:.0f} s window, errors {len(errors)}; latency p50 {out['p50']:.1f} ms, p99 {p99:.1f} ms, "
          f"max {out['max']:.1f} ms; server CPU {out['cpu_per_msg_us']:.0f} us/msg "
          f"({out['cpu_share'] * 100:.0f} % of one core), RSS {out['rss_mib']:.0f} MiB")
    for e in sorted(set(errors))[:5]:
        print("    error:", e)
    return out


def run_once(args: argparse.Namespace, db: str | None, old_path: bool, label: str) -> dict[str, float | int | str]:
    """One server (fresh database), one load, the counts."""
    if db == "sqlite":
        import tempfile

        db = f"sqlite:///{tempfile.mkdtemp(prefix='v2gstack-load-')}/csms.db"
    command = [sys.executable, __file__, "--serve", "--port", str(args.port), "--stations", str(args.stations)]
    if db:
        command += ["--db", db] + (["--old-path"] if old_path else [])
    if args.profile:
        command += ["--profile", f"{args.profile}.{label}"]
    print(f"{label}: {'CSMS with storage on ' + db.split('@')[-1].split('/')[0] if db else 'engine only'}",
          flush=True)
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("server did not start")
        out = generate(args, server.pid)
        time.sleep(1.0)  # the last answers are out; their commits are done
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    out["label"] = label
    if db:
        events, distinct, values = stored_events(db)
        ok = events == distinct == out["answered"]
        out.update(stored=events, values=values, exactly_once="yes" if ok else "NO")
        print(f"  storage: {events} TransactionEvents ({distinct} distinct) and {values} sampled values; "
              f"{out['answered']} answered -> {'OK, each exactly once' if ok else 'MISMATCH'}", flush=True)
    return out


def profile_threads(path: str) -> None:
    """cProfile the event loop and every thread started from now on; on SIGTERM write the merged statistics."""
    profiles = [cProfile.Profile()]

    def start(*_: object) -> None:
        sys.setprofile(None)
        p = cProfile.Profile()
        profiles.append(p)
        p.enable()

    threading.setprofile(start)
    profiles[0].enable()

    def dump(*_: object) -> None:
        stats = pstats.Stats(profiles[0])
        for p in profiles[1:]:
            stats.add(p)
        stats.dump_stats(path + ".pstats")
        with open(path + ".txt", "w") as f:
            for key in ("tottime", "cumulative"):
                pstats.Stats(path + ".pstats", stream=f).sort_stats(key).print_stats(45)
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--gen-part", help=argparse.SUPPRESS)
    ap.add_argument("--old-path", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=19876)
    ap.add_argument("--stations", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between a station's TransactionEvents")
    ap.add_argument("--duration", type=float, default=15.0, help="measured seconds")
    ap.add_argument("--ramp", type=float, default=10.0, help="seconds to connect before measuring")
    ap.add_argument("--procs", type=int, default=1, help="load-generator processes")
    ap.add_argument("--db", help="the real CSMS with storage: sqlite (a fresh file) or a scratch postgresql:// URL")
    ap.add_argument("--compare", action="store_true", help="with --db: the write path before batching, then now")
    ap.add_argument("--profile", help="write the CSMS's cProfile statistics to FILE.<run>.txt / .pstats")
    args = ap.parse_args()
    raise_fd_limit()
    if args.gen_part:
        first, last, start_at, until = args.gen_part.split(":")
        lat, errors = asyncio.run(generate_part(args.port, int(first), int(last), args.interval, float(start_at),
                                                float(until)))
        json.dump({"lat": lat, "errors": errors}, sys.stdout)
        return 0
    if args.serve:
        if args.profile:
            profile_threads(args.profile)
        else:
            signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        asyncio.run(serve_csms(args.port, args.db, args.stations, args.old_path) if args.db else serve(args.port))
        return 0
    if args.compare and not args.db:
        ap.error("--compare needs --db")
    runs = [run_once(args, args.db, True, "old")] if args.compare else []
    runs.append(run_once(args, args.db, False, "new" if args.compare else "run"))
    if args.compare:
        old, new = runs
        print(f"new/old: throughput {float(new['rate']) / float(old['rate']):.2f}x, "
              f"p99 {float(new['p99']) / float(old['p99']):.2f}x, "
              f"CPU per message {float(new['cpu_per_msg_us']) / float(old['cpu_per_msg_us']):.2f}x")
    return 0 if all(r.get("exactly_once", "yes") == "yes" for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
