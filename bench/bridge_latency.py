"""Cross-protocol latency of the station bridge, on loopback, everything real (sockets, EXI, JSON schemas, SQLite).

1. Plug-in -> the CSMS has TransactionEvent Started: from the EV's first SDP request to the moment the CSMS's
   TransactionEvent handler has stored the Started event (committed) for that session.
2. Profile -> EV power: from the CSMS sending SetChargingProfile (a TxProfile 20 kW lower than what flows) during
   -2 DC charging to the first CurrentDemandRes the EV receives whose present power respects the new limit.

    .venv/bin/python bench/bridge_latency.py --sessions 30

No other open stack joins ISO 15118 and OCPP in one process, so there is no peer to run beside it; the figures are
absolute and move with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from v2gstack.csms.service import Csms, CsmsConfig  # noqa: E402
from v2gstack.csms.store import Store  # noqa: E402
from v2gstack.iso15118 import EvccConfig, EVModel, run_evcc  # noqa: E402
from v2gstack.iso15118.msglog import MessageRecord  # noqa: E402
from v2gstack.ocpp import BackOff  # noqa: E402
from v2gstack.station import ChargingStation, StationConfig  # noqa: E402
from v2gstack.station.bridge import start_bridged_seccs  # noqa: E402

PASSWORD = "bench-station-password"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="v2gstack-bridge-bench-"))
    store = Store(f"sqlite:///{folder / 'csms.db'}")
    store.add_station("CS1", PASSWORD)
    csms = Csms(store, CsmsConfig(ping_interval=None))
    started_at: dict[str, float] = {}

    def listener(station: str, action: str, payload: dict) -> None:
        """Called by the CSMS after the handler stored the event."""
        if action == "TransactionEvent" and payload["eventType"] == "Started":
            started_at.setdefault(payload["transactionInfo"]["transactionId"], time.perf_counter())

    csms.listeners.append(listener)
    await csms.start()
    st = ChargingStation(StationConfig("CS1", f"ws://127.0.0.1:{csms.port}/ocpp", password=PASSWORD,
                                       max_power_w=50_000.0, backoff=BackOff(0.05, 0.05, 1), ping_interval=None))
    st.model.put("AuthCtrlr", "Enabled", "false")
    st.model.put("SampledDataCtrlr", "TxUpdatedInterval", "3600")
    await st.start()
    await st.wait_accepted()
    [bridge] = await start_bridged_seccs(st, port=0, sdp_port=0)
    assert bridge.server is not None
    sdp = bridge.server.addresses()["sdp"][1]
    plug: list[float] = []
    warm = await run_evcc(EvccConfig(protocols=("iso2",), energy="dc", loops=2), EVModel(), sdp_port=sdp)
    assert warm.ok, warm.reason  # one untimed session first: schemas compile, caches fill
    await st.wait_queue_empty()
    for _ in range(args.sessions):
        before = set(started_at)
        t0 = time.perf_counter()
        result = await run_evcc(EvccConfig(protocols=("iso2",), energy="dc", loops=2), EVModel(), sdp_port=sdp)
        assert result.ok, result.reason
        new = [started_at[k] for k in started_at if k not in before]
        for _ in range(200):
            if new:
                break
            await asyncio.sleep(0.005)
            new = [started_at[k] for k in started_at if k not in before]
        plug.append((new[0] - t0) * 1000)
        await st.wait_queue_empty()
    profile_ms: list[float] = []
    for n in range(args.profiles):
        seen: list[tuple[float, float]] = []

        def sink(record: MessageRecord, seen: list[tuple[float, float]] = seen) -> None:
            if record.direction == "rx" and record.name == "CurrentDemandRes":
                res = record.doc["V2G_Message"]["Body"]["CurrentDemandRes"]
                v, i = (res["EVSEPresentVoltage"], res["EVSEPresentCurrent"])
                power = v["Value"] * 10 ** v["Multiplier"] * i["Value"] * 10 ** i["Multiplier"]
                seen.append((time.perf_counter(), power))

        ev = asyncio.create_task(run_evcc(EvccConfig(protocols=("iso2",), energy="dc", loops=0, loop_interval=0.01),
                                          EVModel(soc=10), sdp_port=sdp, on_message=sink))
        while not seen or seen[-1][1] < 40_000:
            await asyncio.sleep(0.01)
        tx_id = st.evses[1].tx.id
        limit = 20_000.0 + n  # a new value each time
        profile = {"id": 1000 + n, "stackLevel": 0, "chargingProfilePurpose": "TxProfile", "transactionId": tx_id,
                   "chargingProfileKind": "Relative", "chargingSchedule": [{
                       "id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0,
                                                                                     "limit": limit}]}]}
        t0 = time.perf_counter()
        await csms.call("CS1", "SetChargingProfile", {"evseId": 1, "chargingProfile": profile})
        while not [t for t, p in seen if t > t0 and p <= limit * 1.001]:
            await asyncio.sleep(0.001)
        t1 = min(t for t, p in seen if t > t0 and p <= limit * 1.001)
        profile_ms.append((t1 - t0) * 1000)
        await csms.request_stop("CS1", tx_id)
        await ev
        await st.wait_queue_empty()
    await bridge.server.close()
    await st.stop()
    await csms.close()
    store.close()
    print(f"plug-in (SDP) -> CSMS has TransactionEvent Started, {len(plug)} sessions: "
          f"p50 {statistics.median(plug):.1f} ms, p99 {pct(plug, 0.99):.1f} ms, max {max(plug):.1f} ms")
    print(f"CSMS SetChargingProfile -> EV receives the lower power, {len(profile_ms)} changes: "
          f"p50 {statistics.median(profile_ms):.1f} ms, p99 {pct(profile_ms, 0.99):.1f} ms, "
          f"max {max(profile_ms):.1f} ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--profiles", type=int, default=20)
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(ap.parse_args()))
