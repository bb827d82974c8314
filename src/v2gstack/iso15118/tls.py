"""TLS for ISO 15118-2 (TLS 1.2, ECDHE-ECDSA-AES128-SHA256 on P-256, SECC authenticated) and ISO 15118-20
(TLS 1.3, Table 6 suites, secp521r1 or X448, mutual authentication with the vehicle certificate).

ISO 15118-2 names TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256 and TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256; OpenSSL 3
no longer offers static ECDH, so both ends use the ECDHE suite. The EVCC authenticates the SECC against a V2G root
(no hostname: the SECC is found by SDP); ISO 15118-2 uses no client certificate. ISO 15118-20 makes the SECC always
request the EV's certificate [V2G20-2400]; what Python's ssl cannot configure for -20 is listed in docs/iso15118.md.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from ..pki.algorithms import KeyAlgorithm
from ..trace.error_map import FailureKind

log = logging.getLogger(__name__)

V2G_TLS12_CIPHERS = "ECDHE-ECDSA-AES128-SHA256"
V2G_CURVE = "prime256v1"

StrPath = str | Path

_VERSION_REASONS = frozenset({"UNSUPPORTED_PROTOCOL", "VERSION_TOO_LOW", "VERSION_TOO_HIGH",
                              "TLSV1_ALERT_PROTOCOL_VERSION"})
_CIPHER_REASONS = frozenset({"NO_SHARED_CIPHER", "NO_CIPHERS_AVAILABLE", "NO_CIPHERS_SPECIFIED", "NO_CIPHERS_PASSED"})


def _base(ctx: ssl.SSLContext) -> ssl.SSLContext:
    """Pin TLS 1.2, the V2G cipher suite and P-256; no compression, no renegotiation."""
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(V2G_TLS12_CIPHERS)
    ctx.set_ecdh_curve(V2G_CURVE)
    ctx.options |= ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    return ctx


def secc_context(certfile: StrPath, keyfile: StrPath | None = None, password: str | None = None) -> ssl.SSLContext:
    """The SECC's server context; `certfile` holds the SECC leaf followed by its sub-CA certificates."""
    ctx = _base(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile is not None else None, password)
    return ctx


def evcc_context(v2g_root: StrPath | None = None, *, cadata: str | None = None) -> ssl.SSLContext:
    """The EVCC's client context: verify the SECC chain against a V2G root (file or PEM text), or nothing."""
    ctx = _base(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))
    ctx.check_hostname = False
    if v2g_root is None and cadata is None:
        log.warning("TLS: no V2G root certificate given, the SECC certificate will not be verified")
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=str(v2g_root) if v2g_root is not None else None, cadata=cadata)
    return ctx


def describe(ssl_object: ssl.SSLObject | None) -> str:
    """A short text for logs: protocol version and cipher suite of an established connection."""
    if ssl_object is None:
        return "TCP"
    cipher = ssl_object.cipher()
    return f"{ssl_object.version()} {cipher[0] if cipher else '?'}"


def failure_kind(error: BaseException) -> FailureKind:
    """The error-map kind of a failed handshake, from OpenSSL's reason code (`ssl.SSLError.reason`, e.g.
    UNSUPPORTED_PROTOCOL or NO_SHARED_CIPHER), never from message text: TlsVersion, TlsCipherSuite or TlsFailure."""
    if isinstance(error, TlsPolicyError):  # an ISO 15118-20 session refused after its handshake
        return error.kind
    reason = error.reason if isinstance(error, ssl.SSLError) else None
    if reason in _VERSION_REASONS:
        return FailureKind.TLS_VERSION
    if reason in _CIPHER_REASONS:
        return FailureKind.TLS_CIPHER_SUITE
    return FailureKind.TLS_FAILURE


# ----- ISO 15118-20: TLS 1.3 with mutual authentication -----

TLS13_CIPHER_SUITES = ("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")  # Table 6, in order [V2G20-2458]
TLS13_GROUPS = {KeyAlgorithm.SECP521: "secp521r1", KeyAlgorithm.ED448: "X448"}  # Table 7 [V2G20-1634/2460]
TLS13_SIGNATURE_ALGORITHMS = ("ecdsa_secp521r1_sha512", "ed448")  # Table 8 [V2G20-1666/1667]
# What Python's ssl cannot set per context, for a process started with OPENSSL_CONF pointing at this text: the
# TLS 1.3 suites (TLS_AES_128_GCM_SHA256 is otherwise offered too), both groups at once, and Table 8.
OPENSSL_CONF_ISO20 = f"""openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = iso15118_20
[iso15118_20]
Ciphersuites = {':'.join(TLS13_CIPHER_SUITES)}
Groups = {':'.join(TLS13_GROUPS.values())}
SignatureAlgorithms = {':'.join(TLS13_SIGNATURE_ALGORITHMS)}
"""


class ClientAuth(StrEnum):
    """Whether the SECC asks for and needs the EV's (vehicle) certificate."""

    REQUIRED = "required"  # [V2G20-2400]: the SECC always sends CertificateRequest; no certificate, no session
    OPTIONAL = "optional"  # CertificateRequest sent, a certificate is checked if given (peers without one)
    NONE = "none"  # no CertificateRequest (not ISO 15118-20 conformant)


class TlsPolicyError(Exception):
    """An established session that ISO 15118-20 does not allow (not TLS 1.3, or a suite outside Table 6)."""

    def __init__(self, kind: FailureKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # FailureKind.TLS_VERSION or TLS_CIPHER_SUITE, the error-map row


def group_for(algorithm: KeyAlgorithm) -> str:
    """The Table 7 named group of a -20 key set (secp521r1 or X448)."""
    return TLS13_GROUPS[algorithm]


def _base20(ctx: ssl.SSLContext, group: str | None) -> ssl.SSLContext:
    """TLS 1.3 only [V2G20-1264, V2G20-2356]; the server's Table 6 order wins; one Table 7 group (Python's ssl sets
    exactly one, see OPENSSL_CONF_ISO20 for both); no compression."""
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    if group is not None:
        ctx.set_ecdh_curve(group)
    return ctx


def _load_trust(ctx: ssl.SSLContext, roots: Sequence[StrPath], cadata: str | None) -> None:
    """Trust anchors from files and/or PEM text."""
    for root in roots:
        ctx.load_verify_locations(cafile=str(root))
    if cadata:
        ctx.load_verify_locations(cadata=cadata)


def secc_context20(certfile: StrPath, keyfile: StrPath | None = None, password: str | None = None, *,
                   trust: Sequence[StrPath] = (), cadata: str | None = None,
                   client_auth: ClientAuth = ClientAuth.REQUIRED, group: str | None = "secp521r1") -> ssl.SSLContext:
    """The SECC's -20 server context. `certfile`: SECC leaf and sub-CAs (secp521r1 or Ed448); `trust`/`cadata`: the
    OEM and V2G roots the vehicle certificate is checked against; `group`: the Table 7 group (None: OpenSSL's list)."""
    ctx = _base20(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), group)
    ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile is not None else None, password)
    if client_auth is ClientAuth.NONE:
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    if not trust and not cadata:
        raise ValueError("the SECC needs OEM or V2G roots to check vehicle certificates [V2G20-2338]")
    _load_trust(ctx, trust, cadata)
    ctx.verify_mode = ssl.CERT_REQUIRED if client_auth is ClientAuth.REQUIRED else ssl.CERT_OPTIONAL
    return ctx


def evcc_context20(v2g_roots: Sequence[StrPath] = (), *, cadata: str | None = None, certfile: StrPath | None = None,
                   keyfile: StrPath | None = None, password: str | None = None,
                   group: str | None = "secp521r1") -> ssl.SSLContext:
    """The EVCC's -20 client context: the SECC chain must end at a V2G root (no hostname: SDP finds the SECC); the
    vehicle certificate chain `certfile` (leaf first) answers the SECC's CertificateRequest."""
    if not v2g_roots and not cadata:
        raise ValueError("ISO 15118-20 always authenticates the SECC: give the V2G root(s)")
    ctx = _base20(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), group)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    _load_trust(ctx, v2g_roots, cadata)
    if certfile is not None:
        ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile is not None else None, password)
    return ctx


def check_session20(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> None:
    """Raise TlsPolicyError unless the session is TLS 1.3 with a Table 6 suite (Python's ssl cannot take
    TLS_AES_128_GCM_SHA256 off the list, so a peer that offers only that one gets a session this refuses)."""
    if ssl_object is None:
        raise TlsPolicyError(FailureKind.TLS_VERSION, "ISO 15118-20 requires TLS [V2G20-1235], this is plain TCP")
    version = ssl_object.version()
    if version != "TLSv1.3":
        raise TlsPolicyError(FailureKind.TLS_VERSION, f"ISO 15118-20 requires TLS 1.3, the session is {version}")
    cipher = ssl_object.cipher()
    if cipher is None or cipher[0] not in TLS13_CIPHER_SUITES:
        suite = cipher[0] if cipher else "?"
        raise TlsPolicyError(FailureKind.TLS_CIPHER_SUITE, f"cipher suite {suite} is not in Table 6")
