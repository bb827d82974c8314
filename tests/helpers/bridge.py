"""Helpers for the bridge tests: our CSMS, a station with one SECC per EVSE on loopback, and our EVs."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers.csms import PASSWORD, our_station, running_csms
from helpers.wait import until
from v2gstack import exi
from v2gstack.csms.service import Csms
from v2gstack.iso15118 import EvccConfig, EVModel, run_evcc
from v2gstack.iso15118.evcc import EvccSession, Send, SessionResult
from v2gstack.iso15118.stream import V2GTPStream
from v2gstack.station import ChargingStation
from v2gstack.station.bridge import BridgeConfig, EvseBridge, start_bridged_seccs

SPEEDUP = 60.0  # the EV's and the station's simulated seconds per real second (the same, so energy matches)


@dataclass
class Rig:
    """Everything of one bridged setup."""

    csms: Csms
    station: ChargingStation
    bridges: list[EvseBridge]
    trace_dir: Path

    def address(self, evse_id: int, transport: str = "tcp") -> tuple[str, int]:
        """TCP (or "tls") address of an EVSE's SECC."""
        server = self.bridges[evse_id - 1].server
        assert server is not None
        return server.addresses()[transport]

    async def ev(self, evse_id: int, protocol: str, energy: str, *, loops: int = 20, interval: float = 0.02,
                 model: EVModel | None = None, tls_context: ssl.SSLContext | None = None,
                 **kw: Any) -> SessionResult:
        """One EV session at an EVSE (direct address, no SDP; over TLS with `tls_context`)."""
        config = EvccConfig(protocols=(protocol,), energy=energy, loops=loops, loop_interval=interval,
                            ongoing_interval=0.02, evcc_id=f"0A0B0C0D0E{evse_id:02X}", **kw)
        return await run_evcc(config, model or EVModel(speedup=SPEEDUP, soc=30.0),
                              secc=self.address(evse_id, "tls" if tls_context else "tcp"),
                              tls=tls_context is not None, tls_context=tls_context)

    def records(self, evse_id: int = 1) -> list[dict[str, Any]]:
        """The timeline records of the EVSE's session (running, else the last finished)."""
        policy = self.bridges[evse_id - 1].policy
        session = policy.active or policy.finished[-1]
        return session.timeline.records

    async def flowing(self, evse_id: int = 1) -> str:
        """Wait until the EVSE's transaction runs and power flows into the car; its transactionId."""
        await until(lambda: self.csms.active_transaction("CS1", evse_id) is not None
                    and self.station.hardware(evse_id).meter().power_w > 0)
        tx_id = self.csms.active_transaction("CS1", evse_id)
        assert tx_id is not None
        return tx_id


@asynccontextmanager
async def bridged(tmp_path: Path, *, evses: int = 3, free: bool = True, config: BridgeConfig | None = None,
                  secc: dict[str, Any] | None = None, csms_config: dict[str, Any] | None = None,
                  **station_kw: Any) -> AsyncIterator[Rig]:
    """Our CSMS (SQLite; `csms_config`: more CsmsConfig and running_csms arguments), our station with `evses` EVSEs
    bridged to SECCs on loopback (`secc`: more arguments of start_bridged_seccs)."""
    trace_dir = tmp_path / "traces"
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}", **(csms_config or {})) as csms, \
            our_station(csms, password=PASSWORD, evses=evses, time_scale=1 / SPEEDUP, max_power_w=50_000.0,
                        tx_interval=30, **station_kw) as st:
        if free:
            st.model.put("AuthCtrlr", "Enabled", "false")
        await st.wait_accepted()
        options = {"sdp_port": 0, **(secc or {})}  # free UDP ports: parallel runs never collide on 15118
        bridges = await start_bridged_seccs(st, config=config, trace_dir=trace_dir, port=0, **options)
        try:
            yield Rig(csms, st, bridges, trace_dir)
        finally:
            for b in bridges:
                if b.server is not None:
                    await b.server.close()


Edit = Callable[[dict[str, Any], list[dict[str, Any]]], dict[str, Any]]


def _answer(doc: dict[str, Any]) -> tuple[str, str | None]:
    """(message name, ResponseCode) of a response in the EXI JSON view."""
    if "V2G_Message" in doc:
        ((name, body),) = doc["V2G_Message"]["Body"].items()
    else:
        ((name, body),) = doc.items()
    return name, body.get("ResponseCode")


async def scripted_ev(address: tuple[str, int], protocol: str, energy: str, *, at: str, action: str | Edit,
                      tls: ssl.SSLContext | None = None, wait: float = 30.0,
                      control: str = "scheduled") -> list[tuple[str, str | None]]:
    """Our EV engine over a real connection until it is about to send the request `at`; then `action`: "close"
    (close the connection instead), "silent" (send nothing until the SECC closes), or a function (request, requests
    sent so far) -> the request sent instead (its answer is read, then the connection closed).
    Returns the (name, ResponseCode) of every answer received. ISO 15118-20 messages travel with their V2GTP
    payload types (an edited request with its original one)."""
    engine = EvccSession(EvccConfig(protocols=(protocol,), energy=energy, evcc_id="0A0B0C0D0E01", loops=5,
                                    control=control), EVModel(speedup=SPEEDUP, soc=30.0))
    reader, writer = await asyncio.open_connection(*address, ssl=tls, server_hostname="" if tls else None)
    stream = V2GTPStream(reader, writer)
    loop = asyncio.get_running_loop()
    step = engine.start(loop.time())
    sent: list[dict[str, Any]] = []
    answers: list[tuple[str, str | None]] = []
    try:
        while isinstance(step, Send):
            doc = step.doc
            if step.name == at:
                if action == "close":
                    return answers
                if action == "silent":
                    with contextlib.suppress(ConnectionError):  # until the SECC gives up and closes
                        await asyncio.wait_for(stream.recv(), wait)
                    return answers
                assert callable(action)
                doc = action(copy.deepcopy(step.doc), sent)
            await stream.send(exi.encode(step.ns, doc), step.payload_type)
            sent.append(doc)
            frame = await asyncio.wait_for(stream.recv(), wait)
            answer = exi.decode(engine.rx_namespace_for(frame.payload_type) or engine.rx_namespace, frame.payload)
            answers.append(_answer(answer))
            if doc is not step.doc:
                return answers
            step = engine.handle(answer, loop.time())
        return answers
    finally:
        await stream.close()
