"""The station's cached OCPP 2.1 composite period (SmartCharging.period_now): reused until the next instant at which
it can change, and composed again right after each change of its inputs. Time is the station's clock, set by hand
(no sleeps): each step asserts what a fresh composition at that instant gives."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from v2gstack.ocpp.v2x_composite import Electrical, compose_at, epoch, next_change
from v2gstack.station import ChargingStation, StationConfig
from v2gstack.station.clock import Clock
from v2gstack.station.transaction import Transaction
from v2gstack.times import rfc3339

T0 = epoch("2026-11-24T10:00:00Z")
Payload = dict[str, Any]


class HandClock(Clock):
    """A station clock that reads what the test sets (`at`, epoch seconds)."""

    def __init__(self, at: float) -> None:
        super().__init__()
        self.at = at

    def wall(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.at, dt.UTC)


def _station(evses: int = 1, versions: tuple[str, ...] = ("2.1", "2.0.1")) -> tuple[ChargingStation, HandClock]:
    """A station (not connected) whose clock the test moves."""
    st = ChargingStation(StationConfig("CS1", "ws://127.0.0.1:9/ocpp", evses=evses, versions=versions))
    clock = HandClock(T0)
    st.context.clock = clock
    return st, clock


def _profile(pid: int, purpose: str, periods: list[Payload], *, kind: str = "Absolute", level: int = 0,
             start: float | None = T0, **extra: Any) -> Payload:
    schedule: Payload = {"id": pid, "chargingRateUnit": "W",
                         "chargingSchedulePeriod": [{"startPeriod": s, **v} for s, v in periods]}
    if start is not None:
        schedule["startSchedule"] = rfc3339(start)
    if "duration" in extra:
        schedule["duration"] = extra.pop("duration")
    return {"id": pid, "stackLevel": level, "chargingProfilePurpose": purpose, "chargingProfileKind": kind,
            "chargingSchedule": [schedule], **extra}


def _set(st: ChargingStation, evse_id: int, profile: Payload) -> None:
    answer = st.smart_charging.handlers()["SetChargingProfile"]({"evseId": evse_id, "chargingProfile": profile})
    assert answer == {"status": "Accepted"}, answer


def _fresh(st: ChargingStation, evse_id: int) -> Payload | None:
    """The period a composition from scratch gives now (what the cache must equal)."""
    sc = st.smart_charging
    tx = st.evses[evse_id].tx
    items = [(e, p) for e, p in sc.items() if e in (0, evse_id) and (
        p["chargingProfilePurpose"] not in ("TxProfile", "PriorityCharging")
        or (tx is not None and p.get("transactionId") in (None, tx.id)))]
    return compose_at(items, evse_id, st.context.clock.wall().timestamp(), "W", Electrical(),
                      tx.started_epoch if tx else None) or None


def _limit(period: Payload | None) -> float | None:
    return None if period is None else period.get("limit")


def test_the_cached_period_changes_exactly_at_each_boundary() -> None:
    """An Absolute TxDefaultProfile with three periods, a duration and a validTo: the period composed at T0 is reused
    (the same object) up to the instant before the next period starts, and the new one holds from that very instant;
    the duration's end and validTo end it just as exactly."""
    st, clock = _station()
    sc = st.smart_charging
    _set(st, 1, _profile(1, "TxDefaultProfile", [(0, {"limit": 10000.0}), (60, {"limit": 5000.0}),
                                                 (120, {"limit": 8000.0})], duration=300))
    _set(st, 0, _profile(2, "ChargingStationMaxProfile", [(0, {"limit": 20000.0})], validTo=rfc3339(T0 + 400)))
    first = sc.period_now(1)
    assert _limit(first) == 10000.0
    for at in (T0 + 0.5, T0 + 30, T0 + 59.999):
        clock.at = at
        assert sc.period_now(1) is first  # reused, not composed again
    expected = [(T0 + 60, 5000.0), (T0 + 119.999, 5000.0), (T0 + 120, 8000.0), (T0 + 299.999, 8000.0),
                (T0 + 300, 20000.0), (T0 + 399.999, 20000.0), (T0 + 400, None)]
    for at, limit in expected:
        clock.at = at
        assert _limit(sc.period_now(1)) == limit, at
        assert sc.period_now(1) == _fresh(st, 1)


def test_relative_and_recurring_profiles_change_at_their_own_boundaries() -> None:
    """A Relative TxProfile counts its periods from the transaction's start; a Daily recurring TxDefaultProfile starts
    again each day (its last period holds until the next recurrence), and validFrom holds it back until then."""
    st, clock = _station()
    sc = st.smart_charging
    start = T0 + 100.25
    st.evses[1].tx = Transaction(1, id="tx-1", started_epoch=start)
    _set(st, 0, _profile(3, "TxDefaultProfile", [(0, {"limit": 7000.0}), (3600, {"limit": 3000.0})],
                         kind="Recurring", recurrencyKind="Daily", validFrom=rfc3339(T0 + 50)))
    _set(st, 1, _profile(4, "TxProfile", [(0, {"limit": 4000.0}), (10, {"limit": 6000.0})], kind="Relative",
                         start=None, transactionId="tx-1", duration=20))
    steps = [(T0, None), (T0 + 49.999, None), (T0 + 50, 7000.0), (start - 0.001, 7000.0), (start, 4000.0),
             (start + 9.999, 4000.0), (start + 10, 6000.0), (start + 19.999, 6000.0), (start + 20, 7000.0),
             (T0 + 3599.999, 7000.0), (T0 + 3600, 3000.0), (T0 + 86399.999, 3000.0), (T0 + 86400, 7000.0),
             (T0 + 86400 + 3600, 3000.0)]
    for at, limit in steps:
        clock.at = at
        assert _limit(sc.period_now(1)) == limit, at - T0
        assert sc.period_now(1) == _fresh(st, 1)


def test_each_change_of_the_inputs_composes_again_at_once() -> None:
    """At one instant (the clock does not move): SetChargingProfile, UpdateDynamicSchedule (a V2X setpoint), the
    external actor's limits and their end, ClearChargingProfile, the transaction's start and end each give the new
    period on the very next question."""
    st, clock = _station()
    sc = st.smart_charging
    clock.at = T0 + 10
    _set(st, 1, _profile(1, "TxDefaultProfile", [(0, {"limit": 9000.0})]))
    assert _limit(sc.period_now(1)) == 9000.0
    _set(st, 1, _profile(2, "TxDefaultProfile", [(0, {"limit": 6000.0})], level=1))  # SetChargingProfile
    assert _limit(sc.period_now(1)) == 6000.0
    tx = Transaction(1, id="tx-1", started_epoch=T0 + 10)
    st.evses[1].tx = tx  # a transaction starts: its Relative TxProfile counts from its start
    assert _limit(sc.period_now(1)) == 6000.0
    _set(st, 1, _profile(3, "TxProfile", [(0, {"limit": 4000.0})], kind="Relative", start=None,
                         transactionId="tx-1"))
    assert _limit(sc.period_now(1)) == 4000.0
    _set(st, 1, _profile(4, "TxProfile", [(0, {"limit": 3000.0, "setpoint": 2000.0,
                                                "operationMode": "CentralSetpoint"})],
                         kind="Dynamic", start=None, level=1, transactionId="tx-1"))
    assert sc.period_now(1)["setpoint"] == 2000.0
    assert st.v2x.handlers()["UpdateDynamicSchedule"]({"chargingProfileId": 4, "scheduleUpdate": {
        "limit": 3000.0, "setpoint": 2500.0}}) == {"status": "Accepted"}
    assert sc.period_now(1)["setpoint"] == 2500.0  # the V2X setpoint update
    sc.set_external(1, {"limit": 1500.0})  # the external actor's limits (NotifyChargingLimit)
    assert _limit(sc.period_now(1)) == 1500.0
    sc.set_external(1, None)  # ... and their end (ClearedChargingLimit)
    assert _limit(sc.period_now(1)) == 3000.0
    assert sc.handlers()["ClearChargingProfile"]({"chargingProfileId": 4}) == {"status": "Accepted"}
    assert _limit(sc.period_now(1)) == 4000.0
    st.evses[1].tx = Transaction(1, id="tx-2", started_epoch=T0 - 5)  # another transaction: not tx-1's profile
    assert _limit(sc.period_now(1)) == 6000.0
    st.evses[1].tx = tx
    sc.end_transaction("tx-1")  # the transaction ends: its TxProfiles go
    assert _limit(sc.period_now(1)) == 6000.0
    st.evses[1].tx = None
    assert _limit(sc.period_now(1)) == 6000.0
    assert sc.period_now(1) == _fresh(st, 1)


def test_a_change_on_one_evse_keeps_the_other_evses_periods() -> None:
    """A setpoint to one car (UpdateDynamicSchedule of its Dynamic TxProfile) composes that EVSE's period again at
    once and leaves the other EVSEs' cached periods (the same objects: no composition on their next charge loop);
    the external actor's limits on one EVSE alike; a station-wide change composes every EVSE's again."""
    st, clock = _station(evses=3)
    sc = st.smart_charging
    clock.at = T0 + 10
    _set(st, 0, _profile(1, "TxDefaultProfile", [(0, {"limit": 9000.0})], kind="Dynamic", start=None))
    for evse_id in (1, 2, 3):
        st.evses[evse_id].tx = Transaction(evse_id, id=f"tx-{evse_id}", started_epoch=T0)
        _set(st, evse_id, _profile(10 + evse_id, "TxProfile", [(0, {"limit": 5000.0, "setpoint": 1000.0 * evse_id,
                                                                    "operationMode": "CentralSetpoint"})],
                                   kind="Dynamic", start=None, level=1, transactionId=f"tx-{evse_id}"))
    before = {e: sc.period_now(e) for e in (1, 2, 3)}
    assert [p["setpoint"] for p in before.values()] == [1000.0, 2000.0, 3000.0]
    assert st.v2x.handlers()["UpdateDynamicSchedule"]({"chargingProfileId": 12, "scheduleUpdate": {
        "limit": 5000.0, "setpoint": -4000.0}}) == {"status": "Accepted"}
    assert sc.period_now(2)["setpoint"] == -4000.0 and sc.period_now(2) == _fresh(st, 2)
    assert sc.period_now(1) is before[1] and sc.period_now(3) is before[3]  # untouched: not composed again
    sc.set_external(3, {"limit": 1500.0})
    assert _limit(sc.period_now(3)) == 1500.0 and sc.period_now(3) == _fresh(st, 3)
    assert sc.period_now(1) is before[1]
    cached = {e: sc.period_now(e) for e in (1, 2, 3)}
    assert st.v2x.handlers()["UpdateDynamicSchedule"]({"chargingProfileId": 1, "scheduleUpdate": {
        "limit": 2500.0}}) == {"status": "Accepted"}  # the station-wide profile: every EVSE's period again
    for evse_id in (1, 2, 3):
        assert sc.period_now(evse_id) is not cached[evse_id]
        assert sc.period_now(evse_id) == _fresh(st, evse_id)
    st.evses[1].tx = None  # without its TxProfile, EVSE 1 follows the station-wide profile's update
    assert _limit(sc.period_now(1)) == 2500.0 == _limit(_fresh(st, 1))


def test_a_clock_that_jumps_composes_again() -> None:
    """The station's clock set back before the composition, or forward past the next boundary (a time sync, a
    scaled simulation), gives the period of the new instant, never the one cached."""
    st, clock = _station()
    sc = st.smart_charging
    _set(st, 1, _profile(1, "TxDefaultProfile", [(0, {"limit": 9000.0}), (600, {"limit": 4000.0})]))
    clock.at = T0 + 10
    assert _limit(sc.period_now(1)) == 9000.0
    clock.at = T0 - 3600  # back: before the schedule starts
    assert sc.period_now(1) is None
    clock.at = T0 + 10
    assert _limit(sc.period_now(1)) == 9000.0
    clock.at = T0 + 86400  # forward by a day, past the boundary
    assert _limit(sc.period_now(1)) == 4000.0
    clock.at = T0 + 599  # back again, after a composition at a later instant
    assert _limit(sc.period_now(1)) == 9000.0


def test_the_target_follows_the_grid_frequency_with_the_period_cached() -> None:
    """LocalFrequency: the composite period does not hold the frequency; the target does, so a frequency step moves
    the target at once while the period in force stays the cached one."""
    st, clock = _station()
    sc = st.smart_charging
    evse = st.evses[1]
    evse.plugged = evse.authorized = True
    evse.tx = Transaction(1, id="tx-1", started_epoch=T0)
    curve = [{"frequency": 49.8, "power": -10000.0}, {"frequency": 50.0, "power": 0.0},
             {"frequency": 50.2, "power": 10000.0}]
    local = {"operationMode": "LocalFrequency", "v2xBaseline": 0.0, "v2xFreqWattCurve": curve}
    _set(st, 1, _profile(1, "TxProfile", [(0, local)], transactionId="tx-1"))
    clock.at = T0 + 5
    period = sc.period_now(1)
    assert st.v2x.target(1).setpoint_w == 0.0
    st.step_frequency(50.1)
    assert st.v2x.target(1).setpoint_w == 5000.0
    assert sc.period_now(1) is period


def test_next_change_never_passes_a_change() -> None:
    """For random profiles of every kind and random instants, the composition is the same at every instant from one
    up to its `next_change` (checked every 0.5 s against compositions from scratch), which lies in the future."""
    rng = random.Random(15118)
    kinds = ["Absolute", "Relative", "Recurring", "Dynamic"]
    for n in range(120):
        kind = rng.choice(kinds)
        starts = sorted(rng.sample(range(1, 50), rng.randint(0, 3)))
        periods = [(0, {"limit": float(rng.randint(1, 9) * 1000)})] + [
            (s, {"limit": float(rng.randint(1, 9) * 1000)}) for s in starts]
        extra: dict[str, Any] = {}
        if rng.random() < 0.5:
            extra["duration"] = rng.randint(1, 60)
        if rng.random() < 0.3:
            extra["validFrom"] = rfc3339(T0 + rng.randint(-20, 40))
        if rng.random() < 0.3:
            extra["validTo"] = rfc3339(T0 + rng.randint(41, 120))
        if kind == "Recurring":
            extra["recurrencyKind"] = "Daily"
        start = None if kind == "Relative" or (kind == "Dynamic" and rng.random() < 0.5) else T0 + rng.randint(-30, 30)
        profile = _profile(n, "TxDefaultProfile", periods, kind=kind, start=start, **extra)
        tx_start = T0 + rng.randint(-10, 10) + 0.5
        at = T0 + rng.randint(-40, 100) + rng.random()
        until = next_change(profile, at, tx_start)
        here = compose_at([(1, profile)], 1, at, "W", tx_start=tx_start)
        t = at
        while t < min(until, at + 130):
            assert compose_at([(1, profile)], 1, t, "W", tx_start=tx_start) == here, (n, t - T0)
            t += 0.5
        assert until > at


def test_the_201_limit_is_cached_alike() -> None:
    """Over OCPP 2.0.1 (the limit alone, from profiles.py): the same boundaries and the same invalidations."""
    st, clock = _station(versions=("2.0.1",))
    assert not st.link.v21
    sc = st.smart_charging
    _set(st, 1, _profile(1, "TxDefaultProfile", [(0, {"limit": 10000.0}), (60, {"limit": 5000.0})]))
    steps = [(T0 - 1, None), (T0, 10000.0), (T0 + 59.999, 10000.0), (T0 + 60, 5000.0), (T0 + 30, 10000.0)]
    for at, limit in steps:
        clock.at = at
        assert sc.limit_w(1) == limit, at - T0
    st.evses[1].tx = Transaction(1, id="tx-1", started_epoch=T0 + 30)
    _set(st, 1, _profile(2, "TxProfile", [(0, {"limit": 4000.0}), (10, {"limit": 3000.0})], kind="Relative",
                         start=None, transactionId="tx-1"))
    assert sc.limit_w(1) == 4000.0
    clock.at = T0 + 40
    assert sc.limit_w(1) == 3000.0
    sc.end_transaction("tx-1")
    st.evses[1].tx = None
    assert sc.limit_w(1) == 10000.0
    assert sc.handlers()["ClearChargingProfile"]({"chargingProfileId": 1}) == {"status": "Accepted"}
    assert sc.limit_w(1) is None
