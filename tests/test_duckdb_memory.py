"""DuckDB starts a tick with a small memory limit; work that runs out of it raises the limit
(doubling, once for all threads that met it, up to a ceiling) and runs again, whole, so a
tick never fails for it and nothing is loaded twice."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from sitoo_sync.normalize.tables import Table, integer, text
from sitoo_sync.simulator import Simulator
from sitoo_sync.warehouse import duckdb as duckdb_target
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse, OutOfMemory, out_of_memory
from sitoo_sync.warehouse.retry import retried
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
    (room for the tests' rows: what runs short of it is made to) and no limit learned by
    an earlier test."""
    recorder = Recorder()
    monkeypatch.setattr(duckdb_target, "log", recorder)
    monkeypatch.setattr("sitoo_sync.warehouse.retry.log", recorder)
    monkeypatch.setattr(duckdb_target, "MEMORY_LIMIT_MB", FIRST_MB)
    monkeypatch.setattr(duckdb_target, "_RAISED_MB", {})
    return recorder


def items(first: int, count: int = ROWS) -> pa.Table:
    ids = range(first, first + count)
    return pa.table(
        {
            "item_id": pa.array(ids, pa.int64()),
            "label": pa.array([f"{i:040d}" for i in ids], pa.string()),
        }
    )


def limit_mb(warehouse: DuckDBWarehouse) -> float:
    """DuckDB's memory limit as the database reports it, in MiB."""
    (value,) = warehouse.query("SELECT current_setting('memory_limit')")[0]
    number, unit = str(value).split()
    return float(number) * {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024}[unit]


def stored_ids(warehouse: DuckDBWarehouse) -> list[int]:
    return [r[0] for r in warehouse.query("SELECT item_id FROM memory_items ORDER BY 1")]


def test_a_tick_that_outgrows_the_first_limit_raises_it_and_loads_each_entry_once(
    sim: Simulator, tmp_path: Path, sync: SyncFn, logged: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole tick starting at 1 MB (DuckDB itself runs short, in statements and commits)
    succeeds, each journal entry stored once, the limit doubled step by step; the next
    warehouse on the file starts at the raised limit."""
    monkeypatch.setattr(duckdb_target, "MEMORY_LIMIT_MB", 1)
    settings = settings_for(sim, tmp_path / "w.duckdb")
    report = sync(settings)
    assert report.ok, [r.error for r in report.results]
    assert_each_entry_once(sim, query(settings, "SELECT registerid, id FROM journal_entries"))
    raised = logged.named("duckdb_memory_limit_raised")
    assert raised, "a tick needs more than 1 MB: the limit must have been raised"
    assert [(e["from_mb"], e["to_mb"]) for e in raised][:2] == [(1, 2), (2, 4)]
    assert all(e["to_mb"] == 2 * e["from_mb"] for e in raised)
    again = DuckDBWarehouse(settings.target_url)
    try:
        assert limit_mb(again) == pytest.approx(raised[-1]["to_mb"] * 1000**2 / 1024**2, rel=0.01)
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


COMMIT_OUT_OF_MEMORY = (
    "TransactionContext Error: Failed to commit: could not allocate block of size 256.0 KiB"
    " (30.3 MiB/30.5 MiB used)"
)


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


def loader(warehouse: DuckDBWarehouse, first_runs_fail: int = 0) -> tuple[list[int], Any]:
    """A load of ITEMS to run in `retried`, and the count of its runs; its first
    `first_runs_fail` runs insert the rows and then run out of memory, as a statement can."""
    runs = [0]

    def load() -> None:
        runs[0] += 1
        warehouse.insert(ITEMS, items(1))
        if runs[0] <= first_runs_fail:
            raise duckdb.OutOfMemoryException(
                "Out of Memory Error: failed to allocate data of size 3.0 MiB (12.2/15.2 MiB used)"
            )

    return runs, load


def opened(tmp_path: Path) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    warehouse.ensure_schema([ITEMS])
    return warehouse


def test_a_transaction_whose_statement_ran_out_of_memory_runs_again_whole(
    tmp_path: Path, logged: Recorder
) -> None:
    """A load whose statement runs out of memory is rolled back and run again under a
    doubled limit: every row once, the re-run logged as a transaction retried for memory."""
    warehouse = opened(tmp_path)
    try:
        runs, load = loader(warehouse, first_runs_fail=2)
        retried(warehouse, load, what="load", sleep=lambda _s: None)
        assert runs == [3]
        assert stored_ids(warehouse) == list(range(1, ROWS + 1))
        retries = logged.named("transaction_retried")
        assert [(r["attempt"], r["conflict"]) for r in retries] == [
            (1, "out of memory"),
            (2, "out of memory"),
        ]
        raised = logged.named("duckdb_memory_limit_raised")
        assert [(e["from_mb"], e["to_mb"]) for e in raised] == [(64, 128), (128, 256)]
        assert limit_mb(warehouse) == pytest.approx(256 * 1000**2 / 1024**2, rel=0.01)
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
        retried(warehouse, load, what="load", sleep=lambda _s: None)
        assert runs == [2]
        assert stored_ids(warehouse) == list(range(1, ROWS + 1))
        assert [r["conflict"] for r in logged.named("transaction_retried")] == ["out of memory"]
        assert limit_mb(warehouse) == pytest.approx(128 * 1000**2 / 1024**2, rel=0.01)
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
        retried(warehouse, load, what="load", sleep=lambda _s: None)
    warehouse.close()
    assert runs == [1]
    assert not logged.named("transaction_retried")
    assert [
        (e["memory_limit_mb"], e["next_memory_limit_mb"])
        for e in logged.named("duckdb_invalidated")
    ] == [(64, 128)]
    again = DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    try:
        assert stored_ids(again) == []
        assert limit_mb(again) == pytest.approx(128 * 1000**2 / 1024**2, rel=0.01)
    finally:
        again.close()


def test_a_statement_of_its_own_that_ran_out_of_memory_runs_again(
    tmp_path: Path, logged: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An insert outside any transaction (autocommitted: it ran whole or not at all) that
    runs out of memory runs again once the limit is raised, and stores its rows once."""
    warehouse = opened(tmp_path)
    execute = DuckDBWarehouse._execute
    failures = [duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")]

    def short_of_memory(self: DuckDBWarehouse, sql: str, *args: Any) -> Any:
        if failures and sql.startswith("INSERT"):
            raise failures.pop()
        return execute(self, sql, *args)

    monkeypatch.setattr(DuckDBWarehouse, "_execute", short_of_memory)
    try:
        warehouse.insert(ITEMS, items(1))
        assert not failures
        assert [(e["from_mb"], e["to_mb"]) for e in logged.named("duckdb_memory_limit_raised")] == [
            (64, 128)
        ]
        assert stored_ids(warehouse) == list(range(1, ROWS + 1))
    finally:
        warehouse.close()


def test_at_the_ceiling_running_out_of_memory_fails_at_once(
    tmp_path: Path, logged: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the limit at its ceiling, running out of memory is raised as DuckDB raised it,
    after one run: nothing is tried again that could only fail again."""
    monkeypatch.setattr(duckdb_target, "MEMORY_LIMIT_CEILING_MB", FIRST_MB)
    warehouse = opened(tmp_path)
    try:
        runs, load = loader(warehouse, first_runs_fail=1)
        with pytest.raises(duckdb.Error) as raised:
            retried(warehouse, load, what="load", sleep=lambda _s: None)
        assert out_of_memory(raised.value)
        assert not isinstance(raised.value, OutOfMemory)
        assert runs == [1]
        assert not logged.named("transaction_retried")
        assert stored_ids(warehouse) == []
    finally:
        warehouse.close()


def test_threads_that_ran_out_under_one_limit_raise_it_once(
    tmp_path: Path, logged: Recorder
) -> None:
    """Two failures seen under the same limit double it once; a failure under the raised
    limit doubles it again."""
    warehouse = DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    failure = duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")
    try:
        assert warehouse._raise_memory_limit(64, failure)
        assert warehouse._raise_memory_limit(64, failure)  # the other thread: raised already
        assert limit_mb(warehouse) == pytest.approx(128 * 1000**2 / 1024**2, rel=0.01)
        assert warehouse._raise_memory_limit(128, failure)
        assert [(e["from_mb"], e["to_mb"]) for e in logged.named("duckdb_memory_limit_raised")] == [
            (64, 128),
            (128, 256),
        ]
    finally:
        warehouse.close()


def test_a_raised_limit_lets_other_warehouses_open_the_file_beside_it(
    tmp_path: Path, logged: Recorder
) -> None:
    """Once one warehouse raised the limit, another of the process (another stream's
    tick) opens the same file while the first holds it, starting at the raised limit, and
    the first opens it again after letting go while the other holds it (DuckDB refuses a
    second connection whose config differs: the limit is set after connecting)."""
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    first = opened(tmp_path)
    failure = duckdb.OutOfMemoryException("Out of Memory Error: could not allocate block")
    second: DuckDBWarehouse | None = None
    try:
        assert first._raise_memory_limit(FIRST_MB, failure)
        second = DuckDBWarehouse(url)
        assert limit_mb(second) == pytest.approx(2 * FIRST_MB * 1000**2 / 1024**2, rel=0.01)
        first.close()
        assert stored_ids(first) == []  # opened again beside `second`
        assert limit_mb(first) == pytest.approx(2 * FIRST_MB * 1000**2 / 1024**2, rel=0.01)
    finally:
        first.close()
        if second is not None:
            second.close()


def test_out_of_memory_is_told_from_other_errors() -> None:
    """DuckDB's own out-of-memory error and a commit that failed for want of memory are
    recognised; a constraint or a syntax error is not."""
    assert out_of_memory(duckdb.OutOfMemoryException("Out of Memory Error: failed to pin"))
    assert out_of_memory(
        duckdb.TransactionException(
            "TransactionContext Error: Failed to commit: could not allocate block of size"
            " 256.0 KiB (15.0 MiB/15.2 MiB used)"
        )
    )
    assert not out_of_memory(duckdb.ConstraintException("Duplicate key"))
    assert not out_of_memory(duckdb.ParserException("syntax error at or near"))
    assert not out_of_memory(ValueError("could not allocate block"))
