"""The V2G scheduler: per-EVSE power per time step for the connected cars, from their needs and the grid signals.

A linear program solved by HiGHS (highspy), written out in docs/grid.md. Hard: each car's power
limits (with a CC-CV taper near full where the car has one), energy (SoC) bounds and efficiency; each scope's (site,
group, station) import and export limits. Soft, in this order of weight (the `Objective`): each car's energy at
departure (a shortfall costs most, more for earlier departures: the priority rule), tracking of the grid setpoint
(by default a convex piecewise-linear penalty, steeper for larger deviations, close to their square), the price, a
penalty per kWh discharged (needless cycling), a tie-break that keeps the same car giving across re-plans, and a
tiny preference for charging early. The greedy
earliest-departure-first heuristic runs first: its plan warm-starts HiGHS (a feasible starting point; the optimum
is the same, found in fewer simplex iterations) and answers instead when HiGHS does not finish within the time
budget (or fails). A plan says how it was made and who falls short.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field

import highspy
import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)


def _quiet_first_highs() -> None:
    """HiGHS prints its banner to the process's stdout on its first construction, whatever the options: build
    that first instance with file descriptor 1 on /dev/null, so no command's stdout (JSON of the CLI) carries it."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


_quiet_first_highs()

SHORTFALL_COST = 1000.0
"""Cost per kWh of energy a car lacks at departure (x1 for the latest departure up to x2 for the earliest)."""
TRACKING_COST = 10.0
"""Cost per kWh of deviation from a setpoint (|site power - setpoint| x step length)."""
CYCLING_COST = 0.05
"""Cost per kWh discharged (battery wear): discharging only where the grid or the price pays more."""
EARLY_COST = 1e-4
"""Cost per kWh charged per step of delay: among equal plans, charge early."""
STAY_COST = 1e-3
"""Cost per kWh discharged, scaled from 0 for the car that stays longest (then the key) to this for the one that
leaves first, and twice that in the first step falling to once in the last: among cars that could give the same,
the favoured car gives first and goes on giving, re-plan after re-plan, the others after it. A tie left to the
solver moves the discharge from car to car at each re-plan: a new profile for each, and for an ISO 15118-20 car in
scheduled control a renegotiation, while the site's power dips between the one stopping and the other starting."""
SHORT_WH = 1.0
"""A car falls short when its planned energy at departure is this much (Wh) below its need."""
TAPER_TOL_WH = 0.5
"""A car with a taper nears full only asymptotically: the LP counts its need as met within this much (Wh)."""
TRACKING_BREAKS = (0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75)
"""The convex tracking penalty's breakpoints, as fractions of the scope's power range (the sum of its cars' charge
and discharge limits): the deviation costs TRACKING_COST per kWh up to the first, then more on each segment, the
slope of each the secant of the square over it (relative to the first): 1, 3.5, 7.5, 15, 27.5, 42.5, 62.5 and,
beyond the last, (0.75 + 1) / 0.02 = 87.5 (up to 875 per kWh: still below the least shortfall cost, 1,000, so needs
stay first)."""


@dataclass(frozen=True, slots=True)
class Objective:
    """The weights of the LP's objective (docs/grid.md, "The optimization"); the defaults are the CSMS's.

    `tracking`: "convex" (the piecewise-linear penalty of TRACKING_BREAKS: deviations spread over steps rather than
    left in a few large ones; close to the sum of squared deviations) or "linear" (cost per kWh of |deviation|
    alone, indifferent to how it is spread). `needs_first`: where a car has a taper, the needs are put first
    exactly (two stages: the least weighted shortfall, then the rest of the objective without exceeding it);
    False leaves it to the weights (with a `shortfall_cost` near the price scale, to trade energy for money)."""

    shortfall_cost: float = SHORTFALL_COST
    needs_first: bool = True
    tracking_cost: float = TRACKING_COST
    tracking: str = "convex"
    cycling_cost: float = CYCLING_COST
    early_cost: float = EARLY_COST

    def tracking_segments(self) -> tuple[tuple[float, float], ...]:
        """(upper breakpoint as a fraction of the scope's power range, cost multiplier) per segment."""
        if self.tracking == "linear":
            return ((np.inf, 1.0),)
        if self.tracking != "convex":
            raise ValueError(f"tracking must be 'convex' or 'linear', not {self.tracking!r}")
        edges = (0.0, *TRACKING_BREAKS, 1.0)
        first = TRACKING_BREAKS[0]
        return tuple((edges[j + 1] if j + 1 < len(edges) - 1 else np.inf, (edges[j] + edges[j + 1]) / first)
                     for j in range(len(edges) - 1))


@dataclass(frozen=True, slots=True)
class Car:
    """One connected car, as the scheduler sees it (energies in Wh, powers in W, both >= 0).

    It is plugged in for the steps [0, departure_step); `need_wh` is the energy it must hold at departure,
    `min_energy_wh` the lowest the site may discharge it to (V2X energy bound), `max_discharge_w` 0: no V2X.
    `efficiency` is one-way (grid -> battery when charging, battery -> grid when discharging). `taper_soc` < 1: a
    CC-CV taper, the charge power limit falling linearly from `max_charge_w` at that state of charge to 0 at a full
    battery (1: none)."""

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
    taper_soc: float = 1.0

    def taper_share(self, step_h: float) -> float:
        """The most of what is missing to full the battery can take in one step under the taper: 1 - exp(-k),
        k = efficiency x max_charge_w x step / (capacity x (1 - taper_soc)) (the linear fall integrated over the
        step); 1: no taper."""
        if self.taper_soc >= 1.0 or self.capacity_wh <= 0 or self.max_charge_w <= 0:
            return 1.0
        k = self.efficiency * self.max_charge_w * step_h / (self.capacity_wh * (1.0 - max(self.taper_soc, 0.0)))
        return float(-np.expm1(-k))


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
    objective: Objective = field(default_factory=Objective)


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
    objective: float = float("nan")  # the LP's objective value (NaN for the heuristic's plan)

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


def solve(problem: Problem, *, time_budget_s: float = 5.0, warm_start: bool = True) -> Plan:
    """The plan: the LP within the time budget, else the heuristic (see the module docstring); a budget of 0
    asks for the heuristic alone; `warm_start=False` solves the LP from scratch (the benchmark's comparison)."""
    started = time.perf_counter()
    if not problem.cars or problem.n_steps <= 0:
        n = max(problem.n_steps, 0)
        return Plan(np.zeros((len(problem.cars), n)), [c.key for c in problem.cars], "lp", "optimal", 0.0, [],
                    np.zeros(n))
    fallback = heuristic(problem)
    try:
        if time_budget_s <= 0:
            raise _NoSolution("time-budget")
        power, objective = _solve_lp(problem, time_budget_s - (time.perf_counter() - started),
                                     fallback if warm_start else None)
        method, status = "lp", "optimal"
    except _NoSolution as e:
        log.warning("scheduler: %s; the heuristic answers", e)
        power, objective = fallback, float("nan")
        method, status = "heuristic", str(e)
    plan = _plan(problem, power, method, status, time.perf_counter() - started)
    plan.objective = objective
    return plan


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


def _solve_lp(problem: Problem, budget: float, start: np.ndarray | None) -> tuple[np.ndarray, float]:
    """Build and solve the LP (units: kW and kWh for conditioning), warm-started from the plan `start` (W, feasible:
    the heuristic's) if given; power per car and step in W, and the objective value."""
    cars, T = problem.cars, problem.n_steps
    obj = problem.objective
    dt = problem.step_s / 3600.0
    price = np.nan_to_num(_nan(problem.price, T), nan=0.0)
    n_cars = len(cars)
    rank = np.empty(n_cars)
    for n, i in enumerate(priority_order(cars)):
        rank[i] = n
    stay = np.empty(n_cars)  # 0 for the car that stays longest, up to 1 for the one that leaves first
    for n, i in enumerate(sorted(range(n_cars), key=lambda i: (-cars[i].departure_step, cars[i].key))):
        stay[i] = n / max(n_cars - 1, 1)
    # variable layout: per car [c_0..c_D), [d_0..d_D) with V2X, [e_1..e_D] with V2X or a taper; then s per car
    # with a need; then per scope with a setpoint, u per (step, segment of the tracking penalty)
    c_idx: list[np.ndarray] = []
    d_idx: list[np.ndarray | None] = []
    e_idx: list[np.ndarray | None] = []
    taper = np.ones(n_cars)  # the share of what is missing to full one step may take (1: no taper)
    lo: list[np.ndarray] = []
    hi: list[np.ndarray] = []
    cost: list[np.ndarray] = []
    nv = 0

    def new(count: int, low: np.ndarray | float, high: np.ndarray | float, cst: np.ndarray | float) -> np.ndarray:
        nonlocal nv
        idx = np.arange(nv, nv + count)
        nv += count
        lo.append(np.broadcast_to(np.asarray(low, float), (count,)))
        hi.append(np.broadcast_to(np.asarray(high, float), (count,)))
        cost.append(np.broadcast_to(np.asarray(cst, float), (count,)))
        return idx

    for i, car in enumerate(cars):
        D = max(0, min(car.departure_step, T))
        steps = np.arange(D)
        c_max = np.full(D, car.max_charge_w / 1000)
        share = car.taper_share(dt)
        reach = car.energy_wh + car.efficiency * car.max_charge_w * dt * D
        if share < 1.0 and D > 0 and reach > car.taper_soc * car.capacity_wh:
            taper[i] = share
            c_max[0] = min(c_max[0], share * max(car.capacity_wh - car.energy_wh, 0.0) / 1000 / (car.efficiency * dt))
        c_idx.append(new(D, 0.0, c_max, dt * (price[:D] + obj.early_cost * (steps + 1))))
        v2x = car.max_discharge_w > 0 and D > 0
        give = dt * (obj.cycling_cost + STAY_COST * stay[i] * (2.0 - steps / T) - price[:D])
        d_idx.append(new(D, 0.0, car.max_discharge_w / 1000, give) if v2x else None)
        if v2x or taper[i] < 1.0:
            e_low = min(car.min_energy_wh, car.energy_wh) if v2x else car.energy_wh
            e_idx.append(new(D, e_low / 1000, car.capacity_wh / 1000, 0.0))
        else:
            e_idx.append(None)
    s_idx = np.full(n_cars, -1)
    need_lp = np.zeros(n_cars)  # kWh
    for i, car in enumerate(cars):
        need = _clip_need(car)
        if taper[i] < 1.0:
            need = min(need, car.capacity_wh - TAPER_TOL_WH)
        need_lp[i] = need / 1000
        if need > car.energy_wh or (d_idx[i] is not None and need > 0):  # a V2X car can also lose what it has
            weight = obj.shortfall_cost * (1.0 + (n_cars - rank[i]) / n_cars)
            s_idx[i] = new(1, 0.0, need / 1000, weight)[0]

    tracking: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
    # (u: steps x segments, steps, setpoint, members, segment widths: steps x segments)
    segments = obj.tracking_segments()
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
        need = need_lp[i]
        e0 = car.energy_wh / 1000
        if e is None:  # charge only: the energy only grows; its bounds bind at departure
            if len(c):
                add(rows_ub, b_ub, c, np.full(len(c), eff * dt), car.capacity_wh / 1000 - e0)
            if s_idx[i] >= 0:
                add(rows_ub, b_ub, np.append(c, s_idx[i]), np.append(np.full(len(c), -eff * dt), -1.0),
                    -(need - e0))
            continue
        # e_t - e_{t-1} - eff dt c_t + dt/eff d_t = 0 (e_0 is the car's energy now, a constant)
        D = len(c)
        n0 = len(b_eq)
        rows = np.arange(n0, n0 + D)
        r = [rows, rows]
        cols = [e, c]
        vals = [np.ones(D), np.full(D, -eff * dt)]
        if d is not None:
            r.append(rows)
            cols.append(d)
            vals.append(np.full(D, dt / eff))
        if D > 1:
            r.append(rows[1:])
            cols.append(e[:-1])
            vals.append(-np.ones(D - 1))
        rows_eq.append((np.concatenate(r), np.concatenate(cols), np.concatenate(vals)))
        b_eq.extend([e0] + [0.0] * (D - 1))
        if taper[i] < 1.0 and D > 1:  # eff dt c_t <= share (capacity - e_{t-1}), t >= 1 (t = 0: c's bound)
            a = taper[i]
            t_rows = np.arange(len(b_ub), len(b_ub) + D - 1)
            rows_ub.append((np.concatenate([t_rows, t_rows]), np.concatenate([c[1:], e[:-1]]),
                            np.concatenate([np.full(D - 1, eff * dt), np.full(D - 1, a)])))
            b_ub.extend([a * car.capacity_wh / 1000] * (D - 1))
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
        if len(steps):  # |P_t - setpoint_t| <= sum_j u_{t,j}, u_{t,j} in [0, width_j] costs its segment's rate
            span = sum(cars[i].max_charge_w + cars[i].max_discharge_w for i in members) / 1000
            edges = np.array([0.0] + [b for b, _ in segments])
            widths = np.broadcast_to(np.diff(edges * span), (len(steps), len(segments)))
            widths = np.where(np.isnan(widths), np.inf, widths)  # inf x 0 (no range): no bound
            rates = np.array([m for _, m in segments]) * obj.tracking_cost * dt
            u = new(len(steps) * len(segments), 0.0, widths.ravel(),
                    np.tile(rates, len(steps))).reshape(len(steps), len(segments))
            tracking.append((u, steps, setp, members, widths))
            for sign in (1.0, -1.0):  # sign * (P_t - sp_t) - sum_j u_{t,j} <= 0
                row_of = np.full(T, -1)
                row_of[steps] = np.arange(len(b_ub), len(b_ub) + len(steps))
                keep = row_of[ts] >= 0
                rows_ub.append((row_of[ts[keep]], cols[keep], sign * vals[keep]))
                rows_ub.append((np.repeat(row_of[steps], len(segments)), u.ravel(), -np.ones(u.size)))
                b_ub.extend((sign * setp[steps] / 1000).tolist())

    n_ub, n_eq = len(b_ub), len(b_eq)
    blocks = rows_ub + [(r + n_ub, cl, v) for r, cl, v in rows_eq]
    if blocks:
        r, cl, v = (np.concatenate(x) for x in zip(*blocks, strict=True))
    else:
        r, cl, v = np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    a = sp.csc_array((v, (r, cl)), shape=(n_ub + n_eq, nv))
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = nv, n_ub + n_eq
    lp.col_cost_ = np.concatenate(cost)
    upper = np.concatenate(hi)
    lp.col_lower_, lp.col_upper_ = np.concatenate(lo), upper
    lp.row_lower_ = np.concatenate([np.full(n_ub, -np.inf), np.array(b_eq, float)])
    lp.row_upper_ = np.concatenate([np.array(b_ub, float), np.array(b_eq, float)])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
    deadline = time.perf_counter() + budget
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", max(budget, 0.001))
    h.passModel(lp)
    if start is not None:
        h.setSolution(_warm_start(problem, start, nv, c_idx, d_idx, e_idx, s_idx, tracking, upper))
    s_cols = s_idx[s_idx >= 0].astype(np.int32)
    if obj.needs_first and (taper[s_idx >= 0] < 1.0).any():
        # needs first, exactly: under a taper one more kWh early shrinks the shortfall at departure only by the
        # product of the later steps' exp(-k), so a weight alone would let tracking or price win over a car's last
        # Wh. Stage 1 minimises the weighted shortfalls alone; stage 2 the whole objective without exceeding them.
        full, cols = lp.col_cost_, np.arange(nv, dtype=np.int32)
        needs_only = np.zeros(nv)
        needs_only[s_cols] = full[s_cols]
        h.changeColsCost(nv, cols, needs_only)
        _run(h)
        least = float(h.getInfo().objective_function_value)
        h.changeColsCost(nv, cols, full)
        h.addRow(-np.inf, least + 1e-6 + 1e-9 * abs(least), len(s_cols), s_cols, full[s_cols])
        h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 0.001))
    _run(h)
    x = np.asarray(h.getSolution().col_value)
    power = np.zeros((n_cars, T))
    for i in range(n_cars):
        D = len(c_idx[i])
        power[i, :D] = x[c_idx[i]] * 1000
        d = d_idx[i]
        if d is not None:
            power[i, :D] -= x[d] * 1000
    power[np.abs(power) < 1e-3] = 0.0  # solver dust
    return power, float(h.getInfo().objective_function_value)


def _run(h: highspy.Highs) -> None:
    """Run HiGHS; anything but an optimum is no solution (time budget, numerical trouble)."""
    h.run()
    model_status = h.getModelStatus()
    if model_status != highspy.HighsModelStatus.kOptimal:
        timed_out = model_status == highspy.HighsModelStatus.kTimeLimit
        raise _NoSolution("time-budget" if timed_out else f"solver-failed: {h.modelStatusToString(model_status)}")


def _warm_start(problem: Problem, start: np.ndarray, nv: int, c_idx: list[np.ndarray],
                d_idx: list[np.ndarray | None], e_idx: list[np.ndarray | None], s_idx: np.ndarray,
                tracking: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
                upper: np.ndarray) -> highspy.HighsSolution:
    """The LP's variables for the plan `start` (W): powers, the energies, shortfalls and setpoint deviations it
    gives (filling the tracking penalty's segments from the cheapest); a feasible point when the plan keeps the
    limits (the heuristic's does)."""
    x0 = np.zeros(nv)
    p0 = start / 1000
    dt = problem.step_s / 3600.0
    for i, car in enumerate(problem.cars):
        c, d, e = c_idx[i], d_idx[i], e_idx[i]
        D = len(c)
        x0[c] = np.clip(p0[i, :D], 0, upper[c])
        gained = car.efficiency * dt * x0[c]
        if d is not None:
            x0[d] = np.clip(-p0[i, :D], 0, None)
            gained = gained - dt / car.efficiency * x0[d]
        if e is not None:
            x0[e] = car.energy_wh / 1000 + np.cumsum(gained)
        if s_idx[i] >= 0:
            final = car.energy_wh / 1000 + gained.sum()
            x0[s_idx[i]] = np.clip(upper[s_idx[i]] - final, 0, upper[s_idx[i]])
    for u, steps, setp, members, widths in tracking:
        dev = np.abs(p0[members][:, steps].sum(axis=0) - setp[steps] / 1000)
        below = np.zeros_like(widths)  # deviation covered by the cheaper segments
        below[:, 1:] = np.cumsum(widths[:, :-1], axis=1)
        x0[u] = np.clip(dev[:, None] - below, 0, widths)
    warm = highspy.HighsSolution()
    warm.col_value = x0
    warm.value_valid = True
    return warm


def heuristic(problem: Problem) -> np.ndarray:
    """The fast fallback: step by step, each car gets what it must have now to make its departure (earliest
    departure first; within its taper's limit, which this rule does not foresee), then towards the setpoint
    (charging earliest departure first, discharging the latest first down to what each can still recover) or,
    without one, as much as it wants; every scope's limits cut the allocation in priority order."""
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
    share = np.array([c.taper_share(dt) for c in cars])[order]
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
        room_now = np.maximum(cap - energy, 0) * share / (eff * dt)  # the taper's limit now (no taper: to full)
        must = np.clip((missing - eff * pmax * dt * later) / (eff * dt), 0, np.minimum(pmax, room_now)) * here
        want = np.minimum(pmax, room_now) * here
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
