"""A partition declared gone (404, and the tick's full listing of partitions no longer shows
it) has its stored rows stamped `missing_since`, with its outcome; listed again, the normal
listing path clears the marks.

Which partitions can go gone with rows to mark, against the simulator: only a listed kind
can (a site's partitions follow from SITOO_SITE_IDS or /sites.json, so a site is never
gone), and of the two listed kinds only warehouses have a scope (`warehouse_items`); a
register's journal has none. A warehouse deleted in Sitoo, or a whole site deleted while
SITOO_SITE_IDS is unset, leaves its stock partitions gone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sitoo_sync.api.client import make_client
from sitoo_sync.commit import Outcomes
from sitoo_sync.normalize.warehouse_items import WAREHOUSE_ITEMS
from sitoo_sync.results import PartitionResult
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.sync import GONE, RunReport, _not_found, run_once
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES
from tests.support import target_settings
from tests.targets import Target, target_for
from tests.test_rejects_logged import Logged

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def _tick(settings: Settings, at: datetime) -> RunReport:
    """One tick of the settings' streams at `at`; it must end ok."""
    with make_client(settings, sleep=lambda _s: None) as client:
        report = run_once(
            settings,
            open_warehouse(settings.target_url, schema=settings.target_schema),
            client,
            select_streams(settings.streams, settings.stream_options),
            clock=lambda: at,
        )
    assert report.ok, [r.error for r in report.results if r.error]
    return report


def _marks(target: Target) -> dict[tuple[int, int], list[datetime | None]]:
    """Each warehouse's stock rows' `missing_since`, by (site, warehouse), in UTC."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        rows = warehouse.read_table(WAREHOUSE_ITEMS)
    finally:
        warehouse.close()
    marks: dict[tuple[int, int], list[datetime | None]] = {}
    for row in rows:
        at = row["missing_since"]
        if at is not None:
            at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        marks.setdefault((row["site_id"], row["warehouseid"]), []).append(at)
    return marks


@pytest.fixture
def sim() -> Any:
    """A small seeded world with the REST v2 catalogue and its stock."""
    world = SimConfig(seed=5, days=2, malformed_every=0, now=int(NOW.timestamp()))
    simulator = Simulator.create(world).start()
    yield simulator
    simulator.stop()


@pytest.mark.parametrize("name", ["duckdb", "postgres", "mysql"])
def test_a_deleted_warehouses_stock_is_marked_missing_when_it_goes_gone_and_unmarked_back(
    name: str, sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A warehouse deleted in Sitoo: the tick that calls its stock partition gone stamps
    every one of its stock rows `missing_since` (the tick's time, one `rows_missing` line),
    no other warehouse's; a later gone tick keeps that time; listed again, its rows lose the
    mark through the listing (the snapshot and the sweep read them again)."""
    logged = Logged()
    monkeypatch.setattr("sitoo_sync.commit.log", logged)
    with target_for(name, tmp_path) as target:
        settings = target_settings(sim, target, streams=["warehouse_items"])
        _tick(settings, NOW)
        before = _marks(target)
        assert before
        assert all(m is None for marks in before.values() for m in marks)
        with sim.rest.lock:
            deleted = sim.rest.catalog.warehouses.pop(0)
        key = (deleted["eshopid"], deleted["warehouseid"])
        assert before[key]

        gone_at = NOW + timedelta(hours=1)
        report = _tick(settings, gone_at)
        assert [(r.partition, r.status, r.error) for r in report.results if r.status != "ok"] == [
            (f"{key[0]}/{key[1]}", "gone", GONE)
        ]
        after = _marks(target)
        assert after[key] == [gone_at] * len(before[key])
        assert all(m is None for k, marks in after.items() if k != key for m in marks)
        assert logged.named("rows_missing") == [
            {
                "stream": "warehouse_items",
                "partition": f"{key[0]}/{key[1]}",
                "rows": len(before[key]),
            }
        ]

        _tick(settings, NOW + timedelta(hours=2))  # gone again: the first stamp stays
        assert _marks(target)[key] == [gone_at] * len(before[key])
        assert len(logged.named("rows_missing")) == 1

        with sim.rest.lock:
            sim.rest.catalog.warehouses.insert(0, deleted)
        report = _tick(settings, NOW + timedelta(hours=8))  # past snapshot_hours, sweep_hours
        assert {r.status for r in report.results} == {"ok"}
        assert _marks(target)[key] == [None] * len(before[key])


def test_a_deleted_sites_stock_is_marked_missing_when_every_site_is_listed(
    sim: Simulator, tmp_path: Path
) -> None:
    """A whole site deleted while SITOO_SITE_IDS is unset (every site /sites.json lists):
    its warehouses' stock partitions go gone, and their rows are stamped `missing_since`."""
    with target_for("duckdb", tmp_path) as target:
        settings = target_settings(sim, target, streams=["warehouse_items"], site_ids=[])
        _tick(settings, NOW)
        with sim.rest.lock:
            site = sim.rest.catalog.sites.pop(-1)["eshopid"]
        before = _marks(target)
        assert any(s == site for s, _w in before)
        report = _tick(settings, NOW + timedelta(hours=1))
        gone = {r.partition for r in report.results if r.status == "gone"}
        assert gone == {f"{s}/{w}" for s, w in before if s == site}
        after = _marks(target)
        for (s, _w), marks in after.items():
            expected = NOW + timedelta(hours=1) if s == site else None
            assert marks == [expected] * len(marks)


def test_a_gone_partition_of_a_stream_without_a_scope_marks_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A register's journal declared gone (its stream is immutable and has no scope): the
    gone outcome is written, and no missing mark is asked of the warehouse."""
    journals = STREAMS["journal_entries"]
    assert journals.scope_of("{R1}") is None
    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    marked: list[Any] = []
    try:
        warehouse.ensure_schema([*SYSTEM_TABLES, *journals.tables])

        def mark_missing(*args: Any) -> int:
            marked.append(args)
            return 0

        monkeypatch.setattr(warehouse, "mark_missing", mark_missing)
        outcomes = Outcomes(journals.name)
        result = PartitionResult(journals.name, "{R1}", status="failed", not_found=True)
        _not_found(
            journals,
            [result],
            frozenset({"{R1}"}),
            outcomes,
            stopped=False,
            clock=lambda: NOW,
        )
        outcomes.flush(warehouse)
        [state] = [s for s in warehouse.states() if s.partition == "{R1}"]
    finally:
        warehouse.close()
    assert result.status == "gone"
    assert state.last_status == "gone"
    assert marked == []


@pytest.mark.parametrize("name", ["duckdb", "postgres"])
def test_a_site_the_listing_no_longer_shows_marks_its_registers_missing(
    name: str, sim: Simulator, tmp_path: Path
) -> None:
    """With SITOO_SITE_IDS unset, a site /sites.json stops listing is gone for each stream
    of one partition a site: its registers and stores are stamped `missing_since` (the other
    sites' are not), its orders' partition is gone too (it has no rows to mark), and the
    tick is ok; listed again, the site syncs on and its rows lose the marks."""
    streams = ["cash_registers", "stores", "orders"]
    with target_for(name, tmp_path) as target:
        settings = target_settings(sim, target, streams=streams, site_ids=[])
        _tick(settings, NOW)
        with sim.rest.lock:
            removed = sim.rest.catalog.sites.pop(-1)
        site = removed["eshopid"]
        report = _tick(settings, NOW + timedelta(hours=1))
        gone = sorted((r.stream, r.partition) for r in report.results if r.status == "gone")
        assert gone == sorted((s, str(site)) for s in streams)
        marked = _site_marks(target)
        assert {s for s, at in marked if at == NOW + timedelta(hours=1)} == {site}
        assert {s for s, at in marked if at is None} == {s for s, _ in marked} - {site}
        with sim.rest.lock:
            sim.rest.catalog.sites.append(removed)
        report = _tick(settings, NOW + timedelta(hours=2))
        assert {r.status for r in report.results} == {"ok"}
        assert {at for _s, at in _site_marks(target)} == {None}


def _site_marks(target: Target) -> set[tuple[int, datetime | None]]:
    """(site_id, missing_since in UTC) of every cash register and store row."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        rows = [
            *warehouse.read_table(STREAMS["cash_registers"].parent),
            *warehouse.read_table(STREAMS["stores"].parent),
        ]
    finally:
        warehouse.close()
    marks = set()
    for row in rows:
        at = row["missing_since"]
        if at is not None:
            at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
        marks.add((row["site_id"], at))
    return marks
