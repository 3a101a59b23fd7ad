"""An immutable stream's loads take their keys as new and let the primary key prove it: no
read of the stored keys, and a key stored after all runs the load again with that read."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.commit import PartitionLoad, load_group
from sitoo_sync.normalize.journal_entries import normalize_window
from sitoo_sync.reset import reset_stream
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES, Warehouse
from sitoo_sync.warehouse.dialects import _BY_NAME, SqlDialect
from tests.conftest import SyncFn
from tests.support import target_settings
from tests.targets import ALL_TARGETS, Target, target_for

JOURNALS = STREAMS["journal_entries"]
TABLES = JOURNALS.tables


@pytest.fixture(scope="module")
def world() -> Iterator[Simulator]:
    """Two days of journals on four registers."""
    sim = Simulator.create(SimConfig(seed=47, days=2, registers_per_store=1)).start()
    yield sim
    sim.stop()


class Reads:
    """Counts the warehouse's reads of stored parent keys (`existing_keys`)."""

    def __init__(self, warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = warehouse.existing_keys

        def counted(*args: Any) -> Any:
            self.count += 1
            return real(*args)

        monkeypatch.setattr(warehouse, "existing_keys", counted)


def one_register(sim: Simulator) -> tuple[str, list[dict[str, Any]]]:
    """The first register's journal entries: receipts with items, payments and cash events."""
    register = sim.world.registers[0].registerid
    return register, sim.world.journal.entries(register)


def stored(target: Target) -> dict[str, Any]:
    """Every journal table's rows as a multiset, by table name."""
    return dict(target.bags(TABLES))


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_new_keys_load_without_a_read_and_a_stored_one_loads_again_with_it(
    name: str, world: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load of new keys reads no stored keys; the same load again fails on the key, runs
    again with the read, says so, and leaves every row (children too) once."""
    register, entries = one_register(world)
    with target_for(name, tmp_path) as target:
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            warehouse.ensure_schema([*SYSTEM_TABLES, *TABLES])
            reads = Reads(warehouse, monkeypatch)
            load = PartitionLoad(register, normalize_window(entries), "100", 1)
            assert load_group(warehouse, JOURNALS, [load], new=True) is True
            assert reads.count == 0
            once = stored(target)
            assert sum(once["journal_receipt_items"].values()) > 0
            again = PartitionLoad(register, normalize_window(entries), "200", 1)
            assert load_group(warehouse, JOURNALS, [again], new=True) is False
            assert reads.count == 1
            assert stored(target) == once
            assert set(once["journal_entries"].values()) == {1}
            assert warehouse.get_cursor(JOURNALS.name, register) == "200"
        finally:
            warehouse.close()


def test_a_load_of_a_stream_that_is_not_immutable_reads_its_stored_keys(
    world: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without `new` the stored keys are read first, as every upserting stream needs."""
    register, entries = one_register(world)
    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, *TABLES])
        reads = Reads(warehouse, monkeypatch)
        load = PartitionLoad(register, normalize_window(entries), "100", 1)
        assert load_group(warehouse, JOURNALS, [load]) is False  # (and stays so)
        assert reads.count == 1
    finally:
        warehouse.close()


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_a_journal_tick_after_its_cursors_were_cleared_changes_no_row(
    name: str, world: Simulator, sync: SyncFn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every register read again from the start, its rows kept (a reset): the keys met in
    the warehouse are loaded again with the read, and each entry and child row is there once."""
    met: list[dict[str, Any]] = []
    monkeypatch.setattr(
        "sitoo_sync.commit.log.info",
        lambda event, **fields: met.append(fields) if event == "stored_keys_met" else None,
    )
    with target_for(name, tmp_path) as target:
        settings = target_settings(world, target, streams=["journal_entries"], concurrency=4)
        assert sync(settings).ok
        assert not met
        before = stored(target)
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            reset_stream(settings, warehouse, JOURNALS)
        finally:
            warehouse.close()
        report = sync(settings)
        assert report.ok
        assert sum(r.rows for r in report.results) >= sum(before["journal_entries"].values())
        assert met
        assert stored(target) == before
        assert set(before["journal_entries"].values()) == {1}


def test_a_warehouse_whose_keys_are_only_declared_reads_its_stored_keys(
    world: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the primary key would not refuse a duplicate (Snowflake, any dialect without a
    strategy here), even an immutable stream's load reads the keys stored first."""
    register, entries = one_register(world)
    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, *TABLES])
        declared = replace(warehouse.capabilities, enforced_keys=False)
        monkeypatch.setattr(warehouse, "capabilities", declared)
        reads = Reads(warehouse, monkeypatch)
        load = PartitionLoad(register, normalize_window(entries), "100", 1)
        assert load_group(warehouse, JOURNALS, [load], new=True) is True
        assert reads.count == 1
    finally:
        warehouse.close()


def test_only_dialects_with_a_strategy_of_their_own_say_their_keys_are_enforced() -> None:
    """The portable dialect (Snowflake, BigQuery, ... through SQLAlchemy) makes no such claim."""
    enforced = {name: cls.enforced_keys for name, cls in _BY_NAME.items()}
    assert enforced == dict.fromkeys(enforced, True)
    assert SqlDialect.enforced_keys is False
