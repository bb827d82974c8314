"""supportedAppProtocol negotiation: priority, minor deviation, no match, and the EVCC's reading of the answer."""

from __future__ import annotations

from typing import Any

import pytest

from v2gstack import exi
from v2gstack.iso15118.apphand import (
    DIN_70121,
    FAILED,
    ISO_15118_2,
    OK,
    OK_MINOR_DEVIATION,
    AppProtocol,
    NegotiationError,
    build_request,
    negotiate,
    read_response,
)

ISO20_AC = "urn:iso:std:iso:15118:-20:AC"


def offer(*entries: tuple[str, int, int, int, int]) -> dict[str, Any]:
    """supportedAppProtocolReq from (namespace, major, minor, schema id, priority) tuples."""
    return {"supportedAppProtocolReq": {"AppProtocol": [
        {"ProtocolNamespace": ns, "VersionNumberMajor": major, "VersionNumberMinor": minor, "SchemaID": sid,
         "Priority": prio} for ns, major, minor, sid, prio in entries]}}


def test_request_lists_protocols_by_priority_and_encodes() -> None:
    """The offer numbers Priority and SchemaID from 1 in the given order and codes as EXI."""
    doc, ids = build_request([ISO_15118_2, DIN_70121])
    entries = doc["supportedAppProtocolReq"]["AppProtocol"]
    assert [(e["ProtocolNamespace"], e["Priority"], e["SchemaID"]) for e in entries] == [
        (ISO_15118_2.namespace, 1, 1), (DIN_70121.namespace, 2, 2)]
    assert ids == {1: ISO_15118_2, 2: DIN_70121}
    assert exi.decode("appHand", exi.encode("appHand", doc)) == doc


def test_reference_din_offer_bytes() -> None:
    """A DIN-only offer is byte-identical to the reference EVCC's."""
    doc, _ = build_request([DIN_70121])
    assert exi.encode("appHand", doc).hex() == "8000dbab9371d3234b71d1b981899189d191818991d26b9b3a232b30020000040040"


def test_ev_priority_wins_over_secc_order() -> None:
    """The EV's Priority decides, not the SECC's list order; the EV's SchemaID is echoed."""
    req = offer((DIN_70121.namespace, 2, 0, 7, 2), (ISO_15118_2.namespace, 2, 0, 9, 1))
    n = negotiate(req, [DIN_70121, ISO_15118_2])
    assert n.protocol is ISO_15118_2 and n.code == OK and n.schema_id == 9
    assert n.response == {"supportedAppProtocolRes": {"ResponseCode": OK, "SchemaID": 9}}


def test_skips_unsupported_protocols() -> None:
    """Offered protocols the SECC does not speak are passed over."""
    req = offer((ISO20_AC, 1, 0, 1, 1), (ISO_15118_2.namespace, 2, 0, 2, 2), (DIN_70121.namespace, 2, 0, 3, 3))
    n = negotiate(req, [DIN_70121])
    assert n.protocol is DIN_70121 and n.schema_id == 3


def test_minor_deviation() -> None:
    """Same major, other minor version: OK_SuccessfulNegotiationWithMinorDeviation."""
    n = negotiate(offer((ISO_15118_2.namespace, 2, 1, 4, 1)), [ISO_15118_2])
    assert n.code == OK_MINOR_DEVIATION and n.protocol is ISO_15118_2 and n.schema_id == 4


def test_major_mismatch_does_not_match() -> None:
    """Another major version is no match: Failed_NoNegotiation without SchemaID."""
    n = negotiate(offer((ISO_15118_2.namespace, 1, 0, 1, 1)), [ISO_15118_2])
    assert n.protocol is None and n.code == FAILED
    assert n.response == {"supportedAppProtocolRes": {"ResponseCode": FAILED}}
    assert exi.decode("appHand", exi.encode("appHand", n.response)) == n.response


def test_nothing_offered_that_we_speak() -> None:
    """An offer of only unknown namespaces fails."""
    n = negotiate(offer((ISO20_AC, 1, 0, 1, 1)), [ISO_15118_2, DIN_70121])
    assert n.code == FAILED and n.schema_id is None


def test_equal_priorities_keep_offer_order() -> None:
    """Equal priorities: the first offered wins."""
    req = offer((DIN_70121.namespace, 2, 0, 5, 1), (ISO_15118_2.namespace, 2, 0, 6, 1))
    assert negotiate(req, [ISO_15118_2, DIN_70121]).protocol is DIN_70121


def test_exact_match_is_not_preferred_over_a_better_priority_with_minor_deviation() -> None:
    """Priority first, then exactness."""
    req = offer((ISO_15118_2.namespace, 2, 3, 1, 1), (DIN_70121.namespace, 2, 0, 2, 2))
    n = negotiate(req, [ISO_15118_2, DIN_70121])
    assert (n.protocol, n.code) == (ISO_15118_2, OK_MINOR_DEVIATION)


def test_evcc_reads_the_answer() -> None:
    """The EVCC maps the SchemaID back to its offer and rejects failures and strangers."""
    ids = {1: ISO_15118_2, 2: DIN_70121}
    assert read_response({"supportedAppProtocolRes": {"ResponseCode": OK, "SchemaID": 2}}, ids) == (DIN_70121, OK)
    with pytest.raises(NegotiationError, match="Failed_NoNegotiation"):
        read_response({"supportedAppProtocolRes": {"ResponseCode": FAILED}}, ids)
    with pytest.raises(NegotiationError, match="not offered"):
        read_response({"supportedAppProtocolRes": {"ResponseCode": OK, "SchemaID": 3}}, ids)
    with pytest.raises(NegotiationError, match="expected supportedAppProtocolRes"):
        read_response({"supportedAppProtocolReq": {}}, ids)


def test_offer_size_limits() -> None:
    """An offer holds 1 to 20 protocols."""
    with pytest.raises(ValueError):
        build_request([])
    with pytest.raises(ValueError):
        build_request([AppProtocol("x", "urn:x", 1, 0, "x")] * 21)
