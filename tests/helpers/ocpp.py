"""Shared helpers for the OCPP tests: a throw-away PKI made with `cryptography`, raw websocket peers, payloads,
malformed frames, TLS probes."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ipaddress
import json
import ssl
import tempfile
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import ClientConnection, connect

from v2gstack.ocpp import HandshakeRefused, OcppServer, Router, StationClient
from v2gstack.ocpp.auth import basic_auth_header

PASSWORD = "0123456789abcdef-pass"  # OCPP passwords are 16..40 characters
NOW = "2024-05-01T12:00:00Z"

BOOT = {"chargingStation": {"model": "M1", "vendorName": "V2G"}, "reason": "PowerUp"}
AUTHORIZE = {"idToken": {"idToken": "04A1B2C3", "type": "ISO14443"}}
TRANSACTION_EVENT = {
    "eventType": "Started",
    "timestamp": NOW,
    "triggerReason": "Authorized",
    "seqNo": 0,
    "transactionInfo": {"transactionId": "tx-1", "chargingState": "Charging"},
    "idToken": {"idToken": "04A1B2C3", "type": "ISO14443"},
    "evse": {"id": 1, "connectorId": 1},
    "meterValue": [{
        "timestamp": NOW,
        "sampledValue": [
            {"value": 1234.5, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
            {"value": 7200.0, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
            {"value": 54, "measurand": "SoC", "unitOfMeasure": {"unit": "Percent"}},
        ],
    }],
}


def csms_router() -> Router:
    """A minimal OCPP 2.0.1 CSMS: answers boot, heartbeat, authorize, transaction events, status."""
    r = Router()
    r.add("BootNotification", lambda p: {"currentTime": NOW, "interval": 300, "status": "Accepted"})
    r.add("Heartbeat", lambda p: {"currentTime": NOW})
    r.add("Authorize", lambda p: {"idTokenInfo": {"status": "Accepted"}})
    r.add("TransactionEvent", lambda p: {"idTokenInfo": {"status": "Accepted"}} if "idToken" in p else {})
    r.add("StatusNotification", lambda p: {})
    return r


@dataclass(frozen=True)
class Pki:
    """Paths of the test certificates and keys (PEM)."""

    root: Path  # trusted CA: signs the CSMS certificate and the stations' certificates
    server_cert: Path
    server_key: Path
    cs1_cert: Path  # CN=CS001, signed by root
    cs1_key: Path
    cs2_cert: Path  # CN=CS002, signed by root
    cs2_key: Path
    rogue_cert: Path  # CN=CS001, signed by an untrusted CA
    rogue_key: Path


def _name(cn: str) -> x509.Name:
    """A subject/issuer name."""
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "T")])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, issuer_key: ec.EllipticCurvePrivateKey,
          *, ca: bool = False, server: bool = False) -> x509.Certificate:
    """A certificate for `key` signed by `issuer_key`."""
    now = dt.datetime.now(dt.UTC)
    b = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    """Write certificate and key as PEM."""
    c, k = directory / f"{name}.pem", directory / f"{name}.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return c, k


@functools.cache
def make_pki() -> Pki:
    """Make (once per test run) a root CA, a CSMS certificate for 127.0.0.1 and station certificates."""
    d = Path(tempfile.mkdtemp(prefix="ocpp-pki-"))
    root_key, rogue_ca_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = _cert("Test Root", root_key, "Test Root", root_key, ca=True)
    root_path, _ = _write(d, "root", root, root_key)
    out: dict[str, Path] = {"root": root_path}
    for name, cn, issuer, issuer_key, server in [
        ("server", "localhost", "Test Root", root_key, True),
        ("cs1", "CS001", "Test Root", root_key, False),
        ("cs2", "CS002", "Test Root", root_key, False),
        ("rogue", "CS001", "Rogue Root", rogue_ca_key, False),
    ]:
        key = ec.generate_private_key(ec.SECP256R1())
        out[f"{name}_cert"], out[f"{name}_key"] = _write(d, name, _cert(cn, key, issuer, issuer_key, server=server),
                                                         key)
    return Pki(**out)


@asynccontextmanager
async def raw_peer(url: str, station_id: str, *, version: str = "2.0.1", password: str | None = PASSWORD,
                   **kwargs: Any) -> AsyncIterator[RawPeer]:
    """A bare websocket to our server that sends exactly the text a test gives it."""
    headers = {"Authorization": basic_auth_header(station_id, password)} if password is not None else {}
    async with connect(f"{url}/{station_id}", subprotocols=[f"ocpp{version}"], additional_headers=headers,
                       proxy=None, **kwargs) as ws:
        yield RawPeer(ws)


class RawPeer:
    """Send raw frames, read parsed ones."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, frame: str | list[Any]) -> None:
        """Send a raw text, or a list as JSON."""
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = 5.0) -> list[Any]:
        """The next frame, parsed."""
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def exchange(self, frame: str | list[Any]) -> list[Any]:
        """Send a frame and return the next one received."""
        await self.send(frame)
        return await self.recv()


# bad frames: (text sent, CALLERROR code expected, MessageId expected in the CALLERROR)
MALFORMED = [
    ("not json at all", "FormatViolation", "-1"),
    ('{"a": 1}', "FormatViolation", "-1"),
    ('[2, "m1"]', "ProtocolError", "m1"),
    ('[2, "m2", "Heartbeat"]', "ProtocolError", "m2"),
    ('["two", "m3", "Heartbeat", {}]', "FormatViolation", "m3"),
    ('[9, "m4", "Heartbeat", {}]', "MessageTypeNotSupported", "m4"),
    ('[2, 5, "Heartbeat", {}]', "RpcFrameworkError", "-1"),
    ('[2, "m5", "Heartbeat", "payload"]', "FormatViolation", "m5"),
    ('[2, "m6", "FlyToTheMoon", {}]', "NotImplemented", "m6"),
    ('[2, "m7", "Reset", {"type": "Immediate"}]', "NotSupported", "m7"),
    ('[2, "m8", "Authorize", {}]', "OccurrenceConstraintViolation", "m8"),
    ('[2, "m9", "Authorize", {"idToken": {"idToken": 1, "type": "ISO14443"}}]', "TypeConstraintViolation", "m9"),
    ('[2, "m10", "Authorize", {"idToken": {"idToken": "A", "type": "Nope"}}]', "PropertyConstraintViolation", "m10"),
    ('[2, "m11", "Authorize", {"idToken": {"idToken": "A", "type": "Local"}, "x": 1}]', "ProtocolError", "m11"),
    ('[2, "m12", "BootNotification", {"chargingStation": {"model": "' + "M" * 21 + '", "vendorName": "V"}, '
     '"reason": "PowerUp"}]', "PropertyConstraintViolation", "m12"),
    (json.dumps([2, "m13", "Heartbeat", {"pad": "x" * 5000}]), "FormatViolation", "m13"),  # oversize (> 4096)
]


def tls_probe_context(pki: Pki, maximum: ssl.TLSVersion, ciphers: str) -> ssl.SSLContext:
    """A deliberately weak client context, to see what the server accepts."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki.root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = maximum
    ctx.set_ciphers(ciphers)
    return ctx


async def tls_handshake(srv: OcppServer, ctx: ssl.SSLContext) -> tuple[str, str] | None:
    """(protocol, cipher) if a TLS handshake with the server succeeds, None if the server refuses it."""
    try:
        _, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", srv.port, ssl=ctx,
                                                              server_hostname="localhost"), 10)
    except (OSError, ssl.SSLError):
        return None
    obj = w.get_extra_info("ssl_object")
    result = (obj.version(), obj.cipher()[0])
    w.close()
    return result


async def refused_with(client: StationClient) -> int:
    """The HTTP status the server refused the handshake with."""
    with pytest.raises(HandshakeRefused) as info:
        await client.connect()
    return info.value.status
