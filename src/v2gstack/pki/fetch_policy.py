"""Which OCSP responders a server may be made to contact, and how much it reads from them.

A station names the responder URL in GetCertificateStatus and Authorize, so without a rule the CSMS would connect
wherever a station points it (a port scanner into the CSMS's own network). The rule: http(s) only; a target on the
allow list (HOST, HOST:PORT, [IPv6]:PORT or a CIDR) is fetched; any other must resolve only to public addresses and
use port 80 or 443, unless private targets are allowed or only the allow list is. Names are resolved here, before
the check, and the connection goes to the checked address, so DNS cannot swap in another one afterwards.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import urllib.parse
from dataclasses import dataclass, field

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_PORTS = {"http": 80, "https": 443}


class TargetRefused(ValueError):
    """The URL is not one the policy lets us fetch (scheme, host, port or address)."""


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """One allow-list entry: a host name or address (any port, or one port), or a network."""

    host: str | None = None  # lower-case name or address text, as it appears in a URL
    network: IpNetwork | None = None
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> AllowEntry:
        """`HOST`, `HOST:PORT`, `[IPv6]` or `[IPv6]:PORT`, or a CIDR such as `10.0.0.0/8`; ValueError otherwise."""
        text = text.strip()
        if not text:
            raise ValueError("empty allow-list entry")
        if "/" in text:
            return cls(network=ipaddress.ip_network(text, strict=False))
        port: int | None = None
        host = text
        if text.startswith("["):
            host, bracket, rest = text[1:].partition("]")
            if not bracket:
                raise ValueError(f"bad allow-list entry {text!r}")
            if rest:
                if not rest.startswith(":"):
                    raise ValueError(f"bad allow-list entry {text!r}")
                port = _port(rest[1:], text)
            ipaddress.IPv6Address(host)
        elif text.count(":") == 1:
            host, _, p = text.partition(":")
            port = _port(p, text)
        elif ":" in text:
            ipaddress.IPv6Address(text)  # a bare IPv6 address: any port
        if not host:
            raise ValueError(f"bad allow-list entry {text!r}")
        return cls(host=_canonical_host(host), port=port)

    def matches(self, host: str, port: int, addresses: list[IpAddress]) -> bool:
        """Whether a target (URL host, port, the addresses it resolved to) is this entry."""
        if self.port is not None and self.port != port:
            return False
        if self.network is not None:
            return bool(addresses) and all(_unmapped(a) in self.network for a in addresses)
        return self.host == _canonical_host(host)


@dataclass(frozen=True, slots=True)
class Target:
    """A URL that passed the policy, with the addresses to connect to (in resolver order)."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: list[IpAddress]


@dataclass(frozen=True)
class FetchPolicy:
    """Where OCSP fetches may go and how much is read: see the module docstring."""

    allow: tuple[str, ...] = ()
    allow_private: bool = False  # loopback, private, link-local... targets allowed without being listed
    allow_only: bool = False  # nothing but the allow list
    ports: tuple[int, ...] = (80, 443)  # ports of targets not on the allow list
    max_response: int = 65536  # bytes of body; OCSP answers are a few KiB
    max_head: int = 8192  # bytes of status line and headers
    timeout: float = 3.0  # seconds for resolving, connecting and reading, together
    entries: tuple[AllowEntry, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Parse the allow list once (ValueError for a bad entry)."""
        object.__setattr__(self, "entries", tuple(AllowEntry.parse(e) for e in self.allow))

    def split(self, url: str) -> tuple[str, str, int, str]:
        """(scheme, host, port, path with query) of an http(s) URL; TargetRefused for anything else."""
        try:
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            raise TargetRefused("not a valid URL") from None
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            raise TargetRefused("only http:// and https:// URLs with a host are fetched")
        if parts.username is not None or parts.password is not None:
            raise TargetRefused("URLs with credentials are not fetched")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return scheme, parts.hostname, port or DEFAULT_PORTS[scheme], path

    def check(self, host: str, port: int, addresses: list[IpAddress]) -> None:
        """TargetRefused unless the policy lets us connect to `host`:`port` at `addresses`."""
        if any(e.matches(host, port, addresses) for e in self.entries):
            return
        if self.allow_only:
            raise TargetRefused(f"{host}:{port} is not on the OCSP allow list")
        if port not in self.ports:
            raise TargetRefused(f"port {port} is not allowed for OCSP (allowed: {self.ports}, or the allow list)")
        if not addresses:
            raise TargetRefused(f"{host} resolves to no address")
        for a in addresses:
            if not _allowed_address(_unmapped(a), self.allow_private):
                raise TargetRefused(f"{host} resolves to {a}, which is not a public address")

    def _precheck(self, host: str, port: int) -> None:
        """Refuse before any DNS lookup what no address could make allowed (a station's URL should not even make
        us look its name up): an odd port, or anything off the list with allow_only, unless a CIDR entry may match."""
        if any(e.network is not None and e.port in (None, port) for e in self.entries):
            return
        if any(e.matches(host, port, []) for e in self.entries if e.network is None):
            return
        if self.allow_only:
            raise TargetRefused(f"{host}:{port} is not on the OCSP allow list")
        if port not in self.ports:
            raise TargetRefused(f"port {port} is not allowed for OCSP (allowed: {self.ports}, or the allow list)")

    async def resolve(self, url: str) -> Target:
        """Split, resolve and check a URL: the Target to connect to, or TargetRefused."""
        scheme, host, port, path = self.split(url)
        self._precheck(host, port)
        addresses = await _resolve(host, port)
        self.check(host, port, addresses)
        return Target(scheme, host, port, path, addresses)


def _port(text: str, entry: str) -> int:
    """A port number of an allow-list entry."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port in allow-list entry {entry!r}")
    return int(text)


def _canonical_host(host: str) -> str:
    """A host as compared: lower case, no trailing dot, an address in its normal form."""
    host = host.strip("[]").rstrip(".").lower()
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def _unmapped(a: IpAddress) -> IpAddress:
    """The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:127.0.0.1 is loopback)."""
    if isinstance(a, ipaddress.IPv6Address) and a.ipv4_mapped is not None:
        return a.ipv4_mapped
    return a


def _allowed_address(a: IpAddress, allow_private: bool) -> bool:
    """Public unicast always; other unicast only with allow_private; unspecified and multicast never."""
    if a.is_unspecified or a.is_multicast:
        return False
    return allow_private or a.is_global


async def _resolve(host: str, port: int) -> list[IpAddress]:
    """Every address `host` resolves to (an address literal is its own), deduplicated in resolver order; OSError
    when the name does not resolve."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except UnicodeError as e:  # a name IDNA cannot encode; a failed lookup stays an OSError (unreachable)
        raise TargetRefused(f"cannot resolve {host}: {e}") from None
    out: list[IpAddress] = []
    for *_, sockaddr in infos:
        a = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if a not in out:
            out.append(a)
    return out
