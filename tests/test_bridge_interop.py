"""The reference ISO 15118 stack's EVCC (iso15118 0.31.2, its own virtualenv) charges at our bridged station; the
transaction appears in our CSMS with the session's facts.

Two network namespaces joined by a veth pair: the CSMS and the station (its SECC on the veth, SDP by multicast) run
in the EVSE namespace as `v2gstack` processes, the reference EVCC in the EV namespace. The CSMS database is a file
this test reads afterwards.
"""

from __future__ import annotations

import json
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


@pytest.mark.parametrize(("protocol", "energy"), [("din", "dc"), ("iso2", "ac")])
def test_reference_evcc_charges_at_our_station(tmp_path: Path, protocol: str, energy: str) -> None:
    db = f"sqlite:///{tmp_path / 'csms.db'}"
    store = Store(db)
    store.add_station("CS1", PASSWORD)
    store.close()
    link = netns.VethLink.create()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        csms = start(_ours(link, ["csms", "--db", db, "--port", "9000", "--api-port", "0"]), tmp_path / "csms.log")
        procs.append(csms)
        wait_for_text(tmp_path / "csms.log", "CSMS: OCPP ", csms, 30)
        station = start(_ours(link, ["station", "--csms", "ws://127.0.0.1:9000/ocpp", "--id", "CS1", "--password",
                                      PASSWORD, "--secc-iface", link.evse_if, "--free-charging", "--trace-dir",
                                      str(tmp_path / "traces"), "--meter-interval", "1"]), tmp_path / "station.log")
        procs.append(station)
        wait_for_text(tmp_path / "station.log", "SECC at", station, 30)
        argv, env = josev.evcc_command(link.command(link.ev_ns, []), tmp_path / "evcc", link.ev_if, protocol, energy)
        evcc = josev.start(argv, env, tmp_path / "evcc", "evcc.log")
        rc = wait(evcc, 150)
        evcc_log = (tmp_path / "evcc" / "evcc.log").read_text(errors="replace")
        assert rc == 0 and REFERENCE_EVCC_STOP_OK in evcc_log, evcc_log[-3000:]
        deadline = time.monotonic() + 30
        tx = None
        while time.monotonic() < deadline:
            store = Store(db)
            txs = store.transactions("CS1")
            tx = store.transaction("CS1", txs[0]["transactionId"]) if txs else None
            store.close()
            if tx is not None and tx["state"] == "Ended":
                break
            time.sleep(0.5)
        logs = (tmp_path / "station.log").read_text(errors="replace")[-3000:]
        assert tx is not None and tx["state"] == "Ended", logs
        iso = tx["iso15118"]
        assert iso["protocol"] == {"din": "DIN70121", "iso2": "ISO15118-2"}[protocol], iso
        assert len(iso["sessionId"]) == 16 and iso["sessionId"].upper() in evcc_log.upper(), iso
        assert iso["evccId"]  # the reference EVCC's MAC address
        assert iso["chargingNeeds"]["requestedEnergyTransfer"] == ("DC" if energy == "dc" else "AC_three_phase")
        assert tx["stoppedReason"] == "EVDisconnected"
    finally:
        for p in reversed(procs):
            p.terminate()
            wait(p, 15)
        link.destroy()


def _transactions(db: str, count: int) -> list[dict]:
    """The station's transactions once `count` of them have ended (or whatever there is after 30 s)."""
    deadline = time.monotonic() + 30
    while True:
        store = Store(db)
        txs = [store.transaction("CS1", t["transactionId"]) for t in store.transactions("CS1")]
        store.close()
        if (len(txs) >= count and all(t["state"] == "Ended" for t in txs)) or time.monotonic() > deadline:
            return sorted(txs, key=lambda t: t["events"][0]["timestamp"])
        time.sleep(0.5)


def test_reference_evccs_at_one_plug_and_charge_station(tmp_path: Path) -> None:
    """One `--pnc` station serves TCP and TLS at once: the reference DIN 70121 EVCC and its ISO 15118-2 EIM EVCC ask
    for TCP (SDP security 0x10) and charge over TCP; its -2 AC Plug & Charge EVCC asks for TLS and charges with its
    contract: the operator installs its MO root into our CSMS with our CLI, our SECC serves the reference PKI's SECC
    chain, its PaymentDetails and signed AuthorizationReq verify with our code, the CSMS validates its contract, and
    the transaction runs under its eMAID. (Before, a Plug & Charge station answered every SDP request with TLS, and
    the cars that asked for TCP could not charge.)"""
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
            "station", "--csms", "ws://127.0.0.1:9000/ocpp", "--id", "CS1", "--password", PASSWORD, "--secc-iface",
            link.evse_if, "--pnc", "--secc-cert", str(certs / "cpoCertChain.pem"), "--secc-key",
            str(keys / "seccLeaf.key"), "--secc-key-password", (keys / "seccLeafPassword.txt").read_text().strip(),
            "--free-charging", "--trace-dir", str(tmp_path / "traces")]), tmp_path / "station.log")
        procs.append(station)
        wait_for_text(tmp_path / "station.log", "SECC at", station, 30)
        sessions = [("din", "dc", None), ("iso2", "ac", None), ("iso2", "ac", "evcc_config_pnc_ac.json")]
        for n, (protocol, energy, config) in enumerate(sessions):
            argv, env = josev.evcc_command(link.command(link.ev_ns, []), evcc_dir, link.ev_if, protocol, energy)
            if config is not None:
                env["EVCC_CONFIG_PATH"] = str(josev.site_packages() / josev.EXAMPLES / "iso15118_2" / config)
            evcc = josev.start(argv, env, evcc_dir, f"evcc{n}.log")
            rc = wait(evcc, 150)
            evcc_log = (evcc_dir / f"evcc{n}.log").read_text(errors="replace")
            assert rc == 0 and REFERENCE_EVCC_STOP_OK in evcc_log, f"{protocol} {config}: {evcc_log[-3000:]}"
            if config is not None:
                assert "PaymentDetailsRes" in evcc_log and "AuthorizationRes" in evcc_log
        txs = _transactions(db, len(sessions))
        assert len(txs) == 3 and all(t["state"] == "Ended" for t in txs), (tmp_path / "station.log").read_text()[
            -3000:]
        assert [t["iso15118"]["protocol"] for t in txs] == ["DIN70121", "ISO15118-2", "ISO15118-2"]
        assert txs[2]["idToken"] == "UKSWI123456791A"
        store = Store(db)
        auth = [m for m in store.messages(station_id="CS1") if m["action"] == "Authorize"]
        store.close()
        assert auth and auth[0]["response"]["certificateStatus"] == "Accepted"
        started = []  # the transport of each session, as the station's timelines recorded it
        for timeline in sorted((tmp_path / "traces").glob("*.jsonl")):
            records = [json.loads(line) for line in timeline.read_text().splitlines()]
            started += [(r["mono"], r["tls"]) for r in records if r.get("what") == "SessionStarted"]
        assert [tls for _, tls in sorted(started)] == [False, False, True]
    finally:
        for p in reversed(procs):
            p.terminate()
            wait(p, 15)
        link.destroy()
