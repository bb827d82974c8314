"""The sans-I/O EVCC and SECC machines driven against each other in memory (every message through EXI)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from v2gstack import exi
from v2gstack.iso15118.ev import EVModel
from v2gstack.iso15118.evcc import EvccConfig, EvccSession, Send, SessionResult
from v2gstack.iso15118.evse_sim import SimulatedEVSE, SimulatedEVSEConfig
from v2gstack.iso15118.messages import body_name
from v2gstack.iso15118.model import Service, Step
from v2gstack.iso15118.secc import PausedSessions, SeccConfig, SeccSession
from v2gstack.iso15118.timers import EvccTimers

FLOWS = [("din", "dc"), ("iso2", "ac"), ("iso2", "dc")]


def run_pair(evcc: EvccSession, secc: SeccSession, step_s: float = 1.0) -> tuple[SessionResult, list[str]]:
    """Run both machines to the end; return the EVCC result and the message names in order."""
    clock = itertools.count(0.0, step_s)
    names: list[str] = []
    step: Send | SessionResult = evcc.start(next(clock))
    while isinstance(step, Send):
        request = exi.decode(secc.rx_namespace, exi.encode(step.ns, step.doc))
        names.append(body_name(request))
        reply = secc.handle(request)
        assert reply.doc is not None, secc.end_reason
        response = exi.decode(evcc.rx_namespace, exi.encode(reply.ns, reply.doc))
        names.append(body_name(response))
        step = evcc.handle(response, next(clock))
    return step, names


def pair(protocol: str, energy: str, sim: SimulatedEVSEConfig | None = None, **kw: Any
         ) -> tuple[EvccSession, SeccSession, SimulatedEVSE]:
    """An EVCC and a SECC with a simulated EVSE."""
    evse = SimulatedEVSE(sim)
    ev = kw.pop("ev", None) or EVModel()
    paused = kw.pop("paused", None)
    evcc = EvccSession(EvccConfig(protocols=(protocol,), energy=energy, **kw), ev)
    secc = SeccSession(evse, SeccConfig(), paused)
    return evcc, secc, evse


@pytest.mark.parametrize(("protocol", "energy"), FLOWS)
def test_full_session(protocol: str, energy: str) -> None:
    """Each flow runs its standard message sequence to SessionStopRes OK."""
    evcc, secc, evse = pair(protocol, energy, loops=4)
    result, names = run_pair(evcc, secc)
    assert result.ok and result.protocol == protocol and result.charge_loops == 4, result
    assert secc.ended and secc.ok and not evse.contactors_closed
    pay = "ServicePaymentSelectionReq" if protocol == "din" else "PaymentServiceSelectionReq"
    auth = "ContractAuthenticationReq" if protocol == "din" else "AuthorizationReq"
    requests = [n for n in names if n.endswith("Req")]
    assert requests[:6] == ["supportedAppProtocolReq", "SessionSetupReq", "ServiceDiscoveryReq", pay, auth,
                            "ChargeParameterDiscoveryReq"]
    if energy == "dc":
        assert requests[6:10] == ["CableCheckReq", "CableCheckReq", "PreChargeReq", "PreChargeReq"]
        assert requests.count("CurrentDemandReq") == 4 and "WeldingDetectionReq" in requests
    else:
        assert requests.count("ChargingStatusReq") == 4 and "CableCheckReq" not in requests
    assert requests[-2:] == ["PowerDeliveryReq", "SessionStopReq"] or requests[-1] == "SessionStopReq"
    assert names[-1] == "SessionStopRes"


@pytest.mark.parametrize(("protocol", "energy"), FLOWS)
def test_ongoing_loops_and_charging_physics(protocol: str, energy: str) -> None:
    """Ongoing loops are repeated; with speedup the EV reaches its target SoC."""
    sim = SimulatedEVSEConfig(auth_ongoing_rounds=3, schedule_ongoing_rounds=2, cable_check_rounds=3)
    ev = EVModel(soc=50, target_soc=51, speedup=10)
    evcc, secc, evse = pair(protocol, energy, sim, loops=0, ev=ev)
    result, names = run_pair(evcc, secc)
    assert result.ok and result.soc >= 51 and result.energy_wh > 0, result
    auth = "ContractAuthenticationReq" if protocol == "din" else "AuthorizationReq"
    assert names.count(auth) == 4 and names.count("ChargeParameterDiscoveryReq") == 3
    assert evse.energy_wh >= 0 and evse.auth_calls == 4
    if energy == "dc":
        assert names.count("CableCheckReq") == 4


@pytest.mark.parametrize(("protocol", "energy"), FLOWS)
def test_evse_stop_charging_notification(protocol: str, energy: str) -> None:
    """EVSENotification=StopCharging ends the charge loop."""
    evcc, secc, _ = pair(protocol, energy, SimulatedEVSEConfig(stop_after_loops=2), loops=50)
    result, _ = run_pair(evcc, secc)
    assert result.ok and result.charge_loops == 2


@pytest.mark.parametrize("energy", ["ac", "dc"])
def test_renegotiation(energy: str) -> None:
    """ReNegotiation: PowerDelivery(Renegotiate), a new ChargeParameterDiscovery, no second cable check."""
    evcc, secc, _ = pair("iso2", energy, SimulatedEVSEConfig(renegotiate_after_loops=2), loops=4)
    result, names = run_pair(evcc, secc)
    assert result.ok and names.count("ChargeParameterDiscoveryReq") == 2
    assert names.count("PowerDeliveryReq") == 4  # Start, Renegotiate, Start, Stop
    assert names.count("CableCheckReq") == (2 if energy == "dc" else 0)  # no second cable check


def test_service_detail() -> None:
    """ServiceDetail returns the parameter sets of a listed value-added service."""
    internet = Service(3, "Internet", "Internet", True, {1: {"Protocol": "https", "Port": 443}})
    evcc, secc, _ = pair("iso2", "ac", SimulatedEVSEConfig(services=(internet,)), loops=1, service_details=True)
    result, names = run_pair(evcc, secc)
    assert result.ok and names.count("ServiceDetailReq") == 1
    assert evcc.service_parameters[3]["ParameterSet"][0]["Parameter"] == [
        {"Name": "Protocol", "stringValue": "https"}, {"Name": "Port", "intValue": 443}]


def test_pause_and_resume() -> None:
    """A paused session is resumed with its SessionID; an unknown one starts a new session."""
    paused = PausedSessions()
    evcc, secc, _ = pair("iso2", "dc", loops=2, stop="Pause", paused=paused)
    first, _ = run_pair(evcc, secc)
    assert first.ok and first.paused and len(paused) == 1
    evcc2, secc2, evse2 = pair("iso2", "dc", loops=2, resume_session_id=first.session_id, paused=paused)
    second, _ = run_pair(evcc2, secc2)
    assert second.ok and second.session_id == first.session_id and len(paused) == 0
    assert secc2.info is not None and secc2.info.resumed and evse2.events[0].endswith("(resumed)")
    # an unknown or foreign SessionID gets a new session
    evcc3, secc3, _ = pair("iso2", "dc", loops=1, resume_session_id=first.session_id, paused=paused)
    third, _ = run_pair(evcc3, secc3)
    assert third.ok and third.session_id != first.session_id


def test_rejected_authorization_fails_the_session() -> None:
    """A rejected authorization ends both sides with FAILED."""
    evcc, secc, evse = pair("iso2", "ac", SimulatedEVSEConfig(authorize=False))
    result, _ = run_pair(evcc, secc)
    assert not result.ok and result.response_code == "FAILED" and "AuthorizationRes" in result.reason
    assert secc.ended and not secc.ok and evse.events[-1].startswith("stopped")


def test_wrong_energy_mode() -> None:
    """An AC EV at a DC-only EVSE stops after ServiceDiscovery."""
    evcc, secc, _ = pair("iso2", "ac", SimulatedEVSEConfig(energy_modes=("DC_extended",)))
    result, _ = run_pair(evcc, secc)
    assert not result.ok and "offers no AC" in result.reason


def test_contactor_fault() -> None:
    """Contactor failures give FAILED_ContactorError (-2) / FAILED_PowerDeliveryNotApplied (DIN)."""
    evcc, secc, _ = pair("iso2", "ac", SimulatedEVSEConfig(contactor_fault=True))
    result, _ = run_pair(evcc, secc)
    assert result.response_code == "FAILED_ContactorError"
    evcc, secc, _ = pair("din", "dc", SimulatedEVSEConfig(contactor_fault=True))
    assert run_pair(evcc, secc)[0].response_code == "FAILED_PowerDeliveryNotApplied"


def test_isolation_fault() -> None:
    """An isolation fault in the cable check fails the session."""
    evcc, secc, _ = pair("din", "dc", SimulatedEVSEConfig(isolation="Fault"))
    result, _ = run_pair(evcc, secc)
    assert not result.ok and "CableCheckRes with FAILED" in result.reason


def test_evcc_config_checks() -> None:
    """DIN is DC only; unknown protocols are refused."""
    with pytest.raises(ValueError, match="DC only"):
        EvccConfig(protocols=("din",), energy="ac")
    with pytest.raises(ValueError, match="unknown application protocol"):
        EvccConfig(protocols=("iso21",))


# ----- sequence timers in the EVCC machine (time is injected) -----


def drive_until(evcc: EvccSession, secc: SeccSession, stop: Callable[[Send], bool], clock: itertools.count
                ) -> Send:
    """Run the pair until the EVCC is about to send a request matching `stop`."""
    step: Send | SessionResult = evcc.start(next(clock))
    while isinstance(step, Send) and not stop(step):
        reply = secc.handle(exi.decode(secc.rx_namespace, exi.encode(step.ns, step.doc)))
        assert reply.doc is not None
        step = evcc.handle(exi.decode(evcc.rx_namespace, exi.encode(reply.ns, reply.doc)), next(clock))
    assert isinstance(step, Send)
    return step


@pytest.mark.parametrize(("sim", "timer", "label"), [
    (SimulatedEVSEConfig(auth_ongoing_rounds=10**6), "ongoing", "V2G_EVCC_Ongoing_Timeout"),
    (SimulatedEVSEConfig(cable_check_rounds=10**6), "cable_check", "V2G_EVCC_CableCheck_Timeout"),
    (SimulatedEVSEConfig(precharge_step=0.0), "precharge", "V2G_EVCC_PreCharge_Timeout"),
])
def test_loop_timers_end_the_session(sim: SimulatedEVSEConfig, timer: str, label: str) -> None:
    """The sequence timers expire with injected time, naming the timer."""
    evcc, secc, _ = pair("iso2", "dc", sim, timers=replace(EvccTimers(), **{timer: 10.0}))
    clock = itertools.count(0.0, 1.0)
    step: Send | SessionResult = evcc.start(next(clock))
    while isinstance(step, Send):
        reply = secc.handle(exi.decode(secc.rx_namespace, exi.encode(step.ns, step.doc)))
        step = evcc.handle(exi.decode(evcc.rx_namespace, exi.encode(reply.ns, reply.doc)), next(clock))
    assert not step.ok and label in step.reason


def test_message_timeout_label_and_value() -> None:
    """Message timeouts per request and protocol, and the reason on expiry."""
    evcc, secc, _ = pair("iso2", "dc")
    clock = itertools.count(0.0, 0.001)
    step = drive_until(evcc, secc, lambda s: s.name == "CurrentDemandReq", clock)
    assert step.timeout == 0.25
    result = evcc.on_timeout(next(clock))
    assert not result.ok and "V2G_EVCC_Msg_Timeout (0.25 s) waiting for CurrentDemandRes" in result.reason
    evcc, secc, _ = pair("iso2", "ac")
    step = drive_until(evcc, secc, lambda s: s.name == "PowerDeliveryReq", itertools.count(0.0, 0.001))
    assert step.timeout == 5.0  # -2 PowerDelivery
    evcc, secc, _ = pair("din", "dc")
    step = drive_until(evcc, secc, lambda s: s.name == "PowerDeliveryReq", itertools.count(0.0, 0.001))
    assert step.timeout == 2.0  # DIN PowerDelivery


def test_communication_setup_timer_caps_the_first_waits() -> None:
    """The communication setup timer shortens the SessionSetup wait."""
    evcc, secc, _ = pair("iso2", "dc")
    first = evcc.start(0.0)
    assert first.timeout == 2.0
    reply = secc.handle(exi.decode("appHand", exi.encode(first.ns, first.doc)))
    step = evcc.handle(exi.decode("appHand", exi.encode(reply.ns, reply.doc)), 19.0)
    assert isinstance(step, Send) and step.name == "SessionSetupReq" and step.timeout == pytest.approx(1.0)
    result = evcc.on_timeout(20.0)
    assert "V2G_EVCC_CommunicationSetup_Timeout" in result.reason


@pytest.mark.parametrize("energy", ["ac", "dc"])
def test_metering_receipt_when_required(energy: str) -> None:
    """ReceiptRequired=true makes the EV confirm each reading with MeteringReceiptReq."""
    evcc, secc, _ = pair("iso2", energy, SimulatedEVSEConfig(receipt_required=True), loops=3)
    result, names = run_pair(evcc, secc)
    assert result.ok and names.count("MeteringReceiptReq") == 3 and names.count("MeteringReceiptRes") == 3


def test_metering_receipt_is_out_of_sequence_when_not_required() -> None:
    """MeteringReceiptReq without ReceiptRequired is a sequence error."""
    evcc, secc, _ = pair("iso2", "ac", loops=3)
    step = drive_until(evcc, secc, lambda s: s.name == "ChargingStatusReq", itertools.count(0.0, 1.0))
    secc.handle(step.doc)  # ChargingStatusRes with ReceiptRequired=false
    msgs = evcc.msgs
    assert msgs is not None
    meter = SimulatedEVSE().meter()
    assert meter is not None
    reply = secc.handle(msgs.request(evcc.session_id, Step.METERING_RECEIPT,
                                     msgs.metering_receipt_req(evcc.session_id, 1, meter)))
    assert reply.close and reply.doc is not None
    assert reply.doc["V2G_Message"]["Body"]["MeteringReceiptRes"]["ResponseCode"] == "FAILED_SequenceError"


def test_sales_tariff_in_the_schedule() -> None:
    """An (unsigned, EIM) SalesTariff travels with the PMaxSchedule and the EV reads it."""
    evcc, secc, _ = pair("iso2", "ac", SimulatedEVSEConfig(sales_tariff=True), loops=1)
    result, _ = run_pair(evcc, secc)
    assert result.ok and evcc.schedule is not None and evcc.schedule.tariff is not None
    assert [(t.start, t.price_level) for t in evcc.schedule.tariff] == [(0, 1), (43200, 2)]
