"""Which CSMS node holds a station's websocket, when several nodes share one database: an owner record with a lease.

The node a station connects to claims its record (taking it over from any other node: a station has one socket, and
the newest is the one that counts), bumping `epoch`, a fencing token; the node renews the leases of all its stations
in one statement every lease/3 seconds and closes the socket of any station whose record another node has taken; a
clean disconnect releases the record. A record whose lease ran out belongs to nobody (its node died). The rest of the
cluster design (commands through NATS to the owning node) is in docs/scale-out.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, Integer, String, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from ..times import utc_aware
from .models import Base

if TYPE_CHECKING:  # only for type hints: the service imports this module
    from ..ocpp import Connection
    from .worker import StoreWorker

log = logging.getLogger(__name__)


class StationOwner(Base):
    """The node holding a station's websocket, until `lease_until` unless renewed; `epoch` grows with every claim."""

    __tablename__ = "station_owners"
    station_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(64))
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    epoch: Mapped[int] = mapped_column(Integer, default=1)



def op_claim_station(s: Session, station_id: str, node_id: str, lease_s: float) -> int:
    """Make `node_id` the station's owner for `lease_s` seconds; the new epoch. One upsert statement (a round trip
    per station: a node taking over a dead node's stations claims them by the hundred)."""
    until = datetime.now(UTC) + timedelta(seconds=lease_s)
    insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    q = insert(StationOwner).values(station_id=station_id, node_id=node_id, lease_until=until, epoch=1)
    q = q.on_conflict_do_update(index_elements=[StationOwner.station_id], set_={
        "node_id": node_id, "lease_until": until, "epoch": StationOwner.epoch + 1}).returning(StationOwner.epoch)
    return int(s.execute(q).scalar_one())


def op_renew_leases(s: Session, node_id: str, held: dict[str, int], lease_s: float) -> list[str]:
    """Renew the leases this node still holds (station -> epoch it claimed); the stations it still owns."""
    if not held:
        return []
    until = datetime.now(UTC) + timedelta(seconds=lease_s)
    rows = s.execute(update(StationOwner).where(StationOwner.node_id == node_id,
                                                StationOwner.station_id.in_(list(held)))
                     .values(lease_until=until).returning(StationOwner.station_id, StationOwner.epoch)).all()
    return [sid for sid, epoch in rows if held.get(sid) == epoch]


def op_release_station(s: Session, station_id: str, node_id: str, epoch: int) -> None:
    """Give the record up (a clean disconnect), unless another node or a newer connection holds it now."""
    s.execute(delete(StationOwner).where(StationOwner.station_id == station_id, StationOwner.node_id == node_id,
                                         StationOwner.epoch == epoch))


def op_station_owner(s: Session, station_id: str) -> tuple[str, int] | None:
    """(node, epoch) holding the station now; None when nobody does or the lease ran out."""
    row = s.scalars(select(StationOwner).where(StationOwner.station_id == station_id)).first()
    if row is None or utc_aware(row.lease_until) <= datetime.now(UTC):
        return None
    return row.node_id, row.epoch


class Ownership:
    """This node's owner records: claimed on connect, renewed in the background, released on disconnect."""

    def __init__(self, worker: StoreWorker, node_id: str, lease_s: float = 15.0) -> None:
        self.worker = worker
        self.node_id = node_id
        self.lease_s = lease_s
        self.held: dict[str, tuple[Connection, int]] = {}  # station -> (its connection here, the epoch claimed)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._renew_forever(), name="owner-leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def claim(self, conn: Connection) -> None:
        epoch = await self.worker.run(op_claim_station, conn.station_id, self.node_id, self.lease_s)
        self.held[conn.station_id] = (conn, epoch)
        log.info("node %s owns station %s (epoch %d)", self.node_id, conn.station_id, epoch)

    def release(self, conn: Connection) -> None:
        """The connection closed: release its record if it is still this connection's (no wait for the commit)."""
        mine = self.held.get(conn.station_id)
        if mine is not None and mine[0] is conn:
            del self.held[conn.station_id]
            self.worker.submit(op_release_station, conn.station_id, self.node_id, mine[1])

    async def renew(self) -> list[str]:
        """Renew every lease now; close the connections of stations another node has taken; those stations."""
        held = {sid: epoch for sid, (_, epoch) in self.held.items()}
        kept = set(await self.worker.run(op_renew_leases, self.node_id, held, self.lease_s))
        # a station that reconnected here meanwhile holds a newer epoch than the snapshot: not lost
        lost = [sid for sid in held if sid not in kept and sid in self.held and self.held[sid][1] == held[sid]]
        for sid in lost:
            conn, _ = self.held.pop(sid)
            log.warning("node %s lost station %s to another node: closing its connection here", self.node_id, sid)
            await conn.close(1008, "station owned by another node")
        return lost

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            try:
                await self.renew()
            except Exception:  # the database is away: the leases run out, other nodes may take the stations
                log.exception("node %s could not renew its leases", self.node_id)
