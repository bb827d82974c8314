"""Linux interface facts and switches a raw-socket SLAC shell needs: the MAC address, and checksum offload off.

A simulated PLC medium forwards the frames it captures; with transmit checksum offload (and with it TCP
segmentation offload) on, a veth hands over frames whose TCP/UDP checksum is not filled in yet, which the far end
then drops. `disable_offloads()` turns transmit checksumming off with the ETHTOOL_STXCSUM ioctl (no ethtool binary
needed); real modem interfaces need none of this.
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct
from pathlib import Path

SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x00000017  # set transmit checksum offload
ETHTOOL_SSG = 0x00000019  # set scatter-gather
ETHTOOL_STSO = 0x0000001F  # set TCP segmentation offload


def mac_address(iface: str) -> bytes:
    """The interface's hardware address (6 bytes); OSError when it has none."""
    text = Path(f"/sys/class/net/{iface}/address").read_text().strip()
    raw = bytes.fromhex(text.replace(":", ""))
    if len(raw) != 6:
        raise OSError(f"{iface} has no Ethernet address ({text!r})")
    return raw


def _ethtool_set(iface: str, cmd: int, value: int) -> None:
    data = ctypes.create_string_buffer(struct.pack("II", cmd, value))
    ifreq = struct.pack("16sP", iface.encode()[:15], ctypes.addressof(data))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifreq)


def disable_offloads(iface: str) -> None:
    """Transmit checksumming, scatter-gather and TSO off, so captured frames carry final checksums (needs root)."""
    for cmd in (ETHTOOL_STSO, ETHTOOL_SSG, ETHTOOL_STXCSUM):
        _ethtool_set(iface, cmd, 0)


if __name__ == "__main__":  # `python -m v2gstack.slac.netdev IFACE...`: offloads off (a veth to the sim medium)
    import sys

    for name in sys.argv[1:]:
        disable_offloads(name)
