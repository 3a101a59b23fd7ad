"""Any SQLAlchemy database: PostgreSQL, MySQL/MariaDB, SQLite, SQL Server, and the rest.

Same seam, same guarantees as the DuckDB backend: a window's rows, rejects and cursor commit
in one transaction; parents upsert on their natural key; children are replaced as a set.

Writes take the fastest path the dialect offers; what differs between dialects is asked of
the dialect's strategy (dialects.py), PostgreSQL's COPY path included (pg_copy.py). This
module holds only what every dialect does alike.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from sitoo_sync.errors import ConfigError, WarehouseError, first_line
from sitoo_sync.log import get_logger
from sitoo_sync.normalize.columns import ARROW_TYPES
from sitoo_sync.normalize.records import Reject
from sitoo_sync.normalize.tables import Table
from sitoo_sync.settings import MAX_CONCURRENCY
from sitoo_sync.warehouse import masked_url, pg_copy, unreachable
from sitoo_sync.warehouse.base import (
    REJECTS,
    SYNC_RUNS,
    SYNC_STATE,
    SYNC_VIEWS,
    Capabilities,
    CapabilityFlags,
    ChildReplacement,
    CursorMove,
    Lock,
    Nesting,
    Outcome,
    PartitionLocks,
    PerThread,
    RunRow,
    StoredCursors,
    StreamState,
    iter_states,
    outcome_values,
    schema_tables,
    tick_threads,
)
from sitoo_sync.warehouse.catalog import (
    SYNC_SCHEMA,
    Catalog,
    check_revision,
    checks_revision,
    log_recorded,
    revision_row,
    upgrades,
)
from sitoo_sync.warehouse.comments import catalog_sql, comment_sql
from sitoo_sync.warehouse.dialects import CHUNK, dialect_for, key_rows, merge_statement
from sitoo_sync.warehouse.file_locks import file_lock, scoped_name
from sitoo_sync.warehouse.locks import SessionPartitionLocks, try_session
from sitoo_sync.warehouse.retry import TransactionConflict
from sitoo_sync.warehouse.rounds import Rounds
from sitoo_sync.warehouse.sql_types import UtcDateTime, sa_table
from sitoo_sync.warehouse.upgrade_steps import Upgrade, upgrade
from sitoo_sync.warehouse.views import Sql, View, create_views_sql, run_backfills_sql

log = get_logger(__name__)

#: Rows a streamed read fetches at a time.
STREAM_BATCH = 10_000
#: A table and, per key column, the (low, high) bounds of the keys a partition asks about.
_RangeAsk = tuple[Table, tuple[tuple[Any, Any], ...]]
#: URL schemes whose SQLAlchemy default driver is not the one we ship as an extra.
DEFAULT_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
#: The most connections the pool opens: one per thread of the tick (`tick_threads`) and the
#: tick's own. A tick opens far fewer (its own thread's, the writing thread's, the rounds'),
#: but the pool must not bound its threads (QueuePool's default, 5 + 10 overflow, failed a
#: tick at concurrency 16 when each partition's thread had a connection).
MAX_CONNECTIONS = tick_threads(MAX_CONCURRENCY) + 1
KEPT_CONNECTIONS = 5  # pooled between uses; the rest are closed when returned
EXTRAS = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "mssql": "mssql"}
JSON_DIALECTS = {"postgresql", "mysql", "mariadb", "sqlite", "mssql"}
#: The most seconds a connection takes to open, the server's first answer included: a
#: server (or a proxy before it) that takes the connection and says nothing fails the tick
#: within this, and the next tick tries again, instead of holding the stream's tick for
#: good (psycopg waited 130 s, PyMySQL for ever: its connect timeout ends at the TCP
#: handshake).
CONNECT_SECONDS = 10
#: PostgreSQL: TCP keepalive probes after 30 s of silence, every 10 s, 3 unanswered end the
#: connection; sent data unacknowledged for 60 s (a lock's connection; 300 s a load's) ends
#: it too. A server that vanished mid-statement (a failover, a cut network) fails the tick
#: within minutes, not after the operating system's two hours (libpq has no timeout on a
#: read). A load's bound is looser: a busy server that stops reading a COPY for a while
#: (its window shut) must not cost the tick.
PG_KEEPALIVE = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}
PG_UNACKNOWLEDGED_MS = {"lock": 60_000, "load": 300_000}
#: MySQL/MariaDB (PyMySQL): the most seconds one read or write on a connection waits for
#: the server. The longest a statement of this tool is silent is minutes (a big table's
#: collation converted once, the schema lock's 300 s wait): a server silent for an hour is
#: taken as gone, and the tick fails instead of waiting for it for good.
MYSQL_SILENT_SECONDS = 3600
#: The same for a lock's connection, whose statements are all instant (a named lock tried
#: with no wait, a heartbeat, a few cursors by key): a connection that opens (the server's
#: greeting is a read) or beats no more within this is gone, and with it the lock.
LOCK_SILENT_SECONDS = 30


def _json_text(value: Any) -> str:
    """JSON columns receive JSON text already; anything else is serialized."""
    return value if isinstance(value, str) else json.dumps(value)


def make_engine(url: str) -> Engine:
    """An engine for `url`, or a ConfigError naming the extra that installs its driver."""
    scheme, sep, rest = url.partition("://")
    url = DEFAULT_DRIVERS.get(scheme.lower(), scheme) + sep + rest
    base = scheme.split("+", 1)[0].lower()
    base = "postgresql" if base == "postgres" else base
    # A failed statement's message must not carry the rows' values into a log line (a
    # customer's email under SITOO_PERSONAL_DATA=keep): SQLAlchemy then shows no parameters.
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
    if not _in_memory_sqlite(base, rest):  # that one has a single connection, no pool size
        kwargs["pool_size"] = KEPT_CONNECTIONS
        kwargs["max_overflow"] = MAX_CONNECTIONS - KEPT_CONNECTIONS
    if base in JSON_DIALECTS:
        kwargs["json_serializer"] = _json_text
    try:
        kwargs["connect_args"] = connect_args(sa.make_url(url))
        return sa.create_engine(url, **kwargs)
    except (ModuleNotFoundError, NoSuchModuleError) as exc:
        extra = EXTRAS.get(base)
        # There is no PyPI release: the extra is installed from the clone (README).
        hint = (
            f"install the [{extra}] extra: pip install '.[{extra}]' from the sitoo_sync clone"
            if extra
            else "install its SQLAlchemy driver"
        )
        raise ConfigError(f"SITOO_TARGET_URL: no driver for {scheme}:// ({exc}); {hint}") from None
    except sa.exc.ArgumentError as exc:
        raise ConfigError(f"SITOO_TARGET_URL: not a database URL ({exc})") from None


def connect_args(url: sa.URL, *, lock: bool = False) -> dict[str, Any]:
    """The driver's bounds on a connection's waits (CONNECT_SECONDS, PG_KEEPALIVE,
    MYSQL_SILENT_SECONDS; LOCK_SILENT_SECONDS for a `lock`'s), for the drivers we ship;
    whatever the URL's query gives is left as it gives it."""
    driver = url.get_driver_name()
    args: dict[str, Any] = {}
    if driver == "psycopg":
        args = {"connect_timeout": CONNECT_SECONDS, **PG_KEEPALIVE}
        args["tcp_user_timeout"] = PG_UNACKNOWLEDGED_MS["lock" if lock else "load"]
    elif driver == "pymysql":
        silent = LOCK_SILENT_SECONDS if lock else MYSQL_SILENT_SECONDS
        args = {"connect_timeout": CONNECT_SECONDS, "read_timeout": silent}
        args["write_timeout"] = silent
    return {k: v for k, v in args.items() if k not in url.query}


def _in_memory_sqlite(base: str, rest: str) -> bool:
    return base == "sqlite" and rest.split("?", 1)[0] in ("", "/", "/:memory:")


class SqlWarehouse(CapabilityFlags, ChildReplacement):
    """A SQLAlchemy target; one connection per tick, opened on first use, closed by close()."""

    errors: tuple[type[BaseException], ...] = (sa.exc.SQLAlchemyError, TransactionConflict)

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self.sql = dialect_for(self.engine.dialect)
        sa.event.listen(self.engine, "connect", self.sql.on_connect)
        # The COPY paths (pg_copy.py) speak to the driver directly: its errors arrive there
        # unwrapped, and are this target's errors as much as SQLAlchemy's wrappers of them.
        self._driver: Any = self.engine.dialect.dbapi
        driver_error = getattr(self._driver, "Error", None)
        if isinstance(driver_error, type) and issubclass(driver_error, Exception):
            self.errors = (*SqlWarehouse.errors, driver_error)
        if schema and not self.sql.schemas:
            raise ConfigError(f"SITOO_TARGET_SCHEMA: {self.dialect} has no schemas; leave it unset")
        self.schema = schema
        self.metadata = sa.MetaData(schema=schema)
        self._tables: dict[str, sa.Table] = {}
        self._conns = PerThread(
            self.engine.connect, lambda _first: self.engine.connect(), lambda c: c.close()
        )
        # Concurrent loads only where they are proven safe: PostgreSQL (MVCC, no gap locks).
        # InnoDB's gap locks deadlocked concurrent loads (new sync_state rows, before
        # `upsert_row`; concurrent loads in one process are not proven safe since), SQLite
        # has one writer, SQL Server is untested here: those take their loads in turn.
        self.capabilities = Capabilities(
            dialect=self.dialect,
            concurrent_loads=self.sql.concurrent_loads,
            in_process=self.sql.in_process,
            comments=self.sql.comments and self.engine.dialect.supports_comments,
            shared_locks=self.sql.session_locks,
            schemas=self.sql.schemas,
            enforced_keys=self.sql.enforced_keys,
        )
        self._nesting = Nesting()
        self._seq = 0
        self._stored_rounds: Rounds[_RangeAsk, set[tuple[Any, ...]]] = Rounds(self._stored_round)
        # The rounds' reads run on a connection of their own (one round at a time): a
        # partition's thread that leads a round then opens none, so a tick's threads are not
        # bounded by the server's connections (base.tick_threads).
        self._round_conn: Connection | None = None
        self._round_lock = threading.Lock()
        for system in (SYNC_STATE, REJECTS, SYNC_RUNS):
            self.t(system)

    # ---- plumbing -----------------------------------------------------------------------

    def t(self, table: Table) -> sa.Table:
        """The SQLAlchemy table of a declaration (made once; again for a wider declaration,
        e.g. a stream's stored table, with load metadata, after its normalizer's)."""
        known = self._tables.get(table.name)
        if known is None or not set(table.column_names) <= set(known.c.keys()):
            if known is not None:
                self.metadata.remove(known)
            self._tables[table.name] = sa_table(table, self.metadata)
        return self._tables[table.name]

    @property
    def conn(self) -> Connection:
        """This thread's connection for the tick, from the engine's pool."""
        return self._conns.get()

    def _tx(self) -> AbstractContextManager[Any]:
        return nullcontext() if self.conn.in_transaction() else self.conn.begin()

    def allow_big_reads(self) -> None:
        """Nothing to do: the server manages its own memory."""

    def close(self) -> None:
        """Return the connections and drop the pool, so nothing is held between ticks."""
        with self._round_lock:
            if self._round_conn is not None:
                self._round_conn.close()
                self._round_conn = None
        self._conns.close_all()
        self.engine.dispose()

    def _rounds_connection(self) -> Connection:
        """The connection the rounds of reads run on, opened on first use."""
        with self._round_lock:
            if self._round_conn is None:
                self._round_conn = self.engine.connect()
            return self._round_conn

    def _qualified(self, t: sa.Table) -> str:
        return self.engine.dialect.identifier_preparer.format_table(t)

    def qualified(self, name: str) -> str:
        """A table's quoted name, qualified by the schema when there is one."""
        prep = self.engine.dialect.identifier_preparer
        quoted = prep.quote(name)
        return f"{prep.quote_schema(self.schema)}.{quoted}" if self.schema else quoted

    def _q(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote(name)

    # ---- schema -------------------------------------------------------------------------

    def ensure_schema(
        self, tables: Sequence[Table], views: Sequence[View] = (), *, declared: Sequence[Table] = ()
    ) -> None:
        """Create the schema and missing tables; convert tables whose text does not compare
        byte for byte (an older version's, on MySQL/MariaDB); add declared columns a table
        lacks; keep `views` current (created again only when their definition changed).

        `IF NOT EXISTS` is not safe against a race: two processes that find a fresh schema at
        the same moment (two cron ticks, replicas starting together) both try to create it and
        one fails on the catalog's unique index (PostgreSQL) or "already exists" (MySQL,
        SQLite). A server-side lock named after the schema (the dialect's `ddl_lock`), or on
        SQLite a lock file beside the database (`ddl_guard`), makes them take turns; the later
        one then finds everything in place.

        A writer's upkeep refuses a warehouse of a newer schema revision before it changes
        anything (`SchemaTooNew`); a tick's brings one of an older revision up to this one
        (catalog.py; its steps, upgrade_steps.py, run over `declared`), in turn with the
        others as above.
        """
        kept = schema_tables(tables, views)  # (with `sync_views` when it keeps views)
        checks = checks_revision(kept)
        wanted = [self.t(table) for table in kept]
        # The guard must be held until the upkeep has committed: it is taken only around a
        # transaction of the upkeep's own, not inside a caller's it could not outlast.
        opens = not self.conn.in_transaction()
        with (
            self.sql.ddl_guard(self.url) if opens else nullcontext(),
            self._tx(),
            self.sql.ddl_lock(self.conn, f"sitoo_sync:ddl:{self.schema or ''}"),
        ):
            if self.schema:
                self.sql.create_schema(self.conn, self.schema)
            # One look at the catalog for the tables, their comments and the views (catalog.py);
            # the views may read any table of the schema.
            names = None if views else [t.name for t in wanted]
            catalog = Catalog(self.conn, self.schema, tables=names)
            present = set(catalog.table_names())
            recorded, revision = self._recorded(catalog, views=bool(views), checks=checks)
            upgrading = checks and bool(views) and upgrades(revision)
            # (the tables and columns that may hold an older version's rows)
            before = (
                {name: {c["name"] for c in cols} for name, cols in catalog.columns().items()}
                if upgrading
                else {}
            )
            missing = [t for t in wanted if t.name not in present]
            if missing:  # (a server's DDL lock keeps other processes from it meanwhile)
                options = self.sql.table_options(self.conn)
                for t in missing:
                    t.dialect_kwargs.update(options)
                self.metadata.create_all(self.conn, tables=missing, checkfirst=False)
                catalog.changed()
            # Before columns are added, which then take the table's collation.
            if self._exact_text([t for t in wanted if t.name in present]):
                catalog.changed()
            columns = {name: {c["name"] for c in cols} for name, cols in catalog.columns().items()}
            added: list[tuple[str, str]] = []
            for t in wanted:
                have = columns.get(t.name, set())
                for col in t.columns:
                    if col.name in have:
                        continue
                    ddl = col.type.compile(dialect=self.engine.dialect)
                    add = self.sql.add_column
                    self.conn.execute(
                        sa.text(f"ALTER TABLE {self._qualified(t)} {add} {self._q(col.name)} {ddl}")
                    )
                    catalog.changed()
                    log.info("column_added", table=t.name, column=col.name)
                    added.append((t.name, col.name))
            if added:  # what the rows loaded before hold in the new columns
                there = set(catalog.table_names())
                run_backfills_sql(self.conn, self.schema, views, added, there)
            if self.capabilities.comments and comment_sql(self.conn, wanted, catalog):
                catalog.changed()  # comments written (on MySQL by restating their columns)
            if views:
                create_views_sql(
                    self.conn,
                    catalog,
                    views,
                    comments=self.sql.view_comments,
                    records=self.t(SYNC_VIEWS),
                    recorded=recorded,
                )
            if upgrading:
                self._upgrade(revision, before, views, declared or tables)

    def _recorded(
        self, catalog: Catalog, *, views: bool, checks: bool
    ) -> tuple[dict[str, str], int | None]:
        """The views' fingerprints (when the upkeep keeps `views`) and the newest schema
        revision (when it `checks` it), in the one statement that read the former alone (the
        views' upkeep, at its end) before revisions were recorded; a revision newer than
        this code's is refused here, before anything is made or written."""
        present = set(catalog.table_names())
        recorded, revision = catalog.records(
            self.t(SYNC_VIEWS) if views and SYNC_VIEWS.name in present else None,
            self.t(SYNC_SCHEMA) if checks and SYNC_SCHEMA.name in present else None,
        )
        if checks:
            check_revision(revision)
        return recorded, revision

    def _upgrade(
        self,
        revision: int | None,
        before: Mapping[str, set[str]],
        views: Sequence[View],
        declared: Sequence[Table],
    ) -> None:
        """Run the upgrade steps since `revision` over the `declared` tables as they were
        `before` the upkeep, and record this code's revision, in the upkeep's transaction:
        last, so that on MySQL, whose DDL commits by itself, both commit together."""
        dialect = self.engine.dialect

        def run(statement: str) -> int:
            # (a colon in the SQL text is no bind parameter)
            return int(self.conn.execute(sa.text(statement.replace(":", "\\:"))).rowcount)

        sql = Sql(dialect.name, self.qualified)
        mariadb = bool(getattr(dialect, "is_mariadb", False))
        up = Upgrade(
            sql=sql, before=before, views=views, declared=declared, run=run, mariadb=mariadb
        )
        upgrade(revision, up)
        row = revision_row()
        t = self.t(SYNC_SCHEMA)
        key = {"revision": row.pop("revision")}
        # Two processes of this revision may both upgrade (MySQL frees its DDL lock before
        # the commit): the second leaves the first's row as it is.
        self.sql.upsert_row(self.conn, t, key, {"revision": t.c.revision}, row)
        log_recorded(revision)

    def _exact_text(self, tables: Sequence[sa.Table]) -> int:
        """Convert the existing `tables` whose text does not compare byte for byte (an older
        version's, on MySQL/MariaDB: `dialects.MySQL.exact_text`); how many were."""
        converted = self.sql.exact_text(self.conn, self.schema, tables)
        for name, statement in converted:
            log.info("table_collation_converting", table=name)
            self.conn.execute(sa.text(statement))
            log.info("table_collation_converted", table=name)
        return len(converted)

    # ---- loading ------------------------------------------------------------------------

    def transaction(self) -> AbstractContextManager[None]:
        """BEGIN ... COMMIT, or ROLLBACK on any exception; an inner one joins the outer."""
        return self._nesting.enter(self.conn.begin)

    def in_transaction(self) -> bool:
        """True inside `transaction()` on this thread."""
        return self._nesting.active()

    def conflict(self, exc: BaseException) -> str | None:
        """The dialect's word on `exc`: a deadlock, lock wait timeout or serialization
        failure that a re-run can get past, or None."""
        return self.sql.conflict(exc)

    def duplicate_key(self, exc: BaseException) -> bool:
        """An integrity error: a key stored already (or another constraint broken, which
        the load run again with its stored keys read meets again and raises)."""
        integrity = getattr(self._driver, "IntegrityError", None)
        return isinstance(exc, sa.exc.IntegrityError) or (
            isinstance(integrity, type) and isinstance(exc, integrity)
        )

    def insert(self, table: Table, data: pa.Table) -> None:
        """Bulk insert of rows known to be new."""
        if data.num_rows == 0:
            return
        self.sql.insert(self.conn, self.t(table), data)

    def upsert(self, table: Table, data: pa.Table) -> None:
        """Insert or update on the natural key, by the dialect's own statement."""
        if data.num_rows == 0:
            return
        updates = [
            c for c in table.column_names if c not in table.key and c not in table.keep_on_update
        ]
        self.sql.upsert(self.conn, self.t(table), table, data, updates)

    def delete_rows(self, table: Table, keys: pa.Table, by: tuple[str, ...]) -> None:
        """Delete the rows whose `by` columns match a row of `keys`."""
        if keys.num_rows == 0:
            return
        self.sql.delete_rows(self.conn, self.t(table), keys, by)

    def existing_keys(self, table: Table, keys: pa.Table) -> pa.Table:
        """The subset of `keys` already stored in `table`, as `keys` spell them (looked up
        as the target stores them: PostgreSQL's U+FFFD for U+0000, `SqlDialect.as_stored`)."""
        if keys.num_rows == 0:
            return keys
        t = self.t(table)
        by = list(table.key)
        asked = keys.select(by)
        stored = self.sql.as_stored(asked)
        with self._tx():
            found = self.sql.present(self.conn, t, by, key_rows(stored, by))
        if stored is not asked:
            found = _as_asked(asked, stored, set(found))
        return _keys_table(keys.schema, by, found)

    def superseded_keys(self, table: Table, data: pa.Table) -> pa.Table:
        """Stored keys in the same replace group as `data`'s rows but not among them (both
        as the target stores them)."""
        t = self.t(table)
        by = list(table.key)
        data = self.sql.as_stored(data.select(list(dict.fromkeys([*by, *table.replace_group]))))
        groups = key_rows(data, table.replace_group)
        incoming = set(key_rows(data, by))
        found: list[tuple[Any, ...]] = []
        for i in range(0, len(groups), CHUNK):
            select = sa.select(*(t.c[c] for c in by)).where(
                self.sql.match(t, table.replace_group, groups[i : i + CHUNK])
            )
            found.extend(tuple(r) for r in self.conn.execute(select) if tuple(r) not in incoming)
        return _keys_table(data.select(by).schema, by, found)

    def mark_missing(
        self,
        table: Table,
        scope: Mapping[str, Any],
        present: Sequence[tuple[Any, ...]],
        at: datetime,
    ) -> int:
        """Stamp `missing_since` on rows of `scope` not among `present` keys, and clear it
        on rows that are (listed again); the count stamped.

        The scope's keys are read and compared here, and the rows to change updated by
        chunks of keys: one `IN`/`NOT IN` list of every listed key would pass two bind
        parameters per product of a catalogue, past what a server takes (PostgreSQL: 65,535)."""
        t = self.t(table)
        by = list(table.key)
        scoped = [t.c[c] == v for c, v in scope.items()]
        if not present:  # nothing listed: every row of the scope, in one statement
            unlisted = t.update().where(t.c.missing_since.is_(None), *scoped)
            return int(self.conn.execute(unlisted.values(missing_since=at)).rowcount or 0)
        listed = {self.sql.stored_row(key) for key in present}
        stamp: list[tuple[Any, ...]] = []
        clear: list[tuple[Any, ...]] = []
        stored = sa.select(*(t.c[c] for c in by), t.c.missing_since).where(*scoped)
        for row in self.conn.execute(stored):
            key, missing = tuple(row[:-1]), row[-1] is not None
            if key in listed and missing:
                clear.append(key)
            elif key not in listed and not missing:
                stamp.append(key)
        for i in range(0, len(clear), CHUNK):
            rows = self.sql.match(t, by, clear[i : i + CHUNK])
            self.conn.execute(t.update().where(*scoped, rows).values(missing_since=None))
        done = 0
        for i in range(0, len(stamp), CHUNK):
            rows = self.sql.match(t, by, stamp[i : i + CHUNK])
            unmarked = [t.c.missing_since.is_(None), *scoped, rows]
            done += int(
                self.conn.execute(t.update().where(*unmarked).values(missing_since=at)).rowcount
                or 0
            )
        return done

    def distinct_values(self, table: Table, column: str) -> list[Any]:
        """DISTINCT values of a column, [] before the table exists."""
        t = self.t(table)
        with self._tx():
            if not sa.inspect(self.conn).has_table(t.name, schema=self.schema):
                return []
            return [r[0] for r in self.conn.execute(sa.select(t.c[column]).distinct())]

    def add_rejects(self, rejects: Sequence[Reject]) -> set[str]:
        """New rejects are inserted; one seen again bumps times_seen and last_seen_at. The
        ids new to the table or with a new reason (the stored reason is read with the id)."""
        if not rejects:
            return set()
        t = self.t(REJECTS)
        unique = {r.reject_id: r for r in rejects}
        seen: dict[str, str] = {
            row[0]: row[1]
            for i in range(0, len(unique), CHUNK)
            for row in self.conn.execute(
                sa.select(t.c.reject_id, t.c.reason).where(
                    t.c.reject_id.in_(list(unique)[i : i + CHUNK])
                )
            )
        }
        self._seen_again(t, [r for rid, r in unique.items() if rid in seen])
        met = self._insert_rejects(t, [r for rid, r in unique.items() if rid not in seen])
        return {rid for rid, r in unique.items() if seen.get(rid) != r.reason and rid not in met}

    def _seen_again(self, t: sa.Table, rejects: Sequence[Reject]) -> None:
        """Stored rejects received again: their reason and last_seen_at, times_seen + 1."""
        if not rejects:
            return
        self.conn.execute(
            t.update()
            .where(t.c.reject_id == sa.bindparam("rid"))
            .values(
                reason=sa.bindparam("reason"),
                last_seen_at=sa.bindparam("seen", type_=t.c.last_seen_at.type),
                times_seen=t.c.times_seen + 1,
            ),
            [{"rid": r.reject_id, "reason": r.reason, "seen": r.rejected_at} for r in rejects],
        )

    def _insert_rejects(self, t: sa.Table, rejects: Sequence[Reject]) -> set[str]:
        """Insert rejects the table did not hold when read; the ids of those another writer
        inserted since (a replica, or a concurrent partition, that met the same record),
        which are counted seen again instead of failing the load on their key."""
        if not rejects:
            return set()
        rows = [_reject_row(r) for r in rejects]
        if self.dialect == "postgresql":  # JSONB holds no U+0000 (see pg_copy)
            rows = [{**row, "raw": pg_copy.json_without_nul(row["raw"])} for row in rows]
        if not (self.capabilities.concurrent_loads or self.capabilities.shared_locks):
            self.conn.execute(t.insert(), rows)  # the only writer: the read holds
            return set()
        try:
            with self.conn.begin_nested():  # PostgreSQL: a failed insert spoils the rest
                self.conn.execute(t.insert(), rows)
            return set()
        except sa.exc.IntegrityError:
            log.info("rejects_met", rejects=len(rows))
        met: set[str] = set()
        for reject, row in zip(rejects, rows, strict=True):
            try:
                with self.conn.begin_nested():
                    self.conn.execute(t.insert(), [row])
            except sa.exc.IntegrityError:
                self._seen_again(t, [reject])
                met.add(reject.reject_id)
        return met

    # ---- state --------------------------------------------------------------------------

    def _state_where(self, stream: str, partition: str) -> Any:
        t = self.t(SYNC_STATE)
        return sa.and_(t.c.stream == stream, t.c.partition_key == partition)

    def _upsert_state(
        self, stream: str, partition: str, update: dict[str, Any], insert: dict[str, Any]
    ) -> None:
        """Update the partition's row, or insert it the first time: by the dialect's upsert,
        which on MySQL must not read the key first (dialects.MySQL.upsert_row)."""
        key = {"stream": stream, "partition_key": partition}
        with self._tx():
            self.sql.upsert_row(self.conn, self.t(SYNC_STATE), key, update, insert)

    def get_cursor(self, stream: str, partition: str) -> str | None:
        """The stored cursor, or None."""
        t = self.t(SYNC_STATE)
        with self._tx():
            value = self.conn.execute(
                sa.select(t.c.cursor).where(self._state_where(stream, partition))
            ).scalar()
        return None if value is None else str(value)

    def get_cursors(self, stream: str) -> StoredCursors:
        """Every stored cursor of `stream`, by partition, and its resets, in one query."""
        with self._tx():
            return self._cursors(self.conn, stream)

    def _cursors(
        self, conn: Connection, stream: str, partitions: Sequence[str] | None = None
    ) -> StoredCursors:
        """The stored cursors of `stream` (of `partitions` only, when given), on `conn`."""
        t = self.t(SYNC_STATE)
        select = sa.select(
            t.c.partition_key,
            t.c.cursor,
            t.c.last_status,
            t.c.last_status_detail,
            t.c.windows_loaded,
        ).where(t.c.stream == stream)
        if partitions is not None:
            select = select.where(t.c.partition_key.in_(partitions))
        return StoredCursors.of(conn.execute(select).all())

    def keys_since(
        self, table: Table, column: str, since: datetime, limit: int
    ) -> set[tuple[Any, ...]] | None:
        """None: each partition's `stored_keys` is one range scan of the key index, while a
        read by `column` would have no index to use."""
        return None

    def stored_keys(self, table: Table, keys: pa.Table) -> set[tuple[Any, ...]]:
        """Which of one partition's `keys` `table` holds: a range scan of its key index.

        Partitions asking at the same moment share one statement (`Rounds`): the OR of
        their ranges, each partition keeping the found keys it asked. One statement per
        partition, each on the partition's own connection, cost a no-op tick over 201
        registers 9-10 ms a register at concurrency 16 on PostgreSQL.
        """
        if keys.num_rows == 0:
            return set()
        asked = keys.select(list(table.key))
        stored = self.sql.as_stored(asked)  # e.g. U+0000 as PostgreSQL stores it
        bounds = tuple(
            (b["min"].as_py(), b["max"].as_py()) for b in map(pc.min_max, stored.columns)
        )
        found = self._stored_rounds.ask((table, bounds))
        if stored is asked:
            return found & set(_rows(asked))
        return set(_as_asked(asked, stored, found))

    def _stored_round(self, asks: Sequence[_RangeAsk]) -> list[set[tuple[Any, ...]]]:
        """The stored keys within any of a table's asked ranges (one statement per table)."""
        found: dict[str, set[tuple[Any, ...]]] = {}
        for table in {a[0].name: a[0] for a in asks}.values():
            t = self.t(table)
            ranges = {bounds for asked, bounds in asks if asked.name == table.name}
            where = sa.or_(
                *(
                    sa.and_(
                        *(t.c[c].between(lo, hi) for c, (lo, hi) in zip(table.key, b, strict=True))
                    )
                    for b in ranges
                )
            )
            conn = self._rounds_connection()
            with conn.begin():
                rows = conn.execute(sa.select(*(t.c[c] for c in table.key)).where(where))
                found[table.name] = {tuple(r) for r in rows}
        return [found[table.name] for table, _bounds in asks]

    def set_cursor(
        self, stream: str, partition: str, cursor: str | None, *, rows: int, windows: int = 1
    ) -> None:
        """Move the cursor; add rows and windows to the partition's counts."""
        t = self.t(SYNC_STATE)
        now = datetime.now(UTC)
        self._upsert_state(
            stream,
            partition,
            update={
                "cursor": cursor,
                "rows_loaded": sa.func.coalesce(t.c.rows_loaded, 0) + rows,
                "windows_loaded": sa.func.coalesce(t.c.windows_loaded, 0) + windows,
                "updated_at": now,
            },
            insert={
                "cursor": cursor,
                "rows_loaded": rows,
                "windows_loaded": windows,
                "updated_at": now,
            },
        )

    def set_cursors(self, stream: str, moves: Sequence[CursorMove]) -> set[str]:
        """Many partitions' cursors in one statement where the dialect has a many-row
        upsert (PostgreSQL), else each by the one-row upsert; in one transaction. Fenced
        moves are made only from their `since` where the dialect fences (PostgreSQL,
        MySQL: `SqlDialect.move_cursors`); returns the partitions of those left as they were.

        A 201-register backfill at concurrency 32 on PostgreSQL made 201 round trips for
        them, in the group commits that run one at a time.
        """
        with self._tx():
            distinct = len({m.partition for m in moves}) == len(moves)
            if distinct and any(m.fenced for m in moves):
                now = datetime.now(UTC)
                ordered = sorted(moves, key=lambda m: m.partition)  # two writers lock alike
                left = self.sql.move_cursors(self.conn, self.t(SYNC_STATE), stream, ordered, now)
                if left is not None:
                    return left
            if len(moves) > 1 and distinct:
                now = datetime.now(UTC)
                rows = [
                    {
                        "stream": stream,
                        "partition_key": m.partition,
                        "cursor": m.cursor,
                        "updated_at": now,
                        "rows_loaded": m.rows,
                        "windows_loaded": m.windows,
                    }
                    for m in sorted(moves)  # in key order: two group loads lock alike
                ]
                key, added = ("stream", "partition_key"), ("rows_loaded", "windows_loaded")
                if self.sql.upsert_adding(self.conn, self.t(SYNC_STATE), key, rows, added):
                    return set()
            for m in moves:
                self.set_cursor(stream, m.partition, m.cursor, rows=m.rows, windows=m.windows)
        return set()

    def record_outcome(
        self, stream: str, partition: str, status: str, detail: str | None = None
    ) -> None:
        """How the tick ended: ok, failed (and why) or disabled (and why)."""
        values = outcome_values(status, detail, datetime.now(UTC))
        self._upsert_state(stream, partition, update=values, insert=values)

    def record_outcomes(self, stream: str, outcomes: Sequence[Outcome]) -> None:
        """Many partitions' outcomes: one UPDATE per status (executemany), INSERTs for new."""
        if len(outcomes) <= 1:  # one upsert does it, without reading every partition first
            for partition, status, detail in outcomes:
                self.record_outcome(stream, partition, status, detail)
            return
        t = self.t(SYNC_STATE)
        now = datetime.now(UTC)
        with self._tx():
            present = {
                str(r[0])
                for r in self.conn.execute(sa.select(t.c.partition_key).where(t.c.stream == stream))
            }
            by_status: dict[str, list[dict[str, Any]]] = {}
            new: list[dict[str, Any]] = []
            for partition, status, detail in outcomes:
                values = outcome_values(status, detail, now)
                if partition in present:
                    by_status.setdefault(status, []).append({"_p": partition, **values})
                else:
                    new.append({"stream": stream, "partition_key": partition, **values})
            for rows in by_status.values():
                names = [n for n in rows[0] if n != "_p"]
                self.conn.execute(
                    t.update()
                    .where(t.c.stream == stream, t.c.partition_key == sa.bindparam("_p"))
                    .values({n: sa.bindparam(n, type_=t.c[n].type) for n in names}),
                    rows,
                )
            for rows in _same_columns(new):
                self.conn.execute(t.insert(), rows)

    def states(self) -> list[StreamState]:
        """Every sync_state row."""
        t = self.t(SYNC_STATE)
        with self._tx():
            if not sa.inspect(self.conn).has_table(t.name, schema=self.schema):
                return []
            rows = self.conn.execute(
                sa.select(*(t.c[c] for c in SYNC_STATE.column_names)).order_by(
                    t.c.stream, t.c.partition_key
                )
            ).all()
        return list(iter_states([tuple(r) for r in rows]))

    def latest_values(
        self, table: Table, by: str, value: str, order: str, *, every: bool = False
    ) -> dict[Any, Any]:
        """Per `by`, the non-null `value` of its latest row by `order`: one query joining
        the table to its per-`by` maximum of `order` (ties: the greatest value). With
        `every`, the distinct `by` are outer-joined to that, so one without a value is None."""
        t = self.t(table)
        with self._tx():
            if not sa.inspect(self.conn).has_table(t.name, schema=self.schema):
                return {}
            present = t.c[value].is_not(None)
            latest = (
                sa.select(t.c[by].label("k"), sa.func.max(t.c[order]).label("m"))
                .where(present)
                .group_by(t.c[by])
                .subquery()
            )
            found = (
                sa.select(t.c[by], t.c[value])
                .join(latest, sa.and_(t.c[by] == latest.c.k, t.c[order] == latest.c.m))
                .where(present)
            )
            if every:
                keys = sa.select(t.c[by].label("k")).distinct().subquery()
                values = found.subquery()
                found = sa.select(keys.c.k, values.c[value]).outerjoin(
                    values, keys.c.k == values.c[by]
                )
            rows = self.conn.execute(found.order_by(*found.selected_columns)).all()
        return {k: v for k, v in rows}

    def _runs(self, *where: Any) -> list[RunRow]:
        t = self.t(SYNC_RUNS)
        with self._tx():
            if not sa.inspect(self.conn).has_table(t.name, schema=self.schema):
                return []
            rows = self.conn.execute(
                sa.select(*(t.c[c] for c in SYNC_RUNS.column_names))
                .where(*where)
                .order_by(t.c.stream, t.c.started_at)
            ).all()
        return [RunRow.of(tuple(r)) for r in rows]

    def last_runs(self) -> list[RunRow]:
        """Each stream's latest run."""
        t = self.t(SYNC_RUNS)
        latest = t.alias("l")
        newest = (
            sa.select(sa.func.max(latest.c.started_at))
            .where(latest.c.stream == t.c.stream)
            .scalar_subquery()
        )
        return self._runs(t.c.started_at == newest)

    def running_runs(self, stream: str) -> list[RunRow]:
        """The stream's runs still marked running."""
        t = self.t(SYNC_RUNS)
        return self._runs(t.c.stream == stream, t.c.status == "running")

    def table_counts(self, tables: Sequence[Table]) -> dict[str, int]:
        """Row counts of the tables that exist."""
        counts: dict[str, int] = {}
        with self._tx():
            inspector = sa.inspect(self.conn)
            for table in tables:
                if inspector.has_table(table.name, schema=self.schema):
                    t = self.t(table)
                    counts[table.name] = int(
                        self.conn.execute(sa.select(sa.func.count()).select_from(t)).scalar() or 0
                    )
        return counts

    def table_names(self) -> set[str]:
        """The tables of the target's schema (none while the schema does not exist: MySQL
        refuses to list the tables of a database it does not have)."""
        with self._tx():
            inspector = sa.inspect(self.conn)
            if self.schema and self.schema not in inspector.get_schema_names():
                return set()
            return set(inspector.get_table_names(schema=self.schema))

    def catalog_comments(self, names: Sequence[str]) -> dict[tuple[str, str], str | None]:
        """The comments the catalog holds on the tables `names` that exist and their columns."""
        with self._tx():
            catalog = Catalog(self.conn, self.schema, tables=names)
            return catalog_sql(catalog, list(names))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query (demo, status, tests)."""
        with self._tx():
            return [tuple(r) for r in self.conn.exec_driver_sql(sql, tuple(params)).all()]

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement of SQL text, in this thread's transaction (or one of its own)."""
        with self._tx():
            self.conn.exec_driver_sql(sql, tuple(params))

    def stream(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of a read query with `:name` parameters, fetched STREAM_BATCH at a time.

        Runs on this thread's connection, in the caller's transaction when it has one.
        """
        statement = sa.text(sql).bindparams(
            *(sa.bindparam(k, v, type_=_bind_type(v)) for k, v in (params or {}).items())
        )
        result = self.conn.execute(statement, execution_options={"yield_per": STREAM_BATCH})
        for row in result:
            yield tuple(row)

    def read_table(self, table: Table) -> list[dict[str, Any]]:
        """Every row of a table, typed by its declaration (tests and comparisons)."""
        t = self.t(table)
        with self._tx():
            return [dict(r._mapping) for r in self.conn.execute(sa.select(t))]

    def drop_schema(self) -> None:
        """Drop the target's schema and everything in it (a benchmark's or a test's own)."""
        sql = self.sql.drop_schema_sql(self.schema) if self.schema else None
        if sql is None:
            raise ConfigError(f"cannot drop a schema on {self.dialect} ({self.schema!r})")
        with self.engine.begin() as conn:
            conn.execute(sa.text(sql))

    # ---- locks --------------------------------------------------------------------------

    def _lock_connection(self) -> tuple[Engine, Connection]:
        """An engine of its own (no pool) and one autocommit connection for locks: they must
        outlast the loads' transactions and hold no snapshot."""
        engine = sa.create_engine(
            self.engine.url,
            poolclass=NullPool,
            hide_parameters=True,
            connect_args=connect_args(self.engine.url, lock=True),
        )
        try:
            conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError as exc:
            engine.dispose()
            raise unreachable(self.url, exc) from exc
        return engine, conn

    def lock(self, name: str, *, shared: bool = False) -> Lock | None:
        """The lock `name` of this target and schema: a server's session lock, a lock file
        beside a SQLite file, or (any other dialect) a lock file that protects one host."""
        if self.sql.session_locks:
            scoped = scoped_name(self.schema, name)
            try:
                return try_session(self._lock_connection, self.sql, scoped, shared=shared)
            except SQLAlchemyError as exc:  # e.g. the connection cut as the lock was asked for
                raise WarehouseError(
                    f"cannot take the lock {name!r} on the warehouse at {masked_url(self.url)}: "
                    f"{first_line(exc)}; the next run tries again"
                ) from exc
        return file_lock(self.url, self.schema, name)

    def partition_locks(self, name: str) -> PartitionLocks | None:
        """Per-partition session locks of the stream `name`, each claim with the partition's
        cursor; None without server locks."""
        if not self.sql.session_locks:
            return None

        def cursors(conn: Connection, partitions: Sequence[str]) -> StoredCursors:
            return self._cursors(conn, name, partitions)

        return SessionPartitionLocks(
            self._lock_connection, self.sql, scoped_name(self.schema, name), cursors
        )


def _same_columns(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """`rows` grouped by their set of columns (executemany wants one shape)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return list(groups.values())


def _rows(data: pa.Table) -> list[tuple[Any, ...]]:
    """Every row of `data` as a tuple, in order."""
    return list(zip(*(c.to_pylist() for c in data.columns), strict=True))


def _as_asked(
    asked: pa.Table, stored: pa.Table, found: set[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """The distinct keys of `asked` whose stored spelling (`stored`, row for row) is in
    `found`, as `asked` spells them."""
    pairs = zip(_rows(asked), _rows(stored), strict=True)
    return list(dict.fromkeys(a for a, s in pairs if s in found))


def _bind_type(value: Any) -> sa.types.TypeEngine[Any] | None:
    if isinstance(value, datetime):
        return UtcDateTime()
    if isinstance(value, date):
        return sa.Date()
    if isinstance(value, bool):
        return sa.Boolean()
    return None


def _keys_table(schema: pa.Schema, by: Sequence[str], rows: list[tuple[Any, ...]]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in by]
    return pa.table(
        {c: pa.array(list(v), schema.field(c).type) for c, v in zip(by, columns, strict=True)}
    )


__all__ = ["ARROW_TYPES", "SqlWarehouse", "make_engine", "merge_statement"]


def _reject_row(r: Reject) -> dict[str, Any]:
    """The rejects table's row of a record first rejected now."""
    return {
        "reject_id": r.reject_id,
        "stream": r.stream,
        "record_key": r.record_key,
        "reason": r.reason,
        "raw": r.raw,
        "first_seen_at": r.rejected_at,
        "last_seen_at": r.rejected_at,
        "times_seen": 1,
    }
