"""Plug & Charge latency across both protocols on loopback, everything real: TLS 1.2 between EV and SECC, the bridge,
OCPP Authorize with the contract chain, the CSMS's chain check and an OCSP request to our responder, SQLite.

1. Plug-in -> Authorization OK: from the EV's first SDP request to the AuthorizationRes (Finished, OK) it receives,
   with a contract already on the EV (PaymentDetails, signed AuthorizationReq, Authorize, OCSP).
2. Certificate installation: from the EV sending CertificateInstallationReq to it receiving the signed response
   (Get15118EVCertificate to the CSMS, which checks the OEM chain, issues, encrypts and signs).

    .venv/bin/python bench/pnc_latency.py --sessions 20

The issue's target: Plug & Charge authorization p99 <= 150 ms. No open stack does the whole path in one process, so
there is no peer to run beside it; the figures are absolute and move with the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from v2gstack.csms.service import Csms, CsmsConfig  # noqa: E402
from v2gstack.csms.store import Store  # noqa: E402
from v2gstack.iso15118 import EvccConfig, EVModel, run_evcc  # noqa: E402
from v2gstack.iso15118.devcerts import make_secc_chain  # noqa: E402
from v2gstack.iso15118.evcc import Contract, OemCredentials  # noqa: E402
from v2gstack.iso15118.msglog import MessageRecord  # noqa: E402
from v2gstack.iso15118.tls import evcc_context  # noqa: E402
from v2gstack.ocpp import BackOff  # noqa: E402
from v2gstack.pki.hierarchy import PkiConfig, create_pki  # noqa: E402
from v2gstack.pki.ocsp import OcspResponder, RevocationList, serve  # noqa: E402
from v2gstack.pki.profiles import Kind  # noqa: E402
from v2gstack.pki.store import cert_pem, write_pki  # noqa: E402
from v2gstack.station import ChargingStation, StationConfig  # noqa: E402
from v2gstack.station.bridge import start_bridged_seccs  # noqa: E402

PASSWORD = "bench-station-password"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="v2gstack-pnc-bench-"))
    responder = OcspResponder([], RevocationList(folder / "pki" / "revoked.json"))
    ocsp_server = await serve(responder)
    pki = create_pki(PkiConfig(ocsp_url=f"http://127.0.0.1:{ocsp_server.sockets[0].getsockname()[1]}/ocsp"))
    write_pki(pki, folder / "pki")
    responder.cas = OcspResponder.from_pki_dir(folder / "pki").cas
    store = Store(f"sqlite:///{folder / 'csms.db'}")
    store.add_station("CS1", PASSWORD)
    store.add_trust_anchor("MORootCertificate", cert_pem(pki.cert(Kind.MO_ROOT)))
    csms = Csms(store, CsmsConfig(ping_interval=None, pki_dir=str(folder / "pki"),
                                  ocsp_allow=(f"127.0.0.1:{ocsp_server.sockets[0].getsockname()[1]}",)))
    await csms.start()
    st = ChargingStation(StationConfig("CS1", f"ws://127.0.0.1:{csms.port}/ocpp", password=PASSWORD,
                                       backoff=BackOff(0.05, 0.05, 1), ping_interval=None))
    st.model.put("ISO15118Ctrlr", "PnCEnabled", "true")
    st.model.put("SampledDataCtrlr", "TxUpdatedInterval", "3600")
    await st.start()
    await st.wait_accepted()
    chain = make_secc_chain()
    [bridge] = await start_bridged_seccs(st, port=0, sdp_port=0, tls=chain.server_context())
    assert bridge.server is not None
    sdp = bridge.server.addresses()["sdp"][1]
    context = evcc_context(cadata=chain.root_pem.decode())
    leaf = pki.items[Kind.CONTRACT]
    emaid = leaf.cert.subject.rfc4514_string().split("CN=")[1].split(",")[0].replace("-", "")
    from cryptography.hazmat.primitives.serialization import Encoding

    contract = Contract(emaid, [c.public_bytes(Encoding.DER) for c in [leaf.cert, *pki.intermediates(Kind.CONTRACT)]],
                        leaf.key)
    oem = OemCredentials(pki.cert(Kind.OEM_PROV), pki.items[Kind.OEM_PROV].key, [pki.cert(Kind.V2G_ROOT)])

    async def session(config: EvccConfig) -> list[MessageRecord]:
        records: list[MessageRecord] = []
        result = await run_evcc(config, EVModel(), tls=True, tls_context=context, sdp_port=sdp,
                                on_message=records.append)
        assert result.ok, result.reason
        await st.wait_queue_empty()
        return records

    auth_ms: list[float] = []
    install_ms: list[float] = []
    await session(EvccConfig(protocols=("iso2",), energy="ac", loops=1, payment="Contract", contract=contract))
    for _ in range(args.sessions):
        t0 = time.time()
        records = await session(EvccConfig(protocols=("iso2",), energy="ac", loops=1, payment="Contract",
                                           contract=contract, ongoing_interval=0.005))
        done = next(r for r in records if r.direction == "rx" and r.name == "AuthorizationRes"
                    and r.doc["V2G_Message"]["Body"]["AuthorizationRes"]["EVSEProcessing"] == "Finished")
        auth_ms.append((done.time - t0) * 1000)
    for _ in range(args.sessions):
        records = await session(EvccConfig(protocols=("iso2",), energy="ac", loops=1, payment="Contract", oem=oem))
        sent = next(r for r in records if r.direction == "tx" and r.name == "CertificateInstallationReq")
        got = next(r for r in records if r.direction == "rx" and r.name == "CertificateInstallationRes")
        install_ms.append((got.time - sent.time) * 1000)
    await bridge.server.close()
    await st.stop()
    await csms.close()
    store.close()
    ocsp_server.close()
    print(f"plug-in (SDP) -> AuthorizationRes OK over TLS, with Authorize + chain check + OCSP, {len(auth_ms)} "
          f"sessions: p50 {statistics.median(auth_ms):.1f} ms, p99 {pct(auth_ms, 0.99):.1f} ms, "
          f"max {max(auth_ms):.1f} ms")
    print(f"CertificateInstallationReq -> Res through station and CSMS, {len(install_ms)} installations: "
          f"p50 {statistics.median(install_ms):.1f} ms, p99 {pct(install_ms, 0.99):.1f} ms, "
          f"max {max(install_ms):.1f} ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=20)
    logging.basicConfig(level=logging.ERROR)
    asyncio.run(main(ap.parse_args()))
