"""Our grid scheduler as an EV2Gym policy, against EV2Gym's own heuristics and MPC, by EV2Gym's own statistics.

Runs in the bench's own venv (`make ev2gym-venv`: ev2gym and the size-limited gurobipy from PyPI, v2gstack installed
into it without its dependencies), never in the project's:

    .venv-ev2gym/bin/python bench/ev2gym_compare.py --scenarios V2GProfitMax PublicPST --seeds 1 2 3

Each (scenario, seed, algorithm) is one EV2Gym episode of the scenario file shipped with ev2gym; one seed gives every
algorithm the same day, cars, prices and setpoints. Our policy re-solves the LP of `v2gstack.grid.scheduler` at every
step (receding horizon, as the CSMS re-plans): the cars plugged in now (energy, desired energy, departure, power
limits, V2X floor), each transformer's limits over the horizon (its demand-response events as EV2Gym announces them,
minus its inflexible load and solar forecasts), EV2Gym's price and, where the scenario has one, its power setpoint;
it knows nothing of cars still to come (the MPC does: it reads EV2Gym's EV profiles). It sends the plan's first step
as EV2Gym actions (fraction of the charger's current). Solve time is measured per step for ours and the MPC.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np

try:
    import ev2gym
    from ev2gym.models.ev2gym_env import EV2Gym
except ImportError:  # pragma: no cover - the bench's own venv has it
    sys.exit("ev2gym is missing: run `make ev2gym-venv` and use .venv-ev2gym/bin/python")

from v2gstack.grid.scheduler import Car, Objective, Problem, Scope, solve

STAT_KEYS = ("total_profits", "tracking_error", "energy_tracking_error", "energy_user_satisfaction",
             "average_user_satisfaction", "min_energy_user_satisfaction", "total_transformer_overload",
             "battery_degradation", "total_energy_charged", "total_energy_discharged", "total_ev_served")


def _efficiency(value: Any, amps: float) -> float:
    """EV2Gym's efficiency: a number, or a table by current in A (percent)."""
    if isinstance(value, dict):
        return float(value.get(round(abs(amps)), 100)) / 100 if value else 1.0
    return float(value)


class V2GStackPolicy:
    """EV2Gym policy: map the env's state onto `v2gstack.grid.scheduler.Problem`, solve, map power back to actions.

    EV2Gym's battery model: power at the charger equals the battery's energy change (its efficiency lowers the
    power a given current gives, it loses nothing between grid and battery), so the cars are given efficiency 1
    and power limits of efficiency x current x voltage, capped by the car's own."""

    algo_name = "v2gstack LP"

    def __init__(self, env: Any, time_budget_s: float = 2.0, objective: Objective | None = None,
                 taper: bool = True, need_margin_wh: float = 5.0, **_: Any) -> None:
        self.env = env
        self.need_margin_wh = need_margin_wh
        self.time_budget_s = time_budget_s
        self.objective = objective or Objective()
        self.taper = taper
        self.solve_s: list[float] = []
        self.methods: list[str] = []

    def _car(self, cs: Any, ev: Any, t: int, horizon: int) -> tuple[Car, float, float, float, float]:
        phases = min(cs.phases, ev.ev_phases)
        volts = cs.voltage * math.sqrt(phases)
        amps_c = cs.max_charge_current
        eff_c = _efficiency(ev.charge_efficiency, amps_c)
        p_c = eff_c * min(amps_c * volts, ev.max_ac_charge_power * 1000)
        amps_d = abs(cs.max_discharge_current)
        eff_d = _efficiency(ev.discharge_efficiency, amps_d)
        p_d = eff_d * min(amps_d * volts, abs(ev.max_discharge_power) * 1000) if self.env.config["v2g_enabled"] \
            else 0.0
        # the car is charged at steps t .. time_of_departure (it leaves after that step) within the episode
        departure = min(ev.time_of_departure - t + 1, horizon)
        car = Car(key=f"{cs.id}.{ev.id}", energy_wh=ev.current_capacity * 1000,
                  capacity_wh=ev.battery_capacity * 1000, need_wh=ev.desired_capacity * 1000 - self.need_margin_wh,
                  departure_step=max(departure, 1), max_charge_w=max(p_c, 0.0), max_discharge_w=max(p_d, 0.0),
                  min_energy_wh=ev.min_battery_capacity * 1000, efficiency=1.0, station=str(cs.id),
                  taper_soc=self._taper_soc(ev, p_c, eff_c) if self.taper else 1.0)
        return car, volts, eff_c, eff_d, amps_c

    def _taper_soc(self, ev: Any, p_c: float, eff_c: float) -> float:
        """EV2Gym's two-stage battery (acnportal's): above the transition SoC, whatever the current, what the
        battery lacks to full falls by exp(-k) per step, k = multiplier x efficiency x the car's maximum power x
        step / capacity / (1 - transition SoC). The scheduler's taper (power falling linearly to 0 at full from
        `taper_soc`, at our power limit p_c) falls by exp(-p_c x step / capacity / (1 - taper_soc)): equal k."""
        ts = float(ev.transition_soc)
        if ts >= 1.0 or p_c <= 0:
            return 1.0
        step_h = self.env.timescale / 60.0
        k = float(getattr(ev, "transition_soc_multiplier", 1.0)) * eff_c * ev.max_ac_charge_power * step_h \
            / ev.battery_capacity / (1.0 - ts)
        return max(0.0, 1.0 - p_c / 1000 * step_h / (ev.battery_capacity * k))

    def problem(self) -> tuple[Problem, list[tuple[int, Any, Any, float]]]:
        """The scheduler's problem at the env's current step; per car its port index, charger, EV and volts."""
        env = self.env
        t = env.current_step
        horizon = env.simulation_length - t
        cars, where = [], []
        port = 0
        for cs in env.charging_stations:
            for ev in cs.evs_connected:
                if ev is not None:
                    car, volts, *_ = self._car(cs, ev, t, horizon)
                    cars.append(car)
                    where.append((port, cs, ev, volts))
                port += 1
        n = max([c.departure_step for c in cars], default=1)
        price = -np.asarray(env.charge_prices[0, t:t + n], float)  # EV2Gym's charge price is negative: a cost
        scopes = []
        for tr in env.transformers:
            limit = np.asarray(tr.get_power_limits(step=t, horizon=n), float)
            base = np.zeros(n)  # inflexible load and solar now, their forecasts later (kW)
            base[0] = tr.inflexible_load[t] + tr.solar_power[t]
            later = (np.asarray(tr.inflexible_load_forecast, float) + np.asarray(tr.pv_generation_forecast, float))
            k = min(n - 1, max(len(later) - t - 1, 0))
            base[1:1 + k] = later[t + 1:t + 1 + k]
            stations = frozenset(str(i) for i in tr.cs_ids)
            setpoint = np.full(n, np.nan)
            scopes.append(Scope(stations, np.clip(limit - base, 0, None) * 1000, np.clip(limit + base, 0, None) * 1000,
                                setpoint))
        for cs in env.charging_stations:  # the ports of one charger share its current
            if cs.n_ports > 1:
                p = cs.get_max_power() * 1000
                scopes.append(Scope(frozenset({str(cs.id)}), np.full(n, p), np.full(n, p), np.full(n, np.nan)))
        if env.config.get("power_setpoint_enabled"):
            sp = np.full(n, np.nan)
            seg = np.asarray(env.power_setpoints[t:t + n], float) * 1000
            sp[:len(seg)] = seg
            scopes.append(Scope(None, np.full(n, np.nan), np.full(n, np.nan), sp))
        return Problem(cars, env.timescale * 60.0, n, price=price, scopes=scopes, objective=self.objective), where

    def get_action(self, env: Any) -> np.ndarray:
        """One step: solve over the cars plugged in now, send the plan's first step."""
        self.env = env
        actions = np.zeros(env.number_of_ports)
        problem, where = self.problem()
        if not problem.cars:
            return actions
        started = time.perf_counter()
        plan = solve(problem, time_budget_s=self.time_budget_s)
        self.solve_s.append(time.perf_counter() - started)
        self.methods.append(plan.method)
        for i, (port, cs, ev, volts) in enumerate(where):
            p = float(plan.power_w[i, 0])
            if p > 0:
                amps = p / volts
                for _ in range(2):  # the efficiency depends on the current (EV2Gym's tables)
                    amps = p / (_efficiency(ev.charge_efficiency, amps) * volts)
                actions[port] = min(amps / cs.max_charge_current, 1.0)
            elif p < 0:
                amps = -p / volts
                for _ in range(2):
                    amps = -p / (_efficiency(ev.discharge_efficiency, amps) * volts)
                actions[port] = -min(amps / abs(cs.max_discharge_current), 1.0)
        return actions


def scenario_file(name: str, workdir: Path) -> Path:
    """The scenario YAML shipped with ev2gym, its relative data paths made absolute."""
    pkg = Path(ev2gym.__file__).resolve().parent
    text = (pkg / "example_config_files" / f"{name}.yaml").read_text()
    out = workdir / f"{name}.yaml"
    out.write_text(text.replace("./ev2gym/", f"{pkg}/"))
    return out


def ours(name: str, env: Any) -> V2GStackPolicy:
    """Our policy; `ours` is the CSMS's objective, `ours:key=value,...` a variant for the comparison only:
    `tracking=linear` (the penalty per kWh of |deviation| alone), `taper=off` (the LP not told of EV2Gym's CC-CV
    taper), `margin=Wh` (the need asked of the LP below EV2Gym's desired energy; default 5: EV2Gym rounds a
    charging car's energy up to 10 Wh, so 5 Wh short is full for it), `shortfall=X` (cost per kWh a car lacks at
    departure instead of 1,000, and the needs no longer put first exactly: near the price scale it trades cars'
    energy for money, as EV2Gym's MPC does; never the CSMS's default), `track=X` (cost per kWh of deviation from
    the setpoint in the first segment instead of 10; 0: the price alone, as EV2Gym's MPCs, which do not track)."""
    options = dict(kv.split("=", 1) for kv in name.partition(":")[2].split(",") if kv)
    shortfall = options.pop("shortfall", None)
    objective = Objective(tracking=options.pop("tracking", "convex"), needs_first=shortfall is None,
                          shortfall_cost=Objective().shortfall_cost if shortfall is None else float(shortfall),
                          tracking_cost=float(options.pop("track", Objective().tracking_cost)))
    taper = options.pop("taper", "on") != "off"
    margin = float(options.pop("margin", 5.0))
    if options:
        raise ValueError(f"unknown options of ours: {sorted(options)}")
    return V2GStackPolicy(env, objective=objective, taper=taper, need_margin_wh=margin)


def make_policy(name: str, env: Any, horizon: int) -> Any:
    """An algorithm by name."""
    from ev2gym.baselines import heuristics as h
    if name == "ours" or name.startswith("ours:"):
        return ours(name, env)
    if name.startswith("eMPC") or name.startswith("OCMF"):
        from ev2gym.baselines.mpc import eMPC, ocmf_mpc
        cls = getattr(eMPC, name, None) or getattr(ocmf_mpc, name)
        return cls(env, control_horizon=horizon, verbose=False)
    cls = getattr(h, name)
    try:
        return cls(env=env)
    except TypeError:
        return cls()


def episode(config: Path, seed: int, algo: str, horizon: int) -> dict[str, Any]:
    """One episode; EV2Gym's statistics plus time per decision."""
    env = EV2Gym(config_file=str(config), seed=seed, save_replay=False, save_plots=False, verbose=False)
    policy = make_policy(algo, env, horizon)
    step_s = []
    stats: dict[str, Any] = {}
    done = False
    while not done:
        started = time.perf_counter()
        actions = policy.get_action(env)
        step_s.append(time.perf_counter() - started)
        _, _, done, _, stats = env.step(actions)
    row = {k: float(np.asarray(stats[k]).reshape(-1)[0]) for k in STAT_KEYS}
    row.update(scenario=config.stem, seed=seed, algo=algo, evs=len(env.EVs), steps=len(step_s),
               decide_mean_s=float(np.mean(step_s)), decide_max_s=float(np.max(step_s)))
    if isinstance(policy, V2GStackPolicy) and policy.solve_s:
        row.update(solve_mean_s=float(np.mean(policy.solve_s)), solve_max_s=float(np.max(policy.solve_s)),
                   lp_share=policy.methods.count("lp") / len(policy.methods))
    if hasattr(policy, "total_exec_time"):
        row.update(gurobi_s=float(policy.total_exec_time))
    return row


DEFAULT_ALGOS = {
    "V2GProfitMax": ["ours", "ChargeAsFastAsPossible", "ChargeAsFastAsPossibleToDesiredCapacity",
                     "ChargeAsLateAsPossible", "RoundRobin", "RoundRobin_GF", "eMPC_V2G"],
    "PublicPST": ["ours", "ChargeAsFastAsPossible", "ChargeAsFastAsPossibleToDesiredCapacity",
                  "ChargeAsLateAsPossible", "RoundRobin", "RoundRobin_GF", "RoundRobin_GF_off_allowed", "eMPC_G2V"],
    "V2Ggrid": ["ours", "ChargeAsFastAsPossible", "ChargeAsLateAsPossible", "RoundRobin", "RoundRobin_GF",
                "eMPC_V2G"],
}


def main() -> None:
    """Run the grid of cases; one JSON line per episode, then a table of means over the seeds."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=["V2GProfitMax", "PublicPST"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--algos", nargs="+", help="default: per scenario, ours + EV2Gym's heuristics + its MPC")
    ap.add_argument("--mpc-horizon", type=int, default=10, help="the MPC's control horizon (steps)")
    ap.add_argument("--out", type=Path, help="also write the JSON lines here")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        os.chdir(workdir)  # EV2Gym writes ./replay and ./results relative to the working directory
        for name in args.scenarios:
            config = scenario_file(name, workdir)
            for algo in args.algos or DEFAULT_ALGOS[name]:
                for seed in args.seeds:
                    try:
                        row = episode(config, seed, algo, args.mpc_horizon)
                    except Exception as e:  # a baseline that cannot run is reported, not fatal
                        row = {"scenario": name, "seed": seed, "algo": algo,
                               "error": f"{type(e).__name__}: {e}".splitlines()[0][:200]}
                        traceback.print_exc(limit=2, file=sys.stderr)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if args.out:
                        with args.out.open("a") as f:
                            f.write(json.dumps(row) + "\n")
    print_table(rows)


def print_table(rows: list[dict[str, Any]]) -> None:
    """Means over the seeds per scenario and algorithm."""
    cols = [("total_profits", "profit EUR", 8, 2), ("tracking_error", "track sq.err", 12, 0),
            ("energy_tracking_error", "track kWh", 9, 1), ("energy_user_satisfaction", "E-sat %", 7, 1),
            ("min_energy_user_satisfaction", "min sat %", 9, 1), ("total_transformer_overload", "overload", 8, 1),
            ("battery_degradation", "degrad.", 8, 4), ("decide_mean_s", "s/step", 7, 3),
            ("decide_max_s", "max s", 7, 3)]
    print()
    print(f"{'scenario':<13} {'algorithm':<40} {'n':>2} " + " ".join(f"{h:>{w}}" for _, h, w, _ in cols))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["algo"]), []).append(r)
    for (scen, algo), rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            print(f"{scen:<13} {algo:<40}  - {rs[0]['error']}")
            continue
        cells = " ".join(f"{np.mean([r[k] for r in ok]):>{w}.{d}f}" for k, _, w, d in cols)
        print(f"{scen:<13} {algo:<40} {len(ok):>2} {cells}")


if __name__ == "__main__":
    main()
