"""Smart charging in the station: profile validation, stacking and the composite schedule (pure), and the CSMS's
SetChargingProfile / GetCompositeSchedule / ClearChargingProfile / GetChargingProfiles changing a running session."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers.csms import TOKEN, our_station, running_csms
from helpers.wait import until

from v2gstack.station import ChargingStation, StationConfig
from v2gstack.station.profiles import ChargingProfiles, Installed, Rejection, epoch
from v2gstack.station.v2x_target import EvseTarget
from v2gstack.times import rfc3339

T0 = epoch("2026-11-24T10:00:00Z")


def _profile(pid: int, purpose: str, level: int, periods: list[tuple[int, float]], *, unit: str = "W",
             kind: str = "Absolute", start: float = T0, **extra: object) -> dict:
    sched = {"id": pid, "chargingRateUnit": unit,
             "chargingSchedulePeriod": [{"startPeriod": s, "limit": v} for s, v in periods]}
    if kind != "Relative":
        sched["startSchedule"] = rfc3339(start)
    return {"id": pid, "stackLevel": level, "chargingProfilePurpose": purpose, "chargingProfileKind": kind,
            "chargingSchedule": [sched], **extra}


def test_validation_rejects_what_k01_forbids() -> None:
    profiles = ChargingProfiles([1, 2])
    cases = [
        (1, _profile(1, "ChargingStationMaxProfile", 0, [(0, 1000)]), "InvalidProfile"),
        (0, _profile(2, "TxProfile", 0, [(0, 1000)]), "InvalidProfile"),
        (1, _profile(3, "TxProfile", 0, [(0, 1000)]), "TxNotFound"),
        (1, _profile(4, "TxDefaultProfile", 0, [(10, 1000)]), "InvalidSchedule"),
        (1, _profile(5, "TxDefaultProfile", 0, [(0, 1000), (0, 500)]), "InvalidSchedule"),
        (9, _profile(6, "TxDefaultProfile", 0, [(0, 1000)]), "UnknownEvse"),
        (1, _profile(7, "TxDefaultProfile", 0, [(0, 1000)], kind="Recurring"), "InvalidProfile"),
    ]
    for evse, p, reason in cases:
        with pytest.raises(Rejection) as info:
            profiles.set(evse, p, {})
        assert info.value.reason == reason, p
    profiles.set(1, _profile(10, "TxDefaultProfile", 0, [(0, 1000)]), {})
    with pytest.raises(Rejection, match="DuplicateProfile"):
        profiles.set(1, _profile(11, "TxDefaultProfile", 0, [(0, 2000)]), {})
    profiles.set(1, _profile(10, "TxDefaultProfile", 0, [(0, 2000)]), {})  # same id replaces
    assert profiles.limit_w(1, T0 + 5) == 2000
    profiles.set(1, _profile(12, "TxProfile", 0, [(0, 500)]), {1: "tx-1"})
    assert profiles.limit_w(1, T0 + 5, tx_id="tx-1") == 500


def test_composite_stacks_purposes_levels_units_and_time() -> None:
    profiles = ChargingProfiles([1, 2])
    # station maximum 11 kW; default profile 16 A x 3 x 230 V = 11,040 W then 6 A after 1 h
    profiles.set(0, _profile(1, "ChargingStationMaxProfile", 0, [(0, 11000)]), {})
    profiles.set(0, _profile(2, "TxDefaultProfile", 0, [(0, 16), (3600, 6)], unit="A"), {})
    # a higher stack level on EVSE 1 limits to 7 kW for 30 min from T0 + 600
    profiles.set(1, _profile(3, "TxDefaultProfile", 5, [(0, 7000)], start=T0 + 600,
                             validTo=rfc3339(T0 + 2400)), {})
    comp = profiles.composite(1, T0, 7200, "W", tx_id="t", evse_max=22000)
    assert [(p["startPeriod"], p["limit"]) for p in comp["chargingSchedulePeriod"]] == [
        (0, 11000.0), (600, 7000.0), (2400, 11000.0), (3600, 4140.0)]
    comp_a = profiles.composite(2, T0, 7200, "A", tx_id="t", evse_max=22000)
    assert [(p["startPeriod"], p["limit"]) for p in comp_a["chargingSchedulePeriod"]] == [(0, 15.9), (3600, 6.0)]
    # a TxProfile overrides the default for its transaction only
    profiles.set(1, _profile(4, "TxProfile", 0, [(0, 3000)], transactionId="t"), {1: "t"})
    assert profiles.limit_w(1, T0 + 10, tx_id="t") == 3000
    assert profiles.limit_w(1, T0 + 10, tx_id="other") == 11000
    # relative profiles count from the transaction start; recurring ones repeat daily
    profiles.clear(criteria={"chargingProfilePurpose": "TxDefaultProfile"})
    profiles.set(2, _profile(5, "TxDefaultProfile", 0, [(0, 2000), (60, 4000)], kind="Relative"), {})
    assert profiles.limit_w(2, T0 + 30, tx_start=T0) == 2000 and profiles.limit_w(2, T0 + 90, tx_start=T0) == 4000
    assert profiles.limit_w(2, T0 + 30) == 11000  # no transaction: only the station maximum
    profiles.set(2, _profile(6, "TxDefaultProfile", 1, [(0, 1000), (3600, 5000)], kind="Recurring",
                             recurrencyKind="Daily"), {})
    assert profiles.limit_w(2, T0 + 86400 + 100, tx_start=T0) == 1000
    assert profiles.limit_w(2, T0 + 86400 + 4000, tx_start=T0) == 5000
    assert profiles.clear(6) and not profiles.clear(6)
    assert [i.profile["id"] for i in profiles.report(None, {"chargingProfilePurpose": "TxDefaultProfile"})] == [5]


async def test_csms_profiles_change_the_power_of_a_running_session(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, our_station(csms) as st:
        await st.wait_accepted()
        changed: list[int] = []
        st.on_profiles_changed(changed.append)
        st.set_ev(1, power_w=11000.0)
        await st.plug_in(1)
        await st.present_token(1, TOKEN)
        await until(lambda: st.hardware(1).meter().power_w == 11000.0)
        tx_id = st.evses[1].tx.id
        profile = {"id": 7, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Relative",
                   "transactionId": tx_id, "chargingSchedule": [{"id": 1, "chargingRateUnit": "A",
                                                                 "chargingSchedulePeriod": [
                                                                     {"startPeriod": 0, "limit": 10}]}]}
        answer = await csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
        assert answer == {"status": "Accepted"} and changed == [1]
        assert st.hardware(1).meter().power_w == pytest.approx(10 * 230 * 3)
        comp = await csms.call("CS1", "GetCompositeSchedule", {"evseId": 1, "duration": 3600,
                                                               "chargingRateUnit": "W"})
        assert comp["status"] == "Accepted"
        assert comp["schedule"]["chargingSchedulePeriod"][0]["limit"] == 6900.0
        bad = await csms.call("CS1", "SetChargingProfile", {"evseId": 2, "chargingProfile": {**profile, "id": 8}})
        assert bad["status"] == "Rejected" and bad["statusInfo"]["reasonCode"] == "UnknownEvse"
        got = await csms.call("CS1", "GetChargingProfiles", {"requestId": 5, "chargingProfile": {}})
        assert got == {"status": "Accepted"}
        await until(lambda: any(m["action"] == "ReportChargingProfiles" for m in csms.store.messages()))
        assert await csms.call("CS1", "ClearChargingProfile", {"chargingProfileId": 7}) == {"status": "Accepted"}
        assert st.hardware(1).meter().power_w == 11000.0
        assert await csms.call("CS1", "ClearChargingProfile", {"chargingProfileId": 7}) == {"status": "Unknown"}
        # the energy register integrated the lower power while it applied: never more than full power allows
        assert st.hardware(1).meter().import_wh > 0


def test_limits_must_be_finite_and_sane_whatever_the_input_path() -> None:
    """inf/nan (what a JSON parser makes of 1e999) and absurd magnitudes are refused by the station itself, as are
    phases outside 1..3, unreadable times and more profiles than the station keeps."""
    profiles = ChargingProfiles([1], max_profiles=2)
    cases = [
        (_profile(1, "TxDefaultProfile", 0, [(0, math.inf)]), "InvalidValue"),
        (_profile(2, "TxDefaultProfile", 0, [(0, math.nan)]), "InvalidValue"),
        (_profile(3, "ChargingStationMaxProfile", 0, [(0, 1e300)]), "ValueTooHigh"),
        (_profile(4, "TxDefaultProfile", 0, [(0, 20_000)], unit="A"), "ValueTooHigh"),
        (_profile(5, "TxDefaultProfile", 0, [(0, 1000), (60, -math.inf)]), "InvalidValue"),
        (_profile(6, "TxDefaultProfile", 0, [(0, 1000)], validTo="yesterday"), "InvalidValue"),
    ]
    min_rate = _profile(7, "TxDefaultProfile", 0, [(0, 1000)])
    min_rate["chargingSchedule"][0]["minChargingRate"] = math.inf
    no_phases = _profile(8, "TxDefaultProfile", 0, [(0, 1000)])
    no_phases["chargingSchedule"][0]["chargingSchedulePeriod"][0]["numberPhases"] = 0
    cases += [(min_rate, "InvalidValue"), (no_phases, "InvalidSchedule")]
    for p, reason in cases:
        with pytest.raises(Rejection) as info:
            profiles.set(0 if p["chargingProfilePurpose"] == "ChargingStationMaxProfile" else 1, p, {})
        assert info.value.reason == reason, p
    assert not profiles.items
    profiles.set(1, _profile(10, "TxDefaultProfile", 0, [(0, 1000)]), {})
    profiles.set(1, _profile(11, "TxDefaultProfile", 1, [(0, 2000)]), {})
    with pytest.raises(Rejection, match="TooManyElements"):
        profiles.set(1, _profile(12, "TxDefaultProfile", 2, [(0, 3000)]), {})
    profiles.set(1, _profile(11, "TxDefaultProfile", 1, [(0, 2500)]), {})  # replacing one is no new entry


def test_composite_work_is_bounded_for_any_duration() -> None:
    """A recurring profile whose limit changes through the day and a duration of 2^31-1 s (the field finding built
    596,524 periods): Rejected with ValueTooHigh after at most 4 x max_periods evaluations; the same profile over a
    day fits; a recurring profile that never changes costs one period for any duration."""
    profiles = ChargingProfiles([1])
    hourly = [(3600 * h, 7000.0 + 1000 * (h % 2)) for h in range(24)]
    profiles.set(1, _profile(1, "TxDefaultProfile", 0, hourly, kind="Recurring", recurrencyKind="Daily"), {})
    with pytest.raises(Rejection) as info:
        profiles.composite(1, T0 + 10, 2**31 - 1, "W", max_periods=24)
    assert info.value.reason == "ValueTooHigh" and "PeriodsPerSchedule" in info.value.info
    day = profiles.composite(1, T0, 86400, "W", max_periods=24)
    assert [p["limit"] for p in day["chargingSchedulePeriod"]] == [v for _, v in hourly]
    profiles.clear(1)
    profiles.set(1, _profile(2, "TxDefaultProfile", 0, [(0, 5000), (3600, 5000)], kind="Recurring",
                             recurrencyKind="Weekly"), {})
    forever = profiles.composite(1, T0 + 10, 2**31 - 1, "W", max_periods=24)
    assert [(p["startPeriod"], p["limit"]) for p in forever["chargingSchedulePeriod"]] == [(0, 5000.0)]


async def test_absurd_limit_and_endless_composite_are_rejected_over_ocpp(tmp_path: Path) -> None:
    """Over a real OCPP link: a limit of 1e300 W is Rejected (ValueTooHigh) and not installed; GetCompositeSchedule
    for 2^31-1 s of a recurring profile is Rejected with a reason instead of a schedule of hundreds of thousands of
    periods, and one day of it is answered within SmartChargingCtrlr.PeriodsPerSchedule periods. Profiles saved with
    a non-finite limit are dropped when the station starts."""
    state = tmp_path / "station"
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, our_station(csms, state_dir=state) as st:
        await st.wait_accepted()
        absurd = _profile(1, "ChargingStationMaxProfile", 0, [(0, 1e300)])
        answer = await csms.call("CS1", "SetChargingProfile", {"evseId": 0, "chargingProfile": absurd})
        assert answer["status"] == "Rejected" and answer["statusInfo"]["reasonCode"] == "ValueTooHigh"
        assert not st.smart_charging.profiles.items
        periods = [(3600 * h, 11000.0 - 4000 * (h % 2)) for h in range(24)]  # the limit changes every hour
        daily = _profile(2, "ChargingStationMaxProfile", 0, periods, kind="Recurring", recurrencyKind="Daily")
        assert await csms.call("CS1", "SetChargingProfile", {"evseId": 0, "chargingProfile": daily}) == {
            "status": "Accepted"}
        assert st.model.value("SmartChargingCtrlr", "Entries", instance="ChargingProfiles") == "1"
        endless = await csms.call("CS1", "GetCompositeSchedule", {"evseId": 1, "duration": 2**31 - 1})
        assert endless["status"] == "Rejected" and endless["statusInfo"]["reasonCode"] == "ValueTooHigh"
        assert "schedule" not in endless
        day = await csms.call("CS1", "GetCompositeSchedule", {"evseId": 1, "duration": 6 * 3600})
        assert day["status"] == "Accepted"
        assert 6 <= len(day["schedule"]["chargingSchedulePeriod"]) <= 7
    saved = json.loads((state / "charging_profiles.json").read_text())
    saved[0]["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] = math.inf
    (state / "charging_profiles.json").write_text(json.dumps(saved))  # as an older version could have saved it
    async with running_csms(f"sqlite:///{tmp_path / 'c2.db'}") as csms, our_station(csms, state_dir=state) as st:
        assert not st.smart_charging.profiles.items


def test_each_evse_looks_up_its_own_and_the_station_wide_profiles() -> None:
    """The per-EVSE index a charge loop asks (its own profiles and evseId 0's, whatever the station's size) follows
    every change of the installed set: set, replace, a transaction's end, clear, and a profile loaded from disk."""
    profiles = ChargingProfiles([1, 2, 3])

    def ids(evse: int) -> list[int]:
        return sorted(i.profile["id"] for i in profiles.for_evse(evse))

    profiles.set(0, _profile(1, "TxDefaultProfile", 0, [(0, 9000)]), {})
    profiles.set(2, _profile(2, "TxDefaultProfile", 1, [(0, 5000)]), {})
    profiles.set(3, _profile(3, "TxProfile", 0, [(0, 4000)], transactionId="tx-3"), {3: "tx-3"})
    assert (ids(0), ids(1), ids(2), ids(3)) == ([1], [1], [1, 2], [1, 3])
    profiles.set(2, _profile(2, "TxDefaultProfile", 1, [(0, 6000)]), {})  # same id: replaced, not added
    assert ids(2) == [1, 2] and profiles.for_evse(2)[1].profile["chargingSchedule"][0][
        "chargingSchedulePeriod"][0]["limit"] == 6000
    profiles.end_transaction("tx-3")
    assert ids(3) == [1]
    profiles.clear(1)
    assert (ids(0), ids(2)) == ([], [2])
    profiles.items[4] = Installed(1, _profile(4, "TxDefaultProfile", 0, [(0, 3000)]))  # as a saved one is loaded
    assert ids(1) == [4] and profiles.limit_w(1, T0 + 5) == 3000


def test_a_change_is_told_to_the_evses_it_concerns_only() -> None:
    """Listeners of one EVSE hear its own profile and target changes and the station-wide ones, not the other EVSEs'
    (a station of 100 EVSEs: one call per change, not 100); the station-wide listeners hear everything."""
    st = ChargingStation(StationConfig("CS1", "ws://127.0.0.1:9/ocpp", evses=3))
    heard: list[tuple[str, int, int]] = []
    everything: list[int] = []
    st.on_profiles_changed(everything.append)
    for n in (1, 2, 3):
        st.on_profiles_changed(lambda e, n=n: heard.append(("profiles", n, e)), n)
        st.on_target(lambda e, _t, n=n: heard.append(("target", n, e)), n)
    st.smart_charging.changed(2)  # the transactions (listening to all) apply EVSE 2's target: told to EVSE 2
    assert heard == [("target", 2, 2), ("profiles", 2, 2)]
    heard.clear()
    st.smart_charging.changed(0)
    assert [h for h in heard if h[0] == "profiles"] == [("profiles", 1, 0), ("profiles", 2, 0), ("profiles", 3, 0)]
    assert everything == [2, 0]
    heard.clear()
    st.v2x.told(3, EvseTarget("CentralSetpoint", -5000.0, 0.0, 5000.0, "CSMS"))
    assert heard == [("target", 3, 3)]
