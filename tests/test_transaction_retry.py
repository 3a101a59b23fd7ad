"""A transaction that loses a conflict with another writer is run again whole, a few times;
any other error is not; and the dialects tell a conflict from the rest."""

from __future__ import annotations

import importlib
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from sitoo_sync.commit import PartitionLoad, load_group
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.journal_entries import TABLES
from sitoo_sync.normalize.records import NormalizedWindow
from sitoo_sync.normalize.tables import Table, integer, text
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES, Warehouse
from sitoo_sync.warehouse.dialects import dialect_for
from sitoo_sync.warehouse.retry import ATTEMPTS, TransactionConflict, retried
from sitoo_sync.warehouse.sqla import SqlWarehouse
from tests.conftest import SyncFn
from tests.support import assert_each_entry_once, target_settings
from tests.targets import Target, target_for

#: PyMySQL ships no type information: its errors are reached untyped.
pymysql: Any = importlib.import_module("pymysql")
SERVERS = ["postgres", "mysql"]
ENTRIES = next(t for t in TABLES if t.name == "journal_entries")
#: Ids from 1: an id 0 in a lone integer key becomes MySQL's next AUTO_INCREMENT value.
ITEMS = Table(
    name="retry_items",
    columns=(integer("item_id", nullable=False), text("partition")),
    key=("item_id",),
)


@dataclass(frozen=True)
class Items:
    """A stream of one table, enough for `load_group`."""

    name: str = "retry_items"
    tables: tuple[Table, ...] = (ITEMS,)


class Events:
    """What the retry module logs, by level."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def _add(self, level: str, event: str, **fields: Any) -> None:
        with self._lock:
            self.seen.append((level, event, fields))

    def warning(self, event: str, **fields: Any) -> None:
        self._add("warning", event, **fields)

    def error(self, event: str, **fields: Any) -> None:
        self._add("error", event, **fields)

    def named(self, event: str) -> list[dict[str, Any]]:
        return [fields for _level, name, fields in self.seen if name == event]


@pytest.fixture
def events(monkeypatch: pytest.MonkeyPatch) -> Events:
    recorder = Events()
    monkeypatch.setattr("sitoo_sync.warehouse.retry.log", recorder)
    return recorder


def conflict_error(target_name: str) -> sa.exc.OperationalError:
    """A deadlock as the driver raises it, wrapped as SQLAlchemy wraps it: PyMySQL's error
    1213, psycopg's SQLSTATE 40P01."""
    orig: Exception
    if target_name == "mysql":
        orig = pymysql.err.OperationalError(
            1213, "Deadlock found when trying to get lock; try restarting transaction"
        )
    else:
        orig = psycopg.errors.DeadlockDetected("deadlock detected")
    return sa.exc.OperationalError("UPDATE sync_state ...", None, orig)


def not_a_conflict(target_name: str) -> sa.exc.IntegrityError:
    """A duplicate key as the driver raises it: retrying cannot help."""
    orig: Exception
    if target_name == "mysql":
        orig = pymysql.err.IntegrityError(1062, "Duplicate entry '1' for key 'PRIMARY'")
    else:
        orig = psycopg.errors.UniqueViolation("duplicate key value violates unique constraint")
    return sa.exc.IntegrityError("INSERT INTO retry_items ...", None, orig)


@contextmanager
def warehouse_on(target: Target) -> Iterator[Warehouse]:
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, ITEMS])
        yield warehouse
    finally:
        warehouse.close()


def items(ids: range, partition: str) -> NormalizedWindow:
    data = rows_to_arrow(ITEMS, [[i, partition] for i in ids])
    return NormalizedWindow({ITEMS.name: data}, data.select(["item_id"]))


def load(partition: str, ids: range) -> PartitionLoad:
    return PartitionLoad(partition, items(ids, partition), f"c{ids.stop}", windows=1)


def stored_items(warehouse: Warehouse) -> Counter[int]:
    return Counter(int(row["item_id"]) for row in warehouse.read_table(ITEMS))


def rows_loaded(warehouse: Warehouse, stream: str = Items.name) -> dict[str, int]:
    return {s.partition: s.rows_loaded for s in warehouse.states() if s.stream == stream}


def test_the_dialects_tell_a_conflict_from_any_other_error() -> None:
    """Deadlocks and lock wait timeouts (MySQL 1213, 1205), serialization failures and
    deadlocks (PostgreSQL 40001, 40P01) are conflicts; a duplicate key, another dialect's
    error or a plain exception is not."""
    my, pg, lite = (
        dialect_for(sa.create_engine(url).dialect)  # no connection is made
        for url in ("mysql+pymysql://u@h/db", "postgresql+psycopg://u@h/db", "sqlite://")
    )

    def wrapped(orig: Exception) -> sa.exc.DBAPIError:
        return sa.exc.OperationalError("SELECT 1", None, orig)

    assert my.conflict(conflict_error("mysql")) == "deadlock (MySQL error 1213)"
    timeout = pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")
    assert my.conflict(wrapped(timeout)) == "lock wait timeout (MySQL error 1205)"
    assert my.conflict(not_a_conflict("mysql")) is None
    assert my.conflict(wrapped(pymysql.err.OperationalError(2013, "Lost connection"))) is None
    assert pg.conflict(conflict_error("postgres")) == "deadlock (SQLSTATE 40P01)"
    serialization = psycopg.errors.SerializationFailure("could not serialize access")
    assert pg.conflict(wrapped(serialization)) == "serialization failure (SQLSTATE 40001)"
    assert pg.conflict(not_a_conflict("postgres")) is None
    assert pg.conflict(conflict_error("mysql")) is None
    assert lite.conflict(conflict_error("mysql")) is None
    assert my.conflict(ValueError("1213")) is None


@pytest.mark.parametrize("target_name", SERVERS)
def test_a_real_deadlock_between_two_loads_is_run_again_and_each_row_lands_once(
    target_name: str, tmp_path: Path, events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two group loads on two connections take two partitions' cursors in opposite order:
    the server kills one as a deadlock, it is run again whole once the other commits, and
    every item and every cursor's row count is there once."""
    with (
        target_for(target_name, tmp_path) as target,
        warehouse_on(target) as first,
        warehouse_on(target) as second,
    ):
        with first.transaction():  # the rows the two loads will lock
            first.set_cursor(Items.name, "p1", None, rows=0, windows=0)
            first.set_cursor(Items.name, "p2", None, rows=0, windows=0)
        both_hold_one = threading.Barrier(2)
        for warehouse in (first, second):
            _one_cursor_at_a_time(warehouse, monkeypatch)
            _meet_after_first_cursor(warehouse, both_hold_one)
        with ThreadPoolExecutor(2) as pool:
            done = [
                pool.submit(
                    load_group, first, Items(), [load("p1", range(1, 6)), load("p2", range(6, 11))]
                ),
                pool.submit(
                    load_group,
                    second,
                    Items(),
                    [load("p2", range(11, 16)), load("p1", range(16, 21))],
                ),
            ]
            for future in done:
                future.result(timeout=120)
        assert stored_items(first) == Counter(range(1, 21))
        assert rows_loaded(first) == {"p1": 10, "p2": 10}
    retries = events.named("transaction_retried")
    assert len(retries) == 1
    assert retries[0]["conflict"].startswith("deadlock")
    assert retries[0]["what"] == "load"
    assert retries[0]["attempt"] == 1
    assert not any(isinstance(v, (list, dict)) for v in retries[0].values())  # no row data


def _one_cursor_at_a_time(warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a group load write its cursors row by row (`set_cursor`), where these tests
    hook in: PostgreSQL's many-row upsert writes them in one statement, in key order."""
    sql = getattr(warehouse, "sql", None)
    if sql is not None:
        monkeypatch.setattr(sql, "upsert_adding", lambda *_args, **_kwargs: False)


def _meet_after_first_cursor(warehouse: Warehouse, barrier: threading.Barrier) -> None:
    """Make `warehouse`'s first attempt wait, holding its first cursor's row, until the other
    holds its own: then each one's second cursor is the other's first."""
    real = warehouse.set_cursor
    calls: list[str] = []

    def set_cursor(stream: str, partition: str, cursor: str | None, **counts: int) -> None:
        real(stream, partition, cursor, **counts)
        calls.append(partition)
        if len(calls) == 1:
            barrier.wait(timeout=60)

    warehouse.set_cursor = set_cursor  # type: ignore[method-assign]


@pytest.mark.parametrize("target_name", SERVERS)
def test_a_conflict_on_the_first_attempt_is_retried_and_nothing_doubles(
    target_name: str, tmp_path: Path, events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The driver's deadlock error raised after a load wrote its rows and moved its cursor:
    the transaction is rolled back and run again, and rows and counts are there once."""
    failures = iter([conflict_error(target_name)])
    with target_for(target_name, tmp_path) as target, warehouse_on(target) as warehouse:
        real = warehouse.set_cursor

        def set_cursor(*args: Any, **kwargs: Any) -> None:
            real(*args, **kwargs)
            error = next(failures, None)
            if error is not None:
                raise error

        monkeypatch.setattr(warehouse, "set_cursor", set_cursor)
        _one_cursor_at_a_time(warehouse, monkeypatch)
        load_group(warehouse, Items(), [load("p1", range(1, 6)), load("p2", range(6, 9))])
        assert stored_items(warehouse) == Counter(range(1, 9))
        assert rows_loaded(warehouse) == {"p1": 5, "p2": 3}
    assert [e["attempt"] for e in events.named("transaction_retried")] == [1]


@pytest.mark.parametrize("target_name", SERVERS)
def test_an_error_that_is_no_conflict_is_raised_at_once(
    target_name: str, tmp_path: Path, events: Events
) -> None:
    """A duplicate key is not retried: the body runs once, the error is the driver's."""
    runs: list[int] = []

    def body() -> None:
        runs.append(1)
        raise not_a_conflict(target_name)

    with (
        target_for(target_name, tmp_path) as target,
        warehouse_on(target) as warehouse,
        pytest.raises(sa.exc.IntegrityError),
    ):
        retried(warehouse, body, what="test")
    assert runs == [1]
    assert events.seen == []


@pytest.mark.parametrize("target_name", SERVERS)
def test_a_conflict_that_keeps_coming_is_given_up_with_a_clear_error(
    target_name: str, tmp_path: Path, events: Events
) -> None:
    """After ATTEMPTS runs that all lost a conflict, the transaction is given up: its rows
    are rolled back, and the error says what, how often and why."""
    pauses: list[float] = []

    def body() -> None:
        warehouse.insert(ITEMS, items(range(1, 4), "p1").tables[ITEMS.name])
        raise conflict_error(target_name)

    with target_for(target_name, tmp_path) as target, warehouse_on(target) as warehouse:
        with pytest.raises(TransactionConflict) as raised:
            retried(warehouse, body, what="load", sleep=pauses.append, stream=Items.name)
        assert stored_items(warehouse) == Counter()
        assert isinstance(raised.value, warehouse.errors)  # a tick ends as on any warehouse error
    message = str(raised.value)
    assert message.startswith(f"load: given up after {ATTEMPTS} attempts")
    assert "deadlock" in message
    assert len(pauses) == ATTEMPTS - 1
    assert pauses == sorted(pauses) or max(pauses) < 1  # short, growing but jittered
    assert [e["attempt"] for e in events.named("transaction_retried")] == [1, 2, 3]
    assert len(events.named("transaction_given_up")) == 1


@pytest.mark.parametrize("target_name", SERVERS)
def test_a_load_inside_a_transaction_is_not_retried_alone(
    target_name: str, tmp_path: Path, events: Events
) -> None:
    """Joined to an outer transaction, a load that hits a conflict raises it: the outer
    transaction, which the server rolled back, is the one to run again."""
    with target_for(target_name, tmp_path) as target, warehouse_on(target) as warehouse:
        runs: list[int] = []

        def body() -> None:
            runs.append(1)
            raise conflict_error(target_name)

        with pytest.raises(sa.exc.OperationalError), warehouse.transaction():
            retried(warehouse, body, what="inner")
    assert runs == [1]
    assert events.seen == []


@pytest.mark.slow
@pytest.mark.parametrize("target_name", SERVERS)
def test_a_tick_whose_group_commits_meet_conflicts_loads_every_entry_once(
    target_name: str, tmp_path: Path, sync: SyncFn, events: Events, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A concurrent journal tick whose group commits lose two conflicts (after writing their
    rows and cursors) ends ok, with every entry once and each register's count right: a
    partition forgets its batch only once its commit has gone through."""
    calls = Counter[str]()
    real = SqlWarehouse.set_cursors

    def set_cursors(self: SqlWarehouse, stream: str, moves: Any) -> None:
        real(self, stream, moves)  # what every group commit calls, whatever the dialect
        calls["all"] += 1
        if calls["all"] in (2, 5):
            raise conflict_error(target_name)

    monkeypatch.setattr(SqlWarehouse, "set_cursors", set_cursors)
    with (
        Simulator.create(SimConfig(seed=71, days=2, registers_per_store=3)) as sim,
        target_for(target_name, tmp_path) as target,
    ):
        settings = target_settings(sim, target, streams=["journal_entries"], concurrency=4)
        report = sync(settings)
        assert report.ok, [r.error for r in report.results if r.error]
        assert_each_entry_once(sim, target.rows(ENTRIES))
        with warehouse_on(target) as warehouse:
            counted = rows_loaded(warehouse, ENTRIES.name)
        assert sum(counted.values()) == report.rows
        assert {r.partition: r.rows for r in report.results} == counted
    assert len(events.named("transaction_retried")) == 2
