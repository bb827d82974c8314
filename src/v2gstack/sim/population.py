"""The fleet's cars: who arrives at which EVSE when, stays how long, needs how much, speaks which protocol; drawn
from seeded distributions, so one seed is one fleet (in simulated time and energy: the runner scales them)."""

from __future__ import annotations

import random
from dataclasses import dataclass

PROTOCOLS: dict[str, tuple[str, str]] = {
    "din-dc": ("din", "dc"),
    "iso2-dc": ("iso2", "dc"),
    "iso2-ac": ("iso2", "ac"),
    "iso20-dc-bpt": ("iso20", "dc_bpt"),
    "iso20-ac-bpt": ("iso20", "ac_bpt"),
}
"""The car kinds of the mix: name -> (ISO 15118 protocol key, energy). The ISO 15118-20 BPT cars (DC_BPT and
AC_BPT) run dynamic control: they follow the station's power target, discharging where the CSMS's plan says so
(OCPP 2.1 V2X); DIN 70121 and ISO 15118-2 cars only charge."""


@dataclass(frozen=True)
class Distributions:
    """The fleet's distributions (simulated hours, kWh, %, kW); ranges are uniform [low, high]."""

    first_arrival_h: tuple[float, float] = (0.0, 1.0)  # the first car at each EVSE
    gap_h: tuple[float, float] = (0.25, 2.0)  # an EVSE free between two cars
    dwell_h: tuple[float, float] = (2.0, 8.0)  # plugged in (the car's departure = arrival + dwell)
    min_dwell_h: float = 0.25  # a car that would stay less before the end of the run does not come
    need_kwh: tuple[float, float] = (5.0, 40.0)  # energy wanted by departure
    capacity_kwh: tuple[float, ...] = (40.0, 60.0, 80.0)
    soc_pct: tuple[float, float] = (10.0, 50.0)  # at arrival
    max_soc_pct: float = 95.0  # a need is cut to reach at most this SoC
    ac_max_current_a: float = 16.0  # an AC car: 3 phases at 230 V (11 kW)
    dc_max_power_kw: tuple[float, ...] = (50.0,)  # a DC car, within the EVSE's rating
    dc_max_discharge_kw: float = 25.0  # a -20 DC_BPT car
    ac_max_discharge_kw: float = 11.0  # a -20 AC_BPT car (16 A x 3 x 230 V back)
    min_soc_pct: float = 20.0  # a -20 BPT car is never discharged below
    mix: tuple[tuple[str, float], ...] = (("din-dc", 1.0), ("iso2-dc", 1.0), ("iso2-ac", 1.0), ("iso20-dc-bpt", 1.0),
                                          ("iso20-ac-bpt", 1.0))


@dataclass(frozen=True)
class CarSpec:
    """One car's visit (simulated hours from the start of the run, Wh, %)."""

    name: str
    station: str
    evse: int
    kind: str  # a key of PROTOCOLS
    arrival_h: float
    departure_h: float
    capacity_wh: float
    soc_pct: float
    need_wh: float
    max_power_w: float  # what the car can take (AC: its current at 3 x 230 V; DC: its power)
    max_discharge_w: float = 0.0  # what it can feed back (-20 BPT only; 0: a charge-only car)
    min_soc_pct: float = 0.0  # the lowest SoC it may be discharged to

    @property
    def protocol(self) -> str:
        """The ISO 15118 protocol key the car offers."""
        return PROTOCOLS[self.kind][0]

    @property
    def energy(self) -> str:
        """ac, dc, ac_bpt or dc_bpt."""
        return PROTOCOLS[self.kind][1]

    @property
    def target_soc_pct(self) -> float:
        """The SoC at which the need is met."""
        return self.soc_pct + self.need_wh / self.capacity_wh * 100.0


def station_ids(stations: int) -> list[str]:
    """The stations' ids: CS01, CS02, ..."""
    return [f"CS{n + 1:02d}" for n in range(stations)]


def draw_fleet(stations: int, evses: int, hours: float, seed: int,
               dist: Distributions | None = None) -> list[CarSpec]:
    """Every car's visit for `stations` x `evses` over `hours` simulated hours, the same for the same seed."""
    d = dist or Distributions()
    rng = random.Random(seed)
    kinds = [k for k, _ in d.mix]
    weights = [w for _, w in d.mix]
    cars: list[CarSpec] = []
    for sid in station_ids(stations):
        for evse in range(1, evses + 1):
            t = rng.uniform(*d.first_arrival_h)
            n = 0
            while t < hours - d.min_dwell_h:
                n += 1
                kind = rng.choices(kinds, weights)[0]
                dwell = rng.uniform(*d.dwell_h)
                capacity = rng.choice(d.capacity_kwh) * 1000.0
                soc = rng.uniform(*d.soc_pct)
                need = min(rng.uniform(*d.need_kwh) * 1000.0, (d.max_soc_pct - soc) / 100.0 * capacity)
                power = d.ac_max_current_a * 230.0 * 3 if PROTOCOLS[kind][1].startswith("ac") else \
                    rng.choice(d.dc_max_power_kw) * 1000.0
                departure = t + dwell  # may lie after the end of the run: the car tells it all the same
                energy = PROTOCOLS[kind][1]
                back = {"dc_bpt": d.dc_max_discharge_kw, "ac_bpt": d.ac_max_discharge_kw}.get(energy, 0.0) * 1000.0
                cars.append(CarSpec(f"{sid}-{evse}-{n}", sid, evse, kind, round(t, 4), round(departure, 4),
                                    capacity, round(soc, 2), round(need, 1), power, back,
                                    d.min_soc_pct if back else 0.0))
                t = departure + rng.uniform(*d.gap_h)
    return cars


def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    """`--mix din-dc=1,iso2-ac=2,...` as Distributions.mix (ValueError on an unknown kind or a bad weight)."""
    out = []
    for part in text.split(","):
        kind, _, weight = part.strip().partition("=")
        if kind not in PROTOCOLS:
            raise ValueError(f"--mix: unknown car kind {kind!r} (known: {', '.join(PROTOCOLS)})")
        try:
            w = float(weight or 1.0)
        except ValueError:
            raise ValueError(f"--mix: {part!r} is no kind=weight") from None
        if not w > 0:
            raise ValueError(f"--mix: the weight of {kind} must be positive")
        out.append((kind, w))
    return tuple(out)
