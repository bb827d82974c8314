"""The two DER details of the ISO 15118-20 certificate profiles that `cryptography` does not offer: validity times
as GeneralizedTime (Annex B tables: "GeneralizedTime ... YYYYMMDDHHMMSSZ", where RFC 5280 and `cryptography` use
UTCTime before 2050) and the subjectAltPublicKeyInfo extension (ITU-T X.509, id-ce 72) that carries the X448 key of
an Ed448 OEM provisioning certificate [V2G20-2534]."""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, x448
from cryptography.x509.oid import ObjectIdentifier

from .algorithms import PrivateKey, signature_hash

SUBJECT_ALT_PUBLIC_KEY_INFO = ObjectIdentifier("2.5.29.72")
UTC_TIME, GENERALIZED_TIME, SEQUENCE, BIT_STRING = 0x17, 0x18, 0x30, 0x03


class DerError(ValueError):
    """DER that is not what a certificate should contain."""


def _read(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the TLV at offset (definite lengths only, as DER has)."""
    if offset + 2 > len(data):
        raise DerError("truncated TLV")
    tag, length = data[offset], data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise DerError("bad DER length")
        length = int.from_bytes(data[start:start + count], "big")
        start += count
    if start + length > len(data):
        raise DerError("TLV runs past its container")
    return tag, start, start + length


def _items(data: bytes) -> list[bytes]:
    """The encoded TLVs that make up the content of a constructed value."""
    out, offset = [], 0
    while offset < len(data):
        _, _, end = _read(data, offset)
        out.append(data[offset:end])
        offset = end
    return out


def tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + content


def _content(encoded: bytes) -> bytes:
    """The content octets of one encoded TLV."""
    _, start, end = _read(encoded, 0)
    return encoded[start:end]


def _sign(key: PrivateKey, data: bytes) -> bytes:
    """The X.509 signature value of data (DER ECDSA-Sig-Value, or the raw 114-byte Ed448 signature)."""
    if isinstance(key, ed448.Ed448PrivateKey):
        return key.sign(data)
    algorithm = signature_hash(key)
    assert algorithm is not None
    return key.sign(data, ec.ECDSA(algorithm))


def with_generalized_time(cert: x509.Certificate, issuer_key: PrivateKey) -> x509.Certificate:
    """The same certificate with notBefore/notAfter as GeneralizedTime, signed again by the issuer's key."""
    der = cert.public_bytes(serialization.Encoding.DER)
    outer = _items(_content(der))
    if len(outer) != 3:
        raise DerError("a certificate has three parts")
    fields = _items(_content(outer[0]))
    index = 4 if fields[0][0] == 0xA0 else 3  # [0] version, serialNumber, signature, issuer, validity
    times = []
    for value in (cert.not_valid_before_utc, cert.not_valid_after_utc):
        times.append(tlv(GENERALIZED_TIME, value.strftime("%Y%m%d%H%M%SZ").encode()))
    fields[index] = tlv(SEQUENCE, b"".join(times))
    tbs = tlv(SEQUENCE, b"".join(fields))
    signed = tlv(SEQUENCE, tbs + outer[1] + tlv(BIT_STRING, b"\x00" + _sign(issuer_key, tbs)))
    return x509.load_der_x509_certificate(signed)


def validity_time_tags(cert: x509.Certificate) -> tuple[int, int]:
    """The DER tags of notBefore and notAfter (0x17 UTCTime, 0x18 GeneralizedTime)."""
    fields = _items(_content(_items(_content(cert.public_bytes(serialization.Encoding.DER)))[0]))
    validity = _items(_content(fields[4 if fields[0][0] == 0xA0 else 3]))
    return validity[0][0], validity[1][0]


def alt_public_key_extension(public_key: x448.X448PublicKey) -> x509.UnrecognizedExtension:
    """subjectAltPublicKeyInfo: SEQUENCE { AlgorithmIdentifier, BIT STRING }, the DER of a SubjectPublicKeyInfo."""
    spki = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return x509.UnrecognizedExtension(SUBJECT_ALT_PUBLIC_KEY_INFO, spki)


def alt_public_key(cert: x509.Certificate) -> x448.X448PublicKey | None:
    """The X448 key of a certificate's subjectAltPublicKeyInfo extension; None when it has none."""
    try:
        ext = cert.extensions.get_extension_for_oid(SUBJECT_ALT_PUBLIC_KEY_INFO).value
    except x509.ExtensionNotFound:
        return None
    data = ext.value if isinstance(ext, x509.UnrecognizedExtension) else b""
    try:
        key = serialization.load_der_public_key(data)
    except (ValueError, TypeError):
        raise DerError("subjectAltPublicKeyInfo is not a SubjectPublicKeyInfo") from None
    if not isinstance(key, x448.X448PublicKey):
        raise DerError(f"subjectAltPublicKeyInfo holds a {type(key).__name__.lstrip('_')}, not an X448 key")
    return key
