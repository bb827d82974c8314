"""The reference codec harness (tests/refcodec.py): byte-exact on the captured reference vectors."""

from __future__ import annotations

import pytest
from helpers.refcodec import RefCodec, RefCodecError
from helpers.vectors import load_reference_vectors

pytestmark = [
    pytest.mark.reference,
    pytest.mark.skipif(not RefCodec.available(), reason="no working .venv-ref (make ref-venv; needs Java)"),
]

REFERENCE = load_reference_vectors()


@pytest.fixture(scope="module")
def ref():
    with RefCodec() as codec:
        yield codec


@pytest.mark.skipif(not REFERENCE, reason="../shared/vectors not found (set V2GSTACK_SHARED)")
def test_reference_vectors(ref: RefCodec) -> None:
    for v in REFERENCE:
        data = bytes.fromhex(v["exi"])
        assert ref.encode(v["ns"], v["json"], fragment=v["fragment"]).hex() == v["exi"], v["json"]
        assert ref.decode(v["ns"], data, fragment=v["fragment"]) == v["json"], v["exi"]


def test_timing(ref: RefCodec) -> None:
    doc = {"supportedAppProtocolRes": {"ResponseCode": "OK_SuccessfulNegotiation", "SchemaID": 1}}
    enc_us, dec_us = ref.time("appHand", doc, bytes.fromhex("80400040"), n=20)
    assert enc_us > 0 and dec_us > 0


def test_errors_carry_the_server_message(ref: RefCodec) -> None:
    with pytest.raises(RefCodecError, match="unknown namespace"):
        ref.encode("iso99", {"X": {}})
    with pytest.raises(RefCodecError, match="cannot code iso20_wpt"):
        ref.decode("iso20_wpt", b"\x80")
    # The codec drops keys it does not know; the encode check turns that into an error.
    bad = {"V2G_Message": {"Header": {"SessionID": "00"}, "Body": {"NoSuchReq": {}}}}
    with pytest.raises(RefCodecError, match="NoSuchReq"):
        ref.encode("din", bad)
    assert ref.encode("din", bad, check=False)
    with pytest.raises(RefCodecError, match="as a fragment"):
        ref.encode("iso2", {"SalesTariff": {"Id": "id1", "SalesTariffID": 1}})
    with pytest.raises(RefCodecError):
        ref.decode("din", b"\x80\xff\xff")
    # The server answers on after errors.
    assert ref.version()["iso15118"] == "0.31.2"
