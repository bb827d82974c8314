"""`v2gstack grid signal ...` against a CSMS API served on loopback: add, list, load a scenario file (batch, all or
nothing), opt out, cancel; `check` reads a file offline and names the first error; a bad signal is refused before
anything is sent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import typer
from helpers.csms import api_token, running_csms, served_api
from typer.testing import CliRunner

from v2gstack.cli import app
from v2gstack.csms.cli import _start_grid
from v2gstack.csms.grid_control import GridConfig, GridControl
from v2gstack.csms.settings import Grid

pytestmark = pytest.mark.timeout(60)
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "grid-signals.toml"


def test_check_reads_the_example_and_names_errors(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["grid", "signal", "check", str(EXAMPLE)])
    assert r.exit_code == 0, r.output
    signals = json.loads(r.output)
    assert [s["id"] for s in signals] == ["evening-cap", "fcr-test"]
    assert signals[1]["intervals"][0]["setpointW"] == -50000.0 and signals[1]["priority"] == 5
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"id": "x", "intervals": [{"start": "now+1h", "end": "now", "price": 1}]}]))
    r = CliRunner().invoke(app, ["grid", "signal", "check", str(bad)])
    assert r.exit_code == 1 and "inverted-interval" in r.output
    bad.write_text("{not json")
    r = CliRunner().invoke(app, ["grid", "signal", "check", str(bad)])
    assert r.exit_code == 1 and "bad-file" in r.output


async def test_signal_commands_against_a_running_csms(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, served_api(csms) as url:
        GridControl(csms, GridConfig()).start()
        env = {"V2GSTACK_API": url, "V2GSTACK_API_TOKEN": api_token(csms, "operator")}

        def run(*args: str) -> tuple[int, str]:
            r = CliRunner().invoke(app, ["grid", "signal", *args], env=env)
            return r.exit_code, r.output

        code, out = await asyncio.to_thread(run, "add", "--id", "cap", "--import-limit", "30000", "--minutes", "60")
        assert code == 0, out
        assert json.loads(out)["applied"] == ["cap"]
        code, out = await asyncio.to_thread(run, "add", "--setpoint", "nan")
        assert code == 2 and "finite" in out
        code, out = await asyncio.to_thread(run, "add", "--price", "0.2", "--target", "station:CS9")
        assert code == 1 and "unknown-target" in out
        code, out = await asyncio.to_thread(run, "load", str(EXAMPLE))
        assert code == 0, out
        code, out = await asyncio.to_thread(run, "opt", "fcr-test", "optOut")
        assert code == 0 and json.loads(out)["signals"][0]["opt"] in ("optIn", "optOut")
        assert csms.grid.book.signals["fcr-test"].opt.value == "optOut"
        code, out = await asyncio.to_thread(run, "cancel", "cap")
        assert code == 0
        code, out = await asyncio.to_thread(run, "list")
        assert sorted(s["id"] for s in json.loads(out)["signals"]) == ["evening-cap", "fcr-test"]
        viewer = {**env, "V2GSTACK_API_TOKEN": api_token(csms, "viewer")}
        r = await asyncio.to_thread(CliRunner().invoke, app, ["grid", "signal", "cancel", "fcr-test"], env=viewer)
        assert r.exit_code == 1 and "403" in r.output


def test_grid_settings_and_flags(tmp_path: Path) -> None:
    conf = tmp_path / "csms.toml"
    conf.write_text('[grid]\nenabled = true\ngroups = ["depot=CS1,CS2"]\n[grid.openadr]\nsite_import_w = 90000.0\n')
    r = CliRunner().invoke(app, ["csms", "--config", str(conf), "--grid-dispatch", "--grid-signals", str(EXAMPLE),
                                 "--print-config"])
    assert r.exit_code == 0, r.output
    assert "dispatch = true" in r.output and 'groups = ["depot=CS1,CS2"]' in r.output
    assert "site_import_w = 90000.0" in r.output and "grid-signals.toml" in r.output
    conf.write_text('[grid]\ngroups = ["depot"]\n')
    r = CliRunner().invoke(app, ["csms", "--config", str(conf), "--print-config"])
    assert r.exit_code == 2 and "groups" in r.output


async def test_the_csms_applies_a_signals_file_at_start(tmp_path: Path) -> None:
    """`v2gstack csms --grid --grid-signals FILE`: the file's signals are in force once the CSMS runs; a bad file
    stops the start (exit 2) with the rule that failed."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms:
        await _start_grid(csms, GridConfig(), Grid(enabled=True, signals_file=str(EXAMPLE)))
        assert sorted(csms.grid.book.signals) == ["evening-cap", "fcr-test"]
        assert csms.grid.book.signals["fcr-test"].source == "file"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[signal]]\nid = "x"\n[[signal.intervals]]\nstart = "now"\ndurationS = 60\nsetpointW = 1e12\n')
    async with running_csms(f"sqlite:///{tmp_path / 'd.db'}") as csms:
        with pytest.raises(typer.Exit) as e:
            await _start_grid(csms, GridConfig(), Grid(enabled=True, signals_file=str(bad)))
        assert e.value.exit_code == 2
