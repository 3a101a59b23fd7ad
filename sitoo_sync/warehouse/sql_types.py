"""SQLAlchemy Core tables from the declarations in normalize/, with types per dialect.

One place maps a logical column kind to a SQL type:

| kind      | PostgreSQL       | MySQL/MariaDB   | SQLite  | SQL Server       | others     |
|-----------|------------------|-----------------|---------|------------------|------------|
| money     | NUMERIC(18,2)    | DECIMAL(18,2)   | exact text | NUMERIC(18,2) | NUMERIC    |
| decimal   | NUMERIC(18,3)    | DECIMAL(18,3)   | exact text | NUMERIC(18,3) | NUMERIC    |
| timestamp | TIMESTAMPTZ      | DATETIME(6) UTC | text    | DATETIMEOFFSET   | TIMESTAMP  |
| json      | JSONB            | JSON            | TEXT    | NVARCHAR(max)    | TEXT       |
| text key  | VARCHAR(255)     | VARCHAR(255)    | VARCHAR | NVARCHAR(255)    | VARCHAR    |

Key columns are VARCHAR(255) because MySQL and SQL Server cannot index unbounded text.
Text compares byte for byte everywhere: on MySQL/MariaDB every table is made, and one made
by an older version converted, with a binary utf8mb4 collation (dialects.MySQL), not the
server's case- and accent-insensitive default, under which `ab-1` and `AB-1` are one key.
Timestamps are UTC everywhere; where the column cannot hold a zone, the value is stored as
naive UTC and read back as aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, postgresql
from sqlalchemy.engine import Dialect

from sitoo_sync.normalize.tables import KEY_TEXT_LENGTH, Kind, Table

KEY_LENGTH = KEY_TEXT_LENGTH


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime on every dialect, stored naive-UTC where zones are unsupported."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "mysql":
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        if dialect.name == "mssql":
            return dialect.type_descriptor(mssql.DATETIMEOFFSET())  # type: ignore[no-untyped-call]  # untyped in SQLAlchemy
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        if dialect.name in ("mysql", "sqlite"):
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class DecimalText(sa.types.TypeDecorator[Decimal]):
    """An exact decimal kept as text, for SQLite, which has no decimal type.

    A NUMERIC column in SQLite is stored as a binary float: money would lose cents. Text
    affinity keeps "40463.75" exactly; `CAST(col AS NUMERIC)` or the BI tool does the rest.
    """

    impl = sa.String(40)
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> str | None:
        return None if value is None else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(str(value))


def _decimal(scale: int) -> sa.types.TypeEngine[Any]:
    return sa.Numeric(18, scale, asdecimal=True).with_variant(DecimalText(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    # Values arrive as JSON text already; the engine's json_serializer passes text through.
    # None is SQL NULL (`none_as_null`), as on every other target, not the JSON text 'null'
    # that SQLAlchemy's JSON types store by default, which `WHERE extra IS NULL` misses.
    return (
        sa.Text()
        .with_variant(postgresql.JSONB(none_as_null=True), "postgresql")
        .with_variant(mysql.JSON(none_as_null=True), "mysql", "mariadb")
        .with_variant(mssql.NVARCHAR(None), "mssql")
    )


_TYPES: dict[Kind, Any] = {
    Kind.INT: sa.BigInteger,
    Kind.BOOL: sa.Boolean,
    Kind.MONEY: lambda: _decimal(2),
    Kind.DECIMAL: lambda: _decimal(3),
    Kind.TIMESTAMP: UtcDateTime,
    Kind.DATE: sa.Date,
    Kind.JSON: _json,
}


def column_type(kind: Kind, *, key: bool) -> sa.types.TypeEngine[Any]:
    """The SQL type of a column of `kind` (`key`: part of a key or a replace group)."""
    if kind is Kind.TEXT:
        return sa.String(KEY_LENGTH) if key else sa.Text()
    made: sa.types.TypeEngine[Any] = _TYPES[kind]()
    return made


def character_columns(t: sa.Table, dialect: Dialect) -> tuple[str, ...]:
    """The columns of `t` that are character strings on `dialect` (text, keys included; not
    JSON, which MySQL keeps as its own type and MariaDB as text of a collation of its own)."""
    return tuple(c.name for c in t.columns if isinstance(c.type.dialect_impl(dialect), sa.String))


def sa_table(table: Table, metadata: sa.MetaData) -> sa.Table:
    """The SQLAlchemy Core table of a declaration (primary key = the natural key)."""
    keyed = {*table.key, *table.parent_key, *table.replace_group}
    columns = [
        sa.Column(
            c.name,
            column_type(c.kind, key=c.name in keyed),
            nullable=c.nullable and c.name not in table.key,
            # A key is the vendor's id, never one the database makes up: left to its
            # default, SQLAlchemy makes a lone integer key AUTO_INCREMENT on MySQL, where an
            # id of 0 is then stored as the next number instead.
            autoincrement=False,
            comment=c.description or None,
        )
        for c in table.columns
    ]
    return sa.Table(
        table.name,
        metadata,
        *columns,
        sa.PrimaryKeyConstraint(*table.key, name=f"pk_{table.name}"),
        comment=table.description or None,
    )
