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
