"""The fleet simulation's report: a JSON summary (per-window compliance with the grid signals, per-car energy
delivered vs requested), PNG plots (aggregate power vs setpoint and limits within the cars' physical envelope,
per-car SoC and power, energy at departure) and an HTML page that embeds them with the tables.

Everything is in simulated units: hours since the start of the run, Wh as the cars would hold them (wall-clock
energies x the time scale); powers are physical.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from .fleet import FleetResult, Sample, summary_inputs

TOLERANCE_W = 1000.0
"""Absolute part of the tolerance of a power check (AC cars draw whole-ish currents, DC cars round to 0.1 A)."""
TOLERANCE_FRACTION = 0.02
"""Relative part: of the value checked against (limit or target)."""
FILES = {"aggregate": "aggregate.png", "cars": "cars.png", "energy": "energy.png", "html": "report.html",
         "json": "summary.json"}


def _tol(value: float) -> float:
    return TOLERANCE_W + TOLERANCE_FRACTION * abs(value)


def _state(s: Sample) -> tuple[float | None, float | None, float | None]:
    return s.import_limit_w, s.export_limit_w, s.setpoint_w


def _excursions(samples: list[Sample], over: list[bool], sample_s: float, per_s: float) -> list[float]:
    """The wall-clock length (s) of each run of consecutive samples over a limit."""
    runs: list[float] = []
    first: int | None = None
    for n, o in enumerate([*over, False]):
        if o and first is None:
            first = n
        elif not o and first is not None:
            runs.append((samples[n - 1].t_h - samples[first].t_h) / per_s + sample_s)
            first = None
    return runs


def windows(result: FleetResult) -> list[dict[str, Any]]:
    """The run cut where the site's signals in force change; per window, the checks after the settle time (and
    before the last wall second, as the CSMS states a schedule's start to the second):

    - an import limit: the aggregate power above it (by more than the tolerance) for no longer than the settle time
      at a stretch: a re-plan moves power between cars, the stations apply their profiles one by one and each car
      at its next charge loop, so a sum may overshoot for a moment (these latencies are wall-clock, not scaled:
      the excursions are counted and timed in wall seconds);
    - an export limit: the same for the aggregate export;
    - a setpoint: the target is the setpoint within the cars' physical envelope (and the import limit); the share
      of samples within the tolerance of it and the mean absolute error.
    A window without signals is reported (mean power, envelope) and not checked."""
    cfg = result.config
    per_s = cfg.time_scale / 3600.0  # simulated hours per wall second
    settle_h, guard_h = cfg.settle_s * per_s, 1.0 * per_s
    groups: list[list[Sample]] = []
    for s in result.samples:
        if groups and _state(groups[-1][-1]) == _state(s):
            groups[-1].append(s)
        else:
            groups.append([s])
    out = []
    for n, g in enumerate(groups):
        start = g[0].t_h
        end = groups[n + 1][0].t_h if n + 1 < len(groups) else g[-1].t_h
        imp, exp, sp = _state(g[0])
        checked = [s for s in g if start + settle_h <= s.t_h <= end - guard_h]
        w: dict[str, Any] = {"startH": round(start, 4), "endH": round(end, 4), "importLimitW": imp,
                             "exportLimitW": exp, "setpointW": sp, "samples": len(g), "checkedSamples": len(checked)}
        if checked:
            w["meanPowerW"] = round(sum(s.power_w for s in checked) / len(checked), 1)
            w["minPowerW"] = min(s.power_w for s in checked)
            w["maxPowerW"] = max(s.power_w for s in checked)
            w["meanPhysMaxW"] = round(sum(s.phys_max_w for s in checked) / len(checked), 1)
            w["meanPhysMinW"] = round(sum(s.phys_min_w for s in checked) / len(checked), 1)
            planned = [abs(s.power_w - s.planned_w) for s in checked if s.planned_w is not None]
            if planned:  # how closely the cars follow the CSMS's plan
                w["meanPlanErrorW"] = round(sum(planned) / len(planned), 1)
        ok = True
        for limit, sign, name in ((imp, 1.0, "Import"), (exp, -1.0, "Export")):
            if limit is None or not checked:
                continue
            excess = [sign * s.power_w - limit for s in checked]
            runs = _excursions(checked, [e > _tol(limit) for e in excess], cfg.sample_s, per_s)
            w[f"max{name}ExcessW"] = round(max(max(excess), 0.0), 1)
            w[f"{name.lower()}Excursions"] = len(runs)
            w[f"longest{name}ExcursionS"] = round(max(runs, default=0.0), 2)
            ok = ok and max(runs, default=0.0) <= cfg.settle_s
        if sp is not None and checked:
            errors = []
            for s in checked:
                high = s.phys_max_w if imp is None else min(s.phys_max_w, imp)
                low = s.phys_min_w if exp is None else max(s.phys_min_w, -exp)
                target = min(max(sp, low), high)
                errors.append((abs(s.power_w - target), target))
            within = sum(1 for e, t in errors if e <= _tol(t)) / len(errors)
            w["meanTargetW"] = round(sum(t for _, t in errors) / len(errors), 1)
            w["meanAbsErrorW"] = round(sum(e for e, _ in errors) / len(errors), 1)
            w["withinTolerance"] = round(within, 3)
            ok = ok and within >= 0.9
        if imp is not None or exp is not None or sp is not None:
            w["followed"] = bool(checked) and ok
        out.append(w)
    return out


def summary(result: FleetResult) -> dict[str, Any]:
    """The JSON summary of a run."""
    cars = _car_rows(result)
    departed = [c for c in cars if c["reason"] in ("departed", "target reached")]
    power = [s.power_w for s in result.samples]
    ws = windows(result)
    return {
        "inputs": dict(summary_inputs(result)), "started": result.started, "wallS": round(result.wall_s, 2),
        "solves": result.solves, "planMethods": result.plan_methods, "dispatch": result.dispatch,
        "fleet": {"cars": len(cars), "departed": len(departed),
                  "kinds": {k: sum(1 for c in cars if c["kind"] == k) for k in sorted({c["kind"] for c in cars})},
                  "failed": [{"name": c["name"], "reason": c["reason"]} for c in cars
                             if not c["ok"] and c["leftH"] is not None and c["reason"] != "still plugged in at "
                             "the end of the run"]},
        "energy": {"requestedWh": round(sum(c["requestedWh"] for c in cars), 1),
                   "deliveredWh": round(sum(c["deliveredWh"] for c in cars), 1),
                   "departedRequestedWh": round(sum(c["requestedWh"] for c in departed), 1),
                   "departedDeliveredWh": round(sum(c["deliveredWh"] for c in departed), 1),
                   "departedMet": sum(1 for c in departed if c["metPct"] >= 99.0),
                   "exportedWh": round(sum(c["exportedWh"] for c in cars), 1)},
        "power": {"peakImportW": max([0.0, *power]), "peakExportW": max([0.0, *(-p for p in power)]),
                  "samples": len(power)},
        "signals": list(result.signals.values()),
        "windows": ws,
        "followed": all(w.get("followed", True) for w in ws),
        "files": dict(FILES),
        "cars": cars,
    }


def _plots(result: FleetResult, out: Path) -> None:
    """The three PNGs."""
    import matplotlib  # optional heavy dependency (the `sim` extra): only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result.samples
    t = [x.t_h for x in s]

    def kw(v: float | None) -> float:
        return math.nan if v is None else v / 1000.0

    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.fill_between(t, [x.phys_min_w / 1000 for x in s], [x.phys_max_w / 1000 for x in s], step="post",
                    color="tab:green", alpha=0.15, label="cars' physical envelope")
    ax.step(t, [x.power_w / 1000 for x in s], where="post", color="tab:blue", lw=1.6,
            label="aggregate power (import +, export -)")
    ax.step(t, [kw(x.planned_w) for x in s], where="post", color="tab:cyan", lw=1, ls=":", label="CSMS plan, now")
    ax.step(t, [kw(x.setpoint_w) for x in s], where="post", color="tab:red", lw=1.4, ls="--", label="setpoint")
    ax.step(t, [kw(x.import_limit_w) for x in s], where="post", color="tab:orange", lw=1.4, label="import limit")
    ax.step(t, [-kw(x.export_limit_w) for x in s], where="post", color="tab:purple", lw=1.4,
            label="export limit (as -)")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("simulated time (h)")
    ax.set_ylabel("kW")
    ax.set_title("Site power vs grid signals")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / FILES["aggregate"], dpi=110)
    plt.close(fig)

    cars = [c for c in result.cars if c.samples]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for c in cars:
        ts = [p[0] for p in c.samples]
        a1.plot(ts, [p[2] for p in c.samples], lw=1, label=c.spec.name)
        a2.step(ts, [p[1] / 1000 for p in c.samples], where="post", lw=1, label=c.spec.name)
    a1.set_ylabel("SoC (%)")
    a1.set_title("Per car: state of charge and power")
    a2.set_ylabel("kW")
    a2.set_xlabel("simulated time (h)")
    for a in (a1, a2):
        a.grid(alpha=0.3)
    if len(cars) <= 16:
        a1.legend(fontsize=7, ncol=4, loc="best")
    fig.tight_layout()
    fig.savefig(out / FILES["cars"], dpi=110)
    plt.close(fig)

    plugged = [c for c in result.cars if c.plugged_h is not None]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * len(plugged) + 2), 4.5))
    idx = range(len(plugged))
    ax.bar([i - 0.2 for i in idx], [c.spec.need_wh / 1000 for c in plugged], 0.4, label="requested",
           color="tab:grey")
    ax.bar([i + 0.2 for i in idx], [c.delivered_wh(result.config.time_scale) / 1000 for c in plugged], 0.4,
           label="delivered, net", color=["tab:blue" if c.reason in ("departed", "target reached") else "tab:cyan"
                                     for c in plugged])
    back = [0.0 if c.ev is None else -c.ev.discharged_wh * result.config.time_scale / 1000 for c in plugged]
    if any(back):
        ax.bar([i + 0.2 for i in idx], back, 0.4, label="fed back (V2G)", color="tab:purple")
        ax.axhline(0, color="grey", lw=0.5)
    ax.set_xticks(list(idx), [c.spec.name for c in plugged], rotation=90, fontsize=7)
    ax.set_ylabel("kWh")
    ax.set_title("Energy at departure: requested vs delivered, net (light: still plugged in at the end)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / FILES["energy"], dpi=110)
    plt.close(fig)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape('' if r.get(c) is None else str(r.get(c)))}</td>"
                                    for c in columns) + "</tr>" for r in rows)
    return f'<div style="overflow-x:auto"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _html(data: dict[str, Any]) -> str:
    inputs = data["inputs"]
    e = data["energy"]
    title = (f"Fleet simulation: {inputs['stations']} stations x {inputs['evsesPerStation']} EVSEs, "
             f"{inputs['hours']} h at x{inputs['timeScale']:g}")
    facts = [("started (wall clock)", data["started"]), ("wall time (s)", data["wallS"]),
             ("seed", inputs["seed"]), ("planning step (simulated min)", inputs["stepMin"]),
             ("plans made", data["solves"]), ("plan methods", json.dumps(data["planMethods"])),
             ("dispatch CALLs accepted", json.dumps(data["dispatch"])),
             ("cars", data["fleet"]["cars"]), ("car kinds", json.dumps(data["fleet"]["kinds"])),
             ("energy requested / delivered, net (kWh)",
              f"{e['requestedWh'] / 1000:.1f} / {e['deliveredWh'] / 1000:.1f}"),
             ("energy fed back by BPT cars (kWh)", f"{e['exportedWh'] / 1000:.1f}"),
             ("departed cars: needs met", f"{e['departedMet']} of {data['fleet']['departed']}"),
             ("peak import / export (kW)", f"{data['power']['peakImportW'] / 1000:.1f} / "
                                           f"{data['power']['peakExportW'] / 1000:.1f}"),
             ("every signal window followed", data["followed"])]
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    sig_rows = [{"id": s["id"], "source": s["source"], "target": s["target"],
                 "intervals": "; ".join(f"{i['startH']:.2f}-{i['endH']:.2f} h " + ", ".join(
                     f"{k}={v}" for k, v in i.items() if k not in ("startH", "endH")) for i in s["intervals"]),
                 "seenH": s["seenH"], "goneH": s.get("goneH")} for s in data["signals"]]
    f = data["files"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}table{{border-collapse:collapse;margin:1em 0;
font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px;text-align:left}}img{{max-width:100%}}</style></head>
<body><h1>{html.escape(title)}</h1>
<p>Simulated time and energy (wall-clock figures x the time scale); powers are physical. A window is a span with
the same site signals in force; it is checked from {inputs['settleS']} wall s after its start (the settle time) to
1 wall s before its end: an import or export limit is followed when the aggregate power does not exceed it by more
than {TOLERANCE_W:g} W + {TOLERANCE_FRACTION:.0%} for longer than the settle time at a stretch; a setpoint when
90 % of the samples are within that of the setpoint clamped to the cars' physical envelope (green band). An
excursion over a limit (a re-plan moves power between cars; stations and cars take their new limits one by one)
counts against it only when it lasts longer than the settle time; wall-clock latencies are not scaled, so in
simulated time they look time-scale times longer.</p>
<table>{fact_rows}</table>
<h2>Site power</h2><img src="{f['aggregate']}" alt="aggregate power vs setpoint and limits">
<h2>Signal windows</h2>
{_table(data['windows'], ['startH', 'endH', 'importLimitW', 'exportLimitW', 'setpointW', 'checkedSamples',
                          'meanPowerW', 'minPowerW', 'maxPowerW', 'meanPhysMinW', 'meanPhysMaxW', 'meanPlanErrorW',
                          'meanTargetW', 'meanAbsErrorW',
                          'withinTolerance', 'maxImportExcessW', 'importExcursions', 'longestImportExcursionS',
                          'followed'])}
<h2>Signals</h2>
{_table(sig_rows, ['id', 'source', 'target', 'intervals', 'seenH', 'goneH'])}
<h2>Cars</h2><img src="{f['cars']}" alt="per-car SoC and power">
<h2>Energy at departure</h2><img src="{f['energy']}" alt="energy delivered vs requested">
{_table(data['cars'], ['name', 'kind', 'protocol', 'pluggedH', 'departureH', 'leftH', 'reason', 'socStart',
                       'socEnd', 'requestedWh', 'deliveredWh', 'exportedWh', 'metPct'])}
</body></html>
"""


def write_report(result: FleetResult, out: Path) -> dict[str, Any]:
    """Write summary.json, the PNGs and report.html into `out`; the summary."""
    out.mkdir(parents=True, exist_ok=True)
    data = summary(result)
    _plots(result, out)
    (out / FILES["json"]).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    (out / FILES["html"]).write_text(_html(data), encoding="utf-8")
    return data


def _car_rows(result: FleetResult) -> list[dict[str, Any]]:
    """Per car that came: its visit, its SoC and its energy requested vs delivered (simulated Wh)."""
    x = result.config.time_scale
    rows = []
    for c in result.cars:
        if c.plugged_h is None:
            continue
        delivered = c.delivered_wh(x)
        rows.append({"name": c.spec.name, "station": c.spec.station, "evse": c.spec.evse, "kind": c.spec.kind,
                     "protocol": c.protocol, "arrivalH": c.spec.arrival_h, "departureH": c.spec.departure_h,
                     "pluggedH": round(c.plugged_h, 4), "leftH": None if c.left_h is None else round(c.left_h, 4),
                     "reason": c.reason, "ok": c.ok, "maxPowerW": c.spec.max_power_w,
                     "capacityWh": c.spec.capacity_wh, "socStart": c.spec.soc_pct,
                     "socEnd": None if c.ev is None else round(c.ev.soc, 2), "requestedWh": c.spec.need_wh,
                     "deliveredWh": round(delivered, 1),
                     "exportedWh": 0.0 if c.ev is None else round(c.ev.discharged_wh * x, 1),
                     "maxDischargeW": c.spec.max_discharge_w,
                     "metPct": round(100.0 * delivered / c.spec.need_wh, 1) if c.spec.need_wh > 0 else 100.0})
    return rows
