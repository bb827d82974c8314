"""The bridge's OCPP policy in memory: our EV engine -> the SECC engine -> the bridge's controller and policy -> our
station -> an in-memory websocket -> our CSMS (its router, services and SQLite store). No sockets, each case a
fraction of a second: EIM accepted and refused, Plug & Charge accepted and each certificate failure (revoked,
expired, wrong root, bad signature, tampered challenge), the CSMS unreachable, a profile change that makes the EV
renegotiate, a remote stop. The socket versions stay in test_bridge_*.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from helpers.csms import TOKEN
from helpers.memory_bridge import MemoryOcsp, MemoryRig, drive, memory_bridge
from helpers.pnc import contract_of
from helpers.wait import until

from v2gstack.iso15118.evcc import Contract
from v2gstack.pki.hierarchy import PkiConfig, create_pki
from v2gstack.pki.issue import issue, subject_name
from v2gstack.pki.ocsp import OcspResponder, RevocationList
from v2gstack.pki.profiles import PROFILES, Kind
from v2gstack.pki.store import write_pki
from v2gstack.station.bridge import BridgeConfig
from v2gstack.trace.error_map import FAILURES, FailureKind

pytestmark = pytest.mark.timeout(60)

OCSP_URL = "http://ocsp.in-memory.invalid/ocsp"


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Prove the point: nothing here may connect or listen."""
    def refuse(*args: Any, **kw: Any) -> None:
        raise AssertionError("a socket was used in an in-memory test")

    for name in ("connect", "connect_ex", "bind", "listen"):
        monkeypatch.setattr(socket.socket, name, refuse)


def _states(rig: MemoryRig, what: str) -> list[dict[str, Any]]:
    return [r for s in rig.bridge.finished for r in s.timeline.records if r.get("what") == what]


# ----- EIM -----

async def test_eim_token_accepted_by_the_csms(tmp_path: Path) -> None:
    async with memory_bridge(tmp_path, free=False, config=BridgeConfig(id_token=TOKEN)) as rig:
        result = await rig.ev("iso2", "ac", loops=8)
        assert result.ok, result.reason
        await rig.settled()
        [auth] = rig.messages("Authorize")
        assert auth["payload"]["idToken"] == TOKEN and auth["response"]["idTokenInfo"]["status"] == "Accepted"
        [tx] = rig.transactions()
        assert tx["idToken"] == TOKEN["idToken"] and tx["state"] == "Ended" and tx["stoppedReason"] == "EVDisconnected"
        assert tx["iso15118"]["sessionId"] == result.session_id
        energy = [m["value"] for m in tx["meterValues"] if m["measurand"] == "Energy.Active.Import.Register"]
        # up to one charge loop apart (about 5 Wh here): the EV counts to its last answer, the meter until the
        # contactors open, and on a busy machine more time passes between the two
        assert energy[-1] == pytest.approx(result.energy_wh, rel=0.05, abs=6.0) and result.energy_wh > 10
        assert [s["method"] for s in _states(rig, "Authorizing")] == ["IdToken"]


async def test_eim_token_refused_by_the_csms(tmp_path: Path) -> None:
    refused = {"idToken": "NOT-REGISTERED", "type": "ISO14443"}
    async with memory_bridge(tmp_path, free=False, config=BridgeConfig(id_token=refused)) as rig:
        result = await rig.ev("iso2", "ac")
        assert not result.ok and result.response_code == "FAILED"
        await rig.settled()
        [tx] = rig.transactions()  # EVConnected started it; the refusal ends it as the error map says
        failure = FAILURES[FailureKind.AUTHORIZATION_FAILED]
        assert (tx["stoppedReason"], tx["events"][-1]["triggerReason"]) == (failure.stopped_reason,
                                                                            failure.trigger_reason)
        [event] = [d for m in rig.messages("NotifyEvent") for d in m["payload"]["eventData"]]
        assert event["component"] == {"name": "ConnectedEV", "evse": {"id": 1}} and event["techCode"] == "FAILED"
        [auth] = rig.messages("Authorize")
        status = auth["response"]["idTokenInfo"]["status"]
        assert status != "Accepted" and _states(rig, "AuthorizationRefused")[0]["status"] == status


# ----- Plug & Charge -----

async def _pnc(rig: MemoryRig, contract: Contract, fault: str | None = None) -> Any:
    return await rig.ev("iso2", "ac", tls=True, payment="Contract", contract=contract, pnc_fault=fault, loops=3)


async def test_plug_and_charge_accepted(tmp_path: Path) -> None:
    pki = create_pki()
    async with memory_bridge(tmp_path, pnc=True, tokens=[], mo_root=pki.cert(Kind.MO_ROOT)) as rig:
        contract = contract_of(pki)
        result = await _pnc(rig, contract)
        assert result.ok, result.reason
        await rig.settled()
        [auth] = rig.messages("Authorize")
        assert auth["payload"]["idToken"] == {"idToken": contract.emaid, "type": "eMAID"}
        assert auth["response"] == {"idTokenInfo": {"status": "Accepted"}, "certificateStatus": "Accepted"}
        [tx] = rig.transactions()
        assert tx["idToken"] == contract.emaid and tx["state"] == "Ended"
        assert _states(rig, "Authorized")[0]["method"] == "PlugAndCharge"


def _expired(pki: Any) -> Contract:
    contract = contract_of(pki)
    old = issue(PROFILES[Kind.CONTRACT], subject_name(contract.emaid, "MO", "DE", "MO"),
                issuer=pki.items[Kind.MO_SUB_CA2], not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=9),
                validity_days=1)
    return Contract(contract.emaid, [old.cert.public_bytes(Encoding.DER), *contract.chain[1:]], old.key)


@pytest.mark.parametrize(("fault", "code", "asks_csms"), [
    ("revoked", "FAILED_CertificateRevoked", True),
    ("wrong-root", "FAILED_CertChainError", True),
    ("expired", "FAILED_CertificateExpired", False),
    ("bad-signature", "FAILED_SignatureError", False),
    ("tampered-challenge", "FAILED_ChallengeInvalid", False)])
async def test_plug_and_charge_certificate_failures(tmp_path: Path, fault: str, code: str, asks_csms: bool) -> None:
    """Each failure: the EV's ISO code, the CSMS's Authorize answer where the CSMS is asked, the station's
    NotifyEvent (techCode = the code) and SecurityEventNotification, the timeline's error record."""
    pki = create_pki(PkiConfig(ocsp_url=OCSP_URL))
    write_pki(pki, tmp_path / "pki")
    responder = OcspResponder.from_pki_dir(tmp_path / "pki")
    responder.revoked = RevocationList(tmp_path / "pki" / "revoked.json")
    async with memory_bridge(tmp_path, pnc=True, tokens=[], mo_root=pki.cert(Kind.MO_ROOT)) as rig:
        rig.csms.ocsp = MemoryOcsp(responder)
        contract = contract_of(pki)
        if fault == "revoked":
            responder.revoked.revoke(pki.cert(Kind.CONTRACT), pki.cert(Kind.MO_SUB_CA2), "key_compromise")
        elif fault == "wrong-root":
            contract = contract_of(create_pki())
        elif fault == "expired":
            contract = _expired(pki)
        result = await _pnc(rig, contract, fault if fault in ("bad-signature", "tampered-challenge") else None)
        assert not result.ok and result.response_code == code, result.reason
        await until(lambda: bool(rig.messages("NotifyEvent")) and bool(rig.messages("SecurityEventNotification")))
        assert [m["payload"]["eventData"][0]["techCode"] for m in rig.messages("NotifyEvent")] == [code]
        [security] = rig.messages("SecurityEventNotification")
        assert security["payload"]["type"] in ("InvalidContractCertificate", "InvalidContractSignature")
        auths = rig.messages("Authorize")
        if asks_csms:
            status = {"revoked": "CertificateRevoked", "wrong-root": "CertChainError"}[fault]
            assert auths[0]["response"] == {"idTokenInfo": {"status": "Invalid"}, "certificateStatus": status}
        else:
            assert auths == []  # the SECC refused before the station asked anybody
        records = rig.bridge.finished[-1].timeline.records
        assert any(r["kind"] == "error" and r.get("code") == code for r in records)


# ----- the CSMS unreachable -----

async def test_csms_unreachable(tmp_path: Path) -> None:
    """Plug & Charge cannot be checked (FAILED, and the timeline says why); a free-vend EIM session charges anyway
    and its transaction reaches the CSMS, marked offline, once the link is back."""
    pki = create_pki()
    async with memory_bridge(tmp_path, pnc=True, tokens=[], mo_root=pki.cert(Kind.MO_ROOT)) as rig:
        rig.link.reachable = False
        await rig.link.drop()
        await until(lambda: not rig.station.online)
        refused = await _pnc(rig, contract_of(pki))
        assert not refused.ok and refused.response_code == "FAILED"
        [why] = _states(rig, "AuthorizationUnavailable")
        assert why["kind"] == "error" and "offline" in why["reason"]
        rig.station.model.put("AuthCtrlr", "Enabled", "false")
        result = await rig.ev("iso2", "dc", loops=5)
        assert result.ok, result.reason
        await until(lambda: rig.station.evse(1).transaction_id is None)
        assert rig.messages("Authorize") == [] and rig.transactions() == []
        assert rig.bridge.ending  # the session's timeline waits for the CSMS to have the transaction
        rig.link.reachable = True
        await until(lambda: rig.station.online)
        await rig.settled()
        txs = [t for t in rig.transactions() if t["iso15118"] and t["iso15118"]["sessionId"] == result.session_id]
        assert len(txs) == 1 and txs[0]["state"] == "Ended"
        assert all(e.get("offline") for e in txs[0]["events"])


# ----- the CSMS acts during a session -----

async def test_profile_change_renegotiates(tmp_path: Path) -> None:
    async with memory_bridge(tmp_path) as rig:
        evcc, secc = rig.session("iso2", "dc", loops=40)
        ev = asyncio.create_task(drive(evcc, secc))
        await until(lambda: rig.station.hardware(1).meter().power_w > 40_000)
        tx_id = rig.station.evse(1).transaction_id
        profile = {"id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "transactionId": tx_id,
                   "chargingProfileKind": "Relative", "chargingSchedule": [{
                       "id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                                     "limit": 11000}]}]}
        answer = await rig.csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
        assert answer == {"status": "Accepted"}
        assert 0 < rig.station.hardware(1).meter().power_w <= 11000  # the hardware holds the new limit at once
        result = await ev
        assert result.ok, result.reason
        await rig.settled()
        records = rig.bridge.finished[0].timeline.records
        offered = [r["pmax"] for r in records if r.get("what") == "ScheduleOffered"]
        assert len(offered) == 2 and offered[0][0][1] == 50000.0 and offered[1][0][1] == 11000.0
        assert [r["message"] for r in records if r["protocol"] == "iso15118"].count("ChargeParameterDiscoveryReq") == 2
        chosen = [m["payload"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
                  for m in rig.messages("NotifyEVChargingSchedule")]
        assert len(chosen) == 2 and chosen[0] > 11000 and chosen[-1] == 11000.0


async def test_remote_stop(tmp_path: Path) -> None:
    async with memory_bridge(tmp_path) as rig:
        evcc, secc = rig.session("iso2", "dc", loops=0)  # charges until the EVSE says stop
        ev = asyncio.create_task(drive(evcc, secc))
        await until(lambda: rig.station.hardware(1).meter().power_w > 0)
        tx_id = rig.station.evse(1).transaction_id
        assert tx_id is not None and await rig.csms.request_stop("CS1", tx_id) == {"status": "Accepted"}
        result = await ev
        assert result.ok, result.reason  # PowerDelivery Stop, SessionStop: a proper end
        await rig.settled()
        [tx] = rig.transactions()
        assert tx["stoppedReason"] == "Remote" and tx["events"][-1]["triggerReason"] == "RemoteStop"
        assert _states(rig, "StopRequested")
