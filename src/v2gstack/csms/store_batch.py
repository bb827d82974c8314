"""Batch forms of the hot write operations: many stations' TransactionEvents in three statements per batch.

The StoreWorker (csms/worker.py) collects the operations queued meanwhile into one database transaction. For a run
of TransactionEvents it calls the batch form registered here instead of the one-event `op_*` function: the events,
the transaction upserts and the sampled values of the whole run each go in as ONE multi-row INSERT whose rows come
from a JSON array parameter (`json_each` on SQLite, `json_array_elements` on PostgreSQL). The statement text never
changes with the batch size, so the driver prepares it once (sqlite3's statement cache, psycopg's automatic
prepare), and there are no per-row ORM objects or per-row statements. Replays are decided as before by ON CONFLICT
DO NOTHING on (station, transactionId, seqNo); the RETURNING rows say which events were new.

Runs the batch form does not cover (signed meter values, two events of one transaction in the same batch) are
handed to the one-event function, in order, so the result is always what the one-event path would have stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from ..constants import ISO_FACTS_VENDOR
from .store import (
    _db_time,
    _meter_rows,
    _parse_time,
    _signed,
    op_id_token_info,
    op_link_iso15118,
    op_record_event_and_authorize,
    op_record_transaction_event,
)

Item = tuple[str, dict[str, Any]]  # (station id, TransactionEventRequest)

_UPSERT_SET = """ON CONFLICT (station_id, transaction_id) DO UPDATE SET
 evse_id = COALESCE(excluded.evse_id, t.evse_id), connector_id = COALESCE(excluded.connector_id, t.connector_id),
 id_token = COALESCE(excluded.id_token, t.id_token),
 charging_state = COALESCE(excluded.charging_state, t.charging_state),
 started_at = CASE WHEN excluded.state = 'Started' THEN excluded.started_at ELSE t.started_at END,
 state = CASE WHEN t.state = 'Ended' OR excluded.state = 'Ended' THEN 'Ended' ELSE excluded.state END,
 ended_at = COALESCE(excluded.ended_at, t.ended_at),
 stopped_reason = COALESCE(excluded.stopped_reason, t.stopped_reason)"""

# SQLite: `WHERE true` resolves the parsing ambiguity of INSERT ... SELECT ... ON CONFLICT.
_SQLITE = {
    "events": """INSERT INTO transaction_events (station_id, transaction_id, seq_no, event_type, trigger_reason,
 timestamp, offline, payload, received_at)
 SELECT e.value->>'s', e.value->>'t', e.value->>'q', e.value->>'e', e.value->>'r', e.value->>'at', e.value->>'o',
 e.value->'p', e.value->>'rx' FROM json_each(?) AS e WHERE true
 ON CONFLICT (station_id, transaction_id, seq_no) DO NOTHING RETURNING id, station_id, transaction_id, seq_no""",
    "transactions": """INSERT INTO transactions AS t (station_id, transaction_id, evse_id, connector_id, id_token,
 state, charging_state, started_at, ended_at, stopped_reason, iso15118)
 SELECT u.value->>'s', u.value->>'t', u.value->>'evse', u.value->>'conn', u.value->>'tok', u.value->>'e',
 u.value->>'cs', u.value->>'at', u.value->>'end', u.value->>'why', '{}' FROM json_each(?) AS u WHERE true
 """ + _UPSERT_SET,
    "meter_values": """INSERT INTO meter_values (station_id, transaction_id, evse_id, event_id, timestamp, measurand,
 phase, location, context, value, unit, sent_value, sent_unit, multiplier)
 SELECT m.value->>'station_id', m.value->>'transaction_id',
 COALESCE(m.value->>'evse_id', (SELECT x.evse_id FROM transactions AS x WHERE x.station_id = m.value->>'station_id'
   AND x.transaction_id = m.value->>'transaction_id')),
 m.value->>'event_id', m.value->>'timestamp', m.value->>'measurand', m.value->>'phase', m.value->>'location',
 m.value->>'context', m.value->>'value', m.value->>'unit', m.value->>'sent_value', m.value->>'sent_unit',
 m.value->>'multiplier' FROM json_each(?) AS m""",
}
_POSTGRESQL = {
    "events": """INSERT INTO transaction_events (station_id, transaction_id, seq_no, event_type, trigger_reason,
 timestamp, offline, payload, received_at)
 SELECT e->>'s', e->>'t', (e->>'q')::int, e->>'e', e->>'r', (e->>'at')::timestamptz, (e->>'o')::boolean, e->'p',
 (e->>'rx')::timestamptz FROM json_array_elements(%s::json) AS e
 ON CONFLICT (station_id, transaction_id, seq_no) DO NOTHING RETURNING id, station_id, transaction_id, seq_no""",
    "transactions": """INSERT INTO transactions AS t (station_id, transaction_id, evse_id, connector_id, id_token,
 state, charging_state, started_at, ended_at, stopped_reason, iso15118)
 SELECT u->>'s', u->>'t', (u->>'evse')::int, (u->>'conn')::int, u->>'tok', u->>'e', u->>'cs',
 (u->>'at')::timestamptz, (u->>'end')::timestamptz, u->>'why', '{}' FROM json_array_elements(%s::json) AS u
 """ + _UPSERT_SET,
    "meter_values": """INSERT INTO meter_values (station_id, transaction_id, evse_id, event_id, timestamp, measurand,
 phase, location, context, value, unit, sent_value, sent_unit, multiplier)
 SELECT m->>'station_id', m->>'transaction_id',
 COALESCE((m->>'evse_id')::int, (SELECT x.evse_id FROM transactions AS x WHERE x.station_id = m->>'station_id'
   AND x.transaction_id = m->>'transaction_id')),
 (m->>'event_id')::int, (m->>'timestamp')::timestamptz, m->>'measurand', m->>'phase', m->>'location',
 m->>'context', (m->>'value')::float8, m->>'unit', (m->>'sent_value')::float8, m->>'sent_unit',
 (m->>'multiplier')::int FROM json_array_elements(%s::json) AS m""",
}


def _dumps(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, separators=(",", ":"), default=str)


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
    sql = _POSTGRESQL if dialect == "postgresql" else _SQLITE
    pg = dialect == "postgresql"

    def at(t: datetime | None) -> Any:
        return None if t is None else (t.isoformat() if pg else _db_time(dialect, t))

    received = at(datetime.now(UTC))
    events, upserts = [], []
    for sid, p in items:
        info = p["transactionInfo"]
        when = at(_parse_time(p.get("timestamp")))
        ended = p["eventType"] == "Ended"
        evse = p.get("evse") or {}
        events.append({"s": sid, "t": info["transactionId"], "q": p["seqNo"], "e": p["eventType"],
                       "r": p["triggerReason"], "at": when, "o": bool(p.get("offline", False)), "p": p,
                       "rx": received})
        upserts.append({"s": sid, "t": info["transactionId"], "evse": evse.get("id"), "conn": evse.get("connectorId"),
                        "tok": (p.get("idToken") or {}).get("idToken"), "e": p["eventType"],
                        "cs": info.get("chargingState"), "at": when, "end": when if ended else None,
                        "why": info.get("stoppedReason", "Local") if ended else None})
    cur = s.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cur.execute(sql["events"], (_dumps(events),))
        new = {(sid, tx, int(seq)): event_id for event_id, sid, tx, seq in cur.fetchall()}
        stored = []
        fresh_upserts, meters = [], []
        for (sid, p), up in zip(items, upserts, strict=True):
            event_id = new.pop((sid, up["t"], p["seqNo"]), None)  # pop: a second copy in the batch is a replay
            stored.append(event_id is not None)
            if event_id is None:
                continue
            fresh_upserts.append(up)
            rows = _meter_rows(dialect, sid, up["t"], event_id, p.get("meterValue", []), up["evse"])
            if pg:
                for r in rows:
                    r["timestamp"] = r["timestamp"].isoformat()
            meters.extend(rows)
        if fresh_upserts:
            cur.execute(sql["transactions"], (_dumps(fresh_upserts),))
        if meters:
            cur.execute(sql["meter_values"], (_dumps(meters),))
    finally:
        cur.close()
    for (sid, p), ok in zip(items, stored, strict=True):
        custom = p.get("customData") or {}
        if ok and custom.get("vendorId") == ISO_FACTS_VENDOR:
            op_link_iso15118(s, sid, p["transactionInfo"]["transactionId"],
                             {k: v for k, v in custom.items() if k != "vendorId"})
    return stored


def ops_record_events_and_authorize(s: Session,
                                    items: list[Item]) -> list[tuple[bool, dict[str, Any] | None]]:
    """`op_record_event_and_authorize` for many events in one go."""
    stored = ops_record_transaction_events(s, items)
    return [(ok, op_id_token_info(s, p["idToken"]) if p.get("idToken") else None)
            for ok, (_, p) in zip(stored, items, strict=True)]


# one-operation function -> its batch form (a list of argument tuples in, a list of results out)
BATCH_FORMS: dict[Callable[..., Any], Callable[[Session, list[Any]], list[Any]]] = {
    op_record_transaction_event: ops_record_transaction_events,
    op_record_event_and_authorize: ops_record_events_and_authorize,
}
