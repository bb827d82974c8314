"""When a charging-profile change makes the station renegotiate (docs/station.md, "When the station renegotiates"):
only when the new composite schedule is lower than what the car was offered somewhere over what is left of the
offer; a profile that leaves the offer as it was, or raises it, keeps the session going (the charge loop's EVSE
maximum carries the limit). End to end over real sockets: our CSMS, our station with the bridge, our ISO 15118-2 AC
and DC and -20 scheduled EVs. The order of events is read from the session's timeline."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from helpers.bridge import Rig, bridged
from helpers.wait import until

from v2gstack.station.bridge.pacer import HOLD_S, RenegotiationPacer, RenegotiationPacing

pytestmark = pytest.mark.timeout(180)

LOOP_REQUESTS = ("ChargingStatusReq", "CurrentDemandReq", "AC_ChargeLoopReq", "DC_ChargeLoopReq")
RATING_W = 50_000.0  # the bridged EVSEs' rating (helpers/bridge.py)


def _records(rig: Rig) -> list[dict[str, Any]]:
    policy = rig.bridges[0].policy
    session = policy.active or policy.finished[-1]
    return session.timeline.records


def _states(rig: Rig, what: str) -> list[dict[str, Any]]:
    return [r for r in _records(rig) if r.get("what") == what]


def _offered_w(record: dict[str, Any]) -> float:
    """The first power of a ScheduleOffered record (-2: its PMaxSchedule, -20: its charging schedule)."""
    return float(record["pmax"][0][1] if "pmax" in record else record["charging"][0][1])


def _loops_after(rig: Rig, seq: int) -> int:
    return sum(1 for r in _records(rig) if r["seq"] > seq and r.get("direction") == "rx"
               and r.get("message") in LOOP_REQUESTS)


async def _set_limit(rig: Rig, tx_id: str, watts: float) -> int:
    """A TxProfile (id 1, replaced each time) limiting the EVSE to `watts`; the seq of its ProfilesChanged record."""
    before = len(_states(rig, "ProfilesChanged"))
    profile = {"id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "transactionId": tx_id,
               "chargingProfileKind": "Relative", "chargingSchedule": [{
                   "id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": watts}]}]}
    answer = await rig.csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
    assert answer == {"status": "Accepted"}
    await until(lambda: len(_states(rig, "ProfilesChanged")) > before)
    return int(_states(rig, "ProfilesChanged")[-1]["seq"])


@pytest.mark.parametrize(("protocol", "energy", "exchange"), [
    ("iso2", "ac", "ChargeParameterDiscoveryReq"), ("iso2", "dc", "ChargeParameterDiscoveryReq"),
    ("iso20", "dc", "ScheduleExchangeReq"), ("iso20", "ac", "ScheduleExchangeReq")])
async def test_only_a_lower_schedule_renegotiates(tmp_path: Path, protocol: str, energy: str, exchange: str) -> None:
    """The car is offered the EVSE's rating. A profile at the rating leaves the offer as it was: no renegotiation,
    the car charges on. 11 kW is lower: EVSENotification ReNegotiation (-20: ScheduleRenegotiation), a new offer of
    11 kW, the car charges within it. 22 kW raises the limit above that offer: no renegotiation again (the car's
    schedule still fits; the loop's EVSE maximum now says 22 kW, which the station's hardware holds). 6 kW is lower
    again: renegotiated."""
    control = {"control": "scheduled"} if protocol == "iso20" else {}
    async with bridged(tmp_path, evses=1, secc={"protocols": ("iso20", "iso2", "din"), "timeout_scale": 10.0},
                       csms_config={"needs_profiles": False}) as rig:
        ev = asyncio.create_task(rig.ev(1, protocol, energy, loops=0, interval=0.05, **control))
        await until(lambda: rig.csms.active_transaction("CS1", 1) is not None
                    and rig.station.hardware(1).meter().power_w > 0)
        tx_id = rig.csms.active_transaction("CS1", 1)
        assert tx_id is not None
        [first] = _states(rig, "ScheduleOffered")
        assert _offered_w(first) == RATING_W

        same = await _set_limit(rig, tx_id, RATING_W)
        await until(lambda: _loops_after(rig, same) >= 5)  # the car charges on
        lower = await _set_limit(rig, tx_id, 11_000.0)
        await until(lambda: len(_states(rig, "ScheduleOffered")) == 2)
        await until(lambda: 0 < rig.station.hardware(1).meter().power_w <= 11_000.0 * 1.05)
        higher = await _set_limit(rig, tx_id, 22_000.0)
        await until(lambda: _loops_after(rig, higher) >= 5)
        # within the new maximum; a -20 scheduled car keeps to its tuple (our -2 cars take what the maximum allows)
        assert 0 < rig.station.hardware(1).meter().power_w <= (22_000.0 if protocol == "iso2" else 11_000.0) * 1.05
        lowest = await _set_limit(rig, tx_id, 6_000.0)
        await until(lambda: len(_states(rig, "ScheduleOffered")) == 3)
        await until(lambda: 0 < rig.station.hardware(1).meter().power_w <= 6_000.0 * 1.05)
        assert await rig.csms.request_stop("CS1", tx_id) == {"status": "Accepted"}
        result = await asyncio.wait_for(ev, 60)
        assert result.ok, result.reason

        changes = _states(rig, "ProfilesChanged")
        assert [c["renegotiate"] for c in changes] == [False, True, False, True]
        assert "11000 W instead of 50000 W" in changes[1]["why"] and "6000 W instead of 11000 W" in changes[3]["why"]
        offers = _states(rig, "ScheduleOffered")
        assert [_offered_w(o) for o in offers] == [RATING_W, 11_000.0, 6_000.0]
        assert offers[0]["seq"] < same < lower < offers[1]["seq"] < higher < lowest < offers[2]["seq"]
        records = _records(rig)
        asked = [r["seq"] for r in records if r.get("direction") == "rx" and r.get("message") == exchange]
        assert len(asked) == 3 and asked[1] > lower and asked[2] > lowest  # only the two lower limits renegotiated
        assert not [s for s in asked if same < s < lower or higher < s < lowest]


def test_the_pacer_grants_turns_at_once_and_per_second() -> None:
    """The station's renegotiation turns (bridge/pacer.py), on a clock the test moves: at most `at_once` held at a
    time, turns at least 1 / `per_second` apart, a held turn answers True again, a turn ends with `done` or after
    HOLD_S (an EV that never renegotiates does not block the others), none sooner than `settle_s` after the EVSE's
    last profile change."""
    now = [100.0]
    settle = RenegotiationPacer(RenegotiationPacing(settle_s=1.0), clock=lambda: now[0])
    assert not settle.turn("a", changed=99.5) and settle.turn("a", changed=99.0)
    pacer = RenegotiationPacer(RenegotiationPacing(at_once=2, per_second=4.0), clock=lambda: now[0])
    assert pacer.turn("a") and pacer.turn("a")  # held: asked again in the same renegotiation
    assert not pacer.turn("b")  # 0.25 s between two turns
    now[0] += 0.25
    assert pacer.turn("b")
    now[0] += 1.0
    assert not pacer.turn("c")  # two held
    pacer.done("a")
    assert pacer.turn("c") and not pacer.turn("a")  # a's new ask waits for the pace again
    now[0] += HOLD_S
    assert pacer.turn("a")  # b and c never renegotiated: their turns lapsed
    assert (pacer.granted, pacer.refused) == (4, 3)
    unpaced = RenegotiationPacer(RenegotiationPacing(at_once=3, per_second=0.0), clock=lambda: now[0])
    assert all(unpaced.turn(n) for n in "abc") and not unpaced.turn("d")


async def test_a_station_wide_change_renegotiates_one_evse_at_a_time(tmp_path: Path) -> None:
    """Three -2 DC cars charge at 50 kW; a station-wide limit of 20 kW makes all three schedules outdated at once.
    The station's pacer (one turn at a time, one per second, 1 s after the change at the soonest, on a clock the test
    moves) keeps them waiting (their timelines say RenegotiationWaits) while their charge loops already carry the new
    limit; then each move of the clock lets one more car renegotiate, and each gets the 20 kW offer."""
    now = [0.0]
    pacer = RenegotiationPacer(RenegotiationPacing(at_once=1, per_second=1.0, settle_s=1.0), clock=lambda: now[0])
    async with bridged(tmp_path, evses=3, secc={"timeout_scale": 10.0}, csms_config={"needs_profiles": False}) as rig:
        for b in rig.bridges:
            b.policy.pacer = pacer
        evs = [asyncio.create_task(rig.ev(n, "iso2", "dc", loops=0, interval=0.05)) for n in (1, 2, 3)]
        txs = [await rig.flowing(n) for n in (1, 2, 3)]

        def offers(n: int) -> list[float]:
            return [_offered_w(r) for r in rig.records(n) if r.get("what") == "ScheduleOffered"]

        assert [offers(n) for n in (1, 2, 3)] == [[RATING_W]] * 3
        cap = {"id": 7, "stackLevel": 0, "chargingProfilePurpose": "ChargingStationMaxProfile",
               "chargingProfileKind": "Absolute", "chargingSchedule": [{
                   "id": 7, "chargingRateUnit": "W", "startSchedule": rig.station.clock.timestamp(),
                   "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 20_000.0}]}]}
        answer = await rig.csms.call("CS1", "SetChargingProfile", {"evseId": 0, "chargingProfile": cap})
        assert answer == {"status": "Accepted"}
        await until(lambda: all(any(r.get("what") == "RenegotiationWaits" for r in rig.records(n)) for n in (1, 2, 3)))
        assert [offers(n) for n in (1, 2, 3)] == [[RATING_W]] * 3  # the change is not 1 s old on the pacer's clock
        now[0] += 1.0
        for done in (1, 2, 3):
            await until(lambda done=done: sum(offers(n) == [RATING_W, 20_000.0] for n in (1, 2, 3)) == done)
            waiting = [n for n in (1, 2, 3) if offers(n) == [RATING_W]]
            await until(lambda waiting=waiting: all(
                any(r.get("what") == "RenegotiationWaits" for r in rig.records(n)) for n in waiting))
            assert sum(offers(n) == [RATING_W, 20_000.0] for n in (1, 2, 3)) == done  # the clock stood still
            await until(lambda: all(0 < rig.station.hardware(n).meter().power_w <= 20_000.0 * 1.05
                                    for n in (1, 2, 3)))  # every car within the new limit, renegotiated or not
            now[0] += 1.0
        assert pacer.granted == 3 and not pacer.holding
        for tx in txs:
            assert await rig.csms.request_stop("CS1", tx) == {"status": "Accepted"}
        for ev in evs:
            result = await asyncio.wait_for(ev, 60)
            assert result.ok, result.reason
