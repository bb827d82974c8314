"""ISO 15118 smart charging at the CSMS (K15-K17): NotifyEVChargingNeeds is Accepted only when a TxProfile follows,
and one does; Processing until the EVSE's transaction is known; Rejected/NoChargingProfile when no schedule will
come. Over real sockets with the `ocpp` package's ChargePoint, and end to end with our station and an ISO 15118-2 EV
(the station renegotiates within the profile)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from helpers.bridge import bridged
from helpers.csms import PASSWORD, api_client, csms_url, running_csms
from helpers.peers import TheirStation, their_station
from helpers.wait import until
from ocpp.v201 import call

from v2gstack.csms import v2x_state
from v2gstack.csms.ev_needs import NEEDS_PROFILE_BASE
from v2gstack.csms.grid_control import GRID_PROFILE_BASE, GridConfig, GridControl
from v2gstack.times import rfc3339


def _at(hours: float = 0) -> str:
    return rfc3339(datetime.now(UTC) + timedelta(hours=hours), timespec="seconds")


async def _start(cp: TheirStation, tx_id: str, evse: int = 1) -> None:
    await cp.call(call.TransactionEvent(event_type="Started", timestamp=_at(), trigger_reason="CablePluggedIn",
                                        seq_no=0, transaction_info={"transaction_id": tx_id},
                                        evse={"id": evse, "connector_id": 1}), suppress=False)


def _ac_needs(energy_wh: int, hours: float) -> dict[str, Any]:
    return {"requested_energy_transfer": "AC_three_phase", "departure_time": _at(hours),
            "ac_charging_parameters": {"energy_amount": energy_wh, "ev_min_current": 6, "ev_max_current": 32,
                                       "ev_max_voltage": 400}}


def _profiles(cp: TheirStation) -> list[dict[str, Any]]:
    return [kw for action, kw in cp.seen if action == "SetChargingProfile"]


async def test_accepted_needs_get_a_tx_profile_within_the_limits(tmp_path: Path) -> None:
    """22 kWh in 2 h on three phases: Accepted, then a TxProfile for the transaction of about 15.9 A (within the
    EV's 6..32 A), accepted by the station and stored with the needs; an EV schedule above it is Rejected (K17)."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"PKG": PASSWORD}) as csms, \
            their_station(csms_url(csms), "PKG", PASSWORD) as cp:
        await _start(cp, "tx-needs")
        answer = await cp.call(call.NotifyEVChargingNeeds(evse_id=1, charging_needs=_ac_needs(22000, 2)),
                               suppress=False)
        assert answer.status == "Accepted"
        await until(lambda: len(_profiles(cp)) == 1)
        [request] = _profiles(cp)
        profile = request["charging_profile"]
        assert request["evse_id"] == 1 and profile["charging_profile_purpose"] == "TxProfile"
        assert profile["transaction_id"] == "tx-needs" and profile["id"] == NEEDS_PROFILE_BASE + 1
        [schedule] = profile["charging_schedule"]
        [period] = schedule["charging_schedule_period"]
        assert schedule["charging_rate_unit"] == "A" and period["number_phases"] == 3
        assert 6 <= period["limit"] <= 32 and abs(period["limit"] - 22000 / 2 / 690) < 0.2
        assert 7100 <= schedule["duration"] <= 7200
        async with api_client(csms, "viewer") as api:
            await until(lambda: csms.store.run(v2x_state.op_charging_needs, "PKG")[0]["profileAnswer"] is not None)
            [stored] = (await api.get("/api/stations/PKG/charging-needs")).json()
        assert stored["status"] == "Accepted" and stored["transactionId"] == "tx-needs"
        assert stored["profile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"] == period["limit"]
        assert stored["profileAnswer"] == {"status": "Accepted"}
        # K17: the EV's schedule is checked against the profile (W at 230 V per phase)
        too_much = await cp.call(call.NotifyEVChargingSchedule(time_base=_at(), evse_id=1, charging_schedule={
            "id": 1, "charging_rate_unit": "W", "charging_schedule_period": [{"start_period": 0, "limit": 22000}]}),
            suppress=False)
        assert too_much.status == "Rejected" and too_much.status_info["reason_code"] == "ExceedsLimit"
        fits = await cp.call(call.NotifyEVChargingSchedule(time_base=_at(), evse_id=1, charging_schedule={
            "id": 1, "charging_rate_unit": "W", "charging_schedule_period": [
                {"start_period": 0, "limit": period["limit"] * 690}, {"start_period": 7300, "limit": 22000}]}),
            suppress=False)
        assert fits.status == "Accepted"  # after the profile's end the EV is free


async def test_processing_until_the_transaction_then_rejected_when_nothing_to_compute(tmp_path: Path) -> None:
    """Needs before the transaction: Processing, and the profile follows the TransactionEvent (DC, the operator's
    11 kW limit below the EV's 150 kW). Needs without any EV maximum: Rejected (2.0.1), no profile."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"PKG": PASSWORD},
                            needs_max_power_w=11000.0) as csms, \
            their_station(csms_url(csms), "PKG", PASSWORD) as cp:
        needs = {"requested_energy_transfer": "DC", "dc_charging_parameters": {
            "ev_max_current": 300, "ev_max_voltage": 500, "ev_max_power": 150000}}
        early = await cp.call(call.NotifyEVChargingNeeds(evse_id=2, charging_needs=needs), suppress=False)
        assert early.status == "Processing" and _profiles(cp) == []
        await _start(cp, "tx-late", evse=2)
        await until(lambda: len(_profiles(cp)) == 1)
        profile = _profiles(cp)[0]["charging_profile"]
        assert profile["transaction_id"] == "tx-late"
        [schedule] = profile["charging_schedule"]
        assert schedule["charging_rate_unit"] == "W" and schedule["charging_schedule_period"][0]["limit"] == 11000
        nothing = {"requested_energy_transfer": "DC", "dc_charging_parameters": {"ev_max_current": 0,
                                                                                  "ev_max_voltage": 0}}
        refused = await cp.call(call.NotifyEVChargingNeeds(evse_id=2, charging_needs=nothing), suppress=False)
        assert refused.status == "Rejected" and refused.status_info["reason_code"] == "MissingParam"
        statuses = [n["status"] for n in csms.store.run(v2x_state.op_charging_needs, "PKG")]
        assert statuses == ["Processing", "Rejected"]
    assert len(_profiles(cp)) == 1


async def test_our_station_and_an_iso2_ev_renegotiate_within_the_profile(tmp_path: Path) -> None:
    """End to end: the EV's needs reach the CSMS, its TxProfile reaches our station, which renegotiates with the
    EV; the EV's new schedule keeps within the profile and the CSMS Accepts it."""
    async with bridged(tmp_path, evses=1) as rig:
        result = await rig.ev(1, "iso2", "ac", loops=30, interval=0.05)
        assert result.ok, result.reason
        log = rig.csms.store.messages(station_id="CS1")
        [needs] = [m for m in log if m["action"] == "NotifyEVChargingNeeds"]
        assert needs["response"] == {"status": "Accepted"}
        [sent] = [m for m in log if m["action"] == "SetChargingProfile"]
        assert sent["response"]["status"] == "Accepted"
        limit_a = sent["payload"]["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"]
        *_, schedule = [m for m in log if m["action"] == "NotifyEVChargingSchedule"]
        assert schedule["response"] == {"status": "Accepted"}
        first = schedule["payload"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
        assert first <= limit_a * 230 * 3 + 1


async def test_a_dispatching_grid_control_keeps_the_promise_instead(tmp_path: Path) -> None:
    """With the grid scheduler dispatching, the needs are Accepted and its TxProfile (not the flat one) follows."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", stations={"PKG": PASSWORD}) as csms, \
            their_station(csms_url(csms), "PKG", PASSWORD) as cp:
        grid = GridControl(csms, GridConfig(dispatch=True))
        grid.start()
        try:
            await _start(cp, "tx-grid")
            answer = await cp.call(call.NotifyEVChargingNeeds(evse_id=1, charging_needs=_ac_needs(22000, 2)),
                                   suppress=False)
            assert answer.status == "Accepted"
            await until(lambda: any(p["charging_profile"]["id"] == GRID_PROFILE_BASE + 1 for p in _profiles(cp)))
            assert all(p["charging_profile"]["id"] != NEEDS_PROFILE_BASE + 1 for p in _profiles(cp))
        finally:
            await grid.close()
