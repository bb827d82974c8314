"""ISO 15118-20 through the bridge in memory: our -20 EV engine -> the SECC's -20 engine -> the bridge's controller
and policy -> our station -> an in-memory websocket -> our CSMS. EIM (accepted, refused), Plug & Charge with the -20
algorithms (accepted, refused by the CSMS, certificate installation through Get15118EVCertificate then charging),
bidirectional power only when the station allows discharge, a profile change (ScheduleRenegotiation; a negative
limit makes a dynamic BPT EV discharge), a remote stop, and failures through the error map with their -20 codes."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from helpers.csms import TOKEN
from helpers.memory_bridge import SPEEDUP, MemoryRig, drive, memory_bridge
from helpers.pnc import contract20_of, oem20_of
from helpers.wait import until

from v2gstack.constants import ISO_FACTS_VENDOR
from v2gstack.hardware import SimulatedHardwareConfig
from v2gstack.iso15118.evcc import Send
from v2gstack.iso15118.secc import PausedSessions
from v2gstack.iso15118.v2gtp import PayloadType
from v2gstack.pki.hierarchy import Edition, Pki, PkiConfig, create_pki
from v2gstack.pki.profiles import Kind
from v2gstack.pki.store import write_pki
from v2gstack.station.bridge import BridgeConfig
from v2gstack.trace.error_map import FAILURES, FailureKind, kind_of_code

pytestmark = pytest.mark.timeout(60)

OFFER = ("iso20", "iso2", "din")
ONE_LOOP_WH = 50_000 * 0.02 * SPEEDUP / 3600
"""The energy of one charge loop at full power: each EV counts up to its last loop's answer, the meter until the
contactors open (and the other way round when the power changes), so the two differ by about that much."""


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may connect or listen."""
    def refuse(*args: Any, **kw: Any) -> None:
        raise AssertionError("a socket was used in an in-memory test")

    for name in ("connect", "connect_ex", "bind", "listen"):
        monkeypatch.setattr(socket.socket, name, refuse)


@pytest.fixture(scope="module")
def pki20(tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Path]:
    """A -20 PKI (secp521r1), written to a folder for the CSMS's contract issuing."""
    made = create_pki(PkiConfig(edition=Edition.ISO20))
    out = tmp_path_factory.mktemp("pki20")
    write_pki(made, out)
    return made, out


def _states(rig: MemoryRig, what: str) -> list[dict[str, Any]]:
    return [r for s in rig.bridge.finished for r in s.timeline.records if r.get("what") == what]


def _register(tx: dict[str, Any], measurand: str) -> float:
    return [m["value"] for m in tx["meterValues"] if m["measurand"] == measurand][-1]


def _needs(rig: MemoryRig) -> dict[str, Any]:
    [needs] = rig.messages("NotifyEVChargingNeeds")
    return needs["payload"]["chargingNeeds"]


async def _ev(rig: MemoryRig, energy: str, control: str = "scheduled", **kw: Any) -> Any:
    return await rig.ev("iso20", energy, control=control, offer=OFFER, **kw)


# ----- EIM -----

@pytest.mark.parametrize(("energy", "control"), [("ac", "scheduled"), ("dc", "dynamic")])
async def test_eim_session_reaches_the_csms(tmp_path: Path, energy: str, control: str) -> None:
    """A token at the EVSE, authorized by the CSMS; the -20 needs in NotifyEVChargingNeeds; the transaction with
    the ISO facts and the energy the EV says it took."""
    async with memory_bridge(tmp_path, free=False, config=BridgeConfig(id_token=TOKEN)) as rig:
        result = await _ev(rig, energy, control, loops=8)
        assert result.ok and result.protocol == "iso20", result.reason
        await rig.settled()
        [auth] = rig.messages("Authorize")
        assert auth["payload"]["idToken"] == TOKEN and auth["response"]["idTokenInfo"]["status"] == "Accepted"
        [tx] = rig.transactions()
        assert tx["idToken"] == TOKEN["idToken"] and tx["stoppedReason"] == "EVDisconnected"
        facts = tx["iso15118"]
        assert facts["sessionId"] == result.session_id and facts["protocol"] == "ISO15118-20"
        assert facts["energyTransferMode"] == energy.upper() and facts["controlMode"] == control.capitalize()
        assert _register(tx, "Energy.Active.Import.Register") == pytest.approx(result.energy_wh, rel=0.05,
                                                                               abs=ONE_LOOP_WH)
        assert result.energy_wh > 10 and _register(tx, "Energy.Active.Export.Register") == 0
        needs = _needs(rig)
        assert needs["requestedEnergyTransfer"] == ("DC" if energy == "dc" else "AC_three_phase")
        assert "departureTime" in needs
        params = needs["dcChargingParameters" if energy == "dc" else "acChargingParameters"]
        assert params["energyAmount"] > 0 and params["evMaxCurrent"] > 0
        custom = needs["customData"]
        assert custom["vendorId"] == ISO_FACTS_VENDOR and custom["energyService"] == energy.upper()
        assert custom["controlMode"] == control.capitalize() and custom["targetEnergy"] > 0
        # the EV's EVPowerProfile (its plan, in both modes); again after the CSMS's needs profile (K15) renegotiates
        chosen = rig.messages("NotifyEVChargingSchedule")[-1]
        assert chosen["payload"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] > 0


async def test_eim_refused(tmp_path: Path) -> None:
    """The CSMS refuses the token: AuthorizationRes WARNING_EIMAuthorizationFailure, the EV stops, the transaction
    ends as the error map says, NotifyEvent with the -20 code."""
    refused = {"idToken": "NOT-REGISTERED", "type": "ISO14443"}
    async with memory_bridge(tmp_path, free=False, config=BridgeConfig(id_token=refused)) as rig:
        result = await _ev(rig, "dc")
        assert not result.ok and result.response_code == "WARNING_EIMAuthorizationFailure", result.reason
        await rig.settled()
        failure = FAILURES[kind_of_code("WARNING_EIMAuthorizationFailure")]
        assert failure.kind is FailureKind.AUTHORIZATION_FAILED
        [tx] = rig.transactions()
        assert (tx["stoppedReason"], tx["events"][-1]["triggerReason"]) == (failure.stopped_reason,
                                                                            failure.trigger_reason)
        [event] = [d for m in rig.messages("NotifyEvent") for d in m["payload"]["eventData"]]
        assert event["techCode"] == "WARNING_EIMAuthorizationFailure"


# ----- Plug & Charge with the -20 algorithms -----

async def test_plug_and_charge_accepted(tmp_path: Path, pki20: tuple[Pki, Path]) -> None:
    """The secp521r1 contract's signature checked by the SECC, its chain by the CSMS (Authorize with the PEM
    chain): Accepted, the transaction under the eMAID."""
    pki, _ = pki20
    async with memory_bridge(tmp_path, pnc=True, tokens=[], mo_root=pki.cert(Kind.MO_ROOT)) as rig:
        contract = contract20_of(pki)
        result = await _ev(rig, "dc", tls=True, payment="Contract", contract20=contract, loops=4)
        assert result.ok, result.reason
        await rig.settled()
        [auth] = rig.messages("Authorize")
        assert auth["payload"]["idToken"] == {"idToken": contract.emaid, "type": "eMAID"}
        assert "BEGIN CERTIFICATE" in auth["payload"]["certificate"]
        assert auth["response"] == {"idTokenInfo": {"status": "Accepted"}, "certificateStatus": "Accepted"}
        [tx] = rig.transactions()  # the eMAID was not registered: the TransactionEvents agree with Authorize
        assert tx["idToken"] == contract.emaid and tx["stoppedReason"] == "EVDisconnected"
        assert _states(rig, "Authorized")[0]["method"] == "PlugAndCharge"


async def test_plug_and_charge_refused_by_the_csms(tmp_path: Path, pki20: tuple[Pki, Path]) -> None:
    """A contract of an MO the CSMS does not trust: CertChainError at the CSMS, WARNING_CertificateValidationError
    to the EV, NotifyEvent and SecurityEventNotification at the CSMS."""
    pki, _ = pki20
    stranger = create_pki(PkiConfig(edition=Edition.ISO20))
    async with memory_bridge(tmp_path, pnc=True, tokens=[], mo_root=pki.cert(Kind.MO_ROOT)) as rig:
        result = await _ev(rig, "dc", tls=True, payment="Contract", contract20=contract20_of(stranger))
        code = "WARNING_CertificateValidationError"
        assert not result.ok and result.response_code == code, result.reason
        await until(lambda: bool(rig.messages("NotifyEvent")) and bool(rig.messages("SecurityEventNotification")))
        [auth] = rig.messages("Authorize")
        assert auth["response"] == {"idTokenInfo": {"status": "Invalid"}, "certificateStatus": "CertChainError"}
        assert [m["payload"]["eventData"][0]["techCode"] for m in rig.messages("NotifyEvent")] == [code]
        [security] = rig.messages("SecurityEventNotification")
        assert security["payload"]["type"] == "InvalidContractCertificate"


async def test_certificate_installation_then_plug_and_charge(tmp_path: Path, pki20: tuple[Pki, Path]) -> None:
    """No contract yet: the -20 CertificateInstallationReq goes to the CSMS as Get15118EVCertificate with the -20
    schema version; the CSMS issues a contract of the -20 PKI; the EV authorizes with it and charges."""
    pki, folder = pki20
    async with memory_bridge(tmp_path, pnc=True, tokens=[], mo_root=pki.cert(Kind.MO_ROOT),
                             pki_dir20=str(folder)) as rig:
        result = await _ev(rig, "dc_bpt", "dynamic", tls=True, payment="Contract", oem20=oem20_of(pki), loops=4)
        assert result.ok, result.reason
        installed = result.installed_contract20
        assert installed is not None
        await rig.settled()
        [get] = rig.messages("Get15118EVCertificate")
        assert get["payload"]["iso15118SchemaVersion"] == "urn:iso:std:iso:15118:-20:CommonMessages"
        assert get["response"]["status"] == "Accepted" and get["response"]["eMAID"] == installed.emaid
        [auth] = rig.messages("Authorize")
        assert auth["payload"]["idToken"]["idToken"] == installed.emaid
        assert auth["response"]["certificateStatus"] == "Accepted"
        [tx] = rig.transactions()
        assert tx["idToken"] == installed.emaid


async def test_certificate_installation_without_a_20_pki(tmp_path: Path, pki20: tuple[Pki, Path]) -> None:
    """A CSMS with no -20 contract issuing refuses (NoCertificateAvailable): the EV gets the -20 FAILED, the
    session ends as a certificate error (the error map's row), reported to the CSMS."""
    pki, _ = pki20
    async with memory_bridge(tmp_path, pnc=True, tokens=[], mo_root=pki.cert(Kind.MO_ROOT)) as rig:
        result = await _ev(rig, "dc", tls=True, payment="Contract", oem20=oem20_of(pki))
        assert not result.ok and result.response_code == "FAILED", result.reason
        [get] = rig.messages("Get15118EVCertificate")
        assert get["response"]["status"] == "Failed" and get["response"]["code"] == "FAILED_NoCertificateAvailable"
        await rig.settled()
        failure = FAILURES[FailureKind.CERTIFICATE_ERROR]
        [tx] = rig.transactions()
        assert tx["stoppedReason"] == failure.stopped_reason
        assert [m["payload"]["eventData"][0]["techCode"] for m in rig.messages("NotifyEvent")] == ["FAILED"]


# ----- bidirectional power under OCPP 2.0.1 -----

async def test_no_discharge_unless_configured(tmp_path: Path) -> None:
    """allow_discharge_w 0 (the default): DC_BPT is not offered, the BPT EV charges on DC, nothing is fed back."""
    async with memory_bridge(tmp_path) as rig:
        result = await _ev(rig, "dc_bpt", "dynamic", loops=6)
        assert result.ok and result.service == "DC" and result.exported_wh == 0, result.reason
        await rig.settled()
        [tx] = rig.transactions()
        assert _register(tx, "Energy.Active.Export.Register") == 0


@pytest.mark.parametrize("energy", ["dc_bpt", "ac_bpt"])
async def test_discharge_under_a_negative_limit(tmp_path: Path, energy: str) -> None:
    """allow_discharge_w 10 kW and a TxProfile of -20 kW: the dynamic BPT EV is asked to discharge at the allowed
    10 kW (AC: a negative EVSETargetActivePower; DC: discharge limits); the hardware's export register, reported to
    the CSMS, holds what the EV fed back."""
    config = BridgeConfig(allow_discharge_w=10_000.0)
    async with memory_bridge(tmp_path, config=config) as rig:
        evcc, secc = rig.session("iso20", energy, control="dynamic", offer=OFFER, loops=60)
        ev = asyncio.create_task(drive(evcc, secc))
        await until(lambda: rig.station.hardware(1).meter().power_w > 0)
        tx_id = rig.station.evse(1).transaction_id
        profile = {"id": 7, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "transactionId": tx_id,
                   "chargingProfileKind": "Relative", "chargingSchedule": [{
                       "id": 7, "chargingRateUnit": "W",
                       "chargingSchedulePeriod": [{"startPeriod": 0, "limit": -20000}]}]}
        answer = await rig.csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
        assert answer == {"status": "Accepted"}
        await until(lambda: rig.station.hardware(1).meter().power_w < 0)
        assert rig.station.hardware(1).meter().power_w >= -10_000.0 - 1e-6
        result = await ev
        assert result.ok and result.service == energy.upper(), result.reason
        assert result.exported_wh > 1
        await rig.settled()
        [tx] = rig.transactions()
        assert _register(tx, "Energy.Active.Export.Register") == pytest.approx(result.exported_wh, rel=0.1,
                                                                               abs=ONE_LOOP_WH)
        assert _needs(rig)["customData"]["energyService"] == energy.upper()
        assert _needs(rig)["customData"]["evMaxDischargePower"] > 0


async def test_dynamic_dc_bpt_charges_again_after_a_discharge(tmp_path: Path) -> None:
    """The dynamic DC_BPT EV discharges under a -20 kW TxProfile, then charges again at 20 kW when the profile says
    so: it announces its own EVMaximumChargePower, not the EVSE's last (which a discharge set to 0: echoing that
    back kept the EV from ever charging again; the fleet simulation found it)."""
    async with memory_bridge(tmp_path, config=BridgeConfig(allow_discharge_w=10_000.0)) as rig:
        evcc, secc = rig.session("iso20", "dc_bpt", control="dynamic", offer=OFFER, loops=0)
        ev = asyncio.create_task(drive(evcc, secc))
        await until(lambda: rig.station.hardware(1).meter().power_w > 0)
        tx_id = rig.station.evse(1).transaction_id

        async def limit(watts: float) -> None:
            profile = {"id": 7, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "transactionId": tx_id,
                       "chargingProfileKind": "Relative", "chargingSchedule": [{
                           "id": 7, "chargingRateUnit": "W",
                           "chargingSchedulePeriod": [{"startPeriod": 0, "limit": watts}]}]}
            answer = await rig.csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
            assert answer == {"status": "Accepted"}

        await limit(-20_000.0)
        await until(lambda: rig.station.hardware(1).meter().power_w < 0)
        await limit(20_000.0)
        await until(lambda: rig.station.hardware(1).meter().power_w > 19_000.0)
        ev.cancel()


async def test_bpt_limits_follow_the_setting(tmp_path: Path) -> None:
    """The -20 EVSEMaximumDischargePower is allow_discharge_w within the hardware's discharge figure."""
    hardware = SimulatedHardwareConfig(dc_max_discharge_power=6_000.0)
    async with memory_bridge(tmp_path, config=BridgeConfig(allow_discharge_w=10_000.0), hardware=hardware) as rig:
        evcc, secc = rig.session("iso20", "dc_bpt", control="scheduled", offer=OFFER, loops=4)
        result = await drive(evcc, secc)
        assert result.ok and result.service == "DC_BPT", result.reason
        assert secc.iso20 is not None and secc.iso20.tuples[1].discharging is not None
        assert secc.iso20.tuples[1].discharging.entries[0].power == 6_000.0
        await rig.settled()


# ----- the CSMS acts during a session -----

async def test_profile_change_renegotiates(tmp_path: Path) -> None:
    """A scheduled EV charging at 50 kW; the CSMS sets 11 kW: EVSENotification ScheduleRenegotiation, a second
    ScheduleExchange offers 11 kW, the EV's new choice goes to the CSMS."""
    async with memory_bridge(tmp_path) as rig:
        evcc, secc = rig.session("iso20", "dc", control="scheduled", offer=OFFER, loops=40)
        ev = asyncio.create_task(drive(evcc, secc))
        await until(lambda: rig.station.hardware(1).meter().power_w > 20_000)
        tx_id = rig.station.evse(1).transaction_id
        profile = {"id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "transactionId": tx_id,
                   "chargingProfileKind": "Relative", "chargingSchedule": [{
                       "id": 1, "chargingRateUnit": "W",
                       "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000}]}]}
        answer = await rig.csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
        assert answer == {"status": "Accepted"}
        assert 0 < rig.station.hardware(1).meter().power_w <= 11000
        result = await ev
        assert result.ok and result.renegotiations >= 1, result.reason
        await rig.settled()
        offered = [r["charging"][0][1] for r in _states(rig, "ScheduleOffered")]
        assert offered[0] == 50000.0 and offered[-1] == 11000.0
        records = rig.bridge.finished[0].timeline.records
        assert [r["message"] for r in records if r["protocol"] == "iso15118"].count("ScheduleExchangeReq") >= 2
        chosen = [m["payload"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
                  for m in rig.messages("NotifyEVChargingSchedule")]
        assert len(chosen) >= 2 and chosen[-1] <= 11000.0


async def test_remote_stop(tmp_path: Path) -> None:
    """RequestStopTransaction: EVSENotification Terminate in the next charge loop; the EV stops properly; the
    transaction ends Remote."""
    async with memory_bridge(tmp_path) as rig:
        evcc, secc = rig.session("iso20", "ac", control="dynamic", offer=OFFER, loops=0)  # until the EVSE stops it
        ev = asyncio.create_task(drive(evcc, secc))
        await until(lambda: rig.station.hardware(1).meter().power_w > 0)
        tx_id = rig.station.evse(1).transaction_id
        assert tx_id is not None and await rig.csms.request_stop("CS1", tx_id) == {"status": "Accepted"}
        result = await ev
        assert result.ok, result.reason
        await rig.settled()
        [tx] = rig.transactions()
        assert tx["stoppedReason"] == "Remote" and tx["events"][-1]["triggerReason"] == "RemoteStop"
        assert _states(rig, "StopRequested")


async def test_pause_and_resume_keep_one_transaction(tmp_path: Path) -> None:
    """SessionStop(Pause): the transaction stays open; the EV resumes with its SessionID (OK_OldSessionJoined), the
    same transaction goes on and ends once, with the energy of both parts."""
    async with memory_bridge(tmp_path) as rig:
        paused = PausedSessions()
        first = await drive(*rig.session("iso20", "dc", control="dynamic", offer=OFFER, loops=4, stop="Pause",
                                         paused=paused))
        assert first.ok and first.paused, first.reason
        tx_id = rig.station.evse(1).transaction_id
        assert tx_id is not None  # the pause keeps it
        second = await drive(*rig.session("iso20", "dc", control="dynamic", offer=OFFER, loops=4, paused=paused,
                                          resume_session_id=first.session_id))
        assert second.ok and second.session_id == first.session_id, second.reason
        await rig.settled()
        [tx] = rig.transactions()
        assert tx["transactionId"] == tx_id and tx["stoppedReason"] == "EVDisconnected"
        # both parts (each EV counts up to its last charge loop, the meter until the contactors open; a limit that
        # lands mid-part, such as the CSMS's needs profile, reaches the EV one loop after the meter): a loop per part
        assert _register(tx, "Energy.Active.Import.Register") == pytest.approx(first.energy_wh + second.energy_wh,
                                                                               rel=0.15, abs=2 * ONE_LOOP_WH)
        resumed = [r for r in _states(rig, "SessionStarted") if r["resumed"]]
        assert len(resumed) == 1


# ----- failures through the error map -----

async def test_contactor_failure(tmp_path: Path) -> None:
    """The contactors do not close: PowerDeliveryRes FAILED_ContactorError, the transaction ends as the error map
    says, the EVSE is Faulted, NotifyEvent carries the -20 code."""
    async with memory_bridge(tmp_path, hardware=SimulatedHardwareConfig(contactor_fault=True)) as rig:
        result = await _ev(rig, "ac", "dynamic")
        assert not result.ok and result.response_code == "FAILED_ContactorError", result.reason
        await rig.settled()
        failure = FAILURES[kind_of_code("FAILED_ContactorError")]
        [tx] = rig.transactions()
        assert tx["stoppedReason"] == failure.stopped_reason
        [event] = [d for m in rig.messages("NotifyEvent") for d in m["payload"]["eventData"]]
        assert event["techCode"] == "FAILED_ContactorError"
        assert failure.faulted and rig.station.evses[1].faulted


async def test_sequence_error(tmp_path: Path) -> None:
    """A request out of order: FAILED_SequenceError to the EV, SequenceError in the timeline and at the CSMS."""
    async with memory_bridge(tmp_path) as rig:
        evcc, secc = rig.session("iso20", "dc", control="dynamic", offer=OFFER)
        original = evcc.handle

        def skip_detail(doc: dict[str, Any], now: float) -> Any:
            step = original(doc, now)
            if isinstance(step, Send) and step.name == "ServiceSelectionReq":  # jump ahead to the cable check
                header = step.doc["ServiceSelectionReq"]["Header"]
                return replace(step, name="DC_CableCheckReq", ns="iso20_dc", payload_type=PayloadType.ISO20_DC,
                               doc={"DC_CableCheckReq": {"Header": header}})
            return step

        evcc.handle = skip_detail  # type: ignore[method-assign]
        result = await drive(evcc, secc)
        assert not result.ok, result.reason
        await until(lambda: bool(rig.messages("NotifyEvent")))
        [event] = [d for m in rig.messages("NotifyEvent") for d in m["payload"]["eventData"]]
        assert event["techCode"] == "FAILED_SequenceError"
        records = rig.bridge.finished[-1].timeline.records
        assert any(r["kind"] == "error" and r.get("code") == "FAILED_SequenceError" for r in records)


def test_pem_sizes_fit_authorize(pki20: tuple[Pki, Path]) -> None:
    """The -20 contract chain (secp521r1) as PEM fits AuthorizeRequest.certificate (5500 characters)."""
    pki, _ = pki20
    contract = contract20_of(pki)
    pem = b"".join(c.public_bytes(Encoding.PEM) for c in contract.chain)
    assert len(pem) <= 5500
