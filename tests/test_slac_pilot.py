"""The hardware seam's control-pilot hook drives the EVSE's SLAC: B starts matching, A leaves the network with a new
key, and the 5 % mode's E/F requests go back to the pilot without looping."""

from __future__ import annotations

from v2gstack.hardware import PilotHook, SimulatedHardware
from v2gstack.slac.evse import EvseSlac, EvseState
from v2gstack.slac.outputs import Output, PilotRequest
from v2gstack.slac.timers import EvseSlacSettings


class MachineListener:
    """The EVSE machine behind the hook, on a clock the test sets (the asyncio service does this with loop time)."""

    def __init__(self, machine: EvseSlac, hook: PilotHook) -> None:
        self.machine = machine
        self.hook = hook
        self.now = 0.0
        self.outputs: list[Output] = []

    def control_pilot(self, state: str) -> None:
        self.handle(self.machine.control_pilot(state, self.now))

    def poll(self, now: float) -> None:
        self.now = now
        self.handle(self.machine.poll(now))

    def handle(self, outputs: list[Output]) -> None:
        for out in outputs:
            self.outputs.append(out)
            if isinstance(out, PilotRequest):
                self.hook.control_pilot(out.state)


def test_pilot_b_starts_slac_and_a_leaves_with_a_new_key() -> None:
    hardware = PilotHook(SimulatedHardware())
    machine = EvseSlac(bytes.fromhex("020000000001"))
    listener = MachineListener(machine, hardware)
    hardware.add_listener(listener)
    machine.new_key(0.0)
    first_key = machine.nmk
    hardware.control_pilot("B")
    assert machine.state is EvseState.WAIT_PARM
    machine.state = EvseState.MATCHED  # as after a match
    hardware.control_pilot("A")
    assert machine.state is EvseState.IDLE and machine.nmk != first_key
    assert hardware.history == ["B", "A"]
    assert hardware.limits == hardware.inner.limits  # everything else reaches the wrapped hardware


def test_five_percent_mode_requests_go_through_the_hook_once_each() -> None:
    hardware = PilotHook(SimulatedHardware())
    settings = EvseSlacSettings(slac_init_timeout_ms=20_000, ac_mode_five_percent=True, retries_on_timeout=1)
    machine = EvseSlac(bytes.fromhex("020000000001"), settings)
    listener = MachineListener(machine, hardware)
    hardware.add_listener(listener)
    hardware.control_pilot("B")
    listener.poll(20.0)  # TT_EVSE_SLAC_init: E for T_step_EF
    assert machine.state is EvseState.STEP_EF and hardware.state == "E"
    listener.poll(24.0)  # back to B, waiting again
    assert machine.state is EvseState.WAIT_PARM and hardware.state == "B"
    listener.poll(44.0)  # no retry left
    assert machine.state is EvseState.UNMATCHED
    assert hardware.history == ["B", "E", "B"]
