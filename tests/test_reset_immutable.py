"""`sitoo-sync reset journal_entries --since DAY` normalizes the period again: rows an older
version (or a normalizer bug since fixed) stored are corrected, not only missing ones added,
while an ordinary tick keeps skipping the entries its overlap reads again."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.api.client import make_client
from sitoo_sync.cli import main
from sitoo_sync.normalize.journal_entries import (
    JOURNAL_ENTRIES,
    JOURNAL_RECEIPT_ITEMS,
    JOURNAL_RECEIPTS,
)
from sitoo_sync.results import PartitionResult
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.sync import RunReport, run_once
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import StreamState
from tests.conftest import SyncFn
from tests.support import query, settings_for, target_settings, use_simulator
from tests.targets import ALL_TARGETS, Target, target_for

STREAM = "journal_entries"
#: The tables damaged: an item's derived count (what the quantity upgrade fixed) and a
#: receipt's business day (a zone bug's victim), each as an older version could have stored.
DAMAGED = (JOURNAL_RECEIPT_ITEMS, JOURNAL_RECEIPTS)
WRONG = {
    JOURNAL_RECEIPT_ITEMS.name: ("quantity_signed", "999"),
    JOURNAL_RECEIPTS.name: (
        "business_date",
        "'2000-01-01'",
    ),
}

Key = tuple[str, int]
Bags = dict[str, Counter[tuple[Any, ...]]]


@pytest.fixture
def world() -> Iterator[Simulator]:
    """Five days of journals on one register per store."""
    sim = Simulator.create(SimConfig(seed=41, days=5, registers_per_store=1)).start()
    yield sim
    sim.stop()


def _day(sim: Simulator) -> date:
    """The UTC day two days before the simulator's clock: the period reset."""
    return (datetime.fromtimestamp(sim.world.config.now, UTC) - timedelta(days=2)).date()


def _entries(target: Target, day: date) -> tuple[set[Key], set[Key]]:
    """The stored entries' keys (registerid, id) added before `day`, and on or after it."""
    start = datetime.combine(day, time(), UTC)
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        rows = warehouse.read_table(JOURNAL_ENTRIES)
    finally:
        warehouse.close()
    before: set[Key] = set()
    after: set[Key] = set()
    for row in rows:
        added = row["dateadded"]
        added = added if added.tzinfo else added.replace(tzinfo=UTC)
        (after if added >= start else before).add((row["registerid"], row["id"]))
    return before, after


def _damage(target: Target, keys: set[Key]) -> None:
    """Store a wrong derived value in every damaged table's rows of the entries `keys`, as an
    older version would have: by SQL, around sitoo-sync."""
    by_register: dict[str, list[int]] = {}
    for register, entry in keys:
        by_register.setdefault(register, []).append(entry)
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        for table in DAMAGED:
            column, value = WRONG[table.name]
            for register, ids in by_register.items():
                warehouse.execute(
                    f"UPDATE {warehouse.qualified(table.name)} SET {column} = {value} "
                    f"WHERE registerid = '{register}' AND id IN ({', '.join(map(str, ids))})"
                )
    finally:
        warehouse.close()


def _bags(target: Target) -> Bags:
    """The damaged tables' rows as multisets (load metadata aside)."""
    return target.bags(DAMAGED)


def _mixed(damaged: Bags, good: Bags, keys: set[Key]) -> Bags:
    """The rows of `damaged`, those of the entries `keys` taken from `good` instead."""
    return {
        name: Counter({r: n for r, n in damaged[name].items() if (r[0], r[1]) not in keys})
        + Counter({r: n for r, n in good[name].items() if (r[0], r[1]) in keys})
        for name in damaged
    }


def _states(settings: Settings) -> list[StreamState]:
    """The stream's `sync_state` rows."""
    warehouse = open_warehouse(settings.target_url, schema=settings.target_schema)
    try:
        return [s for s in warehouse.states() if s.stream == STREAM]
    finally:
        warehouse.close()


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_reset_since_a_day_corrects_the_rows_of_the_period_an_older_version_stored(
    name: str, world: Simulator, sync: SyncFn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `reset journal_entries --since DAY` the next tick normalizes every entry from
    DAY on again and upserts it (a wrong stored value is corrected), leaves the rows before
    DAY it reads in its overlap as they are, duplicates nothing, and the tick after it skips
    its re-reads again."""
    use_simulator(monkeypatch, world, tmp_path / "w.duckdb")
    with target_for(name, tmp_path) as target:
        for key, value in target.env().items():
            monkeypatch.setenv(key, value)
        # An overlap of two days: the first read after the reset starts two days before DAY.
        settings = target_settings(world, target, streams=[STREAM], overlap_seconds=2 * 86400)
        monkeypatch.setenv("SITOO_OVERLAP_SECONDS", str(settings.overlap_seconds))
        assert sync(settings).ok
        good = _bags(target)
        day = _day(world)
        before, after = _entries(target, day)
        assert before
        assert after
        _damage(target, before | after)
        damaged = _bags(target)
        assert damaged != good
        assert sum(map(len, damaged.values())) == sum(map(len, good.values()))

        assert sync(settings).ok  # an ordinary tick skips what its overlap reads again
        assert _bags(target) == damaged

        assert main(["reset", STREAM, "--since", day.isoformat()]) == 0
        assert {s.last_status for s in _states(settings)} == {"reset"}
        report = sync(settings)
        assert report.ok
        assert _bags(target) == _mixed(damaged, good, after)
        assert {s.last_status for s in _states(settings)} == {"ok"}

        report = sync(settings)  # the period is done: re-reads are skipped again
        assert report.ok
        assert sum(r.rows for r in report.results) == 0
        assert _bags(target) == _mixed(damaged, good, after)


@pytest.fixture
def crowded() -> Iterator[Simulator]:
    """Four days of lazy journals whose days (each uploaded in one second) span pages: a
    cut after a page leaves the rest of its second unread."""
    config = SimConfig(
        seed=5, days=4, registers_per_store=1, lazy_journal_size=24000, journal_day_entries=1500
    )
    sim = Simulator.create(config).start()
    yield sim
    sim.stop()


def _crowded_settings(sim: Simulator, tmp_path: Path, **overrides: Any) -> Settings:
    """Journals of the first site into a DuckDB file, each window committed on its own."""
    return settings_for(
        sim,
        tmp_path / "w.duckdb",
        streams=[STREAM],
        site_ids=sim.world.site_ids()[:1],
        load_batch_seconds=0,
        **overrides,
    )


def _reset_after_damage(
    sim: Simulator, settings: Settings, sync: SyncFn, tmp_path: Path
) -> tuple[Target, Bags, Bags, set[Key]]:
    """Load, damage every row, reset to two days back: (target, good, damaged, the entries
    of the period)."""
    target = Target("duckdb", settings.target_url)
    assert sync(settings).ok
    good = _bags(target)
    day = _day(sim)
    before, after = _entries(target, day)
    assert before
    assert after
    _damage(target, before | after)
    damaged = _bags(target)
    assert main(["reset", STREAM, "--since", day.isoformat()]) == 0
    return target, good, damaged, after


def _cut(settings: Settings) -> RunReport:
    """One tick that a stop (as a SIGTERM's) cuts short once a window committed."""
    stop = threading.Event()

    def committed(_result: PartitionResult) -> None:
        stop.set()

    with make_client(settings, sleep=lambda _s: None) as client:
        warehouse = open_warehouse(settings.target_url)
        return run_once(
            settings, warehouse, client, [STREAMS[STREAM]], on_window=committed, stop=stop
        )


def test_a_tick_cut_short_after_a_reset_leaves_the_rest_of_the_period_to_the_next(
    crowded: Simulator, sync: SyncFn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop mid-way through the reset period commits what it normalized; the next tick
    normalizes the rest again, the entries of the cursor's own second that the cut left
    unread included, and nothing is duplicated."""
    use_simulator(monkeypatch, crowded, tmp_path / "w.duckdb")
    settings = _crowded_settings(crowded, tmp_path)
    target, good, damaged, after = _reset_after_damage(crowded, settings, sync, tmp_path)
    reset = {s.partition: s.cursor for s in _states(settings)}

    report = _cut(settings)
    assert any(r.stopped for r in report.results)
    states = _states(settings)
    cut = [s for s in states if s.cursor != reset[s.partition]]
    assert cut
    assert {s.last_status for s in cut} == {"reset"}
    assert _bags(target) != _mixed(damaged, good, after)  # what was left for the next tick

    assert sync(settings).ok
    assert _bags(target) == _mixed(damaged, good, after)
    assert {s.last_status for s in _states(settings)} == {"ok"}


def test_a_partition_failing_after_a_reset_normalizes_the_rest_of_the_period_next_time(
    crowded: Simulator, sync: SyncFn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition whose tick fails mid-way through the reset period is recorded failed, and
    its next tick still normalizes the rest of the period again."""
    use_simulator(monkeypatch, crowded, tmp_path / "w.duckdb")
    settings = _crowded_settings(crowded, tmp_path, concurrency=1, http_max_attempts=1)
    target, good, damaged, after = _reset_after_damage(crowded, settings, sync, tmp_path)
    reset = {s.partition: s.cursor for s in _states(settings)}

    crowded.faults.queue("500", path="/journal-entries", after=1)  # the first one's 2nd page
    report = sync(settings)
    [failed] = [r for r in report.results if r.status == "failed"]
    [state] = [s for s in _states(settings) if s.partition == failed.partition]
    assert state.last_status == "failed"
    assert state.cursor != reset[failed.partition]  # its first page committed
    assert _bags(target) != _mixed(damaged, good, after)

    assert sync(settings).ok
    assert _bags(target) == _mixed(damaged, good, after)
    assert {s.last_status for s in _states(settings)} == {"ok"}


def test_reset_since_a_day_corrects_the_warehouse_transactions_of_the_period(
    world: Simulator, sync: SyncFn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other immutable stream, walked by id: after `reset warehouse_transactions --since
    DAY` the next tick normalizes every transaction from DAY on again (a wrong stored value is
    corrected) and leaves those before DAY as they are."""
    use_simulator(monkeypatch, world, tmp_path / "w.duckdb")
    name = "warehouse_transactions"
    settings = settings_for(world, tmp_path / "w.duckdb", streams=[name])
    assert sync(settings).ok
    rows = f"SELECT warehousetransactionid, datecreated, transactiontype_name FROM {name}"
    good = {r[0]: r for r in query(settings, rows)}
    day = _day(world)
    start = datetime.combine(day, time(), UTC)
    after = {k for k, r in good.items() if r[1] >= start}
    assert after
    assert len(after) < len(good)
    query(settings, f"UPDATE {name} SET transactiontype_name = 'wrong'")
    damaged = {r[0]: r for r in query(settings, rows)}

    assert main(["reset", name, "--since", day.isoformat()]) == 0
    assert sync(settings).ok
    assert {r[0]: r for r in query(settings, rows)} == {
        k: good[k] if k in after else damaged[k] for k in good
    }
