"""Grid control in the CSMS over real sockets: operator signals through the API (operator role, audited, refused
whole when bad), the plan sent to our 2.0.1 station as a TxProfile charge limit and to a 2.1 station with a V2X car
as CentralSetpoint periods; cancellation returns to the plan before the signal."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.csms import TOKEN, api_client, our_station, running_csms
from helpers.grid import bpt_needs, raw_station, signal, started
from helpers.wait import until

from v2gstack.csms.grid_control import GRID_PROFILE_BASE, GridConfig, GridControl, dc_battery, taper_soc
from v2gstack.sim.fleet_report import TOLERANCE_FRACTION, TOLERANCE_W

pytestmark = pytest.mark.timeout(120)


def first_limit(profile: dict) -> float:
    return profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"]


def test_a_dc_cars_bulk_soc_becomes_its_taper() -> None:
    """A 60 kWh DC car at 50 % with bulkSoC 80 (DCChargingParametersType): 30 kWh of room, the taper 18 kWh on,
    i.e. at 0.6 of the scheduler's capacity (1 kWh lower with a 5 kWh V2X base: 23/35); already past its bulk SoC:
    tapering from now (0); without bulkSoC, the state of charge or the capacity (or an AC car): no taper."""
    dc = {"evMaxCurrent": 200, "evMaxVoltage": 400, "evEnergyCapacity": 60_000, "stateOfCharge": 50, "bulkSoC": 80}
    room, start = dc_battery(dc)
    assert (room, start) == (30_000.0, 18_000.0)
    assert taper_soc(start, 0.0, room) == pytest.approx(0.6)
    assert taper_soc(start, 5_000.0, 5_000.0 + room) == pytest.approx(23 / 35)
    assert taper_soc(dc_battery({**dc, "stateOfCharge": 90})[1], 0.0, 6_000.0) == 0.0
    assert dc_battery({k: v for k, v in dc.items() if k != "bulkSoC"}) == (30_000.0, None)
    assert taper_soc(None, 0.0, room) == 1.0
    assert dc_battery({k: v for k, v in dc.items() if k != "stateOfCharge"}) == (None, None)
    assert dc_battery({"evMaxCurrent": 200, "evMaxVoltage": 400, "bulkSoC": 80}) == (None, None)
    assert dc_battery({}) == (None, None)  # an AC car: no dcChargingParameters


async def test_operator_signals_limit_our_station(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, our_station(csms) as st:
        grid = GridControl(csms, GridConfig(dispatch=True))
        grid.start()
        await st.wait_accepted()
        st.set_ev(1, power_w=11_000.0)
        await st.plug_in(1)
        assert (await st.present_token(1, TOKEN))["status"] == "Accepted"
        items = st.smart_charging.profiles.items
        await until(lambda: GRID_PROFILE_BASE + 1 in items)
        installed = items[GRID_PROFILE_BASE + 1].profile
        assert installed["chargingProfilePurpose"] == "TxProfile" and first_limit(installed) == 11_000.0
        before = installed["chargingSchedule"][0]["chargingSchedulePeriod"]

        async with api_client(csms, "operator") as api, api_client(csms, "viewer") as viewer, \
                api_client(csms, "admin") as admin:
            assert (await viewer.post("/api/grid/signals", json=signal("x", importLimitW=1))).status_code == 403
            bad = signal("bad", importLimitW=4_000)
            bad["intervals"].append({**bad["intervals"][0], "price": 0.2})  # overlaps the first
            r = await api.post("/api/grid/signals", json=bad)
            assert r.status_code == 422 and r.json()["code"] == "overlapping-intervals"
            r = await api.post("/api/grid/signals", json={"signals": [
                signal("ok", importLimitW=4_000), signal("nope", target={"kind": "station", "id": "CS9"},
                                                          importLimitW=1)]})
            assert r.status_code == 422 and r.json()["code"] == "unknown-target"
            assert (await viewer.get("/api/grid/signals")).json()["signals"] == []  # nothing half-applied

            r = await api.post("/api/grid/signals", json=signal("cap", importLimitW=4_000))
            assert r.status_code == 201 and r.json()["applied"] == ["cap"], r.text
            assert r.json()["plan"]["siteW"][0] == pytest.approx(4_000, abs=1)
            await until(lambda: st.smart_charging.limit_w(1) == 4_000.0)
            got = (await viewer.get("/api/grid/signals")).json()
            assert got["signals"][0]["id"] == "cap" and got["plan"]["method"] == "lp"
            audit = (await admin.get("/api/audit")).json()
            assert any(a["action"] == "GridSignal" and a["status"] == 201 for a in audit)

            r = await api.delete("/api/grid/signals/cap")
            assert r.status_code == 200
            await until(lambda: st.smart_charging.limit_w(1) == 11_000.0)
            after = items[GRID_PROFILE_BASE + 1].profile
            periods = after["chargingSchedule"][0]["chargingSchedulePeriod"]
            # the plan before the signal (the tail moves with the energy delivered meanwhile)
            assert periods[0] == before[0] and [p["startPeriod"] for p in periods] == [p["startPeriod"] for p in before]
            assert (await api.delete("/api/grid/signals/cap")).status_code == 404


async def test_a_setpoint_reaches_a_21_station_as_central_setpoint(tmp_path: Path) -> None:
    """A V2X car (DC_BPT, may give 20 kWh) on a 2.1 station: -7 kW for 15 min from the site goes out as a
    CentralSetpoint TxProfile whose first period discharges 7 kW; opting out returns it to charging."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, raw_station(csms) as st:
        grid = GridControl(csms, GridConfig(dispatch=True))
        grid.start()
        await st.call("BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"})
        await st.call("TransactionEvent", started("tx-v2x", 1))
        await st.call("NotifyEVChargingNeeds", bpt_needs(1))
        await until(lambda: bool(st.profiles()))
        async with api_client(csms, "operator") as api:
            r = await api.post("/api/grid/signals", json=signal("dr", minutes=15, setpointW=-7_000))
            assert r.status_code == 201
            await until(lambda: st.profiles()[-1]["chargingProfile"]["chargingSchedule"][0][
                "chargingSchedulePeriod"][0].get("setpoint") == -7_000.0)
            profile = st.profiles()[-1]["chargingProfile"]
            period = profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]
            assert period["operationMode"] == "CentralSetpoint" and period["dischargeLimit"] == -11_000.0
            assert profile["transactionId"] == "tx-v2x" and profile["chargingProfilePurpose"] == "TxProfile"
            r = await api.post("/api/grid/signals/dr/opt", json={"opt": "optOut"})
            assert r.status_code == 200 and r.json()["plan"]["evses"]["CS1/1"][0] > 0
            await until(lambda: st.profiles()[-1]["chargingProfile"]["chargingSchedule"][0][
                "chargingSchedulePeriod"][0]["setpoint"] > 0)


async def test_dynamic_v2x_sends_one_profile_then_updates(tmp_path: Path) -> None:
    """With dynamic_v2x, the V2X car on a 2.1 station gets one Dynamic CentralSetpoint TxProfile; the -7 kW site
    setpoint and its opt-out then go as UpdateDynamicSchedule of that profile, no new profile."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, raw_station(csms) as st:
        grid = GridControl(csms, GridConfig(dispatch=True, dynamic_v2x=True))
        grid.start()
        await st.call("BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"})
        await st.call("TransactionEvent", started("tx-v2x", 1))
        await st.call("NotifyEVChargingNeeds", bpt_needs(1))
        await until(lambda: bool(st.profiles()))
        [first] = st.profiles()
        profile = first["chargingProfile"]
        period = profile["chargingSchedule"][0]["chargingSchedulePeriod"]
        assert profile["chargingProfileKind"] == "Dynamic" and profile["id"] == GRID_PROFILE_BASE + 1
        assert profile["transactionId"] == "tx-v2x" and len(period) == 1 and period[0]["setpoint"] > 0
        assert period[0]["operationMode"] == "CentralSetpoint" and period[0]["dischargeLimit"] == -11_000.0

        def updates() -> list[dict]:
            return [p for a, p in st.received if a == "UpdateDynamicSchedule"]

        async with api_client(csms, "operator") as api:
            r = await api.post("/api/grid/signals", json=signal("dr", minutes=15, setpointW=-7_000))
            assert r.status_code == 201
            await until(lambda: bool(updates()) and updates()[-1]["scheduleUpdate"]["setpoint"] == -7_000.0)
            assert updates()[-1]["chargingProfileId"] == GRID_PROFILE_BASE + 1
            r = await api.post("/api/grid/signals/dr/opt", json={"opt": "optOut"})
            assert r.status_code == 200
            await until(lambda: updates()[-1]["scheduleUpdate"]["setpoint"] > 0)
        assert len(st.profiles()) == 1  # one profile, the rest updates


async def test_the_heuristic_answers_first_and_the_lp_replaces_it(tmp_path: Path) -> None:
    """With no time for the LP the heuristic plans at once; the LP goes on in a worker process and its plan is
    adopted (and sent) when it finishes, nothing having changed meanwhile."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, raw_station(csms) as st:
        grid = GridControl(csms, GridConfig(dispatch=True, time_budget_s=0.0, improve_budget_s=60.0))
        methods: list[str] = []
        adopt = grid._adopt

        async def spy(plan, now, keys):  # type: ignore[no-untyped-def]
            methods.append(plan.method)
            await adopt(plan, now, keys)

        grid._adopt = spy  # type: ignore[method-assign]
        grid.start()
        await st.call("BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"})
        await st.call("TransactionEvent", started("tx-1", 1))
        await st.call("NotifyEVChargingNeeds", bpt_needs(1))
        await until(lambda: "lp" in methods, 60)
        assert methods[0] == "heuristic" and grid.plan is not None and grid.plan.method == "lp"
        assert st.profiles()[-1]["chargingProfile"]["transactionId"] == "tx-1"


async def test_needs_that_cannot_be_met_are_reported_in_priority_order(tmp_path: Path) -> None:
    """Under a 12 kW site limit a car leaving in 0.8 h (3 steps of 15 min) needs 6 kWh and one leaving in 1.3 h
    (5 steps) 10 kWh, both at 11 kW and 95 %: 12 kW for 3 steps and then the second car's 11 kW for 2 steps fit
    13.775 kWh. The one leaving first gets all it needs; the report says the plan is not feasible and names the
    other with the 2.225 kWh it lacks."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, raw_station(csms) as st:
        grid = GridControl(csms, GridConfig(dispatch=True))
        grid.start()
        await st.call("BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"})
        for evse, hours, need in ((1, 1.3, 10_000.0), (2, 0.8, 6_000.0)):
            await st.call("TransactionEvent", started(f"tx-{evse}", evse, seq=evse))
            await st.call("NotifyEVChargingNeeds", bpt_needs(evse, departure_h=hours, target_wh=need, min_wh=0.0))
        async with api_client(csms, "operator") as api:
            r = await api.post("/api/grid/signals", json=signal("cap", minutes=120, importLimitW=12_000))
            plan = r.json()["plan"]
            assert r.status_code == 201 and plan["feasible"] is False
            assert [(s["key"], s["departureStep"]) for s in plan["shortfalls"]] == [("CS1/1", 5)]
            assert plan["shortfalls"][0]["missingWh"] == pytest.approx(2_225, abs=5)
            assert sum(plan["evses"]["CS1/2"]) * 0.25 * 0.95 == pytest.approx(6_000, abs=5)
            assert max(plan["siteW"]) <= 12_000 + 1


async def test_needs_that_overtake_the_transaction_event_are_kept(tmp_path: Path) -> None:
    """A station may send NotifyEVChargingNeeds before the TransactionEvent that starts the session (the fleet
    simulation's bridged stations do, now and then): the CSMS keeps the needs for it instead of planning on its
    defaults."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, raw_station(csms) as st:
        grid = GridControl(csms, GridConfig(dispatch=True))
        grid.start()
        await st.call("BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"})
        await st.call("NotifyEVChargingNeeds", bpt_needs(1, target_wh=12_345.0, max_w=7_000.0))
        assert grid.sessions == {}
        await st.call("TransactionEvent", started("tx-1", 1))
        s = grid.sessions[("CS1", 1)]
        assert s.need_wh == 12_345.0 and s.max_charge_w == 7_000.0 and s.departure is not None
        await until(lambda: bool(st.profiles()))
        assert st.profiles()[-1]["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0][
            "setpoint"] == 7_000.0


async def test_a_car_arriving_under_a_cap_starts_within_it(tmp_path: Path) -> None:
    """Under a 4 kW site cap with one car planned at it, a second car starts its transaction: the station's
    newcomers' default (a TxDefaultProfile on evseId 0 holding what the plan leaves of the cap) limits it from its
    first instant, before the CSMS has planned it, and the re-plan lowers the first car before it raises the second.
    Each time the station's limits change (and when the second transaction starts) the EVSEs' power stays within the
    cap by the fleet report's tolerance (without the default the newcomer draws its full 11 kW on top)."""
    cap = 4_000.0
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, our_station(csms, evses=2) as st:
        grid = GridControl(csms, GridConfig(dispatch=True))
        grid.start()
        await st.wait_accepted()
        sc = st.smart_charging

        def drawn() -> float:  # each EVSE with a transaction draws its car's 11 kW up to its limit
            total = 0.0
            for e, evse in st.evses.items():
                if evse.tx is not None:
                    limit = sc.limit_w(e)
                    total += 11_000.0 if limit is None else min(11_000.0, limit)
            return total

        st.set_ev(1, power_w=11_000.0)
        await st.plug_in(1)
        assert (await st.present_token(1, TOKEN))["status"] == "Accepted"
        await until(lambda: GRID_PROFILE_BASE + 1 in sc.profiles.items)
        grid.dispatches = []
        grid.apply([signal("cap", minutes=60, importLimitW=cap)], source="api")
        await until(lambda: sc.limit_w(1) == cap and bool(grid.dispatches))  # the cap's plan sent in full

        seen: list[float] = []
        sc.subscribe(lambda _evse: seen.append(drawn()))
        st.set_ev(2, power_w=11_000.0)
        await st.plug_in(2)
        assert (await st.present_token(2, TOKEN))["status"] == "Accepted"
        seen.append(drawn())  # the newcomer's transaction runs
        await until(lambda: GRID_PROFILE_BASE + 2 in sc.profiles.items)  # planned now
        seen.append(drawn())
        tolerance = TOLERANCE_W + TOLERANCE_FRACTION * cap
        assert max(seen) <= cap + tolerance, seen
