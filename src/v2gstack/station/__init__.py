"""The OCPP 2.0.1 charging station: EVSEs, device model, authorization, transactions, metering, offline queue.

See docs/station.md.
"""

from __future__ import annotations

from .clock import Clock
from .config import StationConfig
from .device_model import DeviceModel, Variable
from .evse import Evse
from .ports import StationPort
from .queue import OfflineQueue
from .session import SessionPort, simulate_session
from .station import ChargingStation
from .transaction import Transaction

__all__ = [
    "ChargingStation",
    "Clock",
    "DeviceModel",
    "Evse",
    "OfflineQueue",
    "SessionPort",
    "StationConfig",
    "StationPort",
    "Transaction",
    "Variable",
    "simulate_session",
]
