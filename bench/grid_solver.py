"""The grid scheduler alone: N connected cars over a 24 h horizon at 15-min steps (96 steps), solved by the LP
(HiGHS, warm-started from the heuristic's plan), by the LP from scratch (`lp-cold`, the scheduler before the warm
start: the same optimum, compare the objective) and by the fallback heuristic; time and peak memory of each, in a
fresh process per case.

    .venv/bin/python bench/grid_solver.py --cars 1000 10000

The fleet (seeded): departures uniform over 2-24 h, 10-60 kWh to add, 11 kW charging, 30 % of the cars V2X
(11 kW discharge, kept above 20 % SoC), 93 % one-way efficiency; the site may import 40 % of the fleet's
maximum; a price curve (cheap at night, dear in the evening) and a setpoint asking -50 kW per 100 cars for two hours.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from v2gstack.grid.scheduler import Car, Problem, Scope, solve  # noqa: E402

STEPS = 96
STEP_S = 900.0


def fleet(n: int, seed: int = 1) -> Problem:
    """The benchmark's problem for n cars."""
    rng = np.random.default_rng(seed)
    cars = []
    for i in range(n):
        capacity = float(rng.choice([40_000, 60_000, 80_000]))
        energy = float(rng.uniform(0.1, 0.5)) * capacity
        v2x = rng.random() < 0.3
        cars.append(Car(f"CS{i // 10}/{i % 10 + 1}", energy, capacity,
                        min(capacity, energy + float(rng.uniform(10_000, 60_000))), int(rng.integers(8, STEPS + 1)),
                        11_000.0, 11_000.0 if v2x else 0.0, 0.2 * capacity if v2x else 0.0, 0.93, f"CS{i // 10}"))
    hours = np.arange(STEPS) * STEP_S / 3600
    price = 0.20 + 0.15 * np.exp(-((hours - 19) ** 2) / 4) - 0.08 * ((hours < 6) | (hours > 22))
    setpoint = np.full(STEPS, np.nan)
    setpoint[8:16] = -50_000.0 * n / 100
    site = Scope(None, np.full(STEPS, 0.4 * n * 11_000.0), np.full(STEPS, 0.2 * n * 11_000.0), setpoint)
    return Problem(cars, STEP_S, STEPS, price=price, scopes=[site])


def one(n: int, method: str, budget: float) -> dict[str, object]:
    """Solve one case in this process; its figures."""
    problem = fleet(n)
    started = time.perf_counter()
    plan = solve(problem, time_budget_s=0 if method == "heuristic" else budget, warm_start=method != "lp-cold")
    seconds = time.perf_counter() - started
    site = plan.site_w
    setpoint = problem.scopes[0].setpoint_w
    mask = ~np.isnan(setpoint)
    return {"cars": n, "asked": method, "method": plan.method, "status": plan.status, "seconds": round(seconds, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "short": len(plan.shortfalls),
            "missing_kwh": round(sum(s.need_wh - s.planned_wh for s in plan.shortfalls) / 1000, 1),
            "tracking_mae_kw": round(float(np.abs(site[mask] - setpoint[mask]).mean()) / 1000, 1),
            "cost": round(float((problem.price * site).sum() * STEP_S / 3600 / 1000), 2),
            "objective": round(plan.objective, 3)}


def main() -> None:
    """Run each (cars, method) case in a fresh process and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cars", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--budget", type=float, default=600.0, help="the LP's time budget, seconds")
    ap.add_argument("--methods", nargs="+", default=["lp", "lp-cold", "heuristic"],
                    choices=["lp", "lp-cold", "heuristic"])
    ap.add_argument("--one", nargs=2, metavar=("CARS", "METHOD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(int(args.one[0]), args.one[1], args.budget)))
        return
    base = subprocess.run([sys.executable, "-c", "import resource, numpy, scipy.sparse, highspy; "
                           "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"],
                          capture_output=True, text=True, check=True)
    print(f"baseline RSS of a process with numpy, scipy and highspy loaded: {float(base.stdout):.1f} MiB")
    print(f"{'cars':>6} {'asked':>9} {'method':>9} {'status':>12} {'seconds':>8} {'RSS MiB':>8} {'short':>6} "
          f"{'missing kWh':>11} {'track MAE kW':>12} {'cost':>9} {'LP objective':>14}")
    for n in args.cars:
        for method in args.methods:
            out = subprocess.run([sys.executable, __file__, "--one", str(n), method, "--budget", str(args.budget)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['cars']:>6} {r['asked']:>9} {r['method']:>9} {r['status']:>12} {r['seconds']:>8} "
                  f"{r['peak_rss_mib']:>8} {r['short']:>6} {r['missing_kwh']:>11} {r['tracking_mae_kw']:>12} "
                  f"{r['cost']:>9} {r['objective']:>14}", flush=True)


if __name__ == "__main__":
    main()
