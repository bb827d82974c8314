"""CSMS setpoint -> the car's charge loop carries the new target, with N bridged ISO 15118-20 cars.

One process runs our CSMS (SQLite) and our stations (OCPP 2.1 over websockets on loopback): a baseline station with
one EVSE and `--stations` stations sharing the N cars' EVSEs, each EVSE bridged to an SECC offering ISO 15118-20
with discharge allowed; another process runs N of our -20 DC_BPT EVs in dynamic mode, one per SECC, pausing
`--period` s between charge loops. Every round the CSMS sends each car's EVSE a new discharge setpoint (the first
round: a Dynamic CentralSetpoint TxProfile through SetChargingProfile; later rounds: UpdateDynamicSchedule; both
through the CSMS's setpoint API function), all at once; a latency is the time from the CSMS sending the car's
setpoint to that car receiving the first DC_ChargeLoopRes whose power is the new target (both processes stamp
CLOCK_MONOTONIC, which they share). The baseline, in the same run, is the same measurement with one car; the
charge-loop period itself is the floor (the car only hears the station when it asks). OCPP-J allows one outstanding
CALL per connection, so the setpoints for the EVSEs of one station leave one after the other: `--stations` shows
what that costs; `--station-wide` gives each station's cars the same setpoint through one station-wide Dynamic
TxDefaultProfile (EVSE 0), one CALL per station and round.

    .venv/bin/python bench/v2x_latency.py --cars 100 --stations 10 --period 0.25 --rounds 10
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

Car = tuple[ChargingStation, int]  # (its station, its EVSE)


async def measure(csms: Csms, cars: list[Car], period: float, rounds: int, folder: Path,
                  tag: str, station_wide: bool = False) -> tuple[list[float], list[float]]:
    """Start the cars, run the rounds of setpoints, stop them; (SetChargingProfile latencies, UpdateDynamicSchedule
    latencies) in ms."""
    addresses = [bridges[(st.config.station_id, e)].server.addresses()["tcp"] for st, e in cars]
    out = folder / f"cars-{tag}.json"
    loops = int((len(cars) * 0.1 + 120 + rounds * 4 * period) / period)
    log = (folder / f"cars-{tag}.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--cars-only", json.dumps(addresses), "--period", str(period), "--loops",
        str(loops), "--out", str(out), stdout=log, stderr=log)
    deadline = time.monotonic() + len(cars) * 0.1 + 60  # all plugged in, with time to spare

    def charging() -> list[Car]:
        return [(st, e) for st, e in cars if csms.active_transaction(st.config.station_id, e) is not None
                and st.hardware(e).meter().power_w > 0]

    while len(charging()) < len(cars) and time.monotonic() < deadline:
        if proc.returncode is not None:
            raise RuntimeError(f"{tag}: the cars' process ended, {len(charging())} cars charging; see {folder}")
        await asyncio.sleep(0.1)
    index = {(st.config.station_id, e): i for i, (st, e) in enumerate(cars)}
    active = charging()  # a session that failed to start (on a loaded machine) is left out, and said
    print(f"  {tag}: {len(active)} cars charging")
    sent: list[tuple[str, int, float, float, str]] = []  # (station, evse, t0, target, action)
    marks: list[tuple[float, str, int, float | None]] = []  # the stations' target changes
    unsubscribe = []
    for st in {st for st, _ in active}:
        sid = st.config.station_id
        unsubscribe.append(st.on_target(lambda evse, target, sid=sid: marks.append(
            (time.monotonic(), sid, evse, target.setpoint_w))))
    cpu0, wall0 = time.process_time(), time.monotonic()
    failed: list[str] = []

    async def send(sid: str, evse: int, target: float) -> None:
        t0 = time.monotonic()
        try:
            answer = await csms.v2x.setpoint(sid, evse, {"setpoint": target})
        except Exception as e:  # a car whose session ended: counted, not timed
            failed.append(f"{sid} EVSE {evse}: {e}")
            return
        if answer["response"]["status"] != "Accepted":
            failed.append(f"{sid} EVSE {evse}: {answer['response']}")
            return
        # EVSE 0 (station-wide): one setpoint for every car of the station, each timed from the same instant
        for e in ([e for s, e in index if s == sid and (s, e) in charging_now] if evse == 0 else [evse]):
            sent.append((sid, e, t0, target, answer["action"]))

    charging_now = {(st.config.station_id, e) for st, e in active}
    try:
        for r in range(rounds):
            target = -5000.0 - 1000.0 * (r % 3)  # a new value each round
            if station_wide:
                await asyncio.gather(*(send(sid, 0, target) for sid in sorted({s for s, _ in charging_now})))
            else:
                await asyncio.gather(*(send(st.config.station_id, e, target) for st, e in active))
            await asyncio.sleep(4 * period)
    except BaseException:
        proc.terminate()
        raise
    cpu = (time.process_time() - cpu0) / (time.monotonic() - wall0)
    for u in unsubscribe:
        u()
    for st, e in active:
        tx = st.evses[e].tx
        if tx is not None:
            await csms.request_stop(st.config.station_id, tx.id)
    await proc.wait()
    data = json.loads(out.read_text())
    scp: list[float] = []
    uds: list[float] = []
    to_station: list[float] = []
    for sid, evse, t0, target, action in sent:
        hits = [t for t, p in data["seen"][index[(sid, evse)]] if t > t0 and abs(p - target) <= abs(target) * 0.01]
        if not hits:  # its session ended before the next loop (on a loaded machine): counted, not timed
            failed.append(f"{sid} EVSE {evse}: never carried {target} W")
            continue
        (scp if action == "SetChargingProfile" else uds).append((min(hits) - t0) * 1000)
        applied = [t for t, s, e, sp in marks if s == sid and e == evse and t > t0 and sp == target]
        if applied:
            to_station.append((min(applied) - t0) * 1000)
    print(f"  {tag}: {data['ok']} sessions ended OK; {len(sent)} setpoints accepted, {len(failed)} "
          f"not ({failed[:1]}); the station process used {cpu:.0%} of a CPU while the setpoints ran")
    print("  " + report(f"{tag}, CSMS sends -> the station's target changed", to_station))
    return scp, uds


bridges: dict[tuple[str, int], Any] = {}


def report(name: str, values: list[float]) -> str:
    return (f"{name}: n={len(values)} p50 {statistics.median(values):.1f} ms, p99 {pct(values, 0.99):.1f} ms, "
            f"max {max(values):.1f} ms")


async def station(csms: Csms, sid: str, evses: int, folder: Path) -> ChargingStation:
    """One of our stations on OCPP 2.1 with `evses` EVSEs bridged to -20 SECCs (discharge allowed)."""
    csms.store.add_station(sid, PASSWORD)
    st = ChargingStation(StationConfig(sid, f"ws://127.0.0.1:{csms.port}/ocpp", password=PASSWORD, evses=evses,
                                       max_power_w=50_000.0, backoff=BackOff(0.05, 0.05, 1), ping_interval=None,
                                       state_dir=folder / sid))
    st.model.put("AuthCtrlr", "Enabled", "false")
    st.model.put("SampledDataCtrlr", "TxUpdatedInterval", "3600")
    # the device model declares 32 ChargingProfiles entries (SmartChargingCtrlr.Entries' maxLimit); a station of
    # more EVSEs holds one setpoint profile per EVSE
    st.smart_charging.profiles.max_profiles = max(32, 2 * evses)
    await st.start()
    await st.wait_accepted()
    assert st.link.version == "2.1"
    for b in await start_bridged_seccs(st, port=0, sdp_port=0, protocols=("iso20",),
                                       config=BridgeConfig(allow_discharge_w=10_000.0)):
        bridges[(sid, b.evse_id)] = b
    return st


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="v2gstack-v2x-bench-"))
    store = Store(f"sqlite:///{folder / 'csms.db'}")
    csms = Csms(store, CsmsConfig(ping_interval=None))
    await csms.start()
    per = -(-args.cars // args.stations)
    base = await station(csms, "CS-BASE", 1, folder)
    fleet = [await station(csms, f"CS-{i:03d}", per, folder) for i in range(args.stations)]
    cars = [(st, e) for st in fleet for e in range(1, per + 1)][:args.cars]
    print(f"OCPP 2.1, one process: a baseline station with 1 EVSE, {args.stations} station(s) with {per} bridged "
          f"EVSEs each; charge-loop period {args.period * 1000:.0f} ms; {args.rounds} rounds")
    base_scp, base_uds = await measure(csms, [(base, 1)], args.period, args.rounds, folder, "baseline (1 car)")
    many_scp, many_uds = await measure(csms, cars, args.period, args.rounds, folder, f"{args.cars} cars",
                                       args.station_wide)
    for b in bridges.values():
        await b.server.close()
    for st in (base, *fleet):
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
    ap.add_argument("--stations", type=int, default=1, help="stations sharing the cars (each its own OCPP "
                    "connection, all in this process)")
    ap.add_argument("--period", type=float, default=0.25, help="the cars' charge-loop period (s, below 0.5)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--station-wide", action="store_true", help="the fleet's setpoints as one station-wide "
                    "TxDefaultProfile per station (EVSE 0: one CALL per station and round), not one per EVSE")
    ap.add_argument("--cars-only", help=argparse.SUPPRESS)
    ap.add_argument("--loops", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    logging.basicConfig(level=logging.ERROR)
    a = ap.parse_args()
    if a.cars_only:
        asyncio.run(cars([tuple(x) for x in json.loads(a.cars_only)], a.period, a.loops, Path(a.out)))
    else:
        asyncio.run(main(a))
