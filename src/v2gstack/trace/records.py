"""The one trace record schema: every JSON line v2gstack writes or reads about a charging session.

The SECC/EVCC message log (`v2gstack ev/secc --log-json`, iso15118/msglog.py), the station's session timeline
(trace/timeline.py) and the CSMS's records read back for a timeline (csms/timeline.py) are all flat JSON objects with
the same envelope:

| key | type | meaning |
|---|---|---|
| `seq` | int | position in its stream (per timeline file; per connection in a message log) |
| `mono` | float or null | the writer's monotonic seconds (orders one process's records; null from a database) |
| `wall` | str | RFC 3339 UTC with microseconds, by the writer's clock (joins the sides) |
| `trace_id` | str | the session's trace id (one per SECC/EVCC connection or station session; "" if none) |
| `source` | str | who wrote it: `station`, `csms`, `secc`, `evcc` |
| `protocol` | str | `iso15118`, `ocpp` or `bridge` (the station's own states) |
| `kind` | str | `message`, `state`, `error` or `link` |

then what the kind carries:

- ISO message (`protocol` iso15118, `kind` message): `direction` (`rx`/`tx` as the writer saw it), `namespace`
  (EXI namespace key), `message` (e.g. SessionSetupReq), `sessionId` (hex), `json` (the EXI JSON view), `exi` (the
  bytes as upper-case hex), and `peer` in message logs;
- OCPP message (`protocol` ocpp, `kind` message): `direction`, `action`, and `frame` (the OCPP-J array as sent or
  received) or, for CSMS records, `payload` and `response` (TransactionEvents also `energyWh`, the import register
  read from them in Wh);
- state and error (`protocol` bridge): `what` (the state, or the error's FailureKind) and its facts;
- link: the facts that join the protocols (`transactionId`, `sessionId`, `evccId`, `evseId`, `idToken`, ...).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..times import rfc3339

ENVELOPE = ("seq", "mono", "wall", "trace_id", "source", "protocol", "kind")
"""The keys every record starts with, in this order."""


def record(*, seq: int, mono: float | None, wall: float | datetime | str, trace_id: str, source: str,
           protocol: str, kind: str, **data: Any) -> dict[str, Any]:
    """One record: the envelope (`wall` as epoch seconds, a datetime or ready RFC 3339 text), then `data`."""
    stamp = wall if isinstance(wall, str) else rfc3339(wall, timespec="microseconds")
    return {"seq": seq, "mono": None if mono is None else round(mono, 6), "wall": stamp, "trace_id": trace_id,
            "source": source, "protocol": protocol, "kind": kind, **data}


def iso_message(direction: str, namespace: str, message: str, session_id: str, doc: dict[str, Any], exi: bytes,
                **extra: Any) -> dict[str, Any]:
    """The fields of an ISO 15118 / DIN message record (after the envelope)."""
    return {"direction": direction, "namespace": namespace, "message": message, "sessionId": session_id,
            "json": doc, "exi": exi.hex().upper(), **extra}


def ocpp_message(direction: str, frame: list[Any], action: str | None = None) -> dict[str, Any]:
    """The fields of an OCPP frame record: a CALL names its action; answers name it when the writer knows it."""
    return {"direction": direction, "action": action or (frame[2] if frame and frame[0] == 2 else None),
            "frame": frame}
