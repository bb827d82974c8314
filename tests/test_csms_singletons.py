"""Singletons of a CSMS cluster (csms/singletons.py): one node holds each lease and runs the job; a clean stop hands
it over at once; a node that stops renewing (killed) loses it once the lease ran out, and another node takes it with
a higher epoch. On SQLite and PostgreSQL, nodes in one process (the SIGKILL of a real node: test_cluster_drill.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.csms import make_db_url
from helpers.wait import until
from sqlalchemy.orm import Session

from v2gstack.csms.singletons import GRID, Singletons, op_singleton_holders, op_take_singleton
from v2gstack.csms.store import Store
from v2gstack.csms.worker import StoreWorker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_db_url(request.param, tmp_path)


class Recorder:
    """A job that notes when it runs."""

    def __init__(self) -> None:
        self.running: int | None = None  # the epoch it runs with
        self.starts = 0

    async def start(self, epoch: int) -> None:
        self.running, self.starts = epoch, self.starts + 1

    async def stop(self) -> None:
        self.running = None


def test_a_lease_is_held_by_one_node_until_it_runs_out(db_url: str) -> None:
    store = Store(db_url)
    try:
        assert store.run(op_take_singleton, GRID, "node-a", 30) == 1
        assert store.run(op_take_singleton, GRID, "node-b", 30) is None  # held
        assert store.run(op_take_singleton, GRID, "node-a", 30) == 1  # a renewal keeps the epoch
        assert store.run(op_singleton_holders) == {GRID: ("node-a", 1)}
        assert store.run(op_take_singleton, GRID, "node-a", 0.01) == 1  # renewed for a moment only
        while store.run(op_singleton_holders):
            time.sleep(0.01)
        assert store.run(op_take_singleton, GRID, "node-b", 30) == 2  # taken over, fenced by the new epoch
        assert store.run(op_take_singleton, GRID, "node-a", 30) is None
    finally:
        store.close()


def test_two_nodes_creating_the_lease_at_once_leave_it_to_one(db_url: str) -> None:
    """The first take of a singleton inserts its row, with nothing to lock before: when another node inserted it
    since this node read (both started at the same moment), this node does not hold it (no duplicate-key error)."""
    store = Store(db_url)
    try:
        assert store.run(op_take_singleton, GRID, "node-a", 30) == 1

        class ReadBeforeTheOtherInsert:  # this node's session as it was before node-a's row was committed
            def __init__(self, s: Session) -> None:
                self._s = s

            def get(self, *a: object, **kw: object) -> None:
                return None

            def __getattr__(self, name: str) -> object:
                return getattr(self._s, name)

        with store.session() as s:
            assert op_take_singleton(ReadBeforeTheOtherInsert(s), GRID, "node-b", 30) is None  # type: ignore[arg-type]
        assert store.run(op_singleton_holders) == {GRID: ("node-a", 1)}
    finally:
        store.close()


async def test_the_job_runs_on_one_node_and_moves_when_its_node_stops_renewing(db_url: str) -> None:
    stores = [Store(db_url), Store(db_url)]
    workers = [StoreWorker(s) for s in stores]
    jobs = [Recorder(), Recorder()]
    nodes = [Singletons(w, name, lease_s=3.0) for w, name in zip(workers, ("node-a", "node-b"), strict=True)]
    for node, job in zip(nodes, jobs, strict=True):
        node.add(GRID, job.start, job.stop)
    try:
        nodes[0].start()
        await until(lambda: jobs[0].running == 1)
        nodes[1].start()
        await asyncio.sleep(1.0)  # a few rounds of node B: it never gets the job while A renews
        assert jobs[1].starts == 0 and nodes[1].held() == {}
        # node A dies without a word (its renewals stop, its job is not stopped): B takes the job after the lease
        task = nodes[0]._task
        assert task is not None
        task.cancel()
        await until(lambda: jobs[1].running == 2, 30)
        assert nodes[1].held() == {GRID: 2}
        # a clean stop hands it back at once: A's next round takes it
        await nodes[1].stop()
        assert jobs[1].running is None and stores[0].run(op_singleton_holders) == {}
        await nodes[0].round()
        assert jobs[0].running == 3
    finally:
        for node in nodes:
            await node.stop()
        for w in workers:
            await asyncio.to_thread(w.close)
        for s in stores:
            s.close()
