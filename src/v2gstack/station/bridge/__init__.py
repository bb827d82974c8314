"""The bridge: an ISO 15118 / DIN 70121 SECC per EVSE whose sessions drive the OCPP 2.0.1 station, and back.

- controller.py: `BridgeController`, the EVSEController of one session: answers the SECC from the EVSE's hardware
  and from the session's policy; no OCPP;
- policy.py: `EvsePolicy` / `SessionPolicy`, the OCPP side, through the station's `StationPort` only
  (plug_and_charge.py: the contract decision tree and certificate installation through the CSMS);
- tracing.py: each session's timeline, fed by the SECC's typed events and the station's OCPP frames;
- setup.py: `EvseBridge` (one EVSE's assembly) and `start_bridged_seccs`;
- config.py: `BridgeConfig`.
"""

from __future__ import annotations

from .config import BridgeConfig
from .controller import BridgeController
from .policy import EvsePolicy, SessionPolicy
from .setup import EvseBridge, start_bridged_seccs

__all__ = ["BridgeConfig", "BridgeController", "EvseBridge", "EvsePolicy", "SessionPolicy", "start_bridged_seccs"]
