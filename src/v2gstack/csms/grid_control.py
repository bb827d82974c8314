"""The CSMS's grid control: grid signals in (API, CLI, signal files, the OpenADR VEN), the connected sessions and
their needs tracked from TransactionEvent and NotifyEVChargingNeeds, the scheduler re-run on every change (and
periodically and at signal boundaries), its plan sent to the stations as TxProfiles: OCPP 2.0.1 charge limits, and
for a 2.1 station whose car can discharge, CentralSetpoint periods (setpoint, negative: discharge).

The CSMS calls grid/ (model, scheduler); grid/ never imports the CSMS.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from typing import TYPE_CHECKING, Any

import numpy as np

from ..grid.model import GridSignal, Opt, SignalBook, SignalError, Topology, parse_signal
from ..grid.scheduler import Car, Plan, Problem, Scope, solve
from ..times import parse_rfc3339, rfc3339
from .grid_store import load_signals, save_signals
from .service import CommandError
from .v2x import V2xRuleError

if TYPE_CHECKING:
    from .service import Csms

log = logging.getLogger(__name__)
Payload = dict[str, Any]
GRID_PROFILE_BASE = 31000
"""Profile id of the grid plan on EVSE n: GRID_PROFILE_BASE + n (a new plan replaces the last); GRID_PROFILE_BASE
itself (n = 0) is the station-wide TxDefaultProfile that holds the cars the plan does not know yet under a cap."""
UNLIMITED_W = 1_000_000.0
"""The newcomers' default limit in the steps without an import limit (above any EVSE)."""


@dataclass
class GridConfig:
    """How the grid control plans: steps, horizon, solver budget, what it assumes of a car that told nothing."""

    dispatch: bool = False  # send the plan to stations (off: signals are kept and planned, nothing is sent)
    site_id: str = "site"
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    step_s: float = 900.0
    horizon_steps: int = 96
    time_budget_s: float = 2.0
    improve_budget_s: float = 60.0  # when the heuristic answered, the LP goes on in the background this long
    solver_process: bool = True  # solve in worker processes (the event loop keeps serving stations meanwhile)
    resolve_s: float = 60.0  # re-plan at least this often
    stack_level: int = 1
    max_periods: int = 24  # periods per schedule (the station's SmartChargingCtrlr.PeriodsPerSchedule)
    dynamic_v2x: bool = False
    """A V2X car on a 2.1 station gets a Dynamic CentralSetpoint TxProfile once per transaction, then
    UpdateDynamicSchedule with the current step's values (one small CALL per re-plan instead of a new profile); the
    plan's later steps reach it as the CSMS re-plans (every resolve_s: keep it at most step_s)."""
    default_need_wh: float = 20_000.0
    default_departure_s: float = 8 * 3600.0
    default_max_w: float = 11_000.0
    efficiency: float = 0.95


@dataclass
class Session:
    """A connected car as the CSMS knows it (energies relative to a base, in Wh; see `car`)."""

    station: str
    evse: int
    transaction_id: str
    plugged: datetime
    need_wh: float | None = None
    departure: datetime | None = None
    max_charge_w: float | None = None
    max_discharge_w: float = 0.0
    min_energy_wh: float = 0.0  # relative to the energy at the needs (negative: may discharge that much)
    max_energy_wh: float | None = None
    taper_from_wh: float | None = None  # a DC car's CC-CV taper starts this much above its energy at the needs
    delivered_wh: float = 0.0  # since the needs arrived (import - export registers)
    register: tuple[float, float] | None = None  # the import and export registers when the needs arrived
    power_w: float | None = None  # last measured (import - export)

    @property
    def key(self) -> str:
        """station/evse."""
        return f"{self.station}/{self.evse}"


def _sampled(payload: Payload) -> dict[str, float]:
    """measurand -> value in W or Wh from a payload's meterValue (last value wins; kW and kWh converted)."""
    out: dict[str, float] = {}
    for mv in payload.get("meterValue") or []:
        for sv in mv.get("sampledValue") or []:
            unit = (sv.get("unitOfMeasure") or {}).get("unit", "Wh")
            mult = 10 ** (sv.get("unitOfMeasure") or {}).get("multiplier", 0)
            value = float(sv["value"]) * mult * (1000 if unit in ("kW", "kWh") else 1)
            if sv.get("phase"):
                continue
            out[sv.get("measurand", "Energy.Active.Import.Register")] = value
    return out


def dc_battery(dc: Payload) -> tuple[float | None, float | None]:
    """A DC car's room to full and the energy it takes before its CC-CV taper starts (both in Wh from its energy
    now), from OCPP's DCChargingParametersType: evEnergyCapacity x (100 - stateOfCharge) % and evEnergyCapacity x
    (bulkSoC - stateOfCharge) % (negative: already tapering). None where the car does not say (the room needs the
    capacity and the state of charge, the taper also bulkSoC)."""
    cap, soc, bulk = dc.get("evEnergyCapacity"), dc.get("stateOfCharge"), dc.get("bulkSoC")
    if cap is None or soc is None or float(cap) <= 0:
        return None, None
    room = float(cap) * (100.0 - float(soc)) / 100.0
    return room, (float(cap) * (float(bulk) - float(soc)) / 100.0 if bulk is not None else None)


def taper_soc(taper_from_wh: float | None, base_wh: float, capacity_wh: float) -> float:
    """`Car.taper_soc` in the scheduler's shifted energies (0 = the lowest allowed, `capacity_wh` = full): where
    the taper starts over the car's capacity, in [0, 1]; 1 (no taper) without one."""
    if taper_from_wh is None or capacity_wh <= 0:
        return 1.0
    return min(max((base_wh + taper_from_wh) / capacity_wh, 0.0), 1.0)


class GridControl:
    """Grid signals, sessions and the plan of one CSMS (see the module docstring)."""

    def __init__(self, csms: Csms, config: GridConfig | None = None, *, listen: bool = True) -> None:
        """`listen`: take the sessions from this node's messages (one node); a cluster's elected node gets them from
        the event stream instead (csms/grid_leader.py)."""
        self.csms = csms
        self.config = config or GridConfig()
        self.book = SignalBook(Topology(self.config.site_id, dict(self.config.groups)))
        self.sessions: dict[tuple[str, int], Session] = {}
        self._early_needs: dict[tuple[str, int], Payload] = {}  # needs that came before their TransactionEvent
        self.plan: Plan | None = None
        self.plan_start: datetime | None = None
        self.plan_keys: list[tuple[str, int]] = []
        self.sent: dict[tuple[str, int], tuple[str, list[Any], float]] = {}  # evse -> (tx, periods, when)
        self.evses: dict[str, set[int]] = {}  # the EVSEs each station told of (StatusNotification, TransactionEvent)
        self.defaults_sent: dict[str, tuple[list[Any], float]] = {}  # station -> newcomers' periods, when
        self.dispatches: list[Payload] = []  # the last dispatch's outcome per EVSE
        self.solves = 0
        self.messages: dict[str, int] = {}  # dispatch CALLs accepted, by action
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._planned = asyncio.Condition()
        self.ven: Any = None  # the OpenADR VEN (start_ven)
        self.requests = 0  # plan requests so far
        self.covered = 0  # the last request the plan in force answers
        self.generation = 0  # plans made; a background LP is adopted only if none was made since it started
        self._improving: asyncio.Task[None] | None = None
        self._pools: dict[str, ProcessPoolExecutor] = {}
        if listen:
            csms.listeners.append(self.on_message)
        csms.grid = self
        self._reload()

    # ----- lifecycle -----

    def start(self) -> None:
        """Run the planning loop (in the running event loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def start_ven(self, cfg: Any) -> Any:
        """Run an OpenADR 2.0b VEN (grid/openadr.py, a VenConfig) feeding this control; the VEN."""
        from ..grid.openadr import GridVen  # optional dependency: openleadr (the `grid` extra)

        self.ven = GridVen(cfg, self, self.telemetry)
        await self.ven.start()
        return self.ven

    async def close(self) -> None:
        """Stop the VEN and the planning loop."""
        if self.ven is not None:
            await self.ven.stop()
            self.ven = None
        for task in (self._task, self._improving):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._improving = None
        for pool in self._pools.values():  # a solve still running ends with its time budget
            pool.shutdown(wait=False, cancel_futures=True)
        self._pools.clear()

    def request(self) -> int:
        """Ask for a new plan (coalesced: one solve runs at a time); the request's number (see wait_covered)."""
        self.requests += 1
        self._wake.set()
        return self.requests

    # ----- signals -----

    def _topology(self) -> Topology:
        stations = frozenset(st.id for st in self.csms.store.stations())
        return Topology(self.config.site_id, dict(self.config.groups), stations)

    def _reload(self) -> None:
        """The signals the database kept (a restarted CSMS plans with them again); those that ended or whose
        target the site no longer knows are dropped, each with a warning."""
        self.book.topology = self._topology()
        for raw in load_signals(self.csms.store):
            try:
                self.book.apply([parse_signal(raw)])
            except SignalError as e:
                log.warning("grid: kept signal %s dropped: %s", raw.get("id"), e)
        gone = self.book.expire(datetime.now(UTC))
        self._save()
        if self.book.signals or gone:
            log.info("grid: %d kept signal(s) reloaded, %d ended meanwhile", len(self.book.signals), len(gone))

    def _save(self) -> None:
        """Keep the book in the database."""
        save_signals(self.csms.store, list(self.book.signals.values()))

    def apply(self, raws: list[Any], *, source: str) -> list[GridSignal]:
        """Read, check and apply signals (JSON forms) as one batch: all or none (SignalError)."""
        signals = [parse_signal(r, source=source) for r in raws]
        return self.apply_signals(signals)

    def apply_signals(self, signals: list[GridSignal]) -> list[GridSignal]:
        """Apply checked signals as one batch (the targets checked against the registry); re-plan."""
        self.book.topology = self._topology()
        done = self.book.apply(signals)
        self._save()
        log.info("grid: %d signal(s) applied: %s", len(done), ", ".join(s.id for s in done))
        self.request()
        return done

    def cancel(self, signal_id: str) -> GridSignal:
        """Remove a signal; re-plan."""
        gone = self.book.cancel(signal_id)
        self._save()
        self.request()
        return gone

    def set_opt(self, signal_id: str, opt: Opt) -> GridSignal:
        """Opt in or out of a signal; re-plan."""
        s = self.book.set_opt(signal_id, opt)
        self._save()
        self.request()
        return s

    # ----- sessions -----

    def on_message(self, station: str, action: str, p: Payload) -> None:
        evse = p.get("evseId") if action == "StatusNotification" else (p.get("evse") or {}).get("id")
        if isinstance(evse, int) and evse > 0:
            self.evses.setdefault(station, set()).add(evse)
        if action == "TransactionEvent":
            self._on_transaction(station, p)
        elif action == "NotifyEVChargingNeeds":
            self._on_needs(station, p)

    def _on_transaction(self, station: str, p: Payload) -> None:
        tx = p["transactionInfo"]["transactionId"]
        evse = (p.get("evse") or {}).get("id")
        if evse is None:
            evse = next((k[1] for k, s in self.sessions.items() if s.station == station and s.transaction_id == tx),
                        None)
        if p["eventType"] == "Ended":
            if evse is not None:
                self._early_needs.pop((station, evse), None)
            s = self.sessions.get((station, evse)) if evse is not None else None
            if s is not None and s.transaction_id == tx:  # not a newer transaction on the same EVSE
                del self.sessions[(station, evse)]
                self.sent.pop((station, evse), None)
                self.request()
            return
        if evse is None:
            return
        s = self.sessions.get((station, evse))
        new = s is None or s.transaction_id != tx
        if new:
            s = self.sessions[(station, evse)] = Session(station, evse, tx, datetime.now(UTC))
        assert s is not None
        values = _sampled(p)
        if "Power.Active.Import" in values or "Power.Active.Export" in values:
            s.power_w = values.get("Power.Active.Import", 0.0) - values.get("Power.Active.Export", 0.0)
        if "Energy.Active.Import.Register" in values:
            reg = (values["Energy.Active.Import.Register"], values.get("Energy.Active.Export.Register", 0.0))
            if s.register is None:
                s.register = reg
            s.delivered_wh = (reg[0] - s.register[0]) - (reg[1] - s.register[1])
        if new:
            early = self._early_needs.pop((station, evse), None)
            if early is not None:
                self._on_needs(station, early)
            self.request()

    def _on_needs(self, station: str, p: Payload) -> None:
        s = self.sessions.get((station, p["evseId"]))
        if s is None:  # the station's NotifyEVChargingNeeds overtook its TransactionEvent: kept for it
            self._early_needs[(station, p["evseId"])] = p
            return
        needs = p["chargingNeeds"]
        ac, dc, v2x = (needs.get("acChargingParameters") or {}, needs.get("dcChargingParameters") or {},
                       needs.get("v2xChargingParameters") or {})
        if needs.get("departureTime"):
            s.departure = parse_rfc3339(needs["departureTime"])
        s.need_wh = v2x.get("evTargetEnergyRequest", dc.get("energyAmount", ac.get("energyAmount")))
        if ac.get("evMaxCurrent") is not None:  # three phases at the nominal 230 V
            s.max_charge_w = float(ac["evMaxCurrent"]) * 230.0 * 3
        if dc.get("evMaxPower") is not None:
            s.max_charge_w = float(dc["evMaxPower"])
        if v2x.get("maxChargePower") is not None:
            s.max_charge_w = float(v2x["maxChargePower"])
        bpt = str(needs.get("requestedEnergyTransfer", "")).endswith("_BPT")
        s.max_discharge_w = float(v2x.get("maxDischargePower") or 0.0) if bpt else 0.0
        s.min_energy_wh = float(v2x.get("evMinV2XEnergyRequest", 0.0))
        room, s.taper_from_wh = dc_battery(dc)
        if v2x.get("evMaxV2XEnergyRequest") is not None:
            s.max_energy_wh = float(v2x["evMaxV2XEnergyRequest"])
        elif room is not None:
            s.max_energy_wh = room
        elif dc.get("evEnergyCapacity") is not None:
            s.max_energy_wh = float(dc["evEnergyCapacity"])
        s.register, s.delivered_wh = None, 0.0  # the energies are counted from now on
        self.request()

    def car(self, s: Session, now: datetime) -> Car:
        """The scheduler's view of a session: energies shifted so that the lowest allowed is 0."""
        cfg = self.config
        base = max(0.0, -s.min_energy_wh)
        need = s.need_wh if s.need_wh is not None else cfg.default_need_wh
        top = s.max_energy_wh if s.max_energy_wh is not None else max(need, 0.0)
        departure = s.departure or (s.plugged + timedelta(seconds=cfg.default_departure_s))
        steps = max(0, min(cfg.horizon_steps, int((departure - now).total_seconds() // cfg.step_s)))
        if steps == 0 and departure > now:
            steps = 1
        v2x = s.max_discharge_w > 0 and self.csms.version_of(s.station) == "2.1"
        capacity = base + max(top, need, s.delivered_wh)
        return Car(s.key, base + s.delivered_wh, capacity, base + need, steps,
                   s.max_charge_w if s.max_charge_w is not None else cfg.default_max_w,
                   s.max_discharge_w if v2x else 0.0, base + s.min_energy_wh if v2x else 0.0, cfg.efficiency,
                   s.station, taper_soc(s.taper_from_wh, base, capacity))

    # ----- planning -----

    def problem(self, now: datetime) -> tuple[Problem, list[tuple[str, int]]]:
        """The scheduler's problem now: the connected sessions and the signals in force."""
        cfg = self.config
        keys = sorted(self.sessions)
        cars = [self.car(self.sessions[k], now) for k in keys]
        prices, steps = self.book.steps(now, timedelta(seconds=cfg.step_s), cfg.horizon_steps)

        def arr(values: list[float | None]) -> np.ndarray:
            return np.array([np.nan if v is None else v for v in values], float)

        scopes = [Scope(s.stations, arr(s.import_limit_w), arr(s.export_limit_w), arr(s.setpoint_w)) for s in steps]
        return Problem(cars, cfg.step_s, cfg.horizon_steps, price=arr(prices), scopes=scopes), keys

    async def _solve(self, pool: str, problem: Problem, budget: float) -> Plan:
        """The scheduler in a worker process of `pool` ("now" or "improve"), or in a thread without processes."""
        if not self.config.solver_process:
            return await asyncio.to_thread(solve, problem, time_budget_s=budget)
        executor = self._pools.get(pool)
        if executor is None:  # spawned: a fork would copy the event loop's threads and sockets
            executor = self._pools[pool] = ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn"))
        return await asyncio.get_running_loop().run_in_executor(executor, functools.partial(
            solve, problem, time_budget_s=budget))

    async def replan(self) -> Plan:
        """Solve now within the time budget and, with dispatch on, send the plan; the plan. When the heuristic had
        to answer, the LP goes on in the background and its plan replaces this one if nothing changed meanwhile."""
        seen = self.requests  # the requests this plan answers
        now = datetime.now(UTC)
        if self.book.expire(now):
            self._save()
        problem, keys = self.problem(now)
        plan = await self._solve("now", problem, self.config.time_budget_s)
        self.generation += 1
        self.covered = max(self.covered, seen)
        if plan.method == "heuristic" and plan.status == "time-budget" and \
                self.config.improve_budget_s > self.config.time_budget_s and self._improving is None:
            self._improving = asyncio.get_running_loop().create_task(
                self._improve(problem, now, keys, self.generation))  # a stale one starts over by itself
        await self._adopt(plan, now, keys)
        return plan

    async def _improve(self, problem: Problem, start: datetime, keys: list[tuple[str, int]], generation: int) -> None:
        """The LP with the longer budget; adopted only if no plan was made since (else it starts over on the state
        now, as long as the plan in force is the heuristic's)."""
        try:
            plan = await self._solve("improve", problem, self.config.improve_budget_s)
            if plan.method == "lp" and generation == self.generation:
                log.info("grid: the LP finished in %.1f s; its plan replaces the heuristic's", plan.solve_s)
                await self._adopt(plan, start, keys)
                return
        except Exception:
            log.exception("grid: the background LP failed")
            return
        finally:
            self._improving = None
        if generation != self.generation and self.plan is not None and self.plan.method == "heuristic":
            self._start_improving()

    def _start_improving(self) -> None:
        now = datetime.now(UTC)
        problem, keys = self.problem(now)
        self._improving = asyncio.get_running_loop().create_task(self._improve(problem, now, keys, self.generation))

    async def _adopt(self, plan: Plan, now: datetime, keys: list[tuple[str, int]]) -> None:
        """Make a plan the current one, send it, tell the waiters."""
        self.plan, self.plan_start, self.plan_keys = plan, now, keys
        self.solves += 1
        if plan.shortfalls:
            log.warning("grid: needs cannot all be met (%s): %s", plan.method,
                        ", ".join(f"{s.key} -{(s.need_wh - s.planned_wh) / 1000:.1f} kWh" for s in plan.shortfalls))
        if self.config.dispatch:
            await self.dispatch(plan, now, keys)
        async with self._planned:
            self._planned.notify_all()

    async def wait_plan(self, after: int) -> None:
        """Wait until more than `after` plans were made (tests and benchmarks)."""
        async with self._planned:
            await self._planned.wait_for(lambda: self.solves > after)

    async def wait_covered(self, request: int) -> None:
        """Wait until a plan made after request number `request` is in force."""
        async with self._planned:
            await self._planned.wait_for(lambda: self.covered >= request)

    def _next_boundary(self, now: datetime) -> float:
        """Seconds to the next start or end of a signal interval (re-plan there), capped by resolve_s."""
        wait = self.config.resolve_s
        for s in self.book.signals.values():
            for iv in s.intervals:
                for t in (iv.start, iv.end):
                    dt = (t - now).total_seconds()
                    if 0 < dt < wait:
                        wait = dt
        return wait

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # asyncio.timeout, not wait_for: 3.11's can swallow a cancel
                async with asyncio.timeout(self._next_boundary(datetime.now(UTC))):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.replan()
            except Exception:
                log.exception("grid: planning failed")

    # ----- dispatch -----

    def profile_for(self, key: tuple[str, int], power: np.ndarray, start: datetime, car: Car) -> Payload | None:
        """The SetChargingProfile request for one EVSE's row of the plan (None: nothing plugged)."""
        s = self.sessions.get(key)
        if s is None or car.departure_step == 0:
            return None
        values = [round(float(p)) for p in power[:car.departure_step]]
        periods: list[tuple[int, float]] = []
        for t, v in enumerate(values):
            if not periods or periods[-1][1] != v:
                periods.append((int(t * self.config.step_s), v))
        periods = periods[:self.config.max_periods]
        v2x = car.max_discharge_w > 0
        out = []
        for start_period, v in periods:
            if v2x:
                out.append({"startPeriod": start_period, "operationMode": "CentralSetpoint", "setpoint": float(v),
                            "limit": float(car.max_charge_w), "dischargeLimit": -float(car.max_discharge_w)})
            else:
                out.append({"startPeriod": start_period, "limit": float(max(v, 0.0))})
        pid = GRID_PROFILE_BASE + key[1]
        duration = int(car.departure_step * self.config.step_s)
        return {"evseId": key[1], "chargingProfile": {
            "id": pid, "stackLevel": self.config.stack_level, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute", "transactionId": s.transaction_id,
            "chargingSchedule": [{"id": pid, "startSchedule": rfc3339(start, "seconds"), "duration": duration,
                                  "chargingRateUnit": "W", "chargingSchedulePeriod": out}]}}

    async def dispatch(self, plan: Plan, start: datetime, keys: list[tuple[str, int]]) -> list[Payload]:
        """Send each EVSE its row of the plan (skipped when the values are what it got within a step)."""
        problem_cars = {k: self.car(self.sessions[k], start) for k in keys if k in self.sessions}
        lower: list[Any] = []  # EVSEs whose power goes down (or that had no limit yet): sent first
        raise_: list[Any] = []  # EVSEs whose power goes up: sent once the others took their lower limits
        for n, key in enumerate(keys):
            car = problem_cars.get(key)
            if car is None:
                continue
            now_w = float(plan.power_w[n][0]) if plan.power_w.shape[1] else 0.0
            jobs = raise_ if self._raises(key, now_w) else lower
            if self.config.dynamic_v2x and car.max_discharge_w > 0 and self.csms.version_of(key[0]) == "2.1":
                job = self._dynamic_job(key, now_w, car)
                if job is not None:
                    jobs.append(job)
                continue
            request = self.profile_for(key, plan.power_w[n], start, car)
            if request is None:
                continue
            periods = request["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
            values = [(p.get("setpoint"), p.get("limit"), p.get("startPeriod")) for p in periods]
            last = self.sent.get(key)
            tx = request["chargingProfile"]["transactionId"]
            if last is not None and last[0] == tx and last[1] == values and \
                    time.monotonic() - last[2] < self.config.step_s:
                continue
            jobs.append(self._send(key, request, tx, values))
        defaults = [job for station, share in self.newcomer_limits(plan, start, keys).items()
                    if (job := self._default_job(station, share, start)) is not None]
        # a re-plan moves power between cars: lowering first keeps the sum under a cap while the stations take
        # their new limits one by one (raising first would add the raise to the old, higher limits for a while)
        first = list(await asyncio.gather(*lower, *defaults))[:len(lower)]
        self.dispatches = first + list(await asyncio.gather(*raise_))
        return self.dispatches

    def newcomer_limits(self, plan: Plan, start: datetime, keys: list[tuple[str, int]]) -> dict[str, Any]:
        """Per station, the limit per step (W) of each car the plan does not know yet (one whose transaction the
        CSMS has not seen: a station's messages may queue for seconds behind others): where an import limit is in
        force, what the plan leaves of it split over the scope's EVSEs without a planned car; None: no limit."""
        cfg = self.config
        _, scopes = self.book.steps(start, timedelta(seconds=cfg.step_s), cfg.horizon_steps)
        stations = set(self.evses) | {k[0] for k in keys}
        out: dict[str, Any] = {st: None for st in stations}
        n = plan.power_w.shape[1]
        for scope in scopes:
            limit = np.array([np.inf if v is None else v for v in scope.import_limit_w[:n]], float)
            if not np.isfinite(limit).any():
                continue
            members = stations if scope.stations is None else stations & set(scope.stations)
            rows = [i for i, k in enumerate(keys) if k[0] in members]
            planned = plan.power_w[rows].sum(axis=0) if rows else np.zeros(n)
            free = sum(len(self.evses.get(st, ())) for st in members) - len(rows)
            share = np.maximum(limit - planned, 0.0) / max(free, 1)
            for st in members:
                out[st] = share if out[st] is None else np.minimum(out[st], share)
        return out

    def _default_job(self, station: str, share: Any, start: datetime) -> Any:
        """The station-wide TxDefaultProfile (evseId 0) for the cars the plan does not know yet, or its
        clearing when no import limit is in force; None when the station has it already (within a step)."""
        pid = GRID_PROFILE_BASE
        last = self.defaults_sent.get(station)
        if share is None:
            if last is None:
                return None
            return self._clear_default(station, pid)
        finite = np.flatnonzero(np.isfinite(share))
        end = int(finite[-1]) + 1  # the profile ends with the last limited step
        periods: list[tuple[int, float]] = []
        for t, v in enumerate(share[:end]):
            w = float(round(v)) if np.isfinite(v) else UNLIMITED_W
            if not periods or periods[-1][1] != w:
                periods.append((int(t * self.config.step_s), w))
        if len(periods) > self.config.max_periods:
            end_s = periods[self.config.max_periods][0]
            periods = periods[:self.config.max_periods]
        else:
            end_s = int(end * self.config.step_s)
        values = [list(p) for p in periods]
        if last is not None and last[0] == values and time.monotonic() - last[1] < self.config.step_s:
            return None
        request = {"evseId": 0, "chargingProfile": {
            "id": pid, "stackLevel": self.config.stack_level, "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [{"id": pid, "startSchedule": rfc3339(start, "seconds"), "duration": end_s,
                                  "chargingRateUnit": "W", "chargingSchedulePeriod": [
                                      {"startPeriod": a, "limit": w} for a, w in periods]}]}}
        return self._send_default(station, request, values)

    async def _set_profile(self, station: str, request: Payload) -> Payload:
        """SetChargingProfile to a station: through the V2X rules (csms/v2x.py) on 2.1; the answer."""
        if self.csms.version_of(station) == "2.1":
            return await self.csms.v2x.set_charging_profile(station, request)
        return await self.csms.call(station, "SetChargingProfile", request)

    async def _send_default(self, station: str, request: Payload, values: list[Any]) -> None:
        try:
            answer = await self._set_profile(station, request)
        except (CommandError, V2xRuleError) as e:
            log.warning("grid: newcomers' default for %s not sent: %s", station, e)
            return
        if answer.get("status") == "Accepted":
            self.defaults_sent[station] = (values, time.monotonic())
            self.messages["SetChargingProfile"] = self.messages.get("SetChargingProfile", 0) + 1
        else:
            log.warning("grid: %s refused the newcomers' default: %s", station, answer)

    async def _clear_default(self, station: str, pid: int) -> None:
        try:
            await self.csms.call(station, "ClearChargingProfile", {"chargingProfileId": pid})
        except CommandError as e:
            log.warning("grid: newcomers' default for %s not cleared: %s", station, e)
            return
        self.defaults_sent.pop(station, None)
        self.messages["ClearChargingProfile"] = self.messages.get("ClearChargingProfile", 0) + 1

    def _raises(self, key: tuple[str, int], power_w: float) -> bool:
        """Whether the plan's power for an EVSE now is above what it was last sent for the same transaction, or, for
        a car sent nothing yet, above the station's newcomers' default (without either the EVSE has no limit of
        ours: its limit is a lowering)."""
        s, last = self.sessions.get(key), self.sent.get(key)
        if s is not None and last is not None and last[0] == s.transaction_id and last[1]:
            elapsed = time.monotonic() - last[2]  # the sent schedule's period in force now
            setpoint, limit, _ = next((v for v in reversed(last[1]) if v[2] <= elapsed), last[1][0])
            return power_w > (setpoint if setpoint is not None else limit) + 1.0
        default = self.defaults_sent.get(key[0])
        if s is None or default is None:
            return False
        elapsed = time.monotonic() - default[1]
        return power_w > next((w for a, w in reversed(default[0]) if a <= elapsed), default[0][0][1]) + 1.0

    def _dynamic_job(self, key: tuple[str, int], power: float, car: Car) -> Any:
        """The current step's setpoint for a V2X car as a Dynamic profile (first) or UpdateDynamicSchedule (after,
        csms/v2x.py decides); None when the EVSE has it already (within a step)."""
        s = self.sessions.get(key)
        if s is None or car.departure_step == 0:
            return None
        body = {"setpoint": float(round(power)), "limit": float(car.max_charge_w),
                "dischargeLimit": -float(car.max_discharge_w), "transactionId": s.transaction_id,
                "chargingProfileId": GRID_PROFILE_BASE + key[1], "stackLevel": self.config.stack_level}
        values = [(body["setpoint"], body["limit"], 0)]
        last = self.sent.get(key)
        if last is not None and last[0] == s.transaction_id and last[1] == values and \
                time.monotonic() - last[2] < self.config.step_s:
            return None
        return self._send_dynamic(key, body, s.transaction_id, values)

    async def _send_dynamic(self, key: tuple[str, int], body: Payload, tx: str, values: list[Any]) -> Payload:
        station = key[0]
        try:
            done = await self.csms.v2x.setpoint(station, key[1], body)
        except (CommandError, V2xRuleError) as e:
            log.warning("grid: setpoint for %s/%d not sent: %s", station, key[1], e)
            return {"station": station, "evse": key[1], "error": str(e)}
        answer = done.get("response") or {}
        if answer.get("status") == "Accepted":
            self.sent[key] = (tx, values, time.monotonic())
            self.messages[done["action"]] = self.messages.get(done["action"], 0) + 1
        else:
            log.warning("grid: %s/%d refused the setpoint (%s): %s", station, key[1], done["action"], answer)
        return {"station": station, "evse": key[1], "status": answer.get("status"), "action": done["action"],
                "firstW": body["setpoint"]}

    async def _send(self, key: tuple[str, int], request: Payload, tx: str, values: list[Any]) -> Payload:
        station = key[0]
        try:
            answer = await self._set_profile(station, request)
        except (CommandError, V2xRuleError) as e:
            log.warning("grid: profile for %s/%d not sent: %s", station, key[1], e)
            return {"station": station, "evse": key[1], "error": str(e)}
        if answer.get("status") == "Accepted":
            self.sent[key] = (tx, values, time.monotonic())
            self.messages["SetChargingProfile"] = self.messages.get("SetChargingProfile", 0) + 1
        else:
            log.warning("grid: %s/%d refused the profile: %s", station, key[1], answer)
        return {"station": station, "evse": key[1], "status": answer.get("status"),
                "firstW": request["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0].get(
                    "setpoint", values[0][1])}

    # ----- reports back -----

    def site_power(self) -> tuple[float, float, bool]:
        """The site's import and export power now (W, both >= 0) and whether all of it was measured: each EVSE's
        last measured power, else what the plan gives it now."""
        planned = {}
        if self.plan is not None and self.plan.power_w.shape[1]:
            planned = {k: float(self.plan.power_w[n, 0]) for n, k in enumerate(self.plan_keys)}
        net, measured = 0.0, True
        for key, s in self.sessions.items():
            if s.power_w is not None:
                net += s.power_w
            else:
                net += planned.get(key, 0.0)
                measured = False
        return max(net, 0.0), max(-net, 0.0), measured

    def telemetry(self) -> tuple[float, float]:
        """The site's import and export power now, W (the VEN's TELEMETRY_USAGE)."""
        return self.site_power()[:2]

    def report(self) -> Payload:
        """The signals in force, the last plan (how it was made, who falls short, the site's power per step) and the
        last dispatch."""
        plan = self.plan
        out: Payload = {"signals": [s.to_dict() for s in sorted(self.book.signals.values(), key=lambda s: s.start)],
                        "dispatch": self.config.dispatch, "sessions": len(self.sessions)}
        if plan is not None and self.plan_start is not None:
            imp, exp, measured = self.site_power()
            out["plan"] = {
                "start": rfc3339(self.plan_start, "seconds"), "stepS": self.config.step_s, "method": plan.method,
                "status": plan.status, "solveS": round(plan.solve_s, 4), "feasible": plan.feasible,
                "shortfalls": [s.to_dict() for s in plan.shortfalls],
                "siteW": [round(float(v), 1) for v in plan.site_w],
                "evses": {k: [round(float(v), 1) for v in plan.power_w[n]] for n, k in enumerate(plan.keys)}}
            out["sitePower"] = {"importW": imp, "exportW": exp, "measured": measured}
        out["lastDispatch"] = self.dispatches
        return out
