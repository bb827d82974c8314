"""Plug & Charge at the station, through the StationPort only: the contract authorization decision tree
(ISO15118Ctrlr.PnCEnabled, the local check against installed MO roots, ContractValidationOffline,
CentralContractValidationAllowed, the CSMS's Authorize with the contract chain -> the ISO ResponseCode) and
certificate installation or update through the CSMS (Get15118EVCertificate)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ... import exi
from ...pki.errors import PkiError
from ...pki.ocsp_data import chain_hash_data
from ...pki.verify import Purpose, verify_chain
from ...trace.error_map import CERTIFICATE_TO_ISO
from ..ports import CallFailed, Offline, StationPort
from .tracing import SessionTrace

SCHEMA_VERSIONS = {"iso2": "urn:iso:15118:2:2013:MsgDef", "iso20": "urn:iso:std:iso:15118:-20:CommonMessages"}
"""Get15118EVCertificateRequest.iso15118SchemaVersion by the EV's protocol (the namespace of its request)."""
MAX_PEM = 5500
"""AuthorizeRequest.certificate's maxLength: a longer contract chain goes as OCSP request data only."""


@dataclass(frozen=True)
class ContractDecision:
    """The outcome of a contract authorization: the idTokenInfo status (or Offline), and the ISO ResponseCode when
    refused."""

    status: str
    iso_code: str | None = None

    @property
    def accepted(self) -> bool:
        """The EV may charge."""
        return self.status == "Accepted"


async def authorize_contract(station: StationPort, evse_id: int, emaid: str, chain: list[bytes],
                             trace: SessionTrace) -> ContractDecision:
    """Plug & Charge: the station's own check against installed MO roots, then (online) Authorize with the eMAID,
    the contract chain (PEM) and its OCSP request data; the CSMS's certificateStatus decides the ISO code
    (trace/error_map.py). Offline, a locally verified contract charges only with ContractValidationOffline."""
    settings = station.settings
    certs = [x509.load_der_x509_certificate(c) for c in chain]
    token = {"idToken": emaid, "type": "eMAID"}
    request: dict[str, Any] = {"idToken": token}
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs).decode()
    if len(pem) <= MAX_PEM:
        request["certificate"] = pem
    hash_data = chain_hash_data(certs)
    if hash_data:
        request["iso15118CertificateHashData"] = hash_data
    local = local_contract_check(station, certs)  # None: no installed MO root to check against
    if local is not None and local != "OK":
        trace.state("AuthorizationRefused", by="station", isoCode=local)
        return ContractDecision("Invalid", local)
    if not station.online:
        if local == "OK" and settings.bool("ISO15118Ctrlr", "ContractValidationOffline"):
            result = await station.authorize(evse_id, token, check=False)
            status = result.get("status", "Invalid")
            trace.state("Authorized", status=status, method="PlugAndChargeOffline")
            return ContractDecision(status, None if status == "Accepted" else "FAILED")
        trace.error("AuthorizationUnavailable", reason="the CSMS could not be asked (offline)")
        return ContractDecision("Offline", "FAILED")
    central = settings.bool("ISO15118Ctrlr", "CentralContractValidationAllowed")
    if local is None and not central:
        trace.state("AuthorizationRefused", by="station", reason="no MO root installed and central contract "
                    "validation not allowed", isoCode="FAILED_CertChainError")
        return ContractDecision("Invalid", "FAILED_CertChainError")
    if local == "OK" and not central:
        request.pop("certificate", None)  # validated here; the CSMS gets the OCSP request data only
    try:
        answer = await station.call("Authorize", request)
    except Offline as e:
        trace.error("AuthorizationUnavailable", reason=f"the CSMS could not be asked (offline: {e.description})")
        return ContractDecision("Offline", "FAILED")
    except CallFailed as e:  # refused, our own bug (logged as such), or an unusable answer
        trace.error("AuthorizationUnavailable", reason=f"no usable answer from the CSMS ({type(e).__name__}: "
                    f"{e.description})")
        return ContractDecision("Invalid", "FAILED")
    status = answer["idTokenInfo"]["status"]
    cert_status = answer.get("certificateStatus", "Accepted")
    if cert_status != "Accepted" or status != "Accepted":
        code = CERTIFICATE_TO_ISO.get(cert_status, "FAILED") if cert_status != "Accepted" else "FAILED"
        trace.state("AuthorizationRefused", status=status, certificateStatus=cert_status, isoCode=code)
        return ContractDecision(status if status != "Accepted" else cert_status, code)
    result = await station.authorize(evse_id, token, check=False, authorize_response=answer)
    status = result.get("status", "Invalid")
    trace.state("Authorized", status=status, method="PlugAndCharge")
    return ContractDecision(status, None if status == "Accepted" else "FAILED")


def local_contract_check(station: StationPort, certs: list[x509.Certificate]) -> str | None:
    """The ISO code of checking the contract chain against the MO roots installed in the station (InstallCertificate
    MORootCertificate): "OK" or a FAILED_* code; None when none is installed."""
    roots = station.installed_roots("MORootCertificate")
    if not roots:
        return None
    try:
        verify_chain(certs[0], certs[1:], roots, purpose=Purpose.CONTRACT)
    except PkiError as e:
        return e.iso_code
    return "OK"


async def install_certificate(station: StationPort, request: dict[str, Any], action: str,
                              trace: SessionTrace, *, protocol: str = "iso2") -> dict[str, Any] | str:
    """CertificateInstallationReq (action Install) or CertificateUpdateReq (Update): forwarded to the CSMS as
    Get15118EVCertificate (the EXI request as the EV sent it, base64; iso15118SchemaVersion the -2 MsgDef or, for
    `protocol` "iso20", the -20 CommonMessages namespace); its exiResponse, decoded, goes back to the EV; a refusal
    maps to a FAILED_* code."""
    res_name = "CertificateInstallationRes" if action == "Install" else "CertificateUpdateRes"
    trace.state("CertificateInstallation" if action == "Install" else "CertificateUpdate", via="Get15118EVCertificate")
    ns = "iso20" if protocol == "iso20" else "iso2"
    payload = {"iso15118SchemaVersion": SCHEMA_VERSIONS[ns], "action": action,
               "exiRequest": base64.b64encode(exi.encode(ns, request)).decode()}
    try:
        answer = await station.call("Get15118EVCertificate", payload)
    except CallFailed as e:
        trace.error("CertificateInstallationFailed",
                    reason=f"the CSMS could not be asked ({type(e).__name__}: {e.description})")
        return "FAILED_NoCertificateAvailable"
    try:
        doc = exi.decode(ns, base64.b64decode(answer["exiResponse"]))
        body = doc[res_name] if ns == "iso20" else doc["V2G_Message"]["Body"][res_name]
    except Exception as e:  # an unusable answer from the CSMS
        trace.error("CertificateInstallationFailed", reason=f"unusable exiResponse: {e}")
        return "FAILED"
    if answer["status"] != "Accepted" and not str(body.get("ResponseCode", "")).startswith("FAILED"):
        return "FAILED"
    if answer["status"] != "Accepted" and ns == "iso20":  # -20 answers a plain FAILED: the CSMS's reason gives the
        why = str((answer.get("statusInfo") or {}).get("additionalInfo", ""))  # failure its kind (error map)
        trace.state("CertificateRefused", code=body.get("ResponseCode"), reason=why)
        return why if why.startswith("FAILED_") else "FAILED_NoCertificateAvailable"
    trace.state("CertificateInstalled" if answer["status"] == "Accepted" else "CertificateRefused",
                code=body.get("ResponseCode"), eMAID=_emaid(body))
    return doc


def _emaid(body: dict[str, Any]) -> str | None:
    """The eMAID of a -2 CertificateInstallationRes (-20 names it only inside the contract certificate)."""
    emaid = body.get("eMAID")
    return emaid.get("value") if isinstance(emaid, dict) else None
