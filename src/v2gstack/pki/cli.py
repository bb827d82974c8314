"""`v2gstack pki`: create, inspect and verify the ISO 15118 / OCPP certificate hierarchies."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from cryptography.exceptions import InvalidSignature
from rich.console import Console
from rich.table import Table

from ..times import parse_rfc3339
from . import errors
from .algorithms import ISO20_ALGORITHMS, KeyAlgorithm
from .describe import describe
from .firmware import create_firmware_pki, sign_firmware_file, write_firmware_pki
from .hierarchy import Edition, PkiConfig, create_pki
from .ocsp import REASONS, OcspResponder, RevocationList, serve
from .ocsp_data import chain_hash_data
from .store import load_cert_dir_or_file, load_certs, write_pki
from .verify import Purpose, verify_chain

app = typer.Typer(no_args_is_help=True, add_completion=False, help="ISO 15118 / OCPP PKI: create, inspect, verify.")
DEFAULTS = PkiConfig()


@app.command("create")
def create(
    out: Annotated[Path, typer.Option("--out", help="Output folder")],
    emaid: Annotated[str, typer.Option("--emaid", help="eMAID: CN of the contract certificate")] = DEFAULTS.emaid,
    pcid: Annotated[str, typer.Option("--pcid", help="PCID: CN of the OEM provisioning certificate")] = DEFAULTS.pcid,
    evse_id: Annotated[str, typer.Option("--evse-id", help="CN of the SECC certificate")] = DEFAULTS.evse_id,
    station_id: Annotated[str, typer.Option("--station-id", help="CN of the station cert")] = DEFAULTS.station_id,
    csms_host: Annotated[str, typer.Option("--csms-host", help="CN and DNS name of the CSMS certificate")] = (
        DEFAULTS.csms_host
    ),
    ocsp_url: Annotated[str, typer.Option("--ocsp-url", help="OCSP responder URL put in AIA")] = DEFAULTS.ocsp_url,
    organization: Annotated[str, typer.Option("--org", help="O attribute of every subject")] = DEFAULTS.organization,
    country: Annotated[str, typer.Option("--country", help="C attribute of every subject")] = DEFAULTS.country,
    valid_days: Annotated[int | None, typer.Option("--valid-days", help="Validity of every leaf in days")] = None,
    ocpp_under_v2g: Annotated[bool, typer.Option("--ocpp-under-v2g", help="OCPP certs under CPO Sub-CA 2")] = False,
    password: Annotated[
        str | None,
        typer.Option("--password", envvar="V2GSTACK_PKI_PASSWORD", help="Encrypt keys and PKCS#12 with this password"),
    ] = None,
    profile: Annotated[Edition, typer.Option("--profile", help="iso2: ISO 15118-2 Annex F (P-256); iso20: "
                                             "ISO 15118-20 Annex B")] = Edition.ISO2,
    algorithm: Annotated[str, typer.Option("--algorithm", help="-20 key set: secp521r1 (ECDSA-SHA-512) or ed448")] = (
        KeyAlgorithm.SECP521.value
    ),
    seccid: Annotated[str, typer.Option("--seccid", help="-20: CN of the SECC certificate (SECCID)")] = DEFAULTS.seccid,
    evccid: Annotated[str, typer.Option("--evccid", help="-20: CN of the vehicle certificate")] = DEFAULTS.evccid,
) -> None:
    """Create all hierarchies (V2G/CPO/CPS, MO, OEM, -20 also vehicle; OCPP) and write them under --out."""
    try:
        key_set = KeyAlgorithm(algorithm)
    except ValueError:
        key_set = None
    if key_set not in ISO20_ALGORITHMS:
        typer.echo("error: --algorithm is secp521r1 or ed448", err=True)
        raise typer.Exit(2)
    cfg = PkiConfig(
        organization=organization,
        country=country,
        emaid=emaid,
        pcid=pcid,
        evse_id=evse_id,
        station_id=station_id,
        csms_host=csms_host,
        ocsp_url=ocsp_url,
        leaf_validity_days=valid_days,
        ocpp_under_v2g=ocpp_under_v2g,
        edition=profile,
        algorithm=key_set,
        seccid=seccid,
        evccid=evccid,
        csms_rsa=True,  # the CSMS serves the ECDHE-ECDSA and the TLS_RSA suites (A00.FR.318): two certificates
    )
    pki = create_pki(cfg)
    manifest = write_pki(pki, out, password.encode() if password else None)
    keys = f"ISO 15118-20, {key_set.value}" if profile is Edition.ISO20 else "ISO 15118-2, P-256"
    table = Table(title=f"PKI ({keys}) written to {out}")
    table.add_column("certificate")
    table.add_column("subject")
    table.add_column("not after")
    for kind, item in pki.items.items():
        table.add_row(kind.value, item.cert.subject.rfc4514_string(), item.cert.not_valid_after_utc.date().isoformat())
    if pki.csms_rsa is not None:
        rsa_cert = pki.csms_rsa.cert
        table.add_row("csms_rsa (RSA)", rsa_cert.subject.rfc4514_string(),
                      rsa_cert.not_valid_after_utc.date().isoformat())
    Console().print(table)
    typer.echo(f"{len(manifest)} files; see {out / 'manifest.json'} and docs/pki.md for the layout")


@app.command("inspect")
def inspect(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="PEM (one or more) or DER file")],
) -> None:
    """Print each certificate of a file readably."""
    console = Console()
    for i, cert in enumerate(load_certs(file)):
        table = Table(title=f"{file.name} [{i}]", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        for name, value in describe(cert):
            table.add_row(name, value)
        console.print(table)


def _parse_time(value: str | None) -> dt.datetime | None:
    """ISO 8601 time; naive values are UTC."""
    return None if value is None else parse_rfc3339(value)


@app.command("verify")
def verify(
    leaf: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Leaf (PEM/DER; further PEMs = sub-CAs)")],
    roots: Annotated[list[Path], typer.Option("--roots", exists=True, help="Trust anchors (file or folder; repeat)")],
    chain: Annotated[list[Path] | None, typer.Option("--chain", exists=True, help="Sub-CA certs (repeat)")] = None,
    at: Annotated[str | None, typer.Option("--at", help="Check validity at this ISO 8601 time (default: now)")] = None,
    purpose: Annotated[Purpose | None, typer.Option("--purpose", help="Required leaf usage")] = None,
    hash_data: Annotated[bool, typer.Option("--hash-data", help="Print OCPP iso15118CertificateHashData")] = False,
    iso20: Annotated[bool, typer.Option("--iso20", help="Accept only ISO 15118-20 algorithms (secp521r1 with "
                                        "ECDSA-SHA-512, Ed448)")] = False,
) -> None:
    """Verify a leaf against sub-CAs and trust anchors; print OK or the failure and exit non-zero on failure."""
    try:
        when = _parse_time(at)
    except ValueError as exc:
        typer.echo(f"error: --at: {exc}", err=True)
        raise typer.Exit(2) from None
    certs = load_certs(leaf)
    intermediates = certs[1:] + [c for p in chain or [] for c in load_certs(p)]
    anchors = [c for p in roots for c in load_cert_dir_or_file(p)]
    try:
        result = verify_chain(certs[0] if certs else None, intermediates, anchors, at=when, purpose=purpose,
                              algorithms=ISO20_ALGORITHMS if iso20 else None)
    except errors.PkiError as exc:
        iso = f"ISO-20 {exc.iso20_code}" if iso20 else f"ISO {exc.iso_code}"
        typer.echo(f"FAILED: {type(exc).__name__}: {exc} ({iso}, OCPP {exc.ocpp_status})")
        raise typer.Exit(1) from None
    names = " -> ".join(c.subject.rfc4514_string() for c in result.path)
    typer.echo(f"OK: {names} ({'ISO-20' if iso20 else 'ISO'} {errors.ISO_OK}, OCPP {errors.OCPP_OK})")
    if hash_data:
        typer.echo(json.dumps(chain_hash_data(result.path), indent=2))


@app.command("ocsp")
def ocsp_server(
    folder: Annotated[Path, typer.Option("--dir", help="A folder written by `v2gstack pki create`")],
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0: a free one)")] = 8080,
) -> None:
    """Run an RFC 6960 OCSP responder (HTTP POST and GET) for every CA of the folder, until Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    responder = OcspResponder.from_pki_dir(folder)
    if not responder.cas:
        typer.echo(f"error: no CA certificate with its key under {folder}", err=True)
        raise typer.Exit(2)

    async def run() -> None:
        server = await serve(responder, host, port)
        bound = server.sockets[0].getsockname()[1]
        typer.echo(f"OCSP responder for {len(responder.cas)} CAs at http://{host}:{bound}/ocsp "
                   f"(revocations: {responder.revocations.path})")
        async with server:
            await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@app.command("revoke")
def revoke(
    cert_file: Annotated[Path, typer.Argument(help="The certificate to revoke (PEM or DER)")],
    folder: Annotated[Path, typer.Option("--dir", help="The PKI folder whose CA issued it")],
    reason: Annotated[str, typer.Option("--reason", help="RFC 5280 reason, e.g. key_compromise")] = "unspecified",
) -> None:
    """Revoke a certificate issued by one of the folder's CAs (the OCSP responder answers `revoked` at once)."""
    cert = load_certs(cert_file)[0]
    responder = OcspResponder.from_pki_dir(folder)
    issuer = None
    for ca in responder.cas:  # the CA whose key signed it (names alone can repeat across PKIs)
        try:
            cert.verify_directly_issued_by(ca.cert)
        except (ValueError, TypeError, InvalidSignature):
            continue
        issuer = ca.cert
        break
    if issuer is None:
        typer.echo(f"error: no CA under {folder} issued {cert.subject.rfc4514_string()}", err=True)
        raise typer.Exit(2)
    if reason not in REASONS:
        typer.echo(f"error: --reason is one of {', '.join(REASONS)}", err=True)
        raise typer.Exit(2)
    responder.revocations.revoke(cert, issuer, reason)
    typer.echo(f"revoked {cert.subject.rfc4514_string()} (serial {cert.serial_number:x}): {reason}")


@app.command("revoked")
def revoked(folder: Annotated[Path, typer.Option("--dir", help="The PKI folder")]) -> None:
    """List the folder's revoked certificates."""
    for key, entry in RevocationList(folder / "revoked.json").entries().items():
        typer.echo(f"{key.split(':')[1]}\t{entry['time']}\t{entry['reason']}\t{entry['subject']}")


@app.command("firmware")
def firmware_pki(
    out: Annotated[Path, typer.Option("--out", help="Output folder")],
    organization: Annotated[str, typer.Option("--org", help="O attribute of both subjects")] = (
        "v2gstack Manufacturer"),
    valid_days: Annotated[int | None, typer.Option("--valid-days", help="Validity of the signing cert")] = None,
) -> None:
    """Create a manufacturer root (the station's ManufacturerRootCertificate) and a firmware signing certificate."""
    root, signer = create_firmware_pki(organization, valid_days=valid_days)
    for path in write_firmware_pki(out, root, signer):
        typer.echo(str(path.relative_to(out)))


@app.command("sign-firmware")
def sign_firmware(
    firmware: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The firmware file")],
    folder: Annotated[Path, typer.Option("--dir", help="The folder `pki firmware` made")],
) -> None:
    """Print the base64 signature of a firmware file (ECDSA over SHA-256), UpdateFirmware's `signature`."""
    try:
        typer.echo(sign_firmware_file(folder, firmware))
    except (OSError, ValueError) as e:
        typer.echo(f"error: cannot sign: {e}", err=True)
        raise typer.Exit(2) from None
