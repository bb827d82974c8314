"""OCPP 2.0.1 OCSPRequestDataType items (iso15118CertificateHashData) for certificates of a chain."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from typing import TypedDict

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import AuthorityInformationAccessOID


class OcspRequestData(TypedDict):
    """One OCSPRequestDataType as OCPP 2.0.1 sends it."""

    hashAlgorithm: str
    issuerNameHash: str
    issuerKeyHash: str
    serialNumber: str
    responderURL: str


def _der_item(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER item at pos."""
    tag, length = data[pos], data[pos + 1]
    start = pos + 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[start : start + n], "big")
        start += n
    return tag, start, start + length


def issuer_key_bytes(issuer: x509.Certificate) -> bytes:
    """The issuer's subjectPublicKey BIT STRING contents, unused-bits octet excluded (what RFC 6960 hashes)."""
    spki = issuer.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    _, seq_start, _ = _der_item(spki, 0)
    _, _, alg_end = _der_item(spki, seq_start)
    tag, bits_start, bits_end = _der_item(spki, alg_end)
    if tag != 0x03:
        raise ValueError("SubjectPublicKeyInfo without BIT STRING")
    return spki[bits_start + 1 : bits_end]


def responder_url(cert: x509.Certificate) -> str:
    """The OCSP responder URL of the certificate's AIA extension, or an empty string."""
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return ""
    for desc in aia:
        if desc.access_method == AuthorityInformationAccessOID.OCSP:
            return str(desc.access_location.value)
    return ""


def ocsp_request_data(cert: x509.Certificate, issuer: x509.Certificate) -> OcspRequestData:
    """SHA-256 issuerNameHash, issuerKeyHash, the serial in hex and the responder URL of one certificate."""
    return {
        "hashAlgorithm": "SHA256",
        "issuerNameHash": hashlib.sha256(issuer.subject.public_bytes()).hexdigest(),
        "issuerKeyHash": hashlib.sha256(issuer_key_bytes(issuer)).hexdigest(),
        "serialNumber": format(cert.serial_number, "x"),
        "responderURL": responder_url(cert),
    }


def chain_hash_data(path: Sequence[x509.Certificate]) -> list[OcspRequestData]:
    """One item per certificate of a path (leaf first, anchor last) except the anchor, at most 4 as OCPP allows."""
    return [ocsp_request_data(c, i) for c, i in itertools.pairwise(path)][:4]
