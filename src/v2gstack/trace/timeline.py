"""The station's timeline of one charging session: JSON lines with both protocols' messages, states and errors.

Every line is a trace record (trace/records.py: `seq`, `mono`, `wall`, `trace_id`, `source`, `protocol`, `kind`,
then what the kind carries): an ISO message in the EXI JSON view with its bytes in hex, an OCPP frame as sent or
received, a state change, an error, or the link facts (transactionId, sessionId, evccId, evseId) that join the two
protocols.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import records

# Memory keeps every state, error and link record (up to `keep`) but only the first messages, so that an
# hours-long session (a charge-loop pair every ~0.25 s) does not grow the station's memory; the file, when there is
# one, has every record. Nothing in the station reads the memory copy back (tests and debuggers do), so a message
# kept in memory only is built into its record when `records` is first read after it. A timeline given a `decode`
# (the station's bridge gives the EXI codec's) keeps such a message as its EXI bytes only and decodes them then: a
# JSON view is a tree of dicts that every full garbage collection walks, and a station hosting 100 EVSEs held 500
# of them per session (90-150 ms per full collection, docs/PERFORMANCE.md); bytes are not walked.
MESSAGES_IN_MEMORY = 500
Decode = Callable[[str, bytes], dict[str, Any]]
"""An EXI decoder: (namespace key, EXI stream) -> the message's JSON view (`v2gstack.exi.decode`)."""


_Message = tuple[int, float, float, str, str, str | None, str, dict[str, Any] | None, bytes]
"""An ISO message kept in memory only, its record built when someone reads the timeline: (seq, mono, wall,
direction, namespace, name, session_id, doc, exi), doc None when the timeline decodes the bytes, name None when it
is read from the document then. A plain tuple
(the only tuples among the records): one of atoms only is untracked by the garbage collector after its first
collection, where an object of a class is walked by every full one."""


def message_name(doc: dict[str, Any]) -> str:
    """The name of an ISO 15118 / DIN message in the EXI JSON view (its Body's element for DIN and -2, the root
    element for -20 and the handshake), '?' if there is none."""
    msg = doc.get("V2G_Message")
    if msg is None:
        return next(iter(doc), "?")
    return next(iter(msg.get("Body") or {}), "?")


class Timeline:
    """Appends the records of one session to `<folder>/<trace_id>.jsonl` (line-buffered: a crash loses nothing
    written before it) and keeps them in memory (`records`: only the first MESSAGES_IN_MEMORY messages); without
    a folder, records are only kept in memory (ISO messages as their EXI bytes when `decode` is given)."""

    def __init__(self, folder: Path | None, trace_id: str | None = None, source: str = "station",
                 keep: int = 10000, decode: Decode | None = None) -> None:
        self.trace_id = trace_id or uuid.uuid4().hex
        self.source = source
        self.path = None if folder is None else Path(folder) / f"{self.trace_id}.jsonl"
        self._records: list[Any] = []  # records, and _Message entries not built yet
        self._unbuilt = 0
        self.keep = keep
        self.links: dict[str, Any] = {}
        self._seq = 0
        self._messages = 0  # message records kept in memory
        self._file: Any = None
        self._closed = False
        self._decode = decode

    @property
    def records(self) -> list[dict[str, Any]]:
        """The records kept in memory, in order."""
        if self._unbuilt:
            kept = self._records
            for i, r in enumerate(kept):
                if type(r) is tuple:  # a _Message
                    seq, mono, wall, direction, namespace, name, session_id, doc, data = r
                    if doc is None:
                        assert self._decode is not None
                        doc = self._decode(namespace, data)
                    if name is None:
                        name = message_name(doc)
                    kept[i] = records.record(
                        seq=seq, mono=mono, wall=wall, trace_id=self.trace_id, source=self.source,
                        protocol="iso15118", kind="message",
                        **records.iso_message(direction, namespace, name, session_id, doc, data))
            self._unbuilt = 0
        return self._records

    def write(self, protocol: str, kind: str, /, **data: Any) -> dict[str, Any]:
        """Append one record."""
        record = records.record(seq=self._seq, mono=time.monotonic(), wall=time.time(), trace_id=self.trace_id,
                                source=self.source, protocol=protocol, kind=kind, **data)
        self._seq += 1
        wanted = kind != "message" or self._messages < MESSAGES_IN_MEMORY
        if wanted and len(self._records) < self.keep:
            self._records.append(record)
            self._messages += kind == "message"
        if self.path is not None and not self._closed:
            if self._file is None:  # opened at the first record: a connection that never spoke leaves no file
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8", buffering=1)
            self._file.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        return record

    def _nowhere(self) -> bool:
        """A message record now would be kept nowhere (memory has its first messages, there is no open file): it
        is only counted, not built (a charge loop's JSON view and hex cost a bridged station ~10 % of its CPU)."""
        if self._messages < MESSAGES_IN_MEMORY or (self.path is not None and not self._closed):
            return False
        self._seq += 1
        return True

    def iso(self, direction: str, namespace: str, name: str | None, doc: dict[str, Any], exi: bytes,
            session_id: str = "") -> None:
        """An ISO 15118 / DIN message as the SECC sent ("tx") or received ("rx") it (`name` None: the message's
        name is read from `doc` when its record is built)."""
        if self._nowhere():
            return
        if self.path is None or self._closed:  # memory only: the record is built when it is read
            if len(self._records) < self.keep:
                message: _Message = (self._seq, time.monotonic(), time.time(), direction, namespace, name,
                                     session_id, None if self._decode else doc, exi)
                self._records.append(message)
                self._unbuilt += 1
                self._messages += 1
            self._seq += 1
            return
        self.write("iso15118", "message", **records.iso_message(direction, namespace, name or message_name(doc),
                                                                session_id, doc, exi))

    def ocpp(self, direction: str, frame: list[Any], action: str | None = None) -> None:
        """An OCPP frame as the station sent ("tx") or received ("rx") it."""
        if self._nowhere():
            return
        self.write("ocpp", "message", **records.ocpp_message(direction, frame, action))

    def state(self, what: str, **facts: Any) -> None:
        """A state change of the session (plugged, authorized, charging, renegotiating, stopped...)."""
        self.write("bridge", "state", what=what, **facts)

    def error(self, kind: str, **facts: Any) -> None:
        """A failure, with what it maps to in the other protocol."""
        self.write("bridge", "error", what=kind, **facts)

    def link(self, **facts: Any) -> None:
        """Facts that join the protocols (transactionId, sessionId, evccId, evseId, idToken)."""
        new = {k: v for k, v in facts.items() if v is not None and self.links.get(k) != v}
        if new:
            self.links.update(new)
            self.write("bridge", "link", **new)

    def close(self) -> None:
        """Close the file (later records stay in memory only)."""
        self._closed = True
        if self._file is not None:
            self._file.close()
            self._file = None


class TimelineFolder:
    """Where a station keeps its session timelines; creates one Timeline per session."""

    def __init__(self, folder: Path | None, decode: Decode | None = None) -> None:
        self.folder = None if folder is None else Path(folder)
        self.decode = decode

    def new(self) -> Timeline:
        """A timeline for a new session."""
        return Timeline(self.folder, decode=self.decode)
