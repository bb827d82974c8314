"""The fleet simulation: our CSMS with grid control and dispatch, N of our stations (OCPP over websockets) with M
EVSEs each bridged to an SECC on loopback, and a seeded fleet of our EVCCs (DIN 70121, ISO 15118-2 AC and DC,
ISO 15118-20 AC_BPT and DC_BPT) arriving, charging (and discharging) under the CSMS's plan and leaving; sampled
into a result for the report (fleet_report.py). The CSMS runs in this process, the stations and cars in worker
processes (hosts.py) that tell this one their cars' states every sample period and their records at the end.

Time scale X (simulated seconds per wall-clock second): everything runs in wall-clock time, the world is shrunk
instead. Powers are physical (a car takes up to 11 or 50 kW); simulated durations are divided by X (a 4 h stay is
4 h / X of wall time, and the car announces that departure), and so are energies in the protocols (a 60 kWh battery
is 60 kWh / X, a 20 kWh need is 20 kWh / X, so the SoC moves as it would in 4 h) and the CSMS's planning step,
horizon and defaults. The LP then solves the same problem in units scaled by X, and the report multiplies wall time
and energy by X back. Grid signals given to the run (a file) are in simulated time and mapped onto the wall clock
the same way; OpenADR events come from a real VTN in wall-clock time (an event of 15 min / X stands for 15 min).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..csms.grid_control import GridConfig, GridControl
from ..csms.service import Csms, CsmsConfig
from ..csms.store import Store
from ..grid.model import Target, TargetKind, load_signal_file, resolve_times
from ..grid.openadr_map import VenConfig
from ..times import parse_rfc3339, rfc3339
from .hosts import PASSWORD, CarRun, FleetEV, HostConfig, HostProcess, LocalHost, SimClock, spread
from .population import CarSpec, Distributions, draw_fleet, station_ids

log = logging.getLogger(__name__)
__all__ = ["CarRun", "FleetConfig", "FleetEV", "FleetResult", "FleetRun", "Sample"]


def default_workers() -> int:
    """As many worker processes as cores (the CSMS shares them), at least one."""
    return max(1, os.cpu_count() or 1)


@dataclass
class FleetConfig:
    """What to simulate and how fast (see the module docstring for the time scale)."""

    stations: int = 2
    evses: int = 3
    hours: float = 1.0  # simulated
    time_scale: float = 60.0  # simulated seconds per wall-clock second
    seed: int = 1
    signals: list[Any] = field(default_factory=list)  # JSON forms in simulated time ("now+15m": 15 min into the run)
    openadr_vtn: str | None = None  # run the CSMS's OpenADR VEN against this VTN
    step_min: float = 15.0  # the CSMS's planning step, simulated minutes
    horizon_h: float = 24.0  # its horizon, simulated hours
    solver_budget_s: float = 2.0  # wall
    sample_s: float = 0.5  # wall seconds between two samples
    loop_interval_s: float = 0.25  # wall seconds between two charge-loop requests of a car
    settle_s: float = 2.0  # wall seconds after a change of the signals in force before the report checks the power
    evse_max_power_w: float = 50_000.0
    control20: str = "dynamic"  # the -20 BPT cars' control mode: dynamic follows the station's target
    evse_max_discharge_w: float = 30_000.0  # what an EVSE lets a -20 BPT car feed back (the hardware's DC figure)
    dist: Distributions = field(default_factory=Distributions)
    timeout_scale: float = 1.0
    """The SECCs' sequence timeouts (ISO 15118-20: 0.5 s after a charge loop) and the EVCCs' timeouts (DIN and -2:
    0.25 s for a CurrentDemandRes) x this; 1: the standards' values. A starved process (a loaded machine, a low
    priority) can miss them: more stretches them for such a run."""
    dynamic_v2x: bool = False
    """The CSMS sends the V2X cars' setpoints as Dynamic profiles updated with UpdateDynamicSchedule (GridConfig)."""
    workers: int = field(default_factory=default_workers)
    """Worker processes for the stations and cars (the CSMS stays in this one); 0: all in this process."""

    def __post_init__(self) -> None:
        """Refuse what cannot run."""
        if self.stations < 1 or self.evses < 1:
            raise ValueError("--stations and --evses must be at least 1")
        if not self.hours > 0 or not self.time_scale > 0:
            raise ValueError("--hours and --time-scale must be positive")
        if not self.timeout_scale >= 1.0:
            raise ValueError("--timeout-scale must be at least 1")
        if self.workers < 0:
            raise ValueError("--workers must be 0 (one process) or more")
        if self.step_min * 60 / self.time_scale < 1.0:
            raise ValueError("the planning step would be under 1 wall second (OCPP schedules count whole seconds): "
                             "lower --time-scale or raise --step-min")


@dataclass
class Sample:
    """The fleet at one moment: aggregate power, what the cars could do, what the grid asks, what the CSMS plans."""

    t_h: float
    power_w: float
    phys_max_w: float
    phys_min_w: float
    import_limit_w: float | None
    export_limit_w: float | None
    setpoint_w: float | None
    planned_w: float | None
    cars: int


@dataclass
class FleetResult:
    """Everything the report needs."""

    config: FleetConfig
    cars: list[CarRun]
    samples: list[Sample]
    signals: dict[str, dict[str, Any]]  # id -> source, kind, intervals in simulated hours
    solves: int
    plan_methods: dict[str, int]
    wall_s: float
    started: str
    dispatch: dict[str, int] = field(default_factory=dict)  # the CSMS's dispatch CALLs accepted, by action


def scale_signals(raws: list[Any], start: datetime, scale: float) -> list[Any]:
    """Signals in simulated time (relative "now+15m" counts from the start of the run; absolute times are simulated
    instants of a run that started at `start`) onto the wall clock: t -> start + (t - start) / scale."""
    out = []
    for raw in resolve_times(raws, start):
        if not isinstance(raw, dict):
            out.append(raw)
            continue
        s = dict(raw)
        ivs = []
        for iv in s.get("intervals") or []:
            if not isinstance(iv, dict):
                ivs.append(iv)
                continue
            iv = dict(iv)
            for key in ("start", "end"):
                if isinstance(iv.get(key), str):
                    with contextlib.suppress(ValueError):
                        t = parse_rfc3339(iv[key])
                        iv[key] = rfc3339(start + (t - start) / scale)
            if isinstance(iv.get("durationS"), int | float) and not isinstance(iv.get("durationS"), bool):
                iv["durationS"] = iv["durationS"] / scale
            ivs.append(iv)
        s["intervals"] = ivs
        out.append(s)
    return out


def signals_from_file(path: str | Path) -> list[Any]:
    """A signal file's signals, relative times kept relative (the run resolves them in simulated time)."""
    marker = datetime(2000, 1, 1, tzinfo=UTC)
    raws = load_signal_file(path, marker)
    # back to relative form: the run maps them from its own start
    def rel(raw: Any) -> Any:
        if isinstance(raw, list):
            return [rel(r) for r in raw]
        if not isinstance(raw, dict):
            return raw
        out = {}
        for k, v in raw.items():
            if k in ("start", "end") and isinstance(v, str):
                with contextlib.suppress(ValueError):
                    dt = (parse_rfc3339(v) - marker).total_seconds()
                    if abs(dt) < 400 * 86400:
                        v = f"now{dt:+.3f}s"
            out[k] = rel(v)
        return out
    return rel(raws)


class FleetRun:
    """One run of the fleet simulation (see the module docstring); `run()` returns the FleetResult."""

    def __init__(self, config: FleetConfig, *, specs: list[CarSpec] | None = None) -> None:
        self.config = config
        self.specs = specs if specs is not None else draw_fleet(config.stations, config.evses, config.hours,
                                                                  config.seed, config.dist)
        self.cars = [CarRun(s) for s in self.specs]
        self.samples: list[Sample] = []
        self.signals: dict[str, dict[str, Any]] = {}
        self.grid: GridControl | None = None
        self.csms: Csms | None = None
        self.hosts: list[HostProcess | LocalHost] = []
        self.clock = SimClock(config.time_scale)
        self.started = asyncio.Event()  # everything is up, the clock runs
        self._methods: dict[str, int] = {}
        self._last_plan: Any = None

    # ----- the clock -----

    def sim_h(self) -> float:
        """Simulated hours since the start."""
        return self.clock.sim_h()

    def wall_of(self, sim_h: float) -> datetime:
        """The wall-clock time of a simulated instant."""
        return self.clock.wall_of(sim_h)

    async def wait_sim(self, sim_h: float) -> None:
        """Sleep until the simulated clock reads `sim_h` hours."""
        await self.clock.wait_sim(sim_h)

    def sim_of(self, t: datetime) -> float:
        """The simulated hours of a wall-clock time."""
        return self.clock.sim_of(t)

    # ----- the run -----

    async def run(self) -> FleetResult:
        """Start everything, let the fleet come and go for the configured hours, stop; the result."""
        cfg = self.config
        x = cfg.time_scale
        folder = Path(tempfile.mkdtemp(prefix="v2gstack-fleet-"))
        store = Store(f"sqlite:///{folder / 'csms.db'}")
        ids = station_ids(cfg.stations)
        for sid in ids:
            store.add_station(sid, PASSWORD)
        csms = self.csms = Csms(store, CsmsConfig(ping_interval=None, log_session_messages=False))
        await csms.start()
        step_s = cfg.step_min * 60.0 / x
        grid = self.grid = GridControl(csms, GridConfig(
            dispatch=True, step_s=step_s, horizon_steps=max(1, math.ceil(cfg.horizon_h * 60 / cfg.step_min)),
            time_budget_s=cfg.solver_budget_s, solver_process=len(self.specs) > 200, resolve_s=step_s,
            default_need_wh=20_000.0 / x, default_departure_s=8 * 3600.0 / x, dynamic_v2x=cfg.dynamic_v2x))
        host_config = HostConfig(f"ws://127.0.0.1:{csms.port}/ocpp", cfg.evses, x, cfg.evse_max_power_w,
                                 cfg.evse_max_discharge_w, cfg.control20, cfg.loop_interval_s, cfg.sample_s,
                                 logging.getLogger().getEffectiveLevel(), cfg.timeout_scale)
        sampler: asyncio.Task[None] | None = None
        began = time.perf_counter()
        started = False
        try:
            for n, (sids, cars) in enumerate(spread(ids, self.specs, max(1, cfg.workers))):
                self.hosts.append(HostProcess(host_config, sids, cars, f"fleet-worker-{n + 1}") if cfg.workers
                                  else LocalHost(host_config, sids, cars))
            await asyncio.gather(*(h.ready() for h in self.hosts))
            grid.start()
            self.clock.t0, self.clock.wall0 = time.monotonic(), datetime.now(UTC)
            started = True
            if cfg.signals:
                grid.apply(scale_signals(cfg.signals, self.clock.wall0, x), source="file")
            if cfg.openadr_vtn:
                await grid.start_ven(VenConfig(cfg.openadr_vtn, ven_name="v2gstack-fleet", telemetry_s=1.0))
            for h in self.hosts:
                h.go(self.clock.t0, self.clock.wall0)
            sampler = asyncio.create_task(self._sample(), name="fleet-sampler")
            self.started.set()
            await self.wait_sim(cfg.hours)
        finally:
            end_h = min(self.sim_h(), cfg.hours) if started else 0.0
            if sampler is not None:
                sampler.cancel()  # the report ends here
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            records = await asyncio.gather(*(h.finish(end_h) for h in self.hosts), return_exceptions=True)
            await grid.close()
            await csms.close()
            store.close()
        for rec in records:
            if isinstance(rec, BaseException):
                raise rec
            for n, car in rec.items():  # the hosts' records, with the samples the parent took
                car.samples = self.cars[n].samples
                self.cars[n] = car
        return FleetResult(cfg, self.cars, self.samples, self.signals, grid.solves, self._methods,
                           time.perf_counter() - began, rfc3339(self.clock.wall0, "seconds"), dict(grid.messages))

    def _in_force(self, now: datetime) -> tuple[float | None, float | None, float | None]:
        """The site's import limit, export limit and setpoint in force now (W)."""
        assert self.grid is not None
        _, scopes = self.grid.book.steps(now, timedelta(milliseconds=1), 1)
        for scope in scopes:
            if scope.stations is None:
                return scope.import_limit_w[0], scope.export_limit_w[0], scope.setpoint_w[0]
        return None, None, None

    def _note_signals(self) -> None:
        assert self.grid is not None
        for s in self.grid.book.signals.values():
            if s.id in self.signals and self.signals[s.id]["modification"] == s.modification:
                continue
            self.signals[s.id] = {"id": s.id, "source": s.source, "modification": s.modification,
                                  "target": f"{s.target.kind.value}:{s.target.id}",
                                  "site": s.target == Target(TargetKind.SITE, self.grid.config.site_id),
                                  "intervals": [{"startH": round(self.sim_of(i.start), 4),
                                                 "endH": round(self.sim_of(i.end), 4),
                                                 **{k: v for k, v in i.to_dict().items()
                                                    if k not in ("start", "end")}}
                                                for i in s.intervals],
                                  "seenH": round(self.sim_h(), 4)}
        gone = set(self.signals) - set(self.grid.book.signals)
        for sid in gone:
            self.signals[sid].setdefault("goneH", round(self.sim_h(), 4))

    async def _sample(self) -> None:
        """Every sample_s: the cars' power and SoC (as their hosts last told), the signals in force, the plan."""
        assert self.grid is not None
        while True:
            now = datetime.now(UTC)
            t = self.sim_h()
            total = high = low = 0.0
            active = 0
            for host in self.hosts:
                for c in host.states:
                    active += 1
                    total += c.power_w
                    high += c.max_w
                    low -= c.max_discharge_w
                    self.cars[c.index].samples.append((round(t, 5), c.power_w, c.soc))
            imp, exp, sp = self._in_force(now)
            plan, start = self.grid.plan, self.grid.plan_start
            planned = None
            if plan is not None and start is not None:
                k = int((now - start).total_seconds() // self.grid.config.step_s)  # the plan's step now
                planned = float(plan.site_w[k]) if 0 <= k < plan.site_w.size else 0.0
                if plan is not self._last_plan:
                    self._last_plan = plan
                    self._methods[plan.method] = self._methods.get(plan.method, 0) + 1
            self.samples.append(Sample(round(t, 5), round(total, 1), round(high, 1), round(low, 1), imp, exp, sp,
                                       None if planned is None else round(planned, 1), active))
            self._note_signals()
            await asyncio.sleep(self.config.sample_s)


def summary_inputs(result: FleetResult) -> Mapping[str, Any]:
    """The run's settings as the report's JSON shows them."""
    c = result.config
    return {"stations": c.stations, "evsesPerStation": c.evses, "hours": c.hours, "timeScale": c.time_scale,
            "seed": c.seed, "stepMin": c.step_min, "sampleS": c.sample_s, "settleS": c.settle_s,
            "loopIntervalS": c.loop_interval_s, "evseMaxPowerW": c.evse_max_power_w,
            "evseMaxDischargeW": c.evse_max_discharge_w, "workers": c.workers, "timeoutScale": c.timeout_scale,
            "dynamicV2x": c.dynamic_v2x,
            "openadrVtn": bool(c.openadr_vtn)}
