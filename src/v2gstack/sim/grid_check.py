"""The grid expectation of a scenario: while a grid_signal's import limit is in force, the aggregate import of its
target's sessions stays at or under it, judged by the fleet report's own window check (sim/fleet_report.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .fleet import FleetConfig, FleetResult, Sample
from .fleet_report import windows
from .scenario import FaultSpec, Scenario

SAMPLE_S = 0.1
"""Wall seconds between two samples of the aggregate (each session's power holds its last metered value)."""
EV_MAX_W = {"dc": 50_000.0, "ac": 22_000.0}
"""What the scenario's simulated cars can take (iso15118/ev.py EVModel's defaults)."""


@dataclass(frozen=True)
class SessionPower:
    """One session's metered import power over the run, and what it could take at most."""

    station: str
    power: list[tuple[float, float]]  # (s since the run's start, W)
    max_w: float


def _at(power: list[tuple[float, float]], t: float) -> float | None:
    """The last metered value at or before t, None outside the session's metered span."""
    if not power or t < power[0][0] or t > power[-1][0]:
        return None
    return next(w for u, w in reversed(power) if u <= t)


def samples(sc: Scenario, f: FaultSpec, sessions: list[SessionPower], elapsed_s: float) -> list[Sample]:
    """The target's aggregate import, its physical ceiling and the signal's limit, every SAMPLE_S."""
    mine = [s for s in sessions if f.target in ("site", s.station)]
    end = f.at + (f.duration_s or 0.0)
    out = []
    for k in range(int(elapsed_s / SAMPLE_S) + 1):
        t = k * SAMPLE_S
        values = [(_at(s.power, t), s.max_w) for s in mine]
        live = [(w, m) for w, m in values if w is not None]
        limit = f.import_limit_w if f.at <= t < end else None
        out.append(Sample(t * sc.speedup / 3600.0, sum(w for w, _ in live), sum(m for _, m in live), 0.0, limit,
                          None, None, None, len(live)))
    return out


def judge(sc: Scenario, f: FaultSpec, sessions: list[SessionPower], elapsed_s: float) -> tuple[bool, str]:
    """Whether the signal's window was followed (some power measured in it, no excursion longer than its settle
    time) and what the fleet report's window check found."""
    config = FleetConfig(stations=1, evses=1, hours=max(elapsed_s, 1.0) * sc.speedup / 3600.0,
                         time_scale=sc.speedup, sample_s=SAMPLE_S, settle_s=f.settle_s)
    result = FleetResult(config, [], samples(sc, f, sessions, elapsed_s), {}, 0, {}, elapsed_s, "")
    ws = windows(result)
    limited = [w for w in ws if w["importLimitW"] is not None]
    if not limited or not any(w.get("checkedSamples") and w.get("maxPowerW") for w in limited):
        return False, (f"no power measured under the {f.import_limit_w:g} W limit of {f.target} after its "
                       f"{f.settle_s:g} s settle time")
    w = limited[0]
    ok = all(x.get("followed", False) for x in limited)
    free = max((x.get("maxPowerW", 0.0) for x in ws if x["importLimitW"] is None), default=0.0)
    return ok, (f"{f.target} limit {f.import_limit_w:g} W from {f.at:g} s for {f.duration_s:g} s: max "
                f"{w['maxPowerW']:.0f} W, mean {w['meanPowerW']:.0f} W (cars could take {w['meanPhysMaxW']:.0f} W; "
                f"{free:.0f} W at most without the limit), "
                f"longest excursion {w['longestImportExcursionS']:g} s (settle {f.settle_s:g} s)")


def signal_row(f: FaultSpec, n: int, held: dict[str, Any] | None) -> dict[str, Any]:
    """The signal as the report lists it: when, what, and the CSMS's own record of it."""
    return {"id": f"scenario-{n}", "target": f.target, "importLimitW": f.import_limit_w, "atS": f.at,
            "untilS": f.at + (f.duration_s or 0.0), "settleS": f.settle_s, "csms": held}
