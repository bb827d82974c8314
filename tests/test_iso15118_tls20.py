"""ISO 15118-20 TLS over real loopback sockets: TLS 1.3 with the vehicle certificate (secp521r1 and Ed448 PKIs), an EV
certificate the SECC does not trust is refused with an alert, no certificate is refused, TLS 1.2 is refused, the
group is enforced, and a session outside Table 6 is refused after the handshake."""

from __future__ import annotations

import asyncio
import os
import shutil
import ssl
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from v2gstack.iso15118 import tls
from v2gstack.pki.algorithms import KeyAlgorithm
from v2gstack.pki.hierarchy import Edition, PkiConfig, create_pki
from v2gstack.pki.store import write_pki
from v2gstack.trace.error_map import FailureKind


@pytest.fixture(scope="module", params=[KeyAlgorithm.SECP521, KeyAlgorithm.ED448], ids=["secp521r1", "ed448"])
def pki_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, KeyAlgorithm]:
    out = tmp_path_factory.mktemp(f"pki20-{request.param.value}")
    write_pki(create_pki(PkiConfig(edition=Edition.ISO20, algorithm=request.param)), out)
    return out, request.param


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second -20 PKI whose OEM root the SECC does not trust."""
    out = tmp_path_factory.mktemp("pki20-other")
    write_pki(create_pki(PkiConfig(edition=Edition.ISO20, evccid="WV2GFOREIGN000001")), out)
    return out


@dataclass
class Outcome:
    """What each end saw."""

    server_error: BaseException | None = None
    server_peer_cn: str | None = None
    server_cipher: str | None = None
    server_version: str | None = None
    client_error: BaseException | None = None
    client_reply: bytes = b""


def secc(d: Path, **kw: object) -> ssl.SSLContext:
    trust = kw.pop("trust", [d / "stores" / "secc" / "trust" / "oem_root.pem", d / "stores" / "secc" / "trust" /
                             "v2g_root.pem"])
    return tls.secc_context20(d / "stores" / "secc" / "secc.chain.pem", d / "stores" / "secc" / "secc.key.pem",
                              trust=trust, **kw)  # type: ignore[arg-type]


def evcc(d: Path, vehicle_from: Path | None = None, **kw: object) -> ssl.SSLContext:
    src = vehicle_from or d
    return tls.evcc_context20([d / "stores" / "ev" / "trust" / "v2g_root.pem"],
                              certfile=src / "stores" / "ev" / "vehicle.chain.pem",
                              keyfile=src / "stores" / "ev" / "vehicle.key.pem", **kw)  # type: ignore[arg-type]


async def exchange(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> Outcome:
    """One connection over loopback; the server does its TLS handshake explicitly (so that its failure is seen) and
    answers "ok"; errors are recorded, not raised."""
    out = Outcome()
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await writer.start_tls(server_ctx)
            obj = writer.get_extra_info("ssl_object")
            out.server_version, out.server_cipher = obj.version(), obj.cipher()[0]
            peer = obj.getpeercert(binary_form=True)
            if peer:
                cn = x509.load_der_x509_certificate(peer).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
                out.server_peer_cn = str(cn[0].value)
            tls.check_session20(obj)
            writer.write(b"ok")
            await writer.drain()
        except (ssl.SSLError, tls.TlsPolicyError, ConnectionError) as exc:
            out.server_error = exc
        finally:
            writer.close()
            done.set()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        out.client_reply = await reader.read(10)
        writer.close()
    except (ssl.SSLError, ConnectionError, OSError) as exc:
        out.client_error = exc
    await asyncio.wait_for(done.wait(), 30)
    server.close()
    await server.wait_closed()
    return out


def test_mutual_tls13_handshake(pki_dir: tuple[Path, KeyAlgorithm]) -> None:
    d, algorithm = pki_dir
    group = tls.group_for(algorithm)
    out = asyncio.run(exchange(secc(d, group=group), evcc(d, group=group)))
    assert out.client_error is None and out.server_error is None
    assert out.client_reply == b"ok"
    assert out.server_version == "TLSv1.3" and out.server_cipher == "TLS_AES_256_GCM_SHA384"
    assert out.server_peer_cn == PkiConfig().evccid  # the SECC saw and checked the vehicle certificate


def test_untrusted_vehicle_certificate_is_refused_with_an_alert(pki_dir: tuple[Path, KeyAlgorithm],
                                                                other_pki: Path) -> None:
    d, _ = pki_dir
    out = asyncio.run(exchange(secc(d, group=None), evcc(d, vehicle_from=other_pki, group=None)))
    assert isinstance(out.server_error, ssl.SSLCertVerificationError), out
    assert "unable to get local issuer certificate" in str(out.server_error)
    assert out.client_reply == b""  # TLS 1.3: the client's handshake ends first; the alert then ends its reads


def test_no_vehicle_certificate_required_or_optional(pki_dir: tuple[Path, KeyAlgorithm]) -> None:
    d, algorithm = pki_dir
    group = tls.group_for(algorithm)
    anonymous = tls.evcc_context20([d / "stores" / "ev" / "trust" / "v2g_root.pem"], group=group)
    refused = asyncio.run(exchange(secc(d, group=group), anonymous))
    assert isinstance(refused.server_error, ssl.SSLError) and "certificate" in str(refused.server_error).lower()
    assert refused.client_reply == b""
    allowed = asyncio.run(exchange(secc(d, group=group, client_auth=tls.ClientAuth.OPTIONAL), anonymous))
    assert allowed.client_reply == b"ok" and allowed.server_peer_cn is None


def test_tls12_client_is_refused(pki_dir: tuple[Path, KeyAlgorithm]) -> None:
    d, _ = pki_dir
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    out = asyncio.run(exchange(secc(d, group=None), old))
    assert isinstance(out.server_error, ssl.SSLError) and out.server_error.reason == "UNSUPPORTED_PROTOCOL"
    assert tls.failure_kind(out.server_error) is FailureKind.TLS_VERSION
    assert out.client_error is not None and out.client_reply == b""


def test_secc_untrusted_by_the_ev_is_refused(pki_dir: tuple[Path, KeyAlgorithm], other_pki: Path) -> None:
    d, _ = pki_dir
    client = tls.evcc_context20([other_pki / "roots" / "v2g_root.pem"], certfile=d / "stores" / "ev" /
                                "vehicle.chain.pem", keyfile=d / "stores" / "ev" / "vehicle.key.pem", group=None)
    out = asyncio.run(exchange(secc(d, group=None), client))
    assert isinstance(out.client_error, ssl.SSLCertVerificationError)


def test_the_group_is_enforced(pki_dir: tuple[Path, KeyAlgorithm]) -> None:
    """Python's ssl sets one group per context: a SECC on secp521r1 and an EV on X448 find no common group."""
    d, _ = pki_dir
    out = asyncio.run(exchange(secc(d, group="secp521r1"), evcc(d, group="X448")))
    assert out.client_reply == b"" and out.client_error is not None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")
def test_a_suite_outside_table6_is_refused_after_the_handshake(pki_dir: tuple[Path, KeyAlgorithm]) -> None:
    """Python's ssl keeps TLS_AES_128_GCM_SHA256 enabled; a peer offering only that one (openssl s_client, a real
    peer) completes the handshake, and check_session20 refuses the session."""
    d, _ = pki_dir

    async def run() -> Outcome:
        out = Outcome()
        done = asyncio.Event()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            obj = writer.get_extra_info("ssl_object")
            out.server_cipher = obj.cipher()[0]
            try:
                tls.check_session20(obj)
            except tls.TlsPolicyError as exc:
                out.server_error = exc
            writer.close()
            done.set()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=secc(d, group=None))
        port = server.sockets[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3", "-ciphersuites",
            "TLS_AES_128_GCM_SHA256", "-cert", str(d / "certs" / "vehicle.pem"), "-key",
            str(d / "keys" / "vehicle.key.pem"), "-cert_chain", str(d / "stores" / "ev" / "vehicle.chain.pem"),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await asyncio.wait_for(done.wait(), 30)
        proc.stdin.close()  # type: ignore[union-attr]
        await proc.wait()
        server.close()
        await server.wait_closed()
        return out

    out = asyncio.run(run())
    assert out.server_cipher == "TLS_AES_128_GCM_SHA256"
    assert isinstance(out.server_error, tls.TlsPolicyError)
    assert out.server_error.kind is FailureKind.TLS_CIPHER_SUITE is tls.failure_kind(out.server_error)


def test_openssl_conf_restricts_the_process_to_table6(tmp_path: Path) -> None:
    """The process-wide OpenSSL configuration does what the per-context API cannot: only the Table 6 suites."""
    conf = tmp_path / "openssl.cnf"
    conf.write_text(tls.OPENSSL_CONF_ISO20)
    code = "import ssl; print(','.join(c['name'] for c in ssl.create_default_context().get_ciphers() " \
           "if c['protocol'] == 'TLSv1.3'))"
    env = {**os.environ, "OPENSSL_CONF": str(conf)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().split(",") == list(tls.TLS13_CIPHER_SUITES)
    default = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                             env={k: v for k, v in os.environ.items() if k != "OPENSSL_CONF"})
    assert "TLS_AES_128_GCM_SHA256" in default.stdout


def test_check_session20_refuses_plain_tcp() -> None:
    with pytest.raises(tls.TlsPolicyError) as err:
        tls.check_session20(None)
    assert err.value.kind is FailureKind.TLS_VERSION


def test_secc_needs_roots_for_client_auth(pki_dir: tuple[Path, KeyAlgorithm]) -> None:
    d, _ = pki_dir
    with pytest.raises(ValueError, match="roots"):
        secc(d, trust=[])
    with pytest.raises(ValueError, match="V2G root"):
        tls.evcc_context20([])
