"""TLS contexts for security profiles 2 and 3: TLS 1.2 or newer, the cipher suites the OCPP security rules name."""

from __future__ import annotations

import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# TLS 1.2 suites of the OCPP 2.0.1 security chapter and the OCPP 1.6 security whitepaper: ECDHE-ECDSA with
# AES-GCM for ECDSA certificates, RSA key exchange with AES-GCM for RSA ones. TLS 1.3 suites are OpenSSL's.
OCPP_TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
])

StrPath = str | Path


def _harden(ctx: ssl.SSLContext, ciphers: str) -> ssl.SSLContext:
    """TLS 1.2 minimum, the OCPP cipher list, no compression or renegotiation."""
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers)
    ctx.options |= ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    return ctx


def server_context(certfile: StrPath, keyfile: StrPath | None = None, *, client_ca: StrPath | None = None,
                   ciphers: str = OCPP_TLS12_CIPHERS, rsa_certfile: StrPath | None = None,
                   rsa_keyfile: StrPath | None = None) -> ssl.SSLContext:
    """A CSMS context: its certificate chain; with `client_ca`, client certificates are required (profile 3).

    With `rsa_certfile` the context holds a second chain with an RSA key beside the ECDSA one: OpenSSL keeps one
    certificate per key type and picks by what the client offers (ECDHE-ECDSA suites: the ECDSA chain; TLS_RSA
    suites: the RSA chain), so every suite of the OCPP list works (A00.FR.318). ValueError when the two chains do not
    hold an ECDSA and an RSA key."""
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), ciphers)
    ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile is not None else None)
    if rsa_certfile is not None:
        first, second = _key_type(certfile), _key_type(rsa_certfile)
        if (first, second) != ("EC", "RSA"):
            raise ValueError(f"the server certificates must be one ECDSA and one RSA certificate (got {first} and "
                             f"{second})")
        ctx.load_cert_chain(str(rsa_certfile), str(rsa_keyfile) if rsa_keyfile is not None else None)
    if client_ca is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=str(client_ca))
    return ctx


def _key_type(certfile: StrPath) -> str:
    """The key type of the first certificate of a PEM file: EC, RSA or another name."""
    key = x509.load_pem_x509_certificate(Path(certfile).read_bytes()).public_key()
    return "EC" if isinstance(key, ec.EllipticCurvePublicKey) else "RSA" if isinstance(key, rsa.RSAPublicKey) \
        else type(key).__name__


def client_context(cafile: StrPath, *, certfile: StrPath | None = None, keyfile: StrPath | None = None,
                   ciphers: str = OCPP_TLS12_CIPHERS, check_hostname: bool = True) -> ssl.SSLContext:
    """A station context trusting the CSMS root `cafile`; with `certfile`, it presents a client certificate."""
    ctx = _harden(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), ciphers)
    ctx.check_hostname = check_hostname
    ctx.load_verify_locations(cafile=str(cafile))
    if certfile is not None:
        ctx.load_cert_chain(str(certfile), str(keyfile) if keyfile is not None else None)
    return ctx


def peer_common_name(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> tuple[str | None, bytes | None]:
    """(subject CN, DER) of the verified peer certificate, or (None, None) without one."""
    if ssl_object is None:
        return None, None
    der = ssl_object.getpeercert(binary_form=True)
    info = ssl_object.getpeercert()
    cn = None
    for rdn in (info or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
    return cn, der
