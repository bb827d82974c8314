"""The reference ISO 15118 stack's -2 AC Plug & Charge EVCC (iso15118 0.31.2, its own virtualenv) charges at our
bridged station speaking OCPP 1.6J: its contract goes to our CSMS as DataTransfer Authorize (the OCA application
note), is validated against the MO root the operator installed, and the 1.6 transaction runs under its eMAID, joined
to its ISO 15118 session.

Two network namespaces joined by a veth pair, as in test_bridge_interop.py: CSMS and station in the EVSE namespace
as `v2gstack` processes, the reference EVCC in the EV namespace.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import josev, netns
from helpers.interop import REFERENCE_EVCC_STOP_OK, start, wait, wait_for_text

from v2gstack.csms.store import Store

PASSWORD = "interop-station-pass"


def _skip_reason() -> str | None:
    return netns.skip_reason() or (None if josev.available() else "no .venv-ref (make ref-venv; needs Java)")


pytestmark = [pytest.mark.reference, pytest.mark.timeout(240),
              pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))]


def _ours(link: netns.VethLink, args: list[str]) -> list[str]:
    return link.command(link.evse_ns, [sys.executable, "-m", "v2gstack", *args])


def test_reference_pnc_evcc_charges_at_our_16_station(tmp_path: Path) -> None:
    evcc_dir = tmp_path / "evcc"
    josev.make_pki(evcc_dir)
    certs, keys = evcc_dir / "pki" / "iso15118_2" / "certs", evcc_dir / "pki" / "iso15118_2" / "private_keys"
    db = f"sqlite:///{tmp_path / 'csms.db'}"
    store = Store(db)
    store.add_station("CS1", PASSWORD)
    store.close()
    added = subprocess.run([sys.executable, "-m", "v2gstack", "csms", "add-root", str(certs / "moRootCACert.pem"),
                            "--kind", "mo", "--db", db], capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    link = netns.VethLink.create()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        csms = start(_ours(link, ["csms", "--db", db, "--port", "9000", "--api-port", "0"]), tmp_path / "csms.log")
        procs.append(csms)
        wait_for_text(tmp_path / "csms.log", "CSMS: OCPP ", csms, 30)
        station = start(_ours(link, [
            "station", "--ocpp", "1.6", "--csms", "ws://127.0.0.1:9000/ocpp", "--id", "CS1", "--password", PASSWORD,
            "--secc-iface", link.evse_if, "--pnc", "--secc-cert", str(certs / "cpoCertChain.pem"), "--secc-key",
            str(keys / "seccLeaf.key"), "--secc-key-password", (keys / "seccLeafPassword.txt").read_text().strip(),
            "--trace-dir", str(tmp_path / "traces")]), tmp_path / "station.log")
        procs.append(station)
        wait_for_text(tmp_path / "station.log", "SECC at", station, 30)
        argv, env = josev.evcc_command(link.command(link.ev_ns, []), evcc_dir, link.ev_if, "iso2", "ac")
        env["EVCC_CONFIG_PATH"] = str(josev.site_packages() / josev.EXAMPLES / "iso15118_2" / "evcc_config_pnc_ac.json")
        evcc = josev.start(argv, env, evcc_dir, "evcc.log")
        rc = wait(evcc, 150)
        evcc_log = (evcc_dir / "evcc.log").read_text(errors="replace")
        assert rc == 0 and REFERENCE_EVCC_STOP_OK in evcc_log, evcc_log[-3000:]
        assert "PaymentDetailsRes" in evcc_log and "AuthorizationRes" in evcc_log
        deadline, tx = time.monotonic() + 30, None
        while time.monotonic() < deadline:
            store = Store(db)
            txs = store.transactions("CS1")
            tx = store.transaction("CS1", txs[0]["transactionId"]) if txs else None
            auth = [m for m in store.messages(station_id="CS1") if m["action"] == "Authorize"]
            store.close()
            if tx is not None and tx["state"] == "Ended":
                break
            time.sleep(0.5)
        assert tx is not None and tx["state"] == "Ended", (tmp_path / "station.log").read_text()[-3000:]
        assert tx["ocppVersion"] == "1.6" and tx["transactionId"].isdigit()
        assert tx["idToken"] == "UKSWI123456791A"
        assert tx["iso15118"]["protocol"] == "ISO15118-2" and tx["iso15118"]["sessionId"].upper() in evcc_log.upper()
        assert auth and auth[0]["response"]["certificateStatus"] == "Accepted"
    finally:
        for p in reversed(procs):
            p.terminate()
            wait(p, 15)
        link.destroy()
