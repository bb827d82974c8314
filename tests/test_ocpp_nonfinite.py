"""Numbers JSON cannot carry: `1e999` (inf in Python) is refused like NaN and Infinity, with the same CallError
(FormatViolation; 1.6 spells it FormationViolation), by the engine and by our CSMS over a real websocket; nothing is
stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.csms import PASSWORD, api_client, csms_url, running_csms
from helpers.ocpp import raw_peer
from helpers.wait import until
from sqlalchemy import select

from v2gstack.csms.models import MeterValue
from v2gstack.ocpp.engine import Reply, RpcEngine
from v2gstack.ocpp.router import Router


def meter_values(value: str) -> str:
    """A MeterValues CALL whose sampled value is the literal `value`."""
    return ('[2,"m1","MeterValues",{"evseId":1,"meterValue":[{"timestamp":"2024-05-01T12:00:00Z",'
            f'"sampledValue":[{{"value":{value}}}]}}]}}]')


@pytest.mark.parametrize("literal", ["1e999", "-1E+400", "1" * 400 + ".0", "NaN", "Infinity"])
@pytest.mark.parametrize(("version", "code"), [("2.0.1", "FormatViolation"), ("1.6", "FormationViolation")])
def test_engine_refuses_non_finite_numbers(literal: str, version: str, code: str) -> None:
    router = Router()
    router.add("MeterValues", lambda p: {})
    ev = RpcEngine(version, handled=router).receive(meter_values(literal))
    assert isinstance(ev, Reply) and ev.error.code.wire(RpcEngine(version).version) == code
    assert ev.text.startswith(f'[4,"-1","{code}"')


def test_engine_keeps_large_finite_numbers() -> None:
    router = Router()
    router.add("MeterValues", lambda p: {})
    ev = RpcEngine("2.0.1", handled=router).receive(meter_values("1.5e308"))
    assert not isinstance(ev, Reply) and ev.payload["meterValue"][0]["sampledValue"][0]["value"] == 1.5e308


async def test_csms_refuses_1e999_over_the_socket(tmp_path: Path) -> None:
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, \
            raw_peer(csms_url(csms), "CS1", password=PASSWORD) as peer:
        answer = await peer.exchange(meter_values("1e999"))
        assert answer[:3] == [4, "-1", "FormatViolation"], answer
        ok = await peer.exchange(meter_values("12.5"))
        assert ok == [3, "m1", {}]
        with csms.store.session() as s:
            values = s.execute(select(MeterValue.value)).scalars().all()
        assert values == [12.5]  # only the finite one


async def test_api_bodies_refuse_non_finite_numbers(tmp_path: Path) -> None:
    """The REST API parses bodies as RFC 8259 JSON too: 422 json_invalid, nothing sent to the station."""
    async with running_csms(f"sqlite:///{tmp_path / 'c.db'}") as csms, \
            raw_peer(csms_url(csms), "CS1", password=PASSWORD), \
            api_client(csms) as api:
        await until(lambda: csms.online("CS1"))
        for literal in ("1e999", "NaN", "-Infinity"):
            r = await api.post("/api/stations/CS1/data-transfer", content=f'{{"vendorId":"v","data":{literal}}}',
                               headers={"content-type": "application/json"})
            assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid", r.text
        r = await api.post("/api/idtokens", content='{"idToken":"AB","type":"ISO14443","status":"Accepted","x":1e999}',
                          headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
