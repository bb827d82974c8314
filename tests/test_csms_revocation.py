"""The revocation verdict of a Plug & Charge contract (C07.FR.05/.16), as a matrix over real sockets: a station
sends Authorize to our CSMS, which asks the real OCSP responder of pki/ (or an HTTP server serving a crafted
answer). Only a checked `good` is Accepted; an unreachable responder soft-fails only while the operator allows it
(not `ocsp_required`); malformed hash data, answers that fail verification, are about another certificate or say
`unknown` are never Accepted."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from helpers.csms import PASSWORD, csms_url, running_csms
from helpers.ocpp import RawPeer, raw_peer
from helpers.ocsp import Listener, listener, start_responder

from v2gstack.csms.service import Csms
from v2gstack.csms.store import Store
from v2gstack.pki.hierarchy import Pki, PkiConfig, create_pki
from v2gstack.pki.ocsp import RevocationList
from v2gstack.pki.ocsp_data import chain_hash_data
from v2gstack.pki.profiles import Kind
from v2gstack.pki.store import cert_pem

EMAID = "DE8AA1A2B3C4D5X"


def hash_data(pki: Pki, url: str | None = None) -> list[dict[str, str]]:
    """The contract chain's iso15118CertificateHashData (responders as the AIA names them, or `url`)."""
    chain = [pki.cert(Kind.CONTRACT), *pki.intermediates(Kind.CONTRACT), pki.cert(Kind.MO_ROOT)]
    items = [dict(d) for d in chain_hash_data(chain)]
    return [{**d, "responderURL": url} for d in items] if url is not None else items


async def authorize(peer: RawPeer, data: list[dict[str, str]] | None = None, pem: str | None = None) -> tuple[str, str]:
    """(certificateStatus, idTokenInfo.status) the CSMS answers an Authorize with hash data or a PEM chain."""
    p: dict[str, Any] = {"idToken": {"idToken": EMAID, "type": "eMAID"}}
    if pem is not None:
        p["certificate"] = pem
    else:
        p["iso15118CertificateHashData"] = data
    answer = await peer.exchange([2, uuid.uuid4().hex, "Authorize", p])
    assert answer[0] == 3, answer
    return answer[2]["certificateStatus"], answer[2]["idTokenInfo"]["status"]


@asynccontextmanager
async def csms_and_peer(tmp_path: Path, **config: Any) -> AsyncIterator[tuple[Csms, RawPeer]]:
    """Our CSMS (loopback responders allowed, no answer cache: each Authorize asks) and a station connected to it."""
    config.setdefault("ocsp_allow", ("127.0.0.1",))
    tmp_path.mkdir(parents=True, exist_ok=True)
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}", ocsp_cache_size=0,
                            tokens=[{"idToken": EMAID, "type": "eMAID"}], **config) as csms, \
            raw_peer(csms_url(csms), "CS1", password=PASSWORD) as peer:
        yield csms, peer


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def crafted(pki: Pki, status: ocsp.OCSPCertStatus = ocsp.OCSPCertStatus.GOOD, *, serial: int | None = None,
            signer: Pki | None = None) -> bytes:
    """An OCSP answer about the contract (or `serial`) carrying the real issuer certificate, signed by the issuer's
    key, or by the same CA of another PKI (`signer`): a forgery."""
    issuer, contract = pki.items[Kind.MO_SUB_CA2], pki.cert(Kind.CONTRACT)
    [item] = hash_data(pki)[:1]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
        bytes.fromhex(item["issuerNameHash"]), bytes.fromhex(item["issuerKeyHash"]),
        contract.serial_number if serial is None else serial, hashes.SHA256(), status, now,
        now + dt.timedelta(hours=1), None, None,
    )
    signing = (signer or pki).items[Kind.MO_SUB_CA2]
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signing.cert).certificates([issuer.cert])
    return builder.sign(signing.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def serving(body: bytes | list[bytes]) -> Callable[[asyncio.StreamWriter, Listener], object]:
    """An HTTP responder that answers every request with `body` (a list: its first item at the time of asking)."""
    async def answer(writer: asyncio.StreamWriter, state: Listener) -> None:
        data = body[0] if isinstance(body, list) else body
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/ocsp-response\r\n"
                     + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        await writer.drain()
    return answer


async def test_hash_data_good_revoked_unreachable(tmp_path: Path) -> None:
    """The real responder: good -> Accepted; unreachable -> Accepted only while soft-fail is allowed; revoked ->
    CertificateRevoked/Invalid (C07.FR.16)."""
    pki, _, _, server = await start_responder(tmp_path / "pki")
    try:
        async with csms_and_peer(tmp_path) as (csms, peer):
            assert await authorize(peer, hash_data(pki)) == ("Accepted", "Accepted")
            down = hash_data(pki, f"http://127.0.0.1:{closed_port()}/ocsp")
            assert await authorize(peer, down) == ("Accepted", "Accepted")  # soft-fail: the operator allows it
            csms.config.ocsp_required = True  # `--ocsp-required`
            assert await authorize(peer, down) == ("CertChainError", "Invalid")
            assert await authorize(peer, hash_data(pki)) == ("Accepted", "Accepted")
            RevocationList(tmp_path / "pki" / "revoked.json").revoke(pki.cert(Kind.CONTRACT),
                                                                     pki.cert(Kind.MO_SUB_CA2), "key_compromise")
            assert await authorize(peer, hash_data(pki)) == ("CertificateRevoked", "Invalid")
    finally:
        server.close()  # type: ignore[attr-defined]


async def test_malformed_hash_data_is_never_accepted_nor_asked(tmp_path: Path) -> None:
    """Hash data that names no certificate: CertChainError/Invalid with soft-fail allowed, and no responder is
    asked. A contract item without a responder cannot be checked either."""
    pki = create_pki()
    async with listener(serving(crafted(pki))) as target, csms_and_peer(tmp_path) as (_csms, peer):
        good = hash_data(pki, f"http://127.0.0.1:{target.port}/ocsp")
        bad = [
            {**good[0], "issuerKeyHash": "zz" * 32},  # not hex
            {**good[0], "issuerNameHash": good[0]["issuerNameHash"][:40]},  # a SHA-1 size hash called SHA256
            {**good[0], "serialNumber": "not-a-serial"},
            {**good[0], "issuerKeyHash": good[0]["issuerKeyHash"] + "00" * 16, "hashAlgorithm": "SHA384"},  # 48 bytes
        ]
        for item in bad:
            assert await authorize(peer, [item, *good[1:]]) == ("CertChainError", "Invalid"), item
        assert await authorize(peer, [good[0], {**good[1], "serialNumber": "0x12"}]) == ("CertChainError", "Invalid")
        assert target.connections == 0
        assert await authorize(peer, [{**good[0], "responderURL": ""}]) == ("CertChainError", "Invalid")
        assert target.connections == 0


async def test_unverifiable_or_foreign_answers_are_never_accepted(tmp_path: Path) -> None:
    """With soft-fail allowed: a forged signature, an answer about another serial, `unknown`, and a body that is
    no OCSP answer all give CertChainError/Invalid; the correctly signed `good` of the same server is Accepted."""
    pki, other = create_pki(), create_pki()
    cases = {
        "forged": crafted(pki, signer=other),
        "another certificate": crafted(pki, serial=pki.cert(Kind.CONTRACT).serial_number + 1),
        "unknown": crafted(pki, ocsp.OCSPCertStatus.UNKNOWN),
        "not OCSP": b"<html>gateway error</html>",
    }
    for name, body in cases.items():
        async with listener(serving(body)) as target, csms_and_peer(tmp_path / name) as (_csms, peer):
            data = hash_data(pki, f"http://127.0.0.1:{target.port}/ocsp")
            assert await authorize(peer, data[:1]) == ("CertChainError", "Invalid"), name
            assert target.connections == 1, name
    async with listener(serving(crafted(pki))) as target, csms_and_peer(tmp_path / "good") as (_csms, peer):
        assert await authorize(peer, hash_data(pki, f"http://127.0.0.1:{target.port}/ocsp")[:1]) == (
            "Accepted", "Accepted")


async def test_pem_chain_answers_are_verified_too(tmp_path: Path) -> None:
    """Authorize with the contract chain (PEM) whose AIA names an HTTP server: an answer that fails verification is
    CertChainError even with soft-fail allowed; when nobody answers there, Accepted only while soft-fail is allowed."""
    body = [b""]
    async with listener(serving(body)) as target:
        pki = create_pki(PkiConfig(ocsp_url=f"http://127.0.0.1:{target.port}/ocsp"))
        pem = b"".join(cert_pem(c) for c in [pki.cert(Kind.CONTRACT), *pki.intermediates(Kind.CONTRACT)]).decode()
        body[0] = crafted(pki, signer=create_pki())
        store = Store(f"sqlite:///{tmp_path / 'c.db'}")  # the MO root trusted before the CSMS runs
        store.add_trust_anchor("MORootCertificate", cert_pem(pki.cert(Kind.MO_ROOT)))
        store.close()
        async with csms_and_peer(tmp_path) as (csms, peer):
            assert await authorize(peer, pem=pem) == ("CertChainError", "Invalid")
            assert target.server is not None
            target.server.close()
            await target.server.wait_closed()
            assert await authorize(peer, pem=pem) == ("Accepted", "Accepted")  # nobody answers: soft-fail
            csms.config.ocsp_required = True
            assert await authorize(peer, pem=pem) == ("CertChainError", "Invalid")
