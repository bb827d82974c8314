"""The fleet simulation end to end: our CSMS with grid control, 2 of our stations x 3 bridged EVSEs, our EVs (DIN 70121
DC, ISO 15118-2 DC and AC, ISO 15118-20 DC_BPT and AC_BPT) on loopback at a high time scale, the stations and cars
in worker processes or in the CSMS's own. An operator's import limit (a signal file), an operator's export setpoint
that the -20 BPT cars follow by discharging, and an OpenADR LOAD_DISPATCH from a real openleadr VTN (one run to its
end, one cancelled): the aggregate power follows within the cars' physical limits, as the JSON summary shows, and
the report's files are written."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from helpers.vtn import vtn
from helpers.wait import until
from typer.testing import CliRunner

from v2gstack.cli import app
from v2gstack.sim.fleet import FleetConfig, FleetRun, signals_from_file
from v2gstack.sim.fleet_report import write_report
from v2gstack.sim.population import Distributions, draw_fleet, parse_mix

pytestmark = pytest.mark.timeout(180)

# the SECCs' 0.5 s -20 charge-loop timeout x 4: a test run at low priority on a loaded machine may not be scheduled
# for half a second (the CLI's --timeout-scale; docs/grid.md)
TIMEOUT_SCALE = 4.0
CHARGE_ONLY = (("din-dc", 1.0), ("iso2-dc", 1.0), ("iso2-ac", 2.0))
# every EVSE gets a car in the first 3 simulated minutes; some leave within the hour
EARLY = Distributions(first_arrival_h=(0.0, 0.05), gap_h=(0.05, 0.1), dwell_h=(0.4, 3.0), min_dwell_h=0.25,
                      need_kwh=(8.0, 30.0), mix=CHARGE_ONLY)
# the same, with time to spare: every car could pause half an hour and still meet its need by its departure
# (the DC cars still charging at the end of the run)
SLACK = Distributions(first_arrival_h=(0.0, 0.05), dwell_h=(5.0, 7.0), need_kwh=(25.0, 40.0), capacity_kwh=(80.0,),
                      soc_pct=(10.0, 30.0), mix=CHARGE_ONLY)
# with -20 BPT cars (DC 25 kW back, AC 11 kW back, never below 20 % SoC) that have time to give some back: they stay
# 5-7 h, need 10-20 kWh of 80 kWh found at 40-60 %
V2G = Distributions(first_arrival_h=(0.0, 0.03), dwell_h=(5.0, 7.0), need_kwh=(10.0, 20.0), capacity_kwh=(80.0,),
                    soc_pct=(40.0, 60.0),
                    mix=(("iso20-dc-bpt", 2.0), ("iso20-ac-bpt", 1.0), ("din-dc", 1.0), ("iso2-ac", 1.0)))


def test_the_draw_is_seeded() -> None:
    a = draw_fleet(2, 3, 4.0, seed=7)
    assert a == draw_fleet(2, 3, 4.0, seed=7) and a != draw_fleet(2, 3, 4.0, seed=8)
    assert all(0 < c.need_wh <= 0.95 * c.capacity_wh and c.arrival_h < c.departure_h for c in a)
    per_evse: dict[tuple[str, int], list[float]] = {}
    for c in a:  # one car at a time per EVSE
        visits = per_evse.setdefault((c.station, c.evse), [])
        assert not visits or c.arrival_h > visits[-1]
        visits.append(c.departure_h)


def test_the_config_refuses_a_step_under_a_wall_second() -> None:
    with pytest.raises(ValueError, match="under 1 wall second"):
        FleetConfig(time_scale=1000.0, step_min=5.0)


def test_the_cli_refuses_bad_input_before_running(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('[{"id": "x", "target": {"kind": "site", "id": "site"}, "intervals": '
                   '[{"start": "now+2h", "end": "now+1h", "importLimitW": 1000}]}]')
    r = CliRunner().invoke(app, ["sim", "fleet", "--signals", str(bad), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "error:" in r.output and not (tmp_path / "out").exists()
    r = CliRunner().invoke(app, ["sim", "fleet", "--time-scale", "5000", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "under 1 wall second" in r.output
    r = CliRunner().invoke(app, ["sim", "fleet", "--mix", "din-dc=1,iso20-ac=2", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "unknown car kind 'iso20-ac'" in r.output
    assert parse_mix("din-dc=1, iso20-dc-bpt=0.5") == (("din-dc", 1.0), ("iso20-dc-bpt", 0.5))


async def test_an_operator_import_limit_is_followed(tmp_path: Path) -> None:
    signals = tmp_path / "signals.toml"
    signals.write_text('[[signal]]\nid = "limit-30kw"\ntarget = {kind = "site", id = "site"}\n'
                       '[[signal.intervals]]\nstart = "now+15m"\nend = "now+45m"\nimportLimitW = 30000\n')
    config = FleetConfig(stations=2, evses=3, hours=1.0, time_scale=150.0, seed=2, step_min=5.0, sample_s=0.25,
                         signals=signals_from_file(signals), dist=EARLY, workers=0)  # one process
    result = await FleetRun(config).run()
    out = tmp_path / "report"
    data = write_report(result, out)

    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(data))
    page = (out / "report.html").read_text()
    for png in ("aggregate.png", "cars.png", "energy.png"):
        assert (out / png).stat().st_size > 5000 and f'src="{png}"' in page
    assert {c["kind"] for c in data["cars"]} == {"din-dc", "iso2-dc", "iso2-ac"}
    assert all(c["deliveredWh"] > 0 for c in data["cars"]) and not data["fleet"]["failed"], data["cars"]
    assert data["signals"][0]["id"] == "limit-30kw" and data["signals"][0]["intervals"][0]["startH"] == \
        pytest.approx(0.25, abs=0.01)

    (limited,) = [w for w in data["windows"] if w["importLimitW"] == 30_000.0]
    assert limited["startH"] == pytest.approx(0.25, abs=0.02) and limited["endH"] == pytest.approx(0.75, abs=0.02)
    assert limited["checkedSamples"] >= 20 and limited["followed"]
    assert limited["meanPowerW"] <= 30_000.0 + 1600.0 and limited["longestImportExcursionS"] <= config.settle_s
    assert limited["meanPhysMaxW"] > 40_000.0  # the cars could have taken more: the limit held them
    assert limited["meanPowerW"] > 20_000.0  # and the plan used what it was allowed
    after = [w for w in data["windows"] if w["startH"] >= limited["endH"] and w.get("checkedSamples")]
    assert after and after[0]["maxPowerW"] > 30_000.0 + 1600.0  # released after the interval
    assert data["followed"]
    # per car: its power never above what it can take, its SoC only up
    for car in result.cars:
        socs = [s[2] for s in car.samples]
        assert socs == sorted(socs)
        assert all(p <= car.spec.max_power_w * 1.01 for _, p, _ in car.samples)  # DC: 0.1 A steps


async def test_openadr_load_dispatch_and_its_cancellation(tmp_path: Path) -> None:
    scale = 90.0  # 15 simulated minutes = 10 wall seconds
    minutes = 15.0 / scale
    async with vtn() as v:
        run = FleetRun(FleetConfig(stations=2, evses=3, hours=0.9, time_scale=scale, seed=2, step_min=5.0,
                                   sample_s=0.25, openadr_vtn=v.url, dist=SLACK, workers=2))
        task = asyncio.create_task(run.run())
        await asyncio.wait_for(run.started.wait(), 60)
        samples = run.samples

        def charging() -> bool:
            return bool(samples) and samples[-1].cars == 6 and samples[-1].power_w > 60_000.0

        await until(charging, 30)
        await run.wait_sim(run.sim_h() + 0.1)
        before = samples[-1].power_w
        assert v.registered == ["v2gstack-fleet"]

        # LOAD_DISPATCH -50 kW for 15 simulated minutes, to its end: these cars cannot export (DIN and -2 only here;
        # the export test below has -20 BPT cars), so the fleet goes to its physical floor, 0 W; then back to the
        # plan
        first = v.event("LOAD_DISPATCH", "setpoint", [-50.0], minutes=minutes)
        await until(lambda: (first, "optIn") in v.answers, 20)
        await until(lambda: f"oadr:{first}" in run.signals and "goneH" in run.signals[f"oadr:{first}"], 30)
        await until(lambda: samples[-1].setpoint_w is None and samples[-1].power_w > 0.5 * before, 20)
        await run.wait_sim(run.sim_h() + 0.1)

        # a second one, cancelled once the fleet follows it: back to the plan before it
        second = v.event("LOAD_DISPATCH", "setpoint", [-50.0], minutes=minutes)
        await until(lambda: samples[-1].setpoint_w == -50_000.0 and samples[-1].power_w == 0.0, 20)
        await run.wait_sim(run.sim_h() + 0.1)  # held for 6 simulated minutes, then cancelled
        cancelled_at = run.sim_h()
        v.server.cancel_event("ven-csms", second)
        await until(lambda: f"oadr:{second}" in run.signals and "goneH" in run.signals[f"oadr:{second}"], 20)
        result = await task
    data = write_report(result, tmp_path / "report")

    dispatch = [w for w in data["windows"] if w["setpointW"] == -50_000.0]
    assert len(dispatch) == 2
    for w in dispatch:  # followed: the setpoint clamped to the envelope (0 W) within the tolerance
        assert w["followed"] and w["meanTargetW"] == 0.0 and w["checkedSamples"] >= 4, w
        assert w["maxPowerW"] <= 1000.0 and w["meanPhysMaxW"] > 60_000.0 and w["meanPhysMinW"] == 0.0
    assert dispatch[0]["endH"] - dispatch[0]["startH"] == pytest.approx(0.25, abs=0.05)  # it ran its 15 min
    assert dispatch[1]["endH"] >= cancelled_at
    for w in dispatch:  # after each, back to the plan without it: no car could finish during the pause, so the
        # fleet takes again what it took before (the cars' own ends then lower it)
        (prev,) = [x for x in data["windows"] if x["endH"] == w["startH"]]
        (nxt,) = [x for x in data["windows"] if x["startH"] == w["endH"]]
        assert nxt["setpointW"] is None and nxt["checkedSamples"] >= 4 and prev["checkedSamples"] >= 4
        assert nxt["maxPowerW"] >= 0.95 * prev["meanPowerW"] and prev["meanPowerW"] > 60_000.0, data["windows"]
    sigs = {s["id"]: s for s in data["signals"]}
    assert sigs[f"oadr:{second}"]["goneH"] < sigs[f"oadr:{second}"]["intervals"][0]["endH"]  # cancelled early
    assert any(x >= 60_000.0 for x in v.readings.get("site-import", []))  # the VTN heard the site's import
    assert any(x == 0.0 for x in v.readings.get("site-import", []))


@pytest.mark.parametrize("dynamic", [False, True], ids=["absolute", "dynamic"])
async def test_bpt_cars_follow_an_export_setpoint_across_processes(tmp_path: Path, dynamic: bool) -> None:
    """2 stations x 3 EVSEs in 2 worker processes, mostly -20 BPT cars; the operator asks the site for -20 kW
    (export) from 0.25 to 0.6 simulated h: the BPT cars discharge and the aggregate follows the setpoint within the
    envelope the report gives; the DIN and -2 cars never feed back; the report's files are written. The setpoints
    go as Absolute TxProfiles per re-plan, or (dynamic) as one Dynamic profile per car updated with
    UpdateDynamicSchedule."""
    signals = tmp_path / "signals.json"
    signals.write_text(json.dumps([{"id": "export-20kw", "target": {"kind": "site", "id": "site"},
                                    "intervals": [{"start": "now+15m", "end": "now+36m", "setpointW": -20000}]}]))
    config = FleetConfig(stations=2, evses=3, hours=0.8, time_scale=120.0, seed=6, step_min=5.0, sample_s=0.25,
                         signals=signals_from_file(signals), dist=V2G, workers=2, timeout_scale=TIMEOUT_SCALE,
                         dynamic_v2x=dynamic)
    run = FleetRun(config)
    bpt = [c for c in run.specs if c.max_discharge_w > 0 and c.arrival_h < 0.1]
    assert sum(c.max_discharge_w for c in bpt) >= 40_000.0  # the draw: enough BPT cars to export 20 kW
    result = await run.run()
    out = tmp_path / "report"
    data = write_report(result, out)

    page = (out / "report.html").read_text()
    for png in ("aggregate.png", "cars.png", "energy.png"):
        assert (out / png).stat().st_size > 5000 and f'src="{png}"' in page
    assert {"iso20-dc-bpt", "iso20-ac-bpt"} <= set(data["fleet"]["kinds"]) and not data["fleet"]["failed"], \
        data["cars"]
    assert {c["protocol"] for c in data["cars"]} == {"iso20", "din", "iso2"}
    # the DIN/-2 cars always get TxProfiles; the BPT cars' setpoints go as updates of a Dynamic profile, or not
    assert data["dispatch"]["SetChargingProfile"] > 0
    assert (data["dispatch"].get("UpdateDynamicSchedule", 0) > 0) == dynamic, data["dispatch"]

    (export,) = [w for w in data["windows"] if w["setpointW"] == -20_000.0]
    assert export["checkedSamples"] >= 20
    # the cars could give at least 20 kW throughout: the target is the setpoint itself
    assert export["meanPhysMinW"] <= -20_000.0 and export["meanTargetW"] == -20_000.0, export
    assert export["followed"], export
    assert export["meanPowerW"] == pytest.approx(-20_000.0, abs=1000.0 + 400.0)
    assert export["minPowerW"] >= export["meanPhysMinW"] - 1000.0  # never beyond what the cars could give
    assert data["power"]["peakExportW"] >= 19_000.0 and data["energy"]["exportedWh"] > 0
    (before,) = [w for w in data["windows"] if w["endH"] == export["startH"]]
    assert before["meanPowerW"] > 0  # charging before the event
    for car in result.cars:  # only BPT cars fed back; nobody below its minimum SoC
        if car.spec.max_discharge_w == 0:
            assert all(p >= 0 for _, p, _ in car.samples), car.spec
        assert all(soc >= car.spec.min_soc_pct - 0.01 for _, _, soc in car.samples)
    assert sum(c["exportedWh"] for c in data["cars"] if c["kind"].startswith("iso20")) == \
        pytest.approx(data["energy"]["exportedWh"], abs=0.5)
