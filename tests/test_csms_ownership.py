"""Several CSMS nodes on one database: the node holding a station's websocket owns its record (csms/ownership.py),
renews the lease, gives the station up when another node took it, releases it on disconnect; an expired lease
belongs to nobody. On SQLite and PostgreSQL, two in-process nodes."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from helpers.csms import PASSWORD, csms_url, make_db_url, our_station, running_csms
from helpers.wait import until

from v2gstack.csms.ownership import op_claim_station, op_station_owner

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_db_url(request.param, tmp_path)


async def test_the_node_holding_the_socket_owns_the_station(db_url: str) -> None:
    async with running_csms(db_url, node_id="node-a", owner_lease_s=30) as a, \
            running_csms(db_url, node_id="node-b", owner_lease_s=30) as b:
        auth = base64.b64encode(f"CS1:{PASSWORD}".encode()).decode()
        async with websockets.connect(f"{csms_url(a)}/CS1", subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
                                      additional_headers={"Authorization": f"Basic {auth}"}) as ws_a:
            await until(lambda: "CS1" in (a.ownership.held if a.ownership else {}))
            assert a.store.run(op_station_owner, "CS1") == ("node-a", 1)
            assert await a.ownership.renew() == []  # type: ignore[union-attr]
            async with our_station(b) as st:  # the station (re)connects to the other node
                await until(lambda: st.link.registration == "Accepted", 30)
                assert b.store.run(op_station_owner, "CS1") == ("node-b", 2)
                assert await a.ownership.renew() == ["CS1"]  # type: ignore[union-attr]  # node A gives it up
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws_a.recv(), 10)
                assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
                assert await b.ownership.renew() == []  # type: ignore[union-attr]
                assert b.store.run(op_station_owner, "CS1") == ("node-b", 2)
            await until(lambda: b.store.run(op_station_owner, "CS1") is None)  # released on disconnect


async def test_an_expired_lease_belongs_to_nobody(db_url: str) -> None:
    async with running_csms(db_url) as csms:
        assert csms.ownership is None  # one node: no owner records
        assert csms.store.run(op_claim_station, "CS1", "node-gone", 0.05) == 1
        await until(lambda: csms.store.run(op_station_owner, "CS1") is None)
        assert csms.store.run(op_claim_station, "CS1", "node-b", 30) == 2
        assert csms.store.run(op_station_owner, "CS1") == ("node-b", 2)
