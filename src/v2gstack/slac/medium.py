"""A simulated HomePlug Green PHY medium with one modem per port, sans-I/O: frames in, deliveries out.

Each port is a host's Ethernet link to its modem (a car's or a charger's). What a real medium and its modems do,
as far as SLAC and the session after it can tell:
- SLAC MMEs cross the medium unencrypted: broadcast to every other port, unicast to the port whose host has that
  MAC address (learned from the frames it sent);
- a CM_MNBC_SOUND.IND reaching a charger's port is followed by a CM_ATTEN_PROFILE.IND from that port's modem with
  the simulated attenuation between the car's port and the charger's port (dB, 58 groups);
- CM_SET_KEY.REQ to the local modem (00:B0:52:00:00:01) sets that port's NMK and is answered with CM_SET_KEY.CNF;
- every other frame (IPv6: SDP, TCP) only reaches ports whose modems hold the same NMK: the logical network.
Vendor MMEs (QCA link status, resets) are not simulated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import frames as f

DEFAULT_ATTENUATION = 30  # dB when no figure is given for a pair of ports


@dataclass
class Port:
    """One host link: whether a car or a charger sits behind it, its modem's NMK, the host's learned MAC."""

    name: str
    kind: str  # "ev" or "evse"
    attenuation: dict[str, int] = field(default_factory=dict)  # other port -> dB (for a charger: from each car)
    nmk: bytes = b""
    host_mac: bytes = b""
    modem_mac: bytes = f.LOCAL_MODEM


class Medium:
    """Routes frames between ports as a Green PHY medium would."""

    def __init__(self) -> None:
        self.ports: dict[str, Port] = {}
        self.drops = f.DropCounter()
        self.forwarded = 0

    def add_port(self, name: str, kind: str, attenuation: dict[str, int] | None = None) -> Port:
        """Attach a host link; `attenuation`: for a charger's port, dB from each car's port."""
        if kind not in ("ev", "evse"):
            raise ValueError(f"port kind must be ev or evse, not {kind!r}")
        port = Port(name, kind, dict(attenuation or {}))
        port.modem_mac = bytes.fromhex("00b052") + bytes([0, 0, 0x10 + len(self.ports)])
        self.ports[name] = port
        return port

    def attenuation(self, ev_port: str, evse_port: str) -> int:
        return self.ports[evse_port].attenuation.get(ev_port, DEFAULT_ATTENUATION)

    def receive(self, name: str, data: bytes) -> list[tuple[str, bytes]]:
        """A frame a host sent on port `name`: the (port, frame) deliveries it causes."""
        port = self.ports.get(name)
        if port is None or len(data) < f.ETH_HEADER_LEN:
            self.drops.add("runt")
            return []
        dst, src = data[0:6], data[6:12]
        if src[0] & 1 == 0:
            port.host_mac = src
        if data[12:14] != b"\x88\xe1":
            return self._data(port, dst, data)
        frame = f.parse(data)
        if isinstance(frame, f.Drop):  # a modem relays what it cannot read as it is (a fuzzer's frame, a vendor MME)
            self.drops.add(frame.reason)
            return [] if dst == f.LOCAL_MODEM else self._slac(port, dst, data)
        if dst == f.LOCAL_MODEM or dst == port.modem_mac:
            return self._modem(port, frame)
        out = self._slac(port, dst, data)
        if isinstance(frame.payload, f.MnbcSoundInd) and port.kind == "ev":
            for target, _ in list(out):
                other = self.ports[target]
                if other.kind == "evse":
                    db = self.attenuation(port.name, target)
                    aag = tuple(min(255, max(0, db + (g % 3) - 1)) for g in range(f.NUM_GROUPS))
                    dst_mac = other.host_mac or f.BROADCAST
                    out.append((target, f.encode(dst_mac, other.modem_mac, f.AttenProfileInd(src, aag))))
        return out

    def _targets(self, port: Port, dst: bytes, ports: list[Port]) -> list[str]:
        others = [p for p in ports if p is not port]
        if dst[0] & 1:  # broadcast or multicast
            return [p.name for p in others]
        known = [p.name for p in others if p.host_mac == dst]
        return known or [p.name for p in others if not p.host_mac]

    def _slac(self, port: Port, dst: bytes, data: bytes) -> list[tuple[str, bytes]]:
        return [(t, data) for t in self._targets(port, dst, list(self.ports.values()))]

    def _modem(self, port: Port, frame: f.Frame) -> list[tuple[str, bytes]]:
        if not isinstance(frame.payload, f.SetKeyReq):
            self.drops.add("modem_ignores_" + frame.payload.MMTYPE.name.lower())
            return []
        port.nmk = frame.payload.nmk
        cnf = f.SetKeyCnf(0, frame.payload.my_nonce, frame.payload.your_nonce)
        return [(port.name, f.encode(frame.src, port.modem_mac, cnf))]

    def _data(self, port: Port, dst: bytes, data: bytes) -> list[tuple[str, bytes]]:
        if not port.nmk:
            self.drops.add("data_without_network")
            return []
        network = [p for p in self.ports.values() if p.nmk == port.nmk]
        targets = self._targets(port, dst, network)
        self.forwarded += len(targets)
        return [(t, data) for t in targets]
