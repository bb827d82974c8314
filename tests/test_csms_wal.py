"""WAL checkpoints beside the writer (csms/wal.py): the log is copied back by the side thread, durability kept."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from v2gstack.csms.store import Store, op_record_transaction_event
from v2gstack.csms.wal import checkpointable
from v2gstack.csms.worker import StoreWorker


def _event(seq: int) -> dict:
    return {"eventType": "Started" if seq == 0 else "Updated", "timestamp": "2026-11-23T10:00:00Z",
            "triggerReason": "MeterValuePeriodic", "seqNo": seq, "transactionInfo": {"transactionId": "tx-1"},
            "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": "2026-11-23T10:00:00Z", "sampledValue": [{"value": 1000.0 + seq}]}]}


def test_the_side_thread_copies_the_log_back_and_the_writer_keeps_full_sync(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    store = Store(f"sqlite:///{db}")
    store.add_station("CS-1")
    worker = StoreWorker(store)
    try:
        assert worker.wal is not None and worker.wal._thread.name == "csms-wal-checkpoint"
        for seq in range(20):
            worker.submit(op_record_transaction_event, "CS-1", _event(seq)).result()
        done = threading.Event()
        while not done.wait(0.05) and worker.wal.checkpoints == 0:
            pass
        assert worker.wal.checkpoints > 0
        with store.engine.connect() as c:  # commits are still fsynced to the log
            assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        worker.close()  # the side thread stops; the store's connections stay open, so the log is not closed away
        # the database file alone (without its log) holds every event: below the writer's own 1,000-page threshold
        # only the side thread can have copied them there
        alone = tmp_path / "alone.db"
        alone.write_bytes(db.read_bytes())
        with sqlite3.connect(alone) as c:
            assert c.execute("SELECT count(*) FROM transaction_events").fetchone()[0] == 20
    finally:
        worker.close()
        store.close()
    assert not worker.wal._thread.is_alive()
    assert len(Store(f"sqlite:///{db}").transaction("CS-1", "tx-1")["events"]) == 20


def test_no_checkpointer_without_a_log() -> None:
    store = Store("sqlite://")
    try:
        assert not checkpointable(store.engine)
        worker = StoreWorker(store)
        assert worker.wal is None
        worker.close()
    finally:
        store.close()
