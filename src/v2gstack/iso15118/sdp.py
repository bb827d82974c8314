"""SECC Discovery Protocol (SDP) messages of ISO 15118-2 and DIN SPEC 70121: request and response, sans-I/O.

The request carries a security byte (TLS 0x00, none 0x10) and a transport byte (TCP 0x00); the response carries
the SECC's IPv6 address (16 bytes; an IPv4 SECC, used only on loopback, is sent IPv4-mapped), its TCP port and the
security and transport it offers.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from .v2gtp import DEFAULT_MAX_PAYLOAD, PayloadType, V2GTPError, decode_datagram, encode_frame

SDP_PORT = 15118
SDP_MULTICAST_GROUP = "ff02::1"
_RESPONSE = struct.Struct(">16sHBB")
_E = TypeVar("_E", bound=IntEnum)


class Security(IntEnum):
    """The SDP security byte."""

    TLS = 0x00
    NO_TLS = 0x10


class Transport(IntEnum):
    """The SDP transport byte (UDP is reserved; ISO 15118-2 uses TCP only)."""

    TCP = 0x00
    UDP = 0x10


class SDPError(ValueError):
    """A datagram that is not a valid SDP request or response."""


@dataclass(frozen=True, slots=True)
class SDPRequest:
    """The EVCC's discovery request."""

    security: Security
    transport: Transport = Transport.TCP

    def to_payload(self) -> bytes:
        """The 2-byte payload."""
        return bytes((self.security, self.transport))

    def to_datagram(self) -> bytes:
        """The whole V2GTP message to send."""
        return encode_frame(PayloadType.SDP_REQUEST, self.to_payload())

    @classmethod
    def from_payload(cls, payload: bytes) -> SDPRequest:
        """Parse the 2-byte payload."""
        if len(payload) != 2:
            raise SDPError(f"SDP request payload must be 2 bytes, got {len(payload)}")
        return cls(_enum(Security, payload[0], "security"), _enum(Transport, payload[1], "transport"))

    @classmethod
    def from_datagram(cls, data: bytes) -> SDPRequest:
        """Parse a whole V2GTP datagram holding an SDP request."""
        return cls.from_payload(_payload(data, PayloadType.SDP_REQUEST))


@dataclass(frozen=True, slots=True)
class SDPResponse:
    """The SECC's answer: where its TCP/TLS server is and what security it runs."""

    address: ipaddress.IPv6Address
    port: int
    security: Security
    transport: Transport = Transport.TCP

    @classmethod
    def for_host(cls, host: str, port: int, security: Security, transport: Transport = Transport.TCP) -> SDPResponse:
        """A response for an IPv6 or IPv4 literal (the latter IPv4-mapped)."""
        ip = ipaddress.ip_address(host.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv4Address):
            ip = ipaddress.IPv6Address(f"::ffff:{ip}")
        return cls(ip, port, security, transport)

    @property
    def host(self) -> str:
        """The address as a connectable literal (an IPv4-mapped address is given back as IPv4)."""
        mapped = self.address.ipv4_mapped
        return str(mapped) if mapped is not None else str(self.address)

    def to_payload(self) -> bytes:
        """The 20-byte payload."""
        return _RESPONSE.pack(self.address.packed, self.port, self.security, self.transport)

    def to_datagram(self) -> bytes:
        """The whole V2GTP message to send."""
        return encode_frame(PayloadType.SDP_RESPONSE, self.to_payload())

    @classmethod
    def from_payload(cls, payload: bytes) -> SDPResponse:
        """Parse the 20-byte payload."""
        if len(payload) != _RESPONSE.size:
            raise SDPError(f"SDP response payload must be {_RESPONSE.size} bytes, got {len(payload)}")
        addr, port, sec, tr = _RESPONSE.unpack(payload)
        if port == 0:
            raise SDPError("SDP response announces port 0")
        return cls(ipaddress.IPv6Address(addr), port, _enum(Security, sec, "security"),
                   _enum(Transport, tr, "transport"))

    @classmethod
    def from_datagram(cls, data: bytes) -> SDPResponse:
        """Parse a whole V2GTP datagram holding an SDP response."""
        return cls.from_payload(_payload(data, PayloadType.SDP_RESPONSE))


def _payload(data: bytes, ptype: PayloadType) -> bytes:
    """The payload of a datagram of one expected payload type; framing errors become SDPError."""
    try:
        return decode_datagram(data, (ptype,), DEFAULT_MAX_PAYLOAD).payload
    except V2GTPError as e:
        raise SDPError(str(e)) from e


def _enum(kind: type[_E], value: int, what: str) -> _E:
    """An SDP byte as its enum, or SDPError."""
    try:
        return kind(value)
    except ValueError:
        raise SDPError(f"SDP {what} byte 0x{value:02X} is not defined") from None
