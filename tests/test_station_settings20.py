"""The station's ISO 15118-20 settings: `iso20_pki` becomes the SECCs' TLS 1.3 context (vehicle certificates
required), `allow_discharge_w` each EVSE's BridgeConfig, and a folder that will not load is refused naming its key."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from v2gstack.pki.hierarchy import Edition, PkiConfig, create_pki
from v2gstack.pki.store import write_pki
from v2gstack.settings_file import SettingsError
from v2gstack.station.assemble import bridge_configs, secc_plan
from v2gstack.station.settings import StationSettings


def _settings(**iso: object) -> StationSettings:
    s = StationSettings()
    s.station.id, s.csms.url = "CS1", "ws://127.0.0.1:9/ocpp"
    s.iso15118.enabled = True
    s.iso15118.protocols = ["iso20", "iso2", "din"]
    for key, value in iso.items():
        setattr(s.iso15118, key, value)
    return s


def test_iso20_pki_is_the_tls13_listener(tmp_path: Path) -> None:
    write_pki(create_pki(PkiConfig(edition=Edition.ISO20)), tmp_path / "pki20")
    s = _settings(iso20_pki=str(tmp_path / "pki20"), allow_discharge_w=7000.0, pnc=True)
    assert list(s.iso15118.check()) == []
    plan = secc_plan(s)
    assert plan is not None and plan.tls is not None and plan.protocols == ("iso20", "iso2", "din")
    assert plan.tls.minimum_version is ssl.TLSVersion.TLSv1_3 and plan.tls.verify_mode is ssl.CERT_REQUIRED
    assert {n: c.allow_discharge_w for n, c in bridge_configs(s).items()} == {1: 7000.0}


def test_a_folder_that_will_not_load_names_its_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as e:
        secc_plan(_settings(iso20_pki=str(tmp_path / "missing")))
    assert e.value.path == ("iso15118", "iso20_pki")


def test_iso20_pki_needs_iso20_offered(tmp_path: Path) -> None:
    s = _settings(iso20_pki=str(tmp_path), protocols=["iso2"])
    assert [key for key, _ in s.iso15118.check()] == [("iso20_pki",)]
