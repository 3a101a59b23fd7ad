"""A rejected record is logged when it is first rejected, or rejected for a new reason: an
overlap that reads the same bad record again keeps it in the rejects table (times_seen)
without logging it again."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.commit import PartitionLoad, load_group
from sitoo_sync.normalize.records import Reject
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import REJECTS, SYSTEM_TABLES
from tests.conftest import SyncFn
from tests.support import target_settings
from tests.targets import ALL_TARGETS, target_for
from tests.test_transaction_retry import Items, conflict_error, items, warehouse_on


class Logged:
    """The events `sitoo_sync.commit` logs, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def _add(self, event: str, **fields: Any) -> None:
        with self._lock:
            self.seen.append((event, fields))

    debug = info = warning = error = _add

    def named(self, event: str) -> list[dict[str, Any]]:
        return [fields for name, fields in self.seen if name == event]


@pytest.fixture
def logged(monkeypatch: pytest.MonkeyPatch) -> Logged:
    """Records what the commit module logs."""
    recorder = Logged()
    monkeypatch.setattr("sitoo_sync.commit.log", recorder)
    return recorder


def bad(n: int, reason: str = "id: expected an integer") -> Reject:
    return Reject("s", str(n), reason, f'{{"id": "x{n}"}}')


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_add_rejects_names_the_rejects_new_to_the_table_or_with_a_new_reason(
    name: str, tmp_path: Path
) -> None:
    """`add_rejects` returns the ids of rejects first kept now or kept again with another
    reason, and not those met before for the same reason, which it still counts."""
    with target_for(name, tmp_path) as target:
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            warehouse.ensure_schema(SYSTEM_TABLES)
            one, two = bad(1), bad(2)
            with warehouse.transaction():
                assert warehouse.add_rejects([one, two]) == {one.reject_id, two.reject_id}
            with warehouse.transaction():
                assert warehouse.add_rejects([one, two]) == set()
            changed = replace(two, reason="id: out of range")
            with warehouse.transaction():
                assert warehouse.add_rejects([one, changed, bad(3)]) == {
                    two.reject_id,
                    bad(3).reject_id,
                }
            rows = {r["reject_id"]: r for r in warehouse.read_table(REJECTS)}
        finally:
            warehouse.close()
    assert rows[one.reject_id]["times_seen"] == 3
    assert rows[two.reject_id]["times_seen"] == 3
    assert rows[two.reject_id]["reason"] == "id: out of range"
    assert rows[bad(3).reject_id]["times_seen"] == 1


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_a_bad_entry_read_again_by_the_overlap_is_logged_once(
    name: str, tmp_path: Path, sync: SyncFn, logged: Logged
) -> None:
    """Two journal ticks whose overlap reads every entry again: each bad entry is one row of
    rejects, seen twice, and one `record_rejected` line, from the tick that first met it."""
    config = SimConfig(seed=8, days=1, lazy_journal_size=400, journal_malformed_every=37)
    with Simulator.create(config) as sim, target_for(name, tmp_path) as target:
        settings = target_settings(
            sim, target, streams=["journal_entries"], overlap_seconds=30 * 86400
        )
        assert sync(settings).ok
        first = len(logged.named("record_rejected"))
        assert sync(settings).ok
        lines = Counter(e["record_key"] for e in logged.named("record_rejected"))
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            rejects = warehouse.read_table(REJECTS)
        finally:
            warehouse.close()
    assert rejects
    assert {r["times_seen"] for r in rejects} == {2}
    assert first == len(rejects) == sum(lines.values())
    assert set(lines.values()) == {1}
    batches = logged.named("batch_loaded")
    assert sum(b["rejects"] for b in batches) == 2 * len(rejects)


@pytest.mark.parametrize("name", ["postgres", "mysql"])
def test_a_reject_whose_load_lost_a_conflict_is_still_news_after_the_run_again(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deadlock after the rejects were written rolls them back: the load run again finds
    them new again, so the committed load names them as news (logged), kept once."""
    failures = iter([conflict_error(name)])
    with target_for(name, tmp_path) as target, warehouse_on(target) as warehouse:
        real = warehouse.set_cursors

        def set_cursors(*args: Any, **kwargs: Any) -> None:
            real(*args, **kwargs)
            error = next(failures, None)
            if error is not None:
                raise error

        monkeypatch.setattr(warehouse, "set_cursors", set_cursors)
        window = items(range(1, 3), "p1")
        window.rejects.append(bad(9))
        first = PartitionLoad("p1", window, "c1", windows=1)
        load_group(warehouse, Items(), [first])
        again = PartitionLoad("p1", window, "c2", windows=1)
        load_group(warehouse, Items(), [again])
        [row] = warehouse.read_table(REJECTS)
    assert first.news == {bad(9).reject_id}
    assert again.news == set()
    assert row["times_seen"] == 2


@pytest.mark.parametrize("name", ["postgres", "mysql"])
def test_two_writers_that_reject_one_record_at_once_both_commit(name: str, tmp_path: Path) -> None:
    """Two writers (replicas, or PostgreSQL's concurrent partitions) that find the same bad
    record new at the same moment: the later insert meets the earlier's row and counts it
    seen again (not news) instead of failing its load; its other reject is inserted."""
    record = bad(7)
    added = threading.Event()
    with target_for(name, tmp_path) as target:
        first = open_warehouse(target.url, schema=target.schema)
        second = open_warehouse(target.url, schema=target.schema)
        try:
            first.ensure_schema(SYSTEM_TABLES)
            second.ensure_schema(SYSTEM_TABLES)

            def later() -> set[str]:
                assert added.wait(30)
                with second.transaction():
                    return second.add_rejects([record, bad(8)])

            with ThreadPoolExecutor(1) as pool:
                with first.transaction():
                    assert first.add_rejects([record]) == {record.reject_id}
                    waiting = pool.submit(later)
                    added.set()
                    time.sleep(0.5)  # the other's insert now waits for this row's commit
                news = waiting.result(timeout=60)
            seen = {r["record_key"]: r["times_seen"] for r in first.read_table(REJECTS)}
        finally:
            first.close()
            second.close()
    assert news == {bad(8).reject_id}
    assert seen == {"7": 2, "8": 1}
