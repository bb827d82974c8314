"""The fleet simulation: our CSMS with grid control and dispatch, N of our stations (OCPP over websockets) with M
EVSEs each bridged to an SECC on loopback, and a seeded fleet of our EVCCs (DIN 70121 and ISO 15118-2, AC and DC)
arriving, charging under the CSMS's plan and leaving; sampled into a result for the report (report.py).

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
from ..iso15118 import EvccConfig, EVModel, run_evcc
from ..ocpp import BackOff
from ..station import ChargingStation, StationConfig
from ..station.bridge import BridgeConfig, EvseBridge, start_bridged_seccs
from ..times import parse_rfc3339, rfc3339
from .population import CarSpec, Distributions, draw_fleet, station_ids

log = logging.getLogger(__name__)
PASSWORD = "fleet-station-password-01"


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

    def __post_init__(self) -> None:
        """Refuse what cannot run."""
        if self.stations < 1 or self.evses < 1:
            raise ValueError("--stations and --evses must be at least 1")
        if not self.hours > 0 or not self.time_scale > 0:
            raise ValueError("--hours and --time-scale must be positive")
        if self.step_min * 60 / self.time_scale < 1.0:
            raise ValueError("the planning step would be under 1 wall second (OCPP schedules count whole seconds): "
                             "lower --time-scale or raise --step-min")


@dataclass
class FleetEV(EVModel):
    """An EV of the fleet: it ends its session at its departure (as when its target is met), and keeps the power
    it takes now (for the samples)."""

    leave_at: float = math.inf  # time.monotonic() of the departure
    power_w: float = 0.0

    @property
    def full(self) -> bool:
        """Done: the target SoC is reached or it is time to leave."""
        return self.soc >= self.target_soc or time.monotonic() >= self.leave_at

    def charge(self, power_w: float, dt_s: float) -> float:
        """EVModel.charge, remembering the power."""
        self.power_w = power_w
        return super().charge(power_w, dt_s)

    def discharge(self, power_w: float, dt_s: float) -> float:
        """EVModel.discharge, remembering the power (negative)."""
        self.power_w = -power_w
        return super().discharge(power_w, dt_s)

    def max_discharge_now(self, evse_max_w: float, bpt: bool) -> float:
        """What the car can feed back now (W, >= 0): a -20 BPT car above its minimum SoC."""
        if not bpt or not self.can_discharge:
            return 0.0
        return min(self.dc_max_discharge_power, evse_max_w)

    def max_power_now(self, evse_max_w: float) -> float:
        """What the car can take now (W): DC within its taper above the bulk SoC, AC at its current."""
        if self.full:
            return 0.0
        if self.dc_max_power <= 0:  # an AC car
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
        self.stations: list[ChargingStation] = []
        self.bridges: dict[str, list[EvseBridge]] = {}
        self.started = asyncio.Event()  # everything is up, the clock runs
        self._t0 = 0.0
        self._wall0 = datetime.now(UTC)
        self._methods: dict[str, int] = {}
        self._last_plan: Any = None
        self._ended = False

    # ----- the clock -----

    def sim_h(self) -> float:
        """Simulated hours since the start."""
        return (time.monotonic() - self._t0) * self.config.time_scale / 3600.0

    def wall_of(self, sim_h: float) -> datetime:
        """The wall-clock time of a simulated instant."""
        return self._wall0 + timedelta(seconds=sim_h * 3600.0 / self.config.time_scale)

    async def wait_sim(self, sim_h: float) -> None:
        """Sleep until the simulated clock reads `sim_h` hours."""
        await asyncio.sleep(max(0.0, (sim_h - self.sim_h()) * 3600.0 / self.config.time_scale))

    def sim_of(self, t: datetime) -> float:
        """The simulated hours of a wall-clock time."""
        return (t - self._wall0).total_seconds() * self.config.time_scale / 3600.0

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
            default_need_wh=20_000.0 / x, default_departure_s=8 * 3600.0 / x))
        tasks: list[asyncio.Task[Any]] = []
        began = time.perf_counter()
        try:
            for sid in ids:
                st = ChargingStation(StationConfig(sid, f"ws://127.0.0.1:{csms.port}/ocpp", password=PASSWORD,
                                                   evses=cfg.evses, max_power_w=cfg.evse_max_power_w,
                                                   backoff=BackOff(0.05, 0.05, 1), call_timeout=10.0,
                                                   ping_interval=None))
                st.model.put("SampledDataCtrlr", "TxUpdatedInterval", "1")
                st.model.put("AuthCtrlr", "Enabled", "false")  # free vend: the cars pay externally (EIM)
                await st.start()
                self.stations.append(st)
            for st in self.stations:
                await st.wait_accepted()
                self.bridges[st.config.station_id] = await start_bridged_seccs(
                    st, port=0, sdp_port=0, protocols=("iso20", "iso2", "din"),
                    config=BridgeConfig(allow_discharge_w=cfg.evse_max_discharge_w))
            grid.start()
            self._t0 = time.monotonic()
            self._wall0 = datetime.now(UTC)
            if cfg.signals:
                grid.apply(scale_signals(cfg.signals, self._wall0, x), source="file")
            if cfg.openadr_vtn:
                await grid.start_ven(VenConfig(cfg.openadr_vtn, ven_name="v2gstack-fleet", telemetry_s=1.0))
            tasks = [asyncio.create_task(self._car(n, car), name=f"car-{car.spec.name}")
                     for n, car in enumerate(self.cars)]
            sampler = asyncio.create_task(self._sample(), name="fleet-sampler")
            tasks.append(sampler)
            self.started.set()
            await self.wait_sim(cfg.hours)
        finally:
            end_h = min(self.sim_h(), cfg.hours) if self._t0 else 0.0
            self._ended = True
            for car in self.cars:  # the cars still charging stop as at a departure (a clean end of session)
                if car.ev is not None:
                    car.ev.leave_at = 0.0
            if tasks:
                tasks[-1].cancel()  # the sampler: the report ends here
                _, late = await asyncio.wait(tasks[:-1], timeout=10.0) if len(tasks) > 1 else (set(), set())
                for task in late:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            for car in self.cars:
                if car.plugged_h is not None and (car.left_h is None or car.left_h > end_h):
                    car.left_h, car.reason = end_h, "still plugged in at the end of the run"
            await grid.close()
            for bridges in self.bridges.values():
                for b in bridges:
                    with contextlib.suppress(Exception):
                        await b.close()
            for st in self.stations:
                with contextlib.suppress(Exception):
                    await st.stop()
            await csms.close()
            store.close()
        return FleetResult(cfg, self.cars, self.samples, self.signals, grid.solves, self._methods,
                           time.perf_counter() - began, rfc3339(self._wall0, "seconds"))

    async def _car(self, n: int, car: CarRun) -> None:
        """One car: wait for its arrival, charge over ISO 15118 until its departure or target, leave."""
        spec, x = car.spec, self.config.time_scale
        await self.wait_sim(spec.arrival_h)
        if self._ended:
            return
        bridge = self.bridges[spec.station][spec.evse - 1]
        # the EVSE may still be closing the last car's transaction
        while bridge.active is not None or bridge.ending:
            await asyncio.sleep(0.05)
        stay_s = (spec.departure_h - self.sim_h()) * 3600.0 / x
        ev = car.ev = FleetEV(capacity_wh=spec.capacity_wh / x, soc=spec.soc_pct, target_soc=spec.target_soc_pct,
                              departure_time=max(1, int(stay_s)), ac_max_current=spec.max_power_w / 690.0,
                              dc_max_power=spec.max_power_w if spec.energy.startswith("dc") else 0.0,
                              dc_max_current=200.0, dc_max_discharge_power=spec.max_discharge_w,
                              min_soc=spec.min_soc_pct, leave_at=time.monotonic() + stay_s)
        config = EvccConfig(protocols=(spec.protocol,), energy=spec.energy, loops=0,
                            control=self.config.control20,
                            loop_interval=self.config.loop_interval_s, ongoing_interval=0.05,
                            evcc_id=f"0A{n:010X}")
        server = bridge.server
        assert server is not None
        car.plugged_h, car.reason, car.protocol = self.sim_h(), "charging", spec.protocol
        try:
            result = await run_evcc(config, ev, secc=server.addresses()["tcp"])
        finally:
            ev.power_w = 0.0
        car.left_h = self.sim_h()
        car.ok, car.protocol = result.ok, result.protocol or car.protocol
        if self._ended:  # stopped by the end of the run (run() marks it)
            return
        car.reason = ("target reached" if ev.soc >= ev.target_soc else "departed") if result.ok else result.reason

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
        """Every sample_s: the cars' power and SoC, the signals in force, the plan."""
        assert self.grid is not None
        evse_max = self.config.evse_max_power_w
        while True:
            now = datetime.now(UTC)
            t = self.sim_h()
            total = high = low = 0.0
            active = 0
            for car in self.cars:
                ev = car.ev
                if ev is None or car.plugged_h is None or car.left_h is not None:
                    continue
                active += 1
                total += ev.power_w
                high += ev.max_power_now(evse_max)
                low -= ev.max_discharge_now(self.config.evse_max_discharge_w, car.spec.max_discharge_w > 0)
                car.samples.append((round(t, 5), round(ev.power_w, 1), round(ev.soc, 3)))
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
            "openadrVtn": bool(c.openadr_vtn)}
