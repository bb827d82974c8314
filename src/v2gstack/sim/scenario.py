"""The scenario file of `v2gstack sim run`: what to start, what happens when, and what must hold, checked whole.

A scenario is YAML (with PyYAML), JSON or TOML. Every key is checked against the schema below before anything starts;
a problem is a ScenarioError naming its path (`sessions[2].expect.outcome: ...`). Times are seconds from the start
of the run (wall time; the stations and EVs run their simulated clocks `speedup` times faster).

    name: str                      # shown in the report
    speedup: float = 60            # simulated seconds per real second (station meters, EV batteries)
    timeout_s: float = 60          # the run is cut (and fails) after this long
    stations:                      # each: our station with `evses` bridged SECCs, on OCPP `ocpp`
      - {id: CS1, evses: 2, ocpp: "2.1", auth: free | rfid, id_token: "04A1B2C3", max_power_w: 50000}
    id_tokens:                     # registered at the CSMS (status as OCPP's AuthorizationStatus)
      - {id_token: "04A1B2C3", status: Accepted}
    sessions:                      # one EV each
      - {name: ev1, at: 0, station: CS1, evse: 1, protocol: iso2 | din | iso20, energy: ac | dc, loops: 20,
         payment: external | contract,   # contract: Plug & Charge over TLS with a contract of its own
         expect: {outcome: ok | failed, response_code: FAILED, stopped_reason: EVDisconnected,
                  energy_tolerance: 0.05, authorize_status: Invalid | none, certificate_status: CertificateRevoked,
                  offline_replayed: true, notify_tech_code: ExiError, security_event: InvalidMessages}}
    faults:                        # what goes wrong, and when
      - {at: 0, kind: token_status, id_token: "04A1B2C3", status: Blocked}
      - {at: 2, kind: remote_stop, session: ev1}
      - {at: 3, kind: link_cut, station: CS1}   # the CSMS drops the station's websocket; it reconnects
      - {at: 0, kind: contract_revoked, session: ev1}  # also contract_expired, contract_wrong_root,
      - {at: 0, kind: ocsp_down}                       # contract_bad_signature (the EV signs wrongly)
      - {at: 2, kind: csms_restart, down_s: 1}  # the CSMS process stops and starts again on the same database
      - {at: 2, kind: station_reboot, station: CS1}  # the CSMS sends Reset Immediate; the station reboots
      - {at: 1, kind: ev_link_cut, session: ev1}     # the EV <-> SECC TCP connection drops
      - {at: 1, kind: ev_link_delay, session: ev1, delay_s: 0.5, duration_s: 2}  # every message late
      - {at: 1, kind: exi_corrupt, session: ev1}     # the EV's next request arrives as garbage EXI
      - {at: 0, kind: clock_skew, station: CS1, skew_s: -600}  # the station's clock 10 minutes behind
      - {at: 2, kind: grid_signal, import_limit_w: 20000, duration_s: 8, target: site, settle_s: 2}
        # the CSMS's grid control (on for a scenario with a grid_signal, which needs speedup: 1) gets this signal
        # as an operator's POST /api/grid/signals would give it, from `at` for `duration_s` seconds (more than
        # 2 x settle_s + 1); target: site or a station id. Checked: the aggregate import of the target's sessions
        # stays at or under the limit (excursions no longer than settle_s, as sim/fleet_report.py judges a window)
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..grid.model import SignalError, parse_signal

PROTOCOLS = ("iso2", "din", "iso20")
ENERGIES = ("ac", "dc")
OUTCOMES = ("ok", "failed")
AUTH_MODES = ("free", "rfid")
PAYMENTS = ("external", "contract")
CONTRACT_FAULTS = {"contract_expired": "expired", "contract_revoked": "revoked", "contract_wrong_root": "wrong-root",
                   "contract_bad_signature": "bad-signature"}
"""Plug & Charge faults of one session's contract -> the fault's name in sim/pnc.py."""
EV_LINK_FAULTS = ("ev_link_cut", "ev_link_delay", "exi_corrupt")
"""Faults on one session's EV <-> SECC link (the runner puts a relay between them, sim/ev_link.py)."""
FAULT_KINDS = ("token_status", "remote_stop", "link_cut", *CONTRACT_FAULTS, "ocsp_down", "csms_restart",
               "station_reboot", *EV_LINK_FAULTS, "clock_skew", "grid_signal")
AUTH_STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "NoCredit", "NotAllowedTypeEVSE", "NotAtThisLocation",
                 "NotAtThisTime", "Unknown")


class ScenarioError(ValueError):
    """A scenario file that cannot run: the path of the offending key and what is wrong."""


@dataclass(frozen=True)
class StationSpec:
    """One of our stations."""

    id: str
    evses: int = 1
    ocpp: str = "2.1"
    auth: str = "free"
    id_token: str | None = None
    max_power_w: float = 50_000.0


@dataclass(frozen=True)
class Expect:
    """What must hold for a session (None: not checked)."""

    outcome: str = "ok"
    response_code: str | None = None
    stopped_reason: str | None = None
    energy_tolerance: float | None = 0.05  # |EV energy - CSMS register| / EV energy
    authorize_status: str | None = None  # the CSMS's Authorize idTokenInfo.status for the contract ("none": not asked)
    certificate_status: str | None = None  # the CSMS's Authorize certificateStatus
    offline_replayed: bool | None = None  # some TransactionEvents reached the CSMS late, replayed (offline: true)
    notify_tech_code: str | None = None  # the NotifyEvent (ConnectedEV Problem) techCode for the session's EVSE
    security_event: str | None = None  # a SecurityEventNotification type the session's station sent


@dataclass(frozen=True)
class SessionSpec:
    """One EV arriving at an EVSE."""

    name: str
    at: float
    station: str
    evse: int
    protocol: str = "iso2"
    energy: str = "dc"
    loops: int = 20
    payment: str = "external"
    expect: Expect = field(default_factory=Expect)


@dataclass(frozen=True)
class FaultSpec:
    """Something that goes wrong at a time."""

    at: float
    kind: str
    id_token: str | None = None
    status: str | None = None
    session: str | None = None
    station: str | None = None
    down_s: float | None = None  # csms_restart: seconds between stopping and starting again (1)
    delay_s: float | None = None  # ev_link_delay: added to every V2GTP message, both ways
    duration_s: float | None = None  # ev_link_delay: for this long (default: to the end)
    skew_s: float | None = None  # clock_skew: the station's wall clock jumps by this much
    import_limit_w: float | None = None  # grid_signal: the import limit of its target
    target: str = "site"  # grid_signal: "site" or a station id
    settle_s: float = 2.0  # grid_signal: how long the aggregate may stay over the limit at a stretch (wall s)


@dataclass(frozen=True)
class Scenario:
    """A whole scenario."""

    name: str
    stations: tuple[StationSpec, ...]
    sessions: tuple[SessionSpec, ...]
    id_tokens: tuple[tuple[str, str], ...] = ()
    faults: tuple[FaultSpec, ...] = ()
    speedup: float = 60.0
    timeout_s: float = 60.0


def _fields(raw: Any, path: str, allowed: dict[str, type | tuple[type, ...]], required: tuple[str, ...] = ()
            ) -> dict[str, Any]:
    """A mapping with only `allowed` keys of the right types and every `required` key."""
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path or 'scenario'}: a mapping is expected, not {type(raw).__name__}")
    for key in raw:
        if key not in allowed:
            raise ScenarioError(f"{path}.{key}".lstrip(".") + f": unknown key (known: {', '.join(allowed)})")
    for key in required:
        if key not in raw:
            raise ScenarioError(f"{path}.{key}".lstrip(".") + ": required")
    for key, value in raw.items():
        types = allowed[key]
        if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise ScenarioError(f"{path}.{key}".lstrip(".") + ": a boolean is not allowed here")
        if not isinstance(value, types):
            names = "/".join(t.__name__ for t in (types if isinstance(types, tuple) else (types,)))
            raise ScenarioError(f"{path}.{key}".lstrip(".") + f": {names} expected, not {type(value).__name__}")
    return raw


def _one_of(value: str, choices: tuple[str, ...], path: str) -> str:
    if value not in choices:
        raise ScenarioError(f"{path}: one of {', '.join(choices)}, not {value!r}")
    return value


def _list(raw: Any, path: str) -> list[Any]:
    if not isinstance(raw, list):
        raise ScenarioError(f"{path}: a list is expected")
    return raw


NUM = (int, float)


def parse_scenario(raw: Any) -> Scenario:
    """A Scenario from its parsed file, every key checked (ScenarioError on the first problem)."""
    top = _fields(raw, "", {"name": str, "speedup": NUM, "timeout_s": NUM, "stations": list, "id_tokens": list,
                            "sessions": list, "faults": list}, ("name", "stations", "sessions"))
    stations = []
    for n, s in enumerate(_list(top["stations"], "stations")):
        p = f"stations[{n}]"
        f = _fields(s, p, {"id": str, "evses": int, "ocpp": str, "auth": str, "id_token": str, "max_power_w": NUM},
                    ("id",))
        spec = StationSpec(**f)
        _one_of(spec.ocpp, ("2.1", "2.0.1", "1.6"), f"{p}.ocpp")
        _one_of(spec.auth, AUTH_MODES, f"{p}.auth")
        if not 1 <= spec.evses <= 16:
            raise ScenarioError(f"{p}.evses: 1 to 16")
        if spec.auth == "rfid" and not spec.id_token:
            raise ScenarioError(f"{p}.id_token: required with auth rfid (the token the station presents)")
        stations.append(spec)
    ids = [s.id for s in stations]
    if not ids or len(set(ids)) != len(ids):
        raise ScenarioError("stations: at least one, each id once")
    tokens = []
    for n, t in enumerate(_list(top.get("id_tokens", []), "id_tokens")):
        f = _fields(t, f"id_tokens[{n}]", {"id_token": str, "status": str}, ("id_token",))
        tokens.append((f["id_token"], _one_of(f.get("status", "Accepted"), AUTH_STATUSES, f"id_tokens[{n}].status")))
    sessions = []
    for n, s in enumerate(_list(top["sessions"], "sessions")):
        p = f"sessions[{n}]"
        f = dict(_fields(s, p, {"name": str, "at": NUM, "station": str, "evse": int, "protocol": str, "energy": str,
                                "loops": int, "payment": str, "expect": dict}, ("at", "station", "evse")))
        f.setdefault("name", f"session{n + 1}")
        e = _fields(f.pop("expect", {}), f"{p}.expect", {"outcome": str, "response_code": str, "stopped_reason": str,
                                                         "energy_tolerance": NUM, "authorize_status": str,
                                                         "certificate_status": str, "offline_replayed": bool,
                                                         "notify_tech_code": str, "security_event": str})
        expect = Expect(**e)
        _one_of(expect.outcome, OUTCOMES, f"{p}.expect.outcome")
        if expect.authorize_status is not None:
            _one_of(expect.authorize_status, (*AUTH_STATUSES, "none"), f"{p}.expect.authorize_status")
        spec = SessionSpec(**f, expect=expect)
        _one_of(spec.protocol, PROTOCOLS, f"{p}.protocol")
        _one_of(spec.energy, ENERGIES, f"{p}.energy")
        _one_of(spec.payment, PAYMENTS, f"{p}.payment")
        if spec.payment == "contract" and spec.protocol != "iso2":
            raise ScenarioError(f"{p}.payment: contract (Plug & Charge) needs protocol iso2")
        if spec.payment != "contract" and (expect.authorize_status or expect.certificate_status):
            raise ScenarioError(f"{p}.expect: authorize_status and certificate_status need payment contract")
        if spec.station not in ids:
            raise ScenarioError(f"{p}.station: no station {spec.station!r} (stations: {', '.join(ids)})")
        evses = next(s.evses for s in stations if s.id == spec.station)
        if not 1 <= spec.evse <= evses:
            raise ScenarioError(f"{p}.evse: station {spec.station} has EVSEs 1 to {evses}")
        if spec.at < 0 or spec.loops < 0:
            raise ScenarioError(f"{p}: at and loops are not negative")
        sessions.append(spec)
    names = [s.name for s in sessions]
    if len(set(names)) != len(names):
        raise ScenarioError("sessions: each name once")
    faults = []
    for n, x in enumerate(_list(top.get("faults", []), "faults")):
        p = f"faults[{n}]"
        f = _fields(x, p, {"at": NUM, "kind": str, "id_token": str, "status": str, "session": str, "station": str,
                           "down_s": NUM, "delay_s": NUM, "duration_s": NUM, "skew_s": NUM,
                           "import_limit_w": NUM, "target": str, "settle_s": NUM}, ("at", "kind"))
        spec = FaultSpec(**f)
        _one_of(spec.kind, FAULT_KINDS, f"{p}.kind")
        if spec.kind == "token_status" and (spec.id_token is None or spec.status is None):
            raise ScenarioError(f"{p}: token_status needs id_token and status")
        if spec.kind == "token_status":
            _one_of(spec.status or "", AUTH_STATUSES, f"{p}.status")
        if spec.kind == "remote_stop" and spec.session not in names:
            raise ScenarioError(f"{p}.session: no session {spec.session!r}")
        if spec.kind in EV_LINK_FAULTS:
            target = next((s for s in sessions if s.name == spec.session), None)
            if target is None:
                raise ScenarioError(f"{p}.session: no session {spec.session!r}")
            if spec.kind == "exi_corrupt" and target.payment == "contract":
                raise ScenarioError(f"{p}.session: exi_corrupt needs a session without TLS (payment external)")
        if spec.kind == "ev_link_delay" and (spec.delay_s is None or spec.delay_s <= 0):
            raise ScenarioError(f"{p}.delay_s: ev_link_delay needs a positive delay_s")
        if spec.kind == "clock_skew" and spec.skew_s is None:
            raise ScenarioError(f"{p}.skew_s: clock_skew needs skew_s")
        if spec.kind in ("link_cut", "station_reboot", "clock_skew") and spec.station not in ids:
            raise ScenarioError(f"{p}.station: no station {spec.station!r}")
        if spec.kind in CONTRACT_FAULTS:
            target = next((s for s in sessions if s.name == spec.session), None)
            if target is None or target.payment != "contract":
                raise ScenarioError(f"{p}.session: {spec.kind} needs a session with payment contract, "
                                    f"not {spec.session!r}")
        if spec.kind == "grid_signal":
            _check_grid_signal(spec, p, ids, n)
            if top.get("speedup", 60.0) != 1:
                raise ScenarioError(f"{p}: grid_signal needs speedup: 1 (the CSMS's plan, its signals and the "
                                    f"stations' charging profiles share the wall clock)")
        faults.append(spec)
    if any(f.kind == "grid_signal" for f in faults) and any(f.kind == "csms_restart" for f in faults):
        raise ScenarioError("faults: grid_signal and csms_restart cannot be combined (the grid control lives in the "
                            "CSMS process)")
    return Scenario(top["name"], tuple(stations), tuple(sessions), tuple(tokens), tuple(faults),
                    float(top.get("speedup", 60.0)), float(top.get("timeout_s", 60.0)))


def grid_signal_json(f: FaultSpec, n: int, start: datetime) -> dict[str, Any]:
    """The JSON form of a grid_signal fault (number n) as an operator posts it, for a run that started at `start`."""
    target = {"kind": "site", "id": "site"} if f.target == "site" else {"kind": "station", "id": f.target}
    begin = start + timedelta(seconds=f.at)
    end = begin + timedelta(seconds=f.duration_s if f.duration_s is not None else 0.0)
    return {"id": f"scenario-{n}", "target": target,
            "intervals": [{"start": begin.isoformat(), "end": end.isoformat(), "importLimitW": f.import_limit_w}]}


def _check_grid_signal(f: FaultSpec, p: str, stations: list[str], n: int) -> None:
    """A grid_signal fault: a limit, a forward interval, a known target, and a signal the CSMS would accept."""
    if f.import_limit_w is None:
        raise ScenarioError(f"{p}.import_limit_w: grid_signal needs import_limit_w (W)")
    if f.duration_s is None:
        raise ScenarioError(f"{p}.duration_s: grid_signal needs duration_s (wall seconds)")
    if f.duration_s <= 0:
        raise ScenarioError(f"{p}.duration_s: the signal's interval ends at or before it starts "
                            f"(duration_s {f.duration_s:g}; it must be positive)")
    if f.target != "site" and f.target not in stations:
        raise ScenarioError(f"{p}.target: site or a station id, not {f.target!r}")
    if f.settle_s < 0:
        raise ScenarioError(f"{p}.settle_s: not negative")
    if f.duration_s <= 2 * f.settle_s + 1:  # checked from settle_s after the start to 1 s before the end
        raise ScenarioError(f"{p}.duration_s: longer than 2 x settle_s + 1 s ({2 * f.settle_s + 1:g} s), or an "
                            f"excursion longer than the settle time could not be seen")
    try:  # the CSMS's own rules for a signal (grid/model.py), as POST /api/grid/signals applies them
        parse_signal(grid_signal_json(f, n, datetime.now(UTC)), source="operator")
    except SignalError as e:
        raise ScenarioError(f"{p}: the CSMS would refuse this grid signal ({e.code}): {e}") from None


def load_scenario(path: str | Path) -> Scenario:
    """A scenario file (YAML, JSON or TOML by its suffix); ScenarioError names the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError(f"{path}: {e.strerror or e}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml  # optional: only YAML scenarios need PyYAML (the `sim` extra)

            raw = yaml.safe_load(text)
        elif path.suffix == ".toml":
            raw = tomllib.loads(text)
        else:
            raw = json.loads(text)
    except ImportError:
        raise ScenarioError(f"{path}: YAML needs PyYAML: pip install 'v2gstack[sim]'") from None
    except Exception as e:  # the parser's own error: its message says where
        raise ScenarioError(f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {e}") from None
    try:
        return parse_scenario(raw)
    except ScenarioError as e:
        raise ScenarioError(f"{path}: {e}") from None
