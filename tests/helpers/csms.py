"""Helpers for the CSMS tests: databases (a SQLite file, a throwaway PostgreSQL database), a running CSMS, and its
REST API with a token (in-process, or served by uvicorn on a free port)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from v2gstack.csms.api import create_app
from v2gstack.csms.auth import Role, create_token
from v2gstack.csms.service import Csms, CsmsConfig
from v2gstack.csms.store import Store
from v2gstack.ocpp import BackOff
from v2gstack.ocpp.v2x import ENERGY_TRANSFER_MODES
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


NATS_URL = "nats://127.0.0.1:4222"


def nats_available() -> bool:
    """Whether the local NATS server answers (a CSMS cluster's tests need it)."""
    import socket

    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=2).close()
        return True
    except OSError:
        return False


def cluster_db_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database for a CSMS cluster's test (skipped without NATS or PostgreSQL)."""
    if not nats_available():
        pytest.skip("no NATS server at 127.0.0.1:4222")
    yield from make_db_url("postgresql", tmp_path)


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
    """Our CSMS on loopback with registered stations (id -> password) and idTokens (`allowedEnergyTransfer`: its
    OCPP 2.1 modes; the default TOKEN's contract allows every mode, V2X included)."""
    store = Store(db_url)
    for sid, password in (stations or {"CS1": PASSWORD}).items():
        if store.station(sid) is None:
            store.add_station(sid, password)
    for tok in tokens if tokens is not None else [{**TOKEN, "allowedEnergyTransfer": list(ENERGY_TRANSFER_MODES)}]:
        store.put_id_token(tok["idToken"], tok["type"], tok.get("status", "Accepted"),
                           allowed_energy_transfer=tok.get("allowedEnergyTransfer"))
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


def api_token(csms: Csms, role: str = "admin", name: str | None = None) -> str:
    """A new API token of `role` for this CSMS."""
    return create_token(csms.store, name or f"test-{role}", Role.parse(role))[1]


def auth(token: str) -> dict[str, str]:
    """The request header that carries an API token."""
    return {"Authorization": f"Bearer {token}"}


def api_client(csms: Csms, role: str = "admin", **app_options: Any) -> httpx.AsyncClient:
    """An in-process client of the CSMS API with a fresh token of `role` (request handling only, no socket)."""
    app = create_app(csms, **app_options)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1",
                             headers=auth(api_token(csms, role)))


@asynccontextmanager
async def served_api(csms: Csms, **app_options: Any) -> AsyncIterator[str]:
    """The CSMS API served by uvicorn on a free loopback port; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(create_app(csms, **app_options), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
