"""Our EV's Plug & Charge against the reference SECC (iso15118 0.31.2) with the reference's own test PKI and TLS:
our PaymentDetails and our signed AuthorizationReq must satisfy its checks."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import josev, netns
from helpers.interop import OUR_EV_OPTIONS, REFERENCE_SECC_STOP_OK, our_command, start, wait, wait_for_text

pytestmark = [pytest.mark.reference, pytest.mark.timeout(240), pytest.mark.skipif(
    (netns.skip_reason() or (None if josev.available() else "no .venv-ref")) is not None,
    reason=str(netns.skip_reason() or "no .venv-ref (make ref-venv; needs Java)"))]


def test_our_ev_plug_and_charge_at_the_reference_secc(tmp_path: Path) -> None:
    secc_dir = tmp_path / "secc"
    josev.make_pki(secc_dir)
    certs, keys = secc_dir / "pki" / "iso15118_2" / "certs", secc_dir / "pki" / "iso15118_2" / "private_keys"
    chain = tmp_path / "contract_chain.pem"
    chain.write_bytes(b"".join((certs / n).read_bytes() for n in ("contractLeafCert.pem", "moSubCA2Cert.pem",
                                                                  "moSubCA1Cert.pem")))
    link = netns.VethLink.create()
    try:
        argv, env = josev.secc_command(link.command(link.evse_ns, []), secc_dir, link.evse_if, ["iso2"], tls=True)
        env["AUTH_MODES"] = "PnC"
        secc = josev.start(argv, env, secc_dir, "secc.log")
        try:
            wait_for_text(secc_dir / "secc.log", "UDP server started", secc, 90)
            ev = start(our_command(link, link.ev_ns, [
                "ev", "--iface", link.ev_if, "--protocol", "iso2", "--energy", "ac", *OUR_EV_OPTIONS, "--tls",
                "--v2g-root", str(certs / "v2gRootCACert.pem"), "--auth", "pnc", "--contract-chain", str(chain),
                "--contract-key", str(keys / "contractLeaf.key"), "--key-password",
                (keys / "contractLeafPassword.txt").read_text().strip(), "-v"]), tmp_path / "ev.log")
            rc = wait(ev, 150)
            time.sleep(0.5)
        finally:
            secc.kill()
            secc.wait(10)
    finally:
        link.destroy()
    ours = (tmp_path / "ev.log").read_text(errors="replace")
    theirs = (secc_dir / "secc.log").read_text(errors="replace")
    assert rc == 0, ours[-3000:] + "\n---\n" + theirs[-3000:]
    assert "PaymentDetailsReq" in ours and REFERENCE_SECC_STOP_OK in theirs
    assert '"SelectedPaymentOption": "Contract"' in theirs or "Contract" in theirs
