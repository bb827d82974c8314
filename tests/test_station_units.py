"""The station's sans-I/O parts: meter, device model, local authorization, transaction events, offline queue."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

from v2gstack.hardware import SimulatedHardware
from v2gstack.ocpp import Version, default_store
from v2gstack.station import DeviceModel, Evse, OfflineQueue, Transaction
from v2gstack.station.authorization import LocalAuthorization
from v2gstack.station.device_model import standard_variables
from v2gstack.station.metering import sampled_values


def model(path: Path | None = None) -> DeviceModel:
    """A two-EVSE device model."""
    return DeviceModel(standard_variables("CS1", 2, model="M", vendor="V", security_profile=1, max_power_w=11000),
                       path=path)


def test_meter_integrates_power_over_time() -> None:
    """Energy = power x time, import and export apart; SoC follows the energy; values keep OCPP's shape."""
    now = [0.0]
    hw = SimulatedHardware(clock=lambda: now[0])
    evse = Evse(1, hardware=hw, soc=50.0, battery_wh=10000.0)
    hw.set_power_limit(11000.0, 11000.0)
    evse.reading()
    assert hw.ac_draw(3600.0 / 690, 3) == pytest.approx(3600.0)
    now[0] = 10.0  # 3600 W for 10 s = 10 Wh
    r = evse.reading()
    assert r.import_wh == pytest.approx(10.0) and evse.soc == pytest.approx(50.1)
    now[0] = 20.0
    hw.ac_draw(-7200.0 / 690, 3)  # 10 more s of import first, then export
    now[0] = 25.0
    r = evse.reading()
    assert r.import_wh == pytest.approx(20.0) and r.export_wh == pytest.approx(10.0)
    values = {v["measurand"]: v for v in sampled_values(r, "Sample.Periodic", evse.soc)}
    assert values["Power.Active.Export"]["value"] == 7200.0 and values["Power.Active.Import"]["value"] == 0.0
    assert values["Current.Export"]["value"] == pytest.approx(7200 / 690, abs=1e-3)
    assert values["SoC"]["location"] == "EV" and values["Energy.Active.Import.Register"]["unitOfMeasure"] == {
        "unit": "Wh"}
    now[0] = 24.0  # time never goes back
    assert hw.meter().export_wh == pytest.approx(10.0)
    hw.set_power_limit(0.0, 0.0)  # the station stops the energy: the draw is held at 0
    now[0] = 30.0
    assert hw.meter().power_w == 0.0 and hw.meter().export_wh == pytest.approx(10.0)


def test_device_model_get_set_and_persistence(tmp_path: Path) -> None:
    """Type checks, mutability, unknown names, and values that survive a restart."""
    path = tmp_path / "dm.json"
    dm = model(path)
    set_ = dm.set_variable
    assert set_({"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStartPoint"},
                 "attributeValue": "PowerPathClosed"})["attributeStatus"] == "Accepted"
    assert set_({"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStartPoint"},
                 "attributeValue": "Sometime"})["attributeStatus"] == "Rejected"
    assert set_({"component": {"name": "AuthCtrlr"}, "variable": {"name": "Enabled"},
                 "attributeValue": "yes"})["attributeStatus"] == "Rejected"
    assert set_({"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"},
                 "attributeValue": "0"})["attributeStatus"] == "Rejected"
    assert set_({"component": {"name": "EVSE", "evse": {"id": 3}}, "variable": {"name": "Power"},
                 "attributeValue": "1"})["attributeStatus"] == "UnknownComponent"
    got = dm.get_variable({"component": {"name": "EVSE", "evse": {"id": 2}}, "variable": {"name": "Power"}})
    assert got["attributeValue"] == "11000"
    assert model(path).value("TxCtrlr", "TxStartPoint") == "PowerPathClosed"


def test_device_model_file_of_an_older_version_is_checked_and_made_owner_only(tmp_path: Path) -> None:
    """A device_model.json an older version left world-readable, holding a password that is too short: the bad
    value is ignored (the station falls back to its configured password), the good ones are kept, and the file is
    written anew owner-only."""
    path = tmp_path / "dm.json"
    path.write_text(json.dumps([["SecurityCtrlr", None, "BasicAuthPassword", None, "abc"],
                                ["OCPPCommCtrlr", None, "HeartbeatInterval", None, "42"]]))
    os.chmod(path, 0o644)
    dm = model(path)
    assert dm.value("SecurityCtrlr", "BasicAuthPassword") == ""
    assert dm.value("OCPPCommCtrlr", "HeartbeatInterval") == "42"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    report = {(d["component"]["name"], d["variable"]["name"]): d["variableCharacteristics"] for d in dm.report(
        "FullInventory")}
    chars = report[("SecurityCtrlr", "BasicAuthPassword")]
    assert (chars["minLimit"], chars["maxLimit"]) == (16, 40)


def test_base_report_items_are_valid_notify_report_payloads() -> None:
    """Every report item fits the NotifyReport schema; write-only values are never reported."""
    dm = model()
    items = dm.report("FullInventory")
    validate = default_store()[Version.V201].requests["NotifyReport"]
    validate({"requestId": 1, "generatedAt": "2024-05-01T12:00:00Z", "seqNo": 0, "reportData": items})
    assert len(dm.report("ConfigurationInventory")) < len(items)
    assert {i["variable"]["name"] for i in dm.report("SummaryInventory")} == {"AvailabilityState", "Available"}


def test_local_authorization_rules() -> None:
    """Local list before cache; offline rules; cache expiry; differential list versions."""
    now = [0.0]
    dm = model()
    auth = LocalAuthorization(dm, clock=lambda: now[0])
    tok = {"idToken": "A", "type": "ISO14443"}
    assert auth.decide_offline(tok) == {"status": "Unknown"}
    auth.remember(tok, {"status": "Accepted"})
    assert auth.decide_offline(tok) == {"status": "Accepted"}
    assert auth.decide_online_locally(tok) is None  # LocalPreAuthorize is off: ask the CSMS
    dm.put("AuthCtrlr", "LocalPreAuthorize", "true")
    assert auth.decide_online_locally(tok) == {"status": "Accepted"}
    now[0] = 86401.0
    assert auth.lookup(tok) is None
    full = {"versionNumber": 2, "updateType": "Full",
            "localAuthorizationList": [{"idToken": tok, "idTokenInfo": {"status": "Blocked"}}]}
    assert auth.send_local_list(full) == "Accepted" and auth.decide_offline(tok) == {"status": "Blocked"}
    assert auth.send_local_list(full | {"updateType": "Differential"}) == "VersionMismatch"
    dm.put("AuthCtrlr", "OfflineTxForUnknownIdEnabled", "true")
    assert auth.decide_offline({"idToken": "B", "type": "ISO14443"}) == {"status": "Accepted"}


def test_transaction_events_number_and_flags() -> None:
    """seqNo from 0 without gaps; idToken once; chargingState only when it changes; offline flag."""
    tx = Transaction(1)
    tx.charging_state = "EVConnected"
    e0 = tx.event("Started", "CablePluggedIn", "t")
    tx.set_token({"idToken": "A", "type": "ISO14443"})
    e1 = tx.event("Updated", "Authorized", "t", offline=True)
    e2 = tx.event("Updated", "MeterValuePeriodic", "t")
    e3 = tx.event("Ended", "StopAuthorized", "t", stopped_reason="Local")
    assert [e["seqNo"] for e in (e0, e1, e2, e3)] == [0, 1, 2, 3]
    assert e0["transactionInfo"]["chargingState"] == "EVConnected" and "chargingState" not in e2["transactionInfo"]
    assert "idToken" in e1 and "idToken" not in e2 and e1["offline"] is True and "offline" not in e2
    assert e3["transactionInfo"]["stoppedReason"] == "Local" and tx.ended
    assert Transaction.restore(tx.snapshot()).seq_no == 4


def test_offline_queue_is_durable_and_ordered(tmp_path: Path) -> None:
    """Messages survive closing the database; removal is by position; open transactions are journaled."""
    q = OfflineQueue(tmp_path / "q.sqlite")
    a, b = q.push("TransactionEvent", {"seqNo": 0}), q.push("TransactionEvent", {"seqNo": 1})
    q.save_transaction("tx", {"id": "tx", "seq_no": 2})
    q.close()
    q = OfflineQueue(tmp_path / "q.sqlite")
    assert [m.payload["seqNo"] for m in q.items()] == [0, 1] and q.peek().seq == a  # type: ignore[union-attr]
    q.remove(a)
    assert len(q) == 1 and q.peek().seq == b  # type: ignore[union-attr]
    assert q.open_transactions() == [{"id": "tx", "seq_no": 2}]
    q.forget_transaction("tx")
    assert q.open_transactions() == []


def test_offline_queue_writes_together_or_not_at_all(tmp_path: Path) -> None:
    """`together()`: the event, the registers and the transaction are kept as one (after closing, all are there);
    an error inside keeps none of them."""
    q = OfflineQueue(tmp_path / "q.sqlite")
    with q.together():
        q.push("TransactionEvent", {"seqNo": 0})
        with q.together():  # nested: part of the outer one
            q.save_state("meter/1", {"import_wh": 1.0})
        q.save_transaction("tx", {"id": "tx", "seq_no": 1})
    with pytest.raises(RuntimeError), q.together():
        q.push("TransactionEvent", {"seqNo": 1})
        q.save_transaction("tx", {"id": "tx", "seq_no": 2})
        raise RuntimeError("power lost")
    q.close()
    q = OfflineQueue(tmp_path / "q.sqlite")
    assert [m.payload["seqNo"] for m in q.items()] == [0]
    assert q.load_state("meter/1") == {"import_wh": 1.0} and q.open_transactions() == [{"id": "tx", "seq_no": 1}]
    q.close()


class ScriptedConnection:
    """Stands in for an OCPP Connection: each call() takes the next scripted outcome."""

    def __init__(self, outcomes: list[object]) -> None:
        self.outcomes = outcomes
        self.closed = False
        self.sent: list[int] = []
        self.version = Version.V21  # the agreed version (the queue sender sends each message as it carries it)

    async def call(self, action: str, payload: dict[str, object]) -> dict[str, object]:
        """Record the call, then answer or raise as scripted (after a turn of the event loop, as a socket would)."""
        self.sent.append(int(payload["n"]))  # type: ignore[call-overload]
        await asyncio.sleep(0)
        outcome = self.outcomes.pop(0) if self.outcomes else {}
        if isinstance(outcome, Exception):
            raise outcome
        return outcome  # type: ignore[return-value]


async def test_queue_sender_keeps_dropped_messages_and_gives_up_on_repeated_call_errors() -> None:
    """A drop keeps the message (sent again); a CallError is retried MessageAttempts times, then dropped."""
    import asyncio

    from v2gstack.ocpp import CallErrorReceived, ConnectionClosedError, ErrorCode
    from v2gstack.station.sender import QueueSender

    dm = model()
    dm.put("OCPPCommCtrlr", "MessageAttemptInterval", "0", instance="TransactionEvent")
    q = OfflineQueue()
    for n in range(3):
        q.push("TransactionEvent", {"n": n})
    err = CallErrorReceived(ErrorCode.INTERNAL_ERROR, "InternalError", "boom", {})
    conn = ScriptedConnection([ConnectionClosedError("drop"), {}, err, err, err, {}])
    online = asyncio.Event()
    online.set()
    answered: list[object] = []

    async def no_wait(_: float) -> None:
        """Retry at once."""

    sender = QueueSender(q, online, lambda: conn, dm, no_wait,  # type: ignore[arg-type,return-value]
                         lambda req, ans: answered.append(req["n"]))
    task = asyncio.get_running_loop().create_task(sender.run())
    await asyncio.wait_for(sender.wait_empty(), 10)
    task.cancel()
    assert conn.sent == [0, 0, 1, 1, 1, 2] and answered == [0, 2]


async def test_waiting_for_the_queue_ends_when_what_was_queued_is_answered() -> None:
    """wait_empty() waits for the messages queued before it, not for those a sampler keeps queueing meanwhile (each
    answer here queues a new message, as a periodic sampler faster than the CSMS would: the queue is never empty)."""
    import asyncio

    from v2gstack.station.sender import QueueSender

    q = OfflineQueue()
    for n in range(3):
        q.push("TransactionEvent", {"n": n})
    conn = ScriptedConnection([])
    online = asyncio.Event()
    online.set()

    async def no_wait(_: float) -> None:
        """Retry at once."""

    def answered(req: dict[str, object], _answer: dict[str, object]) -> None:
        q.push("TransactionEvent", {"n": int(req["n"]) + 3})  # type: ignore[call-overload]
        sender.wake()

    sender = QueueSender(q, online, lambda: conn, model(), no_wait, answered)  # type: ignore[arg-type,return-value]
    task = asyncio.get_running_loop().create_task(sender.run())
    try:
        await asyncio.wait_for(sender.wait_empty(), 10)
        assert conn.sent[:3] == [0, 1, 2] and len(q) > 0  # the first three answered; later ones still come
    finally:
        task.cancel()
