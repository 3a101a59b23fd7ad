"""A register stream's tick reads what it knows of the registers once at its start: the
stored register table in one query, the registers API once per site, with SITOO_SITE_IDS
set as without it."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.api.client import make_client
from sitoo_sync.normalize.cash_registers import CASH_REGISTERS
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.tables import Table, integer, text
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import select_streams
from sitoo_sync.streams.partitions import REGISTER_LISTING, REGISTERS
from sitoo_sync.sync import RunReport, run_once
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES
from tests.support import settings_for
from tests.targets import ALL_TARGETS, target_for

READS = ("distinct_values", "latest_values", "read_table", "query")


def counted_tick(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, reads: Counter[str]
) -> RunReport:
    """One tick, each read of the register table by the warehouse counted in `reads`."""
    warehouse = open_warehouse(settings.target_url, schema=settings.target_schema)
    for name in READS:
        real = getattr(warehouse, name)

        def counted(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            if any(a is CASH_REGISTERS or a == CASH_REGISTERS.name for a in args):
                reads[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(warehouse, name, counted)
    with make_client(settings, sleep=lambda _s: None) as client:
        return run_once(
            settings,
            warehouse,
            client,
            select_streams(settings.streams),
            clock=lambda: datetime.now(UTC),
        )


@pytest.mark.parametrize("named", [True, False])
def test_a_journal_tick_reads_the_stored_registers_once_and_lists_each_site_once(
    named: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After the registers are stored, a journal tick (SITOO_SITE_IDS set, or every site)
    reads the register table in one query for its partitions and one for their sites (the
    zone of a receipt without its own), and asks each site's register listing once."""
    with Simulator.create(SimConfig(seed=4, days=1)) as sim:
        sites = sim.world.site_ids()
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=["cash_registers"])
        assert counted_tick(settings, monkeypatch, Counter()).ok
        journal = settings.model_copy(
            update={"streams": ["journal_entries"], "site_ids": sites if named else []}
        )
        sim.log.clear()
        reads: Counter[str] = Counter()
        report = counted_tick(journal, monkeypatch, reads)
        listed = Counter(p for p, _q in sim.log if p.endswith("/cashregisters.json"))
    assert report.ok
    assert {r.partition for r in report.results} == {r.registerid for r in sim.world.registers}
    assert sum(reads.values()) == 2, reads
    assert sorted(listed.values()) == [1] * len(sites)


SITED = Table(
    name="sited_items",
    columns=(text("item", nullable=False), integer("site"), integer("at")),
    key=("item", "at"),
)


@pytest.mark.parametrize("name", ALL_TARGETS)
def test_latest_values_with_every_keeps_a_key_without_a_value(name: str, tmp_path: Path) -> None:
    """`every` adds each `by` whose rows hold no value, as None; without it they are left out
    and the latest non-null value is the same."""
    rows: list[list[Any]] = [["a", 1, 1], ["a", 2, 2], ["a", None, 3], ["b", None, 1], ["c", 5, 1]]
    with target_for(name, tmp_path) as target:
        warehouse = open_warehouse(target.url, schema=target.schema)
        try:
            warehouse.ensure_schema([*SYSTEM_TABLES, SITED])
            with warehouse.transaction():
                warehouse.insert(SITED, rows_to_arrow(SITED, rows))
            every = warehouse.latest_values(SITED, "item", "site", "at", every=True)
            some = warehouse.latest_values(SITED, "item", "site", "at")
        finally:
            warehouse.close()
    assert every == {"a": 2, "b": None, "c": 5}
    assert some == {"a": 2, "c": 5}


def test_known_with_named_sites_keeps_a_stored_partition_whose_site_is_null() -> None:
    """With sites named, the one read names every stored partition: one of another site is
    left out, one with no stored site and one only synced are kept."""
    read = ("registerid", "site_id", "registerid")
    found = {"{A}": 1, "{B}": 2, "{C}": None, None: 1}

    def latest(
        table: Table, by: str, value: str, order: str, *, every: bool = False
    ) -> dict[Any, Any]:
        assert (table, by, value, order, every) == (CASH_REGISTERS, *read, True)
        return found

    def no_second_read(*_args: Any) -> list[Any]:
        raise AssertionError("the stored partitions were read twice")

    known = REGISTERS.known(no_second_read, latest, synced=["{D}"], sites=frozenset({1}))
    assert known == {"{A}", "{C}", "{D}"}


@pytest.mark.parametrize(
    ("registerid", "usable"),
    [
        ("{2AA484B4}", True),
        ("r" * 255, True),
        ("r" * 256, False),
        ("reg\x00cut", False),
        ("", False),
    ],
)
def test_a_listed_register_id_no_partition_can_hold_is_no_partition(
    registerid: str, usable: bool
) -> None:
    """A listed register whose id is longer than a key column (cash_registers rejects it)
    or holds U+0000 (PostgreSQL's text cannot) is not made a journal partition, whose
    cursor row (sync_state's partition key is such a column) could not be written."""
    value = REGISTER_LISTING.value(1, {"registerid": registerid})
    assert (value == registerid) if usable else (value is None)
