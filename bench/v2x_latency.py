"""CSMS setpoint -> the car's charge loop carries the new target, with N bridged ISO 15118-20 cars.

One process runs our CSMS (SQLite) and our station (OCPP 2.1 over websockets on loopback) with N EVSEs, each bridged
to an SECC offering ISO 15118-20 with discharge allowed; another process runs N of our -20 DC_BPT EVs in dynamic
mode, one per SECC, pacing their charge loops at `--period` s. Every round the CSMS sends each car's EVSE a new
discharge setpoint (the first round: a Dynamic CentralSetpoint TxProfile through SetChargingProfile; later rounds:
UpdateDynamicSchedule, both through the CSMS's setpoint API function) all at once; a latency is the time from the
CSMS sending the car's setpoint to that car receiving the first DC_ChargeLoopRes whose power is the new target (both
processes stamp CLOCK_MONOTONIC, which they share). The baseline, in the same run, is the same measurement with one
car; the charge-loop period itself is the floor (the car only hears the station when it asks).

    .venv/bin/python bench/v2x_latency.py --cars 100 --period 0.25 --rounds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from v2gstack.csms.service import Csms, CsmsConfig  # noqa: E402
from v2gstack.csms.store import Store  # noqa: E402
from v2gstack.iso15118 import EvccConfig, EVModel, run_evcc  # noqa: E402
from v2gstack.iso15118.msglog import MessageRecord  # noqa: E402
from v2gstack.ocpp import BackOff  # noqa: E402
from v2gstack.station import ChargingStation, StationConfig  # noqa: E402
from v2gstack.station.bridge import BridgeConfig, start_bridged_seccs  # noqa: E402

PASSWORD = "bench-station-password"
STATION = "CS-V2X"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def _number(v: dict[str, int]) -> float:
    return v["Value"] * 10.0 ** v["Exponent"]


# ----- the cars' process -----

async def cars(addresses: list[tuple[str, int]], period: float, loops: int, out: Path) -> None:
    """N dynamic DC_BPT EVs, one per address; each DC_ChargeLoopRes received is stamped (monotonic s, power W)."""
    seen: list[list[tuple[float, float]]] = [[] for _ in addresses]

    def sink_for(i: int) -> Any:
        def sink(record: MessageRecord) -> None:
            if record.direction == "rx" and "DC_ChargeLoopRes" in record.doc:
                res = record.doc["DC_ChargeLoopRes"]
                seen[i].append((time.monotonic(), _number(res["EVSEPresentVoltage"]) *
                                _number(res["EVSEPresentCurrent"])))
        return sink

    async def one(i: int, address: tuple[str, int]) -> bool:
        await asyncio.sleep(i * 0.1)  # plug in one after the other
        config = EvccConfig(protocols=("iso20",), energy="dc_bpt", control="dynamic", loops=loops,
                            loop_interval=period, ongoing_interval=0.05, evcc_id=f"0A0B0C{i:06X}")
        result = await run_evcc(config, EVModel(soc=50.0), secc=address, on_message=sink_for(i))
        return result.ok

    results = await asyncio.gather(*(one(i, a) for i, a in enumerate(addresses)))
    out.write_text(json.dumps({"ok": sum(results), "seen": seen}))


# ----- the station's process -----

async def measure(csms: Csms, st: ChargingStation, evses: list[int], period: float, rounds: int,
                  folder: Path, tag: str) -> tuple[list[float], list[float]]:
    """Start the cars for `evses`, run the rounds of setpoints, stop them; (SetChargingProfile latencies,
    UpdateDynamicSchedule latencies) in ms."""
    bridges = {b.evse_id: b for b in st_bridges[id(st)]}
    addresses = [bridges[e].server.addresses()["tcp"] for e in evses]  # type: ignore[union-attr]
    out = folder / f"cars-{tag}.json"
    loops = int((len(evses) * 0.1 + 120 + rounds * 4 * period) / period)
    log = (folder / f"cars-{tag}.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--cars-only", json.dumps(addresses), "--period", str(period), "--loops",
        str(loops), "--out", str(out), stdout=log, stderr=log)
    deadline = time.monotonic() + 300

    def charging() -> int:
        return sum(csms.active_transaction(STATION, e) is not None and st.hardware(e).meter().power_w > 0
                   for e in evses)

    while charging() < len(evses):
        if time.monotonic() > deadline or proc.returncode is not None:
            proc.terminate()
            raise RuntimeError(f"{tag}: {charging()}/{len(evses)} cars charging; see {folder}")
        await asyncio.sleep(0.1)
    sent: list[tuple[int, int, float, float, str]] = []  # (round, evse, t0, target, action)
    marks: list[tuple[float, int, float | None]] = []  # the station's target changes: (monotonic s, evse, setpoint)
    unsubscribe = st.on_target(lambda evse, target: marks.append((time.monotonic(), evse, target.setpoint_w)))
    cpu0, wall0 = time.process_time(), time.monotonic()

    async def send(r: int, evse: int, target: float) -> None:
        t0 = time.monotonic()
        answer = await csms.v2x.setpoint(STATION, evse, {"setpoint": target})
        assert answer["response"]["status"] == "Accepted", answer
        sent.append((r, evse, t0, target, answer["action"]))

    try:
        for r in range(rounds):
            target = -5000.0 - 1000.0 * (r % 3)  # a new value each round
            await asyncio.gather(*(send(r, e, target) for e in evses))
            await asyncio.sleep(4 * period)
    except BaseException:
        proc.terminate()
        raise
    cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    unsubscribe()
    for e in evses:
        tx = st.evses[e].tx
        if tx is not None:
            await csms.request_stop(STATION, tx.id)
    await proc.wait()
    data = json.loads(out.read_text())
    index = {e: i for i, e in enumerate(evses)}
    scp: list[float] = []
    uds: list[float] = []
    to_station: list[float] = []
    for _r, evse, t0, target, action in sent:
        hits = [t for t, p in data["seen"][index[evse]] if t > t0 and abs(p - target) <= abs(target) * 0.01]
        if not hits:
            raise RuntimeError(f"{tag}: EVSE {evse} never carried {target} W")
        (scp if action == "SetChargingProfile" else uds).append((min(hits) - t0) * 1000)
        applied = [t for t, e, sp in marks if e == evse and t > t0 and sp == target]
        if applied:
            to_station.append((min(applied) - t0) * 1000)
    print(f"  {tag}: {data['ok']}/{len(evses)} sessions ended OK; the station process used {cpu:.0%} of a CPU "
          f"while the setpoints ran")
    print("  " + report(f"{tag}, CSMS sends -> the station's target changed", to_station))
    return scp, uds


st_bridges: dict[int, list[Any]] = {}


def report(name: str, values: list[float]) -> str:
    return (f"{name}: n={len(values)} p50 {statistics.median(values):.1f} ms, p99 {pct(values, 0.99):.1f} ms, "
            f"max {max(values):.1f} ms")


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="v2gstack-v2x-bench-"))
    store = Store(f"sqlite:///{folder / 'csms.db'}")
    store.add_station(STATION, PASSWORD)
    csms = Csms(store, CsmsConfig(ping_interval=None))
    await csms.start()
    n = args.cars + 1
    st = ChargingStation(StationConfig(STATION, f"ws://127.0.0.1:{csms.port}/ocpp", password=PASSWORD, evses=n,
                                       max_power_w=50_000.0, backoff=BackOff(0.05, 0.05, 1), ping_interval=None,
                                       state_dir=folder / "station"))
    st.model.put("AuthCtrlr", "Enabled", "false")
    st.model.put("SampledDataCtrlr", "TxUpdatedInterval", "3600")
    # the device model declares 32 ChargingProfiles entries (SmartChargingCtrlr.Entries' maxLimit); a station of this
    # size holds one setpoint profile per EVSE
    st.smart_charging.profiles.max_profiles = 2 * n
    await st.start()
    await st.wait_accepted()
    assert st.link.version == "2.1"
    st_bridges[id(st)] = await start_bridged_seccs(st, port=0, sdp_port=0, protocols=("iso20",),
                                                   config=BridgeConfig(allow_discharge_w=10_000.0))
    print(f"station {STATION}: OCPP {st.link.version}, {n} bridged EVSEs; charge-loop period {args.period * 1000:.0f}"
          f" ms; {args.rounds} rounds")
    base_scp, base_uds = await measure(csms, st, [1], args.period, args.rounds, folder, "baseline (1 car)")
    many_scp, many_uds = await measure(csms, st, list(range(2, n + 1)), args.period, args.rounds, folder,
                                       f"{args.cars} cars")
    for b in st_bridges[id(st)]:
        await b.server.close()
    await st.stop()
    await csms.close()
    store.close()
    print(f"charge-loop period (the floor: the car hears the station when it asks): {args.period * 1000:.0f} ms; "
          f"target p99 <= {args.period * 1000 + 50:.0f} ms")
    print(report("baseline 1 car, UpdateDynamicSchedule", base_uds))
    print(report(f"{args.cars} cars, UpdateDynamicSchedule", many_uds))
    print(report("baseline 1 car, SetChargingProfile (first setpoint)", base_scp))
    print(report(f"{args.cars} cars, SetChargingProfile (first setpoint)", many_scp))
    both = many_scp + many_uds
    print(report(f"{args.cars} cars, all setpoints", both))
    print(f"p99 within one period + 50 ms: {pct(both, 0.99) <= args.period * 1000 + 50}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cars", type=int, default=100)
    ap.add_argument("--period", type=float, default=0.25, help="the cars' charge-loop period (s, below 0.5)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--cars-only", help=argparse.SUPPRESS)
    ap.add_argument("--loops", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    logging.basicConfig(level=logging.ERROR)
    a = ap.parse_args()
    if a.cars_only:
        asyncio.run(cars([tuple(x) for x in json.loads(a.cars_only)], a.period, a.loops, Path(a.out)))
    else:
        asyncio.run(main(a))
