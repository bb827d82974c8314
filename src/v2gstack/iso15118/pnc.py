"""ISO 15118-2 certificate installation: the contract key's protection and the signed messages around it.

The secondary actor (our CSMS, or the simulated EVSE) answers a CertificateInstallationReq/UpdateReq with
`answer_installation`/`answer_update`: this module checks the request's signature, a pki ContractService
(pki/contracts.py) checks the certificates and issues the contract, and this module encrypts the contract's private
key for the EV (ECDH on P-256 between a fresh ephemeral key and the OEM provisioning key; ConcatKDF with SHA-256 and
OtherInfo 01 55 56 [V2G2-818]; 16-byte AES-128-CBC key; IV || ciphertext) and signs the response with the CPS leaf.
The EV checks the CPS chain and the signature, decrypts the key and checks it matches the contract certificate.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.x509.oid import NameOID

from ..pki.contracts import ContractService, IssuedContract, Issuer
from ..pki.errors import PkiError
from ..pki.verify import Purpose, verify_chain
from . import xmldsig

NS = "iso2"
OTHER_INFO = b"\x01\x55\x56"  # AlgorithmID 01, PartyUInfo 55, PartyVInfo 56
SIGNED_RES_ELEMENTS = ("ContractSignatureCertChain", "ContractSignatureEncryptedPrivateKey", "DHpublickey", "eMAID")
DER = serialization.Encoding.DER


class InstallationError(ValueError):
    """A certificate installation that cannot be completed; `code` is the ISO ResponseCode to use."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _symmetric_key(private: ec.EllipticCurvePrivateKey, public: ec.EllipticCurvePublicKey) -> bytes:
    shared = private.exchange(ec.ECDH(), public)
    return ConcatKDFHash(algorithm=hashes.SHA256(), length=16, otherinfo=OTHER_INFO).derive(shared)


def encrypt_contract_key(oem_cert: x509.Certificate, contract_key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    """(DHpublickey: 65-byte uncompressed point, ContractSignatureEncryptedPrivateKey: IV || AES-128-CBC(key))."""
    oem_public = oem_cert.public_key()
    if not isinstance(oem_public, ec.EllipticCurvePublicKey):
        raise InstallationError("FAILED_CertChainError", "the OEM provisioning key is not an EC key")
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    key = _symmetric_key(ephemeral, oem_public)
    iv = os.urandom(16)
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    secret = contract_key.private_numbers().private_value.to_bytes(32, "big")
    dh = ephemeral.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return dh, iv + encryptor.update(secret) + encryptor.finalize()


def decrypt_contract_key(encrypted: bytes, oem_key: ec.EllipticCurvePrivateKey,
                         dh_public: bytes) -> ec.EllipticCurvePrivateKey:
    """The contract private key from ContractSignatureEncryptedPrivateKey and DHpublickey."""
    if len(encrypted) != 48 or len(dh_public) != 65:
        raise InstallationError("FAILED", "encrypted key or DH public key of the wrong length")
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), dh_public)
    decryptor = Cipher(algorithms.AES(_symmetric_key(oem_key, peer)), modes.CBC(encrypted[:16])).decryptor()
    value = int.from_bytes(decryptor.update(encrypted[16:]) + decryptor.finalize(), "big")
    return ec.derive_private_key(value, ec.SECP256R1())


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def chain_element(certs: list[x509.Certificate], ref_id: str | None = None) -> dict[str, Any]:
    """CertificateChainType: leaf, then SubCertificates."""
    out: dict[str, Any] = {}
    if ref_id is not None:
        out["Id"] = ref_id
    out["Certificate"] = _b64(certs[0].public_bytes(DER))
    if len(certs) > 1:
        out["SubCertificates"] = {"Certificate": [_b64(c.public_bytes(DER)) for c in certs[1:]]}
    return out


def read_chain(element: dict[str, Any]) -> list[x509.Certificate]:
    """The certificates of a CertificateChainType, leaf first."""
    subs = (element.get("SubCertificates") or {}).get("Certificate", [])
    return [x509.load_der_x509_certificate(base64.b64decode(c)) for c in [element["Certificate"], *subs]]


def installation_request(oem_cert: x509.Certificate, oem_key: ec.EllipticCurvePrivateKey,
                         roots: list[x509.Certificate]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(CertificateInstallationReq body, header Signature) signed with the OEM provisioning key."""
    body = {"Id": "ID1", "OEMProvisioningCert": _b64(oem_cert.public_bytes(DER)),
            "ListOfRootCertificateIDs": {"RootCertificateID": [
                {"X509IssuerName": r.issuer.rfc4514_string(), "X509SerialNumber": r.serial_number}
                for r in roots[:20]] or [{"X509IssuerName": "CN=none", "X509SerialNumber": 0}]}}
    return body, xmldsig.sign(NS, [("ID1", "CertificateInstallationReq", body)], oem_key)


def check_installation_request(body: dict[str, Any], signature: dict[str, Any] | None) -> x509.Certificate:
    """The OEM provisioning certificate of a request whose signature verifies with it (InstallationError else)."""
    try:
        oem = x509.load_der_x509_certificate(base64.b64decode(body["OEMProvisioningCert"]))
    except (KeyError, ValueError):
        raise InstallationError("FAILED_CertChainError", "OEMProvisioningCert is not a certificate") from None
    try:
        xmldsig.verify(NS, signature, {body.get("Id", ""): ("CertificateInstallationReq", body)},
                       oem.public_key())  # type: ignore[arg-type]
    except xmldsig.SignatureError as e:
        raise InstallationError("FAILED_SignatureError", f"CertificateInstallationReq: {e}") from None
    return oem


def update_request(emaid: str, chain: list[bytes], key: ec.EllipticCurvePrivateKey,
                   roots: list[x509.Certificate]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(CertificateUpdateReq body, header Signature) signed with the current contract key."""
    certs = [x509.load_der_x509_certificate(c) for c in chain]
    body = {"Id": "ID1", "ContractSignatureCertChain": chain_element(certs), "eMAID": emaid,
            "ListOfRootCertificateIDs": {"RootCertificateID": [
                {"X509IssuerName": r.issuer.rfc4514_string(), "X509SerialNumber": r.serial_number}
                for r in roots[:20]] or [{"X509IssuerName": "CN=none", "X509SerialNumber": 0}]}}
    return body, xmldsig.sign(NS, [("ID1", "CertificateUpdateReq", body)], key)


def check_update_request(body: dict[str, Any], signature: dict[str, Any] | None) -> list[x509.Certificate]:
    """The current contract chain of a CertificateUpdateReq whose signature verifies with the contract's key."""
    try:
        chain = read_chain(body["ContractSignatureCertChain"])
    except (KeyError, ValueError):
        raise InstallationError("FAILED_CertChainError", "ContractSignatureCertChain is not a chain") from None
    try:
        xmldsig.verify(NS, signature, {body.get("Id", ""): ("CertificateUpdateReq", body)},
                       chain[0].public_key())  # type: ignore[arg-type]
    except xmldsig.SignatureError as e:
        raise InstallationError("FAILED_SignatureError", f"CertificateUpdateReq: {e}") from None
    return chain


def installation_response(oem_cert: x509.Certificate, contract_chain: list[x509.Certificate],
                          contract_key: ec.EllipticCurvePrivateKey, emaid: str,
                          issuer: Issuer) -> tuple[dict[str, Any], dict[str, Any]]:
    """(CertificateInstallationRes body, header Signature over its four signed elements by the CPS leaf)."""
    dh, encrypted = encrypt_contract_key(oem_cert, contract_key)
    body: dict[str, Any] = {
        "ResponseCode": "OK",
        "SAProvisioningCertificateChain": chain_element(issuer.cps_chain),
        "ContractSignatureCertChain": chain_element(contract_chain, "id1"),
        "ContractSignatureEncryptedPrivateKey": {"Id": "id2", "value": _b64(encrypted)},
        "DHpublickey": {"Id": "id3", "value": _b64(dh)},
        "eMAID": {"Id": "id4", "value": emaid},
    }
    signed = [(body[name]["Id"], name, body[name]) for name in SIGNED_RES_ELEMENTS]
    return body, xmldsig.sign(NS, signed, issuer.cps_key)


@dataclass(frozen=True)
class InstalledContract:
    """What the EV takes from a CertificateInstallationRes."""

    emaid: str
    chain: list[bytes]  # DER, leaf first
    key: ec.EllipticCurvePrivateKey


def accept_installation(body: dict[str, Any], signature: dict[str, Any] | None, oem_key: ec.EllipticCurvePrivateKey,
                        v2g_roots: list[x509.Certificate]) -> InstalledContract:
    """The EV's side: the CPS chain to a V2G root, the signature over the four elements, the decrypted key matching
    the contract certificate. InstallationError with the reason otherwise."""
    cps = read_chain(body["SAProvisioningCertificateChain"])
    if v2g_roots:
        try:
            verify_chain(cps[0], cps[1:], v2g_roots, purpose=Purpose.CPS)
        except PkiError as e:
            raise InstallationError(e.iso_code, f"CPS chain: {e}") from None
    try:
        xmldsig.verify(NS, signature, {body[n]["Id"]: (n, body[n]) for n in SIGNED_RES_ELEMENTS},
                       cps[0].public_key())  # type: ignore[arg-type]
    except (xmldsig.SignatureError, KeyError) as e:
        raise InstallationError("FAILED_SignatureError", f"CertificateInstallationRes: {e}") from None
    contract = read_chain(body["ContractSignatureCertChain"])
    key = decrypt_contract_key(base64.b64decode(body["ContractSignatureEncryptedPrivateKey"]["value"]), oem_key,
                               base64.b64decode(body["DHpublickey"]["value"]))
    if key.public_key().public_numbers() != contract[0].public_key().public_numbers():  # type: ignore[union-attr]
        raise InstallationError("FAILED", "the decrypted key does not belong to the contract certificate")
    return InstalledContract(body["eMAID"]["value"], [c.public_bytes(DER) for c in contract], key)


def answer_installation(service: ContractService, request: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(the signed CertificateInstallationRes document, the new eMAID) for a CertificateInstallationReq document:
    its signature verifies with the OEM provisioning certificate, `service` checks that certificate and issues the
    contract. InstallationError with the ISO ResponseCode when the request must be refused."""
    message = request["V2G_Message"]
    body = message["Body"]["CertificateInstallationReq"]
    oem = check_installation_request(body, message["Header"].get("Signature"))
    try:
        contract = service.for_vehicle(oem)
    except PkiError as e:
        raise InstallationError(e.iso_code, f"OEM provisioning certificate: {e}") from None
    return _response(message, "CertificateInstallationRes", oem, contract, service.issuer), contract.emaid


def answer_update(service: ContractService, request: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """(the signed CertificateUpdateRes document, the eMAID) for a CertificateUpdateReq document: signed with the
    current contract's key, which must chain to `service`'s MO CA; the new contract (same eMAID) is encrypted for the
    current contract's key."""
    message = request["V2G_Message"]
    body = message["Body"]["CertificateUpdateReq"]
    current = check_update_request(body, message["Header"].get("Signature"))
    try:
        contract = service.renewal(current, str(body["eMAID"]))
    except PkiError as e:
        raise InstallationError(e.iso_code, f"current contract: {e}") from None
    return _response(message, "CertificateUpdateRes", current[0], contract, service.issuer), contract.emaid


def _response(request: dict[str, Any], name: str, recipient: x509.Certificate, contract: IssuedContract,
              issuer: Issuer) -> dict[str, Any]:
    """The response document carrying `contract` (key encrypted for `recipient`'s key) under the request's
    SessionID, signed by the CPS."""
    res, signature = installation_response(recipient, contract.chain, contract.key, contract.emaid, issuer)
    return {"V2G_Message": {"Header": {"SessionID": request["Header"]["SessionID"], "Signature": signature},
                            "Body": {name: res}}}


def contract_precheck(emaid: str, chain: list[bytes]) -> str:
    """What the SECC checks itself in PaymentDetailsReq: certificates that parse, an EC P-256 contract key, the eMAID
    as the leaf's CN (ignoring '-' and case), and every certificate within its validity."""
    try:
        certs = [x509.load_der_x509_certificate(c) for c in chain]
    except ValueError:
        return "FAILED_CertChainError"
    leaf = certs[0]
    key = leaf.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        return "FAILED_CertChainError"
    cns = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or _norm(str(cns[0].value)) != _norm(emaid):
        return "FAILED_CertChainError"
    now = dt.datetime.now(dt.UTC)
    for cert in certs:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return "FAILED_CertificateExpired"
    return "OK"


def _norm(emaid: str) -> str:
    return emaid.replace("-", "").upper()
