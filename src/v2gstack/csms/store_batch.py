"""Batch forms of the hot write operations: many stations' TransactionEvents in a few statements per batch.

The StoreWorker (csms/worker.py) collects the operations queued meanwhile into one database transaction. For a run
of TransactionEvents it calls the batch form registered here instead of the one-event `op_*` function, and no
per-row ORM objects or per-event statements are made:

- PostgreSQL: ONE statement per batch (data-modifying CTEs): the events, whose rows come from array parameters sent
  in binary (`unnest(%b::text[], ...)`), inserted with ON CONFLICT DO NOTHING (a replay returns no row); the new ones
  folded into their transactions by one upsert; their sampled values inserted from arrays of their own, each row
  naming its event's position in the batch. One round trip and one plan per batch, built straight from the payloads
  into column arrays (no per-row dicts); the text does not change with the batch size, so psycopg prepares it on the
  server after a few executions.
- SQLite: the events, the upserts and the sampled values each as multi-row INSERT ... VALUES statements (up to
  SQLITE_ROWS rows each; not executemany, which hands the GIL back and forth once per row); the upserts return each
  transaction's EVSE, which a sampled value without one takes (as the one-event path's subquery does).

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
from ..ocpp.units import DEFAULT_MEASURAND, normalise
from .models import Transaction
from .pg_arrays import bool_array, float8_array, int4_array, text_array, timestamptz_array
from .store import (
    _TRANSACTION_SQL,
    _db_time,
    _meter_rows,
    _parse_time,
    _signed,
    op_id_token_info,
    op_link_iso15118,
    op_record_event_and_authorize,
    op_record_transaction_event,
)
from .v2x_state import op_dynamic_pushed, ops_dynamic_pushed

Item = tuple[str, dict[str, Any]]  # (station id, TransactionEventRequest)

_EVENT_COLUMNS = ("station_id, transaction_id, seq_no, event_type, trigger_reason, timestamp, offline, payload, "
                  "received_at")
_RETURNING = (" ON CONFLICT (station_id, transaction_id, seq_no) DO NOTHING"
              " RETURNING id, station_id, transaction_id, seq_no")

_METER_COLUMNS = ("station_id", "transaction_id", "evse_id", "event_id", "timestamp", "measurand", "phase", "location",
                  "context", "value", "unit", "sent_value", "sent_unit", "multiplier")
_UPSERT_TAIL = " ON CONFLICT" + _TRANSACTION_SQL.split("ON CONFLICT", 1)[1].split(" RETURNING ")[0]
# PostgreSQL: a whole batch in ONE statement (data-modifying CTEs), so one round trip and one plan per batch. `u`: the
# events as binary arrays (i: position in the batch); `ev` inserts them (a replay inserts nothing and returns no row);
# `fresh`: the new ones, which `tx` folds into their transactions; `pos`: per position, the new event's id (NULL for a
# replay) and the EVSE its sampled values take: the event's, else its transaction's as the statement found it (what
# the upsert keeps: COALESCE(new, old)); `mv`: the sampled values (m.i: their event's position), looked up in `pos` by
# array subscript, not joined: the planner cannot know the arrays' sizes in a prepared statement, and a misjudged
# join re-ran the unnest of the sampled values once per event. The text never changes with the batch size, so
# psycopg prepares it on the server after a few executions.
_PG_BATCH = f"""WITH u AS (SELECT * FROM unnest(%b::text[], %b::text[], %b::int[], %b::text[], %b::text[],
 %b::timestamptz[], %b::bool[], %b::text[], %b::int[], %b::int[], %b::text[], %b::text[], %b::timestamptz[], %b::text[])
 WITH ORDINALITY AS u(sid, tid, q, e, r, at, o, p, evse, conn, tok, cs, ended, why, i)),
ev AS (INSERT INTO transaction_events ({_EVENT_COLUMNS})
 SELECT sid, tid, q, e, r, at, o, p::json, %b::timestamptz FROM u ORDER BY i{_RETURNING}),
fresh AS (SELECT u.*, ev.id FROM u JOIN ev ON ev.station_id = u.sid AND ev.transaction_id = u.tid AND ev.seq_no = u.q),
tx AS ({_TRANSACTION_SQL.split(" VALUES ")[0]}
 SELECT sid, tid, evse, conn, tok, e, cs, at, ended, why, '{{}}' FROM fresh ORDER BY i{_UPSERT_TAIL}),
pos AS (SELECT array_agg(f.id ORDER BY u.i) AS ids, array_agg(COALESCE(u.evse, (SELECT t.evse_id
 FROM transactions AS t WHERE t.station_id = u.sid AND t.transaction_id = u.tid)) ORDER BY u.i) AS evses
 FROM u LEFT JOIN fresh AS f ON f.i = u.i),
mv AS (INSERT INTO meter_values ({", ".join(_METER_COLUMNS)})
 SELECT m.sid, m.tid, pos.evses[m.i], pos.ids[m.i], m.at, m.measurand, m.phase, m.location, m.context, m.value,
 m.unit, m.sent_value, m.sent_unit, m.multiplier
 FROM pos, unnest(%b::int[], %b::text[], %b::text[], %b::timestamptz[], %b::text[], %b::text[], %b::text[], %b::text[],
 %b::float8[], %b::text[], %b::float8[], %b::text[], %b::int[]) WITH ORDINALITY
 AS m(i, sid, tid, at, measurand, phase, location, context, value, unit, sent_value, sent_unit, multiplier, k)
 WHERE pos.ids[m.i] IS NOT NULL ORDER BY m.k)
SELECT i FROM fresh"""
# the arrays' types, in the order of _PG_BATCH's parameters (pg_arrays: packed in a few C calls each, not per value)
_PG_EVENT_ARRAYS = (text_array, text_array, int4_array, text_array, text_array, timestamptz_array, bool_array,
                    text_array, int4_array, int4_array, text_array, text_array, timestamptz_array, text_array)
_PG_METER_ARRAYS = (int4_array, text_array, text_array, timestamptz_array, text_array, text_array, text_array,
                    text_array, float8_array, text_array, float8_array, text_array, int4_array)
_UPSERT_KEYS = ("station_id", "transaction_id", "evse_id", "connector_id", "id_token", "state", "charging_state",
                "started_at", "ended_at", "stopped_reason")
SQLITE_ROWS = 500  # rows per multi-row statement on SQLite: 500 x 14 values stay far below its variable limit


@functools.cache
def _sqlite_events(n: int) -> str:
    """SQLite: the multi-row INSERT of n events."""
    return (f"INSERT INTO transaction_events ({_EVENT_COLUMNS}) VALUES "
            + ",".join(["(?,?,?,?,?,?,?,?,?)"] * n) + _RETURNING)


@functools.cache
def _sqlite_transactions(n: int) -> str:
    """SQLite: the multi-row upsert of n transactions, returning each one's EVSE after it."""
    return (_TRANSACTION_SQL.split(" VALUES ")[0] + " VALUES " + ",".join(["(?,?,?,?,?,?,?,?,?,?,'{}')"] * n)
            + " ON CONFLICT" + _TRANSACTION_SQL.split("ON CONFLICT", 1)[1].split(" RETURNING ")[0]
            + " RETURNING station_id, transaction_id, evse_id")


@functools.cache
def _sqlite_meters(n: int) -> str:
    """SQLite: the multi-row INSERT of n sampled values."""
    return (f"INSERT INTO meter_values ({', '.join(_METER_COLUMNS)}) VALUES "
            + ",".join(["(" + ",".join("?" * len(_METER_COLUMNS)) + ")"] * n))


def _sqlite_rows(cur: Any, sql: Callable[[int], str], rows: list[Any], keys: tuple[str, ...]) -> list[Any]:
    """Rows as multi-row statements of up to SQLITE_ROWS each; what they return.

    One statement per chunk, not an executemany: sqlite3 releases and retakes the GIL around every row of an
    executemany, and in a CSMS whose event loop keeps the GIL busy each retake can wait for the loop's switch
    interval (a convoy that made a batch's statements several times slower than alone; docs/PERFORMANCE.md).
    """
    out: list[Any] = []
    for i in range(0, len(rows), SQLITE_ROWS):
        chunk = rows[i:i + SQLITE_ROWS]
        cur.execute(sql(len(chunk)), [row[k] for row in chunk for k in keys])
        out += cur.fetchall()
    return out


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
    cur = s.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        stored = _pg_batch(cur, items) if dialect == "postgresql" else _sqlite_batch(cur, dialect, items)
    finally:
        cur.close()
    for (sid, p), ok in zip(items, stored, strict=True):
        custom = p.get("customData") or {}
        if ok and custom.get("vendorId") == ISO_FACTS_VENDOR:
            op_link_iso15118(s, sid, p["transactionInfo"]["transactionId"],
                             {k: v for k, v in custom.items() if k != "vendorId"})
    return stored


def _pg_batch(cur: Any, items: list[Item]) -> list[bool]:
    """PostgreSQL: the batch as one statement (`_PG_BATCH`): a tuple per event and per sampled value, turned into
    column arrays by one zip each."""
    events: list[tuple[Any, ...]] = []
    meters: list[tuple[Any, ...]] = []
    for i, (sid, p) in enumerate(items, 1):
        info = p["transactionInfo"]
        when = _parse_time(p.get("timestamp"))
        event_type = p["eventType"]
        ended = event_type == "Ended"
        evse = p.get("evse") or {}
        tid = info["transactionId"]
        events.append((sid, tid, p["seqNo"], event_type, p["triggerReason"], when, bool(p.get("offline", False)),
                       json.dumps(p, separators=(",", ":")), evse.get("id"), evse.get("connectorId"),
                       (p.get("idToken") or {}).get("idToken"), info.get("chargingState"), when if ended else None,
                       info.get("stoppedReason", "Local") if ended else None))
        for mv in p.get("meterValue", ()):
            t = _parse_time(mv.get("timestamp"))
            for sv in mv.get("sampledValue", ()):  # normalise: value, unit, sent value, sent unit, multiplier
                meters.append((i, sid, tid, t, sv.get("measurand", DEFAULT_MEASURAND), sv.get("phase"),
                               sv.get("location"), sv.get("context"), *normalise(sv)))
    event_columns = zip(*events, strict=True)
    meter_columns = zip(*meters, strict=True) if meters else [()] * len(_PG_METER_ARRAYS)
    cur.execute(_PG_BATCH, [*(dump(c) for dump, c in zip(_PG_EVENT_ARRAYS, event_columns, strict=True)),
                            datetime.now(UTC),
                            *(dump(c) for dump, c in zip(_PG_METER_ARRAYS, meter_columns, strict=True))])
    stored = [False] * len(items)
    for (i,) in cur.fetchall():
        stored[i - 1] = True
    return stored


def _sqlite_batch(cur: Any, dialect: str, items: list[Item]) -> list[bool]:
    """SQLite: the events, the upserts and the sampled values as multi-row statements."""
    received = _db_time(dialect, datetime.now(UTC))
    events, upserts = [], []
    for sid, p in items:
        info = p["transactionInfo"]
        at = _db_time(dialect, _parse_time(p.get("timestamp")))
        ended = p["eventType"] == "Ended"
        evse = p.get("evse") or {}
        events.append((sid, info["transactionId"], p["seqNo"], p["eventType"], p["triggerReason"], at,
                       bool(p.get("offline", False)), json.dumps(p, separators=(",", ":")), received))
        upserts.append({"station_id": sid, "transaction_id": info["transactionId"], "evse_id": evse.get("id"),
                        "connector_id": evse.get("connectorId"), "id_token": (p.get("idToken") or {}).get("idToken"),
                        "state": p["eventType"], "charging_state": info.get("chargingState"), "started_at": at,
                        "ended_at": at if ended else None,
                        "stopped_reason": info.get("stoppedReason", "Local") if ended else None})
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
    evse_of = {(sid, tx): evse for sid, tx, evse in _sqlite_rows(cur, _sqlite_transactions, fresh, _UPSERT_KEYS)}
    for m in meters:  # a sampled value without an EVSE gets its transaction's, as after the upsert
        if m["evse_id"] is None:
            m["evse_id"] = evse_of.get((m["station_id"], m["transaction_id"]))
    _sqlite_rows(cur, _sqlite_meters, meters, _METER_COLUMNS)
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
    op_dynamic_pushed: ops_dynamic_pushed,  # setpoints: UpdateDynamicSchedule's values and log rows
}
