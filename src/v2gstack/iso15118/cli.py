"""The `ev` and `secc` commands (a typer sub-app, wired into `v2gstack` by the main CLI).

`ev` runs one charging session as the EV and exits 0 only if it ended with SessionStopRes OK (DIN, ISO 15118-2, or
ISO 15118-20 with AC, DC, AC_BPT, DC_BPT in scheduled or dynamic control); `secc` runs a standalone SECC (offering
-20, -2 and DIN by default) with a simulated EVSE that authorizes EIM at once and charges and discharges. Both print
one readable line per message and, with --log-json FILE, write one JSON line per message (direction, time,
namespace, message name, JSON view, EXI hex).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from ..slac.io import run_ev_slac
from ..slac.outputs import Matched
from .apphand import FAMILIES, PROTOCOLS
from .cli20 import ev_from_pki, secc_from_pki
from .devcerts import make_secc_chain
from .ev import EVModel
from .evcc import Contract, EvccConfig, OemCredentials
from .evcc_client import run_evcc
from .events import TlsFailed
from .evse_sim import SimulatedEVSE, SimulatedEVSEConfig
from .model20 import ControlMode
from .msglog import JsonLinesWriter, MessageRecord, MessageSink, fan_out
from .sdp import SDP_PORT
from .secc import SeccConfig
from .secc_server import SeccServer
from .timers import EvccTimers, SeccTimers
from .tls import evcc_context, secc_context

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="ISO 15118-20 / -2 / DIN SPEC 70121: run an EV (EVCC) or a charger (SECC).")


def _protocols(text: str) -> tuple[str, ...]:
    """'iso20,iso2,din' -> ('iso20', 'iso2', 'din'), checked."""
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in keys if k not in PROTOCOLS and k not in FAMILIES]
    if not keys or bad:
        raise typer.BadParameter(f"choose from {', '.join(FAMILIES)} (got {text!r})")
    return keys


def _host_port(text: str) -> tuple[str, int]:
    """'HOST:PORT' or '[V6]:PORT' -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise typer.BadParameter(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


@contextlib.contextmanager
def _sinks(log_json: Path | None, quiet: bool) -> Iterator[MessageSink | None]:
    """The message sinks: readable lines unless quiet, JSON lines to a file ('-' = stdout) if asked."""
    printer: MessageSink | None = None if quiet else (lambda r: typer.echo(r.summary()))
    if log_json is None:
        yield printer
        return
    stream: IO[str]
    with contextlib.ExitStack() as stack:
        stream = sys.stdout if str(log_json) == "-" else stack.enter_context(log_json.open("a", encoding="utf-8"))
        yield fan_out(printer, JsonLinesWriter(stream))


def _logging(verbose: bool) -> None:
    """Log lines on standard error: INFO with --verbose, warnings otherwise."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _pnc_credentials(auth: str, contract_chain: Path | None, contract_key: Path | None, oem_cert: Path | None,
                     oem_key: Path | None, password: str | None, v2g_root: Path | None) -> tuple[Any, Any]:
    """(Contract, OemCredentials) for --auth pnc from the files given."""
    if auth != "pnc":
        return None, None
    def key(path: Path) -> Any:
        return serialization.load_pem_private_key(path.read_bytes(), password.encode() if password else None)

    if contract_chain is not None and contract_key is not None:
        certs = x509.load_pem_x509_certificates(contract_chain.read_bytes())
        cn = str(certs[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value).replace("-", "")
        return Contract(cn, [c.public_bytes(serialization.Encoding.DER) for c in certs], key(contract_key)), None
    if oem_cert is not None and oem_key is not None:
        roots = x509.load_pem_x509_certificates(v2g_root.read_bytes()) if v2g_root else []
        return None, OemCredentials(x509.load_pem_x509_certificates(oem_cert.read_bytes())[0], key(oem_key), roots)
    raise typer.BadParameter("--auth pnc needs --contract-chain and --contract-key, or --oem-cert and --oem-key")


@app.command("ev")
def ev_command(
    protocol: Annotated[str, typer.Option(
        "--protocol", help="iso20, iso2, din, or several in priority order: iso20,iso2")] = "iso2",
    energy: Annotated[str, typer.Option(
        "--energy", help="ac or dc; with iso20 also ac_bpt or dc_bpt (bidirectional)")] = "dc",
    control: Annotated[str, typer.Option(
        "--control", help="iso20: scheduled (the EV follows a schedule) or dynamic (the SECC sets the power)")
    ] = "scheduled",
    min_soc: Annotated[float, typer.Option("--min-soc", help="BPT: never discharge below this SoC, %")] = 20.0,
    auth: Annotated[str, typer.Option("--auth", help="eim, or pnc (Plug & Charge over TLS: -2 needs --contract-chain "
                                                     "and --contract-key, or --oem-cert and --oem-key; -20 --pki)")
                    ] = "eim",
    pki: Annotated[Path | None, typer.Option(
        "--pki", help="-20: a `pki create --profile iso20` folder: contract, OEM provisioning and vehicle "
                      "certificates (TLS 1.3 with --tls)")] = None,
    install: Annotated[bool, typer.Option(
        "--install", help="-20 PnC with --pki: install a new contract first (CertificateInstallation)")] = False,
    contract_chain: Annotated[Path | None, typer.Option(
        "--contract-chain", help="PnC: contract certificate then its sub-CAs (PEM)")] = None,
    contract_key: Annotated[Path | None, typer.Option("--contract-key", help="PnC: the contract's key (PEM)")] = None,
    oem_cert: Annotated[Path | None, typer.Option(
        "--oem-cert", help="PnC without a contract: the OEM provisioning certificate (PEM), to install one")] = None,
    oem_key: Annotated[Path | None, typer.Option("--oem-key", help="PnC: the OEM provisioning key (PEM)")] = None,
    key_password: Annotated[str | None, typer.Option(
        "--key-password", envvar="V2GSTACK_EV_KEY_PASSWORD", help="Password of encrypted contract/OEM keys")] = None,
    iface: Annotated[str | None, typer.Option(
        "--iface", help="Network interface: SDP multicast to ff02::1 on it")] = None,
    slac: Annotated[bool, typer.Option(
        "--slac", help="Match with SLAC (ISO 15118-3) on --iface first: the PLC modem's host interface")] = False,
    secc: Annotated[str | None, typer.Option("--secc", help="HOST:PORT of the SECC; skips SDP")] = None,
    sdp_host: Annotated[str, typer.Option("--sdp-host", help="SDP unicast target without --iface (loopback)")] = "::1",
    sdp_port: Annotated[int, typer.Option("--sdp-port", help="SDP UDP port")] = SDP_PORT,
    tls: Annotated[bool, typer.Option("--tls", help="Ask for TLS (1.2 for -2; 1.3 with the vehicle certificate of "
                                                    "--pki for -20)")] = False,
    v2g_root: Annotated[Path | None, typer.Option(
        "--v2g-root", help="V2G root certificate (PEM) to verify the SECC")] = None,
    loops: Annotated[int, typer.Option("--loops", help="Charge-loop messages before stopping (0: until full)")] = 10,
    loop_interval: Annotated[float, typer.Option(
        "--loop-interval", help="Seconds between charge-loop messages")] = 0.25,
    soc: Annotated[float, typer.Option("--soc", help="Initial state of charge, %")] = 30.0,
    target_soc: Annotated[float, typer.Option("--target-soc", help="Stop charging at this SoC, %")] = 80.0,
    capacity: Annotated[float, typer.Option("--capacity", help="Battery capacity, kWh")] = 60.0,
    speedup: Annotated[float, typer.Option("--speedup", help="Simulated seconds of charging per real second")] = 1.0,
    evcc_id: Annotated[str, typer.Option("--evcc-id", help="EVCCID (MAC address, hex)")] = "0A1B2C3D4E5F",
    precharge_tolerance: Annotated[float, typer.Option(
        "--precharge-tolerance", help="PreCharge done when the EVSE is this close to the target, V")] = 20.0,
    timeout_scale: Annotated[float, typer.Option(
        "--timeout-scale", help="Multiply the standard's EVCC timeouts (slow test chargers)")] = 1.0,
    pause: Annotated[bool, typer.Option(
        "--pause", help="End with SessionStop Pause instead of Terminate (-2)")] = False,
    resume: Annotated[str | None, typer.Option("--resume", help="SessionID of a paused session to resume")] = None,
    log_json: Annotated[Path | None, typer.Option(
        "--log-json", help="Append one JSON line per message ('-': stdout)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-message lines")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log state changes on standard error")] = False,
) -> None:
    """Run one charging session as the EV; exit 0 only if it ended with SessionStopRes OK."""
    _logging(verbose)
    if auth not in ("eim", "pnc"):
        raise typer.BadParameter("eim or pnc", param_hint="--auth")
    if iface and secc:
        raise typer.BadParameter("give --iface or --secc, not both")
    if slac and not iface:
        raise typer.BadParameter("--slac needs --iface")
    contract, oem = (None, None) if pki is not None else \
        _pnc_credentials(auth, contract_chain, contract_key, oem_cert, oem_key, key_password, v2g_root)
    ev20 = ev_from_pki(pki, key_password) if pki is not None else None
    if tls and "iso20" in protocol and ev20 is None:
        raise typer.BadParameter("ISO 15118-20 over TLS 1.3 needs the vehicle certificate: give --pki")
    try:
        config = EvccConfig(protocols=_protocols(protocol), energy=energy, control=control, loops=loops,
                            loop_interval=loop_interval,
                            evcc_id=evcc_id, stop="Pause" if pause else "Terminate", resume_session_id=resume,
                            precharge_tolerance=precharge_tolerance, timers=EvccTimers().scaled(timeout_scale),
                            payment="Contract" if auth == "pnc" else "ExternalPayment", contract=contract, oem=oem,
                            contract20=ev20.contract if ev20 is not None and not install else None,
                            oem20=ev20.oem if ev20 is not None else None)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    ev = EVModel(capacity_wh=capacity * 1000, soc=soc, target_soc=target_soc, speedup=speedup, min_soc=min_soc)
    context = (ev20.context if ev20 is not None else evcc_context(v2g_root)) if tls else None
    with _sinks(log_json, quiet) as sink:
        if slac and iface:
            _slac_match(iface)
        result = asyncio.run(run_evcc(config, ev, secc=_host_port(secc) if secc else None, tls=tls,
                                      tls_context=context, iface=iface, sdp_host=sdp_host, sdp_port=sdp_port,
                                      on_message=sink))
    verdict = "OK" if result.ok else "FAILED"
    service = f" {result.service} {result.control_mode.lower()}," if result.service and result.control_mode else ""
    exported = f", {result.exported_wh:g} Wh fed back" if result.exported_wh else ""
    typer.echo(f"session {verdict}: {result.reason} [protocol {result.protocol},{service} session {result.session_id}, "
               f"{result.charge_loops} charge loops, SoC {result.soc:g}%, {result.energy_wh:g} Wh{exported}]",
               err=not result.ok)
    raise typer.Exit(0 if result.ok else 1)


def _slac_match(iface: str) -> None:
    """SLAC on `iface` before the session; exit 1 when no charger matched."""
    try:
        result = asyncio.run(run_ev_slac(iface))
    except OSError as e:
        typer.echo(f"SLAC: {e}", err=True)
        raise typer.Exit(2) from None
    if not isinstance(result, Matched):
        typer.echo(result.describe(), err=True)
        raise typer.Exit(1)
    typer.echo(f"SLAC: {result.describe()}", err=True)


@app.command("secc")
def secc_command(
    iface: Annotated[str | None, typer.Option(
        "--iface", help="Network interface: listen on its link-local address")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on without --iface")] = "::1",
    port: Annotated[int, typer.Option("--port", help="TCP (or, with --tls, TLS) port; 0 picks a free one")] = 0,
    tls: Annotated[bool, typer.Option(
        "--tls", help="Serve TLS instead of plain TCP: 1.2 for -2, or with --pki 1.3 for -20 (vehicle certificate "
                      "required, Plug & Charge and certificate installation offered)")] = False,
    pki: Annotated[Path | None, typer.Option(
        "--pki", help="-20: a `pki create --profile iso20` folder (SECC certificate, OEM/V2G roots, contract CAs)")
    ] = None,
    key_password: Annotated[str | None, typer.Option(
        "--key-password", envvar="V2GSTACK_SECC_KEY_PASSWORD", help="Password of the --pki keys")] = None,
    cert: Annotated[Path | None, typer.Option(
        "--cert", help="SECC certificate chain (PEM: leaf, then sub-CAs)")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="SECC private key (PEM)")] = None,
    root_out: Annotated[Path | None, typer.Option(
        "--root-out", help="Without --cert: write the throwaway V2G root")] = None,
    protocols: Annotated[str, typer.Option(
        "--protocols", help="Supported protocols, e.g. iso20,iso2,din")] = "iso20,iso2,din",
    sdp_port: Annotated[int, typer.Option("--sdp-port", help="SDP UDP port")] = SDP_PORT,
    no_sdp: Annotated[bool, typer.Option("--no-sdp", help="Do not answer SDP")] = False,
    sessions: Annotated[int, typer.Option(
        "--sessions", help="Exit after this many sessions (0: run until Ctrl-C)")] = 0,
    auth_ongoing: Annotated[int, typer.Option(
        "--auth-ongoing", help="Simulated EVSE: Ongoing answers before Finished")] = 0,
    stop_after: Annotated[int | None, typer.Option(
        "--stop-after", help="Simulated EVSE: StopCharging after N loops")] = None,
    no_bpt: Annotated[bool, typer.Option("--no-bpt", help="Simulated EVSE: offer no AC_BPT/DC_BPT (-20)")] = False,
    control: Annotated[str, typer.Option(
        "--control", help="-20 control modes offered, in order: scheduled,dynamic (the parameter sets of each "
                          "service; an EV taking the first set gets the first mode)")] = "scheduled,dynamic",
    discharge_loops: Annotated[int, typer.Option(
        "--discharge-loops", help="Simulated EVSE, -20 dynamic BPT: ask for discharge in the first N loops")] = 0,
    discharge_seconds: Annotated[int, typer.Option(
        "--discharge-seconds", help="Simulated EVSE, -20 scheduled BPT: schedules start with N s of discharge")] = 0,
    timeout_scale: Annotated[float, typer.Option(
        "--timeout-scale", help="Multiply the standard's SECC timeouts (slow test EVs)")] = 1.0,
    tariff: Annotated[bool, typer.Option(
        "--tariff", help="Simulated EVSE: a two-level tariff with every schedule (-2 SalesTariff, -20 "
                         "PriceLevelSchedule; the reference EVCC rejects a -20 schedule without prices)")] = False,
    log_json: Annotated[Path | None, typer.Option(
        "--log-json", help="Append one JSON line per message ('-': stdout)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-message lines")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log sessions on standard error")] = False,
) -> None:
    """Run a standalone SECC with a simulated EVSE that authorizes EIM at once."""
    _logging(verbose)
    context: ssl.SSLContext | None = None
    secc20 = secc_from_pki(pki, key_password) if pki is not None else None
    if tls and secc20 is not None:
        context = secc20.context
    elif tls:
        if cert is not None:
            context = secc_context(cert, key)
        else:
            chain = make_secc_chain()
            context = chain.server_context()
            if root_out is not None:
                root_out.write_bytes(chain.root_pem)
            typer.echo("TLS with a throwaway test chain" + (f"; V2G root written to {root_out}" if root_out else ""),
                       err=True)
    try:
        modes = tuple(ControlMode.named(m.strip()) for m in control.split(",") if m.strip())
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--control") from None
    if not modes or len(set(modes)) != len(modes):
        raise typer.BadParameter("scheduled, dynamic or both, each once", param_hint="--control")
    sim = SimulatedEVSEConfig(auth_ongoing_rounds=auth_ongoing, stop_after_loops=stop_after, bpt=not no_bpt,
                              control_modes=modes,
                              discharge_loops=discharge_loops, discharge_seconds=discharge_seconds,
                              sales_tariff=tariff)
    if secc20 is not None:  # Plug & Charge (over TLS) with certificate installation from the folder's CAs
        sim.payment_options = ("ExternalPayment", "Contract")
        sim.contract_service20 = secc20.contracts
    config = SeccConfig(protocols=_protocols(protocols), timers=SeccTimers().scaled(timeout_scale))
    with _sinks(log_json, quiet) as sink, contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(_serve(config, sim, sink, iface=iface, host=host, port=port, tls=context, sdp=not no_sdp,
                               sdp_port=sdp_port, sessions=sessions))
        except (ValueError, OSError) as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None


class TlsFailurePrinter:
    """The standalone SECC's SeccObserver: one line on standard error per failed TLS handshake (without an observer
    the server's TLS listener drops them silently, and an EV that cannot connect leaves no trace at the SECC)."""

    def tls_failed(self, event: TlsFailed) -> None:
        """Print it."""
        typer.echo(f"SECC: TLS handshake from {event.peer} failed [{event.kind.value}]: {event.detail}", err=True)


async def _serve(config: SeccConfig, sim: SimulatedEVSEConfig, sink: MessageSink | None, *, iface: str | None,
                 host: str, port: int, tls: ssl.SSLContext | None, sdp: bool, sdp_port: int, sessions: int) -> None:
    """Run the SECC until `sessions` sessions have ended (or forever)."""
    done = asyncio.Event()
    count = 0

    def on_message(record: MessageRecord) -> None:
        """Forward to the sink; count finished sessions."""
        nonlocal count
        if sink is not None:
            sink(record)
        if record.direction == "tx" and record.name == "SessionStopRes":
            count += 1
            if sessions and count >= sessions:
                done.set()

    server = SeccServer(lambda: SimulatedEVSE(sim), config, host=host, port=port if tls is None else 0,
                        tcp=tls is None, tls=tls, tls_port=port, iface=iface, sdp=sdp, sdp_port=sdp_port,
                        on_message=on_message, observer=TlsFailurePrinter() if tls is not None else None)
    async with server:
        for kind, (h, p) in server.addresses().items():
            typer.echo(f"SECC {kind} listening on [{h}]:{p}", err=True)
        await done.wait()
        await asyncio.sleep(0.05)  # let the last SessionStopRes leave before closing
