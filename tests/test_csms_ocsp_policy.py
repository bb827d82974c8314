"""The CSMS asks only the OCSP responders its policy allows, reads bounded answers and keeps good ones.

A station names the responder in GetCertificateStatus and Authorize: by default no loopback, private or odd-port
target is contacted (names resolved first), the station never sees what the peer said, answers are capped at
64 KiB, and a checked answer is reused until its nextUpdate. Over real sockets: a station, our CSMS, our responder,
and plain TCP servers standing in for whatever a station might aim the CSMS at. (The policy, fetch and cache on
their own: test_pki_fetch_policy.py.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from helpers.csms import PASSWORD, csms_url, running_csms
from helpers.ocpp import raw_peer
from helpers.ocsp import Listener, listener, start_responder, stream
from helpers.wait import until

from v2gstack.pki.hierarchy import Pki, create_pki
from v2gstack.pki.ocsp import OcspResponder
from v2gstack.pki.ocsp_data import chain_hash_data, ocsp_request_data
from v2gstack.pki.profiles import Kind

BANNER = b"HTTP/1.1 302 SSH-2.0-OpenSSH_9.2 internal-db-7\r\nContent-Length: 0\r\n\r\n"


async def banner(writer: asyncio.StreamWriter, state: Listener) -> None:
    """What an internal service might say: a status line that names it."""
    writer.write(BANNER)
    await writer.drain()


def status_request(mid: str, data: dict[str, str]) -> list[object]:
    """A GetCertificateStatus CALL."""
    return [2, mid, "GetCertificateStatus", {"ocspRequestData": data}]


def some_hash_data(url: str) -> dict[str, str]:
    """OCSPRequestData of a certificate of a throw-away PKI, naming `url` as its responder."""
    pki = create_pki()
    return {**ocsp_request_data(pki.cert(Kind.CONTRACT), pki.cert(Kind.MO_SUB_CA2)), "responderURL": url}


# ----- over the socket, through the CSMS -----

async def test_station_cannot_aim_the_csms_at_loopback(tmp_path: Path) -> None:
    """Default policy: whatever spelling of a loopback target a station uses, the CSMS never connects, and its
    answer does not repeat what the target said."""
    async with listener(banner) as target, running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, \
            raw_peer(csms_url(csms), "CS1", password=PASSWORD) as peer:
        p = target.port
        urls = [f"http://127.0.0.1:{p}/", f"http://localhost:{p}/ocsp", f"http://127.1:{p}/",
                f"http://2130706433:{p}/", f"http://[::ffff:127.0.0.1]:{p}/", f"http://0.0.0.0:{p}/",
                f"gopher://127.0.0.1:{p}/", "file:///etc/passwd", f"http://user:pw@127.0.0.1:{p}/",
                "http://localhost/ocsp", "https://localhost/ocsp"]
        for i, url in enumerate(urls):
            answer = await peer.exchange(status_request(f"g{i}", some_hash_data(url)))
            assert answer[0] == 3 and answer[2]["status"] == "Failed", (url, answer)
            info = answer[2]["statusInfo"]
            assert info["reasonCode"] == "OCSPUnavailable"
            assert "SSH" not in info.get("additionalInfo", "") and "302" not in info.get("additionalInfo", "")
        # Authorize with hash data names responders too
        emaid = "DEV2G1234567890"
        data = [{**d, "responderURL": f"http://localhost:{p}/"} for d in chain_hash_data(
            [create_pki().cert(Kind.CONTRACT), create_pki().cert(Kind.MO_SUB_CA2), create_pki().cert(Kind.MO_ROOT)])]
        answer = await peer.exchange([2, "a1", "Authorize", {"idToken": {"idToken": emaid, "type": "eMAID"},
                                                             "iso15118CertificateHashData": data}])
        assert answer[0] == 3
        assert target.connections == 0


async def test_allowed_target_answers_are_generic_and_capped(tmp_path: Path) -> None:
    """On the allow list the CSMS does connect, but a non-200 answer's status line does not reach the station and a
    300 MB answer is cut at the cap."""
    async with listener(banner) as internal, listener(stream(300 << 20)) as huge, \
            running_csms(f"sqlite:///{tmp_path / 'c.db'}",
                         ocsp_allow=(f"127.0.0.1:{internal.port}", f"127.0.0.1:{huge.port}")) as csms, \
            raw_peer(csms_url(csms), "CS1", password=PASSWORD) as peer:
        answer = await peer.exchange(status_request("s1", some_hash_data(f"http://127.0.0.1:{internal.port}/")))
        assert internal.connections == 1
        assert answer[2]["status"] == "Failed"
        assert "SSH" not in str(answer) and "internal-db" not in str(answer)
        answer = await peer.exchange(status_request("s2", some_hash_data(f"http://127.0.0.1:{huge.port}/")))
        assert huge.connections == 1 and answer[2]["status"] == "Failed"
        await until(lambda: huge.sent > 0)
        assert huge.sent < 32 << 20  # the CSMS hung up after 64 KiB; only socket buffers took more


@asynccontextmanager
async def counted_responder(folder: Path) -> AsyncIterator[tuple[Pki, str, list[int]]]:
    """Our OCSP responder on loopback, counting the requests it answers."""
    pki, responder, url, server = await start_responder(folder)
    count = [0]
    real = OcspResponder.respond

    def respond(data: bytes) -> bytes:
        count[0] += 1
        return real(responder, data)

    responder.respond = respond  # type: ignore[method-assign]
    try:
        yield pki, url, count
    finally:
        server.close()  # type: ignore[attr-defined]


async def test_good_answers_are_cached_by_cert_id(tmp_path: Path) -> None:
    """GetCertificateStatus twice for one certificate, then Authorize with its hash data: one request to the
    responder, until the answer's nextUpdate. Another certificate is asked anew."""
    async with counted_responder(tmp_path / "pki") as (pki, _url, count), \
            running_csms(f"sqlite:///{tmp_path / 'c.db'}", ocsp_allow=("127.0.0.1",)) as csms, \
            raw_peer(csms_url(csms), "CS1", password=PASSWORD) as peer:
        data = ocsp_request_data(pki.cert(Kind.CONTRACT), pki.cert(Kind.MO_SUB_CA2))
        first = await peer.exchange(status_request("c1", dict(data)))
        second = await peer.exchange(status_request("c2", dict(data)))
        assert first[2]["status"] == second[2]["status"] == "Accepted"
        assert first[2]["ocspResult"] == second[2]["ocspResult"]
        assert count[0] == 1
        other = ocsp_request_data(pki.cert(Kind.MO_SUB_CA2), pki.cert(Kind.MO_SUB_CA1))
        assert (await peer.exchange(status_request("c3", dict(other))))[2]["status"] == "Accepted"
        assert count[0] == 2
        # Authorize with the chain's hash data: two of its three certificates are cached already
        chain = [pki.cert(Kind.CONTRACT), *pki.intermediates(Kind.CONTRACT), pki.cert(Kind.MO_ROOT)]
        emaid = str(pki.cert(Kind.CONTRACT).subject.rfc4514_string())
        answer = await peer.exchange([2, "a1", "Authorize", {"idToken": {"idToken": emaid[:36], "type": "eMAID"},
                                                             "iso15118CertificateHashData": chain_hash_data(chain)}])
        assert answer[0] == 3 and answer[2]["certificateStatus"] != "CertificateRevoked"
        assert count[0] == 3
        assert len(csms.ocsp.cache) == 3 and csms.ocsp.fetches == 3
