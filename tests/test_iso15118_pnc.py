"""ISO 15118-2 Plug & Charge with a contract the EV already holds: PaymentDetails, the signed AuthorizationReq and
every failure the SECC itself detects (eMAID mismatch, expired contract, wrong signer, replayed challenge), over TLS
on loopback and at the engine level."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from helpers.pnc import contract_of

from v2gstack.iso15118 import EvccConfig, EVModel, SeccServer, SimulatedEVSE, SimulatedEVSEConfig, run_evcc
from v2gstack.iso15118.devcerts import make_secc_chain
from v2gstack.iso15118.evcc import Contract
from v2gstack.iso15118.secc import SeccSession, contract_precheck
from v2gstack.iso15118.tls import evcc_context
from v2gstack.iso15118.xmldsig import sign
from v2gstack.pki.hierarchy import create_pki
from v2gstack.pki.issue import issue, subject_name
from v2gstack.pki.profiles import PROFILES, Kind

DER = serialization.Encoding.DER


@pytest.fixture(scope="module")
def pki():  # type: ignore[no-untyped-def]
    return create_pki()


@pytest.fixture
async def pnc_secc() -> AsyncIterator[tuple[SeccServer, str]]:
    chain = make_secc_chain()
    config = SimulatedEVSEConfig(payment_options=("Contract", "ExternalPayment"))
    server = SeccServer(lambda: SimulatedEVSE(config), host="::1", tls=chain.server_context(), sdp_port=0)
    async with server:
        yield server, chain.root_pem.decode()


@pytest.mark.parametrize("energy", ["ac", "dc"])
async def test_plug_and_charge_over_tls(pnc_secc: tuple[SeccServer, str], pki, energy: str) -> None:  # type: ignore[no-untyped-def]
    server, root = pnc_secc
    config = EvccConfig(protocols=("iso2",), energy=energy, loops=3, payment="Contract", contract=contract_of(pki))
    result = await run_evcc(config, EVModel(), tls=True, tls_context=evcc_context(cadata=root),
                            sdp_port=server.addresses()["sdp"][1])
    assert result.ok, result.reason
    [session] = [s for s in server.finished]
    assert session.info.payment_option == "Contract" and session.info.emaid == config.contract.emaid


async def test_without_tls_the_ev_falls_back_to_eim(pnc_secc: tuple[SeccServer, str], pki) -> None:  # type: ignore[no-untyped-def]
    server, _ = pnc_secc
    config = EvccConfig(protocols=("iso2",), energy="ac", loops=1, payment="Contract", contract=contract_of(pki))
    result = await run_evcc(config, EVModel(), sdp_port=server.addresses()["sdp"][1])
    assert result.ok, result.reason
    assert server.finished[0].info.payment_option == "ExternalPayment"


def test_contract_precheck(pki) -> None:  # type: ignore[no-untyped-def]
    good = contract_of(pki)
    assert contract_precheck(good.emaid, good.chain) == "OK"
    assert contract_precheck(good.emaid.lower(), good.chain) == "OK"  # case does not matter
    assert contract_precheck("DE8AA000000000X", good.chain) == "FAILED_CertChainError"
    assert contract_precheck(good.emaid, [b"not a certificate"]) == "FAILED_CertChainError"
    old = issue(PROFILES[Kind.CONTRACT], subject_name(good.emaid, "MO", "DE", "MO"), issuer=pki.items[Kind.MO_SUB_CA2],
                not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=10), validity_days=1)
    assert contract_precheck(good.emaid, [old.cert.public_bytes(DER), *good.chain[1:]]) == "FAILED_CertificateExpired"
    future = issue(PROFILES[Kind.CONTRACT], subject_name(good.emaid, "MO", "DE", "MO"),
                   issuer=pki.items[Kind.MO_SUB_CA2], not_before=dt.datetime.now(dt.UTC) + dt.timedelta(days=2))
    # not yet valid: ISO 15118-2 has no own code for it; the validity failure is FAILED_CertificateExpired
    assert contract_precheck(good.emaid, [future.cert.public_bytes(DER), *good.chain[1:]]) == \
        "FAILED_CertificateExpired"


def _through_payment_details(session: SeccSession, contract: Contract) -> None:
    """Drive the SECC engine to the point where it expects AuthorizationReq (TLS session, Contract)."""
    def req(name: str, body: dict, sid: str) -> dict:
        return {"V2G_Message": {"Header": {"SessionID": sid}, "Body": {name: body}}}

    hand = {"supportedAppProtocolReq": {"AppProtocol": [{"ProtocolNamespace": "urn:iso:15118:2:2013:MsgDef",
                                                         "VersionNumberMajor": 2, "VersionNumberMinor": 0,
                                                         "SchemaID": 1, "Priority": 1}]}}
    session.handle(hand)
    session.handle(req("SessionSetupReq", {"EVCCID": "0A0B0C0D0E0F"}, "00"))
    sid = session.session_id
    session.handle(req("ServiceDiscoveryReq", {}, sid))
    session.handle(req("PaymentServiceSelectionReq", {"SelectedPaymentOption": "Contract", "SelectedServiceList": {
        "SelectedService": [{"ServiceID": 1}]}}, sid))
    reply = session.handle(req("PaymentDetailsReq", session.msgs.payment_details_req(contract.emaid, contract.chain),
                               sid))
    assert reply.doc["V2G_Message"]["Body"]["PaymentDetailsRes"]["ResponseCode"] == "OK"


@pytest.mark.parametrize("fault", ["wrong-key", "challenge", "unsigned", "ok"])
def test_signed_authorization_faults(pki, fault: str) -> None:  # type: ignore[no-untyped-def]
    contract = contract_of(pki)
    session = SeccSession(SimulatedEVSE(SimulatedEVSEConfig(payment_options=("Contract",))), tls=True)
    _through_payment_details(session, contract)
    challenge = bytes(16) if fault == "challenge" else session.challenge
    body = {"Id": "ID1", "GenChallenge": base64.b64encode(challenge).decode()}
    key = ec.generate_private_key(ec.SECP256R1()) if fault == "wrong-key" else contract.key
    header: dict = {"SessionID": session.session_id}
    if fault != "unsigned":
        header["Signature"] = sign("iso2", [("ID1", "AuthorizationReq", body)], key)
    reply = session.handle({"V2G_Message": {"Header": header, "Body": {"AuthorizationReq": body}}})
    code = reply.doc["V2G_Message"]["Body"]["AuthorizationRes"]["ResponseCode"]
    assert code == {"wrong-key": "FAILED_SignatureError", "challenge": "FAILED_ChallengeInvalid",
                    "unsigned": "FAILED_SignatureError", "ok": "OK"}[fault]
    assert reply.close == (fault != "ok")


async def test_certificate_installation_then_plug_and_charge(tmp_path, pki) -> None:  # type: ignore[no-untyped-def]
    """An EV with only its OEM provisioning certificate gets a contract (SECC-local contract service), then charges
    with it in the same session."""
    from v2gstack.iso15118.evcc import OemCredentials
    from v2gstack.pki.contracts import ContractService
    from v2gstack.pki.store import write_pki

    write_pki(pki, tmp_path)
    service = ContractService.from_pki_dir(tmp_path)
    chain = make_secc_chain()
    config = SimulatedEVSEConfig(payment_options=("Contract",), contract_service=service)
    async with SeccServer(lambda: SimulatedEVSE(config), host="::1", tls=chain.server_context(), sdp_port=0) as srv:
        oem = OemCredentials(pki.cert(Kind.OEM_PROV), pki.items[Kind.OEM_PROV].key, [pki.cert(Kind.V2G_ROOT)])
        ev = EvccConfig(protocols=("iso2",), energy="ac", loops=2, payment="Contract", oem=oem)
        result = await run_evcc(ev, EVModel(), tls=True, tls_context=evcc_context(cadata=chain.root_pem.decode()),
                                sdp_port=srv.addresses()["sdp"][1])
        assert result.ok, result.reason
        installed = result.installed_contract
        assert installed is not None and installed.emaid.startswith("DEV2G") and len(installed.emaid) == 14
        assert srv.finished[0].info.emaid == installed.emaid
        # the next session uses the installed contract directly
        again = EvccConfig(protocols=("iso2",), energy="dc", loops=2, payment="Contract", contract=installed)
        second = await run_evcc(again, EVModel(), tls=True, tls_context=evcc_context(cadata=chain.root_pem.decode()),
                                sdp_port=srv.addresses()["sdp"][1])
        assert second.ok and second.installed_contract is None
        # an OEM certificate from another PKI is refused by the contract service
        other = create_pki()
        stranger = OemCredentials(other.cert(Kind.OEM_PROV), other.items[Kind.OEM_PROV].key, [pki.cert(Kind.V2G_ROOT)])
        refused = await run_evcc(EvccConfig(protocols=("iso2",), energy="ac", loops=1, payment="Contract",
                                            oem=stranger), EVModel(), tls=True,
                                 tls_context=evcc_context(cadata=chain.root_pem.decode()),
                                 sdp_port=srv.addresses()["sdp"][1])
        assert not refused.ok and refused.response_code == "FAILED_CertChainError"


def test_unsigned_repeat_after_a_verified_authorization(pki) -> None:  # type: ignore[no-untyped-def]
    """Repeats of AuthorizationReq while Ongoing may drop Id and GenChallenge (the reference EVCC does); before a
    verified one, an unsigned request is refused."""
    contract = contract_of(pki)
    config = SimulatedEVSEConfig(payment_options=("Contract",), auth_ongoing_rounds=2)
    session = SeccSession(SimulatedEVSE(config), tls=True)
    _through_payment_details(session, contract)
    sid = session.session_id
    unsigned = {"V2G_Message": {"Header": {"SessionID": sid}, "Body": {"AuthorizationReq": {}}}}
    body = {"Id": "ID1", "GenChallenge": base64.b64encode(session.challenge).decode()}
    signature = sign("iso2", [("ID1", "AuthorizationReq", body)], contract.key)
    signed = {"V2G_Message": {"Header": {"SessionID": sid, "Signature": signature}, "Body": {"AuthorizationReq": body}}}

    def res(reply) -> tuple[str, str]:  # type: ignore[no-untyped-def]
        r = reply.doc["V2G_Message"]["Body"]["AuthorizationRes"]
        return r["ResponseCode"], r["EVSEProcessing"]

    assert res(session.handle(signed)) == ("OK", "Ongoing")
    assert res(session.handle(unsigned)) == ("OK", "Ongoing")
    assert res(session.handle(unsigned)) == ("OK", "Finished")
    fresh = SeccSession(SimulatedEVSE(config), tls=True)
    _through_payment_details(fresh, contract)
    unsigned["V2G_Message"]["Header"]["SessionID"] = fresh.session_id
    assert res(fresh.handle(unsigned)) == ("FAILED_SignatureError", "Finished")


async def test_signed_metering_receipt(pki) -> None:  # type: ignore[no-untyped-def]
    """With Plug & Charge the EV signs MeteringReceiptReq with its contract key and the SECC verifies it."""
    chain = make_secc_chain()
    config = SimulatedEVSEConfig(payment_options=("Contract",), receipt_required=True)
    async with SeccServer(lambda: SimulatedEVSE(config), host="::1", tls=chain.server_context(), sdp_port=0) as srv:
        ev = EvccConfig(protocols=("iso2",), energy="dc", loops=3, payment="Contract", contract=contract_of(pki))
        records: list = []
        result = await run_evcc(ev, EVModel(), tls=True, tls_context=evcc_context(cadata=chain.root_pem.decode()),
                                sdp_port=srv.addresses()["sdp"][1], on_message=records.append)
        assert result.ok, result.reason
        receipts = [r for r in records if r.name == "MeteringReceiptReq"]
        assert receipts and all("Signature" in r.doc["V2G_Message"]["Header"] for r in receipts)
        answers = [r for r in records if r.name == "MeteringReceiptRes"]
        assert {r.doc["V2G_Message"]["Body"]["MeteringReceiptRes"]["ResponseCode"] for r in answers} == {"OK"}


def test_metering_receipt_signed_by_another_key_is_refused(pki) -> None:  # type: ignore[no-untyped-def]
    from v2gstack.iso15118.model import MeterReading, Step

    contract = contract_of(pki)
    session = SeccSession(SimulatedEVSE(SimulatedEVSEConfig(payment_options=("Contract",))), tls=True)
    _through_payment_details(session, contract)
    session.expected = frozenset(session.expected | {Step.METERING_RECEIPT})  # as after a ReceiptRequired answer
    req = session.msgs.metering_receipt_req(session.session_id, 1, MeterReading("M1", 1000, 0), ref_id="ID2")
    signature = sign("iso2", [("ID2", "MeteringReceiptReq", req)], ec.generate_private_key(ec.SECP256R1()))
    reply = session.handle({"V2G_Message": {"Header": {"SessionID": session.session_id, "Signature": signature},
                                            "Body": {"MeteringReceiptReq": req}}})
    res = reply.doc["V2G_Message"]["Body"]["MeteringReceiptRes"]
    assert res["ResponseCode"] == "FAILED_MeteringSignatureNotValid"


async def test_certificate_update_then_plug_and_charge(tmp_path, pki) -> None:  # type: ignore[no-untyped-def]
    """An EV renews its contract (CertificateUpdate, signed with the current contract key; the new key is encrypted
    for it) and charges with the new one; a contract of another MO cannot be renewed here."""
    from v2gstack.pki.contracts import ContractService
    from v2gstack.pki.store import write_pki

    write_pki(pki, tmp_path)
    chain = make_secc_chain()
    config = SimulatedEVSEConfig(payment_options=("Contract",), contract_service=ContractService.from_pki_dir(tmp_path))
    context = evcc_context(cadata=chain.root_pem.decode())
    async with SeccServer(lambda: SimulatedEVSE(config), host="::1", tls=chain.server_context(), sdp_port=0) as srv:
        current = contract_of(pki)
        ev = EvccConfig(protocols=("iso2",), energy="ac", loops=2, payment="Contract", contract=current,
                        update_contract=True, v2g_roots=(pki.cert(Kind.V2G_ROOT),))
        result = await run_evcc(ev, EVModel(), tls=True, tls_context=context, sdp_port=srv.addresses()["sdp"][1])
        assert result.ok, result.reason
        renewed = result.installed_contract
        assert renewed is not None and renewed.emaid == current.emaid and renewed.chain[0] != current.chain[0]
        assert renewed.key.private_numbers().private_value != current.key.private_numbers().private_value
        other = create_pki()
        foreign = EvccConfig(protocols=("iso2",), energy="ac", loops=2, payment="Contract",
                             contract=contract_of(other), update_contract=True, v2g_roots=(pki.cert(Kind.V2G_ROOT),))
        refused = await run_evcc(foreign, EVModel(), tls=True, tls_context=context,
                                 sdp_port=srv.addresses()["sdp"][1])
        assert not refused.ok and refused.response_code == "FAILED_CertChainError", refused.reason
