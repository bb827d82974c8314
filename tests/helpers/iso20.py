"""Driving an EVCC machine and a SECC machine against each other in memory, every message through EXI with the V2GTP
payload type it would travel with (ISO 15118-20 decodes by payload type), and building -20 pairs on a simulated EVSE.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from v2gstack import exi
from v2gstack.iso15118.ev import EVModel
from v2gstack.iso15118.evcc import EvccConfig, EvccSession, Send, SessionResult
from v2gstack.iso15118.events import SessionEvent
from v2gstack.iso15118.evse_sim import SimulatedEVSE, SimulatedEVSEConfig
from v2gstack.iso15118.messages import body_name
from v2gstack.iso15118.secc import PausedSessions, SeccConfig, SeccSession

Doc = dict[str, Any]
Modify = Callable[[Doc], Doc]


class TestClock:
    """The time both machines see: run_pair sets it; the simulated EVSE's meter reads it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        """The time now."""
        return self.now


class RecordingEVSE(SimulatedEVSE):
    """A simulated EVSE on a test clock that keeps every session event."""

    def __init__(self, config: SimulatedEVSEConfig | None = None, clock: TestClock | None = None) -> None:
        self.test_clock = clock or TestClock()
        super().__init__(config, self.test_clock)
        self.seen: list[SessionEvent] = []

    def on_event(self, event: SessionEvent) -> None:
        """Keep it."""
        self.seen.append(event)


def run_pair(evcc: EvccSession, secc: SeccSession, step_s: float = 1.0, *, at: str | None = None,
             modify: Modify | None = None) -> tuple[SessionResult, list[str]]:
    """Run both machines to the end; return the EVCC result and the message names in order. With `at`, the first
    request of that name is changed by `modify` before the SECC gets it. A SECC that closes without an answer, or
    answers and closes while the EV still waits, ends the EV's session as a closed connection."""
    clock = itertools.count(0.0, step_s)
    names: list[str] = []
    now = next(clock)
    step: Send | SessionResult = evcc.start(now)
    evse_clock = getattr(secc.controller, "test_clock", None)
    while isinstance(step, Send):
        if evse_clock is not None:
            evse_clock.now = now + step.delay
        ns = secc.rx_namespace_for(step.payload_type)
        assert ns is not None, f"the SECC refuses payload type 0x{step.payload_type:04X}"
        request = exi.decode(ns, exi.encode(step.ns, step.doc))
        name = body_name(request)
        if at is not None and name == at and modify is not None:
            request, at = modify(request), None
            request = exi.decode(ns, exi.encode(ns, request))
        names.append(name)
        reply = secc.handle(request, step.payload_type)
        if reply.pending is not None:  # the certificate hook: a coroutine that does not suspend in these tests
            reply = secc.complete(reply, finish(reply.pending))
        if reply.doc is None:
            return evcc.on_closed(f"SECC closed without answering {name}"), names
        back = evcc.rx_namespace_for(reply.payload_type)
        assert back is not None, f"the EVCC refuses payload type 0x{reply.payload_type:04X}"
        response = exi.decode(back, exi.encode(reply.ns, reply.doc))
        names.append(body_name(response))
        secc.sent(reply, 0.001)
        now = next(clock)
        step = evcc.handle(response, now)
        if reply.close and isinstance(step, Send):
            return evcc.on_closed("SECC closed the connection"), names
    return step, names


def finish(awaitable: Any) -> Any:
    """The value of a coroutine that completes without suspending."""
    try:
        awaitable.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the coroutine suspended")


def pair20(energy: str = "dc", control: str = "scheduled", sim: SimulatedEVSEConfig | None = None, *,
           ev: EVModel | None = None, paused: PausedSessions | None = None, **kw: Any
           ) -> tuple[EvccSession, SeccSession, RecordingEVSE]:
    """An ISO 15118-20 EVCC and a SECC offering -20 (and -2, DIN) on a recording simulated EVSE."""
    evse = RecordingEVSE(sim)
    evcc = EvccSession(EvccConfig(protocols=("iso20",), energy=energy, control=control, **kw), ev or EVModel())
    secc = SeccSession(evse, SeccConfig(protocols=("iso20", "iso2", "din")), paused)
    return evcc, secc, evse


def requests(names: list[str]) -> list[str]:
    """The request names of a run."""
    return [n for n in names if n.endswith("Req")]
