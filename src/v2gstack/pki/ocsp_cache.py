"""A bounded cache of checked OCSP answers, keyed by CertID and kept until their nextUpdate.

Every Authorize with a contract and every GetCertificateStatus would otherwise ask the responder again; RFC 5019
(lightweight OCSP) expects clients to reuse an answer while it is current. Only answers that were checked (signed
by the issuer, about this CertID, current) and say `good` or `revoked` are kept; one without nextUpdate is not
(RFC 6960 4.2.2.1: newer information is always available). `max_age` caps how long any answer is reused.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography.x509 import ocsp

CertId = tuple[str, str, str, int]  # (hash algorithm, issuerNameHash, issuerKeyHash, serial)


def cert_id(hash_data: Mapping[str, str]) -> CertId:
    """The cache key of OCPP OCSPRequestData (hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber in hex)."""
    return (hash_data["hashAlgorithm"].upper(), hash_data["issuerNameHash"].lower(),
            hash_data["issuerKeyHash"].lower(), int(hash_data["serialNumber"], 16))


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A checked DER answer, its status and until when it may be reused."""

    der: bytes
    status: ocsp.OCSPCertStatus
    expires: dt.datetime


def _utcnow() -> dt.datetime:
    """Now, in UTC."""
    return dt.datetime.now(dt.UTC)


class OcspCache:
    """CertID -> checked answer, least recently used evicted beyond `max_entries` (0 disables the cache)."""

    def __init__(self, max_entries: int = 1024, max_age: dt.timedelta = dt.timedelta(hours=1),
                 clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self.clock = clock
        self._entries: OrderedDict[CertId, CachedAnswer] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        """Entries held (expired ones included until they are looked up or evicted)."""
        return len(self._entries)

    def get(self, key: CertId) -> CachedAnswer | None:
        """The answer for `key` if one is held and still current."""
        entry = self._entries.get(key)
        if entry is not None and entry.expires > self.clock():
            self._entries.move_to_end(key)
            self.hits += 1
            return entry
        if entry is not None:
            del self._entries[key]
        self.misses += 1
        return None

    def put(self, key: CertId, der: bytes) -> CachedAnswer | None:
        """Keep a checked answer (the caller verified it) until min(nextUpdate, now + max_age); returns the entry,
        or None when the answer is not one to keep (no nextUpdate, already stale, unknown status, cache off)."""
        if self.max_entries <= 0:
            return None
        try:
            resp = ocsp.load_der_ocsp_response(der)
            status, next_update = resp.certificate_status, resp.next_update_utc
        except ValueError:
            return None
        now = self.clock()
        if next_update is None or status is ocsp.OCSPCertStatus.UNKNOWN or next_update <= now:
            return None
        entry = CachedAnswer(der, status, min(next_update, now + self.max_age))
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return entry
