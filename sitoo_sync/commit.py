"""Every write of a tick, in one file: from a normalized window to its commit.

The exactly-once rule lives here. A partition's windows gather in a `Batch`; its
`PartitionWriter` commits the batch with its cursor (and, when the partition is done, its
outcome and missing marks) in one transaction, alone or, through the stream's
`GroupWriter`, in one transaction with other partitions' batches, each still with its own
cursor. `load_group` is that transaction: parents upsert on their natural key (or are
inserted when new), a parent's children are replaced as a set, a row superseded by a new key
of its replace group goes with its children, rejects are kept, every row gets its load
metadata (`_loaded_at`: when this commit ran; `_run_id`: the run that wrote it), and the
cursors move. Partitions that loaded nothing leave their "ok" with `Outcomes`, written for
all of them in one transaction at the end of the stream's tick; a partition gone from Sitoo
leaves its "gone" there, with the missing marks of all its rows (`AllMissing`).

A crash at any instant loses nothing and doubles nothing: what was not committed is fetched
again from the stored cursor, and what is loaded twice is upserted over itself.

Two writers of one partition cannot both commit: each commit moves the cursor only from the
one its writer claimed the partition with or last committed, and only while the count of
windows stored with it is the one it knew then (`PartitionLoad.fenced`), first in its
transaction: every commit of the other writer moves that pair, one that leaves the cursor
where it was included. A replica whose partition locks were freed with their session (the
server ended it) while another replica claimed the same registers loses at its next commit
of each: nothing of that batch is written, no cursor moves back, the other partitions of
its group commit, and the partition stops (`PartitionTakenOver`, one warning).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa

from sitoo_sync.inflight import ByteBudget
from sitoo_sync.log import get_logger
from sitoo_sync.normalize.columns import ARROW_TYPES
from sitoo_sync.normalize.records import NormalizedWindow
from sitoo_sync.normalize.tables import LOADED_AT, RUN_ID, Kind, Table
from sitoo_sync.results import PartitionResult
from sitoo_sync.runs import RUN_ID_KEY
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors import Window
from sitoo_sync.turns import INLINE, Inline, Turns
from sitoo_sync.warehouse.base import CursorMove, Outcome, Warehouse, still_reset
from sitoo_sync.warehouse.retry import retried

log = get_logger(__name__)


class Loaded(Protocol):
    """What a commit needs to know of a stream: its name and its tables, parent first."""

    @property
    def name(self) -> str: ...

    @property
    def tables(self) -> tuple[Table, ...]: ...


class PartitionTakenOver(Exception):
    """A partition's commit was fenced off: another process committed it (moved its cursor,
    or loaded windows that left it where it was) since this one claimed it or last
    committed it (the server had ended the session its lock lived on, freeing the lock, and
    the other process claimed it). Nothing of the batch was written; the partition is the
    other process's now."""

    def __init__(self, stream: str, partition: str, cursor: str | None) -> None:
        super().__init__(f"{stream} {partition}: taken over by another process")
        self.stream = stream
        self.partition = partition
        #: The cursor this process last knew stored (its claim's or its last commit's).
        self.cursor = cursor


def shown_cursor(cursor: str | None, limit: int = 120) -> str | None:
    """A cursor as a log line shows it: a long one (a keyset's set of open ids) is cut, so a
    line stays a line."""
    if cursor is None or len(cursor) <= limit:
        return cursor
    return f"{cursor[:limit]}... ({len(cursor)} chars)"


def load_window(
    warehouse: Warehouse,
    stream: Loaded,
    partition: str,
    normalized: NormalizedWindow,
    cursor: str,
    *,
    windows: int = 1,
    run_id: str | None = None,
) -> None:
    """Rows, rejects and the cursor of one window (or batch of windows), in one transaction
    (run again after a conflict with another writer)."""

    def load() -> None:
        _load_rows(warehouse, stream, stamped(stream, normalized, datetime.now(UTC), run_id))
        warehouse.set_cursor(
            stream.name, partition, cursor, rows=normalized.row_count(), windows=windows
        )

    retried(warehouse, load, what="load", stream=stream.name, partitions=1)


@dataclass(frozen=True)
class PartitionLoad:
    """One partition's part of a group load: its rows, the cursor past them, and how its
    tick ended when this is its last load (None: it goes on)."""

    partition: str
    normalized: NormalizedWindow
    cursor: str
    windows: int
    outcome: str | None = None
    #: The run (sync_runs.run_id) that loads it: stamped on every row as `_run_id`.
    run_id: str | None = None
    #: Committed only if the stored cursor is still `since`, and its `windows_loaded` still
    #: `since_windows` (None: not compared) (`CursorMove.fenced`).
    fenced: bool = False
    since: str | None = None
    since_windows: int | None = None
    #: Filled by the commit that loads it: the ids of its rejects the rejects table had not
    #: held, or held with another reason (`Warehouse.add_rejects`); only these are logged.
    news: set[str] = field(default_factory=set, compare=False)
    #: Filled by the commit that loads it: it was fenced off, nothing of it written (another
    #: process had committed the partition since `since`).
    taken_over: bool = field(default=False, compare=False)


def load_group(
    warehouse: Warehouse, stream: Loaded, loads: Sequence[PartitionLoad], *, new: bool = False
) -> bool:
    """Several partitions' batches (disjoint keys), each with its cursor, in one transaction.

    What is exactly-once for one window holds for each: its rows and its cursor commit
    together. One transaction instead of one per partition is what lets a tick over many
    registers commit as fast as their pages arrive (a DuckDB commit alone takes ~10 ms).

    A conflict with another writer (a replica's transaction) runs it again, whole
    (warehouse/retry.py): it reads what it needs inside, and its callers forget a batch
    only once it has returned.

    The cursors move first, each fenced one only from its `since`: a batch whose cursor
    another process has moved since is left out, whole, and marked `taken_over` (its
    partition's writer raises PartitionTakenOver). Moving them first makes a second writer
    of a partition wait for the first one's transaction on the cursor's row, and then
    write none of its rows; written after the rows, the two met on the rows instead, and a
    duplicate key failed the whole group (every partition in it) and the tick.

    `new`: the batches' parent keys are new by construction (an immutable stream's windows,
    whose re-reads were dropped before normalizing: `partition._unstored`). The read of the
    keys stored already is then skipped, and the parent table's primary key proves them
    new: a key stored after all (a cursor reset that kept its rows, a page the API repeated)
    fails the insert, and the group runs again with the read. On DuckDB that read is a hash
    join over the parent table's key columns, pruned only by the batch's key bounds (a
    backfill's batch spans most ids): 23 ms of the writer's CPU a group at 1M entries, more
    as history grows; the key's own check is an index lookup. Inside a transaction the
    caller has (which a failed statement would abort), and on a warehouse whose keys are
    only declared (`Capabilities.enforced_keys`), the keys are read. Returns whether later
    loads may still take their keys as new: `new`, unless a key was met.
    """
    if not new or not warehouse.capabilities.enforced_keys or warehouse.in_transaction():
        _load_group(warehouse, stream, loads, read_stored=True)
        return new
    try:
        _load_group(warehouse, stream, loads, read_stored=False)
        return True
    except warehouse.errors as exc:
        if not warehouse.duplicate_key(exc):
            raise
        log.info("stored_keys_met", stream=stream.name, partitions=len(loads))
    _load_group(warehouse, stream, loads, read_stored=True)
    return False


def _load_group(
    warehouse: Warehouse, stream: Loaded, loads: Sequence[PartitionLoad], *, read_stored: bool
) -> None:
    def load() -> tuple[set[str], set[str]]:
        # The cursors first: a fenced load whose cursor another process has moved since
        # (`CursorMove.fenced`) writes nothing, and waits for that process's transaction
        # on the cursor's row, never on rows both of them load (a duplicate key then
        # failed the whole group, and the tick).
        taken = set(
            warehouse.set_cursors(
                stream.name,
                [
                    CursorMove(
                        p.partition,
                        p.cursor,
                        p.normalized.row_count(),
                        p.windows,
                        p.fenced,
                        p.since,
                        p.since_windows,
                    )
                    for p in loads
                ],
            )
            or ()
        )
        live = [p for p in loads if p.partition not in taken]
        if not live:
            return set(), taken
        at = datetime.now(UTC)
        if len({p.run_id for p in live}) == 1:
            normalized = NormalizedWindow.concat([p.normalized for p in live])
            normalized = stamped(stream, normalized, at, live[0].run_id)
        else:
            normalized = NormalizedWindow.concat(
                [stamped(stream, p.normalized, at, p.run_id) for p in live]
            )
        news = _load_rows(warehouse, stream, normalized, read_stored=read_stored)
        warehouse.record_outcomes(
            stream.name, [(p.partition, p.outcome, None) for p in live if p.outcome is not None]
        )
        return news, taken

    news, taken = retried(warehouse, load, what="load", stream=stream.name, partitions=len(loads))
    for p in loads:  # set anew by a run again of an outer transaction this one joined
        object.__setattr__(p, "taken_over", p.partition in taken)  # filled, as `news` is
        p.news.clear()
        p.news.update(r.reject_id for r in p.normalized.rejects if r.reject_id in news)


def stamped(
    stream: Loaded, normalized: NormalizedWindow, at: datetime, run_id: str | None
) -> NormalizedWindow:
    """`normalized` with `_loaded_at` = `at` and `_run_id` = `run_id` on every row of every
    table the stream stores them in (a table that has them already is left as it is)."""
    tables = dict(normalized.tables)
    for table in stream.tables:
        data = tables.get(table.name)
        if data is not None:
            tables[table.name] = _stamp(table, data, at, run_id)
    return NormalizedWindow(tables, normalized.parent_keys, normalized.rejects, normalized.notes)


def _stamp(table: Table, data: pa.Table, at: datetime, run_id: str | None) -> pa.Table:
    if LOADED_AT not in table.column_names or LOADED_AT in data.column_names:
        return data
    rows = data.num_rows
    data = data.append_column(
        LOADED_AT, pa.repeat(pa.scalar(at, ARROW_TYPES[Kind.TIMESTAMP]), rows)
    )
    return data.append_column(RUN_ID, pa.repeat(pa.scalar(run_id, ARROW_TYPES[Kind.TEXT]), rows))


def _load_rows(
    warehouse: Warehouse, stream: Loaded, normalized: NormalizedWindow, *, read_stored: bool = True
) -> set[str]:
    """Parents upserted (or inserted when new), children replaced as sets, rejects kept.
    Without `read_stored` every parent key is taken as new (see `load_group`). Returns the
    ids of the rejects new to the rejects table or with a new reason."""
    parent = next(t for t in stream.tables if not t.is_child)
    if read_stored or parent.replace_group:
        existing = warehouse.existing_keys(parent, normalized.parent_keys)
    else:
        existing = normalized.parent_keys.slice(0, 0)
    if parent.replace_group and normalized.parent_keys.num_rows:
        # e.g. a store and day re-aggregated under a new id: the old report goes.
        superseded = warehouse.superseded_keys(parent, normalized.tables[parent.name])
        if superseded.num_rows:
            warehouse.delete_rows(parent, superseded, parent.key)
            existing = pa.concat_tables([existing, superseded.cast(existing.schema)])
    for table in stream.tables:
        data = normalized.tables[table.name]
        if table.is_child:
            warehouse.replace_children(table, existing, data)
        elif existing.num_rows:
            warehouse.upsert(table, data)
        else:
            warehouse.insert(table, data)
    return warehouse.add_rejects(normalized.rejects)


@dataclass
class Batch:
    """Consecutive normalized windows that will commit together, with the last cursor.

    Loading several windows in one transaction costs far fewer statements than one each;
    the bounds keep memory and the work a crash can undo small. A window whose parent keys
    are already in the batch starts a new one, so a batch never holds a key twice. With a
    `budget` (the tick's rows in flight, shared by its partitions), the batch holds its
    Arrow bytes there and counts as full while all batches together hold more than it.
    """

    max_rows: int
    max_seconds: float
    budget: ByteBudget | None = None
    nbytes: int = 0
    windows: list[NormalizedWindow] = field(default_factory=list)
    keys: set[tuple[Any, ...]] = field(default_factory=set)
    records: int = 0
    cursor: str = ""
    started: float = 0.0

    def accepts(self, keys: set[tuple[Any, ...]]) -> bool:
        """False when a window with these parent keys must go into a new batch."""
        return not self.windows or not (keys & self.keys)

    def add(
        self, window: NormalizedWindow, keys: set[tuple[Any, ...]], records: int, cursor: str
    ) -> None:
        """Append a window and move the batch's cursor to it."""
        if not self.windows:
            self.started = time.monotonic()
        if self.budget is not None:
            size = window.nbytes()
            self.budget.add(size)
            self.nbytes += size
        self.windows.append(window)
        self.keys |= keys
        self.records += records
        self.cursor = cursor

    def full(self) -> bool:
        """True once the batch should be committed."""
        rows = sum(w.row_count() for w in self.windows)
        return (
            rows >= self.max_rows
            or time.monotonic() - self.started >= self.max_seconds
            or (self.budget is not None and self.budget.over())
        )

    def clear(self) -> None:
        """Forget everything (after a commit)."""
        self.windows.clear()
        self.keys.clear()
        self.records = 0
        if self.budget is not None:
            self.budget.release(self.nbytes)
        self.nbytes = 0


@dataclass(frozen=True)
class AllMissing:
    """Every stored row of a partition declared gone, to be stamped `missing_since` with
    its outcome: the API no longer knows the partition, nor does the tick's full listing
    of partitions, so no row of it is listed any more (`Warehouse.mark_missing` with none
    present: one update of the scope's unmarked rows)."""

    table: Table
    scope: Mapping[str, Any]
    at: datetime


def all_missing(stream: Stream, partition: str, at: datetime) -> AllMissing | None:
    """The marks a gone `partition` takes: every row in its scope (`Stream.scope_of`), or
    None for a stream with no scope, whose rows no listing marks (an immutable journal)."""
    scope = stream.scope_of(partition)
    return None if scope is None else AllMissing(stream.parent, scope, at)


class Outcomes:
    """The outcomes of partitions that loaded nothing, written together in one transaction.

    Such a partition has no rows whose commit its outcome must share, so nothing is lost if
    a crash comes before `flush`: only the stamp of a tick that changed nothing.

    `resets`: the partitions reading a reset's period again (`StoredCursors.resets`); an
    outcome of theirs other than ok keeps that mark (`still_reset`).

    An outcome given a `held` move (a fenced move of the partition's cursor to itself, as
    `PartitionWriter._still_held` makes) is written only where that move is made, in the
    same transaction: a replica that lost its locks during the tick writes no "ok" over a
    partition another process (or `reset`, whose mark the "ok" would erase) wrote since.

    An outcome given `missing` (a gone partition's, `all_missing`) stamps its rows in the
    same transaction, where its outcome is written: `gone` and the marks never disagree.
    """

    def __init__(self, stream: str, resets: frozenset[str] = frozenset()) -> None:
        self.stream = stream
        self.resets = resets
        self._pending: list[tuple[Outcome, CursorMove | None, AllMissing | None]] = []
        self._lock = threading.Lock()

    def add(
        self,
        partition: str,
        status: str,
        detail: str | None = None,
        *,
        held: CursorMove | None = None,
        missing: AllMissing | None = None,
    ) -> None:
        """Keep an outcome for the next `flush` (fenced by `held`, when given), with the
        missing marks it brings (`missing`, when given)."""
        if status != "ok" and partition in self.resets:
            detail = still_reset(detail)
        with self._lock:
            self._pending.append(((partition, status, detail), held, missing))

    def flush(self, warehouse: Warehouse) -> None:
        """Write every kept outcome, and its missing marks, in one transaction (but those
        whose `held` move was fenced off); they are forgotten once it commits, and the rows
        marked are logged then (`log_missing`)."""
        with self._lock:
            pending = list(self._pending)
        if not pending:
            return
        moves = [held for _, held, _ in pending if held is not None]

        def write() -> tuple[Collection[str], dict[str, int]]:
            left = (warehouse.set_cursors(self.stream, moves) if moves else None) or ()
            kept = [(outcome, missing) for outcome, _, missing in pending if outcome[0] not in left]
            warehouse.record_outcomes(self.stream, [outcome for outcome, _ in kept])
            marked = {
                outcome[0]: warehouse.mark_missing(missing.table, missing.scope, (), missing.at)
                for outcome, missing in kept
                if missing is not None
            }
            return left, marked

        left, marked = retried(
            warehouse, write, what="outcomes", stream=self.stream, partitions=len(pending)
        )
        with self._lock:
            del self._pending[: len(pending)]  # those added meanwhile stay
        for partition, rows in sorted(marked.items()):
            log_missing(self.stream, partition, rows)
        for partition in sorted(left):  # its lock was freed when it ended: not a lost one
            log.info(
                "outcome_left",
                stream=self.stream,
                partition=partition,
                reason="another process synced it since: its outcome is that process's",
            )


def log_batch(
    stream: Loaded,
    partition: str,
    batch: Batch,
    normalized: NormalizedWindow,
    news: set[str],
) -> None:
    """The batch's one line, and one warning per reject in `news`: a record rejected again
    for the same reason (an overlap reads it again) is counted in the line, not logged."""
    log.info(
        "batch_loaded",
        stream=stream.name,
        partition=partition,
        windows=len(batch.windows),
        records=batch.records,
        rows=normalized.row_count(),
        rejects=len(normalized.rejects),
        cursor=shown_cursor(batch.cursor),
    )
    for reject in normalized.rejects:
        if reject.reject_id not in news:
            continue
        log.warning(
            "record_rejected",
            stream=stream.name,
            partition=partition,
            record_key=reject.record_key,
            reason=reject.reason,
        )


def mark_missing(
    warehouse: Warehouse, stream: Stream, partition: str, seen: set[tuple[Any, ...]], now: datetime
) -> int:
    """After a full listing: rows of this partition it did not show get `missing_since`;
    how many. The caller logs them once its transaction has committed (`log_missing`): a
    run rolled back by a conflict marked nothing."""
    scope = stream.scope_of(partition)
    assert scope is not None
    return retried(
        warehouse,
        lambda: warehouse.mark_missing(stream.parent, scope, sorted(seen), now),
        what="missing marks",
        stream=stream.name,
        partition=partition,
    )


def log_missing(stream: str, partition: str, gone: int) -> None:
    """The rows a committed `mark_missing` marked, if any, in one line."""
    if gone:
        log.warning("rows_missing", stream=stream, partition=partition, rows=gone)


class GroupWriter:
    """Commits the batches of concurrent partitions of one stream, several per transaction.

    A partition hands its batch (rows, cursor, and its outcome when it is the last) to
    `commit` and waits until it is committed. Whoever finds no commit under way becomes the
    writer and takes everything handed over meanwhile, up to `max_rows`: the partitions
    that waited during one commit share the next. Every batch still commits with its own
    cursor; a failed commit fails each partition in it.
    """

    def __init__(
        self,
        warehouse: Warehouse,
        stream: Loaded,
        *,
        max_rows: int,
        write: Inline = INLINE,
        new: bool = False,
    ) -> None:
        self.warehouse = warehouse
        self.stream = stream
        self.max_rows = max_rows
        self.write = write  # where a group's transaction runs (see sync._load_turn)
        #: Loads take their parent keys as new (`load_group`) until one group met a stored one.
        self.new = new
        self._cond = threading.Condition()
        self._pending: list[tuple[PartitionLoad, set[tuple[Any, ...]]]] = []
        self._done: dict[int, BaseException | None] = {}
        self._writing = False

    def commit(self, load: PartitionLoad, keys: set[tuple[Any, ...]]) -> None:
        """Commit `load`, whose parent keys are `keys`, in a group; raise what that raised."""
        ticket = id(load)
        with self._cond:
            self._pending.append((load, keys))
        while True:
            with self._cond:
                while ticket not in self._done and self._writing:
                    self._cond.wait()
                if ticket in self._done:
                    error = self._done.pop(ticket)
                    if error is not None:
                        raise error
                    return
                self._writing = True
                group = self._take()
            failed: BaseException | None = None
            try:
                loads = [g for g, _keys in group]
                self.new = self.write.run(
                    load_group, self.warehouse, self.stream, loads, new=self.new
                )
            except BaseException as exc:  # each partition in the group raises it
                failed = exc
            with self._cond:
                self._writing = False
                for g, _keys in group:
                    self._done[id(g)] = failed
                self._cond.notify_all()

    def _take(self) -> list[tuple[PartitionLoad, set[tuple[Any, ...]]]]:
        """The oldest batches whose keys do not meet, up to `max_rows` (at least one)."""
        group: list[tuple[PartitionLoad, set[tuple[Any, ...]]]] = []
        left: list[tuple[PartitionLoad, set[tuple[Any, ...]]]] = []
        keys: set[tuple[Any, ...]] = set()
        rows = 0
        for load, load_keys in self._pending:
            size = load.normalized.row_count()
            if group and (rows + size > self.max_rows or load_keys & keys):
                left.append((load, load_keys))
                continue
            group.append((load, load_keys))
            keys |= load_keys
            rows += size
        self._pending = left
        return group


@dataclass
class PartitionWriter:
    """One partition's pending batch, and what taking a window, committing and finishing do
    to it: the only place a partition's rows, cursor and outcome are written."""

    warehouse: Warehouse
    stream: Stream
    partition: str
    batch: Batch
    result: PartitionResult
    on_window: Callable[[PartitionResult], None] | None
    turns: Turns
    context: Mapping[str, Any]
    #: The cursor the warehouse holds, or will hold once the pending batch commits.
    cursor: str | None
    writer: GroupWriter | None = None
    #: Parent keys a full listing or a sweep showed in this tick (for the missing marks).
    seen: set[tuple[Any, ...]] = field(default_factory=set)
    swept: bool = False  # a sweep window was taken
    #: While the window that ends a sweep is pending: the cursor before it. That window's
    #: cursor records the sweep as done, so it commits only with the missing marks
    #: (`finish`); a commit without them (a stop, a crash's rerun) stores this one
    #: instead, and the next tick sweeps again rather than never marking what it found gone.
    unmarked: str | None = None
    #: Loads on its own turn take their parent keys as new (`load_group`): the stream is
    #: immutable and no load of this partition met a stored key yet.
    new: bool = False
    #: The partition reads again a period `sitoo-sync reset` moved its cursor back over
    #: (`StoredCursors.resets`): an outcome other than ok keeps that mark (`still_reset`),
    #: so the tick after a failure still loads the rest of the period whole.
    rereading: bool = False
    #: The partition's `windows_loaded` stored with `cursor` as it starts (its claim's,
    #: `Claim.windows`), then with each of its commits' (its windows added): the fence
    #: compares it with `committed`. None: not known, the cursor alone is compared.
    committed_windows: int | None = None
    #: The cursor stored as this writer knows it: the one it started from (its claim's),
    #: then each of its commits'. Every commit moves the cursor only from there, and only
    #: while `committed_windows` is still stored with it (`PartitionLoad.fenced`), so a
    #: process that lost the partition's lock while it loaded, and another that claimed it
    #: meanwhile, never both commit the same windows, and never move the cursor back: the
    #: second to commit is taken over (`PartitionTakenOver`), even when the first left the
    #: cursor where it was.
    committed: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.committed = self.cursor

    def take(self, window: Window, records: list[Any]) -> None:
        """Normalize `records` (the window's, less skipped re-reads) into the batch.

        A window that leaves nothing to load and does not move the cursor is only counted:
        it takes no turn and writes nothing.
        """
        self.result.windows += 1
        cursor = str(window.cursor)
        stream, batch = self.stream, self.batch
        ends_sweep = False
        if window.sweep:  # keys only: collected for the missing marks, nothing loaded
            self.seen |= self.turns.normalize.run(stream.normalize, records, self.context).keys()
            self.swept = True
            records = []
            # The sweep's last window is the one that moves the cursor (it says when the
            # sweep ran), and is the listing's last: it waits for the marks.
            ends_sweep = cursor != self.cursor and self.cursor is not None
        if not records and not self.batch.windows and cursor == self.cursor:
            return
        normalized = self.turns.normalize.normalize(
            stream.normalize, stream.normalize_many, records, self.context
        )
        keys = normalized.keys()
        if stream.full_refresh:
            self.seen |= keys
        if not batch.accepts(keys):
            self.commit()
        if ends_sweep:
            self.unmarked = self.cursor
        batch.add(normalized, keys, len(records), cursor)
        self.cursor = cursor
        log.debug(
            "window_fetched",
            stream=stream.name,
            partition=self.partition,
            params=dict(window.params),
            records=len(window.records),
            new=len(records),
            cursor=shown_cursor(window.cursor),
        )
        if batch.full() and not ends_sweep:
            self.commit()

    def commit(self, outcome: str | None = None) -> None:
        """Load the pending batch with its cursor (and `outcome`), in one transaction.

        Through the `writer` when there is one (in a group with other partitions'), else
        on this partition's own turn. Raises PartitionTakenOver when another process has
        committed the partition since this one read or wrote its cursor (nothing of the
        batch is written).
        """
        load = self._pending_load(outcome)
        if load is None:
            return
        if self.writer is not None:
            self.writer.commit(load, set(self.batch.keys))
        else:
            self.new = self.turns.write.run(
                load_group, self.warehouse, self.stream, [load], new=self.new
            )
        self._taken_over(load)
        self._committed(load)

    def _taken_over(self, load: PartitionLoad) -> None:
        """Raise PartitionTakenOver when `load`'s commit was fenced off."""
        if load.taken_over:
            raise PartitionTakenOver(self.stream.name, self.partition, self.committed)

    def _pending_load(
        self, outcome: str | None = None, *, marked: bool = False
    ) -> PartitionLoad | None:
        """The pending batch as one load with its cursor (and `outcome`); None when empty.
        Unless the load commits with the missing marks (`marked`), a sweep that ended in it
        is not recorded (`unmarked`)."""
        batch = self.batch
        if not batch.windows:
            return None
        cursor = batch.cursor
        if self.unmarked is not None and not marked:
            cursor = self.unmarked
        return PartitionLoad(
            self.partition,
            NormalizedWindow.concat(batch.windows),
            cursor,
            len(batch.windows),
            outcome,
            run_id=self.context.get(RUN_ID_KEY),
            fenced=True,
            since=self.committed,
            since_windows=self.committed_windows,
        )

    def _committed(self, load: PartitionLoad) -> None:
        """`load`, the pending batch, has committed: count it, log it, empty the batch."""
        batch, result, normalized = self.batch, self.result, load.normalized
        result.rows += normalized.row_count()
        result.rejects += len(normalized.rejects)
        result.notes.update(normalized.notes)
        batch.cursor = result.cursor = self.cursor = load.cursor  # (a sweep not recorded)
        self.committed = load.cursor
        if self.committed_windows is not None:
            self.committed_windows += load.windows
        self.unmarked = None
        log_batch(self.stream, self.partition, batch, normalized, load.news)
        batch.clear()
        if self.on_window is not None:
            self.on_window(result)

    def finish(self, outcomes: Outcomes | None, *, mark: bool, now: datetime) -> None:
        """The last batch, the missing marks and the "ok", committed together.

        One commit less per partition, and the outcome can never disagree with the rows. A
        partition with nothing left to commit hands its "ok" to `outcomes` instead. With the
        marks, the last batch commits on this partition's turn, not in a group: the
        transaction run again after a conflict is this one, whole, and the batch is
        forgotten only once it has committed.
        """
        stream, partition = self.stream, self.partition
        if outcomes is not None and not self.batch.windows and not mark:
            outcomes.add(partition, "ok", held=self._held_move())
            return
        if not mark and self.batch.windows:
            self.commit(outcome="ok")
            return
        load = self._pending_load(marked=mark)

        def last() -> tuple[int, bool]:
            if load is not None:
                load_group(self.warehouse, stream, [load])  # joins this transaction
                if load.taken_over:  # no marks, no outcome: the partition is another's
                    return 0, True
            elif not self._still_held():
                return 0, True
            gone = mark_missing(self.warehouse, stream, partition, self.seen, now) if mark else 0
            self.warehouse.record_outcome(stream.name, partition, "ok")
            return gone, False

        gone, taken = self.turns.write.run(
            retried, self.warehouse, last, what="last load", stream=stream.name, partition=partition
        )
        if load is not None:
            self._taken_over(load)
            self._committed(load)
        elif taken:
            raise PartitionTakenOver(stream.name, partition, self.committed)
        log_missing(stream.name, partition, gone)

    def _still_held(self) -> bool:
        """In the caller's transaction, before it writes marks or an outcome with no batch
        to carry them: a fenced move of no rows and no windows from `committed` to
        `committed`, which leaves (False) when another process has committed since. The
        last batch may have committed before (it filled), and a stale writer's marks and
        "ok" were then written unfenced, over the new holder's fresh rows. A target that does not
        fence (one writer at a time: no shared locks) is not asked."""
        move = self._held_move()
        if move is None:
            return True
        left = self.warehouse.set_cursors(self.stream.name, [move])
        return self.partition not in (left or ())

    def _held_move(self) -> CursorMove | None:
        """The fenced move of no rows and no windows from `committed` to `committed` that
        `_still_held` makes; None on a target that does not fence."""
        if not self.warehouse.capabilities.shared_locks:
            return None
        committed = self.committed
        return CursorMove(self.partition, committed, 0, 0, True, committed, self.committed_windows)

    def stopped(self, status: str, detail: str) -> None:
        """The partition could not go on (failed, or its stream is disabled): what it
        fetched before is whole and its cursor right, so that progress is committed; then
        the outcome, with why (and, reading a reset's period again, that it still does),
        fenced as the last batch is (`_still_held`): a partition another process has taken
        over is left its outcome (PartitionTakenOver)."""
        self.commit()
        stream, partition = self.stream.name, self.partition
        if self.rereading:
            detail = still_reset(detail)

        def outcome() -> bool:
            if not self._still_held():
                return False
            self.warehouse.record_outcome(stream, partition, status, detail)
            return True

        held = self.turns.write.run(
            retried, self.warehouse, outcome, what="outcome", stream=stream, partition=partition
        )
        if not held:
            raise PartitionTakenOver(stream, partition, self.committed)
