"""The simulated EVSE hardware (sans-I/O, its clock injected): the station's power limit holds whatever the EV asks
for, in both directions; DC setpoints stay within voltage, current and power; the fault knobs; the meter's registers
only move by power x time."""

from __future__ import annotations

import pytest

from v2gstack.hardware import EvseHardware, RestorableMeter, SimulatedHardware, SimulatedHardwareConfig


class Clock:
    """Simulated seconds, moved by the test."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        """Now."""
        return self.t


def test_nothing_flows_until_the_station_allows_it_and_the_limit_holds_both_ways() -> None:
    clock = Clock()
    hw = SimulatedHardware(clock=clock, meter_id="M1")
    assert isinstance(hw, RestorableMeter)
    assert hw.ac_draw(16.0, 3) == 0.0  # no limit set yet: the station has not authorized anything
    hw.set_power_limit(7000.0, 3000.0)
    assert hw.meter().power_w == 7000.0  # 16 A x 230 V x 3 = 11 kW asked, 7 kW allowed
    clock.t = 3600.0
    hw.ac_draw(-10.0, 3)  # the EV gives back 6.9 kW: 3 kW allowed
    clock.t = 7200.0
    reading = hw.meter()
    assert (reading.import_wh, reading.export_wh, reading.power_w) == (pytest.approx(7000.0),
                                                                       pytest.approx(3000.0), -3000.0)
    assert reading.current == pytest.approx(3000.0 / 690) and reading.voltage == 230.0
    hw.set_power_limit(0.0, 0.0)
    clock.t = 9000.0
    assert hw.meter().power_w == 0.0 and hw.meter().export_wh == pytest.approx(3000.0)


def test_dc_setpoints_stay_within_voltage_current_and_power() -> None:
    hw = SimulatedHardware(SimulatedHardwareConfig(dc_max_voltage=500.0, dc_max_current=200.0, dc_max_power=50_000.0,
                                                   dc_max_discharge_current=100.0, dc_max_discharge_power=30_000.0),
                           clock=Clock())
    hw.set_power_limit(40_000.0, 20_000.0)
    assert hw.precharge(600.0, 2.0) == 500.0
    out = hw.deliver_dc(400.0, 150.0)  # 60 kW asked: the station allows 40 kW
    assert (out.voltage, out.current, out.power_limited, out.current_limited) == (400.0, 100.0, True, False)
    out = hw.deliver_dc(400.0, 250.0)
    assert out.current_limited and out.current == 100.0
    out = hw.deliver_dc(400.0, -80.0)  # discharge: 32 kW asked, 20 kW allowed
    assert out.power == pytest.approx(-20_000.0) and out.power_limited
    assert hw.meter().power_w == pytest.approx(-20_000.0)
    assert hw.set_contactors(True) and hw.output_voltage() == 400.0
    assert hw.set_contactors(False) and hw.output_voltage() == 0.0 and hw.meter().power_w == 0.0


def test_fault_knobs() -> None:
    hw: EvseHardware = SimulatedHardware(SimulatedHardwareConfig(isolation="Fault", contactor_fault=True))
    result = hw.isolation_test()
    assert result.done and result.fault and result.level == "Fault"
    assert not hw.set_contactors(True)
    assert hw.set_contactors(False)  # opening still works
    hw.control_pilot("C")  # the optional hook: ignored by the simulator
