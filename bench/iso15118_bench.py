"""ISO 15118-2 session benchmark: our EVCC <-> our SECC on loopback, the reference pair across a veth, SECC under load.

Run: `python bench/iso15118_bench.py [--sessions N] [--loops 20] [--load 50] [--no-reference]`.

1. Ours: full -2 AC and DC sessions (SDP on ::1 to SessionStopRes, `--loops` charge-loop messages, no deliberate
   waits: loop and Ongoing intervals are 0), EVCC and SECC in one process on loopback. Total wall time per session
   and per-round-trip p50/p99, stamped by the EVCC's message sink (request written -> response decoded).
2. Reference (`iso15118` 0.31.2, its own EVCC and SECC, as processes in two namespaces joined by a veth pair; needs
   root and .venv-ref): the same sessions, timed from its EVCC log ("Sent XReq" -> "XRes received", millisecond
   stamps; total from "Sending SDPRequest" to "SessionStopRes received"; its example config with chargeLoopCycle set
   to `--loops` and no loop delay).
3. SECC load: one SECC process (this one) serving `--load` concurrent DC sessions driven by a separate client
   process; the SECC's own time for each CurrentDemandReq (last byte read -> response written), p50/p99/max.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from v2gstack.iso15118.ev import EVModel
from v2gstack.iso15118.evcc import EvccConfig
from v2gstack.iso15118.evcc_client import run_evcc
from v2gstack.iso15118.evse_sim import SimulatedEVSE
from v2gstack.iso15118.msglog import MessageRecord
from v2gstack.iso15118.secc_server import SeccServer

ROOT = Path(__file__).resolve().parent.parent
LOOP_REQUESTS = frozenset({"CurrentDemandReq", "ChargingStatusReq"})


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def ms(seconds: float) -> str:
    """Seconds as a millisecond figure."""
    return f"{seconds * 1000:.2f} ms"


def summary(label: str, totals: list[float], rtts: list[float], loop_rtts: list[float]) -> None:
    """One block of figures."""
    print(f"{label}: {len(totals)} sessions, total per session median {ms(statistics.median(totals))} "
          f"(min {ms(min(totals))}, max {ms(max(totals))})")
    print(f"  all round trips ({len(rtts)}): p50 {ms(pct(rtts, 50))}, p99 {ms(pct(rtts, 99))}, max {ms(max(rtts))}")
    print(f"  charge loop ({len(loop_rtts)}): p50 {ms(pct(loop_rtts, 50))}, p99 {ms(pct(loop_rtts, 99))}, "
          f"max {ms(max(loop_rtts))}")


# ----- 1. ours on loopback -----

async def our_session(energy: str, loops: int) -> tuple[float, list[tuple[str, float]]]:
    """One session SDP -> SessionStopRes; (total seconds, [(request name, round trip seconds)])."""
    rtts: list[tuple[str, float]] = []
    sent: list[tuple[str, float]] = []

    def sink(record: MessageRecord) -> None:
        now = time.perf_counter()
        if record.direction == "tx":
            sent.append((record.name, now))
        elif sent:
            name, t0 = sent.pop()
            rtts.append((name, now - t0))

    async with SeccServer(SimulatedEVSE, host="::1", port=0, sdp_port=0) as server:
        sdp_port = server.addresses()["sdp"][1]
        config = EvccConfig(protocols=("iso2",), energy=energy, loops=loops, loop_interval=0.0, ongoing_interval=0.0)
        started = time.perf_counter()
        result = await run_evcc(config, EVModel(), sdp_host="::1", sdp_port=sdp_port, on_message=sink)
        total = time.perf_counter() - started
    if not result.ok:
        raise RuntimeError(f"session failed: {result.reason}")
    return total, rtts


def bench_ours(sessions: int, loops: int) -> None:
    """Sessions of each energy; the first of each is a warm-up and not counted."""
    for energy in ("ac", "dc"):
        totals: list[float] = []
        rtts: list[float] = []
        loop_rtts: list[float] = []
        for i in range(sessions + 1):
            total, pairs = asyncio.run(our_session(energy, loops))
            if i == 0:
                continue
            totals.append(total)
            rtts += [t for _, t in pairs]
            loop_rtts += [t for name, t in pairs if name in LOOP_REQUESTS]
        summary(f"ours -2 {energy.upper()} (loopback, {loops} loops)", totals, rtts, loop_rtts)


# ----- 2. the reference pair across a veth -----

_STAMP = re.compile(r"^\w+\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - (.*)$")


def parse_reference_evcc_log(text: str) -> tuple[float, list[tuple[str, float]]]:
    """(total seconds SDPRequest -> SessionStopRes received, [(request, round trip seconds)]) from its EVCC log."""
    first = last = None
    pending: dict[str, float] = {}
    rtts: list[tuple[str, float]] = []
    for line in text.splitlines():
        m = _STAMP.match(line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        msg = m.group(2)
        if "Sending SDPRequest" in msg and first is None:
            first = t
        if sent := re.search(r"\): Sent (\w+)Req$", msg):
            pending[sent.group(1)] = t
        elif got := re.search(r"\): (\w+)Res received$", msg):
            if got.group(1) in pending:
                rtts.append((got.group(1) + "Req", t - pending.pop(got.group(1))))
            if got.group(1) == "SessionStop":
                last = t
    if first is None or last is None:
        raise RuntimeError("reference session did not reach SessionStopRes")
    return last - first, rtts


def reference_session(energy: str, loops: int, workdir: Path) -> tuple[float, list[tuple[str, float]]]:
    """One reference EVCC vs reference SECC session across a fresh veth pair."""
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import josev, netns

    config = json.loads((josev.site_packages() / josev.EXAMPLES / josev.EVCC_CONFIGS[("iso2", energy)]).read_text())
    config["chargeLoopCycle"] = loops
    link = netns.VethLink.create()
    try:
        argv, env = josev.secc_command(link.command(link.evse_ns, []), workdir / "secc", link.evse_if, ["iso2"])
        secc = josev.start(argv, env, workdir / "secc", "secc.log")
        try:
            secc_log = workdir / "secc" / "secc.log"
            deadline = time.monotonic() + 90
            while "UDP server started" not in secc_log.read_text(errors="replace") and time.monotonic() < deadline:
                time.sleep(0.1)
            (workdir / "evcc").mkdir(parents=True, exist_ok=True)
            config_path = workdir / "evcc" / "config.json"
            config_path.write_text(json.dumps(config))
            argv, env = josev.evcc_command(link.command(link.ev_ns, []), workdir / "evcc", link.ev_if, "iso2", energy)
            env["EVCC_CONFIG_PATH"] = str(config_path)
            evcc = josev.start(argv, env, workdir / "evcc", "evcc.log")
            evcc.wait(timeout=180)
        finally:
            secc.kill()
            secc.wait(10)
    finally:
        link.destroy()
    return parse_reference_evcc_log((workdir / "evcc" / "evcc.log").read_text(errors="replace"))


def bench_reference(sessions: int, loops: int) -> None:
    """The reference pair, if it can run here."""
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import josev, netns

    reason = netns.skip_reason() or (None if josev.available() else "no .venv-ref")
    if reason:
        print(f"reference: skipped ({reason})")
        return
    with tempfile.TemporaryDirectory() as tmp:
        for energy in ("ac", "dc"):
            totals: list[float] = []
            rtts: list[float] = []
            loop_rtts: list[float] = []
            for i in range(sessions):
                total, pairs = reference_session(energy, loops, Path(tmp) / f"{energy}{i}")
                totals.append(total)
                rtts += [t for _, t in pairs]
                loop_rtts += [t for name, t in pairs if name in LOOP_REQUESTS]
            summary(f"reference -2 {energy.upper()} (veth, {loops} loops, log stamps 1 ms)", totals, rtts,
                    loop_rtts)


# ----- 3. SECC under load -----

async def load_client(port: int, sessions: int, loops: int, interval: float) -> int:
    """`sessions` concurrent DC sessions against [::1]:port; how many ended OK."""
    config = EvccConfig(protocols=("iso2",), energy="dc", loops=loops, loop_interval=interval)
    results = await asyncio.gather(*(run_evcc(config, EVModel(), secc=("::1", port)) for _ in range(sessions)))
    return sum(r.ok for r in results)


async def bench_load(sessions: int, loops: int, interval: float) -> None:
    """One SECC here, the EVCCs in a child process; the SECC's CurrentDemandReq handling times."""
    times: list[float] = []

    def on_handled(name: str, seconds: float) -> None:
        if name == "CurrentDemandRes":
            times.append(seconds)

    async with SeccServer(SimulatedEVSE, host="::1", sdp=False, on_handled=on_handled) as server:
        port = server.addresses()["tcp"][1]
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--load-client", str(port), str(sessions), str(loops), str(interval),
            stdout=asyncio.subprocess.PIPE)
        out, _ = await child.communicate()
    ok = int(out.decode().strip() or 0)
    print(f"SECC load: {sessions} concurrent DC sessions ({ok} ended OK), {loops} CurrentDemand each, "
          f"{interval * 1000:g} ms EV pacing; SECC CurrentDemandReq handling ({len(times)}): "
          f"p50 {ms(pct(times, 50))}, p99 {ms(pct(times, 99))}, max {ms(max(times))}")
    times.clear()
    async with SeccServer(SimulatedEVSE, host="::1", sdp=False, on_handled=on_handled) as server:
        port = server.addresses()["tcp"][1]
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--load-client", str(port), str(sessions), str(loops), "0",
            stdout=asyncio.subprocess.PIPE)
        out, _ = await child.communicate()
    flat = list(times)
    ok = int(out.decode().strip() or 0)
    print(f"SECC load, EVs flat out (no pacing): {sessions} sessions ({ok} OK); CurrentDemandReq handling "
          f"({len(flat)}): p50 {ms(pct(flat, 50))}, p99 {ms(pct(flat, 99))}, max {ms(max(flat))}")


def main() -> None:
    """Parse options and run the three benchmarks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=5, help="sessions per energy (ours; +1 warm-up)")
    parser.add_argument("--reference-sessions", type=int, default=1, help="reference sessions per energy")
    parser.add_argument("--loops", type=int, default=20, help="charge-loop messages per session")
    parser.add_argument("--load", type=int, default=50, help="concurrent sessions for the SECC load test")
    parser.add_argument("--load-loops", type=int, default=100, help="CurrentDemand messages per loaded session")
    parser.add_argument("--load-interval", type=float, default=0.05, help="EV pacing in the load test, s")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference pair")
    parser.add_argument("--load-client", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_client:
        port, sessions, loops, interval = args.load_client
        print(asyncio.run(load_client(int(port), int(sessions), int(loops), float(interval))))
        return
    bench_ours(args.sessions, args.loops)
    if not args.no_reference:
        bench_reference(args.reference_sessions, args.loops)
    asyncio.run(bench_load(args.load, args.load_loops, args.load_interval))


if __name__ == "__main__":
    main()
