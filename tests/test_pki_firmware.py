"""The signed-firmware check (pki/firmware.py), sans I/O: a good signature, tampered bytes, a signature of another
key, garbage, a signing certificate of another manufacturer, one not valid at the time, a chain through a sub-CA and
one whose link is broken, and an RSA signer."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from v2gstack.pki.firmware import FirmwareRefused, check_signed_firmware, create_firmware_pki, sign_firmware
from v2gstack.pki.issue import Issued, issue, subject_name
from v2gstack.pki.profiles import PROFILES, Kind

DATA = b"V2GSTACK-FIRMWARE 2.0.0\n" + bytes(range(256)) * 8


def pem(*issued: Issued) -> str:
    return "".join(i.cert.public_bytes(serialization.Encoding.PEM).decode() for i in issued)


def refused(status: str, *args: object) -> str:
    with pytest.raises(FirmwareRefused) as info:
        check_signed_firmware(*args)  # type: ignore[arg-type]
    assert info.value.status == status
    return info.value.reason


def test_signatures_and_certificates() -> None:
    root, signer = create_firmware_pki()
    other_root, other_signer = create_firmware_pki("Another Maker")
    roots = [root.cert]
    sig = sign_firmware(DATA, signer.key)  # type: ignore[arg-type]
    assert check_signed_firmware(DATA, sig, pem(signer), roots) == signer.cert
    refused("InvalidSignature", DATA + b"x", sig, pem(signer), roots)
    refused("InvalidSignature", DATA, sign_firmware(DATA, other_signer.key), pem(signer), roots)  # type: ignore[arg-type]
    refused("InvalidSignature", DATA, "not base64!", pem(signer), roots)
    refused("InvalidSignature", DATA, base64.b64encode(b"\x30\x00").decode(), pem(signer), roots)
    assert "not an installed" in refused("InvalidCertificate", DATA, sig, pem(other_signer), roots)
    assert "no ManufacturerRootCertificate" in refused("InvalidCertificate", DATA, sig, pem(signer), [])
    refused("InvalidCertificate", DATA, sig, "-----BEGIN CERTIFICATE-----\nxx\n", roots)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=3 * 365)  # the signing certificate has expired by then
    assert "not valid now" in refused("InvalidCertificate", DATA, sig, pem(signer), roots, later)
    assert other_root.cert != root.cert


def test_chain_through_a_sub_ca_and_an_rsa_signer() -> None:
    root, _ = create_firmware_pki()
    sub = issue(PROFILES[Kind.CPO_SUB_CA2], subject_name("Firmware Sub-CA", "Maker", "DE", None), issuer=root)
    leaf = issue(PROFILES[Kind.FIRMWARE_SIGNING], subject_name("Signer 2", "Maker", "DE", None), issuer=sub)
    sig = sign_firmware(DATA, leaf.key)  # type: ignore[arg-type]
    assert check_signed_firmware(DATA, sig, pem(leaf, sub), [root.cert]) == leaf.cert
    stranger = issue(PROFILES[Kind.CPO_SUB_CA2], subject_name("Stranger CA", "X", "DE", None))
    assert "next certificate" in refused("InvalidCertificate", DATA, sig, pem(leaf, stranger), [root.cert])
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_leaf = issue(PROFILES[Kind.FIRMWARE_SIGNING], subject_name("RSA Signer", "Maker", "DE", None),
                     issuer=root, key=rsa_key)  # type: ignore[arg-type]
    assert check_signed_firmware(DATA, sign_firmware(DATA, rsa_key), pem(rsa_leaf), [root.cert]) == rsa_leaf.cert
