"""The ISO 15118-20 timers checked against the standard's tables (Table 215 common, Tables 216/217 AC/DC; sources in
docs/iso15118.md): the values, and the SECC's 0.5 s sequence timeout after a charge-loop answer over real sockets."""

from __future__ import annotations

import asyncio

import pytest

from v2gstack.iso15118.ev import EVModel
from v2gstack.iso15118.evcc import EvccConfig
from v2gstack.iso15118.evcc_client import run_evcc
from v2gstack.iso15118.evse_sim import SimulatedEVSE
from v2gstack.iso15118.model import Step
from v2gstack.iso15118.secc import SeccConfig
from v2gstack.iso15118.secc_server import SeccServer
from v2gstack.iso15118.timers import EvccTimers, SeccTimers
from v2gstack.trace.error_map import FailureKind


def test_evcc_message_timeouts_of_tables_215_to_217() -> None:
    """2 s, 5 s for ServiceDetailReq and CertificateInstallationReq, 0.5 s for the AC/DC charge loops."""
    t = EvccTimers()
    assert t.message_timeout("iso20", Step.SESSION_SETUP) == 2.0
    assert t.message_timeout("iso20_dc", Step.POWER_DELIVERY) == 2.0  # -2 gives PowerDelivery 5 s; -20 does not
    assert t.message_timeout("iso20", Step.SERVICE_DETAIL) == 5.0
    assert t.message_timeout("iso20", Step.CERTIFICATE_INSTALLATION) == 5.0
    assert t.message_timeout("iso20_ac", Step.CHARGE_LOOP) == 0.5
    assert t.message_timeout("iso20_dc", Step.CHARGE_LOOP) == 0.5
    assert t.precharge20 == 10.0 and t.cable_check == 40.0 and t.ongoing == 60.0 and t.communication_setup == 20.0


def test_secc_sequence_timeout_is_half_a_second_after_a_charge_loop_answer_only_in_iso20() -> None:
    t = SeccTimers()
    assert t.sequence_timeout("iso20", Step.CHARGE_LOOP) == 0.5
    assert t.sequence_timeout("iso20", Step.POWER_DELIVERY) == 60.0  # waiting for the first loop request
    assert t.sequence_timeout("iso20", None) == 60.0
    assert t.sequence_timeout("iso2", Step.CURRENT_DEMAND) == 60.0
    assert t.sequence_timeout("iso2", Step.CHARGING_STATUS) == 60.0
    assert t.scaled(3).sequence_timeout("iso20", Step.CHARGE_LOOP) == 1.5


def test_ev_offering_iso20_must_pace_its_charge_loop_below_the_secc_timeout() -> None:
    with pytest.raises(ValueError, match=r"0\.5 s"):
        EvccConfig(protocols=("iso20", "iso2"), loop_interval=0.5)
    EvccConfig(protocols=("iso2",), loop_interval=1.0)  # -2 has no such limit
    EvccConfig(protocols=("iso20",), loop_interval=0.25)


async def _session(timers: SeccTimers, loop_interval: float, energy: str) -> tuple[SimulatedEVSE, object]:
    """One -20 session over loopback TCP; the EVSE (with how its session ended) and the EV's result."""
    evses: list[SimulatedEVSE] = []

    def make() -> SimulatedEVSE:
        evses.append(SimulatedEVSE())
        return evses[-1]

    async with SeccServer(make, SeccConfig(protocols=("iso20",), timers=timers), host="::1", sdp=False) as server:
        config = EvccConfig(protocols=("iso20",), energy=energy, loops=3, loop_interval=loop_interval)
        result = await asyncio.wait_for(run_evcc(config, EVModel(), secc=server.addresses()["tcp"]), 30)
        for _ in range(200):
            if evses and evses[0].ended is not None:
                break
            await asyncio.sleep(0.01)
    return evses[0], result


@pytest.mark.parametrize("energy", ["ac", "dc"])
async def test_secc_drops_an_ev_that_goes_quiet_in_the_charge_loop(energy: str) -> None:
    """Before, the SECC waited the flat 60 s with the contactors closed: now the charge-loop sequence timeout ends
    the session (SequenceTimeout, contactors opened) after the first loop answer when the EV does not follow up."""
    evse, result = await _session(SeccTimers(sequence_charge_loop=0.02), 0.2, energy)
    assert evse.ended is not None and evse.ended.kind is FailureKind.SEQUENCE_TIMEOUT, evse.ended
    assert "V2G_SECC_Sequence_Timeout (0.02 s)" in evse.ended.detail
    assert f"{energy.upper()}_ChargeLoopReq" in evse.ended.detail
    assert not evse.contactors_closed
    assert not result.ok and result.charge_loops == 1  # type: ignore[attr-defined]


async def test_an_ev_pacing_its_loop_within_the_timeout_charges_to_the_end() -> None:
    """The control: the standard's 0.5 s and an EV that sends every 0.2 s."""
    evse, result = await _session(SeccTimers(), 0.2, "dc")
    assert result.ok and result.charge_loops == 3, result  # type: ignore[attr-defined]
    assert evse.ended is not None and evse.ended.kind is FailureKind.NORMAL
