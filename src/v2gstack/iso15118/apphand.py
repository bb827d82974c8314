"""supportedAppProtocol handshake: the EVCC's offer and the SECC's choice by the EV's priority, sans-I/O.

Rules (ISO 15118-2 / DIN SPEC 70121 / ISO 15118-20): the SECC picks, among the offered protocols whose namespace it
supports with the same major version, the one with the best (lowest) Priority. Same minor version ->
OK_SuccessfulNegotiation, another minor version -> OK_SuccessfulNegotiationWithMinorDeviation, nothing usable ->
Failed_NoNegotiation without SchemaID (the SECC then closes the connection). ISO 15118-20 is offered with the
namespace of its energy type (urn:iso:std:iso:15118:-20:AC or :DC, major version 1); both belong to the family
"iso20", whose messages start in the CommonMessages namespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

OK = "OK_SuccessfulNegotiation"
OK_MINOR_DEVIATION = "OK_SuccessfulNegotiationWithMinorDeviation"
FAILED = "Failed_NoNegotiation"


@dataclass(frozen=True, slots=True)
class AppProtocol:
    """One application protocol: its MsgDef namespace URI, version and the EXI namespace key it is coded with."""

    key: str
    namespace: str
    major: int
    minor: int
    title: str
    family: str = ""  # "din", "iso2" or "iso20" (what the session runs); the key when empty

    @property
    def kind(self) -> str:
        """The protocol family: 'din', 'iso2' or 'iso20'."""
        return self.family or self.key


DIN_70121 = AppProtocol("din", "urn:din:70121:2012:MsgDef", 2, 0, "DIN SPEC 70121")
ISO_15118_2 = AppProtocol("iso2", "urn:iso:15118:2:2013:MsgDef", 2, 0, "ISO 15118-2")
ISO_15118_20_AC = AppProtocol("iso20_ac", "urn:iso:std:iso:15118:-20:AC", 1, 0, "ISO 15118-20 AC", "iso20")
ISO_15118_20_DC = AppProtocol("iso20_dc", "urn:iso:std:iso:15118:-20:DC", 1, 0, "ISO 15118-20 DC", "iso20")
PROTOCOLS: dict[str, AppProtocol] = {p.key: p for p in (DIN_70121, ISO_15118_2, ISO_15118_20_AC, ISO_15118_20_DC)}
FAMILIES = ("din", "iso2", "iso20")
"""What users name: 'iso20' stands for the -20 namespace of the energy type (both for a SECC)."""


class NegotiationError(Exception):
    """The handshake failed (EVCC side): nothing in common, or a response that does not fit the offer."""


def protocols(keys: Iterable[str], dc: bool | None = None) -> list[AppProtocol]:
    """AppProtocols for keys such as 'iso20', 'iso2', 'din' in that order; 'iso20' is the -20 namespace of the
    energy type (`dc`), or both (DC first) when it is None. ValueError for an unknown key."""
    out: list[AppProtocol] = []
    for key in keys:
        if key == "iso20":
            pick = [ISO_15118_20_DC, ISO_15118_20_AC] if dc is None else [ISO_15118_20_DC if dc else ISO_15118_20_AC]
            out += [p for p in pick if p not in out]
        elif key in PROTOCOLS:
            out.append(PROTOCOLS[key])
        else:
            raise ValueError(f"unknown application protocol {key!r} (known: {', '.join(FAMILIES)})")
    return out


def build_request(offer: Sequence[AppProtocol]) -> tuple[dict[str, Any], dict[int, AppProtocol]]:
    """The EVCC's supportedAppProtocolReq, in priority order (first = Priority 1), and its SchemaID map."""
    if not 1 <= len(offer) <= 20:
        raise ValueError("offer between 1 and 20 application protocols")
    entries = []
    ids: dict[int, AppProtocol] = {}
    for i, p in enumerate(offer, start=1):
        entries.append({"ProtocolNamespace": p.namespace, "VersionNumberMajor": p.major,
                        "VersionNumberMinor": p.minor, "SchemaID": i, "Priority": i})
        ids[i] = p
    return {"supportedAppProtocolReq": {"AppProtocol": entries}}, ids


@dataclass(frozen=True, slots=True)
class Negotiation:
    """The SECC's decision: the response document, the chosen protocol (None on failure) and the ResponseCode."""

    response: dict[str, Any]
    protocol: AppProtocol | None
    code: str
    schema_id: int | None


def negotiate(request: dict[str, Any], supported: Sequence[AppProtocol]) -> Negotiation:
    """Answer a supportedAppProtocolReq with the best offered protocol the SECC supports."""
    offered = request["supportedAppProtocolReq"].get("AppProtocol", [])
    by_ns = {p.namespace: p for p in supported}
    best: tuple[int, int, AppProtocol, str] | None = None  # (priority, position, protocol, code)
    for pos, entry in enumerate(offered):
        mine = by_ns.get(entry.get("ProtocolNamespace"))
        if mine is None or entry.get("VersionNumberMajor") != mine.major:
            continue
        code = OK if entry.get("VersionNumberMinor") == mine.minor else OK_MINOR_DEVIATION
        candidate = (int(entry["Priority"]), pos, mine, code)
        if best is None or candidate[:2] < best[:2]:
            best = candidate
    if best is None:
        return Negotiation({"supportedAppProtocolRes": {"ResponseCode": FAILED}}, None, FAILED, None)
    schema_id = int(offered[best[1]]["SchemaID"])
    response = {"supportedAppProtocolRes": {"ResponseCode": best[3], "SchemaID": schema_id}}
    return Negotiation(response, best[2], best[3], schema_id)


def read_response(response: dict[str, Any], schema_ids: dict[int, AppProtocol]) -> tuple[AppProtocol, str]:
    """The EVCC's reading of supportedAppProtocolRes: (chosen protocol, ResponseCode) or NegotiationError."""
    res = response.get("supportedAppProtocolRes")
    if res is None:
        raise NegotiationError(f"expected supportedAppProtocolRes, got {next(iter(response), '?')}")
    code = res.get("ResponseCode")
    if code not in (OK, OK_MINOR_DEVIATION):
        raise NegotiationError(f"SECC answered {code}")
    sid = res.get("SchemaID")
    if sid not in schema_ids:
        raise NegotiationError(f"SECC chose SchemaID {sid}, which was not offered")
    return schema_ids[sid], code
