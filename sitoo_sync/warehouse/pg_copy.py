"""PostgreSQL's fast path: rows travel by `COPY ... FROM STDIN` (psycopg 3), never row by row.

* new rows: `COPY` straight into the table;
* upserts: `COPY` into a temporary table, then one `INSERT ... SELECT ... ON CONFLICT DO UPDATE`;
* deletes by key: `COPY` the keys into a temporary table, then one `DELETE ... USING`.

Temporary tables are `ON COMMIT DROP`: they live as long as the load's transaction.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sitoo_sync.normalize.tables import Table

#: Names of temporary tables; unique within a process, hence within any of its transactions.
_SEQUENCE = itertools.count(1)


def _q(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _qualified(conn: Connection, t: sa.Table) -> str:
    return conn.dialect.identifier_preparer.format_table(t)


def copy_rows(
    conn: Connection, target: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """COPY FROM STDIN into `target` (already quoted) on the connection's own transaction."""
    raw: Any = conn.connection.driver_connection  # a psycopg.Connection
    cols = ", ".join(_q(conn, c) for c in columns)
    with raw.cursor() as cursor, cursor.copy(f"COPY {target} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def stage(
    conn: Connection, t: sa.Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> str:
    """A temporary table with `t`'s types for `columns`, filled with `rows`; its quoted name."""
    name = _q(conn, f"_sitoo_stage_{next(_SEQUENCE)}")
    cols = ", ".join(_q(conn, c) for c in columns)
    conn.execute(
        sa.text(
            f"CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS "
            f"SELECT {cols} FROM {_qualified(conn, t)} WITH NO DATA"
        )
    )
    copy_rows(conn, name, columns, rows)
    return name


def insert(
    conn: Connection, t: sa.Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> None:
    """Rows known to be new, copied straight into the table."""
    copy_rows(conn, _qualified(conn, t), columns, rows)


def upsert(
    conn: Connection,
    t: sa.Table,
    table: Table,
    columns: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
    *,
    updates: Sequence[str],
) -> None:
    """Staged rows merged on the natural key: `INSERT ... ON CONFLICT DO UPDATE`."""
    staged = stage(conn, t, columns, rows)
    cols = ", ".join(_q(conn, c) for c in table.column_names)
    keys = ", ".join(_q(conn, k) for k in table.key)
    sets = ", ".join(f"{_q(conn, c)} = excluded.{_q(conn, c)}" for c in updates)
    action = f"DO UPDATE SET {sets}" if updates else "DO NOTHING"
    conn.execute(
        sa.text(
            f"INSERT INTO {_qualified(conn, t)} ({cols}) SELECT {cols} FROM {staged} "
            f"ON CONFLICT ({keys}) {action}"
        )
    )


def delete_rows(
    conn: Connection, t: sa.Table, by: Sequence[str], keys: Iterable[tuple[Any, ...]]
) -> None:
    """Delete the rows whose `by` columns match one of `keys`: staged keys, one `DELETE`."""
    staged = stage(conn, t, by, keys)
    match = " AND ".join(f"t.{_q(conn, c)} = k.{_q(conn, c)}" for c in by)
    conn.execute(sa.text(f"DELETE FROM {_qualified(conn, t)} t USING {staged} k WHERE {match}"))
