"""Footprint of the station process as a low-cost charger runs it: RSS and CPU per charge-loop message.

The station runs alone in its own process, started the way an operator starts it (`python -m v2gstack station
--config station.toml`, the light install's command) with 4 EVSEs, each bridged to an ISO 15118 SECC on loopback.
This process runs our CSMS (SQLite) and 4 of our EVs (ISO 15118-2 AC x2, DIN 70121 DC, ISO 15118-2 DC) charging at
once, `--loops` charge-loop messages each. Measured from /proc: the station's RSS idle after boot, its peak while
the 4 EVs charge (sampled every 50 ms, and the kernel's high-water mark VmHWM), and its CPU time (user + system)
over the charging window divided by the charge-loop messages (CurrentDemand / ChargingStatus) the EVs exchanged; that
CPU also pays for everything else the station did meanwhile (session setup, OCPP TransactionEvents and meter values,
timelines), so it is an upper bound. Baseline in the same run: a bare interpreter that imports what the station
imports and does nothing (the floor a Python station cannot go below). The package's bytecode is compiled first,
as `pip install` does (compiling a large module from source at import costs transient memory that would otherwise
count, depending on whether an earlier run happened to leave __pycache__ behind).

    .venv/bin/python bench/station_footprint.py --loops 300

The goal of issue 10: station RSS <= 80 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from v2gstack.csms.service import Csms, CsmsConfig  # noqa: E402
from v2gstack.csms.store import Store  # noqa: E402
from v2gstack.iso15118 import EvccConfig, EVModel, run_evcc  # noqa: E402

STATION_ID = "FOOTPRINT01"
PASSWORD = "footprint-station-password"
TOKEN = "04A1B2C3"
# EVSE n (1-based) -> (protocol, energy) of the EV that plugs in there
EVS = [("iso2", "ac"), ("iso2", "ac"), ("din", "dc"), ("iso2", "dc")]
STATION_IMPORTS = "import v2gstack.station.cli, v2gstack.station.bridge, v2gstack.iso15118, v2gstack.ocpp"


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds user + system, RSS bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return cpu, int(fields[21]) * os.sysconf("SC_PAGE_SIZE")


def high_water_mark(pid: int) -> int:
    """The process's peak RSS (VmHWM), bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def free_udp_base(count: int) -> int:
    """A port P such that P .. P+count-1 are free for UDP on ::1."""
    for _ in range(200):
        base = random.randint(20000, 60000)
        socks = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("::1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free UDP port range on ::1")


def station_toml(csms_port: int, sdp_base: int, trace_dir: Path) -> str:
    """The station's settings file: 2 AC and 2 DC EVSEs, one SECC each, EIM with a fixed idToken."""
    ac = ('[[evse]]\nmax_power_w = 22000.0\nenergy_modes = ["AC_three_phase_core"]\nnominal_voltage = 230.0\n'
          'ac_max_current = 32.0\nac_min_current = 6.0\n')
    dc = ('[[evse]]\nmax_power_w = 50000.0\nenergy_modes = ["DC_extended", "DC_core"]\ndc_max_power = 50000.0\n'
          'dc_max_current = 125.0\ndc_min_current = 0.0\ndc_max_voltage = 920.0\ndc_min_voltage = 150.0\n')
    return (f'trace_dir = "{trace_dir}"\n\n[station]\nid = "{STATION_ID}"\n\n'
            f'[csms]\nurl = "ws://127.0.0.1:{csms_port}/ocpp"\npassword = "{PASSWORD}"\nping_interval = 0.0\n\n'
            + "\n".join([ac, ac, dc, dc])
            + f'\n[metering]\ntx_updated_interval = 5\n\n[iso15118]\nenabled = true\nsecc_port = 0\nhost = "::1"\n'
            f'sdp_port = {sdp_base}\nprotocols = ["iso2", "din"]\neim_token = "{TOKEN}"\n')


async def sample_peak(pid: int, stop: asyncio.Event, peak: list[int]) -> None:
    """Keep the largest RSS seen every 50 ms until `stop`."""
    while not stop.is_set():
        peak[0] = max(peak[0], proc_stats(pid)[1])
        await asyncio.sleep(0.05)


def bare_interpreter_rss() -> int:
    """RSS of an interpreter that imported the station's modules and sits idle (the baseline)."""
    proc = subprocess.Popen([sys.executable, "-c", f"{STATION_IMPORTS}; import time; print('ready', flush=True); "
                             "time.sleep(30)"], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        return proc_stats(proc.pid)[1]
    finally:
        proc.kill()
        proc.wait()


async def main(args: argparse.Namespace) -> None:
    compileall.compile_dir(ROOT / "src" / "v2gstack", quiet=1)  # the bytecode an install has (see the docstring)
    folder = Path(tempfile.mkdtemp(prefix="v2gstack-footprint-"))
    store = Store(f"sqlite:///{folder / 'csms.db'}")
    store.add_station(STATION_ID, PASSWORD)
    store.put_id_token(TOKEN)
    csms = Csms(store, CsmsConfig(ping_interval=None))
    booted = asyncio.Event()
    csms.listeners.append(lambda station, action, payload: booted.set() if action == "BootNotification" else None)
    await csms.start()
    sdp_base = free_udp_base(len(EVS))
    config = folder / "station.toml"
    config.write_text(station_toml(csms.port, sdp_base, folder / "traces"))
    station = subprocess.Popen([sys.executable, "-m", "v2gstack", "station", "--config", str(config)],
                               env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.DEVNULL,
                               stderr=open(folder / "station.log", "w"))  # noqa: SIM115 (the child keeps it)
    try:
        await asyncio.wait_for(booted.wait(), 30)
        await asyncio.sleep(2.0)  # the SECCs listen, StatusNotifications are out, the process settles
        _, idle_rss = proc_stats(station.pid)
        warm = await run_evcc(EvccConfig(protocols=("iso2",), energy="dc", loops=3), EVModel(),
                              sdp_port=sdp_base + 3)
        assert warm.ok, warm.reason  # one untimed session first: schemas compiled, codecs loaded
        await asyncio.sleep(1.0)
        stop, peak = asyncio.Event(), [0]
        sampler = asyncio.create_task(sample_peak(station.pid, stop, peak))
        cpu0, _ = proc_stats(station.pid)
        t0 = time.perf_counter()
        results = await asyncio.gather(*[
            run_evcc(EvccConfig(protocols=(protocol,), energy=energy, loops=args.loops,  # type: ignore[arg-type]
                                loop_interval=args.interval, evcc_id=f"0A0B0C0D0E{n:02X}"),
                     EVModel(), sdp_port=sdp_base + n - 1)
            for n, (protocol, energy) in enumerate(EVS, start=1)])
        wall = time.perf_counter() - t0
        cpu1, _ = proc_stats(station.pid)
        stop.set()
        await sampler
        hwm = high_water_mark(station.pid)
    finally:
        station.terminate()
        station.wait(10)
        await csms.close()
        store.close()
    for n, r in enumerate(results, start=1):
        assert r.ok, f"EV {n}: {r.reason}"
    loops = sum(r.charge_loops for r in results)
    messages = sum(r.messages for r in results)
    bare = bare_interpreter_rss()
    mib = 2**20
    print(f"station process: 4 EVSEs, 4 EVs charging at once ({', '.join(f'{p} {e}' for p, e in EVS)}), "
          f"{args.loops} charge-loop messages each every {args.interval * 1000:.0f} ms")
    print(f"RSS: idle after boot {idle_rss / mib:.1f} MiB; charging peak {peak[0] / mib:.1f} MiB "
          f"(VmHWM {hwm / mib:.1f} MiB = {hwm / 1e6:.1f} MB); goal <= 80 MB: {'met' if hwm <= 80e6 else 'MISSED'}")
    print(f"baseline: an idle interpreter with the station's imports {bare / mib:.1f} MiB")
    print(f"CPU: {cpu1 - cpu0:.2f} s over {wall:.1f} s ({(cpu1 - cpu0) / wall * 100:.0f} % of one core) for "
          f"{loops} charge-loop messages ({messages} ISO messages in all): "
          f"{(cpu1 - cpu0) / loops * 1e6:.0f} us per charge-loop message "
          f"({(cpu1 - cpu0) / messages * 1e6:.0f} us per ISO message, everything included)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=300, help="charge-loop messages per EV")
    parser.add_argument("--interval", type=float, default=0.02, help="pause between charge-loop messages, s")
    asyncio.run(main(parser.parse_args()))
