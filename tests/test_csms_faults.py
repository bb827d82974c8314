"""Fault tests of the CSMS with storage, on SQLite and PostgreSQL: the link drops mid-transaction, and the CSMS
process is killed (SIGKILL) and restarted on the same database. Every TransactionEvent and every sampled value the
station made must end up in the database exactly once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.csms import PASSWORD, TOKEN, make_db_url, our_station, running_csms
from helpers.station import record_emitted
from helpers.wait import until

from v2gstack.csms.service import Csms, CsmsConfig
from v2gstack.csms.store import Store

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_db_url(request.param, tmp_path)


def _sampled(events: list[dict[str, Any]]) -> list[tuple[int, str, float]]:
    """(seqNo, measurand, value) of every sampled value in the events."""
    return [(e["seqNo"], v.get("measurand", "Energy.Active.Import.Register"), float(v["value"]))
            for e in events for mv in e.get("meterValue", []) for v in mv["sampledValue"]]


def _assert_exactly_once(store: Store, emitted: list[dict[str, Any]]) -> dict[str, Any]:
    """The database holds each emitted event once, with exactly its sampled values."""
    tx_ids = {e["transactionInfo"]["transactionId"] for e in emitted}
    assert len(tx_ids) == 1
    tx = store.transaction("CS1", tx_ids.pop())
    assert tx is not None
    assert [e["seqNo"] for e in tx["events"]] == [e["seqNo"] for e in emitted] == list(range(len(emitted)))
    by_event = [(e["seqNo"], _sampled([e["payload"]])) for e in tx["events"]]
    assert by_event == [(e["seqNo"], _sampled([e])) for e in emitted]
    assert len(tx["meterValues"]) == len(_sampled(emitted))
    assert sorted(m["value"] for m in tx["meterValues"]) == sorted(v for _, _, v in _sampled(emitted))
    return tx


async def test_link_drops_mid_transaction(db_url: str) -> None:
    """The CSMS goes away mid-transaction and comes back on the same port and database: the station's queue
    (events marked offline) is replayed in order and stored once."""
    async with running_csms(db_url) as csms, our_station(csms) as st:
        emitted = record_emitted(st)
        await st.wait_accepted()
        st.set_ev(1, power_w=11000.0, soc=20.0, battery_wh=50000.0)
        await st.plug_in(1)
        await st.present_token(1, TOKEN)
        await until(lambda: len(emitted) >= 4)
        port = csms.port
        await csms.server.close()  # every connection drops, nobody listens
        await until(lambda: not st.connected)
        offline_from = len(emitted)
        await until(lambda: len(emitted) >= offline_from + 3)  # periodic meter values pile up on disk
        second = Csms(csms.store, CsmsConfig(ping_interval=None))
        await second.start("127.0.0.1", port)
        try:
            await until(lambda: st.connected, 30)
            await st.present_token(1, TOKEN)  # stop
            await st.unplug(1)
            await st.wait_queue_empty()
            tx = _assert_exactly_once(csms.store, emitted)
            assert tx["state"] == "Ended"
            assert any(e["offline"] for e in tx["events"][offline_from:])
            assert not any(e["offline"] for e in tx["events"][:offline_from - 1])
        finally:
            await second.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_csms(db_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "v2gstack", "csms", "--db", db_url, "--port", str(port), "--api-port", "0",
         "--heartbeat-interval", "60"],
        stdout=log.open("ab"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})


async def test_csms_killed_and_restarted_loses_nothing(db_url: str, tmp_path: Path) -> None:
    """SIGKILL in the middle of a session, restart on the same database: nothing acknowledged is lost, nothing is
    stored twice."""
    store = Store(db_url)
    store.add_station("CS1", PASSWORD)
    store.put_id_token(TOKEN["idToken"], TOKEN["type"])
    port, log = _free_port(), tmp_path / "csms.log"
    proc = _start_csms(db_url, port, log)
    fake = type("C", (), {"port": port})()  # our_station only needs the port
    try:
        async with our_station(fake, tx_interval=1) as st:  # type: ignore[arg-type]
            emitted = record_emitted(st)
            await until(lambda: st.link.registration == "Accepted", 30)
            st.set_ev(1, power_w=22000.0, soc=10.0, battery_wh=80000.0)
            await st.plug_in(1)
            await st.present_token(1, TOKEN)
            await until(lambda: len(emitted) >= 6)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            await until(lambda: not st.connected)
            killed_at = len(emitted)
            await until(lambda: len(emitted) >= killed_at + 3)
            proc = _start_csms(db_url, port, log)
            await until(lambda: st.connected, 30)
            await st.present_token(1, TOKEN)
            await st.unplug(1)
            await st.wait_queue_empty()
        tx = _assert_exactly_once(store, emitted)
        assert tx["state"] == "Ended" and tx["stoppedReason"] == "Local"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(15) == 0, log.read_text()[-2000:]
        finally:
            if proc.poll() is None:
                proc.kill()
            store.close()
