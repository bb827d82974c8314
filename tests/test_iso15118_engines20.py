"""The ISO 15118-20 EVCC and SECC machines against each other in memory (every message through EXI, with the V2GTP
payload type it travels with): AC, DC, AC_BPT, DC_BPT in scheduled and dynamic control, energy counted both ways,
pause and resume, renegotiation, metering confirmation, protocol choice."""

from __future__ import annotations

from typing import Any

import pytest
from helpers.iso20 import RecordingEVSE, pair20, requests, run_pair

from v2gstack.iso15118.ev import EVModel
from v2gstack.iso15118.evcc import EvccConfig, EvccSession
from v2gstack.iso15118.events import Answered, ScheduleChosen, SessionEnded
from v2gstack.iso15118.evse import EVSEController
from v2gstack.iso15118.evse_sim import SimulatedEVSEConfig
from v2gstack.iso15118.secc import PausedSessions, SeccConfig, SeccSession
from v2gstack.iso15118.v2gtp import PayloadType
from v2gstack.trace.error_map import FailureKind

SERVICES = ["ac", "dc", "ac_bpt", "dc_bpt"]
CONTROLS = ["scheduled", "dynamic"]


def ended(evse: RecordingEVSE) -> SessionEnded:
    """The one SessionEnded event."""
    ends = [e for e in evse.seen if isinstance(e, SessionEnded)]
    assert len(ends) == 1, ends
    return ends[0]


@pytest.mark.parametrize("control", CONTROLS)
@pytest.mark.parametrize("energy", SERVICES)
def test_full_session(energy: str, control: str) -> None:
    """Each service in each control mode runs the -20 sequence to SessionStopRes OK; the EV and the EVSE's meter
    count the same energy."""
    evcc, secc, evse = pair20(energy, control, loops=5)
    result, names = run_pair(evcc, secc)
    assert result.ok and result.protocol == "iso20" and result.charge_loops == 5, result
    assert result.service == energy.upper() and result.control_mode == control.upper()
    dc = energy.startswith("dc")
    req = requests(names)
    assert req[:8] == ["supportedAppProtocolReq", "SessionSetupReq", "AuthorizationSetupReq", "AuthorizationReq",
                       "ServiceDiscoveryReq", "ServiceDetailReq", "ServiceSelectionReq",
                       f"{'DC' if dc else 'AC'}_ChargeParameterDiscoveryReq"]
    assert req[8] == "ScheduleExchangeReq"
    if dc:
        assert req[9:11] == ["DC_CableCheckReq", "DC_CableCheckReq"] and "DC_PreChargeReq" in req
        assert "DC_WeldingDetectionReq" in req
    else:
        assert req[9] == "PowerDeliveryReq" and not any(n.startswith("DC_") for n in req)
    assert req.count(f"{'DC' if dc else 'AC'}_ChargeLoopReq") == 5 and req[-1] == "SessionStopReq"
    assert secc.ended and secc.ok and secc.end is not None and secc.end.kind is FailureKind.NORMAL
    assert not evse.contactors_closed and evse.events[-1].startswith("stopped (Normal)")
    assert result.energy_wh > 0 and result.exported_wh == 0
    assert evse.energy_wh == pytest.approx(result.energy_wh, abs=0.1)
    info = secc.info
    assert info is not None and info.protocol == "iso20" and info.service is not None
    assert info.service.name == energy.upper() and info.control_mode is not None
    assert info.control_mode.name == control.upper() and info.needs is not None and info.ev_limits is not None
    chosen = [e for e in evse.seen if isinstance(e, ScheduleChosen)]
    assert len(chosen) == 1 and (chosen[0].tuple_id == 1) is (control == "scheduled")


@pytest.mark.parametrize("control", CONTROLS)
@pytest.mark.parametrize("energy", ["ac_bpt", "dc_bpt"])
def test_bidirectional_energy_counted_both_ways(energy: str, control: str) -> None:
    """BPT: the EVSE asks for discharge first (dynamic: the first loops; scheduled: a discharging window), then
    charging; the EV's SoC goes down then up and both sides count imported and exported energy alike."""
    sim = SimulatedEVSEConfig(discharge_loops=3, discharge_seconds=20)
    ev = EVModel(soc=50)
    evcc, secc, evse = pair20(energy, control, sim, ev=ev, loops=30)
    result, _names = run_pair(evcc, secc)
    assert result.ok, result.reason
    assert result.exported_wh > 0 and result.energy_wh > 0, result
    assert evse.export_wh == pytest.approx(result.exported_wh, abs=0.5)
    assert evse.energy_wh == pytest.approx(result.energy_wh, abs=0.5)
    delivered = next(e for e in evse.seen if isinstance(e, ScheduleChosen))
    if control == "scheduled":  # the EV's profile announced the discharge window
        assert delivered.profile[0].max_power < 0 < delivered.profile[-1].max_power


def test_without_bpt_no_discharge_is_asked_or_taken() -> None:
    """A plain DC session never discharges even when the EVSE would like to (negative targets become 0)."""
    evcc, secc, evse = pair20("dc", "dynamic", SimulatedEVSEConfig(discharge_loops=5), loops=4)
    result, _ = run_pair(evcc, secc)
    assert result.ok and result.exported_wh == 0 and evse.export_wh == 0 and result.energy_wh > 0


def test_bpt_falls_back_to_the_plain_service() -> None:
    """An SECC without BPT: the AC_BPT EV charges with AC."""
    evcc, secc, _evse = pair20("ac_bpt", "scheduled", SimulatedEVSEConfig(bpt=False), loops=2)
    result, _names = run_pair(evcc, secc)
    assert result.ok and result.service == "AC" and secc.info is not None and secc.info.service is not None
    assert secc.info.service.name == "AC"


def test_ongoing_loops_are_repeated() -> None:
    """Authorization, ScheduleExchange and DC_CableCheck are repeated while Ongoing."""
    sim = SimulatedEVSEConfig(auth_ongoing_rounds=2, schedule_ongoing_rounds=2, cable_check_rounds=3)
    evcc, secc, _ = pair20("dc", "scheduled", sim, loops=1)
    result, names = run_pair(evcc, secc)
    req = requests(names)
    assert result.ok and req.count("AuthorizationReq") == 3 and req.count("ScheduleExchangeReq") == 3
    assert req.count("DC_CableCheckReq") == 4


def test_scheduled_tuple_choice_and_prices() -> None:
    """Three tuples with price levels; the EV picks tuple 2 and follows its lower power."""
    sim = SimulatedEVSEConfig(schedule_tuples=3, sales_tariff=True)
    evcc, secc, evse = pair20("ac", "scheduled", sim, loops=3, schedule_choice=2)
    result, _ = run_pair(evcc, secc)
    assert result.ok and secc.info is not None and secc.info.schedule_tuples is not None
    tuples = secc.info.schedule_tuples
    assert [t.tuple_id for t in tuples] == [1, 2, 3] and tuples[0].charging.prices is not None
    chosen = next(e for e in evse.seen if isinstance(e, ScheduleChosen))
    assert chosen.tuple_id == 2 and secc.info.schedule_id == 2
    assert chosen.profile[0].max_power == pytest.approx(tuples[1].charging.entries[0].power)


def test_pause_by_the_ev_and_resume() -> None:
    """SessionStop(Pause) keeps the session; the EV resumes it with its SessionID and charges again."""
    paused = PausedSessions()
    evcc, secc, evse = pair20("dc_bpt", "dynamic", loops=2, stop="Pause", paused=paused)
    first, _ = run_pair(evcc, secc)
    assert first.ok and first.paused and ended(evse).kind is FailureKind.PAUSED and len(paused) == 1
    evcc2, secc2, evse2 = pair20("dc_bpt", "dynamic", loops=2, paused=paused, resume_session_id=first.session_id)
    second, _names = run_pair(evcc2, secc2)
    assert second.ok and second.session_id == first.session_id and not second.paused
    assert secc2.info is not None and secc2.info.resumed and "resumed" in evse2.events[0]
    assert len(paused) == 0 and ended(evse2).kind is FailureKind.NORMAL


def test_pause_asked_by_the_evse() -> None:
    """EVSENotification=Pause: the EV stops the energy transfer and pauses the session."""
    evcc, secc, evse = pair20("ac", "dynamic", SimulatedEVSEConfig(pause_after_loops=2), loops=0)
    result, names = run_pair(evcc, secc)
    assert result.ok and result.paused and result.charge_loops == 2
    assert requests(names)[-2:] == ["PowerDeliveryReq", "SessionStopReq"] and ended(evse).paused


def test_terminate_asked_by_the_evse() -> None:
    """EVSENotification=Terminate (the controller's StopCharging)."""
    evcc, secc, _evse = pair20("dc", "scheduled", SimulatedEVSEConfig(stop_after_loops=3), loops=0)
    result, _ = run_pair(evcc, secc)
    assert result.ok and not result.paused and result.charge_loops == 3


@pytest.mark.parametrize("control", CONTROLS)
def test_schedule_renegotiation(control: str) -> None:
    """The controller's ReNegotiation: PowerDelivery(ScheduleRenegotiation), ScheduleExchange on the renegotiation
    side stream, PowerDelivery(Start) with the new choice; the energy keeps flowing."""
    sim = SimulatedEVSEConfig(renegotiate_after_loops=2)
    evcc, secc, evse = pair20("ac", control, sim, loops=5)
    result, names = run_pair(evcc, secc)
    assert result.ok and result.renegotiations == 1, result
    req = requests(names)
    i = req.index("AC_ChargeLoopReq") + 2
    assert req[i:i + 3] == ["PowerDeliveryReq", "ScheduleExchangeReq", "PowerDeliveryReq"]
    assert len([e for e in evse.seen if isinstance(e, ScheduleChosen)]) == 2
    assert [a.step for a in evse.seen if isinstance(a, Answered)].count(None) == 1  # one handshake


@pytest.mark.parametrize(("energy", "control"), [("dc_bpt", "dynamic"), ("ac_bpt", "scheduled")])
def test_service_renegotiation(energy: str, control: str) -> None:
    """EVSENotification ServiceRenegotiation (announced in ServiceDiscoveryRes): the EV stops the transfer (DC:
    welding detection), SessionStop(ServiceRenegotiation), and, in the same session, discovers the services again
    (BPT no longer offered: it takes the plain one), selects, prepares (DC: cable check, precharge) and charges on."""
    sim = SimulatedEVSEConfig(service_renegotiation_after_loops=2)
    evcc, secc, evse = pair20(energy, control, sim, loops=6)
    result, names = run_pair(evcc, secc)
    assert result.ok and result.services == (energy.upper(), energy.upper()[:2]), result
    req = requests(names)
    folded = [n for i, n in enumerate(req) if i == 0 or n != req[i - 1]]  # repeated requests (Ongoing) folded
    stop = folded.index("SessionStopReq")
    dc = energy.startswith("dc")
    loop = f"{energy[:2].upper()}_ChargeLoopReq"
    assert folded[stop - 3 if dc else stop - 2:stop] == [loop, "PowerDeliveryReq", *(
        ["DC_WeldingDetectionReq"] if dc else [])]
    prep = ["DC_CableCheckReq", "DC_PreChargeReq"] if dc else []
    assert folded[stop + 1:stop + 8 + len(prep)] == [
        "ServiceDiscoveryReq", "ServiceDetailReq", "ServiceSelectionReq", f"{energy[:2].upper()}_ChargeParameter"
        "DiscoveryReq", "ScheduleExchangeReq", *prep, "PowerDeliveryReq", loop]
    assert req.count("SessionStopReq") == 2 and req.count("SessionSetupReq") == 1
    assert ended(evse).kind is FailureKind.NORMAL
    assert len([e for e in evse.seen if isinstance(e, ScheduleChosen)]) == 2


def test_service_renegotiation_not_announced_terminates() -> None:
    """A ServiceRenegotiation notification from a SECC that did not announce it: the EV terminates."""
    evcc, secc, _evse = pair20("ac", "dynamic", SimulatedEVSEConfig(service_renegotiation_after_loops=2), loops=0)
    secc.controller.service_renegotiation20 = lambda: False  # type: ignore[method-assign]
    result, names = run_pair(evcc, secc)
    assert result.ok and result.services == ("AC",) and result.charge_loops == 2
    assert requests(names)[-2:] == ["PowerDeliveryReq", "SessionStopReq"]


def test_metering_confirmation() -> None:
    """The SECC asks for confirmation of each meter reading; the EV confirms on its side stream (EIM: unsigned)."""
    evcc, secc, _evse = pair20("dc", "scheduled", SimulatedEVSEConfig(receipt_required=True), loops=3)
    result, names = run_pair(evcc, secc)
    assert result.ok and result.metering_confirmations == 3
    assert requests(names).count("MeteringConfirmationReq") == 3


@pytest.mark.parametrize(("ev_offer", "secc_offer", "chosen"), [
    (("iso20", "iso2"), ("iso20", "iso2", "din"), "iso20"),
    (("iso2", "iso20"), ("iso20", "iso2", "din"), "iso2"),
    (("iso20", "iso2"), ("iso2", "din"), "iso2"),
])
def test_protocol_choice_by_the_evs_priority(ev_offer: tuple[str, ...], secc_offer: tuple[str, ...],
                                             chosen: str) -> None:
    """-20 when both prefer it, else -2 (the EV's priority decides among what both support)."""
    evse = RecordingEVSE()
    evcc = EvccSession(EvccConfig(protocols=ev_offer, energy="dc", loops=2), EVModel())
    secc = SeccSession(evse, SeccConfig(protocols=secc_offer))
    result, _ = run_pair(evcc, secc)
    assert result.ok and result.protocol == chosen


class TwoOnly(RecordingEVSE):
    """A controller written for ISO 15118-2: the -20 methods keep EVSEController's default bodies."""

    services20 = EVSEController.services20
    ac_limits20 = EVSEController.ac_limits20
    dc_limits20 = EVSEController.dc_limits20
    schedule_tuples = EVSEController.schedule_tuples
    dynamic_schedule = EVSEController.dynamic_schedule
    ac_charge_loop20 = EVSEController.ac_charge_loop20
    dc_charge_loop20 = EVSEController.dc_charge_loop20
    meter20 = EVSEController.meter20


@pytest.mark.parametrize("control", CONTROLS)
@pytest.mark.parametrize("energy", ["ac", "dc"])
def test_a_2_controller_serves_20_with_the_defaults(energy: str, control: str) -> None:
    """The defaults answer -20 from the -2 methods: services from the energy modes, the SAScheduleList as tuples,
    the AC current limit and CurrentDemand in the loops."""
    evse = TwoOnly()
    evcc = EvccSession(EvccConfig(protocols=("iso20",), energy=energy, control=control, loops=3), EVModel())
    secc = SeccSession(evse, SeccConfig(protocols=("iso20",)))
    result, _ = run_pair(evcc, secc)
    assert result.ok and result.energy_wh > 0, result
    assert secc.info is not None and secc.info.service is not None and not secc.info.service.bpt


def test_side_streams_carry_their_messages() -> None:
    """MeteringConfirmationReq travels on 0x8102 and the renegotiation's ScheduleExchangeReq on 0x8101; each answer
    goes back on its request's payload type."""
    sim = SimulatedEVSEConfig(receipt_required=True, renegotiate_after_loops=1)
    evcc, secc, _ = pair20("ac", "scheduled", sim, loops=3)
    seen: list[tuple[str, int]] = []
    original = secc.handle

    def spy(doc: dict[str, Any], payload_type: int = PayloadType.EXI) -> Any:
        reply = original(doc, payload_type)
        seen.append((next(iter(doc)), payload_type))
        assert reply.payload_type == payload_type or payload_type == PayloadType.EXI
        return reply

    secc.handle = spy  # type: ignore[method-assign]
    result, _ = run_pair(evcc, secc)
    assert result.ok
    assert ("MeteringConfirmationReq", PayloadType.ISO20_METERING_CONFIRMATION) in seen
    assert ("ScheduleExchangeReq", PayloadType.ISO20_SCHEDULE_RENEGOTIATION) in seen
    assert ("AC_ChargeLoopReq", PayloadType.ISO20_AC) in seen and ("SessionSetupReq", PayloadType.ISO20_COMMON) in seen
