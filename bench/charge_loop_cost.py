"""CPU cost of one ISO 15118 charge loop on a bridged station and on the EV, split by what spends it.

One process runs our CSMS (SQLite, OCPP over a loopback websocket), one station with `--cars` EVSEs, each bridged to
its SECC on loopback TCP, and one of our EVs per SECC, charging without end (`--period` s between charge loops).
Every asyncio callback is charged to the side whose task or transport scheduled it (a context variable set when
the CSMS, the station and the EVs were started: tasks and transports inherit it), in CPU seconds
(time.process_time around each callback). Once every car is in its charge loop:

1. `--windows` windows over `--seconds`: station-side and EV-side CPU per charge loop (us; a loop = one
   request/response pair the EVs received), the CSMS's, and the event loop's own (select and scheduling: charged to
   no side); each figure is the median of the windows;
2. a window of `--profile-seconds` sampled (the Python stack every 0.5 ms of process CPU time, SIGPROF; the kernel
   may tick less often) or, with `--split cprofile`, under cProfile (one profiler per side, on process time; its
   own cost per call inflates call-heavy code such as the codec): each side's time split into codec (exi/), engine
   (the sans-I/O SECC/EVCC state machines and models), bridge (the station's bridge and services: station/,
   hardware/, the OCPP 2.1 profile composition), timeline (trace/, the message log and the session trace), ocpp
   (the OCPP engine and websockets) and shell (asyncio, sockets, V2GTP framing, the SECC/EVCC shells); the shares
   are applied to the figures of 1. A sample (or a builtin under cProfile) counts for its innermost v2gstack frame,
   or for the shell when asyncio or a socket comes first.

Modes: `iso2` (ISO 15118-2 DC, scheduled) and `iso20` (ISO 15118-20 DC_BPT, dynamic control, OCPP 2.1).

    .venv/bin/python bench/charge_loop_cost.py --cars 20 --period 0.05 --seconds 10 --profile-seconds 10

With `--baseline OTHER/src` it runs `--rounds` times on that code and on this checkout's, alternately, and prints
the medians of both (before/after in one run on a shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import cProfile
import json
import logging
import os
import pstats
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the test helpers: our CSMS on loopback, our station connected to it
if "V2GSTACK_SRC" in os.environ:  # measure another checkout's code with this bench (main's, for a baseline)
    sys.path.insert(0, os.environ["V2GSTACK_SRC"])
else:
    sys.path.insert(0, str(ROOT / "src"))

SIDE: contextvars.ContextVar[str] = contextvars.ContextVar("side", default="loop")
SIDES = ("station", "ev", "csms", "loop")
CATEGORIES = ("codec", "engine", "bridge", "timeline", "ocpp", "shell")
MODES = {"iso2": ("iso2", "dc", "scheduled"), "iso20": ("iso20", "dc_bpt", "dynamic")}


class Meter:
    """CPU seconds of every asyncio callback, by the side of its context; optionally one cProfile per side."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self.profiles: dict[str, cProfile.Profile] | None = None
        self._original: Callable[[Any], None] | None = None

    def install(self) -> None:
        """Wrap asyncio's Handle._run (every callback, task step and transport read goes through it)."""
        original = asyncio.events.Handle._run
        self._original = original
        meter = self

        def run(handle: Any) -> None:
            context = handle._context
            side = context.get(SIDE, "loop") if context is not None else "loop"
            profiles = meter.profiles
            prof = profiles.get(side) if profiles is not None else None
            t = time.process_time()
            if prof is not None:
                prof.enable()
            try:
                original(handle)
            finally:
                if prof is not None:
                    prof.disable()
                meter.cpu[side] += time.process_time() - t

        asyncio.events.Handle._run = run  # type: ignore[method-assign]

    def uninstall(self) -> None:
        """Back to asyncio's own."""
        if self._original is not None:
            asyncio.events.Handle._run = self._original  # type: ignore[method-assign]

    def snapshot(self) -> dict[str, float]:
        """CPU seconds so far by side."""
        return dict(self.cpu)


def category(filename: str) -> str | None:
    """The category of a function by its file (None: a builtin, counted for its caller)."""
    f = filename.replace("\\", "/")
    if f.startswith("~") or f.startswith("<"):
        return None
    if "/v2gstack/exi/" in f:
        return "codec"
    if "/v2gstack/trace/" in f or f.endswith("/iso15118/msglog.py") or f.endswith("/bridge/tracing.py"):
        return "timeline"
    if "/v2gstack/station/" in f or "/v2gstack/hardware/" in f or "/v2gstack/ocpp/v2x" in f:
        return "bridge"
    if "/v2gstack/ocpp/" in f or "/websockets/" in f or "/v2gstack/csms/" in f:
        return "ocpp"
    if "/v2gstack/iso15118/" in f:
        name = f.rsplit("/", 1)[-1]
        if name in ("stream.py", "v2gtp.py", "secc_server.py", "evcc_client.py", "tls_stream.py"):
            return "shell"
        return "engine"
    return "shell"


class Sampler:
    """Samples the running Python stack every `interval` s of process CPU time (SIGPROF): unbiased shares of CPU by
    side and category (cProfile's own cost per call inflates call-heavy code such as the codec several times)."""

    def __init__(self, interval: float = 0.0005) -> None:
        self.interval = interval
        self.counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(CATEGORIES, 0))

    def _sample(self, _sig: int, frame: Any) -> None:
        side = SIDE.get()
        cat = "shell"
        f = frame
        while f is not None:
            name = f.f_code.co_filename
            if "/v2gstack/" in name:
                cat = category(name) or "shell"
                break
            if "/asyncio/" in name or name.endswith(("/selectors.py", "/socket.py", "/ssl.py")):
                break
            f = f.f_back
        self.counts[side][cat] += 1

    def start(self) -> None:
        """Sample from now on."""
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)

    def stop(self) -> None:
        """No more samples."""
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)


def split(prof: cProfile.Profile) -> dict[str, float]:
    """Profiled seconds by category; a builtin's own time goes to its callers' categories in proportion."""
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    out: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)
    for (filename, _line, _name), (_cc, _nc, tt, _ct, callers) in stats.items():
        cat = category(filename)
        if cat is not None:
            out[cat] += tt
            continue
        shares = [(category(c[0]) or "shell", v[2]) for c, v in callers.items()]
        total = sum(s for _, s in shares)
        if total <= 0:
            out["shell"] += tt
            continue
        for cat2, s in shares:
            out[cat2] += tt * s / total
    return out


async def run_mode(mode: str, args: argparse.Namespace, meter: Meter, folder: Path) -> dict[str, Any]:
    """One fleet of `args.cars` bridged EVSEs and EVs in `mode`; its figures."""
    from helpers.csms import our_station, running_csms

    from v2gstack.iso15118 import EvccConfig, EVModel, run_evcc
    from v2gstack.iso15118.msglog import MessageRecord
    from v2gstack.station.bridge import BridgeConfig, start_bridged_seccs

    protocol, energy, control = MODES[mode]
    loops = [0] * args.cars
    SIDE.set("csms")
    async with running_csms(f"sqlite:///{folder / f'csms-{mode}.db'}") as csms:
        SIDE.set("station")
        async with our_station(csms, evses=args.cars, max_power_w=50_000.0, tx_interval=3600, time_scale=1.0,
                               state_dir=folder / f"station-{mode}") as st:
            st.model.put("AuthCtrlr", "Enabled", "false")
            st.smart_charging.profiles.max_profiles = max(32, 2 * args.cars + 1)
            await st.wait_accepted()
            config = BridgeConfig(allow_discharge_w=10_000.0) if protocol == "iso20" else None
            bridges = await start_bridged_seccs(st, host="127.0.0.1", port=0, sdp_port=0, protocols=(protocol,),
                                                config=config, trace_dir=folder / "traces" if args.trace_dir else None)
            SIDE.set("ev")

            def sink_for(i: int) -> Callable[[MessageRecord], None]:
                def sink(record: MessageRecord) -> None:
                    if record.direction == "rx":
                        loops[i] += 1
                return sink

            async def one(i: int) -> Any:
                await asyncio.sleep(i * 0.02)
                assert bridges[i].server is not None
                cfg = EvccConfig(protocols=(protocol,), energy=energy, control=control, loops=0,
                                 loop_interval=args.period, ongoing_interval=0.02, evcc_id=f"0A0B0C{i:06X}")
                ev = EVModel(soc=30.0, target_soc=100.0, capacity_wh=1_000_000.0)  # never full within the run
                return await run_evcc(cfg, ev, secc=bridges[i].server.addresses()["tcp"], on_message=sink_for(i))

            tasks = [asyncio.create_task(one(i)) for i in range(args.cars)]
            SIDE.set("loop")
            deadline = time.monotonic() + 60 + args.cars * 0.1

            def warming() -> bool:
                """Some live session is not yet set up and 12 loops into its charge loop."""
                return any(n < 12 and not tasks[i].done() for i, n in enumerate(loops))

            while warming():
                await asyncio.sleep(0.1)
                ended = [t.result() for t in tasks if t.done() and not t.exception()]
                if time.monotonic() > deadline or len(ended) > args.cars // 10:
                    raise RuntimeError(f"{mode}: cars not looping ({min(loops)} loops; ended: "
                                       f"{[(r.reason, r.response_code) for r in ended][:3]})")
            await asyncio.sleep(args.settle)  # the CSMS's answers to the sessions' starts are done
            import v2gstack

            figures: dict[str, Any] = {"mode": mode, "cars": args.cars, "period": args.period,
                                       "code": str(Path(v2gstack.__file__).parent)}
            # 1. CPU per loop: the median of `--windows` windows (a shared machine's bursts hit one, not all)
            windows = []
            for _ in range(args.windows):
                c0, n0, p0, w0 = meter.snapshot(), sum(loops), time.process_time(), time.monotonic()
                await asyncio.sleep(args.seconds / args.windows)
                c1, n1, p1, w1 = meter.snapshot(), sum(loops), time.process_time(), time.monotonic()
                n = max(1, n1 - n0)  # responses the EVs received: one per charge loop
                w = {side: (c1.get(side, 0.0) - c0.get(side, 0.0)) / n * 1e6 for side in SIDES}
                w["unattributed"] = ((p1 - p0) - sum(c1.get(s, 0.0) - c0.get(s, 0.0) for s in SIDES)) / n * 1e6
                w["loops"], w["loops_per_s"], w["cpu_share"] = n, n / (w1 - w0), (p1 - p0) / (w1 - w0)
                windows.append(w)
            figures["windows"] = windows
            per_loop = {k: statistics.median(w[k] for w in windows) for k in windows[0]}
            figures["loops"] = sum(w["loops"] for w in windows)
            figures["loops_per_s"] = per_loop.pop("loops_per_s")
            figures["cpu_share"] = per_loop.pop("cpu_share")
            per_loop.pop("loops")
            figures["us_per_loop"] = per_loop
            # 2. the split: sampled, or under cProfile
            if args.profile_seconds > 0 and args.split == "sample":
                sampler = Sampler()
                sampler.start()
                await asyncio.sleep(args.profile_seconds)
                sampler.stop()
                figures["split_us"] = {}
                for side in ("station", "ev"):
                    parts = sampler.counts[side]
                    total = sum(parts.values()) or 1
                    figures["split_us"][side] = {k: per_loop[side] * v / total for k, v in parts.items()}
                figures["samples"] = {side: sum(c.values()) for side, c in sampler.counts.items()}
            elif args.profile_seconds > 0:
                meter.profiles = {side: cProfile.Profile(time.process_time) for side in ("station", "ev")}
                await asyncio.sleep(args.profile_seconds)
                profiles, meter.profiles = meter.profiles, None
                figures["split_us"] = {}
                for side, prof in profiles.items():
                    parts = split(prof)
                    total = sum(parts.values()) or 1.0
                    figures["split_us"][side] = {k: per_loop[side] * v / total for k, v in parts.items()}
                    if args.dump:
                        prof.dump_stats(str(Path(args.dump) / f"{mode}-{side}.prof"))
            from v2gstack.exi import codec

            figures["memo"] = {f"{key} {way}": (m.hits, m.misses) for key, ns in codec._cache.items()
                               for way, m in (("decode", getattr(ns, "decoded", None)),
                                              ("encode", getattr(ns, "encoded", None))) if m is not None}
            bad = [t for t in tasks if t.done()]
            figures["ended_early"] = len(bad)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for b in bridges:
                if b.server is not None:
                    with contextlib.suppress(Exception):
                        await b.server.close()
            return figures


def table(results: list[dict[str, Any]], label: str) -> str:
    """Markdown rows of the figures."""
    lines = []
    for r in results:
        u = r["us_per_loop"]
        sp = r.get("split_us", {})

        def parts(side: str, sp: dict[str, Any] = sp) -> str:
            s = sp.get(side)
            return " / ".join(f"{s[k]:.0f}" for k in CATEGORIES) if s else "-"

        lines.append(f"| {label} | {r['mode']} | {r['cars']} x {r['period']} s | {r['loops_per_s']:.0f} | "
                     f"{u['station']:.0f} | {u['ev']:.0f} | {u['csms']:.0f} | {u['loop'] + u['unattributed']:.0f} | "
                     f"{parts('station')} | {parts('ev')} |")
    return "\n".join(lines)


HEADER = ("| code | mode | cars x period | loops/s | station us/loop | EV us/loop | CSMS us/loop | "
          "event loop us/loop | "
          "station: " + " / ".join(CATEGORIES) + " | EV: " + " / ".join(CATEGORIES) + " |\n"
          "|---|---|---|---|---|---|---|---|---|---|")


def _median_figures(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per mode, the median of each figure over several runs of the bench."""
    out = []
    for same in zip(*runs, strict=True):
        r = dict(same[0])
        r["loops_per_s"] = statistics.median(x["loops_per_s"] for x in same)
        r["us_per_loop"] = {k: statistics.median(x["us_per_loop"][k] for x in same) for k in same[0]["us_per_loop"]}
        if all("split_us" in x for x in same):
            r["split_us"] = {side: {k: statistics.median(x["split_us"][side][k] for x in same) for k in CATEGORIES}
                             for side in same[0]["split_us"]}
        out.append(r)
    return out


def compare(args: argparse.Namespace, argv: list[str]) -> None:
    """Run this bench `--rounds` times on the baseline's code and on this checkout's, alternately (so that the
    machine's load falls on both alike); print the medians of both."""
    import subprocess

    runs: dict[str, list[list[dict[str, Any]]]] = {args.baseline_label: [], args.label: []}
    sources = {args.baseline_label: args.baseline, args.label: str(ROOT / "src")}
    rest = [a for i, a in enumerate(argv) if a not in ("--baseline",) and (i == 0 or argv[i - 1] != "--baseline")]
    with tempfile.TemporaryDirectory(prefix="v2gstack-loop-compare-") as tmp:
        for n in range(args.rounds):
            for label, src in sources.items():
                out = Path(tmp) / f"{label}-{n}.json".replace(" ", "_")
                env = {**os.environ, "V2GSTACK_SRC": src}
                env.pop("PYTHONPATH", None)
                subprocess.run([sys.executable, __file__, *rest, "--rounds", "1", "--json", str(out)], env=env,
                               check=True, stdout=subprocess.DEVNULL)
                runs[label].append(json.loads(out.read_text()))
    print(f"load average after {os.getloadavg()}", file=sys.stderr)
    print(HEADER)
    for label, r in runs.items():
        print(table(_median_figures(r), f"{label} (median of {args.rounds})"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cars", type=int, default=20)
    ap.add_argument("--period", type=float, default=0.05, help="seconds between an EV's charge loops")
    ap.add_argument("--seconds", type=float, default=6.0, help="the CPU-per-loop windows, in all")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds between the warm-up and the windows")
    ap.add_argument("--windows", type=int, default=5, help="windows: each figure is their median")
    ap.add_argument("--profile-seconds", type=float, default=4.0, help="the cProfile window (0: none)")
    ap.add_argument("--split", choices=("sample", "cprofile"), default="sample",
                    help="how the CPU is split by category: stack samples every 0.5 ms of CPU, or cProfile")
    ap.add_argument("--modes", default="iso2,iso20")
    ap.add_argument("--trace-dir", action="store_true", help="the station writes its session timelines to files")
    ap.add_argument("--label", default="this checkout")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--dump", help="a folder: write each side's cProfile stats there")
    ap.add_argument("--baseline", help="another checkout's src folder: compare its code with this checkout's")
    ap.add_argument("--baseline-label", default="baseline")
    ap.add_argument("--rounds", type=int, default=3, help="with --baseline: runs of each, alternately")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()}", file=sys.stderr)
    if args.baseline:
        compare(args, sys.argv[1:])
        return
    meter = Meter()
    meter.install()
    results = []
    with tempfile.TemporaryDirectory(prefix="v2gstack-loop-cost-") as tmp:
        for mode in args.modes.split(","):
            results.append(asyncio.run(run_mode(mode, args, meter, Path(tmp))))
    meter.uninstall()
    print(f"load average after {os.getloadavg()}", file=sys.stderr)
    print(HEADER)
    print(table(results, args.label))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
