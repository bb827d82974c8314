"""ISO 15118-20 certificate installation crypto and the signed PnC messages: the sealed contract key for both curves
(lengths, KDF and AAD by hand, every tampering), the whole installation through the EXI codec, and every refusal with
its -20 ResponseCode."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from v2gstack import exi
from v2gstack.iso15118 import pnc20
from v2gstack.iso15118.contract_key20 import (
    ContractKeyError,
    EcdhCurve,
    EncryptedContractKey,
    aad,
    decrypt_contract_key,
    encrypt_contract_key,
    pcid_of,
    session_key,
)
from v2gstack.pki.algorithms import KeyAlgorithm
from v2gstack.pki.contracts import default_emaid
from v2gstack.pki.contracts20 import ContractService20, issue_contract20
from v2gstack.pki.hierarchy import Edition, Pki, PkiConfig, create_pki
from v2gstack.pki.issue import Issued
from v2gstack.pki.profiles import Kind
from v2gstack.pki.store import write_pki

SETS = [KeyAlgorithm.SECP521, KeyAlgorithm.ED448]
SID = "0102030405060708"


@pytest.fixture(scope="module", params=SETS, ids=[s.value for s in SETS])
def pki_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Pki, Path]:
    pki = create_pki(PkiConfig(edition=Edition.ISO20, algorithm=request.param))
    out = tmp_path_factory.mktemp(f"pnc20-{request.param.value}")
    write_pki(pki, out)
    return pki, out


def oem_secret(pki: Pki) -> Any:
    item = pki.items[Kind.OEM_PROV]
    return item.key if pki.algorithm is KeyAlgorithm.SECP521 else item.alt_key


def new_contract(pki: Pki, emaid: str = "DEV2GC00000001") -> Issued:
    return issue_contract20(pki.items[Kind.MO_SUB_CA2], emaid, pki.algorithm)


def test_sealed_key_layout_and_round_trip(pki_dir: tuple[Pki, Path]) -> None:
    pki, _ = pki_dir
    oem, contract = pki.cert(Kind.OEM_PROV), new_contract(pki)
    sealed = encrypt_contract_key(oem, contract.key, contract.cert)
    if pki.algorithm is KeyAlgorithm.SECP521:
        assert (sealed.curve, len(sealed.dh_public_key), len(sealed.encrypted)) == (EcdhCurve.SECP521, 133, 94)
        assert sealed.dh_public_key[0] == 0x04
    else:
        assert (sealed.curve, len(sealed.dh_public_key), len(sealed.encrypted)) == (EcdhCurve.X448, 57, 84)
    associated = aad(pcid_of(oem), contract.cert)
    ski = contract.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert associated == PkiConfig().pcid.encode() + ski.hex().upper().encode() and len(associated) == 34
    key = decrypt_contract_key(sealed, oem_secret(pki), contract.cert, pcid_of(oem))
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert key.public_key().public_bytes(*raw) == contract.cert.public_key().public_bytes(*raw)
    if pki.algorithm is KeyAlgorithm.ED448:  # a bare 56-byte DHPublicKey (no 0x04) is read too
        bare = EncryptedContractKey(sealed.curve, sealed.dh_public_key[1:], sealed.encrypted)
        decrypt_contract_key(bare, oem_secret(pki), contract.cert, pcid_of(oem))


def test_session_key_is_concat_kdf_sha512_by_hand() -> None:
    z = os.urandom(66)
    by_hand = hashes.Hash(hashes.SHA512())
    by_hand.update(b"\x00\x00\x00\x01" + z + b"\x01\x55\x56")
    assert session_key(z) == by_hand.finalize()[:32]


def test_tampering_and_wrong_inputs_fail(pki_dir: tuple[Pki, Path]) -> None:
    pki, _ = pki_dir
    oem, contract = pki.cert(Kind.OEM_PROV), new_contract(pki)
    pcid = pcid_of(oem)
    sealed = encrypt_contract_key(oem, contract.key, contract.cert)
    flipped = bytearray(sealed.encrypted)
    flipped[20] ^= 1
    cases = {
        "ciphertext": (EncryptedContractKey(sealed.curve, sealed.dh_public_key, bytes(flipped)), oem_secret(pki),
                       contract.cert, pcid),
        "pcid": (sealed, oem_secret(pki), contract.cert, "WV2G0000000000000X"),
        "contract (other SKI)": (sealed, oem_secret(pki), new_contract(pki).cert, pcid),
    }
    other = create_pki(PkiConfig(edition=Edition.ISO20, algorithm=pki.algorithm))
    cases["oem key"] = (sealed, oem_secret(other), contract.cert, pcid)
    for name, args in cases.items():
        with pytest.raises(ContractKeyError, match="does not decrypt"):
            decrypt_contract_key(*args)
        assert name
    with pytest.raises(ContractKeyError, match="bytes, not"):
        decrypt_contract_key(EncryptedContractKey(sealed.curve, sealed.dh_public_key, sealed.encrypted[:-1]),
                             oem_secret(pki), contract.cert, pcid)


def _seal_plaintext(oem: x509.Certificate, plain: bytes, contract_cert: x509.Certificate) -> EncryptedContractKey:
    """A SECP521 sealed key with any plaintext, made the way the standard says (to test the EV's checks)."""
    eph = ec.generate_private_key(ec.SECP521R1())
    shared = eph.exchange(ec.ECDH(), oem.public_key())  # type: ignore[arg-type]
    iv = os.urandom(12)
    sealed = AESGCM(session_key(shared)).encrypt(iv, plain, aad(pcid_of(oem), contract_cert))
    dh = eph.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return EncryptedContractKey(EcdhCurve.SECP521, dh, iv + sealed)


def test_the_evs_checks_of_the_decrypted_secp521_key() -> None:
    pki = create_pki(PkiConfig(edition=Edition.ISO20, algorithm=KeyAlgorithm.SECP521))
    oem, key = pki.items[Kind.OEM_PROV], pki.items[Kind.OEM_PROV].key
    contract = new_contract(pki)
    with pytest.raises(ContractKeyError, match="7 zero bits"):
        decrypt_contract_key(_seal_plaintext(oem.cert, b"\x80" + bytes(65), contract.cert), key, contract.cert,
                             pcid_of(oem.cert))
    with pytest.raises(ContractKeyError, match="out of range"):
        decrypt_contract_key(_seal_plaintext(oem.cert, b"\x01" + b"\xff" * 65, contract.cert), key, contract.cert,
                             pcid_of(oem.cert))
    other = ec.generate_private_key(ec.SECP521R1()).private_numbers().private_value.to_bytes(66, "big")
    with pytest.raises(ContractKeyError, match="does not belong"):
        decrypt_contract_key(_seal_plaintext(oem.cert, other, contract.cert), key, contract.cert, pcid_of(oem.cert))


def _install(pki: Pki, service: ContractService20, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    oem = pki.items[Kind.OEM_PROV]
    req = pnc20.installation_request(SID, [oem.cert, *pki.intermediates(Kind.OEM_PROV)], oem.key,
                                     [pki.cert(Kind.V2G_ROOT)], prioritized_emaids=["DEV2GC00000009"])
    wire_req = exi.decode("iso20", exi.encode("iso20", req))
    assert wire_req == req
    res, _ = pnc20.answer_installation(service, wire_req, **kw)
    return wire_req, exi.decode("iso20", exi.encode("iso20", res))


def test_certificate_installation_then_plug_and_charge(pki_dir: tuple[Pki, Path]) -> None:
    pki, folder = pki_dir
    service = ContractService20.from_pki_dir(folder)
    oem = pki.items[Kind.OEM_PROV]
    _, res = _install(pki, service)
    body = res["CertificateInstallationRes"]
    assert body["ResponseCode"] == "OK" and body["SignedInstallationData"]["ECDHCurve"] == (
        "SECP521" if pki.algorithm is KeyAlgorithm.SECP521 else "X448")
    alt = pnc20.load_oem_alt_key(folder)
    assert (alt is None) == (pki.algorithm is KeyAlgorithm.SECP521)
    installed = pnc20.accept_installation(res, oem.cert, oem.key, alt, [pki.cert(Kind.V2G_ROOT)])
    chain = [x509.load_der_x509_certificate(c) for c in installed.chain]
    assert installed.emaid == default_emaid(oem.cert)
    # the installed contract authorizes: signed PnC_AReqAuthorizationMode, checked against the GenChallenge
    challenge = os.urandom(16)
    mode, sig = pnc20.pnc_authorization(challenge, chain, installed.key)
    msg = exi.decode("iso20", exi.encode("iso20", {"AuthorizationReq": {
        "Header": pnc20.header(SID, 1, sig), "SelectedAuthorizationService": "PnC",
        "PnC_AReqAuthorizationMode": mode}}))
    got = msg["AuthorizationReq"]
    assert pnc20.check_pnc_authorization(got["PnC_AReqAuthorizationMode"], got["Header"]["Signature"],
                                         challenge)[0] == chain[0]
    with pytest.raises(pnc20.Pnc20Error) as wrong:
        pnc20.check_pnc_authorization(got["PnC_AReqAuthorizationMode"], got["Header"]["Signature"], bytes(16))
    assert wrong.value.code == "WARNING_ChallengeInvalid"
    forged = pnc20.pnc_authorization(challenge, chain, new_contract(pki).key)[1]
    with pytest.raises(pnc20.Pnc20Error) as bad:
        pnc20.check_pnc_authorization(mode, forged, challenge)
    assert bad.value.code == "FAILED_SignatureError"


def test_the_secondary_actor_refuses(pki_dir: tuple[Pki, Path]) -> None:
    pki, folder = pki_dir
    service = ContractService20.from_pki_dir(folder)
    with pytest.raises(pnc20.Pnc20Error) as expired:
        _install(pki, service, at=dt.datetime.now(dt.UTC) + dt.timedelta(days=20 * 365))
    assert expired.value.code == "WARNING_CertificateExpired"
    foreign = create_pki(PkiConfig(edition=Edition.ISO20, algorithm=pki.algorithm))
    with pytest.raises(pnc20.Pnc20Error) as unknown:
        _install(foreign, service)
    assert unknown.value.code == "WARNING_CertificateValidationError"
    oem = pki.items[Kind.OEM_PROV]
    req = pnc20.installation_request(SID, [oem.cert, *pki.intermediates(Kind.OEM_PROV)], oem.key,
                                     [pki.cert(Kind.V2G_ROOT)])
    swapped = copy.deepcopy(req)  # the signed chain swapped for another EV's: the signature no longer covers it
    swapped["CertificateInstallationReq"]["OEMProvisioningCertificateChain"] = pnc20.chain_element(
        [foreign.cert(Kind.OEM_PROV), *foreign.intermediates(Kind.OEM_PROV)], "id1")
    with pytest.raises(pnc20.Pnc20Error) as forged:
        pnc20.answer_installation(service, swapped)
    assert forged.value.code == "FAILED_SignatureError"
    p2 = create_pki()  # an ISO 15118-2 (P-256) OEM certificate signs with the -2 suite: not a -20 signature
    old = pnc20.installation_request(SID, [p2.cert(Kind.OEM_PROV), *p2.intermediates(Kind.OEM_PROV)],
                                     p2.items[Kind.OEM_PROV].key, [p2.cert(Kind.V2G_ROOT)])
    with pytest.raises(pnc20.Pnc20Error) as legacy:
        pnc20.answer_installation(service, old)
    assert legacy.value.code == "FAILED_SignatureError"


def test_the_ev_refuses(pki_dir: tuple[Pki, Path]) -> None:
    pki, folder = pki_dir
    service = ContractService20.from_pki_dir(folder)
    oem, alt, roots = pki.items[Kind.OEM_PROV], pnc20.load_oem_alt_key(folder), [pki.cert(Kind.V2G_ROOT)]
    _, res = _install(pki, service)
    pnc20.accept_installation(res, oem.cert, oem.key, alt, roots)

    def refused(doc: dict[str, Any], **kw: Any) -> str:
        with pytest.raises(pnc20.Pnc20Error) as err:
            pnc20.accept_installation(doc, oem.cert, oem.key, alt, kw.get("roots", roots))
        return err.value.code

    other_v2g = create_pki(PkiConfig(edition=Edition.ISO20, algorithm=pki.algorithm)).cert(Kind.V2G_ROOT)
    assert refused(res, roots=[other_v2g]) == "WARNING_CertificateValidationError"  # CPS not under our V2G root
    tampered = copy.deepcopy(res)
    dh = bytearray(base64.b64decode(tampered["CertificateInstallationRes"]["SignedInstallationData"]["DHPublicKey"]))
    dh[-1] ^= 1
    tampered["CertificateInstallationRes"]["SignedInstallationData"]["DHPublicKey"] = base64.b64encode(dh).decode()
    assert refused(tampered) == "FAILED_SignatureError"
    headless = copy.deepcopy(res)
    del headless["CertificateInstallationRes"]["Header"]
    assert refused(headless) == "FAILED_SignatureError"
    failed = copy.deepcopy(res)
    failed["CertificateInstallationRes"]["ResponseCode"] = "WARNING_NoCertificateAvailable"
    assert refused(failed) == "WARNING_NoCertificateAvailable"
    # a CPS-signed response sealed for another EV: the signature holds, the key does not open
    foreign = create_pki(PkiConfig(edition=Edition.ISO20, algorithm=pki.algorithm))
    contract = new_contract(pki)
    sealed = encrypt_contract_key(foreign.cert(Kind.OEM_PROV), contract.key, contract.cert)
    data = pnc20.signed_installation_data([contract.cert, *pki.intermediates(Kind.CONTRACT)], sealed)
    cps_chain = [pki.cert(Kind.CPS), *pki.intermediates(Kind.CPS)]
    other_ev = pnc20.installation_response(SID, cps_chain, pki.items[Kind.CPS].key, data)
    assert refused(other_ev) == "FAILED"


def test_metering_confirmation_signature(pki_dir: tuple[Pki, Path]) -> None:
    pki, _ = pki_dir
    contract = new_contract(pki)
    data = {"Id": "id1", "SessionID": SID, "MeterInfo": {"MeterID": "M1", "ChargedEnergyReadingWh": 1234},
            "Dynamic_SMDTControlMode": {}}
    sig = pnc20.sign_metering(data, contract.key)
    msg = exi.decode("iso20", exi.encode("iso20", {"MeteringConfirmationReq": {
        "Header": pnc20.header(SID, 1, sig), "SignedMeteringData": data}}))["MeteringConfirmationReq"]
    pnc20.check_metering(msg["SignedMeteringData"], msg["Header"]["Signature"], contract.cert)
    changed = {**data, "MeterInfo": {"MeterID": "M1", "ChargedEnergyReadingWh": 1235}}
    with pytest.raises(pnc20.Pnc20Error) as err:
        pnc20.check_metering(changed, sig, contract.cert)
    assert err.value.code == "FAILED_MeteringSignatureNotValid"


def test_unreadable_chains_are_typed_errors() -> None:
    with pytest.raises(pnc20.Pnc20Error) as err:
        pnc20.read_chain({"Certificate": base64.b64encode(b"not a certificate").decode()})
    assert err.value.code == "WARNING_CertificateValidationError"
    with pytest.raises(pnc20.Pnc20Error):
        pnc20.read_chain({"Certificate": "!!!"})
    with pytest.raises(pnc20.Pnc20Error):
        pnc20.check_installation_request({"SessionSetupReq": {}})
