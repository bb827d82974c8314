"""Fuzz the ISO 15118-20 SECC's message handling (`make fuzz`): decoded but semantically wrong requests.

The seed corpus is every request of complete in-memory sessions (AC, DC, AC_BPT, DC_BPT x scheduled, dynamic, with
renegotiation, metering confirmation, pause and Ongoing loops), each with the V2GTP payload type it travelled with.
A case replays one session up to a random point and then sends up to six requests of which some are mutated at the
JSON level and kept only if they still encode (numbers and RationalNumbers at their extremes, enumerations swapped,
booleans flipped, optional elements dropped, lists repeated, subtrees grafted from other messages, another
message in place, another SessionID, another payload type); the shell's steps are emulated exactly (payload type ->
namespace or a V2GTP error, undecodable EXI -> an EXI error, the certificate hook awaited, the answer encoded and
reported as sent). Beside it a healthy session shares the SECC's paused-session store and must charge to the end.

A finding is: an exception out of the session, an answer that does not encode, a session that closes without
ending or ends without closing, more or fewer than one SessionEnded event, contactors left closed after the end, or
a healthy session that fails. Case i of a run is a pure function of (--seed, i): `--replay I` re-runs it verbosely.

    python tools/secc20_fuzz.py --count 20000 [--seed N] [--replay I]
"""

from __future__ import annotations

import argparse
import copy
import itertools
import logging
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from cryptography import x509  # noqa: E402

from v2gstack import exi  # noqa: E402
from v2gstack.iso15118.ev import EVModel  # noqa: E402
from v2gstack.iso15118.evcc import EvccConfig, EvccSession, Send, SessionResult  # noqa: E402
from v2gstack.iso15118.evcc20 import Contract20, OemCredentials20  # noqa: E402
from v2gstack.iso15118.events import SessionEnded, SessionEvent  # noqa: E402
from v2gstack.iso15118.evse_sim import SimulatedEVSE, SimulatedEVSEConfig  # noqa: E402
from v2gstack.iso15118.messages import body_name  # noqa: E402
from v2gstack.iso15118.messages.iso20_types import REQUESTS20  # noqa: E402
from v2gstack.iso15118.secc import PausedSessions, SeccConfig, SeccSession  # noqa: E402
from v2gstack.iso15118.secc_base import Reply  # noqa: E402
from v2gstack.iso15118.v2gtp import EXI_PAYLOADS, ISO20_STREAM, PayloadType  # noqa: E402
from v2gstack.pki.contracts20 import ContractService20  # noqa: E402
from v2gstack.pki.hierarchy import Edition, PkiConfig, create_pki  # noqa: E402
from v2gstack.pki.profiles import Kind  # noqa: E402
from v2gstack.pki.store import write_pki  # noqa: E402
from v2gstack.trace.error_map import FailureKind  # noqa: E402

SESSION_ID = "0123456789ABCDEF"  # every fuzzed SECC hands out this SessionID, so recorded requests stay valid
SECC_PROTOCOLS = ("iso20", "iso2", "din")
Doc = dict[str, Any]
Request = tuple[Doc, int]  # a request document and its payload type

_INTS = (0, 1, -1, 2, 12, 127, -128, 255, 256, 1024, 1025, 32767, -32768, 65535, 2**31 - 1, 2**32 - 1, 2**63 - 1)
_STRINGS = ("", "x" * 300, "ZZ", "0", "None", "Start", "Stop", "Standby", "ScheduleRenegotiation", "Pause",
            "Terminate", "ServiceRenegotiation", "EIM", "PnC", "Ongoing", "Finished",
            "Ongoing_WaitingForCustomerInteraction", "Charge", "Discharge", "PowerToleranceConfirmed")


class Recorder(SimulatedEVSE):
    """A simulated EVSE that keeps its session events (to check there is one end)."""

    def __init__(self, config: SimulatedEVSEConfig | None = None) -> None:
        super().__init__(config, clock=lambda: 0.0)
        self.seen: list[SessionEvent] = []

    def on_event(self, event: SessionEvent) -> None:
        """Keep it."""
        self.seen.append(event)


def _pnc_setup() -> tuple[SimulatedEVSEConfig, dict[str, Any]]:
    """A -20 PKI (secp521r1): a simulated EVSE offering Plug & Charge with a contract service, and the EV's
    contract and OEM provisioning credentials."""
    pki = create_pki(PkiConfig(edition=Edition.ISO20))
    folder = Path(tempfile.mkdtemp(prefix="secc20-fuzz-"))
    write_pki(pki, folder)
    item = pki.items[Kind.CONTRACT]
    cn = str(item.cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value)
    contract = Contract20(cn, [item.cert, *pki.intermediates(Kind.CONTRACT)], item.key)  # type: ignore[arg-type]
    prov = pki.items[Kind.OEM_PROV]
    oem = OemCredentials20([prov.cert, *pki.intermediates(Kind.OEM_PROV)], prov.key,  # type: ignore[arg-type]
                           prov.alt_key, [pki.cert(Kind.V2G_ROOT)])  # type: ignore[arg-type]
    sim = SimulatedEVSEConfig(payment_options=("ExternalPayment", "Contract"), receipt_required=True,
                              contract_service20=ContractService20.from_pki_dir(folder))
    return sim, {"payment": "Contract", "contract20": contract, "oem20": oem}


def _scripts() -> tuple[list[list[Request]], SimulatedEVSEConfig]:
    """The requests of complete sessions, as the SECC received them (Plug & Charge ones over pretended TLS 1.3)."""
    sims = [SimulatedEVSEConfig(), SimulatedEVSEConfig(discharge_loops=2, discharge_seconds=3),
            SimulatedEVSEConfig(renegotiate_after_loops=1, receipt_required=True),
            SimulatedEVSEConfig(auth_ongoing_rounds=1, schedule_ongoing_rounds=1, pause_after_loops=2)]
    runs: list[tuple[SimulatedEVSEConfig, str, str, dict[str, Any]]] = [
        (sim, e, c, {}) for sim, e, c in itertools.product(sims, ("ac", "dc", "ac_bpt", "dc_bpt"),
                                                            ("scheduled", "dynamic"))]
    pnc_sim, pnc = _pnc_setup()
    runs += [(pnc_sim, "dc_bpt", "dynamic", pnc), (pnc_sim, "ac", "scheduled", {**pnc, "contract20": None})]
    out = []
    for sim, energy, control, extra in runs:
        evcc = EvccSession(EvccConfig(protocols=("iso20",), energy=energy, control=control, loops=3, **extra),
                           EVModel())
        secc = SeccSession(Recorder(sim), SeccConfig(protocols=SECC_PROTOCOLS), new_session_id=lambda: SESSION_ID,
                           tls=bool(extra), tls_version="TLSv1.3" if extra else None)
        script: list[Request] = []
        clock = itertools.count(0.0, 1.0)
        step: Send | SessionResult = evcc.start(next(clock))
        while isinstance(step, Send):
            ns = secc.rx_namespace_for(step.payload_type)
            assert ns is not None
            request = exi.decode(ns, exi.encode(step.ns, step.doc))
            script.append((request, step.payload_type))
            reply = secc.handle(request, step.payload_type)
            if reply.pending is not None:
                reply = secc.complete(reply, _await(reply.pending))
            assert reply.doc is not None
            back = evcc.rx_namespace_for(reply.payload_type)
            assert back is not None
            step = evcc.handle(exi.decode(back, exi.encode(reply.ns, reply.doc)), next(clock))
        assert step.ok, step.reason
        out.append(script)
    return out, pnc_sim


@dataclass
class Corpus:
    """The scripts, every request of them, and the string values seen per key (enumerations to swap)."""

    scripts: list[list[Request]]
    requests: list[Request]
    strings: dict[str, list[str]]
    pnc_sim: SimulatedEVSEConfig

    @classmethod
    def build(cls) -> Corpus:
        """Record the sessions."""
        scripts, pnc_sim = _scripts()
        requests = [r for s in scripts for r in s]
        strings: dict[str, set[str]] = {}
        for doc, _ in requests:
            for _parent, key, value in _walk(doc):
                if isinstance(value, str) and isinstance(key, str):
                    strings.setdefault(key, set()).add(value)
        return cls(scripts, requests, {k: sorted(v) for k, v in strings.items()}, pnc_sim)


def _walk(node: Any) -> Iterator[tuple[Any, Any, Any]]:
    """Every (parent, key, value) below `node`."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield node, i, value
            yield from _walk(value)


def _namespace(doc: Doc) -> str:
    """The namespace a request document is coded with."""
    name = body_name(doc)
    if name == "supportedAppProtocolReq":
        return "appHand"
    return REQUESTS20.get(name, (None, "iso20"))[1]


def _mutate_once(rng: random.Random, doc: Doc, corpus: Corpus) -> tuple[Doc, str]:
    """One JSON-level mutation (the caller checks that it still encodes)."""
    d = copy.deepcopy(doc)
    nodes = list(_walk(d))
    op = rng.choices(range(9), weights=(1, 4, 4, 4, 2, 3, 1, 3, 1))[0]
    if not nodes or op == 0:
        other, _ = rng.choice(corpus.requests)
        return copy.deepcopy(other), f"replaced by {body_name(other)}"
    parent, key, value = rng.choice(nodes)
    if op == 1 and isinstance(value, dict) and "Exponent" in value:
        value["Exponent"], value["Value"] = rng.choice((-128, -3, 0, 3, 127)), rng.choice((-32768, -1, 0, 32767))
        return d, f"rational {key}"
    if op == 2 and isinstance(value, int) and not isinstance(value, bool):
        parent[key] = rng.choice(_INTS) * rng.choice((1, -1))
        return d, f"number {key}"
    if op == 3 and isinstance(value, str):
        pool = corpus.strings.get(key, []) if isinstance(key, str) else []
        parent[key] = rng.choice(pool + list(_STRINGS)) if pool and rng.random() < 0.7 else rng.choice(_STRINGS)
        return d, f"string {key}"
    if op == 4 and isinstance(value, bool):
        parent[key] = not value
        return d, f"flip {key}"
    if op == 5 and isinstance(parent, dict) and key != "Header":
        del parent[key]
        return d, f"drop {key}"
    if op == 6 and isinstance(value, list) and value:
        value.extend(copy.deepcopy(value) * rng.choice((1, 3, 20)))
        return d, f"repeat {key}"
    if op == 7 and isinstance(key, str):
        donors = [v for other, _ in corpus.requests for p, k, v in _walk(other) if k == key and v != value]
        if not donors:
            donors = [v for other, _ in corpus.requests for p, k, v in _walk(other) if isinstance(k, str)
                      and isinstance(v, dict) and k.endswith("ControlMode")]
            key = rng.choice([k for k in parent if isinstance(k, str)]) if isinstance(parent, dict) else key
        if donors:
            parent[key] = copy.deepcopy(rng.choice(donors))
            return d, f"graft {key}"
    if op == 8:
        content = next(iter(d.values()))
        if isinstance(content, dict) and "Header" in content:
            content["Header"]["SessionID"] = rng.choice(("0000000000000000", "FFFFFFFFFFFFFFFF", "0102030405060708"))
            return d, "session id"
    other, _ = rng.choice(corpus.requests)
    return copy.deepcopy(other), f"replaced by {body_name(other)}"


def mutate(rng: random.Random, doc: Doc, corpus: Corpus) -> tuple[Doc, str]:
    """A mutation of `doc` that still encodes in its namespace (1-3 operations, up to 20 tries)."""
    for _ in range(20):
        out, what = doc, []
        for _ in range(rng.choice((1, 1, 2, 3))):
            out, w = _mutate_once(rng, out, corpus)
            what.append(w)
        try:
            exi.encode(_namespace(out), out)
        except (exi.ExiEncodeError, KeyError, TypeError, ValueError):
            continue
        return out, ", ".join(what)
    other, _ = rng.choice(corpus.requests)
    return copy.deepcopy(other), f"replaced by {body_name(other)}"


def _payload_type(rng: random.Random, doc: Doc, given: int) -> int:
    """Mostly the payload type the request belongs on, sometimes any EXI payload type."""
    if rng.random() < 0.1:
        return rng.choice(sorted(EXI_PAYLOADS))
    ns = _namespace(doc)
    return PayloadType.EXI if ns == "appHand" else given if given in EXI_PAYLOADS and given != PayloadType.EXI \
        else ISO20_STREAM.get(ns, PayloadType.ISO20_COMMON)


def _await(awaitable: Any) -> Any:
    """Run a coroutine that never suspends (the simulated EVSE's certificate hook) to its value."""
    try:
        awaitable.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the certificate hook suspended")


class Finding(Exception):
    """What the fuzzer reports."""


def _deliver(secc: SeccSession, doc: Doc, ptype: int, rng: random.Random) -> Reply | None:
    """One request as the shell hands it over; None when the connection ended without an answer."""
    ns = secc.rx_namespace_for(ptype)
    if ns is None:
        secc.on_closed(FailureKind.V2GTP_ERROR, f"payload type 0x{ptype:04X}")
        return None
    data = exi.encode(_namespace(doc), doc)
    try:
        request = exi.decode(ns, data)
    except exi.ExiDecodeError as e:
        secc.on_closed(FailureKind.EXI_ERROR, f"undecodable EXI: {e}")
        return None
    reply = secc.handle(request, ptype)
    if reply.pending is not None:
        reply = secc.complete(reply, _await(reply.pending))
    if reply.doc is not None:
        try:
            exi.encode(reply.ns, reply.doc)
        except exi.ExiEncodeError as e:
            raise Finding(f"the answer {reply.name} does not encode: {e}") from None
        secc.sent(reply, rng.choice((0.001, 0.001, 0.3, 2.0)))
    if reply.close and not secc.ended:
        raise Finding(f"closed after {reply.name} without ending the session")
    if secc.ended and not reply.close:
        raise Finding(f"ended but answered {reply.name} without closing")
    return reply


class Healthy:
    """A correct EV and SECC pair advanced one exchange at a time beside the fuzzed session."""

    def __init__(self, paused: PausedSessions, rng: random.Random) -> None:
        energy, control = rng.choice(("ac", "dc", "ac_bpt", "dc_bpt")), rng.choice(("scheduled", "dynamic"))
        self.evcc = EvccSession(EvccConfig(protocols=("iso20",), energy=energy, control=control, loops=2), EVModel())
        self.secc = SeccSession(Recorder(), SeccConfig(protocols=SECC_PROTOCOLS), paused)
        self.clock = itertools.count(0.0, 1.0)
        self.step: Send | SessionResult = self.evcc.start(next(self.clock))

    def advance(self) -> None:
        """One request/response, if the session still runs."""
        if not isinstance(self.step, Send):
            return
        ns = self.secc.rx_namespace_for(self.step.payload_type)
        assert ns is not None
        reply = self.secc.handle(exi.decode(ns, exi.encode(self.step.ns, self.step.doc)), self.step.payload_type)
        if reply.doc is None:
            raise Finding(f"the healthy session was closed: {self.secc.end_reason}")
        back = self.evcc.rx_namespace_for(reply.payload_type)
        assert back is not None
        self.step = self.evcc.handle(exi.decode(back, exi.encode(reply.ns, reply.doc)), next(self.clock))

    def finish(self) -> None:
        """Run to the end; it must have charged."""
        for _ in range(200):
            self.advance()
        if not isinstance(self.step, SessionResult) or not self.step.ok:
            raise Finding(f"the healthy session failed: {getattr(self.step, 'reason', self.step)}")


def run_case(corpus: Corpus, seed: int, i: int, log: list[str] | None = None) -> None:
    """Case i: replay a session prefix, then up to six requests of which some are mutated; raise Finding."""
    rng = random.Random(f"{seed}:{i}")
    paused = PausedSessions()
    tls13 = rng.random() < 0.3
    evse = Recorder(corpus.pnc_sim if tls13 else rng.choice((
        SimulatedEVSEConfig(), SimulatedEVSEConfig(discharge_loops=1, standby=True),
        SimulatedEVSEConfig(receipt_required=True, renegotiate_after_loops=1))))
    secc = SeccSession(evse, SeccConfig(protocols=SECC_PROTOCOLS), paused, new_session_id=lambda: SESSION_ID,
                       tls=tls13, tls_version="TLSv1.3" if tls13 else None)
    healthy = Healthy(paused, rng)
    script = rng.choice(corpus.scripts)
    cut = rng.randrange(len(script))
    queue: list[Request] = list(script[:cut])
    rest = script[cut:]
    for n in range(rng.randint(1, 6)):
        doc, ptype = rest[n] if n < len(rest) else rng.choice(corpus.requests)
        if n == 0 or rng.random() < 0.5:
            doc, what = mutate(rng, doc, corpus)
            ptype = _payload_type(rng, doc, ptype)
            queue.append((doc, ptype))
            if log is not None:
                log.append(f"mutated #{cut + n}: {what} (0x{ptype:04X})")
        else:
            queue.append((doc, ptype))
    for doc, ptype in queue:
        if secc.ended:
            break
        if log is not None:
            log.append(f"-> {body_name(doc)} 0x{ptype:04X}")
        reply = _deliver(secc, doc, ptype, rng)
        if log is not None and reply is not None:
            log.append(f"<- {reply.name} close={reply.close} {secc.end_reason if secc.ended else ''}")
        healthy.advance()
    if not secc.ended:
        if rng.random() < 0.5:
            secc.on_timeout()
        else:
            secc.on_closed(rng.choice(list(FailureKind)), "the fuzzer hung up")
    ends = [e for e in evse.seen if isinstance(e, SessionEnded)]
    if len(ends) != 1:
        raise Finding(f"{len(ends)} SessionEnded events")
    if evse.contactors_closed:
        raise Finding("contactors left closed after the end")
    healthy.finish()


def check(corpus: Corpus, seed: int, i: int) -> str | None:
    """None if case i passes, else the finding (an exception out of the session is one too)."""
    try:
        run_case(corpus, seed, i)
    except Finding as f:
        return str(f)
    except Exception:
        return traceback.format_exc(limit=8)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the fuzzer; exit 1 on findings."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--replay", type=int, default=None, help="re-run case I verbosely")
    parser.add_argument("--keep-going", action="store_true", help="do not stop at the first finding")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # every case ends a session; their log lines are no news
    corpus = Corpus.build()
    if args.replay is not None:
        log: list[str] = []
        try:
            run_case(corpus, args.seed, args.replay, log)
            result = "passes"
        except Exception as e:
            result = f"FINDING: {type(e).__name__}: {e}"
        print("\n".join([*log, result]))
        return 0 if result == "passes" else 1
    findings = 0
    t0 = time.monotonic()
    for i in range(args.count):
        problem = check(corpus, args.seed, i)
        if problem is not None:
            findings += 1
            print(f"finding in case {i} (replay: --seed {args.seed} --replay {i}):\n{problem}", flush=True)
            if not args.keep_going:
                break
        if (i + 1) % 2000 == 0:
            print(f"{i + 1} cases, {findings} findings, {(i + 1) / (time.monotonic() - t0):.0f} cases/s", flush=True)
    print(f"seed {args.seed}: {args.count if not findings or args.keep_going else i + 1} cases, {findings} findings "
          f"in {time.monotonic() - t0:.1f} s")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
