"""The CSMS's second TLS server certificate, with an RSA key: the OCPP security rules (A00.FR.318) make a CSMS
support both the ECDHE-ECDSA and the TLS_RSA AES-GCM suites, and the RSA ones need an RSA server key. It is issued
by the same CSMS root as the ECDSA one (the root's ECDSA signature; RSA only for the key exchange)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from .issue import Issued

RSA_BITS = 3072  # A00.FR.501: at least 112 bits of security (RSA 2048); 3072 bits give 128
RSA_NAME = "csms_rsa"  # file stem beside `csms` (certs/csms_rsa.pem, keys/csms_rsa.key.pem, chains/...)


@dataclass(frozen=True)
class RsaServer:
    """An RSA server certificate and its key."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    def key_pem(self, password: bytes | None = None) -> bytes:
        """PKCS#8 PEM of the key (encrypted when a password is given)."""
        enc = (serialization.BestAvailableEncryption(password) if password
               else serialization.NoEncryption())
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def issue_rsa_server(issuer: Issued, ecdsa_server: x509.Certificate, bits: int = RSA_BITS) -> RsaServer:
    """An RSA twin of the ECDSA server certificate `ecdsa_server`: same subject, names and validity, a new RSA key
    (keyEncipherment for the RSA key exchange, digitalSignature, serverAuth), signed by `issuer`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    san = ecdsa_server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    issuer_ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    start = ecdsa_server.not_valid_before_utc
    builder = (
        x509.CertificateBuilder()
        .subject_name(ecdsa_server.subject)
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(max(ecdsa_server.not_valid_after_utc, start + dt.timedelta(days=1)))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(san, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False)
    )
    return RsaServer(builder.sign(issuer.key, hashes.SHA256()), key)
