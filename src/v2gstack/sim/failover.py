"""The cluster failover drill: N `v2gstack csms` nodes on one PostgreSQL and NATS, M light stations, one SIGKILL.

`run_drill` starts the nodes (subprocesses, one settings file, `--node-id`), spreads the stations over them (each
station has every node's URL, its own first), lets them run transactions, kills the node that runs the grid
scheduler singleton with SIGKILL, and measures how long its stations take to boot on another node and how long the
singleton takes to move. Then it sends a command through the REST API of one surviving node to a station on the
other, lets every station end its transaction, stops the nodes and checks the database and the event stream:
every acknowledged TransactionEvent stored once (its meter value once), nothing stored that was not acknowledged,
no transaction open, each acknowledged event once in the JetStream stream. The test (tests/test_cluster_drill.py)
asserts the checks; the benchmark (bench/cluster_failover.py) prints the figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, insert, select

from ..csms.auth import Role, create_token
from ..csms.events import stream_name
from ..csms.models import MeterValue, Station, Transaction, TransactionEvent
from ..csms.singletons import GRID, op_singleton_holders
from ..csms.store import Store, hash_password
from .light_station import LightStation

PASSWORD = "drill-station-password-01"
NATS_URL = "nats://127.0.0.1:4222"


@dataclass
class DrillConfig:
    """The drill's size and pace."""

    db_url: str  # a PostgreSQL database of its own (its tables are made by the first node)
    workdir: Path  # settings file and node logs
    nats_url: str = NATS_URL
    nodes: int = 3
    stations: int = 300
    updates: int = 3  # Updated events per transaction
    interval_s: float = 2.0  # between a station's events
    run_before_kill_s: float = 15.0  # transactions running before the SIGKILL
    run_after_kill_s: float = 10.0  # transactions running after everyone reconnected
    lease_s: float = 6.0  # owner and singleton leases
    ramp_s: float = 10.0  # stations start spread over this
    wait_s: float = 240.0  # the longest any phase may take (boots, reconnects, ends): generous on a loaded machine
    prefix: str = field(default_factory=lambda: f"v2gdrill{uuid.uuid4().hex[:8]}")  # NATS subjects of this run


@dataclass
class DrillReport:
    """What the drill measured and found."""

    nodes: list[str]
    victim: str = ""
    leader_before: str = ""
    leader_after: str = ""
    leader_moved_s: float = 0.0  # SIGKILL -> the singleton lease held by another node
    victim_stations: int = 0
    reconnect_s: list[float] = field(default_factory=list)  # SIGKILL -> booted on another node, per station
    detect_s: list[float] = field(default_factory=list)  # SIGKILL -> the station saw its connection drop
    open_s: list[float] = field(default_factory=list)  # SIGKILL -> its websocket to another node open
    not_reconnected: int = 0
    acked: int = 0  # TransactionEvents answered to the stations
    stored: int = 0  # rows in the database
    stored_keys: int = 0  # distinct (station, transactionId, seqNo)
    missing: int = 0  # acknowledged, not stored
    unacked_stored: int = 0  # stored, never acknowledged
    meter_values: int = 0  # stored sampled values (one per event)
    open_transactions: int = 0
    transactions: int = 0
    resent: int = 0  # messages the stations sent again after a loss
    stream_tx: int = 0  # TransactionEvents in the JetStream stream
    stream_duplicates: int = 0  # publications the stream dropped as duplicates (surviving nodes)
    command: dict[str, Any] = field(default_factory=dict)  # the cross-node API command and what the station got
    leader_api: dict[str, Any] = field(default_factory=dict)  # GET /api/cluster of the new leader
    started_s: float = 0.0  # all stations booted after this long

    def quantiles(self, xs: list[float] | None = None) -> dict[str, float]:
        """p50, p90, p99 and max of the reconnect times (or of `xs`), s."""
        xs = sorted(self.reconnect_s if xs is None else xs)
        if not xs:
            return {}
        q = statistics.quantiles(xs, n=100, method="inclusive") if len(xs) > 1 else [xs[0]] * 99
        return {"p50": q[49], "p90": q[89], "p99": q[98], "max": xs[-1]}

    def lines(self) -> list[str]:
        """The report as text."""
        def text(xs: list[float] | None = None) -> str:
            return ", ".join(f"{k} {v:.2f} s" for k, v in self.quantiles(xs).items())

        return [
            f"nodes {', '.join(self.nodes)}; all stations booted after {self.started_s:.1f} s",
            f"SIGKILL of {self.victim} (grid scheduler leader); {self.victim_stations} of its stations reconnected "
            f"to the others: {text()} ({self.not_reconnected} did not)",
            f"  of which: drop seen {text(self.detect_s)}; websocket to another node open {text(self.open_s)}",
            f"grid scheduler singleton: {self.leader_before} -> {self.leader_after} after {self.leader_moved_s:.2f} s",
            f"TransactionEvents acknowledged {self.acked}, stored {self.stored} ({self.stored_keys} distinct), "
            f"missing {self.missing}, stored but not acknowledged {self.unacked_stored}, meter values "
            f"{self.meter_values}; resent after a loss {self.resent}",
            f"transactions {self.transactions}, left open {self.open_transactions}; in the event stream "
            f"{self.stream_tx} TransactionEvents, duplicates dropped {self.stream_duplicates}",
            f"command through {self.command.get('via')} to {self.command.get('station')} on "
            f"{self.command.get('owner')}: HTTP {self.command.get('status')}, station got it: "
            f"{self.command.get('received')}",
        ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(cfg: DrillConfig) -> str:
    """The nodes' one settings file. The grid control runs (it is the singleton that must move) with a small problem
    (4 h at 15 min) and the heuristic only, in a thread: it re-plans at every transaction start and end of 300
    stations, and the drill measures the failover, not the scheduler (docs/PERFORMANCE.md "Grid scheduler")."""
    return f"""[ocpp]
security_profile = 1
heartbeat_interval = 600
ping_interval = 0
log_messages = false

[database]
url = "{cfg.db_url}"

[cluster]
nats_url = "{cfg.nats_url}"
owner_lease = {cfg.lease_s}
singleton_lease = {cfg.lease_s}
subject_prefix = "{cfg.prefix}"

[auth_throttle]
verify_rate = 1000000.0
verify_burst = 1000000

[grid]
enabled = true
horizon_steps = 16
time_budget_s = 0.0
improve_budget_s = 0.0
solver_process = false
"""


def _prepare(cfg: DrillConfig) -> tuple[list[str], str]:
    """Tables, stations (a cheaper scrypt cost: the handshakes are not what the drill measures), the idToken and an
    API token; (station ids, API token)."""
    store = Store(cfg.db_url)
    try:
        ids = [f"LS-{i:05d}" for i in range(cfg.stations)]
        hashed = hash_password(PASSWORD, n=2**10)
        with store.session() as s:
            s.execute(insert(Station), [{"id": sid, "password_hash": hashed, "security_profile": 1,
                                         "connector_status": {}} for sid in ids])
        store.put_id_token("LIGHT0001", "Central")
        _, token = create_token(store, "drill", Role.ADMIN, days=1)
        return ids, token
    finally:
        store.close()


class Node:
    """One `v2gstack csms` process of the drill."""

    def __init__(self, name: str, settings: Path, workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.api_port = free_port()
        self.log = workdir / f"{name}.log"
        self.url = f"ws://127.0.0.1:{self.port}/ocpp"
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "v2gstack", "csms", "--config", str(settings), "--node-id", name,
             "--port", str(self.port), "--api-port", str(self.api_port)],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL if it hangs); its exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


async def _until(check: Any, timeout: float, what: str, step: float = 0.2, detail: Any = None) -> float:
    """Wait until `check()` (sync or async) is true; the seconds it took; TimeoutError naming `what` (and what
    `detail()` says)."""
    started = time.monotonic()
    while True:
        r = check()
        if asyncio.iscoroutine(r):
            r = await r
        if r:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"drill: {what} not within {timeout:.0f} s" + (f": {detail()}" if detail else ""))
        await asyncio.sleep(step)


async def _listening(port: int) -> bool:
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    w.close()
    return True


async def run_drill(cfg: DrillConfig, say: Any = print) -> DrillReport:
    """Run the drill (see the module docstring); the report. Raises TimeoutError when a phase takes longer than
    `cfg.wait_s` (a node that does not start, stations that do not come back)."""
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    ids, token = _prepare(cfg)
    settings = cfg.workdir / "csms.toml"
    settings.write_text(_settings(cfg))
    nodes: list[Node] = []
    stations: list[LightStation] = []
    report = DrillReport([f"node-{chr(97 + i)}" for i in range(cfg.nodes)])
    store = Store(cfg.db_url)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        for name in report.nodes:
            nodes.append(Node(name, settings, cfg.workdir))
        for node in nodes:
            await _until(lambda n=node: _listening(n.api_port), cfg.wait_s, f"{node.name} listening")
            if not node.alive():
                raise RuntimeError(f"{node.name} stopped: {node.log.read_text()[-2000:]}")
        by_url = {n.url: n for n in nodes}
        for i, sid in enumerate(ids):
            urls = [nodes[(i + k) % len(nodes)].url for k in range(len(nodes))]
            stations.append(LightStation(sid, urls, PASSWORD, updates=cfg.updates, interval_s=cfg.interval_s))
        t0 = time.monotonic()
        for st in stations:
            await st.start()
            await asyncio.sleep(cfg.ramp_s / max(len(stations), 1))
        await _until(lambda: all(st.stats.booted_url for st in stations), cfg.wait_s, "every station booted")
        report.started_s = time.monotonic() - t0
        say(f"all {len(stations)} stations booted after {report.started_s:.1f} s")

        async def leader() -> str | None:  # read off the event loop: the stations keep their pace
            holder = (await asyncio.to_thread(store.run, op_singleton_holders)).get(GRID)
            return None if holder is None else holder[0]

        async def elected() -> bool:
            return await leader() is not None

        await _until(elected, cfg.wait_s, "a grid scheduler leader")
        await asyncio.sleep(cfg.run_before_kill_s)
        report.leader_before = report.victim = await leader() or ""
        victim = next(n for n in nodes if n.name == report.victim)
        on_victim = [st for st in stations if st.stats.booted_url == victim.url]
        report.victim_stations = len(on_victim)
        say(f"SIGKILL {victim.name} (grid scheduler leader, {len(on_victim)} stations)")
        victim.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        victim.proc.wait(10)

        async def moved() -> bool:
            now = await leader()
            return now is not None and now != victim.name

        report.leader_moved_s = await _until(moved, cfg.wait_s, "the grid scheduler moving", step=0.05)
        report.leader_after = await leader() or ""

        def back(st: LightStation) -> bool:
            return any(r.lost_at >= killed - 0.5 and r.url != victim.url for r in st.stats.reconnects) \
                and st.stats.booted_url is not None

        with contextlib.suppress(TimeoutError):  # who did not come back is counted below
            await _until(lambda: all(back(st) for st in on_victim), cfg.wait_s, "the killed node's stations back")
        for st in on_victim:
            r = next((r for r in st.stats.reconnects if r.lost_at >= killed - 0.5 and r.url != victim.url), None)
            if r is None:
                report.not_reconnected += 1
            else:
                report.reconnect_s.append(r.booted_at - killed)
                report.detect_s.append(r.lost_at - killed)
                report.open_s.append(r.opened_at - killed)
        await asyncio.sleep(cfg.run_after_kill_s)
        report.command = await _command(nodes, victim, stations, by_url, headers)
        new_leader = next(n for n in nodes if n.name == report.leader_after)
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.get(f"{new_leader.api}/api/cluster", headers=headers)
            report.leader_api = r.json()
        for st in stations:
            st.stop_transactions()
        await _until(lambda: all(st.idle for st in stations), cfg.wait_s, "every transaction ended",
                     detail=lambda: _stuck(stations))
        async with httpx.AsyncClient(timeout=30) as http:
            for n in nodes:
                if n.alive():
                    r = await http.get(f"{n.api}/api/cluster", headers=headers)
                    report.stream_duplicates += (r.json().get("events") or {}).get("duplicates", 0)
    finally:
        await asyncio.gather(*(st.stop() for st in stations), return_exceptions=True)
        for n in nodes:
            n.stop()
        store.close()
        report.stream_tx = await _stream_count(cfg)  # and the run's stream is deleted, whatever happened
    _count(cfg, stations, report)
    return report


def _stuck(stations: list[LightStation]) -> str:
    """The stations not done yet, for an error message."""
    busy = [st for st in stations if not st.idle]
    return f"{len(busy)} busy, e.g. " + "; ".join(
        f"{st.station_id} at {st.stats.booted_url} last acked {st.stats.acked[-1:]}" for st in busy[:5])


async def _command(nodes: list[Node], victim: Node, stations: list[LightStation], by_url: dict[str, Node],
                   headers: dict[str, str]) -> dict[str, Any]:
    """TriggerMessage through the API of one surviving node to a station booted on another surviving node."""
    alive = [n for n in nodes if n is not victim]
    owner, via = alive[0], alive[-1]
    st = next(s for s in stations if s.stats.booted_url == owner.url)
    before = len(st.stats.commands)
    async with httpx.AsyncClient(timeout=60) as http:
        r = await http.post(f"{via.api}/api/stations/{st.station_id}/trigger-message", headers=headers,
                            json={"requestedMessage": "Heartbeat"})
    got = [a for a, _ in st.stats.commands[before:]]
    return {"via": via.name, "station": st.station_id, "owner": by_url[owner.url].name, "status": r.status_code,
            "answer": r.json(), "received": got}


def _count(cfg: DrillConfig, stations: list[LightStation], report: DrillReport) -> None:
    """The database against what the stations had acknowledged."""
    acked = {(st.station_id, tx, seq) for st in stations for tx, seq, _ in st.stats.acked}
    report.acked = sum(len(st.stats.acked) for st in stations)
    report.resent = sum(st.stats.resent for st in stations)
    store = Store(cfg.db_url)
    try:
        with store.session() as s:
            rows = s.execute(select(TransactionEvent.station_id, TransactionEvent.transaction_id,
                                    TransactionEvent.seq_no)).all()
            report.meter_values = s.scalar(select(func.count()).select_from(MeterValue)) or 0
            report.transactions = s.scalar(select(func.count()).select_from(Transaction)) or 0
            report.open_transactions = s.scalar(select(func.count()).select_from(Transaction)
                                                .where(Transaction.state != "Ended")) or 0
    finally:
        store.close()
    stored = {(a, b, c) for a, b, c in rows}
    report.stored, report.stored_keys = len(rows), len(stored)
    report.missing = len(acked - stored)
    report.unacked_stored = len(stored - acked)


async def _stream_count(cfg: DrillConfig) -> int:
    """TransactionEvents in the run's stream (then the stream is deleted: it was this run's)."""
    import nats
    from nats.js.errors import NotFoundError

    nc = await nats.connect(cfg.nats_url, connect_timeout=5)
    try:
        js = nc.jetstream()
        name = stream_name(cfg.prefix)
        try:
            info = await js.stream_info(name, subjects_filter=f"{cfg.prefix}.evt.tx.>")
        except NotFoundError:  # no node got as far as making it
            return 0
        await js.delete_stream(name)
        return sum((info.state.subjects or {}).values())
    finally:
        await nc.close()
