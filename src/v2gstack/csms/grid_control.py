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

from ..grid.model import GridSignal, Opt, SignalBook, Topology, parse_signal
from ..grid.scheduler import Car, Plan, Problem, Scope, solve
from ..times import parse_rfc3339, rfc3339
from .service import CommandError
from .v2x import V2xRuleError

if TYPE_CHECKING:
    from .service import Csms

log = logging.getLogger(__name__)
Payload = dict[str, Any]
GRID_PROFILE_BASE = 31000
"""Profile id of the grid plan on EVSE n: GRID_PROFILE_BASE + n (a new plan replaces the last)."""


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


class GridControl:
    """Grid signals, sessions and the plan of one CSMS (see the module docstring)."""

    def __init__(self, csms: Csms, config: GridConfig | None = None) -> None:
        self.csms = csms
        self.config = config or GridConfig()
        self.book = SignalBook(Topology(self.config.site_id, dict(self.config.groups)))
        self.sessions: dict[tuple[str, int], Session] = {}
        self._early_needs: dict[tuple[str, int], Payload] = {}  # needs that came before their TransactionEvent
        self.plan: Plan | None = None
        self.plan_start: datetime | None = None
        self.plan_keys: list[tuple[str, int]] = []
        self.sent: dict[tuple[str, int], tuple[str, list[Any], float]] = {}  # evse -> (tx, periods, when)
        self.dispatches: list[Payload] = []  # the last dispatch's outcome per EVSE
        self.solves = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._planned = asyncio.Condition()
        self.ven: Any = None  # the OpenADR VEN (start_ven)
        self.requests = 0  # plan requests so far
        self.covered = 0  # the last request the plan in force answers
        self.generation = 0  # plans made; a background LP is adopted only if none was made since it started
        self._improving: asyncio.Task[None] | None = None
        self._pools: dict[str, ProcessPoolExecutor] = {}
        csms.listeners.append(self._on_message)
        csms.grid = self

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

    def apply(self, raws: list[Any], *, source: str) -> list[GridSignal]:
        """Read, check and apply signals (JSON forms) as one batch: all or none (SignalError)."""
        signals = [parse_signal(r, source=source) for r in raws]
        return self.apply_signals(signals)

    def apply_signals(self, signals: list[GridSignal]) -> list[GridSignal]:
        """Apply checked signals as one batch (the targets checked against the registry); re-plan."""
        self.book.topology = self._topology()
        done = self.book.apply(signals)
        log.info("grid: %d signal(s) applied: %s", len(done), ", ".join(s.id for s in done))
        self.request()
        return done

    def cancel(self, signal_id: str) -> GridSignal:
        """Remove a signal; re-plan."""
        gone = self.book.cancel(signal_id)
        self.request()
        return gone

    def set_opt(self, signal_id: str, opt: Opt) -> GridSignal:
        """Opt in or out of a signal; re-plan."""
        s = self.book.set_opt(signal_id, opt)
        self.request()
        return s

    # ----- sessions -----

    def _on_message(self, station: str, action: str, p: Payload) -> None:
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
            if evse is not None and self.sessions.pop((station, evse), None) is not None:
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
        if v2x.get("evMaxV2XEnergyRequest") is not None:
            s.max_energy_wh = float(v2x["evMaxV2XEnergyRequest"])
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
        return Car(s.key, base + s.delivered_wh, base + max(top, need, s.delivered_wh), base + need, steps,
                   s.max_charge_w if s.max_charge_w is not None else cfg.default_max_w,
                   s.max_discharge_w if v2x else 0.0, base + s.min_energy_wh if v2x else 0.0, cfg.efficiency,
                   s.station)

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
        self.book.expire(now)
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._next_boundary(datetime.now(UTC)))
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
        jobs = []
        for n, key in enumerate(keys):
            car = problem_cars.get(key)
            if car is None:
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
        self.dispatches = list(await asyncio.gather(*jobs))
        return self.dispatches

    async def _send(self, key: tuple[str, int], request: Payload, tx: str, values: list[Any]) -> Payload:
        station = key[0]
        try:
            if self.csms.version_of(station) == "2.1":
                answer = await self.csms.v2x.set_charging_profile(station, request)
            else:
                answer = await self.csms.call(station, "SetChargingProfile", request)
        except (CommandError, V2xRuleError) as e:
            log.warning("grid: profile for %s/%d not sent: %s", station, key[1], e)
            return {"station": station, "evse": key[1], "error": str(e)}
        if answer.get("status") == "Accepted":
            self.sent[key] = (tx, values, time.monotonic())
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
