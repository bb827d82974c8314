"""Plug & Charge end to end with a contract the EV already holds: EV (contract from our PKI) -> SECC over TLS ->
bridge -> OCPP Authorize with the contract chain -> CSMS verifies it against the installed MO root -> the transaction
runs under the eMAID. And the failures: an MO root the CSMS does not trust, a blocked eMAID."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from helpers.csms import PASSWORD, our_station, running_csms
from helpers.pnc import contract_of
from helpers.wait import until

from v2gstack.iso15118 import EvccConfig, EVModel, run_evcc
from v2gstack.iso15118.devcerts import make_secc_chain
from v2gstack.iso15118.evcc import SessionResult
from v2gstack.iso15118.tls import evcc_context
from v2gstack.pki.hierarchy import PkiConfig, create_pki
from v2gstack.pki.ocsp import RevocationList
from v2gstack.pki.profiles import Kind
from v2gstack.pki.store import cert_pem
from v2gstack.station.bridge import start_bridged_seccs

pytestmark = pytest.mark.timeout(90)


@asynccontextmanager
async def pnc_rig(tmp_path: Path, *, trust_mo: bool = True, tokens: list | None = None, pki=None,  # type: ignore[no-untyped-def]
                  **csms_config) -> AsyncIterator:  # type: ignore[type-arg]
    pki = pki or create_pki(PkiConfig(ocsp_url="http://127.0.0.1:9/ocsp"))  # nobody answers there: soft-fail
    csms_config.setdefault("ocsp_allow", ("127.0.0.0/8",))  # our responders run on loopback
    chain = make_secc_chain()
    tmp_path.mkdir(parents=True, exist_ok=True)
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}", tokens=tokens or [], **csms_config) as csms, \
            our_station(csms, password=PASSWORD, time_scale=1 / 60, max_power_w=50_000.0, tx_interval=30) as st:
        if trust_mo:
            csms.store.add_trust_anchor("MORootCertificate", cert_pem(pki.cert(Kind.MO_ROOT)))
        st.model.put("ISO15118Ctrlr", "PnCEnabled", "true")
        await st.wait_accepted()
        [bridge] = await start_bridged_seccs(st, port=0, sdp_port=0, tls=chain.server_context(),
                                             trace_dir=tmp_path / "traces")
        try:
            yield csms, st, bridge, pki, chain
        finally:
            assert bridge.server is not None
            await bridge.server.close()


async def _ev(bridge, pki, chain) -> SessionResult:  # type: ignore[no-untyped-def]
    config = EvccConfig(protocols=("iso2",), energy="dc", loops=5, loop_interval=0.02, payment="Contract",
                        contract=contract_of(pki), ongoing_interval=0.02)
    context = evcc_context(cadata=chain.root_pem.decode())
    return await run_evcc(config, EVModel(speedup=60), tls=True, tls_context=context,
                          secc=bridge.server.addresses()["tls"])


async def test_plug_and_charge_authorizes_through_the_csms(tmp_path: Path) -> None:
    async with pnc_rig(tmp_path) as (csms, st, bridge, pki, chain):
        result = await _ev(bridge, pki, chain)
        assert result.ok, result.reason
        await until(lambda: st.evses[1].tx is None)
        await st.wait_queue_empty()
        [tx] = csms.store.transactions("CS1")
        emaid = contract_of(pki).emaid
        assert tx["idToken"] == emaid and tx["state"] == "Ended"
        [auth] = [m for m in csms.store.messages(station_id="CS1") if m["action"] == "Authorize"]
        assert auth["payload"]["idToken"] == {"idToken": emaid, "type": "eMAID"}
        assert auth["payload"]["certificate"].startswith("-----BEGIN CERTIFICATE-----")
        assert len(auth["payload"]["iso15118CertificateHashData"]) == 2  # contract and MO sub-CA 2
        assert auth["response"] == {"idTokenInfo": {"status": "Accepted"}, "certificateStatus": "Accepted"}


async def test_untrusted_mo_root_fails_with_cert_chain_error(tmp_path: Path) -> None:
    async with pnc_rig(tmp_path, trust_mo=False) as (csms, _st, bridge, pki, chain):
        result = await _ev(bridge, pki, chain)
        assert not result.ok and result.response_code == "FAILED_CertChainError", result.reason
        await until(lambda: any(m["action"] == "Authorize" for m in csms.store.messages(station_id="CS1")))
        [auth] = [m for m in csms.store.messages(station_id="CS1") if m["action"] == "Authorize"]
        assert auth["response"]["certificateStatus"] == "CertChainError"
        assert auth["response"]["idTokenInfo"]["status"] == "Invalid"


async def test_blocked_emaid_is_refused(tmp_path: Path) -> None:
    pki_probe = create_pki()
    emaid = contract_of(pki_probe).emaid  # the default PKI configuration names the same eMAID every time
    tokens = [{"idToken": emaid, "type": "eMAID", "status": "Blocked"}]
    async with pnc_rig(tmp_path, tokens=tokens) as (csms, _st, bridge, pki, chain):
        result = await _ev(bridge, pki, chain)
        # C07.FR.13-17: a valid certificate for a blocked contract -> ContractCancelled (ISO FAILED_ContractCanceled)
        assert not result.ok and result.response_code == "FAILED_ContractCanceled", result.reason
        [auth] = [m for m in csms.store.messages(station_id="CS1") if m["action"] == "Authorize"]
        assert auth["response"] == {"idTokenInfo": {"status": "Blocked"}, "certificateStatus": "ContractCancelled"}


async def test_revoked_contract_fails_with_certificate_revoked(tmp_path: Path) -> None:
    from helpers.ocsp import start_responder

    pki, _, _, server = await start_responder(tmp_path / "pki")
    try:
        RevocationList(tmp_path / "pki" / "revoked.json").revoke(pki.cert(Kind.CONTRACT), pki.cert(Kind.MO_SUB_CA2),
                                                                 "key_compromise")
        async with pnc_rig(tmp_path, pki=pki) as (csms, _st, bridge, pki, chain):
            result = await _ev(bridge, pki, chain)
            assert not result.ok and result.response_code == "FAILED_CertificateRevoked", result.reason
            [auth] = [m for m in csms.store.messages(station_id="CS1") if m["action"] == "Authorize"]
            assert auth["response"]["certificateStatus"] == "CertificateRevoked"
            assert auth["response"]["idTokenInfo"]["status"] == "Invalid"
            # the station reports it: NotifyEvent on ConnectedEV with the ISO code, and a security event
            await until(lambda: {"NotifyEvent", "SecurityEventNotification"} <= {
                m["action"] for m in csms.store.messages(station_id="CS1")})
            log = csms.store.messages(station_id="CS1")
            [event] = [m for m in log if m["action"] == "NotifyEvent"]
            assert event["payload"]["eventData"][0]["techCode"] == "FAILED_CertificateRevoked"
            [security] = [m for m in log if m["action"] == "SecurityEventNotification"]
            assert security["payload"]["type"] == "InvalidContractCertificate"
            # and the session's timeline shows the refusal and its mapping
            records = bridge.finished[-1].timeline.records
            assert any(r.get("what") == "AuthorizationRefused" and r.get("isoCode") == "FAILED_CertificateRevoked"
                       for r in records)
            assert any(r.get("kind") == "error" and r.get("code") == "FAILED_CertificateRevoked" for r in records)
    finally:
        server.close()  # type: ignore[attr-defined]


async def test_unreachable_ocsp_fails_only_when_required(tmp_path: Path) -> None:
    async with pnc_rig(tmp_path / "strict", ocsp_required=True) as (_csms, _st, bridge, pki, chain):
        result = await _ev(bridge, pki, chain)
        assert not result.ok and result.response_code == "FAILED_CertChainError", result.reason
    async with pnc_rig(tmp_path / "soft") as (_csms, _st, bridge, pki, chain):
        assert (await _ev(bridge, pki, chain)).ok


async def test_contract_installed_through_station_and_csms_then_plug_and_charge(tmp_path: Path) -> None:
    """The issue's headline: an EV with only an OEM provisioning certificate gets a contract through the station
    (Get15118EVCertificate) and the CSMS (its issuing service), then charges with Plug & Charge over TLS; the
    transaction is under the new eMAID, registered to an account."""
    from v2gstack.iso15118.evcc import OemCredentials
    from v2gstack.pki.store import write_pki

    pki = create_pki(PkiConfig(ocsp_url="http://127.0.0.1:9/ocsp"))
    write_pki(pki, tmp_path / "pki")
    async with pnc_rig(tmp_path, pki=pki, pki_dir=str(tmp_path / "pki")) as (csms, st, bridge, pki, chain):
        oem = OemCredentials(pki.cert(Kind.OEM_PROV), pki.items[Kind.OEM_PROV].key, [pki.cert(Kind.V2G_ROOT)])
        config = EvccConfig(protocols=("iso2",), energy="ac", loops=3, loop_interval=0.02, payment="Contract",
                            oem=oem, ongoing_interval=0.02)
        context = evcc_context(cadata=chain.root_pem.decode())
        result = await run_evcc(config, EVModel(speedup=60), tls=True, tls_context=context,
                                secc=bridge.server.addresses()["tls"])
        assert result.ok, result.reason
        emaid = result.installed_contract.emaid
        await until(lambda: st.evses[1].tx is None)
        await st.wait_queue_empty()
        [tx] = csms.store.transactions("CS1")
        assert tx["idToken"] == emaid
        log = csms.store.messages(station_id="CS1")
        [install] = [m for m in log if m["action"] == "Get15118EVCertificate"]
        assert install["response"]["code"] == "OK" and install["response"]["eMAID"] == emaid
        [auth] = [m for m in log if m["action"] == "Authorize"]
        assert auth["response"]["certificateStatus"] == "Accepted"
        token = csms.store.id_token(emaid, "eMAID")
        assert token is not None and token.account == "installed-at-CS1"


async def test_installation_refused_for_a_foreign_oem(tmp_path: Path) -> None:
    from v2gstack.iso15118.evcc import OemCredentials
    from v2gstack.pki.store import write_pki

    pki = create_pki(PkiConfig(ocsp_url="http://127.0.0.1:9/ocsp"))
    write_pki(pki, tmp_path / "pki")
    stranger = create_pki()
    async with pnc_rig(tmp_path, pki=pki, pki_dir=str(tmp_path / "pki")) as (csms, _st, bridge, pki, chain):
        oem = OemCredentials(stranger.cert(Kind.OEM_PROV), stranger.items[Kind.OEM_PROV].key,
                             [pki.cert(Kind.V2G_ROOT)])
        config = EvccConfig(protocols=("iso2",), energy="ac", loops=3, payment="Contract", oem=oem)
        result = await run_evcc(config, EVModel(), tls=True, tls_context=evcc_context(cadata=chain.root_pem.decode()),
                                secc=bridge.server.addresses()["tls"])
        assert not result.ok and result.response_code == "FAILED_CertChainError", result.reason
        [install] = [m for m in csms.store.messages(station_id="CS1") if m["action"] == "Get15118EVCertificate"]
        assert install["response"]["status"] == "Failed"


async def test_csms_unreachable_during_authorization(tmp_path: Path) -> None:
    """Offline, a contract cannot be checked centrally: the EV gets FAILED and the timeline says why."""
    async with pnc_rig(tmp_path) as (csms, st, bridge, pki, chain):
        await csms.server.close()
        await until(lambda: not st.connected)
        result = await _ev(bridge, pki, chain)
        assert not result.ok and result.response_code == "FAILED", result.reason
        session = bridge.finished[-1]
        assert any(r.get("what") == "AuthorizationUnavailable" for r in session.timeline.records)


async def test_offline_contract_validation_with_installed_mo_root(tmp_path: Path) -> None:
    """ContractValidationOffline: with the MO root installed in the station, a valid contract charges while the CSMS
    is unreachable; without the switch it does not; a contract from another MO is refused locally."""
    async with pnc_rig(tmp_path) as (csms, st, bridge, pki, chain):
        # InstallRefused if not
        st.certificates.store.install("MORootCertificate", cert_pem(pki.cert(Kind.MO_ROOT)).decode())
        await csms.server.close()
        await until(lambda: not st.connected)
        st.model.put("ISO15118Ctrlr", "ContractValidationOffline", "false")
        refused = await _ev(bridge, pki, chain)
        assert not refused.ok and refused.response_code == "FAILED"
        st.model.put("ISO15118Ctrlr", "ContractValidationOffline", "true")
        result = await _ev(bridge, pki, chain)
        assert result.ok, result.reason
        assert any(r.get("method") == "PlugAndChargeOffline" for r in bridge.finished[-1].timeline.records)
        stranger = create_pki()
        foreign = await _ev(bridge, stranger, chain)
        assert not foreign.ok and foreign.response_code == "FAILED_CertChainError"


async def test_contract_update_through_station_and_csms(tmp_path: Path) -> None:
    """CertificateUpdate: the EV renews its contract through Get15118EVCertificate (Update), then charges with it."""
    from v2gstack.pki.store import write_pki

    pki = create_pki(PkiConfig(ocsp_url="http://127.0.0.1:9/ocsp"))
    write_pki(pki, tmp_path / "pki")
    async with pnc_rig(tmp_path, pki=pki, pki_dir=str(tmp_path / "pki")) as (csms, st, bridge, pki, chain):
        current = contract_of(pki)
        config = EvccConfig(protocols=("iso2",), energy="ac", loops=2, loop_interval=0.02, payment="Contract",
                            contract=current, update_contract=True, v2g_roots=(pki.cert(Kind.V2G_ROOT),),
                            ongoing_interval=0.02)
        result = await run_evcc(config, EVModel(speedup=60), tls=True,
                                tls_context=evcc_context(cadata=chain.root_pem.decode()),
                                secc=bridge.server.addresses()["tls"])
        assert result.ok, result.reason
        assert result.installed_contract is not None and result.installed_contract.chain[0] != current.chain[0]
        await until(lambda: st.evses[1].tx is None)
        [update] = [m for m in csms.store.messages(station_id="CS1") if m["action"] == "Get15118EVCertificate"]
        assert update["payload"]["action"] == "Update" and update["response"]["code"] == "OK"


async def test_csms_checks_revocation_from_hash_data_alone(tmp_path: Path) -> None:
    """An Authorize with only iso15118CertificateHashData (C07.FR.05): the CSMS asks the responders named there and
    answers CertificateRevoked + Invalid for a revoked chain (C07.FR.16); a good one stays Accepted."""
    from helpers.csms import csms_url
    from helpers.ocpp import raw_peer
    from helpers.ocsp import start_responder

    from v2gstack.pki.ocsp_data import chain_hash_data

    pki, _, _, server = await start_responder(tmp_path / "pki")
    emaid = contract_of(pki).emaid
    try:
        # no OCSP cache: it would keep the good answer until its nextUpdate, and this test revokes in between
        async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", tokens=[{"idToken": emaid, "type": "eMAID"}],
                                ocsp_allow=("127.0.0.0/8",), ocsp_cache_size=0) as csms, \
                raw_peer(csms_url(csms), "CS1", password=PASSWORD) as peer:
            data = chain_hash_data([pki.cert(Kind.CONTRACT), *pki.intermediates(Kind.CONTRACT),
                                    pki.cert(Kind.MO_ROOT)])
            request = {"idToken": {"idToken": emaid, "type": "eMAID"}, "iso15118CertificateHashData": data}
            good = await peer.exchange([2, "a1", "Authorize", request])
            assert good[2] == {"idTokenInfo": {"status": "Accepted"}, "certificateStatus": "Accepted"}
            RevocationList(tmp_path / "pki" / "revoked.json").revoke(pki.cert(Kind.CONTRACT),
                                                                     pki.cert(Kind.MO_SUB_CA2), "key_compromise")
            revoked = await peer.exchange([2, "a2", "Authorize", request])
            assert revoked[2] == {"idTokenInfo": {"status": "Invalid"}, "certificateStatus": "CertificateRevoked"}
    finally:
        server.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(("fault", "code"), [
    ("bad-signature", "FAILED_SignatureError"), ("tampered-challenge", "FAILED_ChallengeInvalid"),
    ("emaid-mismatch", "FAILED_CertChainError"), ("expired", "FAILED_CertificateExpired"),
    ("wrong-root", "FAILED_CertChainError")])
async def test_each_fault_in_both_protocols_and_the_timeline(tmp_path: Path, fault: str, code: str) -> None:
    """Per fault: the EV's ISO code, the CSMS's Authorize answer where the CSMS is asked (wrong root), the station's
    NotifyEvent (techCode = the code) and SecurityEventNotification, and the timeline's error record."""
    import datetime as dt

    from v2gstack.iso15118.evcc import Contract
    from v2gstack.pki.issue import issue, subject_name
    from v2gstack.pki.profiles import PROFILES

    async with pnc_rig(tmp_path) as (csms, _st, bridge, pki, chain):
        contract = contract_of(pki)
        if fault == "expired":
            old = issue(PROFILES[Kind.CONTRACT], subject_name(contract.emaid, "MO", "DE", "MO"),
                        issuer=pki.items[Kind.MO_SUB_CA2], not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=9),
                        validity_days=1)
            from cryptography.hazmat.primitives.serialization import Encoding

            contract = Contract(contract.emaid, [old.cert.public_bytes(Encoding.DER), *contract.chain[1:]], old.key)
        elif fault == "wrong-root":
            contract = contract_of(create_pki())
        config = EvccConfig(protocols=("iso2",), energy="ac", loops=2, payment="Contract", contract=contract,
                            pnc_fault=fault if fault in ("bad-signature", "tampered-challenge", "emaid-mismatch")
                            else None, ongoing_interval=0.02)
        result = await run_evcc(config, EVModel(), tls=True, tls_context=evcc_context(cadata=chain.root_pem.decode()),
                                secc=bridge.server.addresses()["tls"])
        assert not result.ok and result.response_code == code, result.reason
        await until(lambda: {"NotifyEvent", "SecurityEventNotification"} <= {
            m["action"] for m in csms.store.messages(station_id="CS1")})
        log = csms.store.messages(station_id="CS1")
        assert [m["payload"]["eventData"][0]["techCode"] for m in log if m["action"] == "NotifyEvent"] == [code]
        [security] = [m for m in log if m["action"] == "SecurityEventNotification"]
        assert security["payload"]["type"] in ("InvalidContractCertificate", "InvalidContractSignature")
        auths = [m for m in log if m["action"] == "Authorize"]
        if fault == "wrong-root":
            assert auths[0]["response"] == {"idTokenInfo": {"status": "Invalid"}, "certificateStatus": "CertChainError"}
        else:
            assert auths == []  # the SECC refused before asking anybody
        records = bridge.finished[-1].timeline.records
        assert any(r.get("kind") == "error" and r.get("code") == code for r in records)
