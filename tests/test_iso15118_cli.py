"""The `ev` and `secc` commands of the ISO 15118 sub-app (wired into `v2gstack` by the main CLI)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from v2gstack.iso15118 import SeccConfig, SeccServer, SimulatedEVSE, SimulatedEVSEConfig
from v2gstack.iso15118.cli import app
from v2gstack.pki.algorithms import KeyAlgorithm
from v2gstack.pki.hierarchy import Edition, PkiConfig, create_pki
from v2gstack.pki.store import write_pki

runner = CliRunner()


@pytest.fixture
def secc_thread() -> Iterator[tuple[str, int]]:
    """A SECC on ::1 running in its own thread and event loop; yields its TCP address."""
    ready = threading.Event()
    stop: dict[str, object] = {}

    def main() -> None:
        """Thread body: run the SECC until told to stop."""
        async def serve() -> None:
            """Serve until the stop event is set."""
            async with SeccServer(lambda: SimulatedEVSE(SimulatedEVSEConfig(discharge_loops=1)),
                                  SeccConfig(protocols=("iso20", "iso2", "din")), host="::1", sdp=False) as server:
                stop["address"] = server.addresses()["tcp"]
                stop["event"] = asyncio.Event()
                stop["loop"] = asyncio.get_running_loop()
                ready.set()
                await stop["event"].wait()  # type: ignore[attr-defined]

        asyncio.run(serve())

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield stop["address"]  # type: ignore[misc]
    stop["loop"].call_soon_threadsafe(stop["event"].set)  # type: ignore[attr-defined]
    thread.join(10)


@pytest.mark.parametrize(("protocol", "energy"), [("din", "dc"), ("iso2", "ac"), ("iso2", "dc")])
def test_ev_command(secc_thread: tuple[str, int], tmp_path: Path, protocol: str, energy: str) -> None:
    """`ev` runs a session, prints each message and writes JSON lines."""
    log = tmp_path / "ev.jsonl"
    host, port = secc_thread
    result = runner.invoke(app, ["ev", "--protocol", protocol, "--energy", energy, "--secc", f"[{host}]:{port}",
                                 "--loops", "3", "--loop-interval", "0", "--log-json", str(log)])
    assert result.exit_code == 0, result.output
    assert "-> appHand:supportedAppProtocolReq" in result.output
    assert f"<- {protocol}:SessionStopRes ResponseCode=OK" in result.output
    assert "session OK: SessionStopRes OK (Terminate)" in result.output
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert lines[0]["message"] == "supportedAppProtocolReq" and lines[-1]["message"] == "SessionStopRes"
    assert {"seq", "mono", "wall", "trace_id", "source", "direction", "namespace", "message", "json", "exi"} <= set(
        lines[0])
    assert [x["seq"] for x in lines] == list(range(len(lines))) and len({x["trace_id"] for x in lines}) == 1


@pytest.mark.parametrize(("energy", "control"), [("ac", "scheduled"), ("dc", "dynamic"), ("ac_bpt", "dynamic"),
                                                 ("dc_bpt", "scheduled")])
def test_ev_command_iso20(secc_thread: tuple[str, int], energy: str, control: str) -> None:
    """`ev --protocol iso20 --energy ... --control ...` runs a -20 session in the -20 namespaces."""
    host, port = secc_thread
    result = runner.invoke(app, ["ev", "--protocol", "iso20,iso2", "--energy", energy, "--control", control,
                                 "--secc", f"[{host}]:{port}", "--loops", "3", "--loop-interval", "0.01",
                                 "--speedup", "10000"])
    assert result.exit_code == 0, result.output
    kind = "iso20_dc" if energy.startswith("dc") else "iso20_ac"
    assert "<- iso20:SessionSetupRes ResponseCode=OK_NewSessionEstablished" in result.output
    assert f"-> {kind}:{kind[-2:].upper()}_ChargeLoopReq" in result.output
    assert f"protocol iso20, {energy.upper()} {control}," in result.output
    if energy == "ac_bpt":  # the SECC asks for discharge in the first dynamic loop
        assert "Wh fed back" in result.output


def test_ev_command_fails_with_exit_1() -> None:
    """`ev` exits 1 when the session fails."""
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    result = runner.invoke(app, ["ev", "--secc", f"[::1]:{port}", "-q"])
    assert result.exit_code == 1
    assert "session FAILED: cannot connect" in result.output


def test_ev_command_checks_options() -> None:
    """Impossible option combinations are usage errors."""
    assert runner.invoke(app, ["ev", "--protocol", "din", "--energy", "ac"]).exit_code == 2
    assert runner.invoke(app, ["ev", "--protocol", "iso21"]).exit_code == 2
    assert runner.invoke(app, ["ev", "--protocol", "iso2", "--energy", "dc_bpt"]).exit_code == 2
    assert runner.invoke(app, ["ev", "--protocol", "iso20", "--control", "manual"]).exit_code == 2
    assert runner.invoke(app, ["ev", "--auth", "pnc"]).exit_code == 2


def test_secc_command_with_tls(tmp_path: Path) -> None:
    """`secc --tls` serves one session to `ev --tls` verifying the written root, then exits 0."""
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    root, secc_log = tmp_path / "root.pem", tmp_path / "secc.jsonl"
    cmd = [sys.executable, "-c", "from v2gstack.iso15118.cli import app; app()", "secc", "--host", "::1",
           "--port", str(port), "--tls", "--root-out", str(root), "--no-sdp", "--sessions", "1", "-q",
           "--log-json", str(secc_log)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("::1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        result = runner.invoke(app, ["ev", "--secc", f"[::1]:{port}", "--tls", "--v2g-root", str(root),
                                     "--loops", "2", "--loop-interval", "0", "-q"])
        assert result.exit_code == 0, result.output
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert f"SECC tls listening on [::1]:{port}" in err
    messages = [json.loads(x)["message"] for x in secc_log.read_text().splitlines()]
    assert messages[0] == "supportedAppProtocolReq" and messages[-1] == "SessionStopRes"


def test_secc_command_reports_setup_errors() -> None:
    """An unannounceable address or a missing interface is a clean usage error."""
    assert runner.invoke(app, ["secc", "--host", "::"]).exit_code == 2
    result = runner.invoke(app, ["secc", "--iface", "no-such-if0"])
    assert result.exit_code == 2 and "no network interface named 'no-such-if0'" in result.output


@pytest.mark.parametrize("install", [False, True], ids=["contract", "install"])
def test_iso20_plug_and_charge_over_tls13(tmp_path: Path, install: bool) -> None:
    """`secc --tls --pki DIR` (TLS 1.3, vehicle certificate required) serves `ev --protocol iso20 --auth pnc --tls
    --pki DIR` (with --install: a contract installed first); both exit 0."""
    write_pki(create_pki(PkiConfig(edition=Edition.ISO20, algorithm=KeyAlgorithm.ED448)), tmp_path / "pki")
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-c", "from v2gstack.iso15118.cli import app; app()", "secc", "--host", "::1",
           "--port", str(port), "--tls", "--pki", str(tmp_path / "pki"), "--no-sdp", "--sessions", "1", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("::1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        args = ["ev", "--protocol", "iso20", "--energy", "dc_bpt", "--control", "dynamic", "--auth", "pnc", "--tls",
                "--pki", str(tmp_path / "pki"), "--secc", f"[::1]:{port}", "--loops", "2", "--loop-interval", "0"]
        result = runner.invoke(app, [*args, "--install"] if install else args)
        assert result.exit_code == 0, result.output
        assert "-> iso20:AuthorizationReq SelectedAuthorizationService=PnC" in result.output
        assert ("CertificateInstallationReq" in result.output) is install
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
