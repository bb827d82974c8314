"""What the SLAC state machines hand to their shell: frames to send, the match, failures, pilot requests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from .frames import NID_LEN, mac_text


@dataclass(frozen=True)
class Send:
    """Put this Ethernet frame on the wire."""

    frame: bytes


@dataclass(frozen=True)
class Matched:
    """The EV and the EVSE share a logical network (NID/NMK): SDP and the ISO 15118 session may start."""

    ev_mac: bytes
    evse_mac: bytes
    run_id: bytes
    nid: bytes
    nmk: bytes
    attenuation: float | None = None  # the EV side: the chosen EVSE's mean attenuation, dB

    def describe(self) -> str:
        att = f", attenuation {self.attenuation:.1f} dB" if self.attenuation is not None else ""
        return f"matched EV {mac_text(self.ev_mac)} with EVSE {mac_text(self.evse_mac)} (NID {self.nid.hex()}{att})"


@dataclass(frozen=True)
class Failed:
    """A matching step failed: which EV (None: none yet), which step, which timer or reason."""

    step: str
    reason: str
    ev_mac: bytes | None = None
    final: bool = False  # no retry left: the side is Unmatched until the pilot restarts it

    def describe(self) -> str:
        ev = f" EV {mac_text(self.ev_mac)}" if self.ev_mac else ""
        return f"SLAC failed{ev} at {self.step}: {self.reason}" + (" (no retry left)" if self.final else "")


@dataclass(frozen=True)
class PilotRequest:
    """The EVSE asks its pilot driver for a state (E/F for T_step_EF, then B again: ISO 15118-3 [V2G3-M06-07])."""

    state: str


@dataclass(frozen=True)
class KeyResult:
    """The local modem's answer to CM_SET_KEY.REQ (ok False: refused or no answer within set_key_timeout)."""

    ok: bool
    reason: str = ""


Output = Send | Matched | Failed | PilotRequest | KeyResult


def nid_from_nmk(nmk: bytes, security_level: int = 0) -> bytes:
    """The NID of a network key: SHA-256 iterated 5 times over the NMK, 52 bits kept, then the security level
    (HomePlug AV 1.1 §4.4.3.1 as the Qualcomm tools compute it)."""
    digest = nmk
    for _ in range(5):
        digest = hashlib.sha256(digest).digest()
    nid = bytearray(digest[:NID_LEN])
    nid[-1] = (nid[-1] >> 4) | ((security_level & 0x3) << 4)
    return bytes(nid)
