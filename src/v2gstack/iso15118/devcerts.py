"""Throwaway V2G PKI for tests and the standalone SECC: V2G root -> CPO sub-CA 1 -> CPO sub-CA 2 -> SECC leaf.

All keys are ECDSA P-256 with SHA-256 signatures, as ISO 15118-2 requires. This stands in until the `pki` package
provides real hierarchies; nothing here is meant for production.
"""

from __future__ import annotations

import datetime as dt
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .tls import secc_context


@dataclass(frozen=True)
class SeccChain:
    """PEM texts of a SECC chain: the leaf key, leaf + sub-CAs (what the SECC sends) and the V2G root."""

    key_pem: bytes
    chain_pem: bytes
    root_pem: bytes

    def write(self, folder: Path) -> tuple[Path, Path, Path]:
        """Write chain, key and root PEM files into `folder`; return their paths."""
        chain, key, root = folder / "secc_chain.pem", folder / "secc_key.pem", folder / "v2g_root.pem"
        chain.write_bytes(self.chain_pem)
        key.write_bytes(self.key_pem)
        root.write_bytes(self.root_pem)
        return chain, key, root

    def server_context(self) -> ssl.SSLContext:
        """A SECC TLS context loaded from this chain (through a private temporary folder)."""
        with tempfile.TemporaryDirectory() as tmp:
            chain, key, _ = self.write(Path(tmp))
            return secc_context(chain, key)


def _name(cn: str) -> x509.Name:
    """A subject with a common name, an organisation and a domain component of V2G style."""
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, cn),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "v2gstack test PKI"),
        x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "CPO"),
    ])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey,
          *, ca: bool, path_length: int | None, days: int) -> x509.Certificate:
    """One certificate signed with ECDSA-SHA256."""
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        usage = x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                              encipher_only=False, decipher_only=False)
    else:
        usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=True, key_cert_sign=False, crl_sign=False,
                              encipher_only=False, decipher_only=False)
    builder = builder.add_extension(usage, critical=True)
    return builder.sign(signer, hashes.SHA256())


def make_secc_chain(secc_cn: str = "SECCCert", days: int = 30) -> SeccChain:
    """A fresh four-level chain ending in a SECC certificate named `secc_cn`."""
    root_key, sub1_key, sub2_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    root = _cert("V2GRootCA", root_key, _name("V2GRootCA"), root_key, ca=True, path_length=2, days=days)
    sub1 = _cert("CPOSubCA1", sub1_key, root.subject, root_key, ca=True, path_length=1, days=days)
    sub2 = _cert("CPOSubCA2", sub2_key, sub1.subject, sub1_key, ca=True, path_length=0, days=days)
    leaf = _cert(secc_cn, leaf_key, sub2.subject, sub2_key, ca=False, path_length=None, days=days)
    pem = serialization.Encoding.PEM
    return SeccChain(
        key_pem=leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        chain_pem=b"".join(c.public_bytes(pem) for c in (leaf, sub2, sub1)),
        root_pem=root.public_bytes(pem),
    )
