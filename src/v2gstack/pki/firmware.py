"""Signed firmware per the OCPP security whitepaper: a manufacturer root and the firmware signing certificate it
issues, the signature of a firmware file (ECDSA over SHA-256 of the file's bytes, DER, base64 as UpdateFirmware's
`signature` carries it), and the station's check of both (`check_signed_firmware`).

The check is sans-I/O: bytes and PEM in, the signer out or a FirmwareRefused saying which status applies
(InvalidCertificate: the signing certificate does not chain to an installed ManufacturerRootCertificate or is not
valid now; InvalidSignature: the signature is not the certificate's over these bytes).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import itertools
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from .issue import Issued, issue, subject_name
from .profiles import PROFILES, Kind
from .store import _write, cert_pem, key_pem

ROOT_FILE = "certs/manufacturer_root.pem"
SIGNING_CERT_FILE = "certs/firmware_signing.pem"
SIGNING_KEY_FILE = "keys/firmware_signing.key.pem"


@dataclass(frozen=True)
class FirmwareRefused(Exception):
    """Signed firmware the station must not install: `status` is InvalidCertificate or InvalidSignature."""

    status: str
    reason: str

    def __str__(self) -> str:
        return f"{self.status}: {self.reason}"


def create_firmware_pki(organization: str = "v2gstack Manufacturer", country: str = "DE",
                        valid_days: int | None = None) -> tuple[Issued, Issued]:
    """A manufacturer root (P-256) and the firmware signing certificate it issues."""
    root = issue(PROFILES[Kind.MANUFACTURER_ROOT], subject_name("Manufacturer Root CA", organization, country, None))
    signer = issue(PROFILES[Kind.FIRMWARE_SIGNING], subject_name("Firmware Signing", organization, country, None),
                   issuer=root, validity_days=valid_days)
    return root, signer


def write_firmware_pki(out: Path, root: Issued, signer: Issued) -> list[Path]:
    """Write the root, the signing certificate and its key (owner-only) under `out`."""
    return [_write(out / ROOT_FILE, cert_pem(root.cert)), _write(out / SIGNING_CERT_FILE, cert_pem(signer.cert)),
            _write(out / "keys/manufacturer_root.key.pem", key_pem(root.key, None), secret=True),
            _write(out / SIGNING_KEY_FILE, key_pem(signer.key, None), secret=True)]


def sign_firmware(data: bytes, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    """The base64 signature of a firmware file: ECDSA (or RSA PKCS#1 v1.5) over SHA-256 of its bytes."""
    if isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    else:
        raw = key.sign(data, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(raw).decode()


def sign_firmware_file(folder: Path, firmware: Path) -> str:
    """The signature of a file with the signing key of a folder `write_firmware_pki` made."""
    key = serialization.load_pem_private_key((folder / SIGNING_KEY_FILE).read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("the firmware signing key is neither ECDSA nor RSA")
    return sign_firmware(firmware.read_bytes(), key)


def check_signing_certificate(pem: str, roots: list[x509.Certificate],
                              at: dt.datetime | None = None) -> x509.Certificate:
    """The signer of `pem` (leaf first, then any sub-CAs) if it chains to one of `roots` and every certificate is
    valid now; FirmwareRefused(InvalidCertificate) otherwise."""
    def refuse(reason: str) -> FirmwareRefused:
        return FirmwareRefused("InvalidCertificate", reason)

    try:
        chain = x509.load_pem_x509_certificates(pem.encode())
    except ValueError:
        raise refuse("the signing certificate is not PEM X.509") from None
    if not roots:
        raise refuse("no ManufacturerRootCertificate is installed")
    now = at or dt.datetime.now(dt.UTC)
    for cert in chain:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise refuse(f"{cert.subject.rfc4514_string()} is not valid now")
    for cert, issuer in itertools.pairwise(chain):
        if not _issued_by(cert, issuer):
            raise refuse(f"{cert.subject.rfc4514_string()} is not issued by the next certificate of the chain")
    if not any(_issued_by(chain[-1], root) for root in roots):
        raise refuse(f"{chain[-1].issuer.rfc4514_string()} is not an installed ManufacturerRootCertificate")
    return chain[0]


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """`issuer`'s key signed `cert`."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def check_signature(data: bytes, signature_b64: str, signer: x509.Certificate) -> None:
    """FirmwareRefused(InvalidSignature) unless `signature_b64` is the signer's signature over `data`."""
    try:
        raw = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise FirmwareRefused("InvalidSignature", "the signature is not base64") from None
    key = signer.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(raw, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(raw, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise FirmwareRefused("InvalidSignature", "the signing key is neither ECDSA nor RSA")
    except InvalidSignature:
        raise FirmwareRefused("InvalidSignature", "the signature does not verify over the firmware") from None


def check_signed_firmware(data: bytes, signature_b64: str, signing_pem: str, roots: list[x509.Certificate],
                          at: dt.datetime | None = None) -> x509.Certificate:
    """The signer when the firmware's certificate and signature both hold (FirmwareRefused otherwise)."""
    signer = check_signing_certificate(signing_pem, roots, at)
    check_signature(data, signature_b64, signer)
    return signer
