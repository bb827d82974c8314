"""The CSMS's OCSP client: asks the responders stations and certificates name, within a fetch policy (which hosts,
how much, how long), through a cache of checked answers, with a bounded number of fetches at once."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from cryptography import x509
from cryptography.x509 import ocsp

from ..pki.fetch_policy import FetchPolicy
from ..pki.ocsp import (
    OcspError,
    build_request,
    build_request_by_hash,
    check_response,
    check_response_by_hash,
    fetch,
)
from ..pki.ocsp_cache import OcspCache, cert_id
from ..pki.ocsp_data import ocsp_request_data, responder_url


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
