"""ISO 15118-20 interop sessions between our stack and the reference stack across veth pairs, as functions.

`reference_evcc_vs_our_secc20` runs one of the reference's four -20 example EVCC configurations (AC, DC, AC_BPT,
DC_BPT) against `v2gstack secc` offering the given control mode first (the reference EV takes the first parameter
set); `our_evccs_vs_reference_secc20` runs a list of `v2gstack ev --protocol iso20` sessions one after the other
against one reference SECC process (its JVM starts once). Each returns an `Outcome20`: how both sides ended, and the
power of every charge loop as the EVSE reported it (DC: EVSEPresentVoltage x EVSEPresentCurrent; AC:
EVSEPresentActivePower, else EVSETargetActivePower), signed, so a test can say which way the energy moved.

The TLS 1.3 cases set everything up so that only what the reference cannot do stands between the peers: each side
trusts the other's roots, the reference runs with ENABLE_TLS_1_3; what remains is its key exchange group (P-256 only,
`set_ecdh_curve("prime256v1")` in its shared/security.py::get_ssl_context) against the groups of -20 Table 7
(secp521r1, X448), so the handshake must fail and both sides say so.
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
from helpers.interop import Outcome, our_command, start, transport_of, wait, wait_for_text

LOOP_RESPONSES = frozenset({"AC_ChargeLoopRes", "DC_ChargeLoopRes"})
# how the reference logs a -20 SessionStopRes OK: its EVCC as JSON received, its SECC as the dict it encodes
_REFERENCE_STOP_OK = re.compile(r'"SessionStopRes": ?\{"Header": ?\{"SessionID": ?"(?P<sid>[0-9A-F]+)"[^}]*\}, ?'
                                r'"ResponseCode": ?"OK"')
# the reference EVCC does not exit after a failed session or connection: it logs one of these and waits for ever
_REFERENCE_EVCC_GAVE_UP = ("maximum number of SDP retry cycles", "when trying to connect to host")
# our EV against the reference SECC: its simulated EVSE never raises the PreCharge voltage (1 V) and its JVM codec
# is slow under load, as for -2 (helpers.interop.OUR_EV_OPTIONS)
OUR_EV_OPTIONS20 = ["--loops", "5", "--loop-interval", "0.05", "--precharge-tolerance", "1000",
                    "--timeout-scale", "3"]
# the reference EV takes about 0.5 s from its last DC_ChargeLoopRes to PowerDeliveryReq(Stop) on an idle machine
# (its JVM codec, its stop logic), right at the -20 charge-loop sequence timeout of our SECC, and over 2 s on a
# loaded one (seen in a CI-like run): stretch it as our EV's timeouts are stretched against its SECC
OUR_SECC_OPTIONS20 = ["--timeout-scale", "6"]
DISCHARGE_LOOPS = 3  # our SECC asks the EV for discharge in the first loops of a dynamic BPT session


@dataclass(frozen=True)
class Case20:
    """One -20 case: the energy service, the control mode, TCP or TLS 1.3."""

    energy: str  # ac, dc, ac_bpt, dc_bpt
    control: str = "scheduled"
    tls: bool = False

    @property
    def bpt(self) -> bool:
        """A bidirectional service."""
        return self.energy.endswith("_bpt")

    @property
    def name(self) -> str:
        """e.g. dc_bpt-dynamic-tls."""
        return f"{self.energy}-{self.control}{'-tls' if self.tls else ''}"


@dataclass
class Outcome20(Outcome):
    """An Outcome with the signed power of each charge loop and, for TLS cases, the handshake failures seen."""

    powers: list[float] = field(default_factory=list)
    session_id: str = ""  # ours, as our EV printed it (our EV vs the reference SECC)
    our_tls_error: str = ""  # our side's line saying the TLS connection failed, if any
    reference_tls_error: str = ""  # OpenSSL's reason (or the exception) in the reference's log, if any

    @property
    def charged(self) -> bool:
        """Energy went into the EV in some loop."""
        return any(p > 0 for p in self.powers)

    @property
    def discharged(self) -> bool:
        """Energy came out of the EV in some loop."""
        return any(p < 0 for p in self.powers)

    def explain(self) -> str:
        """Outcome.explain with the powers and TLS errors."""
        return (f"powers={[round(p) for p in self.powers]}, our TLS error={self.our_tls_error!r}, "
                f"reference TLS error={self.reference_tls_error!r}\n" + super().explain())


def _number(value: dict | None) -> float | None:
    """A -20 RationalNumber of the JSON view as a float."""
    return None if value is None else value["Value"] * 10.0 ** value["Exponent"]


def loop_power(message: str, body: dict) -> float | None:
    """The power (W, negative: discharge) one AC_/DC_ChargeLoopRes reports."""
    if message == "DC_ChargeLoopRes":
        voltage, current = _number(body.get("EVSEPresentVoltage")), _number(body.get("EVSEPresentCurrent"))
        return None if voltage is None or current is None else voltage * current
    mode = next((v for k, v in body.items() if k.endswith("_AC_CLResControlMode")), {})
    return _number(mode.get("EVSEPresentActivePower") or mode.get("EVSETargetActivePower"))


def loop_powers(jsonl: Path, direction: str, session_id: str | None = None) -> list[float]:
    """The powers of the charge-loop responses in one of our --log-json files (tx at our SECC, rx at our EV)."""
    if not jsonl.exists():
        return []
    out = []
    for line in jsonl.read_text().splitlines():
        record = json.loads(line)
        if record["direction"] != direction or record["message"] not in LOOP_RESPONSES:
            continue
        if session_id is not None and record.get("sessionId") != session_id:
            continue
        power = loop_power(record["message"], record["json"][record["message"]])
        if power is not None:
            out.append(power)
    return out


def reference_stop_ok(evcc_log: str) -> str | None:
    """The SessionID of the -20 SessionStopRes OK the reference EVCC logged, None if it logged none."""
    found = _REFERENCE_STOP_OK.search(evcc_log)
    return found.group("sid") if found else None


def wait_reference_evcc(proc: subprocess.Popen[bytes], log: Path, limit: float) -> int | None:
    """The reference EVCC's exit code; None when it gave up or ran out of time (then killed)."""
    return _wait_reference_evcc(proc, log, limit)


def _wait_reference_evcc(proc: subprocess.Popen[bytes], log: Path, limit: float) -> int | None:
    """The reference EVCC's exit code; None when it gave up (it then waits for ever) or ran out of time: killed."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc.returncode
        if log.exists() and any(text in log.read_text(errors="replace") for text in _REFERENCE_EVCC_GAVE_UP):
            time.sleep(0.5)  # the rest of its traceback
            break
        time.sleep(0.2)
    proc.kill()
    proc.wait(10)
    return None


def make_pki20(folder: Path) -> Path:
    """A -20 PKI (secp521r1) made by our CLI under folder/pki20."""
    out = folder / "pki20"
    subprocess.run([sys.executable, "-m", "v2gstack.cli", "pki", "create", "--profile", "iso20", "--out", str(out)],
                   check=True, capture_output=True, timeout=120)
    return out


def _append(target: Path, source: Path) -> None:
    """Append a PEM certificate to a trust file (both sides load every certificate of the file)."""
    target.write_bytes(target.read_bytes().rstrip(b"\n") + b"\n" + source.read_bytes())


def _tls_failure(text: str) -> str:
    """How a reference log says a TLS connection failed: OpenSSL's reason ([SSL: REASON]) or the exception name."""
    found = re.search(r"\[SSL: (\w+)\]", text)
    if found:
        return found.group(1)
    found = re.search(r"(\w+Error) when trying to connect", text)
    return found.group(1) if found else ""


def reference_evcc_vs_our_secc20(case: Case20, workdir: Path) -> Outcome20:
    """The reference EVCC's example config for `case.energy` against `v2gstack secc --protocols iso20` offering
    `case.control` first (dynamic BPT: discharge in the first loops); with `case.tls`, TLS 1.3 both ways."""
    outcome = Outcome20(f"reference EVCC vs our SECC, iso20 {case.name}")
    secc_log, secc_jsonl = workdir / "our-secc.log", workdir / "our-secc.jsonl"
    evcc_dir = workdir / "evcc"
    evcc_log = evcc_dir / "evcc.log"
    outcome.logs = {"our SECC": secc_log, "reference EVCC": evcc_log}
    other = "dynamic" if case.control == "scheduled" else "scheduled"
    secc_args = ["--protocols", "iso20", "--sessions", "1", "--log-json", str(secc_jsonl), "-v", "--tariff",
                 "--control", f"{case.control},{other}", *OUR_SECC_OPTIONS20]
    if case.bpt and case.control == "dynamic":
        secc_args += ["--discharge-loops", str(DISCHARGE_LOOPS)]
    config = josev.evcc_config_copy(evcc_dir, "iso20", case.energy, useTls=case.tls)
    extra_env: dict[str, str] = {}
    if case.tls:
        josev.make_pki(evcc_dir)
        pki20 = make_pki20(workdir)
        ref_certs = evcc_dir / "pki" / "iso15118_2" / "certs"
        (ref_certs / "v2gRootCACert.pem").write_bytes((pki20 / "stores" / "ev" / "trust" / "v2g_root.pem").read_bytes())
        _append(pki20 / "stores" / "secc" / "trust" / "oem_root.pem", ref_certs / "oemRootCACert.pem")
        secc_args += ["--tls", "--pki", str(pki20)]
        extra_env["ENABLE_TLS_1_3"] = "true"
    link = netns.VethLink.create()
    try:
        secc = start(our_command(link, link.evse_ns, ["secc", "--iface", link.evse_if, *secc_args]), secc_log)
        try:
            wait_for_text(secc_log, "SECC sdp listening", secc, 30)
            argv, env = josev.evcc_command(link.command(link.ev_ns, []), evcc_dir, link.ev_if, "iso20", case.energy)
            env.update(extra_env, EVCC_CONFIG_PATH=str(config))
            evcc = josev.start(argv, env, evcc_dir, "evcc.log")
            outcome.reference_rc = _wait_reference_evcc(evcc, evcc_log, 120)
            outcome.ours_rc = wait(secc, 15 if outcome.reference_rc is not None else 1)
        finally:
            if secc.poll() is None:
                secc.kill()
                secc.wait(10)
    finally:
        link.destroy()
    text = evcc_log.read_text(errors="replace") if evcc_log.exists() else ""
    outcome.reference_ok = outcome.reference_rc == 0 and _REFERENCE_STOP_OK.search(text) is not None
    outcome.reference_tls_error = _tls_failure(text)
    ours = secc_log.read_text(errors="replace") if secc_log.exists() else ""
    outcome.our_tls_error = next((line for line in ours.splitlines() if "TLS handshake" in line and "failed" in line),
                                 "")
    outcome.powers = loop_powers(secc_jsonl, "tx")
    outcome.charge_loops = len(outcome.powers)
    outcome.our_transport = transport_of(secc_log)
    return outcome


def our_evccs_vs_reference_secc20(cases: list[Case20], workdir: Path) -> dict[Case20, Outcome20]:
    """`v2gstack ev --protocol iso20` for each case, one after the other, against one reference SECC (both -20
    namespaces, EIM) in one pair of namespaces; TLS cases need a SECC of their own, so `cases` are all TCP or all
    TLS. With TLS the reference SECC runs with ENABLE_TLS_1_3 and trusts our OEM root; our EV trusts its V2G root."""
    tls = cases[0].tls
    if any(c.tls != tls for c in cases):
        raise ValueError("one reference SECC serves TCP or TLS cases, not both")
    secc_dir = workdir / "secc"
    secc_log = secc_dir / "secc.log"
    ev_extra: list[str] = []
    if tls:
        josev.make_pki(secc_dir)
        pki20 = make_pki20(workdir)
        ref_certs = secc_dir / "pki" / "iso15118_2" / "certs"
        _append(pki20 / "stores" / "ev" / "trust" / "v2g_root.pem", ref_certs / "v2gRootCACert.pem")
        _append(ref_certs / "oemRootCACert.pem", pki20 / "stores" / "secc" / "trust" / "oem_root.pem")
        ev_extra = ["--tls", "--pki", str(pki20)]
    outcomes: dict[Case20, Outcome20] = {}
    link = netns.VethLink.create()
    try:
        argv, env = josev.secc_command(link.command(link.evse_ns, []), secc_dir, link.evse_if, ["iso20"], tls=tls,
                                       tls13=tls)
        secc = josev.start(argv, env, secc_dir, "secc.log")
        try:
            wait_for_text(secc_log, "UDP server started", secc, 90)
            # AC sessions first: the reference SECC keeps its session limits from one session to the next, and after
            # a DC session its AC_ChargeLoop fails (TypeError in interface.py get_ac_charge_loop_params_v20, the
            # AC max_charge_power left None)
            for case in sorted(cases, key=lambda c: c.energy.startswith("dc")):
                outcomes[case] = _our_ev_session(link, case, workdir / case.name, ev_extra, secc_log)
        finally:
            secc.kill()
            secc.wait(10)
    finally:
        link.destroy()
    text = secc_log.read_text(errors="replace") if secc_log.exists() else ""
    stopped = {m.group("sid") for m in _REFERENCE_STOP_OK.finditer(text)}
    for outcome in outcomes.values():
        outcome.reference_ok = bool(outcome.session_id) and outcome.session_id in stopped
        outcome.reference_tls_error = _tls_failure(text)
    return outcomes


def _our_ev_session(link: netns.VethLink, case: Case20, workdir: Path, extra: list[str],
                    secc_log: Path) -> Outcome20:
    """One `v2gstack ev` session against the running reference SECC."""
    outcome = Outcome20(f"our EVCC vs reference SECC, iso20 {case.name}")
    ev_log, ev_jsonl = workdir / "our-ev.log", workdir / "our-ev.jsonl"
    outcome.logs = {"our EVCC": ev_log, "reference SECC": secc_log}
    ev = start(our_command(link, link.ev_ns, ["ev", "--iface", link.ev_if, "--protocol", "iso20", "--energy",
                                                case.energy, "--control", case.control, *OUR_EV_OPTIONS20, *extra,
                                                "--log-json", str(ev_jsonl), "-v"]), ev_log)
    outcome.ours_rc = wait(ev, 120)
    time.sleep(0.5)  # let the reference finish logging the SessionStopRes it sent
    text = ev_log.read_text(errors="replace") if ev_log.exists() else ""
    found = re.search(r"session (?:OK|FAILED): .*session ([0-9A-F]{2,16})\b", text)
    outcome.session_id = found.group(1) if found else ""
    outcome.powers = loop_powers(ev_jsonl, "rx")
    outcome.charge_loops = len(outcome.powers)
    outcome.our_transport = transport_of(ev_log)
    outcome.our_tls_error = next((line for line in text.splitlines() if "TLS" in line and
                                  ("fail" in line.lower() or "error" in line.lower())), "")
    return outcome
