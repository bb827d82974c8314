"""One interop session between our stack and the reference stack across a fresh veth pair, as a function.

`reference_evcc_vs_our_secc` and `our_evcc_vs_reference_secc` each make two namespaces, start the SECC in the EVSE
namespace, wait until it listens, run the EVCC in the EV namespace to the end of its session and return an `Outcome`
(exit codes, whether the reference logged SessionStopRes OK, charge-loop count, log tails). Ours runs as
`python -m v2gstack.cli ev|secc` with the interpreter running the tests; the reference from .venv-ref.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from helpers import josev, netns

LOOP_MESSAGES = frozenset({"CurrentDemandReq", "ChargingStatusReq"})
# how the reference logs the SessionStopRes it received (EVCC: its JSON view) or sent (SECC: a Python dict dump)
REFERENCE_EVCC_STOP_OK = '"SessionStopRes":{"ResponseCode":"OK"}'
REFERENCE_SECC_STOP_OK = '"SessionStopRes": {"ResponseCode": "OK"}'
# our EVCC against the reference SECC: its simulated EVSE answers PreCharge with 1 V for ever (its own EVCC ends
# PreCharge after 5 rounds whatever the voltage), and its JVM-backed codec takes over a second for some responses
# while other sessions run (over 0.75 s when the machine is busy); so our EV accepts any PreCharge voltage and
# stretches the standard's timeouts. These tests check what the two stacks say to each other, not how fast the
# reference answers: the timers themselves are tested against our own SECC.
OUR_EV_OPTIONS = ["--loops", "5", "--precharge-tolerance", "1000", "--timeout-scale", "10"]


@dataclass
class Outcome:
    """How one interop session ended on both sides."""

    case: str
    ours_rc: int | None = None  # None: killed after the time limit
    reference_rc: int | None = None
    reference_ok: bool = False  # the reference logged a SessionStopRes with ResponseCode OK
    charge_loops: int = 0  # charge-loop requests in our JSON message log
    our_transport: str = ""  # "TLSv1.2 <cipher>" or "TCP", as our side logged the connection
    logs: dict[str, Path] = field(default_factory=dict)

    def explain(self) -> str:
        """A failure message: the outcome and the tail of every log."""
        parts = [f"{self.case}: ours rc={self.ours_rc}, reference rc={self.reference_rc}, "
                 f"reference SessionStopRes OK={self.reference_ok}, charge loops={self.charge_loops}, "
                 f"our transport={self.our_transport!r}"]
        for name, path in self.logs.items():
            text = path.read_text(errors="replace") if path.exists() else "(missing)"
            parts.append(f"--- {name} ({path}) ---\n{text[-2500:]}")
        return "\n".join(parts)


def our_command(link: netns.VethLink, ns: str, args: list[str]) -> list[str]:
    """argv of `v2gstack <args>` inside namespace `ns`, with this interpreter."""
    return link.command(ns, [sys.executable, "-m", "v2gstack.cli", *args])


def start(argv: list[str], log: Path, env: dict | None = None) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


def wait_for_text(log: Path, text: str, proc: subprocess.Popen[bytes], limit: float) -> None:
    """Block until `text` appears in `log` (the process is listening); give up after `limit` s or if it exits."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.1)


def wait(proc: subprocess.Popen[bytes], limit: float) -> int | None:
    """Exit code, or None after killing it at `limit` s."""
    try:
        return proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        return None


def transport_of(log: Path) -> str:
    """How our side says the connection ran: 'TLSv1.2 ECDHE-...' or 'TCP' ('' if it never connected)."""
    text = log.read_text(errors="replace") if log.exists() else ""
    found = re.search(r"(?:connected to|connection from) \S+ over (.+)$", text, re.MULTILINE)
    return found.group(1).strip() if found else ""


def _charge_loops(jsonl: Path, direction: str) -> int:
    """Charge-loop requests in one of our --log-json files (direction rx at the SECC, tx at the EVCC)."""
    if not jsonl.exists():
        return 0
    count = 0
    for line in jsonl.read_text().splitlines():
        record = json.loads(line)
        count += record["direction"] == direction and record["message"] in LOOP_MESSAGES
    return count


def reference_evcc_vs_our_secc(protocol: str, energy: str, workdir: Path, tls: bool = False) -> Outcome:
    """The reference EVCC (its example config for protocol/energy) against `v2gstack secc --iface` for one session.

    With `tls` our SECC serves TLS with a throwaway chain whose root replaces the V2G root in the reference's own
    PKI (which its EVCC verifies the SECC chain against), and the reference EVCC's config asks for TLS.
    """
    outcome = Outcome(f"reference EVCC vs our SECC, {protocol} {energy}{' TLS' if tls else ''}")
    secc_log, secc_jsonl = workdir / "our-secc.log", workdir / "our-secc.jsonl"
    evcc_log = workdir / "evcc" / "evcc.log"
    outcome.logs = {"our SECC": secc_log, "reference EVCC": evcc_log}
    secc_args = ["--protocols", protocol, "--sessions", "1", "--log-json", str(secc_jsonl), "-v"]
    evcc_config: Path | None = None
    if tls:
        josev.make_pki(workdir / "evcc")
        root = workdir / "evcc" / "pki" / "iso15118_2" / "certs" / "v2gRootCACert.pem"
        secc_args += ["--tls", "--root-out", str(root)]
        evcc_config = josev.evcc_config_copy(workdir / "evcc", protocol, energy, useTls=True)
    link = netns.VethLink.create()
    try:
        secc_args = ["secc", "--iface", link.evse_if, *secc_args]
        secc = start(our_command(link, link.evse_ns, secc_args), secc_log)
        try:
            wait_for_text(secc_log, "SECC sdp listening", secc, 30)
            argv, env = josev.evcc_command(link.command(link.ev_ns, []), workdir / "evcc", link.ev_if, protocol,
                                           energy)
            if evcc_config is not None:
                env["EVCC_CONFIG_PATH"] = str(evcc_config)
            evcc = josev.start(argv, env, workdir / "evcc", "evcc.log")
            outcome.reference_rc = wait(evcc, 120)
            outcome.ours_rc = wait(secc, 15)
        finally:
            if secc.poll() is None:
                secc.kill()
                secc.wait(10)
    finally:
        link.destroy()
    outcome.reference_ok = outcome.reference_rc == 0 and REFERENCE_EVCC_STOP_OK in evcc_log.read_text(errors="replace")
    outcome.charge_loops = _charge_loops(secc_jsonl, "rx")
    outcome.our_transport = transport_of(secc_log)
    return outcome


def our_evcc_vs_reference_secc(protocol: str, energy: str, workdir: Path, tls: bool = False) -> Outcome:
    """`v2gstack ev --iface` against the reference SECC (EIM) for one session.

    With `tls` the reference SECC enforces TLS with its own test PKI (its create_certs.sh) and our EVCC asks for
    TLS and verifies the SECC chain against that PKI's V2G root.
    """
    outcome = Outcome(f"our EVCC vs reference SECC, {protocol} {energy}{' TLS' if tls else ''}")
    extra: list[str] = []
    if tls:
        josev.make_pki(workdir / "secc")
        extra = ["--tls", "--v2g-root", str(workdir / "secc" / "pki" / "iso15118_2" / "certs" / "v2gRootCACert.pem")]
    ev_log, ev_jsonl = workdir / "our-ev.log", workdir / "our-ev.jsonl"
    secc_log = workdir / "secc" / "secc.log"
    outcome.logs = {"our EVCC": ev_log, "reference SECC": secc_log}
    link = netns.VethLink.create()
    try:
        argv, env = josev.secc_command(link.command(link.evse_ns, []), workdir / "secc", link.evse_if, [protocol],
                                       tls=tls)
        secc = josev.start(argv, env, workdir / "secc", "secc.log")
        try:
            wait_for_text(secc_log, "UDP server started", secc, 90)
            ev = start(our_command(link, link.ev_ns, ["ev", "--iface", link.ev_if, "--protocol", protocol,
                                                        "--energy", energy, *OUR_EV_OPTIONS, *extra,
                                                        "--log-json", str(ev_jsonl), "-v"]), ev_log)
            outcome.ours_rc = wait(ev, 120)
            time.sleep(0.5)  # let the reference finish logging the SessionStopRes it sent
        finally:
            secc.kill()
            outcome.reference_rc = secc.wait(10)
    finally:
        link.destroy()
    text = secc_log.read_text(errors="replace")
    outcome.reference_ok = REFERENCE_SECC_STOP_OK in text and "Sent SessionStopRes" in text
    outcome.charge_loops = _charge_loops(ev_jsonl, "tx")
    outcome.our_transport = transport_of(ev_log)
    return outcome
