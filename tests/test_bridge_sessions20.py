"""End to end over real sockets: our ISO 15118-20 EVs (AC, DC, DC_BPT) -> the bridged station's SECC -> our station ->
our CSMS, which records the transaction (energy both ways, stoppedReason) and joins the ISO facts in the merged
timeline; Plug & Charge over TLS 1.3 with mutual authentication (the -20 PKI's secp521r1 certificates), and a vehicle
certificate the SECC does not trust refused in the handshake and reported to the CSMS."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from helpers.bridge import SPEEDUP, Rig, bridged
from helpers.wait import until

from v2gstack.csms.store import Store
from v2gstack.csms.timeline import merged_timeline
from v2gstack.iso15118.cli20 import ev_from_pki, secc_from_pki
from v2gstack.pki.hierarchy import Edition, Pki, PkiConfig, create_pki
from v2gstack.pki.profiles import Kind
from v2gstack.pki.store import write_pki
from v2gstack.station.bridge import BridgeConfig

pytestmark = pytest.mark.timeout(120)

OFFER = ("iso20", "iso2", "din")


@pytest.fixture(scope="module")
def pki20(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Path]:
    """A -20 PKI (secp521r1) in a folder: the SECC's and the EV's stores."""
    made = create_pki(PkiConfig(edition=Edition.ISO20))
    out = tmp_path_factory.mktemp("pki20-bridge")
    write_pki(made, out)
    return made, out


def _tx(rig: Rig) -> dict[str, Any]:
    [tx] = rig.csms.store.transactions("CS1")
    return rig.csms.store.transaction("CS1", tx["transactionId"])


def _register(tx: dict[str, Any], measurand: str) -> float:
    return [m["value"] for m in tx["meterValues"] if m["measurand"] == measurand][-1]


async def _settled(rig: Rig) -> None:
    await until(lambda: rig.station.evses[1].tx is None)
    await rig.station.wait_queue_empty()
    await until(lambda: not rig.bridges[0].ending)


@pytest.mark.parametrize(("energy", "control"), [("ac", "scheduled"), ("dc", "dynamic"), ("dc_bpt", "dynamic")])
async def test_iso20_session_becomes_a_transaction(tmp_path: Path, energy: str, control: str) -> None:
    """Each -20 service at the bridged station on OCPP 2.0.1: the CSMS's transaction has the EV's energy (DC_BPT: it
    is asked to discharge by a negative TxProfile within allow_discharge_w, the export register holds what it fed
    back), stoppedReason EVDisconnected, the ISO facts; the merged timeline joins the ISO messages and both sides'
    OCPP."""
    config = BridgeConfig(allow_discharge_w=8_000.0)
    async with bridged(tmp_path, evses=1, config=config, secc={"protocols": OFFER}, versions=("2.0.1",)) as rig:
        assert rig.station.link.version == "2.0.1"
        ev = asyncio.create_task(rig.ev(1, "iso20", energy, control=control, loops=40, interval=0.05))
        if energy == "dc_bpt":
            await until(lambda: rig.csms.active_transaction("CS1", 1) is not None
                        and rig.station.hardware(1).meter().power_w > 0)
            tx_id = rig.csms.active_transaction("CS1", 1)
            # stack level 1: above the CSMS's own needs profile (K15), which sits at 0 for the same transaction
            profile = {"id": 3, "stackLevel": 1, "chargingProfilePurpose": "TxProfile", "transactionId": tx_id,
                       "chargingProfileKind": "Relative", "chargingSchedule": [{
                           "id": 3, "chargingRateUnit": "W",
                           "chargingSchedulePeriod": [{"startPeriod": 0, "limit": -8000}]}]}
            answer = await rig.csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
            assert answer == {"status": "Accepted"}
        result = await asyncio.wait_for(ev, 60)
        assert result.ok and result.protocol == "iso20" and result.service == energy.upper(), result.reason
        await _settled(rig)
        tx = _tx(rig)
        assert tx["state"] == "Ended" and tx["stoppedReason"] == "EVDisconnected"
        iso = tx["iso15118"]
        assert iso["sessionId"] == result.session_id and iso["protocol"] == "ISO15118-20"
        assert iso["energyTransferMode"] == energy.upper() and iso["controlMode"] == control.capitalize()
        assert result.energy_wh > 10
        imported = _register(tx, "Energy.Active.Import.Register")
        if energy == "dc_bpt":  # the profile stops the charging at once, the EV learns it with the next loop
            one_loop_wh = 50_000 * 0.05 * SPEEDUP / 3600
            assert result.energy_wh - one_loop_wh - 3 <= imported <= result.energy_wh + one_loop_wh + 3
            assert result.exported_wh > 1
            assert _register(tx, "Energy.Active.Export.Register") == pytest.approx(result.exported_wh, rel=0.1,
                                                                                    abs=3.0)
        else:  # a limit change (the CSMS's needs profile) reaches the EV one loop after the meter
            assert imported == pytest.approx(result.energy_wh, rel=0.05, abs=max(3.0, result.max_step_wh))
            assert _register(tx, "Energy.Active.Export.Register") == 0
        entries = merged_timeline(result.session_id, trace_dir=rig.trace_dir, store=rig.csms.store)
        sides = {(e.source, e.protocol) for e in entries}
        assert {("station", "iso15118"), ("station", "ocpp"), ("csms", "ocpp")} <= sides
        names = {e.name for e in entries}
        assert {"SessionSetupReq", "ScheduleExchangeReq", "SessionStopRes", "TransactionEvent",
                "NotifyEVChargingNeeds"} <= names
        assert ("AC_ChargeLoopReq" if energy == "ac" else "DC_ChargeLoopReq") in names
        [needs] = [m["payload"]["chargingNeeds"] for m in rig.csms.store.messages(station_id="CS1")
                   if m["action"] == "NotifyEVChargingNeeds"]
        assert needs["requestedEnergyTransfer"] == ("AC_three_phase" if energy == "ac" else "DC")  # 2.0.1's enum
        assert "v2xChargingParameters" not in needs and needs["customData"]["energyService"] == energy.upper()


async def test_iso20_ev_follows_an_ocpp21_central_setpoint(tmp_path: Path) -> None:
    """OCPP 2.1 V2X: the station tells the CSMS the -20 needs natively (DC_BPT, DynamicControl,
    v2xChargingParameters); a CentralSetpoint TxProfile of -10 kW becomes the dynamic EV's discharge target in its
    next charge loop, held at the station's allow_discharge_w (8 kW); the CSMS's export register has what the EV
    fed back."""
    config = BridgeConfig(allow_discharge_w=8_000.0)
    async with bridged(tmp_path, evses=1, config=config, secc={"protocols": OFFER}) as rig:
        assert rig.station.link.version == "2.1"
        ev = asyncio.create_task(rig.ev(1, "iso20", "dc_bpt", control="dynamic", loops=40, interval=0.05))
        await until(lambda: rig.csms.active_transaction("CS1", 1) is not None
                    and rig.station.hardware(1).meter().power_w > 0)
        tx_id = rig.csms.active_transaction("CS1", 1)
        profile = {"id": 30, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "transactionId": tx_id,
                   "chargingProfileKind": "Relative", "chargingSchedule": [{
                       "id": 30, "chargingRateUnit": "W", "chargingSchedulePeriod": [{
                           "startPeriod": 0, "operationMode": "CentralSetpoint", "setpoint": -10000.0,
                           "dischargeLimit": -11000.0}]}]}
        answer = await rig.csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
        assert answer == {"status": "Accepted"}
        assert rig.station.target(1).setpoint_w == -10000.0
        await until(lambda: rig.station.hardware(1).meter().power_w < 0)
        assert rig.station.hardware(1).meter().power_w == pytest.approx(-8000.0, abs=1.0)  # the bridge's cap
        result = await asyncio.wait_for(ev, 60)
        assert result.ok and result.service == "DC_BPT" and result.exported_wh > 1, result.reason
        await _settled(rig)
        tx = _tx(rig)
        assert _register(tx, "Energy.Active.Export.Register") == pytest.approx(result.exported_wh, rel=0.1, abs=3.0)
        [needs] = [m["payload"]["chargingNeeds"] for m in rig.csms.store.messages(station_id="CS1")
                   if m["action"] == "NotifyEVChargingNeeds"]
        assert needs["requestedEnergyTransfer"] == "DC_BPT" and needs["controlMode"] == "DynamicControl"
        v2x = needs["v2xChargingParameters"]
        assert v2x["maxDischargePower"] > 0 and v2x["maxChargePower"] > 0 and v2x["evTargetEnergyRequest"] > 0


async def test_plug_and_charge_over_tls13(tmp_path: Path, pki20: tuple[Pki, Path]) -> None:
    """The SECC's -20 TLS 1.3 listener (the PKI's SECC certificate, vehicle certificates required); the EV presents
    its vehicle certificate and authorizes with its secp521r1 contract, which the CSMS validates."""
    pki, folder = pki20
    secc = {"protocols": OFFER, "tls": secc_from_pki(folder).context, "tcp": False}
    store = Store(f"sqlite:///{tmp_path / 'csms.db'}")  # the CSMS trusts the -20 MO root from the start
    store.add_trust_anchor("MORootCertificate", pki.cert(Kind.MO_ROOT).public_bytes(Encoding.PEM))
    store.close()
    ev = ev_from_pki(folder)  # its eMAID is not registered: the valid contract of a trusted MO is enough
    async with bridged(tmp_path, evses=1, free=False, secc=secc, csms_config={"tokens": []}) as rig:
        rig.station.model.put("ISO15118Ctrlr", "PnCEnabled", "true")
        result = await rig.ev(1, "iso20", "dc_bpt", control="scheduled", loops=10, interval=0.05,
                              tls_context=ev.context, payment="Contract", contract20=ev.contract)
        assert result.ok and result.service == "DC", result.reason  # no discharge allowed: DC_BPT not offered
        await _settled(rig)
        tx = _tx(rig)
        assert tx["idToken"] == ev.contract.emaid and tx["stoppedReason"] == "EVDisconnected"
        [auth] = [m for m in rig.csms.store.messages(station_id="CS1") if m["action"] == "Authorize"]
        assert auth["response"]["certificateStatus"] == "Accepted"
        session = rig.bridges[0].finished[0]
        [started] = [r for r in session.timeline.records if r.get("what") == "SessionStarted"]
        assert started["tls"] is True


async def test_untrusted_vehicle_certificate_is_refused(tmp_path: Path, pki20: tuple[Pki, Path]) -> None:
    """A vehicle certificate of another PKI: the SECC refuses the TLS 1.3 handshake; the CSMS gets the error map's
    SecurityEventNotification and NotifyEvent; no transaction."""
    _, folder = pki20
    stranger = tmp_path / "stranger"
    write_pki(create_pki(PkiConfig(edition=Edition.ISO20)), stranger)
    ours = ev_from_pki(stranger)
    ours.context.load_verify_locations(cafile=str(folder / "stores" / "ev" / "trust" / "v2g_root.pem"))
    secc = {"protocols": OFFER, "tls": secc_from_pki(folder).context, "tcp": False}
    async with bridged(tmp_path, evses=1, secc=secc) as rig:
        result = await rig.ev(1, "iso20", "dc", tls_context=ours.context, loops=3)
        assert not result.ok
        await until(lambda: any(m["action"] == "SecurityEventNotification"
                                for m in rig.csms.store.messages(station_id="CS1")))
        [security] = [m for m in rig.csms.store.messages(station_id="CS1")
                      if m["action"] == "SecurityEventNotification"]
        assert security["payload"]["type"] in ("TLSHandshakeFailed", "InvalidTLSCertificate",
                                               "InvalidCentralSystemCertificate", "InvalidChargingStationCertificate")
        assert rig.csms.store.transactions("CS1") == []
