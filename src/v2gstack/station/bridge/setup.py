"""Bridging a station's EVSEs: `EvseBridge` assembles one EVSE's bridge (its hardware, its OCPP policy, the
timelines, the SECC's controller factory and observer) and `start_bridged_seccs` runs one SECC per EVSE."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from ... import exi
from ...hardware import PilotHook
from ...iso15118.events import TlsFailed
from ...iso15118.sdp import SDP_PORT
from ...iso15118.secc import SeccConfig, SeccTimers
from ...iso15118.secc_server import SeccServer
from ...slac.frames import mac_text
from ...slac.io import EvseSlacService
from ...slac.outputs import Failed, Output, PilotRequest
from ...slac.timers import EvseSlacSettings
from ...trace.timeline import TimelineFolder
from ..ports import StationPort
from ..station import ChargingStation
from .config import BridgeConfig
from .controller import BridgeController
from .pacer import RenegotiationPacer, RenegotiationPacing
from .policy import EvsePolicy, SessionPolicy
from .tracing import OcppFrame, OcppFrames, SessionLog, SessionTrace

log = logging.getLogger(__name__)


class EvseBridge:
    """Joins one EVSE's SECC to the station: `controller` is the SeccServer's controller factory, and the bridge is
    the server's observer (failed TLS handshakes)."""

    def __init__(self, station: StationPort, evse_id: int, config: BridgeConfig | None = None,
                 timelines: TimelineFolder | None = None, frames: OcppFrames | None = None,
                 pacer: RenegotiationPacer | None = None) -> None:
        self.station = station
        self.evse_id = evse_id
        self.hardware = station.hardware(evse_id)
        self.policy = EvsePolicy(station, evse_id, config or BridgeConfig(), pacer)
        self.timelines = timelines or TimelineFolder(None, decode=exi.decode)
        self.server: SeccServer | None = None
        self.slac: EvseSlacService | None = None  # SLAC on the modem's link: the SECC starts after the match
        self._slac_task: asyncio.Task[None] | None = None
        (frames or OcppFrames(station)).subscribers.append(self._frame)

    @property
    def active(self) -> SessionPolicy | None:
        """The session of the EV at the EVSE now."""
        return self.policy.active

    @property
    def ending(self) -> set[SessionPolicy]:
        """Sessions whose transaction is still being closed."""
        return self.policy.ending

    @property
    def finished(self) -> list[SessionPolicy]:
        """The last finished sessions (their timelines)."""
        return self.policy.finished

    def controller(self) -> BridgeController:
        """The controller of one new SECC connection."""
        session_log = SessionLog(log, {"station": self.station.station_id, "evse": self.evse_id})
        trace = SessionTrace(self.timelines.new())
        policy = self.policy.session(trace, session_log)
        return BridgeController(self.hardware, policy, trace, session_log,
                                lambda: self.station.clock.epoch())

    def tls_failed(self, event: TlsFailed) -> None:
        """The SECC's observer: a failed TLS handshake, reported with a timeline of its own."""
        self.policy.tls_failed(event, SessionTrace(self.timelines.new()))

    def slac_output(self, out: Output) -> None:
        """The SLAC service's reports: failures through the error map (counted by step), pilot requests to the
        hardware's pilot hook."""
        if isinstance(out, Failed):
            self.policy.slac_failed(out.step, out.reason, mac_text(out.ev_mac) if out.ev_mac else None,
                                    SessionTrace(self.timelines.new()))
        elif isinstance(out, PilotRequest) and isinstance(self.hardware, PilotHook):
            self.hardware.control_pilot(out.state)

    async def start_after_slac(self, service: EvseSlacService, server: SeccServer) -> None:
        """Run SLAC on the EVSE's interface; start the SECC when the first car matched."""
        self.slac = service
        await service.start()
        if isinstance(self.hardware, PilotHook):
            self.hardware.add_listener(service)  # the pilot driver's B starts matching
        else:
            service.control_pilot("B")  # no pilot driver behind the seam: the EVSE counts as plugged in

        async def serve() -> None:
            matched = await service.matched()
            log.info("EVSE %d: %s; starting the SECC", self.evse_id, matched.describe())
            await server.start()
            self.server = server

        self._slac_task = asyncio.create_task(serve(), name=f"slac-secc-{self.evse_id}")

    async def close(self) -> None:
        """Stop SLAC and the SECC."""
        if self._slac_task is not None:
            self._slac_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._slac_task
        if self.slac is not None:
            await self.slac.close()
        if self.server is not None:
            await self.server.close()

    def _frame(self, frame: OcppFrame) -> bool:
        """Hand a frame to this EVSE's timelines; True when one recorded the CALL."""
        recorded = False
        for trace in self.policy.tracing():
            recorded = trace.frame(frame) or recorded
        return recorded


async def start_bridged_seccs(station: ChargingStation, *, host: str = "::1", port: int | None = None,
                              ifaces: list[str] | None = None, sdp_port: int | None = None,
                              config: BridgeConfig | None = None, trace_dir: Path | None = None,
                              tls: Any = None, protocols: tuple[str, ...] = ("iso2", "din"),
                              timeout_scale: float = 1.0, tcp: bool = True,
                              timers: SeccTimers | None = None,
                              configs: dict[int, BridgeConfig] | None = None, slac: bool = False,
                              slac_settings: EvseSlacSettings | None = None,
                              pacing: RenegotiationPacing | None = None) -> list[EvseBridge]:
    """One SECC per EVSE: on `ifaces` (one per EVSE, SDP by multicast) or on loopback `host` with TCP ports
    `port`, `port`+1, ... (0 or None: free ports) and SDP ports `sdp_port`, `sdp_port`+1, ... (0: free ports).
    With `tls` the SECCs serve TLS as well, on ports `port`+N, `port`+N+1, ... for N EVSEs (or free ones), and
    report failed TLS handshakes; SDP then answers each EV with the transport it asks for (DIN 70121 has no TLS;
    Contract payment is offered over TLS only). `tcp=False` with `tls` serves TLS only.
    `timers` replaces the SECC timers (else the defaults with the sequence timeout x `timeout_scale`). `configs`
    gives EVSEs their own BridgeConfig (the others get `config`). With `slac`, each EVSE with an interface runs
    SLAC (ISO 15118-3) on it first and starts its SECC after the first match; SLAC failures go through the error
    map (`EvsePolicy.slac_failed`). `pacing`: how fast the station asks its EVs to renegotiate, one pace for all
    its EVSEs (pacer.py; the defaults without it).
    Returns the bridges; `bridge.server` is the running SeccServer (None until the match with `slac`)."""
    if not tcp and tls is None:
        raise ValueError("serve TCP, TLS or both")
    bridges = []
    folder = TimelineFolder(trace_dir, decode=exi.decode)  # messages kept as bytes (trace/timeline.py)
    frames = OcppFrames(station)  # one parse of each OCPP frame for every EVSE's sessions
    pacer = RenegotiationPacer(pacing)  # one for the station: a grid signal reaches all its EVSEs at once
    base_sdp = SDP_PORT if sdp_port is None else sdp_port
    if timers is None:  # the sequence timeouts (-20: also the one after a charge loop) stretched, not the SECC's own
        base = SeccTimers()  # performance times
        timers = replace(base, sequence=base.sequence * timeout_scale,
                         sequence_charge_loop=base.sequence_charge_loop * timeout_scale)
    count = len(station.evses)
    for n, evse_id in enumerate(sorted(station.evses)):
        bridge = EvseBridge(station, evse_id, (configs or {}).get(evse_id, config), folder, frames, pacer)
        iface = ifaces[n] if ifaces and n < len(ifaces) else None
        tcp_port = (port + n) if port and tcp else 0
        tls_port = (port + (count if tcp else 0) + n) if port and tls is not None else 0
        server = SeccServer(bridge.controller, SeccConfig(protocols=protocols, timers=timers), host=host,
                            port=tcp_port, iface=iface, tls=tls, tcp=tcp, tls_port=tls_port,
                            sdp_port=base_sdp if iface or not base_sdp else base_sdp + n,
                            observer=bridge if tls is not None else None)
        if slac and iface:
            await bridge.start_after_slac(EvseSlacService(iface, slac_settings, on_output=bridge.slac_output), server)
        else:
            await server.start()
            bridge.server = server
        bridges.append(bridge)
    return bridges
