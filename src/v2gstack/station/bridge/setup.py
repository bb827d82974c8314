"""Bridging a station's EVSEs: `EvseBridge` assembles one EVSE's bridge (its hardware, its OCPP policy, the
timelines, the SECC's controller factory and observer) and `start_bridged_seccs` runs one SECC per EVSE."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ...iso15118.events import TlsFailed
from ...iso15118.sdp import SDP_PORT
from ...iso15118.secc import SeccConfig, SeccTimers
from ...iso15118.secc_server import SeccServer
from ...trace.timeline import TimelineFolder
from ..ports import StationPort
from ..station import ChargingStation
from .config import BridgeConfig
from .controller import BridgeController
from .policy import EvsePolicy, SessionPolicy
from .tracing import OcppFrame, OcppFrames, SessionLog, SessionTrace

log = logging.getLogger(__name__)


class EvseBridge:
    """Joins one EVSE's SECC to the station: `controller` is the SeccServer's controller factory, and the bridge is
    the server's observer (failed TLS handshakes)."""

    def __init__(self, station: StationPort, evse_id: int, config: BridgeConfig | None = None,
                 timelines: TimelineFolder | None = None, frames: OcppFrames | None = None) -> None:
        self.station = station
        self.evse_id = evse_id
        self.hardware = station.hardware(evse_id)
        self.policy = EvsePolicy(station, evse_id, config or BridgeConfig())
        self.timelines = timelines or TimelineFolder(None)
        self.server: SeccServer | None = None
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
                                lambda: self.station.clock.wall().timestamp())

    def tls_failed(self, event: TlsFailed) -> None:
        """The SECC's observer: a failed TLS handshake, reported with a timeline of its own."""
        self.policy.tls_failed(event, SessionTrace(self.timelines.new()))

    def _frame(self, frame: OcppFrame) -> None:
        for trace in self.policy.tracing():
            trace.frame(frame)


async def start_bridged_seccs(station: ChargingStation, *, host: str = "::1", port: int | None = None,
                              ifaces: list[str] | None = None, sdp_port: int | None = None,
                              config: BridgeConfig | None = None, trace_dir: Path | None = None,
                              tls: Any = None, protocols: tuple[str, ...] = ("iso2", "din"),
                              timeout_scale: float = 1.0, tcp: bool = True,
                              timers: SeccTimers | None = None,
                              configs: dict[int, BridgeConfig] | None = None) -> list[EvseBridge]:
    """One SECC per EVSE: on `ifaces` (one per EVSE, SDP by multicast) or on loopback `host` with TCP ports
    `port`, `port`+1, ... (0 or None: free ports) and SDP ports `sdp_port`, `sdp_port`+1, ... (0: free ports).
    With `tls` the SECCs serve TLS as well, on ports `port`+N, `port`+N+1, ... for N EVSEs (or free ones), and
    report failed TLS handshakes; SDP then answers each EV with the transport it asks for (DIN 70121 has no TLS;
    Contract payment is offered over TLS only). `tcp=False` with `tls` serves TLS only.
    `timers` replaces the SECC timers (else the defaults with the sequence timeout x `timeout_scale`). `configs`
    gives EVSEs their own BridgeConfig (the others get `config`).
    Returns the bridges; `bridge.server` is the running SeccServer."""
    if not tcp and tls is None:
        raise ValueError("serve TCP, TLS or both")
    bridges = []
    folder = TimelineFolder(trace_dir)
    frames = OcppFrames(station)  # one parse of each OCPP frame for every EVSE's sessions
    base_sdp = SDP_PORT if sdp_port is None else sdp_port
    if timers is None:
        base = SeccTimers()
        timers = SeccTimers(sequence=base.sequence * timeout_scale, performance=base.performance,
                            performance_long=base.performance_long,
                            performance_current_demand=base.performance_current_demand)
    count = len(station.evses)
    for n, evse_id in enumerate(sorted(station.evses)):
        bridge = EvseBridge(station, evse_id, (configs or {}).get(evse_id, config), folder, frames)
        iface = ifaces[n] if ifaces and n < len(ifaces) else None
        tcp_port = (port + n) if port and tcp else 0
        tls_port = (port + (count if tcp else 0) + n) if port and tls is not None else 0
        server = SeccServer(bridge.controller, SeccConfig(protocols=protocols, timers=timers), host=host,
                            port=tcp_port, iface=iface, tls=tls, tcp=tcp, tls_port=tls_port,
                            sdp_port=base_sdp if iface or not base_sdp else base_sdp + n,
                            observer=bridge if tls is not None else None)
        await server.start()
        bridge.server = server
        bridges.append(bridge)
    return bridges
