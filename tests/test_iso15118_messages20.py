"""ISO 15118-20 message builders and readers: every document goes through the EXI codec (which checks it against
the schema) and is read back to the same facts."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from v2gstack import exi
from v2gstack.iso15118.messages import iso20, iso20_ac, iso20_dc, iso20_schedule
from v2gstack.iso15118.messages.iso20_types import message, number, rational, split20
from v2gstack.iso15118.model20 import (
    AbsolutePrices,
    ACLimits20,
    ACLoopAnswer,
    ControlMode,
    DCLimits20,
    DCLoopAnswer,
    DynamicSchedule,
    EnergyRequest,
    EnergyService,
    EVACLimits,
    EVDCLimits,
    EVNeeds,
    LoopRequest,
    LoopStatus,
    MeterReading20,
    Notification,
    ParameterSet,
    PowerEntry,
    PowerSchedule,
    PriceLevels,
    PriceRule,
    ScheduleTuple,
    ServiceOffer,
)

SID = "0A0B0C0D0E0F1011"


def wire(ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Encode a message through EXI and decode it again; return its content without the header."""
    doc = message(name, SID, body)
    back = exi.decode(ns, exi.encode(ns, doc))
    sid, got, content, head = split20(back)
    assert sid == SID and got == name and isinstance(head["TimeStamp"], int)
    return content


@given(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False))
def test_rational_numbers_keep_three_decimals_or_five_digits(x: float) -> None:
    """Value x 10^Exponent is within half a unit of the finest step that fits an xs:short."""
    r = rational(x)
    assert -32768 <= r["Value"] <= 32767 and -3 <= r["Exponent"] <= 127
    step = 10.0 ** max(-3, r["Exponent"])
    assert math.isclose(number(r) or 0.0, x, abs_tol=step / 2 + 1e-9)


def test_rational_examples() -> None:
    """Typical values: watts, volts, a fraction."""
    assert rational(11000) == {"Exponent": 0, "Value": 11000}
    assert rational(50000) == {"Exponent": 1, "Value": 5000}
    assert rational(0.5) == {"Exponent": -1, "Value": 5}
    assert rational(-7400) == {"Exponent": 0, "Value": -7400}
    assert rational(0) == {"Exponent": 0, "Value": 0}


def test_session_setup_authorization_and_services() -> None:
    """SessionSetup, AuthorizationSetup (EIM and PnC), Authorization, ServiceDiscovery/Detail/Selection."""
    assert wire("iso20", "SessionSetupReq", iso20.session_setup_req("WMI0123"))["EVCCID"] == "WMI0123"
    res = wire("iso20", "AuthorizationSetupRes", iso20.authorization_setup_res("OK", ["EIM", "PnC"], True,
                                                                              bytes(range(16))))
    assert iso20.read_authorization_setup_res(res) == (["EIM", "PnC"], True, bytes(range(16)))
    res = wire("iso20", "AuthorizationSetupRes", iso20.authorization_setup_res("OK", ["EIM"], False, None))
    assert iso20.read_authorization_setup_res(res) == (["EIM"], False, None)
    assert iso20.read_authorization_req(wire("iso20", "AuthorizationReq", iso20.authorization_req())) == ("EIM", None)
    offers = [ServiceOffer(EnergyService.DC_BPT, (ParameterSet(1, {"Connector": 2, "ControlMode": 1}),), False)]
    got = wire("iso20", "ServiceDiscoveryRes", iso20.service_discovery_res("OK", offers))
    assert iso20.read_service_discovery_res(got) == [(6, False)]
    sets = [ParameterSet(1, {"ControlMode": 2, "BPTChannel": 1, "Rated": 7.5, "Label": "x", "Flag": True})]
    got = wire("iso20", "ServiceDetailRes", iso20.service_detail_res("OK", 6, sets))
    assert iso20.read_service_detail_res(got) == (6, sets)
    assert sets[0].control_mode is ControlMode.DYNAMIC
    got = wire("iso20", "ServiceSelectionReq", iso20.service_selection_req(6, 1, [(65, 2)]))
    assert iso20.read_service_selection_req(got) == (6, 1, [(65, 2)])
    assert iso20.read_service_discovery_req(wire("iso20", "ServiceDiscoveryReq",
                                                  iso20.service_discovery_req([1, 6]))) == [1, 6]


def test_schedule_exchange_scheduled_with_prices_and_bpt() -> None:
    """Up to 3 tuples with charging and discharging schedules, Power_L2/L3, both price schedule kinds."""
    levels = PriceLevels(1, 3, ((1800, 0), (1800, 2)))
    absolute = AbsolutePrices(2, "EUR", ((3600, (PriceRule(0.3), PriceRule(0.4, 11000.0))),))
    tuples = [
        ScheduleTuple(1, PowerSchedule((PowerEntry(1800, 11000, 3700, 3700), PowerEntry(1800, 7000)), 0, 30000,
                                       500, levels),
                      PowerSchedule((PowerEntry(3600, 7000),), prices=absolute)),
        ScheduleTuple(2, PowerSchedule((PowerEntry(3600, 3000),))),
        ScheduleTuple(3, PowerSchedule((PowerEntry(3600, 1000),)), PowerSchedule((PowerEntry(3600, 1000),))),
    ]
    got = wire("iso20", "ScheduleExchangeRes", iso20_schedule.schedule_exchange_res_scheduled("OK", "Finished",
                                                                                              tuples + tuples))
    processing, back, plan, pause = iso20_schedule.read_schedule_exchange_res(got)
    assert processing == "Finished" and plan is None and not pause
    assert back == tuples  # at most 3 tuples go out
    assert back[0].charging.power_at(0) == 11000 and back[0].charging.power_at(2000) == 7000
    assert back[0].charging.power_at(4000) == 0


def test_schedule_exchange_requests_and_dynamic_answer() -> None:
    """Both request control modes; the dynamic answer keeps MinimumSOC <= TargetSOC."""
    dyn = EVNeeds(ControlMode.DYNAMIC, 100, 7200, 20, 80, 30000, 40000, 5000, 10000, 2000)
    assert iso20_schedule.read_schedule_exchange_req(
        wire("iso20", "ScheduleExchangeReq", iso20_schedule.schedule_exchange_req(dyn))) == dyn
    sched = EVNeeds(ControlMode.SCHEDULED, 1024, 3600, target_energy=20000, max_energy=30000, min_energy=0)
    assert iso20_schedule.read_schedule_exchange_req(
        wire("iso20", "ScheduleExchangeReq", iso20_schedule.schedule_exchange_req(sched))) == sched
    got = wire("iso20", "ScheduleExchangeRes", iso20_schedule.schedule_exchange_res_dynamic(
        "OK", "Finished", DynamicSchedule(3600, 90, 80), go_to_pause=True))
    _, tuples, plan, pause = iso20_schedule.read_schedule_exchange_res(got)
    assert tuples is None and pause and plan == DynamicSchedule(3600, 80, 80)


def test_power_delivery_metering_and_stop() -> None:
    """PowerDelivery with a scheduled and a dynamic profile; SignedMeteringData; SessionStop."""
    profile = iso20_schedule.ev_power_profile([PowerEntry(600, -5000), PowerEntry(600, 11000)], 2, True)
    got = wire("iso20", "PowerDeliveryReq", iso20.power_delivery_req("Start", profile, channel="Discharge"))
    progress, processing, prof, channel = iso20.read_power_delivery_req(got)
    assert (progress, processing, channel) == ("Start", "Finished", "Discharge")
    assert iso20_schedule.read_ev_power_profile(prof) == (2, (PowerEntry(600, -5000), PowerEntry(600, 11000)))
    profile = iso20_schedule.ev_power_profile([], None)
    assert iso20_schedule.read_ev_power_profile(profile)[0] is None
    wire("iso20", "PowerDeliveryRes", iso20.power_delivery_res("OK", Notification.PAUSE, 5))
    meter = MeterReading20("M1", 1200, 300, 1700000000)
    signed = iso20.signed_metering_data("id1", SID, meter, 1)
    got = wire("iso20", "MeteringConfirmationReq", iso20.metering_confirmation_req(signed))
    assert iso20.read_metering_confirmation_req(got)["MeterInfo"]["BPT_DischargedEnergyReadingWh"] == 300
    assert iso20.read_session_stop_req(wire("iso20", "SessionStopReq",
                                            iso20.session_stop_req("Pause", "C1", "why"))) == "Pause"


@pytest.mark.parametrize("bpt", [False, True])
def test_ac_charge_parameters(bpt: bool) -> None:
    """AC_ChargeParameterDiscovery, plain and BPT."""
    ev = EVACLimits(11000, 1400, 7000 if bpt else None, 1000 if bpt else None)
    assert iso20_ac.read_ac_cpd_req(wire("iso20_ac", "AC_ChargeParameterDiscoveryReq",
                                         iso20_ac.ac_cpd_req(ev, bpt))) == (ev, bpt)
    evse = ACLimits20(22000, 1400, 50, 11000 if bpt else None, 0 if bpt else None, 0)
    assert iso20_ac.read_ac_cpd_res(wire("iso20_ac", "AC_ChargeParameterDiscoveryRes",
                                         iso20_ac.ac_cpd_res("OK", evse, bpt))) == (evse, bpt)


@pytest.mark.parametrize("mode", list(ControlMode))
@pytest.mark.parametrize("bpt", [False, True])
def test_ac_charge_loop_variants(mode: ControlMode, bpt: bool) -> None:
    """All four AC_ChargeLoop variants; the target is signed (discharge negative)."""
    energy = EnergyRequest(20000, 30000, 1000, 5000 if bpt else None, 1000 if bpt else None, 3600)
    req = LoopRequest(dc=False, control_mode=mode, bpt=bpt, soc=55, meter_requested=True, present_power=-3000.0,
                      max_charge_power=11000, min_charge_power=0, max_discharge_power=7000 if bpt else None,
                      min_discharge_power=0 if bpt else None,
                      energy=energy if mode is ControlMode.DYNAMIC else None)
    back = iso20_ac.read_ac_loop_req(wire("iso20_ac", "AC_ChargeLoopReq", iso20_ac.ac_loop_req(req)))
    assert back.control_mode is mode and back.bpt is bpt and back.present_power == -3000 and back.soc == 55
    assert back.energy == req.energy
    answer = ACLoopAnswer(-7000.0, -6900.0)
    status = LoopStatus(Notification.METERING_CONFIRMATION, 0, MeterReading20("M", 10, 5))
    res = iso20_ac.ac_loop_res("OK", mode, bpt, answer, status, DynamicSchedule(3600, 20, 80), 30)
    got_answer, got_status = iso20_ac.read_ac_loop_res(wire("iso20_ac", "AC_ChargeLoopRes", res))
    assert got_answer.target_power == -7000 and got_status == status


@pytest.mark.parametrize("bpt", [False, True])
def test_dc_charge_parameters_cable_check_precharge_welding(bpt: bool) -> None:
    """DC_ChargeParameterDiscovery plain and BPT, and the other DC messages."""
    ev = EVDCLimits(50000, 0, 125, 0, 450, 200, 80, *((30000, 0, 80, 0) if bpt else (None,) * 4))
    assert iso20_dc.read_dc_cpd_req(wire("iso20_dc", "DC_ChargeParameterDiscoveryReq",
                                         iso20_dc.dc_cpd_req(ev, bpt))) == (ev, bpt)
    evse = DCLimits20(100000, 0, 200, 0, 500, 150, *((50000, 0, 150, 0) if bpt else (None,) * 4))
    assert iso20_dc.read_dc_cpd_res(wire("iso20_dc", "DC_ChargeParameterDiscoveryRes",
                                         iso20_dc.dc_cpd_res("OK", evse, bpt))) == (evse, bpt)
    wire("iso20_dc", "DC_CableCheckReq", {})
    wire("iso20_dc", "DC_CableCheckRes", iso20_dc.cable_check_res("OK", "Ongoing"))
    assert iso20_dc.read_precharge_req(wire("iso20_dc", "DC_PreChargeReq",
                                            iso20_dc.precharge_req("Ongoing", 0, 380))) == ("Ongoing", 0, 380)
    assert iso20_dc.read_voltage(wire("iso20_dc", "DC_PreChargeRes", iso20_dc.voltage_res("OK", 379.5))) == 379.5
    wire("iso20_dc", "DC_WeldingDetectionReq", iso20_dc.welding_detection_req())


@pytest.mark.parametrize("mode", list(ControlMode))
@pytest.mark.parametrize("bpt", [False, True])
def test_dc_charge_loop_variants(mode: ControlMode, bpt: bool) -> None:
    """All four DC_ChargeLoop variants; currents are signed, limits magnitudes."""
    energy = EnergyRequest(20000, 30000, 1000, None, None, 3600) if mode is ControlMode.DYNAMIC else None
    req = LoopRequest(dc=True, control_mode=mode, bpt=bpt, soc=40, present_voltage=380, target_current=-50,
                      target_voltage=390, max_charge_power=50000, min_charge_power=0, max_charge_current=125,
                      max_voltage=450, min_voltage=200, max_discharge_power=30000 if bpt else None,
                      min_discharge_power=0 if bpt else None, max_discharge_current=80 if bpt else None, energy=energy)
    back = iso20_dc.read_dc_loop_req(wire("iso20_dc", "DC_ChargeLoopReq", iso20_dc.dc_loop_req(req)))
    assert back.control_mode is mode and back.bpt is bpt and back.present_voltage == 380
    if mode is ControlMode.SCHEDULED:
        assert back.target_current == -50 and back.target_voltage == 390
    else:
        assert back.max_charge_current == 125 and back.energy == energy
    limits = DCLimits20(0, 0, 200, 0, 500, 150, 30000, 30000, 80, 0)
    answer = DCLoopAnswer(390, -76.9, limits, power_limit_achieved=True)
    res = iso20_dc.dc_loop_res("OK", mode, bpt, answer, LoopStatus(), DynamicSchedule(3600), 10)
    voltage, current, got, flags, status = iso20_dc.read_dc_loop_res(wire("iso20_dc", "DC_ChargeLoopRes", res))
    assert (voltage, current, flags) == (390, -76.9, (True, False, False)) and status == LoopStatus()
    assert got["max_charge_power"] == 0 and got["max_voltage"] == 500
    assert (got.get("min_discharge_power") == 30000) is bpt


@pytest.mark.parametrize("name", ["SessionSetupRes", "AuthorizationSetupRes", "AuthorizationRes",
                                  "ServiceDiscoveryRes", "ServiceDetailRes", "ServiceSelectionRes",
                                  "ScheduleExchangeRes", "PowerDeliveryRes", "MeteringConfirmationRes",
                                  "SessionStopRes", "CertificateInstallationRes", "VehicleCheckInRes",
                                  "VehicleCheckOutRes"])
def test_failed_responses_are_valid_documents(name: str) -> None:
    """Every FAILED placeholder response of the common messages encodes."""
    assert wire("iso20", name, iso20.failed_common(name, "FAILED_SequenceError"))["ResponseCode"] == \
        "FAILED_SequenceError"
