"""The scheduler on cases small enough to check by hand: needs, price, limits, the priority rule when needs cannot
all be met, V2X setpoint tracking within the export limit and the energy bounds, and the fallback heuristic."""

from __future__ import annotations

import numpy as np
import pytest

from v2gstack.grid.scheduler import Car, Objective, Problem, Scope, heuristic, solve

HOUR = 3600.0


def site(n: int, *, imp: float = np.nan, exp: float = np.nan, setpoint: list[float] | None = None) -> Scope:
    return Scope(None, np.full(n, imp), np.full(n, exp), np.array(setpoint if setpoint else [np.nan] * n, float))


def car(key: str, need: float, dep: int, **kw: float) -> Car:
    values = {"energy_wh": 0.0, "capacity_wh": 60_000.0, "max_charge_w": 11_000.0, "efficiency": 1.0, **kw}
    return Car(key, need_wh=need, departure_step=dep, **values)  # type: ignore[arg-type]


def test_one_car_charges_its_need_early() -> None:
    plan = solve(Problem([car("a", 10_000, 2)], HOUR, 3))
    assert plan.method == "lp" and plan.feasible
    assert plan.of("a").tolist() == pytest.approx([10_000, 0, 0], abs=1)


def test_the_price_moves_charging_to_the_cheap_hour() -> None:
    plan = solve(Problem([car("a", 10_000, 2)], HOUR, 2, price=np.array([0.5, 0.1])))
    assert plan.of("a").tolist() == pytest.approx([0, 10_000], abs=1)


def test_efficiency_costs_grid_energy() -> None:
    plan = solve(Problem([car("a", 9_000, 1, efficiency=0.9)], HOUR, 1))
    assert plan.of("a")[0] == pytest.approx(10_000, abs=1)


def test_import_limit_and_the_priority_rule() -> None:
    """6 kW for the site over two hours (12 kWh) for needs of 6 + 10 kWh: the car leaving first (after hour one)
    gets its 6 kWh; the other is reported 4 kWh short."""
    problem = Problem([car("late", 10_000, 2), car("early", 6_000, 1)], HOUR, 2, scopes=[site(2, imp=6_000)])
    for plan in (solve(problem), solve(problem, time_budget_s=0)):
        assert not plan.feasible
        assert plan.of("early").tolist() == pytest.approx([6_000, 0], abs=1)
        assert plan.of("late").tolist() == pytest.approx([0, 6_000], abs=1)
        assert [(s.key, round(s.need_wh - s.planned_wh)) for s in plan.shortfalls] == [("late", 4_000)]
        assert plan.site_w.max() <= 6_000 + 1


def test_v2x_follows_a_setpoint_and_still_makes_its_departure() -> None:
    """-10 kW asked for hour one: a car at 40 kWh that must leave at 40 kWh after four hours discharges 10 kWh, then
    recovers it (10 kW at most) before it leaves."""
    problem = Problem([car("v", 40_000, 4, energy_wh=40_000, max_discharge_w=10_000, max_charge_w=10_000)], HOUR, 4,
                      scopes=[site(4, setpoint=[-10_000, np.nan, np.nan, np.nan])])
    for plan in (solve(problem), solve(problem, time_budget_s=0)):
        p = plan.of("v")
        assert p[0] == pytest.approx(-10_000, abs=1), plan.method
        assert p.sum() == pytest.approx(0, abs=1) and plan.feasible


def test_export_limit_and_energy_bound_cap_the_discharge() -> None:
    """-20 kW asked; the site may export 5 kW: 5 kW. Another car may only go down 2 kWh: 2 kW more at most."""
    a = car("a", 0, 2, energy_wh=30_000, max_discharge_w=10_000)
    plan = solve(Problem([a], HOUR, 2, scopes=[site(2, exp=5_000, setpoint=[-20_000, np.nan])]))
    assert plan.of("a")[0] == pytest.approx(-5_000, abs=1)
    b = car("b", 0, 2, energy_wh=12_000, min_energy_wh=10_000, max_discharge_w=10_000)
    plan = solve(Problem([b], HOUR, 2, scopes=[site(2, setpoint=[-20_000, np.nan])]))
    assert plan.of("b")[0] == pytest.approx(-2_000, abs=1)


def test_no_needless_cycling() -> None:
    """Without a setpoint or a price spread nothing is discharged, even by a car that could."""
    plan = solve(Problem([car("v", 5_000, 3, energy_wh=20_000, max_discharge_w=10_000)], HOUR, 3))
    assert (plan.of("v") >= 0).all() and plan.of("v").sum() == pytest.approx(0, abs=1)


def test_the_same_car_keeps_giving_across_re_plans() -> None:
    """-20 kW asked for two hours (15-min steps) of four cars that could each give it alone: the one that stays
    longest gives it all, and keeps giving as the plan is made again step after step with the energies moved on
    (a tie left to the solver would move the discharge between cars: a new profile, a dip, a renegotiation)."""
    step, n = 900.0, 8
    cars = [car(k, 30_000, dep, energy_wh=50_000, max_discharge_w=25_000, max_charge_w=25_000)
            for k, dep in (("a", 16), ("b", 20), ("c", 24), ("d", 24))]
    givers = []
    for t in range(4):
        problem = Problem(cars, step, 24, scopes=[site(24, setpoint=[-20_000] * (n - t) + [np.nan] * (24 - n + t))])
        plan = solve(problem)
        now = {c.key: plan.of(c.key)[0] for c in cars}
        assert sum(now.values()) == pytest.approx(-20_000, abs=1)
        givers.append([k for k, p in now.items() if p < -1])
        cars = [Car(c.key, c.energy_wh + now[c.key] * step / HOUR, c.capacity_wh, c.need_wh, c.departure_step - 1,
                    c.max_charge_w, c.max_discharge_w, c.min_energy_wh, c.efficiency) for c in cars]
    assert givers == [["c"]] * 4  # the longest stay, then the key


def test_a_group_limit_binds_only_its_stations() -> None:
    group = Scope(frozenset({"CS1"}), np.array([3_000.0]), np.array([np.nan]), np.array([np.nan]))
    cars = [Car("CS1/1", 0, 60_000, 11_000, 1, 11_000, station="CS1"),
            Car("CS2/1", 0, 60_000, 11_000, 1, 11_000, station="CS2")]
    for plan in (solve(Problem(cars, HOUR, 1, scopes=[group])), solve(Problem(cars, HOUR, 1, scopes=[group]),
                                                                      time_budget_s=0)):
        assert plan.of("CS1/1")[0] == pytest.approx(3_000, abs=1)
        assert plan.of("CS2/1")[0] == pytest.approx(11_000, abs=1)


def test_the_heuristic_alone_respects_limits() -> None:
    rng = np.random.default_rng(7)
    cars = [car(f"c{i}", float(rng.uniform(5_000, 40_000)), int(rng.integers(4, 24)), efficiency=0.93)
            for i in range(50)]
    problem = Problem(cars, 900.0, 24, scopes=[site(24, imp=150_000)])
    power = heuristic(problem)
    assert power.sum(axis=0).max() <= 150_000 + 1e-6 and (power >= 0).all() and (power <= 11_000 + 1e-6).all()
    for i, c in enumerate(cars):
        assert not power[i, c.departure_step:].any()
    lp = solve(problem)
    assert lp.method == "lp" and lp.site_w.max() <= 150_000 + 1
    assert len(lp.shortfalls) <= len(solve(problem, time_budget_s=0).shortfalls)


def test_the_warm_start_reaches_the_cold_optimum() -> None:
    """A mixed fleet (V2X and not, a setpoint, an import limit, a price): the LP started from the heuristic's plan
    ends at the objective of the LP started from nothing, and both plans meet the same needs."""
    rng = np.random.default_rng(7)
    cars = [car(f"c{i}", float(rng.uniform(5_000, 40_000)), int(rng.integers(2, 9)),
                energy_wh=float(rng.uniform(0, 20_000)),
                **({"max_discharge_w": 11_000.0, "min_energy_wh": 5_000.0} if i % 3 == 0 else {}))
            for i in range(12)]
    price = np.array([0.3, 0.1, 0.1, 0.4, 0.5, 0.2, 0.1, 0.3])
    scope = site(8, imp=60_000, exp=30_000, setpoint=[np.nan, np.nan, -20_000, -20_000] + [np.nan] * 4)
    warm = solve(Problem(cars, HOUR / 4, 8, price=price, scopes=[scope]))
    cold = solve(Problem(cars, HOUR / 4, 8, price=price, scopes=[scope]), warm_start=False)
    assert warm.method == cold.method == "lp"
    assert warm.objective == pytest.approx(cold.objective, rel=1e-9)
    assert [s.key for s in warm.shortfalls] == [s.key for s in cold.shortfalls]
    assert np.isnan(solve(Problem(cars, HOUR / 4, 8, price=price, scopes=[scope]), time_budget_s=0).objective)


def test_the_convex_tracking_penalty_spreads_the_deviation() -> None:
    """10 kWh over two hours under a setpoint of 0: the linear penalty is indifferent to how the 10 kWh of deviation
    fall and the preference for charging early puts them in one step (10 + 0 kW, 100 kW^2 squared); the convex one
    spreads them (5 + 5 kW, 50 kW^2)."""
    cars = [car("a", 10_000, 2, max_charge_w=10_000)]
    linear = solve(Problem(cars, HOUR, 2, scopes=[site(2, setpoint=[0, 0])], objective=Objective(tracking="linear")))
    assert linear.of("a").tolist() == pytest.approx([10_000, 0], abs=1)
    for plan in (solve(Problem(cars, HOUR, 2, scopes=[site(2, setpoint=[0, 0])])),):
        assert plan.of("a").tolist() == pytest.approx([5_000, 5_000], abs=1) and plan.feasible
    with pytest.raises(ValueError, match="tracking"):
        solve(Problem(cars, HOUR, 2, scopes=[site(2, setpoint=[0, 0])], objective=Objective(tracking="square")))


def test_a_taper_near_full_moves_charging_earlier() -> None:
    """A 10 kWh battery at 8 kWh, 8 kW, CC-CV from 92 %: in 15 minutes it takes at most 1 - exp(-2.5) of what it
    lacks. The price is lowest in the last step: without the taper the plan puts all 2 kWh there; with it, what the
    last step cannot take comes earlier, no step above the taper's limit, and the car is full at departure."""
    quarter = HOUR / 4
    price = np.array([0.5, 0.5, 0.4, 0.3, 0.2, 0.1])
    flat = car("a", 10_000, 6, energy_wh=8_000, capacity_wh=10_000, max_charge_w=8_000)
    assert solve(Problem([flat], quarter, 6, price=price)).of("a").tolist() == pytest.approx([0] * 5 + [8_000], abs=1)
    tapered = car("a", 10_000, 6, energy_wh=8_000, capacity_wh=10_000, max_charge_w=8_000, taper_soc=0.92)
    share = tapered.taper_share(0.25)
    assert share == pytest.approx(1 - np.exp(-2.5))
    lp = solve(Problem([tapered], quarter, 6, price=price))
    for plan in (lp, solve(Problem([tapered], quarter, 6, price=price), time_budget_s=0)):
        energy = 8_000 + np.concatenate([[0], np.cumsum(plan.of("a") * 0.25)])
        assert (plan.of("a") * 0.25 <= share * (10_000 - energy[:-1]) + 1e-6).all(), plan.method
        assert energy[-1] == pytest.approx(10_000, abs=1) and plan.feasible
    assert lp.of("a")[4] > 0 and lp.of("a")[:2].sum() == pytest.approx(0, abs=1)


def test_needs_come_first_exactly_under_a_taper() -> None:
    """8 of 10 kWh, CC-CV from 85 %, setpoint 0 for 1.5 hours: the weights alone (`needs_first=False`) let the
    setpoint win over the last Wh (a kWh early shrinks the final shortfall only by exp(-k) per later step) and the car
    leaves about 28 Wh short; the two-stage solve charges it full and spreads the deviation as it can."""
    tapered = car("a", 10_000, 6, energy_wh=8_000, capacity_wh=10_000, max_charge_w=8_000, taper_soc=0.85)
    scopes = [site(6, setpoint=[0.0] * 6)]
    first = solve(Problem([tapered], HOUR / 4, 6, scopes=scopes))
    weights = solve(Problem([tapered], HOUR / 4, 6, scopes=scopes, objective=Objective(needs_first=False)))
    assert first.method == weights.method == "lp"
    assert first.feasible and 8_000 + first.of("a").sum() / 4 == pytest.approx(10_000, abs=1)
    assert [s.key for s in weights.shortfalls] == ["a"] and weights.shortfalls[0].planned_wh < 9_990
