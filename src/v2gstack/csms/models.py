"""SQLAlchemy tables of the CSMS: stations, idTokens, transactions, their events and every meter value, the REST API's
access tokens and its audit log."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    """Declarative base of the CSMS schema."""


class Station(Base):
    """A charging station the CSMS accepts; `password_hash` is scrypt (profiles 1-2), never the password."""

    __tablename__ = "stations"
    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    security_profile: Mapped[int] = mapped_column(Integer, default=1)
    vendor: Mapped[str | None] = mapped_column(String(50))
    model: Mapped[str | None] = mapped_column(String(50))
    firmware: Mapped[str | None] = mapped_column(String(50))
    serial_number: Mapped[str | None] = mapped_column(String(50))
    boot_status: Mapped[str | None] = mapped_column(String(20))
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    connector_status: Mapped[dict] = mapped_column(JSON, default=dict)  # "evse/connector" -> status
    ocpp_version: Mapped[str | None] = mapped_column(String(10))  # agreed at its latest connection: 1.6, 2.0.1, 2.1
    connector_errors: Mapped[dict | None] = mapped_column(JSON)  # OCPP 1.6: connectorId -> errorCode, info, ...


class IdToken(Base):
    """An idToken (RFID, eMAID, ...) and the authorization status the CSMS answers for it."""

    __tablename__ = "id_tokens"
    id_token: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(20), primary_key=True)
    status: Mapped[str] = mapped_column(String(30), default="Accepted")
    group_id: Mapped[str | None] = mapped_column(String(255))
    account: Mapped[str | None] = mapped_column(String(255))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # Expired after this instant
    # OCPP 2.1 Q01: the energy transfer modes its AuthorizeResponse allows (None: the CSMS's [v2x] default)
    allowed_energy_transfer: Mapped[list | None] = mapped_column(JSON)


class Transaction(Base):
    """One charging transaction as the station reports it (OCPP 2.0.1 transactionId is the station's)."""

    __tablename__ = "transactions"
    station_id: Mapped[str] = mapped_column(ForeignKey("stations.id"), primary_key=True)
    transaction_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    evse_id: Mapped[int | None] = mapped_column(Integer)
    connector_id: Mapped[int | None] = mapped_column(Integer)
    id_token: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(20), default="Started")
    charging_state: Mapped[str | None] = mapped_column(String(20))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    stopped_reason: Mapped[str | None] = mapped_column(String(30))
    iso15118: Mapped[dict] = mapped_column(JSON, default=dict)  # SessionID, EVCCID, namespace: joins both protocols
    v2x: Mapped[dict | None] = mapped_column(JSON)  # OCPP 2.1: allowedEnergyTransfer the station accepted, and when
    ocpp_version: Mapped[str | None] = mapped_column(String(10))  # the version the transaction ran on (None: older)
    cost: Mapped[dict | None] = mapped_column(JSON)  # csms/tariffs.py: tariff, running or final total, currency
    events: Mapped[list[TransactionEvent]] = relationship(
        primaryjoin="and_(TransactionEvent.station_id == Transaction.station_id, "
        "TransactionEvent.transaction_id == Transaction.transaction_id)",
        foreign_keys="[TransactionEvent.station_id, TransactionEvent.transaction_id]",
        order_by="TransactionEvent.seq_no", viewonly=True,
    )
    meter_values: Mapped[list[MeterValue]] = relationship(
        primaryjoin="and_(MeterValue.station_id == Transaction.station_id, "
        "MeterValue.transaction_id == Transaction.transaction_id)",
        foreign_keys="[MeterValue.station_id, MeterValue.transaction_id]",
        order_by="MeterValue.id", viewonly=True,
    )


class Ocpp16Transaction(Base):
    """The integer transactionId the CSMS assigned to an OCPP 1.6 StartTransaction (the `transactions` row has it as
    text), what identifies a replayed StartTransaction (station, connector, timestamp), and the next event seqNo."""

    __tablename__ = "ocpp16_transactions"
    __table_args__ = (UniqueConstraint("station_id", "connector_id", "started", name="uq_ocpp16_start"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48), index=True)
    connector_id: Mapped[int] = mapped_column(Integer)
    started: Mapped[str] = mapped_column(String(40))  # the StartTransaction timestamp as the station sent it
    id_tag: Mapped[str | None] = mapped_column(String(20))
    next_seq: Mapped[int] = mapped_column(Integer, default=1)
    stopped: Mapped[bool] = mapped_column(default=False)


class TransactionEvent(Base):
    """A TransactionEvent as received; unique per (station, transaction, seqNo): a replay is recorded once."""

    __tablename__ = "transaction_events"
    __table_args__ = (UniqueConstraint("station_id", "transaction_id", "seq_no", name="uq_event_seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48))
    transaction_id: Mapped[str] = mapped_column(String(36))
    seq_no: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(10))
    trigger_reason: Mapped[str] = mapped_column(String(40))
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    offline: Mapped[bool] = mapped_column(default=False)
    payload: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # CSMS clock


class MeterValue(Base):
    """One sampled value (measurand, phase, unit) of one meter reading, linked to the event that carried it.

    `value`/`unit` are normalised: value x 10^multiplier, kilo units in their base unit (kWh -> Wh, kW -> W, ...),
    so sums need no conversion; `sent_value`/`sent_unit`/`multiplier` keep what the station sent (NULL on rows
    written before they existed). `evse_id`: the EVSE of the MeterValues request (0: the main meter) or of the
    transaction.
    """

    __tablename__ = "meter_values"
    __table_args__ = (Index("ix_meter_values_station_evse_time", "station_id", "evse_id", "timestamp"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48))
    transaction_id: Mapped[str | None] = mapped_column(String(36))
    evse_id: Mapped[int | None] = mapped_column(Integer)
    # the TransactionEvent that carried it. No FOREIGN KEY: the write path takes the id from the same statement's
    # insert of the event, and on PostgreSQL the per-row check of one cost a third of the server's CPU per stored
    # TransactionEvent (five sampled values each; docs/PERFORMANCE.md); SQLite never enforced it
    event_id: Mapped[int | None] = mapped_column(Integer)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    measurand: Mapped[str] = mapped_column(String(50), default="Energy.Active.Import.Register")
    phase: Mapped[str | None] = mapped_column(String(10))
    location: Mapped[str | None] = mapped_column(String(10))
    context: Mapped[str | None] = mapped_column(String(30))
    value: Mapped[float] = mapped_column(Float)  # normalised (see the class docstring)
    unit: Mapped[str | None] = mapped_column(String(20))  # normalised: Wh, W, varh, var, VA, A, V, ...
    sent_value: Mapped[float | None] = mapped_column(Float)
    sent_unit: Mapped[str | None] = mapped_column(String(20))
    multiplier: Mapped[int | None] = mapped_column(Integer)
    signed: Mapped[dict | None] = mapped_column(JSON)  # signedMeterValue as sent (OCMF etc.), for re-verification
    signature: Mapped[str | None] = mapped_column(String(20))  # the CSMS's verdict (csms/signed_meter.py)


class MessageLog(Base):
    """An OCPP message the CSMS exchanged that concerns a session (for the cross-protocol timeline).

    `session_id` holds the ISO 15118 SessionID when the message carries or mirrors ISO 15118 facts.
    """

    __tablename__ = "message_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48), index=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    direction: Mapped[str] = mapped_column(String(2))  # "rx" (from the station) or "tx" (to it)
    action: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict] = mapped_column(JSON)
    response: Mapped[dict | None] = mapped_column(JSON)
    transaction_id: Mapped[str | None] = mapped_column(String(36), index=True)
    session_id: Mapped[str | None] = mapped_column(String(40), index=True)


class TrustAnchor(Base):
    """A root certificate the CSMS trusts for Plug & Charge and OCPP (kind: OCPP InstallCertificateUse names)."""

    __tablename__ = "trust_anchors"
    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256 of the DER, hex
    kind: Mapped[str] = mapped_column(String(40), index=True)
    subject: Mapped[str] = mapped_column(String(500))
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pem: Mapped[str] = mapped_column(String(8000))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiToken(Base):
    """A REST API access token: its public id, a role, an expiry; the secret part only as its SHA-256 (csms/auth.py)."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # public: the token's prefix, shown in listings
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(10))  # viewer, operator, admin
    secret_sha256: Mapped[str] = mapped_column(String(64))  # hex
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditRecord(Base):
    """One command or administrative change made through the API or the CLI: who, when, what, and the outcome."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    token_id: Mapped[str | None] = mapped_column(String(16), index=True)  # None: the CLI on the CSMS's machine
    actor: Mapped[str] = mapped_column(String(100))  # the token's name, or "cli:<user>"
    role: Mapped[str] = mapped_column(String(10))
    method: Mapped[str] = mapped_column(String(10))  # HTTP method, or CLI
    path: Mapped[str] = mapped_column(String(300))  # request path, or the CLI sub-command
    action: Mapped[str] = mapped_column(String(60))  # OCPP action of a command, or the administrative operation
    station_id: Mapped[str | None] = mapped_column(String(48), index=True)
    status: Mapped[int] = mapped_column(Integer)  # HTTP status answered (CLI: 0 done, 1 refused)
    client: Mapped[str | None] = mapped_column(String(60))  # remote address of the API client


class ChargingNeeds(Base):
    """One NotifyEVChargingNeeds as received, with the 2.1 V2X fields broken out (the whole chargingNeeds kept)."""

    __tablename__ = "charging_needs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48), index=True)
    evse_id: Mapped[int] = mapped_column(Integer)
    transaction_id: Mapped[str | None] = mapped_column(String(36), index=True)  # the EVSE's, when one ran
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    requested_energy_transfer: Mapped[str] = mapped_column(String(20))
    available_energy_transfer: Mapped[list | None] = mapped_column(JSON)
    control_mode: Mapped[str | None] = mapped_column(String(20))  # ScheduledControl (default) or DynamicControl
    mobility_needs_mode: Mapped[str | None] = mapped_column(String(20))  # EVCC or EVCC_SECC
    departure_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    max_schedule_tuples: Mapped[int | None] = mapped_column(Integer)
    needs: Mapped[dict] = mapped_column(JSON)  # the ChargingNeedsType as sent (v2xChargingParameters, evEnergyOffer)
    status: Mapped[str | None] = mapped_column(String(20))  # what the CSMS answered (csms/ev_needs.py, K15-K17)
    profile: Mapped[dict | None] = mapped_column(JSON)  # the TxProfile the CSMS sent for these needs
    profile_answer: Mapped[dict | None] = mapped_column(JSON)  # the station's SetChargingProfileResponse


class DynamicSchedule(Base):
    """The schedule update of a Dynamic charging profile the CSMS set (K28/K29): pushed with UpdateDynamicSchedule,
    and what the station gets when it sends PullDynamicScheduleUpdate."""

    __tablename__ = "dynamic_schedules"
    station_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    charging_profile_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    evse_id: Mapped[int | None] = mapped_column(Integer)
    transaction_id: Mapped[str | None] = mapped_column(String(36))
    operation_mode: Mapped[str | None] = mapped_column(String(20))
    charging_rate_unit: Mapped[str | None] = mapped_column(String(1))
    schedule_update: Mapped[dict] = mapped_column(JSON)  # ChargingScheduleUpdateType
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    pulled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    pulls: Mapped[int] = mapped_column(Integer, default=0)


class MeterKey(Base):
    """A meter's public key for signed meter values: registered by an operator, or read from the station's device
    model (FiscalMetering.PublicKey in NotifyReport). evse_id 0: the station's main meter or any EVSE's."""

    __tablename__ = "meter_keys"
    station_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    evse_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(20))  # "operator" or "deviceModel"
    public_key: Mapped[str] = mapped_column(String(2500))  # DER SubjectPublicKeyInfo, hex
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# ----- the OCPP 2.0.1 functional blocks with state (csms/local_list.py, reservations.py, display.py, diagnostics.py,
# firmware.py, tariffs.py)


class LocalList(Base):
    """What the CSMS sent as a station's local authorization list (D01-D03): the version the station accepted and
    the entries it holds ("type:idToken" -> IdTokenInfo), the latest attempt and its status."""

    __tablename__ = "local_lists"
    station_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)  # accepted by the station (0: no list)
    entries: Mapped[dict] = mapped_column(JSON, default=dict)
    last_status: Mapped[str | None] = mapped_column(String(20))  # Accepted, Failed, VersionMismatch, NotDelivered
    last_update_type: Mapped[str | None] = mapped_column(String(12))  # Full or Differential
    station_version: Mapped[int | None] = mapped_column(Integer)  # the latest GetLocalListVersion answer
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Reservation(Base):
    """A reservation (H01-H04): ReserveNow's request, the station's answer and what happened to it since."""

    __tablename__ = "reservations"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # the reservationId
    station_id: Mapped[str] = mapped_column(String(48), index=True)
    evse_id: Mapped[int | None] = mapped_column(Integer)
    connector_type: Mapped[str | None] = mapped_column(String(20))
    id_token: Mapped[dict] = mapped_column(JSON)
    group_id_token: Mapped[dict | None] = mapped_column(JSON)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Requested, Accepted, Faulted, Occupied, Rejected, Unavailable (the answer), then Cancelled, Expired, Removed,
    # Used, NotDelivered
    status: Mapped[str] = mapped_column(String(20))
    transaction_id: Mapped[str | None] = mapped_column(String(36))  # the transaction that used it
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DisplayMessage(Base):
    """A display message the CSMS set on a station (O01-O06) and what the station reported of it."""

    __tablename__ = "display_messages"
    station_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    message_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    priority: Mapped[str] = mapped_column(String(20))  # AlwaysFront, InFront, NormalCycle
    state: Mapped[str | None] = mapped_column(String(20))  # Charging, Faulted, Idle, Unavailable
    start_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    transaction_id: Mapped[str | None] = mapped_column(String(36))
    message: Mapped[dict] = mapped_column(JSON)  # the MessageInfoType as set
    status: Mapped[str] = mapped_column(String(30))  # the station's SetDisplayMessage answer, or Cleared
    reported: Mapped[dict | None] = mapped_column(JSON)  # the latest MessageInfoType from NotifyDisplayMessages
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LogUpload(Base):
    """A GetLog request (N01), its LogStatusNotification history and the file the station uploaded to the CSMS."""

    __tablename__ = "log_uploads"
    request_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48), index=True)
    log_type: Mapped[str] = mapped_column(String(20))  # DiagnosticsLog or SecurityLog
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)  # the upload URL's secret, hashed
    answer: Mapped[str | None] = mapped_column(String(20))  # GetLog answer: Accepted, Rejected, AcceptedCanceled
    status: Mapped[str | None] = mapped_column(String(30))  # the latest LogStatusNotification status
    history: Mapped[list] = mapped_column(JSON, default=list)  # [{status, at}]
    filename: Mapped[str | None] = mapped_column(String(255))
    size: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    data: Mapped[bytes | None] = mapped_column(LargeBinary)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    uploaded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Monitor(Base):
    """A variable monitor the station set on the CSMS's request (N04), as SetVariableMonitoring answered it."""

    __tablename__ = "monitors"
    station_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    monitor_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the id the station gave it
    component: Mapped[dict] = mapped_column(JSON)
    variable: Mapped[dict] = mapped_column(JSON)
    type: Mapped[str] = mapped_column(String(30))
    value: Mapped[float] = mapped_column(Float)
    severity: Mapped[int] = mapped_column(Integer)
    transaction: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(30))
    set_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StationEvent(Base):
    """One EventData of a NotifyEvent (N07/N08): monitors triggering, problems, what the station reports."""

    __tablename__ = "station_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48), index=True)
    event_id: Mapped[int] = mapped_column(Integer)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trigger: Mapped[str] = mapped_column(String(20))  # Alerting, Delta, Periodic
    actual_value: Mapped[str] = mapped_column(String(2500))
    component: Mapped[dict] = mapped_column(JSON)
    variable: Mapped[dict] = mapped_column(JSON)
    notification_type: Mapped[str] = mapped_column(String(30))
    monitor_id: Mapped[int | None] = mapped_column(Integer)
    cleared: Mapped[bool | None] = mapped_column(Boolean)
    tech_code: Mapped[str | None] = mapped_column(String(50))
    data: Mapped[dict] = mapped_column(JSON)  # the EventDataType as sent
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FirmwareUpdate(Base):
    """An UpdateFirmware request (L01) and the FirmwareStatusNotification history that followed."""

    __tablename__ = "firmware_updates"
    request_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48), index=True)
    firmware: Mapped[dict] = mapped_column(JSON)  # FirmwareType as sent (location, retrieveDateTime, signature...)
    campaign: Mapped[str | None] = mapped_column(String(36), index=True)  # the campaign it belongs to, if any
    answer: Mapped[str | None] = mapped_column(String(30))  # Accepted, Rejected, AcceptedCanceled, ...
    status: Mapped[str | None] = mapped_column(String(40))  # the latest FirmwareStatusNotification status
    history: Mapped[list] = mapped_column(JSON, default=list)
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Tariff(Base):
    """A tariff (I): a price per kWh, per hour of transaction and per transaction, for an idToken group (or the
    default tariff: group None)."""

    __tablename__ = "tariffs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    per_kwh: Mapped[float] = mapped_column(Float, default=0.0)
    per_hour: Mapped[float] = mapped_column(Float, default=0.0)
    fixed: Mapped[float] = mapped_column(Float, default=0.0)
    group_id: Mapped[str | None] = mapped_column(String(255), unique=True)  # None: the default tariff
    description: Mapped[str | None] = mapped_column(String(100))


class DeviceVariable(Base):
    """One variable attribute of a station's device model, as its NotifyReport (B06-B08, GetBaseReport) told it."""

    __tablename__ = "device_variables"
    station_id: Mapped[str] = mapped_column(String(48), primary_key=True)
    key: Mapped[str] = mapped_column(String(400), primary_key=True)  # component, EVSE, variable, attribute type
    component: Mapped[str] = mapped_column(String(50))
    component_instance: Mapped[str | None] = mapped_column(String(50))
    evse_id: Mapped[int | None] = mapped_column(Integer)
    connector_id: Mapped[int | None] = mapped_column(Integer)
    variable: Mapped[str] = mapped_column(String(50))
    variable_instance: Mapped[str | None] = mapped_column(String(50))
    attribute_type: Mapped[str] = mapped_column(String(10))  # Actual, Target, MinSet, MaxSet
    value: Mapped[str | None] = mapped_column(String(2500))
    mutability: Mapped[str | None] = mapped_column(String(10))
    characteristics: Mapped[dict | None] = mapped_column(JSON)
    request_id: Mapped[int | None] = mapped_column(Integer)  # the GetBaseReport/GetReport that reported it
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class CustomerRequest(Base):
    """A CustomerInformation request (N09/N10): what was asked, the answer and the data the station reported."""

    __tablename__ = "customer_requests"
    request_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    station_id: Mapped[str] = mapped_column(String(48), index=True)
    request: Mapped[dict] = mapped_column(JSON)  # report, clear, and whom it is about
    answer: Mapped[str | None] = mapped_column(String(20))  # Accepted, Rejected, Invalid
    data: Mapped[str] = mapped_column(String, default="")  # the NotifyCustomerInformation parts in seqNo order
    parts: Mapped[int] = mapped_column(Integer, default=0)
    complete: Mapped[bool] = mapped_column(Boolean, default=False)  # the part with tbc false came
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class GridSignalRecord(Base):
    """A grid signal in force (csms/grid_control.py, its JSON form), kept so that a restarted CSMS plans with it."""

    __tablename__ = "grid_signals"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(64))
    modification: Mapped[int] = mapped_column(Integer, default=0)
    signal: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
