"""The station's session timeline format: every line carries the common fields, links are recorded once, files are
found again by any link value (transactionId, SessionID, trace id)."""

from __future__ import annotations

import gc
from datetime import datetime
from pathlib import Path

from v2gstack import exi
from v2gstack.trace.merge import read_lines, station_timelines
from v2gstack.trace.timeline import MESSAGES_IN_MEMORY, Timeline, TimelineFolder

DOC = {"V2G_Message": {"Header": {"SessionID": "0102030405060708"}, "Body": {"SessionStopReq": {}}}}


def test_lines_carry_the_common_fields_and_both_protocols(tmp_path: Path) -> None:
    t = Timeline(tmp_path, "a" * 32)
    assert t.path is not None and not t.path.exists()  # created at the first record
    t.link(sessionId="0102030405060708", evccId="0A0B0C0D0E01", evseId=1)
    t.link(sessionId="0102030405060708", transactionId="tx-1")  # only the new fact is written
    t.iso("rx", "din", "SessionStopReq", DOC, exi.encode("din", DOC), "0102030405060708")
    t.ocpp("tx", [2, "m1", "TransactionEvent", {"eventType": "Ended"}])
    t.ocpp("rx", [3, "m1", {}], action="TransactionEventResponse")
    t.state("SessionStopped", reason="EV terminated the session")
    t.error("Disconnected", code=None)
    t.close()
    t.state("AfterClose")  # memory only
    lines = read_lines(t.path)
    assert [r["seq"] for r in lines] == list(range(7)) and len(t.records) == 8
    for r in lines:
        assert r["trace_id"] == "a" * 32 and r["source"] == "station"
        assert datetime.fromisoformat(r["wall"].replace("Z", "+00:00")).utcoffset().total_seconds() == 0
    assert [r["mono"] for r in lines] == sorted(r["mono"] for r in lines)
    assert [(r["protocol"], r["kind"]) for r in lines] == [
        ("bridge", "link"), ("bridge", "link"), ("iso15118", "message"), ("ocpp", "message"), ("ocpp", "message"),
        ("bridge", "state"), ("bridge", "error")]
    assert lines[1] == {**lines[1], "transactionId": "tx-1"} and "sessionId" not in lines[1]
    iso = lines[2]
    assert iso["json"] == DOC and exi.decode("din", bytes.fromhex(iso["exi"])) == DOC
    assert (lines[3]["action"], lines[4]["action"]) == ("TransactionEvent", "TransactionEventResponse")


def test_timelines_are_found_by_any_link(tmp_path: Path) -> None:
    folder = TimelineFolder(tmp_path)
    first, second = folder.new(), folder.new()
    assert first.trace_id != second.trace_id
    first.link(sessionId="1111111111111111", transactionId="tx-A")
    second.link(sessionId="2222222222222222", transactionId="tx-B")
    first.close()
    second.close()
    for key in ("tx-A", "1111111111111111", first.trace_id):
        assert [p for p, _ in station_timelines(tmp_path, key)] == [first.path]
    assert station_timelines(tmp_path, "tx-C") == []
    assert Timeline(None).path is None  # no folder: memory only



def test_memory_keeps_the_first_messages_and_every_state_the_file_everything(tmp_path: Path) -> None:
    """An hours-long session does not grow the station's memory: the file has every record, memory the first
    MESSAGES_IN_MEMORY messages and every state record."""
    frame = [2, "m1", "Heartbeat", {}]
    for t in (Timeline(tmp_path, "b" * 32), Timeline(None)):
        for i in range(MESSAGES_IN_MEMORY + 50):
            t.ocpp("tx", frame)
            if i % 100 == 0:
                t.state("Tick", i=i)
        t.close()
        states = (MESSAGES_IN_MEMORY + 50 + 99) // 100
        if t.path is not None:
            assert len(read_lines(t.path)) == MESSAGES_IN_MEMORY + 50 + states
        assert len([r for r in t.records if r["kind"] == "message"]) == MESSAGES_IN_MEMORY
        assert len([r for r in t.records if r["kind"] == "state"]) == states
        if t.path is None:  # messages past the memory's share are not built, but still numbered
            last = t.records[-1]
            assert last["kind"] == "state" and last["seq"] == last["i"] + 1 + (states - 1)


def test_a_timeline_that_can_decode_keeps_messages_as_their_bytes() -> None:
    """Given a decoder (the station's bridge gives the EXI codec's), a memory-only timeline holds an ISO message as
    its EXI bytes, nothing the garbage collector walks, and its record is the same as one kept as given."""
    data = exi.encode("din", DOC)
    plain, lean = Timeline(None, "b" * 32), TimelineFolder(None, decode=exi.decode).new()
    for t in (plain, lean):
        t.iso("tx", "din", "SessionStopReq", DOC, data, "0102030405060708")
        t.state("SessionStopped")
    kept = [m for m in lean._records if type(m) is tuple]  # the message, not built yet
    assert len(kept) == 1 and kept[0][7] is None and kept[0][8] == data
    gc.collect()
    assert not gc.is_tracked(kept[0])  # atoms only: the collector no longer walks it
    first, second = plain.records[0], lean.records[0]
    assert second["json"] == DOC == first["json"] and second["exi"] == first["exi"] == data.hex().upper()
    assert [r["kind"] for r in lean.records] == ["message", "state"]
