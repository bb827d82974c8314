"""Message building and reading against the schemas and the reference stack's captured sessions."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from v2gstack import exi
from v2gstack.iso15118.ev import EVModel
from v2gstack.iso15118.evcc import EvccConfig, EvccSession, Send, SessionResult
from v2gstack.iso15118.evse_sim import SimulatedEVSE, SimulatedEVSEConfig
from v2gstack.iso15118.messages import body_name, for_protocol
from v2gstack.iso15118.messages.envelope import pv, value
from v2gstack.iso15118.model import STEPS_ISO2, CurrentDemand, Step
from v2gstack.iso15118.msglog import MessageRecord
from v2gstack.iso15118.secc import SeccConfig, SeccSession
from v2gstack.trace.records import ENVELOPE

VECTORS = Path(__file__).resolve().parent.parent.parent / "shared" / "vectors" / "exi-reference.jsonl"
NS = {"SAP": "appHand", "DIN_MSG_DEF": "din", "ISO_V2_MSG_DEF": "iso2"}


def reference_session(src: str) -> list[tuple[str, dict[str, Any]]]:
    """(namespace, document) of one captured session, in order (messages only, no fragments)."""
    if not VECTORS.exists():
        pytest.skip(f"no reference vectors at {VECTORS}")
    out = []
    for line in VECTORS.read_text().splitlines():
        d = json.loads(line)
        if d["src"] == src and d["ns"] in NS and next(iter(d["json"])) in (
                "V2G_Message", "supportedAppProtocolReq", "supportedAppProtocolRes"):
            out.append((NS[d["ns"]], d["json"]))
    return out


@pytest.mark.parametrize("protocol", ["iso2", "din"])
@pytest.mark.parametrize("dc", [False, True])
def test_failed_responses_encode_for_every_request(protocol: str, dc: bool) -> None:
    """Every FAILED response has all mandatory elements and codes as EXI."""
    msgs = for_protocol(protocol)
    for step in STEPS_ISO2:
        doc = msgs.response("0102030405060708", step, msgs.failed_res(step, "FAILED_SequenceError", dc))
        assert exi.decode(protocol, exi.encode(protocol, doc)) == doc


@pytest.mark.parametrize(("x", "unit", "expect"), [
    (32.0, "A", {"Value": 32, "Multiplier": 0, "Unit": "A"}),
    (400.0, "V", {"Value": 400, "Multiplier": 0, "Unit": "V"}),
    (32.5, "A", {"Value": 325, "Multiplier": -1, "Unit": "A"}),
    (0.125, "A", {"Value": 125, "Multiplier": -3, "Unit": "A"}),
    (50_000.0, "W", {"Value": 5000, "Multiplier": 1, "Unit": "W"}),
    (0.0, "Wh", {"Value": 0, "Multiplier": 0, "Unit": "Wh"}),
    (-12.0, "A", {"Value": -12, "Multiplier": 0, "Unit": "A"}),
    (1e9, "W", {"Value": 32767, "Multiplier": 3, "Unit": "W"}),
])
def test_physical_values(x: float, unit: str, expect: dict[str, Any]) -> None:
    """PhysicalValues use the finest multiplier that fits a short, without trailing zeros."""
    assert pv(x, unit) == expect
    assert pv(x, unit) == expect  # looked up the second time
    if abs(x) < 3e7:
        assert value(pv(x, unit)) == pytest.approx(x)


def test_a_physical_value_is_each_callers_own() -> None:
    """A remembered PhysicalValue is handed out as a new dict: changing one changes no other."""
    one = pv(401.0, "V")
    one["Value"] = 1
    assert pv(401.0, "V") == {"Value": 401, "Multiplier": 0, "Unit": "V"}
    assert pv(401, None) == {"Value": 401, "Multiplier": 0}


@pytest.mark.parametrize(("src", "protocol", "energy"), [("din_dc.evcc.log", "din", "dc"),
                                                         ("iso2_ac_eim.evcc.log", "iso2", "ac")])
def test_our_secc_accepts_the_reference_evcc_requests(src: str, protocol: str, energy: str) -> None:
    """The reference EVCC's captured requests all get OK from our SECC."""
    session = reference_session(src)
    requests = [(ns, doc) for ns, doc in session if body_name(doc).endswith("Req")]
    sid = next(doc["V2G_Message"]["Header"]["SessionID"] for ns, doc in session
               if body_name(doc) == "SessionSetupRes")
    # the vector file holds each distinct message once: one CableCheckReq although the SECC said Ongoing once
    evse = SimulatedEVSE(SimulatedEVSEConfig(cable_check_rounds=0))
    secc = SeccSession(evse, SeccConfig(), new_session_id=lambda: sid)
    for ns, doc in requests:
        assert secc.rx_namespace == ns
        reply = secc.handle(doc)
        assert reply.doc is not None and not secc.end_reason.startswith("answered"), secc.end_reason
        content = next(iter(reply.doc.values()))
        code = content.get("ResponseCode") or next(iter(content["Body"].values()))["ResponseCode"]
        assert code.startswith("OK"), (body_name(doc), code)
        assert exi.decode(reply.ns, exi.encode(reply.ns, reply.doc)) == reply.doc
    assert [body_name(d) for _, d in requests][-1] in ("CurrentDemandReq", "SessionStopReq")


def test_our_evcc_accepts_the_reference_secc_responses() -> None:
    """Our EVCC completes a -2 AC session on the reference SECC's captured responses."""
    session = reference_session("iso2_ac_eim.evcc.log")
    by_name = {body_name(doc): doc for ns, doc in session if body_name(doc).endswith("Res")}
    by_name["supportedAppProtocolRes"] = {"supportedAppProtocolRes": {"ResponseCode": "OK_SuccessfulNegotiation",
                                                                      "SchemaID": 1}}
    evcc = EvccSession(EvccConfig(protocols=("iso2",), energy="ac", loops=1), EVModel())
    clock = itertools.count(0.0, 0.1)
    step: Send | SessionResult = evcc.start(next(clock))
    sent = []
    while isinstance(step, Send):
        sent.append(step.name)
        response = by_name[step.name[:-3] + "Res"]
        step = evcc.handle(response, next(clock))
    assert step.ok, step.reason
    assert sent == ["supportedAppProtocolReq", "SessionSetupReq", "ServiceDiscoveryReq", "PaymentServiceSelectionReq",
                    "AuthorizationReq", "ChargeParameterDiscoveryReq", "PowerDeliveryReq", "ChargingStatusReq",
                    "PowerDeliveryReq", "SessionStopReq"]
    assert evcc.ac_limit == 300 and evcc.schedule is not None and evcc.schedule.entries[0].pmax == 11000


def test_our_requests_look_like_the_reference_ones() -> None:
    """Same elements as the reference EVCC's -2 AC messages (values differ)."""
    def key(doc: dict[str, Any]) -> tuple[str, str]:
        """(message name, ChargeProgress) of a request."""
        name = body_name(doc)
        return name, doc["V2G_Message"]["Body"][name].get("ChargeProgress", "")

    ref = {key(doc): doc for _, doc in reference_session("iso2_ac_eim.evcc.log") if "V2G_Message" in doc}
    evcc = EvccSession(EvccConfig(protocols=("iso2",), energy="ac", loops=1), EVModel())
    secc = SeccSession(SimulatedEVSE(), SeccConfig())
    step: Send | SessionResult = evcc.start(0.0)
    checked = 0
    while isinstance(step, Send):
        name = step.name
        if "V2G_Message" in step.doc and key(step.doc) in ref:
            ours = step.doc["V2G_Message"]["Body"][name]
            theirs = ref[key(step.doc)]["V2G_Message"]["Body"][name]
            assert set(ours) == set(theirs), name
            checked += 1
        reply = secc.handle(step.doc)
        assert reply.doc is not None
        step = evcc.handle(reply.doc, 0.0)
    assert step.ok and checked == 9


def test_message_record_summary_and_json() -> None:
    """The readable summary and the JSON line of a message record."""
    msgs = for_protocol("iso2")
    demand = CurrentDemand(status=EVModel().dc_status(), target_current=125.0, target_voltage=400.0)
    doc = msgs.request("0102030405060708", Step.CURRENT_DEMAND, msgs.current_demand_req(demand))
    data = exi.encode("iso2", doc)
    r = MessageRecord("EVCC", "tx", 1_700_000_000.5, "iso2", doc, data, "[::1]:1", "0102030405060708")
    assert "EVCC -> iso2:CurrentDemandReq EVTargetVoltage=400V EVTargetCurrent=125A ChargingComplete=False SoC=30%" \
        in r.summary()
    line = json.loads(r.to_json())
    assert line["message"] == "CurrentDemandReq" and line["exi"] == data.hex().upper() and line["json"] == doc
    assert line["direction"] == "tx" and line["namespace"] == "iso2" and line["wall"] == "2023-11-14T22:13:20.500000Z"
    assert (line["source"], line["protocol"], line["kind"], line["sessionId"]) == (
        "evcc", "iso15118", "message", "0102030405060708")
    assert list(line)[:len(ENVELOPE)] == list(ENVELOPE)  # the one trace record schema (trace/records.py)
