"""The CSMS's durable write path alone: TransactionEvents through the StoreWorker, the path before batch forms and
the batched one in the same run, on SQLite and/or PostgreSQL.

No websockets here (bench/ocpp_load.py measures the whole CSMS): asyncio tasks play the stations' handlers and await
`worker.run(op_record_event_and_authorize, ...)`, which returns once the event's transaction has committed. Two
loads per path: closed loop (N stations each sending its next event when the previous is committed: the most the
path can store per second) and open loop (events offered at a fixed rate, spread evenly: the latency a station sees
at that rate). Then it counts the rows: every acknowledged event is in the database exactly once.

    .venv/bin/python bench/store_bench.py --db sqlite --db postgresql://postgres@127.0.0.1:5432/v2gstack_bench
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ocpp_load import event, stored_events
from sqlalchemy import insert

from v2gstack.csms.models import Base, Station
from v2gstack.csms.store import Store, op_record_event_and_authorize
from v2gstack.csms.worker import StoreWorker


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
                    seq: list[int]) -> list[float]:
    """`rate` events per second over the stations, each station every stations/rate seconds."""
    lat: list[float] = []
    interval = stations / rate
    start = time.monotonic()
    until = start + seconds

    async def station(i: int) -> None:
        next_at = start + interval * i / stations
        while next_at < until:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            t0 = time.perf_counter()
            await worker.run(op_record_event_and_authorize, f"LOAD-{i}", event(i, seq[i]))
            lat.append(time.perf_counter() - t0)
            seq[i] += 1
            next_at += interval

    await asyncio.gather(*(station(i) for i in range(stations)))
    return lat


def ms(lat: list[float], q: float) -> float:
    s = sorted(lat)
    return s[min(len(s) - 1, int(len(s) * q))] * 1000 if s else float("nan")


def run(db: str, batched: bool, args: argparse.Namespace) -> dict[str, Any]:
    url = fresh(db, args.stations)
    store = Store(url)
    worker = StoreWorker(store, batch_forms=batched)
    seq = [0] * args.stations
    try:
        cpu0, t0 = time.process_time(), time.monotonic()
        n, closed = asyncio.run(closed_loop(worker, args.stations, args.seconds, seq))
        cpu1, t1 = time.process_time(), time.monotonic()
        opened = asyncio.run(open_loop(worker, args.stations, args.rate, args.seconds, seq))
    finally:
        worker.close()
        store.close()
    events, distinct, values = stored_events(url)
    acked = sum(seq)
    return {"db": "SQLite" if db == "sqlite" else "PostgreSQL", "path": "batched" if batched else "before",
            "max_per_s": n / (t1 - t0), "closed_p99": ms(closed, 0.99), "cpu_us": (cpu1 - cpu0) / n * 1e6,
            "batch": worker.operations / max(1, worker.batches), "rate": args.rate,
            "open_p50": statistics.median(opened) * 1000, "open_p99": ms(opened, 0.99), "open_max": ms(opened, 1),
            "acked": acked, "stored": events, "exactly_once": events == distinct == acked, "values": values}


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
          f"p50 / p99 / max at {args.rate:.0f}/s | acknowledged = stored, once |")
    print("|---|---|---|---|---|---|---|")
    for db in args.db or ["sqlite"]:
        for batched in (False, True):
            r = run(db, batched, args)
            results.append(r)
            print(f"| {r['db']} | {r['path']} | {r['max_per_s']:,.0f} | {r['batch']:.0f} | {r['cpu_us']:.0f} us | "
                  f"{r['open_p50']:.1f} / {r['open_p99']:.1f} / {r['open_max']:.1f} ms | "
                  f"{'yes' if r['exactly_once'] else 'NO'} ({r['stored']:,}) |", flush=True)
        old, new = results[-2:]
        print(f"|   | batched / before | {new['max_per_s'] / old['max_per_s']:.2f}x | | "
              f"{new['cpu_us'] / old['cpu_us']:.2f}x | p99 {new['open_p99'] / old['open_p99']:.2f}x | |", flush=True)
    if args.json:
        print(json.dumps(results))
    return 0 if all(r["exactly_once"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
