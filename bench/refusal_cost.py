"""What a boot storm costs a CSMS node per station turned away: CPU of one refused handshake (503 over the node's
limit) and of one accepted handshake whose BootNotification is answered Pending, then closed.

A real fleet node (`ocpp_load.py --serve-node`: the `Csms` with a node id on a fresh PostgreSQL database) runs in its
own process; this process plays the stations (`--concurrency` at a time) and reads the node's CPU time (user + system)
from /proc before and after `--n` handshakes, less what the idle node spends in the same time. With `--before REV`
the same is measured first with the `src/` tree of that git revision (the node's code before a change), then with
this tree's, in one run. `--profile DIR` writes each node's cProfile (CPU time) to DIR.

    .venv/bin/python bench/refusal_cost.py --before main --n 3000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import websockets
from ocpp_load import PASSWORD, ROOT, prepare_cluster_db, proc_stats
from websockets.exceptions import InvalidStatus


def cpu_of(pid: int) -> float:
    return proc_stats(pid)[0]


def loop_cpu_of(pid: int) -> float:
    """CPU seconds of the process's main thread (the event loop; the database runs in other threads)."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Node:
    """One CSMS node process on `db`, running the code under `src`."""

    def __init__(self, src: Path, db: str, port: int, extra: list[str], profile: str | None) -> None:
        cmd = [sys.executable, str(ROOT / "bench" / "ocpp_load.py"), "--serve-node", "--db", db, "--port", str(port),
               "--node-id", "node-0", *extra]
        if profile:
            cmd += ["--profile", profile]
        env = dict(os.environ, PYTHONPATH=f"{src}{os.pathsep}{ROOT / 'bench'}")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env,
                                     start_new_session=True)
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise SystemExit("the node did not start")

    def stop(self) -> dict[str, Any]:
        self.proc.terminate()
        out = self.proc.communicate(timeout=60)[0]
        return dict(json.loads(out.strip().splitlines()[-1])) if out.strip() else {}


def headers(sid: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{sid}:{PASSWORD}".encode()).decode()}


async def refused(url: str, sid: str, counts: dict[str, int]) -> None:
    """One handshake that the node must refuse 503."""
    try:
        ws = await websockets.connect(f"{url}/{sid}", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                      additional_headers=headers(sid), compression=None, open_timeout=60)
    except InvalidStatus as e:
        counts[f"http_{e.response.status_code}"] = counts.get(f"http_{e.response.status_code}", 0) + 1
        return
    counts["opened"] = counts.get("opened", 0) + 1
    await ws.close()


async def pending(url: str, sid: str, counts: dict[str, int]) -> None:
    """One handshake, one BootNotification (answered Pending by the node's admission), close."""
    async with websockets.connect(f"{url}/{sid}", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                  additional_headers=headers(sid), compression=None, open_timeout=60,
                                  ping_interval=None) as ws:
        await ws.send(json.dumps([2, "1", "BootNotification", {
            "reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}]))
        status = json.loads(await ws.recv())[2].get("status", "?")
        counts[status] = counts.get(status, 0) + 1


async def drive(kind: str, url: str, ids: list[str], concurrency: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    todo = iter(ids)
    one = refused if kind == "refused" else pending

    async def worker() -> None:
        for sid in todo:
            try:
                await one(url, sid, counts)
            except Exception as e:
                key = f"error {type(e).__name__}"
                counts[key] = counts.get(key, 0) + 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return counts


def measure(node: Node, kind: str, url: str, ids: list[str], concurrency: int) -> dict[str, Any]:
    """CPU of the node per handshake of `kind`, its idle CPU over the same time subtracted."""
    pid = node.proc.pid
    for _ in range(20):  # until the node has finished with the warm-up's sockets (their database writes)
        c0 = cpu_of(pid)
        time.sleep(1.0)
        idle_rate = cpu_of(pid) - c0  # per second
        if idle_rate < 0.05:
            break
    c0, l0, t0 = cpu_of(pid), loop_cpu_of(pid), time.monotonic()
    counts = asyncio.run(drive(kind, url, ids, concurrency))
    time.sleep(0.3)  # the node closes the last sockets
    cpu, secs = cpu_of(pid) - c0, time.monotonic() - t0
    loop_cpu = loop_cpu_of(pid) - l0
    net = cpu - idle_rate * secs
    return {"kind": kind, "n": len(ids), "counts": counts, "seconds": secs, "node_cpu_s": cpu,
            "idle_cpu_per_s": idle_rate, "us_per_handshake": net / len(ids) * 1e6,
            "loop_us_per_handshake": loop_cpu / len(ids) * 1e6}


def run_tree(label: str, src: Path, db: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Both measurements against a node running the code in `src`."""
    url = f"ws://127.0.0.1:{args.port}/ocpp"
    ids = [f"LOAD-{i}" for i in range(1, args.n + 1)]
    out = []
    prof = str(Path(args.profile) / f"{label}-refused.pstats") if args.profile else None
    # every handshake over the limit: one station holds the node's only place (max_connections 1)
    node = Node(src, db, args.port, ["--max-connections", "1", "--max-handshakes", "64"], prof)
    try:
        async def hold() -> Any:
            return await websockets.connect(f"{url}/LOAD-0", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                            additional_headers=headers("LOAD-0"), ping_interval=None)
        loop = asyncio.new_event_loop()
        held = loop.run_until_complete(hold())
        asyncio.run(drive("refused", url, ids[:200], args.concurrency))  # warm-up
        out.append(measure(node, "refused", url, ids, args.concurrency))
        loop.run_until_complete(held.close())
        loop.close()
    finally:
        node.stop()
    prof2 = str(Path(args.profile) / f"{label}-pending.pstats") if args.profile else None
    # every boot deferred: admission at 1 boot per 1000 s, no burst
    node = Node(src, db, args.port, ["--boot-rate", "0.001", "--boot-burst", "0", "--max-handshakes", "64"], prof2)
    try:
        asyncio.run(drive("pending", url, ids, args.concurrency))  # warm-up: the password digests cached
        out.append(measure(node, "pending", url, ids, args.concurrency))
    finally:
        node.stop()
    for r in out:
        r["tree"] = label
        print(f"  {label:<8} {r['kind']:<8} {r['n']} handshakes in {r['seconds']:.1f} s: node CPU "
              f"{r['node_cpu_s']:.2f} s -> {r['us_per_handshake']:.0f} us each, event-loop thread "
              f"{r['loop_us_per_handshake']:.0f} us (idle node "
              f"{r['idle_cpu_per_s'] * 1000:.1f} ms/s); answers {r['counts']}", flush=True)
    for p in (prof, prof2):
        if p and Path(p).exists():
            print(f"  top of {Path(p).name} (CPU time, cumulative):")
            pstats.Stats(p).sort_stats("tottime").print_stats(12)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="handshakes measured per case")
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--port", type=int, default=19950)
    ap.add_argument("--before", help="a git revision: measure its src/ first")
    ap.add_argument("--profile", help="a folder for the nodes' cProfile statistics")
    ap.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    import psycopg

    from v2gstack.csms.admission import raise_fd_limit

    raise_fd_limit()
    name = f"v2gstack_refusal_{os.getpid()}"
    with psycopg.connect(args.pg_admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    db = args.pg_admin.rsplit("/", 1)[0] + f"/{name}"
    results = []
    try:
        prepare_cluster_db(db, args.n + 1, 16)
        with tempfile.TemporaryDirectory() as tmp:
            if args.before:
                archive = subprocess.run(["git", "archive", args.before, "src"], cwd=ROOT, check=True,
                                         capture_output=True).stdout
                subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
                rev = subprocess.run(["git", "rev-parse", "--short", args.before], cwd=ROOT, check=True,
                                     capture_output=True, text=True).stdout.strip()
                results += run_tree(f"before {rev}", Path(tmp) / "src", db, args)
            results += run_tree("now", ROOT / "src", db, args)
    finally:
        with contextlib.suppress(Exception), psycopg.connect(args.pg_admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    if args.before:
        for kind in ("refused", "pending"):
            b, a = (r for r in results if r["kind"] == kind)
            print(f"{kind}: {b['us_per_handshake']:.0f} -> {a['us_per_handshake']:.0f} us of node CPU per handshake "
                  f"({a['us_per_handshake'] / b['us_per_handshake']:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
