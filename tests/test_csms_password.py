"""Security A01: rotating a station's BasicAuthPassword through the API, with our station over a real socket: the new
password reaches the station with SetVariables, its hash is stored only after Accepted, the station reconnects with
it and the old one no longer opens a connection; a station that does not take it keeps the old one."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.csms import PASSWORD, api_client, csms_url, our_station, running_csms
from helpers.ocpp import raw_peer
from helpers.peers import their_station
from helpers.wait import until
from websockets.exceptions import InvalidStatus


async def test_rotation_with_our_station(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"CS1": PASSWORD, "PKG": PASSWORD}) as csms, \
            api_client(csms, "admin") as admin, api_client(csms, "operator") as operator:
        async with our_station(csms) as st:
            await st.wait_accepted()
            r = await admin.post("/api/stations/CS1/password", json={})
            assert r.status_code == 200, r.text
            assert r.json() == {"stationId": "CS1", "attributeStatus": "Accepted", "stored": True,
                                "statusInfo": None}
            new = st.model.value("SecurityCtrlr", "BasicAuthPassword")
            assert new and new != PASSWORD and len(new) == 32 and new not in r.text
            assert csms.store.check_station_password("CS1", new)
            assert not csms.store.check_station_password("CS1", PASSWORD)
            # the station's next connection uses the new password
            boots = st.link.client.connection
            await csms.server.connections["CS1"].close()
            await until(lambda: st.link.online and st.link.client.connection is not boots)
        with pytest.raises(InvalidStatus):  # the old password opens nothing any more
            async with raw_peer(csms_url(csms), "CS1", password=PASSWORD):
                pass
        # a station that answers SetVariables with a CALLERROR keeps its old password
        async with their_station(csms_url(csms), "PKG", PASSWORD):
            r = await admin.post("/api/stations/PKG/password", json={"password": "operator-chosen-pass-01"})
            assert r.status_code == 502
            assert csms.store.check_station_password("PKG", PASSWORD)
        # refusals: operators, a password of the wrong length, unknown and offline stations
        assert (await operator.post("/api/stations/PKG/password", json={})).status_code == 403
        assert (await admin.post("/api/stations/PKG/password", json={"password": "short"})).status_code == 422
        assert (await admin.post("/api/stations/NOPE/password", json={})).status_code == 404
        assert (await admin.post("/api/stations/PKG/password", json={})).status_code == 409
        assert csms.store.check_station_password("PKG", PASSWORD)
