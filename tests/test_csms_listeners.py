"""`v2gstack csms --config` with `[[ocpp.listeners]]`: one process serving a profile 1 listener and a profile 3 one
(the `[ocpp.tls]` files), a station assembled from its settings file connecting to the profile 3 listener with its
client certificate; and the refusal of a profile 3 listener without the station CA."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import sys
from pathlib import Path

import pytest
from helpers.ocpp import make_pki
from typer.testing import CliRunner

from v2gstack.csms.cli import app
from v2gstack.csms.store import Store
from v2gstack.station.assemble import assemble
from v2gstack.station.settings import load_station_settings

pytestmark = pytest.mark.timeout(120)
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "csms.toml"
MORE = "\n[[ocpp.listeners]]\nhost = \"127.0.0.1\"\nport = 0\nsecurity_profile = 3\n"


def test_profile3_listener_needs_the_station_ca(tmp_path: Path) -> None:
    pki = make_pki()
    f = tmp_path / "csms.toml"
    f.write_text(f'[ocpp]\n[ocpp.tls]\ncert = "{pki.server_cert}"\nkey = "{pki.server_key}"\n{MORE}', encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(f), "--print-config"])
    assert result.exit_code == 2
    assert "[[ocpp.listeners]] #1 security_profile: a profile 3 listener needs [ocpp.tls] client_ca" in result.output


async def test_profile1_and_profile3_listeners_in_one_process(tmp_path: Path) -> None:
    pki = make_pki()
    certs = tmp_path / "conf" / "certs"
    certs.mkdir(parents=True)
    for f in (pki.root, pki.server_cert, pki.server_key, pki.cs1_cert, pki.cs1_key):
        shutil.copy(f, certs / f.name)
    db = f"sqlite:///{tmp_path / 'csms.db'}"
    store = Store(db)
    store.add_station("CS001", None, security_profile=3)
    store.close()
    csms_file = tmp_path / "conf" / "csms.toml"
    text = (EXAMPLE.read_text(encoding="utf-8")
            .replace('# cert = "csms-chain.pem"', f'cert = "certs/{pki.server_cert.name}"')
            .replace('# key = "csms-key.pem"', f'key = "certs/{pki.server_key.name}"')
            .replace('# client_ca = "cpo-root.pem"', f'client_ca = "certs/{pki.root.name}"'))
    text = text.replace("\n[database]", MORE + "\n[database]", 1)
    csms_file.write_text(text, encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "v2gstack", "csms", "--config", str(csms_file), "--port", "0", "--api-port", "0",
        "--db", db, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        seen, ports = "", {}
        while len(ports) < 2 and len(seen) < 20000:
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, seen
            seen += line
            found = re.search(r"CSMS: OCPP [0-9. and]+ at wss?://127\.0\.0\.1:(\d+)/ocpp/.*security profile (\d)",
                              line)
            if found:
                ports[int(found.group(2))] = int(found.group(1))
        assert set(ports) == {1, 3}, seen
        station_file = tmp_path / "conf" / "station.toml"
        station_file.write_text(
            f'[station]\nid = "CS001"\n[csms]\nurl = "wss://127.0.0.1:{ports[3]}/ocpp"\n'
            f'ca = "certs/{pki.root.name}"\nclient_cert = "certs/{pki.cs1_cert.name}"\n'
            f'client_key = "certs/{pki.cs1_key.name}"\nping_interval = 0\n', encoding="utf-8")
        settings = load_station_settings(str(station_file))
        settings.check()
        assembly = assemble(settings.tree)
        await assembly.start()
        try:
            await asyncio.wait_for(assembly.station.wait_accepted(), 30)
            assert assembly.station.model.value("SecurityCtrlr", "SecurityProfile") == "3"
        finally:
            await assembly.stop()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out.decode()
