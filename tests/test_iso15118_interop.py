"""Interop with the reference ISO 15118 stack across a veth pair: its EVCC against our SECC, our EVCC against its SECC.

Each case runs in two network namespaces joined by a veth pair (tests/helpers/netns.py); the peers find each other
by SDP multicast on the link and talk TCP or TLS over link-local IPv6. The reference runs from .venv-ref as its own
process (tests/helpers/josev.py), ours through the `v2gstack` CLI in the other namespace. A case passes when the
session ends with SessionStopReq/Res OK on both sides: our process exits 0 (the EVCC only on SessionStopRes OK, the
SECC after one SessionStopRes) and the reference's log shows the SessionStopRes with ResponseCode OK.

The ten reference sessions (five cases, both directions) take 10-20 s each (the reference codec starts a JVM), so they
run three at a time in one module fixture and each parametrized test reports its own case (about 55 s in all).

Below them, regression tests for what interop revealed run without the reference stack.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import interop, josev, netns

from v2gstack.iso15118.ev import EVModel
from v2gstack.iso15118.evcc import EvccConfig
from v2gstack.iso15118.evcc_client import run_evcc
from v2gstack.iso15118.evse_sim import SimulatedEVSE
from v2gstack.iso15118.secc_server import DYNAMIC_PORTS, SeccServer
from v2gstack.iso15118.timers import EvccTimers

# (protocol, energy, TLS): DIN SPEC 70121 is TCP only; the reference offers TLS for -2 with its own test PKI
CASES = [("din", "dc", False), ("iso2", "ac", False), ("iso2", "dc", False), ("iso2", "ac", True), ("iso2", "dc", True)]
DIRECTIONS = ["reference-evcc-vs-our-secc", "our-evcc-vs-reference-secc"]


def _skip_reason() -> str | None:
    """Why the reference interop cannot run here, or None."""
    return netns.skip_reason() or (None if josev.available() else "no .venv-ref (make ref-venv; needs Java)")


@pytest.fixture(scope="module")
def interop_results(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple, interop.Outcome]:
    """Every (direction, protocol, energy, tls) case, run three at a time, each in its own pair of namespaces."""
    root = tmp_path_factory.mktemp("interop")
    jobs = {(direction, protocol, energy, tls): root / f"{direction}-{protocol}-{energy}{'-tls' if tls else ''}"
            for direction in DIRECTIONS for protocol, energy, tls in CASES}
    runners = {DIRECTIONS[0]: interop.reference_evcc_vs_our_secc,
               DIRECTIONS[1]: interop.our_evcc_vs_reference_secc}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {key: pool.submit(runners[key[0]], key[1], key[2], workdir, tls=key[3])
                   for key, workdir in jobs.items()}
        return {key: future.result() for key, future in futures.items()}


@pytest.mark.reference
@pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize(("protocol", "energy", "tls"), CASES,
                         ids=[f"{p}-{e}{'-tls' if t else ''}" for p, e, t in CASES])
def test_session_ends_with_session_stop_ok_on_both_sides(interop_results: dict[tuple, interop.Outcome],
                                                         direction: str, protocol: str, energy: str,
                                                         tls: bool) -> None:
    """SDP by multicast on the veth, TCP or TLS over link-local IPv6, full session, SessionStopRes OK on both ends."""
    outcome = interop_results[(direction, protocol, energy, tls)]
    assert outcome.ours_rc == 0, outcome.explain()
    assert outcome.reference_ok, outcome.explain()
    assert outcome.charge_loops >= 1, outcome.explain()
    assert outcome.our_transport.startswith("TLSv1.2 ECDHE-ECDSA-AES128-SHA256" if tls else "TCP"), outcome.explain()


# ----- regressions found by interop (no reference needed) -----

async def test_secc_listens_in_the_dynamic_port_range_when_asked_for_any_port() -> None:
    """Port 0 means a free port in 49152-65535: the reference EVCC rejects SDP answers outside that range."""
    low, high = DYNAMIC_PORTS
    for _ in range(5):
        async with SeccServer(SimulatedEVSE, host="::1", sdp=False) as server:
            _host, port = server.addresses()["tcp"]
            assert low <= port <= high


async def test_ev_with_scaled_timeouts_and_wide_precharge_tolerance_still_charges() -> None:
    """The options used against the reference SECC (slow codec, voltage that never rises) keep a normal session OK;
    the SECC reports its handling time of every response (the bench's CurrentDemand figures)."""
    handled: list[tuple[str, float]] = []
    async with SeccServer(SimulatedEVSE, host="::1", sdp=False,
                          on_handled=lambda name, seconds: handled.append((name, seconds))) as server:
        config = EvccConfig(protocols=("iso2",), energy="dc", loops=3, precharge_tolerance=1000.0,
                            timers=EvccTimers().scaled(3.0))
        result = await asyncio.wait_for(run_evcc(config, EVModel(), secc=server.addresses()["tcp"]), 30)
    assert result.ok, result.reason
    assert result.charge_loops == 3
    assert [name for name, _ in handled].count("CurrentDemandRes") == 3
    assert handled[-1][0] == "SessionStopRes"
    assert all(seconds >= 0 for _, seconds in handled)
