"""The CSMS side of a session's timeline: its database records as trace records, merged with the station's files.

`csms_records` reads what the CSMS received and sent for one transaction (its TransactionEvents and the logged
messages that name the transaction or the ISO SessionID) and writes them in the one trace record schema
(trace/records.py, source `csms`); `merged_timeline` joins them with the station timelines of a folder through the
pure merge of trace/merge.py. Used by the REST API (GET /api/timeline/{key}) and `v2gstack trace`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..ocpp.units import energy_wh
from ..times import parse_rfc3339
from ..trace import records
from ..trace.merge import Entry, merge, station_records
from .store import Store


def csms_records(store: Store, key: str, keys: set[str] | None = None) -> list[dict[str, Any]]:
    """The CSMS's records of the session named by `key` or any of `keys` (transactionId, SessionID, trace id):
    the transaction's events (received) and the messages logged for the transaction or the SessionID."""
    tx = None
    for k in [key, *sorted(keys or ())]:
        tx = store.transaction(None, k)
        if tx is not None:
            break
    if tx is None:
        tx = store.transaction_by_session(key)
    if tx is not None:
        session_id = (tx.get("iso15118") or {}).get("sessionId")
        messages = store.messages(station_id=tx["stationId"], transaction_id=tx["transactionId"],
                                  session_id=session_id)
    else:
        messages = store.messages(session_id=key)
    out: list[dict[str, Any]] = []
    for e in (tx or {}).get("events", []):
        payload = e.get("payload") or {}
        out.append(_record(len(out), e.get("receivedAt") or e.get("timestamp"), direction="rx",
                           action="TransactionEvent", payload=payload, energyWh=_energy(payload),
                           transactionId=tx["transactionId"] if tx else None))
    for m in messages:
        out.append(_record(len(out), m.get("time"), direction=m.get("direction", ""), action=m["action"],
                           payload=m.get("payload"), response=m.get("response"), stationId=m.get("stationId"),
                           transactionId=m.get("transactionId"), sessionId=m.get("sessionId")))
    return out


def _energy(p: dict[str, Any]) -> float | None:
    """The event's Energy.Active.Import.Register reading in Wh (multiplier applied, kWh converted)."""
    for mv in p.get("meterValue", []):
        for sv in mv.get("sampledValue", []):
            if sv.get("phase") is None and (wh := energy_wh(sv)) is not None:
                return wh
    return None


def _record(seq: int, wall: str | None, **data: Any) -> dict[str, Any]:
    """One CSMS record (no monotonic time: it comes from the database)."""
    return records.record(seq=seq, mono=None, wall=parse_rfc3339(wall) if wall else 0.0, trace_id="",
                          source="csms", protocol="ocpp", kind="message", **data)


def merged_timeline(key: str, *, trace_dir: Path | None = None, store: Store | None = None) -> list[Entry]:
    """The merged timeline for `key` (transactionId, SessionID or trace id) from station files and the CSMS store."""
    station: list[dict[str, Any]] = []
    keys = {key}
    if trace_dir is not None:
        station, keys = station_records(trace_dir, key)
    csms = csms_records(store, key, keys) if store is not None else []
    return merge(station, csms)
