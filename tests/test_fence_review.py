"""A review of the fenced cursor moves (commit.py `PartitionLoad.fenced`, dialects'
`move_cursors`): what a second writer of one partition may still write, on PostgreSQL and
MariaDB.

Two warehouses opened on one schema stand for two replicas; the partition lock each thinks
it holds is left out (test_lock_loss_review.py ends real lock sessions). A writer fences
its commits with the cursor and the `windows_loaded` stored with it, as it claimed them or
last committed them (`since`, `since_windows`).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from sitoo_sync.commit import Batch, PartitionLoad, PartitionTakenOver, PartitionWriter, load_group
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.records import NormalizedWindow
from sitoo_sync.normalize.tables import Table, integer, text
from sitoo_sync.results import PartitionResult
from sitoo_sync.streams import STREAMS
from sitoo_sync.streams.cursors import Window
from sitoo_sync.turns import ANY_THREAD
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES, CursorMove, Warehouse
from tests.targets import target_for

SERVERS = ["postgres", "mysql"]
ITEMS = Table(
    name="fence_items",
    columns=(integer("item_id", nullable=False), text("written_by")),
    key=("item_id",),
)
STREAM = "fence_items"
MANUFACTURERS = STREAMS["manufacturers"]  # a REST v2 full listing: a site's rows are marked
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Items:
    """A stream of one table, enough for `load_group`."""

    name: str = STREAM
    tables: tuple[Table, ...] = (ITEMS,)


@contextmanager
def replicas(server: str, tmp_path: Path, *tables: Table) -> Iterator[tuple[Warehouse, Warehouse]]:
    """Two warehouses on one fresh schema of `server`: two replicas' writers."""
    with target_for(server, tmp_path) as target:
        a = open_warehouse(target.url, schema=target.schema)
        b = open_warehouse(target.url, schema=target.schema)
        try:
            a.ensure_schema([*SYSTEM_TABLES, *tables])
            yield a, b
        finally:
            a.close()
            b.close()


def items(ids: range, by: str) -> NormalizedWindow:
    data = rows_to_arrow(ITEMS, [[i, by] for i in ids])
    return NormalizedWindow({ITEMS.name: data}, data.select(["item_id"]))


def fenced(
    partition: str, ids: range, by: str, since: str | None, windows: int, cursor: str
) -> PartitionLoad:
    """`partition`'s batch of `ids` (one window), written by `by`, to move its cursor from
    `since`, stored with `windows` windows loaded."""
    return PartitionLoad(
        partition, items(ids, by), cursor, 1, fenced=True, since=since, since_windows=windows
    )


def written(warehouse: Warehouse) -> dict[int, str]:
    return {int(r["item_id"]): str(r["written_by"]) for r in warehouse.read_table(ITEMS)}


def state(warehouse: Warehouse, partition: str) -> tuple[str | None, int, str | None]:
    [s] = [s for s in warehouse.states() if s.partition == partition]
    return s.cursor, s.rows_loaded, s.last_status


@pytest.mark.parametrize("server", SERVERS)
def test_a_stale_writer_that_reaches_the_cursor_the_new_holder_wrote_writes_nothing(
    server: str, tmp_path: Path
) -> None:
    """Two replicas that load one register's same windows from the same cursor (the new
    holder claimed it where the stale one last committed; same pages, same batch size) end
    each batch at the same cursor: the second to commit is fenced off and writes none of its
    rows or outcome, as README says, on MariaDB as on PostgreSQL."""
    with replicas(server, tmp_path, ITEMS) as (stale, new):
        with stale.transaction():
            stale.set_cursor(STREAM, "r1", "100", rows=0)
        load_group(new, Items(), [fenced("r1", range(1, 4), "new", "100", 1, "200")])
        late = PartitionLoad(
            "r1",
            items(range(1, 4), "stale"),
            "200",
            1,
            "ok",
            fenced=True,
            since="100",
            since_windows=1,
        )
        load_group(stale, Items(), [late])
        assert late.taken_over
        assert written(stale) == {1: "new", 2: "new", 3: "new"}
        assert state(stale, "r1") == ("200", 3, None)


@pytest.mark.parametrize("server", SERVERS)
def test_a_commit_that_leaves_the_cursor_where_it_was_still_fences_the_other_writer(
    server: str, tmp_path: Path
) -> None:
    """The new holder's first batch after its claim can leave the cursor where it was (a
    journal page of entries added in the cursor's own second since the stale holder read
    it); the stale holder's later commit from that cursor is fenced off all the same (the
    count of windows stored with it has moved), so only one writer loads the register."""
    with replicas(server, tmp_path, ITEMS) as (stale, new):
        with stale.transaction():
            stale.set_cursor(STREAM, "r1", "100", rows=0)
        load_group(new, Items(), [fenced("r1", range(1, 3), "new", "100", 1, "100")])
        late = fenced("r1", range(1, 6), "stale", "100", 1, "150")
        load_group(stale, Items(), [late])
        assert late.taken_over
        assert written(stale) == {1: "new", 2: "new"}


def manufacturers_writer(warehouse: Warehouse, cursor: str | None, windows: int) -> PartitionWriter:
    """Site 1's writer of the manufacturers' full listing, from `cursor` stored with
    `windows` windows loaded (its claim)."""
    return PartitionWriter(
        warehouse,
        MANUFACTURERS,
        "1",
        Batch(max_rows=1000, max_seconds=600),
        PartitionResult(MANUFACTURERS.name, "1"),
        None,
        ANY_THREAD,
        {"partition": "1", "now": NOW},
        cursor,
        committed_windows=windows,
    )


def listed(writer: PartitionWriter, ids: list[int], cursor: str) -> None:
    records = [{"externalcompanyid": i, "name": f"m{i}"} for i in ids]
    writer.take(Window(records, cursor, {}), records)


@pytest.mark.parametrize("server", SERVERS)
def test_a_stale_writers_missing_marks_are_fenced_when_its_last_batch_committed_before(
    server: str, tmp_path: Path
) -> None:
    """A full listing whose last page filled its batch (committed as it came) finishes with
    nothing left to commit: when another replica has taken the site over and listed a
    manufacturer added since, the stale replica's finish is fenced off (PartitionTakenOver)
    and marks nothing missing, rather than marking the new holder's fresh row gone and
    writing its own "ok"."""
    with replicas(server, tmp_path, *MANUFACTURERS.tables) as (stale, new):
        a = manufacturers_writer(stale, None, 0)
        listed(a, [1, 2], "100")
        a.commit()  # the batch was full: the listing's last page
        b = manufacturers_writer(new, "100", 1)  # claimed where the stale replica left it
        listed(b, [1, 2, 3], "200")
        b.finish(None, mark=True, now=NOW)
        with pytest.raises(PartitionTakenOver):
            a.finish(None, mark=True, now=NOW)
        rows = new.read_table(MANUFACTURERS.parent)
        assert {r["externalcompanyid"]: r["missing_since"] for r in rows} == {
            1: None,
            2: None,
            3: None,
        }


@pytest.mark.parametrize("server", SERVERS)
def test_a_stale_writers_failed_outcome_is_fenced_when_its_last_batch_committed_before(
    server: str, tmp_path: Path
) -> None:
    """A stale replica whose partition fails after its last batch committed writes no
    "failed" over the site another replica has taken over and finished (PartitionTakenOver):
    the new holder's "ok" stays."""
    with replicas(server, tmp_path, *MANUFACTURERS.tables) as (stale, new):
        a = manufacturers_writer(stale, None, 0)
        listed(a, [1, 2], "100")
        a.commit()
        b = manufacturers_writer(new, "100", 1)
        listed(b, [1, 2, 3], "200")
        b.finish(None, mark=True, now=NOW)
        with pytest.raises(PartitionTakenOver):
            a.stopped("failed", "the API said no")
        [s] = [s for s in new.states() if s.partition == "1"]
        assert (s.cursor, s.last_status) == ("200", "ok")


ODD_KEYS = ["", "a b", 'q"uote', "back\\slash", "ques?tion", "it's", "{GUID-é}", "$1", "%s"]


@pytest.mark.parametrize("server", SERVERS)
def test_fenced_moves_of_partitions_with_odd_keys_are_each_judged_by_their_own_since(
    server: str, tmp_path: Path
) -> None:
    """Partition keys with spaces, quotes, backslashes, `?` (PostgreSQL's JSONB key
    operator), placeholders or non-ASCII letters, and the account's '', each find their own
    `since` in one statement: the moves from the stored cursor are made, the others left."""
    with replicas(server, tmp_path) as (warehouse, _other):
        with warehouse.transaction():
            for key in ODD_KEYS:
                warehouse.set_cursor(STREAM, key, "1", rows=0)
        expected = {k: "1" if i % 2 else "0" for i, k in enumerate(ODD_KEYS)}
        with warehouse.transaction():
            left = warehouse.set_cursors(
                STREAM, [CursorMove(k, "2", 1, 1, True, since) for k, since in expected.items()]
            )
        assert set(left or ()) == {k for k, since in expected.items() if since == "0"}
        cursors = warehouse.get_cursors(STREAM)
        assert cursors == {k: "2" if since == "1" else "1" for k, since in expected.items()}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("server", SERVERS)
def test_two_writers_inserting_a_never_synced_partitions_row_commit_only_the_first(
    server: str, tmp_path: Path
) -> None:
    """Two replicas both claimed a register that has no sync_state row yet (both from None):
    the second's insert waits for the first's transaction, finds the row then, and leaves it
    (no duplicate key, no deadlock), so only the first one's rows are stored."""
    with replicas(server, tmp_path, ITEMS) as (first, second):
        late = fenced("r1", range(1, 4), "second", None, 0, "300")
        done = threading.Event()

        def second_commits() -> None:
            load_group(second, Items(), [late])
            done.set()

        thread = threading.Thread(target=second_commits, daemon=True)
        with first.transaction():
            load_group(first, Items(), [fenced("r1", range(1, 4), "first", None, 0, "200")])
            thread.start()
            assert not done.wait(1.0)  # it waits for this transaction on the cursor's row
        thread.join(30)
        assert done.is_set()
        assert late.taken_over
        assert written(first) == {1: "first", 2: "first", 3: "first"}
        assert state(first, "r1") == ("200", 3, None)


def deadlock(server: str) -> sa.exc.OperationalError:
    """A deadlock as the driver raises it, wrapped as SQLAlchemy wraps it."""
    orig: Exception
    if server == "mysql":
        pymysql: Any = importlib.import_module("pymysql")  # (no type information)
        orig = pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock")
    else:
        orig = psycopg.errors.DeadlockDetected("deadlock detected")
    return sa.exc.OperationalError("INSERT INTO fence_items ...", None, orig)


@pytest.mark.parametrize("server", SERVERS)
def test_a_group_run_again_after_a_deadlock_moves_each_cursor_from_the_same_since(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group whose rows lose a deadlock after its cursors moved is run again whole: its
    first run's moves were rolled back, so the rerun's fence finds each `since` again and
    commits them (no partition taken over by its own first run), while a partition another
    process moved is left in both runs."""
    monkeypatch.setattr("sitoo_sync.warehouse.retry.pause_before", lambda *_a, **_k: 0.0)
    with replicas(server, tmp_path, ITEMS) as (warehouse, other):
        with warehouse.transaction():
            warehouse.set_cursor(STREAM, "r1", "10", rows=0)
            warehouse.set_cursor(STREAM, "r2", "10", rows=0)
        with other.transaction():
            other.set_cursor(STREAM, "r2", "50", rows=0)
        real = warehouse.existing_keys
        runs: list[dict[str, str | None]] = []

        def existing_keys(table: Table, keys: Any) -> Any:
            runs.append(other.get_cursors(STREAM))  # committed: neither run's moves
            if len(runs) == 1:
                raise deadlock(server)
            return real(table, keys)

        monkeypatch.setattr(warehouse, "existing_keys", existing_keys)
        mine = fenced("r1", range(1, 3), "mine", "10", 1, "20")
        taken = fenced("r2", range(3, 5), "mine", "10", 1, "20")
        load_group(warehouse, Items(), [mine, taken])
        assert runs == [{"r1": "10", "r2": "50"}] * 2
        assert (mine.taken_over, taken.taken_over) == (False, True)
        assert written(warehouse) == {1: "mine", 2: "mine"}
        assert warehouse.get_cursors(STREAM) == {"r1": "20", "r2": "50"}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("server", SERVERS)
def test_replicas_committing_other_new_partitions_do_not_wait_for_each_other(
    server: str, tmp_path: Path
) -> None:
    """At a fresh warehouse's first backfill (sync_state nearly empty), two replicas that
    each commit the first batches of registers of their own (new rows whose keys
    interleave, as shuffled claims give) do not wait for each other's transaction, which
    holds its group's whole load: before the fence they did not on MariaDB either (its
    read-back of the fenced rows is planned as a scan of so small a table, and locks
    every gap)."""
    with replicas(server, tmp_path) as (a, b):
        with a.transaction():
            a.set_cursor(STREAM, "r00", "1", rows=0)
            a.set_cursor(STREAM, "r99", "1", rows=0)
        done = threading.Event()

        def b_commits() -> None:
            with b.transaction():
                b.set_cursors(
                    STREAM, [CursorMove(p, "5", 1, 1, True) for p in ("r02", "r04", "r06")]
                )
            done.set()

        thread = threading.Thread(target=b_commits, daemon=True)
        with a.transaction():
            a.set_cursors(STREAM, [CursorMove(p, "5", 1, 1, True) for p in ("r01", "r03", "r05")])
            thread.start()
            waited = not done.wait(1.0)
        thread.join(30)
        assert done.is_set()
        assert not waited
