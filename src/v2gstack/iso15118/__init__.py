"""ISO 15118-20, ISO 15118-2 and DIN SPEC 70121: SDP, V2GTP, TCP/TLS transport, timers, and sans-I/O EVCC and SECC
machines.

Layout: `v2gtp`, `sdp` (codecs) and `sdp_io`, `stream`, `tls` (asyncio/transport); `apphand` (protocol
negotiation); `messages` (DIN and -2 message building/reading in the EXI JSON view); `secc`, `evcc` (state machines);
`evse`, `evse_sim` (the station interface and a simulation); `events` (what the SECC tells the station); `ev` (EV
model); `secc_server`, `evcc_client` (asyncio shells); `msglog` (per-message records); `pnc` (Plug & Charge
messages); `cli` (the `ev` and `secc` commands). ISO 15118-20: `model20`, `messages/iso20*`, `secc20`
(+`_power`, `_pnc`), `evcc20` (+`_power`), `defaults20`, `pnc20`, `xmldsig20`, `contract_key20`. See
docs/iso15118.md.
"""

from __future__ import annotations

from .ev import EVModel
from .evcc import EvccConfig, EvccSession, SessionResult
from .evcc_client import run_evcc
from .events import Answered, MessageExchanged, ScheduleChosen, SeccObserver, SessionEnded, SessionEvent, TlsFailed
from .evse import AuthorizationStatus, EVSEController, SessionInfo
from .evse_sim import SimulatedEVSE, SimulatedEVSEConfig
from .grammars import load_grammars
from .secc import SeccConfig, SeccSession
from .secc_server import SeccServer
from .timers import EvccTimers, SeccTimers

__all__ = [
    "Answered", "AuthorizationStatus", "EVModel", "EVSEController", "EvccConfig", "EvccSession", "EvccTimers",
    "MessageExchanged", "ScheduleChosen", "SeccConfig", "SeccObserver", "SeccServer", "SeccSession", "SeccTimers",
    "SessionEnded", "SessionEvent", "SessionInfo", "SessionResult", "SimulatedEVSE", "SimulatedEVSEConfig",
    "TlsFailed", "load_grammars", "run_evcc",
]
