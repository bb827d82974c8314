"""OCPP 2.1 V2X joined to ISO 15118-20 end to end over real sockets, every part ours: the CSMS (its REST API), the
station on OCPP 2.1, the bridged SECCs and -20 EVs. A DC_BPT and an AC_BPT car discharge under a CentralSetpoint
set through the CSMS API and the CSMS's export energy equals the car's; a LocalFrequency step reaches the car in
the next charge loop (shown by the session's timeline: the target change, then the loop responses); a car that
cannot discharge is reported (NotifyEvent) or refused up front (UnsupportedRequest); an ISO 15118-2 car gets the
right OCPP answer for discharge commands; a scheduled -20 car gets the setpoint in its ScheduleTuple."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from helpers.bridge import SPEEDUP, Rig, bridged
from helpers.csms import api_client
from helpers.interop20 import loop_power
from helpers.wait import until

from v2gstack.constants import GRID_SIM_VENDOR
from v2gstack.iso15118 import EVModel
from v2gstack.station.bridge import BridgeConfig

pytestmark = pytest.mark.timeout(120)

OFFER = ("iso20", "iso2", "din")
LOOPS = ("AC_ChargeLoopRes", "DC_ChargeLoopRes")
CURVE = [{"frequency": 49.8, "power": -10000.0}, {"frequency": 50.0, "power": 0.0},
         {"frequency": 50.2, "power": 10000.0}]


def _loop_powers_after(records: list[dict[str, Any]], seq: int) -> list[float]:
    """The powers of the charge-loop responses the SECC sent after record `seq`, in order."""
    return [p for r in records if r["seq"] > seq and r.get("direction") == "tx" and r.get("message") in LOOPS
            and (p := loop_power(r["message"], r["json"][r["message"]])) is not None]


def _targets(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("what") == "TargetChanged"]


def _target_records(rig: Rig, setpoint_w: float) -> list[dict[str, Any]]:
    """The TargetChanged records of the session with this setpoint (to 1 W)."""
    return [t for t in _targets(rig.records()) if t["setpoint_w"] is not None and abs(t["setpoint_w"] - setpoint_w) < 1]



async def _settled(rig: Rig) -> dict[str, Any]:
    """The EVSE's transaction once it has ended at the CSMS."""
    await until(lambda: rig.station.evses[1].tx is None)
    await rig.station.wait_queue_empty()
    await until(lambda: not rig.bridges[0].ending)
    [tx] = rig.csms.store.transactions("CS1")
    return rig.csms.store.transaction("CS1", tx["transactionId"])


@pytest.mark.parametrize("energy", ["dc_bpt", "ac_bpt"])
async def test_bpt_car_discharges_under_a_central_setpoint_from_the_csms_api(tmp_path: Path, energy: str) -> None:
    """A dynamic -20 BPT car charges; the operator's setpoint of -7 kW (POST .../evse/1/setpoint: a Dynamic
    CentralSetpoint TxProfile) is the target of the first charge loop after the station has it, and the car feeds
    back 7 kW from then on; the CSMS's export energy for the transaction equals the car's within 1 %, its import
    energy too."""
    async with bridged(tmp_path, evses=1, config=BridgeConfig(allow_discharge_w=10_000.0),
                       secc={"protocols": OFFER}) as rig:
        assert rig.station.link.version == "2.1"
        async with api_client(rig.csms, "operator") as api:  # made before the car comes: its token takes a while
            ev = asyncio.create_task(rig.ev(1, "iso20", energy, control="dynamic", loops=60, interval=0.05))
            await rig.flowing()
            r = await api.post("/api/stations/CS1/evse/1/setpoint", json={"setpoint": -7000.0})
        assert r.status_code == 200, r.text
        assert r.json()["action"] == "SetChargingProfile" and r.json()["response"]["status"] == "Accepted"
        assert rig.station.target(1).setpoint_w == -7000.0
        records = rig.records()
        [change] = [t for t in _targets(records) if t["setpoint_w"] == -7000.0]
        await until(lambda: len(_loop_powers_after(rig.records(), change["seq"])) >= 3)
        after = _loop_powers_after(rig.records(), change["seq"])
        assert after[0] == pytest.approx(-7000.0, rel=0.01)  # the very next loop carries the setpoint
        result = await asyncio.wait_for(ev, 60)
        assert result.ok and result.service == energy.upper(), result.reason
        tx = await _settled(rig)
        assert result.exported_wh > 50 and tx["energyExportWh"] == pytest.approx(result.exported_wh, rel=0.01)
        # the import before the setpoint is short: within one loop at full power (the EV counts from each answer)
        one_loop_wh = 50_000 * 0.05 * SPEEDUP / 3600
        assert abs(tx["energyImportWh"] - result.energy_wh) <= one_loop_wh + 3
        actions = [m["action"] for m in rig.csms.store.messages(station_id="CS1")]
        assert "NotifyEvent" not in actions


async def test_local_frequency_step_reaches_the_car_in_the_next_charge_loop(tmp_path: Path) -> None:
    """A LocalFrequency profile (baseline 0, a frequency-watt curve of 10 kW per 0.2 Hz); the station's grid
    frequency steps to 49.9 Hz (station.step_frequency) and then to 50.1 Hz (the CSMS's DataTransfer knob): each
    step is a TargetChanged record on the session's timeline, and the first charge-loop response after it carries
    the new target (-5 kW, then +5 kW): within one loop period, without the CSMS."""
    async with bridged(tmp_path, evses=1, config=BridgeConfig(allow_discharge_w=10_000.0),
                       secc={"protocols": OFFER}) as rig:
        ev = asyncio.create_task(rig.ev(1, "iso20", "dc_bpt", control="dynamic", loops=80, interval=0.05))
        tx_id = await rig.flowing()
        profile = {"id": 40, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "transactionId": tx_id,
                   "chargingProfileKind": "Relative", "chargingSchedule": [{
                       "id": 40, "chargingRateUnit": "W", "chargingSchedulePeriod": [{
                           "startPeriod": 0, "operationMode": "LocalFrequency", "v2xBaseline": 0.0,
                           "v2xFreqWattCurve": CURVE}]}]}
        answer = await rig.csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
        assert answer == {"status": "Accepted"}
        sent_before = len(rig.csms.store.messages(station_id="CS1"))
        rig.station.step_frequency(49.9)
        [down] = _target_records(rig, -5000.0)
        assert down["by"] == "LocalFrequency"
        await until(lambda: len(_loop_powers_after(rig.records(), down["seq"])) >= 2)
        assert _loop_powers_after(rig.records(), down["seq"])[0] == pytest.approx(-5000.0, rel=0.01)
        # the CSMS sent nothing for it: the station reacted on its own
        assert [m["action"] for m in rig.csms.store.messages(station_id="CS1")[sent_before:]
                if m["action"] in ("SetChargingProfile", "UpdateDynamicSchedule")] == []
        knob = await rig.csms.call("CS1", "DataTransfer", {"vendorId": GRID_SIM_VENDOR,
                                                          "messageId": "SetGridFrequency", "data": "50.1"})
        assert knob["status"] == "Accepted"
        [up] = _target_records(rig, 5000.0)
        await until(lambda: len(_loop_powers_after(rig.records(), up["seq"])) >= 2)
        between = [p for p in _loop_powers_after(rig.records(), down["seq"])
                   if p not in _loop_powers_after(rig.records(), up["seq"])]
        assert between and all(p == pytest.approx(-5000.0, rel=0.01) for p in between)
        assert _loop_powers_after(rig.records(), up["seq"])[0] == pytest.approx(5000.0, rel=0.01)
        result = await asyncio.wait_for(ev, 60)
        assert result.ok and result.exported_wh > 1 and result.energy_wh > 1, result.reason


async def test_a_bpt_car_that_cannot_discharge_is_reported(tmp_path: Path) -> None:
    """A -20 DC_BPT car whose discharge power is 0 W (it will not give any): the setpoint is accepted (a BPT
    session), the car keeps not discharging, and the CSMS gets a NotifyEvent (ConnectedEV/Problem, techCode
    EVCannotDischarge, the transaction) once; the timeline says DischargeRefused."""
    async with bridged(tmp_path, evses=1, config=BridgeConfig(allow_discharge_w=10_000.0),
                       secc={"protocols": OFFER}) as rig:
        model = EVModel(speedup=SPEEDUP, soc=30.0, dc_max_discharge_power=0.0)
        ev = asyncio.create_task(rig.ev(1, "iso20", "dc_bpt", control="dynamic", loops=30, interval=0.05,
                                        model=model))
        tx_id = await rig.flowing()
        answer = await rig.csms.v2x.setpoint("CS1", 1, {"setpoint": -7000.0})
        assert answer["response"]["status"] == "Accepted"
        result = await asyncio.wait_for(ev, 60)
        assert result.ok and result.exported_wh == 0, result.reason
        await _settled(rig)
        events = [e for m in rig.csms.store.messages(station_id="CS1") if m["action"] == "NotifyEvent"
                  for e in m["payload"]["eventData"] if e["techCode"] == "EVCannotDischarge"]
        assert len(events) == 1
        [event] = events
        assert event["component"] == {"name": "ConnectedEV", "evse": {"id": 1}}
        assert event["variable"] == {"name": "Problem"} and event["transactionId"] == tx_id
        assert [r for r in rig.records() if r.get("what") == "DischargeRefused"]


async def test_a_unidirectional_iso20_car_gets_unsupported_request(tmp_path: Path) -> None:
    """A -20 car that chose plain DC (the station offers DC_BPT): a discharge setpoint is Rejected by the station
    (UnsupportedRequest, the CSMS API says 502 with the station's answer); a charging setpoint is Accepted and
    followed."""
    async with bridged(tmp_path, evses=1, config=BridgeConfig(allow_discharge_w=10_000.0),
                       secc={"protocols": OFFER}) as rig:
        async with api_client(rig.csms, "operator") as api:
            ev = asyncio.create_task(rig.ev(1, "iso20", "dc", control="dynamic", loops=40, interval=0.05))
            await rig.flowing()
            refused = await api.post("/api/stations/CS1/evse/1/setpoint", json={"setpoint": -7000.0})
            assert refused.status_code == 200, refused.text
            status = refused.json()["response"]
            assert status["status"] == "Rejected" and status["statusInfo"]["reasonCode"] == "UnsupportedRequest"
            charging = await api.post("/api/stations/CS1/evse/1/setpoint", json={"setpoint": 6000.0})
        assert charging.json()["response"]["status"] == "Accepted"
        [change] = [t for t in _targets(rig.records()) if t["setpoint_w"] == 6000.0]
        await until(lambda: len(_loop_powers_after(rig.records(), change["seq"])) >= 1)
        assert _loop_powers_after(rig.records(), change["seq"])[0] == pytest.approx(6000.0, rel=0.01)
        result = await asyncio.wait_for(ev, 60)
        assert result.ok and result.exported_wh == 0, result.reason


async def test_an_iso15118_2_car_gets_the_right_answers_for_discharge(tmp_path: Path) -> None:
    """An ISO 15118-2 DC car can only be limited: a discharge setpoint (SetChargingProfile) and a negative
    UpdateDynamicSchedule are Rejected (UnsupportedRequest, the EV speaks ISO15118-2); a charging setpoint is
    Accepted, the car renegotiates and charges within it."""
    async with bridged(tmp_path, evses=1, config=BridgeConfig(allow_discharge_w=10_000.0),
                       secc={"protocols": OFFER}) as rig:
        ev = asyncio.create_task(rig.ev(1, "iso2", "dc", loops=60, interval=0.05))
        await rig.flowing()
        refused = await rig.csms.v2x.setpoint("CS1", 1, {"setpoint": -7000.0})
        assert refused["response"]["status"] == "Rejected"
        assert refused["response"]["statusInfo"]["reasonCode"] == "UnsupportedRequest"
        assert "ISO15118-2" in refused["response"]["statusInfo"]["additionalInfo"]
        accepted = await rig.csms.v2x.setpoint("CS1", 1, {"setpoint": 6000.0})
        assert accepted["action"] == "SetChargingProfile" and accepted["response"]["status"] == "Accepted"
        update = await rig.csms.v2x.setpoint("CS1", 1, {"setpoint": -3000.0})
        assert update["action"] == "UpdateDynamicSchedule" and update["response"]["status"] == "Rejected"
        assert update["response"]["statusInfo"]["reasonCode"] == "UnsupportedRequest"
        # the car renegotiates; it asks its current at its pack voltage, delivered at the target voltage (+10 V)
        await until(lambda: 0 < rig.station.hardware(1).meter().power_w <= 6000.0 * 1.05)
        result = await asyncio.wait_for(ev, 60)
        assert result.ok, result.reason
        tx = await _settled(rig)
        assert tx["energyExportWh"] == 0


async def test_scheduled_iso20_car_gets_the_setpoint_in_its_schedule_tuple(tmp_path: Path) -> None:
    """A scheduled -20 DC_BPT car: a CentralSetpoint of -6 kW becomes its ScheduleTuple's DischargingSchedule (6 kW)
    with a ChargingSchedule of 0 after ScheduleRenegotiation; a new setpoint (UpdateDynamicSchedule, +4 kW) is
    renegotiated again (charging 4 kW, discharging 0); the car discharges then charges, and the CSMS's export
    energy equals the car's."""
    async with bridged(tmp_path, evses=1, config=BridgeConfig(allow_discharge_w=10_000.0),
                       secc={"protocols": OFFER}) as rig:
        ev = asyncio.create_task(rig.ev(1, "iso20", "dc_bpt", control="scheduled", loops=80, interval=0.05))
        await rig.flowing()

        def offered() -> list[dict[str, Any]]:
            return [r for r in rig.records() if r.get("what") == "ScheduleOffered"]

        first = len(offered())
        answer = await rig.csms.v2x.setpoint("CS1", 1, {"setpoint": -6000.0})
        assert answer["response"]["status"] == "Accepted"
        await until(lambda: len(offered()) > first)
        discharge = offered()[-1]
        assert discharge["setpoint_w"] == -6000.0
        assert [p for _, p in discharge["charging"]] == [0.0] and [p for _, p in discharge["discharging"]] == [6000.0]
        await until(lambda: rig.station.hardware(1).meter().power_w < 0)
        assert rig.station.hardware(1).meter().power_w == pytest.approx(-6000.0, rel=0.01)
        again = len(offered())
        update = await rig.csms.v2x.setpoint("CS1", 1, {"setpoint": 4000.0})
        assert update["action"] == "UpdateDynamicSchedule" and update["response"]["status"] == "Accepted"
        await until(lambda: len(offered()) > again)
        charge = offered()[-1]
        assert [p for _, p in charge["charging"]] == [4000.0] and [p for _, p in charge["discharging"]] == [0.0]
        await until(lambda: rig.station.hardware(1).meter().power_w > 0)
        # the car asks its current at its pack voltage, the EVSE delivers it at the target voltage (+10 V)
        assert rig.station.hardware(1).meter().power_w == pytest.approx(4000.0, rel=0.05)
        result = await asyncio.wait_for(ev, 60)
        assert result.ok and result.exported_wh > 1, result.reason
        names = [r.get("message") for r in rig.records() if r.get("direction") == "rx"]
        assert names.count("ScheduleExchangeReq") >= 3  # the first and two renegotiations
        tx = await _settled(rig)
        one_loop_wh = 6000.0 * 0.05 * SPEEDUP / 3600  # the meter may trail the car by a loop either way
        assert tx["energyExportWh"] == pytest.approx(result.exported_wh, rel=0.05, abs=one_loop_wh + 1.0)
