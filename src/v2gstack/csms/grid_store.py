"""The grid signals in force, kept in the CSMS's database (table grid_signals): written whole on every change of the
book, read back when grid control starts, so that a restarted CSMS plans with the signals it had."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from ..grid.model import GridSignal
from ..times import rfc3339
from .models import GridSignalRecord
from .store import Store


def signal_json(s: GridSignal) -> dict[str, Any]:
    """A signal's JSON form with its times to the microsecond (to_dict rounds them to the second)."""
    out = s.to_dict()
    out["intervals"] = [{**i.to_dict(), "start": rfc3339(i.start, "microseconds"),
                         "end": rfc3339(i.end, "microseconds")} for i in s.intervals]
    return out


def save_signals(store: Store, signals: list[GridSignal]) -> None:
    """Make the table hold exactly these signals (one database transaction)."""
    now = datetime.now(UTC)
    with store.session() as db:
        # a write first: SQLite (WAL) refuses to turn a transaction that has read into a writer once another
        # connection wrote meanwhile, where a first write just waits for the lock
        db.execute(delete(GridSignalRecord).where(GridSignalRecord.id.not_in([s.id for s in signals])))
        for s in signals:
            db.merge(GridSignalRecord(id=s.id, source=s.source, modification=s.modification, signal=signal_json(s),
                                      updated_at=now))


def load_signals(store: Store) -> list[dict[str, Any]]:
    """The kept signals' JSON forms."""
    with store.session() as db:
        return [r.signal for r in db.scalars(select(GridSignalRecord).order_by(GridSignalRecord.id))]
