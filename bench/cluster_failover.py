"""Cluster failover figures: 3 CSMS nodes on PostgreSQL + NATS, 300 light stations, SIGKILL of the scheduler's node.

Runs the drill of v2gstack.sim.failover (the same as tests/test_cluster_drill.py) on a scratch PostgreSQL database
and prints how long the killed node's stations took to boot on the other nodes (p50/p90/p99/max over the stations),
how long the grid scheduler singleton took to move, and the exactly-once counts. The nodes, the stations, PostgreSQL
and NATS share the machine; the station back-off (0.5 s doubling, 0-1 s jitter) and the lease (6 s) are the drill's.

    .venv/bin/python bench/cluster_failover.py --stations 300 --nodes 3 [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import uuid
from pathlib import Path

import psycopg

from v2gstack.sim.failover import DrillConfig, run_drill

PG_ADMIN = os.environ.get("V2GSTACK_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stations", type=int, default=300)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--runs", type=int, default=1, help="drills in a row (the reconnect times are pooled)")
    ap.add_argument("--interval", type=float, default=2.0, help="s between a station's TransactionEvents")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # not every station's failed attempt on the killed node
    pooled: list[float] = []
    moves: list[float] = []
    for run in range(args.runs):
        name = f"v2gstack_drill_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            with tempfile.TemporaryDirectory() as work:
                cfg = DrillConfig(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", Path(work), nodes=args.nodes,
                                  stations=args.stations, interval_s=args.interval)
                report = asyncio.run(run_drill(cfg, say=lambda s: print(f"  {s}", flush=True)))
        finally:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        print(f"run {run + 1}:")
        for line in report.lines():
            print(f"  {line}")
        pooled += report.reconnect_s
        moves.append(report.leader_moved_s)
    if args.runs > 1 and len(pooled) > 1:
        q = statistics.quantiles(sorted(pooled), n=100, method="inclusive")
        print(f"all runs: {len(pooled)} reconnects: p50 {q[49]:.2f} s, p90 {q[89]:.2f} s, p99 {q[98]:.2f} s, "
              f"max {max(pooled):.2f} s; scheduler moved after {', '.join(f'{m:.2f}' for m in moves)} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
