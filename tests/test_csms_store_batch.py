"""The batch form of TransactionEvents (csms/store_batch.py) stores exactly what the one-event path stores."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.csms import make_db_url

from v2gstack.csms import store_batch
from v2gstack.csms.store import Store, StoreError, op_record_event_and_authorize, op_record_transaction_event
from v2gstack.csms.store_batch import ops_record_transaction_events
from v2gstack.csms.worker import StoreWorker


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_db_url(request.param, tmp_path)


def _event(station: int, seq: int, event_type: str = "Updated", evse: bool = False, **extra: Any) -> dict[str, Any]:
    return {"eventType": event_type, "timestamp": f"2026-11-23T10:00:{seq:02d}Z", "triggerReason": "MeterValuePeriodic",
            "seqNo": seq, "transactionInfo": {"transactionId": f"tx-{station}", "chargingState": "Charging"},
            **({"evse": {"id": 2, "connectorId": 1}} if evse else {}),
            "meterValue": [{"timestamp": f"2026-11-23T10:00:{seq:02d}Z", "sampledValue": [
                {"value": 1000.0 + seq, "measurand": "Energy.Active.Import.Register",
                 "unitOfMeasure": {"unit": "kWh", "multiplier": -3}},
                {"value": 7.4, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}}]}], **extra}


def _snapshot(store: Store, stations: int) -> list[dict[str, Any]]:
    out = []
    for i in range(stations):
        tx = store.transaction(f"CS-{i}", f"tx-{i}")
        assert tx is not None
        for e in tx["events"]:
            e.pop("receivedAt")
        out.append(tx)
    return out


@pytest.mark.parametrize("rows", [store_batch.SQLITE_ROWS, 2])
def test_batch_form_stores_what_the_one_event_path_stores(db_url: str, tmp_path: Path, rows: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Same events through both paths (started, updates without evse, ended, replays inside and across batches):
    the same transactions, events and normalised meter values; replays answered False and stored once. With
    rows=2 SQLite writes the upserts and sampled values in several multi-row statements per batch."""
    if rows != store_batch.SQLITE_ROWS and not db_url.startswith("sqlite"):
        pytest.skip("the row chunks are SQLite's")
    monkeypatch.setattr(store_batch, "SQLITE_ROWS", rows)
    other = Store(f"sqlite:///{tmp_path / 'one.db'}")
    store = Store(db_url)
    try:
        for s in (store, other):
            for i in range(3):
                s.add_station(f"CS-{i}")
        rounds = [[(f"CS-{i}", _event(i, 0, "Started", evse=True)) for i in range(3)],
                  [(f"CS-{i}", _event(i, 1)) for i in range(3)] + [("CS-0", _event(0, 0, "Started", evse=True))],
                  [(f"CS-{i}", _event(i, 2, "Ended", stoppedReason="EVDisconnected")) for i in range(3)]]
        expected = [[other.record_transaction_event(sid, p) for sid, p in r] for r in rounds]
        with store.session() as s:
            assert ops_record_transaction_events(s, rounds[0]) == expected[0] == [True] * 3
        with store.session() as s:  # two events of one transaction in a batch: handed to the one-event path
            assert ops_record_transaction_events(s, rounds[1]) == expected[1] == [True, True, True, False]
        with store.session() as s:
            assert ops_record_transaction_events(s, rounds[2] + rounds[2][:1]) == [True, True, True, False]
        with store.session() as s:  # the whole batch again: all replays
            assert ops_record_transaction_events(s, rounds[2]) == [False] * 3
        batched, single = _snapshot(store, 3), _snapshot(other, 3)
        assert batched == single
        assert [t["state"] for t in batched] == ["Ended"] * 3 and batched[0]["evseId"] == 2
        assert {m["evseId"] for t in batched for m in t["meterValues"]} == {2}  # from the transaction, not the event
        assert [m["value"] for m in batched[1]["meterValues"] if m["unit"] == "Wh"] == [1000.0, 1001.0, 1002.0]
        assert {m["value"] for m in batched[1]["meterValues"] if m["unit"] == "W"} == {7400.0}
    finally:
        store.close()
        other.close()


def test_worker_batches_events_and_an_unknown_station_fails_alone(db_url: str) -> None:
    """Many stations' events queued at once commit in few transactions; an unknown station gets its StoreError and
    the others in its batch are still stored, each exactly once."""
    store = Store(db_url)
    for i in range(40):
        store.add_station(f"CS-{i}")
    worker = StoreWorker(store)

    async def scenario() -> list[Any]:
        calls = [worker.run(op_record_event_and_authorize, f"CS-{i}", _event(i, 0, "Started", evse=True))
                 for i in range(40)]
        calls.insert(20, worker.run(op_record_transaction_event, "CS-404", _event(404, 0)))
        calls += [worker.run(op_record_event_and_authorize, f"CS-{i}", _event(i, 0, "Started", evse=True))
                  for i in range(5)]  # replays
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        results = asyncio.run(scenario())
        assert isinstance(results[20], StoreError)
        del results[20]
        assert results == [(True, None)] * 40 + [(False, None)] * 5
        assert worker.batches < 45
        assert all(len(store.transaction(f"CS-{i}", f"tx-{i}")["events"]) == 1 for i in range(40))
    finally:
        worker.close()
        store.close()


def test_reads_do_not_wait_behind_writes(tmp_path: Path) -> None:
    """While the database thread is stuck inside a write batch, `worker.read` still answers from what is committed."""
    import threading

    from v2gstack.csms.store import op_station

    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    store.add_station("CS-1")
    worker = StoreWorker(store)
    inside, release = threading.Event(), threading.Event()

    def op_blocking_write(s: Any) -> None:
        op_record_transaction_event(s, "CS-1", _event(1, 0, "Started", evse=True))
        inside.set()
        release.wait(30)

    async def scenario() -> None:
        write = asyncio.ensure_future(worker.run(op_blocking_write))
        await asyncio.get_running_loop().run_in_executor(None, inside.wait, 30)
        station = await asyncio.wait_for(worker.read(op_station, "CS-1"), 20)  # the writer is still blocked
        assert station is not None and station.id == "CS-1" and not write.done()
        assert store.transaction("CS-1", "tx-1") is None  # the write is not committed yet: not seen
        release.set()
        await write
        assert store.transaction("CS-1", "tx-1") is not None

    try:
        asyncio.run(scenario())
    finally:
        release.set()
        worker.close()
        store.close()


def test_the_worker_writes_a_run_of_events_through_the_batch_form(db_url: str) -> None:
    """The service's call shape (station, payload, OCPP version): the events of many stations queued at once go in
    through the batch form (not the one-by-one fallback), and a Started transaction notes its OCPP version."""
    from sqlalchemy import select

    from v2gstack.csms.models import Transaction

    store = Store(db_url)
    for i in range(60):
        store.add_station(f"CS-{i}")
    worker = StoreWorker(store)

    async def scenario() -> list[Any]:
        return await asyncio.gather(*(worker.run(op_record_event_and_authorize, f"CS-{i}",
                                                 _event(i, 0, "Started", evse=True), "2.0.1") for i in range(60)))

    try:
        assert asyncio.run(scenario()) == [(True, None)] * 60
        assert worker.batch_form_operations == 60  # none fell back to the savepoint-per-operation path
        with store.session() as s:
            assert set(s.scalars(select(Transaction.ocpp_version))) == {"2.0.1"}
    finally:
        worker.close()
        store.close()


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from make_db_url("postgresql", tmp_path)


def test_binary_arrays_read_back_as_sent(pg_url: str) -> None:
    """The arrays packed by csms/pg_arrays.py are what PostgreSQL reads: NULLs, empty arrays, non-ASCII text,
    aware times in any offset, large and negative numbers."""
    from datetime import UTC, datetime, timedelta, timezone

    import psycopg

    from v2gstack.csms.pg_arrays import bool_array, float8_array, int4_array, text_array, timestamptz_array

    cet = timezone(timedelta(hours=1))
    columns: list[tuple[Any, str, list[Any]]] = [
        (int4_array, "int", [1, None, -2**31, 2**31 - 1]), (int4_array, "int", []),
        (float8_array, "float8", [0.1, -7400.0, None, 1e300]), (bool_array, "bool", [True, None, False]),
        (text_array, "text", ["LOAD-1", None, "", 'quote " and \\ and é €']), (text_array, "text", []),
        (timestamptz_array, "timestamptz", [datetime(2026, 11, 23, 10, 0, 0, 123456, UTC), None,
                                            datetime(1999, 12, 31, 23, 0, tzinfo=cet)])]
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT " + ", ".join(f"%b::{kind}[]" for _, kind, _ in columns),
                           [pack(values) for pack, _, values in columns]).fetchone()
    assert row is not None
    assert list(row) == [values for _, _, values in columns]
