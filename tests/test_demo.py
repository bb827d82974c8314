"""`v2gstack demo` runs the whole chain and reports success only when every session matched."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from v2gstack.csms.store import Store
from v2gstack.demo import run_demo

pytestmark = pytest.mark.timeout(120)


async def test_demo_runs_every_protocol_plug_and_charge_v2g_and_a_profile_change(tmp_path: Path) -> None:
    buf = io.StringIO()
    ok = await run_demo(tmp_path / "demo", seconds=3.0, speedup=60.0, console=Console(file=buf, width=200))
    text = buf.getvalue()
    assert ok, text
    assert "DIN 70121 DC" in text and "ISO 15118-2 AC" in text and "ISO 15118-2 DC" in text
    assert "SetChargingProfile TxProfile 20 kW on EVSE 3: Accepted (through the REST API" in text, text
    assert "OCPP 2.1, BootNotification Accepted" in text  # our station and CSMS agree on 2.1: a V2X setpoint
    assert "ISO 15118-20" in text and "OCPP 2.1 CentralSetpoint -10 kW on EVSE 5: Accepted" in text, text
    [v2g_row] = [line for line in text.splitlines() if "ISO 15118-20 DC_BPT" in line and "│" in line]
    assert v2g_row.count("kWh / -") == 2, v2g_row  # import and export, at the EV and at the CSMS
    assert text.count("│ OK") == 5 and "demo OK" in text
    assert "through the station and the CSMS (Get15118EVCertificate)" in text  # the Plug & Charge EV's contract
    assert len(list((tmp_path / "demo" / "traces").glob("*.jsonl"))) == 5
    # the profile went through the API with the demo's own token (only for its owner to read), and was audited
    token_file = tmp_path / "demo" / "api-token"
    assert token_file.stat().st_mode & 0o777 == 0o600 and "Authorization: Bearer $(cat" in text
    store = Store(f"sqlite:///{tmp_path / 'demo' / 'csms.db'}")
    try:
        entries = store.audit()
        assert [(e["action"], e["actor"], e["role"], e["status"]) for e in entries] == [
            ("SetChargingProfile", "demo", "operator", 200)] * 2
        [v2g] = [t for t in store.transactions("DEMO-CS01") if (t.get("iso15118") or {}).get("protocol") ==
                 "ISO15118-20"]
        assert store.transaction("DEMO-CS01", v2g["transactionId"])["energyExportWh"] > 0  # the -20 EV fed back
    finally:
        store.close()


async def test_demo_fault_switch(tmp_path: Path) -> None:
    buf = io.StringIO()
    ok = await run_demo(tmp_path / "demo", seconds=2.0, console=Console(file=buf, width=220), pnc_fault="revoked")
    text = buf.getvalue()
    assert ok, text  # the injected failure is the expected outcome
    assert "FAILED_CertificateRevoked as injected" in text


async def test_demo_on_ocpp16(tmp_path: Path) -> None:
    """`v2gstack demo --ocpp 1.6`: the same sessions, Plug & Charge and profile changes with the station on 1.6J,
    and the same summary (the CSMS's energy matches each EV's, on 1.6 transactions)."""
    buf = io.StringIO()
    ok = await run_demo(tmp_path / "demo", seconds=3.0, speedup=60.0, console=Console(file=buf, width=200),
                        ocpp="1.6")
    text = buf.getvalue()
    assert ok, text
    assert "OCPP 1.6, BootNotification Accepted" in text
    assert "SetChargingProfile TxProfile 20 kW on EVSE 3: Accepted (through the REST API" in text, text
    assert text.count("│ OK") == 5 and "demo OK" in text  # with the -20 EV
    store = Store(f"sqlite:///{tmp_path / 'demo' / 'csms.db'}")
    try:
        txs = store.transactions("DEMO-CS01")
        assert len(txs) == 5 and {t["ocppVersion"] for t in txs} == {"1.6"}
    finally:
        store.close()
