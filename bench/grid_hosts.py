"""The processes of bench/grid_latency.py's multi-process run, each stamping CLOCK_MONOTONIC (one clock for every
process of the machine) into a JSON-lines file:

- `csms`: `v2gstack csms` itself (the same typer command, settings file and flags), with the grid control's steps
  stamped: signal applied or cancelled, each solve, the dispatch, each SetChargingProfile CALL queued and answered;
- `stations`: some of our stations (OCPP 2.0.1 over websockets), every EVSE bridged to an SECC on loopback; stamps
  each EVSE's power limit as the station applies it (the power stage's `set_power_limit`);
- `cars`: some of our EVs (ISO 15118-2 DC over loopback TCP), one per SECC address; stamps each change of the
  EVSEMaximumPowerLimit the car reads in CurrentDemandRes, and how each session ended.

Run by bench/grid_latency.py, not by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

PASSWORD = "grid-bench-station-pw"
EVSE_MAX_W = 50_000.0


class Stamps:
    """A JSON-lines file of stamps, written as they come (line-buffered: a killed process loses little)."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "a", buffering=1)  # noqa: SIM115 (open for the process's life)

    def __call__(self, kind: str, **fields: Any) -> None:
        self.file.write(json.dumps({"kind": kind, "t": time.monotonic(), **fields}) + "\n")


def _value(pv: dict[str, int] | None) -> float | None:
    return None if pv is None else pv["Value"] * 10.0 ** pv["Multiplier"]


PROFILE = os.environ.get("GRID_BENCH_PROFILE")  # a folder: each host process writes its cProfile there


def _profiler(name: str) -> Any:
    """With GRID_BENCH_PROFILE (grid_latency.py's `--profile DIR`): a CPU-time cProfile of this process over the
    rounds only: SIGUSR1 (sent as the first signal is posted) starts it, SIGUSR2 (after the last round) stops it and
    writes DIR/NAME-PID.prof. The set-up, plug-in and steady window stay out, so the file shows the signals' burst
    on top of the charge loops running then."""
    if not PROFILE:
        return None
    import cProfile

    prof = cProfile.Profile(time.process_time)
    loop = asyncio.get_running_loop()

    def stop() -> None:
        prof.disable()
        prof.dump_stats(str(Path(PROFILE or ".") / f"{name}-{os.getpid()}.prof"))

    loop.add_signal_handler(signal.SIGUSR1, prof.enable)
    loop.add_signal_handler(signal.SIGUSR2, stop)
    return prof


def _watch(stamp: Stamps) -> None:
    """Stamp what stalls this process: each garbage collection over 20 ms, each event-loop turn late by over 50 ms."""
    import gc

    began: list[float] = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        elif (d := time.perf_counter() - began[0]) > 0.02:
            stamp("gc", generation=info["generation"], s=d)

    gc.callbacks.append(on_gc)

    async def lag() -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(0.05)
            if (late := time.monotonic() - t - 0.05) > 0.05:
                stamp("lag", s=late)

    _tasks.add(asyncio.get_running_loop().create_task(lag()))


_tasks: set[Any] = set()


def _calm_gc() -> None:
    """One process here plays 25 stations (or 250 EVs): its heap is what 25 machines would hold, and a full garbage
    collection of it stalled it for up to 1.4 s (each EV gives up after 0.25 s). So: what is alive once set up is
    frozen out of the collections, collections run less often, and each session timeline keeps 20 messages in
    memory instead of 500 (nothing reads them; a real station's few EVSEs keep the full share)."""
    import gc

    from v2gstack.trace import timeline

    timeline.MESSAGES_IN_MEMORY = 20
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


async def _until_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


# ----- the CSMS -----

def csms(argv: list[str], stamps_path: str) -> None:
    """`v2gstack csms ARGV...` with the grid control's steps stamped."""
    from v2gstack.csms import cli
    from v2gstack.csms.grid_control import GridControl

    stamp = Stamps(stamps_path)
    apply_signals, cancel, solve, dispatch, send = (GridControl.apply_signals, GridControl.cancel,
                                                    GridControl._solve, GridControl.dispatch, GridControl._send)

    def stamped_apply(self: GridControl, signals: list[Any]) -> Any:
        stamp("signal", ids=[s.id for s in signals])
        return apply_signals(self, signals)

    def stamped_cancel(self: GridControl, signal_id: str) -> Any:
        stamp("cancel", id=signal_id)
        return cancel(self, signal_id)

    async def stamped_solve(self: GridControl, pool: str, problem: Any, budget: float) -> Any:
        t = time.monotonic()
        plan = await solve(self, pool, problem, budget)
        stamp("solve", start=t, pool=pool, cars=len(problem.cars), method=plan.method, status=plan.status,
              solve_s=plan.solve_s)
        return plan

    async def stamped_dispatch(self: GridControl, plan: Any, start: Any, keys: Any) -> Any:
        stamp("dispatch", keys=len(keys))
        out = await dispatch(self, plan, start, keys)
        stamp("dispatched", calls=len(out))
        return out

    async def stamped_send(self: GridControl, key: tuple[str, int], request: Any, tx: str, values: Any) -> Any:
        t = time.monotonic()
        out = await send(self, key, request, tx, values)
        stamp("call", key=f"{key[0]}/{key[1]}", queued=t, status=out.get("status"), first_w=out.get("firstW"))
        return out

    GridControl.apply_signals = stamped_apply  # type: ignore[method-assign]
    GridControl.cancel = stamped_cancel  # type: ignore[method-assign]
    GridControl._solve = stamped_solve  # type: ignore[method-assign]
    GridControl.dispatch = stamped_dispatch  # type: ignore[method-assign]
    GridControl._send = stamped_send  # type: ignore[method-assign]
    cli.app(args=argv, prog_name="v2gstack csms")


# ----- stations -----

async def stations(url: str, ids: list[str], evses: int, ready: Path, stamps_path: str,
                   pace: str | None = None) -> None:
    """Our stations with bridged SECCs; the SECCs' addresses to `ready`; power-limit stamps until SIGTERM."""
    from v2gstack.ocpp import BackOff
    from v2gstack.station import ChargingStation, StationConfig
    from v2gstack.station.bridge import start_bridged_seccs

    stamp = Stamps(stamps_path)
    _watch(stamp)
    sts = []
    for sid in ids:
        st = ChargingStation(StationConfig(sid, f"{url}", password=PASSWORD, evses=evses, max_power_w=EVSE_MAX_W,
                                           backoff=BackOff(0.2, 0.2, 2), call_timeout=60.0, ping_interval=None))
        st.model.put("AuthCtrlr", "Enabled", "false")  # free vend: the cars pay externally
        st.model.put("SampledDataCtrlr", "TxUpdatedInterval", "60")
        for evse in range(1, evses + 1):
            hw = st.hardware(evse)
            setter, last = hw.set_power_limit, [None]

            def set_limit(import_w: float, export_w: float = 0.0, key: str = f"{sid}/{evse}", setter: Any = setter,
                          last: list[Any] = last) -> None:
                setter(import_w, export_w)
                if import_w != last[0]:
                    last[0] = import_w
                    stamp("limit", key=key, w=import_w)

            hw.set_power_limit = set_limit  # type: ignore[method-assign]
        await st.start()
        sts.append(st)
    _calm_gc()
    addresses: dict[str, Any] = {}
    bridges = []
    for st in sts:
        await st.wait_accepted()
        extra: dict[str, Any] = {}
        if pace:  # the station's renegotiation pace: at once, per second, settle s (else the station's defaults)
            from v2gstack.station.bridge.pacer import RenegotiationPacing

            at_once, per_second, settle = pace.split(",")
            extra["pacing"] = RenegotiationPacing(int(at_once), float(per_second), float(settle))
        for b in await start_bridged_seccs(st, host="127.0.0.1", port=0, sdp_port=0, protocols=("iso2",), **extra):
            assert b.server is not None
            addresses[f"{st.config.station_id}/{b.evse_id}"] = list(b.server.addresses()["tcp"])
            bridges.append(b)
    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps(addresses))
    tmp.rename(ready)
    _profiler("stations")
    await _until_signal()
    stamp("stopping")
    stamp.file.flush()
    os._exit(0)  # the parent is done measuring: no graceful goodbye for 250 sessions


# ----- cars -----

async def cars(addresses: dict[str, list[Any]], period: float, ramp: float, stamps_path: str,
               timeout: float = 0.25) -> None:
    """One of our -2 DC EVs per SECC address; stamps each change of the EVSE's maximum power the car reads."""
    from v2gstack.iso15118 import EvccConfig, EVModel, run_evcc
    from v2gstack.iso15118.msglog import MessageRecord
    from v2gstack.iso15118.timers import EvccTimers

    stamp = Stamps(stamps_path)
    _watch(stamp)
    loops = dict.fromkeys(addresses, 0)

    def sink_for(key: str) -> Any:
        last: list[float | None] = [None]

        def sink(record: MessageRecord) -> None:
            if record.direction == "rx" and record.name == "ChargeParameterDiscoveryRes":
                stamp("cpd", key=key)  # the car's first schedule, or a renegotiation's
            if record.direction == "rx" and record.name == "CurrentDemandRes":
                loops[key] += 1
                w = _value(record.doc["V2G_Message"]["Body"]["CurrentDemandRes"].get("EVSEMaximumPowerLimit"))
                if w != last[0]:
                    last[0] = w
                    stamp("car", key=key, w=w)
        return sink

    async def one(n: int, key: str, address: list[Any]) -> None:
        await asyncio.sleep(n * ramp)  # plugged in one after the other
        config = EvccConfig(protocols=("iso2",), energy="dc", loops=0, loop_interval=period,
                            timers=EvccTimers(current_demand=timeout), evcc_id=f"0A{abs(hash(key)) % 16 ** 10:010X}")
        ev = EVModel(capacity_wh=60_000.0, soc=30.0, target_soc=80.0, dc_max_power=EVSE_MAX_W, dc_max_current=150.0,
                     departure_time=4 * 3600)
        result = await run_evcc(config, ev, secc=(address[0], int(address[1])), on_message=sink_for(key))
        stamp("ended", key=key, ok=result.ok, reason=result.reason, loops=loops[key])

    _calm_gc()
    _profiler("cars")
    tasks = [asyncio.create_task(one(n, k, a)) for n, (k, a) in enumerate(sorted(addresses.items()))]
    await _until_signal()
    stamp("stopping", loops=loops)
    stamp.file.flush()
    del tasks
    os._exit(0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("role", choices=("csms", "stations", "cars"))
    ap.add_argument("--stamps", required=True)
    ap.add_argument("--url")
    ap.add_argument("--ids")
    ap.add_argument("--evses", type=int, default=10)
    ap.add_argument("--ready")
    ap.add_argument("--addresses")
    ap.add_argument("--period", type=float, default=0.25)
    ap.add_argument("--ramp", type=float, default=0.02)
    ap.add_argument("--ev-timeout", type=float, default=0.25)
    ap.add_argument("--pace")
    a, rest = ap.parse_known_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if a.role == "csms":
        csms(rest, a.stamps)
    elif a.role == "stations":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(stations(a.url, a.ids.split(","), a.evses, Path(a.ready), a.stamps, a.pace))
    else:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(cars(json.loads(Path(a.addresses).read_text()), a.period, a.ramp, a.stamps, a.ev_timeout))
