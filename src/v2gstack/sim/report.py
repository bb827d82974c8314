"""The report of a scenario run: a pass/fail table for the terminal and a self-contained HTML file (inline SVG plots:
power per session, the aggregate; the timeline of each failed session). No script in the page, nothing fetched."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from .runner import RunReport, SessionReport

COLORS = ("#2a6fdb", "#137333", "#b06000", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d", "#d35400")


def print_table(report: RunReport, out: Console) -> None:
    """One row per session and check."""
    table = Table(title=f"scenario {report.scenario.name}: {'PASS' if report.passed else 'FAIL'}")
    for col in ("session", "check", "result", "detail"):
        table.add_column(col)
    for s in report.sessions:
        for c in s.checks:
            table.add_row(s.spec.name, c.what, "[green]pass[/]" if c.ok else "[red]FAIL[/]", c.detail)
    for c in report.grid_checks:
        table.add_row("grid", c.what, "[green]pass[/]" if c.ok else "[red]FAIL[/]", c.detail)
    out.print(table)
    for g in report.signals:
        out.print(f"grid signal: {_signal_text(g)}")
    for line in report.faults:
        out.print(f"fault: {line}")
    if report.fault_errors:
        out.print(f"[red]{report.fault_errors} fault(s) could not be applied: the run fails[/]")
    if report.timed_out:
        out.print(f"[red]the run was cut after {report.scenario.timeout_s:g} s[/]")


def _svg(series: list[tuple[str, str, list[tuple[float, float]]]], width: int = 720, height: int = 200) -> str:
    """A line chart (time in s on x, kW on y) of (label, colour, points) series."""
    pts = [p for _, _, ps in series for p in ps]
    if not pts:
        return "<p>no power samples</p>"
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y1 = max(1.0, max(p[1] for p in pts))
    x1 = x1 if x1 > x0 else x0 + 1
    pad = 40

    def xy(p: tuple[float, float]) -> str:
        return f"{pad + (p[0] - x0) / (x1 - x0) * (width - pad - 10):.1f},{height - 20 - p[1] / y1 * (height - 30):.1f}"

    lines = [f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{" ".join(xy(p) for p in ps)}">'
             f"<title>{html.escape(label)}</title></polyline>" for label, c, ps in series if ps]
    axes = (f'<text x="2" y="14" font-size="11">{y1 / 1000:.1f} kW</text>'
            f'<text x="2" y="{height - 20}" font-size="11">0</text>'
            f'<text x="{width - 60}" y="{height - 4}" font-size="11">{x1 - x0:.0f} s</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f'<rect width="100%" height="100%" fill="#fff" stroke="#ddd"/>{axes}{"".join(lines)}</svg>')


def _signal_text(g: dict[str, Any]) -> str:
    """One grid signal for the terminal and the page."""
    held = "held by the CSMS" if g["csms"] is not None else "NOT taken by the CSMS"
    return (f"{g['id']}: {g['target']} import limit {g['importLimitW']:g} W from {g['atS']:g} s to {g['untilS']:g} s "
            f"(settle {g['settleS']:g} s), {held}")


def _limit_series(report: RunReport) -> list[tuple[float, float]]:
    """The site import limits in force as a step line (s, W), for the aggregate plot."""
    pts: list[tuple[float, float]] = []
    for g in report.signals:
        if g["target"] == "site":
            pts += [(g["atS"], g["importLimitW"]), (g["untilS"], g["importLimitW"])]
    return pts


def _aggregate(sessions: list[SessionReport]) -> list[tuple[float, float]]:
    """The sum of every session's last known power at each sample time."""
    times = sorted({t for s in sessions for t, _ in s.power})
    out = []
    for t in times:
        total = 0.0
        for s in sessions:
            before = [w for u, w in s.power if u <= t]
            if before and s.power and t <= s.power[-1][0]:
                total += before[-1]
        out.append((t, total))
    return out


def write_html(report: RunReport, path: Path) -> Path:
    """The HTML report."""
    e = html.escape
    verdict = "PASS" if report.passed else "FAIL"
    rows = "".join(
        f'<tr class="{"pass" if c.ok else "fail"}"><td>{e(s.spec.name)}</td><td>{e(c.what)}</td>'
        f'<td>{"pass" if c.ok else "FAIL"}</td><td>{e(c.detail)}</td></tr>'
        for s in report.sessions for c in s.checks) + "".join(
        f'<tr class="{"pass" if c.ok else "fail"}"><td>grid</td><td>{e(c.what)}</td>'
        f'<td>{"pass" if c.ok else "FAIL"}</td><td>{e(c.detail)}</td></tr>' for c in report.grid_checks)
    series = [(s.spec.name, COLORS[n % len(COLORS)], s.power) for n, s in enumerate(report.sessions)]
    legend = " ".join(f'<span style="color:{c}">&#9632; {e(label)}</span>' for label, c, _ in series)
    failed = []
    for s in report.sessions:
        if s.passed:
            continue
        entries = "".join(
            f'<tr class="{"fail" if "FAIL" in str(x.get("details", "")) or x.get("kind") == "error" else ""}">'
            f'<td>{e(str(x.get("wall", "")))}</td><td>{e(str(x.get("source", "")))}</td>'
            f'<td>{e(str(x.get("protocol", "")))}</td><td>{e(str(x.get("direction", "")))}</td>'
            f'<td>{e(str(x.get("name", "")))}</td><td>{e(str(x.get("details", "")))}</td></tr>' for x in s.timeline)
        failed.append(f"<h3>{e(s.spec.name)}: timeline</h3>" + (
            f"<table><tr><th>time</th><th>source</th><th>protocol</th><th>dir</th><th>message</th><th>details</th>"
            f"</tr>{entries}</table>" if entries else "<p>no records</p>"))
    faults = "".join(f"<li>{e(f)}</li>" for f in report.faults) or "<li>none</li>"
    signals = "".join(f"<li>{e(_signal_text(g))}</li>" for g in report.signals) or "<li>none</li>"
    limit = _limit_series(report)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(report.scenario.name)}: {verdict}</title>
<link rel="icon" href="data:,">
<style>body{{font:14px system-ui,sans-serif;margin:1em 2em}} table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:.2em .5em;text-align:left}} tr.fail td{{color:#a4161a;background:#fde8e8}}
.verdict{{font-weight:bold;color:{"#137333" if report.passed else "#a4161a"}}}</style></head>
<body><h1>Scenario {e(report.scenario.name)}: <span class="verdict" id="verdict">{verdict}</span></h1>
<p>{len(report.sessions)} sessions, {report.elapsed_s:.1f} s{", cut by the timeout" if report.timed_out else ""}.</p>
<h2>Expectations</h2><table id="checks"><tr><th>session</th><th>check</th><th>result</th><th>detail</th></tr>{rows}
</table><h2>Faults</h2><ul>{faults}</ul>
<h2>Grid signals</h2><ul id="signals">{signals}</ul>
<h2>Power per session</h2><p>{legend}</p>{_svg(series)}
<h2>Aggregate power</h2>{"<p>orange: the site import limit</p>" if limit else ""}
{_svg([("aggregate", "#12324a", _aggregate(report.sessions)), ("site import limit", "#e67e22", limit)])}
<h2>Failed sessions</h2>{"".join(failed) or "<p>none</p>"}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
