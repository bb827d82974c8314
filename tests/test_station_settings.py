"""Station settings: `v2gstack station --config` with examples/station.toml, flags over the file, `--print-config`
masked, clear refusals, the one mapping onto the device model, and a station run from the example file."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from v2gstack.csms.service import Csms, CsmsConfig
from v2gstack.csms.store import Store
from v2gstack.settings_file import MASK, from_dict
from v2gstack.station.assemble import assemble, bridge_configs, device_model_values, secc_plan
from v2gstack.station.bridge.pacer import RenegotiationPacing
from v2gstack.station.cli import app
from v2gstack.station.device_model import VENDOR_COMPONENT, DeviceModel, standard_variables
from v2gstack.station.settings import StationSettings, load_station_settings

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "station.toml"
EXAMPLE_DATA = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
SECRETS = ("tls-key-pass-0815", "0123456789abcdef-pass", "04A1B2C3-EIM")


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The station command in process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_example_loads_and_prints_masked() -> None:
    """examples/station.toml loads; `--print-config` shows its values as TOML that loads back, secrets masked."""
    code, out, err = run("--config", str(EXAMPLE), "--print-config")
    assert code == 0, err
    printed = tomllib.loads(out)
    assert printed["csms"]["password"] == MASK and EXAMPLE_DATA["csms"]["password"] not in out
    assert printed["station"] == {**printed["station"], **EXAMPLE_DATA["station"]}
    assert [e["max_power_w"] for e in printed["evse"]] == [e["max_power_w"] for e in EXAMPLE_DATA["evse"]]
    assert printed["iso15118"]["mirror"] == EXAMPLE_DATA["iso15118"]["mirror"]
    assert printed["iso15118"]["eim_token"] == MASK and EXAMPLE_DATA["iso15118"]["eim_token"] not in out
    again = from_dict(StationSettings, printed, "printed")
    again.csms.password = EXAMPLE_DATA["csms"]["password"]
    again.iso15118.eim_token = EXAMPLE_DATA["iso15118"]["eim_token"]
    assert again == load_station_settings(str(EXAMPLE)).tree


def test_flags_given_win_over_the_file_and_defaults_do_not(tmp_path: Path) -> None:
    """A flag given explicitly (or its environment variable) overrides the file; a flag left at its default does
    not; `--evses` adds EVSEs like the last one; secrets from flags are masked as well."""
    f = tmp_path / "s.toml"
    f.write_text(EXAMPLE.read_text(encoding="utf-8").replace("sdp_port = 15118", "sdp_port = 20000")
                 + "\n", encoding="utf-8")
    f.write_text(f.read_text(encoding="utf-8").replace("# time_scale = 1.0", "time_scale = 0.5"), encoding="utf-8")
    code, out, err = run("--config", str(f), "--print-config")
    assert code == 0, err
    printed = tomllib.loads(out)
    assert printed["iso15118"]["sdp_port"] == 20000 and printed["time_scale"] == 0.5  # --sdp-port's default: no
    code, out, err = run("--config", str(f), "--print-config", "--sdp-port", "15118", "--csms", "wss://c.example/o",
                         "--evses", "3", "--secc-cert", "chain.pem", "--secc-key", "key.pem", "--pnc",
                         "--iso-token", SECRETS[2], "--free-charging",
                         env={"V2GSTACK_SECC_KEY_PASSWORD": SECRETS[0]})
    assert code == 0, err
    printed = tomllib.loads(out)
    iso = printed["iso15118"]
    assert iso["sdp_port"] == 15118 and printed["csms"]["url"] == "wss://c.example/o"
    assert [e["max_power_w"] for e in printed["evse"]] == [22000.0, 50000.0, 50000.0]
    assert iso["pnc"] is True and iso["tls_cert"] == "chain.pem" and printed["authorization"]["free_charging"]
    assert iso["tls_key_password"] == MASK and iso["eim_token"] == MASK
    assert not any(secret in out for secret in SECRETS)


def test_bad_files_and_values_are_refused_with_the_file_and_key(tmp_path: Path) -> None:
    """Exit 2 with one line naming the file (or flag) and the key; nothing secret in it."""
    bad = tmp_path / "station.toml"
    cases = [
        ('[station]\nid = "CS1"\n[csms]\nurl = "ws://h/o"\n[iso15118]\nsecc_port = "abc"\n',
         'station.toml: [iso15118] secc_port: expected an integer, got "abc"'),
        ('[station]\nid = "CS1"\n[csms]\nurl = "ws://h/o"\n[[evse]]\nmax_power_w = nan\n',
         "station.toml: [[evse]] #1 max_power_w: expected a finite number, got nan"),
        ('[station]\nid = "CS1"\n[csms]\nurl = "ws://h/o"\npasword = "x"\n',
         "station.toml: [csms] pasword: unknown key (known here: ca, client_cert, client_key, fallback_urls, "
         "ocpp_versions, password, ping_interval, url)"),
        ('[station]\nid = "CS1"\n[csms]\nurl = "ws://h/o"\npassword = 1234567890123456\n',
         "station.toml: [csms] password: expected a string, got an integer"),
        ('[station]\nid = "CS1"\n[csms]\nurl = "ws://h/o"\n[iso15118]\nenabled = true\npnc = true\n',
         "station.toml: [iso15118] pnc: Plug & Charge needs tls_cert (--secc-cert) or iso20_pki (--iso20-pki): "
         "Contract payment is offered over TLS only"),
        ('[station]\nid = "CS1"\n[csms]\nurl = "ws://h/o"\n[iso15118]\nenabled = true\ntls_cert = "c.pem"\n'
         'iso20_pki = "pki20"\nprotocols = ["iso20", "iso2"]\n',
         "station.toml: [iso15118] iso20_pki: one TLS listener per EVSE: tls_cert (TLS 1.2, ISO 15118-2) or "
         "iso20_pki (TLS 1.3, ISO 15118-20), not both"),
        ('[station]\nid = "CS1"\n[csms]\nurl = "ws://h/o"\n[iso15118]\nenabled = true\nallow_discharge_w = -1\n',
         "station.toml: [iso15118] allow_discharge_w: "),
        ('[station]\nid = "CS1"\n[csms]\nurl = "ws://h/o"\nclient_cert = "c.pem"\nclient_key = "k.pem"\n',
         "station.toml: [csms] client_cert: TLS files need a wss:// URL"),
        ('[csms]\nurl = "ws://h/o"\n', "station.toml: [station] id: the station needs an identity (--id, or id in "
         "[station])"),
        ('[station]\nid = "CS1"\n[csms\n', "station.toml: not valid TOML: "),
    ]
    for text, message in cases:
        bad.write_text(text, encoding="utf-8")
        code, out, err = run("--config", str(bad), "--print-config")
        assert (code, out) == (2, ""), text
        assert err.startswith(f"error: {message}"), err
        assert "1234567890123456" not in err
    code, _, err = run("--config", str(EXAMPLE), "--version", "1.5")
    assert code == 2 and err == ("error: --version: OCPP 1.5 is not supported by the station (it speaks 2.1, 2.0.1, "
                                 "1.6)\n")
    code, _, err = run("--config", str(EXAMPLE), "--ocpp-versions", "2.0.1,1.6")
    assert code == 2 and err == "error: --ocpp-versions: OCPP 1.6 is offered alone (not beside 2.x)\n"
    code, _, err = run("--config", str(EXAMPLE), "--secc-cert", str(tmp_path / "none.pem"), "--secc-key",
                       str(tmp_path / "none.key"), "--secc-key-password", SECRETS[0])
    assert code == 2 and err.startswith("error: --secc-cert: cannot load the SECC certificate and key: No such file")
    assert SECRETS[0] not in err


async def test_settings_map_once_onto_the_device_model() -> None:
    """Each mapped setting lands in its standard variable (or our vendor component); unset ones leave the model's
    values; each EVSE gets its own power and hardware figures."""
    data = {"station": {"id": "CS9", "organization_name": "Example CPO"}, "csms": {"url": "ws://127.0.0.1:1/o"},
            "evse": [{"max_power_w": 7400.0, "ac_max_current": 16.0}, {"max_power_w": 150000.0,
                                                                        "dc_max_current": 350.0}],
            "authorization": {"free_charging": True, "authorize_remote_start": False,
                              "local_authorize_offline": False, "local_pre_authorize": True,
                              "offline_tx_for_unknown_id": True},
            "metering": {"tx_updated_interval": 15, "tx_ended_interval": 30},
            "iso15118": {"pnc": True, "central_contract_validation_allowed": False,
                         "contract_validation_offline": True, "eim_token": "04AA", "eim_token_type": "KeyCode",
                         "mirror": {"messages": True, "compression": "Gzip"}}}
    settings = from_dict(StationSettings, data, "t.toml")
    station = assemble(settings).station
    m = station.model
    expected = {("AuthCtrlr", "Enabled"): "false", ("AuthCtrlr", "AuthorizeRemoteStart"): "false",
                ("AuthCtrlr", "LocalAuthorizeOffline"): "false", ("AuthCtrlr", "LocalPreAuthorize"): "true",
                ("AuthCtrlr", "OfflineTxForUnknownIdEnabled"): "true",
                ("SampledDataCtrlr", "TxUpdatedInterval"): "15", ("SampledDataCtrlr", "TxEndedInterval"): "30",
                ("ISO15118Ctrlr", "Enabled"): "false", ("ISO15118Ctrlr", "PnCEnabled"): "true",
                ("ISO15118Ctrlr", "CentralContractValidationAllowed"): "false",
                ("ISO15118Ctrlr", "ContractValidationOffline"): "true",
                ("SecurityCtrlr", "OrganizationName"): "Example CPO",
                (VENDOR_COMPONENT, "MirrorISO15118Messages"): "true",
                (VENDOR_COMPONENT, "MirrorISO15118Compression"): "Gzip"}
    assert {(c, v): m.value(c, v) for c, v in expected} == expected
    assert {(c, v) for c, v, _ in device_model_values(settings)} == set(expected)
    assert [m.value("EVSE", "Power", evse=e) for e in (1, 2)] == ["7400", "150000"]
    assert [station.evses[e].max_power_w for e in (1, 2)] == [7400.0, 150000.0]
    limits = [station.hardware(e).limits for e in (1, 2)]  # each EVSE's power electronics
    assert (limits[0].ac_max_current, limits[1].dc_max_current) == (16.0, 350.0)
    configs = bridge_configs(settings)
    assert configs[2].id_token == {"idToken": "04AA", "type": "KeyCode"}
    # nothing set: the device model keeps its standard values
    plain = assemble(from_dict(StationSettings, {"station": {"id": "CS9"}, "csms": {"url": "ws://h/o"}}, "t"))
    assert device_model_values(plain.settings) == [("ISO15118Ctrlr", "Enabled", "false")]
    assert plain.station.model.value("SampledDataCtrlr", "TxUpdatedInterval") == "60"
    assert plain.station.model.value("AuthCtrlr", "Enabled") == "true"


def test_every_mapped_and_vendor_variable_is_documented() -> None:
    """docs/station.md names every device-model variable the settings map to and every variable of our vendor
    component."""
    doc = (ROOT / "docs" / "station.md").read_text(encoding="utf-8")
    full = from_dict(StationSettings, {
        "station": {"organization_name": "O"}, "authorization": dict.fromkeys(
            ("free_charging", "authorize_remote_start", "local_authorize_offline", "local_pre_authorize",
             "offline_tx_for_unknown_id"), True),
        "metering": {"tx_updated_interval": 1, "tx_ended_interval": 1},
        "iso15118": {"pnc": True, "central_contract_validation_allowed": True, "contract_validation_offline": True,
                     "mirror": {"messages": True, "compression": "Gzip"}}}, "t")
    names = {f"{c}.{v}" for c, v, _ in device_model_values(full)}
    names |= {f"{v.component}.{v.name}" for v in standard_variables("X", 1, model="m", vendor="v",
                                                                      security_profile=1, max_power_w=1.0)
              if v.component == VENDOR_COMPONENT}
    assert len(names) == 14
    missing = [n for n in sorted(names) if f"`{n}`" not in doc]
    assert not missing


def test_a_device_model_saved_with_the_old_component_name_is_migrated(tmp_path: Path) -> None:
    """A device_model.json of an earlier version (component `BridgeCtrlr`) keeps its values under the vendor
    component and is written anew with today's name."""
    path = tmp_path / "device_model.json"
    path.write_text(json.dumps([["BridgeCtrlr", None, "MirrorISO15118Messages", None, "true"],
                                ["BridgeCtrlr", None, "MirrorISO15118Compression", None, "Gzip"],
                                ["SampledDataCtrlr", None, "TxUpdatedInterval", None, "20"]]), encoding="utf-8")
    model = DeviceModel(standard_variables("CS1", 1, model="m", vendor="v", security_profile=1, max_power_w=1.0),
                        path=path)
    assert model.bool(VENDOR_COMPONENT, "MirrorISO15118Messages")
    assert model.value(VENDOR_COMPONENT, "MirrorISO15118Compression") == "Gzip"
    assert model.value("SampledDataCtrlr", "TxUpdatedInterval") == "20"
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert [VENDOR_COMPONENT, None, "MirrorISO15118Messages", None, "true"] in saved
    assert not any(row[0] == "BridgeCtrlr" for row in saved)


async def test_station_runs_from_the_example_file(tmp_path: Path) -> None:
    """`v2gstack station --config examples/station.toml` with a few flags (the CSMS's port, free SDP ports, a fast
    clock) boots at our CSMS with the file's identity and password, serves a SECC per [[evse]], and runs a
    scripted session whose meter interval comes from a flag."""
    store = Store(f"sqlite:///{tmp_path / 'csms.db'}")
    station_id, password = EXAMPLE_DATA["station"]["id"], EXAMPLE_DATA["csms"]["password"]
    store.add_station(station_id, password)
    store.put_id_token("04A1B2C3", "ISO14443")
    csms = Csms(store, CsmsConfig(ping_interval=None))
    calls: list[tuple[str, str, dict]] = []
    csms.listeners.append(lambda sid, action, payload: calls.append((sid, action, payload)))
    await csms.start("127.0.0.1", 0)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "v2gstack", "station", "--config", str(EXAMPLE),
            "--csms", f"ws://127.0.0.1:{csms.port}/ocpp", "--sdp-port", "0", "--state-dir", str(tmp_path / "st"),
            "--simulate-session", "--session-seconds", "5", "--time-scale", "0.02", "--meter-interval", "1",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        await csms.close()
    text = out.decode()
    assert proc.returncode == 0, text
    assert re.search(r"EVSE 1: ISO 15118 / DIN 70121 SECC at tcp \[::1\]:\d+", text)
    assert "EVSE 2: ISO 15118" in text and "EVSE 3:" not in text
    registered = store.station(station_id)
    store.close()
    assert registered is not None and registered.boot_status == "Accepted"
    assert registered.serial_number == EXAMPLE_DATA["station"]["serial_number"]
    assert {sid for sid, _, _ in calls} == {station_id}
    events = [p for _, action, p in calls if action == "TransactionEvent"]
    assert events[0]["eventType"] == "Started" and events[-1]["eventType"] == "Ended"
    assert sum(e["triggerReason"] == "MeterValuePeriodic" for e in events) >= 2  # --meter-interval 1, not the 60
    assert password not in text


def test_renegotiation_pace_is_a_station_setting(tmp_path: Path) -> None:
    """[iso15118] renegotiations_at_once / renegotiations_per_second / renegotiation_settle_s reach the SECCs' plan
    (one pacer for the station: bridge/pacer.py); the defaults 2 at once, 4 per second, no settle; at_once below 1 is
    refused."""
    base = '[station]\nid = "CS1"\n[csms]\nurl = "ws://h/o"\n[iso15118]\nenabled = true\n'
    path = tmp_path / "station.toml"
    path.write_text(base)
    plan = secc_plan(load_station_settings(str(path)).tree)
    assert plan is not None and plan.pacing == RenegotiationPacing(2, 4.0, 0.0)
    path.write_text(base + "renegotiations_at_once = 1\nrenegotiations_per_second = 0.5\n"
                    "renegotiation_settle_s = 1.5\n")
    plan = secc_plan(load_station_settings(str(path)).tree)
    assert plan is not None and plan.pacing == RenegotiationPacing(1, 0.5, 1.5)
    path.write_text(base + "renegotiations_at_once = 0\n")
    code, _, err = run("--config", str(path), "--print-config")
    assert code == 2 and "renegotiations_at_once" in err
