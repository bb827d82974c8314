"""One OCPP 2.0.1 transaction and the TransactionEvent payloads it produces (sans-I/O; seqNo from 0, no gaps)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

Payload = dict[str, Any]


@dataclass
class Transaction:
    """A transaction on one EVSE: its id, the next seqNo, and what the CSMS has been told so far."""

    evse_id: int
    connector_id: int = 1
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:36])
    seq_no: int = 0
    remote_start_id: int | None = None
    reservation_id: int | None = None  # the reservation this transaction used (sent once, with the idToken)
    id_token: dict[str, Any] | None = None
    charging_state: str | None = None
    charging_seconds: float = 0.0
    custom_data: dict[str, Any] | None = None  # CustomDataType sent with the next event (ISO 15118 facts)
    started_epoch: float | None = None  # station wall clock at the start (Relative charging profiles count from it)
    operation_mode: str | None = None  # OCPP 2.1 operationMode in force (told in the next event when it changed)
    ended: bool = False
    _state_told: str | None = None
    _token_told: bool = False
    _custom_told: bool = False
    _mode_told: str | None = None

    def event(self, event_type: str, trigger: str, timestamp: str, *, meter_value: list[Payload] | None = None,
              stopped_reason: str | None = None, offline: bool = False, v21: bool = False) -> Payload:
        """The next TransactionEvent request of this transaction (consumes one seqNo); `v21`: with OCPP 2.1's
        operationMode when it changed."""
        info: Payload = {"transactionId": self.id}
        if v21 and self.operation_mode is not None and self.operation_mode != self._mode_told:
            info["operationMode"] = self._mode_told = self.operation_mode
        if self.charging_state is not None and (self.charging_state != self._state_told or event_type == "Started"):
            info["chargingState"] = self._state_told = self.charging_state
        if self.charging_seconds:
            info["timeSpentCharging"] = int(self.charging_seconds)
        if stopped_reason is not None:
            info["stoppedReason"] = stopped_reason
        if self.remote_start_id is not None and (event_type == "Started" or trigger == "RemoteStart"):
            info["remoteStartId"] = self.remote_start_id
        p: Payload = {"eventType": event_type, "timestamp": timestamp, "triggerReason": trigger,
                      "seqNo": self.seq_no, "transactionInfo": info}
        if offline:
            p["offline"] = True
        if self.id_token is not None and not self._token_told:
            p["idToken"] = self.id_token
            self._token_told = True
            if self.reservation_id is not None:
                p["reservationId"] = self.reservation_id
        if event_type == "Started" or "idToken" in p:
            p["evse"] = {"id": self.evse_id, "connectorId": self.connector_id}
        if meter_value:
            p["meterValue"] = meter_value
        if self.custom_data is not None and not self._custom_told:
            p["customData"] = self.custom_data
            self._custom_told = True
        self.seq_no += 1
        if event_type == "Ended":
            self.ended = True
        return p

    def set_custom_data(self, data: dict[str, Any]) -> None:
        """Facts to send with the next event (as customData; the vendorId names their meaning)."""
        self.custom_data = data
        self._custom_told = False

    def set_token(self, token: dict[str, Any] | None) -> None:
        """The idToken that authorized the transaction (sent once, in the next event)."""
        self.id_token = token
        self._token_told = False

    def snapshot(self) -> Payload:
        """What must survive a restart to end the transaction properly."""
        return {"evse_id": self.evse_id, "connector_id": self.connector_id, "id": self.id, "seq_no": self.seq_no,
                "charging_seconds": self.charging_seconds}

    @classmethod
    def restore(cls, d: Payload) -> Transaction:
        """A transaction from its snapshot."""
        return cls(evse_id=d["evse_id"], connector_id=d["connector_id"], id=d["id"], seq_no=d["seq_no"],
                   charging_seconds=d.get("charging_seconds", 0.0))
