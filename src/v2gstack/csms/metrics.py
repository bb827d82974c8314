"""The CSMS's Prometheus metrics: what its stations say and how fast it answers, counted from the OCPP frames.

`metrics_of(csms)` attaches one CsmsMetrics to a running Csms (once): a frame listener on every station connection
counts messages per action, direction and type, times each incoming CALL until its answer leaves (handling latency),
counts CALLERRORs by code both ways, the ISO 15118 protocol of each transaction (from the ISO facts the station puts
in TransactionEvent customData, or 1.6 DataTransfer SessionFacts), authorization results (idTokenInfo, 1.6 idTagInfo)
and Plug & Charge outcomes (certificateStatus of Authorize, Get15118EVCertificate and GetCertificateStatus status;
on 1.6 inside the DataTransfer of the Plug & Charge application note, labelled with its messageId). The store worker
reports each commit (database commit latency); gauges are read at scrape time (stations connected per OCPP version,
store queue, handlers in progress, answers awaited). `GET /metrics` renders them (csms/api.py wires it).
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from ..constants import ISO_FACTS_VENDOR
from ..ocpp.connection import Connection
from .exposition import Counter, Gauge, Histogram, LabelValues, render
from .pnc16 import PNC_VENDOR
from .service import Csms

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MAX_PENDING = 256  # unanswered CALLs remembered per connection and direction (the engine allows 32 in progress)
MAX_SESSIONS = 100_000  # transactions remembered for the once-per-session ISO protocol count
PNC_ACTIONS = frozenset({"Get15118EVCertificate", "GetCertificateStatus"})
ENDS = {"StartTransaction": "Started", "StopTransaction": "Ended"}  # OCPP 1.6 transactions as 2.x eventTypes


class CsmsMetrics:
    """The metrics of one Csms (see the module docstring)."""

    def __init__(self, csms: Csms) -> None:
        self.csms = csms
        self.messages = Counter("v2gstack_csms_ocpp_messages_total", "OCPP messages by action, direction (rx: from "
                                "stations) and type (call, result, error)", ("action", "direction", "type"))
        self.latency = Histogram("v2gstack_csms_ocpp_handling_seconds", "Time from a station's CALL received to its "
                                 "answer sent, by action", ("action",), LATENCY_BUCKETS)
        self.call_errors = Counter("v2gstack_csms_ocpp_callerrors_total", "CALLERRORs by code and direction (tx: "
                                   "the CSMS refused, rx: a station refused)", ("code", "direction"))
        self.transactions = Counter("v2gstack_csms_transaction_events_total", "TransactionEvents by eventType "
                                    "(1.6: StartTransaction as Started, StopTransaction as Ended)", ("event",))
        self.sessions = Counter("v2gstack_csms_sessions_total", "Transactions by ISO 15118 protocol (none: no ISO "
                                "facts, e.g. RFID without high-level communication), counted at their end",
                                ("protocol",))
        self.authorizations = Counter("v2gstack_csms_authorizations_total", "idTokenInfo.status answered, by the "
                                      "message that carried it", ("source", "status"))
        self.pnc = Counter("v2gstack_csms_pnc_outcomes_total", "Plug & Charge outcomes: Authorize certificateStatus, "
                           "Get15118EVCertificate and GetCertificateStatus status", ("action", "status"))
        self.commits = Histogram("v2gstack_csms_db_commit_seconds", "Database transaction time of each store batch",
                                 (), COMMIT_BUCKETS)
        self.commit_ops = Counter("v2gstack_csms_db_operations_total", "Store operations committed", ())
        self.gauges = [
            Gauge("v2gstack_csms_stations_connected", "Stations connected, by OCPP version", ("ocpp_version",),
                  self._connected),
            Gauge("v2gstack_csms_store_queue_depth", "Store operations waiting for the database thread", (),
                  lambda: [((), float(self.csms.worker.queued))]),
            Gauge("v2gstack_csms_handlers_in_progress", "Station CALLs being handled", (),
                  lambda: [((), float(sum(len(getattr(c, "_tasks", ())) for c in self._conns())))]),
            Gauge("v2gstack_csms_calls_awaiting_answer", "CSMS CALLs sent to stations and not answered yet", (),
                  lambda: [((), float(sum(len(getattr(c, "_waiters", ())) for c in self._conns())))]),
        ]
        self.extra: list[Gauge] = []  # gauges other parts add (the dashboard's event stream)
        self._iso: OrderedDict[tuple[str, str], str] = OrderedDict()  # (station, transactionId) -> protocol
        server = csms.server
        previous = server.on_connect

        def on_connect(conn: Connection) -> Any:
            self.watch(conn)
            return previous(conn) if previous is not None else None

        server.on_connect = on_connect
        for conn in list(server.connections.values()):
            self.watch(conn)
        csms.worker.commit_listeners.append(self._committed)

    def _conns(self) -> list[Connection]:
        return list(self.csms.server.connections.values())

    def _connected(self) -> Iterable[tuple[LabelValues, float]]:
        counts: dict[str, int] = {}
        for conn in self._conns():
            counts[conn.version.value] = counts.get(conn.version.value, 0) + 1
        for version in self.csms.config.allowed_versions:
            counts.setdefault(version, 0)
        return [((v,), float(n)) for v, n in counts.items()]

    def _committed(self, operations: int, seconds: float) -> None:
        self.commits.observe(seconds)
        self.commit_ops.inc(amount=operations)

    def watch(self, conn: Connection) -> None:
        """Count this connection's frames."""
        rx_calls: OrderedDict[str, tuple[str, float]] = OrderedDict()  # message id -> (action, received at)
        # 1.6 Plug & Charge DataTransfer: the action is its messageId (DataTransfer:Authorize, ...)
        tx_calls: OrderedDict[str, str] = OrderedDict()
        station = conn.station_id

        def listener(direction: str, text: str) -> None:
            try:
                frame = json.loads(text)
            except ValueError:
                return
            if not isinstance(frame, list) or len(frame) < 3 or not isinstance(frame[1], str):
                return
            self._frame(station, direction, frame, rx_calls, tx_calls)

        conn.frame_listeners.append(listener)

    def _frame(self, station: str, direction: str, frame: list[Any],
               rx_calls: OrderedDict[str, tuple[str, float]], tx_calls: OrderedDict[str, str]) -> None:
        kind, mid = frame[0], frame[1]
        if kind == 2 and len(frame) >= 4 and isinstance(frame[2], str):
            action, p = frame[2], frame[3]
            self.messages.inc(action, direction, "call")
            if direction == "rx" and isinstance(p, dict):
                answered = action
                if action == "DataTransfer" and p.get("vendorId") == PNC_VENDOR:
                    answered = f"DataTransfer:{p.get('messageId')}"
                _remember(rx_calls, mid, (answered, time.perf_counter()))
                if action == "TransactionEvent":
                    self._transaction(station, p)
                elif action in ENDS:
                    self._transaction16(station, action, p)
                elif action == "DataTransfer" and p.get("vendorId") == ISO_FACTS_VENDOR:
                    self._facts16(station, p)
            else:
                _remember(tx_calls, mid, action)
            return
        if direction == "tx":  # our answer to a station's CALL
            action, started = rx_calls.pop(mid, ("unknown", None))
            if started is not None:
                self.latency.observe(time.perf_counter() - started, action.partition(":")[0])
        else:  # a station's answer to our CALL
            action = tx_calls.pop(mid, "unknown")
        if kind == 3:
            self.messages.inc(action.partition(":")[0], direction, "result")
            if direction == "tx" and isinstance(frame[2], dict):
                self._outcome(action, frame[2])
        elif kind == 4:
            self.messages.inc(action.partition(":")[0], direction, "error")
            self.call_errors.inc(str(frame[2]), direction)

    def _transaction(self, station: str, p: dict[str, Any]) -> None:
        event = str(p.get("eventType", "?"))
        self.transactions.inc(event)
        tx = str((p.get("transactionInfo") or {}).get("transactionId", ""))
        key = (station, tx)
        custom = p.get("customData") or {}
        if isinstance(custom, dict) and custom.get("vendorId") == ISO_FACTS_VENDOR and custom.get("protocol"):
            _remember(self._iso, key, str(custom["protocol"]), MAX_SESSIONS)
        if event == "Ended":
            self.sessions.inc(self._iso.pop(key, "none"))

    def _transaction16(self, station: str, action: str, p: dict[str, Any]) -> None:
        self.transactions.inc(ENDS[action])
        if action == "StopTransaction":
            self.sessions.inc(self._iso.pop((station, str(p.get("transactionId", ""))), "none"))

    def _facts16(self, station: str, p: dict[str, Any]) -> None:
        try:
            facts = json.loads(p.get("data") or "")
            key = (station, str(int(facts["transactionId"])))
        except (ValueError, TypeError, KeyError):
            return
        if isinstance(facts, dict) and facts.get("protocol"):
            _remember(self._iso, key, str(facts["protocol"]), MAX_SESSIONS)

    def _outcome(self, action: str, p: dict[str, Any]) -> None:
        if action.startswith("DataTransfer:"):  # 1.6 Plug & Charge: the answer is JSON in `data`
            action = action.partition(":")[2]
            try:
                p = json.loads(p.get("data") or "")
            except (ValueError, TypeError):
                return
            if not isinstance(p, dict):
                return
        info = p.get("idTokenInfo") or p.get("idTagInfo")
        if isinstance(info, dict) and "status" in info:
            self.authorizations.inc(action, str(info["status"]))
        if action == "Authorize" and "certificateStatus" in p:
            self.pnc.inc(action, str(p["certificateStatus"]))
        elif action in PNC_ACTIONS and "status" in p:
            self.pnc.inc(action, str(p["status"]))

    def render(self) -> str:
        """The exposition text."""
        return render([self.messages, self.latency, self.call_errors, self.transactions, self.sessions,
                       self.authorizations, self.pnc, self.commits, self.commit_ops, *self.gauges, *self.extra])

    def add_gauge(self, name: str, help_: str, read: Callable[[], float]) -> None:
        """Another gauge without labels, read at scrape time."""
        self.extra.append(Gauge(name, help_, (), lambda: [((), float(read()))]))


def _remember(table: OrderedDict[Any, Any], key: Any, value: Any, limit: int = MAX_PENDING) -> None:
    table[key] = value
    while len(table) > limit:
        table.popitem(last=False)


_ATTACHED: weakref.WeakKeyDictionary[Csms, CsmsMetrics] = weakref.WeakKeyDictionary()


def metrics_of(csms: Csms) -> CsmsMetrics:
    """The metrics of a Csms, attached on first call (counting starts then)."""
    found = _ATTACHED.get(csms)
    if found is None:
        found = _ATTACHED[csms] = CsmsMetrics(csms)
    return found
