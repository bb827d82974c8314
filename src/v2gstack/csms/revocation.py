"""The CSMS's OCSP client: asks the responders stations and certificates name, within a fetch policy (which hosts,
how much, how long), through a cache of checked answers, with a bounded number of fetches at once; and the
revocation verdict of a contract (C07.FR.05/.16): `good` from a checked answer is the only way to Accepted, except
that an unreachable responder (or one the fetch policy refuses) may soft-fail when the operator allows it (not
`ocsp_required`). Hash data that does not parse, an answer that fails verification, is about another certificate or
says `unknown` is never Accepted."""

from __future__ import annotations

import asyncio
import itertools
import logging
import string
from collections.abc import Awaitable, Mapping, Sequence

from cryptography import x509
from cryptography.x509 import ocsp

from ..pki.fetch_policy import FetchPolicy
from ..pki.ocsp import (
    OcspError,
    OcspRefused,
    OcspUnreachable,
    build_request,
    build_request_by_hash,
    check_response,
    check_response_by_hash,
    fetch,
)
from ..pki.ocsp_cache import OcspCache, cert_id
from ..pki.ocsp_data import ocsp_request_data, responder_url

log = logging.getLogger(__name__)

HASH_SIZES = {"SHA256": 32, "SHA384": 48, "SHA512": 64}  # OCPP 2.0.1 HashAlgorithmEnumType -> digest bytes
_HEX = frozenset(string.hexdigits)


class MalformedHashData(ValueError):
    """An iso15118CertificateHashData item that names no certificate (bad algorithm, hash or serial)."""


def check_hash_data(item: Mapping[str, str]) -> None:
    """MalformedHashData unless the item names a certificate: a known hash algorithm, both hashes hex of its size,
    a non-empty hex serial (the schema has already checked presence and lengths)."""
    algorithm = str(item.get("hashAlgorithm", ""))
    size = HASH_SIZES.get(algorithm)
    if size is None:
        raise MalformedHashData(f"hashAlgorithm {algorithm[:20]!r} is not one of {sorted(HASH_SIZES)}")
    for key in ("issuerNameHash", "issuerKeyHash"):
        value = str(item.get(key, ""))
        if len(value) != 2 * size or not set(value) <= _HEX:
            raise MalformedHashData(f"{key} is not the {algorithm} hash of anything ({2 * size} hex digits)")
    serial = str(item.get("serialNumber", ""))
    if not serial or not set(serial) <= _HEX:
        raise MalformedHashData("serialNumber is not a hex number")


class OcspChecker:
    """Revocation status for the CSMS's handlers (GetCertificateStatus, Authorize with a contract or its hash data).

    Raises OcspRefused when the policy forbids a responder URL, OcspError when no usable answer came."""

    def __init__(self, policy: FetchPolicy | None = None, cache: OcspCache | None = None,
                 max_concurrent: int = 16) -> None:
        self.policy = policy or FetchPolicy()
        self.cache = cache if cache is not None else OcspCache()
        self._slots = asyncio.Semaphore(max_concurrent)
        self.fetches = 0  # requests sent to responders (the cache's misses that got as far as the network)

    async def _fetch(self, url: str, request: bytes) -> bytes:
        """One request to a responder, within the policy and the concurrency bound."""
        async with self._slots:
            self.fetches += 1
            return await fetch(url, request, policy=self.policy)

    async def answer_for(self, hash_data: Mapping[str, str]) -> bytes:
        """The DER answer for OCPP OCSPRequestData (GetCertificateStatus): a cached checked one, else the responder's.
        An answer that does not check out is still handed on (the station and the EV check it) but not cached."""
        key = cert_id(hash_data)
        hit = self.cache.get(key)
        if hit is not None:
            return hit.der
        raw = await self._fetch(hash_data["responderURL"], build_request_by_hash(dict(hash_data)))
        try:
            check_response_by_hash(raw, dict(hash_data))
        except (OcspError, ValueError):
            return raw
        self.cache.put(key, raw)
        return raw

    async def status_by_hash(self, hash_data: Mapping[str, str]) -> ocsp.OCSPCertStatus:
        """The checked status of the certificate OCSPRequestData names (Authorize with hash data only)."""
        key = cert_id(hash_data)
        hit = self.cache.get(key)
        if hit is not None:
            return hit.status
        raw = await self._fetch(hash_data["responderURL"], build_request_by_hash(dict(hash_data)))
        status = check_response_by_hash(raw, dict(hash_data))
        self.cache.put(key, raw)
        return status

    async def status_of(self, cert: x509.Certificate, issuer: x509.Certificate) -> ocsp.OCSPCertStatus:
        """The checked status of `cert` from the responder of its AIA (Authorize with the contract chain)."""
        key = cert_id(ocsp_request_data(cert, issuer))
        hit = self.cache.get(key)
        if hit is not None:
            return hit.status
        url = responder_url(cert)
        if not url:
            raise OcspError("the certificate names no OCSP responder")
        raw = await self._fetch(url, build_request(cert, issuer))
        status = check_response(raw, cert, issuer)
        self.cache.put(key, raw)
        return status


async def _verdict(what: str, check: Awaitable[ocsp.OCSPCertStatus], required: bool) -> str | None:
    """None when the answer says `good` (or soft-fails), else the certificateStatus to answer."""
    try:
        answer = await check
    except (OcspUnreachable, OcspRefused) as e:
        if required:
            log.warning("%s: no revocation status (ocsp_required): %s", what, e)
            return "CertChainError"
        log.warning("%s: no revocation status, soft-fail allowed by the operator: %s", what, e)
        return None
    except (OcspError, ValueError, KeyError) as e:
        log.warning("%s: the revocation status cannot be established: %s", what, e)
        return "CertChainError"
    if answer is ocsp.OCSPCertStatus.REVOKED:
        return "CertificateRevoked"
    if answer is not ocsp.OCSPCertStatus.GOOD:
        log.warning("%s: the OCSP responder answered %s", what, getattr(answer, "name", answer))
        return "CertChainError"
    return None


async def hash_data_status(checker: OcspChecker, items: Sequence[Mapping[str, str]], *, required: bool) -> str:
    """The certificateStatus of a contract known only by its OCSP request data (C07.FR.05): every item must parse;
    the first (the contract) must name a responder; each item that names one is asked."""
    try:
        for item in items:
            check_hash_data(item)
    except MalformedHashData as e:
        log.warning("contract hash data refused: %s", e)
        return "CertChainError"
    if not items or not items[0].get("responderURL"):
        log.warning("contract hash data: the contract names no OCSP responder; its status cannot be established")
        return "CertChainError"
    for item in items:
        if not item.get("responderURL"):
            continue
        verdict = await _verdict(f"contract hash data, serial {item['serialNumber']}",
                                 checker.status_by_hash(item), required)
        if verdict is not None:
            return verdict
    return "Accepted"


async def chain_status(checker: OcspChecker, path: Sequence[x509.Certificate], *, required: bool) -> str:
    """The certificateStatus of a verified contract path (leaf first) as far as revocation goes: each certificate
    that names a responder is asked (a path whose certificates name none is left to its chain check)."""
    for cert, issuer in itertools.pairwise(path):
        if not responder_url(cert):
            continue
        verdict = await _verdict(f"contract certificate {cert.subject.rfc4514_string()}",
                                 checker.status_of(cert, issuer), required)
        if verdict is not None:
            return verdict
    return "Accepted"
