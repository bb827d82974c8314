"""The `v2gstack slac` commands: `evse` (SLAC on a charger's modem link, then the SECC), `ev` (SLAC as a car, then
an ISO 15118 session), `medium` (the simulated Green PHY medium between veth interfaces for tests and demos)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from typing import Annotated

import typer

from ..hardware import PilotHook, SimulatedHardware
from ..iso15118.evcc import EvccConfig
from ..iso15118.evcc_client import run_evcc
from ..iso15118.evse_sim import SimulatedEVSE, SimulatedEVSEConfig
from ..iso15118.msglog import MessageRecord
from ..iso15118.secc import SeccConfig
from ..iso15118.secc_server import SeccServer
from .ev import EvSlac
from .frames import mac_text
from .io import EvseSlacService, run_ev_slac, run_medium
from .medium import Medium
from .netdev import disable_offloads, mac_address
from .outputs import Failed, Matched, Output, PilotRequest
from .timers import EvseSlacSettings, EvSlacSettings, SlacTimers

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="SLAC (ISO 15118-3) over HomePlug Green PHY: match a car and a charger before ISO 15118.")


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command("evse")
def evse_command(
    iface: Annotated[str, typer.Option("--iface", help="The modem's host interface (e.g. eth1 of a QCA7000)")],
    secc: Annotated[bool, typer.Option("--secc/--no-secc", help="After the match, run the SECC (SDP, TCP) on the "
                                                                "interface")] = True,
    sessions: Annotated[int, typer.Option("--sessions", help="Exit after this many ISO sessions (0: never)")] = 1,
    evse_id: Annotated[str, typer.Option("--evse-id", help="EVSE ID sent in CM_ATTEN_CHAR.IND / MATCH.CNF")
                       ] = "DE*V2G*E0001",
    slac_init_timeout_ms: Annotated[int, typer.Option(
        "--slac-init-timeout-ms", help="TT_EVSE_SLAC_init (ISO 15118-3: 20000-50000)")] = 50_000,
    set_key_timeout_ms: Annotated[int, typer.Option("--set-key-timeout-ms", help="CM_SET_KEY.CNF wait")] = 1000,
    ac_mode_five_percent: Annotated[bool, typer.Option(
        "--ac-mode-five-percent", help="AC with 5 %% PWM: E/F for T_step_EF and retry on TT_EVSE_SLAC_init")] = False,
    sounding_attenuation_adjustment: Annotated[int, typer.Option(
        "--sounding-attenuation-adjustment", help="dB added to each group of the reported profile")] = 0,
    number_of_sounds: Annotated[int, typer.Option("--number-of-sounds", help="Sounds asked of the EV")] = 10,
    timeout_scale: Annotated[float, typer.Option("--timeout-scale", help="Multiply the SLAC timers")] = 1.0,
    sim_link: Annotated[bool, typer.Option(
        "--sim-link", help="A veth to the simulated medium: turn transmit checksum offload off")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Wait for a car (the simulated pilot goes to B at start), match it, then run the SECC on the interface."""
    _logging(verbose)
    settings = EvseSlacSettings(evse_id=evse_id, slac_init_timeout_ms=slac_init_timeout_ms,
                                set_key_timeout_ms=set_key_timeout_ms, ac_mode_five_percent=ac_mode_five_percent,
                                sounding_attenuation_adjustment=sounding_attenuation_adjustment,
                                number_of_sounds=number_of_sounds)
    if sim_link:
        disable_offloads(iface)
    try:
        rc = asyncio.run(_evse(iface, settings, SlacTimers().scaled(timeout_scale), secc, sessions))
    except OSError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(rc)


async def _evse(iface: str, settings: EvseSlacSettings, timers: SlacTimers, secc: bool, sessions: int) -> int:
    hardware = PilotHook(SimulatedHardware())

    def on_output(out: Output) -> None:
        if isinstance(out, Failed):
            typer.echo(out.describe(), err=True)
        elif isinstance(out, PilotRequest):
            hardware.control_pilot(out.state)

    async with EvseSlacService(iface, settings, timers, on_output) as slac:
        hardware.add_listener(slac)
        typer.echo(f"SLAC EVSE on {iface} ({mac_text(slac.machine.mac)}): waiting for a car", err=True)
        hardware.control_pilot("B")  # the simulated plug-in; real hardware reports it through the same hook
        match = asyncio.ensure_future(slac.matched())
        while not match.done():
            await asyncio.wait([match], timeout=0.5)
            if slac.failures and slac.failures[-1].final:
                match.cancel()
                typer.echo(f"SLAC: no match (drops: {slac.machine.drops.summary()})", err=True)
                return 1
        matched = match.result()
        typer.echo(f"SLAC: {matched.describe()}")
        typer.echo(f"SLAC drops: {slac.machine.drops.summary()}", err=True)
        if not secc:
            return 0
        return await _serve_secc(iface, sessions)


async def _serve_secc(iface: str, sessions: int) -> int:
    """The SECC on the matched link: SDP on the interface, plain TCP, a simulated EVSE."""
    done = asyncio.Event()
    count = 0

    def on_message(record: MessageRecord) -> None:
        nonlocal count
        typer.echo(record.summary())
        if record.direction == "tx" and record.name == "SessionStopRes":
            count += 1
            if sessions and count >= sessions:
                done.set()

    server = SeccServer(lambda: SimulatedEVSE(SimulatedEVSEConfig()), SeccConfig(), host="::", iface=iface,
                        on_message=on_message)
    async with server:
        for kind, (h, p) in server.addresses().items():
            typer.echo(f"SECC {kind} listening on [{h}]:{p}", err=True)
        await done.wait()
        await asyncio.sleep(0.05)
    return 0


@app.command("ev")
def ev_command(
    iface: Annotated[str, typer.Option("--iface", help="The car modem's host interface")],
    session: Annotated[bool, typer.Option("--session/--no-session", help="After the match, run an ISO 15118 "
                                                                         "session (SDP on the interface)")] = True,
    protocol: Annotated[str, typer.Option("--protocol", help="iso2, din or iso20")] = "iso2",
    energy: Annotated[str, typer.Option("--energy", help="ac or dc")] = "ac",
    loops: Annotated[int, typer.Option("--loops", help="Charge-loop messages")] = 3,
    timeout_scale: Annotated[float, typer.Option("--timeout-scale", help="Multiply the SLAC timers")] = 1.0,
    sim_link: Annotated[bool, typer.Option(
        "--sim-link", help="A veth to the simulated medium: turn transmit checksum offload off")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Match this car with the closest charger (SLAC), then run one ISO 15118 session over the link."""
    _logging(verbose)
    if sim_link:
        disable_offloads(iface)
    try:
        rc = asyncio.run(_ev(iface, session, protocol, energy, loops, SlacTimers().scaled(timeout_scale)))
    except OSError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(rc)


async def _ev(iface: str, session: bool, protocol: str, energy: str, loops: int, timers: SlacTimers) -> int:
    def on_output(out: Output) -> None:
        if isinstance(out, Failed):
            typer.echo(out.describe(), err=True)

    machine = EvSlac(mac_address(iface), EvSlacSettings(), timers)
    result = await run_ev_slac(iface, on_output=on_output, machine=machine)
    typer.echo(f"SLAC drops: {machine.drops.summary()}", err=True)
    if not isinstance(result, Matched):
        return 1
    typer.echo(f"SLAC: {result.describe()}")
    if not session:
        return 0
    config = EvccConfig(protocols=(protocol,), energy=energy, loops=loops, loop_interval=0.05,
                        evcc_id=mac_text(result.ev_mac).replace(":", "").upper())
    outcome = await run_evcc(config, iface=iface, on_message=lambda r: typer.echo(r.summary()))
    typer.echo(f"session {'OK' if outcome.ok else 'FAILED'}: {outcome.reason} [protocol {outcome.protocol}, "
               f"{outcome.charge_loops} charge loops]", err=not outcome.ok)
    return 0 if outcome.ok else 1


def _port(text: str) -> tuple[str, int]:
    name, _, db = text.partition("=")
    if not name or (db and not db.isdigit()):
        raise typer.BadParameter(f"expected IFACE or IFACE=DB, got {text!r}")
    return name, int(db) if db else 30


@app.command("medium")
def medium_command(
    ev: Annotated[list[str], typer.Option("--ev", help="A car's port: the interface toward its host")],
    evse: Annotated[list[str], typer.Option(
        "--evse", help="A charger's port: IFACE=DB, the attenuation from every car's port (dB)")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the simulated Green PHY medium between interfaces until interrupted."""
    _logging(verbose)
    medium = Medium()
    ifaces: dict[str, str] = {}
    for name in ev:
        medium.add_port(name, "ev")
        ifaces[name] = name
    for text in evse:
        name, db = _port(text)
        medium.add_port(name, "evse", {car: db for car in ev})
        ifaces[name] = name
    typer.echo(f"medium: cars {', '.join(ev)}; chargers {', '.join(evse)}", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        try:
            asyncio.run(run_medium(medium, ifaces))
        except OSError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
