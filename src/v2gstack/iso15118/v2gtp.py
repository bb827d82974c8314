"""V2GTP framing (ISO 15118-2, DIN SPEC 70121, ISO 15118-20): the 8-byte header, payload types and a stream
reassembler.

Sans-I/O: `encode_frame` makes bytes, `FrameDecoder.feed` turns a TCP byte stream into frames by the length field,
`decode_datagram` checks one UDP datagram. Every violation raises a typed `V2GTPError`; the caller closes the
connection (TCP) or drops the datagram (UDP), since a stream cannot be resynchronised after a bad header.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

PROTOCOL_VERSION = 0x01
INVERSE_PROTOCOL_VERSION = 0xFE
HEADER_LENGTH = 8
DEFAULT_MAX_PAYLOAD = 65536  # far above the largest -2/DIN message (a CertificateInstallationRes is a few kB)

_HEADER = struct.Struct(">BBHI")


class PayloadType(IntEnum):
    """V2GTP payload types: 0x8001 EXI of DIN/-2 and the supportedAppProtocol handshake of every protocol; the -20
    message streams (0x8002 common messages, 0x8003 AC, 0x8004 DC, 0x8005 ACDP, 0x8006 WPT) and its side streams
    (0x8101 schedule renegotiation, 0x8102 metering confirmation, 0x8103 ACDP system status, 0x8104 parking
    status); SDP on UDP."""

    EXI = 0x8001  # -20 calls it SAP: the handshake (and every DIN/-2 message)
    ISO20_COMMON = 0x8002
    ISO20_AC = 0x8003
    ISO20_DC = 0x8004
    ISO20_ACDP = 0x8005
    ISO20_WPT = 0x8006
    ISO20_SCHEDULE_RENEGOTIATION = 0x8101
    ISO20_METERING_CONFIRMATION = 0x8102
    ISO20_ACDP_SYSTEM_STATUS = 0x8103
    ISO20_PARKING_STATUS = 0x8104
    SDP_REQUEST = 0x9000
    SDP_RESPONSE = 0x9001
    SDP_REQUEST_WIRELESS = 0x9002
    SDP_RESPONSE_WIRELESS = 0x9003


SAP = PayloadType.EXI
ISO20_NAMESPACE: dict[int, str] = {
    PayloadType.ISO20_COMMON: "iso20", PayloadType.ISO20_AC: "iso20_ac", PayloadType.ISO20_DC: "iso20_dc",
    PayloadType.ISO20_ACDP: "iso20_acdp", PayloadType.ISO20_WPT: "iso20_wpt",
    PayloadType.ISO20_SCHEDULE_RENEGOTIATION: "iso20", PayloadType.ISO20_METERING_CONFIRMATION: "iso20",
    PayloadType.ISO20_ACDP_SYSTEM_STATUS: "iso20_acdp", PayloadType.ISO20_PARKING_STATUS: "iso20",
}
"""The EXI namespace a -20 payload is coded with, by its payload type."""
ISO20_STREAM: dict[str, int] = {"iso20": PayloadType.ISO20_COMMON, "iso20_ac": PayloadType.ISO20_AC,
                                "iso20_dc": PayloadType.ISO20_DC, "iso20_acdp": PayloadType.ISO20_ACDP,
                                "iso20_wpt": PayloadType.ISO20_WPT}
"""The main-stream payload type of each -20 namespace."""
EXI_PAYLOADS = frozenset({PayloadType.EXI, *ISO20_NAMESPACE})
"""Every payload type that carries EXI on a TCP/TLS connection."""


class V2GTPError(ValueError):
    """Base of every framing error; `reason` is a short machine-friendly tag for logs and counters."""

    reason = "v2gtp"


class BadVersionError(V2GTPError):
    """Protocol version is not 0x01 or its inverse is not 0xFE."""

    reason = "bad-version"


class UnexpectedPayloadTypeError(V2GTPError):
    """A payload type that is unknown or not allowed on this channel (e.g. SDP on the TCP connection)."""

    reason = "bad-payload-type"


class PayloadTooLargeError(V2GTPError):
    """The header announces more payload than this endpoint accepts."""

    reason = "oversize"


class TruncatedFrameError(V2GTPError):
    """The stream or datagram ended before the header or the announced payload was complete."""

    reason = "truncated"


class LengthMismatchError(V2GTPError):
    """A datagram carries more bytes than its header announces."""

    reason = "length-mismatch"


@dataclass(frozen=True, slots=True)
class Frame:
    """One V2GTP message: its payload type and payload bytes."""

    payload_type: int
    payload: bytes


def encode_frame(payload_type: int, payload: bytes) -> bytes:
    """The header for `payload` followed by the payload."""
    return _HEADER.pack(PROTOCOL_VERSION, INVERSE_PROTOCOL_VERSION, payload_type, len(payload)) + payload


def decode_header(header: bytes, allowed: Iterable[int], max_payload: int) -> tuple[int, int]:
    """Check an 8-byte header; return (payload type, payload length)."""
    if len(header) < HEADER_LENGTH:
        raise TruncatedFrameError(f"V2GTP header needs {HEADER_LENGTH} bytes, got {len(header)}")
    version, inverse, ptype, length = _HEADER.unpack_from(header)
    if version != PROTOCOL_VERSION or inverse != INVERSE_PROTOCOL_VERSION:
        raise BadVersionError(f"V2GTP version 0x{version:02X}/0x{inverse:02X}, expected 0x01/0xFE")
    if ptype not in allowed:
        raise UnexpectedPayloadTypeError(f"V2GTP payload type 0x{ptype:04X} is not accepted here")
    if length > max_payload:
        raise PayloadTooLargeError(f"V2GTP payload length {length} exceeds the maximum of {max_payload} bytes")
    return ptype, length


def decode_datagram(data: bytes, allowed: Iterable[int], max_payload: int = DEFAULT_MAX_PAYLOAD) -> Frame:
    """Check one datagram that must hold exactly one frame (SDP over UDP)."""
    ptype, length = decode_header(data, allowed, max_payload)
    got = len(data) - HEADER_LENGTH
    if got < length:
        raise TruncatedFrameError(f"V2GTP datagram announces {length} payload bytes, holds {got}")
    if got > length:
        raise LengthMismatchError(f"V2GTP datagram announces {length} payload bytes, holds {got}")
    return Frame(ptype, bytes(data[HEADER_LENGTH:]))


class FrameDecoder:
    """Reassembles frames from arbitrary chunks of a byte stream; after an error it stays failed."""

    def __init__(self, allowed: Iterable[int] = (PayloadType.EXI,), max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        self.allowed = frozenset(int(p) for p in allowed)
        self.max_payload = max_payload
        self._buf = bytearray()
        self._want: tuple[int, int] | None = None  # header of the frame being collected
        self._error: V2GTPError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        """Add received bytes; return every frame completed by them, in order."""
        if self._error is not None:
            raise self._error
        if not self._buf and len(data) >= HEADER_LENGTH:  # the usual case: one whole frame in one chunk
            try:
                ptype, length = decode_header(data, self.allowed, self.max_payload)
            except V2GTPError as e:
                self._error = e
                raise
            if len(data) == HEADER_LENGTH + length:
                return [Frame(ptype, bytes(data[HEADER_LENGTH:]))]
        self._buf += data
        frames: list[Frame] = []
        try:
            while True:
                if self._want is None:
                    if len(self._buf) < HEADER_LENGTH:
                        break
                    self._want = decode_header(bytes(self._buf[:HEADER_LENGTH]), self.allowed, self.max_payload)
                ptype, length = self._want
                end = HEADER_LENGTH + length
                if len(self._buf) < end:
                    break
                frames.append(Frame(ptype, bytes(self._buf[HEADER_LENGTH:end])))
                del self._buf[:end]
                self._want = None
        except V2GTPError as e:
            self._error = e
            raise
        return frames

    def eof(self) -> None:
        """The peer closed the stream: raise TruncatedFrameError if a frame was left incomplete."""
        if self._buf:
            if self._want is None:
                raise TruncatedFrameError(f"stream ended inside a V2GTP header ({len(self._buf)} of 8 bytes)")
            raise TruncatedFrameError(
                f"stream ended inside a V2GTP payload ({len(self._buf) - HEADER_LENGTH} of {self._want[1]} bytes)"
            )
