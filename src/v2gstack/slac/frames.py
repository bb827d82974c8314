"""The HomePlug AV / Green PHY management messages (MMEs) that SLAC uses, as typed frames: encode and strict parse.

A frame is an Ethernet II frame with Ethertype 0x88E1, a 5-byte MME header (MMV 0x01, MMTYPE little-endian, FMI
two bytes) and the message's fields (ISO 15118-3 Annex A, HomePlug Green PHY 1.1 §11.5). `parse()` never raises on
bad input: it returns a `Drop` with a short machine-readable reason, and `DropCounter` keeps the counts. Ethernet
padding (frames shorter than 60 bytes are padded with zeros) is accepted; other trailing bytes are not.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from enum import IntEnum

ETHERTYPE_HOMEPLUG = 0x88E1
MMV_AV11 = 0x01  # HomePlug AV 1.1 / Green PHY: MME header with the two FMI bytes
ETH_HEADER_LEN = 14
MME_HEADER_LEN = 5
MIN_ETH_FRAME = 60  # without FCS: shorter frames are zero-padded on the wire
BROADCAST = b"\xff" * 6
LOCAL_MODEM = bytes.fromhex("00b052000001")  # the Qualcomm modems' local management address
APPLICATION_TYPE_PEV_EVSE = 0x00  # ISO 15118-3 Table A.2: PEV-EVSE matching
SECURITY_TYPE_NONE = 0x00  # no security
RESP_TYPE_OTHER_GP_STA = 0x01  # sounds' attenuation goes to another GP station (ISO 15118-3 Table A.3)
NUM_GROUPS = 58  # attenuation groups of a Green PHY profile (ISO 15118-3 Table A.5)
RUN_ID_LEN = 8
STATION_ID_LEN = 17
NMK_LEN = 16
NID_LEN = 7
MATCH_REQ_MVF_LEN = 0x3E  # PEV ID .. RSVD of CM_SLAC_MATCH.REQ: 62 bytes
MATCH_CNF_MVF_LEN = 0x56  # PEV ID .. NMK of CM_SLAC_MATCH.CNF: 86 bytes


class MMType(IntEnum):
    """MMTYPE values: the message base plus 0 REQ, 1 CNF, 2 IND, 3 RSP."""

    CM_SET_KEY_REQ = 0x6008
    CM_SET_KEY_CNF = 0x6009
    CM_SLAC_PARM_REQ = 0x6064
    CM_SLAC_PARM_CNF = 0x6065
    CM_START_ATTEN_CHAR_IND = 0x606A
    CM_ATTEN_CHAR_IND = 0x606E
    CM_ATTEN_CHAR_RSP = 0x606F
    CM_MNBC_SOUND_IND = 0x6076
    CM_VALIDATE_REQ = 0x6078
    CM_VALIDATE_CNF = 0x6079
    CM_SLAC_MATCH_REQ = 0x607C
    CM_SLAC_MATCH_CNF = 0x607D
    CM_ATTEN_PROFILE_IND = 0x6086


def mac_text(mac: bytes) -> str:
    """b'\\x02\\x00...' -> '02:00:...'."""
    return ":".join(f"{b:02x}" for b in mac)


def mac_bytes(text: str) -> bytes:
    """'02:00:00:00:00:01' (or without separators) -> 6 bytes; ValueError otherwise."""
    raw = bytes.fromhex(text.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError(f"not a MAC address: {text!r}")
    return raw


# ----- message payloads -----

@dataclass(frozen=True)
class SlacParmReq:
    """CM_SLAC_PARM.REQ (EV -> broadcast): start of a matching run."""

    run_id: bytes
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE
    MMTYPE = MMType.CM_SLAC_PARM_REQ
    _FMT = struct.Struct("<BB8s")

    def pack(self) -> bytes:
        return self._FMT.pack(self.application_type, self.security_type, self.run_id)

    @classmethod
    def unpack(cls, body: bytes) -> SlacParmReq:
        app, sec, run_id = cls._FMT.unpack_from(body)
        return cls(run_id, app, sec)


@dataclass(frozen=True)
class SlacParmCnf:
    """CM_SLAC_PARM.CNF (EVSE -> EV): how many sounds to send and how long the EVSE collects them."""

    forwarding_sta: bytes  # the EV's MAC
    run_id: bytes
    num_sounds: int = 10
    time_out: int = 6  # units of 100 ms: TT_EVSE_match_MNBC
    resp_type: int = RESP_TYPE_OTHER_GP_STA
    m_sound_target: bytes = BROADCAST
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE
    MMTYPE = MMType.CM_SLAC_PARM_CNF
    _FMT = struct.Struct("<6sBBB6sBB8s")

    def pack(self) -> bytes:
        return self._FMT.pack(self.m_sound_target, self.num_sounds, self.time_out, self.resp_type,
                              self.forwarding_sta, self.application_type, self.security_type, self.run_id)

    @classmethod
    def unpack(cls, body: bytes) -> SlacParmCnf:
        target, n, t, resp, fwd, app, sec, run_id = cls._FMT.unpack_from(body)
        return cls(fwd, run_id, n, t, resp, target, app, sec)


@dataclass(frozen=True)
class StartAttenCharInd:
    """CM_START_ATTEN_CHAR.IND (EV -> broadcast, three times): the sounds follow."""

    forwarding_sta: bytes
    run_id: bytes
    num_sounds: int
    time_out: int
    resp_type: int = RESP_TYPE_OTHER_GP_STA
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE
    MMTYPE = MMType.CM_START_ATTEN_CHAR_IND
    _FMT = struct.Struct("<BBBBB6s8s")

    def pack(self) -> bytes:
        return self._FMT.pack(self.application_type, self.security_type, self.num_sounds, self.time_out,
                              self.resp_type, self.forwarding_sta, self.run_id)

    @classmethod
    def unpack(cls, body: bytes) -> StartAttenCharInd:
        app, sec, n, t, resp, fwd, run_id = cls._FMT.unpack_from(body)
        return cls(fwd, run_id, n, t, resp, app, sec)


@dataclass(frozen=True)
class MnbcSoundInd:
    """CM_MNBC_SOUND.IND (EV -> broadcast): one sound; `count` is the number still to come."""

    run_id: bytes
    count: int
    rnd: bytes = b"\x00" * 16
    sender_id: bytes = b"\x00" * STATION_ID_LEN
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE
    MMTYPE = MMType.CM_MNBC_SOUND_IND
    _FMT = struct.Struct("<BB17sB8s8s16s")

    def pack(self) -> bytes:
        return self._FMT.pack(self.application_type, self.security_type, self.sender_id, self.count, self.run_id,
                              b"\x00" * 8, self.rnd)

    @classmethod
    def unpack(cls, body: bytes) -> MnbcSoundInd:
        app, sec, sender, cnt, run_id, _rsvd, rnd = cls._FMT.unpack_from(body)
        return cls(run_id, cnt, rnd, sender, app, sec)


@dataclass(frozen=True)
class AttenProfileInd:
    """CM_ATTEN_PROFILE.IND (the EVSE's modem -> its host): the attenuation of one sound, dB per group."""

    pev_mac: bytes
    aag: tuple[int, ...]
    MMTYPE = MMType.CM_ATTEN_PROFILE_IND

    def pack(self) -> bytes:
        return self.pev_mac + bytes([len(self.aag), 0]) + bytes(self.aag).ljust(NUM_GROUPS, b"\x00")

    @classmethod
    def unpack(cls, body: bytes) -> AttenProfileInd:
        n = body[6]
        if n == 0 or n > NUM_GROUPS or len(body) < 8 + n:
            raise ValueError("bad_num_groups")
        return cls(body[:6], tuple(body[8:8 + n]))


@dataclass(frozen=True)
class AttenCharInd:
    """CM_ATTEN_CHAR.IND (EVSE -> EV): the averaged attenuation profile of the sounds the EVSE heard."""

    source_address: bytes  # the EV's MAC
    run_id: bytes
    num_sounds: int
    aag: tuple[int, ...]
    source_id: bytes = b"\x00" * STATION_ID_LEN
    resp_id: bytes = b"\x00" * STATION_ID_LEN
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE
    MMTYPE = MMType.CM_ATTEN_CHAR_IND
    _HEAD = struct.Struct("<BB6s8s17s17sBB")

    def pack(self) -> bytes:
        groups = bytes(self.aag).ljust(NUM_GROUPS, b"\x00")
        return self._HEAD.pack(self.application_type, self.security_type, self.source_address, self.run_id,
                               self.source_id, self.resp_id, self.num_sounds, len(self.aag)) + groups

    @classmethod
    def unpack(cls, body: bytes) -> AttenCharInd:
        app, sec, src, run_id, sid, rid, n, groups = cls._HEAD.unpack_from(body)
        if groups == 0 or groups > NUM_GROUPS:
            raise ValueError("bad_num_groups")
        start = cls._HEAD.size
        return cls(src, run_id, n, tuple(body[start:start + groups]), sid, rid, app, sec)

    @property
    def average(self) -> float:
        """Mean attenuation over the groups, dB (lower is closer)."""
        return sum(self.aag) / len(self.aag)


@dataclass(frozen=True)
class AttenCharRsp:
    """CM_ATTEN_CHAR.RSP (EV -> EVSE): the profile arrived (result 0)."""

    source_address: bytes
    run_id: bytes
    result: int = 0
    source_id: bytes = b"\x00" * STATION_ID_LEN
    resp_id: bytes = b"\x00" * STATION_ID_LEN
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE
    MMTYPE = MMType.CM_ATTEN_CHAR_RSP
    _FMT = struct.Struct("<BB6s8s17s17sB")

    def pack(self) -> bytes:
        return self._FMT.pack(self.application_type, self.security_type, self.source_address, self.run_id,
                              self.source_id, self.resp_id, self.result)

    @classmethod
    def unpack(cls, body: bytes) -> AttenCharRsp:
        app, sec, src, run_id, sid, rid, result = cls._FMT.unpack_from(body)
        return cls(src, run_id, result, sid, rid, app, sec)


@dataclass(frozen=True)
class SlacMatchReq:
    """CM_SLAC_MATCH.REQ (EV -> the chosen EVSE)."""

    pev_mac: bytes
    evse_mac: bytes
    run_id: bytes
    pev_id: bytes = b"\x00" * STATION_ID_LEN
    evse_id: bytes = b"\x00" * STATION_ID_LEN
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE
    MMTYPE = MMType.CM_SLAC_MATCH_REQ
    _FMT = struct.Struct("<BBH17s6s17s6s8s8s")

    def pack(self) -> bytes:
        return self._FMT.pack(self.application_type, self.security_type, MATCH_REQ_MVF_LEN, self.pev_id,
                              self.pev_mac, self.evse_id, self.evse_mac, self.run_id, b"\x00" * 8)

    @classmethod
    def unpack(cls, body: bytes) -> SlacMatchReq:
        app, sec, mvf, pev_id, pev_mac, evse_id, evse_mac, run_id, _ = cls._FMT.unpack_from(body)
        if mvf != MATCH_REQ_MVF_LEN:
            raise ValueError("bad_mvf_length")
        return cls(pev_mac, evse_mac, run_id, pev_id, evse_id, app, sec)


@dataclass(frozen=True)
class SlacMatchCnf:
    """CM_SLAC_MATCH.CNF (EVSE -> EV): the logical network to join (NID and NMK)."""

    pev_mac: bytes
    evse_mac: bytes
    run_id: bytes
    nid: bytes
    nmk: bytes
    pev_id: bytes = b"\x00" * STATION_ID_LEN
    evse_id: bytes = b"\x00" * STATION_ID_LEN
    application_type: int = APPLICATION_TYPE_PEV_EVSE
    security_type: int = SECURITY_TYPE_NONE
    MMTYPE = MMType.CM_SLAC_MATCH_CNF
    _FMT = struct.Struct("<BBH17s6s17s6s8s8s7sB16s")

    def pack(self) -> bytes:
        return self._FMT.pack(self.application_type, self.security_type, MATCH_CNF_MVF_LEN, self.pev_id,
                              self.pev_mac, self.evse_id, self.evse_mac, self.run_id, b"\x00" * 8, self.nid, 0,
                              self.nmk)

    @classmethod
    def unpack(cls, body: bytes) -> SlacMatchCnf:
        app, sec, mvf, pev_id, pev_mac, evse_id, evse_mac, run_id, _, nid, _r, nmk = cls._FMT.unpack_from(body)
        if mvf != MATCH_CNF_MVF_LEN:
            raise ValueError("bad_mvf_length")
        return cls(pev_mac, evse_mac, run_id, nid, nmk, pev_id, evse_id, app, sec)


@dataclass(frozen=True)
class SetKeyReq:
    """CM_SET_KEY.REQ (host -> its own modem): join the logical network with this NMK/NID."""

    nid: bytes
    nmk: bytes
    my_nonce: int = 0
    your_nonce: int = 0
    key_type: int = 0x01  # NMK (AES-128)
    pid: int = 0x04  # HLE protocol
    prn: int = 0
    pmn: int = 0
    cco_capability: int = 0
    new_eks: int = 0x01
    MMTYPE = MMType.CM_SET_KEY_REQ
    _FMT = struct.Struct("<BIIBHBB7sB16s")

    def pack(self) -> bytes:
        return self._FMT.pack(self.key_type, self.my_nonce, self.your_nonce, self.pid, self.prn, self.pmn,
                              self.cco_capability, self.nid, self.new_eks, self.nmk)

    @classmethod
    def unpack(cls, body: bytes) -> SetKeyReq:
        kt, mine, yours, pid, prn, pmn, cco, nid, eks, nmk = cls._FMT.unpack_from(body)
        return cls(nid, nmk, mine, yours, kt, pid, prn, pmn, cco, eks)


@dataclass(frozen=True)
class SetKeyCnf:
    """CM_SET_KEY.CNF (modem -> host): result 0 is success."""

    result: int = 0
    my_nonce: int = 0
    your_nonce: int = 0
    pid: int = 0x04
    prn: int = 0
    pmn: int = 0
    cco_capability: int = 0
    MMTYPE = MMType.CM_SET_KEY_CNF
    _FMT = struct.Struct("<BIIBHBB")

    def pack(self) -> bytes:
        return self._FMT.pack(self.result, self.my_nonce, self.your_nonce, self.pid, self.prn, self.pmn,
                              self.cco_capability)

    @classmethod
    def unpack(cls, body: bytes) -> SetKeyCnf:
        return cls(*cls._FMT.unpack_from(body))


@dataclass(frozen=True)
class ValidateReq:
    """CM_VALIDATE.REQ (EV -> EVSE): the optional BCB-toggle validation (parsed; not run by our EV)."""

    signal_type: int
    timer: int
    result: int
    MMTYPE = MMType.CM_VALIDATE_REQ
    _FMT = struct.Struct("<BBB")

    def pack(self) -> bytes:
        return self._FMT.pack(self.signal_type, self.timer, self.result)

    @classmethod
    def unpack(cls, body: bytes) -> ValidateReq:
        return cls(*cls._FMT.unpack_from(body))


@dataclass(frozen=True)
class ValidateCnf:
    """CM_VALIDATE.CNF (EVSE -> EV): 0x01 Ready (answered by our EVSE as 'not supported': result 0x04)."""

    signal_type: int
    toggle_num: int
    result: int
    MMTYPE = MMType.CM_VALIDATE_CNF
    _FMT = struct.Struct("<BBB")

    def pack(self) -> bytes:
        return self._FMT.pack(self.signal_type, self.toggle_num, self.result)

    @classmethod
    def unpack(cls, body: bytes) -> ValidateCnf:
        return cls(*cls._FMT.unpack_from(body))


Payload = (SlacParmReq | SlacParmCnf | StartAttenCharInd | MnbcSoundInd | AttenProfileInd | AttenCharInd
           | AttenCharRsp | SlacMatchReq | SlacMatchCnf | SetKeyReq | SetKeyCnf | ValidateReq | ValidateCnf)

# the smallest body each type needs (the fixed part)
_TYPES: dict[int, tuple[type, int]] = {
    MMType.CM_SLAC_PARM_REQ: (SlacParmReq, SlacParmReq._FMT.size),
    MMType.CM_SLAC_PARM_CNF: (SlacParmCnf, SlacParmCnf._FMT.size),
    MMType.CM_START_ATTEN_CHAR_IND: (StartAttenCharInd, StartAttenCharInd._FMT.size),
    MMType.CM_MNBC_SOUND_IND: (MnbcSoundInd, MnbcSoundInd._FMT.size),
    MMType.CM_ATTEN_PROFILE_IND: (AttenProfileInd, 8 + NUM_GROUPS),
    MMType.CM_ATTEN_CHAR_IND: (AttenCharInd, AttenCharInd._HEAD.size + NUM_GROUPS),
    MMType.CM_ATTEN_CHAR_RSP: (AttenCharRsp, AttenCharRsp._FMT.size),
    MMType.CM_SLAC_MATCH_REQ: (SlacMatchReq, SlacMatchReq._FMT.size),
    MMType.CM_SLAC_MATCH_CNF: (SlacMatchCnf, SlacMatchCnf._FMT.size),
    MMType.CM_SET_KEY_REQ: (SetKeyReq, SetKeyReq._FMT.size),
    MMType.CM_SET_KEY_CNF: (SetKeyCnf, SetKeyCnf._FMT.size),
    MMType.CM_VALIDATE_REQ: (ValidateReq, ValidateReq._FMT.size),
    MMType.CM_VALIDATE_CNF: (ValidateCnf, ValidateCnf._FMT.size),
}


@dataclass(frozen=True)
class Frame:
    """One parsed SLAC MME: Ethernet addresses and the typed payload."""

    dst: bytes
    src: bytes
    payload: Payload

    @property
    def mmtype(self) -> MMType:
        return self.payload.MMTYPE

    def encode(self) -> bytes:
        """The Ethernet frame (padded to 60 bytes)."""
        return encode(self.dst, self.src, self.payload)


@dataclass(frozen=True)
class Drop:
    """A frame that was not accepted, and why (a short reason key that `DropCounter` counts)."""

    reason: str
    mmtype: int | None = None


def encode(dst: bytes, src: bytes, payload: Payload) -> bytes:
    """Ethernet header + MME header + payload, zero-padded to the Ethernet minimum."""
    head = dst + src + struct.pack("!H", ETHERTYPE_HOMEPLUG) + struct.pack("<BHBB", MMV_AV11, payload.MMTYPE, 0, 0)
    return (head + payload.pack()).ljust(MIN_ETH_FRAME, b"\x00")


def parse(data: bytes) -> Frame | Drop:
    """A SLAC MME, or a Drop with the reason; never raises on any input."""
    if len(data) < ETH_HEADER_LEN + MME_HEADER_LEN:
        return Drop("truncated_header")
    if data[12:14] != b"\x88\xe1":
        return Drop("not_homeplug")
    mmv, mmtype, fmsn, fmid = struct.unpack_from("<BHBB", data, ETH_HEADER_LEN)
    if mmv != MMV_AV11:
        return Drop("unsupported_mmv", mmtype)
    entry = _TYPES.get(mmtype)
    if entry is None:
        return Drop("unknown_mmtype", mmtype)
    if fmsn or fmid:
        return Drop("fragmented", mmtype)
    cls, size = entry
    body = data[ETH_HEADER_LEN + MME_HEADER_LEN:]
    if len(body) < size:
        return Drop("truncated_payload", mmtype)
    used = size
    if cls is AttenProfileInd:
        used = 8 + min(body[6], NUM_GROUPS)
    try:
        payload = cls.unpack(body)
    except (ValueError, struct.error) as e:
        return Drop(str(e) if str(e).startswith("bad_") else "bad_field", mmtype)
    if len(data) > MIN_ETH_FRAME and any(body[max(used, size):]):
        return Drop("trailing_data", mmtype)
    reason = _check(payload)
    if reason:
        return Drop(reason, mmtype)
    return Frame(data[0:6], data[6:12], payload)


def _check(p: Payload) -> str | None:
    """Field values the standard fixes."""
    app = getattr(p, "application_type", APPLICATION_TYPE_PEV_EVSE)
    sec = getattr(p, "security_type", SECURITY_TYPE_NONE)
    if app != APPLICATION_TYPE_PEV_EVSE:
        return "bad_application_type"
    if sec != SECURITY_TYPE_NONE:
        return "bad_security_type"
    if isinstance(p, (SlacParmCnf, StartAttenCharInd)) and p.num_sounds == 0:
        return "bad_num_sounds"
    if isinstance(p, AttenCharInd) and p.num_sounds == 0:
        return "bad_num_sounds"
    if isinstance(p, SetKeyReq) and p.key_type != 0x01:
        return "bad_key_type"
    return None


@dataclass
class DropCounter:
    """Counts dropped frames by reason (and everything else a state machine ignores, by its own reasons)."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str) -> None:
        self.counts[reason] += 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        """'reason=n, ...' sorted by reason."""
        return ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items())) or "none"
