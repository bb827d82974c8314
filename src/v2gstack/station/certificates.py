"""The station's certificate stores (OCPP 2.0.1 blocks A and M): installed roots, its own key pairs and signed chains.

Roots are installed by the CSMS (InstallCertificate), listed by their CertificateHashData (GetInstalledCertificateIds)
and removed (DeleteCertificate). The station makes its own keys and CSRs (SignCertificate) and takes the chain the
CSMS sends back (CertificateSigned) only if it belongs to the key it asked for. Everything persists as PEM in the
state folder (keys with owner-only permissions).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ..pki.ocsp_data import issuer_key_bytes

ROOT_TYPES = ("V2GRootCertificate", "MORootCertificate", "CSMSRootCertificate", "ManufacturerRootCertificate")
SIGNED_TYPES = ("ChargingStationCertificate", "V2GCertificate")


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

    def install(self, cert_type: str, pem: str) -> str:
        """InstallCertificate: Accepted, Rejected (not a CA certificate) or Failed (not a certificate)."""
        try:
            cert = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            return "Failed"
        try:
            if not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                return "Rejected"
        except x509.ExtensionNotFound:
            return "Rejected"
        known = self.roots.setdefault(cert_type, [])
        if cert not in known:
            known.append(cert)
        self._save()
        return "Accepted"

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
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        roots = {t: [c.public_bytes(serialization.Encoding.PEM).decode() for c in certs]
                 for t, certs in self.roots.items()}
        (self.folder / "roots.json").write_text(json.dumps(roots, indent=1))
        for cert_type, (key, chain) in self.own.items():
            key_path = self.folder / f"{cert_type}.key.pem"
            key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
            os.chmod(key_path, 0o600)
            (self.folder / f"{cert_type}.chain.pem").write_bytes(
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
