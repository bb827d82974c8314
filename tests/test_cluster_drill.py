"""The 3-node drill on PostgreSQL + NATS (sim/failover.py): 300 light stations spread over three `v2gstack csms`
processes run transactions; the node running the grid scheduler is killed with SIGKILL mid-run. Its stations boot
on the other nodes, every acknowledged TransactionEvent is stored once (and once in the JetStream stream), no
transaction stays open, a command through one surviving node's API reaches a station on the other, and the
scheduler singleton runs on a surviving node. The reconnect times are printed (bench/cluster_failover.py measures
them for the docs), not asserted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.csms import cluster_db_url

from v2gstack.csms.singletons import GRID
from v2gstack.sim.failover import DrillConfig, run_drill

pytestmark = pytest.mark.timeout(2400)



@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from cluster_db_url(tmp_path)


async def test_three_nodes_300_stations_one_killed(pg_url: str, tmp_path: Path) -> None:
    report = await run_drill(DrillConfig(pg_url, tmp_path / "drill", nodes=3, stations=300, wait_s=420))
    print("\n".join(report.lines()))
    # the killed node had stations, and every one of them booted on another node
    assert report.victim_stations > 0
    assert report.not_reconnected == 0
    assert len(report.reconnect_s) == report.victim_stations
    # every acknowledged event is in the database exactly once, with its meter value once; nothing else is
    assert report.acked > 0 and report.missing == 0 and report.unacked_stored == 0
    assert report.stored == report.stored_keys == report.acked
    assert report.meter_values == report.acked
    # the stations ended every transaction they started: none is left open
    assert report.transactions > 0 and report.open_transactions == 0
    # and the event stream holds each acknowledged TransactionEvent once
    assert report.stream_tx == report.acked
    # a command through one surviving node reached a station held by the other
    assert report.command["via"] != report.command["owner"] and report.victim not in (
        report.command["via"], report.command["owner"])
    assert report.command["status"] == 200, report.command
    assert report.command["received"] == ["TriggerMessage"]
    # the scheduler singleton moved to a surviving node, which runs the grid control fed from the stream
    assert report.leader_after and report.leader_after != report.victim
    assert GRID in report.leader_api["singletonsHere"]
    assert report.leader_api["gridSessions"] > 0  # the running sessions of all nodes, rebuilt from the stream
