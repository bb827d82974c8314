"""ISO 15118-2 certificate installation pieces: key protection (ECDH + ConcatKDF + AES-128-CBC), the signed request
and response, and every check the EV makes; the response fits OCPP's exiResponse limit."""

from __future__ import annotations

import base64
import copy

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from v2gstack import exi
from v2gstack.iso15118.pnc import (
    InstallationError,
    accept_installation,
    check_installation_request,
    decrypt_contract_key,
    encrypt_contract_key,
    installation_request,
    installation_response,
)
from v2gstack.pki.contracts import Issuer
from v2gstack.pki.hierarchy import create_pki
from v2gstack.pki.profiles import Kind


@pytest.fixture(scope="module")
def pki():  # type: ignore[no-untyped-def]
    return create_pki()


def test_key_protection_round_trip(pki) -> None:  # type: ignore[no-untyped-def]
    oem = pki.items[Kind.OEM_PROV]
    contract_key = ec.generate_private_key(ec.SECP256R1())
    dh, encrypted = encrypt_contract_key(oem.cert, contract_key)
    assert len(dh) == 65 and dh[0] == 4 and len(encrypted) == 48
    back = decrypt_contract_key(encrypted, oem.key, dh)
    assert back.private_numbers().private_value == contract_key.private_numbers().private_value
    other = decrypt_contract_key(encrypted, ec.generate_private_key(ec.SECP256R1()), dh)
    assert other.private_numbers().private_value != contract_key.private_numbers().private_value


def _response(pki):  # type: ignore[no-untyped-def]
    issuer = Issuer(pki.items[Kind.CPS].key, [pki.cert(Kind.CPS), *pki.intermediates(Kind.CPS)])
    contract = [pki.cert(Kind.CONTRACT), *pki.intermediates(Kind.CONTRACT)]
    return installation_response(pki.cert(Kind.OEM_PROV), contract, pki.items[Kind.CONTRACT].key, "DE8AA1A2B3C4D5X",
                                 issuer)


def test_request_and_response_sign_verify_and_fit_ocpp(pki) -> None:  # type: ignore[no-untyped-def]
    body, sig = installation_request(pki.cert(Kind.OEM_PROV), pki.items[Kind.OEM_PROV].key, [pki.cert(Kind.V2G_ROOT)])
    assert check_installation_request(body, sig) == pki.cert(Kind.OEM_PROV)
    with pytest.raises(InstallationError) as info:
        check_installation_request({**body, "Id": "ID1", "ListOfRootCertificateIDs": {"RootCertificateID": [
            {"X509IssuerName": "CN=x", "X509SerialNumber": 1}]}}, sig)
    assert info.value.code == "FAILED_SignatureError"
    res, res_sig = _response(pki)
    doc = {"V2G_Message": {"Header": {"SessionID": "0102030405060708", "Signature": res_sig},
                           "Body": {"CertificateInstallationRes": res}}}
    data = exi.encode("iso2", doc)
    assert exi.decode("iso2", data) == doc
    assert len(base64.b64encode(data)) <= 7500  # OCPP 2.0.1 Get15118EVCertificateResponse.exiResponse maxLength
    got = accept_installation(res, res_sig, pki.items[Kind.OEM_PROV].key, [pki.cert(Kind.V2G_ROOT)])
    assert got.emaid == "DE8AA1A2B3C4D5X" and got.chain[0] == pki.cert(Kind.CONTRACT).public_bytes(Encoding.DER)


@pytest.mark.parametrize("fault", ["tampered-emaid", "wrong-root", "wrong-oem-key"])
def test_the_ev_refuses_bad_installations(pki, fault: str) -> None:  # type: ignore[no-untyped-def]
    res, sig = _response(pki)
    res = copy.deepcopy(res)
    roots = [pki.cert(Kind.V2G_ROOT)]
    oem_key = pki.items[Kind.OEM_PROV].key
    if fault == "tampered-emaid":
        res["eMAID"]["value"] = "DE8AA9999999999"
    elif fault == "wrong-root":
        roots = [create_pki().cert(Kind.V2G_ROOT)]
    else:
        oem_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(InstallationError) as info:
        accept_installation(res, sig, oem_key, roots)
    assert info.value.code == {"tampered-emaid": "FAILED_SignatureError", "wrong-root": "FAILED_CertChainError",
                               "wrong-oem-key": "FAILED"}[fault]
