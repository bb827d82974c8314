"""The per-message log: one record per EXI message sent or received (direction, time, namespace, name, JSON, hex).

Shells call a `MessageSink` with each record (the SECC also hands it to its controller as a MessageExchanged event);
`summary()` is the readable one-liner the CLI prints and `to_json()` the JSON line it writes with --log-json, in
the one trace record schema (trace/records.py) that the station's timelines use too.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from ..trace import records
from .apphand import PROTOCOLS
from .messages import body_name
from .quickinit import quick_init

_UNIT = {"h": "h", "m": "min", "s": "s", "A": "A", "V": "V", "W": "W", "Wh": "Wh"}
_SHOWN = ("ResponseCode", "EVSEProcessing", "ChargeProgress", "ReadyToChargeState", "ChargingSession",
          "SelectedPaymentOption", "RequestedEnergyTransferMode", "EVRequestedEnergyTransferType", "EVCCID", "EVSEID",
          "ServiceID", "EVTargetVoltage", "EVTargetCurrent", "EVSEPresentVoltage", "EVSEPresentCurrent",
          "EVSEMaxCurrent", "ChargingComplete", "SchemaID",
          # ISO 15118-20
          "SelectedAuthorizationService", "EVPresentActivePower", "EVSETargetActivePower", "EVSEPresentActivePower",
          "EVPresentVoltage", "EVProcessing", "BPT_ChannelSelection")


@quick_init
@dataclass(frozen=True)
class MessageRecord:
    """One message on the wire, as seen by `role` ('EVCC' or 'SECC')."""

    role: str
    direction: str  # "tx" or "rx"
    time: float  # UNIX time
    namespace: str
    doc: dict[str, Any]
    exi: bytes
    peer: str = ""
    session_id: str = ""
    trace_id: str = ""  # one per connection
    seq: int = 0  # position among the connection's messages
    mono: float | None = None  # time.monotonic() when the message was sent or received

    @property
    def name(self) -> str:
        """Message name (supportedAppProtocolReq, SessionSetupReq, ...)."""
        return body_name(self.doc)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-line form: a trace record (trace/records.py) with source `evcc` or `secc`."""
        return records.record(seq=self.seq, mono=self.mono, wall=self.time, trace_id=self.trace_id,
                              source=self.role.lower(), protocol="iso15118", kind="message",
                              **records.iso_message(self.direction, self.namespace, self.name, self.session_id,
                                                    self.doc, self.exi, peer=self.peer))

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    def summary(self) -> str:
        """A readable line: time, role, direction, namespace, name and the interesting fields."""
        stamp = time.strftime("%H:%M:%S", time.localtime(self.time)) + f".{int(self.time * 1000) % 1000:03d}"
        arrow = "->" if self.direction == "tx" else "<-"
        details = " ".join(f"{k}={v}" for k, v in _details(self.doc))
        return f"{stamp} {self.role} {arrow} {self.namespace}:{self.name} {details}".rstrip()


MessageSink = Callable[[MessageRecord], None]


class ConnectionLog:
    """Makes the MessageRecords of one connection: the role and peer, one trace id, numbered from 0."""

    def __init__(self, role: str, peer: str) -> None:
        self.role = role
        self.peer = peer
        self.trace_id = uuid.uuid4().hex
        self._seq = itertools.count()

    def record(self, direction: str, namespace: str, doc: dict[str, Any], exi: bytes,
               session_id: str) -> MessageRecord:
        """The record of one message sent ("tx") or received ("rx") now."""
        return MessageRecord(self.role, direction, time.time(), namespace, doc, exi, self.peer, session_id,
                             self.trace_id, next(self._seq), time.monotonic())


def _details(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Interesting (key, text) pairs of a message, searched one level into its content."""
    msg = doc.get("V2G_Message")
    content = next(iter(msg["Body"].values()), {}) if msg else next(iter(doc.values()), {})
    out: list[tuple[str, str]] = []
    if "AppProtocol" in content:
        keys = {p.namespace: p.key for p in PROTOCOLS.values()}
        out.append(("offer", ",".join(keys.get(p["ProtocolNamespace"], p["ProtocolNamespace"])
                                      for p in content["AppProtocol"])))
    scopes = [content] + [v for k, v in content.items() if k.endswith("ControlMode") and isinstance(v, dict)]
    for scope in scopes:
        for key in _SHOWN:
            if key in scope:
                out.append((key, _text(scope[key])))
    selected = content.get("SelectedEnergyTransferService")
    if isinstance(selected, dict):
        out.append(("service", f"{selected.get('ServiceID')}/{selected.get('ParameterSetID')}"))
    status20 = content.get("EVSEStatus")
    if isinstance(status20, dict) and "EVSENotification" in status20:
        out.append(("EVSENotification", str(status20["EVSENotification"])))
    display = content.get("DisplayParameters")
    if isinstance(display, dict) and "PresentSOC" in display:
        out.append(("SoC", f"{display['PresentSOC']}%"))
    for nested in ("DC_EVStatus", "DC_EVSEStatus", "AC_EVSEStatus"):
        st = content.get(nested)
        if st is None:
            continue
        if "EVRESSSOC" in st:
            out.append(("SoC", f"{st['EVRESSSOC']}%"))
        if st.get("EVSENotification", "None") != "None":
            out.append(("EVSENotification", st["EVSENotification"]))
    return out


def _text(v: Any) -> str:
    """A field as short text (PhysicalValues as '400V')."""
    if isinstance(v, dict) and "Value" in v and "Exponent" in v:  # -20 RationalNumber (no unit)
        return f"{v['Value'] * 10.0 ** v['Exponent']:g}"
    if isinstance(v, dict) and "Value" in v:
        x = v["Value"] * 10.0 ** v["Multiplier"]
        return f"{x:g}{_UNIT.get(v.get('Unit', ''), '')}"
    return str(v)


class JsonLinesWriter:
    """A MessageSink that appends one JSON line per record to a text stream."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, record: MessageRecord) -> None:
        """Write one line."""
        self.stream.write(record.to_json() + "\n")
        self.stream.flush()


def fan_out(*sinks: MessageSink | None) -> MessageSink | None:
    """One sink calling every given sink (None when there is none)."""
    real = [s for s in sinks if s is not None]
    if not real:
        return None
    if len(real) == 1:
        return real[0]

    def call(record: MessageRecord) -> None:
        """Call every sink."""
        for s in real:
            s(record)

    return call
