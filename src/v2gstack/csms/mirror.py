"""ISO 15118 messages a station mirrors to the CSMS over DataTransfer, checked before they reach the log (sans-I/O).

`{"vendorId": "ISO15118-2" | "ISO15118-20" | "DIN70121", "messageId": "<message name>", "data": "EXI::<base64>"}`:
the base64 carries the EXI stream, plain or gzip-compressed (detected by the gzip magic 1f 8b; inflated to at most
MAX_EXI_BYTES, a larger stream is refused without inflating the rest). The EXI must decode in the vendorId's
namespace, have that protocol's root (V2G_Message for DIN and -2, the message element itself for -20; the
supportedAppProtocol handshake in appHand under any of them) and carry the message `messageId` names.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from dataclasses import dataclass
from typing import Any

from .. import exi
from ..constants import ISO_MIRROR_NAMESPACES

# vendorId -> EXI namespaces of its messages (a -20 message may be in the common, AC, DC, WPT or ACDP schema)
MIRROR_NAMESPACES: dict[str, tuple[str, ...]] = ISO_MIRROR_NAMESPACES
HANDSHAKE = frozenset({"supportedAppProtocolReq", "supportedAppProtocolRes"})  # before any protocol is chosen
ENVELOPED = frozenset({"iso2", "din"})  # namespaces whose documents are a V2G_Message
PREFIX = "EXI::"
GZIP_MAGIC = b"\x1f\x8b"
MAX_EXI_BYTES = 64 * 1024


class MirrorRejected(ValueError):
    """A mirror the CSMS refuses: DataTransfer `Rejected` with statusInfo (OCPP 2.1 appendix reason codes)."""

    def __init__(self, reason_code: str, info: str, session_id: str | None = None) -> None:
        super().__init__(info)
        self.reason_code = reason_code
        self.info = info
        self.session_id = session_id

    def status_info(self) -> dict[str, str]:
        """The DataTransferResponse statusInfo."""
        return {"reasonCode": self.reason_code, "additionalInfo": self.info[:512]}


@dataclass(frozen=True, slots=True)
class Mirror:
    """A mirrored ISO 15118 message, decoded and checked."""

    namespace: str
    message: str
    doc: dict[str, Any]
    exi: bytes  # the EXI stream (inflated when it came compressed)
    session_id: str | None  # upper-case hex, from the message header (None for the handshake)
    compression: str | None  # "gzip" or None


def is_mirror_vendor(vendor_id: str) -> bool:
    """Whether DataTransfer under this vendorId carries ISO 15118 mirrors."""
    return vendor_id in MIRROR_NAMESPACES


def parse_mirror(vendor_id: str, message_id: str | None, data: Any) -> Mirror:
    """The checked mirror of a DataTransferRequest; MirrorRejected says why not."""
    if not isinstance(data, str) or not data.startswith(PREFIX):
        raise MirrorRejected("InvalidValue", "data must be EXI::<base64 of EXI or of gzip-compressed EXI>")
    if not message_id:
        raise MirrorRejected("MissingParam", "messageId must name the mirrored message (e.g. SessionSetupReq)")
    try:
        raw = base64.b64decode(data[len(PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        raise MirrorRejected("InvalidValue", "data is not base64") from None
    compression = None
    if raw.startswith(GZIP_MAGIC):
        raw, compression = gunzip(raw, MAX_EXI_BYTES), "gzip"
    namespaces = ("appHand",) if message_id in HANDSHAKE else MIRROR_NAMESPACES[vendor_id]
    mismatch: MirrorRejected | None = None
    for ns in namespaces:
        try:
            doc = exi.decode(ns, raw)
        except Exception:  # the codec's ExiDecodeError, or anything odd input provokes: not this namespace
            continue
        name, problem = message_name(ns, doc)
        session_id = session_id_of(doc)
        if problem is None and name != message_id:
            problem = f"messageId {message_id} does not match the message {name}"
        if problem is None:
            return Mirror(ns, name, doc, raw, session_id, compression)
        mismatch = mismatch or MirrorRejected("InvalidValue", f"{vendor_id} mirror: {problem}", session_id)
    if mismatch is not None:
        raise mismatch
    raise MirrorRejected("InvalidValue", f"not a valid EXI message of {vendor_id} ({', '.join(namespaces)})")


def gunzip(raw: bytes, limit: int) -> bytes:
    """One gzip member inflated to at most `limit` bytes; MirrorRejected (TooLargeElement) past it, without
    inflating the rest."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error as e:
        raise MirrorRejected("InvalidValue", f"not a valid gzip stream: {e}") from None
    if len(out) > limit:
        raise MirrorRejected("TooLargeElement", f"gzip data inflates beyond {limit} bytes")
    if not inflater.eof:
        raise MirrorRejected("InvalidValue", "truncated gzip stream")
    if inflater.unused_data:
        raise MirrorRejected("InvalidValue", "bytes after the gzip stream")
    return out


def message_name(ns: str, doc: dict[str, Any]) -> tuple[str, str | None]:
    """(message name, None) of a decoded document, or (root, why it is no message of namespace `ns`)."""
    root = next(iter(doc), "?")
    if ns in ENVELOPED:
        body = doc.get("V2G_Message", {}).get("Body") if root == "V2G_Message" else None
        if not isinstance(body, dict) or len(body) != 1:
            return root, f"the root is {root}, not a V2G_Message with one message in its Body"
        return next(iter(body)), None
    if ns == "appHand":
        return root, None if root in HANDSHAKE else f"the root is {root}, not supportedAppProtocolReq/Res"
    if not root.endswith(("Req", "Res")):
        return root, f"the root is {root}, not an ISO 15118-20 message"
    return root, None


def session_id_of(doc: dict[str, Any]) -> str | None:
    """The SessionID in a DIN/-2 header or a -20 message header, upper-case hex, if the message has one."""
    for value in doc.values():
        if isinstance(value, dict):
            sid = (value.get("Header") or {}).get("SessionID")
            if sid:
                return str(sid).upper()
    return None
