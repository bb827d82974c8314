"""Commands across CSMS nodes (csms/cluster.py): the REST API of one node reaches a station connected to another
node through NATS request/reply (the local NATS server; skipped without it), on one PostgreSQL database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.csms import NATS_URL, api_client, cluster_db_url, our_station, running_csms
from helpers.wait import until
from typer.testing import CliRunner

from v2gstack.csms.cli import app
from v2gstack.csms.ownership import op_claim_station, op_station_owner
from v2gstack.csms.service import Csms

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from cluster_db_url(tmp_path)


async def test_a_command_through_one_node_reaches_a_station_on_another(pg_url: str) -> None:
    prefix = f"v2gtest{uuid.uuid4().hex[:8]}"  # this run's subjects and stream, apart from other runs
    seen_at_a: list[tuple[str, str]] = []
    async with running_csms(pg_url, node_id="node-a", nats_url=NATS_URL, subject_prefix=prefix) as a, \
            running_csms(pg_url, node_id="node-b", nats_url=NATS_URL, subject_prefix=prefix) as b:
        a.cluster_listeners.append(lambda sid, action, p: seen_at_a.append((sid, action)))
        async with our_station(b) as st:
            await until(lambda: st.link.registration == "Accepted", 30)
            # node A's live views (the dashboard) see what the station told node B, through the event feed
            await until(lambda: ("CS1", "BootNotification") in seen_at_a)
            await _commands_reach_the_other_node(a)
        assert a.feed is not None and b.feed is not None and b.feed.published > 0
        await a.feed.js.delete_stream(a.feed.stream)


async def _commands_reach_the_other_node(a: Csms) -> None:
    """The API of node A reaches the station held by node B; a bad payload gets B's 422; a dead owner 504."""
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


def test_a_cluster_says_what_it_lacks(pg_url: str, tmp_path: Path) -> None:
    """SQLite, NATS without a node id, a bad subject prefix and an unreachable NATS are refused with a clear line."""
    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(app, [*args, "--api-port", "0", "--port", "0"])
        return result.exit_code, result.stderr

    code, err = run("--db", f"sqlite:///{tmp_path / 'one.db'}", "--node-id", "node-a")
    assert code == 2 and "PostgreSQL" in err
    code, err = run("--db", pg_url, "--nats", NATS_URL)
    assert code == 2 and "--node-id" in err
    settings = tmp_path / "csms.toml"
    settings.write_text('[cluster]\nsubject_prefix = "v2g.*"\n')
    code, err = run("--config", str(settings), "--db", pg_url, "--node-id", "node-a")
    assert code == 2 and "subject_prefix" in err
    code, err = run("--db", pg_url, "--node-id", "node-a", "--nats", "nats://127.0.0.1:1")
    assert code == 2 and "NATS not reachable at nats://127.0.0.1:1" in err and "cluster needs NATS" in err
