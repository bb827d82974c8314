"""Commands across CSMS nodes (csms/cluster.py): the REST API of one node reaches a station connected to another
node through NATS request/reply (the local NATS server; skipped without it), on one PostgreSQL database."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.csms import api_client, make_db_url, our_station, running_csms
from helpers.wait import until

from v2gstack.csms.ownership import op_claim_station, op_station_owner

NATS = "nats://127.0.0.1:4222"
pytestmark = pytest.mark.timeout(60)


def _nats_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    if not _nats_up():
        pytest.skip("no NATS server at 127.0.0.1:4222")
    yield from make_db_url("postgresql", tmp_path)


async def test_a_command_through_one_node_reaches_a_station_on_another(pg_url: str) -> None:
    async with running_csms(pg_url, node_id="node-a", nats_url=NATS) as a, \
            running_csms(pg_url, node_id="node-b", nats_url=NATS) as b, our_station(b) as st:
        await until(lambda: st.link.registration == "Accepted", 30)
        await until(lambda: a.store.run(op_station_owner, "CS1") is not None)
        assert "CS1" not in a.server.connections
        async with api_client(a) as api:
            r = await api.post("/api/stations/CS1/trigger-message", json={"requestedMessage": "Heartbeat"})
            assert r.status_code == 200, r.text
            assert r.json()["response"]["status"] == "Accepted"
            r = await api.post("/api/stations/CS1/call-GetVariables", json={"getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "NetworkConfigurationPriority"}}]})
            assert r.status_code == 200, r.text
            assert r.json()["response"]["getVariableResult"][0]["attributeValue"] == "0"
            r = await api.post("/api/stations/CS1/call-GetVariables", json={"getVariableData": []})  # schema: minItems
            assert r.status_code == 422, r.text  # the owning node's verdict, relayed
            # a station whose owner record names a node that is gone: no responder, 504 after the wait
            a.store.run(op_claim_station, "CS1", "node-gone", 30)
            r = await api.post("/api/stations/CS1/trigger-message", json={"requestedMessage": "Heartbeat"})
            assert r.status_code == 504 and "node-gone" in r.json()["detail"], r.text


async def test_a_single_node_answers_409_for_a_station_it_does_not_hold(pg_url: str) -> None:
    async with running_csms(pg_url) as a, api_client(a) as api:
        r = await api.post("/api/stations/CS1/trigger-message", json={"requestedMessage": "Heartbeat"})
        assert r.status_code == 409, r.text
