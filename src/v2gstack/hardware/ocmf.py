"""OCMF (Open Charge Metering Format, S.A.F.E. e.V.) signed meter data, pure: a meter signs its readings, a CSMS
checks them. It is the meter's format (OCPP only carries it), so it sits with the hardware seam, low enough for the
simulated meter to sign and the CSMS to verify.

A record is the text `OCMF|<payload JSON>|<signature JSON>`. The signature covers the payload section exactly as
written (its UTF-8 bytes), hashed with SHA-256 and signed with ECDSA on the curve the signature algorithm `SA` names
(OCMF table 22; the default is ECDSA-secp256r1-SHA256); `SD` holds the DER signature, hex unless `SE` says base64.
Public keys travel out of band as DER SubjectPublicKeyInfo (hex in OCMF tools, base64 in OCPP's `publicKey`).
OCPP carries a record in `sampledValue.signedMeterValue` with `encodingMethod` "OCMF" and `signedMeterData` base64.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

HEADER = "OCMF"
DEFAULT_METHOD = "ECDSA-secp256r1-SHA256"
MAX_RECORD = 32768  # characters: the 2.1 schema's limit of signedMeterData, and a bound on the work per record
# OCMF table 22. secp192k1 is listed but `cryptography` has no such curve: such records are "unsupported", never
# "invalid" (a curve we lack says nothing about the meter).
METHODS: dict[str, type[ec.EllipticCurve] | None] = {
    "ECDSA-secp192k1-SHA256": None,
    "ECDSA-secp256k1-SHA256": ec.SECP256K1,
    "ECDSA-secp192r1-SHA256": ec.SECP192R1,
    "ECDSA-secp256r1-SHA256": ec.SECP256R1,
    "ECDSA-brainpool256r1-SHA256": ec.BrainpoolP256R1,
    "ECDSA-secp384r1-SHA256": ec.SECP384R1,
    "ECDSA-brainpool384r1-SHA256": ec.BrainpoolP384R1,
}
KWH_UNITS = {"kWh": 1000.0, "Wh": 1.0}


class Verdict(StrEnum):
    """What checking one record found (the CSMS stores it per sampled value)."""

    VALID = "valid"  # the signature verifies with the key given
    INVALID = "invalid"  # it does not: the payload or the signature was changed, or another key signed it
    KEY_MISMATCH = "keyMismatch"  # the key is not on the curve SA names
    UNSUPPORTED = "unsupported"  # a signature algorithm or encoding this side cannot check
    MALFORMED = "malformed"  # not an OCMF record


class OcmfError(ValueError):
    """A record or key that cannot be used; `verdict` says which kind of failure it is."""

    def __init__(self, verdict: Verdict, message: str) -> None:
        super().__init__(message)
        self.verdict = verdict


@dataclass(frozen=True)
class Record:
    """A parsed OCMF record: the payload section as written (what was signed), and both sections as data."""

    payload_text: str
    payload: dict[str, Any]
    signature: dict[str, Any]

    @property
    def method(self) -> str:
        """The signature algorithm (SA; OCMF's default when absent)."""
        return str(self.signature.get("SA") or DEFAULT_METHOD)

    def text(self) -> str:
        """The record as `OCMF|payload|signature` (the payload section unchanged)."""
        return f"{HEADER}|{self.payload_text}|{json.dumps(self.signature, separators=(',', ':'))}"

    def readings_wh(self) -> list[float]:
        """The energy readings (RD[].RV) in Wh, for those in kWh or Wh."""
        out = []
        for reading in self.payload.get("RD") or []:
            factor = KWH_UNITS.get(str(reading.get("RU")))
            value = reading.get("RV")
            if factor is not None and isinstance(value, int | float) and not isinstance(value, bool):
                out.append(float(value) * factor)
        return out


def _strict(text: str) -> Any:
    """JSON without NaN/Infinity (a meter never writes them)."""
    def refuse(token: str) -> Any:
        raise ValueError(f"{token} is not JSON")
    return json.loads(text, parse_constant=refuse)


def parse(text: str | bytes) -> Record:
    """An OCMF record from its text; OcmfError(MALFORMED) when it is none (or longer than MAX_RECORD)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise OcmfError(Verdict.MALFORMED, "an OCMF record is UTF-8 text") from None
    if len(text) > MAX_RECORD:
        raise OcmfError(Verdict.MALFORMED, f"record longer than {MAX_RECORD} characters")
    if not text.startswith(HEADER + "|"):
        raise OcmfError(Verdict.MALFORMED, "an OCMF record starts with 'OCMF|'")
    body = text[len(HEADER) + 1:]
    payload_text, sep, signature_text = body.rpartition("|")  # the payload may hold '|' in strings; SD never does
    if not sep:
        raise OcmfError(Verdict.MALFORMED, "an OCMF record has a payload and a signature section")
    try:
        payload, signature = _strict(payload_text), _strict(signature_text)
    except (ValueError, RecursionError) as e:
        raise OcmfError(Verdict.MALFORMED, f"section is not JSON: {e}") from None
    if not isinstance(payload, dict) or not isinstance(signature, dict) or not isinstance(signature.get("SD"), str):
        raise OcmfError(Verdict.MALFORMED, "payload and signature are JSON objects; the signature has SD")
    return Record(payload_text, payload, signature)


def _curve(method: str) -> ec.EllipticCurve:
    """The curve of a signature algorithm; OcmfError(UNSUPPORTED) for one we cannot check."""
    if method not in METHODS:
        raise OcmfError(Verdict.UNSUPPORTED, f"signature algorithm {method!r} is not one of OCMF's")
    curve = METHODS[method]
    if curve is None:
        raise OcmfError(Verdict.UNSUPPORTED, f"{method}: this build has no such curve")
    return curve()


def sign(payload: dict[str, Any], key: ec.EllipticCurvePrivateKey, method: str = DEFAULT_METHOD) -> str:
    """The OCMF record of `payload` signed with `key` (its curve must be the one `method` names)."""
    curve = _curve(method)
    if key.curve.name != curve.name:
        raise OcmfError(Verdict.KEY_MISMATCH, f"a {key.curve.name} key cannot sign {method}")
    for value in _numbers(payload):
        if not math.isfinite(value):
            raise ValueError("an OCMF payload holds finite numbers only")
    payload_text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    der = key.sign(payload_text.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    signature = {"SA": method, "SE": "hex", "SM": "application/x-der", "SD": der.hex().upper()}
    return f"{HEADER}|{payload_text}|{json.dumps(signature, separators=(',', ':'))}"


def verify(record: Record | str, public_key: ec.EllipticCurvePublicKey | str | bytes) -> Verdict:
    """Check a record's signature against a public key (an object, or its DER/PEM/hex/base64 form)."""
    try:
        rec = record if isinstance(record, Record) else parse(record)
        key = public_key if isinstance(public_key, ec.EllipticCurvePublicKey) else load_public_key(public_key)
        curve = _curve(rec.method)
        if key.curve.name != curve.name:
            return Verdict.KEY_MISMATCH
        signature = _signature_bytes(rec.signature)
    except OcmfError as e:
        return e.verdict
    try:
        key.verify(signature, rec.payload_text.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return Verdict.INVALID
    return Verdict.VALID


def _signature_bytes(signature: dict[str, Any]) -> bytes:
    """SD decoded as SE says (hex by default); only DER signatures (SM application/x-der) are defined."""
    encoding = str(signature.get("SE") or "hex").lower()
    mime = str(signature.get("SM") or "application/x-der").lower()
    if mime != "application/x-der":
        raise OcmfError(Verdict.UNSUPPORTED, f"signature format {mime!r}")
    try:
        if encoding == "hex":
            return bytes.fromhex(signature["SD"])
        if encoding == "base64":
            return base64.b64decode(signature["SD"], validate=True)
    except (ValueError, binascii.Error):
        raise OcmfError(Verdict.MALFORMED, f"SD is not {encoding}") from None
    raise OcmfError(Verdict.UNSUPPORTED, f"signature encoding {encoding!r}")


def load_public_key(value: str | bytes) -> ec.EllipticCurvePublicKey:
    """A meter's EC public key from DER SubjectPublicKeyInfo as bytes, hex, base64 (OCPP), base64 of the hex text
    (seen in the field), or PEM; OcmfError(MALFORMED) otherwise."""
    data = value.encode() if isinstance(value, str) else value
    text = data.strip()
    candidates: list[bytes] = [text]
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text)
        except (ValueError, UnsupportedAlgorithm):
            raise OcmfError(Verdict.MALFORMED, "PEM text is not a public key") from None
        return _ec(key)
    for decode in (bytes.fromhex, lambda b: base64.b64decode(b, validate=True)):
        try:
            raw = decode(text.decode("ascii"))  # type: ignore[operator]
        except (ValueError, binascii.Error, UnicodeDecodeError):
            continue
        candidates.append(raw)
        with contextlib.suppress(ValueError, UnicodeDecodeError):  # base64 of the hex text
            candidates.append(bytes.fromhex(raw.decode("ascii")))
    for der in candidates:
        try:
            return _ec(serialization.load_der_public_key(der))
        except (ValueError, UnsupportedAlgorithm):
            continue
    raise OcmfError(Verdict.MALFORMED, "not an EC public key (DER SubjectPublicKeyInfo as hex, base64 or PEM)")


def _ec(key: Any) -> ec.EllipticCurvePublicKey:
    """The key if it is an EC key."""
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise OcmfError(Verdict.MALFORMED, "the meter key is not an elliptic-curve key")
    return key


def public_key_hex(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> str:
    """A key's DER SubjectPublicKeyInfo in upper-case hex, as OCMF tools publish meter keys."""
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER,
                               serialization.PublicFormat.SubjectPublicKeyInfo).hex().upper()


def public_key_base64(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> str:
    """The same DER in base64, as OCPP's signedMeterValue.publicKey carries it."""
    return base64.b64encode(bytes.fromhex(public_key_hex(key))).decode()


def _numbers(value: Any) -> list[float]:
    """Every float in a JSON value (to refuse NaN and infinities before signing)."""
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [n for v in value.values() for n in _numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []
