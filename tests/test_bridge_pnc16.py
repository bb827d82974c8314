"""Plug & Charge on OCPP 1.6 end to end: our EV -> TLS -> SECC -> bridge -> our station on 1.6 -> DataTransfer
(org.openchargealliance.iso15118pnc) Authorize -> our CSMS checks the contract (MO root, OCSP) -> the transaction runs
under the eMAID as a 1.6 transaction joined to its ISO 15118 session; each certificate fault gives the ISO code it
gives on 2.0.1; a contract installed through Get15118EVCertificate over DataTransfer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from helpers.csms import PASSWORD, our_station, running_csms
from helpers.ocsp import start_responder
from helpers.pnc import contract_of
from helpers.wait import until

from v2gstack.iso15118 import EvccConfig, EVModel, run_evcc
from v2gstack.iso15118.devcerts import make_secc_chain
from v2gstack.iso15118.evcc import OemCredentials, SessionResult
from v2gstack.iso15118.tls import evcc_context
from v2gstack.pki.hierarchy import PkiConfig, create_pki
from v2gstack.pki.ocsp import RevocationList
from v2gstack.pki.profiles import Kind
from v2gstack.pki.store import cert_pem, write_pki
from v2gstack.station.bridge import start_bridged_seccs

pytestmark = pytest.mark.timeout(90)


@asynccontextmanager
async def rig16(tmp_path: Path, *, pki: Any = None, trust_mo: bool = True, tokens: list[Any] | None = None,
                **csms_config: Any) -> AsyncIterator[Any]:
    """Our CSMS (MO root installed), our station on OCPP 1.6 with PnC enabled, a bridged SECC over TLS."""
    pki = pki or create_pki(PkiConfig(ocsp_url="http://127.0.0.1:9/ocsp"))  # nobody answers there: soft-fail
    csms_config.setdefault("ocsp_allow", ("127.0.0.0/8",))
    chain = make_secc_chain()
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}", tokens=tokens or [], **csms_config) as csms, \
            our_station(csms, password=PASSWORD, versions=("1.6",), time_scale=1 / 60, max_power_w=50_000.0,
                        tx_interval=30) as st:
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


async def _ev(bridge: Any, pki: Any, chain: Any) -> SessionResult:
    config = EvccConfig(protocols=("iso2",), energy="dc", loops=5, loop_interval=0.02, payment="Contract",
                        contract=contract_of(pki), ongoing_interval=0.02)
    return await run_evcc(config, EVModel(speedup=60), tls=True, tls_context=evcc_context(
        cadata=chain.root_pem.decode()), secc=bridge.server.addresses()["tls"])


def _authorizes(csms: Any) -> list[dict[str, Any]]:
    return [m for m in csms.store.messages(station_id="CS1") if m["action"] == "Authorize"]


async def test_plug_and_charge_over_16_data_transfer(tmp_path: Path) -> None:
    async with rig16(tmp_path) as (csms, st, bridge, pki, chain):
        result = await _ev(bridge, pki, chain)
        assert result.ok, result.reason
        await until(lambda: st.evses[1].tx is None)
        await st.wait_queue_empty()
        emaid = contract_of(pki).emaid
        [tx] = csms.store.transactions("CS1")
        assert tx["ocppVersion"] == "1.6" and tx["idToken"] == emaid[:20] and tx["state"] == "Ended"
        assert tx["transactionId"].isdigit()
        assert tx["iso15118"].get("sessionId")  # the ISO facts arrived over DataTransfer and joined the transaction
        [auth] = _authorizes(csms)
        assert auth["payload"]["idToken"] == {"idToken": emaid, "type": "eMAID"}
        assert auth["payload"]["certificate"].startswith("-----BEGIN CERTIFICATE-----")
        assert auth["response"] == {"idTokenInfo": {"status": "Accepted"}, "certificateStatus": "Accepted"}


@pytest.mark.parametrize("fault,iso_code", [("untrusted", "FAILED_CertChainError"),
                                            ("blocked", "FAILED_ContractCanceled"),
                                            ("revoked", "FAILED_CertificateRevoked")])
async def test_certificate_faults_give_the_201_iso_codes(tmp_path: Path, fault: str, iso_code: str) -> None:
    pki, tokens, server = None, None, None
    if fault == "blocked":
        tokens = [{"idToken": contract_of(create_pki()).emaid, "type": "eMAID", "status": "Blocked"}]
    if fault == "revoked":
        pki, _, _, server = await start_responder(tmp_path / "pki")
        RevocationList(tmp_path / "pki" / "revoked.json").revoke(pki.cert(Kind.CONTRACT), pki.cert(Kind.MO_SUB_CA2),
                                                                 "key_compromise")
    try:
        async with rig16(tmp_path, pki=pki, trust_mo=fault != "untrusted", tokens=tokens) as (
                csms, _st, bridge, pki, chain):
            result = await _ev(bridge, pki, chain)
            assert not result.ok and result.response_code == iso_code, result.reason
            [auth] = _authorizes(csms)
            assert auth["response"]["certificateStatus"] == {
                "untrusted": "CertChainError", "blocked": "ContractCancelled", "revoked": "CertificateRevoked"}[fault]
    finally:
        if server is not None:
            server.close()  # type: ignore[attr-defined]


async def test_contract_installed_over_16_then_plug_and_charge(tmp_path: Path) -> None:
    pki = create_pki(PkiConfig(ocsp_url="http://127.0.0.1:9/ocsp"))
    write_pki(pki, tmp_path / "pki")
    async with rig16(tmp_path, pki=pki, pki_dir=str(tmp_path / "pki")) as (csms, st, bridge, pki, chain):
        oem = OemCredentials(pki.cert(Kind.OEM_PROV), pki.items[Kind.OEM_PROV].key, [pki.cert(Kind.V2G_ROOT)])
        config = EvccConfig(protocols=("iso2",), energy="ac", loops=3, loop_interval=0.02, payment="Contract",
                            oem=oem, ongoing_interval=0.02)
        result = await run_evcc(config, EVModel(speedup=60), tls=True, tls_context=evcc_context(
            cadata=chain.root_pem.decode()), secc=bridge.server.addresses()["tls"])
        assert result.ok, result.reason
        emaid = result.installed_contract.emaid
        await until(lambda: st.evses[1].tx is None)
        await st.wait_queue_empty()
        log = csms.store.messages(station_id="CS1")
        [install] = [m for m in log if m["action"] == "Get15118EVCertificate"]
        assert install["response"]["code"] == "OK" and install["response"]["eMAID"] == emaid
        [tx] = csms.store.transactions("CS1")
        assert tx["ocppVersion"] == "1.6" and tx["idToken"] == emaid[:20]
