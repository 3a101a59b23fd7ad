"""What differs between SQLAlchemy dialects, one object per dialect; `sqla.py` asks it.

Each `SqlDialect` says what its database can do (concurrent loads, schemas, comments,
session locks) and writes the statements that differ: the fastest upsert it offers, how a
schema is made and dropped, the lock that keeps two processes' DDL apart, the named locks
that keep two writers of a stream apart; and it tells which of its driver's errors are
conflicts with another writer that running the transaction again can get past
(`conflict`, for warehouse/retry.py). The base class is any other dialect: portable SQL
only (delete-then-insert as its upsert, no schema lock, host-local locks, no conflicts).

* PostgreSQL (psycopg 3): `COPY` paths (pg_copy.py), `ON CONFLICT`, advisory locks.
* SQLite: `INSERT ... ON CONFLICT DO UPDATE`, executemany; no schemas; one writer at a
  time (the others wait for it), readers beside it (WAL).
* MySQL/MariaDB: `INSERT ... ON DUPLICATE KEY UPDATE`, executemany; `GET_LOCK` named locks;
  text in a binary collation, so keys compare byte for byte as on the other targets.
* SQL Server: `MERGE`, executemany; no row-value `IN`.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Connection, Dialect

from sitoo_sync.errors import first_line
from sitoo_sync.log import get_logger
from sitoo_sync.normalize.tables import Table
from sitoo_sync.warehouse import local_path, pg_copy
from sitoo_sync.warehouse.base import CursorMove
from sitoo_sync.warehouse.file_locks import holding_file
from sitoo_sync.warehouse.sql_types import UtcDateTime, character_columns

log = get_logger(__name__)

CHUNK = 500  # keys per IN (...) list
#: How long a SQLite connection waits for another's write lock (SQLite's driver: 5 s, less
#: than a large commit of another stream's tick takes).
SQLITE_BUSY_SECONDS = 120
#: utf8mb4's binary collations, best first. The NO PAD ones (MariaDB 10.2+, MySQL 8.0.17+)
#: keep `a` and `a ` apart as every other target does; utf8mb4_bin, the last resort (MySQL
#: 5.7), is PAD SPACE: it tells case and accents apart but not trailing spaces.
BINARY_COLLATIONS = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin", "utf8mb4_bin")


def py_rows(data: pa.Table) -> list[dict[str, Any]]:
    """Arrow rows as dicts, for executemany."""
    result: list[dict[str, Any]] = data.to_pylist()
    return result


def key_rows(keys: pa.Table, by: Sequence[str]) -> list[tuple[Any, ...]]:
    """The distinct `by` tuples of `keys`, in order."""
    columns = [keys.column(c).to_pylist() for c in by]
    return list(dict.fromkeys(zip(*columns, strict=True)))


def pg_key(name: str) -> int:
    """A PostgreSQL advisory lock key (64 bits) for a lock name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def mysql_lock_name(name: str) -> str:
    """A MySQL lock name (at most 64 characters) for a lock name of any length."""
    return f"sitoo_sync:{hashlib.sha256(name.encode()).hexdigest()[:48]}"


def binary_collation(available: Collection[str]) -> str:
    """The best of BINARY_COLLATIONS a server with the collations `available` has."""
    return next((c for c in BINARY_COLLATIONS if c in available), BINARY_COLLATIONS[-1])


def stale_tables(
    text: Mapping[str, Collection[str]],
    table_collations: Mapping[str, str | None],
    column_collations: Mapping[tuple[str, str], str | None],
    collation: str,
) -> list[str]:
    """The tables of `text` (name -> its character columns) that exist (`table_collations`:
    each one's default collation) and whose default or a character column's collation is not
    `collation`, in name order."""
    return sorted(
        name
        for name, columns in text.items()
        if name in table_collations
        and (
            table_collations[name] != collation
            or any(column_collations.get((name, c), collation) != collation for c in columns)
        )
    )


class SqlDialect:
    """Any SQLAlchemy dialect without a strategy of its own: portable SQL only."""

    #: Several threads may load at once, each on a connection of its own (proven safe only
    #: where it is set: PostgreSQL's MVCC has no gap locks).
    concurrent_loads: ClassVar[bool] = False
    #: The engine runs inside this process (its work competes with normalizing for the CPU).
    in_process: ClassVar[bool] = False
    #: SITOO_TARGET_SCHEMA means something here.
    schemas: ClassVar[bool] = True
    #: Table and column comments are kept current on existing tables (comments.py).
    comments: ClassVar[bool] = False
    #: Views and their columns carry comments.
    view_comments: ClassVar[bool] = False
    #: Named session locks on the server that die with their connection.
    session_locks: ClassVar[bool] = False
    #: How many exclusive named locks make one shared lock (0: the server has shared locks).
    lock_slots: ClassVar[int] = 0
    #: Run on a lock's connection when it opens: the server must not end that session (and
    #: free its locks) for sitting idle, as it does through a long tick.
    lock_session_sql: ClassVar[tuple[str, ...]] = ()
    #: How ALTER TABLE adds a column.
    add_column: ClassVar[str] = "ADD COLUMN"
    #: `(a, b) IN ((1, 2), ...)` works.
    row_value_in: ClassVar[bool] = True
    #: The primary key refuses a duplicate (a warehouse such as Snowflake only declares it).
    enforced_keys: ClassVar[bool] = False

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.name = dialect.name

    def on_connect(self, dbapi_connection: Any, _record: Any = None) -> None:
        """Set up each new connection of the engine (its "connect" event; nothing here)."""

    # ---- schema -------------------------------------------------------------------------

    def create_schema(self, conn: Connection, schema: str) -> None:
        """Create `schema` when it does not exist (nothing where schemas are not made so)."""

    def drop_schema_sql(self, schema: str) -> str | None:
        """The statement that drops `schema` and everything in it (None: not supported)."""
        return None

    def table_options(self, conn: Connection) -> dict[str, str]:
        """The dialect options (`<dialect>_<option>`) a table this tool creates is made with."""
        return {}

    def exact_text(
        self, conn: Connection, schema: str | None, tables: Sequence[sa.Table]
    ) -> list[tuple[str, str]]:
        """(table, ALTER statement) for each of the existing `tables` whose text does not
        compare byte for byte yet; none where text always does (here)."""
        return []

    @contextmanager
    def ddl_lock(self, conn: Connection, name: str) -> Iterator[None]:
        """Hold the target's schema lock `name` while creating or altering tables."""
        yield

    def ddl_guard(self, url: str) -> AbstractContextManager[None]:
        """A lock the schema upkeep of `url` takes before its transaction begins and frees
        after it ends, for a target without a server lock (`ddl_lock`) to take inside it."""
        return nullcontext()

    # ---- rows ---------------------------------------------------------------------------

    def as_stored(self, keys: pa.Table) -> pa.Table:
        """`keys` with their text as this target stores it (`keys` itself where that is as
        sent; the same object when nothing changes)."""
        return keys

    def stored_row(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        """One key's values as this target stores them (see `as_stored`)."""
        return row

    def insert(self, conn: Connection, t: sa.Table, data: pa.Table) -> None:
        """Bulk insert of rows known to be new."""
        conn.execute(t.insert(), py_rows(data))

    def upsert(
        self, conn: Connection, t: sa.Table, table: Table, data: pa.Table, updates: list[str]
    ) -> None:
        """Insert or update on the natural key: delete-then-insert, in the caller's transaction."""
        self.delete_rows(conn, t, data.select(list(table.key)), table.key)
        conn.execute(t.insert(), py_rows(data))

    def delete_rows(self, conn: Connection, t: sa.Table, keys: pa.Table, by: Sequence[str]) -> None:
        """Delete the rows whose `by` columns match a row of `keys`, in chunks."""
        rows = key_rows(keys, by)
        for i in range(0, len(rows), CHUNK):
            conn.execute(t.delete().where(self.match(t, by, rows[i : i + CHUNK])))

    def present(
        self, conn: Connection, t: sa.Table, by: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """Which of `rows` (values of `t`'s `by` columns) `t` holds: `IN` lists of CHUNK."""
        found: list[tuple[Any, ...]] = []
        for i in range(0, len(rows), CHUNK):
            select = sa.select(*(t.c[c] for c in by)).where(self.match(t, by, rows[i : i + CHUNK]))
            found.extend(tuple(r) for r in conn.execute(select))
        return found

    def match(self, t: sa.Table, by: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> Any:
        """A condition: `t`'s `by` columns equal one of `rows`."""
        if len(by) == 1:
            return t.c[by[0]].in_([r[0] for r in rows])
        if not self.row_value_in:
            return sa.or_(
                *(sa.and_(*(t.c[c] == v for c, v in zip(by, r, strict=True))) for r in rows)
            )
        return sa.tuple_(*(t.c[c] for c in by)).in_(rows)

    def upsert_row(
        self,
        conn: Connection,
        t: sa.Table,
        key: Mapping[str, Any],
        update: Mapping[str, Any],
        insert: Mapping[str, Any],
    ) -> None:
        """One row by its key: `update` (values or expressions of the stored row) when it
        is stored, else inserted with `key` and `insert`. Portable: UPDATE, then INSERT when
        it matched nothing."""
        where = sa.and_(*(t.c[c] == v for c, v in key.items()))
        if conn.execute(t.update().where(where).values(**update)).rowcount == 0:
            conn.execute(t.insert().values(**key, **insert))

    def upsert_adding(
        self,
        conn: Connection,
        t: sa.Table,
        key: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
        added: Sequence[str],
    ) -> bool:
        """Many rows, distinct by `key`, in one statement: a stored row takes each row's
        values, with the `added` columns added to what it holds. False when this dialect
        has no such statement (the caller then writes row by row)."""
        return False

    def move_cursors(
        self,
        conn: Connection,
        t: sa.Table,
        stream: str,
        moves: Sequence[CursorMove],
        now: datetime,
    ) -> set[str] | None:
        """`moves` (each of another partition) written to `sync_state` (`t`), each fenced
        one only where its stored cursor is still `since`; the partitions of those left as
        they were. None: this dialect does not fence (a target without session locks is
        written by one process at a time), and the caller writes them all as they are."""
        return None

    # ---- conflicts ----------------------------------------------------------------------

    def conflict(self, exc: BaseException) -> str | None:
        """What transient conflict with another writer `exc` is, e.g. "deadlock (MySQL
        1213)", or None when it is none (or this dialect does not tell)."""
        return None

    # ---- locks --------------------------------------------------------------------------

    def session_lock(self, name: str, *, shared: bool) -> tuple[str, str, object]:
        """(try SQL returning 1 when taken, release SQL, key) of the named lock `name`."""
        raise NotImplementedError(f"{self.name} has no session locks")

    def release_all_sql(self) -> str:
        """The statement that frees every session lock of the connection at once."""
        raise NotImplementedError(f"{self.name} has no session locks")

    def take_locks(self, conn: Connection, names: Sequence[str]) -> list[bool]:
        """Try the exclusive session locks `names` on `conn`: which were taken, in order
        (here one statement each; a dialect that can does it in one)."""
        taken = []
        for name in names:
            take, _free, key = self.session_lock(name, shared=False)
            taken.append(conn.execute(sa.text(take), {"k": key}).scalar() == 1)
        return taken

    def free_locks(self, conn: Connection, names: Sequence[str]) -> None:
        """Free the exclusive session locks `names` held on `conn`."""
        for name in names:
            _take, free, key = self.session_lock(name, shared=False)
            conn.execute(sa.text(free), {"k": key})


@functools.lru_cache(maxsize=64)
def _pg_move_cursors(table: str) -> sa.TextClause:
    """`Postgres.move_cursors`'s statement on `table` (quoted, schema-qualified)."""
    return sa.text(
        f"INSERT INTO {table} AS t"
        " (stream, partition_key, cursor, updated_at, rows_loaded, windows_loaded)"
        " SELECT :stream, m.p, m.c, :now, m.r, m.w FROM unnest("
        "CAST(:partitions AS text[]), CAST(:cursors AS text[]),"
        " CAST(:rows AS bigint[]), CAST(:windows AS bigint[])) AS m(p, c, r, w)"
        " ON CONFLICT (stream, partition_key) DO UPDATE SET"
        " cursor = excluded.cursor, updated_at = excluded.updated_at,"
        " rows_loaded = COALESCE(t.rows_loaded, 0) + excluded.rows_loaded,"
        " windows_loaded = COALESCE(t.windows_loaded, 0) + excluded.windows_loaded"
        " WHERE NOT jsonb_exists(CAST(:since AS jsonb), excluded.partition_key)"
        " OR (t.cursor IS NOT DISTINCT FROM"
        " ((CAST(:since AS jsonb) -> excluded.partition_key) ->> 0)"
        " AND COALESCE(t.windows_loaded, 0) = COALESCE("
        "CAST((CAST(:since AS jsonb) -> excluded.partition_key) ->> 1 AS bigint),"
        " COALESCE(t.windows_loaded, 0)))"
        " RETURNING t.partition_key"
    ).bindparams(sa.bindparam("now", type_=UtcDateTime()))


_BIGINTS = postgresql.ARRAY(sa.BigInteger())


class Postgres(SqlDialect):
    """PostgreSQL: COPY paths, MVCC (concurrent loads), advisory locks, comments."""

    concurrent_loads = True
    enforced_keys = True
    comments = True
    view_comments = True
    session_locks = True
    # idle_session_timeout (PostgreSQL 14 and later; no row before) off for this session. And
    # the server probes the idle connection after 30 s and gives up after 3 unanswered probes
    # 10 s apart: a replica whose host died (power, a node lost) frees its locks within about
    # a minute, not after the system's default keepalive of two hours (the client probes the
    # server likewise: sqla.PG_KEEPALIVE). Each setting on its own, so a server that refuses
    # one (no TCP_KEEPCNT) keeps the others.
    lock_session_sql = (
        "SELECT set_config(name, '0', false) FROM pg_settings WHERE name = 'idle_session_timeout'",
        *(
            f"DO $$ BEGIN PERFORM set_config('tcp_keepalives_{name}', '{value}', false); "
            "EXCEPTION WHEN OTHERS THEN NULL; END $$"
            for name, value in (("idle", 30), ("interval", 10), ("count", 3))
        ),
    )

    def create_schema(self, conn: Connection, schema: str) -> None:
        quoted = self.dialect.identifier_preparer.quote(schema)
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {quoted}"))

    def drop_schema_sql(self, schema: str) -> str | None:
        return f"DROP SCHEMA IF EXISTS {self.dialect.identifier_preparer.quote(schema)} CASCADE"

    @contextmanager
    def ddl_lock(self, conn: Connection, name: str) -> Iterator[None]:
        """A transaction-scoped advisory lock: it ends with the DDL's transaction."""
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": pg_key(name)})
        yield

    def as_stored(self, keys: pa.Table) -> pa.Table:
        """U+0000 in the text as U+FFFD, as the COPY paths store it (pg_copy.py)."""
        return pg_copy.without_nul(keys)

    def stored_row(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        return pg_copy.row_without_nul(row)

    def insert(self, conn: Connection, t: sa.Table, data: pa.Table) -> None:
        pg_copy.insert(conn, t, data)

    def present(
        self, conn: Connection, t: sa.Table, by: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """One join against the keys sent as one typed array per column (`unnest`): 10-14 ms
        for 5,700 keys where `IN` lists of 500 took 170 ms, most of it compiling them."""
        if not rows:
            return []
        arrays = [
            sa.bindparam(f"k{i}", [r[i] for r in rows], type_=postgresql.ARRAY(t.c[c].type))
            for i, c in enumerate(by)
        ]
        keys = sa.func.unnest(*arrays).table_valued(*by).render_derived().alias("k")
        on = sa.and_(*(t.c[c] == keys.c[c] for c in by))
        select = sa.select(*(t.c[c] for c in by)).join_from(t, keys, on)
        return [tuple(r) for r in conn.execute(select)]

    def upsert(
        self, conn: Connection, t: sa.Table, table: Table, data: pa.Table, updates: list[str]
    ) -> None:
        pg_copy.upsert(conn, t, table, data, updates=updates)

    def delete_rows(self, conn: Connection, t: sa.Table, keys: pa.Table, by: Sequence[str]) -> None:
        pg_copy.delete_rows(conn, t, keys, by)

    def session_lock(self, name: str, *, shared: bool) -> tuple[str, str, object]:
        mode = "_shared" if shared else ""
        return (
            f"SELECT pg_try_advisory_lock{mode}(:k)::int",
            f"SELECT pg_advisory_unlock{mode}(:k)::int",
            pg_key(name),
        )

    def release_all_sql(self) -> str:
        return "SELECT pg_advisory_unlock_all()"

    def take_locks(self, conn: Connection, names: Sequence[str]) -> list[bool]:
        """One statement for all of them: the keys as an array, each tried in order."""
        keys = sa.bindparam("keys", [pg_key(n) for n in names], type_=_BIGINTS)
        rows = conn.execute(
            sa.text(
                "SELECT pg_try_advisory_lock(k) FROM unnest(:keys) WITH ORDINALITY AS u(k, n) "
                "ORDER BY n"
            ).bindparams(keys)
        )
        return [bool(r[0]) for r in rows]

    def free_locks(self, conn: Connection, names: Sequence[str]) -> None:
        keys = sa.bindparam("keys", [pg_key(n) for n in names], type_=_BIGINTS)
        conn.execute(
            sa.text("SELECT pg_advisory_unlock(k) FROM unnest(:keys) AS u(k)").bindparams(keys)
        ).all()

    def upsert_row(
        self,
        conn: Connection,
        t: sa.Table,
        key: Mapping[str, Any],
        update: Mapping[str, Any],
        insert: Mapping[str, Any],
    ) -> None:
        """INSERT ... ON CONFLICT DO UPDATE: one statement, atomic even when two writers
        insert the same new key at once (UPDATE-then-INSERT fails one of them)."""
        stmt = postgresql.insert(t).values(**key, **insert)
        conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=dict(update)))

    def upsert_adding(
        self,
        conn: Connection,
        t: sa.Table,
        key: Sequence[str],
        rows: Sequence[Mapping[str, Any]],
        added: Sequence[str],
    ) -> bool:
        """One INSERT ... VALUES (...), (...) ON CONFLICT DO UPDATE for all of them."""
        stmt = postgresql.insert(t).values(list(rows))
        new = stmt.excluded
        sets: dict[str, Any] = {c: new[c] for c in rows[0] if c not in key and c not in added}
        sets.update({c: sa.func.coalesce(t.c[c], 0) + new[c] for c in added})
        conn.execute(stmt.on_conflict_do_update(index_elements=list(key), set_=sets))
        return True

    def move_cursors(
        self,
        conn: Connection,
        t: sa.Table,
        stream: str,
        moves: Sequence[CursorMove],
        now: datetime,
    ) -> set[str] | None:
        """One INSERT ... ON CONFLICT DO UPDATE ... WHERE for all of them, which returns the
        partitions it wrote: a stored row is updated only when its cursor and count are the
        ones its fenced move expects (`since` and `since_windows`, looked up by partition in
        one JSON map of pairs; a count of null is not compared). A row another transaction
        holds is waited for, and the condition is asked of its committed version: of two
        processes moving one cursor from the same value, the second finds it moved (READ
        COMMITTED's rule for ON CONFLICT).

        The statement is one fixed text, its moves bound as arrays (unnest), so SQLAlchemy
        compiles it once: a multi-row VALUES insert had no cache key and was compiled on
        every group commit (client CPU a call, fenced: 2.1 ms for a group of one and 4.8 ms
        for 16, now 0.3 ms and 0.5 ms)."""
        since = {m.partition: (m.since, m.since_windows) for m in moves if m.fenced}
        written = conn.execute(
            _pg_move_cursors(conn.dialect.identifier_preparer.format_table(t)),
            {
                "stream": stream,
                "now": now,
                "partitions": [m.partition for m in moves],
                "cursors": [m.cursor for m in moves],
                "rows": [m.rows for m in moves],
                "windows": [m.windows for m in moves],
                "since": json.dumps(since),
            },
        ).scalars()
        return {m.partition for m in moves} - {str(p) for p in written}

    def conflict(self, exc: BaseException) -> str | None:
        """Serialization failure (SQLSTATE 40001) or deadlock (40P01)."""
        orig = _driver_error(exc)
        state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
        return _PG_CONFLICTS.get(str(state)) if state else None


class MySQL(SqlDialect):
    """MySQL/MariaDB: ON DUPLICATE KEY UPDATE, named locks (GET_LOCK), comments.

    InnoDB's gap locks deadlocked concurrent loads (of new sync_state rows, before
    `upsert_row`); concurrent loads of one process are not proven safe since: they take turns.
    Replicas still load at once on one server: `upsert_row` keeps their new sync_state rows
    from deadlocking.
    MySQL has no shared named lock: a shared holder takes one of `lock_slots` locks, an
    exclusive holder every one of them.
    """

    comments = True
    enforced_keys = True
    session_locks = True
    lock_slots = 8
    lock_session_sql = ("SET SESSION wait_timeout = 31536000",)  # the most it takes: a year

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self._collation: str | None = None

    def create_schema(self, conn: Connection, schema: str) -> None:
        quoted = self.dialect.identifier_preparer.quote(schema)
        conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS {quoted}"))

    def collation(self, conn: Connection) -> str:
        """The binary collation text takes on this server (asked once): the server's
        default (utf8mb4_general_ci, utf8mb4_0900_ai_ci, ...) ignores case and accents,
        so keys Sitoo keeps apart (SKUs `ab-1` and `AB-1`) would be one key here."""
        if self._collation is None:
            known = sa.text(
                "SELECT COLLATION_NAME FROM information_schema.COLLATIONS "
                "WHERE COLLATION_NAME IN :names"
            ).bindparams(sa.bindparam("names", list(BINARY_COLLATIONS), expanding=True))
            found = conn.execute(known).scalars()
            self._collation = binary_collation({str(n) for n in found})
        return self._collation

    def table_options(self, conn: Connection) -> dict[str, str]:
        """utf8mb4 in the binary collation: every text column, key or not, takes it (one
        collation throughout, so the views' joins and unions never mix two)."""
        return {f"{self.name}_charset": "utf8mb4", f"{self.name}_collate": self.collation(conn)}

    def exact_text(
        self, conn: Connection, schema: str | None, tables: Sequence[sa.Table]
    ) -> list[tuple[str, str]]:
        """`ALTER TABLE ... CONVERT TO` the binary collation for each table an older version
        made in the server's default one, or with a text column in another.

        Each table's is one statement, which InnoDB applies whole or not at all: after a
        crash part way, the tables still in another collation are found and converted by
        the next start, and the ones done are left alone. Keys the old collation had
        already merged (one row for `ab-1` and `AB-1`) cannot be told apart again: the
        row stays as last written, and the other key is loaded anew when it is read again.
        """
        if not tables:
            return []
        collation = self.collation(conn)
        text = {t.name: character_columns(t, self.dialect) for t in tables}
        stale = stale_tables(text, *_collations(conn, schema, sorted(text)), collation)
        by_name = {t.name: t for t in tables}
        prep = self.dialect.identifier_preparer
        convert = f"CONVERT TO CHARACTER SET utf8mb4 COLLATE {collation}"
        return [(n, f"ALTER TABLE {prep.format_table(by_name[n])} {convert}") for n in stale]

    def drop_schema_sql(self, schema: str) -> str | None:
        return f"DROP DATABASE IF EXISTS {self.dialect.identifier_preparer.quote(schema)}"

    @contextmanager
    def ddl_lock(self, conn: Connection, name: str) -> Iterator[None]:
        """A named lock, released explicitly (DDL commits implicitly); one not had within five
        minutes lets the DDL try anyway."""
        conn.execute(sa.text("SELECT GET_LOCK(:k, :wait)"), {"k": name[:64], "wait": 300})
        try:
            yield
        except BaseException:
            # The error under way says what went wrong: a release on a connection it broke
            # would replace it with SQLAlchemy's "Can't reconnect until invalid transaction
            # is rolled back". A session that ended freed the lock with it.
            if not conn.invalidated:
                conn.execute(sa.text("SELECT RELEASE_LOCK(:k)"), {"k": name[:64]})
            raise
        conn.execute(sa.text("SELECT RELEASE_LOCK(:k)"), {"k": name[:64]})

    def upsert(
        self, conn: Connection, t: sa.Table, table: Table, data: pa.Table, updates: list[str]
    ) -> None:
        my = mysql.insert(t)
        first = table.key[0]
        assignments = {c: my.inserted[c] for c in updates} or {first: my.inserted[first]}
        conn.execute(my.on_duplicate_key_update(assignments), py_rows(data))

    def session_lock(self, name: str, *, shared: bool) -> tuple[str, str, object]:
        return ("SELECT GET_LOCK(:k, 0)", "SELECT RELEASE_LOCK(:k)", mysql_lock_name(name))

    def release_all_sql(self) -> str:
        return "SELECT RELEASE_ALL_LOCKS()"

    def upsert_row(
        self,
        conn: Connection,
        t: sa.Table,
        key: Mapping[str, Any],
        update: Mapping[str, Any],
        insert: Mapping[str, Any],
    ) -> None:
        """INSERT ... ON DUPLICATE KEY UPDATE: no locking read of a key not stored yet.

        UPDATE-then-INSERT deadlocks two writers that add rows in one gap of the key: the
        UPDATE that matches nothing locks the gap (REPEATABLE READ), so each one's INSERT
        waits for the other's gap lock (seen between two replicas adding new registers'
        `sync_state` rows). An insert takes no lock a distinct key's insert waits for, and a
        stored row's primary key is locked alone, gap excluded.
        """
        stmt = mysql.insert(t).values(**key, **insert)
        conn.execute(stmt.on_duplicate_key_update(dict(update)))

    def move_cursors(
        self,
        conn: Connection,
        t: sa.Table,
        stream: str,
        moves: Sequence[CursorMove],
        now: datetime,
    ) -> set[str] | None:
        """Each by `upsert_row`'s INSERT ... ON DUPLICATE KEY UPDATE (no locking read of a
        key not stored yet), whose every assignment keeps the stored value unless the stored
        cursor and count are the ones a fenced move expects (`since`, `since_windows`); then
        the fenced ones' rows, stored and locked by then, read back with FOR UPDATE (their
        newest version, not the transaction's snapshot): a row whose cursor is not the one
        written, or whose `updated_at` is not this transaction's `now` (to the microsecond),
        was left as another process moved it. The stamp tells a refused move apart from
        another process's move to the very cursor written (the same windows loaded by a new
        holder of the partition), which the cursor alone counted as this one's. The
        read-back is held to the primary key (FORCE INDEX): on a small sync_state it was
        planned as a scan whose next-key locks covered every gap, so replicas inserting
        other new partitions waited for each other's whole group commit."""
        c = t.c
        for m in moves:
            if _holds_only(m):  # nothing to write: the read below checks it
                continue
            stamp = sa.bindparam(None, now, c.updated_at.type)
            same: sa.ColumnElement[bool] = sa.true()
            if m.fenced:
                same = c.cursor.is_not_distinct_from(m.since)
                if m.since_windows is not None:
                    same = sa.and_(same, sa.func.coalesce(c.windows_loaded, 0) == m.since_windows)
            # MySQL assigns left to right, each assignment seeing those before it: the stamp
            # first, judged on the row as stored, and then the stamp says for the others
            # whether the move is made (they change the cursor and count it compares).
            # MariaDB's SIMULTANEOUS_ASSIGNMENT mode has every assignment see the stored
            # row instead: there `same` still says it (and the stamp never does).
            made = sa.or_(c.updated_at.is_not_distinct_from(stamp), same)

            def kept(column: sa.Column[Any], value: Any, made: Any = made) -> Any:
                """`value` where the move is made, else what `column` holds."""
                return sa.case((made, value), else_=column)

            stmt = mysql.insert(t).values(
                stream=stream,
                partition_key=m.partition,
                cursor=m.cursor,
                updated_at=now,
                rows_loaded=m.rows,
                windows_loaded=m.windows,
            )
            assignments = [
                ("updated_at", sa.case((same, stamp), else_=c.updated_at)),
                ("rows_loaded", kept(c.rows_loaded, sa.func.coalesce(c.rows_loaded, 0) + m.rows)),
                (
                    "windows_loaded",
                    kept(c.windows_loaded, sa.func.coalesce(c.windows_loaded, 0) + m.windows),
                ),
                ("cursor", kept(c.cursor, sa.bindparam(None, m.cursor, c.cursor.type))),
            ]
            conn.execute(stmt.on_duplicate_key_update(assignments))
        fenced = {m.partition: m for m in moves if m.fenced}
        if not fenced:
            return set()
        read = (
            sa.select(c.partition_key, c.cursor, c.updated_at, c.windows_loaded)
            .where(c.stream == stream, c.partition_key.in_(sorted(fenced)))
            .with_hint(t, "FORCE INDEX (PRIMARY)", "mysql")
            .with_hint(t, "FORCE INDEX (PRIMARY)", "mariadb")
            .with_for_update()
        )
        stored = {
            str(p): (None if cursor is None else str(cursor), at, int(windows or 0))
            for p, cursor, at, windows in conn.execute(read)
        }
        return {p for p, m in fenced.items() if not _made(m, stored.get(p), now)}

    def conflict(self, exc: BaseException) -> str | None:
        """Deadlock (1213) or lock wait timeout (1205)."""
        orig = _driver_error(exc)
        code = getattr(orig, "errno", None)
        if code is None and orig.args and isinstance(orig.args[0], int):
            code = orig.args[0]  # PyMySQL, mysqlclient: (code, message)
        return _MYSQL_CONFLICTS.get(code) if isinstance(code, int) else None


def _holds_only(move: CursorMove) -> bool:
    """A fenced move of no rows and no windows from a cursor to itself: a check that the
    partition is still as its writer left it (`PartitionWriter._held_move`), which changes
    nothing when it passes. MySQL makes it by the locking read alone: a no-op tick's 300
    registers' deferred "ok"s cost one statement, not an upsert each."""
    return move.fenced and not move.rows and not move.windows and move.cursor == move.since


def _made(
    move: CursorMove, stored: tuple[str | None, datetime | None, int] | None, now: datetime
) -> bool:
    """Whether a fenced `move` holds, by its partition's row as read back locked (None: no
    row): a written move left the cursor it wrote with this transaction's stamp; a check
    (`_holds_only`) found the cursor and count it expects (no row: never stored)."""
    if not _holds_only(move):
        return stored is not None and stored[:2] == (move.cursor, now)
    cursor, _at, windows = stored if stored is not None else (None, None, 0)
    expected = move.since_windows
    return cursor == move.since and (expected is None or windows == expected)


class SQLite(SqlDialect):
    """SQLite: ON CONFLICT DO UPDATE; one writer, in this process; no schemas."""

    in_process = True
    schemas = False
    enforced_keys = True

    def on_connect(self, dbapi_connection: Any, _record: Any = None) -> None:
        """Wait up to SQLITE_BUSY_SECONDS for another writer, and keep the file in WAL
        journal mode: in the default mode a reader in a transaction (a BI tool's query)
        failed every commit of a tick after 5 s, and a second writer (another stream's tick)
        failed after 5 s of another's commit. In WAL readers and the writer never wait for
        each other; the mode stays with the file (its `-wal` and `-shm` files beside it)."""
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_SECONDS * 1000}")
            if _pragma(cursor, "journal_mode") in ("wal", "memory"):
                return
            try:
                mode = _pragma(cursor, "journal_mode = WAL")
            except self.dialect.loaded_dbapi.OperationalError as exc:  # e.g. locked: next time
                mode = first_line(exc)
        finally:
            cursor.close()
        if mode == "wal":
            log.info("sqlite_journal_wal")
        else:  # e.g. a file system without shared memory: the loads work, and wait longer
            log.warning("sqlite_journal_not_wal", outcome=mode)

    def ddl_guard(self, url: str) -> AbstractContextManager[None]:
        """A `flock` beside the file, held until the upkeep has committed: SQLite has no
        named lock, and commits its DDL statement by statement, so two processes finding a
        fresh file at the same moment would both create its tables ("already exists")."""
        path = local_path(url)
        return nullcontext() if path is None else holding_file(Path(f"{path}.ddl.lock"))

    def upsert(
        self, conn: Connection, t: sa.Table, table: Table, data: pa.Table, updates: list[str]
    ) -> None:
        stmt = sqlite.insert(t)
        excluded = stmt.excluded
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=list(table.key), set_={c: excluded[c] for c in updates}
            )
            if updates
            else stmt.on_conflict_do_nothing(index_elements=list(table.key)),
            py_rows(data),
        )


class SqlServer(SqlDialect):
    """SQL Server: MERGE per row (executemany); `ADD` without COLUMN; no row-value IN."""

    add_column = "ADD"
    row_value_in = False
    enforced_keys = True

    def create_schema(self, conn: Connection, schema: str) -> None:
        quoted = self.dialect.identifier_preparer.quote(schema)
        conn.execute(
            sa.text(
                "IF NOT EXISTS (SELECT 1 FROM sys.schemas WHERE name = :s) "
                f"EXEC('CREATE SCHEMA {quoted}')"
            ),
            {"s": schema},
        )

    def upsert(
        self, conn: Connection, t: sa.Table, table: Table, data: pa.Table, updates: list[str]
    ) -> None:
        conn.execute(merge_statement(t, table, self.dialect), py_rows(data))


def merge_statement(t: sa.Table, table: Table, dialect: Dialect) -> sa.TextClause:
    """SQL Server's upsert: MERGE one source row on the natural key (for executemany)."""
    prep = dialect.identifier_preparer
    target = prep.format_table(t)
    names = list(table.column_names)
    q = prep.quote
    source = ", ".join(f":{n} AS {q(n)}" for n in names)
    match = " AND ".join(f"target.{q(k)} = source.{q(k)}" for k in table.key)
    kept = (*table.key, *table.keep_on_update)
    updates = ", ".join(f"target.{q(n)} = source.{q(n)}" for n in names if n not in kept)
    matched = f" WHEN MATCHED THEN UPDATE SET {updates}" if updates else ""
    cols = ", ".join(q(n) for n in names)
    values = ", ".join(f"source.{q(n)}" for n in names)
    sql = (
        f"MERGE INTO {target} WITH (HOLDLOCK) AS target USING (SELECT {source}) AS source "
        f"ON {match}{matched} WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values});"
    )
    return sa.text(sql).bindparams(*(sa.bindparam(n, type_=t.c[n].type) for n in names))


_PG_CONFLICTS = {
    "40001": "serialization failure (SQLSTATE 40001)",
    "40P01": "deadlock (SQLSTATE 40P01)",
}
_MYSQL_CONFLICTS = {
    1213: "deadlock (MySQL error 1213)",
    1205: "lock wait timeout (MySQL error 1205)",
}


def _collations(
    conn: Connection, schema: str | None, names: Sequence[str]
) -> tuple[dict[str, str | None], dict[tuple[str, str], str | None]]:
    """MySQL's catalog: the default collation of each base table of `names` in `schema` (None:
    the connection's database), and that of each of their character columns."""
    where = "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME IN :names"
    tables, columns = (
        sa.text(sql).bindparams(sa.bindparam("names", list(names), expanding=True), schema=schema)
        for sql in (
            "SELECT TABLE_NAME, TABLE_COLLATION FROM information_schema.TABLES "
            f"{where} AND TABLE_TYPE = 'BASE TABLE'",
            "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
            f"{where} AND COLLATION_NAME IS NOT NULL",
        )
    )
    return (
        {str(t): _text(c) for t, c in conn.execute(tables)},
        {(str(t), str(n)): _text(c) for t, n, c in conn.execute(columns)},
    )


def _pragma(cursor: Any, pragma: str) -> str:
    """The value a SQLite PRAGMA statement returns, in lower case."""
    cursor.execute(f"PRAGMA {pragma}")
    return str(cursor.fetchone()[0]).lower()


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _driver_error(exc: BaseException) -> BaseException:
    """The DB-API driver's own exception inside SQLAlchemy's wrapper (or `exc` itself)."""
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else None
    return orig if isinstance(orig, BaseException) else exc


_BY_NAME: dict[str, type[SqlDialect]] = {
    "postgresql": Postgres,
    "mysql": MySQL,
    "mariadb": MySQL,
    "sqlite": SQLite,
    "mssql": SqlServer,
}


def dialect_for(dialect: Dialect) -> SqlDialect:
    """The strategy of a SQLAlchemy dialect (the portable one for dialects not listed)."""
    return _BY_NAME.get(dialect.name, SqlDialect)(dialect)


def has_session_locks(name: str) -> bool:
    """True when the dialect called `name` has named session locks (shared by processes)."""
    return _BY_NAME.get(name, SqlDialect).session_locks
