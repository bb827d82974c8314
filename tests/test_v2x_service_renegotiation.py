"""OCPP 2.1 Q01/Q02 NotifyAllowedEnergyTransfer joined to ISO 15118-20 service renegotiation, end to end over real
sockets with every part ours (CSMS, station on 2.1 with the bridge, -20 and -2 EVs): the CSMS takes DC_BPT away from
a discharging-capable car, the station makes it renegotiate (EVSENotification ServiceRenegotiation), the SECC offers
DC alone, the car charges on in DC and a discharge setpoint is refused; DC_BPT allowed again, the car renegotiates
back and discharges. The order of events is read from the session's timeline; the answers follow the 2.1 rules."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from helpers.bridge import SPEEDUP, Rig, bridged
from helpers.wait import until

from v2gstack.station.bridge import BridgeConfig

pytestmark = pytest.mark.timeout(180)

OFFER = ("iso20", "iso2", "din")
LOOP_S = 0.05  # the EVs' charge-loop interval (real s)


def _records(rig: Rig, evse: int = 1) -> list[dict[str, Any]]:
    """The records of the EVSE's session (running or finished)."""
    policy = rig.bridges[evse - 1].policy
    session = policy.active or policy.finished[-1]
    return session.timeline.records


def _states(rig: Rig, what: str, evse: int = 1) -> list[dict[str, Any]]:
    return [r for r in _records(rig, evse) if r.get("what") == what]


def _discovered(rig: Rig) -> list[list[int]]:
    """The ServiceIDs of each ServiceDiscoveryRes the SECC sent (DC 2, DC_BPT 6)."""
    return [[s["ServiceID"] for s in r["json"]["ServiceDiscoveryRes"]["EnergyTransferServiceList"]["Service"]]
            for r in _records(rig) if r.get("direction") == "tx" and r.get("message") == "ServiceDiscoveryRes"]


def _seq(records: list[dict[str, Any]], pred: Any, after: int = -1) -> int:
    """The seq of the first record after `after` that `pred` accepts (an assertion error if none)."""
    found = [r["seq"] for r in records if r["seq"] > after and pred(r)]
    assert found, f"no record after {after}"
    return found[0]


async def _allow(rig: Rig, tx_id: str, modes: list[str]) -> dict[str, Any]:
    return await rig.csms.v2x.notify_allowed_energy_transfer("CS1", {"transactionId": tx_id,
                                                                     "allowedEnergyTransfer": modes})


async def test_allowed_energy_transfer_renegotiates_the_iso20_service(tmp_path: Path) -> None:
    """A dynamic -20 DC_BPT car charges; NotifyAllowedEnergyTransfer [DC] is Accepted and the car, told
    ServiceRenegotiation in a charge loop, stops the transfer, sends SessionStop(ServiceRenegotiation), is offered DC
    alone and charges on in DC in the same session and transaction; a discharge setpoint is then Rejected
    (UnsupportedRequest). [DC, DC_BPT] renegotiates back to DC_BPT and the same setpoint makes the car discharge.
    The CSMS has the EV's needs per service and the allowed modes; the station's meter counts the car's export."""
    async with bridged(tmp_path, evses=1, config=BridgeConfig(allow_discharge_w=10_000.0),
                       secc={"protocols": OFFER, "timeout_scale": 10.0}, csms_config={"needs_profiles": False}) as rig:
        assert rig.station.link.version == "2.1"
        ev = asyncio.create_task(rig.ev(1, "iso20", "dc_bpt", control="dynamic", loops=0, interval=LOOP_S))
        await until(lambda: rig.csms.active_transaction("CS1", 1) is not None
                    and rig.station.hardware(1).meter().power_w > 0)
        tx_id = rig.csms.active_transaction("CS1", 1)
        assert tx_id is not None
        assert _discovered(rig) == [[2, 6]]

        assert await _allow(rig, tx_id, ["DC"]) == {"status": "Accepted"}
        await until(lambda: [s["service"] for s in _states(rig, "ServiceSelected")] == ["DC_BPT", "DC"]
                    and rig.station.hardware(1).meter().power_w > 0, 60)
        records = _records(rig)
        allowed = _seq(records, lambda r: r.get("what") == "AllowedEnergyTransfer" and r["modes"] == ["DC"])
        asked = _seq(records, lambda r: r.get("what") == "ServiceRenegotiationRequested", allowed)
        told = _seq(records, lambda r: r.get("direction") == "tx" and r.get("message") == "DC_ChargeLoopRes"
                    and r["json"]["DC_ChargeLoopRes"].get("EVSEStatus", {}).get("EVSENotification")
                    == "ServiceRenegotiation", asked)
        stop = _seq(records, lambda r: r.get("direction") == "rx" and r.get("message") == "PowerDeliveryReq"
                    and r["json"]["PowerDeliveryReq"]["ChargeProgress"] == "Stop", told)
        opened = _seq(records, lambda r: r.get("what") == "ContactorsOpen", stop)
        session_stop = _seq(records, lambda r: r.get("direction") == "rx" and r.get("message") == "SessionStopReq"
                            and r["json"]["SessionStopReq"]["ChargingSession"] == "ServiceRenegotiation", opened)
        offered = _seq(records, lambda r: r.get("what") == "ServicesOffered" and r["services"] == ["DC"],
                       session_stop)
        selected = _seq(records, lambda r: r.get("what") == "ServiceSelected" and r["service"] == "DC", offered)
        _seq(records, lambda r: r.get("what") == "ContactorsClosed", selected)
        discovery = [r for r in records if r.get("direction") == "tx" and r.get("message") == "ServiceDiscoveryRes"]
        assert all(d["json"]["ServiceDiscoveryRes"]["ServiceRenegotiationSupported"] for d in discovery)
        assert rig.csms.active_transaction("CS1", 1) == tx_id  # the same transaction goes on
        # the new energy transfer mode reaches the CSMS with the transaction's ISO facts
        await until(lambda: (rig.csms.store.transaction("CS1", tx_id).get("iso15118") or {}).get(
            "energyTransferMode") == "DC")

        refused = await rig.csms.v2x.setpoint("CS1", 1, {"setpoint": -7000.0})
        assert refused["response"]["status"] == "Rejected"
        assert refused["response"]["statusInfo"]["reasonCode"] == "UnsupportedRequest"
        assert rig.station.hardware(1).meter().power_w >= 0

        assert await _allow(rig, tx_id, ["DC", "DC_BPT"]) == {"status": "Accepted"}
        await until(lambda: [s["service"] for s in _states(rig, "ServiceSelected")] == ["DC_BPT", "DC", "DC_BPT"]
                    and rig.station.hardware(1).meter().power_w > 0, 60)
        assert _discovered(rig) == [[2, 6], [2], [2, 6]]
        accepted = await rig.csms.v2x.setpoint("CS1", 1, {"setpoint": -7000.0})
        assert accepted["response"]["status"] == "Accepted"
        await until(lambda: rig.station.hardware(1).meter().export_wh > 40)
        assert await rig.csms.request_stop("CS1", tx_id) == {"status": "Accepted"}
        result = await asyncio.wait_for(ev, 60)
        assert result.ok, result.reason
        assert result.services == ("DC_BPT", "DC", "DC_BPT") and result.exported_wh > 0
        await until(lambda: rig.station.evses[1].tx is None)
        await rig.station.wait_queue_empty()
        log = rig.csms.store.messages(station_id="CS1")
        needs = [m["payload"]["chargingNeeds"]["requestedEnergyTransfer"] for m in log
                 if m["action"] == "NotifyEVChargingNeeds"]
        assert needs == ["DC_BPT", "DC", "DC_BPT"]
        sent = [(m["payload"]["allowedEnergyTransfer"], m["response"]["status"]) for m in log
                if m["action"] == "NotifyAllowedEnergyTransfer"]
        assert sent == [(["DC"], "Accepted"), (["DC", "DC_BPT"], "Accepted")]
        tx = rig.csms.store.transaction("CS1", tx_id)
        assert tx["v2x"]["allowedEnergyTransfer"] == ["DC", "DC_BPT"]
        assert tx["iso15118"]["energyTransferMode"] == "DC_BPT"
        # the car and the station's meter count the same energy (within a loop either way); the transaction ended
        # at the remote stop, a little before the car stopped feeding back, so the CSMS has a little less
        one_loop_wh = 7000.0 * LOOP_S * SPEEDUP / 3600
        exported = rig.station.hardware(1).meter().export_wh
        assert exported == pytest.approx(result.exported_wh, abs=one_loop_wh + 1.0)
        assert 40 < tx["energyExportWh"] <= exported + 0.01


async def test_allowed_energy_transfer_answers_by_the_evs_protocol(tmp_path: Path) -> None:
    """The 2.1 answers: an ISO 15118-2 car cannot renegotiate its service, so a list without the mode it charges in
    is Rejected (UnsupportedRequest) and one with it Accepted with nothing to renegotiate; a -20 DC car cannot
    change to AC within its session (Rejected), while a DC list that leaves its offer as it was is Accepted without
    a renegotiation; an unknown transaction is TxNotFound."""
    async with bridged(tmp_path, evses=2, config=BridgeConfig(allow_discharge_w=10_000.0),
                       secc={"protocols": OFFER, "timeout_scale": 10.0}, csms_config={"needs_profiles": False}) as rig:
        iso2 = asyncio.create_task(rig.ev(1, "iso2", "dc", loops=0, interval=LOOP_S))
        iso20 = asyncio.create_task(rig.ev(2, "iso20", "dc", control="dynamic", loops=0, interval=LOOP_S))
        await until(lambda: all(rig.csms.active_transaction("CS1", e) is not None
                                and rig.station.hardware(e).meter().power_w > 0 for e in (1, 2)))
        tx1, tx2 = rig.csms.active_transaction("CS1", 1), rig.csms.active_transaction("CS1", 2)
        assert tx1 is not None and tx2 is not None
        refused = await _allow(rig, tx1, ["DC_BPT"])
        assert refused["status"] == "Rejected" and refused["statusInfo"]["reasonCode"] == "UnsupportedRequest"
        assert "ISO15118-2" in refused["statusInfo"]["additionalInfo"]
        assert await _allow(rig, tx1, ["DC"]) == {"status": "Accepted"}
        refused = await _allow(rig, tx2, ["AC_three_phase", "AC_BPT"])
        assert refused["status"] == "Rejected" and refused["statusInfo"]["reasonCode"] == "UnsupportedRequest"
        assert await _allow(rig, tx2, ["DC", "DC_BPT"]) == {"status": "Accepted"}
        missing = await _allow(rig, "no-such-tx", ["DC"])
        assert missing["status"] == "Rejected" and missing["statusInfo"]["reasonCode"] == "TxNotFound"
        for evse in (1, 2):
            assert [s["modes"] for s in _states(rig, "AllowedEnergyTransfer", evse)] == [
                ["DC"] if evse == 1 else ["DC", "DC_BPT"]]
            assert _states(rig, "ServiceRenegotiationRequested", evse) == []
        for tx in (tx1, tx2):
            assert await rig.csms.request_stop("CS1", tx) == {"status": "Accepted"}
        results = await asyncio.wait_for(asyncio.gather(iso2, iso20), 60)
        assert all(r.ok for r in results), [r.reason for r in results]
        assert results[1].services == ("DC",)
