"""The warehouse seam: what every target (DuckDB native, SQLAlchemy dialects) provides.

A load is always:

    with warehouse.transaction():
        existing = warehouse.existing_keys(parent_table, parent_keys)
        warehouse.upsert(parent_table, rows)        # or insert(), when nothing exists yet
        warehouse.replace_children(child_table, existing, rows)   # for each child
        warehouse.add_rejects(rejects)
        warehouse.set_cursor(stream, partition, cursor, rows=n)

and either all of it commits or none of it does. Re-running a window is harmless because
parents upsert on their natural key and children are replaced as a set per parent (a parent
that did not exist before has no children to delete). Rows travel as Arrow tables typed by
the declarations; a backend that wants Python rows calls `to_pylist()`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeVar

import pyarrow as pa

from sitoo_sync.normalize.records import Reject
from sitoo_sync.normalize.tables import Table, integer, json_column, text, timestamp
from sitoo_sync.warehouse.catalog import SYNC_SCHEMA

if TYPE_CHECKING:
    from sitoo_sync.warehouse.views import View

C = TypeVar("C")

SYNC_STATE = Table(
    name="sync_state",
    description="Cursor and health per stream and partition; written with the rows it covers.",
    columns=(
        text("stream", "The stream, by its registered name.", nullable=False),
        text(
            "partition_key",
            "The partition within the stream (a register, a site ...), or '' for none.",
            nullable=False,
        ),
        text("cursor", "Where the next tick resumes (opaque to readers)."),
        integer("rows_loaded", "Rows loaded by this partition since it started, all ticks."),
        integer("windows_loaded", "Windows (pages or time ranges) loaded since it started."),
        timestamp("updated_at", "When the cursor last moved (UTC)."),
        timestamp("last_success_at", "When a tick last ended well for it (UTC)."),
        timestamp("last_error_at", "When a tick last failed for it (UTC)."),
        text("last_error", "Why the last failing tick failed."),
        text(
            "last_status",
            "How the last tick ended: ok, failed, disabled, or gone (Sitoo deleted it: a 404, "
            "and its listing no longer shows it).",
        ),
        text(
            "last_status_detail",
            "Why the last tick failed, why the stream is disabled, or why the partition is gone.",
        ),
    ),
    key=("stream", "partition_key"),
)

REJECTS = Table(
    name="rejects",
    description="Records that failed validation, raw, with the reason; one row per record.",
    columns=(
        text(
            "reject_id",
            "Stable ID of the rejected record (a hash of stream and raw record).",
            nullable=False,
        ),
        text("stream", "The stream the record came from.", nullable=False),
        text("record_key", "The record's natural key as far as it could be read."),
        text("reason", "Why it was rejected: the field and the problem.", nullable=False),
        json_column("raw", "The record exactly as received."),
        timestamp("first_seen_at", "When it was first rejected (UTC)."),
        timestamp("last_seen_at", "When it was last received again (UTC)."),
        integer("times_seen", "How many times it was received and rejected."),
    ),
    key=("reject_id",),
)

SYNC_RUNS = Table(
    name="sync_runs",
    description=(
        "One row per run: one tick of one stream in one process. Written as 'running' when "
        "the tick starts and completed when it ends; every row a run loads carries its "
        "run_id in _run_id."
    ),
    columns=(
        text("run_id", "The run's ID; rows it loaded carry it in _run_id.", nullable=False),
        text("stream", "The stream the run synced.", nullable=False),
        timestamp("started_at", "When the run started (UTC).", nullable=False),
        timestamp("finished_at", "When the run ended (UTC); NULL while running or if it died."),
        text(
            "status",
            "ok (every partition synced), failed (every partition, or the partition listing, "
            "failed, or the warehouse did), partial (some failed, or the run was stopped "
            "before all its partitions synced), disabled (the account does not offer the "
            "stream), running (under way), interrupted (its process ended during the run: "
            "a crash or a kill; set by a later run on the same host, see README).",
            nullable=False,
        ),
        integer("partitions", "Partitions (account, sites or registers) the run synced."),
        integer("partitions_moved", "Of those, partitions whose cursor moved."),
        integer(
            "partitions_skipped",
            "Partitions left to another process (replicas split a stream's partitions).",
        ),
        integer("rows_loaded", "Rows the run loaded, child rows included."),
        integer("requests", "Requests the run sent to Sitoo, retries included."),
        integer("rejects", "Records the run rejected (see the rejects table)."),
        text(
            "cursor_before",
            "The cursor before the run. With several partitions: the lowest (furthest "
            "behind) of the synced partitions' cursors; NULL when none had one.",
        ),
        text(
            "cursor_after",
            "The cursor after the run; with several partitions the lowest, as cursor_before.",
        ),
        text("error", "Why the run failed: the first failing partition's error, or the crash."),
        text("host", "The host name of the process that ran it."),
        integer("pid", "The process ID that ran it (with host: whose liveness tells a crash)."),
    ),
    key=("run_id",),
)

SYNC_VIEWS = Table(
    name="sync_views",
    description=(
        "The ready views (v_*) this tool created, each with a fingerprint of the statements "
        "that created it: a tick drops and creates a view again only when they changed."
    ),
    columns=(
        text("view_name", "The view's name.", nullable=False),
        text(
            "fingerprint",
            "SHA-256 (first 16 hex digits) of the statements that created the view.",
            nullable=False,
        ),
        timestamp("created_at", "When the view was last created (UTC)."),
    ),
    key=("view_name",),
)

#: The engine's own tables; `sync_schema` (catalog.py) beside the schema revision it records.
SYSTEM_TABLES: tuple[Table, ...] = (SYNC_STATE, REJECTS, SYNC_RUNS, SYNC_VIEWS, SYNC_SCHEMA)


def schema_tables(tables: Sequence[Table], views: Sequence[View]) -> list[Table]:
    """The tables an `ensure_schema(tables, views)` creates: with views, `sync_views` too,
    where they are recorded."""
    if views and SYNC_VIEWS not in tables:
        return [*tables, SYNC_VIEWS]
    return list(tables)


@dataclass(frozen=True)
class RunRow:
    """One row of `sync_runs`."""

    run_id: str
    stream: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    partitions: int | None = None
    partitions_moved: int | None = None
    partitions_skipped: int | None = None
    rows_loaded: int | None = None
    requests: int | None = None
    rejects: int | None = None
    cursor_before: str | None = None
    cursor_after: str | None = None
    error: str | None = None
    host: str | None = None
    pid: int | None = None

    @classmethod
    def of(cls, row: Sequence[Any]) -> RunRow:
        """A RunRow from a `sync_runs` row, columns in declaration order."""
        return cls(*row)


def at_work(concurrency: int) -> int:
    """Partitions a tick has at work at once: `concurrency` with a request in flight (a
    semaphore sees to that) and a quarter more normalizing and loading what arrived, so the
    requests never wait for that work."""
    return concurrency + max(1, concurrency // 4)


#: Threads per request slot (see `tick_threads`).
THREADS_PER_SLOT = 3


def tick_threads(concurrency: int) -> int:
    """Threads a tick syncs partitions on: three a request slot, the rest of them for
    partitions that only wait for their last commit.

    No partition's thread holds a connection of the target's: the tick's writing thread
    runs every transaction (turns.py), the reads partitions ask together go in rounds on a
    connection of their own (warehouse/rounds.py), the partition locks on another. A
    partition whose pages are all in waits for its last group commit, about as long as a
    request; while it held one of `at_work`'s threads, a third of the request slots sat
    idle (201 one-page registers at 100 ms and concurrency 16 kept 9-10 requests in flight
    on average on DuckDB, ~8 on PostgreSQL, not 16).
    """
    return THREADS_PER_SLOT * concurrency


#: How one partition's tick ended: (partition, status, detail).
Outcome = tuple[str, str, str | None]


class CursorMove(NamedTuple):
    """One partition's cursor moved past `rows` rows in `windows` windows (`set_cursors`).

    A `fenced` move is made only from `since`, the cursor its writer claimed the partition
    with or last committed, and `since_windows`, the `windows_loaded` stored with it: a
    partition another process has committed since (it claimed the partition once the server
    had freed this one's lock with its session) stays as it is. Every commit adds its
    windows (one or more) to the count, so one that left the cursor where it was (its rows
    all of the cursor's own second) moves the pair all the same; the cursor alone let the
    other writer through. `since_windows` None compares the cursor alone.
    """

    partition: str
    cursor: str | None
    rows: int
    windows: int
    fenced: bool = False
    since: str | None = None
    since_windows: int | None = None


#: The outcome `sitoo-sync reset` records: the partition's cursor was moved back over rows it
#: stored, which its next ticks read again and load whole, stored or not (`StoredCursors`).
RESET = "reset"
#: Ends the detail of a partition's outcome other than ok while it reads a reset's period
#: again: it keeps doing so (`StoredCursors.resets`) until a tick of it reaches the present.
STILL_RESET = " (still reading again the period sitoo-sync reset moved back over)"


def still_reset(detail: str | None) -> str:
    """`detail` of an outcome other than ok of a partition that reads a reset's period again,
    marked so that its next tick still does."""
    return f"{detail or ''}{STILL_RESET}"


class StoredCursors(dict[str, str | None]):
    """Every stored cursor of a stream by partition (`get_cursors`), and `resets`: the
    partitions reading again a period `sitoo-sync reset` moved their cursor back over.

    Such a partition's stored rows after its cursor are not what a tick stored last: an
    older version (or a normalizer since fixed) may have written them. So its ticks load
    every entry they read from the cursor on, stored or not, where an ordinary tick skips
    the stored ones its overlap reads again; until one of them reaches the present and
    records ok. The mark is its `last_status` (`RESET`), or the `STILL_RESET` ending of an
    outcome that cut it short (failed, disabled, gone); it is read with the cursors, in the
    same query.
    """

    resets: frozenset[str] = frozenset()
    #: Each stored partition's `windows_loaded` (0 where NULL), read with its cursor: what a
    #: writer that starts from that cursor fences its first commit with (`CursorMove`).
    windows: Mapping[str, int] = {}

    @classmethod
    def of(cls, rows: Iterator[Sequence[Any]] | Sequence[Sequence[Any]]) -> StoredCursors:
        """From (partition_key, cursor, last_status, last_status_detail, windows_loaded)
        rows."""
        cursors = cls()
        resets = []
        windows = {}
        for partition, cursor, status, detail, loaded in rows:
            cursors[str(partition)] = None if cursor is None else str(cursor)
            windows[str(partition)] = int(loaded or 0)
            if status == RESET or (detail is not None and str(detail).endswith(STILL_RESET)):
                resets.append(str(partition))
        cursors.resets = frozenset(resets)
        cursors.windows = windows
        return cursors

    def claim(self, partition: str) -> Claim:
        """`partition` as a writer starts from it: its cursor and the count stored with it
        (None and 0: never stored)."""
        return Claim(self.get(partition), self.windows.get(partition, 0))


def outcome_values(status: str, detail: str | None, at: datetime) -> dict[str, Any]:
    """The `sync_state` columns an outcome sets: success and failure stamps kept apart."""
    values: dict[str, Any] = {"last_status": status, "last_status_detail": detail}
    if status == "ok":
        values["last_success_at"] = at
    elif status == "failed":
        values["last_error_at"] = at
        values["last_error"] = detail
    return values


@dataclass(frozen=True)
class StreamState:
    """One row of `sync_state`, as `status` shows it."""

    stream: str
    partition: str
    cursor: str | None
    rows_loaded: int
    windows_loaded: int
    updated_at: datetime | None
    last_success_at: datetime | None
    last_error_at: datetime | None
    last_error: str | None
    last_status: str | None = None
    last_status_detail: str | None = None


@dataclass(frozen=True)
class Capabilities:
    """What a target can do, as data: the engine decides by these, never by its type."""

    #: The dialect's name: duckdb, postgresql, mysql, mariadb, sqlite, mssql, ...
    dialect: str
    #: Several threads may load at once, each on a connection of its own.
    concurrent_loads: bool
    #: The engine runs inside this process (DuckDB, SQLite): its work competes with
    #: normalizing for the same CPU, so concurrent partitions load in turn.
    in_process: bool
    #: Tables and columns carry their descriptions as comments in the catalog.
    comments: bool
    #: Locks live on the database server (PostgreSQL, MySQL): processes on several hosts can
    #: share a stream and split its partitions (`Locks.partition_locks`).
    shared_locks: bool
    #: SITOO_TARGET_SCHEMA means something here.
    schemas: bool
    #: The primary key refuses a key stored twice, so a load may take its keys as new and
    #: let the key prove it (`commit.load_group`). Warehouses that only declare their keys
    #: (Snowflake, BigQuery, Redshift: any dialect without a strategy here) do not.
    enforced_keys: bool = False


class Rows(Protocol):
    """Rows in and out: the tables, their loads in one transaction, and reads."""

    def ensure_schema(
        self, tables: Sequence[Table], views: Sequence[View] = (), *, declared: Sequence[Table] = ()
    ) -> None:
        """Create missing tables and add missing columns (additive only); then drop and create
        `views` (those whose tables and columns all exist). An upkeep given views that
        upgrades the warehouse to this schema revision runs its steps over `declared`: every
        table this version declares (a tick's: `dictionary.all_tables()`), not only `tables`,
        since the revision is recorded once for them all (catalog.py); none given, `tables`
        (a step then reaches at least what this upkeep keeps)."""

    def transaction(self) -> AbstractContextManager[None]:
        """Everything inside commits together or rolls back together; nested ones join."""

    def in_transaction(self) -> bool:
        """True inside `transaction()` on this thread (a new one would join it)."""

    def conflict(self, exc: BaseException) -> str | None:
        """What transient conflict with another writer `exc` is (a deadlock, a lock wait
        timed out, a serialization failure; DuckDB's memory limit, raised since: re-running
        the transaction can succeed), or None when it is none (`retry.retried` raises it at
        once)."""

    def duplicate_key(self, exc: BaseException) -> bool:
        """`exc` is a constraint the rows broke, such as a key stored already: a load that
        took its keys as new runs again, reading them first (`commit.load_group`)."""

    def existing_keys(self, table: Table, keys: pa.Table) -> pa.Table:
        """The subset of `keys` that `table` already holds."""

    def insert(self, table: Table, data: pa.Table) -> None:
        """Insert rows known to be new."""

    def upsert(self, table: Table, data: pa.Table) -> None:
        """Insert rows, replacing any row with the same natural key."""

    def replace_children(self, table: Table, parent_keys: pa.Table, data: pa.Table) -> None:
        """Delete every row of `table` under `parent_keys`, then insert `data`."""

    def superseded_keys(self, table: Table, data: pa.Table) -> pa.Table:
        """Keys of stored rows in the same `replace_group` as `data`'s rows but not in it."""

    def delete_rows(self, table: Table, keys: pa.Table, by: tuple[str, ...]) -> None:
        """Delete the rows whose `by` columns match a row of `keys`."""

    def mark_missing(
        self,
        table: Table,
        scope: Mapping[str, Any],
        present: Sequence[tuple[Any, ...]],
        at: datetime,
    ) -> int:
        """Set `missing_since` on rows in `scope` whose key is not in `present`, clear it on
        rows whose key is (a listing shows them again); the count set."""

    def stored_keys(self, table: Table, keys: pa.Table) -> set[tuple[Any, ...]]:
        """Which of `keys` (one partition's, columns of `table.key`) `table` holds."""

    def keys_since(
        self, table: Table, column: str, since: datetime, limit: int
    ) -> set[tuple[Any, ...]] | None:
        """The keys of rows whose `column` is at or after `since`, for every partition at
        once; None when there are more than `limit` or the target answers `stored_keys`
        per partition more cheaply (overlap.py)."""

    def distinct_values(self, table: Table, column: str) -> list[Any]:
        """The distinct values of a column ([] when the table does not exist yet)."""

    def add_rejects(self, rejects: Sequence[Reject]) -> set[str]:
        """Keep rejected records; one seen again bumps `times_seen`. Returns the ids of
        those kept for the first time or with a reason other than the stored one: the
        rejects worth a log line (an overlap that reads a bad record again is not news)."""

    def table_counts(self, tables: Sequence[Table]) -> dict[str, int]:
        """Row count per existing table."""

    def allow_big_reads(self) -> None:
        """Let this process use more memory on the target than a sync's writes need, from
        now on (an in-process engine caps its memory for the sync; a server target has
        nothing to do): for a command that reads much, such as `verify`."""

    def latest_values(
        self, table: Table, by: str, value: str, order: str, *, every: bool = False
    ) -> dict[Any, Any]:
        """Per distinct `by`, the non-null `value` of the row with the greatest `order`,
        in one query ({} before the table exists). With `every`, a `by` none of whose rows
        holds a `value` is there too, with None: the distinct `by` and their values at once."""

    def table_names(self) -> set[str]:
        """The tables (not views) that exist in the target's schema."""

    def qualified(self, name: str) -> str:
        """A table's name quoted and schema-qualified, fit for SQL text."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """The rows of a read query, whole; `params` in the driver's positional style."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement of SQL text (a write, DDL), in the caller's transaction if any."""

    def stream(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of a read query with `:name` parameters, fetched in batches (memory follows
        the batch, not the result); read them all before starting another query."""

    def read_table(self, table: Table) -> list[dict[str, Any]]:
        """Every row of `table` as a dict of Python values typed by its declaration: Decimal
        money, aware UTC timestamps, dates; equal across targets for equal data."""

    def catalog_comments(self, names: Sequence[str]) -> dict[tuple[str, str], str | None]:
        """(table, column or "") -> the comment the catalog holds, for the tables `names`."""


class StateStore(Protocol):
    """Where each stream's partitions stand: cursors and how their ticks ended."""

    def get_cursor(self, stream: str, partition: str) -> str | None:
        """The stored cursor, or None before the first load."""

    def get_cursors(self, stream: str) -> StoredCursors:
        """Every stored cursor of `stream` by partition (absent: never loaded), and which
        partitions read a reset's period again, in one query."""

    def set_cursor(
        self, stream: str, partition: str, cursor: str | None, *, rows: int, windows: int = 1
    ) -> None:
        """Move the cursor (None: back to before the first load) and count the rows and windows
        it covers, in the load's transaction."""

    def set_cursors(self, stream: str, moves: Sequence[CursorMove]) -> Collection[str] | None:
        """`set_cursor` for several partitions (each once) in one transaction, first in it.

        Returns the partitions of fenced moves left as they were (another process moved
        their cursors: `CursorMove`); the caller writes nothing else of theirs. None or
        empty: every move was made (a target written by one process at a time, DuckDB's
        file, checks nothing).
        """

    def record_outcome(
        self, stream: str, partition: str, status: str, detail: str | None = None
    ) -> None:
        """How a tick of this partition ended: ok, failed (with the error), disabled or gone
        (why)."""

    def record_outcomes(self, stream: str, outcomes: Sequence[Outcome]) -> None:
        """`record_outcome` for many partitions at once, in a few statements."""

    def states(self) -> list[StreamState]:
        """Every row of `sync_state`."""

    def last_runs(self) -> list[RunRow]:
        """Each stream's latest run (by started_at) from `sync_runs` ([] before it exists)."""

    def running_runs(self, stream: str) -> list[RunRow]:
        """The `sync_runs` rows of `stream` still marked running."""


class Lock(Protocol):
    """A held lock."""

    def release(self) -> None:
        """Let the next writer in."""

    def watch(self, lost: threading.Event) -> None:
        """Set `lost` once the lock is found gone while held (the server ended the session
        it lived on, and freed it): its holder must stop writing."""


class Claim(NamedTuple):
    """A partition this process now holds, with its cursor as stored once it was held (what
    another process committed before letting it go included), and the `windows_loaded`
    stored with it: the two its writer's first commit is fenced with (`CursorMove`)."""

    cursor: str | None
    windows: int = 0


class PartitionLocks(Protocol):
    """Locks on single partitions of one stream, held on one connection of the process."""

    def try_acquire(self, partition: str) -> Claim | None:
        """The claim on `partition` when this process now holds it; None when another does."""

    def release(self, partition: str) -> None:
        """Let another process have `partition`."""

    def close(self) -> None:
        """End the connection: the server frees whatever it still holds."""


class Locks(Protocol):
    """Who may write what, whoever starts it. A lock lives on a connection (or file handle) of
    its own: it outlasts the load transactions and dies with the process."""

    def lock(self, name: str, *, shared: bool = False) -> Lock | None:
        """The lock `name` (scoped to this target and schema), or None when another process
        holds it. `shared` holders exclude only exclusive ones (where `shared_locks`)."""

    def partition_locks(self, name: str) -> PartitionLocks | None:
        """Per-partition locks under `name`, or None when the target has no shared locks."""


class Warehouse(Rows, StateStore, Locks, Protocol):
    """A target the sync loads into: DuckDBWarehouse (native) or SqlWarehouse (SQLAlchemy)."""

    url: str
    #: The driver's exception types: run_once turns them into one WarehouseError.
    errors: tuple[type[BaseException], ...]
    #: What the target can do.
    capabilities: Capabilities

    @property
    def concurrent_loads(self) -> bool:
        """`capabilities.concurrent_loads` (the older spelling)."""

    @property
    def in_process(self) -> bool:
        """`capabilities.in_process` (the older spelling)."""

    def close(self) -> None:
        """Release the connection (and any file lock)."""


class CapabilityFlags:
    """The older spellings of two capabilities, for code written before `capabilities`."""

    capabilities: Capabilities

    @property
    def concurrent_loads(self) -> bool:
        """`capabilities.concurrent_loads`."""
        return self.capabilities.concurrent_loads

    @property
    def in_process(self) -> bool:
        """`capabilities.in_process`."""
        return self.capabilities.in_process


class PerThread(Generic[C]):
    """One connection per thread: the first by `first()`, each further one by `more(first)`.

    Registers' journals load from several threads at once; each thread gets a connection of
    its own, so each window is still its own transaction, and they no longer queue for one
    connection. `close_all()` ends every connection of the tick (a later tick starts anew).
    """

    def __init__(
        self,
        first: Callable[[], C],
        more: Callable[[C], C],
        close: Callable[[C], None],
    ) -> None:
        self._first, self._more, self._close = first, more, close
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: list[C] = []
        self._generation = 0

    def get(self) -> C:
        """This thread's connection, opened on first use."""
        mine = getattr(self._local, "conn", None)
        if mine is not None and mine[0] == self._generation:
            return mine[1]  # type: ignore[no-any-return]  # stored by this method
        # Only the first connection is opened under the lock (the others derive from it):
        # 64 threads must not wait for each other's connects, nor for a pool's timeouts.
        with self._lock:
            generation = self._generation
            first = self._open[0] if self._open else None
            if first is None:
                conn = self._first()
                self._open.append(conn)
        if first is not None:
            conn = self._more(first)
            with self._lock:
                self._open.append(conn)
        self._local.conn = (generation, conn)
        return conn

    def opened(self) -> bool:
        """True when any connection is open."""
        return bool(self._open)

    def close_all(self) -> None:
        """Close every connection, the first one last."""
        with self._lock:
            for conn in reversed(self._open):
                self._close(conn)
            self._open.clear()
            self._generation += 1


class Nesting:
    """Per-thread transaction depth: an inner `transaction()` joins the outer one."""

    def __init__(self) -> None:
        self._local = threading.local()

    def active(self) -> bool:
        """True inside a transaction on this thread."""
        return bool(getattr(self._local, "depth", 0))

    @contextmanager
    def enter(self, begin: Callable[[], AbstractContextManager[Any]]) -> Iterator[None]:
        """Run inside `begin()`'s transaction, or inside the one this thread already has."""
        if getattr(self._local, "depth", 0):
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        self._local.depth = 1
        try:
            with begin():
                yield
        finally:
            self._local.depth = 0


class SerializedWarehouse:
    """Lets several threads share one warehouse: each call, and each whole transaction,
    runs alone. Fetching stays parallel; loads take turns, each still one transaction."""

    def __init__(self, inner: Warehouse) -> None:
        self._inner = inner
        self._lock = threading.RLock()
        self.url = inner.url
        self.errors = inner.errors
        self.capabilities = replace(inner.capabilities, concurrent_loads=False)
        self.concurrent_loads = False
        self.in_process = inner.in_process

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock, self._inner.transaction():
            yield

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return locked


class ChildReplacement:
    """`replace_children` for backends that provide `delete_rows` and `insert`."""

    def delete_rows(self, table: Table, keys: pa.Table, by: tuple[str, ...]) -> None:
        raise NotImplementedError

    def insert(self, table: Table, data: pa.Table) -> None:
        raise NotImplementedError

    def replace_children(self, table: Table, parent_keys: pa.Table, data: pa.Table) -> None:
        """Delete the children of `parent_keys`, insert `data`: the set is replaced whole."""
        self.delete_rows(table, parent_keys, table.parent_key)
        self.insert(table, data)


def iter_states(rows: Sequence[Sequence[object]]) -> Iterator[StreamState]:
    """StreamState objects from `sync_state` rows in declaration order."""
    for r in rows:
        yield StreamState(
            stream=str(r[0]),
            partition=str(r[1]),
            cursor=None if r[2] is None else str(r[2]),
            rows_loaded=int(r[3] or 0),  # type: ignore[call-overload]  # DB returns int
            windows_loaded=int(r[4] or 0),  # type: ignore[call-overload]  # DB returns int
            updated_at=r[5],  # type: ignore[arg-type]  # DB returns datetime
            last_success_at=r[6],  # type: ignore[arg-type]  # DB returns datetime
            last_error_at=r[7],  # type: ignore[arg-type]  # DB returns datetime
            last_error=None if r[8] is None else str(r[8]),
            last_status=None if r[9] is None else str(r[9]),
            last_status_detail=None if r[10] is None else str(r[10]),
        )
