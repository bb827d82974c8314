"""The sans-I/O SECC decides how each session ended (SessionEnded.kind) and tells its controller in typed events,
driven in memory by our EVCC engine (every message through EXI), as the shell would: each ending of the error map
that the SECC can see, Answered after each response, ScheduleChosen, and the TLS failure kinds from OpenSSL's
reason codes (real handshakes over memory BIOs)."""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from v2gstack import exi
from v2gstack.iso15118.devcerts import make_secc_chain
from v2gstack.iso15118.ev import EVModel
from v2gstack.iso15118.evcc import Contract, EvccConfig, EvccSession, OemCredentials, Send, SessionResult
from v2gstack.iso15118.events import Answered, MessageExchanged, ScheduleChosen, SessionEnded, SessionEvent
from v2gstack.iso15118.evse import SessionInfo
from v2gstack.iso15118.evse_sim import SimulatedEVSE, SimulatedEVSEConfig
from v2gstack.iso15118.messages import body_name
from v2gstack.iso15118.model import Step
from v2gstack.iso15118.msglog import ConnectionLog
from v2gstack.iso15118.secc import SeccConfig, SeccSession
from v2gstack.iso15118.timers import SeccTimers
from v2gstack.iso15118.tls import evcc_context, failure_kind
from v2gstack.pki.hierarchy import create_pki
from v2gstack.pki.profiles import Kind
from v2gstack.trace.error_map import FAILURES, FailureKind

Doc = dict[str, Any]
Modify = Callable[[Doc], Doc | None]  # a misbehaving EV: the request to send instead (None: stop before sending it)


class RecordingEVSE(SimulatedEVSE):
    """The simulated EVSE, keeping every event and the one session_ended call; `contract_code` answers the
    contract_check hook."""

    def __init__(self, config: SimulatedEVSEConfig | None = None, contract_code: str = "OK") -> None:
        super().__init__(config)
        self.seen: list[SessionEvent] = []
        self.endings: list[tuple[SessionInfo | None, SessionEnded]] = []
        self.contract_code = contract_code

    def on_event(self, event: SessionEvent) -> None:
        """Keep it."""
        self.seen.append(event)

    def session_ended(self, info: SessionInfo | None, ended: SessionEnded) -> None:
        """Keep it (and let the simulator open its contactors)."""
        super().session_ended(info, ended)
        self.endings.append((info, ended))

    def contract_check(self, info: SessionInfo, emaid: str, chain: list[bytes]) -> str:
        """The station's verdict on the contract."""
        return self.contract_code


def run(evcc: EvccSession, secc: SeccSession, *, at: str | None = None, modify: Modify | None = None,
        elapsed: float = 0.0) -> list[str]:
    """Drive both engines as the shells would (records, Answered with `elapsed`, pending certificate services), until
    either ends or the EV is about to send request `at` (then `modify` decides what goes instead; None: stop there).
    Returns the response names the SECC sent."""
    log = ConnectionLog("SECC", "[::1]:1")
    clock = itertools.count(0.0, 1.0)
    sent: list[str] = []
    step: Send | SessionResult = evcc.start(next(clock))
    while isinstance(step, Send) and not secc.ended:
        doc = step.doc
        if at is not None and step.name == at:
            at = None
            changed = modify(doc) if modify is not None else None
            if changed is None:
                return sent
            doc = changed
        request = exi.decode(secc.rx_namespace, exi.encode(step.ns, doc))
        secc.exchanged(log.record("rx", secc.rx_namespace, request, b"", secc.session_id))
        reply = secc.handle(request)
        if reply.pending is not None:
            reply = secc.complete(reply, asyncio.run(_await(reply.pending)))
        if reply.doc is None:
            return sent
        secc.exchanged(log.record("tx", reply.ns, reply.doc, b"", secc.session_id))
        secc.sent(reply, elapsed)
        sent.append(reply.name)
        step = evcc.handle(exi.decode(evcc.rx_namespace, exi.encode(reply.ns, reply.doc)), next(clock))
    return sent


async def _await(pending: Any) -> Any:
    return await pending


def pair(protocol: str = "iso2", energy: str = "ac", sim: SimulatedEVSEConfig | None = None, *,
         secc_protocols: tuple[str, ...] = ("iso2", "din"), timers: SeccTimers | None = None, tls: bool = False,
         contract_code: str = "OK", **evcc: Any) -> tuple[EvccSession, SeccSession, RecordingEVSE]:
    """An EVCC and a SECC over a recording simulated EVSE."""
    evse = RecordingEVSE(sim, contract_code)
    config = SeccConfig(protocols=secc_protocols, timers=timers or SeccTimers())
    return EvccSession(EvccConfig(protocols=(protocol,), energy=energy, **evcc), EVModel()), \
        SeccSession(evse, config, tls=tls), evse


def ended(evse: RecordingEVSE) -> SessionEnded:
    """The one SessionEnded, delivered once to session_ended and once, in order, to on_event."""
    [(info, end)] = evse.endings
    assert [e for e in evse.seen if isinstance(e, SessionEnded)] == [end]
    assert (info is not None) == end.had_session
    return end


def _set(path: tuple[str, ...], value: Any) -> Modify:
    def change(doc: Doc) -> Doc:
        node = doc["V2G_Message"]["Body"]
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return doc
    return change


# ----- normal ends -----

@pytest.mark.parametrize(("protocol", "energy"), [("din", "dc"), ("iso2", "ac"), ("iso2", "dc")])
def test_normal_end_and_the_events_on_the_way(protocol: str, energy: str) -> None:
    evcc, secc, evse = pair(protocol, energy, loops=2)
    sent = run(evcc, secc)
    end = ended(evse)
    assert (end.kind, end.iso_code, end.paused, end.ok, secc.ok) == (FailureKind.NORMAL, None, False, True, True)
    answered = [e for e in evse.seen if isinstance(e, Answered)]
    assert [a.name for a in answered] == sent and sent[0] == "supportedAppProtocolRes"
    assert answered[0].step is None and answered[1].step is Step.SESSION_SETUP
    assert all(not a.late and a.response_code is not None for a in answered)
    [chosen] = [e for e in evse.seen if isinstance(e, ScheduleChosen)]
    assert chosen.tuple_id == 1 and (chosen.profile == () if protocol == "din" else len(chosen.profile) >= 1)
    before = evse.seen[evse.seen.index(chosen) - 1]  # told once PowerDeliveryReq(Start) is answered OK
    assert isinstance(before, Answered) and before.name == "PowerDeliveryRes" and before.response_code == "OK"
    assert sum(isinstance(e, Answered) and e.name == "PowerDeliveryRes" for e in evse.seen) == 2  # Start, Stop


def test_pause() -> None:
    evcc, secc, evse = pair("iso2", "dc", loops=1, stop="Pause")
    run(evcc, secc)
    end = ended(evse)
    assert (end.kind, end.paused, end.ok) == (FailureKind.PAUSED, True, True)


# ----- FAILED codes the SECC answers -----

def test_no_common_protocol() -> None:
    evcc, secc, evse = pair("din", "dc", secc_protocols=("iso2",))
    run(evcc, secc)
    end = ended(evse)
    assert (end.kind, end.iso_code, end.had_session) == (FailureKind.NO_COMMON_PROTOCOL, "Failed_NoNegotiation",
                                                         False)


def _session_setup_again(doc: Doc) -> Doc:
    return {"V2G_Message": {"Header": doc["V2G_Message"]["Header"], "Body": {"SessionSetupReq": {
        "EVCCID": "0A1B2C3D4E5F"}}}}


def _other_session(doc: Doc) -> Doc:
    doc["V2G_Message"]["Header"]["SessionID"] = "0102030405060708"
    return doc


@pytest.mark.parametrize(("protocol", "energy", "sim", "at", "modify", "kind", "code"), [
    ("iso2", "ac", None, "ServiceDiscoveryReq", _session_setup_again, FailureKind.SEQUENCE_ERROR,
     "FAILED_SequenceError"),
    ("din", "dc", None, "ServiceDiscoveryReq", _other_session, FailureKind.UNKNOWN_SESSION, "FAILED_UnknownSession"),
    ("iso2", "ac", SimulatedEVSEConfig(authorize=False), None, None, FailureKind.AUTHORIZATION_FAILED, "FAILED"),
    ("din", "dc", SimulatedEVSEConfig(authorize=False), None, None, FailureKind.AUTHORIZATION_FAILED, "FAILED"),
    ("iso2", "ac", None, "ChargeParameterDiscoveryReq",
     _set(("ChargeParameterDiscoveryReq", "RequestedEnergyTransferMode"), "AC_single_phase_core"),
     FailureKind.WRONG_CHARGE_PARAMETER, "FAILED_WrongEnergyTransferMode"),
    ("din", "dc", SimulatedEVSEConfig(isolation="Fault"), None, None, FailureKind.ISOLATION_FAULT, "FAILED"),
    ("iso2", "ac", SimulatedEVSEConfig(contactor_fault=True), None, None, FailureKind.CONTACTOR_ERROR,
     "FAILED_ContactorError"),
    ("din", "dc", SimulatedEVSEConfig(contactor_fault=True), None, None, FailureKind.CONTACTOR_ERROR,
     "FAILED_PowerDeliveryNotApplied"),
    ("iso2", "ac", None, "PowerDeliveryReq", _set(("PowerDeliveryReq", "SAScheduleTupleID"), 99),
     FailureKind.PROFILE_INVALID, "FAILED_TariffSelectionInvalid"),
    ("iso2", "ac", None, "PaymentServiceSelectionReq",
     _set(("PaymentServiceSelectionReq", "SelectedPaymentOption"), "Contract"), FailureKind.OTHER_FAILED,
     "FAILED_PaymentSelectionInvalid"),
])
def test_failed_code_families(protocol: str, energy: str, sim: SimulatedEVSEConfig | None, at: str | None,
                              modify: Modify | None, kind: FailureKind, code: str) -> None:
    evcc, secc, evse = pair(protocol, energy, sim)
    sent = run(evcc, secc, at=at, modify=modify)
    end = ended(evse)
    assert (end.kind, end.iso_code, end.had_session, secc.ok) == (kind, code, True, False)
    last = [e for e in evse.seen if isinstance(e, Answered)][-1]
    assert last.name == sent[-1] and last.response_code == code  # the EV got the code the kind was decided on
    assert not [e for e in evse.seen if isinstance(e, ScheduleChosen)]  # no schedule was accepted


@pytest.fixture(scope="module")
def pki():  # type: ignore[no-untyped-def]
    return create_pki()


def _contract(pki, key: Any = None) -> Contract:  # type: ignore[no-untyped-def]
    leaf = pki.items[Kind.CONTRACT]
    der = serialization.Encoding.DER
    cn = leaf.cert.subject.rfc4514_string().split("CN=")[1].split(",")[0]
    chain = [leaf.cert.public_bytes(der), *(c.public_bytes(der) for c in pki.intermediates(Kind.CONTRACT))]
    return Contract(cn.replace("-", ""), chain, key or leaf.key)


def test_certificate_error_from_the_contract_check_hook(pki) -> None:  # type: ignore[no-untyped-def]
    evcc, secc, evse = pair("iso2", "ac", SimulatedEVSEConfig(payment_options=("Contract",)), tls=True,
                            contract_code="FAILED_CertificateRevoked", payment="Contract", contract=_contract(pki))
    assert run(evcc, secc)[-1] == "PaymentDetailsRes"
    end = ended(evse)
    assert (end.kind, end.iso_code) == (FailureKind.CERTIFICATE_ERROR, "FAILED_CertificateRevoked")


def test_certificate_error_from_the_default_installation_hook(pki) -> None:  # type: ignore[no-untyped-def]
    """A controller without an installation service inherits the declared default: FAILED_NoCertificateAvailable."""
    oem = OemCredentials(pki.cert(Kind.OEM_PROV), pki.items[Kind.OEM_PROV].key, [pki.cert(Kind.V2G_ROOT)])
    evcc, secc, evse = pair("iso2", "ac", SimulatedEVSEConfig(payment_options=("Contract",)), tls=True,
                            payment="Contract", oem=oem)
    assert run(evcc, secc)[-1] == "CertificateInstallationRes"
    end = ended(evse)
    assert (end.kind, end.iso_code) == (FailureKind.CERTIFICATE_ERROR, "FAILED_NoCertificateAvailable")


def test_signature_error(pki) -> None:  # type: ignore[no-untyped-def]
    evcc, secc, evse = pair("iso2", "ac", SimulatedEVSEConfig(payment_options=("Contract",)), tls=True,
                            payment="Contract", contract=_contract(pki), pnc_fault="bad-signature")
    assert run(evcc, secc)[-1] == "AuthorizationRes"
    end = ended(evse)
    assert (end.kind, end.iso_code) == (FailureKind.SIGNATURE_ERROR, "FAILED_SignatureError")


def test_unusable_requests_are_not_internal_errors() -> None:
    """A response where a request belongs ends as a sequence error (no answer), not as our fault."""
    evcc, secc, evse = pair()
    run(evcc, secc, at="SessionSetupReq", modify=lambda doc: {"V2G_Message": {
        "Header": {"SessionID": "00"}, "Body": {"SessionSetupRes": {
            "ResponseCode": "OK", "EVSEID": "DE*V2G*E1", "EVSETimeStamp": 0}}}})
    assert (ended(evse).kind, ended(evse).iso_code) == (FailureKind.SEQUENCE_ERROR, None)
    evse2 = RecordingEVSE()
    secc2 = SeccSession(evse2)
    reply = secc2.handle({"supportedAppProtocolRes": {"ResponseCode": "OK_SuccessfulNegotiation"}})
    assert reply.doc is None and reply.close
    assert (ended(evse2).kind, ended(evse2).had_session) == (FailureKind.SEQUENCE_ERROR, False)
    assert not FAILURES[FailureKind.SEQUENCE_ERROR].faulted


# ----- timers -----

def test_sequence_timeout_after_session_setup() -> None:
    evcc, secc, evse = pair()
    run(evcc, secc, at="ChargeParameterDiscoveryReq")
    secc.on_timeout()
    assert (ended(evse).kind, ended(evse).had_session) == (FailureKind.SEQUENCE_TIMEOUT, True)


def test_communication_setup_timeout_without_session_setup() -> None:
    evcc, secc, evse = pair()
    assert run(evcc, secc, at="SessionSetupReq") == ["supportedAppProtocolRes"]
    secc.on_timeout()
    assert (ended(evse).kind, ended(evse).had_session) == (FailureKind.COMMUNICATION_SETUP_TIMEOUT, False)


# ----- the EV leaves: what the SECC last answered names its timeout -----

def test_disconnect() -> None:
    evcc, secc, evse = pair("iso2", "dc")
    run(evcc, secc, at="CableCheckReq")
    secc.on_closed(FailureKind.DISCONNECTED, "EVCC closed the connection")
    assert ended(evse).kind is FailureKind.DISCONNECTED and not evse.contactors_closed


def _left_while_ongoing() -> tuple[SeccSession, RecordingEVSE]:
    """The EV repeated AuthorizationReq while the SECC answered Ongoing, until its Ongoing timer expired."""
    evcc, secc, evse = pair(sim=SimulatedEVSEConfig(auth_ongoing_rounds=10**6), timers=SeccTimers())
    sent = run(evcc, secc)
    assert sent.count("AuthorizationRes") > 3 and not secc.ended
    last = [e for e in evse.seen if isinstance(e, Answered)][-1]
    assert last.name == "AuthorizationRes" and last.ongoing and not last.late
    return secc, evse


def test_ongoing_then_disconnect() -> None:
    secc, evse = _left_while_ongoing()
    secc.on_closed(FailureKind.DISCONNECTED, "EVCC closed the connection (reset)")
    assert ended(evse).kind is FailureKind.ONGOING_TIMEOUT


def test_late_answer_then_disconnect() -> None:
    late = SeccTimers(performance=1.0, performance_long=4.0, performance_current_demand=0.025)
    evcc, secc, evse = pair(timers=late)
    run(evcc, secc, at="AuthorizationReq", elapsed=1.5)
    last = [e for e in evse.seen if isinstance(e, Answered)][-1]
    assert last.late and last.elapsed == 1.5 and not last.ongoing
    secc.on_closed(FailureKind.DISCONNECTED, "EVCC closed the connection")
    assert ended(evse).kind is FailureKind.PERFORMANCE_TIMEOUT


def test_in_time_answer_then_disconnect_is_a_disconnect() -> None:
    late = SeccTimers(performance=1.0, performance_long=4.0, performance_current_demand=0.025)
    evcc, secc, evse = pair(timers=late)
    run(evcc, secc, at="AuthorizationReq", elapsed=0.9)
    secc.on_closed(FailureKind.DISCONNECTED, "EVCC closed the connection")
    assert ended(evse).kind is FailureKind.DISCONNECTED


def test_late_handshake_then_disconnect_has_no_session() -> None:
    evcc, secc, evse = pair(timers=SeccTimers(performance=0.1))
    run(evcc, secc, at="SessionSetupReq", elapsed=0.2)
    secc.on_closed(FailureKind.DISCONNECTED, "EVCC closed the connection")
    assert (ended(evse).kind, ended(evse).had_session) == (FailureKind.PERFORMANCE_TIMEOUT, False)


# ----- what the shell saw: passed through as named -----

@pytest.mark.parametrize("kind", [FailureKind.V2GTP_ERROR, FailureKind.EXI_ERROR, FailureKind.SHUTDOWN,
                                  FailureKind.INTERNAL_ERROR])
def test_transport_and_station_endings(kind: FailureKind) -> None:
    secc, evse = _left_while_ongoing()  # even after an Ongoing answer: not the EV's timeout
    secc.on_closed(kind, "what the shell saw")
    secc.on_closed(FailureKind.DISCONNECTED, "the abort that follows")  # ignored: the session has ended
    end = ended(evse)
    assert (end.kind, end.detail, end.iso_code) == (kind, "what the shell saw", None)


# ----- TLS: the kind from OpenSSL's reason code -----

def _handshake(server: ssl.SSLContext, client: ssl.SSLContext | None) -> BaseException:
    """The server side's error of a TLS handshake over memory BIOs (`client` None: a plaintext peer)."""
    s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    srv = server.wrap_bio(s_in, s_out, server_side=True)
    if client is None:
        s_in.write(bytes.fromhex("01FE8001000000048000000000"))  # a V2GTP frame: no TLS at all
        with pytest.raises(ssl.SSLError) as info:
            srv.do_handshake()
        return info.value
    c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    cli = client.wrap_bio(c_in, c_out, server_hostname=None)
    for _ in range(10):
        for side, out, peer_in in ((cli, c_out, s_in), (srv, s_out, c_in)):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as e:
                if side is srv:
                    return e
                peer_in.write(out.read())  # the client's alert reaches the server
                continue
            peer_in.write(out.read())
    raise AssertionError("the handshake did not fail at the server")


@pytest.fixture(scope="module")
def secc_tls() -> ssl.SSLContext:
    return make_secc_chain().server_context()


def test_tls_version(secc_tls: ssl.SSLContext) -> None:
    client = evcc_context()
    client.minimum_version = client.maximum_version = ssl.TLSVersion.TLSv1_3
    error = _handshake(secc_tls, client)
    assert failure_kind(error) is FailureKind.TLS_VERSION, error


def test_tls_cipher_suite(secc_tls: ssl.SSLContext) -> None:
    client = evcc_context()
    client.set_ciphers("ECDHE-RSA-AES256-GCM-SHA384")
    error = _handshake(secc_tls, client)
    assert failure_kind(error) is FailureKind.TLS_CIPHER_SUITE, error


def test_tls_failure_otherwise(secc_tls: ssl.SSLContext) -> None:
    untrusting = evcc_context(cadata=make_secc_chain().root_pem.decode())
    for error in (_handshake(secc_tls, untrusting), _handshake(secc_tls, None)):
        assert failure_kind(error) is FailureKind.TLS_FAILURE, error
    assert failure_kind(TimeoutError()) is FailureKind.TLS_FAILURE  # no handshake at all in time


def test_message_names_come_from_the_wire() -> None:
    evcc, secc, evse = pair(loops=1)
    run(evcc, secc)
    names = [body_name(e.record.doc) for e in evse.seen if isinstance(e, MessageExchanged)]
    assert names[:2] == ["supportedAppProtocolReq", "supportedAppProtocolRes"] and names[-1] == "SessionStopRes"
