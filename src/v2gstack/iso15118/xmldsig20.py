"""XML signatures over EXI as ISO 15118-20 uses them (7.9.2.4.2): the -20 algorithms, the same EXI canonicalization.

Each referenced element (by its `Id`) is encoded as an EXI fragment of its namespace ([V2G20-1449]) and digested;
SignedInfo is encoded as a fragment of the XML signature schema ([V2G20-1449]) and signed. Two algorithm sets,
chosen by the signer's key ([V2G20-2473..2476]):
- secp521r1: SignatureMethod ecdsa-sha512 (xmldsig-more), DigestMethod xmlenc#sha512; SignatureValue r || s,
  66 bytes each, zero-padded ([V2G20-1000]);
- Ed448: SignatureMethod urn:iso:std:iso:15118:-20:Security:xmldsig#Ed448 (pure Ed448 over the SignedInfo EXI,
  R || S, 114 bytes), DigestMethod urn:iso:std:iso:15118:-20:Security:xmlenc#SHAKE256 (64 bytes of output).
The -2 set (ecdsa-sha256 on P-256, sha256) is refused unless a verifier allows it explicitly (`LEGACY_P256`): the
reference stack's -20 code signs that way. SignedInfo encoded with the combined -20 grammar (CommonMessages fragment
grammar, as cbV2G-based stacks do) is accepted on verification too; we sign with the XML signature schema.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from .. import exi
from ..exi import ExiError
from ..pki.algorithms import KeyAlgorithm, PrivateKey, PublicKey, UnsupportedKeyError, algorithm_of
from .xmldsig import CANONICAL_EXI, SignatureError

ECDSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
ED448 = "urn:iso:std:iso:15118:-20:Security:xmldsig#Ed448"
SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
SHAKE256 = "urn:iso:std:iso:15118:-20:Security:xmlenc#SHAKE256"
ECDSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
SHAKE256_LENGTH = 64
MAX_REFERENCES = 4  # -20 signs one element per message; a few more are tolerated, never an unbounded list
SIGNED_INFO_GRAMMARS = ("xmldsig", "iso20")  # [V2G20-1449] first; the combined -20 fragment grammar second
FORBIDDEN_SIGNATURE_PARTS = ("KeyInfo", "Object")  # [V2G20-771]


@dataclass(frozen=True)
class Suite:
    """One signature algorithm set: the SignatureMethod and DigestMethod URIs and the key it needs."""

    signature_method: str
    digest_method: str
    key: KeyAlgorithm
    half: int  # bytes of r and of s (ECDSA) or of R and S (Ed448)

    def digest(self, data: bytes) -> bytes:
        """The Reference digest of EXI bytes."""
        if self.digest_method == SHAKE256:
            return hashlib.shake_256(data).digest(SHAKE256_LENGTH)
        return hashlib.sha512(data).digest() if self.digest_method == SHA512 else hashlib.sha256(data).digest()


SECP521_SUITE = Suite(ECDSA_SHA512, SHA512, KeyAlgorithm.SECP521, 66)
ED448_SUITE = Suite(ED448, SHAKE256, KeyAlgorithm.ED448, 57)
LEGACY_P256 = Suite(ECDSA_SHA256, SHA256, KeyAlgorithm.P256, 32)
ISO20_SUITES = (SECP521_SUITE, ED448_SUITE)


def suite_for(key: PrivateKey | PublicKey) -> Suite:
    """The -20 suite a key signs with (SignatureError for a key of neither -20 set)."""
    try:
        algorithm = algorithm_of(key)
    except UnsupportedKeyError as exc:
        raise SignatureError(str(exc)) from None
    for suite in (*ISO20_SUITES, LEGACY_P256):
        if suite.key is algorithm:
            return suite
    raise SignatureError(f"no signature suite for {algorithm.value}")  # pragma: no cover (all sets have one)


def fragment(ns: str, name: str, element: dict[str, Any]) -> bytes:
    """The EXI fragment encoding of a signed element (the canonical form that is digested)."""
    return exi.encode(ns, {name: element}, fragment=True)


def signed_info_exi(info: dict[str, Any], grammar: str = "xmldsig") -> bytes:
    """SignedInfo as an EXI fragment: of the XML signature schema ([V2G20-1449]) or of the combined -20 grammar."""
    return exi.encode(grammar, {"SignedInfo": info}, fragment=True)


def signed_info(references: list[tuple[str, bytes]], suite: Suite) -> dict[str, Any]:
    """SignedInfo for (Id, digest) pairs with one canonical-exi Transform each ([V2G20-766/767])."""
    return {
        "CanonicalizationMethod": {"Algorithm": CANONICAL_EXI},
        "SignatureMethod": {"Algorithm": suite.signature_method},
        "Reference": [{"URI": f"#{ref_id}", "Transforms": {"Transform": [{"Algorithm": CANONICAL_EXI}]},
                       "DigestMethod": {"Algorithm": suite.digest_method},
                       "DigestValue": base64.b64encode(d).decode()} for ref_id, d in references],
    }


def _raw_signature(key: PrivateKey, data: bytes, suite: Suite) -> bytes:
    """SignatureValue bytes: r || s at full length for ECDSA ([V2G20-1000]), R || S for Ed448."""
    if isinstance(key, ed448.Ed448PrivateKey):
        return key.sign(data)
    algorithm = hashes.SHA512() if suite is SECP521_SUITE else hashes.SHA256()
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(algorithm)))
    return r.to_bytes(suite.half, "big") + s.to_bytes(suite.half, "big")


def sign(ns: str, elements: list[tuple[str, str, dict[str, Any]]], key: PrivateKey, *,
         grammar: str = "xmldsig", suite: Suite | None = None) -> dict[str, Any]:
    """The header Signature over `elements` [(Id, element name, element)] made with the signer's key; the suite
    follows the key (secp521r1 -> ecdsa-sha512/sha512, Ed448 -> Ed448/SHAKE256). `grammar` "iso20" encodes
    SignedInfo with the combined -20 grammar instead of the XML signature schema (for cbV2G-based peers)."""
    suite = suite or suite_for(key)
    if algorithm_of(key) is not suite.key:
        raise SignatureError(f"a {algorithm_of(key).value} key cannot sign {suite.signature_method}")
    info = signed_info([(ref_id, suite.digest(fragment(ns, name, el))) for ref_id, name, el in elements], suite)
    value = _raw_signature(key, signed_info_exi(info, grammar), suite)
    return {"SignedInfo": info, "SignatureValue": {"value": base64.b64encode(value).decode()}}


def _b64(value: object, what: str) -> bytes:
    """Strict base64 decoding of a JSON-view field."""
    try:
        return base64.b64decode(str(value), validate=True)
    except ValueError:
        raise SignatureError(f"{what} is not base64") from None


def _check_shape(signature: Mapping[str, Any], info: Mapping[str, Any]) -> None:
    """The parts [V2G20-771] excludes, the canonicalization and transforms [V2G20-766/767]."""
    for part in FORBIDDEN_SIGNATURE_PARTS:
        if part in signature:
            raise SignatureError(f"Signature must not carry {part} [V2G20-771]")
    if "Id" in info or "HMACOutputLength" in (info.get("SignatureMethod") or {}):
        raise SignatureError("SignedInfo must not carry Id or HMACOutputLength [V2G20-771]")
    if (info.get("CanonicalizationMethod") or {}).get("Algorithm") != CANONICAL_EXI:
        raise SignatureError("CanonicalizationMethod is not canonical-exi")


def _suite_of(info: Mapping[str, Any], allowed: tuple[Suite, ...]) -> Suite:
    """The allowed suite named by SignatureMethod."""
    method = (info.get("SignatureMethod") or {}).get("Algorithm")
    for suite in allowed:
        if suite.signature_method == method:
            return suite
    names = ", ".join(s.signature_method for s in allowed)
    raise SignatureError(f"SignatureMethod {method!r} is not allowed here ({names})")


def _check_references(ns: str, info: Mapping[str, Any], elements: Mapping[str, tuple[str, dict[str, Any]]],
                      suite: Suite) -> None:
    """Every element is referenced once with the suite's digest method, one canonical-exi transform and its digest."""
    refs_list = info.get("Reference") or []
    if not isinstance(refs_list, list) or len(refs_list) > MAX_REFERENCES:
        raise SignatureError(f"SignedInfo has more than {MAX_REFERENCES} references")
    refs = {str(r.get("URI", "")).removeprefix("#"): r for r in refs_list if isinstance(r, dict)}
    for ref_id, (name, element) in elements.items():
        ref = refs.get(ref_id)
        if ref is None:
            raise SignatureError(f"no Reference to #{ref_id}")
        if "Type" in ref:
            raise SignatureError(f"Reference #{ref_id} must not carry Type [V2G20-771]")
        transforms = (ref.get("Transforms") or {}).get("Transform") or []
        if len(transforms) != 1 or transforms[0].get("Algorithm") != CANONICAL_EXI:
            raise SignatureError(f"Reference #{ref_id}: one canonical-exi Transform required [V2G20-766/767]")
        if (ref.get("DigestMethod") or {}).get("Algorithm") != suite.digest_method:
            raise SignatureError(f"Reference #{ref_id}: digest method is not {suite.digest_method}")
        try:
            computed = suite.digest(fragment(ns, name, element))
        except ExiError as exc:
            raise SignatureError(f"Reference #{ref_id}: {name} cannot be encoded: {exc}") from None
        if _b64(ref.get("DigestValue", ""), f"Reference #{ref_id} DigestValue") != computed:
            raise SignatureError(f"Reference #{ref_id}: digest does not match the {name} element")


def _verify_value(public_key: PublicKey, raw: bytes, data: bytes, suite: Suite) -> bool:
    """Whether SignatureValue verifies over the SignedInfo bytes."""
    try:
        if isinstance(public_key, ed448.Ed448PublicKey):
            public_key.verify(raw, data)
        else:
            der = encode_dss_signature(int.from_bytes(raw[:suite.half], "big"), int.from_bytes(raw[suite.half:], "big"))
            algorithm = hashes.SHA512() if suite is SECP521_SUITE else hashes.SHA256()
            public_key.verify(der, data, ec.ECDSA(algorithm))
    except InvalidSignature:
        return False
    return True


def verify(ns: str, signature: Mapping[str, Any] | None, elements: Mapping[str, tuple[str, dict[str, Any]]],
           public_key: PublicKey, *, allowed: tuple[Suite, ...] = ISO20_SUITES) -> Suite:
    """Check a header Signature: every element of `elements` (Id -> (name, element)) is referenced with the right
    digest, the SignatureMethod is allowed and matches the key's set, and SignatureValue verifies with `public_key`.
    Returns the suite used; raises SignatureError (ISO ResponseCode FAILED_SignatureError) otherwise."""
    if not signature:
        raise SignatureError("no Signature in the header")
    info = signature.get("SignedInfo") or {}
    _check_shape(signature, info)
    suite = _suite_of(info, allowed)
    try:
        key_set = algorithm_of(public_key)
    except UnsupportedKeyError as exc:
        raise SignatureError(str(exc)) from None
    if key_set is not suite.key:
        raise SignatureError(f"{suite.signature_method} needs a {suite.key.value} key, the signer has {key_set.value}")
    _check_references(ns, info, elements, suite)
    raw = _b64((signature.get("SignatureValue") or {}).get("value", ""), "SignatureValue")
    if len(raw) != 2 * suite.half:
        raise SignatureError(f"SignatureValue has {len(raw)} bytes, not {2 * suite.half}")
    seen: set[bytes] = set()
    for grammar in SIGNED_INFO_GRAMMARS:
        try:
            data = signed_info_exi(dict(info), grammar)
        except ExiError as exc:
            raise SignatureError(f"SignedInfo cannot be encoded: {exc}") from None
        if data not in seen and _verify_value(public_key, raw, data, suite):
            return suite
        seen.add(data)
    raise SignatureError("SignatureValue does not verify with the signer's key")
