"""TLS for ISO 15118-2: TLS 1.2 only, ECDHE-ECDSA with AES-128-CBC-SHA256 on P-256, SECC certificate chain.

ISO 15118-2 names TLS_ECDH_ECDSA_WITH_AES_128_CBC_SHA256 and TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256; OpenSSL 3
no longer offers static ECDH, so both ends use the ECDHE suite. The EVCC authenticates the SECC against a V2G root
(no hostname: the SECC is found by SDP); ISO 15118-2 uses no client certificate.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from ..trace.error_map import FailureKind

log = logging.getLogger("v2gstack.iso15118.tls")

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
    reason = error.reason if isinstance(error, ssl.SSLError) else None
    if reason in _VERSION_REASONS:
        return FailureKind.TLS_VERSION
    if reason in _CIPHER_REASONS:
        return FailureKind.TLS_CIPHER_SUITE
    return FailureKind.TLS_FAILURE
