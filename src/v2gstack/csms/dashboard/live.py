"""The live state the dashboard streams: each running session's power (import, export) and energy over time, and
which stations changed (connection, connector status), gathered from the CSMS's message listeners (in a cluster,
the other nodes' too, from the event feed).

One LiveHub per Csms (`live_hub(csms)`): TransactionEvents (OCPP 1.6: StartTransaction, MeterValues of a
transaction, StopTransaction) feed the sessions (their sampled values normalised like the store's: W and Wh),
StatusNotifications mark a station changed, and the set of connections is compared at each tick. A `Subscriber`
(one per browser event stream) remembers what it has already sent, so a tick carries only the new points and the
stations changed since the previous one: with 1,000 stations an idle tick is a few bytes.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from ...ocpp.units import MeterValueError, normalise
from ..ocpp16 import MeterValue16Error, meter_values
from ..service import Csms

POINTS = 720  # points kept per session (at one per TransactionEvent: an hour at 5 s)
ENDED_KEPT_S = 120.0  # an ended session stays on the live list this long
MAX_SESSIONS = 20_000
MEASURANDS = {"Power.Active.Import": "powerImportW", "Power.Active.Export": "powerExportW",
              "Energy.Active.Import.Register": "energyImportWh", "Energy.Active.Export.Register": "energyExportWh"}


@dataclass
class LiveSession:
    """One transaction as the dashboard shows it live."""

    station_id: str
    transaction_id: str
    evse_id: int | None
    id_token: str | None = None
    protocol: str | None = None
    state: str = "Started"
    charging_state: str | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    latest: dict[str, float] = field(default_factory=dict)
    points: deque[list[float | None]] = field(default_factory=lambda: deque(maxlen=POINTS))
    total_points: int = 0  # points ever added (the deque drops the oldest)

    def summary(self) -> dict[str, Any]:
        """The session without its points."""
        return {"stationId": self.station_id, "transactionId": self.transaction_id, "evseId": self.evse_id,
                "idToken": self.id_token, "protocol": self.protocol, "state": self.state,
                "chargingState": self.charging_state, "started": self.started, "ended": self.ended, **self.latest}


@dataclass
class Subscriber:
    """What one event stream has sent: the change sequence number and the points per session."""

    seq: int = -1
    points: dict[tuple[str, str], int] = field(default_factory=dict)
    sessions: set[tuple[str, str]] = field(default_factory=set)


class LiveHub:
    """The live sessions and station changes of one Csms (see the module docstring)."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms
        self.sessions: OrderedDict[tuple[str, str], LiveSession] = OrderedDict()
        self.connectors: dict[str, dict[str, str]] = {}  # station -> "evse/connector" -> status
        self.changed: dict[str, int] = {}  # station -> sequence number of its latest change
        self.seq = 0
        self._online: set[str] = set(csms.server.connections)
        self.subscribers = 0
        csms.listeners.append(self._on_call)
        csms.cluster_listeners.append(self._on_call)  # in a cluster: the other nodes' stations too (csms/events.py)

    def _touch(self, station_id: str) -> None:
        self.seq += 1
        self.changed[station_id] = self.seq

    def _on_call(self, station_id: str, action: str, payload: dict[str, Any]) -> None:
        if action == "StatusNotification":
            key = f"{payload.get('evseId')}/{payload.get('connectorId')}"
            self.connectors.setdefault(station_id, {})[key] = str(payload.get("connectorStatus"))
            self._touch(station_id)
        elif action == "TransactionEvent":
            self._transaction(station_id, payload)
        elif action in ("StartTransaction", "StopTransaction") or (
                action == "MeterValues" and payload.get("transactionId") is not None
                and self.csms.version_of(station_id) == "1.6"):
            self._transaction16(station_id, action, payload)

    def _transaction16(self, station_id: str, action: str, p: dict[str, Any]) -> None:
        """An OCPP 1.6 transaction message, as the 2.x TransactionEvent it stands for."""
        try:
            values = meter_values(p.get("meterValue") or p.get("transactionData") or [])
        except MeterValue16Error:
            values = []
        event: dict[str, Any] = {
            "eventType": {"StartTransaction": "Started", "StopTransaction": "Ended"}.get(action, "Updated"),
            "transactionInfo": {"transactionId": str(p.get("transactionId", ""))}, "meterValue": values}
        if p.get("connectorId") is not None:
            event["evse"] = {"id": p["connectorId"]}
        if p.get("idTag"):
            event["idToken"] = {"idToken": p["idTag"]}
        self._transaction(station_id, event)

    def _transaction(self, station_id: str, p: dict[str, Any]) -> None:
        info = p.get("transactionInfo") or {}
        tx_id = str(info.get("transactionId", ""))
        key = (station_id, tx_id)
        sess = self.sessions.get(key)
        if sess is None:
            sess = self.sessions[key] = LiveSession(station_id, tx_id, (p.get("evse") or {}).get("id"))
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)
        if p.get("idToken"):
            sess.id_token = str(p["idToken"].get("idToken"))
        custom = p.get("customData") or {}
        if isinstance(custom, dict) and custom.get("protocol"):
            sess.protocol = str(custom["protocol"])
        sess.charging_state = info.get("chargingState") or sess.charging_state
        sess.state = str(p.get("eventType", sess.state))
        values: dict[str, float] = {}
        for mv in p.get("meterValue") or []:
            for sv in mv.get("sampledValue") or []:
                name = MEASURANDS.get(sv.get("measurand", "Energy.Active.Import.Register"))
                if name is None or sv.get("phase") is not None:
                    continue
                try:
                    values[name] = normalise(sv).value
                except MeterValueError:
                    continue
        if values:
            sess.latest.update(values)
            sess.points.append([time.time(), values.get("powerImportW"), values.get("powerExportW"),
                                values.get("energyImportWh"), values.get("energyExportWh")])
            sess.total_points += 1
        if sess.state == "Ended":
            sess.ended = time.time()
            sess.latest["powerImportW"] = sess.latest.get("powerImportW") and 0.0
            sess.latest["powerExportW"] = sess.latest.get("powerExportW") and 0.0
        self._touch(station_id)

    def _poll_connections(self) -> None:
        online = set(self.csms.server.connections)
        for sid in online ^ self._online:
            self._touch(sid)
        self._online = online

    def _live(self, now: float) -> list[LiveSession]:
        for key in [k for k, s in self.sessions.items() if s.ended is not None and now - s.ended > ENDED_KEPT_S]:
            del self.sessions[key]
        return list(self.sessions.values())

    def station_row(self, station_id: str) -> dict[str, Any]:
        """A station's live fields: online, OCPP version, connector statuses seen since the hub started."""
        return {"id": station_id, "online": self.csms.online(station_id),
                "ocppVersion": self.csms.version_of(station_id),
                "connectorStatus": self.connectors.get(station_id, {})}

    def tick(self, sub: Subscriber) -> dict[str, Any]:
        """The next event for a subscriber: live sessions (with the points it has not seen), the changed stations,
        the totals."""
        self._poll_connections()
        now = time.time()
        sessions = []
        live = self._live(now)
        for s in live:
            key = (s.station_id, s.transaction_id)
            sent = sub.points.get(key, 0)
            first = max(sent, s.total_points - len(s.points))
            new = list(s.points)[first - (s.total_points - len(s.points)):]
            sub.points[key] = s.total_points
            sessions.append({**s.summary(), "points": new})
        gone = sub.sessions - {(s.station_id, s.transaction_id) for s in live}
        for key in gone:
            sub.points.pop(key, None)
        sub.sessions = {(s.station_id, s.transaction_id) for s in live}
        changed = [sid for sid, seq in self.changed.items() if seq > sub.seq] if sub.seq >= 0 else []
        sub.seq = self.seq
        running = [s for s in live if s.ended is None]
        return {"time": now, "sessions": sessions, "removed": [list(k) for k in gone],
                "stations": [self.station_row(sid) for sid in changed],
                "totals": {"stationsOnline": len(self._online), "sessions": len(running),
                           "powerImportW": sum(s.latest.get("powerImportW") or 0.0 for s in running),
                           "powerExportW": sum(s.latest.get("powerExportW") or 0.0 for s in running)}}


_HUBS: weakref.WeakKeyDictionary[Csms, LiveHub] = weakref.WeakKeyDictionary()


def live_hub(csms: Csms) -> LiveHub:
    """The LiveHub of a Csms, made on first call (it sees messages from then on)."""
    hub = _HUBS.get(csms)
    if hub is None:
        hub = _HUBS[csms] = LiveHub(csms)
    return hub
