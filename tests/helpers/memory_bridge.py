"""The bridge in memory: our EVCC engine <-> the SECC engine with the bridge's controller, driven as the shells would
(every message through EXI, message records and Answered events, certificate services awaited, the EV's waits
slept), and the station's OCPP link to our CSMS (its router, store and services, SQLite) over an in-memory
websocket pair. No sockets: a session runs in a fraction of a second of real time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from helpers.csms import TOKEN
from helpers.memory_link import MemoryCsms
from helpers.wait import until
from v2gstack import exi
from v2gstack.csms.revocation import OcspChecker
from v2gstack.csms.service import Csms, CsmsConfig
from v2gstack.csms.store import Store
from v2gstack.hardware import SimulatedHardwareConfig
from v2gstack.iso15118.ev import EVModel
from v2gstack.iso15118.evcc import EvccConfig, EvccSession, Send, SessionResult
from v2gstack.iso15118.msglog import ConnectionLog
from v2gstack.iso15118.secc import PausedSessions, SeccConfig, SeccSession
from v2gstack.ocpp import BackOff
from v2gstack.pki.ocsp import OcspResponder
from v2gstack.station import ChargingStation, StationConfig
from v2gstack.station.bridge import BridgeConfig, EvseBridge
from v2gstack.station.bridge.tracing import OcppFrames
from v2gstack.trace.error_map import FailureKind
from v2gstack.trace.timeline import TimelineFolder

SPEEDUP = 60.0  # the EV's and the station's simulated seconds per real second (the same, so energy matches)


class MemoryOcsp(OcspChecker):
    """The CSMS's OCSP client asking a real responder (real signed answers) in memory instead of over HTTP."""

    def __init__(self, responder: OcspResponder) -> None:
        super().__init__()
        self.responder = responder

    async def _fetch(self, url: str, request: bytes) -> bytes:
        """The responder's answer to the DER request."""
        self.fetches += 1
        return self.responder.respond(request)


async def drive(evcc: EvccSession, secc: SeccSession) -> SessionResult:
    """Run both engines to the end as the shells would; the EV's result. Between messages the event loop runs, so
    the station's and the CSMS's tasks (Authorize, TransactionEvents, a profile change) progress as they would."""
    log = ConnectionLog("SECC", "[::1]:1")
    loop = asyncio.get_running_loop()
    step: Send | SessionResult = evcc.start(loop.time())
    while isinstance(step, Send):
        await asyncio.sleep(step.delay)
        if secc.ended:
            return evcc.on_closed(f"SECC closed the connection before {step.name}")
        data = exi.encode(step.ns, step.doc)
        ns = secc.rx_namespace_for(step.payload_type)
        if ns is None:
            return evcc.on_closed(f"SECC refused V2GTP payload type 0x{step.payload_type:04X}")
        request = exi.decode(ns, data)
        secc.exchanged(log.record("rx", ns, request, data, secc.session_id))
        started = loop.time()
        reply = secc.handle(request, step.payload_type)
        if reply.pending is not None:  # a certificate service: awaited as the shell does
            reply = secc.complete(reply, await reply.pending)
        if reply.doc is None:
            return evcc.on_closed(f"SECC closed the connection on {step.name}")
        out = exi.encode(reply.ns, reply.doc)
        secc.exchanged(log.record("tx", reply.ns, reply.doc, out, secc.session_id))
        secc.sent(reply, loop.time() - started)
        back = evcc.rx_namespace_for(reply.payload_type)
        if back is None:
            return evcc.on_closed(f"EVCC refused V2GTP payload type 0x{reply.payload_type:04X}")
        step = evcc.handle(exi.decode(back, out), loop.time())
        if reply.close and isinstance(step, Send):
            return evcc.on_closed("SECC closed the connection")
    if not secc.ended:
        secc.on_closed(FailureKind.DISCONNECTED, "EVCC closed the connection")
    return step


@dataclass
class MemoryRig:
    """Our CSMS, our station with one bridged EVSE, and EVs driven against it, all in memory."""

    csms: Csms
    link: MemoryCsms
    station: ChargingStation
    bridge: EvseBridge

    def messages(self, action: str) -> list[dict[str, Any]]:
        """The logged messages of one action at the CSMS (payload and response)."""
        return [m for m in self.csms.store.messages(station_id="CS1") if m["action"] == action]

    def transactions(self) -> list[dict[str, Any]]:
        """The CSMS's transactions of the station, in full."""
        return [self.csms.store.transaction("CS1", t["transactionId"]) for t in self.csms.store.transactions("CS1")]

    def session(self, protocol: str = "iso2", energy: str = "ac", *, tls: bool = False, loops: int = 10,
                offer: tuple[str, ...] = ("iso2", "din"), model: EVModel | None = None,
                paused: PausedSessions | None = None, **evcc: Any) -> tuple[EvccSession, SeccSession]:
        """An EV and the SECC session it talks to (the bridge's controller behind it; `offer`: the SECC's protocols;
        `tls`: the session counts as TLS 1.3, as the shell would tell it; `paused`: the SECC server's store of
        paused sessions, shared by the sessions that resume them)."""
        config = EvccConfig(protocols=(protocol,), energy=energy, loops=loops, loop_interval=0.02,
                            ongoing_interval=0.02, evcc_id="0A0B0C0D0E01", **evcc)
        return (EvccSession(config, model or EVModel(speedup=SPEEDUP, soc=30.0)),
                SeccSession(self.bridge.controller(), SeccConfig(protocols=offer), paused, tls=tls,
                            tls_version="TLSv1.3" if tls else None))

    async def ev(self, protocol: str = "iso2", energy: str = "ac", **kw: Any) -> SessionResult:
        """One whole EV session."""
        return await drive(*self.session(protocol, energy, **kw))

    async def settled(self) -> None:
        """The EV's session is closed on the OCPP side too: the transaction ended and the CSMS has every message."""
        await until(lambda: not self.bridge.ending and self.station.evse(1).transaction_id is None)
        await self.station.wait_queue_empty()


@asynccontextmanager
async def memory_bridge(tmp_path: Path, *, free: bool = True, config: BridgeConfig | None = None,
                        hardware: SimulatedHardwareConfig | None = None, tokens: list[dict[str, Any]] | None = None,
                        pnc: bool = False, mo_root: Any = None, **csms_config: Any) -> AsyncIterator[MemoryRig]:
    """The rig: our CSMS on SQLite in `tmp_path` (trusting `mo_root`, an MO root certificate), our station (one
    EVSE, 50 kW, 60x time) linked to it in memory, the EVSE bridged (`free`: AuthCtrlr.Enabled false; `pnc`:
    ISO15118Ctrlr.PnCEnabled)."""
    store = Store(f"sqlite:///{tmp_path / 'csms.db'}")
    store.add_station("CS1", "station-password-0001")
    if mo_root is not None:
        store.add_trust_anchor("MORootCertificate", mo_root.public_bytes(Encoding.PEM))
    for token in tokens if tokens is not None else [TOKEN]:
        store.put_id_token(token["idToken"], token["type"], token.get("status", "Accepted"))
    csms = Csms(store, CsmsConfig(ping_interval=None, **csms_config))
    link = MemoryCsms(csms)
    station = ChargingStation(StationConfig(
        "CS1", "ws://in-memory/ocpp", time_scale=1 / SPEEDUP, max_power_w=50_000.0, backoff=BackOff(0.02, 0.02, 1),
        call_timeout=5.0, ping_interval=None, hardware=hardware or SimulatedHardwareConfig()), dial=link.dial)
    station.model.put("SampledDataCtrlr", "TxUpdatedInterval", "30")
    station.model.put("AuthCtrlr", "Enabled", "false" if free else "true")
    station.model.put("ISO15118Ctrlr", "PnCEnabled", "true" if pnc else "false")
    await station.start()
    try:
        await asyncio.wait_for(station.wait_accepted(), 20)
        bridge = EvseBridge(station, 1, config, TimelineFolder(None, decode=exi.decode), OcppFrames(station))
        yield MemoryRig(csms, link, station, bridge)
    finally:
        await station.stop()
        await link.close()
        await csms.close()
        store.close()
