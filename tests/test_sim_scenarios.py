"""`v2gstack sim run`: the shipped scenarios pass, a wrong expectation fails with a clear report (exit 1), a malformed
scenario is refused with the path of its key (exit 2), and the HTML report opens in headless Chromium cleanly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.browser import ARTIFACTS, chromium, console_errors

from v2gstack.sim.report import _aggregate, write_html
from v2gstack.sim.runner import RunReport, run_scenario
from v2gstack.sim.scenario import ScenarioError, load_scenario, parse_scenario

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))
WRONG = ROOT / "tests" / "data" / "scenario-wrong-expectation.yaml"


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
async def test_shipped_scenario_passes(path: Path, tmp_path: Path) -> None:
    report = await _run(path, tmp_path)
    failed = [(s.spec.name, c.what, c.detail) for s in report.sessions for c in s.checks if not c.ok]
    assert report.passed, failed
    assert all(s.checks for s in report.sessions)
    page = write_html(report, tmp_path / "report.html").read_text()
    assert 'id="verdict">PASS<' in page and "<svg" in page
    for f in report.scenario.faults:  # a grid signal: taken by the CSMS, its limit checked and in the report
        if f.kind == "grid_signal":
            assert any(c.what.startswith("grid_import_limit") and c.ok for c in report.grid_checks)
            assert all(g["csms"] is not None for g in report.signals)
            assert f"import limit {f.import_limit_w:g} W" in page


async def test_a_grid_limit_holds_the_aggregate_that_would_exceed_it(tmp_path: Path) -> None:
    """grid-limit.yaml: before and after the 20 kW site limit the three cars draw far more than it; in its window
    (after the settle time) the aggregate stays within the fleet report's tolerance of it."""
    report = await _run(ROOT / "scenarios" / "grid-limit.yaml", tmp_path)
    f = next(f for f in report.scenario.faults if f.kind == "grid_signal")
    assert report.passed, [(c.what, c.detail) for c in report.grid_checks]
    aggregate = _aggregate(report.sessions)
    before = [w for t, w in aggregate if t < f.at]
    inside = [w for t, w in aggregate if f.at + f.settle_s <= t < f.at + (f.duration_s or 0) - 1]
    assert max(before) > 2 * (f.import_limit_w or 0)  # the limit bites
    assert inside and max(inside) <= (f.import_limit_w or 0) + 1000 + 0.02 * (f.import_limit_w or 0)
    assert report.signals[0]["csms"]["intervals"][0]["importLimitW"] == f.import_limit_w


_RUNS: dict[Path, RunReport] = {}
"""Each shipped scenario's run, kept for this module's other checks of it (grid-limit's ~17 s runs once)."""


async def _run(path: Path, tmp_path: Path) -> RunReport:
    """The scenario's report: run now, or the run another test of this module made."""
    if path not in _RUNS:
        _RUNS[path] = await run_scenario(load_scenario(path), tmp_path / path.stem)
    return _RUNS[path]


def test_wrong_expectation_fails_with_a_clear_report(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "v2gstack", "sim", "run", str(WRONG), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=150, env={"COLUMNS": "160", "PATH": "/usr/bin"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "wrong-expectation: FAIL" in done.stdout
    assert "expected failed, got ok" in done.stdout  # the check that failed, and why
    page = (tmp_path / WRONG.stem / "report.html").read_text()
    assert 'id="verdict">FAIL<' in page and "charges: timeline" in page
    assert "SessionSetupReq" in page and "TransactionEvent" in page  # the failed session's timeline, both protocols
    with chromium() as web:
        web.get((tmp_path / WRONG.stem / "report.html").as_uri())
        assert web.find_element("id", "verdict").text == "FAIL"
        assert len(web.find_elements("css selector", "svg polyline")) >= 2  # the session's power and the aggregate
        web.save_screenshot(str(ARTIFACTS / "scenario-report.png"))
        assert not console_errors(web)


@pytest.mark.parametrize(("change", "message"), [
    ({"sessions": [{"at": 0, "station": "CS9", "evse": 1}]}, "sessions[0].station: no station 'CS9'"),
    ({"sessions": [{"at": 0, "station": "CS1", "evse": 1, "expect": {"outcome": "maybe"}}]},
     "sessions[0].expect.outcome: one of ok, failed, not 'maybe'"),
    ({"sessions": [{"at": 0, "station": "CS1", "evse": 1, "color": "red"}]}, "sessions[0].color: unknown key"),
    ({"faults": [{"at": 1, "kind": "meteor"}]}, "faults[0].kind: one of token_status, remote_stop"),
    ({"stations": [{"id": "CS1", "auth": "rfid"}]}, "stations[0].id_token: required with auth rfid"),
    ({"speedup": "fast"}, "speedup: int/float expected, not str"),
    ({"faults": [{"at": 0, "kind": "contract_revoked", "session": "session1"}]},
     "faults[0].session: contract_revoked needs a session with payment contract, not 'session1'"),
    ({"sessions": [{"at": 0, "station": "CS1", "evse": 1, "protocol": "din", "payment": "contract"}]},
     "sessions[0].payment: contract (Plug & Charge) needs protocol iso2"),
    ({"sessions": [{"at": 0, "station": "CS1", "evse": 1, "expect": {"authorize_status": "Invalid"}}]},
     "sessions[0].expect: authorize_status and certificate_status need payment contract"),
    ({"faults": [{"at": 0, "kind": "ev_link_delay", "session": "session1"}]},
     "faults[0].delay_s: ev_link_delay needs a positive delay_s"),
    ({"faults": [{"at": 0, "kind": "exi_corrupt", "session": "ev9"}]}, "faults[0].session: no session 'ev9'"),
    ({"faults": [{"at": 0, "kind": "clock_skew", "station": "CS1"}]}, "faults[0].skew_s: clock_skew needs skew_s"),
    ({"faults": [{"at": 0, "kind": "station_reboot", "station": "CS7"}]}, "faults[0].station: no station 'CS7'"),
    ({"speedup": 1, "faults": [{"at": 0, "kind": "grid_signal", "duration_s": 9}]},
     "faults[0].import_limit_w: grid_signal needs import_limit_w"),
    ({"speedup": 1, "faults": [{"at": 0, "kind": "grid_signal", "import_limit_w": 1e4, "duration_s": 9,
                                "target": "CS4"}]}, "faults[0].target: site or a station id, not 'CS4'"),
    ({"speedup": 1, "faults": [{"at": 0, "kind": "grid_signal", "import_limit_w": -5, "duration_s": 9}]},
     "faults[0]: the CSMS would refuse this grid signal"),
    ({"faults": [{"at": 0, "kind": "grid_signal", "import_limit_w": 1e4, "duration_s": 9}]},
     "faults[0]: grid_signal needs speedup: 1"),
    ({"speedup": 1, "faults": [{"at": 0, "kind": "grid_signal", "import_limit_w": 1e4, "duration_s": 4}]},
     "faults[0].duration_s: longer than 2 x settle_s + 1 s (5 s)"),
])
def test_malformed_scenarios_name_the_key(change: dict, message: str) -> None:  # type: ignore[type-arg]
    base = {"name": "x", "stations": [{"id": "CS1"}], "sessions": [{"at": 0, "station": "CS1", "evse": 1}]}
    with pytest.raises(ScenarioError) as e:
        parse_scenario({**base, **change})
    assert message in str(e.value)


def test_cli_refuses_an_inverted_grid_signal_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "inverted.json"
    bad.write_text(json.dumps({"name": "x", "speedup": 1, "stations": [{"id": "CS1"}],
                               "sessions": [{"at": 0, "station": "CS1", "evse": 1}],
                               "faults": [{"at": 2, "kind": "grid_signal", "import_limit_w": 20000,
                                           "duration_s": -3}]}))
    done = subprocess.run([sys.executable, "-m", "v2gstack", "sim", "run", str(bad), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "inverted.json: faults[0].duration_s: the signal's interval ends at or before it starts" in done.stderr


def test_cli_refuses_a_malformed_file_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"name": "x", "stations": [], "sessions": []}))
    done = subprocess.run([sys.executable, "-m", "v2gstack", "sim", "run", str(bad), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "bad.json: stations: at least one" in done.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    done = subprocess.run([sys.executable, "-m", "v2gstack", "sim", "run", str(broken)], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2 and "broken.yaml: not valid yaml" in done.stderr
