"""Failover the OCPP way: the station holds several NetworkConnectionProfiles (NetworkConfigurationPriority), moves
to the next CSMS address when its CSMS dies (SIGKILL), and replays what was not acknowledged; two CSMS processes on
one PostgreSQL database (--node-id: the owner record follows the station) store every event exactly once.
SetNetworkProfile refuses a slot not offered, a security downgrade and a URL that does not fit its profile."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.csms import PASSWORD, SCALE, TOKEN, make_db_url
from helpers.csms_process import free_port, start_csms, stop_csms, wait_listening
from helpers.station import record_emitted
from helpers.wait import until

from v2gstack.csms.ownership import op_station_owner
from v2gstack.csms.store import Store
from v2gstack.ocpp import BackOff
from v2gstack.station import ChargingStation, StationConfig
from v2gstack.station.device_model import DeviceModel, standard_variables
from v2gstack.station.network_profiles import NetworkProfiles

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from make_db_url("postgresql", tmp_path)


def _model() -> DeviceModel:
    return DeviceModel(standard_variables("CS1", 1, model="m", vendor="v", security_profile=1, max_power_w=11000.0))


def _profile(url: str, security_profile: int = 1) -> dict[str, Any]:
    return {"ocppVersion": "OCPP20", "ocppTransport": "JSON", "ocppCsmsUrl": url, "messageTimeout": 30,
            "securityProfile": security_profile, "ocppInterface": "Wired0"}


def test_network_profiles_in_priority_order_and_set_network_profile_checks() -> None:
    model = _model()
    profiles = NetworkProfiles(model, ["ws://a/ocpp", "ws://b/ocpp"], security_profile=1)
    assert model.value("OCPPCommCtrlr", "NetworkConfigurationPriority") == "0,1"
    assert profiles.urls() == ["ws://a/ocpp", "ws://b/ocpp"]
    assert profiles.set_profile({"configurationSlot": 2, "connectionData": _profile("ws://c/ocpp")}) == {
        "status": "Accepted"}
    model.put("OCPPCommCtrlr", "NetworkConfigurationPriority", "2,0")
    assert profiles.urls() == ["ws://c/ocpp", "ws://a/ocpp"]
    refused = [{"configurationSlot": 9, "connectionData": _profile("ws://d/ocpp")},  # not an offered slot
               {"configurationSlot": 1, "connectionData": _profile("ws://d/ocpp", 0)},  # a downgrade
               {"configurationSlot": 1, "connectionData": _profile("ws://d/ocpp", 2)}]  # profile 2 needs wss://
    for p in refused:
        answer = profiles.set_profile(p)
        assert answer["status"] == "Rejected" and answer["statusInfo"]["reasonCode"] == "InvalidValue"
    assert profiles.urls() == ["ws://c/ocpp", "ws://a/ocpp"]


async def test_station_moves_to_the_other_csms_when_its_csms_is_killed(pg_url: str, tmp_path: Path) -> None:
    """Two CSMS processes on one database; the station's CSMS is SIGKILLed mid-transaction; the station tries its
    next NetworkConnectionProfile, boots there, replays its queue; every event is stored exactly once."""
    store = Store(pg_url)
    store.add_station("CS1", PASSWORD)
    store.put_id_token(TOKEN["idToken"], TOKEN["type"])
    ports = [free_port(), free_port()]
    logs = [tmp_path / "csms-a.log", tmp_path / "csms-b.log"]
    procs = [start_csms(pg_url, port, log, node) for port, log, node in zip(ports, logs, ("node-a", "node-b"),
                                                                          strict=True)]
    urls = [f"ws://127.0.0.1:{port}/ocpp" for port in ports]
    st = ChargingStation(StationConfig("CS1", urls[0], fallback_urls=(urls[1],), password=PASSWORD,
                                       time_scale=SCALE, boot_retry_s=1.0, backoff=BackOff(0.05, 0.05, 2),
                                       call_timeout=5.0, ping_interval=None))
    st.model.put("SampledDataCtrlr", "TxUpdatedInterval", "1")
    st.model.put("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "2")
    emitted = record_emitted(st)
    try:
        for port in ports:
            await wait_listening(port)
        await st.start()
        await until(lambda: st.link.registration == "Accepted", 30)
        assert st.link.client.csms_url == urls[0]
        await until(lambda: (store.run(op_station_owner, "CS1") or ("",))[0] == "node-a")
        st.set_ev(1, power_w=22000.0, soc=10.0, battery_wh=80000.0)
        await st.plug_in(1)
        await st.present_token(1, TOKEN)
        await until(lambda: len(emitted) >= 5)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        killed = time.monotonic()
        await until(lambda: not st.connected)
        await until(lambda: st.connected and st.link.client.csms_url == urls[1], 30)
        moved_after = time.monotonic() - killed
        print(f"station on the other CSMS {moved_after * 1000:.0f} ms after the SIGKILL")
        await until(lambda: (store.run(op_station_owner, "CS1") or ("",))[0] == "node-b")  # node B took it over
        at_move = len(emitted)
        await until(lambda: len(emitted) >= at_move + 3)
        await st.present_token(1, TOKEN)
        await st.unplug(1)
        await st.wait_queue_empty()
    finally:
        await st.stop()
        stop_csms(procs[1], logs[1])
    try:
        tx_ids = {e["transactionInfo"]["transactionId"] for e in emitted}
        assert len(tx_ids) == 1
        tx = store.transaction("CS1", tx_ids.pop())
        assert tx is not None and tx["state"] == "Ended"
        assert [e["seqNo"] for e in tx["events"]] == [e["seqNo"] for e in emitted] == list(range(len(emitted)))
        sent = sum(len(mv["sampledValue"]) for e in emitted for mv in e.get("meterValue", []))
        assert len(tx["meterValues"]) == sent
    finally:
        store.close()
