"""Fuzz the SLAC frame parser and state machines (`make fuzz`): no input may raise.

Inputs are random byte strings and mutations (bit flips, byte overwrites, truncation, extension, header and
MMTYPE swaps) of a seed corpus of valid frames of every SLAC MME type. Each input goes through `frames.parse`
(which must return a Frame or a Drop), a parsed frame must re-encode to a frame that parses to the same payload,
and every input is fed to an EVSE and an EV state machine that are mid-match (sessions open, timers running), whose
`poll` is run too. Any exception is a finding. Input i is a pure function of (--seed, i): `--replay I` rechecks it.

    python tools/slac_fuzz.py --count 1000000 [--seed N] [--replay I]
    python tools/slac_fuzz.py --iface IFACE --count 3000 --rate 300   # put the inputs on a link (root)

With --iface the inputs are sent as Ethernet frames (Ethertype forced to 0x88E1, padded to 60 bytes) on a raw
socket instead: hostile traffic on a PLC segment (the simulated medium, or a real modem's host link) while a
real match runs.
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from v2gstack.slac import frames as f  # noqa: E402
from v2gstack.slac.ev import EvSlac  # noqa: E402
from v2gstack.slac.evse import EvseSlac  # noqa: E402

EV = bytes.fromhex("020000000e01")
EVSE = bytes.fromhex("020000000001")
RUN = bytes.fromhex("0102030405060708")


def corpus() -> list[bytes]:
    """One valid frame of each SLAC MME type, addressed as a real run would address it."""
    aag = tuple(range(20, 20 + f.NUM_GROUPS))
    payloads: list[tuple[bytes, bytes, f.Payload]] = [
        (f.BROADCAST, EV, f.SlacParmReq(RUN)),
        (EV, EVSE, f.SlacParmCnf(EV, RUN)),
        (f.BROADCAST, EV, f.StartAttenCharInd(EV, RUN, 10, 6)),
        (f.BROADCAST, EV, f.MnbcSoundInd(RUN, 9, b"\x55" * 16)),
        (EVSE, f.LOCAL_MODEM, f.AttenProfileInd(EV, aag)),
        (EV, EVSE, f.AttenCharInd(EV, RUN, 10, aag)),
        (EVSE, EV, f.AttenCharRsp(EV, RUN)),
        (EVSE, EV, f.SlacMatchReq(EV, EVSE, RUN)),
        (EV, EVSE, f.SlacMatchCnf(EV, EVSE, RUN, b"\x11" * 7, b"\x22" * 16)),
        (f.LOCAL_MODEM, EVSE, f.SetKeyReq(b"\x11" * 7, b"\x22" * 16)),
        (EVSE, f.LOCAL_MODEM, f.SetKeyCnf()),
        (EVSE, EV, f.ValidateReq(0, 0, 1)),
        (EV, EVSE, f.ValidateCnf(0, 0, 1)),
    ]
    return [f.encode(dst, src, p) for dst, src, p in payloads]


MMTYPES = [int(m) for m in f.MMType] + [0xA0B8, 0x6000, 0xFFFF]


def make_input(seed: int, i: int, seeds: list[bytes]) -> bytes:
    """Input number i: random bytes (1 in 8) or a mutated corpus frame."""
    r = random.Random(seed * 1_000_003 + i)
    if r.random() < 0.125:
        return r.randbytes(r.randrange(0, 140))
    data = bytearray(r.choice(seeds))
    for _ in range(r.randrange(1, 4)):
        op = r.randrange(7)
        if op == 0 and data:  # flip a bit
            k = r.randrange(len(data))
            data[k] ^= 1 << r.randrange(8)
        elif op == 1 and data:  # overwrite a byte
            data[r.randrange(len(data))] = r.randrange(256)
        elif op == 2:  # truncate
            del data[r.randrange(len(data) + 1):]
        elif op == 3:  # extend with junk or zeros
            data += r.randbytes(r.randrange(1, 40)) if r.random() < 0.5 else bytes(r.randrange(1, 80))
        elif op == 4 and len(data) >= 17:  # another MMTYPE on this body
            data[15:17] = r.choice(MMTYPES).to_bytes(2, "little")
        elif op == 5 and len(data) >= 19:  # header fields: MMV, FMI
            data[14 + r.randrange(5)] = r.choice((0, 1, 2, 0xFF))
        elif op == 6 and len(data) >= 21:  # the application/security type or a count byte
            data[19 + r.randrange(min(8, len(data) - 19))] = r.choice((0, 1, 0x3E, 0x56, 0xFF))
    return bytes(data)


def _machines() -> tuple[EvseSlac, EvSlac]:
    """An EVSE with an open session for EV and an EV waiting for answers: deep states for the inputs."""
    evse = EvseSlac(EVSE, rng=lambda n: b"\x01" * n)
    evse.new_key(0.0)
    evse.control_pilot("B", 0.0)
    evse.receive(f.encode(f.BROADCAST, EV, f.SlacParmReq(RUN)), 0.0)
    evse.receive(f.encode(f.BROADCAST, EV, f.StartAttenCharInd(EV, RUN, 10, 6)), 0.0)
    ev = EvSlac(EV, rng=lambda n: RUN[:n] if n == 8 else b"\x02" * n)
    ev.start(0.0)
    return evse, ev


@dataclass
class Summary:
    done: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    findings: list[tuple[int, str]] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        rate = self.done / self.seconds if self.seconds else 0.0
        top = ", ".join(f"{k}={v}" for k, v in self.outcomes.most_common(8))
        return (f"{self.done} inputs in {self.seconds:.1f} s ({rate:,.0f}/s), {len(self.findings)} findings; "
                f"outcomes: {top}")


def check(data: bytes, evse: EvseSlac, ev: EvSlac, now: float) -> str:
    """One input through parse, re-encode and both machines; returns the outcome key; raises on a finding."""
    frame = f.parse(data)
    if isinstance(frame, f.Frame):
        again = f.parse(frame.encode())
        if not isinstance(again, f.Frame) or again.payload != frame.payload:
            raise AssertionError(f"re-encoding changed the frame: {frame} -> {again}")
        outcome = "frame:" + frame.mmtype.name
    else:
        outcome = "drop:" + frame.reason
    for machine in (evse, ev):
        for out in machine.receive(data, now):
            if hasattr(out, "frame") and not isinstance(f.parse(out.frame), f.Frame):
                raise AssertionError(f"a machine sent a frame we cannot parse: {out}")
        machine.poll(now)
    return outcome


def run(count: int, seed: int = 1, out: Callable[[str], None] = print, progress: int = 200_000) -> Summary:
    """Check `count` inputs; machines are renewed every 500 inputs so that they stay mid-match."""
    seeds = corpus()
    summary = Summary()
    start = time.monotonic()
    evse, ev = _machines()
    for i in range(count):
        if i % 500 == 0:
            evse, ev = _machines()
        data = make_input(seed, i, seeds)
        try:
            summary.outcomes[check(data, evse, ev, (i % 500) * 0.001)] += 1
        except Exception:
            summary.findings.append((i, traceback.format_exc()))
        summary.done += 1
        if progress and summary.done % progress == 0:
            summary.seconds = time.monotonic() - start
            out(summary.line())
    summary.seconds = time.monotonic() - start
    return summary


def blast(iface: str, count: int, seed: int, rate: float) -> int:
    """Send the inputs on `iface` at `rate` frames per second; the number sent."""
    seeds = corpus()
    sent = 0
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(f.ETHERTYPE_HOMEPLUG)) as sock:
        sock.bind((iface, f.ETHERTYPE_HOMEPLUG))
        start = time.monotonic()
        for i in range(count):
            data = bytearray(make_input(seed, i, seeds).ljust(f.ETH_HEADER_LEN, b"\xff")[:1500])
            data[12:14] = b"\x88\xe1"
            sock.send(bytes(data).ljust(f.MIN_ETH_FRAME, b"\x00"))
            sent += 1
            pause = start + sent / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    return sent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--replay", type=int, help="re-check input number I and print it")
    ap.add_argument("--iface", help="send the inputs on this interface instead of checking them")
    ap.add_argument("--rate", type=float, default=300.0, help="with --iface: frames per second")
    args = ap.parse_args()
    if args.iface:
        print(f"sent {blast(args.iface, args.count, args.seed, args.rate)} frames on {args.iface}", flush=True)
        return 0
    if args.replay is not None:
        data = make_input(args.seed, args.replay, corpus())
        print(data.hex())
        evse, ev = _machines()
        print(check(data, evse, ev, 0.0))
        return 0
    summary = run(args.count, args.seed)
    for i, tb in summary.findings[:5]:
        print(f"finding at input {i} (replay: --seed {args.seed} --replay {i}):\n{tb}")
    print(summary.line())
    return 1 if summary.findings else 0


if __name__ == "__main__":
    sys.exit(main())
