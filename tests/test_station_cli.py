"""`station` command: a scripted session from the command line reaches the CSMS, then the process exits."""

from __future__ import annotations

import asyncio
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
    result = runner.invoke(app, ["--csms", "ws://127.0.0.1:1/ocpp", "--id", "X", "--version", "1.6"])
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
