"""Grid signal -> every car's charge loop at its new power, on loopback, everything real.

The default run is the issue's: `v2gstack csms` (SQLite, or --db PostgreSQL) with grid control and dispatch in its
own process; S of our stations (OCPP 2.0.1 over websockets), E EVSEs each, every EVSE bridged to an SECC, spread over
`--station-procs` processes; one of our EVs per EVSE (ISO 15118-2 DC, a real session over loopback TCP, a
CurrentDemandReq every `--period` s) in `--car-procs` processes. Once every car charges under the plan, each round
posts a site import limit (`--fraction` of the fleet's maximum) through `POST /api/grid/signals` with an operator
token, then cancels it (`DELETE`). Every car whose maximum power changes is timed from the POST to the first
CurrentDemandRes whose EVSEMaximumPowerLimit is its new power. All processes stamp CLOCK_MONOTONIC (one clock per
machine), which gives the breakdown: API -> signal applied, solve, solve -> CALL queued, CALL -> the station's power
stage (the limit applied), station -> car. CPU of each process is measured over a steady window before the rounds.

    .venv/bin/python bench/grid_latency.py --stations 100 --evses 10 --period 0.25 --rounds 2
    .venv/bin/python bench/grid_latency.py --inproc --stations 10 --evses 10 --rounds 3   # quick, one process

`--inproc` is the quick mode: CSMS and stations in one process and event loop, simulated cars (no ISO 15118),
timed to the power stage. The OpenADR hop (VTN -> VEN) is poll-bound and not in these figures (docs/grid.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from v2gstack.csms.auth import Role, create_token  # noqa: E402
from v2gstack.csms.grid_control import GRID_PROFILE_BASE, GridConfig, GridControl  # noqa: E402
from v2gstack.csms.service import Csms, CsmsConfig  # noqa: E402
from v2gstack.csms.store import Store  # noqa: E402
from v2gstack.grid.model import parse_signal, resolve_times  # noqa: E402
from v2gstack.ocpp import BackOff  # noqa: E402
from v2gstack.station import ChargingStation, StationConfig  # noqa: E402
from v2gstack.times import rfc3339  # noqa: E402

PASSWORD = "station-password-0001"
TOKEN = {"idToken": "04A1B2C3", "type": "ISO14443"}
MAX_W = 11_000.0
HOSTS = Path(__file__).resolve().parent / "grid_hosts.py"
HOST_PASSWORD = "grid-bench-station-pw"  # grid_hosts.PASSWORD
EVSE_MAX_W = 50_000.0  # grid_hosts.EVSE_MAX_W


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def stats(values: list[float]) -> str:
    if not values:
        return "n=0"
    return (f"n={len(values)} p50 {statistics.median(values) * 1000:.0f} ms, p99 {pct(values, 0.99) * 1000:.0f} ms, "
            f"max {max(values) * 1000:.0f} ms")


async def until(predicate: Any, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the fleet did not settle")
        await asyncio.sleep(0.02)


async def inproc(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="v2gstack-grid-bench-"))
    store = Store(f"sqlite:///{folder / 'csms.db'}")
    ids = [f"CS{n:03d}" for n in range(args.stations)]
    for sid in ids:
        store.add_station(sid, PASSWORD)
    store.put_id_token(TOKEN["idToken"], TOKEN["type"], "Accepted")
    csms = Csms(store, CsmsConfig(ping_interval=None, log_session_messages=False))
    await csms.start()
    grid = GridControl(csms, GridConfig(dispatch=True, time_budget_s=args.budget))
    grid.start()
    solved_at: list[float] = []
    original_dispatch = grid.dispatch

    async def timed_dispatch(plan: Any, start: Any, keys: Any) -> Any:
        solved_at.append(time.perf_counter())
        return await original_dispatch(plan, start, keys)

    grid.dispatch = timed_dispatch  # type: ignore[method-assign]
    accepted: dict[tuple[str, int], float] = {}
    powered: dict[tuple[str, int], tuple[float, float]] = {}  # evse -> (when, import limit W)
    stations = []
    for sid in ids:
        st = ChargingStation(StationConfig(sid, f"ws://127.0.0.1:{csms.port}/ocpp", password=PASSWORD,
                                           evses=args.evses, backoff=BackOff(0.05, 0.05, 1), ping_interval=None))
        st.model.put("SampledDataCtrlr", "TxUpdatedInterval", "3600")
        await st.start()
        stations.append(st)

        def on_profile(evse: int, sid: str = sid) -> None:
            accepted[(sid, evse)] = time.perf_counter()

        st.smart_charging.subscribe(on_profile)
        for evse in range(1, args.evses + 1):
            hw = st.hardware(evse)
            setter = hw.set_power_limit

            def set_limit(import_w: float, export_w: float = 0.0, key: tuple[str, int] = (sid, evse),
                          setter: Any = setter) -> None:
                powered[key] = (time.perf_counter(), import_w)
                setter(import_w, export_w)

            hw.set_power_limit = set_limit  # type: ignore[method-assign]
    for st in stations:
        await st.wait_accepted()
    for st in stations:
        for evse in range(1, args.evses + 1):
            st.set_ev(evse, power_w=MAX_W)
            await st.plug_in(evse)
            await st.present_token(evse, TOKEN)
    n = args.stations * args.evses
    await until(lambda: len(grid.sessions) == n and all(
        GRID_PROFILE_BASE + e in st.smart_charging.profiles.items for st in stations
        for e in range(1, args.evses + 1)))
    await asyncio.sleep(1.0)
    print(f"{n} EVSEs charging under the plan ({args.stations} stations x {args.evses}); rounds of a site import "
          f"limit of {args.fraction:.0%}, then its cancellation")
    rows = []
    for r in range(args.rounds):
        for phase in ("limit", "cancel"):
            before = {k: v[1] for k, v in powered.items()}
            solved_at.clear()
            t0 = time.perf_counter()
            if phase == "limit":
                raw = resolve_times({"id": f"bench-{r}", "target": {"kind": "site", "id": "site"}, "intervals": [
                    {"start": "now-1s", "end": "now+30m", "importLimitW": args.fraction * n * MAX_W}]},
                    datetime.now(UTC))
                grid.apply_signals([parse_signal(raw)])
            else:
                grid.cancel(f"bench-{r}")
            await until(lambda: bool(solved_at))
            plan = grid.plan
            assert plan is not None
            expected = {}
            for k_n, key in enumerate(plan.keys):
                sid, evse = key.split("/")
                target = min(MAX_W, max(float(round(plan.power_w[k_n, 0])), 0.0))
                if abs(before.get((sid, int(evse)), MAX_W) - target) > 1:
                    expected[(sid, int(evse))] = target
            def arrived(t0: float = t0, expected: dict[tuple[str, int], float] = expected) -> bool:
                return all(k in powered and powered[k][0] > t0 and abs(powered[k][1] - v) <= 1
                           for k, v in expected.items())

            await until(arrived, 60)
            solve = solved_at[0] - t0
            lat = [powered[k][0] - t0 for k in expected]
            hop = [accepted[k] - solved_at[0] for k in expected if k in accepted and accepted[k] > t0]
            # the station sets the power stage inside its SetChargingProfile handler, before its listeners run
            stage = [max(0.0, powered[k][0] - accepted[k]) for k in expected if k in accepted and accepted[k] > t0]
            rows.append((phase, len(expected), plan.solve_s, solve, lat, hop, stage))
            print(f"round {r} {phase:>6}: {len(expected):4d} EVSEs changed; solve {plan.solve_s * 1000:.0f} ms "
                  f"(signal -> dispatch {solve * 1000:.0f} ms); signal -> power stage p50 "
                  f"{statistics.median(lat) * 1000:.0f} ms p99 {pct(lat, 0.99) * 1000:.0f} ms max "
                  f"{max(lat) * 1000:.0f} ms; CSMS -> station p50 {statistics.median(hop) * 1000:.0f} ms max "
                  f"{max(hop) * 1000:.0f} ms; station -> power stage max {max(stage) * 1000:.1f} ms", flush=True)
            await asyncio.sleep(0.5)
    every = [x for row in rows for x in row[4]]
    print(f"all rounds: {len(every)} EVSE changes; signal -> power stage p50 {statistics.median(every) * 1000:.0f} ms,"
          f" p99 {pct(every, 0.99) * 1000:.0f} ms, max {max(every) * 1000:.0f} ms")
    for st in stations:
        await st.stop()
    await csms.close()
    store.close()


# ----- the multi-process run -----

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children still running (the CSMS's solver workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def load_stamps(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):  # a line cut by the process's end
            out.append(json.loads(line))
    return out


class Api:
    """The CSMS's REST API with a bearer token (urllib: this process only waits)."""

    def __init__(self, port: int, token: str) -> None:
        self.base, self.token = f"http://127.0.0.1:{port}", token

    def __call__(self, method: str, path: str, body: Any = None, timeout: float = 120.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())


def first_step(report: dict[str, Any]) -> dict[str, float]:
    """station/evse -> the power the plan gives it now, as the car will read it (within the EVSE's maximum)."""
    return {k: min(EVSE_MAX_W, max(0.0, round(v[0]))) for k, v in report["plan"]["evses"].items() if v}


def multi(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="v2gstack-grid-bench-"))
    n_cars = args.stations * args.evses
    db = args.db or f"sqlite:///{folder / 'csms.db'}"
    store = Store(db)
    ids = [f"GS{n:03d}" for n in range(args.stations)]
    for sid in ids:
        store.add_station(sid, HOST_PASSWORD)
    _, token = create_token(store, "grid-latency-bench", Role.parse("operator"), days=1)
    store.close()
    ocpp_port, api_port = free_port(), free_port()
    (folder / "csms.toml").write_text(f"""
[ocpp]
host = "127.0.0.1"
port = {ocpp_port}
ping_interval = 0
versions = ["2.0.1"]
call_timeout = 60.0
[database]
url = "{db}"
[api]
port = {api_port}
[grid]
enabled = true
dispatch = true
time_budget_s = {args.budget}
resolve_s = 3600
""")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    py = [sys.executable, str(HOSTS)]

    env = dict(os.environ)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        env["GRID_BENCH_PROFILE"] = str(Path(args.profile).resolve())

    def spawn(name: str, argv: list[str]) -> None:
        log = (folder / f"{name}.log").open("wb")
        procs[name] = subprocess.Popen(py + argv, stdout=log, stderr=subprocess.STDOUT, env=env)

    def profiling(sig: int) -> None:
        """`--profile`: the host processes' cProfile on (SIGUSR1) or off and written (SIGUSR2)."""
        if args.profile:
            for name, p in procs.items():
                if name != "csms" and p.poll() is None:
                    p.send_signal(sig)

    began = time.monotonic()
    try:
        spawn("csms", ["csms", "--stamps", str(folder / "csms.jsonl"), "--config", str(folder / "csms.toml")])
        api = Api(api_port, token)
        deadline = time.monotonic() + 60
        while True:
            try:
                api("GET", "/api/grid/signals")
                break
            except OSError:
                if time.monotonic() > deadline or procs["csms"].poll() is not None:
                    raise RuntimeError(f"the CSMS did not start; see {folder / 'csms.log'}") from None
                time.sleep(0.2)
        groups = [ids[i::args.station_procs] for i in range(args.station_procs)]
        for i, group in enumerate(groups):
            spawn(f"stations{i}", ["stations", "--stamps", str(folder / f"stations{i}.jsonl"), "--url",
                                   f"ws://127.0.0.1:{ocpp_port}/ocpp", "--ids", ",".join(group), "--evses",
                                   str(args.evses), "--ready", str(folder / f"stations{i}.json"),
                                   *(["--pace", args.pace] if args.pace else [])])
        addresses: dict[str, Any] = {}
        deadline = time.monotonic() + 60 + args.stations * 2
        for i in range(len(groups)):
            ready = folder / f"stations{i}.json"
            while not ready.exists():
                if time.monotonic() > deadline or procs[f"stations{i}"].poll() is not None:
                    raise RuntimeError(f"station process {i} did not start; see {folder}")
                time.sleep(0.2)
            addresses.update(json.loads(ready.read_text()))
        keys = sorted(addresses)
        # a running CSMS has its solver's worker process; here it would be spawned by the first car's session (a
        # second or two of CPU for numpy and scipy, which stalled the cars plugging in): one plan before the cars
        now = datetime.now(UTC)
        api("POST", "/api/grid/signals", {"id": "warm-up", "target": {"kind": "site", "id": "site"}, "intervals": [{
            "start": rfc3339(now + timedelta(days=1), "seconds"), "end": rfc3339(now + timedelta(days=1, hours=1),
                                                                                "seconds"), "importLimitW": 1e6}]})
        api("DELETE", "/api/grid/signals/warm-up")
        for i in range(args.car_procs):
            mine = {k: addresses[k] for k in keys[i::args.car_procs]}
            (folder / f"cars{i}-addresses.json").write_text(json.dumps(mine))
            spawn(f"cars{i}", ["cars", "--stamps", str(folder / f"cars{i}.jsonl"), "--addresses",
                               str(folder / f"cars{i}-addresses.json"), "--period", str(args.period),
                               "--ramp", str(args.ramp * args.car_procs), "--ev-timeout", str(args.ev_timeout)])
        print(f"{n_cars} cars ({args.stations} stations x {args.evses} EVSEs, ISO 15118-2 DC, a CurrentDemandReq "
              f"every {args.period * 1000:.0f} ms) in {args.car_procs} car processes, stations in "
              f"{args.station_procs} processes, the CSMS in one ({db.split(':')[0]}); starting", flush=True)
        # every car charging under a plan that covers it, and that plan settled (no new one for a few seconds); on a
        # machine that cannot keep up, the cars whose sessions died are left out once the rest has settled
        plugged = time.monotonic() + n_cars * args.ramp + 30
        deadline = plugged + 120
        last, since = None, time.monotonic()
        while True:
            report = api("GET", "/api/grid/signals")
            plan = report.get("plan") or {}
            sig = (report["sessions"], plan.get("start"), len(plan.get("evses", {})))
            if sig != last:
                last, since = sig, time.monotonic()
            settled = time.monotonic() - since > args.settle and len(plan.get("evses", {})) == report["sessions"]
            if settled and (report["sessions"] == n_cars or (time.monotonic() > plugged and report["sessions"])):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cars did not settle under the plan: {sig}; see {folder}")
            for name, p in procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"{name} ended ({p.returncode}); see {folder}")
            time.sleep(0.5)
        died = sum(1 for i in range(args.car_procs) for s in load_stamps(folder / f"cars{i}.jsonl")
                   if s["kind"] == "ended")
        print(f"{report['sessions']} of {n_cars} cars charging under the plan after {time.monotonic() - began:.0f} s "
              f"({died} sessions ended early); CPU over {args.window:.0f} s:", flush=True)
        cpu0 = {name: cpu_s(p.pid) for name, p in procs.items()}
        t_cpu = time.monotonic()
        load0 = os.getloadavg()[0]
        time.sleep(args.window)
        wall = time.monotonic() - t_cpu
        cpu = {name: (cpu_s(p.pid) - cpu0[name]) / wall for name, p in procs.items()}
        print("  " + ", ".join(f"{name} {v:.0%}" for name, v in cpu.items()) + f"; all {sum(cpu.values()):.0%} "
              f"of one core (2 cores); load average {load0:.1f}", flush=True)
        before = first_step(report)
        rounds: list[dict[str, Any]] = []
        profiling(signal.SIGUSR1)
        cpu0, t_cpu = {name: cpu_s(p.pid) for name, p in procs.items()}, time.monotonic()
        for r in range(args.rounds):
            for phase in ("limit", "cancel"):
                sid = f"bench-{r}"
                t0 = time.monotonic()
                if phase == "limit":
                    now = datetime.now(UTC)
                    answer = api("POST", "/api/grid/signals", {
                        "id": sid, "target": {"kind": "site", "id": "site"}, "intervals": [{
                            "start": rfc3339(now - timedelta(seconds=1), "seconds"),
                            "end": rfc3339(now + timedelta(minutes=30), "seconds"),
                            "importLimitW": args.fraction * n_cars * EVSE_MAX_W}]})
                else:
                    answer = api("DELETE", f"/api/grid/signals/{sid}")
                t_answer = time.monotonic()
                after = first_step(answer)
                changed = {k: v for k, v in after.items() if abs(v - before.get(k, EVSE_MAX_W)) > 50}
                rounds.append({"phase": phase, "t0": t0, "answered": t_answer, "expected": changed,
                               "method": answer["plan"]["method"], "solve_s": answer["plan"]["solveS"]})
                print(f"round {r} {phase:>6}: {len(changed)} cars to change; plan by {answer['plan']['method']} in "
                      f"{answer['plan']['solveS'] * 1000:.0f} ms; the API answered after "
                      f"{(t_answer - t0) * 1000:.0f} ms (the dispatch done)", flush=True)
                before = after
                time.sleep(args.settle)
        wall = time.monotonic() - t_cpu
        cpu = {name: (cpu_s(p.pid) - cpu0[name]) / wall for name, p in procs.items()}
        print(f"CPU over the rounds ({wall:.0f} s, the signals' bursts and the charge loops): "
              + ", ".join(f"{name} {v:.0%}" for name, v in cpu.items()) + f"; all {sum(cpu.values()):.0%}", flush=True)
        profiling(signal.SIGUSR2)
        if args.profile:
            time.sleep(3)  # the profiles written before the processes are stopped
            print(f"profiles over the rounds: {args.profile}", flush=True)
    finally:
        for name in sorted(procs, key=lambda n: (not n.startswith("cars"), n.startswith("csms"))):
            p = procs[name]
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        stalls(folder, args)
    analyse(folder, rounds, args)


def stalls(folder: Path, args: argparse.Namespace) -> None:
    """What stalled the host processes, and the sessions that ended before the stop."""
    station = [s for i in range(args.station_procs) for s in load_stamps(folder / f"stations{i}.jsonl")]
    car = [s for i in range(args.car_procs) for s in load_stamps(folder / f"cars{i}.jsonl")]
    for name, stamps in (("stations", station), ("cars", car)):
        gcs = [s["s"] for s in stamps if s["kind"] == "gc"]
        lags = [s["s"] for s in stamps if s["kind"] == "lag"]
        print(f"{name} processes: {len(gcs)} garbage collections over 20 ms (max {max(gcs, default=0) * 1000:.0f} ms), "
              f"{len(lags)} event-loop turns late by over 50 ms (max {max(lags, default=0) * 1000:.0f} ms)")
    ended = [s for s in car if s["kind"] == "ended"]
    bad = [s for s in ended if not s["ok"]]
    loops = sum(sum(s["loops"].values()) for s in car if s["kind"] == "stopping")
    print(f"sessions: {len(ended)} ended before the stop ({len(bad)} failed: "
          f"{sorted({s['reason'] for s in bad})[:3]}); {loops} CurrentDemandRes in all")


def analyse(folder: Path, rounds: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Join the stamps of every process; the latencies and their breakdown."""
    csms = load_stamps(folder / "csms.jsonl")
    station = [s for i in range(args.station_procs) for s in load_stamps(folder / f"stations{i}.jsonl")]
    car = [s for i in range(args.car_procs) for s in load_stamps(folder / f"cars{i}.jsonl")]
    limits: dict[str, list[tuple[float, float]]] = {}
    for s in station:
        if s["kind"] == "limit":
            limits.setdefault(s["key"], []).append((s["t"], s["w"]))
    seen: dict[str, list[tuple[float, float]]] = {}
    for s in car:
        if s["kind"] == "car" and s["w"] is not None:
            seen.setdefault(s["key"], []).append((s["t"], s["w"]))
    total: list[float] = []
    parts: dict[str, list[float]] = {k: [] for k in ("api", "solve", "to_call", "call", "to_station", "to_car")}
    missed = renegotiations = 0
    for n, rd in enumerate(rounds):
        t0 = rd["t0"]
        end = rounds[n + 1]["t0"] if n + 1 < len(rounds) else float("inf")
        got = [s for s in csms if s["kind"] in ("signal", "cancel") and t0 <= s["t"] < end]
        solves = [s for s in csms if s["kind"] == "solve" and t0 <= s["t"] < end and s["pool"] == "now"]
        calls: dict[str, list[dict[str, Any]]] = {}  # a car may get several CALLs in a round (a later re-plan)
        for s in csms:
            if s["kind"] == "call" and t0 <= s["queued"] < end:
                calls.setdefault(s["key"], []).append(s)
        lat = []
        for key, w in rd["expected"].items():
            tol = max(20.0, w * 0.002)
            hit = next((t for t, v in seen.get(key, []) if t0 < t < end and abs(v - w) <= tol), None)
            if hit is None:
                missed += 1
                continue
            lat.append(hit - t0)
            applied = next((t for t, v in limits.get(key, []) if t0 < t < end and abs(v - w) <= tol), None)
            # the CALL that set the limit: the last queued before the power stage had it (else the round's first)
            mine = sorted(calls.get(key, []), key=lambda c: c["queued"])
            call = next((c for c in reversed(mine) if applied is not None and c["queued"] <= applied),
                        mine[0] if mine else None)
            if applied is not None:
                parts["to_car"].append(hit - applied)
            if call is not None and applied is not None:
                parts["to_station"].append(applied - call["queued"])
                parts["call"].append(call["t"] - call["queued"])
            if call is not None and solves:
                parts["to_call"].append(call["queued"] - solves[0]["t"])
        if got:
            parts["api"].append(got[0]["t"] - t0)
            if solves:
                parts["solve"].append(solves[0]["t"] - got[0]["t"])
        total.extend(lat)
        cpd = sum(1 for s in car if s["kind"] == "cpd" and t0 <= s["t"] < end)
        renegotiations += cpd
        print(f"round {n // 2} {rd['phase']:>6}: signal -> car at its new power {stats(lat)}; {cpd} "
              "renegotiations (ChargeParameterDiscoveryRes) until the next signal")
    print(f"\nall rounds: {len(total)} car changes timed, {missed} never seen at their new power; "
          f"{renegotiations} renegotiations")
    print(f"  signal (POST/DELETE sent) -> the car's CurrentDemandRes at its new power: {stats(total)}")
    print(f"  of which: API -> signal applied {stats(parts['api'])}; solve (with its worker hop) "
          f"{stats(parts['solve'])}")
    print(f"  solve done -> the car's SetChargingProfile queued {stats(parts['to_call'])}")
    print(f"  CALL queued -> the station's power stage has the limit {stats(parts['to_station'])}; "
          f"CALL queued -> answered {stats(parts['call'])}")
    print(f"  the station's power stage -> the car reads it in CurrentDemandRes {stats(parts['to_car'])}")
    if total:
        print(f"goal p99 <= 1 s: {'met' if pct(total, 0.99) <= 1.0 else 'NOT met'} ({pct(total, 0.99) * 1000:.0f} ms)")
    print(f"stamps and logs: {folder}")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inproc", action="store_true", help="the quick mode: one process, simulated cars, timed to the "
                    "power stage")
    ap.add_argument("--stations", type=int, default=100)
    ap.add_argument("--evses", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--fraction", type=float, default=0.3, help="the site import limit, of the fleet's maximum")
    ap.add_argument("--budget", type=float, default=2.0, help="the LP's time budget, s")
    ap.add_argument("--period", type=float, default=0.25, help="the cars' pause between charge loops, s")
    ap.add_argument("--station-procs", type=int, default=4)
    ap.add_argument("--car-procs", type=int, default=4)
    ap.add_argument("--ramp", type=float, default=0.05, help="s between two cars plugging in")
    ap.add_argument("--settle", type=float, default=5.0, help="s without a new plan before the rounds, and between "
                    "two signals")
    ap.add_argument("--window", type=float, default=10.0, help="s over which each process's CPU is measured")
    ap.add_argument("--ev-timeout", type=float, default=0.25, help="the EVs' CurrentDemandRes timeout, s (ISO "
                    "15118-2's V2G_EVCC_Msg_Timeout: 0.25; longer only to profile on a starved machine)")
    ap.add_argument("--pace", metavar="K,R,S", help="the stations' renegotiation pace: at most K at once, R per "
                    "second, S s after the last profile change (iso15118.renegotiations_at_once, "
                    "renegotiations_per_second, renegotiation_settle_s; default: the station's defaults)")
    ap.add_argument("--profile", metavar="DIR", help="a CPU-time cProfile of each station and car process over the "
                    "rounds only, written to DIR/stations-PID.prof and DIR/cars-PID.prof")
    ap.add_argument("--db", help="the CSMS's database URL (default: SQLite in a temporary folder)")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # the host processes are stopped on the way out
    if a.inproc:
        asyncio.run(inproc(a))
    else:
        multi(a)
