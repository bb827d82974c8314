"""A Plug & Charge station (`v2gstack station --pnc --secc-cert ...`) serves TCP and TLS at once, on loopback without
root: our EVs (`v2gstack ev`) find it by SDP and get the transport they ask for: DIN 70121 and ISO 15118-2 EIM over
TCP, ISO 15118-2 over TLS; Contract payment is offered over TLS only."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import pytest
from helpers.csms import PASSWORD, csms_url, running_csms

from v2gstack.iso15118.devcerts import make_secc_chain

pytestmark = pytest.mark.timeout(120)


async def _ev(workdir: Path, name: str, sdp_port: int, *args: str) -> tuple[int, str, list[dict]]:
    """Run `v2gstack ev` to the end of its session: (exit code, output, its JSON message log)."""
    log = workdir / f"{name}.jsonl"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "v2gstack", "ev", "--sdp-port", str(sdp_port), "--loops", "3", "--loop-interval", "0",
        "--speedup", "60", "--log-json", str(log), "-q", "-v", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    messages = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return proc.returncode or 0, out.decode(errors="replace"), messages


def _payment_options(messages: list[dict]) -> list[str]:
    """The PaymentOptionList of the ServiceDiscoveryRes the EV received (DIN and -2 alike)."""
    [res] = [m for m in messages if m["message"] == "ServiceDiscoveryRes"]
    body = res["json"]["V2G_Message"]["Body"]["ServiceDiscoveryRes"]
    return list((body.get("PaymentOptionList") or body["PaymentOptions"])["PaymentOption"])  # -2 or DIN


async def test_pnc_station_serves_tcp_and_tls_to_our_evs(tmp_path: Path) -> None:
    chain = make_secc_chain()
    (tmp_path / "secc-chain.pem").write_bytes(chain.chain_pem)
    (tmp_path / "secc-key.pem").write_bytes(chain.key_pem)
    (tmp_path / "v2g-root.pem").write_bytes(chain.root_pem)
    traces = tmp_path / "traces"
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}") as csms:
        station = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "v2gstack", "station", "--csms", csms_url(csms), "--id", "CS1", "--password",
            PASSWORD, "--pnc", "--secc-cert", str(tmp_path / "secc-chain.pem"), "--secc-key",
            str(tmp_path / "secc-key.pem"), "--secc-port", "0", "--sdp-port", "0", "--free-charging",
            "--trace-dir", str(traces), "--time-scale", str(1 / 60),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            assert station.stdout is not None
            seen = b""
            while b"SECC at" not in seen:
                line = await asyncio.wait_for(station.stdout.readline(), 30)
                assert line, seen.decode(errors="replace")
                seen += line
            where = dict(re.findall(r"(tcp|tls|sdp) \[[^\]]+\]:(\d+)", seen.decode()))
            assert {"tcp", "tls", "sdp"} <= set(where), seen.decode()  # both transports at once
            sdp = int(where["sdp"])
            din = await _ev(tmp_path, "din", sdp, "--protocol", "din", "--energy", "dc", "--evcc-id", "0A0000000001")
            eim = await _ev(tmp_path, "eim", sdp, "--protocol", "iso2", "--energy", "ac", "--evcc-id", "0A0000000002")
            tls = await _ev(tmp_path, "tls", sdp, "--protocol", "iso2", "--energy", "dc", "--evcc-id", "0A0000000003",
                            "--tls", "--v2g-root", str(tmp_path / "v2g-root.pem"))
        finally:
            station.terminate()
            await asyncio.wait_for(station.wait(), 30)
    for rc, out, _ in (din, eim, tls):
        assert rc == 0, out
    assert "over TCP" in din[1] and "over TCP" in eim[1] and "over TLSv1.2" in tls[1]
    assert "SECC offers" not in din[1] + eim[1] + tls[1]  # no EV was pointed at a transport it did not ask for
    assert _payment_options(din[2]) == ["ExternalPayment"]
    assert _payment_options(eim[2]) == ["ExternalPayment"]  # no Contract without TLS
    assert set(_payment_options(tls[2])) == {"Contract", "ExternalPayment"}
    started = {}
    for timeline in traces.glob("*.jsonl"):
        records = [json.loads(line) for line in timeline.read_text().splitlines()]
        links = {k: v for r in records if r["kind"] == "link" for k, v in r.items()}
        for r in records:
            if r.get("what") == "SessionStarted":
                started[links["evccId"]] = r["tls"]
    assert started == {"0A0000000001": False, "0A0000000002": False, "0A0000000003": True}
