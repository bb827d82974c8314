"""XML signatures over EXI, as ISO 15118-2 uses them (V2G2-771 ff.): what is signed is the EXI encoding, not XML.

Each signed element (the one whose `Id` a Reference names) is encoded as an EXI fragment of the message's namespace
and hashed with SHA-256 (Transform and CanonicalizationMethod `canonical-exi`); SignedInfo is encoded as an xmldsig
fragment and signed with ECDSA on P-256 over SHA-256; SignatureValue is r || s, 32 bytes each. The digest of the
reference stack's signed SalesTariff is reproduced exactly (tests/test_iso15118_xmldsig.py).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .. import exi

CANONICAL_EXI = "http://www.w3.org/TR/canonical-exi/"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"


class SignatureError(ValueError):
    """A signature that does not verify (the ISO answer is FAILED_SignatureError, or FAILED_MeteringSignatureNotValid
    for a metering receipt)."""


def digest(ns: str, name: str, element: dict[str, Any]) -> bytes:
    """SHA-256 of the element's EXI fragment encoding."""
    return hashlib.sha256(exi.encode(ns, {name: element}, fragment=True)).digest()


def signed_info(references: list[tuple[str, bytes]]) -> dict[str, Any]:
    """SignedInfo for (Id, digest) pairs."""
    return {
        "CanonicalizationMethod": {"Algorithm": CANONICAL_EXI},
        "SignatureMethod": {"Algorithm": ECDSA_SHA256},
        "Reference": [{"URI": f"#{ref_id}", "Transforms": {"Transform": [{"Algorithm": CANONICAL_EXI}]},
                       "DigestMethod": {"Algorithm": SHA256}, "DigestValue": base64.b64encode(d).decode()}
                      for ref_id, d in references],
    }


def sign(ns: str, elements: list[tuple[str, str, dict[str, Any]]], key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    """The header Signature over `elements` [(Id, element name, element)] with the signer's P-256 key."""
    info = signed_info([(ref_id, digest(ns, name, element)) for ref_id, name, element in elements])
    data = exi.encode("xmldsig", {"SignedInfo": info}, fragment=True)
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
    value = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return {"SignedInfo": info, "SignatureValue": {"value": base64.b64encode(value).decode()}}


def verify(ns: str, signature: dict[str, Any] | None, elements: dict[str, tuple[str, dict[str, Any]]],
           public_key: ec.EllipticCurvePublicKey) -> None:
    """Check a header Signature: every element in `elements` (Id -> (name, element)) is referenced with the right
    digest, and SignatureValue verifies with `public_key`. Raise SignatureError otherwise."""
    if not signature:
        raise SignatureError("no Signature in the header")
    info = signature.get("SignedInfo") or {}
    if (info.get("SignatureMethod") or {}).get("Algorithm") != ECDSA_SHA256:
        raise SignatureError("SignatureMethod is not ecdsa-sha256")
    refs = {str(r.get("URI", "")).lstrip("#"): r for r in info.get("Reference", [])}
    for ref_id, (name, element) in elements.items():
        ref = refs.get(ref_id)
        if ref is None:
            raise SignatureError(f"no Reference to #{ref_id}")
        if (ref.get("DigestMethod") or {}).get("Algorithm") != SHA256:
            raise SignatureError(f"Reference #{ref_id}: digest method is not sha256")
        try:
            given = base64.b64decode(ref.get("DigestValue", ""), validate=True)
        except ValueError:
            raise SignatureError(f"Reference #{ref_id}: DigestValue is not base64") from None
        if given != digest(ns, name, element):
            raise SignatureError(f"Reference #{ref_id}: digest does not match the {name} element")
    raw = base64.b64decode((signature.get("SignatureValue") or {}).get("value", ""))
    if len(raw) != 64:
        raise SignatureError(f"SignatureValue has {len(raw)} bytes, not 64 (r || s)")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        public_key.verify(der, exi.encode("xmldsig", {"SignedInfo": info}, fragment=True), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("SignatureValue does not verify with the signer's key") from None
