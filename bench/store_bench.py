"""The CSMS's durable write path alone: TransactionEvents through the StoreWorker, the path before batch forms and
the batched one in the same run, on SQLite and/or PostgreSQL.

No websockets here (bench/ocpp_load.py measures the whole CSMS): asyncio tasks play the stations' handlers and await
`worker.run(op_record_event_and_authorize, ...)`, which returns once the event's transaction has committed. Two
loads per path: closed loop (N stations each sending its next event when the previous is committed: the most the
path can store per second) and open loop (events offered at a fixed rate, spread evenly: the latency a station sees
at that rate, from each event's due time). The batched path runs with the WAL checkpointer and the frozen start-up
heap of `v2gstack csms serve`; the path before with neither.
Then it counts the rows: every acknowledged event is in the database exactly once.

    .venv/bin/python bench/store_bench.py --db sqlite --db postgresql://postgres@127.0.0.1:5432/v2gstack_bench
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ocpp_load import Tail, event, proc_stats, stolen, stored_events, tail_summary
from sqlalchemy import insert

from v2gstack.csms.models import Base, Station
from v2gstack.csms.store import Store, op_record_event_and_authorize
from v2gstack.csms.worker import StoreWorker
from v2gstack.heap import freeze_startup_heap


def fresh(db: str, stations: int) -> str:
    """A fresh database (a new SQLite file, or the scratch PostgreSQL database emptied) with the stations."""
    url = f"sqlite:///{tempfile.mkdtemp(prefix='v2gstack-store-')}/csms.db" if db == "sqlite" else db
    store = Store(url)
    Base.metadata.drop_all(store.engine)
    Base.metadata.create_all(store.engine)
    with store.session() as s:
        s.execute(insert(Station), [{"id": f"LOAD-{i}", "connector_status": {}} for i in range(stations)])
    store.close()
    return url


async def closed_loop(worker: StoreWorker, stations: int, seconds: float, seq: list[int]) -> tuple[int, list[float]]:
    """Every station sends its next event as soon as the previous one is committed."""
    lat: list[float] = []
    until = time.monotonic() + seconds

    async def station(i: int) -> None:
        while time.monotonic() < until:
            t0 = time.perf_counter()
            await worker.run(op_record_event_and_authorize, f"LOAD-{i}", event(i, seq[i]))
            lat.append(time.perf_counter() - t0)
            seq[i] += 1

    await asyncio.gather(*(station(i) for i in range(stations)))
    return len(lat), lat


async def open_loop(worker: StoreWorker, stations: int, rate: float, seconds: float,
                    seq: list[int], tail: Tail) -> list[float]:
    """`rate` events per second over the stations, each station every stations/rate seconds; the latency of each
    event from the time it was due (not from when it was sent: no coordinated omission)."""
    lat: list[float] = []
    interval = stations / rate
    start = time.monotonic()
    until = start + seconds
    tail.attach(worker)

    async def station(i: int) -> None:
        due = start + interval * i / stations
        while due < until:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            await worker.run(op_record_event_and_authorize, f"LOAD-{i}", event(i, seq[i]))
            lat.append(time.monotonic() - due)  # from when it was due: a late answer delays the next send
            seq[i] += 1
            due += interval

    await asyncio.gather(*(station(i) for i in range(stations)))
    tail.detach()
    return lat


class ServerCpu:
    """CPU seconds of the PostgreSQL server processes serving this database (its backends, read from /proc: the server
    runs on this machine), so a run can say how much of each event's cost is the client's and how much the server's.
    A backend that ends between two samples is lost (the worker's pooled connections live through a run)."""

    def __init__(self, url: str) -> None:
        self.url = url if url.startswith("postgresql") else None
        self.seen: dict[int, float] = {}

    def sample(self) -> float:
        """Seconds used so far by the backends seen (ones seen before and gone keep their last value)."""
        if self.url is None:
            return 0.0
        import psycopg

        with psycopg.connect(self.url) as conn:
            pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                               " AND pid <> pg_backend_pid()")]
        for pid in pids:
            with contextlib.suppress(OSError):  # ended meanwhile
                self.seen[pid] = proc_stats(pid)[0]
        return sum(self.seen.values())

    def checkpoints(self) -> int:
        """Checkpoints the server has made so far (any database's: a DROP DATABASE elsewhere forces one, and its
        flood of writes and the full-page images after it reach every commit's fsync)."""
        if self.url is None:
            return 0
        import psycopg

        with psycopg.connect(self.url) as conn:
            row = conn.execute("SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter").fetchone()
        return int(row[0]) if row else 0


def ms(lat: list[float], q: float) -> float:
    s = sorted(lat)
    return s[min(len(s) - 1, int(len(s) * q))] * 1000 if s else float("nan")


def run(db: str, batched: bool, args: argparse.Namespace) -> dict[str, Any]:
    url = fresh(db, args.stations)
    store = Store(url)
    worker = StoreWorker(store, batch_forms=batched, wal_checkpointer=batched)
    tail = Tail()
    seq = [0] * args.stations
    server = ServerCpu(url)
    try:
        worker.submit(lambda s: s.connection()).result()  # the writer's connection open before the first sample
        srv0, cpu0, t0 = server.sample(), time.process_time(), time.monotonic()
        n, closed = asyncio.run(closed_loop(worker, args.stations, args.seconds, seq))
        cpu1, t1, srv1 = time.process_time(), time.monotonic(), server.sample()
        if batched:
            freeze_startup_heap()  # as `v2gstack csms serve` does once started
        t2, steal2, ckpt2 = time.monotonic(), stolen(), server.checkpoints()
        opened = asyncio.run(open_loop(worker, args.stations, args.rate, args.seconds, seq, tail))
        t3, steal3, ckpt3 = time.monotonic(), stolen(), server.checkpoints()
    finally:
        worker.close()
        store.close()
    events, distinct, values = stored_events(url)
    acked = sum(seq)
    return {"db": "SQLite" if db == "sqlite" else "PostgreSQL", "path": "batched" if batched else "before",
            "max_per_s": n / (t1 - t0), "closed_p99": ms(closed, 0.99), "cpu_us": (cpu1 - cpu0) / n * 1e6,
            "server_us": (srv1 - srv0) / n * 1e6,
            "batch": worker.operations / max(1, worker.batches), "rate": args.rate,
            "open_p50": statistics.median(opened) * 1000, "open_p99": ms(opened, 0.99), "open_max": ms(opened, 1),
            "acked": acked, "stored": events, "exactly_once": events == distinct == acked, "values": values,
            "steal": (steal3 - steal2) / (t3 - t2) / 2, "checkpoints": ckpt3 - ckpt2, "load": os.getloadavg()[0],
            "tail": tail_summary({"commits": tail.commits, "gcs": tail.gcs, "stalls": tail.stalls}, t2, t3)}


def server_us(r: dict[str, Any]) -> str:
    """The database server's CPU per event, or '-' for SQLite (the server is the process itself)."""
    return f"{r['server_us']:.0f} us" if r["db"] == "PostgreSQL" else "-"


def server_ratio(new: dict[str, Any], old: dict[str, Any]) -> str:
    return f"{new['server_us'] / old['server_us']:.2f}x" if new["db"] == "PostgreSQL" and old["server_us"] else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", action="append", help="sqlite (a fresh file) or a scratch postgresql:// URL (emptied)")
    ap.add_argument("--stations", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of each load")
    ap.add_argument("--rate", type=float, default=2000.0, help="events/s of the open-loop load")
    ap.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = ap.parse_args()
    results = []
    print("| database | write path | most events/s (closed loop) | events per commit | process CPU per event | "
          f"database server CPU per event | p50 / p99 / max at {args.rate:.0f}/s | acknowledged = stored, once |")
    print("|---|---|---|---|---|---|---|---|")
    for db in args.db or ["sqlite"]:
        for batched in (False, True):
            r = run(db, batched, args)
            results.append(r)
            print(f"| {r['db']} | {r['path']} | {r['max_per_s']:,.0f} | {r['batch']:.0f} | {r['cpu_us']:.0f} us | "
                  f"{server_us(r)} | "
                  f"{r['open_p50']:.1f} / {r['open_p99']:.1f} / {r['open_max']:.1f} ms | "
                  f"{'yes' if r['exactly_once'] else 'NO'} ({r['stored']:,}) |", flush=True)
            t = r["tail"]
            print(f"<!-- {r['db']} {r['path']} at {args.rate:.0f}/s: {t['commits']} commits of "
                  f"{t['per_commit']:.1f}, commit p50 {t['commit_p50']:.1f} / p99 {t['commit_p99']:.1f} / max "
                  f"{t['commit_max']:.1f} ms, of which COMMIT p50 {t['sync_p50']:.1f} / p99 {t['sync_p99']:.1f} / max "
                  f"{t['sync_max']:.1f} ms; {t['gc']} collections ({t['gc2']} full), longest {t['gc_max']:.1f} ms; "
                  f"{t['stalls']} loop stalls > 2 ms, longest {t['stall_max']:.1f} ms; "
                  f"{r['checkpoints']} server checkpoints; host steal "
                  f"{r['steal'] * 100:.0f} % of the 2 vCPUs, load average {r['load']:.1f} -->", flush=True)
        old, new = results[-2:]
        print(f"|   | batched / before | {new['max_per_s'] / old['max_per_s']:.2f}x | | "
              f"{new['cpu_us'] / old['cpu_us']:.2f}x | {server_ratio(new, old)} | "
              f"p99 {new['open_p99'] / old['open_p99']:.2f}x | |", flush=True)
    if args.json:
        print(json.dumps(results))
    return 0 if all(r["exactly_once"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
