"""Hosts of the fleet's stations and cars: a StationHost runs some of our stations (OCPP to a CSMS), each EVSE
bridged to its SECC on loopback, and the car visits at those EVSEs (our EVCCs), on one event loop; a HostProcess
runs one in a worker process and speaks to it over a pipe, so that a fleet spreads its ISO 15118 sessions over
several processes (one loaded event loop made -20 sessions miss their 0.5 s sequence timeout).

The parent sets one clock for all (time.monotonic() is system-wide on Linux: the same t0 in every process), sends
`go`, reads each host's car states every sample period and at the end collects each car's record (CarRun).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from ..iso15118 import EvccConfig, EVModel, run_evcc
from ..iso15118.timers import EvccTimers
from ..ocpp import BackOff
from ..station import ChargingStation, StationConfig
from ..station.bridge import BridgeConfig, EvseBridge, start_bridged_seccs
from .population import CarSpec

log = logging.getLogger(__name__)
PASSWORD = "fleet-station-password-01"


@dataclass
class SimClock:
    """Simulated time: `scale` simulated seconds per wall second from the monotonic instant t0 (wall0 on the wall
    clock)."""

    scale: float
    t0: float = 0.0
    wall0: datetime = field(default_factory=lambda: datetime.now(UTC))

    def sim_h(self) -> float:
        """Simulated hours since the start."""
        return (time.monotonic() - self.t0) * self.scale / 3600.0

    async def wait_sim(self, sim_h: float) -> None:
        """Sleep until the simulated clock reads `sim_h` hours."""
        await asyncio.sleep(max(0.0, (sim_h - self.sim_h()) * 3600.0 / self.scale))

    def wall_of(self, sim_h: float) -> datetime:
        """The wall-clock time of a simulated instant."""
        return self.wall0 + timedelta(seconds=sim_h * 3600.0 / self.scale)

    def sim_of(self, t: datetime) -> float:
        """The simulated hours of a wall-clock time."""
        return (t - self.wall0).total_seconds() * self.scale / 3600.0


@dataclass(frozen=True)
class HostConfig:
    """What a host needs to run its stations and cars (the fleet's settings that concern them)."""

    csms_url: str
    evses: int
    time_scale: float
    evse_max_power_w: float = 50_000.0
    evse_max_discharge_w: float = 30_000.0
    control20: str = "dynamic"
    loop_interval_s: float = 0.25
    sample_s: float = 0.5
    log_level: int = logging.WARNING
    timeout_scale: float = 1.0  # the SECCs' sequence and the EVCCs' timeouts x this (1: the standards' values)


@dataclass
class FleetEV(EVModel):
    """An EV of the fleet: it ends its session at its departure (as when its target is met), and keeps the power
    it takes now (for the samples)."""

    leave_at: float = math.inf  # time.monotonic() of the departure
    power_w: float = 0.0
    stays: bool = False  # a V2G car: plugged in until its departure, whatever its SoC

    @property
    def full(self) -> bool:
        """Done: time to leave, or (a car that does not stay) the target SoC is reached."""
        return time.monotonic() >= self.leave_at or (not self.stays and self.soc >= self.target_soc)

    def charge(self, power_w: float, dt_s: float) -> float:
        """EVModel.charge, remembering the power."""
        self.power_w = power_w
        return super().charge(power_w, dt_s)

    def discharge(self, power_w: float, dt_s: float) -> float:
        """EVModel.discharge, remembering the power (negative)."""
        self.power_w = -power_w
        return super().discharge(power_w, dt_s)

    @property
    def ac(self) -> bool:
        """An AC car (no DC power of its own)."""
        return self.dc_max_power <= 0

    def max_discharge_now(self, evse_max_w: float, bpt: bool) -> float:
        """What the car can feed back now (W, >= 0): a -20 BPT car above its minimum SoC."""
        if not bpt or not self.can_discharge:
            return 0.0
        return min(self.ac_max_discharge_power if self.ac else self.dc_max_discharge_power, evse_max_w)

    def max_power_now(self, evse_max_w: float) -> float:
        """What the car can take now (W): DC within its taper above the bulk SoC, AC at its current."""
        if self.full or self.soc >= self.max_soc:
            return 0.0
        if self.ac:
            return self.ac_power(None, 230.0)
        voltage, current = self.dc_request(None, evse_max_w)
        return voltage * current


@dataclass
class CarRun:
    """One car's visit as it went."""

    spec: CarSpec
    ev: FleetEV | None = None
    plugged_h: float | None = None
    left_h: float | None = None
    reason: str = "not arrived"
    protocol: str | None = None
    ok: bool = False
    samples: list[tuple[float, float, float]] = field(default_factory=list)  # (t_h, power W, SoC %)

    def delivered_wh(self, scale: float) -> float:
        """Energy into the battery, simulated Wh."""
        return 0.0 if self.ev is None else (self.ev.energy_wh - self.ev.discharged_wh) * scale


@dataclass(frozen=True)
class CarState:
    """A connected car now, as a host reports it: its index in the fleet, power (W, export negative), SoC (%), and
    what it could take and give now (W, both >= 0)."""

    index: int
    power_w: float
    soc: float
    max_w: float
    max_discharge_w: float


class StationHost:
    """Some of the fleet's stations, their bridged SECCs and the car visits at their EVSEs, on this event loop."""

    def __init__(self, config: HostConfig, station_ids: list[str], cars: list[tuple[int, CarSpec]]) -> None:
        self.config = config
        self.station_ids = station_ids
        self.cars = {n: CarRun(spec) for n, spec in cars}
        self.clock = SimClock(config.time_scale)
        self.stations: list[ChargingStation] = []
        self.bridges: dict[str, list[EvseBridge]] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._ended = False
        self._closed = False

    async def start(self) -> None:
        """Start the stations, wait for the CSMS to accept them, bridge every EVSE to its SECC."""
        c = self.config
        for sid in self.station_ids:
            st = ChargingStation(StationConfig(sid, c.csms_url, password=PASSWORD, evses=c.evses,
                                               max_power_w=c.evse_max_power_w, backoff=BackOff(0.05, 0.05, 1),
                                               call_timeout=10.0, ping_interval=None))
            st.model.put("SampledDataCtrlr", "TxUpdatedInterval", "1")
            st.model.put("AuthCtrlr", "Enabled", "false")  # free vend: the cars pay externally (EIM)
            await st.start()
            self.stations.append(st)
        for st in self.stations:
            await st.wait_accepted()
            self.bridges[st.config.station_id] = await start_bridged_seccs(
                st, port=0, sdp_port=0, protocols=("iso20", "iso2", "din"), timeout_scale=c.timeout_scale,
                config=BridgeConfig(allow_discharge_w=c.evse_max_discharge_w))

    def go(self, t0: float, wall0: datetime) -> None:
        """The clock starts: every car waits for its arrival."""
        self.clock.t0, self.clock.wall0 = t0, wall0
        self._tasks = [asyncio.create_task(self._car(n, car), name=f"car-{car.spec.name}")
                       for n, car in self.cars.items()]

    def states(self) -> list[CarState]:
        """The connected cars now."""
        c = self.config
        out = []
        for n, car in self.cars.items():
            ev = car.ev
            if ev is None or car.plugged_h is None or car.left_h is not None:
                continue
            out.append(CarState(n, round(ev.power_w, 1), round(ev.soc, 3), ev.max_power_now(c.evse_max_power_w),
                                ev.max_discharge_now(c.evse_max_discharge_w, car.spec.max_discharge_w > 0)))
        return out

    async def finish(self, end_h: float) -> dict[int, CarRun]:
        """End the run at `end_h`: the cars still charging stop as at a departure (a clean end of session), the
        stations stop; every car's record."""
        self._ended = True
        for car in self.cars.values():
            if car.ev is not None:
                car.ev.leave_at = 0.0
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=10.0)
            for task in late:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for car in self.cars.values():
            if car.plugged_h is not None and (car.left_h is None or car.left_h > end_h):
                car.left_h, car.reason = end_h, "still plugged in at the end of the run"
        await self.close()
        return self.cars

    async def close(self) -> None:
        """Stop the bridges and the stations (once)."""
        if self._closed:
            return
        self._closed = True
        for bridges in self.bridges.values():
            for b in bridges:
                with contextlib.suppress(Exception):
                    await b.close()
        for st in self.stations:
            with contextlib.suppress(Exception):
                await st.stop()

    async def _car(self, n: int, car: CarRun) -> None:
        """One car: wait for its arrival, charge over ISO 15118 until its departure or target, leave."""
        spec, x, clock = car.spec, self.config.time_scale, self.clock
        await clock.wait_sim(spec.arrival_h)
        if self._ended:
            return
        bridge = self.bridges[spec.station][spec.evse - 1]
        # the EVSE may still be closing the last car's transaction
        while bridge.active is not None or bridge.ending:
            await asyncio.sleep(0.05)
        stay_s = (spec.departure_h - clock.sim_h()) * 3600.0 / x
        ac = spec.energy.startswith("ac")
        ev = car.ev = FleetEV(capacity_wh=spec.capacity_wh / x, soc=spec.soc_pct, target_soc=spec.target_soc_pct,
                              departure_time=max(1, int(stay_s)), ac_max_current=spec.max_power_w / 690.0,
                              ac_max_power=spec.max_power_w if ac else 22_000.0,
                              dc_max_power=0.0 if ac else spec.max_power_w, dc_max_current=200.0,
                              dc_max_discharge_power=0.0 if ac else spec.max_discharge_w,
                              ac_max_discharge_power=spec.max_discharge_w if ac else 0.0,
                              min_soc=spec.min_soc_pct, leave_at=time.monotonic() + stay_s,
                              stays=spec.max_discharge_w > 0)
        config = EvccConfig(protocols=(spec.protocol,), energy=spec.energy, loops=0, control=self.config.control20,
                            loop_interval=self.config.loop_interval_s, ongoing_interval=0.05,
                            evcc_id=f"0A{n:010X}", timers=EvccTimers().scaled(self.config.timeout_scale))
        server = bridge.server
        assert server is not None
        car.plugged_h, car.reason, car.protocol = clock.sim_h(), "charging", spec.protocol
        try:
            result = await run_evcc(config, ev, secc=server.addresses()["tcp"])
        finally:
            ev.power_w = 0.0
        car.left_h = clock.sim_h()
        car.ok, car.protocol = result.ok, result.protocol or car.protocol
        if self._ended:  # stopped by the end of the run (finish() marks it)
            return
        car.reason = ("target reached" if ev.soc >= ev.target_soc else "departed") if result.ok else result.reason


# ----- a host in a worker process -----

def _serve(conn: Connection, config: HostConfig, station_ids: list[str], cars: list[tuple[int, CarSpec]]) -> None:
    """The worker process: run a StationHost; messages from the parent: ("go", t0, wall0), ("stop", end_h); to the
    parent: ("ready",), ("states", [CarState]) every sample period, ("done", {index: CarRun}) or ("error", text)."""
    logging.basicConfig(level=config.log_level, format="%(levelname)s %(processName)s %(name)s: %(message)s")
    try:
        asyncio.run(_host_main(conn, config, station_ids, cars))
    except Exception:
        with contextlib.suppress(Exception):
            conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _pump(conn: Connection, loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[Any]) -> None:
    """Read a pipe in a thread of its own (so no executor thread is held) into an asyncio queue."""
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            msg = ("eof",)
        try:
            loop.call_soon_threadsafe(inbox.put_nowait, msg)
        except RuntimeError:  # the loop closed
            return
        if msg[0] in ("eof", "stop", "done", "error"):
            return


async def _host_main(conn: Connection, config: HostConfig, station_ids: list[str],
                     cars: list[tuple[int, CarSpec]]) -> None:
    host = StationHost(config, station_ids, cars)
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    threading.Thread(target=_pump, args=(conn, asyncio.get_running_loop(), inbox), daemon=True).start()
    try:
        await host.start()
        conn.send(("ready",))
        msg = await inbox.get()
        if msg[0] != "go":
            return
        host.go(msg[1], msg[2])
        while True:
            try:
                msg = await asyncio.wait_for(inbox.get(), config.sample_s)
            except TimeoutError:
                conn.send(("states", host.states()))
                continue
            if msg[0] == "stop":
                conn.send(("done", await host.finish(msg[1])))
            return
    finally:
        await host.close()


class HostProcess:
    """A StationHost in a worker process (spawned: a clean interpreter, no inherited event loop)."""

    def __init__(self, config: HostConfig, station_ids: list[str], cars: list[tuple[int, CarSpec]],
                 name: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_serve, args=(child, config, station_ids, cars), name=name, daemon=True)
        self.process.start()
        child.close()
        self.states: list[CarState] = []
        self._inbox: asyncio.Queue[Any] = asyncio.Queue()
        threading.Thread(target=_pump, args=(self._conn, asyncio.get_running_loop(), self._inbox),
                         daemon=True).start()
        self._reader: asyncio.Task[None] | None = None
        self._done: asyncio.Future[dict[int, CarRun]] = asyncio.get_running_loop().create_future()

    async def ready(self) -> None:
        """Wait for the host's stations to be accepted and bridged."""
        msg = await self._inbox.get()
        if msg[0] != "ready":
            raise RuntimeError(f"fleet worker {self.process.name} failed to start: {msg[1:] or msg[0]}")
        self._reader = asyncio.create_task(self._read(), name=f"{self.process.name}-reader")

    def go(self, t0: float, wall0: datetime) -> None:
        """Start the host's clock."""
        self._conn.send(("go", t0, wall0))

    async def finish(self, end_h: float) -> dict[int, CarRun]:
        """Stop the host at `end_h`; its cars' records (none from a host that never started)."""
        if self._reader is None:
            self.process.kill()
            self._conn.close()
            return {}
        with contextlib.suppress(OSError):
            self._conn.send(("stop", end_h))
        try:
            return await asyncio.wait_for(asyncio.shield(self._done), 60.0)
        finally:
            await asyncio.to_thread(self.process.join, 10.0)
            if self.process.is_alive():
                self.process.kill()
            if self._reader is not None:
                self._reader.cancel()
            self._conn.close()

    async def _read(self) -> None:
        while True:
            msg = await self._inbox.get()
            if msg[0] == "states":
                self.states = msg[1]
            elif msg[0] == "done":
                self._done.set_result(msg[1])
                return
            else:  # an error or the pipe closed
                self._done.set_exception(RuntimeError(f"fleet worker {self.process.name}: {msg[1:] or msg[0]}"))
                return


class LocalHost:
    """A StationHost on the parent's own event loop (the single-process fleet), behind HostProcess's face."""

    def __init__(self, config: HostConfig, station_ids: list[str], cars: list[tuple[int, CarSpec]]) -> None:
        self.host = StationHost(config, station_ids, cars)

    async def ready(self) -> None:
        """Start the stations."""
        await self.host.start()

    def go(self, t0: float, wall0: datetime) -> None:
        """Start the clock."""
        self.host.go(t0, wall0)

    @property
    def states(self) -> list[CarState]:
        """The connected cars now."""
        return self.host.states()

    async def finish(self, end_h: float) -> dict[int, CarRun]:
        """Stop; the cars' records."""
        return await self.host.finish(end_h)


def spread(station_ids: list[str], specs: list[CarSpec], workers: int) -> list[tuple[list[str],
                                                                                      list[tuple[int, CarSpec]]]]:
    """The stations dealt round-robin over `workers` hosts (at least one), each with the cars at its EVSEs (with
    their index in the fleet)."""
    k = max(1, min(workers, len(station_ids)))
    parts: list[tuple[list[str], list[tuple[int, CarSpec]]]] = [([], []) for _ in range(k)]
    where = {}
    for n, sid in enumerate(station_ids):
        parts[n % k][0].append(sid)
        where[sid] = n % k
    for n, spec in enumerate(specs):
        parts[where[spec.station]][1].append((n, spec))
    return parts
