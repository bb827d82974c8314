"""Helpers for the CSMS tests: databases (a SQLite file, a throwaway PostgreSQL database) and a running CSMS."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from v2gstack.csms.service import Csms, CsmsConfig
from v2gstack.csms.store import Store
from v2gstack.ocpp import BackOff
from v2gstack.station import ChargingStation, StationConfig

PG_ADMIN = os.environ.get("V2GSTACK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
PASSWORD = "station-password-0001"
TOKEN = {"idToken": "04A1B2C3", "type": "ISO14443"}
SCALE = 0.02


def pg_available() -> bool:
    """Whether the local PostgreSQL answers."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:
        return False


def make_db_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database of `kind` ('sqlite' or 'postgresql'), dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'csms.db'}"
        return
    if not pg_available():
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN.split('@')[-1]}")
    import psycopg

    name = f"v2gstack_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def running_csms(db_url: str, *, stations: dict[str, str | None] | None = None,
                       tokens: list[dict[str, Any]] | None = None, ssl: Any = None,
                       **config: Any) -> AsyncIterator[Csms]:
    """Our CSMS on loopback with registered stations (id -> password) and idTokens."""
    store = Store(db_url)
    for sid, password in (stations or {"CS1": PASSWORD}).items():
        if store.station(sid) is None:
            store.add_station(sid, password)
    for tok in tokens if tokens is not None else [TOKEN]:
        store.put_id_token(tok["idToken"], tok["type"], tok.get("status", "Accepted"))
    config.setdefault("ping_interval", None)
    csms = Csms(store, CsmsConfig(**config), ssl=ssl)
    await csms.start()
    try:
        yield csms
    finally:
        await csms.close()
        store.close()


def csms_url(csms: Csms) -> str:
    """Where stations connect."""
    return f"ws://127.0.0.1:{csms.port}/ocpp"


@asynccontextmanager
async def our_station(csms: Csms, station_id: str = "CS1", *, password: str | None = PASSWORD,
                      tx_interval: int = 1, **kw: Any) -> AsyncIterator[ChargingStation]:
    """Our station connected to our CSMS (fast clock)."""
    kw.setdefault("time_scale", SCALE)
    kw.setdefault("boot_retry_s", 1.0)
    st = ChargingStation(StationConfig(station_id, csms_url(csms), password=password,
                                       backoff=BackOff(0.02, 0.02, 1), call_timeout=5.0, ping_interval=None, **kw))
    st.model.put("SampledDataCtrlr", "TxUpdatedInterval", str(tx_interval))
    await st.start()
    try:
        yield st
    finally:
        await st.stop()
