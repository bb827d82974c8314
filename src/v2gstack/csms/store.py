"""CSMS persistence on SQLAlchemy: SQLite by default (a file in the working directory), PostgreSQL by URL.

Writes that come from stations are idempotent where OCPP allows replays: a TransactionEvent is keyed by
(station, transactionId, seqNo), so an event the station queued offline and sends again is stored once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .models import Base, IdToken, MeterValue, Station, Transaction, TransactionEvent

DEFAULT_URL = "sqlite:///v2gstack-csms.db"


class StoreError(ValueError):
    """A request the store cannot satisfy (unknown station, duplicate registration, bad URL, ...)."""


def engine_url(url: str) -> str:
    """Map user-facing URLs to SQLAlchemy drivers: `postgresql://` uses psycopg 3."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite://", "postgresql+")):
        return url
    raise StoreError(f"unsupported database URL {url.split('://', 1)[0]!r}: use sqlite:///FILE or postgresql://...")


def hash_password(password: str) -> str:
    """scrypt hash with a random salt, as `scrypt$<salt hex>$<hash hex>`."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    """Constant-time check of a password against `hash_password` output."""
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt_hex, digest_hex = stored.split("$")
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), n=2**14, r=8, p=1)
    return hmac.compare_digest(digest.hex(), digest_hex)


def _parse_time(value: str | None) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class Store:
    """The CSMS database: one engine, short sessions per operation."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = url
        self.engine: Engine = create_engine(engine_url(url), future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s, s.begin():
            yield s

    # ------------------------------------------------------------------ stations
    def add_station(self, station_id: str, password: str | None = None, security_profile: int = 1) -> None:
        if not station_id or len(station_id) > 48:
            raise StoreError("a station id is 1 to 48 characters")
        try:
            with self.session() as s:
                s.add(Station(id=station_id, security_profile=security_profile,
                              password_hash=hash_password(password) if password else None, connector_status={}))
        except IntegrityError:
            raise StoreError(f"station {station_id!r} is already registered") from None

    def station(self, station_id: str) -> Station | None:
        with self.session() as s:
            return s.get(Station, station_id)

    def stations(self) -> list[Station]:
        with self.session() as s:
            return list(s.scalars(select(Station).order_by(Station.id)))

    def check_station_password(self, station_id: str, password: str) -> bool:
        st = self.station(station_id)
        return st is not None and check_password(password, st.password_hash)

    def record_boot(self, station_id: str, payload: dict[str, Any], status: str) -> None:
        with self.session() as s:
            st = self._station(s, station_id)
            cs = payload.get("chargingStation", {})
            st.vendor, st.model = cs.get("vendorName"), cs.get("model")
            st.firmware, st.serial_number = cs.get("firmwareVersion"), cs.get("serialNumber")
            st.boot_status, st.last_seen = status, datetime.now(UTC)

    def record_status(self, station_id: str, evse_id: int, connector_id: int, status: str) -> None:
        with self.session() as s:
            st = self._station(s, station_id)
            st.connector_status = {**(st.connector_status or {}), f"{evse_id}/{connector_id}": status}
            st.last_seen = datetime.now(UTC)

    @staticmethod
    def _station(s: Session, station_id: str) -> Station:
        st = s.get(Station, station_id)
        if st is None:
            raise StoreError(f"unknown station {station_id!r}")
        return st

    # ------------------------------------------------------------------ idTokens
    def put_id_token(self, id_token: str, type_: str = "ISO14443", status: str = "Accepted",
                     group_id: str | None = None, account: str | None = None) -> None:
        with self.session() as s:
            s.merge(IdToken(id_token=id_token, type=type_, status=status, group_id=group_id, account=account))

    def id_token(self, id_token: str, type_: str) -> IdToken | None:
        with self.session() as s:
            return s.get(IdToken, (id_token, type_))

    def id_tokens(self) -> list[IdToken]:
        with self.session() as s:
            return list(s.scalars(select(IdToken).order_by(IdToken.id_token)))

    def delete_id_token(self, id_token: str, type_: str) -> bool:
        with self.session() as s:
            tok = s.get(IdToken, (id_token, type_))
            if tok is None:
                return False
            s.delete(tok)
            return True

    # ------------------------------------------------------------------ transactions
    def record_transaction_event(self, station_id: str, payload: dict[str, Any]) -> bool:
        """Store a TransactionEventRequest (2.0.1) with its meter values; False if it was already stored."""
        info = payload["transactionInfo"]
        tx_id = info["transactionId"]
        when = _parse_time(payload.get("timestamp"))
        try:
            with self.session() as s:
                self._station(s, station_id)
                tx = s.get(Transaction, (station_id, tx_id))
                if tx is None:
                    tx = Transaction(station_id=station_id, transaction_id=tx_id, started_at=when, iso15118={})
                    s.add(tx)
                ev = TransactionEvent(
                    station_id=station_id, transaction_id=tx_id, seq_no=payload["seqNo"],
                    event_type=payload["eventType"], trigger_reason=payload["triggerReason"], timestamp=when,
                    offline=bool(payload.get("offline", False)), payload=payload,
                )
                s.add(ev)
                s.flush()  # the unique (station, transaction, seqNo) key decides here
                evse = payload.get("evse") or {}
                tx.evse_id = evse.get("id", tx.evse_id)
                tx.connector_id = evse.get("connectorId", tx.connector_id)
                if payload.get("idToken"):
                    tx.id_token = payload["idToken"].get("idToken")
                tx.charging_state = info.get("chargingState", tx.charging_state)
                if payload["eventType"] == "Started":
                    tx.started_at = when
                elif payload["eventType"] == "Ended":
                    tx.state, tx.ended_at = "Ended", when
                    tx.stopped_reason = info.get("stoppedReason", "Local")
                if tx.state != "Ended":
                    tx.state = "Started" if payload["eventType"] == "Started" else "Updated"
                for mv in payload.get("meterValue", []):
                    at = _parse_time(mv.get("timestamp"))
                    for sv in mv.get("sampledValue", []):
                        s.add(MeterValue(
                            station_id=station_id, transaction_id=tx_id, event_id=ev.id, timestamp=at,
                            measurand=sv.get("measurand", "Energy.Active.Import.Register"), phase=sv.get("phase"),
                            location=sv.get("location"), context=sv.get("context"), value=float(sv["value"]),
                            unit=(sv.get("unitOfMeasure") or {}).get("unit", _default_unit(sv)),
                        ))
        except IntegrityError:
            return False
        return True

    def link_iso15118(self, station_id: str, transaction_id: str, facts: dict[str, Any]) -> None:
        """Join the ISO 15118 session facts (SessionID, EVCCID, namespace) to an OCPP transaction."""
        with self.session() as s:
            tx = s.get(Transaction, (station_id, transaction_id))
            if tx is None:
                raise StoreError(f"unknown transaction {transaction_id!r} of station {station_id!r}")
            tx.iso15118 = {**(tx.iso15118 or {}), **facts}

    def transaction(self, station_id: str, transaction_id: str) -> dict[str, Any] | None:
        """A transaction with its events and meter values, as plain data (for the API and the trace)."""
        with self.session() as s:
            tx = s.get(Transaction, (station_id, transaction_id))
            if tx is None:
                return None
            return _transaction_dict(tx, with_details=True)

    def transactions(self, station_id: str | None = None) -> list[dict[str, Any]]:
        with self.session() as s:
            q = select(Transaction).order_by(Transaction.started_at)
            if station_id is not None:
                q = q.where(Transaction.station_id == station_id)
            return [_transaction_dict(tx, with_details=False) for tx in s.scalars(q)]


def _default_unit(sv: dict[str, Any]) -> str:
    measurand = sv.get("measurand", "Energy.Active.Import.Register")
    return "Wh" if measurand.startswith("Energy") else "W" if measurand.startswith("Power") else ""


def _transaction_dict(tx: Transaction, with_details: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stationId": tx.station_id, "transactionId": tx.transaction_id, "evseId": tx.evse_id,
        "connectorId": tx.connector_id, "idToken": tx.id_token, "state": tx.state,
        "chargingState": tx.charging_state, "stoppedReason": tx.stopped_reason,
        "startedAt": tx.started_at.isoformat() if tx.started_at else None,
        "endedAt": tx.ended_at.isoformat() if tx.ended_at else None, "iso15118": tx.iso15118 or {},
    }
    if with_details:
        out["events"] = [{"seqNo": e.seq_no, "eventType": e.event_type, "triggerReason": e.trigger_reason,
                          "timestamp": e.timestamp.isoformat(), "offline": e.offline} for e in tx.events]
        out["meterValues"] = [{"timestamp": m.timestamp.isoformat(), "measurand": m.measurand, "phase": m.phase,
                               "value": m.value, "unit": m.unit, "context": m.context} for m in tx.meter_values]
    return out


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL and full sync: a CSMS killed with SIGKILL loses nothing it acknowledged."""
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
