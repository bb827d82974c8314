"""An EV's SLAC frame sequence built with scapy, for the interop test (runs in .venv-slac, not in v2gstack's venv).

    python scapy_ev.py IFACE

Independent of v2gstack's codec: the frames are scapy layers written from ISO 15118-3 Annex A (little-endian
MVFLength, unlike pyslac's own scapy example). Sends CM_SLAC_PARM.REQ, waits for a CNF, sends three
CM_START_ATTEN_CHAR.IND and the sounds, answers CM_ATTEN_CHAR.IND, sends CM_SLAC_MATCH.REQ and prints
'SCAPY MATCHED evse=<mac> nid=<hex> nmk=<hex>' on the CNF (exit 0), or exits 1.
"""

# ruff: noqa: RUF012  (scapy declares a layer's fields as a class-level list)
from __future__ import annotations

import os
import sys
import time

from scapy.all import (
    ByteField,
    Ether,
    LEShortField,
    MACField,
    Packet,
    StrFixedLenField,
    bind_layers,
    conf,
    get_if_hwaddr,
)

HPAV = 0x88E1


class HomePlug(Packet):
    name = "HomePlugAV MME"
    fields_desc = [ByteField("mmv", 1), LEShortField("mmtype", 0), ByteField("fmsn", 0), ByteField("fmid", 0)]


class SlacParmReq(Packet):
    fields_desc = [ByteField("app", 0), ByteField("sec", 0), StrFixedLenField("run_id", b"", 8)]


class SlacParmCnf(Packet):
    fields_desc = [MACField("target", "ff:ff:ff:ff:ff:ff"), ByteField("num_sounds", 0), ByteField("time_out", 0),
                   ByteField("resp_type", 0), MACField("forwarding_sta", None), ByteField("app", 0),
                   ByteField("sec", 0), StrFixedLenField("run_id", b"", 8)]


class StartAttenChar(Packet):
    fields_desc = [ByteField("app", 0), ByteField("sec", 0), ByteField("num_sounds", 10), ByteField("time_out", 6),
                   ByteField("resp_type", 1), MACField("forwarding_sta", None), StrFixedLenField("run_id", b"", 8)]


class MnbcSound(Packet):
    fields_desc = [ByteField("app", 0), ByteField("sec", 0), StrFixedLenField("sender_id", b"\x00" * 17, 17),
                   ByteField("cnt", 0), StrFixedLenField("run_id", b"", 8), StrFixedLenField("rsvd", b"\x00" * 8, 8),
                   StrFixedLenField("rnd", b"\x00" * 16, 16)]


class AttenCharInd(Packet):
    fields_desc = [ByteField("app", 0), ByteField("sec", 0), MACField("source", None),
                   StrFixedLenField("run_id", b"", 8), StrFixedLenField("source_id", b"", 17),
                   StrFixedLenField("resp_id", b"", 17), ByteField("num_sounds", 0), ByteField("num_groups", 0),
                   StrFixedLenField("aag", b"", 58)]


class AttenCharRsp(Packet):
    fields_desc = [ByteField("app", 0), ByteField("sec", 0), MACField("source", None),
                   StrFixedLenField("run_id", b"", 8), StrFixedLenField("source_id", b"\x00" * 17, 17),
                   StrFixedLenField("resp_id", b"\x00" * 17, 17), ByteField("result", 0)]


class SlacMatchReq(Packet):
    fields_desc = [ByteField("app", 0), ByteField("sec", 0), LEShortField("mvf_length", 0x3E),
                   StrFixedLenField("pev_id", b"\x00" * 17, 17), MACField("pev_mac", None),
                   StrFixedLenField("evse_id", b"\x00" * 17, 17), MACField("evse_mac", None),
                   StrFixedLenField("run_id", b"", 8), StrFixedLenField("rsvd", b"\x00" * 8, 8)]


class SlacMatchCnf(Packet):
    fields_desc = [ByteField("app", 0), ByteField("sec", 0), LEShortField("mvf_length", 0),
                   StrFixedLenField("pev_id", b"", 17), MACField("pev_mac", None),
                   StrFixedLenField("evse_id", b"", 17), MACField("evse_mac", None),
                   StrFixedLenField("run_id", b"", 8), StrFixedLenField("rsvd", b"", 8),
                   StrFixedLenField("nid", b"", 7), ByteField("rsvd2", 0), StrFixedLenField("nmk", b"", 16)]


bind_layers(Ether, HomePlug, type=HPAV)
for layer, mmtype in ((SlacParmReq, 0x6064), (SlacParmCnf, 0x6065), (StartAttenChar, 0x606A), (MnbcSound, 0x6076),
                      (AttenCharInd, 0x606E), (AttenCharRsp, 0x606F), (SlacMatchReq, 0x607C),
                      (SlacMatchCnf, 0x607D)):
    bind_layers(HomePlug, layer, mmtype=mmtype)


def main(iface: str) -> int:
    me = get_if_hwaddr(iface)
    run_id = os.urandom(8)
    sock = conf.L2socket(iface=iface)

    def send(dst: str, mmtype: int, payload: Packet) -> None:
        sock.send(Ether(src=me, dst=dst, type=HPAV) / HomePlug(mmtype=mmtype) / payload)

    def wait(layer: type[Packet], timeout: float) -> Packet | None:
        got = sock.sniff(count=1, timeout=timeout,
                         lfilter=lambda p: layer in p and p[Ether].dst == me and p[layer].run_id == run_id)
        return got[0] if got else None

    for _ in range(3):  # C_EV_match_retry
        send("ff:ff:ff:ff:ff:ff", 0x6064, SlacParmReq(run_id=run_id))
        cnf = wait(SlacParmCnf, 0.5)
        if cnf is not None:
            break
    else:
        print("SCAPY no CM_SLAC_PARM.CNF", flush=True)
        return 1
    evse = cnf[Ether].src
    n, t = cnf[SlacParmCnf].num_sounds, cnf[SlacParmCnf].time_out
    for _ in range(3):
        send("ff:ff:ff:ff:ff:ff", 0x606A, StartAttenChar(num_sounds=n, time_out=t, forwarding_sta=me, run_id=run_id))
    for i in range(n):
        send("ff:ff:ff:ff:ff:ff", 0x6076, MnbcSound(cnt=n - 1 - i, run_id=run_id, rnd=os.urandom(16)))
        time.sleep(0.02)
    ind = wait(AttenCharInd, 1.2)
    if ind is None:
        print("SCAPY no CM_ATTEN_CHAR.IND", flush=True)
        return 1
    profile = ind[AttenCharInd].aag[:ind[AttenCharInd].num_groups]
    print(f"SCAPY atten from {evse}: {sum(profile) / len(profile):.1f} dB over {ind[AttenCharInd].num_sounds} sounds",
          flush=True)
    send(evse, 0x606F, AttenCharRsp(source=me, run_id=run_id))
    send(evse, 0x607C, SlacMatchReq(pev_mac=me, evse_mac=evse, evse_id=ind[AttenCharInd].resp_id, run_id=run_id))
    match = wait(SlacMatchCnf, 1.0)
    if match is None:
        print("SCAPY no CM_SLAC_MATCH.CNF", flush=True)
        return 1
    m = match[SlacMatchCnf]
    print(f"SCAPY MATCHED evse={evse.replace(':', '')} nid={m.nid.hex()} nmk={m.nmk.hex()} mvf={m.mvf_length:#x}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
