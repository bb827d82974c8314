"""Run the reference ISO 15118 stack's EVCC and SECC (`iso15118` 0.31.2 from .venv-ref) as processes.

Configured as that stack reads its configuration: environment variables (NETWORK_INTERFACE, PROTOCOLS, AUTH_MODES,
PKI_PATH, ...) and, for the EVCC, one of its example JSON files (EVCC_CONFIG_PATH).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from helpers.paths import ROOT

PYTHON = ROOT / ".venv-ref" / "bin" / "python"
EXAMPLES = "iso15118/shared/examples/evcc"
EVCC_CONFIGS = {  # (protocol, energy) -> the reference's own example configuration
    ("din", "dc"): "DIN/evcc_config.json",
    ("iso2", "ac"): "iso15118_2/evcc_config_eim_ac.json",
    ("iso2", "dc"): "iso15118_2/evcc_config_eim_dc.json",
    ("iso20", "ac"): "iso15118_20/evcc_config_ac.json",
    ("iso20", "dc"): "iso15118_20/evcc_config_dc.json",
    ("iso20", "ac_bpt"): "iso15118_20/evcc_config_ac_bpt.json",
    ("iso20", "dc_bpt"): "iso15118_20/evcc_config_dc_bpt.json",
}
PROTOCOLS = {"din": "DIN_SPEC_70121", "iso2": "ISO_15118_2", "iso20": "ISO_15118_20_AC,ISO_15118_20_DC"}


def available() -> bool:
    return PYTHON.exists()


def site_packages() -> Path:
    return next((ROOT / ".venv-ref" / "lib").glob("python3*/site-packages"))


def _env(workdir: Path, iface: str, extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    env.update({"NETWORK_INTERFACE": iface, "LOG_LEVEL": "INFO", "PKI_PATH": str(workdir / "pki") + "/"})
    env.update(extra)
    return env


def make_pki(workdir: Path) -> None:
    """The reference's own test PKI (its create_certs.sh, ISO 15118-2 layout) under workdir/pki, where PKI_PATH
    points; needs openssl. Its SECC then serves TLS with seccLeafCert <- CPO sub-CA 2 <- sub-CA 1 <- V2G root."""
    pki = workdir / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    source = site_packages() / "iso15118" / "shared" / "pki"
    if not (pki / "configs").exists():
        (pki / "configs").symlink_to(source / "configs")  # the script reads its openssl configs from ./configs
    subprocess.run(["bash", str(source / "create_certs.sh"), "-v", "iso-2"], cwd=pki, check=True,
                   capture_output=True, timeout=120)
    if not (pki / "iso15118_2" / "certs" / "seccLeafCert.pem").exists():
        raise RuntimeError("the reference's create_certs.sh made no SECC certificate")


def secc_command(prefix: list[str], workdir: Path, iface: str, protocols: list[str],
                 tls: bool = False, tls13: bool = False) -> tuple[list[str], dict]:
    """argv and environment of the reference SECC (EIM only) on `iface`; with `tls`, TLS enforced (make_pki first);
    with `tls13` its ENABLE_TLS_1_3 (TLS 1.3 allowed, the client's OEM certificate required)."""
    env = _env(workdir, iface, {"PROTOCOLS": ",".join(PROTOCOLS[p] for p in protocols), "AUTH_MODES": "EIM"})
    if tls:
        env["SECC_ENFORCE_TLS"] = "true"
    if tls13:
        env["ENABLE_TLS_1_3"] = "true"
    return [*prefix, str(PYTHON), "-c", "from iso15118.secc.main import run; run()"], env


def evcc_command(prefix: list[str], workdir: Path, iface: str, protocol: str, energy: str) -> tuple[list[str], dict]:
    """argv and environment of the reference EVCC for one session of `protocol` with `energy` (ac/dc; -20 also
    ac_bpt/dc_bpt)."""
    config = site_packages() / EXAMPLES / EVCC_CONFIGS[(protocol, energy)]
    env = _env(workdir, iface, {"EVCC_CONFIG_PATH": str(config)})
    return [*prefix, str(PYTHON), "-c", "from iso15118.evcc.main import run; run()"], env


def evcc_config_copy(workdir: Path, protocol: str, energy: str, **changes: object) -> Path:
    """The reference's example EVCC config for protocol/energy with `changes` (e.g. useTls=True), written to
    workdir/config.json; point EVCC_CONFIG_PATH at it."""
    config = json.loads((site_packages() / EXAMPLES / EVCC_CONFIGS[(protocol, energy)]).read_text())
    config.update(changes)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.json"
    path.write_text(json.dumps(config))
    return path


def start(argv: list[str], env: dict, workdir: Path, log_name: str) -> subprocess.Popen[bytes]:
    workdir.mkdir(parents=True, exist_ok=True)
    log = (workdir / log_name).open("wb")
    return subprocess.Popen(argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
