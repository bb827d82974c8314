"""Load run: N simulated OCPP 2.0.1 stations on loopback against one v2gstack OCPP server process.

The server (this file with --serve) runs OcppServer with a CSMS router answering Heartbeat and TransactionEvent
(with meter values) through the full engine: schema validation of every CALL and CALLRESULT. The load generator
opens N websocket connections (profile 1, Basic auth) from one process and makes every station send a
TransactionEvent every `--interval` seconds, spread evenly (open loop: each send has a due time, and its latency is
taken from that time to the CALLRESULT, so a late answer that delays the next send is counted, not hidden); it
reports messages/s offered and answered, latency p50/p99/max, the server's CPU time and RSS, the generators' CPU,
the host's CPU steal, and with storage the server's commits, garbage collections and event-loop stalls.
The generator shares the machine's cores with the server, so on a
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

`--mix` runs a fleet instead (bench/ocpp_fleet.py): `--nodes` CSMS nodes (`Csms` with a node id: owner records,
boot admission) on a fresh PostgreSQL database made with `--pg-admin` and dropped afterwards; `--procs` generator
processes, one asyncio loop each, open the stations' websockets from several 127.0.0.x source addresses at
`--ramp-rate` per second; each station boots (obeying Pending intervals and 503 Retry-After), reports its connector
and runs a realistic mix: Heartbeats at the interval of its BootNotificationResponse, transactions (Started, Updated
with meter values every `--meter-interval`, Ended) a `--busy` share of the time with StatusNotifications at each end;
`--outage` drops every connection at once after the measured window (everyone loses the connection at the same
instant and reconnects by OCPP's back-off rule, `--retry-min/--retry-range/--retry-repeat`, then boots). Reported:
time until every station is Accepted (first connection, after the outage), Pending answers and
503s, p50/p99/max per action in the window and after the outage, msg/s, CPU (share of a core, us per message) and
RSS (and KiB per station) of every node, of PostgreSQL and of the generators, read from /proc.

    .venv/bin/python bench/ocpp_load.py --mix --stations 10000 --nodes 2 --procs 2 --outage --boot-rate 150
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import json
import os
import pstats
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import websockets

from v2gstack.csms.admission import raise_fd_limit

PASSWORD = "load-test-password-0001"
ROOT = Path(__file__).resolve().parent.parent


class Tail:
    """Where a CSMS's latency tail can come from, sampled in the server with their monotonic times: each commit
    (operations, seconds on the database thread), each garbage collection (generation, pause), each event-loop stall
    (a 5 ms timer that fired late by more than 2 ms). Printed as one JSON line when the server is stopped."""

    def __init__(self) -> None:
        self.commits: list[tuple[float, int, float, float]] = []  # (when, operations, seconds, of which COMMIT)
        self._commit_started = 0.0
        self.gcs: list[tuple[float, int, float]] = []
        self.stalls: list[tuple[float, float]] = []
        self._gc_started = 0.0

    def attach(self, worker: Any) -> None:
        """Sample this worker's commits, the process's collections and the running loop's stalls."""
        import gc

        from sqlalchemy import event as sa_event

        def before_commit(_conn: Any) -> None:
            if threading.current_thread().name == "csms-store":
                self._commit_started = time.perf_counter()

        def committed(n: int, secs: float) -> None:
            self.commits.append((time.monotonic(), n, secs, time.perf_counter() - self._commit_started))

        sa_event.listen(worker.store.engine, "commit", before_commit)
        worker.commit_listeners.append(committed)
        gc.callbacks.append(self._gc)
        self._watch = asyncio.get_running_loop().create_task(self._watch_loop())

    def detach(self) -> None:
        """Stop sampling collections and stalls."""
        import gc

        gc.callbacks.remove(self._gc)
        self._watch.cancel()

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._gc_started = now
        else:
            self.gcs.append((time.monotonic(), info["generation"], now - self._gc_started))

    async def _watch_loop(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.005)
            late = time.monotonic() - t - 0.005
            if late > 0.002:
                self.stalls.append((t, late))

    def dump(self) -> None:
        print(json.dumps({"commits": self.commits, "gcs": self.gcs, "stalls": self.stalls}), flush=True)


TAIL = Tail()


async def serve_csms(port: int, db: str, stations: int, old_path: bool = False) -> None:
    """The system under test with storage: the v2gstack CSMS on a fresh database with `stations` registered."""
    from sqlalchemy import insert

    from v2gstack.csms.models import Base, Station
    from v2gstack.csms.service import Csms, CsmsConfig
    from v2gstack.csms.store import Store, hash_password
    from v2gstack.heap import freeze_startup_heap
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
        if csms.worker.wal is not None:  # and the WAL copied back inside the commits
            csms.worker.wal.close()
            csms.worker.wal = None
    TAIL.attach(csms.worker)
    await csms.start("127.0.0.1", port)
    if not old_path:
        freeze_startup_heap()  # as `v2gstack csms serve` does once started
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
    """One station, open loop: its k-th TransactionEvent is due at a fixed time (a random phase + k * interval).

    The latency is taken from that due time, not from when the CALL actually left: a station waits for each answer
    before its next CALL (OCPP), so a slow answer delays the following sends, and measuring from the send would hide
    that wait (coordinated omission). Sends due after `until` are not made; one due in the window is sent however
    late it is.
    """
    auth = base64.b64encode(f"LOAD-{i}:{PASSWORD}".encode()).decode()
    try:
        async with websockets.connect(f"{url}/LOAD-{i}", subprotocols=["ocpp2.0.1"],
                                      additional_headers={"Authorization": f"Basic {auth}"},
                                      ping_interval=None, open_timeout=120, max_size=2**20) as ws:
            due = start_at + random.random() * interval
            seq = 0
            while due < until:
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await ws.send(json.dumps([2, f"{i}-{seq}", "TransactionEvent", event(i, seq)]))
                reply = json.loads(await ws.recv())
                if reply[0] != 3:
                    errors.append(str(reply)[:200])
                lat.append((due, time.monotonic() - due))
                seq += 1
                due += interval
    except Exception as e:  # a refused or dropped connection is a result, not a crash of the generator
        errors.append(f"{type(e).__name__}: {e}"[:200])


def stolen() -> float:
    """CPU seconds the hypervisor has taken from this virtual machine since boot (all CPUs; /proc/stat steal)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK") if len(fields) > 8 else 0.0


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


async def generate_part(port: int, first: int, last: int, interval: float, start_at: float,
                        until: float) -> dict[str, Any]:
    """Stations first..last-1 of the run, connected in waves, sending until `until` (monotonic clock); the
    latencies, the errors and this generator process's own CPU seconds while it sent."""
    url = f"ws://127.0.0.1:{port}/ocpp"
    lat: list[tuple[float, float]] = []
    errors: list[str] = []
    tasks = []
    for n, i in enumerate(range(first, last)):
        tasks.append(asyncio.create_task(station(i, url, interval, until, start_at, lat, errors)))
        if n % 200 == 199:
            await asyncio.sleep(0.05)  # accept backlog: connect in waves
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    cpu0 = time.process_time()
    await asyncio.gather(*tasks)
    return {"lat": lat, "errors": errors, "cpu": time.process_time() - cpu0}


def quantile(values: list[float], q: float) -> float:
    """The q-quantile of sorted values (nan when empty)."""
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def generate(args: argparse.Namespace, pid: int) -> dict[str, Any]:
    """Drive the load from `--procs` generator processes; the figures of the measured window.

    Offered: the sends due in the window. Achieved: the answers that arrived in the window. Latency: from each
    due time to its answer, for the sends due in the window (bench/ocpp_load.py: station).
    """
    start_at = time.monotonic() + args.ramp
    until = start_at + args.duration
    share = -(-args.stations // args.procs)
    parts = [subprocess.Popen([sys.executable, __file__, "--gen-part",
                               f"{k * share}:{min(args.stations, (k + 1) * share)}:{start_at}:{until}",
                               "--port", str(args.port), "--interval", str(args.interval)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT) for k in range(args.procs)]
    time.sleep(max(0.0, start_at - time.monotonic()))
    cpu0, _ = proc_stats(pid)
    t0, steal0 = time.monotonic(), stolen()
    outputs = [json.loads(p.communicate()[0]) for p in parts]
    t1, steal1 = time.monotonic(), stolen()
    cpu1, rss = proc_stats(pid)
    lat = [x for o in outputs for x in o["lat"]]
    errors = [e for o in outputs for e in o["errors"]]
    window = sorted(d * 1000 for due, d in lat if start_at <= due < until)
    rate = sum(1 for due, d in lat if start_at <= due + d < until) / args.duration
    p99 = quantile(window, 0.99)
    out: dict[str, Any] = {
        "offered": len(window) / args.duration, "rate": rate, "errors": len(errors),
        "p50": statistics.median(window) if window else float("nan"), "p99": p99,
        "max": window[-1] if window else float("nan"),
        "cpu_per_msg_us": (cpu1 - cpu0) / max(1, len(window)) * 1e6, "cpu_share": (cpu1 - cpu0) / (t1 - t0),
        "gen_cpu_share": sum(o["cpu"] for o in outputs) / (t1 - t0), "steal": (steal1 - steal0) / (t1 - t0) / 2,
        "rss_mib": rss / 2**20, "answered": len(lat) - len([e for e in errors if e.startswith("[4")]),
        "start": start_at, "until": until}
    print(f"  {args.stations} stations, offered {out['offered']:.0f} msg/s (sends due in the {args.duration:.0f} s "
          f"window), answered {rate:.0f} msg/s in it, errors {len(errors)}; latency from the due time p50 "
          f"{out['p50']:.1f} ms, p99 {p99:.1f} ms, max {out['max']:.1f} ms; CSMS CPU {out['cpu_per_msg_us']:.0f} "
          f"us/msg ({out['cpu_share'] * 100:.0f} % of one core), RSS {out['rss_mib']:.0f} MiB; generators "
          f"{out['gen_cpu_share'] * 100:.0f} % of one core; the host took {out['steal'] * 100:.0f} % of the 2 vCPUs "
          f"(steal), load average {os.getloadavg()[0]:.1f}", flush=True)
    for e in sorted(set(errors))[:5]:
        print("    error:", e)
    return out


def tail_summary(samples: dict[str, list[list[float]]], start: float, until: float) -> dict[str, float]:
    """The server's commits, collections and loop stalls inside the measured window, summed up."""
    commits = [c for c in samples["commits"] if start <= c[0] < until]
    secs = sorted(c[2] * 1000 for c in commits)
    fsync = sorted(c[3] * 1000 for c in commits)
    gcs = [g for g in samples["gcs"] if start <= g[0] < until]
    stalls = sorted(x[1] * 1000 for x in samples["stalls"] if start <= x[0] < until)
    return {"commits": len(commits), "per_commit": sum(c[1] for c in commits) / max(1, len(commits)),
            "commit_p50": quantile(secs, 0.5), "commit_p99": quantile(secs, 0.99), "commit_max": quantile(secs, 1),
            "sync_p50": quantile(fsync, 0.5), "sync_p99": quantile(fsync, 0.99), "sync_max": quantile(fsync, 1),
            "gc": len(gcs), "gc2": sum(1 for g in gcs if g[1] == 2),
            "gc_max": max((g[2] * 1000 for g in gcs), default=0.0), "gc_total": sum(g[2] for g in gcs) * 1000,
            "stalls": len(stalls), "stall_max": quantile(stalls, 1) if stalls else 0.0,
            "stall_total": sum(stalls)}


def run_once(args: argparse.Namespace, db: str | None, old_path: bool, label: str) -> dict[str, Any]:
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
        rest = server.communicate(timeout=60)[0]
    out["label"] = label
    if rest.strip() and not args.profile:
        t = tail_summary(json.loads(rest.strip().splitlines()[-1]), out["start"], out["until"])
        out["tail"] = t
        print(f"  CSMS in the window: {t['commits']} commits of {t['per_commit']:.1f} operations, commit (statements "
              f"+ COMMIT) p50 {t['commit_p50']:.1f} / p99 {t['commit_p99']:.1f} / max {t['commit_max']:.1f} ms, of "
              f"which COMMIT p50 {t['sync_p50']:.1f} / p99 {t['sync_p99']:.1f} / max {t['sync_max']:.1f} ms; "
              f"{t['gc']} collections ({t['gc2']} full), longest {t['gc_max']:.1f} ms, {t['gc_total']:.0f} ms in all; "
              f"{t['stalls']} loop stalls > 2 ms, longest {t['stall_max']:.1f} ms, {t['stall_total']:.0f} ms in all",
              flush=True)
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


# ----- the fleet: a realistic mix over several CSMS nodes (--mix) -----


def prepare_cluster_db(db: str, stations: int, scrypt_n: int) -> None:
    """A fresh schema in the scratch database with `stations` registered (passwords hashed with scrypt n)."""
    from sqlalchemy import insert

    from v2gstack.csms import ownership  # noqa: F401  (its table is part of the schema)
    from v2gstack.csms.models import Base, Station
    from v2gstack.csms.store import Store, hash_password

    store = Store(db)
    try:
        Base.metadata.drop_all(store.engine)
        Base.metadata.create_all(store.engine)
        hashed = hash_password(PASSWORD, n=scrypt_n)
        with store.session() as s:
            for k in range(0, stations, 10000):
                s.execute(insert(Station), [{"id": f"LOAD-{i}", "password_hash": hashed, "security_profile": 1,
                                             "connector_status": {}} for i in range(k, min(stations, k + 10000))])
    finally:
        store.close()


async def serve_node(args: argparse.Namespace) -> None:
    """One CSMS node of the fleet run (`--node-id`): the stations are registered already; on SIGTERM it prints its
    admission counters."""
    from v2gstack.csms.admission import AdmissionPolicy
    from v2gstack.csms.service import Csms, CsmsConfig
    from v2gstack.csms.store import Store
    from v2gstack.ocpp.throttle import ThrottlePolicy

    csms = Csms(Store(args.db), CsmsConfig(
        security_profile=1, ping_interval=None, log_session_messages=False, node_id=args.node_id,
        heartbeat_interval=args.heartbeat, auth_throttle=ThrottlePolicy(verify_rate=1e6, verify_burst=10**6),
        admission=AdmissionPolicy(boot_rate=args.boot_rate, boot_burst=args.boot_burst),
        max_handshakes=args.max_handshakes or None, max_connections=args.max_connections or None))
    await csms.start("127.0.0.1", args.port)
    loop = asyncio.get_running_loop()
    profiler = None
    if args.profile:  # CPU time of the event-loop thread (bench/refusal_cost.py): what a handshake costs, not the waits
        profiler = cProfile.Profile(time.thread_time)
        profiler.enable()

    def stop() -> None:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        print(json.dumps({"admitted": csms.admission.admitted, "deferred": csms.admission.deferred,
                          "refused_busy": csms.server.refused_busy, "connections": len(csms.server.connections),
                          "db_batches": csms.worker.batches, "db_operations": csms.worker.operations}), flush=True)
        os._exit(0)

    loop.add_signal_handler(signal.SIGTERM, stop)
    print("ready", flush=True)
    await asyncio.Event().wait()


class Sampler(threading.Thread):
    """CPU seconds and RSS of labelled processes (and of all PostgreSQL server processes), every `period` s."""

    def __init__(self, pids: dict[str, int], period: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.period = period
        self.samples: list[tuple[float, dict[str, tuple[float, int]]]] = []
        self.halt = threading.Event()

    def snap(self) -> dict[str, tuple[float, int]]:
        out: dict[str, tuple[float, int]] = {}
        for label, pid in self.pids.items():
            with contextlib.suppress(OSError, IndexError):
                out[label] = proc_stats(pid)
        cpu, rss = 0.0, 0
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    if (d / "comm").read_text().startswith("postgres"):
                        c, r = proc_stats(int(d.name))
                        cpu, rss = cpu + c, rss + r
                except (OSError, IndexError):
                    pass
        out["postgresql"] = (cpu, rss)
        return out

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append((time.monotonic(), self.snap()))
            self.halt.wait(self.period)

    def at(self, t: float) -> dict[str, tuple[float, int]]:
        """The sample nearest to time t."""
        return min(self.samples, key=lambda s: abs(s[0] - t))[1]

    def peak_rss(self, label: str, t0: float, t1: float) -> int:
        return max((snap[label][1] for t, snap in self.samples if t0 <= t <= t1 and label in snap), default=0)


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def latency_table(lat: dict[str, list[list[float]]], t0: float, t1: float) -> dict[str, dict[str, float]]:
    """Per action and all together: count, p50/p99/max in ms of the CALLs sent in [t0, t1)."""
    table: dict[str, dict[str, float]] = {}
    every: list[float] = []
    for action, rows in sorted(lat.items()):
        ms = sorted(d * 1000 for sent, d, _ in rows if t0 <= sent < t1)
        every += ms
        if ms:
            table[action] = {"n": len(ms), "p50": statistics.median(ms), "p99": pct(ms, 0.99), "max": ms[-1]}
    every.sort()
    if every:
        table["all"] = {"n": len(every), "p50": statistics.median(every), "p99": pct(every, 0.99), "max": every[-1]}
    return table


def print_latencies(title: str, table: dict[str, dict[str, float]], seconds: float) -> None:
    print(f"  {title}:")
    for action, row in table.items():
        print(f"    {action:<20} {row['n']:>8.0f} ({row['n'] / seconds:7.1f}/s)  p50 {row['p50']:7.1f} ms  "
              f"p99 {row['p99']:8.1f} ms  max {row['max']:8.1f} ms")


def fleet_run(args: argparse.Namespace) -> int:
    """Nodes on a fresh PostgreSQL database, generator processes, the mix, an outage; the report.

    Every node and generator runs in its own session, as separate services would: with the kernel's scheduler
    autogroups (one per session) the processes of one session share one group's CPU share, whatever their nice."""
    import psycopg
    from ocpp_fleet import Plan

    name = f"v2gstack_load_{os.getpid()}"
    admin = args.pg_admin
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = admin.rsplit("/", 1)[0] + f"/{name}"
    nodes: list[subprocess.Popen[str]] = []
    parts: list[subprocess.Popen[str]] = []
    try:
        t = time.monotonic()
        prepare_cluster_db(db, args.stations, args.scrypt_n)
        print(f"{args.stations} stations registered in {time.monotonic() - t:.1f} s; starting {args.nodes} nodes",
              flush=True)
        ports = [args.port + k for k in range(args.nodes)]
        for k, port in enumerate(ports):
            nodes.append(subprocess.Popen(
                [sys.executable, __file__, "--serve-node", "--db", db, "--port", str(port), "--node-id", f"node-{k}",
                 "--heartbeat", str(args.heartbeat), "--boot-rate", str(args.boot_rate),
                 "--boot-burst", str(args.boot_burst), "--max-handshakes", str(args.max_handshakes)],
                stdout=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True))
        for node in nodes:
            assert node.stdout is not None
            if node.stdout.readline().strip() != "ready":
                raise SystemExit("a node did not start")
        pids = {f"node-{k}": n.pid for k, n in enumerate(nodes)}
        sampler = Sampler(pids)
        idle = sampler.snap()
        start_at = time.monotonic() + 2.0
        ramp_s = args.stations / args.ramp_rate if args.ramp_rate > 0 else 0.0
        win0 = start_at + ramp_s + args.settle
        win1 = win0 + args.duration
        outage_at = win1 if args.outage else 0.0
        until = (outage_at + args.storm_wait) if args.outage else win1
        share = -(-args.stations // args.procs)
        for k in range(args.procs):
            plan = Plan(first=k * share, last=min(args.stations, (k + 1) * share), ports=ports, sources=args.sources,
                        start_at=start_at, ramp_rate=args.ramp_rate / args.procs, outage_at=outage_at, until=until,
                        meter_interval=args.meter_interval, busy=args.busy, session_s=args.session,
                        retry_min=args.retry_min, retry_range=args.retry_range, retry_repeat=args.retry_repeat)
            parts.append(subprocess.Popen([sys.executable, __file__, "--fleet-part", json.dumps(plan.__dict__)],
                                          stdout=subprocess.PIPE, text=True, cwd=ROOT, start_new_session=True))
            pids[f"generator-{k}"] = parts[-1].pid
        sampler.start()
        outputs = [json.loads(p.communicate()[0]) for p in parts]
        sampler.halt.set()
        end = time.monotonic()
        counters = []
        for node in nodes:
            node.send_signal(signal.SIGTERM)
            counters.append(json.loads(node.communicate(timeout=60)[0] or "{}"))
        return fleet_report(args, outputs, counters, sampler, idle, start_at, win0, win1, outage_at, end)
    finally:
        for proc in nodes + parts:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fleet_report(args: argparse.Namespace, outputs: list[dict], counters: list[dict], sampler: Sampler,
                 idle: dict[str, tuple[float, int]], start_at: float, win0: float, win1: float, outage_at: float,
                 end: float) -> int:
    """Print the phases: the first connection storm, the measured window, the outage's boot storm."""
    lat: dict[str, list[list[float]]] = {}
    for o in outputs:
        for action, rows in o["lat"].items():
            lat.setdefault(action, []).extend(rows)
    counts: dict[str, int] = {}
    errors: dict[str, int] = {}
    for o in outputs:
        for k, v in o["counts"].items():
            counts[k] = counts.get(k, 0) + v
        for k, v in o["errors"].items():
            errors[k] = errors.get(k, 0) + v
    n = args.stations
    print(f"\n{n} stations over {args.nodes} nodes (PostgreSQL), {args.procs} generator processes, "
          f"{args.sources} source addresses; boot admission {args.boot_rate or 'off'}/s")
    result: dict[str, object] = {"stations": n, "nodes": args.nodes, "procs": args.procs, "counts": counts,
                                 "errors": errors, "nodes_counters": counters}
    for r, label, t0 in ((0, "first connection", start_at), (1, "outage boot storm", outage_at)):
        if r == 1 and not outage_at:
            continue
        acc = sorted(t for o in outputs for rr, t in o["accepted"] if rr == r)
        con = sorted(t for o in outputs for rr, t in o["connected"] if rr == r)
        t_all = (acc[-1] - t0) if len(acc) >= n else float("nan")
        t_end = acc[-1] if acc else t0
        peak = {lbl: sampler.peak_rss(lbl, t0, t_end + 1) / 2**20 for lbl in sampler.pids if lbl.startswith("node")}
        cpu0, cpu1 = sampler.at(t0), sampler.at(t_end)
        cpu = {lbl: cpu1[lbl][0] - cpu0[lbl][0] for lbl in cpu1 if lbl in cpu0}
        marks = {f"{q}%": acc[int(n * q / 100) - 1] - t0 for q in (50, 90, 99) if len(acc) >= n * q / 100}
        print(f"  {label}: Accepted after " + ", ".join(f"{k} {v:.0f} s" for k, v in marks.items()) + ";")
        print(f"  {label}: {len(acc)}/{n} Accepted, all in {t_all:.1f} s (connected {len(con)}); "
              f"peak RSS per node {', '.join(f'{v:.0f}' for v in peak.values())} MiB; CPU s "
              + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
        result[f"storm{r}"] = {"accepted": len(acc), "all_accepted_s": t_all, "marks_s": marks, "peak_rss_mib": peak,
                               "cpu_s": cpu}
    print(f"  Pending answers (boot admission): {counts.get('boot_Pending', 0)}, longest interval told "
          f"{max(o['max_hint'] for o in outputs)} s; handshakes refused 503: {counts.get('http_503', 0)}, 429: "
          f"{counts.get('http_429', 0)}")
    acc0 = [t for o in outputs for rr, t in o["accepted"] if rr == 0]
    if len(acc0) >= n and max(acc0) + args.settle > win0:  # the ramp took longer than planned: measure after it
        win0 = min(max(acc0) + args.settle, win1 - 5.0)
        print(f"  (the first connections took longer than planned: the window starts {args.settle:.0f} s after them)")
    in_before = sum(1 for t in acc0 if t < win0)
    result["accepted_before_window"] = in_before
    if in_before < n:  # the nodes did not admit the ramp in time: the window is not the steady mix of n stations
        print(f"  (NOT a steady window: {in_before} of {n} stations were Accepted when it started and the others were "
              "still connecting during it; a lower --ramp-rate or a longer --settle gives the steady mix)")
    seconds = win1 - win0
    table = latency_table(lat, win0, win1)
    print_latencies(f"measured window ({seconds:.0f} s after the ramp)", table, seconds)
    s0, s1 = sampler.at(win0), sampler.at(win1)
    msgs = table.get("all", {}).get("n", 0.0)
    per_node_msgs = [sum(1 for rows in lat.values() for sent, _, node in rows if win0 <= sent < win1 and node == k)
                     for k in range(args.nodes)]
    nodes = {}
    for k in range(args.nodes):
        lbl = f"node-{k}"
        cpu = s1[lbl][0] - s0[lbl][0]
        conns = n / args.nodes
        nodes[lbl] = {"cpu_share": cpu / seconds, "cpu_us_per_msg": cpu / max(1, per_node_msgs[k]) * 1e6,
                      "rss_mib": s1[lbl][1] / 2**20, "rss_idle_mib": idle[lbl][1] / 2**20,
                      "kib_per_station": (s1[lbl][1] - idle[lbl][1]) / conns / 1024, "msgs": per_node_msgs[k]}
        print(f"    {lbl}: {per_node_msgs[k] / seconds:.0f} msg/s, CPU {cpu / seconds * 100:.0f} % of a core, "
              f"{nodes[lbl]['cpu_us_per_msg']:.0f} us/msg; RSS {nodes[lbl]['rss_mib']:.0f} MiB (idle "
              f"{nodes[lbl]['rss_idle_mib']:.0f}: {nodes[lbl]['kib_per_station']:.1f} KiB per station)")
    gen_cpu = sum(s1[lbl][0] - s0[lbl][0] for lbl in s1 if lbl.startswith("generator"))
    gen_rss = sum(s1[lbl][1] for lbl in s1 if lbl.startswith("generator"))
    pg_cpu = s1["postgresql"][0] - s0["postgresql"][0]
    print(f"    PostgreSQL (all server processes): CPU {pg_cpu / seconds * 100:.0f} % of a core, "
          f"{pg_cpu / max(1, msgs) * 1e6:.0f} us/msg; generators: CPU {gen_cpu / seconds * 100:.0f} % of a core, "
          f"RSS {gen_rss / 2**20:.0f} MiB")
    result.update(window_s=seconds, latency=table, per_node=nodes, pg_cpu_us_per_msg=pg_cpu / max(1, msgs) * 1e6,
                  generator_cpu_share=gen_cpu / seconds, rate=msgs / seconds)
    if outage_at:
        after = latency_table(lat, outage_at, end)
        print_latencies(f"from the outage to the end ({end - outage_at:.0f} s)", after, end - outage_at)
        result["after_outage"] = after
    print("  node counters:", counters)
    print(f"  errors: {sum(errors.values())}")
    for e, c in sorted(errors.items(), key=lambda kv: -kv[1])[:8]:
        print(f"    {c} x {e}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0 if not errors else 1


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
    fleet = ap.add_argument_group("the fleet (--mix): stations with a realistic message mix over several nodes")
    fleet.add_argument("--mix", action="store_true", help="run the fleet: --nodes CSMS nodes on a fresh PostgreSQL")
    fleet.add_argument("--nodes", type=int, default=2)
    fleet.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres",
                       help="a PostgreSQL URL allowed to create the scratch database (dropped after the run)")
    fleet.add_argument("--ramp-rate", type=float, default=300.0, help="connections per second (0: all at once)")
    fleet.add_argument("--settle", type=float, default=10.0, help="seconds after the ramp before measuring")
    fleet.add_argument("--sources", type=int, default=4, help="source addresses 127.0.0.1..N")
    fleet.add_argument("--heartbeat", type=int, default=300, help="the CSMS's HeartbeatInterval (s)")
    fleet.add_argument("--meter-interval", type=float, default=60.0, help="s between a transaction's meter values")
    fleet.add_argument("--busy", type=float, default=0.2, help="share of time a station is charging")
    fleet.add_argument("--session", type=float, default=1800.0, help="mean transaction length (s)")
    fleet.add_argument("--outage", action="store_true", help="after the window: every connection dropped at once")
    fleet.add_argument("--storm-wait", type=float, default=120.0, help="seconds run after the outage")
    fleet.add_argument("--retry-min", type=float, default=3.0,
                       help="the stations' RetryBackOffWaitMinimum (s): reconnect wait = min * 2^attempt + random")
    fleet.add_argument("--retry-range", type=float, default=10.0, help="their RetryBackOffRandomRange (s)")
    fleet.add_argument("--retry-repeat", type=int, default=5, help="their RetryBackOffRepeatTimes")
    fleet.add_argument("--boot-rate", type=float, default=0.0, help="node admission: Accepted boots per second")
    fleet.add_argument("--boot-burst", type=int, default=50)
    fleet.add_argument("--max-handshakes", type=int, default=64, help="node admission: handshakes at once (0: any)")
    fleet.add_argument("--max-connections", type=int, default=0, help="node admission: sockets (0: fd limit)")
    fleet.add_argument("--scrypt-n", type=int, default=2**10, help="cost of the stations' password hashes")
    fleet.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--serve-node", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--node-id", help=argparse.SUPPRESS)
    ap.add_argument("--fleet-part", help=argparse.SUPPRESS)
    args = ap.parse_args()
    raise_fd_limit()
    if args.fleet_part:
        from ocpp_fleet import Plan, run_part

        json.dump(run_part(Plan(**json.loads(args.fleet_part))), sys.stdout)
        return 0
    if args.serve_node:
        asyncio.run(serve_node(args))
        return 0
    if args.mix:
        return fleet_run(args)
    if args.gen_part:
        first, last, start_at, until = args.gen_part.split(":")
        json.dump(asyncio.run(generate_part(args.port, int(first), int(last), args.interval, float(start_at),
                                            float(until))), sys.stdout)
        return 0
    if args.serve:
        if args.profile:
            profile_threads(args.profile)
        else:
            signal.signal(signal.SIGTERM, lambda *_: (TAIL.dump(), os._exit(0)))
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
