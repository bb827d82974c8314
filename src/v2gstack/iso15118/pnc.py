"""ISO 15118-2 certificate installation: the contract key's protection and the signed messages around it.

The secondary actor (our CSMS's issuing service, or the simulated EVSE) makes a contract certificate for an EV that
holds only its OEM provisioning certificate, encrypts the contract's private key for that EV (ECDH on P-256 between
a fresh ephemeral key and the OEM provisioning key; ConcatKDF with SHA-256 and OtherInfo 01 55 56 [V2G2-818]; 16-byte
AES-128-CBC key; IV || ciphertext) and signs the response with the CPS leaf. The EV checks the CPS chain and the
signature, decrypts the key and checks it matches the contract certificate.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash

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


@dataclass(frozen=True)
class Issuer:
    """What signs a CertificateInstallationRes: the CPS leaf key and its chain (leaf first, no root)."""

    cps_key: ec.EllipticCurvePrivateKey
    cps_chain: list[x509.Certificate]


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
    from ..pki import errors as pki_errors
    from ..pki.verify import Purpose, verify_chain

    cps = read_chain(body["SAProvisioningCertificateChain"])
    if v2g_roots:
        try:
            verify_chain(cps[0], cps[1:], v2g_roots, purpose=Purpose.CPS)
        except pki_errors.PkiError as e:
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


EmaidPolicy = Callable[[x509.Certificate], str]


def default_emaid(oem_cert: x509.Certificate) -> str:
    """An eMAID (14 characters: country, provider, instance) derived from the OEM certificate's PCID."""
    import hashlib

    cn = oem_cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    pcid = str(cn[0].value) if cn else oem_cert.serial_number.to_bytes(20, "big").hex()
    return "DEV2G" + hashlib.sha256(pcid.encode()).hexdigest()[:9].upper()


@dataclass
class ContractService:
    """The secondary actor of certificate installation: checks the EV's request and OEM chain, issues a contract
    from the MO Sub-CA 2, and answers with the key encrypted for the EV and the CPS signature."""

    mo_ca: Any  # pki.issue.Issued: MO Sub-CA 2 with its key
    mo_chain: list[x509.Certificate]  # above the MO Sub-CA 2 (Sub-CA 1), no root
    issuer: Issuer
    oem_roots: list[x509.Certificate]
    oem_intermediates: list[x509.Certificate]
    emaid_for: EmaidPolicy = default_emaid
    ocsp_url: str | None = None

    @classmethod
    def from_pki_dir(cls, folder: Any, ocsp_url: str | None = None) -> ContractService:
        """The MO, CPS and OEM CAs of a `v2gstack pki create` folder."""
        from pathlib import Path

        from ..pki.issue import Issued
        from ..pki.store import load_certs, load_key

        d = Path(folder)

        def cert(name: str) -> x509.Certificate:
            return load_certs(d / "certs" / f"{name}.pem")[0]

        def issued(name: str) -> Issued:
            return Issued(cert(name), load_key(d / "keys" / f"{name}.key.pem"))

        cps = issued("cps")
        return cls(issued("mo_sub_ca2"), [cert("mo_sub_ca1")],
                   Issuer(cps.key, [cps.cert, cert("cps_sub_ca2"), cert("cps_sub_ca1")]),
                   [cert("oem_root")], [cert("oem_sub_ca2"), cert("oem_sub_ca1")], ocsp_url=ocsp_url)

    def update(self, request: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """(the signed CertificateUpdateRes document, the eMAID) for a CertificateUpdateReq: the current contract must
        chain to our MO CA and be signed for; the new contract (same eMAID) is encrypted for the current one's key."""
        from ..pki import errors as pki_errors
        from ..pki.issue import issue, subject_name
        from ..pki.profiles import PROFILES, Kind
        from ..pki.verify import Purpose, verify_chain

        message = request["V2G_Message"]
        body = message["Body"]["CertificateUpdateReq"]
        current = check_update_request(body, message["Header"].get("Signature"))
        try:
            verify_chain(current[0], current[1:], [self.mo_ca.cert], purpose=Purpose.CONTRACT)  # issued by our MO CA
        except pki_errors.PkiError as e:
            raise InstallationError(e.iso_code, f"current contract: {e}") from None
        cn = current[0].subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
        emaid = str(cn[0].value).replace("-", "") if cn else body["eMAID"]
        if emaid.upper() != str(body["eMAID"]).replace("-", "").upper():
            raise InstallationError("FAILED_CertChainError", "eMAID does not name the current contract")
        org = self.mo_ca.cert.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATION_NAME)
        contract = issue(PROFILES[Kind.CONTRACT], subject_name(emaid, str(org[0].value) if org else "MO", "DE", "MO"),
                         issuer=self.mo_ca, ocsp_url=self.ocsp_url)
        res, signature = installation_response(current[0], [contract.cert, self.mo_ca.cert, *self.mo_chain],
                                               contract.key, emaid, self.issuer)
        doc = {"V2G_Message": {"Header": {"SessionID": message["Header"]["SessionID"], "Signature": signature},
                               "Body": {"CertificateUpdateRes": res}}}
        return doc, emaid

    def install(self, request: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """(the signed CertificateInstallationRes document, the new eMAID) for a CertificateInstallationReq
        document; InstallationError with the ISO ResponseCode when the request must be refused."""
        from ..pki import errors as pki_errors
        from ..pki.issue import issue, subject_name
        from ..pki.profiles import PROFILES, Kind
        from ..pki.verify import Purpose, verify_chain

        message = request["V2G_Message"]
        body = message["Body"]["CertificateInstallationReq"]
        oem = check_installation_request(body, message["Header"].get("Signature"))
        if self.oem_roots:
            try:
                verify_chain(oem, self.oem_intermediates, self.oem_roots, purpose=Purpose.OEM)
            except pki_errors.PkiError as e:
                raise InstallationError(e.iso_code, f"OEM provisioning certificate: {e}") from None
        emaid = self.emaid_for(oem)
        org = self.mo_ca.cert.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATION_NAME)
        contract = issue(PROFILES[Kind.CONTRACT], subject_name(emaid, str(org[0].value) if org else "MO", "DE", "MO"),
                         issuer=self.mo_ca, ocsp_url=self.ocsp_url)
        res, signature = installation_response(oem, [contract.cert, self.mo_ca.cert, *self.mo_chain], contract.key,
                                               emaid, self.issuer)
        doc = {"V2G_Message": {"Header": {"SessionID": message["Header"]["SessionID"], "Signature": signature},
                               "Body": {"CertificateInstallationRes": res}}}
        return doc, emaid
