"""End to end: our EVs (ISO 15118-2 AC/DC, DIN DC) -> SECC + bridge -> our station -> our CSMS, real sockets."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_bridge_support import bridged
from test_station_support import until

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize(("protocol", "energy"), [("din", "dc"), ("iso2", "ac"), ("iso2", "dc")])
async def test_session_becomes_a_transaction_with_the_evs_energy(tmp_path: Path, protocol: str, energy: str) -> None:
    async with bridged(tmp_path, evses=1) as rig:
        result = await rig.ev(1, protocol, energy, loops=30)
        assert result.ok, result.reason
        await until(lambda: rig.station.evses[1].tx is None)
        await rig.station.wait_queue_empty()
        [tx] = rig.csms.store.transactions("CS1")
        full = rig.csms.store.transaction("CS1", tx["transactionId"])
        assert full["state"] == "Ended" and full["stoppedReason"] == "EVDisconnected"
        iso = full["iso15118"]
        assert iso["sessionId"] == result.session_id and iso["evccId"] == "0A0B0C0D0E01"
        assert iso["protocol"] == {"din": "DIN70121", "iso2": "ISO15118-2"}[protocol]
        energy_wh = [m["value"] for m in full["meterValues"] if m["measurand"] == "Energy.Active.Import.Register"]
        assert energy_wh[-1] == pytest.approx(result.energy_wh, rel=0.05, abs=2.0)
        assert result.energy_wh > 50
        needs = [m for m in rig.csms.store.messages(station_id="CS1") if m["action"] == "NotifyEVChargingNeeds"]
        assert needs and needs[0]["payload"]["chargingNeeds"]["requestedEnergyTransfer"] == (
            "DC" if energy == "dc" else "AC_three_phase")
