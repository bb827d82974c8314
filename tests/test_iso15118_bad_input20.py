"""ISO 15118-20 bad input and timers in memory: each wrong request gets its -20 ResponseCode, the SECC closes after a
FAILED_* answer and names the end (SessionEnded kind and code, the error map's row); the EVCC's timers end its
session with the timer's name; a refused authorization ends as a refusal."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from helpers.iso20 import Doc, RecordingEVSE, pair20, requests, run_pair

from v2gstack import exi
from v2gstack.iso15118.evcc import Send, SessionResult
from v2gstack.iso15118.events import Answered, ScheduleChosen, SessionEnded
from v2gstack.iso15118.evse_sim import SimulatedEVSEConfig
from v2gstack.iso15118.messages import body_name
from v2gstack.iso15118.secc import SeccSession
from v2gstack.iso15118.timers import EvccTimers
from v2gstack.iso15118.v2gtp import PayloadType
from v2gstack.trace.error_map import FAILURES, FailureKind


def ended(evse: RecordingEVSE) -> SessionEnded:
    """The one SessionEnded event."""
    ends = [e for e in evse.seen if isinstance(e, SessionEnded)]
    assert len(ends) == 1, ends
    return ends[0]


def content(doc: Doc) -> Doc:
    """The message content of a -20 document."""
    return next(iter(doc.values()))  # type: ignore[no-any-return]


def _rename(new: str) -> Any:
    """Replace the request by another one (same header)."""
    def modify(doc: Doc) -> Doc:
        return {new: {"Header": content(doc)["Header"]}}
    return modify


def _session(doc: Doc) -> Doc:
    content(doc)["Header"]["SessionID"] = "0102030405060708"
    return doc


def _set(path: tuple[str, ...], value: Any) -> Any:
    """Set one field below the message content."""
    def modify(doc: Doc) -> Doc:
        node = content(doc)
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return doc
    return modify


def _bpt_cpd(doc: Doc) -> Doc:
    c = content(doc)
    mode = c.pop("DC_CPDReqEnergyTransferMode")
    zero = {"Exponent": 0, "Value": 0}
    c["BPT_DC_CPDReqEnergyTransferMode"] = {**mode, "EVMaximumDischargePower": zero,
                                           "EVMinimumDischargePower": zero, "EVMaximumDischargeCurrent": zero,
                                           "EVMinimumDischargeCurrent": zero}
    return doc


def _profile_over_schedule(doc: Doc) -> Doc:
    entries = content(doc)["EVPowerProfile"]["EVPowerProfileEntries"]["EVPowerProfileEntry"]
    entries[0]["Power"] = {"Exponent": 3, "Value": 900}
    return doc


@pytest.mark.parametrize(("energy", "control", "sim", "at", "modify", "kind", "code"), [
    ("dc", "scheduled", None, "AuthorizationSetupReq", _rename("ServiceDiscoveryReq"), FailureKind.SEQUENCE_ERROR,
     "FAILED_SequenceError"),
    ("ac", "dynamic", None, "ServiceDiscoveryReq", _session, FailureKind.UNKNOWN_SESSION, "FAILED_UnknownSession"),
    ("dc", "scheduled", None, "ServiceDetailReq", _set(("ServiceID",), 77), FailureKind.WRONG_CHARGE_PARAMETER,
     "FAILED_ServiceIDInvalid"),
    ("dc", "scheduled", None, "ServiceSelectionReq", _set(("SelectedEnergyTransferService", "ParameterSetID"), 9),
     FailureKind.WRONG_CHARGE_PARAMETER, "FAILED_NoEnergyTransferServiceSelected"),
    ("dc", "scheduled", None, "ServiceSelectionReq", _set(("SelectedEnergyTransferService", "ServiceID"), 1),
     FailureKind.WRONG_CHARGE_PARAMETER, "FAILED_NoEnergyTransferServiceSelected"),  # AC on a -20:DC session
    ("dc", "scheduled", None, "DC_ChargeParameterDiscoveryReq", _bpt_cpd, FailureKind.WRONG_CHARGE_PARAMETER,
     "FAILED_WrongChargeParameter"),
    ("dc", "scheduled", None, "ScheduleExchangeReq", _set(("MaximumSupportingPoints",), 12), None, None),  # fine
    ("ac", "scheduled", None, "PowerDeliveryReq",
     _set(("EVPowerProfile", "Scheduled_EVPPTControlMode", "SelectedScheduleTupleID"), 3),
     FailureKind.PROFILE_INVALID, "FAILED_ScheduleSelectionInvalid"),
    ("ac", "scheduled", None, "PowerDeliveryReq", _profile_over_schedule, FailureKind.PROFILE_INVALID,
     "FAILED_EVPowerProfileInvalid"),
    ("dc", "dynamic", SimulatedEVSEConfig(isolation="Fault"), None, None, FailureKind.ISOLATION_FAULT, "FAILED"),
    ("ac", "scheduled", SimulatedEVSEConfig(contactor_fault=True), None, None, FailureKind.CONTACTOR_ERROR,
     "FAILED_ContactorError"),
    ("dc", "scheduled", None, "SessionStopReq", _set(("ChargingSession",), "ServiceRenegotiation"),
     FailureKind.WRONG_CHARGE_PARAMETER, "FAILED_NoServiceRenegotiationSupported"),
])
def test_failed_codes(energy: str, control: str, sim: SimulatedEVSEConfig | None, at: str | None, modify: Any,
                      kind: FailureKind | None, code: str | None) -> None:
    """Each wrong request: its code, the SECC closes, the end's kind; the EV ends with the code."""
    evcc, secc, evse = pair20(energy, control, sim, loops=2)
    result, names = run_pair(evcc, secc, at=at, modify=modify)
    if kind is None:
        assert result.ok and ended(evse).kind is FailureKind.NORMAL
        return
    end = ended(evse)
    assert (end.kind, end.iso_code, end.had_session, secc.ok) == (kind, code, True, False), end
    assert not result.ok and (result.response_code == code or "expected" in result.reason), result
    last = [e for e in evse.seen if isinstance(e, Answered)][-1]
    assert last.name == names[-1] and last.response_code == code
    assert kind in FAILURES  # the station reports it through the error map
    assert not evse.contactors_closed


def test_charge_loop_in_the_wrong_control_mode() -> None:
    """A dynamic charge loop in a scheduled session: FAILED, WrongChargeParameter."""
    def dynamic_loop(doc: Doc) -> Doc:
        c = content(doc)
        mode = c.pop("Scheduled_AC_CLReqControlMode")
        r = {"Exponent": 0, "Value": 0}
        c["Dynamic_AC_CLReqControlMode"] = {"EVTargetEnergyRequest": r, "EVMaximumEnergyRequest": r,
                                            "EVMinimumEnergyRequest": r, "EVMaximumChargePower": r,
                                            "EVMinimumChargePower": r,
                                            "EVPresentActivePower": mode["EVPresentActivePower"],
                                            "EVPresentReactivePower": r}
        return doc

    evcc, secc, evse = pair20("ac", "scheduled", loops=3)
    result, _ = run_pair(evcc, secc, at="AC_ChargeLoopReq", modify=dynamic_loop)
    end = ended(evse)
    assert (end.kind, end.iso_code) == (FailureKind.WRONG_CHARGE_PARAMETER, "FAILED_WrongChargeParameter")
    assert not result.ok
    assert [e for e in evse.seen if isinstance(e, ScheduleChosen)]  # it had started


def test_a_message_on_the_wrong_payload_type() -> None:
    """An AC request sent as a common message (payload type 0x8002): FAILED_SequenceError."""
    evcc, secc, evse = pair20("ac", "scheduled", loops=2)
    clock = itertools.count(0.0, 1.0)
    step: Send | SessionResult = evcc.start(next(clock))
    while isinstance(step, Send) and step.name != "AC_ChargeParameterDiscoveryReq":
        ns = secc.rx_namespace_for(step.payload_type)
        assert ns is not None
        reply = secc.handle(exi.decode(ns, exi.encode(step.ns, step.doc)), step.payload_type)
        assert reply.doc is not None
        back = evcc.rx_namespace_for(reply.payload_type)
        assert back is not None
        step = evcc.handle(exi.decode(back, exi.encode(reply.ns, reply.doc)), next(clock))
    assert isinstance(step, Send)
    reply = secc.handle(step.doc, PayloadType.ISO20_COMMON)
    assert reply.close and reply.doc is not None and content(reply.doc)["ResponseCode"] == "FAILED_SequenceError"
    assert ended(evse).kind is FailureKind.SEQUENCE_ERROR
    assert secc.rx_namespace_for(PayloadType.ISO20_ACDP) is None  # ACDP/WPT are not spoken: a V2GTP error


@pytest.mark.parametrize("pnc_selected", [False, True])
def test_refused_authorization(pnc_selected: bool) -> None:
    """EIM refused (or PnC selected where it is not offered): a WARNING_ code, the EV stops, the session ends as a
    refusal with that code."""
    sim = SimulatedEVSEConfig(authorize=pnc_selected)
    modify = None
    if pnc_selected:
        def modify(doc: Doc) -> Doc:
            c = content(doc)
            c.pop("EIM_AReqAuthorizationMode")
            c["SelectedAuthorizationService"] = "PnC"
            c["PnC_AReqAuthorizationMode"] = {"Id": "id1", "GenChallenge": "AAAAAAAAAAAAAAAAAAAAAA==",
                                              "ContractCertificateChain": {"Certificate": "MAA=",
                                                                           "SubCertificates": {"Certificate": [
                                                                               "MAA="]}}}
            return doc
    evcc, secc, evse = pair20("dc", "scheduled", sim, loops=2)
    result, names = run_pair(evcc, secc, at="AuthorizationReq", modify=modify)
    code = "WARNING_AuthorizationSelectionInvalid" if pnc_selected else "WARNING_EIMAuthorizationFailure"
    assert not result.ok and result.response_code == code and "refused" in result.reason
    assert requests(names)[-1] == "SessionStopReq"
    end = ended(evse)
    assert (end.kind, end.iso_code) == (FailureKind.AUTHORIZATION_FAILED, code)


def test_refusal_then_disconnect() -> None:
    """The EV leaves after a refusal without SessionStop: still the refusal's kind."""
    evcc, secc, evse = pair20("dc", "scheduled", SimulatedEVSEConfig(authorize=False), loops=2)
    clock = itertools.count(0.0, 1.0)
    step: Send | SessionResult = evcc.start(next(clock))
    while isinstance(step, Send) and step.name != "SessionStopReq":
        ns = secc.rx_namespace_for(step.payload_type)
        assert ns is not None
        reply = secc.handle(exi.decode(ns, exi.encode(step.ns, step.doc)), step.payload_type)
        assert reply.doc is not None
        secc.sent(reply, 0.001)
        back = evcc.rx_namespace_for(reply.payload_type)
        assert back is not None
        step = evcc.handle(exi.decode(back, exi.encode(reply.ns, reply.doc)), next(clock))
    secc.on_closed(FailureKind.DISCONNECTED, "EVCC closed the connection")
    end = ended(evse)
    assert (end.kind, end.iso_code) == (FailureKind.AUTHORIZATION_FAILED, "WARNING_EIMAuthorizationFailure")


# ----- timers -----

def _run_until(energy: str, control: str, sim: SimulatedEVSEConfig | None, stop: str, **kw: Any
               ) -> tuple[Any, SeccSession, RecordingEVSE, Send, itertools.count[float]]:
    """A pair driven until the EV is about to send the first `stop` request."""
    evcc, secc, evse = pair20(energy, control, sim, **kw)
    clock = itertools.count(0.0, 1.0)
    step: Send | SessionResult = evcc.start(next(clock))
    while isinstance(step, Send) and step.name != stop:
        ns = secc.rx_namespace_for(step.payload_type)
        assert ns is not None
        reply = secc.handle(exi.decode(ns, exi.encode(step.ns, step.doc)), step.payload_type)
        assert reply.doc is not None, secc.end_reason
        secc.sent(reply, 0.001)
        back = evcc.rx_namespace_for(reply.payload_type)
        assert back is not None
        step = evcc.handle(exi.decode(back, exi.encode(reply.ns, reply.doc)), next(clock))
    assert isinstance(step, Send), step
    return evcc, secc, evse, step, clock


def test_evcc_message_timeouts() -> None:
    """V2G_EVCC_Msg_Timeout: 0.5 s for the charge loop, 5 s for ServiceDetail, 2 s otherwise."""
    evcc, _, _, step, clock = _run_until("dc", "dynamic", None, "ServiceDetailReq", loops=3)
    assert step.timeout == 5.0
    evcc, _, _, step, clock = _run_until("ac", "scheduled", None, "AC_ChargeLoopReq", loops=3)
    assert step.timeout == 0.5 and step.payload_type == PayloadType.ISO20_AC
    result = evcc.on_timeout(next(clock))
    assert not result.ok and "V2G_EVCC_Msg_Timeout (0.5 s) waiting for AC_ChargeLoopRes" in result.reason


@pytest.mark.parametrize(("sim", "stop", "timer"), [
    (SimulatedEVSEConfig(schedule_ongoing_rounds=1000), "ScheduleExchangeReq", "V2G_EVCC_Ongoing_Timeout (60 s)"),
    (SimulatedEVSEConfig(cable_check_rounds=1000), "DC_CableCheckReq", "V2G_EVCC_CableCheck_Timeout (40 s)"),
    (SimulatedEVSEConfig(precharge_step=0.5), "DC_PreChargeReq", "V2G_EVCC_PreCharge_Timeout (10 s)"),
])
def test_evcc_sequence_timers(sim: SimulatedEVSEConfig, stop: str, timer: str) -> None:
    """The ongoing (60 s), cable check (40 s) and -20 precharge (10 s) timers end the EV's session by name."""
    evcc, secc, _evse, step, clock = _run_until("dc", "scheduled", sim, stop, loops=1, ongoing_interval=1.0)
    result: Send | SessionResult = step
    for _ in range(200):
        assert isinstance(result, Send)
        ns = secc.rx_namespace_for(result.payload_type)
        assert ns is not None
        reply = secc.handle(exi.decode(ns, exi.encode(result.ns, result.doc)), result.payload_type)
        assert reply.doc is not None
        back = evcc.rx_namespace_for(reply.payload_type)
        assert back is not None
        result = evcc.handle(exi.decode(back, exi.encode(reply.ns, reply.doc)), next(clock))
        if isinstance(result, SessionResult):
            break
    assert isinstance(result, SessionResult) and not result.ok and timer in result.reason, result


def test_secc_sequence_and_setup_timeouts() -> None:
    """V2G_SECC_Sequence_Timeout: SequenceTimeout after SessionSetup, CommunicationSetupTimeout before it."""
    _, secc, evse, _step, _ = _run_until("ac", "dynamic", None, "ServiceDiscoveryReq", loops=2)
    reason = secc.on_timeout()
    assert "ServiceDiscoveryReq" in reason and ended(evse).kind is FailureKind.SEQUENCE_TIMEOUT
    _, secc, evse, _step, _ = _run_until("ac", "dynamic", None, "SessionSetupReq", loops=2)
    secc.on_timeout()
    assert ended(evse).kind is FailureKind.COMMUNICATION_SETUP_TIMEOUT and not ended(evse).had_session


def test_disconnect_after_ongoing_and_after_a_late_loop_answer() -> None:
    """The EV leaving after Ongoing is an OngoingTimeout; after a charge-loop answer later than the performance
    time a PerformanceTimeout (the -20 charge loop: 0.25 s)."""
    _, secc, evse, step, _ = _run_until("dc", "scheduled", SimulatedEVSEConfig(auth_ongoing_rounds=5),
                                        "AuthorizationReq", loops=2)
    ns = secc.rx_namespace_for(step.payload_type)
    assert ns is not None
    answered = secc.sent(secc.handle(exi.decode(ns, exi.encode(step.ns, step.doc)), step.payload_type), 0.01)
    assert answered.ongoing and not answered.late
    secc.on_closed(FailureKind.DISCONNECTED, "EVCC closed the connection")
    assert ended(evse).kind is FailureKind.ONGOING_TIMEOUT
    _, secc, evse, step, _ = _run_until("ac", "scheduled", None, "AC_ChargeLoopReq", loops=3)
    ns = secc.rx_namespace_for(step.payload_type)
    assert ns is not None
    reply = secc.handle(exi.decode(ns, exi.encode(step.ns, step.doc)), step.payload_type)
    answered = secc.sent(reply, 0.3)
    assert answered.late and answered.name == "AC_ChargeLoopRes"
    secc.on_closed(FailureKind.DISCONNECTED, "EVCC closed the connection")
    assert ended(evse).kind is FailureKind.PERFORMANCE_TIMEOUT


def test_timers_scale_for_slow_peers() -> None:
    """The -20 timer values scale like the -2 ones (--timeout-scale)."""
    t = EvccTimers().scaled(2)
    assert t.message_timeout("iso20", None) == 4.0 and t.charge_loop == 1.0 and t.precharge20 == 20.0
    assert body_name({"SessionSetupReq": {}}) == "SessionSetupReq"


@pytest.mark.parametrize("allowed", [False, True])
def test_standby(allowed: bool) -> None:
    """PowerDeliveryReq(Standby) during charging: WARNING_StandbyNotAllowed (the session goes on), or OK and no power
    until the EV starts again."""
    _, secc, _evse, step, _clock = _run_until("ac", "dynamic", SimulatedEVSEConfig(standby=allowed),
                                               "AC_ChargeLoopReq", loops=5)
    sid = secc.session_id
    standby = {"PowerDeliveryReq": {"Header": {"SessionID": sid, "TimeStamp": 0}, "EVProcessing": "Finished",
                                    "ChargeProgress": "Standby"}}
    reply = secc.handle(exi.decode("iso20", exi.encode("iso20", standby)), PayloadType.ISO20_COMMON)
    assert reply.doc is not None and not reply.close
    code = content(reply.doc)["ResponseCode"]
    assert code == ("OK" if allowed else "WARNING_StandbyNotAllowed")
    reply = secc.handle(exi.decode("iso20_ac", exi.encode(step.ns, step.doc)), step.payload_type)
    assert reply.doc is not None and not reply.close
    target = content(reply.doc)["Dynamic_AC_CLResControlMode"]["EVSETargetActivePower"]
    assert (target["Value"] == 0) is allowed and not secc.ended
