"""CSMS settings: `v2gstack csms --config` with examples/csms.toml, flags over the file, `--print-config` masked,
clear refusals, and a profile 3 CSMS and station each run from their settings file."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import sys
import tomllib
from pathlib import Path

import pytest
from helpers.ocpp import make_pki
from typer.testing import CliRunner

from v2gstack.csms.assemble import csms_config
from v2gstack.csms.cli import app
from v2gstack.csms.guard import DEFAULT_MAX_BODY
from v2gstack.csms.service import CsmsConfig
from v2gstack.csms.settings import DEFAULT_DB_URL, CsmsSettings, load_csms_settings
from v2gstack.csms.store import DEFAULT_URL, Store
from v2gstack.ocpp import FloodPolicy
from v2gstack.ocpp.throttle import ThrottlePolicy
from v2gstack.settings_file import MASK, from_dict
from v2gstack.station.assemble import assemble
from v2gstack.station.settings import load_station_settings

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "csms.toml"
EXAMPLE_DATA = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
DB_PASSWORD = "pg-s3cret-4711"


def run(*args: str) -> tuple[int, str, str]:
    """The csms command in process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_example_loads_and_prints_with_flags_over_it_masked() -> None:
    """examples/csms.toml loads; flags given win (repeatable --ocsp-allow, comma-separated --api-allowed-hosts);
    the printed TOML loads back to the same settings, the database password masked."""
    code, out, err = run("--config", str(EXAMPLE), "--print-config")
    assert code == 0, err
    assert tomllib.loads(out) == {k: v for k, v in tomllib.loads(out).items() if k in EXAMPLE_DATA}
    assert from_dict(CsmsSettings, tomllib.loads(out), "printed") == load_csms_settings(str(EXAMPLE)).tree
    url = f"postgresql://csms:{DB_PASSWORD}@127.0.0.1:5432/test"
    code, out, err = run("--config", str(EXAMPLE), "--print-config", "--port", "9100", "--db", url,
                         "--ocsp-allow", "127.0.0.1:8888", "--ocsp-allow", "10.0.0.0/8",
                         "--api-allowed-hosts", "csms.example.com,*.example.org", "--max-protocol-errors", "5",
                         "--ocpp-versions", "2.0.1")
    assert code == 0, err
    printed = tomllib.loads(out)
    assert printed["ocpp"]["port"] == 9100 and printed["ocpp"]["heartbeat_interval"] == 300
    assert printed["database"]["url"] == f"postgresql://csms:{MASK}@127.0.0.1:5432/test"
    assert printed["ocsp"]["allow"] == ["127.0.0.1:8888", "10.0.0.0/8"]
    assert printed["api"]["allowed_hosts"] == ["csms.example.com", "*.example.org"]
    assert printed["flood"]["max_protocol_errors"] == 5
    assert printed["ocpp"]["versions"] == ["2.0.1"]
    assert DB_PASSWORD not in out


def test_defaults_match_the_services_own() -> None:
    """The settings' defaults are the ones the service, store, guard and policies have without settings."""
    s = CsmsSettings()
    assert (DEFAULT_DB_URL, s.api.max_body) == (DEFAULT_URL, DEFAULT_MAX_BODY)
    config = csms_config(s)
    assert config.auth_throttle == ThrottlePolicy() and config.flood == FloodPolicy()
    assert config.heartbeat_interval == 300 and config.security_profile == 1 and config.ocsp_timeout == 3.0
    plain = CsmsConfig()
    for name in ("ocsp_required", "needs_profiles", "needs_max_power_w", "pending_until_reported", "pending_interval",
                 "reconcile_local_lists", "firmware_dir", "max_upload"):
        assert getattr(config, name) == getattr(plain, name), name


def test_bad_files_and_values_are_refused_with_the_file_and_key(tmp_path: Path) -> None:
    """Exit 2 with one line naming the file (or flag) and the key."""
    bad = tmp_path / "csms.toml"
    cases = [
        ('[ocpp]\nport = "abc"\n', 'csms.toml: [ocpp] port: expected an integer, got "abc"'),
        ("[ocsp]\ntimeout = inf\n", "csms.toml: [ocsp] timeout: expected a finite number, got inf"),
        ("[ocpp]\nsecurity_profile = 2\n", "csms.toml: [ocpp.tls] cert: security profile 2 needs a server "
         "certificate (--cert, and --key)"),
        ('[ocsp]\nallow = ["10.0.0.0/99"]\n', "csms.toml: [ocsp] allow: '10.0.0.0/99' does not appear to be an"),
        ("[api]\nmax_body = 10\n", "csms.toml: [api] max_body: must be at least 1024, got 10"),
        ("[database]\nurl = 5\n", "csms.toml: [database] url: expected a string, got an integer"),
        ('[ocpp]\nversions = ["2.0.1", "1.5"]\n', 'csms.toml: [ocpp] versions[1]: expected one of "2.1", "2.0.1", '
         '"1.6", got "1.5"'),
        ("[ocpp]\nversions = []\n", "csms.toml: [ocpp] versions: one or more OCPP versions, each once"),
        ("[apis]\nport = 1\n", "csms.toml: apis: unknown key (known here: admission, api, auth_throttle, cluster, "
         "contracts, database, files, flood, grid, ocpp, ocsp, pki, provisioning, smart_charging, v2x)"),
    ]
    for text, message in cases:
        bad.write_text(text, encoding="utf-8")
        code, out, err = run("--config", str(bad), "--print-config")
        assert (code, out) == (2, ""), text
        assert err.startswith(f"error: {message}"), err
    code, _, err = run("--config", str(EXAMPLE), "--ocpp-versions", "2.0.1,1.5")
    assert code == 2 and err == 'error: --ocpp-versions: [1]: expected one of "2.1", "2.0.1", "1.6", got "1.5"\n'
    code, _, err = run("--config", str(EXAMPLE), "--ocsp-allow", "10.0.0.0/99")
    assert code == 2 and err.startswith("error: --ocsp-allow: '10.0.0.0/99' does not appear")
    code, _, err = run("--config", str(EXAMPLE), "--api-allowed-hosts", "a*b", "--db",
                       f"sqlite:///{tmp_path / 'x.db'}")
    assert code == 2 and err.startswith("error: --api-allowed-hosts: allowed host 'a*b'")
    code, _, err = run("--config", str(EXAMPLE), "--security-profile", "3", "--cert", str(tmp_path / "no.pem"),
                       "--client-ca", str(tmp_path / "no-ca.pem"))
    assert code == 2 and err.startswith("error: --cert: cannot load the TLS files")


async def test_profile3_csms_and_station_from_their_settings_files(tmp_path: Path) -> None:
    """A CSMS run by `v2gstack csms --config` (security profile 3, TLS files named relative to the file) accepts a
    station assembled from its own settings file (wss://, CA and client certificate relative to its file), and
    gives it the file's heartbeat interval."""
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
    csms_file.write_text(EXAMPLE.read_text(encoding="utf-8")
                         .replace("security_profile = 1", "security_profile = 3")
                         .replace("heartbeat_interval = 300", "heartbeat_interval = 123")
                         .replace('# cert = "csms-chain.pem"', f'cert = "certs/{pki.server_cert.name}"')
                         .replace('# key = "csms-key.pem"', f'key = "certs/{pki.server_key.name}"')
                         .replace('# client_ca = "cpo-root.pem"', f'client_ca = "certs/{pki.root.name}"'),
                         encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "v2gstack", "csms", "--config", str(csms_file), "--port", "0", "--api-port", "0",
        "--db", db, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        seen, found = "", None
        while found is None and len(seen) < 20000:  # log lines first, then the banner with the port
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            assert line, seen
            seen += line
            found = re.search(r"CSMS: OCPP [0-9. and]+ at wss://127\.0\.0\.1:(\d+)/ocpp/.*security profile 3", line)
        assert found, seen
        station_file = tmp_path / "conf" / "station.toml"
        station_file.write_text(
            f'[station]\nid = "CS001"\n[csms]\nurl = "wss://127.0.0.1:{found.group(1)}/ocpp"\n'
            f'ca = "certs/{pki.root.name}"\nclient_cert = "certs/{pki.cs1_cert.name}"\n'
            f'client_key = "certs/{pki.cs1_key.name}"\nping_interval = 0\n', encoding="utf-8")
        settings = load_station_settings(str(station_file))
        settings.check()
        assembly = assemble(settings.tree)
        assert assembly.station.config.security_profile == 3
        await assembly.start()
        try:
            await asyncio.wait_for(assembly.station.wait_accepted(), 30)
            assert assembly.station.model.value("OCPPCommCtrlr", "HeartbeatInterval") == "123"
            assert assembly.station.model.value("SecurityCtrlr", "SecurityProfile") == "3"
        finally:
            await assembly.stop()
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, out.decode()
