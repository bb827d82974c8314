"""Reservations (H01-H04) kept by our CSMS, with the `ocpp` package's ChargePoint as the station over a real socket
(our station does not take ReserveNow yet): the station's answer as the reservation's status, cancellation,
ReservationStatusUpdate, the transaction that uses a reservation, and the API's refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from helpers.csms import PASSWORD, api_client, csms_url, our_station, running_csms
from helpers.peers import TheirStation, their_station
from helpers.wait import until
from ocpp.v201 import call

from v2gstack.csms.store import op_put_id_token

TOKEN = {"idToken": "04A1B2C3", "type": "ISO14443"}


async def test_reservation_lifecycle(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"PKG": PASSWORD}) as csms, \
            api_client(csms, "operator") as api, api_client(csms, "viewer") as viewer:
        async with their_station(csms_url(csms), "PKG", PASSWORD) as cp:
            await _lifecycle(cp, api, viewer)
        r = await api.post("/api/stations/PKG/reservations", json={"idToken": TOKEN, "minutes": 5})
        assert r.status_code == 409  # not connected
        actions = [a["action"] for a in csms.store.audit(station_id="PKG")]
        assert actions.count("ReserveNow") >= 4 and "CancelReservation" in actions


async def _lifecycle(cp: TheirStation, api: httpx.AsyncClient, viewer: httpx.AsyncClient) -> None:
    r = await api.post("/api/stations/PKG/reservations", json={"idToken": TOKEN, "evseId": 1, "minutes": 30})
    assert r.status_code == 201, r.text
    first = r.json()["reservation"]
    [sent] = cp.actions("ReserveNow")
    assert sent["id"] == first["id"] and sent["evse_id"] == 1 and sent["id_token"]["id_token"] == "04A1B2C3"
    expiry = datetime.fromisoformat(first["expiryDateTime"].replace("Z", "+00:00"))
    assert timedelta(minutes=29) < expiry - datetime.now(UTC) <= timedelta(minutes=30)
    assert first["status"] == "Accepted"
    # the station reports it expired (H04)
    await cp.call(call.ReservationStatusUpdate(reservation_id=first["id"], reservation_update_status="Expired"),
                  suppress=False)
    [shown] = (await viewer.get("/api/stations/PKG/reservations")).json()
    assert shown["status"] == "Expired"
    # a station that is occupied answers so: the reservation keeps that answer
    cp.statuses["ReserveNow"] = "Occupied"
    r = await api.post("/api/stations/PKG/reservations", json={"idToken": TOKEN, "minutes": 5})
    assert r.json()["reservation"]["status"] == "Occupied"
    del cp.statuses["ReserveNow"]
    # a transaction that names the reservation uses it (H03)
    used = (await api.post("/api/stations/PKG/reservations", json={
        "idToken": TOKEN, "evseId": 2, "minutes": 5})).json()["reservation"]
    await cp.call(call.TransactionEvent(event_type="Started", timestamp=datetime.now(UTC).isoformat(),
                                        trigger_reason="Authorized", seq_no=0, reservation_id=used["id"],
                                        transaction_info={"transaction_id": "tx-res"},
                                        evse={"id": 2, "connector_id": 1}, id_token={
                                            "id_token": "04A1B2C3", "type": "ISO14443"}), suppress=False)
    # cancel an open one; then it is no longer open
    open_one = (await api.post("/api/stations/PKG/reservations", json={
        "idToken": TOKEN, "evseId": 3, "minutes": 5})).json()["reservation"]
    r = await api.delete(f"/api/stations/PKG/reservations/{open_one['id']}")
    assert r.status_code == 200 and r.json()["reservation"]["status"] == "Cancelled"
    assert cp.actions("CancelReservation") == [{"reservation_id": open_one["id"]}]
    assert (await api.delete(f"/api/stations/PKG/reservations/{open_one['id']}")).status_code == 409
    assert (await api.delete("/api/stations/PKG/reservations/9999")).status_code == 404
    by_id = {x["id"]: x for x in (await viewer.get("/api/stations/PKG/reservations")).json()}
    assert by_id[used["id"]]["status"] == "Used" and by_id[used["id"]]["transactionId"] == "tx-res"
    assert [x["status"] for x in (await viewer.get("/api/stations/PKG/reservations?status=Cancelled")).json()] \
        == ["Cancelled"]
    # refusals: both or neither of expiry/minutes, the past, a viewer, a token the schema refuses
    bad = [{"idToken": TOKEN}, {"idToken": TOKEN, "minutes": 5, "expiryDateTime": "2030-01-01T00:00:00Z"},
           {"idToken": TOKEN, "expiryDateTime": "2020-01-01T00:00:00Z"}]
    for body in bad:
        assert (await api.post("/api/stations/PKG/reservations", json=body)).status_code == 422, body
    r = await api.post("/api/stations/PKG/reservations", json={"idToken": {"idToken": "x"}, "minutes": 5})
    assert r.status_code == 422 and "invalid ReserveNow request" in r.json()["detail"]
    assert (await viewer.post("/api/stations/PKG/reservations", json={"idToken": TOKEN, "minutes": 5})
            ).status_code == 403
    assert len(cp.actions("ReserveNow")) == 4  # the one the schema refused was stored (NotDelivered), never sent


async def test_our_station_honours_reservations(tmp_path: Path) -> None:
    """Our station takes ReserveNow: the EVSE shows Reserved, another idToken cannot start there, the reserved one
    (or one of the reserved group) can and its transaction uses the reservation; a reservation expires on the
    station's clock (ReservationStatusUpdate), a cancelled one frees the EVSE, a busy EVSE answers Occupied."""
    tokens = [TOKEN, {"idToken": "OTHER", "type": "ISO14443"}, {"idToken": "FLEET-7", "type": "ISO14443"}]
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", tokens=tokens) as csms, \
            our_station(csms, evses=3) as st, api_client(csms, "operator") as api:
        await st.wait_accepted()
        await csms.worker.run(op_put_id_token, "FLEET-7", "ISO14443", "Accepted", "FLEET")

        def connector(evse: int) -> str | None:
            station = csms.store.station("CS1")
            return None if station is None else station.connector_status.get(f"{evse}/1")

        r = await api.post("/api/stations/CS1/reservations", json={"idToken": TOKEN, "evseId": 1, "minutes": 600})
        mine = r.json()["reservation"]
        assert mine["status"] == "Accepted"
        await until(lambda: connector(1) == "Reserved")
        await st.plug_in(1)  # the reserving driver arrives (or someone else does)
        assert (await st.present_token(1, {"idToken": "OTHER", "type": "ISO14443"}))["status"] == "Invalid"
        assert not st.evses[1].authorized and st.reservations.active  # no energy for OTHER; still reserved
        assert (await st.present_token(1, TOKEN))["status"] == "Accepted"
        await st.wait_queue_empty()
        [used] = [x for x in (await api.get("/api/stations/CS1/reservations")).json() if x["id"] == mine["id"]]
        assert used["status"] == "Used" and used["transactionId"] == st.evses[1].tx.id
        # a busy EVSE: Occupied; a group reservation admits a member of the group
        r = await api.post("/api/stations/CS1/reservations", json={"idToken": TOKEN, "evseId": 1, "minutes": 600})
        assert r.json()["reservation"]["status"] == "Occupied"
        r = await api.post("/api/stations/CS1/reservations", json={
            "idToken": {"idToken": "SOMEONE", "type": "ISO14443"}, "groupIdToken": {"idToken": "FLEET",
                                                                                   "type": "Central"},
            "evseId": 2, "minutes": 600})
        assert r.json()["reservation"]["status"] == "Accepted"
        await st.plug_in(2)
        assert (await st.present_token(2, {"idToken": "FLEET-7", "type": "ISO14443"}))["status"] == "Accepted"
        assert st.evses[2].authorized and st.evses[2].tx.reservation_id == r.json()["reservation"]["id"]
        # cancelled: the EVSE is free again; expired on the station's clock (1 simulated minute)
        r = await api.post("/api/stations/CS1/reservations", json={"idToken": TOKEN, "evseId": 3, "minutes": 600})
        cancelled = r.json()["reservation"]
        await until(lambda: connector(3) == "Reserved")
        assert (await api.delete(f"/api/stations/CS1/reservations/{cancelled['id']}")).status_code == 200
        await until(lambda: connector(3) == "Available")
        assert st.reservations.active == {}
        r = await api.post("/api/stations/CS1/reservations", json={"idToken": TOKEN, "evseId": 3, "minutes": 1})
        expiring = r.json()["reservation"]
        assert expiring["status"] == "Accepted"

        async def status_of(rid: int) -> str:
            return next(x["status"] for x in (await api.get("/api/stations/CS1/reservations")).json()
                        if x["id"] == rid)
        await until(lambda: not st.reservations.active)
        await until(lambda: connector(3) == "Available")
        assert await status_of(expiring["id"]) == "Expired"
        log = [m["payload"] for m in csms.store.messages(station_id="CS1") if m["action"] == "ReservationStatusUpdate"]
        assert log == [{"reservationId": expiring["id"], "reservationUpdateStatus": "Expired"}]
