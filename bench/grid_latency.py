"""Grid signal -> every EVSE's power stage at its new limit, on loopback: our CSMS (SQLite) with grid control and
dispatch, N of our stations (OCPP 2.0.1 over websockets) with M EVSEs each, every EVSE charging a simulated car at
11 kW under the plan; then an import limit for the site (30 % of the fleet's maximum) is applied as an operator
signal, and each EVSE whose limit changes is timed until its hardware gets the new limit.

    .venv/bin/python bench/grid_latency.py --stations 10 --evses 10 --rounds 3

The breakdown: solve (the LP), CSMS -> station (from the end of the solve to the station accepting its
SetChargingProfile) and station -> power stage (to `EvseHardware.set_power_limit` with the new limit). Everything
runs in one process and one event loop (the issue's 1,000-car run with real ISO 15118 sessions in several processes
is not this yet); the car's side (the new limit in the ISO 15118 charge loop) is measured by bench/bridge_latency.py.
The OpenADR hop is poll-bound and not in these figures (docs/grid.md).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from v2gstack.csms.grid_control import GRID_PROFILE_BASE, GridConfig, GridControl  # noqa: E402
from v2gstack.csms.service import Csms, CsmsConfig  # noqa: E402
from v2gstack.csms.store import Store  # noqa: E402
from v2gstack.grid.model import parse_signal, resolve_times  # noqa: E402
from v2gstack.ocpp import BackOff  # noqa: E402
from v2gstack.station import ChargingStation, StationConfig  # noqa: E402

PASSWORD = "station-password-0001"
TOKEN = {"idToken": "04A1B2C3", "type": "ISO14443"}
MAX_W = 11_000.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def until(predicate: Any, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the fleet did not settle")
        await asyncio.sleep(0.02)


async def main(args: argparse.Namespace) -> None:
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


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stations", type=int, default=10)
    ap.add_argument("--evses", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--fraction", type=float, default=0.3, help="the site import limit, of the fleet's maximum")
    ap.add_argument("--budget", type=float, default=2.0, help="the LP's time budget, s")
    asyncio.run(main(ap.parse_args()))
