"""OCMF signing and verification (hardware/ocmf.py) with real keys on the curves OCMF allows, a tampered record, a wrong
key, a key on another curve, and the key formats meters and OCPP use."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from v2gstack.hardware import ocmf

PAYLOAD = {"FV": "1.0", "GI": "v2gstack sim meter", "GS": "SIM-0001", "PG": "T1", "MV": "v2gstack", "MS": "SIM-0001",
           "IS": True, "IT": "ISO14443", "ID": "04A1B2C3", "TT": "station CS1 | EVSE 1",
           "RD": [{"TM": "2026-03-01T12:00:00,000+0000 S", "TX": "B", "RV": 1.234, "RI": "1-b:1.8.0", "RU": "kWh",
                   "RT": "AC", "ST": "G"},
                  {"TM": "2026-03-01T12:30:00,000+0000 S", "TX": "E", "RV": 8.5, "RI": "1-b:1.8.0", "RU": "kWh",
                   "RT": "AC", "ST": "G"}]}
CURVES = [("ECDSA-secp256r1-SHA256", ec.SECP256R1()), ("ECDSA-secp384r1-SHA256", ec.SECP384R1()),
          ("ECDSA-brainpool256r1-SHA256", ec.BrainpoolP256R1()), ("ECDSA-secp256k1-SHA256", ec.SECP256K1())]


@pytest.mark.parametrize(("method", "curve"), CURVES, ids=[m for m, _ in CURVES])
def test_sign_and_verify_on_each_curve(method: str, curve: ec.EllipticCurve) -> None:
    """A record signed with a fresh key verifies with its public key in every form it travels in; the payload
    section stays byte for byte what was signed (its '|' included)."""
    key = ec.generate_private_key(curve)
    text = ocmf.sign(PAYLOAD, key, method)
    record = ocmf.parse(text)
    assert record.payload == PAYLOAD and record.method == method and record.text() == text
    assert record.readings_wh() == [1234.0, 8500.0]
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for form in (key.public_key(), ocmf.public_key_hex(key), ocmf.public_key_base64(key), pem,
                 base64.b64encode(ocmf.public_key_hex(key).encode()).decode()):
        assert ocmf.verify(text, form) is ocmf.Verdict.VALID


def test_tampered_records_and_wrong_keys_fail() -> None:
    """A changed reading, a changed signature, another meter's key: invalid; a key on another curve than SA names:
    keyMismatch."""
    key = ec.generate_private_key(ec.SECP256R1())
    text = ocmf.sign(PAYLOAD, key)
    tampered = text.replace('"RV":8.5', '"RV":9.5')
    assert tampered != text and ocmf.verify(tampered, key.public_key()) is ocmf.Verdict.INVALID
    record = ocmf.parse(text)
    sd = record.signature["SD"]
    flipped = sd[:-2] + ("00" if sd[-2:] != "00" else "01")
    changed_sig = ocmf.Record(record.payload_text, record.payload, {**record.signature, "SD": flipped})
    assert ocmf.verify(changed_sig, key.public_key()) is ocmf.Verdict.INVALID
    assert ocmf.verify(text, ec.generate_private_key(ec.SECP256R1()).public_key()) is ocmf.Verdict.INVALID
    assert ocmf.verify(text, ec.generate_private_key(ec.SECP384R1()).public_key()) is ocmf.Verdict.KEY_MISMATCH


def test_unsupported_and_malformed() -> None:
    """An algorithm OCMF lists but `cryptography` lacks (secp192k1), one it does not list, and broken records give
    their own verdicts: never 'valid', never 'invalid' for what could not be checked."""
    key = ec.generate_private_key(ec.SECP256R1())
    record = ocmf.parse(ocmf.sign(PAYLOAD, key))
    for method in ("ECDSA-secp192k1-SHA256", "RSA-SHA256"):
        other = ocmf.Record(record.payload_text, record.payload, {**record.signature, "SA": method})
        assert ocmf.verify(other, key.public_key()) is ocmf.Verdict.UNSUPPORTED
    for text in ("OCMF|{}", "XYZ|{}|{}", "OCMF|[1]|{\"SD\":\"00\"}", "OCMF|{\"a\":NaN}|{\"SD\":\"00\"}",
                 "OCMF|{}|{\"SD\":\"zz\"}", "OCMF|" + "x" * ocmf.MAX_RECORD + "|{}"):
        assert ocmf.verify(text, key.public_key()) is ocmf.Verdict.MALFORMED, text[:40]
    assert ocmf.verify(ocmf.sign(PAYLOAD, key), "not a key") is ocmf.Verdict.MALFORMED
    with pytest.raises(ocmf.OcmfError):
        ocmf.sign(PAYLOAD, ec.generate_private_key(ec.SECP384R1()), "ECDSA-secp256r1-SHA256")


def test_base64_signature_encoding() -> None:
    """SE base64 is the other encoding OCMF defines."""
    key = ec.generate_private_key(ec.SECP384R1())
    record = ocmf.parse(ocmf.sign(PAYLOAD, key, "ECDSA-secp384r1-SHA256"))
    b64 = base64.b64encode(bytes.fromhex(record.signature["SD"])).decode()
    other = ocmf.Record(record.payload_text, record.payload, {**record.signature, "SE": "base64", "SD": b64})
    assert ocmf.verify(other, key.public_key()) is ocmf.Verdict.VALID
    assert json.loads(other.text().rsplit("|", 1)[1])["SE"] == "base64"
