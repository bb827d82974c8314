"""OCPP 2.1 Q01 at authorization, over real sockets with every part ours: the CSMS's AuthorizeResponse carries the
energy transfer modes the idToken's contract allows (its own, or the CSMS's `[v2x]` default; left out: charging
only), the station's EVSE takes them for the session, the SECC offers a -20 car only those services, and the CSMS
keeps them with the transaction. A token allowed [DC_BPT, DC]: the DC_BPT car is offered DC_BPT and discharges under
a setpoint; a token without V2X: it is offered no BPT service (DC and AC) and a discharge setpoint is Rejected
(UnsupportedRequest); over OCPP 2.0.1 (no such field) nothing changes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from helpers.bridge import Rig, bridged
from helpers.csms import api_client, running_csms
from helpers.v2x import start_transaction, station21
from helpers.wait import until

from v2gstack.ocpp.v2x import CHARGING_ONLY, ENERGY_TRANSFER_MODES
from v2gstack.station.bridge import BridgeConfig

pytestmark = pytest.mark.timeout(120)

OFFER = ("iso20", "iso2", "din")
V2X = {"idToken": "V2X-CONTRACT-1", "type": "ISO14443"}
PLAIN = {"idToken": "PLAIN-CONTRACT-1", "type": "ISO14443"}
TOKENS = [{**V2X, "allowedEnergyTransfer": ["DC_BPT", "DC"]}, PLAIN]


def _what(rig: Rig, what: str) -> list[dict[str, Any]]:
    return [r for r in rig.records() if r.get("what") == what]


def _authorize_answer(rig: Rig) -> dict[str, Any]:
    [auth] = [m for m in rig.csms.store.messages(station_id="CS1") if m["action"] == "Authorize"]
    return auth["response"]


async def test_a_v2x_token_gets_dc_bpt_offered_and_discharges(tmp_path: Path) -> None:
    """The token's contract allows [DC_BPT, DC]: the AuthorizeResponse says so, the EVSE's allowed modes are those,
    the SECC's ServiceDiscovery (after Authorization in -20) offers DC_BPT, the car selects it and a -7 kW setpoint
    through the CSMS API makes it discharge; the transaction's V2X view shows the modes and where they came from."""
    config = BridgeConfig(id_token=V2X, allow_discharge_w=10_000.0)
    async with bridged(tmp_path, evses=1, free=False, config=config, secc={"protocols": OFFER},
                       csms_config={"tokens": TOKENS}) as rig:
        assert rig.station.link.version == "2.1"
        async with api_client(rig.csms, "operator") as api:
            ev = asyncio.create_task(rig.ev(1, "iso20", "dc_bpt", control="dynamic", loops=60, interval=0.05))
            tx_id = await rig.flowing()
            assert _authorize_answer(rig)["allowedEnergyTransfer"] == ["DC_BPT", "DC"]
            assert rig.station.allowed_energy_transfer(1) == ["DC_BPT", "DC"]
            r = await api.post("/api/stations/CS1/evse/1/setpoint", json={"setpoint": -7000.0})
            assert r.status_code == 200, r.text
            assert r.json()["response"]["status"] == "Accepted"
            result = await asyncio.wait_for(ev, 60)
            tx = (await api.get(f"/api/transactions/{tx_id}")).json()
        assert result.ok and result.service == "DC_BPT", result.reason
        assert result.exported_wh > 1
        [allowed] = _what(rig, "AllowedEnergyTransfer")
        [offered] = _what(rig, "ServicesOffered")
        assert allowed["modes"] == ["DC_BPT", "DC"] and allowed["seq"] < offered["seq"]  # known before the offer
        assert offered["services"] == ["DC", "DC_BPT"] and offered["allowed"] == ["DC_BPT", "DC"]
        assert tx["v2x"]["allowedEnergyTransfer"] == ["DC_BPT", "DC"]
        assert tx["v2x"]["allowedEnergyTransferAuthorized"]["modes"] == ["DC_BPT", "DC"]


async def test_a_token_without_v2x_is_offered_dc_only_and_a_discharge_is_rejected(tmp_path: Path) -> None:
    """The token has no modes of its own and the CSMS no default: the AuthorizeResponse leaves the field out
    (charging only), the DC_BPT car is offered DC and AC, no BPT service, and selects DC; a discharge setpoint is
    Rejected with UnsupportedRequest (the car charges in DC), a charging setpoint is Accepted; nothing is exported;
    the CSMS's transaction shows charging only."""
    config = BridgeConfig(id_token=PLAIN, allow_discharge_w=10_000.0)
    async with bridged(tmp_path, evses=1, free=False, config=config, secc={"protocols": OFFER},
                       csms_config={"tokens": TOKENS}) as rig:
        async with api_client(rig.csms, "operator") as api:
            ev = asyncio.create_task(rig.ev(1, "iso20", "dc_bpt", control="dynamic", loops=60, interval=0.05))
            tx_id = await rig.flowing()
            assert "allowedEnergyTransfer" not in _authorize_answer(rig)
            await until(lambda: any(m["action"] == "NotifyEVChargingNeeds"
                                    for m in rig.csms.store.messages(station_id="CS1")))
            await rig.station.wait_queue_empty()
            r = await api.post("/api/stations/CS1/evse/1/setpoint", json={"setpoint": -7000.0})
            assert r.status_code == 200, r.text
            refused = r.json()["response"]
            r = await api.post("/api/stations/CS1/evse/1/setpoint", json={"setpoint": 6000.0})
            assert r.status_code == 200 and r.json()["response"]["status"] == "Accepted", r.text
            result = await asyncio.wait_for(ev, 60)
            tx = (await api.get(f"/api/transactions/{tx_id}")).json()
        assert refused["status"] == "Rejected" and refused["statusInfo"]["reasonCode"] == "UnsupportedRequest"
        assert "charges in DC" in refused["statusInfo"]["additionalInfo"]
        assert result.ok and result.service == "DC", result.reason
        assert result.exported_wh == 0
        [offered] = _what(rig, "ServicesOffered")
        assert offered["services"] == ["DC", "AC"] and offered["allowed"] == list(CHARGING_ONLY)  # no BPT
        assert tx["v2x"]["allowedEnergyTransfer"] == list(CHARGING_ONLY)
        assert tx["v2x"]["allowedEnergyTransferAuthorized"]["modes"] is None  # left out of the answer
        assert tx["energyExportWh"] == 0


async def test_the_csms_default_allows_tokens_without_their_own_modes(tmp_path: Path) -> None:
    """`[v2x] allowed_energy_transfer` of the CSMS: a token without modes of its own gets them."""
    config = BridgeConfig(id_token=PLAIN, allow_discharge_w=10_000.0)
    async with bridged(tmp_path, evses=1, free=False, config=config, secc={"protocols": OFFER},
                       csms_config={"tokens": TOKENS, "allowed_energy_transfer": ("DC", "DC_BPT")}) as rig:
        result = await rig.ev(1, "iso20", "dc_bpt", control="dynamic", loops=5, interval=0.05)
        assert result.ok and result.service == "DC_BPT", result.reason
        assert _authorize_answer(rig)["allowedEnergyTransfer"] == ["DC", "DC_BPT"]
        [offered] = _what(rig, "ServicesOffered")
        assert offered["services"] == ["DC", "DC_BPT"]  # AC is not among them either


async def test_over_ocpp_201_nothing_changes(tmp_path: Path) -> None:
    """OCPP 2.0.1 has no allowedEnergyTransfer: the AuthorizeResponse has none, the station is told nothing and the
    car is offered every service of the EVSE, DC_BPT included."""
    config = BridgeConfig(id_token=PLAIN, allow_discharge_w=10_000.0)
    async with bridged(tmp_path, evses=1, free=False, config=config, secc={"protocols": OFFER},
                       csms_config={"tokens": TOKENS}, versions=("2.0.1",)) as rig:
        assert rig.station.link.version == "2.0.1"
        result = await rig.ev(1, "iso20", "dc_bpt", control="dynamic", loops=5, interval=0.05)
        assert result.ok and result.service == "DC_BPT", result.reason
        assert "allowedEnergyTransfer" not in _authorize_answer(rig)
        [offered] = _what(rig, "ServicesOffered")
        assert set(offered["services"]) == {"DC", "DC_BPT", "AC", "AC_BPT"} and offered["allowed"] is None
        assert _what(rig, "AllowedEnergyTransfer") == []


async def test_the_operator_sets_a_tokens_modes_through_the_api(tmp_path: Path) -> None:
    """POST /api/idtokens takes allowedEnergyTransfer (EnergyTransferModeEnumType values, at least one) and shows
    it; an unknown mode is 422."""
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}", tokens=[]) as csms, \
            api_client(csms, "admin") as api:
        r = await api.post("/api/idtokens", json={**V2X, "allowedEnergyTransfer": ["AC_three_phase", "AC_BPT"]})
        assert r.status_code == 201, r.text
        assert r.json()["allowedEnergyTransfer"] == ["AC_three_phase", "AC_BPT"]
        r = await api.get(f"/api/idtokens/ISO14443/{V2X['idToken']}")
        assert r.json()["allowedEnergyTransfer"] == ["AC_three_phase", "AC_BPT"]
        assert (await api.post("/api/idtokens", json={**PLAIN, "allowedEnergyTransfer": ["DC_V2G"]})).status_code == 422
        assert (await api.post("/api/idtokens", json={**PLAIN, "allowedEnergyTransfer": []})).status_code == 422
        r = await api.post("/api/idtokens", json=PLAIN)
        assert r.status_code == 201 and r.json()["allowedEnergyTransfer"] is None  # the CSMS's default applies


async def test_one_token_on_two_evses_gives_both_transactions_its_modes(tmp_path: Path) -> None:
    """The same idToken authorizes two EVSEs of a 2.1 station (scripted EVs): each EVSE takes the modes and each
    of the CSMS's transactions keeps them."""
    async with running_csms(f"sqlite:///{tmp_path / 'csms.db'}") as csms, station21(csms, evses=2) as st:
        tx_ids = [await start_transaction(st, evse) for evse in (1, 2)]
        assert st.allowed_energy_transfer(1) == st.allowed_energy_transfer(2) == list(ENERGY_TRANSFER_MODES)
        await until(lambda: all((csms.store.transaction("CS1", t)["v2x"] or {}).get("allowedEnergyTransferAuthorized")
                                for t in tx_ids))
        for t in tx_ids:
            assert csms.store.transaction("CS1", t)["v2x"]["allowedEnergyTransfer"] == list(ENERGY_TRANSFER_MODES)
