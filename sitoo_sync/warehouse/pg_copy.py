"""PostgreSQL's fast path: rows travel by `COPY ... FROM STDIN` (psycopg 3), never row by row.

* new rows: `COPY` straight into the table;
* upserts: `COPY` into a temporary table, then one `INSERT ... SELECT ... ON CONFLICT DO UPDATE`;
* deletes by key: `COPY` the keys into a temporary table, then one `DELETE ... USING`.

The rows go as CSV that Arrow writes from the batch's columns, a slice at a time: no Python
object per value. Turning each value into a Python object (`Decimal`, aware `datetime`) for
psycopg to format again took 1.6 s of this process's CPU per 100,000 journal entries; the
CSV takes 0.45 s (bench figures in docs/benchmarks.md). In PostgreSQL's CSV an unquoted
empty field is NULL and a quoted one an empty string; Arrow quotes every string it writes and
leaves a null empty, so the two stay apart. Timestamps are written in UTC with a `Z`.

Temporary tables are `ON COMMIT DROP`: they live as long as the load's transaction.

PostgreSQL's text cannot hold the character U+0000, nor JSONB its escape `\u0000`: one such
value (a receipt comment cut from a C string) failed the load, and the same window failed
every tick after. It is stored as U+FFFD, the replacement character, as a lenient decoder
reads bytes it cannot: the rest of the value, and of the window, loads as sent. A key is
stored so too, and looked up so (`row_without_nul`): a key holding U+0000 sent as a
parameter failed its window's reads of stored keys, every tick.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from sitoo_sync.normalize.tables import Table

#: Names of temporary tables; unique within a process, hence within any of its transactions.
_SEQUENCE = itertools.count(1)
#: About this many bytes of CSV are made and sent at a time (memory beside the batch).
CHUNK_BYTES = 1 << 20
_CSV = pa_csv.WriteOptions(include_header=False)


def _q(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _qualified(conn: Connection, t: sa.Table) -> str:
    return conn.dialect.identifier_preparer.format_table(t)


#: A JSON escape of U+0000 (after an even run of backslashes, which escape each other),
#: and U+FFFD's in its place: one pattern for Arrow's RE2 and Python's `re` alike.
_NUL_ESCAPE = r"(^|[^\\])((?:\\\\)*)\\u0000"
_REPLACEMENT_ESCAPE = r"\1\2\\ufffd"
_NUL_ESCAPE_PY = re.compile(_NUL_ESCAPE)


def json_without_nul(text: str) -> str:
    """One JSON text with the escape of U+0000 replaced by U+FFFD's (for a JSONB value
    that does not travel by COPY: a reject's raw record)."""
    while _NUL_ESCAPE_PY.search(text):  # consecutive escapes: every other one a pass
        text = _NUL_ESCAPE_PY.sub(_REPLACEMENT_ESCAPE, text)
    return text


def row_without_nul(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A key's values as they are stored: U+0000 in its text as U+FFFD."""
    return tuple(v.replace("\x00", "\ufffd") if isinstance(v, str) else v for v in row)


def without_nul(data: pa.Table, json_columns: frozenset[str] = frozenset()) -> pa.Table:
    """`data` with U+0000 in its text columns, and its escape in `json_columns`, replaced
    by U+FFFD (see the module doc); `data` itself when none holds one (the common case: one
    vectorized search per text column)."""
    for index, field in enumerate(data.schema):
        if not pa.types.is_string(field.type) and not pa.types.is_large_string(field.type):
            continue
        column = data.column(index)
        if field.name in json_columns:
            fixed = column
            while pc.any(pc.match_substring_regex(fixed, _NUL_ESCAPE)).as_py():
                # consecutive escapes share their boundary: each pass takes every other one
                fixed = pc.replace_substring_regex(fixed, _NUL_ESCAPE, _REPLACEMENT_ESCAPE)
        elif pc.any(pc.match_substring(column, "\x00")).as_py():
            fixed = pc.replace_substring(column, "\x00", "\ufffd")
        else:
            continue
        data = data.set_column(index, field, fixed)
    return data


def csv_chunks(data: pa.Table, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """`data`'s rows as PostgreSQL CSV (no header), in pieces of about `chunk_bytes`."""
    if data.num_rows == 0:
        return
    step = max(1, chunk_bytes * data.num_rows // max(1, data.nbytes))
    for offset in range(0, data.num_rows, step):
        out = io.BytesIO()
        pa_csv.write_csv(data.slice(offset, step), out, _CSV)
        yield out.getvalue()


def _json_columns(conn: Connection, t: sa.Table) -> frozenset[str]:
    return frozenset(
        c.name for c in t.columns if isinstance(c.type.dialect_impl(conn.dialect), sa.JSON)
    )


def copy_table(
    conn: Connection, target: str, data: pa.Table, json_columns: frozenset[str] = frozenset()
) -> None:
    """COPY `data` into `target` (already quoted) on the connection's own transaction;
    `json_columns` are JSONB (see `without_nul`)."""
    raw: Any = conn.connection.driver_connection  # a psycopg.Connection
    data = without_nul(data, json_columns)
    cols = ", ".join(_q(conn, c) for c in data.column_names)
    sql = f"COPY {target} ({cols}) FROM STDIN (FORMAT csv)"
    with raw.cursor() as cursor, cursor.copy(sql) as copy:
        for chunk in csv_chunks(data):
            copy.write(chunk)


def stage(conn: Connection, t: sa.Table, data: pa.Table) -> str:
    """A temporary table with `t`'s types for `data`'s columns, filled with it; its quoted
    name."""
    name = _q(conn, f"_sitoo_stage_{next(_SEQUENCE)}")
    cols = ", ".join(_q(conn, c) for c in data.column_names)
    conn.execute(
        sa.text(
            f"CREATE TEMPORARY TABLE {name} ON COMMIT DROP AS "
            f"SELECT {cols} FROM {_qualified(conn, t)} WITH NO DATA"
        )
    )
    copy_table(conn, name, data, _json_columns(conn, t))
    return name


def insert(conn: Connection, t: sa.Table, data: pa.Table) -> None:
    """Rows known to be new, copied straight into the table."""
    copy_table(conn, _qualified(conn, t), data, _json_columns(conn, t))


def upsert(
    conn: Connection, t: sa.Table, table: Table, data: pa.Table, *, updates: Sequence[str]
) -> None:
    """Staged rows merged on the natural key: `INSERT ... ON CONFLICT DO UPDATE`."""
    staged = stage(conn, t, data)
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


def delete_rows(conn: Connection, t: sa.Table, keys: pa.Table, by: Sequence[str]) -> None:
    """Delete the rows whose `by` columns match a row of `keys`: staged keys, one `DELETE`."""
    staged = stage(conn, t, keys.select(list(by)))
    match = " AND ".join(f"t.{_q(conn, c)} = k.{_q(conn, c)}" for c in by)
    conn.execute(sa.text(f"DELETE FROM {_qualified(conn, t)} t USING {staged} k WHERE {match}"))
