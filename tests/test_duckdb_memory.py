"""DuckDB's memory limit is raised when work runs out of it: the work runs again, whole,
under a doubled limit (once for every thread and warehouse that met the same limit, up to
a ceiling, never lowered), so a tick does not fail for it and nothing is loaded or counted
twice; after a commit that left the database invalidated, nothing runs again."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from sitoo_sync.normalize.tables import Table, integer, text
from sitoo_sync.reset import reset_stream
from sitoo_sync.simulator import Simulator
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.verify import run as verify_run
from sitoo_sync.verify.checks import CHECKS
from sitoo_sync.verify.source import Scope
from sitoo_sync.warehouse import duckdb as duckdb_target
from sitoo_sync.warehouse import duckdb_memory
from sitoo_sync.warehouse.base import SYNC_STATE, CursorMove
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse
from sitoo_sync.warehouse.duckdb_memory import LIMITS, MemoryLimitRaised, ran_out_of_memory
from sitoo_sync.warehouse.retry import TransactionConflict, retried
from tests.conftest import SyncFn
from tests.support import assert_each_entry_once, query, settings_for

ITEMS = Table(
    name="memory_items",
    columns=(integer("item_id", nullable=False), text("label")),
    key=("item_id",),
)
#: Rows of a test load (a primary key and 40-character labels).
ROWS = 50_000
#: The first memory limit of the tests that make DuckDB run short of memory themselves.
FIRST_MB = 64
STATEMENT_OUT_OF_MEMORY = (
    "Out of Memory Error: failed to allocate data of size 3.0 MiB (12.2/15.2 MiB used)"
)
COMMIT_OUT_OF_MEMORY = (
    "TransactionContext Error: Failed to commit: could not allocate block of size 256.0 KiB"
    " (30.3 MiB/30.5 MiB used)"
)


class Recorder:
    """Every event a module logs, by level."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def __getattr__(self, level: str) -> Any:
        def record(event: str, **fields: Any) -> None:
            with self._lock:
                self.seen.append((level, event, fields))

        return record

    def named(self, event: str) -> list[dict[str, Any]]:
        return [fields for _level, name, fields in self.seen if name == event]


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """The DuckDB target's and the retry module's events, with a first limit of FIRST_MB
    (room for the tests' rows: what runs short of it is made to) and no limit raised by
    an earlier test."""
    recorder = Recorder()
    monkeypatch.setattr(duckdb_target, "log", recorder)
    monkeypatch.setattr("sitoo_sync.warehouse.retry.log", recorder)
    monkeypatch.setattr(duckdb_memory, "MEMORY_LIMIT_MB", FIRST_MB)
    monkeypatch.setattr(LIMITS, "_mb", {})
    return recorder


def items(first: int, count: int = ROWS) -> pa.Table:
    ids = range(first, first + count)
    return pa.table(
        {
            "item_id": pa.array(ids, pa.int64()),
            "label": pa.array([f"{i:040d}" for i in ids], pa.string()),
        }
    )


def limit_mb(warehouse: DuckDBWarehouse) -> int:
    """DuckDB's memory limit as the database reports it, in (decimal) MB as it was set."""
    (value,) = warehouse.query("SELECT current_setting('memory_limit')")[0]
    number, unit = str(value).split()
    mib = float(number) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]
    return round(mib * 1024**2 / 1000**2)


def stored_ids(warehouse: DuckDBWarehouse) -> list[int]:
    return [r[0] for r in warehouse.query("SELECT item_id FROM memory_items ORDER BY 1")]


def raises(recorder: Recorder) -> list[tuple[int, int]]:
    return [(e["from_mb"], e["to_mb"]) for e in recorder.named("duckdb_memory_limit_raised")]


def test_a_tick_that_outgrows_the_first_limit_raises_it_and_loads_each_entry_once(
    sim: Simulator, tmp_path: Path, sync: SyncFn, logged: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole tick starting at 1 MB (DuckDB itself runs short, in its statements)
    succeeds, each journal entry stored once and counted once in sync_state, the limit
    doubled step by step; the next warehouse on the file starts at the raised limit."""
    monkeypatch.setattr(duckdb_memory, "MEMORY_LIMIT_MB", 1)
    settings = settings_for(sim, tmp_path / "w.duckdb")
    report = sync(settings)
    assert report.ok, [r.error for r in report.results]
    assert_each_entry_once(sim, query(settings, "SELECT registerid, id FROM journal_entries"))
    journal = select_streams(["journal_entries"])[0]
    stored = sum(query(settings, f'SELECT count(*) FROM "{t.name}"')[0][0] for t in journal.tables)
    counted = query(
        settings, "SELECT sum(rows_loaded) FROM sync_state WHERE stream = 'journal_entries'"
    )[0][0]
    assert counted == stored
    steps = raises(logged)
    assert steps[:2] == [(1, 2), (2, 4)], "a tick needs more than 1 MB"
    assert all(to == 2 * was for was, to in steps)
    again = DuckDBWarehouse(settings.target_url)
    try:
        assert limit_mb(again) == steps[-1][1]
    finally:
        again.close()


class Flaky:
    """A DuckDB connection whose next commits fail as a commit that ran out of memory does
    (rolled back); with `invalidates`, DuckDB then gives up on the database, as it does
    when a commit fails midway."""

    def __init__(self, real: duckdb.DuckDBPyConnection) -> None:
        self._real = real
        self.failing_commits = 0
        self.invalidates = False
        self.dead = False

    def commit(self) -> None:
        if self.failing_commits:
            self.failing_commits -= 1
            self._real.rollback()
            self.dead = self.invalidates
            raise duckdb.TransactionException(COMMIT_OUT_OF_MEMORY)
        self._real.commit()

    def __getattr__(self, name: str) -> Any:
        if self.dead and name in ("execute", "begin", "sql"):

            def invalidated(*_args: Any, **_kwargs: Any) -> Any:
                raise duckdb.FatalException(
                    "FATAL Error: Failed: database has been invalidated because of a "
                    "previous fatal error."
                )

            return invalidated
        return getattr(self._real, name)


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> list[Flaky]:
    """The main connection of every DuckDB warehouse opened in the test, as a Flaky."""
    opened: list[Flaky] = []
    connect = DuckDBWarehouse._connect

    def flaky_connect(self: DuckDBWarehouse) -> Any:
        opened.append(Flaky(connect(self)))
        return opened[-1]

    monkeypatch.setattr(DuckDBWarehouse, "_connect", flaky_connect)
    return opened


def loader(warehouse: DuckDBWarehouse, fails_below_mb: int = 0) -> tuple[list[int], Any]:
    """A load of ITEMS to run in `retried`, and the limits it ran under; a run under less
    than `fails_below_mb` inserts the rows and then runs out of memory, as a statement can."""
    runs: list[int] = []

    def load() -> None:
        runs.append(limit_mb(warehouse))
        warehouse.insert(ITEMS, items(1))
        if runs[-1] < fails_below_mb:
            raise duckdb.OutOfMemoryException(STATEMENT_OUT_OF_MEMORY)

    return runs, load


def opened(tmp_path: Path) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    warehouse.ensure_schema([ITEMS])
    return warehouse


def no_pause(_seconds: float) -> None:
    """A retry's pause, skipped."""


def test_a_transaction_whose_statement_ran_out_of_memory_runs_again_whole(
    tmp_path: Path, logged: Recorder
) -> None:
    """A load whose statement runs out of memory is rolled back and run again under a
    doubled limit: every row once, the re-runs logged as transactions retried for memory."""
    warehouse = opened(tmp_path)
    try:
        runs, load = loader(warehouse, fails_below_mb=4 * FIRST_MB)
        retried(warehouse, load, what="load", sleep=no_pause)
        assert runs == [FIRST_MB, 2 * FIRST_MB, 4 * FIRST_MB]
        assert stored_ids(warehouse) == list(range(1, ROWS + 1))
        retries = logged.named("transaction_retried")
        assert [(r["run"], r["conflict"]) for r in retries] == [
            (1, "out of memory"),
            (2, "out of memory"),
        ]
        assert raises(logged) == [(FIRST_MB, 2 * FIRST_MB), (2 * FIRST_MB, 4 * FIRST_MB)]
    finally:
        warehouse.close()


def test_running_short_up_to_the_ceiling_is_not_given_up_as_a_conflict(
    tmp_path: Path, logged: Recorder
) -> None:
    """Runs that ran out of memory do not count against the attempts a conflict gets: a
    load that needs the ceiling's limit runs five times (64 to 1024 MB) and succeeds."""
    warehouse = opened(tmp_path)
    try:
        runs, load = loader(warehouse, fails_below_mb=duckdb_memory.MEMORY_LIMIT_CEILING_MB)
        retried(warehouse, load, what="load", sleep=no_pause)
        assert runs == [64, 128, 256, 512, 1024]
        assert stored_ids(warehouse) == list(range(1, ROWS + 1))
        assert not logged.named("transaction_given_up")
    finally:
        warehouse.close()


def test_a_commit_that_ran_out_of_memory_runs_again_whole(
    tmp_path: Path, logged: Recorder, flaky: list[Flaky]
) -> None:
    """A commit that fails for want of memory (DuckDB has rolled it back) runs the whole
    transaction again under a raised limit, and its rows are stored once."""
    warehouse = opened(tmp_path)
    try:
        flaky[0].failing_commits = 1
        runs, load = loader(warehouse)
        retried(warehouse, load, what="load", sleep=no_pause)
        assert runs == [FIRST_MB, 2 * FIRST_MB]
        assert stored_ids(warehouse) == list(range(1, ROWS + 1))
        assert [r["conflict"] for r in logged.named("transaction_retried")] == ["out of memory"]
    finally:
        warehouse.close()


def test_a_database_invalidated_by_a_failed_commit_is_not_written_again(
    tmp_path: Path, logged: Recorder, flaky: list[Flaky]
) -> None:
    """When a commit that ran out of memory left DuckDB's database invalidated, nothing
    runs again (whether it landed is the next opening's to read): the error is raised as
    DuckDB raised it, and the next warehouse on the file starts at the raised limit."""
    warehouse = opened(tmp_path)
    flaky[0].failing_commits = 1
    flaky[0].invalidates = True
    runs, load = loader(warehouse)
    with pytest.raises(duckdb.TransactionException, match="Failed to commit"):
        retried(warehouse, load, what="load", sleep=no_pause)
    warehouse.close()
    assert runs == [FIRST_MB]
    assert not logged.named("transaction_retried")
    invalidated = logged.named("duckdb_invalidated")
    assert [(e["memory_limit_mb"], e["next_memory_limit_mb"]) for e in invalidated] == [
        (FIRST_MB, 2 * FIRST_MB)
    ]
    again = DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    try:
        assert stored_ids(again) == []
        assert limit_mb(again) == 2 * FIRST_MB
    finally:
        again.close()


def short_once(
    monkeypatch: pytest.MonkeyPatch, failure: Exception, statement: str, *, ran: bool = False
) -> list[Any]:
    """DuckDBWarehouse._execute raising `failure` once, at the first statement that starts
    with `statement` (after running it, with `ran`); the list is empty once it has."""
    execute = DuckDBWarehouse._execute
    failures: list[Any] = [failure]

    def short(self: DuckDBWarehouse, sql: str, *args: Any) -> Any:
        if failures and sql.startswith(statement):
            if ran:
                execute(self, sql, *args)
            raise failures.pop()
        return execute(self, sql, *args)

    monkeypatch.setattr(DuckDBWarehouse, "_execute", short)
    return failures


def second_state_write_short(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """DuckDBWarehouse._write_state running out of memory at its second call; the list
    holds the partition of every call."""
    write = DuckDBWarehouse._write_state
    calls: list[str] = []

    def second_short(self: DuckDBWarehouse, stream: str, partition: str, *a: Any, **k: Any) -> None:
        calls.append(partition)
        if len(calls) == 2:
            raise duckdb.OutOfMemoryException(STATEMENT_OUT_OF_MEMORY)
        write(self, stream, partition, *a, **k)

    monkeypatch.setattr(DuckDBWarehouse, "_write_state", second_short)
    return calls


class LandedFlaky(Flaky):
    """A Flaky whose failing commit lands first, then invalidates the database (the case
    only the next opening of the file can tell from one rolled back)."""

    def commit(self) -> None:
        if self.failing_commits:
            self.failing_commits -= 1
            self._real.commit()
            self.dead = True
            raise duckdb.TransactionException(COMMIT_OUT_OF_MEMORY)
        self._real.commit()


@pytest.mark.parametrize("landed", [False, True], ids=["rolled back", "landed"])
def test_an_invalidated_database_is_found_when_another_thread_raised_the_limit_first(
    tmp_path: Path,
    logged: Recorder,
    flaky: list[Flaky],
    monkeypatch: pytest.MonkeyPatch,
    landed: bool,
) -> None:
    """A commit that invalidated the database is not run again when another thread had
    raised the limit meanwhile and a drain lets the file go right after (the reopened file
    would be valid): the raise still asks DuckDB, which tells, and a window landed before
    the failure is not counted twice."""
    monkeypatch.setattr(duckdb_target, "GAP_SECONDS", 0.0)
    warehouse = opened(tmp_path)
    warehouse.ensure_schema([SYNC_STATE])
    if landed:
        flaky[0].__class__ = LandedFlaky
    flaky[0].failing_commits = 1
    flaky[0].invalidates = True
    runs: list[int] = []
    failure = duckdb.OutOfMemoryException(STATEMENT_OUT_OF_MEMORY)

    def load() -> None:
        runs.append(len(runs))
        warehouse.upsert(ITEMS, items(1, 10))
        warehouse.set_cursor("s", "p", str(len(runs)), rows=10)
        if len(runs) == 1:
            # Meanwhile another thread runs short under the first limit and raises it ...
            other = threading.Thread(target=warehouse._raise_memory_limit, args=(FIRST_MB, failure))
            other.start()
            other.join()
            warehouse._turns._draining = True  # ... and another's commit starts a drain

    with pytest.raises(duckdb.TransactionException, match="Failed to commit"):
        retried(warehouse, load, what="load", sleep=no_pause)
    warehouse.close()
    assert runs == [0]
    assert len(logged.named("duckdb_invalidated")) == 1
    again = DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    try:
        state = again.query("SELECT cursor, rows_loaded, windows_loaded FROM sync_state")
        assert state == ([("1", 10, 1)] if landed else [])
    finally:
        again.close()


def test_a_connection_opened_during_a_raise_does_not_lower_the_limit(
    tmp_path: Path, logged: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warehouse connecting to the file while another thread raises its limit (the raise
    recorded and set between the connection reading the limit and setting it) ends with
    DuckDB at the raised limit, not the one it read."""
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    first = opened(tmp_path)
    failure = duckdb.OutOfMemoryException(STATEMENT_OUT_OF_MEMORY)
    first._raise_memory_limit(FIRST_MB, failure)
    reads: list[int] = []
    of = LIMITS.of

    def racing_of(key: str) -> int:
        mb = of(key)
        if sys._getframe(1).f_code.co_name != "_with_raised_limit":
            return mb
        reads.append(mb)
        if len(reads) == 1:  # right after the new connection read it, another thread raises
            other = threading.Thread(target=first._raise_memory_limit, args=(2 * FIRST_MB, failure))
            other.start()
            other.join()
        return mb

    second = DuckDBWarehouse(url)
    try:
        monkeypatch.setattr(LIMITS, "of", racing_of)
        second.query("SELECT 1")  # connects beside `first`
        monkeypatch.setattr(LIMITS, "of", of)
        assert reads[0] == 2 * FIRST_MB
        assert limit_mb(first) == limit_mb(second) == LIMITS.of(first._key) == 4 * FIRST_MB
    finally:
        first.close()
        second.close()


def test_a_statement_of_its_own_that_ran_out_of_memory_runs_again(
    tmp_path: Path, logged: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An insert outside any transaction (autocommitted: it ran whole or not at all) that
    runs out of memory runs again once the limit is raised, and stores its rows once."""
    warehouse = opened(tmp_path)
    failures = short_once(
        monkeypatch, duckdb.OutOfMemoryException(STATEMENT_OUT_OF_MEMORY), "INSERT"
    )
    try:
        warehouse.insert(ITEMS, items(1))
        assert not failures
        assert raises(logged) == [(FIRST_MB, 2 * FIRST_MB)]
        assert stored_ids(warehouse) == list(range(1, ROWS + 1))
    finally:
        warehouse.close()


def test_a_statement_whose_own_commit_failed_is_not_run_again(
    tmp_path: Path, logged: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An autocommitted statement whose commit failed for want of memory (here after it
    landed) is raised, not run again: its rows are stored once, and the limit is raised for
    the next call."""
    warehouse = opened(tmp_path)
    short_once(monkeypatch, duckdb.TransactionException(COMMIT_OUT_OF_MEMORY), "INSERT", ran=True)
    try:
        with pytest.raises(duckdb.TransactionException, match="Failed to commit"):
            warehouse.insert(ITEMS, items(1))
        assert stored_ids(warehouse) == list(range(1, ROWS + 1))
        assert raises(logged) == [(FIRST_MB, 2 * FIRST_MB)]
        assert limit_mb(warehouse) == 2 * FIRST_MB
    finally:
        warehouse.close()


def test_a_statement_in_a_transaction_is_not_run_again_alone(
    tmp_path: Path, logged: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement that runs out of memory inside a transaction ends the transaction, which
    is rolled back and raises MemoryLimitRaised for its runner to run it again whole; the
    statement is not run again inside it."""
    warehouse = opened(tmp_path)
    short_once(monkeypatch, duckdb.OutOfMemoryException(STATEMENT_OUT_OF_MEMORY), "INSERT")
    try:
        with pytest.raises(MemoryLimitRaised), warehouse.transaction():  # noqa: PT012
            warehouse.insert(ITEMS, items(1, 10))
            warehouse.insert(ITEMS, items(11, 10))
        assert stored_ids(warehouse) == []
        assert raises(logged) == [(FIRST_MB, 2 * FIRST_MB)]
    finally:
        warehouse.close()


def test_cursor_moves_of_their_own_run_again_without_counting_twice(
    tmp_path: Path, logged: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cursor moves outside a transaction whose second statement runs out of memory run
    again whole: the rows and windows they add are counted once (a move already written
    would otherwise be added again)."""
    warehouse = opened(tmp_path)
    warehouse.ensure_schema([SYNC_STATE])
    try:
        warehouse.set_cursors("s", [CursorMove("p1", "1", 5, 1), CursorMove("p2", "1", 5, 1)])
        short_once(monkeypatch, duckdb.OutOfMemoryException(STATEMENT_OUT_OF_MEMORY), "INSERT")
        moves = [CursorMove("p1", "2", 10, 1), CursorMove("p3", "2", 7, 1)]
        warehouse.set_cursors("s", moves)  # an UPDATE (p1), then an INSERT (p3)
        counts = warehouse.query(
            "SELECT partition_key, cursor, rows_loaded, windows_loaded FROM sync_state "
            "WHERE stream = 's' ORDER BY 1"
        )
        assert counts == [("p1", "2", 15, 2), ("p2", "1", 5, 1), ("p3", "2", 7, 1)]
        assert raises(logged) == [(FIRST_MB, 2 * FIRST_MB)]
        # One partition twice: the moves go one by one, and the second runs out.
        calls = second_state_write_short(monkeypatch)
        warehouse.set_cursors("s", [CursorMove("p2", "3", 4, 1), CursorMove("p2", "4", 6, 1)])
        assert calls == ["p2"] * 4  # both moves, run again whole
        assert warehouse.query(
            "SELECT cursor, rows_loaded, windows_loaded FROM sync_state WHERE partition_key = 'p2'"
        ) == [("4", 15, 3)]
    finally:
        warehouse.close()


def test_at_the_ceiling_running_out_of_memory_fails_at_once(
    tmp_path: Path, logged: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the limit at its ceiling, running out of memory is raised as DuckDB raised it,
    after one run: nothing is tried again that could only fail again."""
    monkeypatch.setattr(duckdb_memory, "MEMORY_LIMIT_CEILING_MB", FIRST_MB)
    warehouse = opened(tmp_path)
    try:
        runs, load = loader(warehouse, fails_below_mb=2 * FIRST_MB)
        with pytest.raises(duckdb.OutOfMemoryException) as raised:
            retried(warehouse, load, what="load", sleep=no_pause)
        assert not isinstance(raised.value, (MemoryLimitRaised, TransactionConflict))
        assert runs == [FIRST_MB]
        assert not logged.named("transaction_retried")
        assert stored_ids(warehouse) == []
    finally:
        warehouse.close()


def test_failures_under_one_limit_raise_it_once_and_never_lower_it(
    tmp_path: Path, logged: Recorder
) -> None:
    """Two failures seen under the same limit double it once; a warehouse that ran short
    under a limit another one has raised since runs again under that one, not lowering
    it; a big read's limit is kept by a warehouse opened later."""
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    failure = duckdb.OutOfMemoryException(STATEMENT_OUT_OF_MEMORY)
    first = DuckDBWarehouse(url)
    second = DuckDBWarehouse(url)
    try:
        assert first._raise_memory_limit(FIRST_MB, failure) == 2 * FIRST_MB
        assert first._raise_memory_limit(FIRST_MB, failure) == 2 * FIRST_MB  # raised already
        assert first._raise_memory_limit(2 * FIRST_MB, failure) == 4 * FIRST_MB
        assert second._raise_memory_limit(FIRST_MB, failure) == 4 * FIRST_MB
        assert limit_mb(first) == limit_mb(second) == 4 * FIRST_MB
        assert raises(logged) == [(FIRST_MB, 2 * FIRST_MB), (2 * FIRST_MB, 4 * FIRST_MB)]
        first.allow_big_reads()
        third = DuckDBWarehouse(url)
        try:
            assert limit_mb(third) == limit_mb(first) > 1900  # 2048 MB, shown as 1.9 GiB
        finally:
            third.close()
    finally:
        first.close()
        second.close()


def test_a_raised_limit_lets_other_warehouses_open_the_file_beside_it(
    tmp_path: Path, logged: Recorder
) -> None:
    """Once one warehouse raised the limit, another of the process (another stream's
    tick) opens the same file while the first holds it, and the first opens it again
    after letting go while the other holds it (DuckDB refuses a second connection whose
    config differs: the limit is set after connecting); once the file was let go by all,
    the next opening starts at the raised limit."""
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    first = opened(tmp_path)
    second: DuckDBWarehouse | None = None
    try:
        first._raise_memory_limit(FIRST_MB, duckdb.OutOfMemoryException(STATEMENT_OUT_OF_MEMORY))
        second = DuckDBWarehouse(url)
        assert limit_mb(second) == 2 * FIRST_MB
        first.close()
        assert stored_ids(first) == []  # opened again beside `second`
        first.close()
        second.close()
        assert limit_mb(first) == 2 * FIRST_MB  # a new instance of the file
    finally:
        first.close()
        if second is not None:
            second.close()


def test_a_file_has_one_limit_however_its_path_is_spelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative path, a path through `..` and the absolute path of one file share its
    limit; an in-memory database keeps its name."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    absolute = duckdb_memory.file_key(str(tmp_path / "w.duckdb"))
    assert duckdb_memory.file_key("w.duckdb") == absolute
    assert duckdb_memory.file_key("sub/../w.duckdb") == absolute
    assert duckdb_memory.file_key(":memory:") == ":memory:"


def test_running_out_of_memory_is_told_from_other_errors() -> None:
    """DuckDB's own out-of-memory error and a commit that failed for want of memory are
    recognised; a constraint, a syntax error, an invalidated database or another error
    quoting the words are not."""
    assert ran_out_of_memory(duckdb.OutOfMemoryException(STATEMENT_OUT_OF_MEMORY))
    assert ran_out_of_memory(duckdb.TransactionException(COMMIT_OUT_OF_MEMORY))
    assert not ran_out_of_memory(duckdb.ConstraintException("Duplicate key"))
    assert not ran_out_of_memory(duckdb.ParserException("syntax error at or near"))
    assert not ran_out_of_memory(
        duckdb.FatalException(f"FATAL Error: database has been invalidated: {COMMIT_OUT_OF_MEMORY}")
    )
    assert not ran_out_of_memory(
        duckdb.ConstraintException("Duplicate key 'could not allocate block' violates")
    )
    assert not ran_out_of_memory(ValueError(COMMIT_OUT_OF_MEMORY))


def test_a_cursor_reset_that_ran_out_of_memory_runs_again_whole(
    sim: Simulator, tmp_path: Path, logged: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sitoo-sync reset` whose outcome write runs out of memory after the cursor moved runs
    that partition's move again whole under a raised limit: every cursor is cleared and
    every outcome says so, instead of the reset failing half done."""
    settings = settings_for(sim, tmp_path / "w.duckdb")
    warehouse = opened(tmp_path)
    warehouse.ensure_schema([SYNC_STATE])
    try:
        warehouse.set_cursors(
            "journal_entries", [CursorMove("r1", "5", 5, 1), CursorMove("r2", "7", 3, 1)]
        )
        calls = second_state_write_short(monkeypatch)  # r1's outcome runs short
        assert reset_stream(settings, warehouse, STREAMS["journal_entries"]) == ["r1", "r2"]
        assert calls == ["r1", "r1", "r1", "r1", "r2", "r2"]
        assert warehouse.query(
            "SELECT partition_key, cursor, last_status, rows_loaded FROM sync_state "
            "WHERE stream = 'journal_entries' ORDER BY 1"
        ) == [("r1", None, "reset", 5), ("r2", None, "reset", 3)]
        assert raises(logged) == [(FIRST_MB, 2 * FIRST_MB)]
    finally:
        warehouse.close()


def test_verify_whose_checks_ran_out_of_memory_reads_them_again_whole(
    tmp_path: Path, logged: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`sitoo-sync verify` whose snapshot runs out of memory midway reads every check again
    (under the limit it lifts for big reads): each check is reported once, not the failure."""
    skip_reason = verify_run._skip_reason
    calls: list[str] = []

    def short_once(check: Any, source: Any) -> str:
        calls.append(check.name)
        if len(calls) == 2:
            raise duckdb.OutOfMemoryException(STATEMENT_OUT_OF_MEMORY)
        return skip_reason(check, source)

    monkeypatch.setattr(verify_run, "_skip_reason", short_once)
    warehouse = opened(tmp_path)
    try:
        run = verify_run.run_verify(warehouse, Scope())
    finally:
        warehouse.close()
    assert [r.check.name for r in run.results] == [c.name for c in CHECKS]
    assert len(calls) == len(CHECKS) + 2
    retried_runs = logged.named("transaction_retried")
    assert [(e["what"], e["conflict"]) for e in retried_runs] == [
        ("verify checks", "out of memory")
    ]
