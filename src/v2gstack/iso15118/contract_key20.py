"""The ISO 15118-20 contract private key in transit (7.9.2.5.2, 7.9.2.5.4): ECDH + ConcatKDF(SHA-512) + AES-GCM-256.

The secondary actor (party U) makes an ephemeral key on the curve of the EV's OEM provisioning certificate and
agrees a secret Z with it (party V, static): ECDH on secp521r1 with the certificate's key, or X448 (RFC 7748) with
the key of its subjectAltPublicKeyInfo [V2G20-2534]. The session key is the NIST SP 800-56A concatenation KDF with
SHA-512 over Z and OtherInfo 01 ("AlgorithmID") 55 ("U") 56 ("V"), 256 bits [V2G20-2535]. The private key is sealed
with AES-GCM-256, a random 96-bit IV, a 128-bit tag [V2G20-2494], and AAD = PCID (capital letters and digits,
18 bytes) || SKI of the contract certificate as upper-case hex (16 bytes) [V2G20-2492]:
- SECP521_EncryptedPrivateKey = IV (12) || ciphertext (66: the 521-bit key with 7 leading zero bits) || tag (16)
  = 94 bytes [V2G20-2497..2499]; DHPublicKey = the ephemeral point uncompressed, 133 bytes [V2G20-2489].
- X448_EncryptedPrivateKey = IV (12) || ciphertext (56) || tag (16) = 84 bytes [V2G20-2500..2502]; DHPublicKey =
  0x04 || the 56-byte X448 key, 57 bytes (NOTE 6 and 7 to [V2G20-2489]; a bare 56-byte key is accepted too).
The EV checks the decryption (tag), the 7 zero bits [V2G20-2678], the range and that the key matches the contract
certificate [V2G20-2507/2510]. The Ed448 contract key: the standard's "448-bit private key" field cannot carry an
RFC 8032 Ed448 private key (57 bytes), so v2gstack issues Ed448 contract keys whose last seed byte is zero and
transmits the other 56 bytes (pki.contracts20.contract_key); the EV appends the zero.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, x448
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.x509.oid import NameOID

from ..pki.algorithms import PrivateKey
from ..pki.der import DerError, alt_public_key

OTHER_INFO = b"\x01\x55\x56"  # AlgorithmID 0x01, sender "U", receiver "V" [V2G20-2535]
IV_BYTES, TAG_BYTES = 12, 16
SECP521_KEY_BYTES, X448_KEY_BYTES = 66, 56
SECP521_ENCRYPTED_BYTES = IV_BYTES + SECP521_KEY_BYTES + TAG_BYTES  # 94, the XSD's length
X448_ENCRYPTED_BYTES = IV_BYTES + X448_KEY_BYTES + TAG_BYTES  # 84, the XSD's length
SECP521_DH_BYTES = 133
SECP521_ORDER = 0x01FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFA51868783BF2F966B7FCC0148F709A5D03BB5C9B8899C47AEBB6FB71E91386409  # noqa: E501


class ContractKeyError(ValueError):
    """An encrypted contract key that cannot be made or opened; `code` is the -20 ResponseCode to answer with."""

    def __init__(self, message: str, code: str = "FAILED") -> None:
        super().__init__(message)
        self.code = code


class EcdhCurve(StrEnum):
    """SignedInstallationData ECDHCurve ([V2G20-2487/2488])."""

    SECP521 = "SECP521"
    X448 = "X448"


@dataclass(frozen=True)
class EncryptedContractKey:
    """The three fields of SignedInstallationData that carry the key: ECDHCurve, DHPublicKey and the sealed key."""

    curve: EcdhCurve
    dh_public_key: bytes
    encrypted: bytes

    @property
    def element(self) -> str:
        """The name of the element the sealed key goes in."""
        return "SECP521_EncryptedPrivateKey" if self.curve is EcdhCurve.SECP521 else "X448_EncryptedPrivateKey"


def pcid_of(oem_cert: x509.Certificate) -> str:
    """The PCID of an OEM provisioning certificate (its CN) in the form the AAD uses: capital letters and digits."""
    cn = oem_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cn:
        raise ContractKeyError("the OEM provisioning certificate has no CN (PCID)",
                               "WARNING_CertificateValidationError")
    return normalize_pcid(str(cn[0].value))


def normalize_pcid(pcid: str) -> str:
    """Capital letters and digits without separators ([V2G20-2492])."""
    out = re.sub(r"[^0-9A-Za-z]", "", pcid).upper()
    if not out:
        raise ContractKeyError(f"PCID {pcid!r} has no letters or digits", "WARNING_CertificateValidationError")
    return out


def aad(pcid: str, contract_cert: x509.Certificate) -> bytes:
    """PCID || SKI of the contract certificate as upper-case hex [V2G20-2492]."""
    try:
        ski = contract_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        raise ContractKeyError("the contract certificate has no SubjectKeyIdentifier") from None
    return normalize_pcid(pcid).encode() + ski.hex().upper().encode()


def session_key(shared_secret: bytes) -> bytes:
    """The 256-bit AES key: concatenation KDF, SHA-512, OtherInfo 01 55 56 [V2G20-2535]."""
    return ConcatKDFHash(algorithm=hashes.SHA512(), length=32, otherinfo=OTHER_INFO).derive(shared_secret)


def _secret_bytes(key: PrivateKey) -> tuple[EcdhCurve, bytes]:
    """The curve and the plaintext of a contract key: 66 big-endian bytes (secp521r1) or 56 seed bytes (Ed448)."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp521r1":
        return EcdhCurve.SECP521, key.private_numbers().private_value.to_bytes(SECP521_KEY_BYTES, "big")
    if isinstance(key, ed448.Ed448PrivateKey):
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        if seed[-1] != 0:
            raise ContractKeyError("this Ed448 key does not fit X448_EncryptedPrivateKey (seed must end in 0x00; "
                                   "issue contract keys with pki.contracts20.contract_key)")
        return EcdhCurve.X448, seed[:X448_KEY_BYTES]
    raise ContractKeyError("the contract key is neither secp521r1 nor Ed448")


def encrypt_contract_key(oem_cert: x509.Certificate, contract_key: PrivateKey, contract_cert: x509.Certificate,
                         pcid: str | None = None) -> EncryptedContractKey:
    """Seal a contract key for the EV that owns `oem_cert` (the secondary actor's side)."""
    curve, secret = _secret_bytes(contract_key)
    if curve is EcdhCurve.SECP521:
        peer = oem_cert.public_key()
        if not isinstance(peer, ec.EllipticCurvePublicKey) or peer.curve.name != "secp521r1":
            raise ContractKeyError("the OEM provisioning certificate has no secp521r1 key for a secp521r1 contract",
                                   "WARNING_CertificateValidationError")
        ephemeral = ec.generate_private_key(ec.SECP521R1())
        shared = ephemeral.exchange(ec.ECDH(), peer)
        dh = ephemeral.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint)
    else:
        try:
            peer_x = alt_public_key(oem_cert)
        except DerError as exc:
            raise ContractKeyError(str(exc), "WARNING_CertificateValidationError") from None
        if peer_x is None:
            raise ContractKeyError("the OEM provisioning certificate has no X448 subjectAltPublicKeyInfo for an Ed448 "
                                   "contract", "WARNING_CertificateValidationError")
        eph_x = x448.X448PrivateKey.generate()
        shared = eph_x.exchange(peer_x)
        dh = b"\x04" + eph_x.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    iv = os.urandom(IV_BYTES)
    sealed = AESGCM(session_key(shared)).encrypt(iv, secret, aad(pcid or pcid_of(oem_cert), contract_cert))
    return EncryptedContractKey(curve, dh, iv + sealed)


def _x448_peer(dh_public_key: bytes) -> x448.X448PublicKey:
    """The sender's X448 key from DHPublicKey: 0x04 || 56 bytes, or the bare 56 bytes."""
    if len(dh_public_key) == X448_KEY_BYTES + 1 and dh_public_key[0] == 0x04:
        dh_public_key = dh_public_key[1:]
    if len(dh_public_key) != X448_KEY_BYTES:
        raise ContractKeyError(f"DHPublicKey has {len(dh_public_key)} bytes, not 57 (or 56) for X448")
    return x448.X448PublicKey.from_public_bytes(dh_public_key)


def _open(encrypted: bytes, size: int, shared: bytes, associated: bytes) -> bytes:
    """AES-GCM-256 decryption of IV || ciphertext || tag; ContractKeyError when the tag does not verify."""
    if len(encrypted) != IV_BYTES + size + TAG_BYTES:
        raise ContractKeyError(f"the encrypted key has {len(encrypted)} bytes, not {IV_BYTES + size + TAG_BYTES}")
    try:
        return AESGCM(session_key(shared)).decrypt(encrypted[:IV_BYTES], encrypted[IV_BYTES:], associated)
    except InvalidTag:
        raise ContractKeyError("the encrypted contract key does not decrypt (wrong key, PCID, SKI or tampered) "
                               "[V2G20-2504]") from None


def decrypt_contract_key(sealed: EncryptedContractKey, oem_key: PrivateKey | x448.X448PrivateKey,
                         contract_cert: x509.Certificate, pcid: str) -> PrivateKey:
    """Open a sealed contract key with the EV's OEM provisioning key (secp521r1) or its X448 alt key (Ed448) and check
    it belongs to the contract certificate [V2G20-2505..2510]. ContractKeyError (code FAILED) otherwise."""
    associated = aad(pcid, contract_cert)
    public = contract_cert.public_key()
    if sealed.curve is EcdhCurve.SECP521:
        if not isinstance(oem_key, ec.EllipticCurvePrivateKey) or oem_key.curve.name != "secp521r1":
            raise ContractKeyError("ECDHCurve SECP521 needs the secp521r1 OEM provisioning key")
        if len(sealed.dh_public_key) != SECP521_DH_BYTES:
            raise ContractKeyError(f"DHPublicKey has {len(sealed.dh_public_key)} bytes, not 133")
        try:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP521R1(), sealed.dh_public_key)
        except ValueError:
            raise ContractKeyError("DHPublicKey is not a secp521r1 point") from None
        plain = _open(sealed.encrypted, SECP521_KEY_BYTES, oem_key.exchange(ec.ECDH(), peer), associated)
        if plain[0] & 0xFE:
            raise ContractKeyError("the decrypted key does not start with 7 zero bits [V2G20-2678]")
        value = int.from_bytes(plain, "big")
        if not 0 < value < SECP521_ORDER:
            raise ContractKeyError("the decrypted key is out of range for secp521r1 [V2G20-2507]")
        key: PrivateKey = ec.derive_private_key(value, ec.SECP521R1())
        matches = isinstance(public, ec.EllipticCurvePublicKey) and \
            key.public_key().public_numbers() == public.public_numbers()
    else:
        if not isinstance(oem_key, x448.X448PrivateKey):
            raise ContractKeyError("ECDHCurve X448 needs the X448 key of the OEM provisioning certificate")
        try:
            shared = oem_key.exchange(_x448_peer(sealed.dh_public_key))
        except ValueError:  # a low-order point gives an all-zero secret, which X448 refuses
            raise ContractKeyError("DHPublicKey is not a usable X448 key") from None
        plain = _open(sealed.encrypted, X448_KEY_BYTES, shared, associated)
        key = ed448.Ed448PrivateKey.from_private_bytes(plain + b"\x00")
        raw = serialization.Encoding.Raw, serialization.PublicFormat.Raw
        matches = isinstance(public, ed448.Ed448PublicKey) and key.public_key().public_bytes(*raw) == \
            public.public_bytes(*raw)
    if not matches:
        raise ContractKeyError("the decrypted key does not belong to the contract certificate [V2G20-2507/2510]")
    return key
