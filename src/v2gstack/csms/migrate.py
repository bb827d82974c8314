"""Bring a database written by an earlier v2gstack up to the current schema, at Store start (idempotent).

`create_all` makes missing tables but never alters existing ones. This step adds every nullable column and index
the models have and the database lacks, and fills the columns it added from what the old rows hold, all in one
database transaction (SQLite and PostgreSQL both have transactional DDL), so a crash leaves the old schema or the
new one. A missing column that cannot be added (NOT NULL without a default) raises SchemaError with its name.
"""

from __future__ import annotations

import logging

from sqlalchemy import Column, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateIndex, MetaData

from ..ocpp.units import KILO_UNITS

log = logging.getLogger(__name__)


class SchemaError(RuntimeError):
    """The database has a schema this version cannot use or upgrade."""


# old rows' kilo units, normalised like new rows (csms/store.py): the value x 1000 in the base unit
_BASE_VALUE = "CASE unit " + " ".join(f"WHEN '{k}' THEN value * 1000" for k in KILO_UNITS) + " ELSE value END"
_BASE_UNIT = "CASE unit " + " ".join(f"WHEN '{k}' THEN '{b}'" for k, b in KILO_UNITS.items()) + " ELSE unit END"


# What to fill in old rows once the columns of this version are added (each statement touches only NULL columns).
BACKFILL: dict[tuple[str, str], list[str]] = {
    # rows of the version that stored the value as sent and dropped the multiplier (lost: multiplier stays NULL)
    ("meter_values", "sent_value"): [
        f"UPDATE meter_values SET sent_value = value, sent_unit = unit, value = {_BASE_VALUE}, unit = {_BASE_UNIT} "
        "WHERE sent_value IS NULL"],
    # values of a transaction belong to its EVSE; values outside transactions of old rows: EVSE unknown (NULL)
    ("meter_values", "evse_id"): [
        "UPDATE meter_values SET evse_id = (SELECT t.evse_id FROM transactions t WHERE "
        "t.station_id = meter_values.station_id AND t.transaction_id = meter_values.transaction_id) "
        "WHERE evse_id IS NULL AND transaction_id IS NOT NULL"],
}


def migrate(engine: Engine, metadata: MetaData, attempts: int = 3) -> list[str]:
    """Add what the database lacks of `metadata` (nullable columns, indexes); returns 'table.column' added.

    Another process upgrading the same database at the same moment makes one attempt fail (a duplicate column, a
    stale SQLite snapshot): the next attempt sees its work and has nothing left to do.
    """
    for attempt in range(attempts):
        try:
            with engine.begin() as conn:
                return _migrate(conn, metadata)
        except DBAPIError:
            if attempt == attempts - 1:
                raise
            log.info("schema upgrade raced with another process; looking again")
    return []


def _migrate(conn: Connection, metadata: MetaData) -> list[str]:
    insp = inspect(conn)
    tables = set(insp.get_table_names())
    added: list[str] = []
    for table in metadata.sorted_tables:
        if table.name not in tables:
            continue  # create_all made it complete
        have = {c["name"] for c in insp.get_columns(table.name)}
        missing = [c for c in table.columns if c.name not in have]
        for column in missing:
            _add_column(conn, table.name, column)
            added.append(f"{table.name}.{column.name}")
        for column in missing:
            for statement in BACKFILL.get((table.name, column.name), []):
                conn.execute(text(statement))
        indexes = {i["name"] for i in insp.get_indexes(table.name)}
        for index in table.indexes:
            if index.name not in indexes:
                conn.execute(CreateIndex(index, if_not_exists=True))
    _drop_obsolete_foreign_keys(conn, tables)
    if added:
        log.warning("database schema upgraded: added %s", ", ".join(added))
    return added


# (table, column, referred table) of foreign keys earlier versions made and this one no longer has (models.py says why)
OBSOLETE_FOREIGN_KEYS = {("meter_values", "event_id", "transaction_events")}


def _drop_obsolete_foreign_keys(conn: Connection, tables: set[str]) -> None:
    """PostgreSQL: drop the constraints of OBSOLETE_FOREIGN_KEYS an older database has (SQLite never enforced them,
    and cannot drop a constraint without rebuilding the table)."""
    if conn.dialect.name != "postgresql":
        return
    insp = inspect(conn)
    for table in sorted({t for t, _, _ in OBSOLETE_FOREIGN_KEYS} & tables):
        for fk in insp.get_foreign_keys(table):
            if fk["name"] and any((table, c, fk["referred_table"]) in OBSOLETE_FOREIGN_KEYS
                                  for c in fk["constrained_columns"]):
                quote = conn.dialect.identifier_preparer.quote
                conn.execute(text(f"ALTER TABLE {quote(table)} DROP CONSTRAINT IF EXISTS {quote(fk['name'])}"))
                log.warning("database schema upgraded: dropped %s.%s", table, fk["name"])


def _add_column(conn: Connection, table: str, column: Column) -> None:
    """ALTER TABLE ADD COLUMN for a nullable column (PostgreSQL: IF NOT EXISTS, for nodes starting together)."""
    if not column.nullable or column.primary_key:
        raise SchemaError(f"the database lacks column {table}.{column.name} (NOT NULL): it was created by another "
                          "version of v2gstack; upgrade it by hand or start with a new database")
    dialect = conn.dialect
    kind = column.type.compile(dialect=dialect)
    name = dialect.identifier_preparer.quote(column.name)
    guard = "IF NOT EXISTS " if dialect.name == "postgresql" else ""
    conn.execute(text(f"ALTER TABLE {dialect.identifier_preparer.quote(table)} ADD COLUMN {guard}{name} {kind}"))
