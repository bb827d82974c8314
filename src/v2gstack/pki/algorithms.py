"""The key and signature algorithm sets of ISO 15118: P-256/SHA-256 (-2) and the two -20 sets, secp521r1 with
ECDSA-SHA-512 [V2G20-2674] and Ed448 [V2G20-2319] (with X448 for key agreement [V2G20-2710/2711])."""

from __future__ import annotations

import hashlib
from enum import StrEnum

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, x448

PrivateKey = ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey
PublicKey = ec.EllipticCurvePublicKey | ed448.Ed448PublicKey


class UnsupportedKeyError(ValueError):
    """A key of a type or curve none of the ISO 15118 algorithm sets uses."""


class KeyAlgorithm(StrEnum):
    """One algorithm set: the key type and the signature it makes."""

    P256 = "p256"  # ISO 15118-2: secp256r1, ECDSA with SHA-256
    SECP521 = "secp521r1"  # ISO 15118-20 [V2G20-2674]: secp521r1, ECDSA with SHA-512 [V2G20-2673]
    ED448 = "ed448"  # ISO 15118-20 [V2G20-2319]: Ed448 (RFC 8032), X448 for ECDH

    @property
    def iso20(self) -> bool:
        """True for the two ISO 15118-20 sets."""
        return self is not KeyAlgorithm.P256


ISO20_ALGORITHMS = frozenset({KeyAlgorithm.SECP521, KeyAlgorithm.ED448})
_CURVES: dict[str, KeyAlgorithm] = {"secp256r1": KeyAlgorithm.P256, "secp521r1": KeyAlgorithm.SECP521}


def new_key(algorithm: KeyAlgorithm = KeyAlgorithm.P256) -> PrivateKey:
    """A fresh private key of the set."""
    if algorithm is KeyAlgorithm.ED448:
        return ed448.Ed448PrivateKey.generate()
    return ec.generate_private_key(ec.SECP521R1() if algorithm is KeyAlgorithm.SECP521 else ec.SECP256R1())


def algorithm_of(key: object) -> KeyAlgorithm:
    """The set a public or private key belongs to (UnsupportedKeyError for any other key)."""
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return KeyAlgorithm.ED448
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and key.curve.name in _CURVES:
        return _CURVES[key.curve.name]
    curve = getattr(getattr(key, "curve", None), "name", "")
    raise UnsupportedKeyError(f"{type(key).__name__.lstrip('_')} {curve}".strip() + " is not an ISO 15118 key")


def signature_hash(key: object) -> hashes.HashAlgorithm | None:
    """The hash a certificate or OCSP signature by this key uses (None for Ed448, which hashes internally)."""
    algorithm = algorithm_of(key)
    if algorithm is KeyAlgorithm.ED448:
        return None
    return hashes.SHA512() if algorithm is KeyAlgorithm.SECP521 else hashes.SHA256()


def subject_public_key_bits(public_key: object) -> bytes:
    """The content of the subjectPublicKey BIT STRING of a key's SubjectPublicKeyInfo (the raw key)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    if isinstance(public_key, ed448.Ed448PublicKey | x448.X448PublicKey):
        return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raise UnsupportedKeyError(f"{type(public_key).__name__} is not an ISO 15118 key")


def key_identifier_method2(public_key: object) -> bytes:
    """RFC 5280 4.2.1.2 method 2, as -20 requires for SubjectKeyIdentifier [V2G20-1852]: the four bits 0100 and the
    60 least significant bits of the SHA-1 of the subjectPublicKey (8 bytes)."""
    digest = bytearray(hashlib.sha1(subject_public_key_bits(public_key)).digest()[-8:])
    digest[0] = 0x40 | (digest[0] & 0x0F)
    return bytes(digest)
