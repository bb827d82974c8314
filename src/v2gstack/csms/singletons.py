"""Jobs that must run on one CSMS node of a cluster (the grid scheduler, the certificate expiry check): a lease row.

Each singleton has one row in `singleton_leases` (name, node, lease_until, epoch). Every node tries to take every
singleton every lease/3 seconds: it gets the row when nobody holds it, its lease ran out, or the node holds it already
(a renewal); `epoch` grows with every new tenure (a fencing token the job can carry). A node that gets the row
starts the job; a node whose renewal fails (another node took the row after the lease ran out, or the database is
away for longer than the lease) stops it. A node killed with SIGKILL stops renewing: its singletons move to another
node within one lease plus one renewal period. A clean stop releases the rows at once. The lease rows are written in
short transactions of their own, never in the StoreWorker's batches (which would keep a row every node wants locked
for a whole batch).

The lease times are the nodes' clocks (one machine, or NTP): a node considers its lease lost a renewal period before
the row expires for the others, so two nodes never run a job at the same time while clocks agree within that margin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, Integer, String, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..times import utc_aware
from .models import Base

if TYPE_CHECKING:  # only for type hints
    from .worker import StoreWorker

log = logging.getLogger(__name__)

GRID = "grid-scheduler"
CERT_EXPIRY = "certificate-expiry"


class SingletonLease(Base):
    """Which node runs a singleton job, until `lease_until` unless renewed; `epoch` grows with every new holder."""

    __tablename__ = "singleton_leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64))
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    epoch: Mapped[int] = mapped_column(Integer, default=1)



def op_take_singleton(s: Session, name: str, node_id: str, lease_s: float) -> int | None:
    """Take or renew the singleton for `lease_s` seconds; its epoch, or None when another node holds it."""
    now = datetime.now(UTC)
    row = s.get(SingletonLease, name, with_for_update=True)
    if row is None:
        try:
            with s.begin_nested():
                s.add(SingletonLease(name=name, node_id=node_id, lease_until=now + timedelta(seconds=lease_s),
                                     epoch=1))
        except IntegrityError:  # another node inserted it since the read (nothing to lock then): that node holds it
            return None
        return 1
    held = utc_aware(row.lease_until) > now
    if row.node_id != node_id and held:
        return None
    if row.node_id != node_id or not held:  # a new tenure (another node, or this one after its lease ran out)
        row.node_id, row.epoch = node_id, row.epoch + 1
    row.lease_until = now + timedelta(seconds=lease_s)
    return row.epoch


def op_release_singleton(s: Session, name: str, node_id: str) -> None:
    """Give the singleton up (a clean stop), if this node holds it: the lease ends now, the epoch stays (it only
    grows, so a fencing token is never reused)."""
    s.execute(update(SingletonLease).where(SingletonLease.name == name, SingletonLease.node_id == node_id)
              .values(lease_until=datetime.now(UTC)))


def op_singleton_holders(s: Session) -> dict[str, tuple[str, int]]:
    """Each singleton -> (node, epoch) holding a lease that has not run out."""
    now = datetime.now(UTC)
    return {r.name: (r.node_id, r.epoch) for r in s.scalars(select(SingletonLease))
            if utc_aware(r.lease_until) > now}


@dataclass
class Job:
    """A singleton: started when this node gets its lease (with the epoch), stopped when it loses it."""

    name: str
    start: Callable[[int], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]
    epoch: int | None = None  # the lease this node holds, None when it does not run the job
    since: float = 0.0  # loop time of the last renewal that succeeded


class Singletons:
    """This node's side of the singleton leases: take, renew, start and stop the jobs."""

    def __init__(self, worker: StoreWorker, node_id: str, lease_s: float = 10.0) -> None:
        self.worker = worker
        self.node_id = node_id
        self.lease_s = lease_s
        self.jobs: dict[str, Job] = {}
        self._task: asyncio.Task[None] | None = None

    def add(self, name: str, start: Callable[[int], Awaitable[None]], stop: Callable[[], Awaitable[None]]) -> None:
        """A job that runs only on the node holding the lease `name`."""
        self.jobs[name] = Job(name, start, stop)

    def held(self) -> dict[str, int]:
        """The singletons this node runs now -> their epochs."""
        return {j.name: j.epoch for j in self.jobs.values() if j.epoch is not None}

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run_forever(), name="singletons")

    async def stop(self) -> None:
        """Stop the jobs this node runs and release their leases (the next node takes them at once)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for job in self.jobs.values():
            if job.epoch is not None:
                await self._stop_job(job)
                with contextlib.suppress(Exception):
                    await self.worker.alone(op_release_singleton, job.name, self.node_id)

    async def round(self) -> None:
        """One round: take or renew every lease; start what was won, stop what was lost."""
        loop = asyncio.get_running_loop()
        for job in list(self.jobs.values()):  # a job may be added meanwhile
            try:
                epoch = await self.worker.alone(op_take_singleton, job.name, self.node_id, self.lease_s)
            except Exception as e:  # the database is away (or two nodes inserted the first row at once)
                log.warning("node %s: singleton %s lease not renewed: %s", self.node_id, job.name, e)
                if job.epoch is not None and loop.time() - job.since > self.lease_s / 3:
                    await self._stop_job(job)  # the others may take it soon: stop before they can start
                continue
            if epoch is None:
                if job.epoch is not None:
                    await self._stop_job(job)
                continue
            job.since = loop.time()
            if job.epoch != epoch:
                if job.epoch is not None:
                    await self._stop_job(job)
                job.epoch = epoch
                log.info("node %s runs singleton %s (epoch %d)", self.node_id, job.name, epoch)
                try:
                    await job.start(epoch)
                except Exception:
                    log.exception("node %s: singleton %s did not start", self.node_id, job.name)

    async def _stop_job(self, job: Job) -> None:
        log.info("node %s stops singleton %s (epoch %s)", self.node_id, job.name, job.epoch)
        job.epoch = None
        try:
            await job.stop()
        except Exception:
            log.exception("node %s: singleton %s did not stop cleanly", self.node_id, job.name)

    async def _run_forever(self) -> None:
        while True:
            await self.round()
            await asyncio.sleep(self.lease_s / 3)
