"""The CSMS's check of signed meter values: one verdict per sampled value that carries a `signedMeterValue`.

OCPP 2.0.1 and 2.1 carry `signedMeterValue{signedMeterData (base64), encodingMethod, signingMethod, publicKey}`
(2.1 makes signingMethod and publicKey optional: OCMF names its algorithm, and the key is sent or not per
OCPPCommCtrlr.PublicKeyWithSignedMeterValue). The key the CSMS trusts is the one it holds for the meter (registered by
an operator, or read from the station's device model, FiscalMetering.PublicKey); a key only found in the message
proves integrity, not origin, and is reported as such. A verified record must also contain the value the station
reported, else the value was changed outside the meter.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from ..hardware import ocmf
from ..ocpp.units import MeterValueError, normalise

VALID = "valid"  # verifies with the key the CSMS holds, and holds the reported value
VALID_MESSAGE_KEY = "validMessageKey"  # verifies, but only with the key the message itself carries
VALUE_MISMATCH = "valueMismatch"  # the signed readings do not include the reported value
NO_KEY = "noKey"  # neither the CSMS nor the message has the meter's key
BAD = frozenset({"invalid", "keyMismatch", "malformed", VALUE_MISMATCH})
"""Verdicts the API flags as a bad signature (unsupported and noKey are unchecked, not bad)."""

KeyLookup = Callable[[int | None], str | None]  # evseId -> the meter key the CSMS holds (DER hex), if any


def verdict(sv: dict[str, Any], held_key: str | None) -> str | None:
    """The verdict for one SampledValueType (None when it carries no signed value)."""
    signed = sv.get("signedMeterValue")
    if not signed:
        return None
    if str(signed.get("encodingMethod", "")).upper() != "OCMF":
        return ocmf.Verdict.UNSUPPORTED.value
    try:
        record = ocmf.parse(_record_text(signed["signedMeterData"]))
    except ocmf.OcmfError as e:
        return e.verdict.value
    method = signed.get("signingMethod")
    if method and method != record.method:
        return ocmf.Verdict.KEY_MISMATCH.value  # the message names another algorithm than the record it carries
    message_key = _key(signed.get("publicKey"))
    if isinstance(message_key, str):
        return message_key
    key, source = (held_key, VALID) if held_key else (message_key, VALID_MESSAGE_KEY)
    if key is None:
        return NO_KEY
    if held_key and message_key is not None and ocmf.public_key_hex(message_key) != ocmf.public_key_hex(
            ocmf.load_public_key(held_key)):
        return ocmf.Verdict.KEY_MISMATCH.value
    result = ocmf.verify(record, key)
    if result is not ocmf.Verdict.VALID:
        return result.value
    return source if _holds_value(sv, record) else VALUE_MISMATCH


def _record_text(data: str) -> str:
    """signedMeterData as text: base64 of the record (OCPP: "Base64 encoded"), or the record itself."""
    if data.startswith(ocmf.HEADER + "|"):
        return data
    try:
        return base64.b64decode(data, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise ocmf.OcmfError(ocmf.Verdict.MALFORMED, "signedMeterData is neither base64 nor an OCMF record") from None


def _key(value: Any) -> ec.EllipticCurvePublicKey | str | None:
    """The key a message carries (None when absent or empty, as 2.0.1 allows), or the verdict of a broken one."""
    if not value:
        return None
    try:
        return ocmf.load_public_key(value)
    except ocmf.OcmfError as e:
        return e.verdict.value


def _holds_value(sv: dict[str, Any], record: ocmf.Record) -> bool:
    """Whether the reported energy value is one of the record's readings (a non-energy measurand: not checked)."""
    try:
        n = normalise(sv)
    except MeterValueError:
        return False
    if n.unit != "Wh":
        return True
    return any(abs(r - n.value) <= 1e-6 * max(1.0, abs(r)) for r in record.readings_wh())


def held_key(value: str) -> str:
    """An operator's or device model's meter key, checked and stored as DER hex (OcmfError when it is none)."""
    return ocmf.public_key_hex(ocmf.load_public_key(value))
