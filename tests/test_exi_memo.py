"""The codec's memo of recent small documents: a remembered answer is exactly the answer, and never shared."""

from __future__ import annotations

import copy

import pytest

from v2gstack import exi
from v2gstack.exi.codec import namespace


def _loop_res(voltage: int = 400) -> dict:
    return {"V2G_Message": {"Header": {"SessionID": "0A1B2C3D4E5F6071"}, "Body": {"CurrentDemandRes": {
        "ResponseCode": "OK",
        "DC_EVSEStatus": {"NotificationMaxDelay": 0, "EVSENotification": "None", "EVSEIsolationStatus": "Valid",
                          "EVSEStatusCode": "EVSE_Ready"},
        "EVSEPresentVoltage": {"Multiplier": 0, "Unit": "V", "Value": voltage},
        "EVSEPresentCurrent": {"Multiplier": -1, "Unit": "A", "Value": 1000},
        "EVSECurrentLimitAchieved": False, "EVSEVoltageLimitAchieved": False, "EVSEPowerLimitAchieved": False,
        "EVSEMaximumVoltageLimit": {"Multiplier": 0, "Unit": "V", "Value": 500},
        "EVSEID": "DE*V2G*ECS1*1", "SAScheduleTupleID": 1}}}}


def test_a_remembered_document_codes_as_a_fresh_one() -> None:
    doc = _loop_res()
    first = exi.encode("iso2", doc)
    namespace("iso2").encoded.entries.clear()
    assert exi.encode("iso2", copy.deepcopy(doc)) == first
    assert exi.encode("iso2", doc) == first  # from the memo now
    assert exi.encode("iso2", _loop_res(401)) != first
    assert exi.decode("iso2", first) == doc


def test_a_decoded_document_is_the_callers_own() -> None:
    data = exi.encode("iso2", _loop_res())
    one = exi.decode("iso2", data)
    one["V2G_Message"]["Body"]["CurrentDemandRes"]["EVSEPresentVoltage"]["Value"] = 1
    two = exi.decode("iso2", data)
    assert two == _loop_res()
    assert two is not one


def test_a_value_of_another_type_is_not_taken_for_a_remembered_one() -> None:
    exi.encode("iso2", _loop_res())
    doc = _loop_res()
    doc["V2G_Message"]["Body"]["CurrentDemandRes"]["EVSEPowerLimitAchieved"] = 0  # equal to False, not a boolean
    with pytest.raises(exi.ExiEncodeError):
        exi.encode("iso2", doc)


def test_a_document_that_cannot_be_remembered_is_refused_as_before() -> None:
    doc = _loop_res()
    doc["V2G_Message"]["Body"]["CurrentDemandRes"]["EVSEID"] = ["not", "hashable", {"x"}]
    with pytest.raises(exi.ExiEncodeError):
        exi.encode("iso2", doc)


def test_a_document_decoded_afresh_is_the_callers_own_too() -> None:
    data = exi.encode("iso2", _loop_res(402))
    namespace("iso2").decoded.entries.clear()
    one = exi.decode("iso2", data)  # decoded (a miss): handed out as decoded, its snapshot remembered
    one["V2G_Message"]["Body"]["CurrentDemandRes"]["EVSEID"] = "changed"
    two = exi.decode("iso2", data)  # from the memo
    assert two == _loop_res(402)
    assert namespace("iso2").decoded.entries


def test_equal_values_of_other_types_are_remembered_apart() -> None:
    ns = namespace("iso2")
    ns.encoded.entries.clear()
    doc = _loop_res()
    as_float = copy.deepcopy(doc)
    as_float["V2G_Message"]["Body"]["CurrentDemandRes"]["SAScheduleTupleID"] = 1.0
    exi.encode("iso2", doc)
    with pytest.raises(exi.ExiEncodeError):  # 1.0 is no unsignedByte, however equal to 1
        exi.encode("iso2", as_float)
    assert len(ns.encoded.entries) == 1


def test_physical_values_of_every_length_code_alike_both_ways() -> None:
    ns = namespace("iso2")
    voltages = [0, 5, 127, 128, 400, 16383, 16384, -1, -128, -129, -200, 400, 128, 5]  # value fields of 8-24 bits
    for v in voltages:
        ns.decoded.entries.clear()
        ns.encoded.entries.clear()
        assert exi.decode("iso2", exi.encode("iso2", _loop_res(v))) == _loop_res(v)


def test_a_decoded_element_is_each_callers_own() -> None:
    ns = namespace("iso2")
    data = exi.encode("iso2", _loop_res(300))
    ns.decoded.entries.clear()
    one = exi.decode("iso2", data)
    ns.decoded.entries.clear()
    two = exi.decode("iso2", data)
    a = one["V2G_Message"]["Body"]["CurrentDemandRes"]["EVSEMaximumVoltageLimit"]
    b = two["V2G_Message"]["Body"]["CurrentDemandRes"]["EVSEMaximumVoltageLimit"]
    assert a == b and a is not b
