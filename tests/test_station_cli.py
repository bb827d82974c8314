"""`station` command: a scripted session from the command line reaches the CSMS, then the process exits."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from helpers.station import CsmsServer
from typer.testing import CliRunner

from v2gstack.station.cli import app

pytestmark = pytest.mark.timeout(60)


def test_help_and_version_check() -> None:
    """The options are documented; an unsupported OCPP version is refused."""
    runner = CliRunner()
    out = runner.invoke(app, ["--help"]).output
    for option in ("--csms", "--id", "--evses", "--password", "--state-dir", "--simulate-session", "--secc-tls-only"):
        assert option in out
    result = runner.invoke(app, ["--csms", "ws://127.0.0.1:1/ocpp", "--id", "X", "--ocpp", "1.5"])
    assert result.exit_code == 2


async def test_simulated_session_from_the_command_line(tmp_path: object) -> None:
    """`station --simulate-session` boots, charges with meter values, stops, and exits once all is delivered."""
    async with CsmsServer().running() as csms:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "from v2gstack.station.cli import app; app()",
            "--csms", csms.url, "--id", "CLI1", "--evses", "2", "--simulate-session", "--session-seconds", "5",
            "--time-scale", "0.02", "--meter-interval", "1", "--state-dir", str(tmp_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out.decode()
    events = csms.messages("TransactionEvent")
    assert events[0]["eventType"] == "Started" and events[-1]["eventType"] == "Ended"
    assert [e["seqNo"] for e in events] == list(range(len(events)))
    assert sum(e["triggerReason"] == "MeterValuePeriodic" for e in events) >= 2
    assert b"TransactionEvent Ended" in out


@pytest.mark.parametrize("command", ["station", "ev", "secc"])
def test_the_station_and_ev_commands_do_not_load_the_csms(command: str) -> None:
    """`v2gstack station|ev|secc --help` imports neither the CSMS package nor its extra's dependencies (nor the
    `ocpp` package), even where everything is installed; `csms --help` does load them (the check can fail)."""
    script = (
        "import sys\n"
        "from v2gstack.cli import main\n"
        "sys.argv = ['v2gstack', sys.argv[1], '--help']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = {'fastapi', 'uvicorn', 'sqlalchemy', 'starlette', 'psycopg', 'ocpp'}\n"
        "print(sorted({m for m in sys.modules if m.split('.')[0] in heavy or m.startswith('v2gstack.csms')}))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", script, command], capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip().splitlines()[-1] == "[]"
    csms = subprocess.run([sys.executable, "-c", script, "csms"], capture_output=True, text=True, timeout=60)
    assert "v2gstack.csms.cli" in csms.stdout.strip().splitlines()[-1]
