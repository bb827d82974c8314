"""Tariff and cost (OCPP 2.0.1 I02/I03/I05): tariffs per idToken group, the running cost of a transaction in the
TransactionEventResponse (`totalCost` and an `updatedPersonalMessage`) and in CostUpdated, the final cost stored with
the transaction.

A tariff prices energy (per kWh imported), time (per hour from the transaction's start) and the transaction (fixed).
The tariff of a transaction is that of its idToken's group, else the default tariff (no group); without any tariff
the CSMS sends no cost. The cost is computed from what the CSMS stored of the transaction (normalised meter values,
store.energy_totals) at each Updated and Ended event and stored with the transaction (`final` after Ended).

Without any tariff in the database there is nothing to compute or store: the CSMS then skips the cost step of a
TransactionEvent instead of running a second write operation after each event's own commit (which doubled every
answer's wait and cost ~0.5 ms of CPU per event). Whether any tariff exists is read at most every
`NO_TARIFF_RECHECK_S` (one read shared by all events meanwhile); a tariff put or deleted through this node's API is
seen by the next event, one put through another node of a cluster within `NO_TARIFF_RECHECK_S`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .errors import CommandError
from .models import IdToken, Tariff, Transaction
from .store import energy_totals

if TYPE_CHECKING:
    from .service import Csms

Payload = dict[str, Any]
NO_TARIFF_RECHECK_S = 2.0


def tariff_dict(t: Tariff) -> Payload:
    """A tariff as the API serves it."""
    return {"id": t.id, "currency": t.currency, "perKWh": t.per_kwh, "perHour": t.per_hour, "fixed": t.fixed,
            "groupId": t.group_id, "description": t.description}


def op_put_tariff(s: Session, body: Payload) -> Payload:
    """Create or replace a tariff."""
    row = s.get(Tariff, body["id"]) or Tariff(id=body["id"])
    row.currency, row.per_kwh, row.per_hour = body["currency"], body.get("perKWh", 0.0), body.get("perHour", 0.0)
    row.fixed, row.group_id, row.description = body.get("fixed", 0.0), body.get("groupId"), body.get("description")
    s.merge(row)
    return tariff_dict(row)


def op_tariffs(s: Session) -> list[Payload]:
    """Every tariff."""
    return [tariff_dict(t) for t in s.scalars(select(Tariff).order_by(Tariff.id))]


def op_delete_tariff(s: Session, tariff_id: str) -> bool:
    """Remove a tariff."""
    row = s.get(Tariff, tariff_id)
    if row is None:
        return False
    s.delete(row)
    return True


def _tariff_for(s: Session, id_token: str | None) -> Tariff | None:
    """The tariff of an idToken's group, else the default one."""
    group = None
    if id_token:
        tok = s.scalars(select(IdToken).where(IdToken.id_token == id_token)).first()
        group = tok.group_id if tok is not None else None
    if group:
        t = s.scalars(select(Tariff).where(Tariff.group_id == group)).first()
        if t is not None:
            return t
    return s.scalars(select(Tariff).where(Tariff.group_id.is_(None)).order_by(Tariff.id)).first()


def op_any_tariff(s: Session) -> bool:
    """Whether any tariff is defined."""
    return s.scalar(select(Tariff.id).limit(1)) is not None


def price(t: Tariff, energy_wh: float, seconds: float) -> float:
    """The cost of `energy_wh` over `seconds` at tariff `t`, rounded to cents."""
    return round(t.fixed + t.per_kwh * energy_wh / 1000 + t.per_hour * seconds / 3600, 2)


def op_transaction_cost(s: Session, station_id: str, transaction_id: str, at: datetime) -> Payload | None:
    """The transaction's cost now (`at`: the event's time), stored with it; None when no tariff applies."""
    tx = s.get(Transaction, (station_id, transaction_id))
    if tx is None:
        return None
    t = _tariff_for(s, tx.id_token)
    if t is None:
        return None
    energy = energy_totals(tx.meter_values).get("energyImportWh") or 0.0
    start = tx.started_at if tx.started_at is None or tx.started_at.tzinfo else tx.started_at.replace(tzinfo=UTC)
    seconds = max((at - start).total_seconds(), 0.0) if start is not None else 0.0
    cost = {"tariffId": t.id, "currency": t.currency, "total": price(t, energy, seconds), "energyWh": energy,
            "seconds": round(seconds), "final": tx.state == "Ended"}
    tx.cost = cost
    return cost


class TariffService:
    """The cost part of TransactionEventResponse, and CostUpdated for the API."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms
        self._any: bool | None = None  # whether any tariff exists, as last read (None: read it before pricing)
        self._read_at = 0.0
        self._reading: asyncio.Task[bool] | None = None  # the one read in flight: every event shares it

    def changed(self) -> None:
        """A tariff was put or deleted (through this node): the next event reads again before it is priced."""
        self._any, self._reading = None, None

    async def _any_tariff(self) -> bool:
        """Whether any tariff exists: read on a reader thread at most every NO_TARIFF_RECHECK_S; while a newer
        answer is being read, the last one stands."""
        if self._any is not None and time.monotonic() - self._read_at < NO_TARIFF_RECHECK_S:
            return self._any
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read())
        return self._any if self._any is not None else await asyncio.shield(self._reading)

    async def _read(self) -> bool:
        this = asyncio.current_task()
        try:
            found = await self.csms.worker.read(op_any_tariff)
        finally:
            stale = self._reading is not this  # changed() meanwhile: this answer may predate the change
            if not stale:
                self._reading = None
        if stale:
            return await self._any_tariff()
        self._any, self._read_at = found, time.monotonic()
        return found

    async def on_transaction_event(self, station_id: str, p: Payload, at: datetime) -> Payload:
        """The cost fields for the response to an Updated or Ended event (none for Started or without tariff)."""
        if p["eventType"] == "Started" or not await self._any_tariff():
            return {}
        cost = await self.csms.worker.run(op_transaction_cost, station_id, p["transactionInfo"]["transactionId"], at)
        if cost is None:
            return {}
        what = "Total" if p["eventType"] == "Ended" else "Cost so far"
        return {"totalCost": cost["total"], "updatedPersonalMessage": {
            "format": "UTF8", "content": f"{what}: {cost['total']:.2f} {cost['currency']}"[:512]}}

    async def cost_updated(self, station_id: str, transaction_id: str) -> Payload:
        """CostUpdated (I05) with the running cost of a transaction."""
        cost = await self.csms.worker.run(op_transaction_cost, station_id, transaction_id, datetime.now(UTC))
        if cost is None:
            raise CommandError(404, f"no tariff applies to transaction {transaction_id} of {station_id}")
        answer = await self.csms.call(station_id, "CostUpdated", {"totalCost": cost["total"],
                                                                   "transactionId": transaction_id})
        return {"cost": cost, "response": answer}
