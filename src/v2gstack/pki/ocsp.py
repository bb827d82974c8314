"""OCSP (RFC 6960) for the CAs this PKI makes: the responder (sans-I/O `OcspResponder` and a small asyncio HTTP
shell), the revocation list it answers from, and the client side (requests, response checks, an HTTP fetch).

The responder signs with the issuing CA's own key (no delegated signer), answers SHA-1 and SHA-256 CertIDs, echoes
the nonce, says `good` for serials of its CAs that are not revoked, and `unauthorized` for CAs it does not serve.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import ssl
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtensionOID

from .fetch_policy import FetchPolicy, Target, TargetRefused
from .issue import Issued
from .ocsp_data import issuer_key_bytes, responder_url
from .store import load_certs, load_key

log = logging.getLogger(__name__)

REASONS = {r.name: r for r in x509.ReasonFlags}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"sha1": hashes.SHA1, "sha256": hashes.SHA256,
                                                  "sha384": hashes.SHA384, "sha512": hashes.SHA512}


class OcspError(Exception):
    """An OCSP exchange that gave no usable answer (unreachable responder, bad signature, wrong certificate...)."""


class OcspRefused(OcspError):
    """The fetch policy forbids asking this responder URL (scheme, host, port or address); nothing was sent."""


class OcspUnreachable(OcspError):
    """No answer at all: the responder could not be connected to, did not answer in time, or closed the connection
    before an HTTP answer. The only failure a relying party may choose to soft-fail on; a bad answer is not one."""


class RevocationList:
    """Revoked certificates of a PKI folder, kept in `revoked.json` (issuer SHA-256 fingerprint + serial -> time,
    reason); re-read when the file changes, so a running responder sees new revocations at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: float | None = None
        self._entries: dict[str, dict[str, str]] = {}

    @staticmethod
    def key(issuer: x509.Certificate, serial: int) -> str:
        return f"{issuer.fingerprint(hashes.SHA256()).hex()}:{serial:x}"

    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._entries, self._mtime = {}, None
            return
        if mtime != self._mtime:
            self._entries = json.loads(self.path.read_text() or "{}")
            self._mtime = mtime

    def revoke(self, cert: x509.Certificate, issuer: x509.Certificate, reason: str = "unspecified",
               when: dt.datetime | None = None) -> None:
        """Mark a certificate revoked."""
        if reason not in REASONS:
            raise ValueError(f"reason must be one of {', '.join(REASONS)}")
        self._load()
        at = (when or dt.datetime.now(dt.UTC)).replace(microsecond=0)
        self._entries[self.key(issuer, cert.serial_number)] = {
            "time": at.isoformat(), "reason": reason, "subject": cert.subject.rfc4514_string()}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._entries, indent=2))
        tmp.replace(self.path)

    def lookup(self, issuer: x509.Certificate, serial: int) -> tuple[dt.datetime, x509.ReasonFlags] | None:
        """(revocation time, reason) of a revoked certificate, None if it is not revoked."""
        self._load()
        entry = self._entries.get(self.key(issuer, serial))
        if entry is None:
            return None
        return dt.datetime.fromisoformat(entry["time"]), REASONS[entry["reason"]]

    def entries(self) -> dict[str, dict[str, str]]:
        """Everything revoked, for listing."""
        self._load()
        return dict(self._entries)


def _name_hash(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(cert.subject.public_bytes())
    return h.finalize()


def _key_hash(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> bytes:
    h = hashes.Hash(algorithm)
    h.update(issuer_key_bytes(cert))
    return h.finalize()


@dataclass
class OcspResponder:
    """Answers OCSP requests (DER in, DER out) for a set of CAs."""

    cas: list[Issued]
    revocations: RevocationList
    validity: dt.timedelta = dt.timedelta(hours=1)

    @classmethod
    def from_pki_dir(cls, folder: Path) -> OcspResponder:
        """Every CA (certificate with BasicConstraints CA and its key) of a `v2gstack pki create` folder."""
        cas = []
        for cert_path in sorted((folder / "certs").glob("*.pem")):
            key_path = folder / "keys" / f"{cert_path.stem}.key.pem"
            cert = load_certs(cert_path)[0]
            try:
                bc = cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value
            except x509.ExtensionNotFound:
                continue
            if bc.ca and key_path.exists():  # type: ignore[attr-defined]
                cas.append(Issued(cert, load_key(key_path)))
        return cls(cas, RevocationList(folder / "revoked.json"))

    def respond(self, data: bytes) -> bytes:
        """The DER OCSPResponse for a DER OCSPRequest; malformedRequest for one that cannot be read or whose CertID
        uses a hash algorithm we do not know (RFC 6960 2.3)."""
        try:
            req = ocsp.load_der_ocsp_request(data)
            algorithm = req.hash_algorithm
        except (ValueError, UnsupportedAlgorithm) as e:
            log.info("OCSP: malformed request: %s", e)
            return unsuccessful(ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        ca = next((c for c in self.cas if _name_hash(c.cert, algorithm) == req.issuer_name_hash
                   and _key_hash(c.cert, algorithm) == req.issuer_key_hash), None)
        if ca is None:
            log.info("OCSP: request for serial %x of an issuer we do not serve", req.serial_number)
            return unsuccessful(ocsp.OCSPResponseStatus.UNAUTHORIZED)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        revoked = self.revocations.lookup(ca.cert, req.serial_number)
        status = ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            req.issuer_name_hash, req.issuer_key_hash, req.serial_number, algorithm, status, now,
            now + self.validity, revoked[0] if revoked else None, revoked[1] if revoked else None,
        ).responder_id(ocsp.OCSPResponderEncoding.HASH, ca.cert).certificates([ca.cert])  # lets hash-only clients
        # (a CSMS given OCPP's OCSPRequestData) check the signature against the issuer key hash they hold
        try:
            nonce = req.extensions.get_extension_for_class(x509.OCSPNonce).value
            builder = builder.add_extension(nonce, critical=False)
        except x509.ExtensionNotFound:
            pass
        log.info("OCSP: serial %x of %s: %s", req.serial_number, ca.cert.subject.rfc4514_string(), status.name)
        algorithm = hashes.SHA256() if isinstance(ca.key, ec.EllipticCurvePrivateKey) else None  # Ed448 CAs (-20)
        return builder.sign(ca.key, algorithm).public_bytes(serialization.Encoding.DER)


def unsuccessful(status: ocsp.OCSPResponseStatus) -> bytes:
    """A DER OCSPResponse that carries only an error status (malformedRequest, unauthorized, internalError...)."""
    return ocsp.OCSPResponseBuilder.build_unsuccessful(status).public_bytes(serialization.Encoding.DER)


# ----- client side -----

def build_request(cert: x509.Certificate, issuer: x509.Certificate, nonce: bytes | None = None) -> bytes:
    """A DER OCSPRequest for one certificate (SHA-256 CertID, as ISO 15118's OCSP request data use)."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def build_request_by_hash(hash_data: dict[str, str]) -> bytes:
    """A DER OCSPRequest from OCPP OCSPRequestData (hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber)."""
    algorithm = _HASHES[hash_data["hashAlgorithm"].lower()]()
    return ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        bytes.fromhex(hash_data["issuerNameHash"]), bytes.fromhex(hash_data["issuerKeyHash"]),
        int(hash_data["serialNumber"], 16), algorithm).build().public_bytes(serialization.Encoding.DER)


def check_response(data: bytes, cert: x509.Certificate, issuer: x509.Certificate,
                   at: dt.datetime | None = None) -> ocsp.OCSPCertStatus:
    """The status an OCSP response gives `cert`, after checking it: signed by the issuer (or by a responder
    certificate the issuer made for OCSP signing), about this certificate, and current. OcspError otherwise."""
    try:
        resp = ocsp.load_der_ocsp_response(data)
    except ValueError as e:
        raise OcspError(f"not an OCSP response: {e}") from None
    if resp.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(f"OCSP responder answered {resp.response_status.name}")
    if resp.serial_number != cert.serial_number or resp.issuer_key_hash != _key_hash(issuer, resp.hash_algorithm):
        raise OcspError("the OCSP response is about another certificate")
    signer = issuer
    for extra in resp.certificates:  # a delegated responder must be certified by the issuer for OCSP signing
        if extra.issuer == issuer.subject:
            try:
                eku = extra.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except x509.ExtensionNotFound:
                continue
            if x509.oid.ExtendedKeyUsageOID.OCSP_SIGNING in eku:
                _verify(issuer.public_key(), extra.signature, extra.tbs_certificate_bytes)
                signer = extra
    _verify(signer.public_key(), resp.signature, resp.tbs_response_bytes)
    now = at or dt.datetime.now(dt.UTC)
    if resp.this_update_utc > now + dt.timedelta(minutes=5) or (
            resp.next_update_utc is not None and resp.next_update_utc < now):
        raise OcspError("the OCSP response is not current")
    return resp.certificate_status


def check_response_by_hash(data: bytes, hash_data: dict[str, str]) -> ocsp.OCSPCertStatus:
    """The status an OCSP response gives the certificate named by OCPP OCSPRequestData, for a client without the
    issuer certificate: the response must carry a certificate whose key hash is the request's issuerKeyHash and whose
    key signed it, and be about that serial and current. OcspError otherwise."""
    try:
        resp = ocsp.load_der_ocsp_response(data)
    except ValueError as e:
        raise OcspError(f"not an OCSP response: {e}") from None
    if resp.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise OcspError(f"OCSP responder answered {resp.response_status.name}")
    if resp.serial_number != int(hash_data["serialNumber"], 16) or \
            resp.issuer_key_hash.hex() != hash_data["issuerKeyHash"].lower():
        raise OcspError("the OCSP response is about another certificate")
    signer = next((c for c in resp.certificates if _key_hash(c, hashes.SHA256()).hex() == hash_data[
        "issuerKeyHash"].lower() or _key_hash(c, resp.hash_algorithm) == resp.issuer_key_hash), None)
    if signer is None:
        raise OcspError("the OCSP response carries no certificate of the issuer to check its signature with")
    _verify(signer.public_key(), resp.signature, resp.tbs_response_bytes)
    now = dt.datetime.now(dt.UTC)
    if resp.this_update_utc > now + dt.timedelta(minutes=5) or (
            resp.next_update_utc is not None and resp.next_update_utc < now):
        raise OcspError("the OCSP response is not current")
    return resp.certificate_status


def _verify(key: object, signature: bytes, data: bytes) -> None:
    if not isinstance(key, ec.EllipticCurvePublicKey | ed448.Ed448PublicKey):
        raise OcspError("only ECDSA and Ed448 responders are supported")
    try:
        if isinstance(key, ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise OcspError("the OCSP response's signature does not verify") from None


DEFAULT_POLICY = FetchPolicy()


async def fetch(url: str, request: bytes, timeout: float | None = None, *, policy: FetchPolicy | None = None,
                ssl_context: ssl.SSLContext | None = None) -> bytes:
    """POST an OCSP request over HTTP(S) and return the response body, under `policy` (default: public responders on
    ports 80/443 only, answers up to 64 KiB, 3 s): OcspRefused when the policy forbids the URL, OcspError for any
    other failure. `timeout` overrides the policy's; `ssl_context` verifies https responders (default: system CAs)."""
    policy = policy or DEFAULT_POLICY
    try:
        async with asyncio.timeout(policy.timeout if timeout is None else timeout):
            target = await policy.resolve(url)
            reader, writer = await _connect(target, policy, ssl_context)
            try:
                writer.write(f"POST {target.path} HTTP/1.0\r\nHost: {_host_header(target)}\r\n"
                             "Content-Type: application/ocsp-request\r\n"
                             f"Content-Length: {len(request)}\r\n\r\n".encode() + request)
                await writer.drain()
                return await _read_answer(reader, policy)
            finally:
                writer.close()
    except TargetRefused as e:
        raise OcspRefused(f"OCSP URL {url!r} refused: {e}") from None
    except (OSError, TimeoutError) as e:  # ssl.SSLError is an OSError
        raise OcspUnreachable(f"OCSP responder {url} unreachable: {e or type(e).__name__}") from None


async def _connect(target: Target, policy: FetchPolicy,
                   ssl_context: ssl.SSLContext | None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to the first of the target's checked addresses that answers (never to a re-resolved name)."""
    ctx = (ssl_context or ssl.create_default_context()) if target.scheme == "https" else None
    error: OSError = OSError(f"no address for {target.host}")
    for address in target.addresses:
        try:
            return await asyncio.open_connection(str(address), target.port, ssl=ctx,
                                                 server_hostname=target.host if ctx else None,
                                                 limit=policy.max_head)
        except OSError as e:
            error = e
    raise error


def _host_header(target: Target) -> str:
    """The Host header of a request to `target`."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == {"http": 80, "https": 443}[target.scheme] else f"{host}:{target.port}"


async def _read_answer(reader: asyncio.StreamReader, policy: FetchPolicy) -> bytes:
    """The body of a 200 answer, at most policy.max_response bytes; OcspError otherwise (the peer's status text is
    not repeated: only its numeric code)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise OcspError(f"OCSP responder's HTTP head is larger than {policy.max_head} bytes") from None
    except asyncio.IncompleteReadError:
        raise OcspUnreachable("OCSP responder closed the connection without an HTTP answer") from None
    lines = head.decode("latin-1").split("\r\n")
    status = lines[0].split(" ")
    code = status[1] if len(status) > 1 and status[0].startswith("HTTP/1.") else ""
    if not (len(code) == 3 and code.isdigit()):
        raise OcspError("OCSP responder did not answer HTTP")
    if code != "200":
        raise OcspError(f"OCSP responder answered HTTP status {code}")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if "transfer-encoding" in headers:
        raise OcspError("OCSP responder answered with a transfer encoding (HTTP/1.0 was asked)")
    limit = policy.max_response
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise OcspError("OCSP responder sent a bad Content-Length")
        if int(length) > limit:
            raise OcspError(f"OCSP answer of {int(length)} bytes is larger than {limit}")
        try:
            return await reader.readexactly(int(length))
        except asyncio.IncompleteReadError:
            raise OcspError("OCSP answer shorter than its Content-Length") from None
    body = bytearray()
    while len(body) <= limit and (chunk := await reader.read(limit + 1 - len(body))):
        body += chunk
    if len(body) > limit:
        raise OcspError(f"OCSP answer is larger than {limit} bytes")
    return bytes(body)


async def status_of(cert: x509.Certificate, issuer: x509.Certificate, url: str | None = None,
                    timeout: float | None = None, *, policy: FetchPolicy | None = None) -> ocsp.OCSPCertStatus:
    """Ask the certificate's responder (its AIA URL, or `url`) under `policy` and check the answer."""
    target = url or responder_url(cert)
    if not target:
        raise OcspError("the certificate names no OCSP responder")
    return check_response(await fetch(target, build_request(cert, issuer), timeout, policy=policy), cert, issuer)


# ----- the HTTP shell -----

MAX_HEAD = 8192  # request line and headers; an OCSP GET's base64 request fits many times over
MAX_BODY = 65536  # a DER OCSPRequest is a few hundred bytes (a signed one with certificates a few KiB)
_LINGER = 1 << 20  # after an error answer, read at most this much of what the client still sends, then close


def _http(status: str, body: bytes = b"", content_type: str = "") -> bytes:
    """One HTTP/1.1 response that closes the connection."""
    head = f"HTTP/1.1 {status}\r\n" + (f"Content-Type: {content_type}\r\n" if content_type else "")
    return (head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, bytes]:
    """(method, DER request) of one HTTP request, ValueError for one that is malformed or too large."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ValueError(f"request head larger than {MAX_HEAD} bytes") from None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = ([*lines[0].split(" "), "", ""])[:3]
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if method == "POST":
        length = int(headers.get("content-length", "0"))
        if not 0 < length <= MAX_BODY:
            raise ValueError("bad Content-Length")
        return method, await reader.readexactly(length)
    if method == "GET":
        return method, base64.b64decode(urllib.parse.unquote(target.rsplit("/", 1)[-1]))
    return method, b""


async def serve(responder: OcspResponder, host: str = "127.0.0.1", port: int = 0) -> asyncio.Server:
    """An HTTP/1.1 server for RFC 6960 requests: POST (DER body) and GET (/<path>/<base64 of the DER>).

    Every request gets an answer: 400 for a malformed or oversized HTTP request (head above MAX_HEAD, body above
    MAX_BODY), an OCSP malformedRequest for a request it cannot read, internalError if answering fails."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        bad = False
        try:
            try:
                async with asyncio.timeout(10):
                    method, body = await _read_request(reader)
            except (ValueError, TimeoutError, asyncio.IncompleteReadError, UnicodeDecodeError) as e:
                log.info("OCSP: bad HTTP request: %s", e)
                writer.write(_http("400 Bad Request"))
                bad = True
                return
            if method not in ("GET", "POST"):
                writer.write(_http("405 Method Not Allowed"))
                bad = True
                return
            try:
                answer = responder.respond(body)
            except Exception:  # a bug of ours: the client still gets an OCSP answer
                log.exception("OCSP: could not answer a request")
                answer = unsuccessful(ocsp.OCSPResponseStatus.INTERNAL_ERROR)
            writer.write(_http("200 OK", answer, "application/ocsp-response"))
        finally:
            try:
                await writer.drain()
                if bad:  # read (a bounded amount of) what is left, so that closing does not reset the answer away
                    writer.write_eof()
                    async with asyncio.timeout(2):
                        left = _LINGER
                        while left > 0 and (chunk := await reader.read(min(left, 65536))):
                            left -= len(chunk)
            except (OSError, TimeoutError):
                pass
            finally:
                writer.close()

    return await asyncio.start_server(handle, host, port, limit=MAX_HEAD)
