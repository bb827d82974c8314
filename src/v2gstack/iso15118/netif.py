"""Network interface facts the SECC and EVCC need on a real link: interface index and IPv6 link-local address."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

_IF_INET6 = Path("/proc/net/if_inet6")  # Linux's table of IPv6 addresses per interface
_SCOPE_LINK = 0x20


class InterfaceError(OSError):
    """The interface does not exist or has no usable IPv6 link-local address."""


def interface_index(iface: str) -> int:
    """The kernel index of `iface` (the scope id of its link-local addresses)."""
    try:
        return socket.if_nametoindex(iface)
    except OSError as e:
        raise InterfaceError(f"no network interface named {iface!r}") from e


def link_local_address(iface: str) -> str:
    """The first IPv6 link-local address of `iface`, without the scope suffix."""
    interface_index(iface)
    try:
        lines = _IF_INET6.read_text().splitlines()
    except OSError as e:
        raise InterfaceError(f"cannot list IPv6 addresses: {e}") from e
    for line in lines:
        parts = line.split()
        if len(parts) >= 6 and parts[5] == iface and int(parts[3], 16) == _SCOPE_LINK:
            return str(ipaddress.IPv6Address(bytes.fromhex(parts[0])))
    raise InterfaceError(f"interface {iface!r} has no IPv6 link-local address")


def scoped(host: str, iface: str | None) -> str:
    """`host` with `%iface` appended when it is an IPv6 link-local address and an interface is known."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if iface and "%" not in host and isinstance(ip, ipaddress.IPv6Address) and ip.is_link_local:
        return f"{host}%{iface}"
    return host
