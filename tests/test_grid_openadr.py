"""The OpenADR 2.0b VEN in the CSMS against a real openleadr VTN on loopback: registration, report registration
and TELEMETRY_USAGE reports of the site's import/export power, LOAD_DISPATCH turned by the scheduler into profiles
for the connected stations (CentralSetpoint on a 2.1 station with V2X cars, a charge limit on our 2.0.1 station),
event updates, cancellation back to the previous plan, ELECTRICITY_PRICE and SIMPLE events, and optOut answers
(an `x-` signal name, which the VTN also gets answered 460; an opt sent to a VTN without EiOpt)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.csms import PASSWORD, TOKEN, api_client, our_station, running_csms
from helpers.grid import RawStation, bpt_needs, raw_station, started
from helpers.vtn import vtn
from helpers.wait import until
from openleadr import enums

from v2gstack.csms.grid_control import GRID_PROFILE_BASE, GridConfig, GridControl
from v2gstack.grid.model import Opt, SignalError
from v2gstack.grid.openadr_map import VenConfig, event_signal

pytestmark = pytest.mark.timeout(120)


def last_profile(st: RawStation, evse: int) -> dict[str, Any]:
    return [p for p in st.profiles() if p["evseId"] == evse][-1]["chargingProfile"]


def first_setpoint(st: RawStation, evse: int) -> float:
    return last_profile(st, evse)["chargingSchedule"][0]["chargingSchedulePeriod"][0]["setpoint"]


async def test_load_dispatch_from_a_real_vtn_to_the_stations(tmp_path: Path) -> None:
    async with vtn() as v, running_csms(f"sqlite:///{tmp_path / 'c.db'}",
                                        stations={"CS1": PASSWORD, "CS2": PASSWORD}) as csms:
        grid = GridControl(csms, GridConfig(dispatch=True))
        grid.start()
        async with raw_station(csms, "CS1") as v2x, our_station(csms, "CS2") as ours:
            await v2x.call("BootNotification", {"chargingStation": {"model": "M", "vendorName": "V"},
                                                "reason": "PowerUp"})
            for evse in (1, 2):
                await v2x.call("TransactionEvent", started(f"tx-{evse}", evse, seq=evse))
                await v2x.call("NotifyEVChargingNeeds", bpt_needs(evse))
            await ours.wait_accepted()
            ours.set_ev(1, power_w=11_000.0)
            await ours.plug_in(1)
            assert (await ours.present_token(1, TOKEN))["status"] == "Accepted"
            items = ours.smart_charging.profiles.items
            await until(lambda: GRID_PROFILE_BASE + 1 in items and len(grid.sessions) == 3)
            await until(lambda: ours.smart_charging.limit_w(1) == 11_000.0)
            await until(lambda: all("setpoint" in last_profile(v2x, e)["chargingSchedule"][0][
                "chargingSchedulePeriod"][0] for e in (1, 2)))  # the needs arrived after the first plan
            before = {e: last_profile(v2x, e)["chargingSchedule"][0]["chargingSchedulePeriod"] for e in (1, 2)}
            assert all(p[0]["setpoint"] > 0 for p in before.values())  # charging towards their needs

            ven = await grid.start_ven(VenConfig(v.url, ven_name="csms-ven", site_import_w=60_000.0,
                                                 telemetry_s=1.0))
            assert v.registered == ["csms-ven"] and ven.ven_id == "ven-csms"
            await until(lambda: {r for r, _ in v.offered} == {"site-import", "site-export"})

            # LOAD_DISPATCH -50 kW for 15 min: the two V2X cars give what they can (11 kW each), the 2.0.1 car
            # stops charging; the VTN hears the site export
            dispatch = v.event("LOAD_DISPATCH", "setpoint", [-50.0])
            await until(lambda: (dispatch, "optIn") in v.answers, 20)
            await until(lambda: first_setpoint(v2x, 1) == -11_000.0 and first_setpoint(v2x, 2) == -11_000.0)
            await until(lambda: ours.smart_charging.limit_w(1) == 0.0)
            period = last_profile(v2x, 1)["chargingSchedule"][0]["chargingSchedulePeriod"][0]
            assert period["operationMode"] == "CentralSetpoint"
            assert grid.plan is not None and grid.plan.site_w[0] == pytest.approx(-22_000, abs=1)
            await until(lambda: any(x >= 21_000 for x in v.readings.get("site-export", [])), 20)

            # an update to -10 kW (a new modification number) replaces the signal
            v.update(dispatch, -10.0)
            await until(lambda: grid.book.signals[f"oadr:{dispatch}"].modification == 1, 20)
            await until(lambda: first_setpoint(v2x, 1) + first_setpoint(v2x, 2) == -10_000.0)

            # cancellation: back to the plan before the event
            v.server.cancel_event("ven-csms", dispatch)
            await until(lambda: f"oadr:{dispatch}" not in grid.book.signals, 20)
            await until(lambda: first_setpoint(v2x, 1) > 0 and first_setpoint(v2x, 2) > 0)
            await until(lambda: ours.smart_charging.limit_w(1) == 11_000.0)
            for e in (1, 2):
                assert last_profile(v2x, e)["chargingSchedule"][0]["chargingSchedulePeriod"][0] == before[e][0]

            # a price and a SIMPLE level; an `x-` name is refused (optOut; the VEN answers 460 as well)
            price = v.event("ELECTRICITY_PRICE", "price", [0.4, 0.1], minutes=60)
            simple = v.event("SIMPLE", "level", [2])
            custom = v.event("x-custom", "setpoint", [1.0])
            await until(lambda: {(price, "optIn"), (simple, "optIn"), (custom, "optOut")} <= set(v.answers), 20)
            assert [i.price for i in grid.book.signals[f"oadr:{price}"].intervals] == [0.4, 0.1]
            assert grid.book.signals[f"oadr:{simple}"].intervals[0].import_limit_w == pytest.approx(19_800)
            assert f"oadr:{custom}" not in grid.book.signals

            # the operator opts out: kept but not planned; openleadr's VTN mounts no EiOpt, so no acknowledgement
            async with api_client(csms, "operator") as api:
                r = await api.post(f"/api/grid/signals/oadr:{simple}/opt", json={"opt": "optOut"})
                assert r.status_code == 200 and r.json()["vtnAcknowledged"] is False
            assert grid.book.signals[f"oadr:{simple}"].opt is Opt.OUT
            await asyncio.sleep(0)


def test_event_mapping() -> None:
    """The documented mapping, on the event dicts openleadr hands the VEN."""
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    cfg = VenConfig("http://127.0.0.1:1/x", site_import_w=90_000.0)

    def event(*signals: dict[str, Any], **targets: list[str]) -> dict[str, Any]:
        return {"event_descriptor": {"event_id": "e1", "modification_number": 3, "priority": 1,
                                     "event_status": "far"},
                "active_period": {"dtstart": t0, "duration": timedelta(minutes=30)},
                "event_signals": list(signals), "targets_by_type": targets}

    def sig(name: str, kind: str, *payloads: float, **extra: Any) -> dict[str, Any]:
        return {"signal_name": name, "signal_type": kind, **extra, "intervals": [
            {"dtstart": t0 + timedelta(minutes=15 * n), "duration": timedelta(minutes=15), "signal_payload": p}
            for n, p in enumerate(payloads)]}

    s = event_signal(event(sig("LOAD_DISPATCH", "setpoint", -50.0, 0.0), sig("ELECTRICITY_PRICE", "price", 0.3, 0.2),
                           resource_id=["CS7"]), cfg)
    assert s is not None and s.id == "oadr:e1" and s.modification == 3 and s.priority == 999
    assert (s.target.kind.value, s.target.id) == ("station", "CS7")
    assert [(i.setpoint_w, i.price) for i in s.intervals] == [(-50_000.0, 0.3), (0.0, 0.2)]
    watts = event_signal(event(sig("LOAD_DISPATCH", "setpoint", -7000.0, measurement={"scale": "none"})), cfg)
    assert watts is not None and watts.intervals[0].setpoint_w == -7000.0
    simple = event_signal(event(sig("SIMPLE", "level", 0, 1, 3), group_id=["depot"]), cfg)
    assert simple is not None and simple.target.kind.value == "group"
    assert [i.import_limit_w for i in simple.intervals] == [pytest.approx(59_400), 0.0]  # level 0 asks nothing
    assert event_signal(event(sig("SIMPLE", "level", 0)), cfg) is None
    for bad in (sig("LOAD_DISPATCH", "delta", 1.0), sig("SIMPLE", "level", 4), sig("BID_LOAD", "setpoint", 1.0),
                sig("LOAD_DISPATCH", "setpoint", float("nan"))):
        with pytest.raises(SignalError):
            event_signal(event(bad), cfg)
    assert enums.SIGNAL_NAME.LOAD_DISPATCH == "LOAD_DISPATCH"
