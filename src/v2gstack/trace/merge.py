"""One timeline per charging session from both sides: the station's JSON-lines timelines and the CSMS's records.

A key (OCPP transactionId, ISO 15118 SessionID or trace id) selects the station timelines that mention it; the
links they record (transactionId <-> SessionID) widen the key set, and the CSMS database adds what it received and
sent for that transaction. Entries are sorted by wall-clock time (each side's own clock).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..ocpp.units import energy_wh

LINK_KEYS = ("transactionId", "sessionId", "trace_id", "traceId", "evccId")


@dataclass
class Entry:
    """One line of the merged timeline."""

    wall: datetime
    source: str  # "station" or "csms"
    protocol: str  # "iso15118", "ocpp", "bridge"
    kind: str  # "message", "state", "error", "link", ...
    direction: str  # "rx", "tx" or ""
    name: str  # message name, state or error kind
    details: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`v2gstack trace --json`)."""
        return {"wall": self.wall.isoformat().replace("+00:00", "Z"), "source": self.source,
                "protocol": self.protocol, "kind": self.kind, "direction": self.direction, "name": self.name,
                "details": self.details, "data": self.data}


def parse_wall(value: str | None) -> datetime:
    """An RFC 3339 time (naive values are UTC, as SQLite returns them)."""
    if not value:
        return datetime.fromtimestamp(0, UTC)
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The records of one JSON-lines timeline file (a torn last line is skipped)."""
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def _keys_of(records: Iterable[dict[str, Any]]) -> set[str]:
    """Every link value (transactionId, SessionID, trace id, EVCCID) that the records carry."""
    keys: set[str] = set()
    for r in records:
        for scope in (r, r.get("facts"), r.get("data")):
            if isinstance(scope, dict):
                keys.update(str(v) for k in LINK_KEYS if (v := scope.get(k)))
    return keys


def station_timelines(folder: Path, key: str) -> list[tuple[Path, list[dict[str, Any]]]]:
    """Station timeline files under `folder` whose records mention `key` (case-insensitive)."""
    wanted = key.upper()
    found = []
    for path in sorted(folder.rglob("*.jsonl")) if folder.is_dir() else []:
        text = path.read_text(encoding="utf-8", errors="replace")
        if wanted not in text.upper():
            continue
        records = read_lines(path)
        if wanted in {k.upper() for k in _keys_of(records)}:
            found.append((path, records))
    return found


def station_entries(records: Iterable[dict[str, Any]]) -> Iterator[Entry]:
    """Entries from a station timeline."""
    for r in records:
        protocol = r.get("protocol", "")
        kind = r.get("kind", "")
        direction = r.get("direction", "")
        name = r.get("message") or r.get("action") or r.get("name") or r.get("what") or kind
        details = ""
        if protocol == "iso15118":
            doc = r.get("json") or {}
            details = _iso_details(doc)
        elif protocol == "ocpp":
            frame = r.get("frame")
            if isinstance(frame, list) and frame:
                direction = direction or r.get("direction", "")
                if frame[0] == 2 and len(frame) >= 4:
                    name, details = str(frame[2]), _short(frame[3])
                elif frame[0] in (3, 4):
                    name = r.get("action") or ("CALLRESULT" if frame[0] == 3 else "CALLERROR")
                    details = _short(frame[2] if frame[0] == 3 else frame[2:4])
            else:
                details = _short(r.get("payload"))
        else:
            details = _short({k: v for k, v in r.items()
                              if k not in ("seq", "mono", "wall", "trace_id", "source", "protocol", "kind")})
        yield Entry(parse_wall(r.get("wall")), "station", protocol, kind, direction, str(name), details, r)


def csms_entries(tx: dict[str, Any] | None, messages: list[dict[str, Any]]) -> Iterator[Entry]:
    """Entries from the CSMS database: the transaction's events (received) and its logged messages."""
    if tx is not None:
        for e in tx.get("events", []):
            p = e.get("payload") or {}
            info = p.get("transactionInfo", {})
            details = f"seqNo={e['seqNo']} {e['eventType']} trigger={e['triggerReason']}"
            if info.get("chargingState"):
                details += f" chargingState={info['chargingState']}"
            if info.get("stoppedReason"):
                details += f" stoppedReason={info['stoppedReason']}"
            energy = _energy(p)
            if energy is not None:
                details += f" E={energy:g}Wh"
            yield Entry(parse_wall(e.get("receivedAt") or e.get("timestamp")), "csms", "ocpp", "message", "rx",
                        "TransactionEvent", details, {"payload": p})
    for m in messages:
        details = _short(m.get("payload"))
        if m.get("response") is not None:
            details += " -> " + _short(m["response"])
        decoded = (m.get("payload") or {}).get("decoded")
        if decoded:
            details = f"ISO mirror {decoded.get('namespace')}:{decoded.get('messageId')} " + _iso_details(
                decoded.get("json") or {})
        yield Entry(parse_wall(m.get("time")), "csms", "ocpp", "message", m.get("direction", ""), m["action"],
                    details, m)


def merged_timeline(key: str, *, trace_dir: Path | None = None, store: Any = None) -> list[Entry]:
    """The merged timeline for `key` (transactionId, SessionID or trace id) from station files and the CSMS store."""
    entries: list[Entry] = []
    keys = {key}
    if trace_dir is not None:
        for _, records in station_timelines(trace_dir, key):
            keys |= _keys_of(records)
            entries.extend(station_entries(records))
    if store is not None:
        tx = None
        for k in [key, *sorted(keys)]:
            tx = store.transaction(None, k)
            if tx is not None:
                break
        if tx is None:
            tx = store.transaction_by_session(key)
        session_id = None
        if tx is not None:
            session_id = (tx.get("iso15118") or {}).get("sessionId")
            messages = store.messages(station_id=tx["stationId"], transaction_id=tx["transactionId"],
                                      session_id=session_id)
        else:
            messages = store.messages(session_id=key)
        entries.extend(csms_entries(tx, messages))
    entries.sort(key=lambda e: e.wall)
    return entries


def _energy(p: dict[str, Any]) -> float | None:
    """The event's Energy.Active.Import.Register reading in Wh (multiplier applied, kWh converted)."""
    for mv in p.get("meterValue", []):
        for sv in mv.get("sampledValue", []):
            if sv.get("phase") is None and (wh := energy_wh(sv)) is not None:
                return wh
    return None


_ISO_FIELDS = ("ResponseCode", "EVSEProcessing", "ChargeProgress", "EVCCID", "SessionID", "SelectedPaymentOption",
               "RequestedEnergyTransferMode", "ChargingSession", "EVSENotification")


def _iso_details(doc: dict[str, Any]) -> str:
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in _ISO_FIELDS and not isinstance(v, (dict, list)):
                    found.setdefault(k, v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return " ".join(f"{k}={v}" for k, v in found.items())


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, separators=(",", ":"), default=str) if value is not None else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"
