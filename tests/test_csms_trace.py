"""`v2gstack trace` and the merge of station timelines with the CSMS records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from v2gstack.cli import app
from v2gstack.csms.store import Store
from v2gstack.csms.timeline import merged_timeline

TX = "4f6b0c2e-1111-4a3b-9c1d-000000000001"
SESSION = "A1B2C3D4E5F60718"


def _event(seq: int, event_type: str, trigger: str, energy: float) -> dict:
    return {"eventType": event_type, "timestamp": f"2026-11-24T10:00:{seq:02d}Z", "triggerReason": trigger,
            "seqNo": seq, "transactionInfo": {"transactionId": TX}, "evse": {"id": 1, "connectorId": 1},
            "meterValue": [{"timestamp": f"2026-11-24T10:00:{seq:02d}Z", "sampledValue": [{"value": energy}]}],
            "customData": {"vendorId": "org.v2gstack.iso15118", "sessionId": SESSION}}


def _setup(tmp_path: Path) -> str:
    before = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    url = f"sqlite:///{tmp_path / 'csms.db'}"
    store = Store(url)
    store.add_station("CS1")
    for i, (et, trig, e) in enumerate([("Started", "CablePluggedIn", 0), ("Updated", "ChargingStateChanged", 10),
                                        ("Ended", "EVCommunicationLost", 20)]):
        store.record_transaction_event("CS1", _event(i, et, trig, e))
    store.log_message("CS1", "rx", "NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": {
        "requestedEnergyTransfer": "DC"}}, None, transaction_id=TX, session_id=SESSION)
    store.close()
    folder = tmp_path / "traces"
    folder.mkdir()
    lines = [{"seq": 0, "mono": 1.0, "wall": before, "trace_id": "t1", "source": "station",
              "protocol": "iso15118", "kind": "message", "direction": "rx", "message": "SessionSetupReq",
              "json": {"V2G_Message": {"Header": {"SessionID": "00"}, "Body": {"SessionSetupReq": {
                  "EVCCID": "0A0B0C0D0E0F"}}}}, "exi": "8098"},
             {"seq": 1, "mono": 1.1, "wall": before, "trace_id": "t1", "source": "station",
              "protocol": "bridge", "kind": "link", "transactionId": TX, "sessionId": SESSION}]
    (folder / "t1.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"torn')
    other = {**lines[1], "trace_id": "t2", "transactionId": "other", "sessionId": "FF"}
    (folder / "other.jsonl").write_text(json.dumps(other) + "\n")
    return url


def test_merge_joins_station_and_csms_by_any_key(tmp_path: Path) -> None:
    url = _setup(tmp_path)
    store = Store(url)
    try:
        for key in (TX, SESSION, SESSION.lower(), "t1"):
            entries = merged_timeline(key, trace_dir=tmp_path / "traces", store=store)
            names = [e.name for e in entries]
            assert names[0] == "SessionSetupReq", key  # sorted by wall time, station's first
            assert names.count("TransactionEvent") == 3 and "NotifyEVChargingNeeds" in names, key
            assert {e.source for e in entries} == {"station", "csms"}
        assert merged_timeline("no-such", trace_dir=tmp_path / "traces", store=store) == []
    finally:
        store.close()


def test_trace_command_table_and_json(tmp_path: Path) -> None:
    url = _setup(tmp_path)
    runner = CliRunner()
    r = runner.invoke(app, ["trace", TX, "--db", url, "--trace-dir", str(tmp_path / "traces")])
    assert r.exit_code == 0, r.output
    assert "SessionSetupReq" in r.output and "EVCommunicationLost" in r.output
    r = runner.invoke(app, ["trace", SESSION, "--db", url, "--json"])
    rows = [json.loads(line) for line in r.output.splitlines()]
    assert r.exit_code == 0 and [x["name"] for x in rows].count("TransactionEvent") == 3
    r = runner.invoke(app, ["trace", "nothing", "--db", url])
    assert r.exit_code == 1
    r = runner.invoke(app, ["trace", TX])
    assert r.exit_code == 2
