"""Metering at the CSMS, on SQLite and PostgreSQL: unitOfMeasure (multiplier, kWh) applied wherever values are
served or energy is totalled, meter values per EVSE outside transactions, and a database of the previous version
upgraded at start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.csms import PASSWORD, api_client, make_db_url, our_station, running_csms
from helpers.ocpp import raw_peer
from sqlalchemy import create_engine, inspect, text

from v2gstack.csms.migrate import migrate
from v2gstack.csms.models import Base
from v2gstack.csms.service import Csms
from v2gstack.csms.store import Store, StoreError, engine_url, op_record_meter_values
from v2gstack.csms.timeline import merged_timeline
from v2gstack.ocpp.units import MeterValueError, normalise

NEW_COLUMNS = ("evse_id", "sent_value", "sent_unit", "multiplier")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from make_db_url(request.param, tmp_path)


def _api(csms: Csms) -> httpx.AsyncClient:
    return api_client(csms, "viewer")


def _event(seq: int, event_type: str, trigger: str, values: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    at = f"2026-11-23T10:{seq:02d}:00Z"
    return {"eventType": event_type, "timestamp": at, "triggerReason": trigger, "seqNo": seq,
            "transactionInfo": {"transactionId": "tx-mul", "chargingState": "Charging"},
            "meterValue": [{"timestamp": at, "sampledValue": values}], **kw}


@pytest.mark.parametrize(("sv", "expected"), [
    ({"value": 7.4, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W", "multiplier": 3}},
     (7400.0, "W")),
    ({"value": 0.1, "unitOfMeasure": {"unit": "kWh", "multiplier": -1}}, (10.0, "Wh")),
    ({"value": 3, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}}, (3000.0, "W")),
    ({"value": 12.5}, (12.5, "Wh")),
    ({"value": 230, "measurand": "Voltage", "unitOfMeasure": {"unit": "V", "multiplier": -3}}, (0.23, "V")),
])
def test_sampled_values_are_normalised(sv: dict[str, Any], expected: tuple[float, str]) -> None:
    n = normalise(sv)
    assert (n.value, n.unit) == expected and n.sent_value == sv["value"]


@pytest.mark.parametrize("sv", [
    {"value": 1e308, "unitOfMeasure": {"multiplier": 10}}, {"value": float("nan")}, {"value": 10**400},
    {"value": 1, "unitOfMeasure": {"multiplier": 31}}, {"value": 1, "unitOfMeasure": {"multiplier": 1.5}},
    {"value": True}, {"value": "1"},
])
def test_unrepresentable_sampled_values_are_typed_errors(sv: dict[str, Any]) -> None:
    with pytest.raises(MeterValueError) as e:
        normalise(sv)
    assert e.value.code.value == "PropertyConstraintViolation" and len(str(e.value)) < 200


async def test_multiplier_and_kwh_are_applied_everywhere(db_url: str) -> None:
    """Field finding 15: 7.4 W with multiplier 3 is 7,400 W; kWh and Wh readings of one transaction are totalled in
    Wh (the API's values, its energy total, the merged timeline); an absurd multiplier is a CallError."""
    energy = "Energy.Active.Import.Register"
    events = [
        _event(0, "Started", "CablePluggedIn", [
            {"value": 1.5, "measurand": energy, "unitOfMeasure": {"unit": "kWh"}},
            {"value": 7.4, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W", "multiplier": 3}}],
            evse={"id": 2, "connectorId": 1}),
        _event(1, "Updated", "MeterValuePeriodic", [  # 20 x 10^2 Wh = 2,000 Wh
            {"value": 20, "measurand": energy, "unitOfMeasure": {"multiplier": 2}},
            {"value": 7400, "measurand": "Power.Active.Import"}]),
        _event(2, "Ended", "EVDeparted", [  # 4.25 kWh with multiplier 0: 4,250 Wh
            {"value": 4.25, "measurand": energy, "unitOfMeasure": {"unit": "kWh", "multiplier": 0}}]),
    ]
    async with running_csms(db_url) as csms, raw_peer(f"ws://127.0.0.1:{csms.port}/ocpp", "CS1",
                                                      password=PASSWORD) as peer, _api(csms) as api:
        for i, e in enumerate(events):
            assert await peer.exchange([2, f"e{i}", "TransactionEvent", e]) == [3, f"e{i}", {}]
        tx = (await api.get("/api/transactions/tx-mul")).json()
        power = [m for m in tx["meterValues"] if m["measurand"] == "Power.Active.Import"]
        assert [(m["value"], m["unit"]) for m in power] == [(7400.0, "W"), (7400.0, "W")]
        assert power[0]["sent"] == {"value": 7.4, "unit": "W", "multiplier": 3}
        registers = [(m["value"], m["unit"]) for m in tx["meterValues"] if m["measurand"] == energy]
        assert registers == [(1500.0, "Wh"), (2000.0, "Wh"), (4250.0, "Wh")]
        assert tx["energyImportWh"] == pytest.approx(2750.0) and tx["energyExportWh"] is None
        assert {m["evseId"] for m in tx["meterValues"]} == {2}  # later events need not name the EVSE

        served = (await api.get("/api/stations/CS1/meter-values", params={"evse": 2})).json()
        assert [m["value"] for m in served if m["measurand"] == energy] == [1500.0, 2000.0, 4250.0]
        details = [e.details for e in merged_timeline("tx-mul", store=csms.store) if e.name == "TransactionEvent"]
        assert [d.split("E=")[1] for d in details] == ["1500Wh", "2000Wh", "4250Wh"]

        bad = _event(3, "Updated", "MeterValuePeriodic", [
            {"value": 1.0, "measurand": energy, "unitOfMeasure": {"unit": "Wh", "multiplier": 400}}])
        answer = await peer.exchange([2, "bad", "TransactionEvent", bad])
        assert answer[:3] == [4, "bad", "PropertyConstraintViolation"] and "multiplier" in answer[3]
        assert (await peer.exchange([2, "hb", "Heartbeat", {}]))[0] == 3  # the connection keeps serving
        assert len((await api.get("/api/transactions/tx-mul")).json()["events"]) == 3  # nothing of it stored


async def test_meter_values_outside_transactions_are_served_per_evse(db_url: str) -> None:
    """Field finding 16: MeterValues keep their evseId and `GET /api/stations/{id}/meter-values` serves them per
    EVSE, from a time on, at most `limit`."""
    async with running_csms(db_url) as csms, our_station(csms, evses=2) as st, _api(csms) as api:
        await st.wait_accepted()
        for evse in (1, 2, 2):  # MeterValues as TriggerMessage sends them; answered once stored
            await st.transactions.send_meter_values(st.evses[evse])
        r1 = await api.get("/api/stations/CS1/meter-values", params={"evse": 1})
        r2 = await api.get("/api/stations/CS1/meter-values", params={"evse": 2})
        assert r1.status_code == r2.status_code == 200, r1.text
        one, two = r1.json(), r2.json()
        assert one and two and {m["evseId"] for m in one} == {1} and {m["evseId"] for m in two} == {2}
        assert all(m["transactionId"] is None and m["context"] == "Trigger" for m in one + two)
        assert sum(m["measurand"] == "Voltage" for m in two) == 2
        assert [(m["value"], m["unit"]) for m in one if m["measurand"] == "Voltage"] == [
            (st.hardware(1).meter().voltage, "V")]
        later = two[-1]["timestamp"]
        since = (await api.get("/api/stations/CS1/meter-values", params={"evse": 2, "since": later})).json()
        assert since and all(m["timestamp"] >= later for m in since) and len(since) < len(two)
        assert len((await api.get("/api/stations/CS1/meter-values", params={"limit": 2})).json()) == 2
        assert (await api.get("/api/stations/CS404/meter-values")).status_code == 404
        assert (await api.get("/api/stations/CS1/meter-values", params={"evse": -1})).status_code == 422


def _downgrade(url: str) -> None:
    """Turn a database of this version into one of the previous version: meter_values without the new columns."""
    engine = create_engine(engine_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX IF EXISTS ix_meter_values_station_evse_time"))
        if url.startswith("postgresql"):  # the previous version's foreign key, which the upgrade drops again
            conn.execute(text("ALTER TABLE meter_values ADD FOREIGN KEY (event_id) REFERENCES transaction_events (id)"))
        for column in NEW_COLUMNS:
            conn.execute(text(f"ALTER TABLE meter_values DROP COLUMN {column}"))
        conn.execute(text("INSERT INTO stations (id, security_profile, connector_status) VALUES ('CS1', 1, '{}')"))
        conn.execute(text("INSERT INTO transactions (station_id, transaction_id, evse_id, state, iso15118) "
                          "VALUES ('CS1', 'old-tx', 3, 'Ended', '{}')"))
        # as the previous version stored them: the value and unit as sent (the multiplier dropped), no EVSE
        register = "Energy.Active.Import.Register"
        rows = [("old-tx", "10", register, 2.5, "kWh"), ("old-tx", "11", register, 4.0, "kWh"),
                (None, "12", "Voltage", 230.0, "V")]
        for tx, at, measurand, value, unit in rows:
            conn.execute(text("INSERT INTO meter_values (station_id, transaction_id, timestamp, measurand, value, unit)"
                              " VALUES ('CS1', :tx, :at, :measurand, :value, :unit)"),
                         {"tx": tx, "at": f"2026-11-20 {at}:00:00.000000", "measurand": measurand, "value": value,
                          "unit": unit})
    engine.dispose()


async def test_database_of_the_previous_version_is_upgraded(db_url: str) -> None:
    """Field finding 16: a database created before the EVSE and unit columns opens; its rows keep their meaning;
    a second start changes nothing; a column that cannot be added is a clear StoreError."""
    Store(db_url).close()
    _downgrade(db_url)
    store = Store(db_url)
    try:
        columns = {c["name"] for c in inspect(store.engine).get_columns("meter_values")}
        assert set(NEW_COLUMNS) <= columns
        assert inspect(store.engine).get_foreign_keys("meter_values") == []
        tx = store.transaction("CS1", "old-tx")
        assert [(m["value"], m["unit"], m["evseId"]) for m in tx["meterValues"]] == [
            (2500.0, "Wh", 3), (4000.0, "Wh", 3)]
        assert tx["meterValues"][0]["sent"] == {"value": 2.5, "unit": "kWh", "multiplier": None}
        assert tx["energyImportWh"] == pytest.approx(1500.0)
        [volts] = [m for m in store.meter_values("CS1") if m["measurand"] == "Voltage"]
        assert volts["evseId"] is None and volts["value"] == 230.0
        store.run(op_record_meter_values, "CS1", {"evseId": 1, "meterValue": [{
            "timestamp": "2026-11-21T10:00:00Z", "sampledValue": [{"value": 3.2, "unitOfMeasure": {"unit": "kWh"}}]}]})
        assert [m["value"] for m in store.meter_values("CS1", evse_id=1)] == [3200.0]
    finally:
        store.close()
    again = Store(db_url)
    try:
        assert migrate(again.engine, Base.metadata) == []
        assert len(again.meter_values("CS1")) == 4
    finally:
        again.close()
    engine = create_engine(engine_url(db_url))
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE meter_values DROP COLUMN measurand"))
    engine.dispose()
    with pytest.raises(StoreError, match=r"meter_values\.measurand"):
        Store(db_url)
