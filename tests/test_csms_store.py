"""CSMS storage on SQLite and on the local PostgreSQL: registry, idTokens, exactly-once transaction events."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import uuid

import pytest
from helpers.paths import ROOT

from v2gstack.csms.store import Store, StoreError, check_password, engine_url, hash_password

PG_ADMIN = os.environ.get("V2GSTACK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN.replace("postgresql://", "postgresql://", 1), connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'csms.db'}"
        return
    if not _pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN.split('@')[-1]}")
    import psycopg

    name = f"v2gstack_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _event(seq: int, event_type: str, trigger: str, energy: float, **info: str) -> dict:
    return {
        "eventType": event_type, "timestamp": f"2026-11-23T10:{seq:02d}:00Z", "triggerReason": trigger, "seqNo": seq,
        "transactionInfo": {"transactionId": "tx-1", **info},
        "evse": {"id": 1, "connectorId": 1}, "idToken": {"idToken": "AABBCCDD", "type": "ISO14443"},
        "meterValue": [{"timestamp": f"2026-11-23T10:{seq:02d}:00Z", "sampledValue": [
            {"value": energy, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
            {"value": 7400.0, "measurand": "Power.Active.Import"}]}],
    }


def test_passwords_are_hashed_and_checked() -> None:
    stored = hash_password("s3cret-Passw0rd-1")
    assert "s3cret" not in stored and stored.startswith("scrypt$")
    assert check_password("s3cret-Passw0rd-1", stored)
    assert not check_password("wrong", stored)
    assert not check_password("s3cret-Passw0rd-1", None)


def test_urls() -> None:
    assert engine_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert engine_url("sqlite:///x.db") == "sqlite:///x.db"
    with pytest.raises(StoreError, match="unsupported database URL"):
        engine_url("mysql://h/db")


def test_station_registry_and_id_tokens(db_url: str) -> None:
    store = Store(db_url)
    try:
        store.add_station("CS-1", password="s3cret-Passw0rd-1", security_profile=2)
        with pytest.raises(StoreError, match="already registered"):
            store.add_station("CS-1")
        assert store.check_station_password("CS-1", "s3cret-Passw0rd-1")
        assert not store.check_station_password("CS-1", "nope")
        assert not store.check_station_password("CS-404", "s3cret-Passw0rd-1")
        store.record_boot("CS-1", {"chargingStation": {"vendorName": "V", "model": "M"}, "reason": "PowerUp"},
                          "Accepted")
        store.record_status("CS-1", 1, 1, "Occupied")
        st = store.station("CS-1")
        assert st is not None and st.vendor == "V" and st.connector_status == {"1/1": "Occupied"}
        store.put_id_token("AABBCCDD", "ISO14443", "Accepted", account="acct-1")
        store.put_id_token("AABBCCDD", "ISO14443", "Blocked", account="acct-1")  # update, not a duplicate
        tok = store.id_token("AABBCCDD", "ISO14443")
        assert tok is not None and tok.status == "Blocked"
        assert store.delete_id_token("AABBCCDD", "ISO14443") and not store.delete_id_token("AABBCCDD", "ISO14443")
    finally:
        store.close()


def test_transaction_events_are_recorded_exactly_once(db_url: str) -> None:
    store = Store(db_url)
    try:
        store.add_station("CS-1")
        events = [_event(0, "Started", "CablePluggedIn", 0.0, chargingState="EVConnected"),
                  _event(1, "Updated", "MeterValuePeriodic", 1200.5, chargingState="Charging"),
                  _event(2, "Ended", "StopAuthorized", 2400.0, stoppedReason="Local")]
        assert [store.record_transaction_event("CS-1", e) for e in events] == [True, True, True]
        # the station replays what it queued while offline: nothing is recorded twice
        assert [store.record_transaction_event("CS-1", e) for e in events[1:]] == [False, False]
        store.link_iso15118("CS-1", "tx-1", {"SessionID": "0102030405060708", "EVCCID": "D21B04413B0F"})
        tx = store.transaction("CS-1", "tx-1")
        assert tx is not None
        assert tx["state"] == "Ended" and tx["stoppedReason"] == "Local" and tx["idToken"] == "AABBCCDD"
        assert [e["seqNo"] for e in tx["events"]] == [0, 1, 2]
        energy = [m["value"] for m in tx["meterValues"] if m["measurand"] == "Energy.Active.Import.Register"]
        assert energy == [0.0, 1200.5, 2400.0]
        assert {m["unit"] for m in tx["meterValues"]} == {"Wh", "W"}
        assert tx["iso15118"]["SessionID"] == "0102030405060708"
        assert [t["transactionId"] for t in store.transactions("CS-1")] == ["tx-1"]
        with pytest.raises(StoreError, match="unknown station"):
            store.record_transaction_event("CS-404", events[0])
    finally:
        store.close()


def test_nothing_acknowledged_is_lost_when_the_process_is_killed(db_url: str) -> None:
    """A child process records events and is SIGKILLed right after; a new Store sees every acknowledged one."""
    script = (
        "import os, sys, json\n"
        "from v2gstack.csms.store import Store\n"
        "s = Store(sys.argv[1]); s.add_station('CS-K')\n"
        "for i in range(50):\n"
        "    ok = s.record_transaction_event('CS-K', json.loads(sys.argv[2].replace('SEQ', str(i))))\n"
        "    print(i, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    template = ('{"eventType": "Updated", "timestamp": "2026-11-23T10:00:00Z", "triggerReason": "MeterValuePeriodic",'
                ' "seqNo": SEQ, "transactionInfo": {"transactionId": "tx-k"}, "meterValue": [{"timestamp": '
                '"2026-11-23T10:00:00Z", "sampledValue": [{"value": SEQ}]}]}')
    proc = subprocess.run([sys.executable, "-c", script, db_url, template], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -9, proc.stderr
    acknowledged = [int(x) for x in proc.stdout.split()]
    store = Store(db_url)
    try:
        tx = store.transaction("CS-K", "tx-k")
        assert tx is not None
        assert [e["seqNo"] for e in tx["events"]] == acknowledged == list(range(50))
        assert [m["value"] for m in tx["meterValues"]] == [float(i) for i in range(50)]
    finally:
        store.close()


def test_worker_survives_waiters_that_give_up(tmp_path) -> None:
    """A handler cancelled while its write is queued (its connection dropped) must not stop the database thread."""
    import asyncio

    from v2gstack.csms.store import op_seen
    from v2gstack.csms.worker import StoreWorker

    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    store.add_station("CS-1")
    worker = StoreWorker(store)

    async def scenario() -> None:
        waits = [asyncio.ensure_future(worker.run(op_seen, "CS-1")) for _ in range(50)]
        await asyncio.sleep(0)
        for w in waits[::2]:
            w.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
        assert await worker.run(op_seen, "CS-1") is None  # still serving

    try:
        asyncio.run(scenario())
    finally:
        worker.close()
        store.close()


def test_a_batch_that_read_still_writes_when_another_connection_commits_meanwhile(tmp_path) -> None:
    """SQLite in WAL mode cannot turn a transaction that has read into a writer once another connection committed
    meanwhile: it fails at once with "database is locked" (no busy wait). The database thread's transactions take
    the write lock at their BEGIN, so the other writer (the API, the grid control) waits for the batch instead, and
    both writes land."""
    import threading
    from datetime import UTC, datetime

    from v2gstack.csms.models import Station
    from v2gstack.csms.store import op_seen
    from v2gstack.csms.worker import StoreWorker

    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    store.add_station("CS-1")
    store.add_station("CS-2")
    worker = StoreWorker(store)
    others: list[threading.Thread] = []

    def other_writer() -> None:
        with store.session(write=True) as s:
            op_seen(s, "CS-2")

    def op_read_other_commits_then_write(s, station_id: str) -> None:
        station = s.get(Station, station_id)  # the batch reads first ...
        other = threading.Thread(target=other_writer)
        others.append(other)
        other.start()
        other.join(0.3)  # ... another connection commits meanwhile (or waits for the batch's lock) ...
        station.last_seen = datetime.now(UTC)  # ... then the batch writes

    try:
        worker.submit(op_read_other_commits_then_write, "CS-1").result(timeout=20)
        for t in others:
            t.join(10)
        assert all(s.last_seen is not None for s in store.stations())
    finally:
        worker.close()
        store.close()


def test_the_csms_reaches_the_database_only_through_op_functions() -> None:
    """Every `worker.run(...)` / `store.run(...)` in the CSMS runs a named `op_*` function (no lambdas, no private
    helpers), so each database operation is one documented function that runs alone or batched."""
    package = ROOT / "src" / "v2gstack" / "csms"
    runs = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("run", "read") and isinstance(node.func.value, ast.Attribute)
                    and node.func.value.attr in ("worker", "store")):
                target = node.args[0] if node.args else None
                name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
                runs.append((path.name, node.lineno, name))
    assert len(runs) > 20
    assert [r for r in runs if not (r[2] or "").startswith("op_")] == []
    # the Store's synchronous methods (CLI, API) are wrappers over op_* too: only Store.run opens a session
    store_source = (package / "store.py").read_text()
    assert store_source.count("with self.session() as s") == 1
    assert "self.run(op_" in store_source
