"""ISO 15118-20 session benchmark: our EVCC <-> our SECC on loopback, the reference pair across a veth, SECC under load.

Run: `python bench/iso20_bench.py [--sessions 5] [--loops 50] [--load 50] [--no-reference] [--quick]`.

1. Ours: whole -20 DC and DC_BPT sessions (scheduled control, SDP on ::1 to SessionStopRes, `--loops` charge-loop
   messages, no deliberate waits), EVCC and SECC in one process on loopback; DC_BPT also in dynamic control with
   discharge in the first loops. Wall time per session and per-round-trip p50/p99, stamped by the EVCC's message
   sink (request written -> response decoded), and the CPU time of each charge-loop round trip (both ends run in
   this thread: the wall time beyond it is waiting, on a loaded machine for a CPU). The first session of each kind
   is a warm-up and not counted.
2. Reference (`iso15118` 0.31.2, its own -20 EVCC example configurations for DC and DC_BPT against its own SECC, as
   processes in two namespaces joined by a veth pair; needs root and .venv-ref): the same sessions (its SECC offers
   scheduled control first, so its EV runs scheduled), timed from its EVCC log ("Sent XReq" -> "XRes received",
   millisecond stamps; total from "Sending SDPRequest" to "SessionStopRes received"; chargeLoopCycle = `--loops`).
3. SECC load: one SECC process (this one) serving `--load` concurrent -20 sessions (half DC scheduled, half DC_BPT
   dynamic with discharge) driven by a separate client process; the SECC's own time for each DC_ChargeLoopReq (last
   byte read -> response written), p50/p99/max, with EV pacing and flat out. The -20 performance budget is the EV's
   0.5 s charge-loop timeout.

The figures to compare are the ratios (reference / ours): the machine is shared. Prints the machine's load average
before and after, and a Markdown table for docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from iso15118_bench import LOOP_REQUESTS as LOOP_REQUESTS_2
from iso15118_bench import ms, parse_reference_evcc_log, pct

from v2gstack.iso15118.ev import EVModel
from v2gstack.iso15118.evcc import EvccConfig
from v2gstack.iso15118.evcc_client import run_evcc
from v2gstack.iso15118.evse_sim import SimulatedEVSE, SimulatedEVSEConfig
from v2gstack.iso15118.msglog import MessageRecord
from v2gstack.iso15118.secc import SeccConfig
from v2gstack.iso15118.secc_server import SeccServer

ROOT = Path(__file__).resolve().parent.parent
LOOP_REQUESTS = frozenset({"AC_ChargeLoopReq", "DC_ChargeLoopReq"}) | LOOP_REQUESTS_2
KINDS = (("dc", "scheduled"), ("dc_bpt", "scheduled"), ("dc_bpt", "dynamic"))  # ours
REFERENCE_KINDS = (("dc", "scheduled"), ("dc_bpt", "scheduled"))  # its EV runs what its SECC offers first
DISCHARGE_LOOPS = 3


class Figures:
    """One kind of session: totals and round trips."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.totals: list[float] = []
        self.rtts: list[float] = []
        self.loop_rtts: list[float] = []
        self.loop_cpu: list[float] = []  # ours: CPU time of this thread per charge-loop round trip (both ends' work)

    def add(self, total: float, pairs: list[tuple[str, float]], cpu: list[float] | None = None) -> None:
        """One session's total, (request, round trip) pairs and, for ours, the charge loops' CPU times."""
        self.totals.append(total)
        self.rtts += [t for _, t in pairs]
        self.loop_rtts += [t for name, t in pairs if name in LOOP_REQUESTS]
        self.loop_cpu += cpu or []

    def line(self) -> str:
        """A readable summary."""
        if not self.totals:
            return f"{self.label}: no sessions"
        median = ms(statistics.median(self.totals))
        return (f"{self.label}: {len(self.totals)} sessions, total per session median {median}"
                f" (min {ms(min(self.totals))}, max {ms(max(self.totals))}); all round trips ({len(self.rtts)}) p50 "
                f"{ms(pct(self.rtts, 50))}, p99 {ms(pct(self.rtts, 99))}; charge loop ({len(self.loop_rtts)}) p50 "
                f"{ms(pct(self.loop_rtts, 50))}, p99 {ms(pct(self.loop_rtts, 99))}, max {ms(max(self.loop_rtts))}"
                + (f"; charge loop CPU p50 {ms(pct(self.loop_cpu, 50))}, p99 {ms(pct(self.loop_cpu, 99))}"
                   if self.loop_cpu else ""))


# ----- 1. ours on loopback -----

async def our_session(energy: str, control: str,
                      loops: int) -> tuple[float, list[tuple[str, float]], list[float]]:
    """One session SDP -> SessionStopRes; (total seconds, [(request name, round trip seconds)], [CPU seconds of
    each charge-loop round trip]). EVCC and SECC share this thread, so the CPU time is both ends' work and the wall
    time beyond it is waiting (on a loaded machine: for a CPU)."""
    rtts: list[tuple[str, float]] = []
    cpu: list[float] = []
    sent: list[tuple[str, float, float]] = []

    def sink(record: MessageRecord) -> None:
        now, used = time.perf_counter(), time.thread_time()
        if record.direction == "tx":
            sent.append((record.name, now, used))
        elif sent:
            name, t0, c0 = sent.pop()
            rtts.append((name, now - t0))
            if name in LOOP_REQUESTS:
                cpu.append(used - c0)

    sim = SimulatedEVSEConfig(sales_tariff=True, discharge_loops=DISCHARGE_LOOPS)
    async with SeccServer(lambda: SimulatedEVSE(sim), SeccConfig(protocols=("iso20",)), host="::1", port=0,
                          sdp_port=0) as server:
        sdp_port = server.addresses()["sdp"][1]
        config = EvccConfig(protocols=("iso20",), energy=energy, control=control, loops=loops, loop_interval=0.0,
                            ongoing_interval=0.0)
        started = time.perf_counter()
        result = await run_evcc(config, EVModel(), sdp_host="::1", sdp_port=sdp_port, on_message=sink)
        total = time.perf_counter() - started
    if not result.ok:
        raise RuntimeError(f"session failed: {result.reason}")
    return total, rtts, cpu


def bench_ours(sessions: int, loops: int) -> dict[tuple[str, str], Figures]:
    """Sessions of each kind; the first of each is a warm-up."""
    out = {}
    for energy, control in KINDS:
        figures = Figures(f"ours -20 {energy.upper()} {control} (loopback, {loops} loops)")
        for i in range(sessions + 1):
            total, pairs, cpu = asyncio.run(our_session(energy, control, loops))
            if i:
                figures.add(total, pairs, cpu)
        print(figures.line(), flush=True)
        out[(energy, control)] = figures
    return out


# ----- 2. the reference pair across a veth -----

def _interop_modules() -> tuple[object, object]:
    """The interop harness of tests/helpers (namespaces, the reference's processes); imported on use, as
    bench/iso15118_bench.py does: root-only tooling outside the package."""
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers import josev, netns

    return josev, netns


def reference_session(energy: str, loops: int, workdir: Path) -> tuple[float, list[tuple[str, float]]]:
    """One reference EVCC (its -20 example config for `energy`) vs reference SECC session across a fresh veth."""
    josev, netns = _interop_modules()
    config = json.loads((josev.site_packages() / josev.EXAMPLES / josev.EVCC_CONFIGS[("iso20", energy)]).read_text())
    config["chargeLoopCycle"] = loops
    link = netns.VethLink.create()
    try:
        argv, env = josev.secc_command(link.command(link.evse_ns, []), workdir / "secc", link.evse_if, ["iso20"])
        secc = josev.start(argv, env, workdir / "secc", "secc.log")
        try:
            secc_log = workdir / "secc" / "secc.log"
            deadline = time.monotonic() + 90
            while "UDP server started" not in secc_log.read_text(errors="replace") and time.monotonic() < deadline:
                time.sleep(0.1)
            (workdir / "evcc").mkdir(parents=True, exist_ok=True)
            config_path = workdir / "evcc" / "config.json"
            config_path.write_text(json.dumps(config))
            argv, env = josev.evcc_command(link.command(link.ev_ns, []), workdir / "evcc", link.ev_if, "iso20", energy)
            env["EVCC_CONFIG_PATH"] = str(config_path)
            evcc = josev.start(argv, env, workdir / "evcc", "evcc.log")
            evcc_log = workdir / "evcc" / "evcc.log"
            deadline = time.monotonic() + 180
            while evcc.poll() is None and time.monotonic() < deadline:  # it waits for ever after a failure
                if "SessionStopRes received" in evcc_log.read_text(errors="replace") or \
                        "maximum number of SDP retry cycles" in evcc_log.read_text(errors="replace"):
                    break
                time.sleep(0.2)
            evcc.kill()
            evcc.wait(10)
        finally:
            secc.kill()
            secc.wait(10)
    finally:
        link.destroy()
    return parse_reference_evcc_log((workdir / "evcc" / "evcc.log").read_text(errors="replace"))


def bench_reference(sessions: int, loops: int) -> dict[tuple[str, str], Figures]:
    """The reference pair, if it can run here."""
    josev, netns = _interop_modules()
    reason = netns.skip_reason() or (None if josev.available() else "no .venv-ref")
    if reason:
        print(f"reference: skipped ({reason})")
        return {}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for energy, control in REFERENCE_KINDS:
            figures = Figures(f"reference -20 {energy.upper()} {control} (veth, {loops} loops, log stamps 1 ms)")
            for i in range(sessions):
                for attempt in range(3):  # its JVM start and codec are slow under load; a session may not finish
                    try:
                        figures.add(*reference_session(energy, loops, Path(tmp) / f"{energy}{i}-{attempt}"))
                        break
                    except RuntimeError as e:
                        print(f"reference -20 {energy.upper()} session {i + 1}, attempt {attempt + 1}: {e}", flush=True)
            print(figures.line(), flush=True)
            if figures.totals:
                out[(energy, control)] = figures
    return out


# ----- 3. SECC under load -----

async def load_client(port: int, sessions: int, loops: int, interval: float) -> int:
    """`sessions` concurrent -20 sessions against [::1]:port, half DC scheduled and half DC_BPT dynamic; how many
    ended OK."""
    configs = [EvccConfig(protocols=("iso20",), energy="dc" if i % 2 == 0 else "dc_bpt",
                          control="scheduled" if i % 2 == 0 else "dynamic", loops=loops, loop_interval=interval)
               for i in range(sessions)]
    results = await asyncio.gather(*(run_evcc(c, EVModel(), secc=("::1", port)) for c in configs))
    return sum(r.ok for r in results)


async def _loaded(sessions: int, loops: int, interval: float) -> tuple[int, list[float]]:
    """One SECC here, the EVCCs in a child process; (sessions OK, the SECC's DC_ChargeLoopReq handling times)."""
    times: list[float] = []

    def on_handled(name: str, seconds: float) -> None:
        if name == "DC_ChargeLoopRes":
            times.append(seconds)

    sim = SimulatedEVSEConfig(discharge_loops=DISCHARGE_LOOPS)
    async with SeccServer(lambda: SimulatedEVSE(sim), SeccConfig(protocols=("iso20",)), host="::1", sdp=False,
                          on_handled=on_handled) as server:
        port = server.addresses()["tcp"][1]
        child = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--load-client", str(port), str(sessions), str(loops), str(interval),
            stdout=asyncio.subprocess.PIPE)
        out, _ = await child.communicate()
    return int(out.decode().strip() or 0), times


def bench_load(sessions: int, loops: int, interval: float) -> dict[str, tuple[int, list[float]]]:
    """Paced and flat out."""
    out = {}
    for label, pace in (("paced", interval), ("flat out", 0.0)):
        ok, times = asyncio.run(_loaded(sessions, loops, pace))
        out[label] = (ok, times)
        print(f"SECC load ({label}, {pace * 1000:g} ms EV pacing): {sessions} concurrent -20 sessions ({ok} ended OK), "
              f"{loops} charge loops each; SECC DC_ChargeLoopReq handling ({len(times)}): p50 {ms(pct(times, 50))}, "
              f"p99 {ms(pct(times, 99))}, max {ms(max(times))}", flush=True)
    return out


# ----- the summary -----

def markdown(ours: dict[tuple[str, str], Figures], ref: dict[tuple[str, str], Figures],
             load: dict[str, tuple[int, list[float]]], args: argparse.Namespace, loads: tuple[str, str]) -> str:
    """The table for docs/PERFORMANCE.md."""
    rows = ["| | session, SDP to SessionStopRes (median) | all round trips p50 / p99 | charge loop p50 / p99 | "
            "charge loop CPU p50 / p99 |", "|---|---|---|---|---|"]

    def row(label: str, f: Figures) -> str:
        cpu = f"{ms(pct(f.loop_cpu, 50))} / {ms(pct(f.loop_cpu, 99))}" if f.loop_cpu else "-"
        return (f"| {label} | {ms(statistics.median(f.totals))} | {ms(pct(f.rtts, 50))} / {ms(pct(f.rtts, 99))} | "
                f"{ms(pct(f.loop_rtts, 50))} / {ms(pct(f.loop_rtts, 99))} | {cpu} |")

    for (energy, control), f in ours.items():
        rows.append(row(f"v2gstack -20 {energy.upper()} {control}, loopback ({len(f.totals)} sessions)", f))
    for (energy, control), f in ref.items():
        rows.append(row(f"reference -20 {energy.upper()} {control}, veth ({len(f.totals)} session(s))", f))
    ratios = []
    for key, r in ref.items():
        o = ours.get(key)
        if o is None:
            continue
        session = statistics.median(r.totals) / statistics.median(o.totals)
        p50 = pct(r.loop_rtts, 50) / pct(o.loop_rtts, 50)
        p99 = pct(r.loop_rtts, 99) / pct(o.loop_rtts, 99)
        ratios.append(f"{key[0].upper()} {key[1]}: session x{session:.0f}, charge loop p50 x{p50:.0f}, p99 x{p99:.0f}")
    text = "\n".join(rows)
    if ratios:
        text += "\n\nReference / ours: " + "; ".join(ratios) + "."
    for label, (ok, times) in load.items():
        text += (f"\n\nSECC load, {label}: {args.load} concurrent -20 sessions ({ok} OK), DC_ChargeLoopReq handling "
                 f"p50 {ms(pct(times, 50))}, p99 {ms(pct(times, 99))}, max {ms(max(times))}.")
    text += (f"\n\nCommand `python bench/iso20_bench.py --sessions {args.sessions} --loops {args.loops} --load "
             f"{args.load}`, {date.today().isoformat()}, {platform.python_implementation()} "
             f"{platform.python_version()}, {os.cpu_count()} CPUs, load average before/after {loads[0]} / {loads[1]}.")
    return text


def _load_average() -> str:
    """The 1/5/15-minute load average."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    """Parse options and run the three benchmarks."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sessions", type=int, default=5, help="sessions per kind (ours; +1 warm-up)")
    parser.add_argument("--reference-sessions", type=int, default=1, help="reference sessions per kind")
    parser.add_argument("--loops", type=int, default=50, help="charge-loop messages per session")
    parser.add_argument("--load", type=int, default=50, help="concurrent sessions for the SECC load test")
    parser.add_argument("--load-loops", type=int, default=100, help="charge loops per loaded session")
    parser.add_argument("--load-interval", type=float, default=0.05, help="EV pacing in the load test, s")
    parser.add_argument("--no-reference", action="store_true", help="skip the reference pair")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 session, 3 loops, load 4 x 5")
    parser.add_argument("--load-client", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_client:
        port, sessions, loops, interval = args.load_client
        print(asyncio.run(load_client(int(port), int(sessions), int(loops), float(interval))))
        return
    if args.quick:
        args.sessions, args.loops, args.load, args.load_loops, args.reference_sessions = 1, 3, 4, 5, 1
    before = _load_average()
    print(f"load average before: {before}", flush=True)
    ours = bench_ours(args.sessions, args.loops)
    ref = {} if args.no_reference else bench_reference(args.reference_sessions, args.loops)
    load = bench_load(args.load, args.load_loops, args.load_interval)
    after = _load_average()
    print(f"load average after: {after}\n")
    print(markdown(ours, ref, load, args, (before, after)))


if __name__ == "__main__":
    main()
