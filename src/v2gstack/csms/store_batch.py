"""Batch forms of the hot write operations: many stations' TransactionEvents in a few statements per batch.

The StoreWorker (csms/worker.py) collects the operations queued meanwhile into one database transaction. For a run
of TransactionEvents it calls the batch form registered here instead of the one-event `op_*` function, and no
per-row ORM objects or per-event statements are made:

- PostgreSQL: three statements per batch, each ONE multi-row INSERT whose rows come from array parameters sent in
  binary (`INSERT ... SELECT FROM unnest(%b::text[], ...)`): the events (ON CONFLICT DO NOTHING decides replays,
  RETURNING says which were new), the transaction upserts, the sampled values. The statement text does not change
  with the batch size, so psycopg prepares it on the server after a few executions.
- SQLite: the events as one multi-row INSERT ... VALUES ... RETURNING, the upserts and the sampled values each as
  one executemany of a prepared statement (sqlite3 loops in C; on SQLite the database work per row is the cost,
  see docs/PERFORMANCE.md).

Runs the batch form does not cover (signed meter values, two events of one transaction in the same batch) are
handed to the one-event function, in order, so the result is always what the one-event path would have stored.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from ..constants import ISO_FACTS_VENDOR
from .models import Transaction
from .store import (
    _TRANSACTION_SQL,
    _db_time,
    _meter_rows,
    _parse_time,
    _signed,
    _sql,
    op_id_token_info,
    op_link_iso15118,
    op_record_event_and_authorize,
    op_record_transaction_event,
)

Item = tuple[str, dict[str, Any]]  # (station id, TransactionEventRequest)

_EVENT_COLUMNS = ("station_id, transaction_id, seq_no, event_type, trigger_reason, timestamp, offline, payload, "
                  "received_at")
_RETURNING = (" ON CONFLICT (station_id, transaction_id, seq_no) DO NOTHING"
              " RETURNING id, station_id, transaction_id, seq_no")
_EVSE_OF_TX = ("(SELECT x.evse_id FROM transactions AS x WHERE x.station_id = {s} AND x.transaction_id = {t})")

_PG_EVENTS = f"""INSERT INTO transaction_events ({_EVENT_COLUMNS})
 SELECT s, t, q, e, r, at, o, p::json, rx FROM unnest(%b::text[], %b::text[], %b::int[], %b::text[], %b::text[],
 %b::timestamptz[], %b::bool[], %b::text[], %b::timestamptz[]) AS u(s, t, q, e, r, at, o, p, rx)""" + _RETURNING
_PG_TRANSACTIONS = _TRANSACTION_SQL.split(" VALUES ")[0] + """
 SELECT s, t, evse, conn, tok, e, cs, at, ended, why, '{}' FROM unnest(%b::text[], %b::text[], %b::int[], %b::int[],
 %b::text[], %b::text[], %b::text[], %b::timestamptz[], %b::timestamptz[], %b::text[])
 AS u(s, t, evse, conn, tok, e, cs, at, ended, why)
 ON CONFLICT""" + _TRANSACTION_SQL.split("ON CONFLICT", 1)[1].split(" RETURNING ")[0]
_METER_COLUMNS = ("station_id", "transaction_id", "evse_id", "event_id", "timestamp", "measurand", "phase", "location",
                  "context", "value", "unit", "sent_value", "sent_unit", "multiplier")
_PG_METER_TYPES = ("text", "text", "int", "int", "timestamptz", "text", "text", "text", "text", "float8", "text",
                   "float8", "text", "int")
_PG_METERS = f"""INSERT INTO meter_values ({", ".join(_METER_COLUMNS)})
 SELECT station_id, transaction_id, COALESCE(evse_id, {_EVSE_OF_TX.format(s="u.station_id", t="u.transaction_id")}),
 event_id, timestamp, measurand, phase, location, context, value, unit, sent_value, sent_unit, multiplier
 FROM unnest({", ".join(f"%b::{k}[]" for k in _PG_METER_TYPES)}) AS u({", ".join(_METER_COLUMNS)})"""
_SQLITE_METERS = f"""INSERT INTO meter_values ({", ".join(_METER_COLUMNS)}) VALUES (:station_id, :transaction_id,
 COALESCE(:evse_id, {_EVSE_OF_TX.format(s=":station_id", t=":transaction_id")}), :event_id, :timestamp, :measurand,
 :phase, :location, :context, :value, :unit, :sent_value, :sent_unit, :multiplier)"""


@functools.cache
def _sqlite_events(n: int) -> str:
    """SQLite: the multi-row INSERT of n events."""
    return (f"INSERT INTO transaction_events ({_EVENT_COLUMNS}) VALUES "
            + ",".join(["(?,?,?,?,?,?,?,?,?)"] * n) + _RETURNING)


def _float(x: Any) -> float | None:
    return None if x is None else float(x)


def _coverable(items: list[Item]) -> bool:
    """Whether the batch form stores these exactly as the one-event path would (else they run one by one)."""
    seen: set[tuple[str, str]] = set()
    for station_id, payload in items:
        key = (station_id, payload["transactionInfo"]["transactionId"])
        if key in seen or _signed(payload):
            return False
        seen.add(key)
    return True


def ops_record_transaction_events(s: Session, items: list[Item]) -> list[bool]:
    """`op_record_transaction_event` for many events in one go: for each, True if stored, False for a replay."""
    if len(items) == 1 or not _coverable(items):
        return [op_record_transaction_event(s, sid, p) for sid, p in items]
    dialect = s.get_bind().dialect.name
    pg = dialect == "postgresql"
    received = datetime.now(UTC) if pg else _db_time(dialect, datetime.now(UTC))
    events, upserts = [], []
    for sid, p in items:
        info = p["transactionInfo"]
        when = _parse_time(p.get("timestamp"))
        at = when if pg else _db_time(dialect, when)
        ended = p["eventType"] == "Ended"
        evse = p.get("evse") or {}
        events.append((sid, info["transactionId"], p["seqNo"], p["eventType"], p["triggerReason"], at,
                       bool(p.get("offline", False)), json.dumps(p, separators=(",", ":")), received))
        upserts.append({"station_id": sid, "transaction_id": info["transactionId"], "evse_id": evse.get("id"),
                        "connector_id": evse.get("connectorId"), "id_token": (p.get("idToken") or {}).get("idToken"),
                        "state": p["eventType"], "charging_state": info.get("chargingState"), "started_at": at,
                        "ended_at": at if ended else None,
                        "stopped_reason": info.get("stoppedReason", "Local") if ended else None})
    cur = s.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if pg:
            cur.execute(_PG_EVENTS, [list(column) for column in zip(*events, strict=True)])
        else:
            cur.execute(_sqlite_events(len(events)), [v for row in events for v in row])
        new = {(sid, tx, int(seq)): event_id for event_id, sid, tx, seq in cur.fetchall()}
        stored = []
        fresh, meters = [], []
        for (sid, p), up in zip(items, upserts, strict=True):
            event_id = new.pop((sid, up["transaction_id"], p["seqNo"]), None)  # pop: a later copy is a replay
            stored.append(event_id is not None)
            if event_id is not None:
                fresh.append(up)
                meters += _meter_rows(dialect, sid, up["transaction_id"], event_id, p.get("meterValue", []),
                                      up["evse_id"])
        if pg:
            if fresh:
                cur.execute(_PG_TRANSACTIONS, [[u[k] for u in fresh] for k in fresh[0]])
            if meters:
                columns = [[m[k] for m in meters] for k in _METER_COLUMNS]
                for k in (9, 11):  # value, sent_value: one Python type per array
                    columns[k] = [_float(x) for x in columns[k]]
                cur.execute(_PG_METERS, columns)
        else:
            if fresh:
                cur.executemany(_sql(dialect, _TRANSACTION_SQL.split(" RETURNING ")[0]), fresh)
            if meters:
                cur.executemany(_sql(dialect, _SQLITE_METERS), meters)
    finally:
        cur.close()
    for (sid, p), ok in zip(items, stored, strict=True):
        custom = p.get("customData") or {}
        if ok and custom.get("vendorId") == ISO_FACTS_VENDOR:
            op_link_iso15118(s, sid, p["transactionInfo"]["transactionId"],
                             {k: v for k, v in custom.items() if k != "vendorId"})
    return stored


def ops_record_events_and_authorize(s: Session,
                                    items: list[tuple[Any, ...]]) -> list[tuple[bool, dict[str, Any] | None]]:
    """`op_record_event_and_authorize` for many events in one go (each item: station, payload[, OCPP version])."""
    stored = ops_record_transaction_events(s, [(item[0], item[1]) for item in items])
    out = []
    for ok, item in zip(stored, items, strict=True):
        sid, p, version = item[0], item[1], (item[2] if len(item) > 2 else None)
        if ok and version is not None and p["eventType"] == "Started":  # a new transaction notes its OCPP version
            tx = s.get(Transaction, (sid, p["transactionInfo"]["transactionId"]))
            if tx is not None:
                tx.ocpp_version = version
        out.append((ok, op_id_token_info(s, p["idToken"]) if p.get("idToken") else None))
    return out


# one-operation function -> its batch form (a list of argument tuples in, a list of results out)
BATCH_FORMS: dict[Callable[..., Any], Callable[[Session, list[Any]], list[Any]]] = {
    op_record_transaction_event: ops_record_transaction_events,
    op_record_event_and_authorize: ops_record_events_and_authorize,
}
