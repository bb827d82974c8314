"""Install and run the Node.js peers in tests/interop (ocpp-rpc) for interop tests; skip cleanly without npm."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from helpers.paths import INTEROP_ASSETS, ROOT

HERE = INTEROP_ASSETS  # package.json and the peers' scripts
CACHE = ROOT / ".cache" / "node-interop"


def node_peers_dir() -> Path | None:
    """A folder with this directory's package.json installed (npm install once, then reused); None if impossible."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    package = (HERE / "package.json").read_text()
    if (CACHE / "package.json").exists() and (CACHE / "package.json").read_text() == package and (
            CACHE / "node_modules" / "ocpp-rpc").is_dir():
        return CACHE
    (CACHE / "package.json").write_text(package)
    proc = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent"], cwd=CACHE,
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or not (CACHE / "node_modules" / "ocpp-rpc").is_dir():
        return None
    return CACHE


def script(name: str) -> Path:
    """A peer script in tests/interop."""
    return HERE / name
