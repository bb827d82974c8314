"""CSMS setpoint -> the car's charge loop carries the new target, with 100 bridged ISO 15118-20 cars on one station
process, laid out as a deployment runs: three processes.

- this process runs our CSMS (SQLite, OCPP 2.1 over websockets on loopback) and asks it for the setpoints through the
  function behind its setpoint API (`csms.v2x.setpoint`, `POST /api/stations/{id}/evse/{n}/setpoint`: a Dynamic
  CentralSetpoint profile through SetChargingProfile the first time, UpdateDynamicSchedule after);
- one station process hosts every bridged EVSE (`--layouts 1`: one station of 100 EVSEs; `10`: ten stations of ten,
  each its own OCPP connection), each EVSE's SECC offering ISO 15118-20 with discharge allowed;
- one cars process runs the -20 DC_BPT EVs (dynamic control), one per SECC, pausing `--period` s between loops.

A latency runs from the CSMS being asked for a car's setpoint to that car receiving the first DC_ChargeLoopRes whose
power is the new target; the three processes stamp CLOCK_MONOTONIC (shared by processes on one machine), and the
stamps split it into: the CSMS's queue (asked -> the CALL written to its socket), the socket (-> read by the station),
the station's handler (-> the EVSE's target changed) and the wait for the car's next charge loop (-> the car has it).
Three patterns, every car charging (discharging) through all of them, run in this order on one fleet:
- station-wide: each station's cars one common setpoint, one station-wide Dynamic TxDefaultProfile per station
  (evseId 0: one CALL per station and round);
- burst: every car a different setpoint at the same instant (OCPP-J allows one outstanding CALL per connection, so
  the CALLs to one station's EVSEs leave one after the other; the first round goes as SetChargingProfile);
- rolling: each car a new setpoint once per round at a random instant within the round (an operator or grid
  controller adjusting cars one by one).
The baseline, in the same run and through the same three processes, is one car on a station of its own, given its
setpoints at random instants. A round lasts 4 loop periods plus a random part of one, so no pattern locks onto the
cars' loop phase. Each pattern also reports the CALLs' round trip (the CSMS wrote it -> read its answer; a burst to
one station of N cars waits N - 1 of them for its last car) and what stopped each process's event loop (a 10 ms
timer late by more than 20 ms; garbage collections). Each process does what the serving commands do once started
(grammars loaded, start-up heap frozen: v2gstack/heap.py); against an older checkout (PYTHONPATH) it cannot.

    .venv/bin/python bench/v2x_latency.py --cars 100 --layouts 1,10 --period 0.25 --rounds 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if not os.environ.get("PYTHONPATH"):  # a before/after run names the checkout it measures: PYTHONPATH=<other>/src
    sys.path.insert(0, str(ROOT / "src"))

PASSWORD = "bench-station-password"
PATTERNS = ("station-wide", "burst", "rolling")
Key = tuple[str, int]  # (station id, EVSE id): one car


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _number(v: dict[str, int]) -> float:
    return v["Value"] * 10.0 ** v["Exponent"]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # it ended
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Stalls:
    """What stops a process's event loop, for the bench's report: every lateness of a 10 ms timer above 20 ms
    (monotonic s, ms) and every garbage collection (monotonic s at its end, generation, ms). A late charge loop or
    OCPP frame is one of these or the process's own work."""

    def __init__(self) -> None:
        import gc
        self.lags: list[tuple[float, float]] = []
        self.gcs: list[tuple[float, int, float]] = []
        self._gc_start = 0.0
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        now = time.monotonic()
        if phase == "start":
            self._gc_start = now
        else:
            self.gcs.append((now, info["generation"], (now - self._gc_start) * 1000))

    async def watch(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.01)
            late = (time.monotonic() - t - 0.01) * 1000
            if late > 20:
                self.lags.append((time.monotonic(), late))

    def json(self) -> dict[str, Any]:
        return {"lags": self.lags, "gcs": [g for g in self.gcs if g[1] == 2 or g[2] > 5]}


def _stall_summary(data: dict[str, Any], start: float, end: float) -> str:
    """One process's stalls within a pattern's window: event-loop lateness and the slow collections."""
    lags = [ms for t, ms in data["lags"] if start <= t <= end]
    gen2 = [ms for t, g, ms in data["gcs"] if start <= t <= end and g == 2]
    slow = [ms for t, g, ms in data["gcs"] if start <= t <= end and ms > 5]
    return (f"{len(lags)} lags > 20 ms (max {max(lags, default=0):.0f}), gen-2 GCs {len(gen2)} (max "
            f"{max(gen2, default=0):.0f} ms), GCs > 5 ms {len(slow)}")


def _started(protocols: tuple[str, ...]) -> None:
    """What a serving process does once started: the EXI grammars it serves loaded, then its heap frozen out of the
    full garbage collections (v2gstack/heap.py; without it the station process's collections took 90-150 ms). Older
    checkouts (a before/after run through PYTHONPATH) have neither: then nothing."""
    try:
        from v2gstack.heap import freeze_startup_heap
        from v2gstack.iso15118 import load_grammars
    except ImportError:
        return
    if protocols:
        load_grammars(protocols)
    freeze_startup_heap()


# ----- the cars' process -----

async def cars(addresses: list[tuple[str, int]], period: float, out: Path) -> None:
    """N dynamic DC_BPT EVs, one per address; each DC_ChargeLoopRes received is stamped (monotonic s, power W). They
    charge until the CSMS process says `stop` (stdin; it has stopped their transactions by then): a fixed number of
    loops ran out in the middle of the patterns when the machine made them slower than planned, and the cars that
    ended first then looked like setpoints refused (an UpdateDynamicSchedule for a profile whose transaction had
    just ended at the station)."""
    from v2gstack.iso15118 import EvccConfig, EVModel, run_evcc
    from v2gstack.iso15118.msglog import MessageRecord

    _started(("iso20",))  # one process plays 100 cars (machines of their own): their start-up heap out of the way
    seen: list[list[tuple[float, float]]] = [[] for _ in addresses]
    stalls = Stalls()
    watcher = asyncio.create_task(stalls.watch())

    def sink_for(i: int) -> Any:
        def sink(record: MessageRecord) -> None:
            if record.direction == "rx" and "DC_ChargeLoopRes" in record.doc:
                res = record.doc["DC_ChargeLoopRes"]
                seen[i].append((time.monotonic(), _number(res["EVSEPresentVoltage"]) *
                                _number(res["EVSEPresentCurrent"])))
        return sink

    async def one(i: int, address: tuple[str, int]) -> bool:
        await asyncio.sleep(i * 0.1)  # plug in one after the other
        config = EvccConfig(protocols=("iso20",), energy="dc_bpt", control="dynamic", loops=0,
                            loop_interval=period, ongoing_interval=0.05, evcc_id=f"0A0B0C{i:06X}")
        result = await run_evcc(config, EVModel(soc=50.0), secc=address, on_message=sink_for(i))
        ended[i] = (time.monotonic(), f"{result.reason} ({result.response_code})")
        if not result.ok:
            print(f"car {i}: {result.reason} ({result.response_code})", file=sys.stderr)
        return result.ok

    ended: list[tuple[float, str] | None] = [None for _ in addresses]
    tasks = [asyncio.create_task(one(i, a)) for i, a in enumerate(addresses)]
    loop = asyncio.get_running_loop()
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() not in ("stop", ""):
        pass
    done, pending = await asyncio.wait(tasks, timeout=30)  # their transactions were stopped: the sessions end
    for task in pending:
        task.cancel()
    ok = sum(t.result() for t in done if not t.cancelled() and t.exception() is None)
    watcher.cancel()
    out.write_text(json.dumps({"ok": ok, "seen": seen, "ended": ended, "stalls": stalls.json()}))


# ----- the station process -----

async def stations(url: str, ids: list[str], evses: int, folder: Path, out: Path) -> None:
    """Our stations on OCPP 2.1, each with `evses` EVSEs bridged to -20 SECCs (discharge allowed), in this one
    process. Tells the CSMS process (stdout, one JSON line each) the SECCs' addresses, then which EVSEs charge;
    on `stop` (stdin) writes its stamps: every OCPP frame (monotonic s, station, direction, text) and every target
    change (monotonic s, station, EVSE, setpoint W)."""
    from v2gstack.ocpp import BackOff
    from v2gstack.station import ChargingStation, StationConfig
    from v2gstack.station.bridge import BridgeConfig, start_bridged_seccs

    frames: list[tuple[float, str, str, str]] = []
    marks: list[tuple[float, str, int, float | None]] = []
    fleet: list[ChargingStation] = []
    bridges: dict[Key, Any] = {}
    stalls = Stalls()
    watcher = asyncio.create_task(stalls.watch())
    for sid in ids:
        st = ChargingStation(StationConfig(sid, url, password=PASSWORD, evses=evses, max_power_w=50_000.0,
                                           backoff=BackOff(0.05, 0.05, 1), ping_interval=None,
                                           state_dir=folder / sid))
        st.model.put("AuthCtrlr", "Enabled", "false")
        st.model.put("SampledDataCtrlr", "TxUpdatedInterval", "3600")
        # the device model declares 32 ChargingProfiles entries (SmartChargingCtrlr.Entries' maxLimit); a station
        # of more EVSEs holds one setpoint profile per EVSE and the station-wide one
        st.smart_charging.profiles.max_profiles = max(32, 2 * evses + 1)
        st.link.frame_listeners.append(lambda d, text, sid=sid: frames.append((time.monotonic(), sid, d, text)))
        st.on_target(lambda evse, target, sid=sid: marks.append((time.monotonic(), sid, evse, target.setpoint_w)))
        await st.start()
        await st.wait_accepted()
        assert st.link.version == "2.1"
        for b in await start_bridged_seccs(st, port=0, sdp_port=0, protocols=("iso20",),
                                           config=BridgeConfig(allow_discharge_w=10_000.0)):
            bridges[(sid, b.evse_id)] = b
        fleet.append(st)
    _started(("iso20",))  # as `v2gstack station` does once started
    print(json.dumps({"addresses": [[*k, *bridges[k].server.addresses()["tcp"]] for k in sorted(bridges)]}),
          flush=True)

    def charging() -> list[Key]:
        return [(st.config.station_id, e) for st in fleet for e in range(1, evses + 1)
                if st.evses[e].tx is not None and st.hardware(e).meter().power_w > 0]

    deadline = time.monotonic() + len(bridges) * 0.1 + 120  # all plugged in, with time to spare
    while len(charging()) < len(bridges) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        if int(time.monotonic() * 10) % 50 == 0:
            txs = sum(st.evses[e].tx is not None for st in fleet for e in range(1, evses + 1))
            print(f"stations: {txs} transactions, {len(charging())} charging", file=sys.stderr, flush=True)
    print(json.dumps({"charging": charging()}), flush=True)
    loop = asyncio.get_running_loop()
    profiler = None
    while (line := (await loop.run_in_executor(None, sys.stdin.readline)).strip()) not in ("stop", ""):
        if line.startswith("profile "):  # --profile: the station's CPU while the setpoints run
            import cProfile
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
            profile_out = line.split(" ", 1)[1]
        elif line == "unprofile" and profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_out)
    watcher.cancel()
    out.write_text(json.dumps({"frames": frames, "marks": marks, "stalls": stalls.json()}))
    for b in bridges.values():
        await b.server.close()
    for st in fleet:
        await st.stop()


# ----- the CSMS's process -----

class Run:
    """One fleet (a station process and a cars process) under the CSMS of this process, and its stamps."""

    def __init__(self, csms: Any, args: argparse.Namespace, folder: Path, tag: str, stations_n: int,
                 evses: int) -> None:
        self.csms, self.args, self.folder, self.tag = csms, args, folder, tag
        self.ids = [f"CS-{tag}-{i:03d}" for i in range(stations_n)]
        # the stations' state (their durable TransactionEvent queue: SQLite, synchronous=FULL, written on the
        # station's event loop) on tmpfs unless --state-on-disk: a shared machine's fsyncs otherwise stall every SECC
        shm = Path("/dev/shm")
        self.state = folder if args.state_on_disk or not shm.is_dir() else Path(
            tempfile.mkdtemp(prefix="v2gstack-v2x-bench-", dir=shm))
        self.evses = evses
        self.frames: list[tuple[float, str, str, str]] = []  # the CSMS's side of every frame
        self.sent: list[dict[str, Any]] = []  # every accepted setpoint, per car
        self.failed: list[str] = []
        self.cpu: dict[str, dict[str, float]] = {}  # pattern -> process -> share of a CPU
        self.active: list[Key] = []
        self.windows: dict[str, tuple[float, float]] = {}  # pattern -> (start, end), monotonic s
        self.stalls: list[str] = []  # setpoints whose car took more than two loop periods, with what it saw
        self.superseded: dict[str, int] = {}  # pattern -> setpoints replaced by the next before the car's next loop

    async def start(self) -> None:
        """Start the station process and, once its SECCs listen, the cars' process; wait until the cars charge."""
        for sid in self.ids:
            self.csms.store.add_station(sid, PASSWORD)
        log = (self.folder / f"{self.tag}.log").open("wb")
        self.station_out = self.folder / f"stations-{self.tag}.json"
        self.station_proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--role", "stations", "--url", f"ws://127.0.0.1:{self.csms.port}/ocpp",
            "--ids", ",".join(self.ids), "--evses", str(self.evses), "--folder", str(self.state),
            "--out", str(self.station_out), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=log)
        first = await self._line()
        rows = first["addresses"]
        self.cars = [(r[0], r[1]) for r in rows]
        for sid in self.ids:
            conn = self.csms.server.connections[sid]
            conn.frame_listeners.append(lambda d, text, sid=sid: self.frames.append((time.monotonic(), sid, d, text)))
        self.cars_out = self.folder / f"cars-{self.tag}.json"
        self.cars_proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--role", "cars", "--addresses", json.dumps([[r[2], r[3]] for r in rows]),
            "--period", str(self.args.period), "--out", str(self.cars_out), stdin=asyncio.subprocess.PIPE,
            stdout=log, stderr=log)
        charging = {tuple(k) for k in (await self._line())["charging"]}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(self.csms.active_transaction(s, e) is None for s, e in charging):
            await asyncio.sleep(0.1)
        # a session that failed to start (on a loaded machine) is left out, and said
        self.active = [k for k in self.cars if k in charging and self.csms.active_transaction(*k) is not None]
        print(f"  {self.tag}: {len(self.active)} of {len(self.cars)} cars charging")
        if not self.active:
            raise RuntimeError(f"{self.tag}: no car charges; see {self.folder}")

    async def _line(self) -> dict[str, Any]:
        assert self.station_proc.stdout is not None
        line = await asyncio.wait_for(self.station_proc.stdout.readline(), 300)
        if not line:
            raise RuntimeError(f"{self.tag}: the station process ended; see {self.folder}")
        return json.loads(line)

    async def send(self, pattern: str, sid: str, evse: int, target: float) -> None:
        """Ask the CSMS for one setpoint (EVSE 0: station-wide) and note it for each car it is meant for."""
        t0 = time.monotonic()
        try:
            answer = await self.csms.v2x.setpoint(sid, evse, {"setpoint": target})
        except Exception as e:  # a car whose session ended: counted, not timed
            self.failed.append(f"{pattern}: {sid} EVSE {evse}: {e}")
            return
        t_answer = time.monotonic()
        if answer["response"]["status"] != "Accepted":
            self.failed.append(f"{pattern}: {sid} EVSE {evse}: {answer['action']} {answer['response']}")
            return
        for e in ([e for s, e in self.active if s == sid] if evse == 0 else [evse]):
            self.sent.append({"pattern": pattern, "sid": sid, "evse": e, "wire_evse": evse, "t0": t0,
                              "t_answer": t_answer, "target": target, "action": answer["action"]})

    async def pattern(self, name: str, rounds: int) -> None:
        """`rounds` rounds of one pattern; each round lasts 4 loop periods plus a random part of one."""
        rng = random.Random(f"{self.tag}-{name}")
        period = self.args.period
        procs = {"CSMS": os.getpid(), "station": self.station_proc.pid, "cars": self.cars_proc.pid}
        cpu0, wall0 = {k: _cpu_seconds(p) for k, p in procs.items()}, time.monotonic()
        profiler = None
        if self.args.profile:
            import cProfile
            await self._tell(f"profile {self.args.profile}/station-{self.tag}-{name}.prof")
            profiler = cProfile.Profile(time.process_time)
            profiler.enable()
        index = {k: i for i, k in enumerate(self.cars)}
        for r in range(rounds):
            length = period * (4 + rng.random())
            step = 1000.0 * (r % 3)  # a new value each round
            if name == "station-wide":
                await asyncio.gather(*(self.send(name, sid, 0, -5000.0 - step) for sid in self.ids))
                await asyncio.sleep(length)
            elif name == "burst":  # every car a different setpoint, all at once
                await asyncio.gather(*(self.send(name, s, e, -4000.0 - 10.0 * index[(s, e)] - step)
                                       for s, e in self.active))
                await asyncio.sleep(length)
            else:  # rolling: each car at its own random instant within the round
                async def later(s: str, e: int, delay: float, target: float) -> None:
                    await asyncio.sleep(delay)
                    await self.send(name, s, e, target)
                await asyncio.gather(asyncio.sleep(length), *(
                    later(s, e, rng.random() * length, -4000.0 - 10.0 * index[(s, e)] - step)
                    for s, e in self.active))
        wall = time.monotonic() - wall0
        self.windows[name] = (wall0, wall0 + wall)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{self.args.profile}/csms-{self.tag}-{name}.prof")
            await self._tell("unprofile")
        self.cpu[name] = {k: (_cpu_seconds(p) - cpu0[k]) / wall for k, p in procs.items()}

    async def stop(self) -> None:
        """End the sessions, the cars' process and the station process (which writes its stamps)."""
        for sid, e in self.active:
            tx = self.csms.active_transaction(sid, e)
            if tx is not None:
                try:
                    await self.csms.request_stop(sid, tx)
                except Exception as ex:
                    print(f"  {self.tag}: could not stop {sid} EVSE {e}: {ex}")
        assert self.cars_proc.stdin is not None
        self.cars_proc.stdin.write(b"stop\n")
        await self.cars_proc.stdin.drain()
        await self.cars_proc.wait()
        await self._tell("stop")
        await self.station_proc.wait()
        if self.state != self.folder:
            shutil.rmtree(self.state, ignore_errors=True)

    async def _tell(self, line: str) -> None:
        """A command to the station process (its stdin)."""
        assert self.station_proc.stdin is not None
        self.station_proc.stdin.write(line.encode() + b"\n")
        await self.station_proc.stdin.drain()

    def results(self) -> dict[str, dict[str, list[float]]]:
        """Per pattern: the latencies (ms) and their parts, one entry per setpoint a car carried."""
        cars_data = json.loads(self.cars_out.read_text())
        station_data = json.loads(self.station_out.read_text())
        seen = {k: cars_data["seen"][i] for i, k in enumerate(self.cars)}
        self.process_stalls = {"station": station_data["stalls"], "cars": cars_data["stalls"]}
        csms_calls = _calls(self.frames, "tx")  # (sid, mid) -> (t, action, payload)
        station_rx = {(sid, mid): t for (sid, mid), (t, _, _) in _calls(station_data["frames"], "rx").items()}
        csms_answers = {(sid, json.loads(text)[1]): t for t, sid, d, text in self.frames
                        if d == "rx" and text.startswith(("[3", "[4"))}  # (sid, mid) -> read by the CSMS
        by_call: dict[tuple[str, str, str], list[tuple[float, str]]] = {}  # (sid, action, key) -> [(t, mid)]
        for (sid, mid), (t, action, payload) in csms_calls.items():
            by_call.setdefault((sid, action, _call_key(action, payload)), []).append((t, mid))
        marks: dict[Key, list[tuple[float, float | None]]] = {}
        for t, sid, evse, sp in station_data["marks"]:
            marks.setdefault((sid, evse), []).append((t, sp))
        out: dict[str, dict[str, list[float]]] = {}
        for s in self.sent:
            key = (s["sid"], s["evse"])
            # a setpoint is carried until the station's target for the car moves on (the next setpoint applied),
            # plus an answer in flight; one replaced before the car's next loop was never carried, and is counted as
            # superseded (a later setpoint of the same value is not its arrival: it took 2.6-4.4 s that way)
            applied = [t for t, sp in marks.get(key, []) if t > s["t0"] and sp == s["target"]]
            moved = [t for t, sp in marks.get(key, []) if applied and t > min(applied) and sp != s["target"]]
            until = min(moved) + 0.5 if moved else math.inf
            hits = [t for t, p in seen[key] if s["t0"] < t <= until and abs(p - s["target"]) <= abs(s["target"]) * 0.01]
            if not hits:  # replaced before the car's next loop, or its session ended first: counted, not timed
                if moved:
                    self.superseded[s["pattern"]] = self.superseded.get(s["pattern"], 0) + 1
                else:
                    self.failed.append(f"{s['pattern']}: {key}: never carried {s['target']} W")
                continue
            parts = out.setdefault(s["pattern"], {})
            total = (min(hits) - s["t0"]) * 1000
            parts.setdefault("total", []).append(total)
            parts.setdefault(s["action"], []).append(total)
            wire_key = str(s["wire_evse"]) if s["action"] == "SetChargingProfile" else \
                str(21000 + s["wire_evse"])
            wired = [(t, mid) for t, mid in by_call.get((s["sid"], s["action"], f"{wire_key}:{s['target']:g}"), [])
                     if t >= s["t0"]]
            if not wired or not applied:
                continue
            t_wire, mid = min(wired)
            t_rx = station_rx.get((s["sid"], mid))
            if t_rx is None:
                continue
            t_target = min(applied)
            parts.setdefault("queue", []).append((t_wire - s["t0"]) * 1000)
            parts.setdefault("socket", []).append((t_rx - t_wire) * 1000)
            parts.setdefault("handler", []).append((t_target - t_rx) * 1000)
            parts.setdefault("car", []).append((min(hits) - t_target) * 1000)
            parts.setdefault("answered", []).append((s["t_answer"] - s["t0"]) * 1000)
            if (s["sid"], mid) in csms_answers:  # the CALL's round trip: written by the CSMS -> its answer read
                parts.setdefault("round trip", []).append((csms_answers[(s["sid"], mid)] - t_wire) * 1000)
            if min(hits) - t_target > 2 * self.args.period + 0.1:  # what the car saw meanwhile: paused or other power
                between = [(round((t - t_target) * 1000), round(p)) for t, p in seen[key] if t_target - 0.5 < t <=
                           min(hits)]
                self.stalls.append(f"{s['pattern']} {key} target {s['target']:g} W at +0 ms: car saw {between}")
        for name, (start, end) in self.windows.items():
            gone = [(k, e) for k, e in zip(self.cars, cars_data["ended"], strict=True)
                    if k in self.active and e is not None and e[0] < end]
            if gone:  # a session that ended while the setpoints ran (each one's later setpoints fail)
                self.failed += [f"{name}: {k}: the car's session ended: {e[1]}" for k, e in gone
                                if e[0] >= start]
        for name, (start, end) in self.windows.items():  # the cars' longest pause between two loop answers
            gaps = [b - a for k in self.active for (a, _), (b, _) in zip(seen[k], seen[k][1:], strict=False)
                    if start <= a and b <= end]
            if gaps and name in out:
                out[name]["gap"] = [g * 1000 for g in gaps]
        return out


def _calls(frames: list[Any], direction: str) -> dict[tuple[str, str], tuple[float, str, dict[str, Any]]]:
    """The CSMS-to-station CALLs among frames stamped on one side: (station, message id) -> (t, action, payload)."""
    calls = {}
    for t, sid, d, text in frames:
        if d == direction and text.startswith("[2"):
            _, mid, action, payload = json.loads(text)
            if action in ("SetChargingProfile", "UpdateDynamicSchedule"):
                calls[(sid, mid)] = (t, action, payload)
    return calls


def _call_key(action: str, payload: dict[str, Any]) -> str:
    """Which setpoint a CALL carries: 'evseId:setpoint' (SetChargingProfile) or 'profileId:setpoint'."""
    if action == "SetChargingProfile":
        period = payload["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]
        return f"{payload['evseId']}:{period.get('setpoint', 0):g}"
    return f"{payload['chargingProfileId']}:{payload['scheduleUpdate'].get('setpoint', 0):g}"


def _reasons(failed: list[str]) -> Counter[str]:
    """Failures counted by pattern and reason (the station, EVSE, profile and values left out)."""
    return Counter(re.sub(r"CS-[\w-]+|EVSE \d+|\(\S+, \d+\)|-?\d+(\.\d+)?", "#", f)[:160] for f in failed)


def report(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: none"
    return (f"{name}: n={len(values)} p50 {statistics.median(values):.1f} ms, p99 {pct(values, 0.99):.1f} ms, "
            f"max {max(values):.1f} ms")


def short(values: list[float]) -> str:
    return "-" if not values else f"{statistics.median(values):.1f} / {pct(values, 0.99):.1f}"


async def main(args: argparse.Namespace) -> None:
    from v2gstack.csms.service import Csms, CsmsConfig
    from v2gstack.csms.store import Store

    folder = Path(tempfile.mkdtemp(prefix="v2gstack-v2x-bench-"))
    store = Store(f"sqlite:///{folder / 'csms.db'}")
    csms = Csms(store, CsmsConfig(ping_interval=None))
    await csms.start()
    _started(())  # as `v2gstack csms serve` does once started
    stalls = Stalls()
    watcher = asyncio.create_task(stalls.watch())
    budget = args.period * 1000 + 50
    print(f"OCPP 2.1, three processes (CSMS; one station process; the cars); charge-loop period "
          f"{args.period * 1000:.0f} ms; {args.rounds} rounds per pattern; target p99 <= {budget:.0f} ms; "
          f"load average {os.getloadavg()[0]:.1f} at the start")
    layouts = [("baseline", 1, 1, ("rolling",))]
    for n in args.layouts:
        layouts.append((f"{n}x{-(-args.cars // n)}", n, -(-args.cars // n), tuple(args.patterns)))
    rows = []
    for tag, n, per, patterns in layouts:
        run = Run(csms, args, folder, tag, n, per)
        await run.start()
        try:
            for p in patterns:
                await run.pattern(p, args.rounds * (3 if tag == "baseline" else 1))
        finally:
            await run.stop()
        res = run.results()
        print(f"  {tag}: {len(run.sent)} setpoints accepted, {len(run.failed)} not or never carried; load average "
              f"{os.getloadavg()[0]:.1f}")
        if run.superseded:
            print(f"    superseded by the next setpoint before the car's next loop (not timed): {run.superseded}")
        for reason, n in _reasons(run.failed).most_common(8):
            print(f"    {n} x {reason}")
        for stall in run.stalls[:5]:
            print(f"    stall: {stall[:600]}")
        for p in patterns:
            parts = res.get(p, {})
            cpu = ", ".join(f"{k} {v:.0%}" for k, v in run.cpu[p].items())
            print("  " + report(f"{tag} {p}", parts.get("total", [])) + f"  [CPU: {cpu}]")
            for action in ("SetChargingProfile", "UpdateDynamicSchedule"):
                if parts.get(action):
                    print("    " + report(action, parts[action]))
            print("    parts p50 / p99 (ms): " + "; ".join(
                f"{k} {short(parts.get(k, []))}" for k in ("queue", "socket", "handler", "car", "answered",
                                                           "round trip"))
                + f" (mean {statistics.fmean(parts.get('round trip', [0])):.1f}: a burst's last CALL waits N - 1)"
                + f"; the cars' pause between loop answers p50 / p99 / max {short(parts.get('gap', []))} / "
                f"{max(parts.get('gap', [0])):.0f}")
            for proc, data in (("CSMS", stalls.json()), *run.process_stalls.items()):
                print(f"    {proc} stalls: " + _stall_summary(data, *run.windows[p]))
            rows.append((tag, p, parts))
    watcher.cancel()
    await csms.close()
    store.close()
    print("\n| layout | pattern | n | p50 | p99 | max | queue | socket | handler | car's loop | p99 <= "
          f"{budget:.0f} ms |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for tag, p, parts in rows:
        v = parts.get("total", [])
        if not v:
            continue
        print(f"| {tag} | {p} | {len(v)} | {statistics.median(v):.0f} ms | {pct(v, 0.99):.0f} ms | {max(v):.0f} ms | "
              + " | ".join(short(parts.get(k, [])) for k in ("queue", "socket", "handler", "car"))
              + f" | {'yes' if pct(v, 0.99) <= budget else 'no'} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cars", type=int, default=100)
    ap.add_argument("--layouts", type=lambda s: [int(x) for x in s.split(",")], default=[1, 10],
                    help="numbers of stations sharing the cars in the station process, comma-separated")
    ap.add_argument("--patterns", type=lambda s: s.split(","), default=list(PATTERNS),
                    help="comma-separated, in this order: " + ",".join(PATTERNS))
    ap.add_argument("--period", type=float, default=0.25, help="the cars' charge-loop period (s, below 0.5)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--state-on-disk", action="store_true", help="the stations' state folder (durable queue, "
                    "device model) in the temporary folder, not on tmpfs")
    ap.add_argument("--profile", help="a folder: cProfile the CSMS and the station process during each pattern")
    ap.add_argument("--role", choices=("csms", "stations", "cars"), default="csms", help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--ids", help=argparse.SUPPRESS)
    ap.add_argument("--evses", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ap.add_argument("--addresses", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    logging.basicConfig(level=logging.ERROR)
    a = ap.parse_args()
    if a.role == "cars":
        asyncio.run(cars([tuple(x) for x in json.loads(a.addresses)], a.period, Path(a.out)))
    elif a.role == "stations":
        asyncio.run(stations(a.url, a.ids.split(","), a.evses, Path(a.folder), Path(a.out)))
    else:
        asyncio.run(main(a))
