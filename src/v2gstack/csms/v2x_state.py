"""What the CSMS keeps of OCPP 2.1 V2X: charging needs per transaction, the energy transfer modes it allowed, the
Dynamic profiles' schedule updates (pushed, and served to PullDynamicScheduleUpdate), the meter keys for signed
meter values, the OCPP version each station agreed; and the V2X view of a transaction the API serves.

Every `op_*` runs on an open session (the StoreWorker batches them like the store's own operations).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ..ocpp.v2x import CHARGING_ONLY
from ..times import parse_rfc3339, rfc3339
from . import signed_meter
from .models import ChargingNeeds, DynamicSchedule, MessageLog, MeterKey, MeterValue, Station, Transaction

LATEST = ("SoC", "Power.Active.Import", "Power.Active.Export", "Power.Active.Setpoint", "Energy.Active.Net",
          "Energy.Active.Import.Register", "Energy.Active.Export.Register")
"""Measurands whose latest whole-meter reading a transaction's V2X view shows."""


def _iso(t: datetime | None) -> str | None:
    """RFC 3339 in UTC (naive database times are UTC)."""
    return None if t is None else rfc3339(t, timespec="auto")


def op_record_version(s: Session, station_id: str, version: str) -> None:
    """The OCPP version a station's new connection agreed."""
    st = s.get(Station, station_id)
    if st is not None:
        st.ocpp_version = version


def op_record_charging_needs(s: Session, station_id: str, transaction_id: str | None, p: dict[str, Any]) -> int:
    """A NotifyEVChargingNeeds (2.0.1 or 2.1) with its V2X fields broken out; returns its row id."""
    needs = p["chargingNeeds"]
    departure = needs.get("departureTime")
    row = ChargingNeeds(
        station_id=station_id, evse_id=p["evseId"], transaction_id=transaction_id, received_at=datetime.now(UTC),
        requested_energy_transfer=needs["requestedEnergyTransfer"],
        available_energy_transfer=needs.get("availableEnergyTransfer"), control_mode=needs.get("controlMode"),
        mobility_needs_mode=needs.get("mobilityNeedsMode"),
        departure_time=parse_rfc3339(departure) if departure else None,
        max_schedule_tuples=p.get("maxScheduleTuples"), needs=needs)
    s.add(row)
    s.flush()
    return row.id


def op_needs_status(s: Session, row: int, status: str) -> None:
    """What the CSMS answered a NotifyEVChargingNeeds (stored row `row`)."""
    needs = s.get(ChargingNeeds, row)
    if needs is not None:
        needs.status = status


def op_needs_profile(s: Session, row: int, profile: dict[str, Any], answer: dict[str, Any]) -> None:
    """The TxProfile the CSMS sent for a NotifyEVChargingNeeds (stored row `row`) and the station's answer."""
    needs = s.get(ChargingNeeds, row)
    if needs is not None:
        needs.profile, needs.profile_answer = profile, answer


def op_allowed_energy_transfer(s: Session, station_id: str, transaction_id: str, modes: list[str],
                               status: str) -> bool:
    """Remember what NotifyAllowedEnergyTransfer told a transaction and the station's answer; False if unknown."""
    tx = s.get(Transaction, (station_id, transaction_id))
    if tx is None:
        return False
    v2x = dict(tx.v2x or {})
    v2x["allowedEnergyTransferSent"] = {"modes": modes, "status": status, "at": rfc3339()}
    if status == "Accepted":
        v2x["allowedEnergyTransfer"] = modes
    tx.v2x = v2x
    return True


def op_authorized_energy_transfer(s: Session, station_id: str, transaction_id: str, modes: list[str] | None,
                                  at: str) -> bool:
    """Remember what the AuthorizeResponse of a transaction's idToken allowed (`modes`; None: left out, charging
    only) and when; it is the transaction's allowed energy transfer unless the station accepted a
    NotifyAllowedEnergyTransfer after it. False if the transaction is unknown."""
    tx = s.get(Transaction, (station_id, transaction_id))
    if tx is None:
        return False
    v2x = dict(tx.v2x or {})
    v2x["allowedEnergyTransferAuthorized"] = {"modes": modes, "at": at}
    notified = v2x.get("allowedEnergyTransferSent")
    if not (notified and notified["status"] == "Accepted" and notified["at"] >= at):
        v2x["allowedEnergyTransfer"] = list(modes or CHARGING_ONLY)
    tx.v2x = v2x
    return True


def op_put_dynamic(s: Session, station_id: str, profile_id: int, update: dict[str, Any],
                   evse_id: int | None = None, transaction_id: str | None = None, mode: str | None = None,
                   unit: str | None = None) -> None:
    """Store (or replace) the schedule update of a Dynamic profile; unset details keep their earlier value."""
    row = s.get(DynamicSchedule, (station_id, profile_id))
    now = datetime.now(UTC)
    if row is None:
        row = DynamicSchedule(station_id=station_id, charging_profile_id=profile_id, pulls=0, schedule_update={},
                              updated_at=now)
        s.add(row)
    row.schedule_update = update
    row.updated_at = now
    for attr, value in (("evse_id", evse_id), ("transaction_id", transaction_id), ("operation_mode", mode),
                        ("charging_rate_unit", unit)):
        if value is not None:
            setattr(row, attr, value)


def op_dynamic_pushed(s: Session, station_id: str, profile_id: int, update: dict[str, Any],
                      entry: tuple[Any, ...] | None) -> None:
    """An UpdateDynamicSchedule the station accepted: the profile's new values and (`entry`: op_log_message's
    arguments) the exchange in the message log, in one store operation (see `ops_dynamic_pushed`)."""
    ops_dynamic_pushed(s, [(station_id, profile_id, update, entry)])


_UPDATE_DYNAMIC = DynamicSchedule.__table__.update().where(
    DynamicSchedule.__table__.c.station_id == bindparam("sid"),
    DynamicSchedule.__table__.c.charging_profile_id == bindparam("pid")).values(
    schedule_update=bindparam("update"), updated_at=bindparam("at"))


def ops_dynamic_pushed(s: Session, items: list[tuple[str, int, dict[str, Any], tuple[Any, ...] | None]]) -> list[None]:
    """The batch form of `op_dynamic_pushed` (csms/store_batch.py): one UPDATE statement for all the profiles' values
    and one INSERT for the log rows, no ORM objects (a 100-car rolling setpoint load spent about 1.5 ms of CPU per
    setpoint in the ORM path, a quarter of that here). A profile without a stored row (the CSMS set it before it
    kept them) is stored the one-operation way."""
    s.flush()  # what earlier operations of the batch changed through the ORM goes first
    conn = s.connection()
    now = datetime.now(UTC)
    done = conn.execute(_UPDATE_DYNAMIC, [{"sid": sid, "pid": pid, "update": update, "at": now}
                                          for sid, pid, update, _ in items]).rowcount
    if done != len(items):
        for sid, pid, update, _ in items:
            op_put_dynamic(s, sid, pid, update)
    rows = [{"station_id": e[0], "time": now, "direction": e[1], "action": e[2], "payload": e[3], "response": e[4],
             "transaction_id": e[5], "session_id": e[6].upper() if e[6] else None}
            for _, _, _, e in items if e is not None]
    if rows:
        conn.execute(MessageLog.__table__.insert(), rows)
    return [None] * len(items)


def op_get_dynamic(s: Session, station_id: str, profile_id: int) -> dict[str, Any] | None:
    """A Dynamic profile's stored update as plain data (None if the CSMS set no such profile)."""
    row = s.get(DynamicSchedule, (station_id, profile_id))
    return None if row is None else _dynamic_dict(row)


def op_pull_dynamic(s: Session, station_id: str, profile_id: int) -> dict[str, Any] | None:
    """PullDynamicScheduleUpdate: the stored update (None if there is none), counted as pulled."""
    row = s.get(DynamicSchedule, (station_id, profile_id))
    if row is None:
        return None
    row.pulled_at = datetime.now(UTC)
    row.pulls = (row.pulls or 0) + 1
    return dict(row.schedule_update)


def op_dynamic_schedules(s: Session, station_id: str) -> list[dict[str, Any]]:
    """Every stored Dynamic profile update of a station."""
    q = select(DynamicSchedule).where(DynamicSchedule.station_id == station_id).order_by(
        DynamicSchedule.charging_profile_id)
    return [_dynamic_dict(r) for r in s.scalars(q)]


def _dynamic_dict(r: DynamicSchedule) -> dict[str, Any]:
    return {"chargingProfileId": r.charging_profile_id, "evseId": r.evse_id, "transactionId": r.transaction_id,
            "operationMode": r.operation_mode, "chargingRateUnit": r.charging_rate_unit,
            "scheduleUpdate": r.schedule_update, "updatedAt": _iso(r.updated_at), "pulledAt": _iso(r.pulled_at),
            "pulls": r.pulls or 0}


def op_put_meter_key(s: Session, station_id: str, evse_id: int, key_hex: str, source: str) -> bool:
    """Hold a meter key; a key read from the device model never replaces one an operator registered."""
    row = s.get(MeterKey, (station_id, evse_id))
    if row is not None and row.source == "operator" and source != "operator":
        return False
    if row is None:
        row = MeterKey(station_id=station_id, evse_id=evse_id)
        s.add(row)
    row.public_key, row.source, row.added_at = key_hex, source, datetime.now(UTC)
    return True


def op_meter_key_list(s: Session, station_id: str) -> list[dict[str, Any]]:
    """The meter keys held for a station."""
    q = select(MeterKey).where(MeterKey.station_id == station_id).order_by(MeterKey.evse_id)
    return [{"evseId": k.evse_id, "source": k.source, "publicKey": k.public_key, "addedAt": _iso(k.added_at)}
            for k in s.scalars(q)]


def device_model_keys(report: dict[str, Any]) -> list[tuple[int, str]]:
    """(evseId, key) of every FiscalMetering.PublicKey in a NotifyReport's reportData."""
    out = []
    for item in report.get("reportData") or []:
        component, variable = item.get("component") or {}, item.get("variable") or {}
        if component.get("name") != "FiscalMetering" or variable.get("name") != "PublicKey":
            continue
        for attr in item.get("variableAttribute") or []:
            if attr.get("type", "Actual") == "Actual" and attr.get("value"):
                out.append(((component.get("evse") or {}).get("id", 0), attr["value"]))
    return out


def op_charging_needs(s: Session, station_id: str | None = None, transaction_id: str | None = None,
                      limit: int = 100) -> list[dict[str, Any]]:
    """Charging needs, oldest first, of a station and/or transaction."""
    q = select(ChargingNeeds).order_by(ChargingNeeds.id)
    if station_id is not None:
        q = q.where(ChargingNeeds.station_id == station_id)
    if transaction_id is not None:
        q = q.where(ChargingNeeds.transaction_id == transaction_id)
    rows = list(s.scalars(q.limit(limit))) if transaction_id is not None else list(s.scalars(q))[-limit:]
    return [{"id": r.id, "stationId": r.station_id, "evseId": r.evse_id, "transactionId": r.transaction_id,
             "receivedAt": _iso(r.received_at), "requestedEnergyTransfer": r.requested_energy_transfer,
             "availableEnergyTransfer": r.available_energy_transfer, "controlMode": r.control_mode or
             "ScheduledControl", "mobilityNeedsMode": r.mobility_needs_mode, "departureTime": _iso(r.departure_time),
             "maxScheduleTuples": r.max_schedule_tuples, "status": r.status, "profile": r.profile,
             "profileAnswer": r.profile_answer,
             "v2xChargingParameters": r.needs.get("v2xChargingParameters"),
             "evEnergyOffer": r.needs.get("evEnergyOffer"), "chargingNeeds": r.needs} for r in rows]


def transaction_v2x(s: Session, tx: Transaction) -> dict[str, Any]:
    """The V2X view of a transaction: operation mode (latest event that named one), allowed energy transfer,
    charging needs (latest last), the latest V2X readings, net energy and the signed-value verdicts."""
    mode = None
    for event in tx.events:
        mode = ((event.payload or {}).get("transactionInfo") or {}).get("operationMode", mode)
    latest: dict[str, Any] = {}
    for m in sorted(tx.meter_values, key=lambda m: (m.timestamp, m.id)):
        if m.measurand in LATEST and m.phase is None:
            latest[m.measurand] = {"value": m.value, "unit": m.unit, "timestamp": _iso(m.timestamp)}
    verdicts: dict[str, int] = {}
    for m in tx.meter_values:
        if m.signature is not None:
            verdicts[m.signature] = verdicts.get(m.signature, 0) + 1
    v2x = tx.v2x or {}
    return {"operationMode": mode, "allowedEnergyTransfer": v2x.get("allowedEnergyTransfer"),
            "allowedEnergyTransferSent": v2x.get("allowedEnergyTransferSent"),
            "allowedEnergyTransferAuthorized": v2x.get("allowedEnergyTransferAuthorized"),
            "chargingNeeds": op_charging_needs(s, tx.station_id, tx.transaction_id),
            "latest": latest, "energyNetWh": _net(tx.meter_values),
            "signatures": verdicts, "badSignatures": sum(n for v, n in verdicts.items() if v in signed_meter.BAD)}


def _net(values: list[MeterValue]) -> float | None:
    """Energy.Active.Net over the transaction (last reading minus first), when the station sent two."""
    series = sorted((m for m in values if m.measurand == "Energy.Active.Net" and m.unit == "Wh" and m.phase is None),
                    key=lambda m: (m.timestamp, m.id))
    return series[-1].value - series[0].value if len(series) >= 2 else None
