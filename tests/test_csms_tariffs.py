"""Tariff and cost (I02/I03/I05) at our CSMS, with the `ocpp` package's ChargePoint as the station over a real socket:
the running cost in TransactionEventResponse (totalCost, updatedPersonalMessage) at the tariff of the idToken's
group (else the default tariff), the final cost stored with the transaction, CostUpdated, no cost without a tariff,
and the API's refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from helpers.csms import PASSWORD, api_client, csms_url, running_csms
from helpers.peers import TheirStation, their_station
from ocpp.v201 import call

from v2gstack.csms.store import op_put_id_token

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


async def _event(cp: TheirStation, tx: str, seq: int, kind: str, hours: float, wh: float, token: str) -> Any:
    extra: dict[str, Any] = {"evse": {"id": 1, "connector_id": 1}, "id_token": {"id_token": token,
                                                                               "type": "ISO14443"}} if seq == 0 else {}
    return await cp.call(call.TransactionEvent(
        event_type=kind, timestamp=_at(hours), trigger_reason="MeterValuePeriodic", seq_no=seq,
        transaction_info={"transaction_id": tx}, meter_value=[{"timestamp": _at(hours), "sampled_value": [
            {"value": wh, "measurand": "Energy.Active.Import.Register", "unit_of_measure": {"unit": "Wh"}}]}],
        **extra), suppress=False)


async def test_running_and_final_cost_per_group_tariff(tmp_path: Path) -> None:
    tokens = [{"idToken": "FLEET-1", "type": "ISO14443"}, {"idToken": "GUEST", "type": "ISO14443"}]
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"PKG": PASSWORD}, tokens=tokens) as csms, \
            their_station(csms_url(csms), "PKG", PASSWORD) as cp, \
            api_client(csms, "admin") as admin, api_client(csms, "viewer") as viewer:
        await csms.worker.run(op_put_id_token, "FLEET-1", "ISO14443", "Accepted", "FLEET")  # beside the CSMS's writes
        r = await admin.put("/api/tariffs/default", json={"currency": "EUR", "perKWh": 0.40, "perHour": 1.0,
                                                          "fixed": 0.5})
        assert r.status_code == 200, r.text
        await admin.put("/api/tariffs/fleet", json={"currency": "EUR", "perKWh": 0.30, "groupId": "FLEET"})
        assert {t["id"] for t in (await viewer.get("/api/tariffs")).json()} == {"default", "fleet"}
        # a fleet driver: 10 kWh after one hour, 20 kWh after two, at 0.30/kWh
        started = await _event(cp, "tx-fleet", 0, "Started", 0, 1000.0, "FLEET-1")
        assert started.total_cost is None  # nothing to price at the start
        updated = await _event(cp, "tx-fleet", 1, "Updated", 1, 11000.0, "FLEET-1")
        assert updated.total_cost == 3.0
        assert updated.updated_personal_message == {"format": "UTF8", "content": "Cost so far: 3.00 EUR"}
        ended = await _event(cp, "tx-fleet", 2, "Ended", 2, 21000.0, "FLEET-1")
        assert ended.total_cost == 6.0 and ended.updated_personal_message["content"] == "Total: 6.00 EUR"
        tx = (await viewer.get("/api/transactions/tx-fleet")).json()
        assert tx["cost"] == {"tariffId": "fleet", "currency": "EUR", "total": 6.0, "energyWh": 20000.0,
                              "seconds": 7200, "final": True}
        # a guest: the default tariff, 0.5 + 0.40 x 5 kWh + 1.0 x 0.5 h
        await _event(cp, "tx-guest", 0, "Started", 0, 0.0, "GUEST")
        guest = await _event(cp, "tx-guest", 1, "Updated", 0.5, 5000.0, "GUEST")
        assert guest.total_cost == 3.0
        # CostUpdated (I05) with the running cost
        r = await admin.post("/api/stations/PKG/transactions/tx-guest/cost-updated", json={})
        assert r.status_code == 200, r.text
        [sent] = cp.actions("CostUpdated")
        assert sent["transaction_id"] == "tx-guest" and sent["total_cost"] == r.json()["cost"]["total"]
        # without a tariff there is no cost
        for tariff in ("default", "fleet"):
            assert (await admin.delete(f"/api/tariffs/{tariff}")).status_code == 204
        await _event(cp, "tx-free", 0, "Started", 0, 0.0, "GUEST")
        free = await _event(cp, "tx-free", 1, "Updated", 1, 5000.0, "GUEST")
        assert free.total_cost is None and free.updated_personal_message is None
        # the CSMS now knows there is no tariff; one put through the API prices the very next event
        await admin.put("/api/tariffs/default", json={"currency": "EUR", "perKWh": 1.0})
        priced = await _event(cp, "tx-free", 2, "Updated", 2, 7000.0, "GUEST")
        assert priced.total_cost == 7.0
        assert (await admin.delete("/api/tariffs/default")).status_code == 204
        unpriced = await _event(cp, "tx-free", 3, "Updated", 3, 8000.0, "GUEST")
        assert unpriced.total_cost is None
        # refusals
        assert (await admin.put("/api/tariffs/x", json={"currency": "EURO"})).status_code == 422
        assert (await admin.put("/api/tariffs/x", json={"currency": "EUR", "perKWh": -1})).status_code == 422
        assert (await viewer.put("/api/tariffs/x", json={"currency": "EUR"})).status_code == 403
        assert (await admin.delete("/api/tariffs/nope")).status_code == 404
        r = await admin.post("/api/stations/PKG/transactions/tx-free/cost-updated", json={})
        assert r.status_code == 404
