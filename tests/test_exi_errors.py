"""The codec's failures: encode errors name the element path and the broken rule; every bad stream given
to decode raises ExiDecodeError (never another exception), quickly and without big allocations."""

from __future__ import annotations

import contextlib
import copy
import tracemalloc

import pytest
from helpers.tools import exi_fuzz as fuzz  # reference vectors and bit-level stream surgery

from v2gstack import exi
from v2gstack.exi import ExiDecodeError, ExiEncodeError

VECTORS = fuzz.load_vectors()
needs_vectors = pytest.mark.skipif(not VECTORS, reason="reference vectors not available")

SID = "B0509C8EF715798A"
MSG = ["V2G_Message", "Body"]
# din SessionSetupReq (SessionID "00") and iso2 SessionSetupRes, from the reference vectors
DIN_SETUP = bytes.fromhex("809a004011d01b486c1104ec3c00")
DIN_SID_LEN_BIT = 18  # the 8-bit Unsigned Integer 1 = length of SessionID, followed by its byte 0x00
ISO2_SETUP_RES = bytes.fromhex("8098022c142723bdc55e6291e02031552cc4c8cd14c4c8ccd01ad6b25b00c0")
ISO2_EVSEID_LEN_BIT = 110  # string length + 2 (= 12) of EVSEID "UK123E1234"
ISO2_TIMESTAMP_BIT = 203  # the Unsigned Integer magnitude of EVSETimeStamp 1795463894 (xs:long)


def iso2(body: dict, header: dict | None = None) -> dict:
    return {"V2G_Message": {"Header": header if header is not None else {"SessionID": SID}, "Body": body}}


CHARGING_STATUS_RES = {"ChargingStatusRes": {
    "ResponseCode": "OK", "EVSEID": "UK123E1234", "SAScheduleTupleID": 1,
    "EVSEMaxCurrent": {"Multiplier": 0, "Unit": "A", "Value": 300}, "ReceiptRequired": False,
    "AC_EVSEStatus": {"NotificationMaxDelay": 0, "EVSENotification": "None", "RCD": False}}}
SERVICE_SELECTION = {"PaymentServiceSelectionReq": {
    "SelectedPaymentOption": "ExternalPayment", "SelectedServiceList": {"SelectedService": [{"ServiceID": 1}]}}}
DIN_CPD = {"V2G_Message": {"Header": {"SessionID": "00"}, "Body": {"ChargeParameterDiscoveryReq": {
    "EVRequestedEnergyTransferType": "DC_extended", "DC_EVChargeParameter": {
        "DC_EVStatus": {"EVReady": True, "EVErrorCode": "NO_ERROR", "EVRESSSOC": 10},
        "EVMaximumCurrentLimit": {"Value": 32000, "Multiplier": -3, "Unit": "A"},
        "EVMaximumVoltageLimit": {"Value": 50, "Multiplier": 1, "Unit": "V"}}}}}}


def with_value(doc: dict, path: list[str], value) -> dict:
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


def encode_error(ns: str, doc, *, fragment: bool = False) -> ExiEncodeError:
    with pytest.raises(ExiEncodeError) as info:
        exi.encode(ns, doc, fragment=fragment)
    err = info.value
    assert str(err) == f"{'/'.join(err.path) or '<root>'}: {err.rule}"
    return err


def test_base_documents_encode():
    exi.encode("iso2", iso2(CHARGING_STATUS_RES))
    exi.encode("iso2", iso2(SERVICE_SELECTION))
    exi.encode("din", DIN_CPD)


# ------------------------------------------------------------------------------ encode: values
@pytest.mark.parametrize(("ns", "doc", "path", "value", "bounds"), [
    ("iso2", iso2(CHARGING_STATUS_RES), ["ChargingStatusRes", "EVSEMaxCurrent", "Multiplier"], -4, "[-3, 3]"),
    ("iso2", iso2(CHARGING_STATUS_RES), ["ChargingStatusRes", "EVSEMaxCurrent", "Multiplier"], 4, "[-3, 3]"),
    ("iso2", iso2(CHARGING_STATUS_RES), ["ChargingStatusRes", "SAScheduleTupleID"], 256, "[1, 255]"),
    ("iso2", iso2(CHARGING_STATUS_RES), ["ChargingStatusRes", "SAScheduleTupleID"], 0, "[1, 255]"),
    ("iso2", iso2(CHARGING_STATUS_RES), ["ChargingStatusRes", "AC_EVSEStatus", "NotificationMaxDelay"], -1, "[0,"),
    ("iso2", iso2(CHARGING_STATUS_RES), ["ChargingStatusRes", "EVSEMaxCurrent", "Value"], 32768,
     "[-32768, 32767]"),
    ("din", DIN_CPD, ["ChargeParameterDiscoveryReq", "DC_EVChargeParameter", "DC_EVStatus", "EVRESSSOC"], 101,
     "[0, 100]"),
])
def test_value_out_of_range(ns, doc, path, value, bounds):
    err = encode_error(ns, with_value(doc, [*MSG, *path], value))
    assert err.path == [*MSG, *path]
    assert str(value) in err.rule and "range" in err.rule and bounds in err.rule


@pytest.mark.parametrize("value", [10**5000, -(10**5000)], ids=["1e5000", "-1e5000"])
def test_integer_with_thousands_of_digits_is_an_encode_error(value):
    """A range error must not format a huge int (str() refuses past 4300 digits)."""
    doc = with_value(iso2(CHARGING_STATUS_RES), [*MSG, "ChargingStatusRes", "SAScheduleTupleID"], value)
    err = encode_error("iso2", doc)
    assert err.path[-1] == "SAScheduleTupleID"


def test_unbounded_long_with_thousands_of_digits_is_an_encode_error():
    """EVSETimeStamp is xs:long; 10**5000 fails as ExiEncodeError, not ValueError."""
    doc = iso2({"SessionSetupRes": {"ResponseCode": "OK", "EVSEID": "DE*ABC*E123", "EVSETimeStamp": 10**5000}})
    err = encode_error("iso2", doc)
    assert err.path == [*MSG, "SessionSetupRes", "EVSETimeStamp"]


def test_string_that_is_not_an_enumeration_value():
    err = encode_error("iso2", iso2({"SessionStopRes": {"ResponseCode": "Okay"}}))
    assert err.path == [*MSG, "SessionStopRes", "ResponseCode"]
    assert "'Okay'" in err.rule and "enumeration" in err.rule and "FAILED_SequenceError" in err.rule


@pytest.mark.parametrize(("ns", "doc", "path", "ok", "bad", "unit", "limit"), [
    ("iso2", iso2({"SessionStopReq": {"ChargingSession": "Terminate"}}), ["V2G_Message", "Header", "SessionID"],
     "00" * 8, "00" * 9, "9 bytes", "at most 8"),
    ("din", {"V2G_Message": {"Header": {"SessionID": "00"}, "Body": {"SessionSetupReq": {"EVCCID": "00"}}}},
     ["V2G_Message", "Body", "SessionSetupReq", "EVCCID"], "D21B04413B0F0011", "D21B04413B0F00112233",
     "10 bytes", "at most 8"),
    ("iso2", iso2({"SessionSetupRes": {"ResponseCode": "OK", "EVSEID": "", "EVSETimeStamp": 1}}),
     [*MSG, "SessionSetupRes", "EVSEID"], "A" * 37, "A" * 38, "38 characters", "at most 37"),
])
def test_over_max_length(ns, doc, path, ok, bad, unit, limit):
    exi.encode(ns, with_value(doc, path, ok))  # the limit itself is fine
    err = encode_error(ns, with_value(doc, path, bad))
    assert err.path == path
    assert unit in err.rule and limit in err.rule


@pytest.mark.parametrize(("path", "value", "expected"), [
    (["ChargingStatusRes", "SAScheduleTupleID"], True, "expected an integer, got bool"),
    (["ChargingStatusRes", "SAScheduleTupleID"], 1.0, "expected an integer, got float"),
    (["ChargingStatusRes", "SAScheduleTupleID"], "1", "expected an integer, got str"),
    (["ChargingStatusRes", "SAScheduleTupleID"], None, "expected an integer, got NoneType"),
    (["ChargingStatusRes", "ReceiptRequired"], "false", "expected a boolean, got str"),
    (["ChargingStatusRes", "ReceiptRequired"], 0, "expected a boolean, got int"),
    (["ChargingStatusRes", "EVSEID"], 123, "expected a string, got int"),
    (["ChargingStatusRes", "ResponseCode"], 0, "is not one of the enumeration values"),
    (["ChargingStatusRes", "EVSEMaxCurrent"], 300, "expected an object"),
    (["ChargingStatusRes", "EVSEMaxCurrent"], [{"Multiplier": 0, "Unit": "A", "Value": 300}], "expected an object"),
])
def test_wrong_python_types(path, value, expected):
    err = encode_error("iso2", with_value(iso2(CHARGING_STATUS_RES), [*MSG, *path], value))
    assert err.path == [*MSG, *path]
    assert expected in err.rule


@pytest.mark.parametrize(("value", "expected"), [
    (1234, "expected a hex string, got int"), (["AB"], "expected a hex string, got list"),
    ("zz", "not valid hexBinary"), (b"\x00", "expected a hex string, got bytes"),
])
def test_wrong_hex_values(value, expected):
    err = encode_error("iso2", iso2({"SessionStopReq": {"ChargingSession": "Terminate"}}, {"SessionID": value}))
    assert err.path == ["V2G_Message", "Header", "SessionID"] and expected in err.rule


# ------------------------------------------------------------------------------ encode: structure
def test_missing_required_element():
    err = encode_error("iso2", iso2({"SessionStopRes": {}}))
    assert err.path == [*MSG, "SessionStopRes"]
    assert "required" in err.rule and "ResponseCode" in err.rule
    err = encode_error("iso2", iso2({"SessionStopReq": {"ChargingSession": "Terminate"}}, {}))
    assert err.path == ["V2G_Message", "Header"] and "SessionID" in err.rule
    err = encode_error("iso2", {"V2G_Message": {"Header": {"SessionID": SID}}})
    assert err.path == ["V2G_Message"] and "Body" in err.rule


def test_unknown_field():
    err = encode_error("iso2", iso2({"SessionStopRes": {"ResponseCode": "OK", "Foo": 1}}))
    assert err.path == [*MSG, "SessionStopRes"]
    assert "unknown" in err.rule and "'Foo'" in err.rule and "ResponseCode" in err.rule
    doc = with_value(iso2(SERVICE_SELECTION), [*MSG, "PaymentServiceSelectionReq", "SelectedServiceList",
                                              "SelectedService"], [{"ServiceID": 1}, {"ServiceID": 2, "X": 1}])
    err = encode_error("iso2", doc)
    assert err.path[-1] == "SelectedService[1]" and "'X'" in err.rule  # list items are named by index


def test_non_list_where_the_schema_allows_many():
    path = [*MSG, "PaymentServiceSelectionReq", "SelectedServiceList", "SelectedService"]
    err = encode_error("iso2", with_value(iso2(SERVICE_SELECTION), path, {"ServiceID": 1}))
    assert err.path == path and "expected a list" in err.rule and "dict" in err.rule


@pytest.mark.parametrize(("path", "item", "max_occurs"), [
    (["PaymentServiceSelectionReq", "SelectedServiceList", "SelectedService"], {"ServiceID": 1}, 16),
])
def test_too_many_occurrences(path, item, max_occurs):
    doc = iso2(SERVICE_SELECTION)
    exi.encode("iso2", with_value(doc, [*MSG, *path], [item] * max_occurs))
    err = encode_error("iso2", with_value(doc, [*MSG, *path], [item] * (max_occurs + 1)))
    assert err.path == [*MSG, *path[:-1], f"{path[-1]}[{max_occurs}]"] and "too many occurrences" in err.rule


def test_too_many_payment_options():
    res = {"ServiceDiscoveryRes": {
        "ResponseCode": "OK", "PaymentOptionList": {"PaymentOption": ["ExternalPayment"] * 3},
        "ChargeService": {"ServiceID": 1, "ServiceCategory": "EVCharging", "FreeService": False,
                          "SupportedEnergyTransferMode": {"EnergyTransferMode": ["AC_three_phase_core"]}}}}
    err = encode_error("iso2", iso2(res))
    assert err.path == [*MSG, "ServiceDiscoveryRes", "PaymentOptionList", "PaymentOption[2]"]
    assert "too many occurrences" in err.rule


def test_unknown_root():
    err = encode_error("iso2", {"Foo": {}})
    assert err.path == ["Foo"] and "not a global element" in err.rule and "iso2" in err.rule
    err = encode_error("iso2", {"Foo": {}}, fragment=True)
    assert err.path == ["Foo"] and "not a fragment element" in err.rule
    err = encode_error("din", {"SignedInfo": {}})  # an xmldsig element
    assert err.path == ["SignedInfo"]


@pytest.mark.parametrize("doc", [[], None, "V2G_Message", {}, {"V2G_Message": {}, "Other": {}}])
def test_document_is_not_a_one_root_dict(doc):
    err = encode_error("iso2", doc)
    assert err.path == [] and "exactly one root" in err.rule


def test_unknown_namespace_is_value_error():
    with pytest.raises(ValueError, match="unknown EXI namespace 'iso3'"):
        exi.encode("iso3", {"V2G_Message": {}})
    with pytest.raises(ValueError, match="unknown EXI namespace"):
        exi.decode("ISO_V2_MSG_DEF", b"\x80\x00")


# ------------------------------------------------------------------------------ decode
@pytest.mark.parametrize("data", [b"", b"$EXI"])
def test_empty_input(data):
    with pytest.raises(ExiDecodeError, match="empty"):
        exi.decode("din", data)


@pytest.mark.parametrize("header", [0x00, 0x40, 0xC0, 0xFF, 0xA0, 0x81, 0x9F])
def test_bad_header_byte(header):
    with pytest.raises(ExiDecodeError, match="header"):
        exi.decode("din", bytes([header]) + DIN_SETUP[1:])


@pytest.mark.parametrize("data", ["809a00", None, [0x80], 128])
def test_input_that_is_not_bytes(data):
    with pytest.raises(ExiDecodeError, match="expected bytes"):
        exi.decode("din", data)


def test_bytes_like_inputs():
    doc = exi.decode("din", DIN_SETUP)
    assert exi.decode("din", bytearray(DIN_SETUP)) == doc
    assert exi.decode("din", memoryview(DIN_SETUP)) == doc
    assert exi.decode("din", b"$EXI" + DIN_SETUP) == doc


@needs_vectors
def test_every_prefix_of_every_reference_vector_raises_exi_decode_error():
    checked = 0
    for ns, frag, data, _ in VECTORS:
        for k in range(len(data)):
            try:
                exi.decode(ns, data[:k], fragment=frag)
            except ExiDecodeError:
                checked += 1
                continue
            except Exception as e:
                pytest.fail(f"{ns} prefix {data[:k].hex()} of {data.hex()}: {type(e).__name__}: {e}")
            pytest.fail(f"{ns} prefix {data[:k].hex()} of {data.hex()} decoded")
    assert checked > 1000


@needs_vectors
def test_bit_truncations_zero_padded_decode_or_raise_exi_decode_error():
    """Cut a vector at every bit and pad with zero bits: that may still decode (zeros can be padding)."""
    for ns, frag, data, _ in VECTORS[::8]:
        for cut in range(1, len(data) * 8 - 8):
            short = fuzz.bits_delete(data, len(data) * 8 - cut, cut)
            with contextlib.suppress(ExiDecodeError):
                exi.decode(ns, short, fragment=frag)


@needs_vectors
@pytest.mark.parametrize("garbage", [b"\x00", b"\xff", b"\xff" * 16, b"garbage", bytes(range(256))])
def test_trailing_garbage_is_ignored(garbage):
    """After the document's end event the rest of the stream is padding: decoding gives the same document."""
    for ns, frag, data, doc in VECTORS:
        assert exi.decode(ns, data + garbage, fragment=frag) == doc


def _with_varint(data: bytes, bit: int, old_bits: int, new: bytes) -> bytes:
    """Replace the `old_bits`-bit field at `bit` by the bytes `new` (an Unsigned Integer)."""
    return fuzz.bits_insert(fuzz.bits_delete(data, bit, old_bits), bit, int.from_bytes(new, "big"), len(new) * 8)


def test_stream_surgery_positions():
    v = int.from_bytes(DIN_SETUP, "big")
    assert (v >> (len(DIN_SETUP) * 8 - DIN_SID_LEN_BIT - 16)) & 0xFFFF == 0x0100
    assert exi.decode("din", _with_varint(DIN_SETUP, DIN_SID_LEN_BIT, 8, b"\x01")) == exi.decode("din", DIN_SETUP)
    bits = bin(int.from_bytes(ISO2_SETUP_RES, "big"))[2:].zfill(len(ISO2_SETUP_RES) * 8)
    assert bits[ISO2_EVSEID_LEN_BIT: ISO2_EVSEID_LEN_BIT + 8] == "00001100"
    ts = fuzz.varint(1795463894)
    assert bits[ISO2_TIMESTAMP_BIT: ISO2_TIMESTAMP_BIT + 8 * len(ts)] == bin(int.from_bytes(ts, "big"))[2:].zfill(40)


@pytest.mark.parametrize("length", [2**31, 2**32, 2**40, 2**64 - 1, 2**64, 10**30])
def test_length_field_claiming_gigabytes_fails_fast_without_allocating(length):
    cases = [("din", _with_varint(DIN_SETUP, DIN_SID_LEN_BIT, 8, fuzz.varint(length))),
             ("iso2", _with_varint(ISO2_SETUP_RES, ISO2_EVSEID_LEN_BIT, 8, fuzz.varint(length + 2)))]
    for ns, data in cases:
        tracemalloc.start()
        try:
            with pytest.raises(ExiDecodeError, match="runs past the end"):
                exi.decode(ns, data)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 1024 * 1024, f"decoding a {len(data)}-byte stream allocated {peak} bytes"


@pytest.mark.parametrize("run", [10, 100, 2000, 2100, 5000])  # 10 * 7 bits: past xs:long
def test_huge_unsigned_integer_is_an_exi_decode_error(run):
    """Runs of continuation bytes (lengths of hexBinary and strings, integer values) end in ExiDecodeError,
    never in a plain ValueError from formatting an int of thousands of digits."""
    ff = b"\xff" * run + b"\x01"
    cases = [("din SessionID length", "din", _with_varint(DIN_SETUP, DIN_SID_LEN_BIT, 8, ff)),
             ("iso2 EVSEID length", "iso2", _with_varint(ISO2_SETUP_RES, ISO2_EVSEID_LEN_BIT, 8, ff)),
             ("iso2 EVSETimeStamp", "iso2", _with_varint(ISO2_SETUP_RES, ISO2_TIMESTAMP_BIT, 40, ff))]
    for what, ns, data in cases:
        try:
            exi.decode(ns, data)
        except ExiDecodeError:
            continue
        except Exception as e:
            pytest.fail(f"{what}: {type(e).__name__}: {e}\n{ns} input: {data.hex()}")
        pytest.fail(f"{what}: decoded a {run}-byte unsigned integer")


def test_a_long_run_of_continuation_bytes_stops_early():
    """A 100 KB Unsigned Integer is refused after MAX_UINT_GROUPS bytes, so decoding does bounded work."""
    from v2gstack.exi.bitstream import MAX_UINT_GROUPS

    data = _with_varint(DIN_SETUP, DIN_SID_LEN_BIT, 8, b"\xff" * 100_000 + b"\x01")
    with pytest.raises(ExiDecodeError, match="unsigned integer longer than") as err:
        exi.decode("din", data)
    assert err.value.bit_position is not None
    assert err.value.bit_position <= DIN_SID_LEN_BIT + 8 * (MAX_UINT_GROUPS + 1)


@needs_vectors
def test_any_error_inside_a_vector_is_an_exi_decode_error():
    """Overwrite each byte of some vectors with 0x00 / 0xFF: the result decodes or raises ExiDecodeError."""
    for ns, frag, data, _ in VECTORS[::4]:
        for i in range(1, len(data)):
            for b in (0x00, 0xFF):
                bad = data[:i] + bytes([b]) + data[i + 1:]
                with contextlib.suppress(ExiDecodeError):
                    exi.decode(ns, bad, fragment=frag)


@pytest.mark.parametrize(("ns", "doc", "fragment"), [
    ("xmldsig", {"SignatureValue": {"value": ""}}, True),
    ("iso20_wpt", {"SignatureValue": {"value": ""}}, False),
    ("xmldsig", {"SignatureValue": {"value": "", "Id": "a"}}, True),
])
def test_decode_reads_what_encode_writes_for_an_empty_value(ns, doc, fragment):
    """An empty value has no CH event: EE is written as a second-level event and must decode back
    (found by the fuzzer's round trip)."""
    data = exi.encode(ns, doc, fragment=fragment)
    try:
        back = exi.decode(ns, data, fragment=fragment)
    except ExiDecodeError as e:
        pytest.fail(f"encode({doc}) = {data.hex()}, which decode rejects: {e}")
    assert back == doc
