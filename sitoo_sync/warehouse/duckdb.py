"""DuckDB, the embedded default: native bulk loads through Arrow, one file on disk.

The file is opened when a tick starts and closed when it ends, so a BI tool can open it
between ticks; a long tick (a backfill) lets go of it after a commit once it has held it for
HOLD_SECONDS, stays out GAP_SECONDS, and opens it again on its next use (see `_Turns`). A
window goes in as Arrow columns (`INSERT ... SELECT FROM arrow`), never row by row.
"""

from __future__ import annotations

import functools
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Concatenate, NoReturn, ParamSpec, Protocol, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from sitoo_sync.errors import ConfigError, WarehouseError, first_line
from sitoo_sync.log import get_logger
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.records import Reject
from sitoo_sync.normalize.tables import Kind, Table
from sitoo_sync.warehouse import CANNOT_OPEN, check_duckdb_target, held_file, local_path
from sitoo_sync.warehouse import duckdb_memory as memory
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
)
from sitoo_sync.warehouse.catalog import (
    SYNC_SCHEMA,
    check_revision,
    checks_revision,
    log_recorded,
    records_duckdb,
    revision_row,
    upgrades,
)
from sitoo_sync.warehouse.comments import catalog_duckdb, comment_duckdb
from sitoo_sync.warehouse.duckdb_memory import (
    LIMITS,
    MemoryLimitRaised,
    file_key,
    ran_out_of_memory,
)
from sitoo_sync.warehouse.file_locks import file_lock
from sitoo_sync.warehouse.upgrade_steps import Upgrade, upgrade
from sitoo_sync.warehouse.views import Sql, View, create_views_duckdb, run_backfills_duckdb

log = get_logger(__name__)

DUCKDB_TYPES: dict[Kind, str] = {
    Kind.TEXT: "VARCHAR",
    Kind.INT: "BIGINT",
    Kind.BOOL: "BOOLEAN",
    Kind.MONEY: "DECIMAL(18,2)",
    Kind.DECIMAL: "DECIMAL(18,3)",
    Kind.TIMESTAMP: "TIMESTAMPTZ",
    Kind.DATE: "DATE",
    Kind.JSON: "JSON",
}


#: A tick that has held the file this long lets go of it after its next commit ...
HOLD_SECONDS = 20.0
#: ... and stays out this long, so a reader that retries every second gets in: within about
#: HOLD_SECONDS + GAP_SECONDS + one commit of asking. The pause costs a backfill at most
#: GAP_SECONDS / HOLD_SECONDS of its time (fetching goes on meanwhile).
GAP_SECONDS = 1.0
#: How long a writer (a tick) waits for the file while another process holds it (a BI
#: reader may, briefly), trying again every READ_POLL_SECONDS; it warns after doubling
#: pauses of up to 5 s.
WRITE_WAIT_SECONDS = 60.0
#: How long a read-only open (`status`, a monitoring probe) waits: as long as a tick may
#: hold the file (HOLD_SECONDS, then GAP_SECONDS out, plus a commit), no longer ...
READ_WAIT_SECONDS = HOLD_SECONDS + GAP_SECONDS + 4.0
#: ... trying this often (a writer too), to meet a tick's GAP_SECONDS pause.
READ_POLL_SECONDS = 0.25
#: WAL size at which a commit checkpoints (DuckDB's default is 16MB). Each checkpoint
#: compresses again the last, partly filled row group of every table it appends to (up to
#: 122,880 rows), so small checkpoints during a backfill redo that work many times: replaying
#: a 1M-entry journal backfill's 113 group commits took 16.7 s at 16MB (28 checkpoints, 11.4 s
#: of them) and 10.9-12.3 s at 128MB. The last WAL is checkpointed when the file is let go.
CHECKPOINT_THRESHOLD = "128MB"
#: Two ticks of one process (two streams) create tables in one database: one at a time.
_SCHEMA_LOCK = threading.Lock()

#: Rows a streamed read fetches at a time.
STREAM_BATCH = 10_000
#: A `:name` parameter in SQL text (not a `::cast`).
_PARAM = re.compile(r"(?<![:\w]):([a-z_]+)")

P = ParamSpec("P")
R = TypeVar("R")


def _set_limit(con: duckdb.DuckDBPyConnection, mb: int) -> None:
    """DuckDB's memory limit for the file, for every connection to it in this process."""
    con.execute(f"SET memory_limit = '{mb}MB'")


def q(identifier: str) -> str:
    """A quoted SQL identifier."""
    return '"' + identifier.replace('"', '""') + '"'


#: DuckDB's refusal of a file of a storage version it cannot read (1.x and 2.x wording).
_STORAGE_VERSION = re.compile(
    r"version number (\d+), but we can only read (?:storage )?versions? (?:between )?(\d+)"
    r"(?: and (\d+))?"
)


#: DuckDB's words for a write-ahead log it cannot replay (a damaged `<file>.wal`).
_DAMAGED_WAL = "Failure while replaying WAL file"


def damaged_wal_fix(path: str) -> str:
    """What to do about the file's damaged write-ahead log: without it the file opens as of
    its last checkpoint, and sitoo-sync's cursors, kept in the same file, roll back with
    the rows, so the next run loads again what the log held."""
    return (
        f"move {path}.wal aside: the file then opens as it was at its last checkpoint, "
        "and the next run loads again what the log held (the cursors roll back with it)"
    )


def held_by_another(exc: duckdb.IOException) -> bool:
    """`exc` is DuckDB's refusal of a file another process has open (not any error that
    has "lock" in it: DuckDB 1.x words a damaged file's "block" as an IO error)."""
    return held_file("", str(exc)) is not None


def unopenable(path: str, exc: duckdb.Error) -> duckdb.Error:
    """`exc`, DuckDB's refusal to open the file at `path` (often several lines, with a link),
    as one line of the same type naming the file; for a file of a storage version this
    DuckDB cannot read, which DuckDB wrote it and what to do."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = lines[0] if lines else type(exc).__name__
    if _DAMAGED_WAL in first:
        return type(exc)(f"{CANNOT_OPEN} {path}: {first}; {damaged_wal_fix(path)}")
    found = _STORAGE_VERSION.search(first)
    if found is None:
        return type(exc)(f"{CANNOT_OPEN} {path}: {first}")
    version, low = int(found[1]), int(found[2])
    high = int(found[3]) if found[3] else None
    reads = f"this duckdb {duckdb.__version__} reads {low}" + (f" to {high}" if high else "")
    if version > (high or low):
        return type(exc)(
            f"{CANNOT_OPEN} {path}: it was written by a newer DuckDB (storage version "
            f"{version}; {reads}): upgrade the duckdb package where sitoo-sync runs "
            "(pip install --upgrade duckdb)"
        )
    made = next(
        (
            line[line.index("created with") :].rstrip(".")
            for line in lines[1:2]
            if "created with" in line
        ),
        "",
    )
    return type(exc)(
        f"{CANNOT_OPEN} {path}: it was written by an older DuckDB (storage version {version}"
        f"{'; ' + made if made else ''}; {reads}): EXPORT DATABASE with that DuckDB and "
        "IMPORT DATABASE into a new file with this one, or point SITOO_TARGET_URL at a new file"
    )


def duckdb_path(url: str) -> str:
    """The database path in a `duckdb:///path` URL (`:memory:` allowed)."""
    prefix = "duckdb:///"
    if not url.startswith(prefix):
        raise ConfigError(
            f"SITOO_TARGET_URL: not a DuckDB URL: {url!r} (use duckdb:///file.duckdb)"
        )
    path = url[len(prefix) :]
    if not path:
        raise ConfigError("SITOO_TARGET_URL: DuckDB URL has no file path (duckdb:///sitoo.duckdb)")
    return path


class _Member(Protocol):
    """A warehouse on the file: what `_Turns` needs of it."""

    def close(self) -> None: ...

    def connected(self) -> bool: ...


class _Turns:
    """When the threads of this process may use a file, and when it is let go.

    One per file and process, shared by every warehouse on it (the service's streams tick
    side by side, each with a warehouse of its own, all on the process's one database
    instance): DuckDB lets go of the file only when every connection to it is closed, so
    letting go is the file's business, not one warehouse's.

    Every use of a connection (a statement, or a whole transaction) counts as one user.
    HOLD_SECONDS after the file was opened (or a commit after that) a drain starts, whether
    the file is in use or not: a tick may hold it while it only fetches, or write only
    statements of their own, and commit nothing for minutes. New users wait (at most
    `wait_seconds`, so nothing can deadlock on it), and the last user to leave closes every
    connection of every warehouse on the file and sleeps GAP_SECONDS, everyone waiting
    meanwhile, then lets them in again; the next use reopens the file. When no one uses the
    file as the drain starts, the timer that started it lets go of it. Only a moment with
    no transaction open on any thread closes it, so no commit is lost. An in-memory
    database (`releasable` False) is never let go: closing it would lose it, and no other
    process can read it anyway.
    """

    def __init__(self, *, releasable: bool = True, wait_seconds: float = 5.0) -> None:
        self._releasable = releasable
        self._members: weakref.WeakSet[_Member] = weakref.WeakSet()
        self._wait = wait_seconds
        self._cond = threading.Condition()
        self._users = 0
        self._draining = False
        self._releasing = False
        self._local = threading.local()
        self.opened_at: float | None = None  # set when the process opens the file
        self._hold = 0  # counts the file's openings: a timer of an earlier one does nothing

    def join(self, member: _Member) -> None:
        """`member` uses the file too: it is closed with the others when the file is let go."""
        with self._cond:
            self._members.add(member)

    def opening(self) -> None:
        """A warehouse connects: the file's hold starts now unless it is open already, and
        a drain HOLD_SECONDS later (a daemon timer: a `run --once` never waits for it)."""
        with self._cond:
            members = list(self._members)
            if self.opened_at is not None and any(m.connected() for m in members):
                return
            self.opened_at = time.monotonic()
            self._hold += 1
            hold = self._hold
        if self._releasable:
            timer = threading.Timer(HOLD_SECONDS, self._due, args=(hold,))
            timer.daemon = True
            timer.start()

    def _due(self, hold: int) -> None:
        """The hold `hold` has lasted HOLD_SECONDS: drain, and let go now if no one uses the
        file (else the last user to leave does)."""
        with self._cond:
            if hold != self._hold or self._releasing:
                return
            self._draining = True
            if self._users:
                return
            self._releasing = True
        self._let_go()

    def last_open(self, member: _Member) -> bool:
        """`member` has the file open and no other warehouse of this process does: its
        closing closes the file (and checkpoints it)."""
        with self._cond:
            members = list(self._members)
        return member.connected() and not any(m.connected() for m in members if m is not member)

    def _release(self) -> None:
        with self._cond:
            members = list(self._members)
        for member in members:
            member.close()

    @contextmanager
    def use(self) -> Iterator[None]:
        """Hold the file for a statement or a transaction (nested uses join the outer)."""
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        with self._cond:
            deadline = time.monotonic() + self._wait
            while True:
                if self._releasing:  # bounded: closing plus GAP_SECONDS
                    self._cond.wait()
                    continue
                left = deadline - time.monotonic()
                if not self._draining or left <= 0:
                    break
                self._cond.wait(left)
            self._users += 1
        self._local.depth = 1
        try:
            yield
        finally:
            self._local.depth = 0
            self._leave()

    def held(self) -> bool:
        """This thread uses the file already (a transaction, or an outer call)."""
        return bool(getattr(self._local, "depth", 0))

    def committed(self) -> None:
        """A transaction committed: time to let readers in when the file was held too long."""
        opened = self.opened_at
        if self._releasable and opened is not None and time.monotonic() - opened >= HOLD_SECONDS:
            with self._cond:
                self._draining = True

    def _leave(self) -> None:
        with self._cond:
            self._users -= 1
            if not self._draining or self._users:
                return
            self._releasing = True  # everyone waits until the file is let go (bounded)
        self._let_go()

    def _let_go(self) -> None:
        """Close every member's connections, stay out GAP_SECONDS, then let users in again
        (`_releasing` is set: no one uses the file meanwhile). When every member closed its
        connections already (its tick ended), only the hold ends."""
        try:
            with self._cond:
                members = list(self._members)
            if any(m.connected() for m in members):
                held = time.monotonic() - (self.opened_at or 0.0)
                self._release()
                log.info("warehouse_released", held_seconds=round(held, 1), gap_seconds=GAP_SECONDS)
                time.sleep(GAP_SECONDS)
        finally:
            with self._cond:
                self.opened_at = None
                self._releasing = self._draining = False
                self._cond.notify_all()


#: Each file's turns, shared by the warehouses of this process on it (kept while one is).
_FILE_TURNS: weakref.WeakValueDictionary[str, _Turns] = weakref.WeakValueDictionary()
_FILE_TURNS_LOCK = threading.Lock()


def _turns_of(key: str) -> _Turns:
    """The turns of the file `key` (file_key) in this process; an in-memory database's are
    its own, and never let it go."""
    if key.startswith(":"):
        return _Turns(releasable=False)
    with _FILE_TURNS_LOCK:
        turns = _FILE_TURNS.get(key)
        if turns is None:
            turns = _FILE_TURNS[key] = _Turns()
        return turns


def _turn(
    method: Callable[Concatenate[DuckDBWarehouse, P], R],
) -> Callable[Concatenate[DuckDBWarehouse, P], R]:
    """Run `method` as one use of the file (see `_Turns`). When it is the thread's only
    use (no transaction, no outer call) and it ran out of DuckDB's memory, raise the limit
    and run it again: each such method is one statement, statements that leave the same
    state when run twice, or a transaction of its own (a statement or a transaction that
    ran out has changed nothing). An autocommitted statement whose commit failed is not run
    again (it may have landed: duckdb_memory.py); the next call has the raised limit."""

    def inner(self: DuckDBWarehouse, /, *args: P.args, **kwargs: P.kwargs) -> R:
        if self._turns.held():  # an outer call or transaction runs again, if anything does
            with self._turns.use():
                return method(self, *args, **kwargs)
        while True:
            seen = LIMITS.of(self._key)
            try:
                with self._turns.use():
                    return method(self, *args, **kwargs)
            except duckdb.Error as exc:
                if not ran_out_of_memory(exc):
                    raise
                raised = self._raise_memory_limit(seen, exc)
                if raised is None or not isinstance(exc, duckdb.OutOfMemoryException):
                    raise

    functools.update_wrapper(inner, method)
    return inner


class DuckDBWarehouse(CapabilityFlags, ChildReplacement):
    """The native DuckDB target; `open_connection()` ... `close()` brackets one tick."""

    errors: tuple[type[BaseException], ...] = (duckdb.Error,)
    capabilities = Capabilities(
        dialect="duckdb",
        concurrent_loads=True,  # MVCC: transactions on duplicate connections run side by side
        in_process=True,
        comments=True,
        shared_locks=False,  # one file, one writing process: a lock file beside it
        schemas=False,
        enforced_keys=True,
    )

    def __init__(
        self, url: str, *, open_timeout_seconds: float | None = None, read_only: bool = False
    ) -> None:
        self.url = url
        self.path = duckdb_path(url)
        # A missing directory is a typo, not a place to create; a file not DuckDB's is
        # refused before DuckDB or a lock file touches it.
        check_duckdb_target(url)
        #: How long opening waits for a file another process holds.
        self.open_wait_seconds = (
            open_timeout_seconds
            if open_timeout_seconds is not None
            else READ_WAIT_SECONDS
            if read_only
            else WRITE_WAIT_SECONDS
        )
        self._nesting = Nesting()
        self._cons: PerThread[duckdb.DuckDBPyConnection] = PerThread(
            self._connect, lambda main: main.cursor(), lambda c: c.close()
        )
        # One thread: a window's insert is too small to gain from more, and on a small host
        # the sync's own fetch thread needs the other core (bench: 2.9x vs 3.1x the floor,
        # peak RSS 240 vs 256 MB). BI readers open their own connections with their own.
        #
        # DuckDB's buffer pool defaults to 80 % of the host's memory and keeps what a tick
        # wrote cached in it, so the process grew with the history loaded (a 1M-entry journal
        # backfill peaked at 455-505 MB, 100k entries at 301 MB). A small limit keeps it flat;
        # what does not fit spills to the file's temp directory. Loading was not slower
        # with it (bench --journal-scale), nor is `verify` over a year of a chain. Work that
        # needs more raises it (duckdb_memory.py). (32 MB took ~30 MB off a 1M-entry
        # backfill's peak but cost it 8-18 % more time: DuckDB compresses what it spills to
        # its temp file with zstd.)
        self._key = file_key(self.path)
        self._turns = _turns_of(self._key)
        self._turns.join(self)
        self._config: dict[str, str | bool | int | float | list[str]] = {
            "threads": 1,
            "memory_limit": f"{memory.MEMORY_LIMIT_MB}MB",
            "checkpoint_threshold": CHECKPOINT_THRESHOLD,
        }
        self._read_only = read_only  # `status`: reads, and never creates the file
        self._local = local_path(url) is not None  # not `:memory:`, not MotherDuck

    # ---- connection -------------------------------------------------------------------

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """This thread's connection to the file (a duplicate of the first), opened on use."""
        return self._cons.get()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        started = time.monotonic()
        deadline = started + self.open_wait_seconds
        # Tried every READ_POLL_SECONDS, a writer too: another process's tick lets go of the
        # file for only GAP_SECONDS, which tries 5 s apart missed one time in three. A writer
        # warns as often as it used to try (0.1 s, doubling to 5 s); a reader once.
        warn_in, warn_at = 0.1, started
        while True:
            try:
                con = duckdb.connect(self.path, read_only=self._read_only, config=self._config)
            except duckdb.Error as exc:
                # Another process (a BI tool, another tick) holds the file lock: wait for it.
                # Anything else (not a DuckDB file, no permission) waiting cannot cure.
                if not isinstance(exc, duckdb.IOException) or not held_by_another(exc):
                    raise unopenable(self.path, exc) from exc
                now = time.monotonic()
                if now >= deadline:
                    self._gave_up(exc)
                if now >= warn_at:
                    warn_at = deadline if self._read_only else now + warn_in
                    log.warning(
                        "warehouse_busy",
                        path=self.path,
                        error=str(exc),
                        waited_seconds=round(now - started, 1),
                        gives_up_after_seconds=self.open_wait_seconds,
                    )
                    warn_in = min(warn_in * 2, 5.0)
                time.sleep(READ_POLL_SECONDS)
                continue
            self._turns.opening()
            return self._with_raised_limit(con)

    def _gave_up(self, exc: duckdb.IOException) -> NoReturn:
        """Raise `exc`, the file still held when the wait ended, as one line naming the
        process that holds it and what lets go of it (not DuckDB's advice to open the file
        read-only): for a reader (`status`) a WarehouseError; a tick's still the target's
        own error, which ends it as any warehouse failure does."""
        line = held_file(self.path, str(exc), waited=self.open_wait_seconds)
        if line is None:
            raise exc
        if self._read_only:
            raise WarehouseError(line) from None
        raise duckdb.IOException(line) from exc

    def _with_raised_limit(self, con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
        """`con`, under the file's limit when it was raised. Set after connecting: every
        connection's config is the same, as DuckDB demands of connections to an open file
        (another warehouse of this process on it, another stream's tick). Set again until
        it holds: a raise recorded meanwhile by another thread may have been set before
        this connection's SET, which would have lowered it."""
        applied = memory.MEMORY_LIMIT_MB
        try:
            while (mb := LIMITS.of(self._key)) != applied:
                _set_limit(con, mb)
                applied = mb
        except BaseException:
            con.close()
            raise
        return con

    def allow_big_reads(self) -> None:
        """Raise DuckDB's memory limit for this file to BIG_READ_MEMORY_LIMIT_MB, for the
        rest of this process (verify's reads over a year of a chain)."""
        with self._turns.use():
            con = self.con  # (opened, if it must be, before the limits' lock)
            LIMITS.lift(self._key, memory.BIG_READ_MEMORY_LIMIT_MB, lambda mb: _set_limit(con, mb))

    def _raise_memory_limit(self, seen_mb: int, exc: BaseException) -> int | None:
        """After work ran out of memory under a limit of `seen_mb` (`exc`): the limit to
        run it again under (doubled, or raised by another thread meanwhile), or None: at
        the ceiling, or the database was invalidated (a commit failed midway)."""
        with self._turns.use():  # before the limits' lock: a drain never waits on it
            con = self.con  # (opened, if it must be, before the limits' lock)
            try:
                raised = LIMITS.raise_after(self._key, seen_mb, lambda mb: _set_limit(con, mb))
            except duckdb.FatalException:
                log.error(
                    "duckdb_invalidated",
                    memory_limit_mb=seen_mb,
                    next_memory_limit_mb=LIMITS.of(self._key),
                    error=first_line(exc),
                )
                return None
        if raised is None:
            return None
        mb, here = raised
        if here:
            log.warning(
                "duckdb_memory_limit_raised",
                from_mb=seen_mb,
                to_mb=mb,
                error=first_line(exc),
            )
        return mb

    def close(self) -> None:
        """Close the file so other processes can open it; the last writer of this process
        to close it checkpoints it first (`_checkpoint`)."""
        if not self._read_only and self._local and self._turns.last_open(self):
            self._checkpoint()
        self._cons.close_all()

    def _checkpoint(self) -> None:
        """Move the write-ahead log into the file, as closing it would, but say when that
        fails: DuckDB's own checkpoint at close fails silently (a full disk), leaving a
        log that grows with every tick, is replayed at every opening, and that no one was
        told of. Nothing is lost then: the log holds every commit until a checkpoint has
        room. Not under `_Turns.use`: `_let_go` closes every member while no one may use
        the file."""
        try:
            self.con.execute("CHECKPOINT")
        except duckdb.Error as exc:
            log.warning(
                "checkpoint_failed",
                path=self.path,
                error=first_line(exc),
                detail="the commits stay in the write-ahead log (.wal) beside the file and "
                "are replayed when it is opened again; make room on its file system",
            )

    def connected(self) -> bool:
        """True while this warehouse has a connection to the file open."""
        return self._cons.opened()

    # ---- schema -----------------------------------------------------------------------

    @_turn
    def ensure_schema(
        self, tables: Sequence[Table], views: Sequence[View] = (), *, declared: Sequence[Table] = ()
    ) -> None:
        """Create missing tables; add columns a declaration gained since (never drop); keep
        `views` current (created again only when their definition changed). A writer's
        upkeep refuses a warehouse of a newer schema revision before it changes anything
        (`SchemaTooNew`); a tick's brings one of an older revision up to this one
        (catalog.py; its steps, upgrade_steps.py, run over `declared`)."""
        with _SCHEMA_LOCK:  # DDL of two transactions at once is a catalog conflict
            self._ensure_schema(schema_tables(tables, views), views, declared)

    def _ensure_schema(
        self, tables: Sequence[Table], views: Sequence[View], declared: Sequence[Table]
    ) -> None:
        con = self.con
        existing: dict[str, set[str]] = {}
        for table_name, column_name in con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema()"
        ).fetchall():
            existing.setdefault(table_name, set()).add(column_name)
        checks = checks_revision(tables)
        recorded, revision = records_duckdb(
            con,
            views=SYNC_VIEWS.name if views and SYNC_VIEWS.name in existing else None,
            revisions=SYNC_SCHEMA.name if checks and SYNC_SCHEMA.name in existing else None,
        )
        if checks:
            check_revision(revision)  # before anything is made or written
        for table in tables:
            if table.name not in existing:
                cols = [
                    f"{q(c.name)} {DUCKDB_TYPES[c.kind]}{'' if c.nullable else ' NOT NULL'}"
                    for c in table.columns
                ]
                if not table.is_child:
                    # Child rows are unique by construction (replaced as a set per parent,
                    # positions from the list); an index on them would cost a third of a
                    # backfill's time, as `sitoo-sync bench` showed.
                    cols.append(f"PRIMARY KEY ({', '.join(q(k) for k in table.key)})")
                con.execute(f"CREATE TABLE IF NOT EXISTS {q(table.name)} ({', '.join(cols)})")
                log.info("table_created", table=table.name)
        added = [
            (table, col)
            for table in tables
            if table.name in existing
            for col in table.columns
            if col.name not in existing[table.name]
        ]
        if added:
            # A column and what old rows hold in it (their views' backfills) land together.
            with self.transaction():
                for table, col in added:
                    con.execute(
                        f"ALTER TABLE {q(table.name)} ADD COLUMN {q(col.name)} "
                        f"{DUCKDB_TYPES[col.kind]}"
                    )
                    log.info("column_added", table=table.name, column=col.name)
                names = {*existing, *(t.name for t in tables)}
                run_backfills_duckdb(con, views, [(t.name, c.name) for t, c in added], names)
        comment_duckdb(con, tables)
        if views:
            create_views_duckdb(con, views, recorded)
        if checks and views and upgrades(revision):
            self._upgrade(revision, existing, views, declared or tables)

    def _upgrade(
        self,
        revision: int | None,
        before: Mapping[str, set[str]],
        views: Sequence[View],
        declared: Sequence[Table],
    ) -> None:
        """Run the upgrade steps since `revision` over the `declared` tables as they were
        `before` the upkeep, and record this code's revision, in one transaction."""
        con = self.con

        def run(statement: str) -> int:
            result = con.execute(statement).fetchone()
            return int(result[0]) if result else 0

        with self.transaction():
            sql = Sql("duckdb", q)
            up = Upgrade(sql=sql, before=before, views=views, declared=declared, run=run)
            upgrade(revision, up)
            row = revision_row()
            con.execute(
                f"INSERT INTO {q(SYNC_SCHEMA.name)} ({', '.join(map(q, row))}) "
                f"VALUES ({', '.join('?' for _ in row)}) ON CONFLICT DO NOTHING",
                list(row.values()),
            )
        log_recorded(revision)

    # ---- loading ----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN ... COMMIT, or ROLLBACK on any exception; an inner one joins the outer."""
        with self._turns.use(), self._nesting.enter(self._begin):
            yield

    def in_transaction(self) -> bool:
        """True inside `transaction()` on this thread."""
        return self._nesting.active()

    def conflict(self, exc: BaseException) -> str | None:
        """The conflict "out of memory" when a transaction ran out of DuckDB's memory limit
        and the limit was raised since (`MemoryLimitRaised`: running it again can succeed);
        otherwise None: one process writes a DuckDB file (its lock sees to that), so two
        writers never meet in it."""
        return "out of memory" if isinstance(exc, MemoryLimitRaised) else None

    def duplicate_key(self, exc: BaseException) -> bool:
        """A constraint error: a key stored already (or a NOT NULL broken, which the load
        run again with its stored keys read meets again and raises)."""
        return isinstance(exc, duckdb.ConstraintException)

    @contextmanager
    def _begin(self) -> Iterator[None]:
        con = self.con
        seen = LIMITS.of(self._key)
        con.begin()
        try:
            yield
        except BaseException as exc:
            con.rollback()
            self._again_after(exc, seen)
            raise
        try:
            con.commit()  # one that fails has rolled back, or invalidated the database
        except duckdb.Error as exc:
            self._again_after(exc, seen)
            raise
        self._turns.committed()

    def _again_after(self, exc: BaseException, seen_mb: int) -> None:
        """A transaction begun under a limit of `seen_mb` failed with `exc` and is over:
        raises MemoryLimitRaised when it ran out of memory and can run again."""
        if ran_out_of_memory(exc):
            mb = self._raise_memory_limit(seen_mb, exc)
            if mb is not None:
                raise MemoryLimitRaised(f"{exc} (memory limit {seen_mb} -> {mb} MB)") from exc

    def _execute(
        self, sql: str, batch: pa.Table, params: Mapping[str, Any] | None = None
    ) -> duckdb.DuckDBPyConnection:
        """Run `sql`, in which `{batch}` stands for the Arrow table `batch`.

        DuckDB reads a local Arrow table by its variable name (a replacement scan): about
        1 ms less per statement than registering and unregistering a view, which adds up
        when many small register partitions load one after another.
        """
        sitoo_batch = batch  # noqa: F841  # read by DuckDB by name, see above
        return self.con.execute(sql.replace("{batch}", "sitoo_batch"), params)

    def _fetch_arrow(self, sql: str, batch: pa.Table) -> pa.Table:
        """Like `_execute`, returning the result as an Arrow table."""
        sitoo_batch = batch  # noqa: F841  # read by DuckDB by name, see _execute
        return self.con.sql(sql.replace("{batch}", "sitoo_batch")).to_arrow_table()

    def _insert_sql(self, table: Table, batch: str = "{batch}") -> str:
        names = ", ".join(q(c) for c in table.column_names)
        return f"INSERT INTO {q(table.name)} ({names}) SELECT {names} FROM {batch}"

    @_turn
    def existing_keys(self, table: Table, keys: pa.Table) -> pa.Table:
        """The subset of `keys` (columns of `table.key`) already present in `table`."""
        if keys.num_rows == 0:
            return keys
        cols = ", ".join(f"k.{q(c)}" for c in table.key)
        match = " AND ".join(f"t.{q(c)} = k.{q(c)}" for c in table.key)
        return self._fetch_arrow(
            f"SELECT {cols} FROM {{batch}} k WHERE EXISTS "
            f"(SELECT 1 FROM {q(table.name)} t WHERE {match})",
            keys,
        )

    @_turn
    def insert(self, table: Table, data: pa.Table) -> None:
        """Plain bulk INSERT of rows known to be new."""
        if data.num_rows == 0:
            return
        # One chunk: a group commit's table is the chunks of its windows, and DuckDB's scan
        # of 25 chunks cost a group of seven inserts 38 ms against 25 ms for one chunk each.
        self._execute(self._insert_sql(table), data.combine_chunks())

    @_turn
    def upsert(self, table: Table, data: pa.Table) -> None:
        """INSERT ... ON CONFLICT (key) DO UPDATE, from one Arrow batch."""
        if data.num_rows == 0:
            return
        updates = ", ".join(
            f"{q(c)} = excluded.{q(c)}"
            for c in table.column_names
            if c not in table.key and c not in table.keep_on_update
        )
        conflict = ", ".join(q(k) for k in table.key)
        action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        self._execute(f"{self._insert_sql(table)} ON CONFLICT ({conflict}) {action}", data)

    @_turn
    def superseded_keys(self, table: Table, data: pa.Table) -> pa.Table:
        """Keys of stored rows that share a `replace_group` with `data` but not its keys."""
        group = " AND ".join(f"t.{q(c)} = b.{q(c)}" for c in table.replace_group)
        same = " AND ".join(f"n.{q(c)} = t.{q(c)}" for c in table.key)
        cols = ", ".join(f"t.{q(c)}" for c in table.key)
        wanted = data.select([*table.key, *table.replace_group])
        return self._fetch_arrow(
            f"SELECT DISTINCT {cols} FROM {q(table.name)} t JOIN {{batch}} b ON {group} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {{batch}} n WHERE {same})",
            wanted,
        )

    @_turn
    def delete_rows(self, table: Table, keys: pa.Table, by: tuple[str, ...]) -> None:
        """Delete the rows of `table` whose `by` columns match a row of `keys`."""
        if keys.num_rows == 0:
            return
        match = " AND ".join(f"{q(table.name)}.{q(k)} = p.{q(k)}" for k in by)
        self._execute(
            f"DELETE FROM {q(table.name)} USING {{batch}} p WHERE {match}", keys.select(list(by))
        )

    @_turn
    def mark_missing(
        self,
        table: Table,
        scope: Mapping[str, Any],
        present: Sequence[tuple[Any, ...]],
        at: datetime,
    ) -> int:
        """Stamp `missing_since` on rows of `scope` not among `present` keys, and clear it
        on rows that are (listed again); the count stamped.

        The listed keys are an Arrow table the statements join (a replacement scan, see
        `_execute`): an `IN` list of one bound pair per product took seconds to bind."""
        scoped = " AND ".join(f"t.{q(c)} = ?" for c in scope) or "TRUE"
        match = " AND ".join(f"p.{q(c)} = t.{q(c)}" for c in table.key)
        sitoo_present = pa.table(  # noqa: F841  # read by DuckDB by name
            {c: pa.array([row[i] for row in present]) for i, c in enumerate(table.key)}
        )
        listed = f"EXISTS (SELECT 1 FROM sitoo_present p WHERE {match})" if present else "FALSE"
        name = q(table.name)
        self.con.execute(
            f"UPDATE {name} t SET missing_since = NULL "
            f"WHERE t.missing_since IS NOT NULL AND {scoped} AND {listed}",
            list(scope.values()),
        )
        row = self.con.execute(
            f"UPDATE {name} t SET missing_since = ? "
            f"WHERE t.missing_since IS NULL AND {scoped} AND NOT {listed} RETURNING 1",
            [at, *scope.values()],
        ).fetchall()
        return len(row)

    @_turn
    def distinct_values(self, table: Table, column: str) -> list[Any]:
        """DISTINCT values of a column, [] before the table exists."""
        if not self._has_table(table.name):
            return []
        rows = self.con.execute(f"SELECT DISTINCT {q(column)} FROM {q(table.name)}").fetchall()
        return [r[0] for r in rows]

    @_turn
    def add_rejects(self, rejects: Sequence[Reject]) -> set[str]:
        """Upsert rejects on their stable id; a repeat bumps times_seen and last_seen_at.
        The ids new to the table or with a new reason, read first (only when there are
        rejects: a window without any costs no statement)."""
        if not rejects:
            return set()
        unique = {r.reject_id: r for r in rejects}
        rows = [
            (rid, r.stream, r.record_key, r.reason, r.raw, r.rejected_at, r.rejected_at, 1)
            for rid, r in unique.items()
        ]
        batch = rows_to_arrow(REJECTS, rows)
        fresh = self._fetch_arrow(
            "SELECT b.reject_id FROM {batch} b LEFT JOIN rejects r ON r.reject_id = b.reject_id "
            "WHERE r.reject_id IS NULL OR r.reason IS DISTINCT FROM b.reason",
            batch.select(["reject_id", "reason"]),
        )
        self._execute(
            f"{self._insert_sql(REJECTS)} "
            "ON CONFLICT (reject_id) DO UPDATE SET reason = excluded.reason, "
            "last_seen_at = excluded.last_seen_at, times_seen = rejects.times_seen + 1",
            batch,
        )
        return {str(rid) for rid in fresh.column(0).to_pylist()}

    # ---- state ------------------------------------------------------------------------

    @_turn
    def get_cursor(self, stream: str, partition: str) -> str | None:
        """The cursor of (stream, partition), or None."""
        row = self.con.execute(
            "SELECT cursor FROM sync_state WHERE stream = ? AND partition_key = ?",
            [stream, partition],
        ).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    @_turn
    def get_cursors(self, stream: str) -> StoredCursors:
        """Every stored cursor of `stream`, by partition, and its resets, in one query."""
        rows = self.con.execute(
            "SELECT partition_key, cursor, last_status, last_status_detail, windows_loaded "
            "FROM sync_state WHERE stream = ?",
            [stream],
        ).fetchall()
        return StoredCursors.of(rows)

    @_turn
    def stored_keys(self, table: Table, keys: pa.Table) -> set[tuple[Any, ...]]:
        """Which of one partition's `keys` `table` holds, looked up by each key's range.

        Range bounds are constants DuckDB prunes row groups with: about 2 ms, against 6 ms
        for `existing_keys`' join, which reads the whole table.
        """
        if keys.num_rows == 0:
            return set()
        bounds = [pc.min_max(keys.column(c)) for c in table.key]
        found = self.con.execute(
            f"SELECT {', '.join(q(c) for c in table.key)} FROM {q(table.name)} WHERE "
            + " AND ".join(f"{q(c)} BETWEEN ? AND ?" for c in table.key),
            [v.as_py() for b in bounds for v in (b["min"], b["max"])],
        ).fetchall()
        asked = set(zip(*(keys.column(c).to_pylist() for c in table.key), strict=True))
        return {tuple(k) for k in found} & asked

    @_turn
    def keys_since(
        self, table: Table, column: str, since: datetime, limit: int
    ) -> set[tuple[Any, ...]] | None:
        """The keys of rows whose `column` is at or after `since` (None past `limit`).

        Rows are appended about in `column`'s order, so zone maps skip all but the newest
        row groups: one query of 8-13 ms for a 201-register tick instead of 201 queries.
        """
        found = self.con.execute(
            f"SELECT {', '.join(q(c) for c in table.key)} FROM {q(table.name)} "
            f"WHERE {q(column)} >= ? LIMIT ?",
            [since, limit + 1],
        ).fetchall()
        if len(found) > limit:
            return None
        return {tuple(k) for k in found}

    @_turn
    def set_cursor(
        self, stream: str, partition: str, cursor: str | None, *, rows: int, windows: int = 1
    ) -> None:
        """Move the cursor, adding `rows` and `windows` to the partition's counts."""
        self._write_state(
            stream,
            partition,
            {"cursor": cursor, "updated_at": datetime.now(UTC)},
            added={"rows_loaded": rows, "windows_loaded": windows},
        )

    @_turn
    def set_cursors(self, stream: str, moves: Sequence[CursorMove]) -> None:
        """Many partitions' cursors in two statements: an UPDATE and an INSERT of new rows.

        A group commit of 10-20 registers' first windows wrote their cursors one by one, an
        UPDATE and an INSERT each, in the one thread that commits: in a 201-register backfill
        at concurrency 32, 603 of its 951 statements and 1.3 of the 2.5 s that thread spent
        in DuckDB (the tick's wall time moved less: its Python work bounds it).
        """
        if len({m.partition for m in moves}) < len(moves) or len(moves) < 2:
            # (One partition twice: the UPDATE ... FROM would pick one.) In one transaction:
            # the counts are added to, so the moves run whole or not at all (see `_turn`).
            with self.transaction():
                for m in moves:
                    self.set_cursor(stream, m.partition, m.cursor, rows=m.rows, windows=m.windows)
            return
        batch = pa.table(
            {
                "partition_key": pa.array([m.partition for m in moves], pa.string()),
                "cursor": pa.array([m.cursor for m in moves], pa.string()),
                "rows_loaded": pa.array([m.rows for m in moves], pa.int64()),
                "windows_loaded": pa.array([m.windows for m in moves], pa.int64()),
            }
        )
        self._state_rows(
            batch,
            "cursor = b.cursor, updated_at = $now, "
            "rows_loaded = coalesce(sync_state.rows_loaded, 0) + b.rows_loaded, "
            "windows_loaded = coalesce(sync_state.windows_loaded, 0) + b.windows_loaded",
            columns="partition_key, cursor, updated_at, rows_loaded, windows_loaded",
            values="partition_key, cursor, $now, rows_loaded, windows_loaded",
            params={"stream": stream, "now": datetime.now(UTC)},
        )

    @_turn
    def record_outcome(
        self, stream: str, partition: str, status: str, detail: str | None = None
    ) -> None:
        """Stamp how the tick ended; success and failure times are kept apart."""
        self._write_state(stream, partition, outcome_values(status, detail, datetime.now(UTC)))

    @_turn
    def record_outcomes(self, stream: str, outcomes: Sequence[Outcome]) -> None:
        """Many partitions' outcomes in two statements: an UPDATE and an INSERT of new rows.

        A tick in which most registers have nothing new ends with one of these instead of an
        UPDATE per register (about 0.5 ms each, taken in turn with the loads).
        """
        if len(outcomes) <= 1:  # one UPDATE (by key) does it
            for partition, status, detail in outcomes:
                self.record_outcome(stream, partition, status, detail)
            return
        now = datetime.now(UTC)
        rows = [{"partition_key": p, **outcome_values(s, d, now)} for p, s, d in outcomes]
        stamp = pa.timestamp("us", tz="UTC")
        batch = pa.table(
            {
                "partition_key": pa.array([r["partition_key"] for r in rows], pa.string()),
                **{
                    c: pa.array([r.get(c) for r in rows], pa.string())
                    for c in ("last_status", "last_status_detail", "last_error")
                },
                **{
                    c: pa.array([r.get(c) for r in rows], stamp)
                    for c in ("last_success_at", "last_error_at")
                },
            }
        )
        # A column an outcome leaves alone is NULL in the batch: the stored value stays.
        kept = ("last_success_at", "last_error_at", "last_error")
        sets = ", ".join(
            [f"{c} = b.{c}" for c in ("last_status", "last_status_detail")]
            + [f"{c} = coalesce(b.{c}, sync_state.{c})" for c in kept]
        )
        names = ", ".join(batch.column_names)
        self._state_rows(batch, sets, columns=names, values=names, params={"stream": stream})

    def _state_rows(
        self, batch: pa.Table, sets: str, *, columns: str, values: str, params: dict[str, Any]
    ) -> None:
        """`sets` on the sync_state rows of `batch`'s partitions (one row each) of the stream
        `$stream`, in one UPDATE ... FROM it; then the partitions it did not find inserted
        (`values` into `columns`, besides the stream). When the UPDATE found every partition
        the INSERT is skipped: ~1.5 ms a statement, in two writes of each group commit. Both
        in one transaction (the caller's, when it has one): `sets` may add to counts, so the
        pair runs whole or not at all, and can run again (see `_turn`)."""
        with self.transaction():
            updated = self._execute(
                f"UPDATE sync_state SET {sets} FROM {{batch}} b "
                "WHERE sync_state.stream = $stream AND sync_state.partition_key = b.partition_key",
                batch,
                params,
            ).fetchone()
            if updated is not None and updated[0] == batch.num_rows:
                return
            self._execute(
                f"INSERT INTO sync_state (stream, {columns}) SELECT $stream, {values} "
                "FROM {batch} b WHERE NOT EXISTS (SELECT 1 FROM sync_state s "
                "WHERE s.stream = $stream AND s.partition_key = b.partition_key)",
                batch,
                params,
            )

    def _write_state(
        self,
        stream: str,
        partition: str,
        values: Mapping[str, object],
        *,
        added: Mapping[str, int] | None = None,
    ) -> None:
        """Set `values` and add `added` to counters on the (stream, partition) row.

        An UPDATE, then an INSERT only when the row is new: DuckDB's `ON CONFLICT` costs
        about 2 ms against 0.5 ms for an UPDATE by key, paid twice per register partition
        on every tick (`sitoo-sync bench --journals`).
        """
        added = added or {}
        sets = [f"{c} = ?" for c in values] + [f"{c} = coalesce({c}, 0) + ?" for c in added]
        params = [*values.values(), *added.values()]
        updated = self.con.execute(
            f"UPDATE sync_state SET {', '.join(sets)} WHERE stream = ? AND partition_key = ?",
            [*params, stream, partition],
        ).fetchone()
        if updated is not None and updated[0]:
            return
        names = ["stream", "partition_key", *values, *added]
        self.con.execute(
            f"INSERT INTO sync_state ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
            [stream, partition, *params],
        )

    @_turn
    def states(self) -> list[StreamState]:
        """Every sync_state row, ordered by stream and partition."""
        if not self._has_table(SYNC_STATE.name):
            return []
        names = ", ".join(q(c) for c in SYNC_STATE.column_names)
        rows = self.con.execute(
            f"SELECT {names} FROM sync_state ORDER BY stream, partition_key"
        ).fetchall()
        return list(iter_states(rows))

    @_turn
    def latest_values(
        self, table: Table, by: str, value: str, order: str, *, every: bool = False
    ) -> dict[Any, Any]:
        """Per `by`, the non-null `value` of its latest row by `order` (one aggregate); with
        `every`, a `by` without one too (None): the rows are filtered in the aggregate."""
        if not self._has_table(table.name):
            return {}
        present = f"{q(value)} IS NOT NULL AND {q(order)} IS NOT NULL"
        latest = f"arg_max({q(value)}, {q(order)})"
        rows = self.con.execute(
            f"SELECT {q(by)}, {latest} FILTER (WHERE {present}) FROM {q(table.name)} "
            f"GROUP BY {q(by)}"
            if every
            else f"SELECT {q(by)}, {latest} FROM {q(table.name)} WHERE {present} GROUP BY {q(by)}"
        ).fetchall()
        return {k: v for k, v in rows}

    def _runs(self, where: str, params: Sequence[Any]) -> list[RunRow]:
        if not self._has_table(SYNC_RUNS.name):
            return []
        names = ", ".join(q(c) for c in SYNC_RUNS.column_names)
        rows = self.con.execute(
            f"SELECT {names} FROM sync_runs r WHERE {where} ORDER BY stream, started_at",
            list(params),
        ).fetchall()
        return [RunRow.of(r) for r in rows]

    @_turn
    def last_runs(self) -> list[RunRow]:
        """Each stream's latest run."""
        return self._runs(
            "started_at = (SELECT max(started_at) FROM sync_runs l WHERE l.stream = r.stream)",
            (),
        )

    @_turn
    def running_runs(self, stream: str) -> list[RunRow]:
        """The stream's runs still marked running."""
        return self._runs("stream = ? AND status = 'running'", (stream,))

    @_turn
    def table_counts(self, tables: Sequence[Table]) -> dict[str, int]:
        """Row counts of the tables that exist."""
        counts: dict[str, int] = {}
        for table in tables:
            if self._has_table(table.name):
                row = self.con.execute(f"SELECT count(*) FROM {q(table.name)}").fetchone()
                counts[table.name] = int(row[0]) if row else 0
        return counts

    def _has_table(self, name: str) -> bool:
        row = self.con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name = ?",
            [name],
        ).fetchone()
        return bool(row and row[0])

    @_turn
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query (for the demo, status and tests)."""
        return self.con.execute(sql, list(params)).fetchall()

    @_turn
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement of SQL text, in this thread's transaction if it has one."""
        self.con.execute(sql, list(params))

    def stream(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of a read query with `:name` parameters, fetched STREAM_BATCH at a time
        (on this thread's connection: inside the caller's transaction, which holds the file)."""
        cursor = self.con.execute(_PARAM.sub(r"$\1", sql), dict(params or {}))
        while batch := cursor.fetchmany(STREAM_BATCH):
            yield from batch

    @_turn
    def read_table(self, table: Table) -> list[dict[str, Any]]:
        """Every row of a table, typed by its declaration; timestamps as aware UTC."""
        names = ", ".join(q(c) for c in table.column_names)
        rows = self.con.execute(f"SELECT {names} FROM {q(table.name)}").fetchall()
        return [
            {
                c: v.astimezone(UTC) if isinstance(v, datetime) and v.tzinfo else v
                for c, v in zip(table.column_names, row, strict=True)
            }
            for row in rows
        ]

    @_turn
    def table_names(self) -> set[str]:
        """The tables of the current schema."""
        rows = self.con.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        ).fetchall()
        return {str(r[0]) for r in rows}

    def qualified(self, name: str) -> str:
        """A table's quoted name (DuckDB targets have no schema of their own)."""
        return q(name)

    @_turn
    def catalog_comments(self, names: Sequence[str]) -> dict[tuple[str, str], str | None]:
        """The comments the catalog holds on the tables `names` and their columns."""
        wanted = set(names)
        return {k: v for k, v in catalog_duckdb(self.con).items() if k[0] in wanted}

    # ---- locks ------------------------------------------------------------------------

    def lock(self, name: str, *, shared: bool = False) -> Lock | None:
        """The lock `name` of this file: a `flock` on `<file>.<name>.lock` beside it (the
        file has one writing process, so a shared lock is an exclusive one)."""
        return file_lock(self.url, None, name)

    def partition_locks(self, name: str) -> PartitionLocks | None:
        """None: one process writes a file, under the stream's own lock."""
        return None
