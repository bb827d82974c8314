"""The station's certificate stores (OCPP 2.0.1 blocks A and M): installed roots, its own key pairs and signed chains.

Roots are installed by the CSMS (InstallCertificate, M05), listed by their CertificateHashData
(GetInstalledCertificateIds) and removed (DeleteCertificate). Only a root goes in: one parsable, self-signed CA
certificate that is valid now; anything else is Rejected (InstallCertificateStatusEnumType: "invalid and/or incorrect",
or more certificates than allowed), and Failed means a valid root that could not be stored. The station makes its
own keys and CSRs (SignCertificate) and takes the chain the CSMS sends back (CertificateSigned) only if it belongs to
the key it asked for. Everything persists as PEM in the state folder, each file written atomically and owner-only
from its creation on (files.py). `Certificates` is the service around the store: SignCertificate and
GetCertificateStatus to the CSMS, and the handlers of the CSMS's certificate messages.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..pki.ocsp_data import issuer_key_bytes
from .context import StationContext
from .files import private_folder, write_private
from .link import Link

log = logging.getLogger(__name__)

ROOT_TYPES = ("V2GRootCertificate", "MORootCertificate", "CSMSRootCertificate", "ManufacturerRootCertificate")
SIGNED_TYPES = ("ChargingStationCertificate", "V2GCertificate")
MAX_ROOTS = 16
"""Installed roots per certificate type: more are Rejected (bounded memory and disk for what the CSMS sends)."""


@dataclass(frozen=True)
class InstallRefused(Exception):
    """An InstallCertificate the station does not carry out: its status (Rejected or Failed) and the statusInfo."""

    status: str
    reason: str
    info: str

    def answer(self) -> dict[str, Any]:
        """The InstallCertificateResponse payload."""
        return {"status": self.status, "statusInfo": {"reasonCode": self.reason, "additionalInfo": self.info[:512]}}


def check_root(pem: str, at: dt.datetime | None = None) -> x509.Certificate:
    """The one certificate of `pem` if it can be a trust anchor now: a parsable, self-signed CA certificate that may
    sign certificates and is within its validity period; InstallRefused (Rejected, InvalidCertificate) otherwise."""
    def refuse(info: str) -> InstallRefused:
        return InstallRefused("Rejected", "InvalidCertificate", info)

    try:
        certs = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise refuse("not a PEM X.509 certificate") from None
    if len(certs) != 1:
        raise refuse(f"one root certificate expected, got {len(certs)}")
    cert = certs[0]
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        raise refuse("not a CA certificate (no basicConstraints)") from None
    except ValueError as e:  # a malformed extension
        raise refuse(f"unreadable extensions: {e}") from None
    if not constraints.ca:
        raise refuse("not a CA certificate (basicConstraints cA is false)")
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_cert_sign:
            raise refuse("the key usage lacks keyCertSign")
    except x509.ExtensionNotFound:
        pass
    if cert.issuer != cert.subject:
        raise refuse(f"not a root: {cert.subject.rfc4514_string()} is issued by {cert.issuer.rfc4514_string()}")
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError):
        raise refuse("not a root: its signature does not verify with its own key") from None
    now = at or dt.datetime.now(dt.UTC)
    if now < cert.not_valid_before_utc:
        raise refuse(f"not valid before {cert.not_valid_before_utc.isoformat()}")
    if now > cert.not_valid_after_utc:
        raise refuse(f"expired at {cert.not_valid_after_utc.isoformat()}")
    return cert


def hash_data(cert: x509.Certificate, issuer: x509.Certificate | None = None) -> dict[str, str]:
    """CertificateHashDataType (SHA256) of a certificate; a root is its own issuer."""
    issuer = issuer or cert
    return {"hashAlgorithm": "SHA256",
            "issuerNameHash": hashlib.sha256(issuer.subject.public_bytes()).hexdigest(),
            "issuerKeyHash": hashlib.sha256(issuer_key_bytes(issuer)).hexdigest(),
            "serialNumber": format(cert.serial_number, "x")}


class CertificateStore:
    """Installed roots and the station's own certificates, in memory and (with a folder) on disk."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.roots: dict[str, list[x509.Certificate]] = {t: [] for t in ROOT_TYPES}
        self.pending_keys: dict[str, ec.EllipticCurvePrivateKey] = {}  # certificate type -> key of the open CSR
        self.own: dict[str, tuple[ec.EllipticCurvePrivateKey, list[x509.Certificate]]] = {}
        self._load()

    # ----- roots -----

    def install(self, cert_type: str, pem: str, at: dt.datetime | None = None) -> None:
        """InstallCertificate of a root (check_root); InstallRefused says why not. Installing one already there is
        Accepted again; a root that cannot be stored is Failed and leaves the store as it was."""
        cert = check_root(pem, at)
        known = self.roots.setdefault(cert_type, [])
        if cert in known:
            return
        if len(known) >= MAX_ROOTS:
            raise InstallRefused("Rejected", "TooManyElements", f"at most {MAX_ROOTS} {cert_type} are installed")
        known.append(cert)
        try:
            self._save()
        except OSError as e:
            known.remove(cert)
            raise InstallRefused("Failed", "InternalError", f"the certificate could not be stored: {e.strerror}"
                                 ) from None

    def installed(self, types: list[str] | None = None) -> list[dict[str, Any]]:
        """certificateHashDataChain entries of the installed roots (optionally of some types)."""
        return [{"certificateType": t, "certificateHashData": hash_data(c)}
                for t, certs in self.roots.items() if not types or t in types for c in certs]

    def delete(self, data: dict[str, str]) -> str:
        """DeleteCertificate by CertificateHashData: Accepted or NotFound."""
        for certs in self.roots.values():
            for cert in certs:
                if {k: v.lower() for k, v in hash_data(cert).items() if k != "hashAlgorithm"} == {
                        k: str(v).lower() for k, v in data.items() if k in ("issuerNameHash", "issuerKeyHash",
                                                                          "serialNumber")}:
                    certs.remove(cert)
                    self._save()
                    return "Accepted"
        return "NotFound"

    # ----- own certificates -----

    def new_csr(self, cert_type: str, common_name: str, organization: str) -> str:
        """A fresh P-256 key and its PEM CSR for SignCertificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)]))
               .sign(key, hashes.SHA256()))
        self.pending_keys[cert_type] = key
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def signed(self, cert_type: str, chain_pem: str) -> str:
        """CertificateSigned: Accepted when the chain's leaf carries the key of our open request, else Rejected."""
        key = self.pending_keys.get(cert_type)
        try:
            chain = x509.load_pem_x509_certificates(chain_pem.encode())
        except ValueError:
            return "Rejected"
        leaf_key = chain[0].public_key() if chain else None
        if key is None or not isinstance(leaf_key, ec.EllipticCurvePublicKey) or \
                leaf_key.public_numbers() != key.public_key().public_numbers():
            return "Rejected"
        self.own[cert_type] = (key, chain)
        del self.pending_keys[cert_type]
        self._save()
        return "Accepted"

    # ----- persistence -----

    def _save(self) -> None:
        """Write the roots, keys and chains (each file atomically and owner-only: files.write_private)."""
        if self.folder is None:
            return
        private_folder(self.folder)
        roots = {t: [c.public_bytes(serialization.Encoding.PEM).decode() for c in certs]
                 for t, certs in self.roots.items()}
        write_private(self.folder / "roots.json", json.dumps(roots, indent=1).encode())
        for cert_type, (key, chain) in self.own.items():
            write_private(self.folder / f"{cert_type}.key.pem", key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
            write_private(self.folder / f"{cert_type}.chain.pem",
                          b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))

    def _load(self) -> None:
        if self.folder is None:
            return
        roots = self.folder / "roots.json"
        if roots.exists():
            for t, pems in json.loads(roots.read_text()).items():
                self.roots[t] = [x509.load_pem_x509_certificate(p.encode()) for p in pems]
        for cert_type in SIGNED_TYPES:
            key_path, chain_path = self.folder / f"{cert_type}.key.pem", self.folder / f"{cert_type}.chain.pem"
            if key_path.exists() and chain_path.exists():
                key = serialization.load_pem_private_key(key_path.read_bytes(), None)
                if isinstance(key, ec.EllipticCurvePrivateKey):
                    self.own[cert_type] = (key, x509.load_pem_x509_certificates(chain_path.read_bytes()))


class Certificates:
    """The station's certificate service: the store, SignCertificate and GetCertificateStatus to the CSMS, and the
    CSMS-initiated messages of blocks A and M."""

    def __init__(self, ctx: StationContext, link: Link) -> None:
        self.ctx = ctx
        self.link = link
        state = ctx.config.state_dir
        self.store = CertificateStore(None if state is None else Path(state) / "certificates")

    def roots(self, cert_type: str) -> list[x509.Certificate]:
        """The installed roots of one type (e.g. MORootCertificate)."""
        return list(self.store.roots.get(cert_type) or [])

    async def request(self, cert_type: str = "V2GCertificate") -> str | None:
        """SignCertificate with a fresh key (A02/A03, M04 for the SECC certificate); the CSMS answers with
        CertificateSigned later. Returns the CSMS's status (None when it could not be asked)."""
        model = self.ctx.model
        cn = self.ctx.station_id if cert_type == "ChargingStationCertificate" else model.value(
            "ISO15118Ctrlr", "SeccId") or self.ctx.station_id
        csr = self.store.new_csr(cert_type, cn, self.ctx.config.vendor)
        answer = await self.link.try_call("SignCertificate", {"csr": csr, "certificateType": cert_type})
        return None if answer is None else answer["status"]

    async def status(self, ocsp_request: dict[str, str]) -> dict[str, Any] | None:
        """GetCertificateStatus (M06): the CSMS fetches the OCSP response for one of our chain's certificates."""
        return await self.link.try_call("GetCertificateStatus", {"ocspRequestData": ocsp_request})

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        """InstallCertificate, GetInstalledCertificateIds, DeleteCertificate, CertificateSigned."""
        return {"InstallCertificate": self._install, "GetInstalledCertificateIds": self._installed,
                "DeleteCertificate": lambda p: {"status": self.store.delete(p["certificateHashData"])},
                "CertificateSigned": lambda p: {"status": self.store.signed(
                    p.get("certificateType", "ChargingStationCertificate"), p["certificateChain"])}}

    def _install(self, p: dict[str, Any]) -> dict[str, Any]:
        """InstallCertificate (M05): a root into the station's store; Rejected/Failed with the reason why not."""
        try:
            self.store.install(p["certificateType"], p["certificate"])
        except InstallRefused as e:
            log.info("%s: InstallCertificate %s: %s", self.ctx.station_id, e.status, e.info)
            return e.answer()
        return {"status": "Accepted"}

    def _installed(self, p: dict[str, Any]) -> dict[str, Any]:
        """GetInstalledCertificateIds (M03)."""
        found = self.store.installed(p.get("certificateType"))
        return {"status": "Accepted", "certificateHashDataChain": found} if found else {"status": "NotFound"}
