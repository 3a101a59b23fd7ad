"""The fence's second half: the `windows_loaded` stored with a partition's cursor.

A writer fences each commit with the cursor and the count of windows it claimed the
partition with or last committed (`CursorMove.since_windows`); every commit adds its windows
to that count, so another writer's commit that left the cursor where it was still fences it
off. These tests hold each part of that: the claim reads the count, the stored cursors carry
it on every target, the dialects' fenced moves compare it (and leave a refused row's counts
and stamp alone), and a writer keeps it through its own commits.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.api.client import make_client
from sitoo_sync.commit import PartitionTakenOver, PartitionWriter
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.streams.cursors import Window
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES, Claim, CursorMove, StreamState, Warehouse
from tests.support import partition_locks, target_settings
from tests.targets import ALL_TARGETS, target_for
from tests.test_fence_review import manufacturers_writer

SERVERS = ["postgres", "mysql"]
STREAM = "fence_windows"
MANUFACTURERS = STREAMS["manufacturers"]
JOURNAL = STREAMS["journal_entries"]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@contextmanager
def opened(server: str, tmp_path: Path, count: int = 1) -> Iterator[list[Warehouse]]:
    """`count` warehouses (replicas' writers) on one fresh schema of `server`."""
    with target_for(server, tmp_path) as target:
        warehouses = [open_warehouse(target.url, schema=target.schema) for _ in range(count)]
        try:
            warehouses[0].ensure_schema([*SYSTEM_TABLES, *MANUFACTURERS.tables])
            yield warehouses
        finally:
            for warehouse in warehouses:
                warehouse.close()


def state(warehouse: Warehouse, partition: str) -> StreamState:
    [s] = [s for s in warehouse.states() if s.partition == partition]
    return s


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_the_stored_cursors_carry_the_windows_loaded_with_each(target: str, tmp_path: Path) -> None:
    """`get_cursors` reads each partition's `windows_loaded` with its cursor (0 for an
    outcome-only row, none for a partition never stored), on every target, so a writer
    started from it knows both (`StoredCursors.claim`)."""
    with opened(target, tmp_path) as [warehouse]:
        with warehouse.transaction():
            warehouse.set_cursor(STREAM, "r1", "10", rows=5, windows=3)
            warehouse.set_cursor(STREAM, "r1", "10", rows=1)
            warehouse.record_outcome(STREAM, "r2", "failed", "boom")
        cursors = warehouse.get_cursors(STREAM)
        assert cursors == {"r1": "10", "r2": None}
        assert [cursors.claim(p) for p in ("r1", "r2", "r3")] == [
            Claim("10", 4),
            Claim(None, 0),
            Claim(None, 0),
        ]


@pytest.mark.parametrize("server", SERVERS)
def test_a_partition_claim_carries_the_windows_loaded_with_its_cursor(
    server: str, tmp_path: Path
) -> None:
    """A partition lock's claim reads the count stored with the cursor, after the take, as
    it reads the cursor: what the new holder's first commit is fenced with."""
    with target_for(server, tmp_path) as target:
        warehouse = open_warehouse(target.url, schema=target.schema)
        locks = partition_locks(Settings(**target.settings()), STREAM)
        try:
            warehouse.ensure_schema(SYSTEM_TABLES)
            with warehouse.transaction():
                warehouse.set_cursor(STREAM, "r1", "10", rows=5, windows=3)
            assert locks.try_acquire("r1") == Claim("10", 3)
            assert locks.try_acquire("r2") == Claim(None, 0)
        finally:
            locks.close()
            warehouse.close()


@pytest.mark.parametrize("server", SERVERS)
def test_a_fenced_move_is_refused_where_the_count_stored_with_its_cursor_moved(
    server: str, tmp_path: Path
) -> None:
    """A fenced move whose cursor is still stored but whose count is not the one it expects
    is refused, its row left whole (cursor, counts and `updated_at`: MariaDB's assignments
    judge the row as stored), while moves expecting the stored pair, or the cursor alone
    (`since_windows` None), are made, in one call."""
    with opened(server, tmp_path) as [warehouse]:
        with warehouse.transaction():
            for p in ("pair", "moved", "cursor_only"):
                warehouse.set_cursor(STREAM, p, "1", rows=5, windows=2)
        before = state(warehouse, "moved")
        with warehouse.transaction():
            left = warehouse.set_cursors(
                STREAM,
                [
                    CursorMove("pair", "2", 3, 1, True, "1", 2),
                    CursorMove("moved", "2", 3, 1, True, "1", 1),
                    CursorMove("cursor_only", "2", 3, 1, True, "1"),
                ],
            )
        assert set(left or ()) == {"moved"}
        assert state(warehouse, "moved") == before
        for p in ("pair", "cursor_only"):
            s = state(warehouse, p)
            assert (s.cursor, s.rows_loaded, s.windows_loaded) == ("2", 8, 3)


def committed(writer: PartitionWriter, ids: list[int], cursor: str) -> None:
    """One window of manufacturers `ids` at `cursor`, committed as a batch."""
    records = [{"externalcompanyid": i, "name": f"m{i}"} for i in ids]
    writer.take(Window(records, cursor, {}), records)
    writer.commit()


@pytest.mark.parametrize("server", SERVERS)
def test_a_writer_keeps_the_count_through_its_own_commits_that_leave_the_cursor(
    server: str, tmp_path: Path
) -> None:
    """A writer whose commits leave the cursor where it was goes on committing (it adds its
    own windows to the count it fences with), and once another writer, claimed from where
    it left the partition, commits without moving the cursor either, its next commit is
    fenced off (PartitionTakenOver) and writes nothing."""
    with opened(server, tmp_path, 2) as [stale_warehouse, new_warehouse]:
        stale = manufacturers_writer(stale_warehouse, None, 0)
        committed(stale, [1, 2], "100")
        committed(stale, [3], "100")
        assert stale.committed_windows == 2
        claim = new_warehouse.get_cursors(MANUFACTURERS.name).claim("1")
        new = manufacturers_writer(new_warehouse, claim.cursor, claim.windows)
        committed(new, [4], "100")
        with pytest.raises(PartitionTakenOver):
            committed(stale, [5], "100")
        rows = new_warehouse.read_table(MANUFACTURERS.parent)
        assert sorted(r["externalcompanyid"] for r in rows) == [1, 2, 3, 4]
        s = state(new_warehouse, "1")
        assert (s.cursor, s.windows_loaded) == ("100", 3)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("server", SERVERS)
def test_a_ticks_first_commit_of_each_register_is_fenced_with_its_claims_count(
    server: str, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick over registers claimed from a stored cursor fences each register's first
    commit with the `windows_loaded` its claim read (the count reaches the writer from the
    partition lock's claim), and each later one with that count plus the windows it
    committed since."""
    registers = sorted(r.registerid for r in sim.world.registers)
    start = str(min(e["dateadded"] for e in sim.world.journal.all_entries()) - 1)
    with target_for(server, tmp_path) as target:
        settings = target_settings(sim, target, streams=[JOURNAL.name], load_batch_rows=1)
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            warehouse.ensure_schema(SYSTEM_TABLES)
            with warehouse.transaction():
                for i, register in enumerate(registers):
                    warehouse.set_cursor(JOURNAL.name, register, start, rows=0, windows=10 + i)
            moves: list[CursorMove] = []
            real = warehouse.set_cursors

            def set_cursors(stream: str, moved: Sequence[CursorMove]) -> Any:
                moves.extend(moved)
                return real(stream, moved)

            monkeypatch.setattr(warehouse, "set_cursors", set_cursors)
            now = datetime.fromtimestamp(sim.world.config.now, UTC)
            with make_client(settings, sleep=lambda _s: None) as client:
                report = run_once(settings, warehouse, client, [JOURNAL], clock=lambda: now)
            assert report.ok, report
            for i, register in enumerate(registers):
                mine = [m for m in moves if m.partition == register and m.windows]
                assert mine, register
                expected = 10 + i
                for m in mine:
                    assert m.fenced
                    assert m.since_windows == expected, (register, m)
                    expected += m.windows
                assert state(warehouse, register).windows_loaded == expected
        finally:
            warehouse.close()
