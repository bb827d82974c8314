"""Sans-I/O tests of the OCPP-J engine: frame parsing and building, CallError codes per version, schema quirks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from helpers.ocpp import AUTHORIZE, BOOT, NOW, TRANSACTION_EVENT
from hypothesis import given, settings
from hypothesis import strategies as st

from v2gstack.ocpp import ErrorCode, PayloadInvalid, RpcEngine, Version, default_store
from v2gstack.ocpp import frames as fr
from v2gstack.ocpp.engine import Answer, IncomingCall, Reply
from v2gstack.ocpp.errors import CallErrorReceived

HANDLED = {"BootNotification", "Heartbeat", "Authorize", "TransactionEvent", "NotifyPeriodicEventStream"}


def engine(version: str = "2.0.1", **kw: Any) -> RpcEngine:
    """An engine that pretends to have handlers for HANDLED."""
    return RpcEngine(version, handled=HANDLED, **kw)


def refused(e: RpcEngine, text: str | bytes) -> list[Any]:
    """The CALLERROR the engine answers `text` with."""
    ev = e.receive(text)
    assert isinstance(ev, Reply), ev
    return json.loads(ev.text)


# ----- frames -----

def test_build_frames_are_compact_json() -> None:
    """Frames are the plain OCPP-J arrays, no spaces, non-ASCII kept."""
    assert fr.build_call("1", "Heartbeat", {}) == '[2,"1","Heartbeat",{}]'
    assert fr.build_result("1", {"currentTime": NOW}) == f'[3,"1",{{"currentTime":"{NOW}"}}]'
    assert fr.build_send("9", "X", {"a": "é"}) == '[6,"9","X",{"a":"é"}]'
    err = fr.build_error("1", ErrorCode.FORMAT_VIOLATION, "bad", None, Version.V201)
    assert json.loads(err) == [4, "1", "FormatViolation", "bad", {}]
    assert json.loads(fr.build_error("1", ErrorCode.FORMAT_VIOLATION, "x" * 999, {}, Version.V16))[3].endswith("...")


def test_parse_each_message_type() -> None:
    """CALL, CALLRESULT, CALLERROR, and in 2.1 CALLRESULTERROR and SEND."""
    f = fr.parse('[2,"a","Heartbeat",{}]', Version.V201)
    assert (f.type, f.id, f.action, f.payload) == (2, "a", "Heartbeat", {})
    f = fr.parse(b'[3,"a",{"x":1}]', Version.V16)
    assert (f.type, f.payload) == (3, {"x": 1})
    f = fr.parse('[4,"a","NotSupported","no",{"k":1}]', Version.V201)
    assert (f.error_code, f.error_description, f.error_details) == ("NotSupported", "no", {"k": 1})
    f = fr.parse('[5,"a","FormatViolation","",{}]', Version.V21)
    assert f.type == 5
    f = fr.parse('  [6,"a","NotifyPeriodicEventStream",{}] ', Version.V21)
    assert (f.type, f.action) == (6, "NotifyPeriodicEventStream")


@given(st.text(max_size=40), st.sampled_from(["1.6", "2.0.1", "2.1"]))
@settings(max_examples=200, deadline=None)
def test_any_text_is_answered_or_ignored_never_raises(text: str, version: str) -> None:
    """Whatever arrives, the engine returns an event; it never raises."""
    engine(version).receive(text)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                    max_leaves=12))
@settings(max_examples=200, deadline=None)
def test_any_json_is_answered_or_ignored_never_raises(value: Any) -> None:
    """Arbitrary JSON values (mostly wrong frames) never make the engine raise."""
    engine("2.1").receive(json.dumps(value))


# ----- CallError codes for malformed frames -----

@pytest.mark.parametrize(("text", "code", "mid"), [
    ("this is not json", "FormatViolation", "-1"),
    ('[2,"a","Heartbeat",{"x":NaN}]', "FormatViolation", "-1"),
    (b"\xff\xfe", "FormatViolation", "-1"),
    ('{"not":"an array"}', "FormatViolation", "-1"),
    ("[]", "ProtocolError", "-1"),
    ('["2","a","Heartbeat",{}]', "FormatViolation", "a"),
    ('[2,"a","Heartbeat"]', "ProtocolError", "a"),
    ('[2,"a","Heartbeat",{},1]', "ProtocolError", "a"),
    ('[2,"a",7,{}]', "FormatViolation", "a"),
    ('[2,"a","Heartbeat",[]]', "FormatViolation", "a"),
    ('[2,17,"Heartbeat",{}]', "RpcFrameworkError", "-1"),
    ('[2,"","Heartbeat",{}]', "RpcFrameworkError", "-1"),
    ('[7,"a","Heartbeat",{}]', "MessageTypeNotSupported", "a"),
    ('[6,"a","Heartbeat",{}]', "MessageTypeNotSupported", "a"),  # SEND does not exist in 2.0.1
    ('[2,"a","NoSuchAction",{}]', "NotImplemented", "a"),
    ('[2,"a","Reset",{"type":"Immediate"}]', "NotSupported", "a"),  # known action, no handler
])
def test_malformed_frames_get_the_exact_callerror(text: str | bytes, code: str, mid: str) -> None:
    """Each malformed CALL gets the CALLERROR code the OCPP-J specification gives it."""
    answer = refused(engine(), text)
    assert answer[0] == 4 and answer[1] == mid and answer[2] == code
    assert isinstance(answer[3], str) and isinstance(answer[4], dict)


def test_long_message_id_is_rpc_framework_error() -> None:
    """A MessageId longer than 36 characters is refused."""
    assert refused(engine(), json.dumps([2, "x" * 37, "Heartbeat", {}]))[2] == "RpcFrameworkError"


def test_reused_message_id_is_refused() -> None:
    """A CALL id the peer already used on this connection is an RPC framework error."""
    e = engine()
    assert isinstance(e.receive('[2,"dup","Heartbeat",{}]'), IncomingCall)
    answer = refused(e, '[2,"dup","Heartbeat",{}]')
    assert answer[:3] == [4, "dup", "RpcFrameworkError"]


def test_unknown_message_type_is_ignored_in_16() -> None:
    """OCPP-J 1.6 4.1.3: an unknown MessageTypeId is ignored, not answered."""
    assert type(engine("1.6").receive('[7,"a","Heartbeat",{}]')).__name__ == "Ignored"


# ----- schema violations -----

@pytest.mark.parametrize(("payload", "code"), [
    ({}, "OccurrenceConstraintViolation"),
    ({"idToken": {"idToken": 42, "type": "ISO14443"}}, "TypeConstraintViolation"),
    ({"idToken": {"idToken": "A", "type": "Bogus"}}, "PropertyConstraintViolation"),
    ({"idToken": {"idToken": "A" * 37, "type": "ISO14443"}}, "PropertyConstraintViolation"),
    ({"idToken": {"idToken": "A", "type": "ISO14443"}, "extra": 1}, "ProtocolError"),
    ({"idToken": {"idToken": "A", "type": "ISO14443", "additionalInfo": []}}, "OccurrenceConstraintViolation"),
])
def test_schema_violations_map_to_codes_201(payload: dict[str, Any], code: str) -> None:
    """Missing field -> Occurrence, wrong type -> Type, bad value -> Property, unknown field -> ProtocolError."""
    answer = refused(engine(), json.dumps([2, "m", "Authorize", payload]))
    assert answer[2] == code
    assert answer[4]["path"].startswith("payload")


def test_16_uses_its_own_spellings() -> None:
    """OCPP-J 1.6 keeps FormationViolation and OccurenceConstraintViolation (errata 5.1, 5.2)."""
    e = RpcEngine("1.6", handled={"Authorize", "Heartbeat"})
    assert refused(e, "nope")[2] == "FormationViolation"
    assert refused(e, '[2,"a","Authorize",{}]')[2] == "OccurenceConstraintViolation"
    assert refused(e, '[2,"b","Authorize",{"idTag":"x","y":1}]')[2] == "FormationViolation"
    assert refused(e, '[2,"c","Authorize",{"idTag":5}]')[2] == "TypeConstraintViolation"
    assert refused(e, '[2,17,"Heartbeat",{}]')[2] == "GenericError"  # 1.6 has no RpcFrameworkError


def test_error_code_parsing_accepts_every_spelling() -> None:
    """Received codes are understood whatever version's spelling the peer uses."""
    assert ErrorCode.parse("FormationViolation") is ErrorCode.FORMAT_VIOLATION
    assert ErrorCode.parse("OccurenceConstraintViolation") is ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION
    assert ErrorCode.parse("SecurityError") is ErrorCode.SECURITY_ERROR
    assert ErrorCode.parse("Whatever") is None


def test_valid_messages_of_each_version_pass() -> None:
    """Realistic payloads validate in 1.6, 2.0.1 and 2.1."""
    e201 = engine()
    for action, payload in [("BootNotification", BOOT), ("Authorize", AUTHORIZE),
                            ("TransactionEvent", TRANSACTION_EVENT), ("Heartbeat", {})]:
        assert isinstance(e201.receive(fr.build_call(action, action, payload)), IncomingCall)
    e16 = RpcEngine("1.6", handled={"BootNotification"})
    ev = e16.receive(fr.build_call("1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}))
    assert isinstance(ev, IncomingCall)
    e21 = engine("2.1")
    assert isinstance(e21.receive(fr.build_call("1", "TransactionEvent", TRANSACTION_EVENT)), IncomingCall)


def test_16_decimal_multiple_of_is_not_a_float_artifact() -> None:
    """1.6 charging schedules say multipleOf 0.1; 21.4 must pass although 21.4 / 0.1 is not exact in floats."""
    e = RpcEngine("1.6", handled={"SetChargingProfile"})
    profile = {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {
            "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 21.4}]}}}
    assert isinstance(e.receive(fr.build_call("1", "SetChargingProfile", profile)), IncomingCall)
    profile["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"] = 21.45
    assert refused(e, fr.build_call("2", "SetChargingProfile", profile))[2] == "PropertyConstraintViolation"


def test_validation_never_changes_a_payload() -> None:
    """Schemas with "default" values must not fill them in (fastjsonschema would, by default)."""
    e = engine()
    payload = json.loads(json.dumps(TRANSACTION_EVENT))
    ev = e.receive(fr.build_call("1", "TransactionEvent", payload))
    assert isinstance(ev, IncomingCall) and ev.payload == TRANSACTION_EVENT


def test_camel_case_names_are_kept_exactly() -> None:
    """2.1 names that snake_case round trips break (limit_L2, dischargeLimit_L2) go through untouched."""
    e = RpcEngine("2.1", handled={"SetChargingProfile"})
    period = {"startPeriod": 0, "limit": 16.0, "limit_L2": 16.0, "limit_L3": 16.0, "dischargeLimit_L2": -8.0}
    payload = {"evseId": 1, "chargingProfile": {
        "id": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile", "chargingProfileKind": "Absolute",
        "chargingSchedule": [{"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [period]}]}}
    ev = e.receive(fr.build_call("1", "SetChargingProfile", payload))
    assert isinstance(ev, IncomingCall)
    assert ev.payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0] == period


# ----- outgoing and correlation -----

def test_outgoing_call_is_validated_before_it_exists() -> None:
    """An invalid outgoing payload raises with the code, and nothing is left pending."""
    e = engine()
    with pytest.raises(PayloadInvalid) as info:
        e.make_call("Authorize", {"idToken": {"idToken": 1, "type": "ISO14443"}})
    assert info.value.code is ErrorCode.TYPE_CONSTRAINT_VIOLATION
    with pytest.raises(PayloadInvalid) as info:
        e.make_call("NoSuchAction", {})
    assert info.value.code is ErrorCode.NOT_IMPLEMENTED
    assert e.pending == {}


def test_answers_are_correlated_and_validated() -> None:
    """CALLRESULTs match pending ids and are checked against the response schema; others are ignored."""
    e = engine()
    mid, _ = e.make_call("Heartbeat", {})
    assert type(e.receive(fr.build_result("other", {"currentTime": NOW}))).__name__ == "Ignored"
    ev = e.receive(fr.build_result(mid, {"currentTime": NOW}))
    assert isinstance(ev, Answer) and ev.payload == {"currentTime": NOW} and ev.action == "Heartbeat"
    mid, _ = e.make_call("Heartbeat", {})
    ev = e.receive(fr.build_result(mid, {"currentTime": "yesterday"}))
    assert isinstance(ev, Answer) and isinstance(ev.error, PayloadInvalid) and ev.reply is None
    assert ev.error.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    mid, _ = e.make_call("Heartbeat", {})
    ev = e.receive(json.dumps([4, mid, "SecurityError", "no", {"a": 1}]))
    assert isinstance(ev, Answer) and isinstance(ev.error, CallErrorReceived)
    assert ev.error.code is ErrorCode.SECURITY_ERROR and ev.error.details == {"a": 1}
    assert e.pending == {}


def test_21_answers_an_invalid_callresult_with_callresulterror() -> None:
    """OCPP 2.1 FR.06: a CALLRESULT that fails its schema is refused with a CALLRESULTERROR (type 5)."""
    e = engine("2.1")
    mid, _ = e.make_call("Heartbeat", {})
    ev = e.receive(fr.build_result(mid, {}))
    assert isinstance(ev, Answer) and ev.reply is not None
    assert json.loads(ev.reply)[:3] == [5, mid, "OccurrenceConstraintViolation"]


def test_send_is_21_only_and_unanswered() -> None:
    """SEND builds in 2.1, is refused in 2.0.1, and a received SEND is an IncomingCall flagged `send`."""
    payload = {"id": 1, "pending": 0, "basetime": NOW, "data": [{"t": 0.0, "v": "1"}]}
    text = engine("2.1").make_send("NotifyPeriodicEventStream", payload)
    assert json.loads(text)[0] == 6
    with pytest.raises(PayloadInvalid):
        engine("2.0.1").make_send("NotifyPeriodicEventStream", payload)
    ev = engine("2.1").receive(text)
    assert isinstance(ev, IncomingCall) and ev.send
    assert type(engine("2.1").receive('[6,"z","NotifyPeriodicEventStream",{}]')).__name__ == "Ignored"


def test_invalid_handler_result_becomes_internal_error() -> None:
    """A response that fails its schema is never sent: the peer gets InternalError instead."""
    e = engine()
    call = e.receive('[2,"h","Heartbeat",{}]')
    assert isinstance(call, IncomingCall)
    text, err = e.make_result(call, {"currentTime": 12})
    assert err is not None and err.code is ErrorCode.TYPE_CONSTRAINT_VIOLATION
    assert json.loads(text)[:3] == [4, "h", "InternalError"]
    text, err = e.make_result(call, None)
    assert err is not None and json.loads(text)[2] == "InternalError"


def test_oversize_frame_is_answered_from_its_head() -> None:
    """A frame above max_message_size is refused unparsed, answering its CALL id with FormatViolation."""
    e = engine(max_message_size=200)
    big = json.dumps([2, "big", "DataTransfer", {"vendorId": "v", "data": "x" * 500}])
    assert refused(e, big)[:3] == [4, "big", "FormatViolation"]
    assert refused(e, "[" * 300)[:3] == [4, "-1", "FormatViolation"]
    assert isinstance(e.receive('[2,"ok","Heartbeat",{}]'), IncomingCall)


def test_schema_store_knows_every_version() -> None:
    """All three schema sets index, 1.6 (draft-04, request files named after the action) included."""
    store = default_store()
    assert {"BootNotification", "StartTransaction"} <= store[Version.V16].actions
    assert {"BootNotification", "TransactionEvent"} <= store[Version.V201].actions
    assert {"NotifyPeriodicEventStream", "AFRRSignal"} <= store[Version.V21].actions
    assert "TransactionEvent" not in store[Version.V16].actions


# ----- handler registration -----

def test_router_decides_context_and_async_once() -> None:
    """A second positional parameter without default gets the CallContext; coroutine functions run async."""
    import functools

    from v2gstack.ocpp import Router

    r = Router()

    @r.on("Heartbeat")
    def plain(payload: dict[str, Any], note: str = "") -> dict[str, Any]:
        return {}

    @r.on("Authorize")
    async def with_ctx(payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
        return {}

    async def base(payload: dict[str, Any], ctx: Any, extra: int) -> dict[str, Any]:
        return {}

    r.add("BootNotification", functools.partial(base, extra=1))
    h, a, b = r.get("Heartbeat"), r.get("Authorize"), r.get("BootNotification")
    assert h is not None and not h.is_async and not h.wants_context
    assert a is not None and a.is_async and a.wants_context
    assert b is not None and b.is_async and b.wants_context
    assert set(r) == {"Heartbeat", "Authorize", "BootNotification"} and "Reset" not in r
    with pytest.raises(TypeError):
        r.add("Reset", lambda: {})


def test_version_names() -> None:
    """Versions parse from their number or their subprotocol token."""
    assert Version.parse("ocpp2.0.1") is Version.V201 and Version.parse("1.6") is Version.V16
    assert Version.V21.subprotocol == "ocpp2.1"
    with pytest.raises(ValueError):
        Version.parse("ocpp3.0")
