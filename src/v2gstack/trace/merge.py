"""The merge of trace record streams into one timeline per charging session (pure: records in, entries out).

Every stream is made of trace records (trace/records.py): the station's timeline files, the SECC/EVCC message logs,
and the CSMS's records (read from its database by csms/timeline.py). A key (OCPP transactionId, ISO 15118 SessionID
or trace id) selects the station timelines that mention it; the links they record (transactionId <-> SessionID)
widen the key set (`link_keys`). `merge` sorts the records of all streams by wall-clock time (each side's own clock)
and renders each as an Entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..times import parse_rfc3339, rfc3339
from .records import ENVELOPE

LINK_KEYS = ("transactionId", "sessionId", "trace_id", "traceId", "evccId")


@dataclass
class Entry:
    """One line of the merged timeline."""

    wall: datetime
    source: str  # "station", "csms", "secc", "evcc"
    protocol: str  # "iso15118", "ocpp", "bridge"
    kind: str  # "message", "state", "error", "link", ...
    direction: str  # "rx", "tx" or ""
    name: str  # message name, state or error kind
    details: str
    data: dict[str, Any] = field(default_factory=dict)  # the record

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`v2gstack trace --json`, GET /api/timeline/{key})."""
        return {"wall": rfc3339(self.wall, timespec="auto"), "source": self.source, "protocol": self.protocol,
                "kind": self.kind, "direction": self.direction, "name": self.name, "details": self.details,
                "data": self.data}


def parse_wall(value: str | None) -> datetime:
    """A record's `wall` (RFC 3339; naive values are UTC, as SQLite returns them); the epoch when missing."""
    return parse_rfc3339(value) if value else datetime.fromtimestamp(0, UTC)


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The records of one JSON-lines file (a torn last line is skipped)."""
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


def link_keys(records: Iterable[dict[str, Any]]) -> set[str]:
    """Every link value (transactionId, SessionID, trace id, EVCCID) that the records carry."""
    keys: set[str] = set()
    for r in records:
        for scope in (r, r.get("facts"), r.get("data")):
            if isinstance(scope, dict):
                keys.update(str(v) for k in LINK_KEYS if (v := scope.get(k)))
    return keys


def station_timelines(folder: Path, key: str) -> list[tuple[Path, list[dict[str, Any]]]]:
    """Timeline files under `folder` whose records mention `key` (case-insensitive) as a link value."""
    wanted = key.upper()
    found = []
    for path in sorted(folder.rglob("*.jsonl")) if folder.is_dir() else []:
        text = path.read_text(encoding="utf-8", errors="replace")
        if wanted not in text.upper():
            continue
        records = read_lines(path)
        if wanted in {k.upper() for k in link_keys(records)}:
            found.append((path, records))
    return found


def station_records(folder: Path, key: str) -> tuple[list[dict[str, Any]], set[str]]:
    """(the records of every timeline under `folder` that mentions `key`, `key` and every link they carry)."""
    records: list[dict[str, Any]] = []
    keys = {key}
    for _, found in station_timelines(folder, key):
        keys |= link_keys(found)
        records.extend(found)
    return records, keys


def merge(*streams: Iterable[dict[str, Any]]) -> list[Entry]:
    """One timeline from record streams: an Entry per record, sorted by wall-clock time (stable within a stream)."""
    entries = [entry(r) for stream in streams for r in stream]
    entries.sort(key=lambda e: e.wall)
    return entries


def entry(r: dict[str, Any]) -> Entry:
    """The timeline line of one record: its name and a short description of what it carries."""
    protocol, kind = r.get("protocol", ""), r.get("kind", "")
    direction = r.get("direction", "") or ""
    name = r.get("message") or r.get("action") or r.get("name") or r.get("what") or kind
    if protocol == "iso15118":
        details = _iso_details(r.get("json") or {})
    elif protocol == "ocpp":
        frame = r.get("frame")
        if isinstance(frame, list) and frame:
            details = ""
            if frame[0] == 2 and len(frame) >= 4:
                name, details = str(frame[2]), _short(frame[3])
            elif frame[0] in (3, 4):
                name = r.get("action") or ("CALLRESULT" if frame[0] == 3 else "CALLERROR")
                details = _short(frame[2] if frame[0] == 3 else frame[2:4])
        else:
            details = _payload_details(str(name), r.get("payload"), r.get("response"), r.get("energyWh"))
    else:
        details = _short({k: v for k, v in r.items() if k not in ENVELOPE})
    return Entry(parse_wall(r.get("wall")), r.get("source", ""), protocol, kind, direction, str(name), details, r)


def _payload_details(action: str, payload: Any, response: Any, energy: float | None) -> str:
    """An OCPP message without its frame (the CSMS's records): TransactionEvents (with the energy register the
    writer read from them, in Wh) and ISO mirrors in short."""
    p = payload if isinstance(payload, dict) else {}
    if action == "TransactionEvent" and "eventType" in p:
        info = p.get("transactionInfo", {})
        details = f"seqNo={p.get('seqNo')} {p['eventType']} trigger={p.get('triggerReason')}"
        if info.get("chargingState"):
            details += f" chargingState={info['chargingState']}"
        if info.get("stoppedReason"):
            details += f" stoppedReason={info['stoppedReason']}"
        if energy is not None:
            details += f" E={energy:g}Wh"
        return details
    decoded = p.get("decoded")
    if decoded:
        return f"ISO mirror {decoded.get('namespace')}:{decoded.get('messageId')} " + _iso_details(
            decoded.get("json") or {})
    details = _short(payload)
    if response is not None:
        details += " -> " + _short(response)
    return details


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
