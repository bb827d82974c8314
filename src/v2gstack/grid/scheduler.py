"""The V2G scheduler: per-EVSE power per time step for the connected cars, from their needs and the grid signals.

A linear program solved by HiGHS (scipy.optimize.linprog), written out in docs/grid.md. Hard: each car's power
limits, energy (SoC) bounds and efficiency; each scope's (site, group, station) import and export limits. Soft, in
this order of weight: each car's energy at departure (a shortfall costs most, more for earlier departures: the
priority rule), tracking of the grid setpoint, the price, a penalty per kWh discharged (needless cycling), and a
tiny preference for charging early. When HiGHS does not finish within the time budget (or fails) a greedy
earliest-departure-first heuristic answers instead. A plan says how it was made and who falls short.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

log = logging.getLogger(__name__)

SHORTFALL_COST = 1000.0
"""Cost per kWh of energy a car lacks at departure (x1 for the latest departure up to x2 for the earliest)."""
TRACKING_COST = 10.0
"""Cost per kWh of deviation from a setpoint (|site power - setpoint| x step length)."""
CYCLING_COST = 0.05
"""Cost per kWh discharged (battery wear): discharging only where the grid or the price pays more."""
EARLY_COST = 1e-4
"""Cost per kWh charged per step of delay: among equal plans, charge early."""
SHORT_WH = 1.0
"""A car falls short when its planned energy at departure is this much (Wh) below its need."""


@dataclass(frozen=True, slots=True)
class Car:
    """One connected car, as the scheduler sees it (energies in Wh, powers in W, both >= 0).

    It is plugged in for the steps [0, departure_step); `need_wh` is the energy it must hold at departure,
    `min_energy_wh` the lowest the site may discharge it to (V2X energy bound), `max_discharge_w` 0: no V2X.
    `efficiency` is one-way (grid -> battery when charging, battery -> grid when discharging)."""

    key: str
    energy_wh: float
    capacity_wh: float
    need_wh: float
    departure_step: int
    max_charge_w: float
    max_discharge_w: float = 0.0
    min_energy_wh: float = 0.0
    efficiency: float = 0.95
    station: str = ""


@dataclass(frozen=True, slots=True)
class Scope:
    """Limits and a setpoint per step for the cars of some stations (None: the whole site); NaN: not set."""

    stations: frozenset[str] | None
    import_limit_w: np.ndarray
    export_limit_w: np.ndarray
    setpoint_w: np.ndarray


@dataclass(slots=True)
class Problem:
    """What to schedule: the cars, the steps, the price per step (currency/kWh, NaN: none) and the scopes."""

    cars: list[Car]
    step_s: float
    n_steps: int
    price: np.ndarray | None = None
    scopes: list[Scope] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Shortfall:
    """A car whose need cannot be met: what it needs at departure and what the plan gives it (Wh)."""

    key: str
    need_wh: float
    planned_wh: float
    departure_step: int

    def to_dict(self) -> dict[str, float | str | int]:
        """JSON form."""
        return {"key": self.key, "needWh": round(self.need_wh, 1), "plannedWh": round(self.planned_wh, 1),
                "missingWh": round(self.need_wh - self.planned_wh, 1), "departureStep": self.departure_step}


@dataclass(slots=True)
class Plan:
    """A schedule: power per car and step (W; negative discharges), how it was made, who falls short."""

    power_w: np.ndarray
    keys: list[str]
    method: str  # "lp" or "heuristic"
    status: str  # "optimal", or why the heuristic answered ("time-budget", "solver-failed: ...")
    solve_s: float
    shortfalls: list[Shortfall]
    site_w: np.ndarray

    @property
    def feasible(self) -> bool:
        """Whether every car's need is met."""
        return not self.shortfalls

    def of(self, key: str) -> np.ndarray:
        """One car's power per step."""
        return self.power_w[self.keys.index(key)]


def priority_order(cars: list[Car]) -> list[int]:
    """The priority rule: earliest departure first, then the larger missing energy, then the key."""
    return sorted(range(len(cars)), key=lambda i: (cars[i].departure_step,
                                                   -(cars[i].need_wh - cars[i].energy_wh), cars[i].key))


def _nan(values: np.ndarray | None, n: int) -> np.ndarray:
    return np.full(n, np.nan) if values is None else np.asarray(values, dtype=float)


def _members(problem: Problem, scope: Scope) -> np.ndarray:
    if scope.stations is None:
        return np.arange(len(problem.cars))
    return np.array([i for i, c in enumerate(problem.cars) if c.station in scope.stations], dtype=int)


def _clip_need(car: Car) -> float:
    return min(max(car.need_wh, 0.0), car.capacity_wh)


def solve(problem: Problem, *, time_budget_s: float = 5.0) -> Plan:
    """The plan: the LP within the time budget, else the heuristic (see the module docstring); a budget of 0
    asks for the heuristic alone."""
    started = time.perf_counter()
    if not problem.cars or problem.n_steps <= 0:
        n = max(problem.n_steps, 0)
        return Plan(np.zeros((len(problem.cars), n)), [c.key for c in problem.cars], "lp", "optimal", 0.0, [],
                    np.zeros(n))
    try:
        if time_budget_s <= 0:
            raise _NoSolution("time-budget")
        power = _solve_lp(problem, time_budget_s)
        method, status = "lp", "optimal"
    except _NoSolution as e:
        log.warning("scheduler: %s; the heuristic answers", e)
        power = heuristic(problem)
        method, status = "heuristic", str(e)
    return _plan(problem, power, method, status, time.perf_counter() - started)


class _NoSolution(Exception):
    """HiGHS gave no usable solution (time budget, numerical trouble)."""


def _plan(problem: Problem, power: np.ndarray, method: str, status: str, seconds: float) -> Plan:
    dt_h = problem.step_s / 3600.0
    shortfalls = []
    for i, car in enumerate(problem.cars):
        p = power[i]
        energy = car.energy_wh + dt_h * (car.efficiency * np.clip(p, 0, None).sum()
                                         + np.clip(p, None, 0).sum() / car.efficiency)
        need = _clip_need(car)
        if energy < need - SHORT_WH:
            shortfalls.append(Shortfall(car.key, need, float(energy), car.departure_step))
    order = {i: n for n, i in enumerate(priority_order(problem.cars))}
    key_rank = {c.key: order[i] for i, c in enumerate(problem.cars)}
    shortfalls.sort(key=lambda s: key_rank[s.key])
    return Plan(power, [c.key for c in problem.cars], method, status, seconds, shortfalls, power.sum(axis=0))


def _solve_lp(problem: Problem, budget: float) -> np.ndarray:
    """Build and solve the LP (units: kW and kWh for conditioning); power per car and step in W."""
    cars, T = problem.cars, problem.n_steps
    dt = problem.step_s / 3600.0
    price = np.nan_to_num(_nan(problem.price, T), nan=0.0)
    n_cars = len(cars)
    rank = np.empty(n_cars)
    for n, i in enumerate(priority_order(cars)):
        rank[i] = n
    # variable layout: per car [c_0..c_D) [d_0..d_D) [e_1..e_D] (the last two only with V2X), then s per car
    # with a need, then u per (scope, step) with a setpoint
    c_idx: list[np.ndarray] = []
    d_idx: list[np.ndarray | None] = []
    e_idx: list[np.ndarray | None] = []
    lo: list[np.ndarray] = []
    hi: list[np.ndarray] = []
    cost: list[np.ndarray] = []
    nv = 0

    def new(count: int, low: np.ndarray | float, high: np.ndarray | float, obj: np.ndarray | float) -> np.ndarray:
        nonlocal nv
        idx = np.arange(nv, nv + count)
        nv += count
        lo.append(np.broadcast_to(np.asarray(low, float), (count,)))
        hi.append(np.broadcast_to(np.asarray(high, float), (count,)))
        cost.append(np.broadcast_to(np.asarray(obj, float), (count,)))
        return idx

    for car in cars:
        D = max(0, min(car.departure_step, T))
        steps = np.arange(D)
        c_idx.append(new(D, 0.0, car.max_charge_w / 1000, dt * (price[:D] + EARLY_COST * (steps + 1))))
        if car.max_discharge_w > 0 and D > 0:
            d_idx.append(new(D, 0.0, car.max_discharge_w / 1000, dt * (CYCLING_COST - price[:D])))
            e_low = min(car.min_energy_wh, car.energy_wh) / 1000
            e_idx.append(new(D, e_low, car.capacity_wh / 1000, 0.0))
        else:
            d_idx.append(None)
            e_idx.append(None)
    s_idx = np.full(n_cars, -1)
    for i, car in enumerate(cars):
        need = _clip_need(car)
        if need > car.energy_wh or (e_idx[i] is not None and need > 0):  # a V2X car can also lose what it has
            weight = SHORTFALL_COST * (1.0 + (n_cars - rank[i]) / n_cars)
            s_idx[i] = new(1, 0.0, need / 1000, weight)[0]

    rows_ub: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (row, col, value) blocks
    b_ub: list[float] = []
    rows_eq: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    b_eq: list[float] = []

    def add(rows: list[tuple[np.ndarray, np.ndarray, np.ndarray]], b: list[float], cols: np.ndarray,
            vals: np.ndarray, rhs: float) -> None:
        rows.append((np.full(len(cols), len(b)), cols, vals))
        b.append(rhs)

    for i, car in enumerate(cars):
        c, d, e = c_idx[i], d_idx[i], e_idx[i]
        eff = car.efficiency
        need = _clip_need(car) / 1000
        e0 = car.energy_wh / 1000
        if e is None:  # charge only: the energy only grows; its bounds bind at departure
            if len(c):
                add(rows_ub, b_ub, c, np.full(len(c), eff * dt), car.capacity_wh / 1000 - e0)
            if s_idx[i] >= 0:
                add(rows_ub, b_ub, np.append(c, s_idx[i]), np.append(np.full(len(c), -eff * dt), -1.0),
                    -(need - e0))
            continue
        assert d is not None
        # e_t - e_{t-1} - eff dt c_t + dt/eff d_t = 0 (e_0 is the car's energy now, a constant)
        D = len(c)
        n0 = len(b_eq)
        rows = np.arange(n0, n0 + D)
        r = [rows, rows, rows]
        cols = [e, c, d]
        vals = [np.ones(D), np.full(D, -eff * dt), np.full(D, dt / eff)]
        if D > 1:
            r.append(rows[1:])
            cols.append(e[:-1])
            vals.append(-np.ones(D - 1))
        rows_eq.append((np.concatenate(r), np.concatenate(cols), np.concatenate(vals)))
        b_eq.extend([e0] + [0.0] * (D - 1))
        if s_idx[i] >= 0:
            add(rows_ub, b_ub, np.array([e[-1], s_idx[i]]), np.array([-1.0, -1.0]), -need)

    for scope in problem.scopes:
        members = _members(problem, scope)
        imp, exp, setp = (_nan(scope.import_limit_w, T), _nan(scope.export_limit_w, T), _nan(scope.setpoint_w, T))
        parts_t, parts_c, parts_v = [np.zeros(0, int)], [np.zeros(0, int)], [np.zeros(0)]
        for i in members:  # the scope's net power per step: sum of c - d over its cars still plugged in
            D = len(c_idx[i])
            parts_t.append(np.arange(D))
            parts_c.append(c_idx[i])
            parts_v.append(np.ones(D))
            d = d_idx[i]
            if d is not None:
                parts_t.append(np.arange(D))
                parts_c.append(d)
                parts_v.append(-np.ones(D))
        ts, cols, vals = np.concatenate(parts_t), np.concatenate(parts_c), np.concatenate(parts_v)
        present = np.zeros(T, bool)
        present[ts] = True
        for values, sign in ((imp, 1.0), (exp, -1.0)):  # sign * P_t <= limit_t
            steps = np.flatnonzero(~np.isnan(values) & present)
            if len(steps):
                row_of = np.full(T, -1)
                row_of[steps] = np.arange(len(b_ub), len(b_ub) + len(steps))
                keep = row_of[ts] >= 0
                rows_ub.append((row_of[ts[keep]], cols[keep], sign * vals[keep]))
                b_ub.extend((values[steps] / 1000).tolist())
        steps = np.flatnonzero(~np.isnan(setp) & present)
        if len(steps):  # |P_t - setpoint_t| <= u_t, u_t costs TRACKING_COST per kWh
            u = new(len(steps), 0.0, np.inf, TRACKING_COST * dt)
            for sign in (1.0, -1.0):  # sign * (P_t - sp_t) - u_t <= 0
                row_of = np.full(T, -1)
                row_of[steps] = np.arange(len(b_ub), len(b_ub) + len(steps))
                keep = row_of[ts] >= 0
                rows_ub.append((row_of[ts[keep]], cols[keep], sign * vals[keep]))
                rows_ub.append((row_of[steps], u, -np.ones(len(steps))))
                b_ub.extend((sign * setp[steps] / 1000).tolist())

    def matrix(blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_rows: int) -> sp.csr_array | None:
        if not n_rows:
            return None
        r, cl, v = (np.concatenate(x) for x in zip(*blocks, strict=True))
        return sp.csr_array((v, (r, cl)), shape=(n_rows, nv))

    bounds = np.column_stack([np.concatenate(lo), np.concatenate(hi)])
    res = linprog(np.concatenate(cost), A_ub=matrix(rows_ub, len(b_ub)), b_ub=np.array(b_ub) if b_ub else None,
                  A_eq=matrix(rows_eq, len(b_eq)), b_eq=np.array(b_eq) if b_eq else None, bounds=bounds,
                  method="highs", options={"time_limit": max(budget, 0.001), "presolve": True})
    if res.status != 0 or res.x is None:
        raise _NoSolution("time-budget" if res.status == 1 else f"solver-failed: {res.message}")
    x = res.x
    power = np.zeros((n_cars, T))
    for i in range(n_cars):
        D = len(c_idx[i])
        power[i, :D] = x[c_idx[i]] * 1000
        d = d_idx[i]
        if d is not None:
            power[i, :D] -= x[d] * 1000
    power[np.abs(power) < 1e-3] = 0.0  # solver dust
    return power


def heuristic(problem: Problem) -> np.ndarray:
    """The fast fallback: step by step, each car gets what it must have now to make its departure (earliest
    departure first), then towards the setpoint (charging earliest departure first, discharging the latest first
    down to what each can still recover) or, without one, as much as it wants; every scope's limits cut the
    allocation in priority order."""
    cars, T = problem.cars, problem.n_steps
    n = len(cars)
    dt = problem.step_s / 3600.0
    order = np.array(priority_order(cars), dtype=int)
    dep = np.array([min(c.departure_step, T) for c in cars], float)[order]
    eff = np.array([c.efficiency for c in cars])[order]
    pmax = np.array([c.max_charge_w for c in cars])[order]
    dmax = np.array([c.max_discharge_w for c in cars])[order]
    energy = np.array([c.energy_wh for c in cars])[order]
    need = np.array([_clip_need(c) for c in cars])[order]
    cap = np.array([c.capacity_wh for c in cars])[order]
    emin = np.array([min(c.min_energy_wh, c.energy_wh) for c in cars])[order]
    rank_of = np.empty(n, dtype=int)
    rank_of[order] = np.arange(n)
    scopes = []
    for scope in problem.scopes:
        members = np.zeros(n, bool)
        members[rank_of[_members(problem, scope)]] = True
        scopes.append((members, _nan(scope.import_limit_w, T), _nan(scope.export_limit_w, T),
                       _nan(scope.setpoint_w, T)))
    site_sp = np.full(T, np.nan)
    for members, _, _, setp in scopes:
        if members.all():
            site_sp = np.where(np.isnan(site_sp), setp, site_sp)
    power = np.zeros((n, T))
    for t in range(T):
        here = dep > t
        later = np.maximum(dep - t - 1, 0)
        missing = np.maximum(need - energy, 0)
        must = np.clip((missing - eff * pmax * dt * later) / (eff * dt), 0, pmax) * here
        want = np.minimum(pmax, np.maximum(cap - energy, 0) / (eff * dt)) * here
        want_need = np.minimum(want, missing / (eff * dt))
        alloc = must.copy()
        sp_t = site_sp[t]
        if np.isnan(sp_t):
            alloc = np.maximum(alloc, want_need)
        elif sp_t > alloc.sum():
            extra = np.clip(want - alloc, 0, None)
            room = np.clip((sp_t - alloc.sum()) - (np.cumsum(extra) - extra), 0, extra)
            alloc += room
        discharge = np.zeros(n)
        if not np.isnan(sp_t) and sp_t < alloc.sum():
            # what each may give: down to the energy it can still recover before departure, not below its bound
            floor = np.maximum(emin, need - eff * pmax * dt * later)
            give = np.clip((energy - floor) * eff / dt, 0, dmax) * here * (alloc == 0)
            wanted = alloc.sum() - sp_t
            give_rev = give[::-1]
            taken_rev = np.clip(wanted - (np.cumsum(give_rev) - give_rev), 0, give_rev)
            discharge = taken_rev[::-1]
        for members, imp, exp, _ in scopes:
            if not np.isnan(imp[t]):
                a = alloc * members
                over = np.clip(imp[t] - (np.cumsum(a) - a), 0, a)
                alloc = np.where(members, over, alloc)
            if not np.isnan(exp[t]):
                dsc = discharge * members
                ok_rev = np.clip(exp[t] - (np.cumsum(dsc[::-1]) - dsc[::-1]), 0, dsc[::-1])
                discharge = np.where(members, ok_rev[::-1], discharge)
        p = alloc - discharge
        energy = energy + dt * (eff * alloc - discharge / eff)
        power[:, t] = p
    out = np.zeros((n, T))
    out[order] = power
    return out
