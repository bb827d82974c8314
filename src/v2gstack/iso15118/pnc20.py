"""ISO 15118-20 Plug & Charge messages with their security: the signed PnC_AReqAuthorizationMode, the signed
SignedMeteringData, and certificate installation (CertificateInstallationReq signed over its
OEMProvisioningCertificateChain with the OEM provisioning key [V2G20-1548]; CertificateInstallationRes with the
SignedInstallationData signed by the CPS leaf and the contract key sealed for the EV, see contract_key20).

Message dicts are the EXI JSON view of the CommonMessages namespace ("iso20"). Every check raises a typed error whose
`code` is the -20 ResponseCode to answer with. `ContractService20` is the secondary actor (our CSMS's, or a simulated
EVSE's): it checks the request, issues a contract on the EV's curve (pki.contracts20) and answers.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x448

from ..pki import errors as pki_errors
from ..pki.algorithms import ISO20_ALGORITHMS, PrivateKey
from ..pki.contracts20 import ContractService20
from ..pki.store import load_x448_key
from ..pki.verify import Purpose, verify_chain
from . import xmldsig20
from .contract_key20 import (
    ContractKeyError,
    EcdhCurve,
    EncryptedContractKey,
    decrypt_contract_key,
    encrypt_contract_key,
    pcid_of,
)
from .xmldsig import SignatureError

NS = "iso20"
DER = serialization.Encoding.DER
MAX_SUB_CERTIFICATES = 3  # SubCertificatesType maxOccurs
MAX_ROOT_IDS = 20  # ListOfRootCertificateIDsType maxOccurs
MAX_CERTIFICATE_BYTES = 1600  # certificateType maxLength


class Pnc20Error(ValueError):
    """A -20 Plug & Charge message that must be refused; `code` is the ResponseCode to answer with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def chain_element(certs: Sequence[x509.Certificate], ref_id: str | None = None) -> dict[str, Any]:
    """CertificateChainType / SignedCertificateChainType / ContractCertificateChainType: leaf, then SubCertificates."""
    if len(certs) - 1 > MAX_SUB_CERTIFICATES:
        raise ValueError(f"at most {MAX_SUB_CERTIFICATES} sub-CA certificates fit a -20 chain")
    out: dict[str, Any] = {"Id": ref_id} if ref_id is not None else {}
    out["Certificate"] = _b64(certs[0].public_bytes(DER))
    if len(certs) > 1:
        out["SubCertificates"] = {"Certificate": [_b64(c.public_bytes(DER)) for c in certs[1:]]}
    return out


def read_chain(element: Mapping[str, Any] | None, what: str = "certificate chain") -> list[x509.Certificate]:
    """The certificates of a chain element, leaf first (Pnc20Error WARNING_CertificateValidationError if unreadable)."""
    try:
        subs = list(((element or {}).get("SubCertificates") or {}).get("Certificate", []))
        raw = [base64.b64decode(c, validate=True) for c in [element["Certificate"], *subs]]  # type: ignore[index]
        if len(subs) > MAX_SUB_CERTIFICATES or any(len(r) > MAX_CERTIFICATE_BYTES for r in raw):
            raise ValueError("too many or too large certificates")
        return [x509.load_der_x509_certificate(r) for r in raw]
    except (KeyError, TypeError, ValueError) as exc:
        raise Pnc20Error("WARNING_CertificateValidationError", f"{what} is not a certificate chain: {exc}") from None


def root_certificate_ids(roots: Sequence[x509.Certificate]) -> dict[str, Any]:
    """ListOfRootCertificateIDs: issuer and serial of each trusted root (1..20)."""
    if not roots:
        raise ValueError("ListOfRootCertificateIDs needs at least one root")
    return {"RootCertificateID": [{"X509IssuerName": r.issuer.rfc4514_string(), "X509SerialNumber": r.serial_number}
                                  for r in roots[:MAX_ROOT_IDS]]}


def header(session_id: str, timestamp: int | None = None, signature: dict[str, Any] | None = None) -> dict[str, Any]:
    """A -20 MessageHeader (TimeStamp: seconds since the epoch, now if not given)."""
    out: dict[str, Any] = {"SessionID": session_id,
                           "TimeStamp": int(dt.datetime.now(dt.UTC).timestamp()) if timestamp is None else timestamp}
    if signature is not None:
        out["Signature"] = signature
    return out


def _signed_by(ns_element: tuple[str, str, dict[str, Any]], signature: Mapping[str, Any] | None,
               public_key: object, allowed: tuple[xmldsig20.Suite, ...], code: str) -> None:
    """Verify one element's header signature; Pnc20Error(code) when it does not verify."""
    ref_id, name, element = ns_element
    try:
        xmldsig20.verify(NS, signature, {ref_id: (name, element)}, public_key, allowed=allowed)  # type: ignore[arg-type]
    except SignatureError as exc:
        raise Pnc20Error(code, f"{name}: {exc}") from None


# ----- Authorization (PnC) -----

def pnc_authorization(gen_challenge: bytes, contract_chain: Sequence[x509.Certificate], contract_key: PrivateKey,
                      ref_id: str = "id1", grammar: str = "xmldsig") -> tuple[dict[str, Any], dict[str, Any]]:
    """(PnC_AReqAuthorizationMode, header Signature over it by the contract key) for an AuthorizationReq."""
    if len(contract_chain) < 2:
        raise ValueError("ContractCertificateChain needs the sub-CA certificates (SubCertificates is mandatory)")
    mode = {"Id": ref_id, "GenChallenge": _b64(gen_challenge),
            "ContractCertificateChain": chain_element(contract_chain)}
    return mode, xmldsig20.sign(NS, [(ref_id, "PnC_AReqAuthorizationMode", mode)], contract_key, grammar=grammar)


def check_pnc_authorization(mode: Mapping[str, Any], signature: Mapping[str, Any] | None, gen_challenge: bytes,
                            allowed: tuple[xmldsig20.Suite, ...] = xmldsig20.ISO20_SUITES) -> list[x509.Certificate]:
    """The contract chain of a PnC_AReqAuthorizationMode whose signature verifies with its leaf (FAILED_SignatureError
    otherwise) and whose GenChallenge is the one the SECC sent (WARNING_ChallengeInvalid otherwise)."""
    chain = read_chain(mode.get("ContractCertificateChain"), "ContractCertificateChain")
    _signed_by((str(mode.get("Id", "")), "PnC_AReqAuthorizationMode", dict(mode)), signature, chain[0].public_key(),
               allowed, "FAILED_SignatureError")
    try:
        challenge = base64.b64decode(str(mode.get("GenChallenge", "")), validate=True)
    except ValueError:
        challenge = b""
    if challenge != gen_challenge:
        raise Pnc20Error("WARNING_ChallengeInvalid", "GenChallenge is not the one the SECC sent")
    return chain


# ----- MeteringConfirmation -----

def sign_metering(data: dict[str, Any], contract_key: PrivateKey) -> dict[str, Any]:
    """The header Signature over SignedMeteringData (its Id) by the contract key."""
    return xmldsig20.sign(NS, [(data["Id"], "SignedMeteringData", data)], contract_key)


def check_metering(data: Mapping[str, Any], signature: Mapping[str, Any] | None, contract_cert: x509.Certificate,
                   allowed: tuple[xmldsig20.Suite, ...] = xmldsig20.ISO20_SUITES) -> None:
    """SignedMeteringData signed by the contract key; Pnc20Error FAILED_MeteringSignatureNotValid otherwise."""
    _signed_by((str(data.get("Id", "")), "SignedMeteringData", dict(data)), signature, contract_cert.public_key(),
               allowed, "FAILED_MeteringSignatureNotValid")


# ----- Certificate installation -----

def installation_request(session_id: str, oem_chain: Sequence[x509.Certificate], oem_key: PrivateKey,
                         roots: Sequence[x509.Certificate], *, maximum_chains: int = 1,
                         prioritized_emaids: Sequence[str] = (), timestamp: int | None = None,
                         ref_id: str = "id1") -> dict[str, Any]:
    """A signed CertificateInstallationReq document (root element CertificateInstallationReq)."""
    chain = chain_element(oem_chain, ref_id)
    body: dict[str, Any] = {"OEMProvisioningCertificateChain": chain, "ListOfRootCertificateIDs":
                            root_certificate_ids(roots), "MaximumContractCertificateChains": maximum_chains}
    if prioritized_emaids:
        body["PrioritizedEMAIDs"] = {"EMAID": list(prioritized_emaids)[:8]}
    signature = xmldsig20.sign(NS, [(ref_id, "OEMProvisioningCertificateChain", chain)], oem_key)
    return {"CertificateInstallationReq": {"Header": header(session_id, timestamp, signature), **body}}


@dataclass(frozen=True)
class InstallationRequest:
    """What the secondary actor takes from a verified CertificateInstallationReq."""

    session_id: str
    oem_chain: list[x509.Certificate]  # leaf first
    pcid: str
    maximum_chains: int
    prioritized_emaids: list[str]


def check_installation_request(doc: Mapping[str, Any],
                               allowed: tuple[xmldsig20.Suite, ...] = xmldsig20.ISO20_SUITES) -> InstallationRequest:
    """Read a CertificateInstallationReq document and verify its signature with the OEM provisioning key it carries
    (FAILED_SignatureError); the chain's trust is the caller's (ContractService20 checks it against OEM roots)."""
    try:
        req = doc["CertificateInstallationReq"]
        hdr = req["Header"]
        chain_el = req["OEMProvisioningCertificateChain"]
    except (KeyError, TypeError):
        raise Pnc20Error("FAILED", "not a CertificateInstallationReq") from None
    chain = read_chain(chain_el, "OEMProvisioningCertificateChain")
    _signed_by((str(chain_el.get("Id", "")), "OEMProvisioningCertificateChain", chain_el), hdr.get("Signature"),
               chain[0].public_key(), allowed, "FAILED_SignatureError")
    try:
        pcid = pcid_of(chain[0])
    except ContractKeyError as exc:
        raise Pnc20Error(exc.code, str(exc)) from None
    emaids = list(((req.get("PrioritizedEMAIDs") or {}).get("EMAID")) or [])
    return InstallationRequest(str(hdr.get("SessionID", "")), chain, pcid,
                               int(req.get("MaximumContractCertificateChains", 1)), emaids)


def signed_installation_data(contract_chain: Sequence[x509.Certificate], sealed: EncryptedContractKey,
                             ref_id: str = "id1") -> dict[str, Any]:
    """SignedInstallationData: the contract chain, ECDHCurve, DHPublicKey and the sealed key."""
    if len(contract_chain) < 2:
        raise ValueError("ContractCertificateChain needs the sub-CA certificates (SubCertificates is mandatory)")
    return {"Id": ref_id, "ContractCertificateChain": chain_element(contract_chain), "ECDHCurve": sealed.curve.value,
            "DHPublicKey": _b64(sealed.dh_public_key), sealed.element: _b64(sealed.encrypted)}


def installation_response(session_id: str, cps_chain: Sequence[x509.Certificate], cps_key: PrivateKey,
                          data: dict[str, Any], *, remaining: int = 0, processing: str = "Finished",
                          response_code: str = "OK", timestamp: int | None = None) -> dict[str, Any]:
    """A CertificateInstallationRes document whose SignedInstallationData the CPS leaf signs."""
    signature = xmldsig20.sign(NS, [(data["Id"], "SignedInstallationData", data)], cps_key)
    return {"CertificateInstallationRes": {
        "Header": header(session_id, timestamp, signature), "ResponseCode": response_code,
        "EVSEProcessing": processing, "CPSCertificateChain": chain_element(cps_chain), "SignedInstallationData": data,
        "RemainingContractCertificateChains": remaining}}


@dataclass(frozen=True)
class InstalledContract20:
    """What the EV keeps from a CertificateInstallationRes: the eMAID, the chain (DER, leaf first) and the key."""

    emaid: str
    chain: list[bytes]
    key: PrivateKey
    remaining: int


def _sealed_key(data: Mapping[str, Any]) -> EncryptedContractKey:
    """The ECDHCurve, DHPublicKey and the one sealed-key element of SignedInstallationData, consistently named."""
    try:
        curve = EcdhCurve(str(data.get("ECDHCurve")))
        element = "SECP521_EncryptedPrivateKey" if curve is EcdhCurve.SECP521 else "X448_EncryptedPrivateKey"
        if element not in data:
            present = "TPM_EncryptedPrivateKey" if "TPM_EncryptedPrivateKey" in data else "another element"
            raise ValueError(f"ECDHCurve {curve.value} but the key is in {present} (TPM import is not supported)")
        return EncryptedContractKey(curve, base64.b64decode(data["DHPublicKey"], validate=True),
                                    base64.b64decode(data[element], validate=True))
    except (KeyError, TypeError, ValueError) as exc:
        raise Pnc20Error("FAILED", f"SignedInstallationData: {exc}") from None


def accept_installation(doc: Mapping[str, Any], oem_cert: x509.Certificate, oem_key: PrivateKey,
                        oem_alt_key: x448.X448PrivateKey | None, v2g_roots: Sequence[x509.Certificate], *,
                        at: dt.datetime | None = None,
                        allowed: tuple[xmldsig20.Suite, ...] = xmldsig20.ISO20_SUITES) -> InstalledContract20:
    """The EV's checks of a CertificateInstallationRes: ResponseCode, the CPS chain to a V2G root with -20 algorithms,
    the CPS signature over SignedInstallationData, the decrypted key matching the contract certificate. Pnc20Error
    otherwise (the EV then refuses the response)."""
    try:
        res = doc["CertificateInstallationRes"]
        data = res["SignedInstallationData"]
    except (KeyError, TypeError):
        raise Pnc20Error("FAILED", "not a CertificateInstallationRes") from None
    code = str(res.get("ResponseCode", ""))
    if not code.startswith("OK"):
        raise Pnc20Error(code, f"the SECC answered {code}")
    cps = read_chain(res.get("CPSCertificateChain"), "CPSCertificateChain")
    try:
        verify_chain(cps[0], cps[1:], list(v2g_roots), purpose=Purpose.CPS, at=at, algorithms=ISO20_ALGORITHMS)
    except pki_errors.PkiError as exc:
        raise Pnc20Error(exc.iso20_code, f"CPS certificate chain: {exc}") from None
    _signed_by((str(data.get("Id", "")), "SignedInstallationData", data), (res.get("Header") or {}).get("Signature"),
               cps[0].public_key(), allowed, "FAILED_SignatureError")
    contract = read_chain(data.get("ContractCertificateChain"), "ContractCertificateChain")
    sealed = _sealed_key(data)
    secret = oem_key if sealed.curve is EcdhCurve.SECP521 else oem_alt_key
    if secret is None:
        raise Pnc20Error("FAILED", "ECDHCurve X448 but the EV holds no X448 key for its OEM provisioning certificate")
    try:
        key = decrypt_contract_key(sealed, secret, contract[0], pcid_of(oem_cert))
    except ContractKeyError as exc:
        raise Pnc20Error(exc.code, str(exc)) from None
    cn = contract[0].subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return InstalledContract20(str(cn[0].value) if cn else "", [c.public_bytes(DER) for c in contract], key,
                               int(res.get("RemainingContractCertificateChains", 0)))


def answer_installation(service: ContractService20, doc: Mapping[str, Any], *, at: dt.datetime | None = None,
                        timestamp: int | None = None) -> tuple[dict[str, Any], str]:
    """(the signed CertificateInstallationRes document, the new eMAID) for a CertificateInstallationReq document: the
    request's signature here, the OEM chain and the contract in `service` (pki.contracts20), the key sealed for the
    EV, SignedInstallationData signed by the CPS leaf. Pnc20Error with the -20 ResponseCode when it must be refused."""
    req = check_installation_request(doc)
    try:
        contract = service.for_vehicle(req.oem_chain, at=at)
    except pki_errors.PkiError as exc:
        raise Pnc20Error(exc.iso20_code, f"OEM provisioning certificate: {exc}") from None
    try:
        sealed = encrypt_contract_key(req.oem_chain[0], contract.key, contract.cert, req.pcid)
    except ContractKeyError as exc:
        raise Pnc20Error(exc.code, str(exc)) from None
    data = signed_installation_data(contract.chain, sealed)
    res = installation_response(req.session_id, service.issuer.cps_chain, service.issuer.cps_key, data,  # type: ignore[arg-type]
                                timestamp=timestamp)
    return res, contract.emaid


def load_oem_alt_key(folder: Path | str, store: str = "ev") -> x448.X448PrivateKey | None:
    """The X448 key of the EV's Ed448 OEM provisioning certificate from a -20 PKI folder's role store (None if the PKI
    is a secp521r1 one)."""
    path = Path(folder) / "stores" / store / "oem_prov.x448.key.pem"
    return load_x448_key(path) if path.exists() else None
