"""Writing a created PKI to disk (PEM, DER, PKCS#8, chains, PKCS#12, role key stores) and loading files back."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, x448
from cryptography.hazmat.primitives.serialization import pkcs12

from .algorithms import PrivateKey
from .hierarchy import Edition, Pki
from .profiles import Kind
from .rsa_server import RSA_NAME

# role -> (PKCS#12 / key+chain leaves it holds, trust anchors it loads)
ROLE_STORES: dict[str, tuple[tuple[Kind, ...], tuple[Kind, ...]]] = {
    "secc": ((Kind.SECC,), (Kind.V2G_ROOT, Kind.MO_ROOT)),
    "ev": ((Kind.CONTRACT, Kind.OEM_PROV), (Kind.V2G_ROOT,)),
    "csms": ((Kind.CSMS, Kind.CPS), (Kind.CSMS_ROOT, Kind.V2G_ROOT, Kind.MO_ROOT, Kind.OEM_ROOT)),
    "station": ((Kind.STATION, Kind.SECC), (Kind.CSMS_ROOT, Kind.V2G_ROOT, Kind.MO_ROOT)),
}
# ISO 15118-20: the EV also holds its vehicle certificate (TLS client authentication), the SECC trusts OEM roots for it
ROLE_STORES_20: dict[str, tuple[tuple[Kind, ...], tuple[Kind, ...]]] = {
    **ROLE_STORES,
    "secc": ((Kind.SECC,), (Kind.V2G_ROOT, Kind.MO_ROOT, Kind.OEM_ROOT)),
    "ev": ((Kind.CONTRACT, Kind.OEM_PROV, Kind.VEHICLE), (Kind.V2G_ROOT,)),
    "station": ((Kind.STATION, Kind.SECC), (Kind.CSMS_ROOT, Kind.V2G_ROOT, Kind.MO_ROOT, Kind.OEM_ROOT)),
}


def _encryption(password: bytes | None) -> serialization.KeySerializationEncryption:
    """Best available encryption when a password is given, none otherwise."""
    return serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()


def cert_pem(cert: x509.Certificate) -> bytes:
    """PEM of one certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey | x448.X448PrivateKey, password: bytes | None) -> bytes:
    """PEM PKCS#8 of a private key, encrypted when a password is given."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, _encryption(password))


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint as colon-separated upper-case hex."""
    return cert.fingerprint(hashes.SHA256()).hex(":").upper()


def _write(path: Path, data: bytes, secret: bool = False) -> Path:
    """Write a file, readable only by the owner when it holds a secret."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if secret:
        os.chmod(path, 0o600)
    return path


def write_pki(pki: Pki, out: Path, password: bytes | None = None) -> dict[str, str]:
    """Write every certificate, key, chain, root and role store under out; return a manifest of file -> purpose."""
    manifest: dict[str, str] = {}

    def add(path: Path, data: bytes, what: str, secret: bool = False) -> None:
        _write(path, data, secret)
        manifest[str(path.relative_to(out))] = what

    for kind, item in pki.items.items():
        name = kind.value
        add(out / "certs" / f"{name}.pem", cert_pem(item.cert), f"{name} certificate (PEM)")
        add(out / "certs" / f"{name}.der", item.cert.public_bytes(serialization.Encoding.DER), f"{name} (DER)")
        add(out / "keys" / f"{name}.key.pem", key_pem(item.key, password), f"{name} private key (PKCS#8)", True)
        if item.alt_key is not None:
            add(out / "keys" / f"{name}.x448.key.pem", key_pem(item.alt_key, password),
                f"{name} X448 key of subjectAltPublicKeyInfo (ECDH of -20 certificate installation)", True)
    for kind in pki.roots:
        add(out / "roots" / f"{kind.value}.pem", cert_pem(pki.cert(kind)), f"trust anchor {kind.value}")
    for leaf in pki.chains:
        chain = b"".join(cert_pem(c) for c in [pki.cert(leaf), *pki.intermediates(leaf)])
        add(out / "chains" / f"{leaf.value}.chain.pem", chain, f"{leaf.value} + sub-CAs (leaf first)")
    if pki.csms_rsa is not None:  # the RSA twin of the CSMS server certificate (TLS_RSA suites)
        rsa_chain = b"".join(cert_pem(c) for c in [pki.csms_rsa.cert, *pki.intermediates(Kind.CSMS)])
        add(out / "certs" / f"{RSA_NAME}.pem", cert_pem(pki.csms_rsa.cert), f"{RSA_NAME} certificate (PEM)")
        add(out / "keys" / f"{RSA_NAME}.key.pem", pki.csms_rsa.key_pem(password), f"{RSA_NAME} RSA key", True)
        add(out / "chains" / f"{RSA_NAME}.chain.pem", rsa_chain, f"{RSA_NAME} + sub-CAs (leaf first)")
        add(out / "stores" / "csms" / f"{RSA_NAME}.chain.pem", rsa_chain, f"csms: {RSA_NAME} chain")
        add(out / "stores" / "csms" / f"{RSA_NAME}.key.pem", pki.csms_rsa.key_pem(password), f"csms: {RSA_NAME} key",
            True)
    stores = ROLE_STORES_20 if pki.edition is Edition.ISO20 else ROLE_STORES
    for role, (leaves, anchors) in stores.items():
        base = out / "stores" / role
        for leaf in leaves:
            item = pki.items[leaf]
            p12 = pkcs12.serialize_key_and_certificates(
                leaf.value.encode(), item.key, item.cert, pki.intermediates(leaf) or None, _encryption(password)
            )
            add(base / f"{leaf.value}.p12", p12, f"{role}: {leaf.value} key, certificate and sub-CAs", True)
            add(base / f"{leaf.value}.key.pem", key_pem(item.key, password), f"{role}: {leaf.value} key", True)
            if item.alt_key is not None:
                add(base / f"{leaf.value}.x448.key.pem", key_pem(item.alt_key, password),
                    f"{role}: {leaf.value} X448 key", True)
            chain = b"".join(cert_pem(c) for c in [item.cert, *pki.intermediates(leaf)])
            add(base / f"{leaf.value}.chain.pem", chain, f"{role}: {leaf.value} chain")
        for anchor in (a for a in anchors if a in pki.items):
            add(base / "trust" / f"{anchor.value}.pem", cert_pem(pki.cert(anchor)), f"{role}: trust anchor")
    fps = {k.value: fingerprint(i.cert) for k, i in pki.items.items()}
    meta = {"edition": pki.edition.value, "algorithm": pki.algorithm.value}
    _write(out / "manifest.json", json.dumps({**meta, "files": manifest, "sha256": fps}, indent=2).encode())
    return manifest


def load_certs(path: Path) -> list[x509.Certificate]:
    """All certificates of a PEM file (one or many) or a DER file."""
    data = path.read_bytes()
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def load_cert_dir_or_file(path: Path) -> list[x509.Certificate]:
    """Certificates of a file, or of every .pem/.der/.crt file in a folder."""
    if path.is_dir():
        found: list[x509.Certificate] = []
        for p in sorted(path.iterdir()):
            if p.suffix in {".pem", ".der", ".crt"} and p.is_file():
                found.extend(load_certs(p))
        return found
    return load_certs(path)


def load_key(path: Path, password: bytes | None = None) -> PrivateKey:
    """A PEM private key (EC or Ed448), decrypting with the password when given."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=password)
    if not isinstance(key, ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey):
        raise TypeError("not an EC or Ed448 private key")
    return key


def load_x448_key(path: Path, password: bytes | None = None) -> x448.X448PrivateKey:
    """A PEM X448 private key (the ECDH key of an Ed448 OEM provisioning certificate)."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=password)
    if not isinstance(key, x448.X448PrivateKey):
        raise TypeError("not an X448 private key")
    return key
