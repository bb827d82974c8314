"""CSMS persistence on SQLAlchemy: SQLite by default (a file in the working directory), PostgreSQL by URL.

Writes that come from stations are idempotent where OCPP allows replays: a TransactionEvent is keyed by
(station, transactionId, seqNo), so an event the station queued offline and sends again is stored once.
Sampled values are stored normalised (ocpp/units.py: value x 10^multiplier, kWh as Wh, kW as W) beside what was
sent, so every energy total is in Wh. A database of an earlier version is upgraded at start (csms/migrate.py).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from sqlalchemy import create_engine, event, insert, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..constants import ISO_FACTS_VENDOR
from ..ocpp.auth import valid_station_id
from ..ocpp.units import DEFAULT_MEASURAND, normalise
from ..times import parse_rfc3339, rfc3339
from . import signed_meter, v2x_state
from .migrate import SchemaError, migrate
from .models import (
    ApiToken,
    AuditRecord,
    Base,
    IdToken,
    MessageLog,
    MeterKey,
    MeterValue,
    Station,
    Transaction,
    TrustAnchor,
)

DEFAULT_URL = "sqlite:///v2gstack-csms.db"
T = TypeVar("T")
# OCPP 2.0.1 InstallCertificateUseEnumType names, plus the OEM root (OCPP 2.1) for certificate installation.
ANCHOR_KINDS = ("V2GRootCertificate", "MORootCertificate", "CSMSRootCertificate", "ManufacturerRootCertificate",
                "OEMRootCertificate")


class StoreError(ValueError):
    """A request the store cannot satisfy (unknown station, duplicate registration, bad URL, ...)."""


def engine_url(url: str) -> str:
    """Map user-facing URLs to SQLAlchemy drivers: `postgresql://` uses psycopg 3."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("sqlite://", "postgresql+")):
        return url
    raise StoreError(f"unsupported database URL {url.split('://', 1)[0]!r}: use sqlite:///FILE or postgresql://...")


SCRYPT_N = 2**14


def hash_password(password: str, n: int = SCRYPT_N) -> str:
    """scrypt hash with a random salt, as `scrypt$<n>$<salt hex>$<hash hex>`."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1)
    return f"scrypt${n}${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    """Constant-time check of a password against `hash_password` output (also the older form without n)."""
    if not stored or not stored.startswith("scrypt$"):
        return False
    parts = stored.split("$")
    n, salt_hex, digest_hex = (SCRYPT_N, *parts[1:]) if len(parts) == 3 else (int(parts[1]), *parts[2:])
    digest = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt_hex), n=int(n), r=8, p=1,
                            maxmem=256 * int(n) * 8 + 2**20)
    return hmac.compare_digest(digest.hex(), digest_hex)


def _parse_time(value: str | None) -> datetime:
    """An OCPP time (now when missing)."""
    return parse_rfc3339(value) if value else datetime.now(UTC)


class Store:
    """The CSMS database: one engine, short sessions per operation.

    Every operation is a function of an open SQLAlchemy session (the `op_*` functions below), so the same code runs
    alone (`store.record_transaction_event(...)`) or batched with others in one database transaction by the
    StoreWorker (csms/worker.py), which is how the server writes: one commit for many stations' messages.
    """

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = url
        self.engine: Engine = create_engine(engine_url(url), future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        Base.metadata.create_all(self.engine)
        try:
            migrate(self.engine, Base.metadata)
        except SchemaError as e:
            self.engine.dispose()
            raise StoreError(str(e)) from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction. `write`: one that reads, then writes, outside the store's worker: on SQLite it begins
        IMMEDIATE (the write lock first), since a deferred one that read before another connection committed cannot
        become a writer ("database is locked" at once, no busy wait)."""
        with self._sessions() as s, s.begin():
            if write:
                s.connection(execution_options={"sqlite_immediate": True})
            yield s

    def run(self, op: Callable[..., T], *args: Any) -> T:
        """Run one `op(session, *args)` in its own database transaction."""
        with self.session() as s:
            return op(s, *args)

    def run_write(self, op: Callable[..., T], *args: Any) -> T:
        """Run one `op(session, *args)` that reads, then writes, in its own transaction (see `session(write=True)`)."""
        with self.session(write=True) as s:
            return op(s, *args)

    # ------------------------------------------------------------------ stations
    def add_station(self, station_id: str, password: str | None = None, security_profile: int = 1) -> None:
        if not valid_station_id(station_id):
            raise StoreError("a station id is 1 to 48 characters of A-Z a-z 0-9 * - _ = + | @ .")
        if password is not None and not 16 <= len(password) <= 40:
            raise StoreError("an OCPP BasicAuthPassword is 16 to 40 characters")
        try:
            self.run(op_add_station, station_id, hash_password(password) if password else None, security_profile)
        except IntegrityError:
            raise StoreError(f"station {station_id!r} is already registered") from None

    def set_station_password(self, station_id: str, password: str | None) -> None:
        if password is not None and not 16 <= len(password) <= 40:
            raise StoreError("an OCPP BasicAuthPassword is 16 to 40 characters")
        self.run(op_set_station_password, station_id, hash_password(password) if password else None)

    def delete_station(self, station_id: str) -> bool:
        return self.run(op_delete_station, station_id)

    def station(self, station_id: str) -> Station | None:
        return self.run(op_station, station_id)

    def stations(self) -> list[Station]:
        return self.run(op_stations)

    def check_station_password(self, station_id: str, password: str) -> bool:
        st = self.station(station_id)
        return st is not None and check_password(password, st.password_hash)

    def record_boot(self, station_id: str, payload: dict[str, Any], status: str) -> None:
        self.run(op_record_boot, station_id, payload, status)

    def record_status(self, station_id: str, evse_id: int, connector_id: int, status: str) -> None:
        self.run(op_record_status, station_id, evse_id, connector_id, status)

    # ------------------------------------------------------------------ idTokens
    def put_id_token(self, id_token: str, type_: str = "ISO14443", status: str = "Accepted",
                     group_id: str | None = None, account: str | None = None,
                     expires_at: datetime | None = None, allowed_energy_transfer: list[str] | None = None) -> None:
        self.run(op_put_id_token, id_token, type_, status, group_id, account, expires_at, allowed_energy_transfer)

    def id_token(self, id_token: str, type_: str) -> IdToken | None:
        return self.run(op_id_token, id_token, type_)

    def id_tokens(self) -> list[IdToken]:
        return self.run(op_id_tokens)

    def delete_id_token(self, id_token: str, type_: str) -> bool:
        return self.run(op_delete_id_token, id_token, type_)

    # ------------------------------------------------------------------ transactions
    def record_transaction_event(self, station_id: str, payload: dict[str, Any]) -> bool:
        """Store a TransactionEventRequest (2.0.1) with its meter values; False if it was already stored."""
        return self.run(op_record_transaction_event, station_id, payload)

    def link_iso15118(self, station_id: str, transaction_id: str, facts: dict[str, Any]) -> None:
        """Join the ISO 15118 session facts (SessionID, EVCCID, namespace) to an OCPP transaction."""
        if not self.run(op_link_iso15118, station_id, transaction_id, facts):
            raise StoreError(f"unknown transaction {transaction_id!r} of station {station_id!r}")

    def transaction(self, station_id: str | None, transaction_id: str) -> dict[str, Any] | None:
        """A transaction with its events and meter values, as plain data (for the API and the trace).

        With station_id None, the transaction is looked up by id over all stations (ids are UUIDs in practice).
        """
        return self.run(op_transaction, station_id, transaction_id)

    def transactions(self, station_id: str | None = None, *, state: str | None = None,
                     limit: int | None = None) -> list[dict[str, Any]]:
        return self.run(op_transactions, station_id, state, limit)

    def meter_values(self, station_id: str, *, evse_id: int | None = None, since: datetime | None = None,
                     limit: int = 1000) -> list[dict[str, Any]]:
        """A station's sampled values, oldest first: all, or one EVSE's (0: the main meter), from `since` on.

        Values of transactions are included (with their transactionId); MeterValues requests have none.
        """
        return self.run(op_meter_values, station_id, evse_id, since, limit)

    def transaction_by_session(self, session_id: str) -> dict[str, Any] | None:
        """The transaction linked to an ISO 15118 SessionID (hex), if any."""
        return self.run(op_transaction_by_session, session_id)

    # ------------------------------------------------------------------ trust anchors
    def add_trust_anchor(self, kind: str, pem: bytes | str) -> list[str]:
        """Install the root certificate(s) of a PEM text under `kind`; returns their SHA-256 fingerprints."""
        if kind not in ANCHOR_KINDS:
            raise StoreError(f"kind must be one of {', '.join(ANCHOR_KINDS)}")
        data = pem.encode() if isinstance(pem, str) else pem
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as e:
            raise StoreError(f"not a PEM certificate: {e}") from None
        return self.run(op_add_trust_anchors, kind, certs)

    def trust_anchors(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Installed roots (all, or of one kind)."""
        return self.run(op_trust_anchors, kind)

    def anchor_certificates(self, kind: str) -> list[x509.Certificate]:
        """The installed roots of one kind as certificates."""
        return self.run(op_anchor_certificates, kind)

    def remove_trust_anchor(self, fingerprint: str) -> bool:
        return self.run(op_remove_trust_anchor, fingerprint.lower().replace(":", ""))

    # ------------------------------------------------------------------ message log
    def log_message(self, station_id: str, direction: str, action: str, payload: dict[str, Any],
                    response: dict[str, Any] | None = None, *, transaction_id: str | None = None,
                    session_id: str | None = None, at: datetime | None = None) -> None:
        self.run(op_log_message, station_id, direction, action, payload, response, transaction_id, session_id, at)

    def messages(self, *, station_id: str | None = None, transaction_id: str | None = None,
                 session_id: str | None = None, limit: int = 10000) -> list[dict[str, Any]]:
        """Logged messages, oldest first, filtered by station, transaction and/or ISO 15118 SessionID."""
        return self.run(op_messages, station_id, transaction_id, session_id, limit)


    # ------------------------------------------------------------------ API tokens and audit log
    def add_api_token(self, token_id: str, name: str, role: str, secret_sha256: str, expires_at: datetime) -> None:
        """Record a new API token (csms/auth.py makes the secret and keeps only its hash)."""
        try:
            self.run(op_add_api_token, token_id, name, role, secret_sha256, expires_at)
        except IntegrityError:
            raise StoreError(f"API token id {token_id!r} exists already") from None

    def api_token(self, token_id: str) -> ApiToken | None:
        """One API token record (with the secret's hash: for the check in csms/auth.py only)."""
        return self.run(op_api_token, token_id)

    def api_tokens(self) -> list[dict[str, Any]]:
        """Every API token without its secret hash, oldest first."""
        return self.run(op_api_tokens)

    def revoke_api_token(self, token_id: str) -> bool:
        """Revoke a token at once (kept for the audit log's sake); False if there is no such token."""
        return self.run(op_revoke_api_token, token_id)

    def record_audit(self, entry: dict[str, Any]) -> None:
        """Append one audit record (see op_record_audit)."""
        self.run(op_record_audit, entry)

    def audit(self, *, limit: int = 100, station_id: str | None = None,
              token_id: str | None = None) -> list[dict[str, Any]]:
        """Audit records, newest first, filtered by station and/or token."""
        return self.run(op_audit, limit, station_id, token_id)


# ---------------------------------------------------------------------- operations on an open session


def _station(s: Session, station_id: str) -> Station:
    st = s.get(Station, station_id)
    if st is None:
        raise StoreError(f"unknown station {station_id!r}")
    return st


def op_station(s: Session, station_id: str) -> Station | None:
    """A registered station (None if unknown)."""
    return s.get(Station, station_id)


def op_add_station(s: Session, station_id: str, password_hash: str | None, security_profile: int) -> None:
    """Register a station (IntegrityError if it is registered already)."""
    s.add(Station(id=station_id, security_profile=security_profile, password_hash=password_hash,
                  connector_status={}))
    s.flush()


def op_record_boot(s: Session, station_id: str, payload: dict[str, Any], status: str) -> None:
    """A BootNotification and the registration status answered."""
    st = _station(s, station_id)
    cs = payload.get("chargingStation", {})
    st.vendor, st.model = cs.get("vendorName"), cs.get("model")
    st.firmware, st.serial_number = cs.get("firmwareVersion"), cs.get("serialNumber")
    st.boot_status, st.last_seen = status, datetime.now(UTC)


def op_record_status(s: Session, station_id: str, evse_id: int, connector_id: int, status: str) -> None:
    """A connector's status from StatusNotification."""
    st = _station(s, station_id)
    st.connector_status = {**(st.connector_status or {}), f"{evse_id}/{connector_id}": status}
    st.last_seen = datetime.now(UTC)


def op_seen(s: Session, station_id: str) -> None:
    """The station sent something (Heartbeat)."""
    _station(s, station_id).last_seen = datetime.now(UTC)


def op_id_token(s: Session, id_token: str, type_: str) -> IdToken | None:
    """Look an idToken up."""
    return s.get(IdToken, (id_token, type_))


def op_put_id_token(s: Session, id_token: str, type_: str = "ISO14443", status: str = "Accepted",
                    group_id: str | None = None, account: str | None = None,
                    expires_at: datetime | None = None, allowed_energy_transfer: list[str] | None = None) -> None:
    """Register or update an idToken (`allowed_energy_transfer`: its OCPP 2.1 modes; None: the CSMS's default)."""
    s.merge(IdToken(id_token=id_token, type=type_, status=status, group_id=group_id, account=account,
                    expires_at=expires_at, allowed_energy_transfer=allowed_energy_transfer))


def op_token_authorization(s: Session, id_token: dict[str, Any]) -> tuple[dict[str, Any], list[str] | None]:
    """Authorize over OCPP 2.1: the idTokenInfo (op_id_token_info) and the token's own allowed energy transfer modes
    (None: unknown token, or none of its own)."""
    tok = op_id_token(s, id_token.get("idToken", ""), id_token.get("type", ""))
    return op_id_token_info(s, id_token), (tok.allowed_energy_transfer if tok is not None else None)


def op_id_token_info(s: Session, id_token: dict[str, Any]) -> dict[str, Any]:
    """IdTokenInfo for an idToken: its registered status, Expired past its expiry, Unknown if not registered."""
    token, type_ = id_token.get("idToken", ""), id_token.get("type", "")
    if type_ in ("NoAuthorization",):
        return {"status": "Accepted"}
    tok = op_id_token(s, token, type_)
    if tok is None:
        return {"status": "Unknown"}
    status = tok.status
    if status == "Accepted" and tok.expires_at is not None:
        expiry = tok.expires_at if tok.expires_at.tzinfo else tok.expires_at.replace(tzinfo=UTC)
        if expiry <= datetime.now(UTC):
            status = "Expired"
    info: dict[str, Any] = {"status": status}
    if tok.group_id:
        info["groupIdToken"] = {"idToken": tok.group_id, "type": "Central"}
    return info


def op_anchor_certificates(s: Session, kind: str) -> list[x509.Certificate]:
    """The installed roots of one kind (e.g. MORootCertificate) as certificates."""
    rows = s.scalars(select(TrustAnchor).where(TrustAnchor.kind == kind).order_by(TrustAnchor.subject))
    return [x509.load_pem_x509_certificate(t.pem.encode()) for t in rows]


_EVENT_SQL = """INSERT INTO transaction_events (station_id, transaction_id, seq_no, event_type, trigger_reason,
 timestamp, offline, payload, received_at) VALUES (%(station_id)s, %(transaction_id)s, %(seq_no)s, %(event_type)s,
 %(trigger_reason)s, %(timestamp)s, %(offline)s, %(payload)s, %(received_at)s)
 ON CONFLICT (station_id, transaction_id, seq_no) DO NOTHING RETURNING id"""
_TRANSACTION_SQL = """INSERT INTO transactions AS t (station_id, transaction_id, evse_id, connector_id, id_token, state,
 charging_state, started_at, ended_at, stopped_reason, iso15118) VALUES (%(station_id)s, %(transaction_id)s,
 %(evse_id)s, %(connector_id)s, %(id_token)s, %(state)s, %(charging_state)s, %(started_at)s, %(ended_at)s,
 %(stopped_reason)s, '{}')
 ON CONFLICT (station_id, transaction_id) DO UPDATE SET
 evse_id = COALESCE(excluded.evse_id, t.evse_id), connector_id = COALESCE(excluded.connector_id, t.connector_id),
 id_token = COALESCE(excluded.id_token, t.id_token),
 charging_state = COALESCE(excluded.charging_state, t.charging_state),
 started_at = CASE WHEN excluded.state = 'Started' THEN excluded.started_at ELSE t.started_at END,
 state = CASE WHEN t.state = 'Ended' OR excluded.state = 'Ended' THEN 'Ended' ELSE excluded.state END,
 ended_at = COALESCE(excluded.ended_at, t.ended_at),
 stopped_reason = COALESCE(excluded.stopped_reason, t.stopped_reason)
 RETURNING evse_id"""
_METER_SQL = """INSERT INTO meter_values (station_id, transaction_id, evse_id, event_id, timestamp, measurand, phase,
 location, context, value, unit, sent_value, sent_unit, multiplier, signed, signature) VALUES (%(station_id)s,
 %(transaction_id)s, %(evse_id)s, %(event_id)s, %(timestamp)s, %(measurand)s, %(phase)s, %(location)s, %(context)s,
 %(value)s, %(unit)s, %(sent_value)s, %(sent_unit)s, %(multiplier)s, %(signed)s, %(signature)s)"""


# PostgreSQL: the three statements as one (data-modifying CTEs), so an event costs one round trip to the server.
_PG_EVENT_SQL = ("WITH ev AS (" + _EVENT_SQL + "), tx AS (" + _TRANSACTION_SQL.replace(
    " VALUES (%(station_id)s", " SELECT %(station_id)s").replace(
    "%(stopped_reason)s, '{}')", "%(stopped_reason)s, '{}' WHERE EXISTS (SELECT 1 FROM ev)") + """),
 mv AS (INSERT INTO meter_values (station_id, transaction_id, evse_id, event_id, timestamp, measurand, phase, location,
 context, value, unit, sent_value, sent_unit, multiplier, signed, signature) SELECT %(station_id)s, %(transaction_id)s,
 (SELECT evse_id FROM tx), ev.id, (m->>'timestamp')::timestamptz, m->>'measurand', m->>'phase', m->>'location',
 m->>'context', (m->>'value')::float8, m->>'unit', (m->>'sent_value')::float8, m->>'sent_unit',
 (m->>'multiplier')::int, CASE WHEN json_typeof(m->'signed') = 'object' THEN m->'signed' END, m->>'signature'
 FROM ev, json_array_elements(%(meter_rows)s::json) AS m)
 SELECT id FROM ev""")


@functools.cache
def _sql(dialect: str, text: str) -> str:
    """A hot-path statement in the driver's parameter style (psycopg: %(name)s, sqlite3: :name)."""
    return text if dialect == "postgresql" else re.sub(r"%\((\w+)\)s", r":\1", text)


def _db_time(dialect: str, t: datetime | None) -> Any:
    """A datetime as the driver stores it: PostgreSQL takes the object; on SQLite, SQLAlchemy's text form in UTC."""
    if t is None or dialect == "postgresql":
        return t
    t = t.astimezone(UTC) if t.tzinfo else t
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")


def op_record_transaction_event(s: Session, station_id: str, payload: dict[str, Any]) -> bool:
    """Store a TransactionEventRequest with its meter values; False (and nothing written) for a replay.

    The hot path of a CSMS under load: three statements on the driver's own cursor (SQLAlchemy's per-statement cost
    would dominate otherwise): the event insert (ON CONFLICT DO NOTHING on station/transaction/seqNo decides
    replays), the transaction upsert that folds the event into the transaction's state, and one executemany of the
    sampled values. The SQL is the same on SQLite and PostgreSQL but for the parameter style.
    """
    info = payload["transactionInfo"]
    tx_id = info["transactionId"]
    when = _parse_time(payload.get("timestamp"))
    event_type = payload["eventType"]
    dialect = s.get_bind().dialect.name
    cur = s.connection().connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if dialect == "postgresql":
            keys = op_meter_keys(s, station_id) if _signed(payload) else None
            event_id = _pg_record_event(cur, station_id, payload, when, keys)
            if event_id is None:
                return False
            custom = payload.get("customData") or {}
            if custom.get("vendorId") == ISO_FACTS_VENDOR:
                op_link_iso15118(s, station_id, tx_id, {k: v for k, v in custom.items() if k != "vendorId"})
            return True
        at = _db_time(dialect, when)
        cur.execute(_sql(dialect, _EVENT_SQL), {
            "station_id": station_id, "transaction_id": tx_id, "seq_no": payload["seqNo"], "event_type": event_type,
            "trigger_reason": payload["triggerReason"], "timestamp": at, "offline": bool(payload.get("offline", False)),
            "payload": json.dumps(payload, separators=(",", ":")),
            "received_at": _db_time(dialect, datetime.now(UTC))})
        row = cur.fetchone()
        if row is None:
            return False
        event_id = row[0]
        evse = payload.get("evse") or {}
        ended = event_type == "Ended"
        try:
            cur.execute(_sql(dialect, _TRANSACTION_SQL), {
                "station_id": station_id, "transaction_id": tx_id, "evse_id": evse.get("id"),
                "connector_id": evse.get("connectorId"),
                "id_token": (payload.get("idToken") or {}).get("idToken"), "state": event_type,
                "charging_state": info.get("chargingState"), "started_at": at, "ended_at": at if ended else None,
                "stopped_reason": info.get("stoppedReason", "Local") if ended else None})
            (tx_evse,) = cur.fetchone()  # the transaction's EVSE: later events need not name it
        except Exception as e:  # the foreign key: transactions belong to registered stations
            if "foreign key" in str(e).lower():
                raise StoreError(f"unknown station {station_id!r}") from None
            raise
        keys = op_meter_keys(s, station_id) if _signed(payload) else None
        rows = _meter_rows(dialect, station_id, tx_id, event_id, payload.get("meterValue", []), tx_evse, keys)
        for r in rows:
            if r["signed"] is not None:
                r["signed"] = json.dumps(r["signed"], separators=(",", ":"))
        if rows:
            cur.executemany(_sql(dialect, _METER_SQL), rows)
    finally:
        cur.close()
    custom = payload.get("customData") or {}
    if custom.get("vendorId") == ISO_FACTS_VENDOR:
        op_link_iso15118(s, station_id, tx_id, {k: v for k, v in custom.items() if k != "vendorId"})
    return True


def _pg_record_event(cur: Any, station_id: str, payload: dict[str, Any], when: datetime,
                     keys: dict[int, str] | None = None) -> int | None:
    """PostgreSQL: event, transaction upsert and sampled values in one statement; the new event id or None."""
    info = payload["transactionInfo"]
    tx_id = info["transactionId"]
    event_type = payload["eventType"]
    ended = event_type == "Ended"
    evse = payload.get("evse") or {}
    rows = _meter_rows("postgresql", station_id, tx_id, None, payload.get("meterValue", []), evse.get("id"), keys)
    for r in rows:
        r["timestamp"] = r["timestamp"].isoformat()
    try:
        cur.execute(_PG_EVENT_SQL, {
            "station_id": station_id, "transaction_id": tx_id, "seq_no": payload["seqNo"], "event_type": event_type,
            "trigger_reason": payload["triggerReason"], "timestamp": when,
            "offline": bool(payload.get("offline", False)), "payload": json.dumps(payload, separators=(",", ":")),
            "received_at": datetime.now(UTC), "evse_id": evse.get("id"), "connector_id": evse.get("connectorId"),
            "id_token": (payload.get("idToken") or {}).get("idToken"), "state": event_type,
            "charging_state": info.get("chargingState"), "started_at": when, "ended_at": when if ended else None,
            "stopped_reason": info.get("stoppedReason", "Local") if ended else None,
            "meter_rows": json.dumps(rows, separators=(",", ":"))})
    except Exception as e:  # the foreign key: transactions belong to registered stations
        if "foreign key" in str(e).lower():
            raise StoreError(f"unknown station {station_id!r}") from None
        raise
    row = cur.fetchone()
    return None if row is None else row[0]


def _meter_rows(dialect: str, station_id: str, tx_id: str | None, event_id: int | None,
                meter_values: list[dict[str, Any]], evse_id: int | None = None,
                keys: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """One parameter row per sampled value: normalised value and unit, the value, unit and multiplier sent
    (MeterValueError, a PropertyConstraintViolation, for a value that cannot be represented), and for a signed value
    what was signed and the verdict of its check with the meter key held for the EVSE (`keys`: evseId -> key)."""
    rows = []
    for mv in meter_values:
        at = _db_time(dialect, _parse_time(mv.get("timestamp")))
        for sv in mv.get("sampledValue", []):
            n = normalise(sv)
            signed = sv.get("signedMeterValue")
            held = None if keys is None else keys.get(evse_id or 0, keys.get(0))
            rows.append({
                "station_id": station_id, "transaction_id": tx_id, "evse_id": evse_id, "event_id": event_id,
                "timestamp": at, "measurand": sv.get("measurand", DEFAULT_MEASURAND), "phase": sv.get("phase"),
                "location": sv.get("location"), "context": sv.get("context"), "value": n.value, "unit": n.unit,
                "sent_value": n.sent_value, "sent_unit": n.sent_unit, "multiplier": n.multiplier,
                "signed": signed, "signature": signed_meter.verdict(sv, held) if signed else None,
            })
    return rows


def _signed(payload: dict[str, Any]) -> bool:
    """Whether any sampled value of a message is signed (the meter keys are read only then)."""
    return any(sv.get("signedMeterValue") for mv in payload.get("meterValue", [])
               for sv in mv.get("sampledValue", []))


def op_meter_keys(s: Session, station_id: str) -> dict[int, str]:
    """The meter keys the CSMS holds for a station: evseId (0: any) -> DER hex."""
    return {k.evse_id: k.public_key for k in s.scalars(select(MeterKey).where(MeterKey.station_id == station_id))}


def op_record_meter_values(s: Session, station_id: str, payload: dict[str, Any]) -> int:
    """Store a MeterValuesRequest's sampled values (no transaction) under its evseId (0: the main meter)."""
    _station(s, station_id)
    keys = op_meter_keys(s, station_id) if _signed(payload) else None
    return _add_meter_values(s, station_id, None, None, payload.get("meterValue", []), payload.get("evseId"), keys)


def _add_meter_values(s: Session, station_id: str, tx_id: str | None, event_id: int | None,
                      meter_values: list[dict[str, Any]], evse_id: int | None,
                      keys: dict[int, str] | None = None) -> int:
    rows = _meter_rows("sqlalchemy", station_id, tx_id, event_id, meter_values, evse_id, keys)
    for r in rows:  # the UTC text of _db_time back to an aware UTC datetime (PostgreSQL would read naive as local)
        r["timestamp"] = _parse_time(r["timestamp"]).replace(tzinfo=UTC)
    if rows:
        s.execute(insert(MeterValue.__table__), rows)
    return len(rows)


def op_record_event_and_authorize(s: Session, station_id: str, payload: dict[str, Any],
                                  version: str | None = None) -> tuple[bool, dict[str, Any] | None]:
    """A TransactionEvent stored once (False: a replay) and the IdTokenInfo of the idToken it carries, if any; a
    new transaction is marked with the OCPP `version` it runs on (shown by the API)."""
    stored = op_record_transaction_event(s, station_id, payload)
    if stored and version is not None and payload["eventType"] == "Started":
        tx = s.get(Transaction, (station_id, payload["transactionInfo"]["transactionId"]))
        if tx is not None:
            tx.ocpp_version = version
    info = op_id_token_info(s, payload["idToken"]) if payload.get("idToken") else None
    return stored, info


def op_link_iso15118(s: Session, station_id: str, transaction_id: str, facts: dict[str, Any]) -> bool:
    """Merge ISO 15118 facts into a transaction; False if the transaction is unknown."""
    tx = s.get(Transaction, (station_id, transaction_id))
    if tx is None:
        return False
    tx.iso15118 = {**(tx.iso15118 or {}), **facts}
    return True


def op_log_message(s: Session, station_id: str, direction: str, action: str, payload: dict[str, Any],
                   response: dict[str, Any] | None, transaction_id: str | None, session_id: str | None,
                   at: datetime | None = None) -> None:
    """Append one message to the session message log."""
    s.add(MessageLog(station_id=station_id, time=at or datetime.now(UTC), direction=direction, action=action,
                     payload=payload, response=response, transaction_id=transaction_id,
                     session_id=session_id.upper() if session_id else None))


AUDIT_FIELDS = ("token_id", "actor", "role", "method", "path", "action", "station_id", "status", "client")


def op_record_audit(s: Session, entry: dict[str, Any]) -> None:
    """Append one audit record: the keys of AUDIT_FIELDS (strings cut to their column's size), `time` optional."""
    values = {k: entry.get(k) for k in AUDIT_FIELDS}
    for k, v in values.items():
        if isinstance(v, str):
            values[k] = v[:AuditRecord.__table__.c[k].type.length]  # type: ignore[attr-defined]
    s.add(AuditRecord(time=entry.get("time") or datetime.now(UTC), **values))


# ---------------------------------------------------------------------- the registry and the reads of the CLI and API


def op_set_station_password(s: Session, station_id: str, password_hash: str | None) -> None:
    """Set (or clear) a station's Basic auth password hash."""
    _station(s, station_id).password_hash = password_hash


def op_delete_station(s: Session, station_id: str) -> bool:
    """Remove a station; False if there is none."""
    st = s.get(Station, station_id)
    if st is None:
        return False
    s.delete(st)
    return True


def op_stations(s: Session) -> list[Station]:
    """Every registered station, by id."""
    return list(s.scalars(select(Station).order_by(Station.id)))


def op_id_tokens(s: Session) -> list[IdToken]:
    """Every registered idToken."""
    return list(s.scalars(select(IdToken).order_by(IdToken.id_token, IdToken.type)))


def op_delete_id_token(s: Session, id_token: str, type_: str) -> bool:
    """Remove an idToken; False if there is none."""
    tok = s.get(IdToken, (id_token, type_))
    if tok is None:
        return False
    s.delete(tok)
    return True


def op_transaction(s: Session, station_id: str | None, transaction_id: str) -> dict[str, Any] | None:
    """A transaction with its events and meter values as plain data (station_id None: any station's)."""
    if station_id is not None:
        tx = s.get(Transaction, (station_id, transaction_id))
    else:
        tx = s.scalars(select(Transaction).where(Transaction.transaction_id == transaction_id)).first()
    if tx is None:
        return None
    return _transaction_dict(tx, with_details=True, session=s)


def op_transactions(s: Session, station_id: str | None, state: str | None,
                    limit: int | None) -> list[dict[str, Any]]:
    """Transactions as plain data, oldest first: all, a station's, and/or in one state."""
    q = select(Transaction).order_by(Transaction.started_at)
    if station_id is not None:
        q = q.where(Transaction.station_id == station_id)
    if state is not None:
        q = q.where(Transaction.state == state)
    if limit is not None:
        q = q.limit(limit)
    return [_transaction_dict(tx, with_details=False) for tx in s.scalars(q)]


def op_meter_values(s: Session, station_id: str, evse_id: int | None, since: datetime | None,
                    limit: int) -> list[dict[str, Any]]:
    """A station's sampled values as plain data, oldest first (see Store.meter_values)."""
    q = select(MeterValue).where(MeterValue.station_id == station_id)
    if evse_id is not None:
        q = q.where(MeterValue.evse_id == evse_id)
    if since is not None:  # compared in UTC (SQLite keeps UTC text without an offset)
        since = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
        q = q.where(MeterValue.timestamp >= (since if s.get_bind().dialect.name == "postgresql"
                                             else since.replace(tzinfo=None)))
    q = q.order_by(MeterValue.timestamp, MeterValue.id).limit(limit)
    return [_meter_dict(m) for m in s.scalars(q)]


def op_transaction_by_session(s: Session, session_id: str) -> dict[str, Any] | None:
    """The transaction linked to an ISO 15118 SessionID (hex), by the message log or the ISO facts, if any."""
    row = s.scalars(select(MessageLog.transaction_id).where(
        MessageLog.session_id == session_id.upper(), MessageLog.transaction_id.is_not(None))).first()
    if row is None:
        for tx in s.scalars(select(Transaction)):
            if str((tx.iso15118 or {}).get("sessionId", "")).upper() == session_id.upper():
                return _transaction_dict(tx, with_details=True)
        return None
    tx = s.scalars(select(Transaction).where(Transaction.transaction_id == row)).first()
    return None if tx is None else _transaction_dict(tx, with_details=True)


def op_add_trust_anchors(s: Session, kind: str, certs: list[x509.Certificate]) -> list[str]:
    """Install root certificates under `kind`; their SHA-256 fingerprints."""
    out = []
    for cert in certs:
        fp = cert.fingerprint(hashes.SHA256()).hex()
        s.merge(TrustAnchor(fingerprint=fp, kind=kind, subject=cert.subject.rfc4514_string()[:500],
                            not_after=cert.not_valid_after_utc,
                            pem=cert.public_bytes(serialization.Encoding.PEM).decode(), added_at=datetime.now(UTC)))
        out.append(fp)
    return out


def op_trust_anchors(s: Session, kind: str | None) -> list[dict[str, Any]]:
    """Installed roots as plain data (all, or of one kind)."""
    q = select(TrustAnchor).order_by(TrustAnchor.kind, TrustAnchor.subject)
    if kind is not None:
        q = q.where(TrustAnchor.kind == kind)
    return [{"fingerprint": t.fingerprint, "kind": t.kind, "subject": t.subject,
             "notAfter": _iso(t.not_after), "pem": t.pem} for t in s.scalars(q)]


def op_remove_trust_anchor(s: Session, fingerprint: str) -> bool:
    """Remove an installed root by its SHA-256 fingerprint (lower-case hex); False if there is none."""
    t = s.get(TrustAnchor, fingerprint)
    if t is None:
        return False
    s.delete(t)
    return True


def op_messages(s: Session, station_id: str | None, transaction_id: str | None, session_id: str | None,
                limit: int) -> list[dict[str, Any]]:
    """Logged messages as plain data, oldest first (see Store.messages)."""
    q = select(MessageLog).order_by(MessageLog.id).limit(limit)
    if station_id is not None:
        q = q.where(MessageLog.station_id == station_id)
    if transaction_id is not None and session_id is not None:
        q = q.where(or_(MessageLog.transaction_id == transaction_id, MessageLog.session_id == session_id.upper()))
    elif transaction_id is not None:
        q = q.where(MessageLog.transaction_id == transaction_id)
    elif session_id is not None:
        q = q.where(MessageLog.session_id == session_id.upper())
    return [{"id": m.id, "stationId": m.station_id, "time": _iso(m.time), "direction": m.direction,
             "action": m.action, "payload": m.payload, "response": m.response,
             "transactionId": m.transaction_id, "sessionId": m.session_id} for m in s.scalars(q)]


def op_add_api_token(s: Session, token_id: str, name: str, role: str, secret_sha256: str,
                     expires_at: datetime) -> None:
    """Record a new API token (IntegrityError if the id exists)."""
    s.add(ApiToken(id=token_id, name=name, role=role, secret_sha256=secret_sha256, created_at=datetime.now(UTC),
                   expires_at=expires_at))
    s.flush()


def op_api_token(s: Session, token_id: str) -> ApiToken | None:
    """One API token record, with its secret's hash."""
    return s.get(ApiToken, token_id)


def op_api_tokens(s: Session) -> list[dict[str, Any]]:
    """Every API token as plain data without its secret hash, oldest first."""
    return [{"id": t.id, "name": t.name, "role": t.role, "createdAt": _iso(t.created_at),
             "expiresAt": _iso(t.expires_at), "revokedAt": _iso(t.revoked_at)}
            for t in s.scalars(select(ApiToken).order_by(ApiToken.created_at))]


def op_revoke_api_token(s: Session, token_id: str) -> bool:
    """Revoke an API token (once); False if there is none."""
    t = s.get(ApiToken, token_id)
    if t is None:
        return False
    if t.revoked_at is None:
        t.revoked_at = datetime.now(UTC)
    return True


def op_audit(s: Session, limit: int, station_id: str | None, token_id: str | None) -> list[dict[str, Any]]:
    """Audit records as plain data, newest first (see Store.audit)."""
    q = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit)
    if station_id is not None:
        q = q.where(AuditRecord.station_id == station_id)
    if token_id is not None:
        q = q.where(AuditRecord.token_id == token_id)
    return [{"id": a.id, "time": _iso(a.time), "tokenId": a.token_id, "actor": a.actor, "role": a.role,
             "method": a.method, "path": a.path, "action": a.action, "stationId": a.station_id,
             "status": a.status, "client": a.client} for a in s.scalars(q)]


def _iso(t: datetime | None) -> str | None:
    """RFC 3339 in UTC with a Z (SQLite returns naive datetimes; they were stored as UTC)."""
    return None if t is None else rfc3339(t, timespec="auto")


def _meter_dict(m: MeterValue) -> dict[str, Any]:
    """A stored sampled value as the API serves it: normalised `value`/`unit`, and `sent` as the station sent it."""
    return {"timestamp": _iso(m.timestamp), "evseId": m.evse_id, "transactionId": m.transaction_id,
            "measurand": m.measurand, "phase": m.phase, "location": m.location, "context": m.context,
            "value": m.value, "unit": m.unit,
            "sent": {"value": m.sent_value, "unit": m.sent_unit, "multiplier": m.multiplier},
            **({"signedMeterValue": m.signed, "signature": m.signature,
                "signatureBad": m.signature in signed_meter.BAD} if m.signed is not None else {})}


def _series(values: list[MeterValue], measurand: str) -> list[MeterValue]:
    """The whole-meter (no phase) Wh values of one measurand at the outlet, oldest first."""
    return sorted((m for m in values if m.measurand == measurand and m.unit == "Wh" and m.phase is None
                   and m.location in (None, "Outlet")), key=lambda m: (m.timestamp, m.id))


def energy_totals(values: list[MeterValue]) -> dict[str, float | None]:
    """Energy of a transaction in Wh (values are stored normalised), imported and exported: the last register
    reading minus the first, else the sum of the Interval values; None when the station sent neither (one register
    reading alone tells no energy)."""
    out: dict[str, float | None] = {}
    for key, flow in (("energyImportWh", "Import"), ("energyExportWh", "Export")):
        registers = _series(values, f"Energy.Active.{flow}.Register")
        intervals = _series(values, f"Energy.Active.{flow}.Interval")
        if len(registers) >= 2:
            out[key] = registers[-1].value - registers[0].value
        elif intervals:
            out[key] = sum(m.value for m in intervals)
        else:
            out[key] = None
    return out


def _transaction_dict(tx: Transaction, with_details: bool, session: Session | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stationId": tx.station_id, "transactionId": tx.transaction_id, "evseId": tx.evse_id,
        "connectorId": tx.connector_id, "idToken": tx.id_token, "state": tx.state,
        "chargingState": tx.charging_state, "stoppedReason": tx.stopped_reason,
        "startedAt": _iso(tx.started_at),
        "endedAt": _iso(tx.ended_at), "iso15118": tx.iso15118 or {}, "ocppVersion": tx.ocpp_version,
        "cost": tx.cost,
    }
    if with_details:
        out["events"] = [{"seqNo": e.seq_no, "eventType": e.event_type, "triggerReason": e.trigger_reason,
                          "timestamp": _iso(e.timestamp), "offline": e.offline,
                          "receivedAt": _iso(e.received_at),
                          "payload": e.payload} for e in tx.events]
        out["meterValues"] = [_meter_dict(m) for m in tx.meter_values]
        out.update(energy_totals(tx.meter_values))
        if session is not None:
            out["v2x"] = v2x_state.transaction_v2x(session, tx)
    return out


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL and full sync: a CSMS killed with SIGKILL loses nothing it acknowledged.

    The driver's own transaction handling is switched off so that SAVEPOINTs (one per batched message) work;
    `_sqlite_begin` starts each transaction explicitly instead.
    """
    dbapi_connection.isolation_level = None
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Any) -> None:
    """BEGIN for SQLite (the driver's implicit BEGIN is off, see _sqlite_pragmas)."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("sqlite_immediate") else "BEGIN")
