"""GET /metrics after a real Plug & Charge session (our CSMS + our station + our EV over TLS): the counters match
what happened, the exposition parses, and only a viewer or the scrape token may read it."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from helpers.csms import PASSWORD, api_token, auth, our_station, running_csms
from helpers.dashboard import served
from helpers.pnc import contract_of
from helpers.wait import until

from v2gstack.csms.dashboard.live import live_hub
from v2gstack.csms.exposition import Counter, Histogram
from v2gstack.csms.metrics import metrics_of
from v2gstack.csms.service import CommandError
from v2gstack.iso15118 import EvccConfig, EVModel, run_evcc
from v2gstack.iso15118.devcerts import make_secc_chain
from v2gstack.iso15118.tls import evcc_context
from v2gstack.pki.hierarchy import PkiConfig, create_pki
from v2gstack.pki.profiles import Kind
from v2gstack.pki.store import cert_pem
from v2gstack.station.bridge import start_bridged_seccs

pytestmark = pytest.mark.timeout(120)
SAMPLE = re.compile(r"^([a-z0-9_]+)(?:\{(.*)\})? (\S+)$")


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of an exposition text (every line must be a comment or a well-formed sample)."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            assert re.match(r"^# (HELP|TYPE) [a-z0-9_]+ ", line) or not line, line
            continue
        m = SAMPLE.match(line)
        assert m, f"malformed sample line: {line!r}"
        labels = frozenset(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_exposition_escapes_and_accumulates() -> None:
    c = Counter("x_total", "help", ("code",))
    c.inc('a"b\\c\nd')
    h = Histogram("h_seconds", "help", ("action",), (0.1, 1.0))
    for v in (0.05, 0.5, 5.0):
        h.observe(v, "Heartbeat")
    text = "\n".join(c.lines() + h.lines())
    assert 'x_total{code="a\\"b\\\\c\\nd"} 1' in text
    samples = parse(text)
    assert value(samples, "h_seconds_bucket", action="Heartbeat", le="0.1") == 1
    assert value(samples, "h_seconds_bucket", action="Heartbeat", le="1") == 2
    assert value(samples, "h_seconds_bucket", action="Heartbeat", le="+Inf") == 3
    assert value(samples, "h_seconds_count", action="Heartbeat") == 3
    assert value(samples, "h_seconds_sum", action="Heartbeat") == pytest.approx(5.55)


@pytest.mark.parametrize("version", ["2.1", "1.6"])
async def test_metrics_count_a_plug_and_charge_session(tmp_path: Path, version: str) -> None:
    station_kw: dict = {"versions": ("1.6",)} if version == "1.6" else {}  # type: ignore[type-arg]
    pki = create_pki(PkiConfig(ocsp_url="http://127.0.0.1:9/ocsp"))  # nobody answers there: soft-fail
    chain = make_secc_chain()
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}", tokens=[], ocsp_allow=("127.0.0.0/8",)) as csms:
        metrics = metrics_of(csms)  # counting starts before the station connects
        hub = live_hub(csms)  # and the dashboard's live view (1.6 transactions appear as 2.x events there)
        csms.store.add_trust_anchor("MORootCertificate", cert_pem(pki.cert(Kind.MO_ROOT)))
        async with our_station(csms, password=PASSWORD, time_scale=1 / 60, max_power_w=50_000.0,
                               tx_interval=1, **station_kw) as st:
            st.model.put("ISO15118Ctrlr", "PnCEnabled", "true")
            await st.wait_accepted()
            [bridge] = await start_bridged_seccs(st, port=0, sdp_port=0, tls=chain.server_context(),
                                                 trace_dir=tmp_path / "traces")
            try:
                config = EvccConfig(protocols=("iso2",), energy="dc", loops=10, loop_interval=0.05,
                                    payment="Contract", contract=contract_of(pki), ongoing_interval=0.02)
                result = await run_evcc(config, EVModel(speedup=60), tls=True,
                                        tls_context=evcc_context(cadata=chain.root_pem.decode()),
                                        secc=bridge.server.addresses()["tls"])
                assert result.ok, result.reason
                await until(lambda: st.evses[1].tx is None)
                await st.wait_queue_empty()
                if version != "1.6":
                    with pytest.raises(CommandError) as refused:  # a CALLERROR from the station, counted as rx
                        await csms.call("CS1", "GetMonitoringReport", {"requestId": 1})  # it has no monitors
            finally:
                assert bridge.server is not None
                await bridge.server.close()
            async with served(csms, metrics_token="scrape-secret-0123456789") as url, \
                    httpx.AsyncClient(base_url=url) as web:
                assert (await web.get("/metrics")).status_code == 401
                assert (await web.get("/metrics", headers=auth("scrape-secret-0123456789"))).status_code == 200
                assert (await web.get("/api/stations", headers=auth("scrape-secret-0123456789"))).status_code == 401
                r = await web.get("/metrics", headers=auth(api_token(csms, "viewer")))
                assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
                samples = parse(r.text)
    [tx] = csms.store.transactions("CS1")
    full = csms.store.transaction("CS1", tx["transactionId"])
    assert full["state"] == "Ended"
    [live] = hub.sessions.values()
    assert live.transaction_id == tx["transactionId"] and live.state == "Ended" and live.protocol == (
        "ISO15118-2" if version != "1.6" else None)  # 1.6 sends the ISO facts apart, in DataTransfer
    assert live.total_points >= 2 and max(p[1] or 0 for p in live.points) > 0  # power seen while charging
    m = "v2gstack_csms_ocpp_messages_total"
    assert value(samples, "v2gstack_csms_transaction_events_total", event="Started") == 1
    assert value(samples, "v2gstack_csms_transaction_events_total", event="Ended") == 1
    assert value(samples, "v2gstack_csms_sessions_total", protocol="ISO15118-2") == 1
    assert value(samples, m, action="BootNotification", direction="rx", type="call") == 1
    authorize = [x for x in csms.store.messages(station_id="CS1") if x["action"] == "Authorize"]
    assert len(authorize) == 1 and authorize[0]["response"]["certificateStatus"] == "Accepted"
    assert value(samples, "v2gstack_csms_authorizations_total", source="Authorize", status="Accepted") == 1
    assert value(samples, "v2gstack_csms_pnc_outcomes_total", action="Authorize", status="Accepted") == 1
    assert value(samples, "v2gstack_csms_db_commit_seconds_count") >= 1
    connected = {dict(k[1])["ocpp_version"]: v for k, v in samples.items()
                 if k[0] == "v2gstack_csms_stations_connected"}
    assert connected[version] == 1 and sum(connected.values()) == 1  # scraped while CS1 was connected
    assert ("v2gstack_csms_store_queue_depth", frozenset()) in samples
    if version == "1.6":  # StartTransaction / StopTransaction, the Authorize inside a DataTransfer
        for action in ("StartTransaction", "StopTransaction"):
            assert value(samples, m, action=action, direction="rx", type="call") == 1
            assert value(samples, "v2gstack_csms_ocpp_handling_seconds_count", action=action) == 1
        [start] = [x for x in csms.store.messages(station_id="CS1") if x["action"] == "StartTransaction"]
        status = start["response"]["idTagInfo"]["status"]  # what the CSMS answered, as counted
        assert value(samples, "v2gstack_csms_authorizations_total", source="StartTransaction", status=status) == 1
        assert value(samples, m, action="DataTransfer", direction="rx", type="call") >= 2  # Authorize, facts
        return
    n_events = len(full["events"])
    assert n_events >= 3
    assert value(samples, m, action="TransactionEvent", direction="rx", type="call") == n_events
    assert value(samples, m, action="TransactionEvent", direction="tx", type="result") == n_events
    assert value(samples, "v2gstack_csms_ocpp_handling_seconds_count", action="TransactionEvent") == n_events
    assert value(samples, "v2gstack_csms_transaction_events_total", event="Updated") == n_events - 2
    assert value(samples, m, action="Authorize", direction="rx", type="call") == 1
    code = refused.value.details["code"]
    assert value(samples, "v2gstack_csms_ocpp_callerrors_total", code=code, direction="rx") == 1
    assert value(samples, m, action="GetMonitoringReport", direction="tx", type="call") == 1
    assert value(samples, m, action="GetMonitoringReport", direction="rx", type="error") == 1
    assert value(samples, "v2gstack_csms_db_operations_total") >= n_events
    assert metrics.latency.count("TransactionEvent") == n_events
