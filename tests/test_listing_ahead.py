"""The sites and the first stream's partition listing, read while the warehouse gets ready."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from sitoo_sync.api.client import SitooClient, make_client
from sitoo_sync.errors import WarehouseError
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams import select_streams
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse
from tests.conftest import SyncFn
from tests.support import query, settings_for

#: How long a test's warehouse waits, getting ready, for the listing to be asked for.
PATIENCE = 5.0


class _ListingSeen:
    """Counts the client's requests for a register listing, as they are sent."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.requests = 0
        self.first_sent = datetime.max.replace(tzinfo=UTC)
        self._sent = threading.Condition()
        real_get = SitooClient.get_json

        def watched(client: SitooClient, api: Any, path: str, *args: Any, **kwargs: Any) -> Any:
            if path.endswith("cashregisters.json"):
                with self._sent:
                    self.first_sent = min(self.first_sent, datetime.now(UTC))
                    self.requests += 1
                    self._sent.notify_all()
            return real_get(client, api, path, *args, **kwargs)

        monkeypatch.setattr(SitooClient, "get_json", watched)

    def wait(self, count: int = 1) -> bool:
        """Whether `count` listing requests were sent within `PATIENCE` seconds."""
        with self._sent:
            return self._sent.wait_for(lambda: self.requests >= count, PATIENCE)


def _listed_on(sim: Simulator, count: int = 1) -> bool:
    """Whether `sim` (this test's own simulator: a listing thread another test left running
    in this process asks another) saw `count` listing requests within `PATIENCE` seconds."""
    deadline = time.monotonic() + PATIENCE
    while sim.requests_to("/cashregisters") < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _schema_waits_for(seen: _ListingSeen, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Make the warehouse's `ensure_schema` wait for the listing; what it saw is returned."""
    saw: list[bool] = []
    real_schema = DuckDBWarehouse.ensure_schema

    def waiting(self: DuckDBWarehouse, *args: Any, **kwargs: Any) -> None:
        saw.append(seen.wait())
        real_schema(self, *args, **kwargs)

    monkeypatch.setattr(DuckDBWarehouse, "ensure_schema", waiting)
    return saw


def test_a_first_tick_lists_the_registers_while_the_warehouse_gets_ready(
    tmp_path: Path, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The register listing is asked for before the tables exist, and the tick still loads
    every register's entries exactly once and counts every request in its run's row."""
    seen = _ListingSeen(monkeypatch)
    saw = _schema_waits_for(seen, monkeypatch)
    with Simulator.create(SimConfig(seed=61, days=1, registers_per_store=3)) as sim:
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=["journal_entries"])
        report = sync(settings)
        assert report.ok, [r.error for r in report.results if r.error]
        expected = len(sim.world.journal.all_entries())
        registers = {r.registerid for r in sim.world.registers}
        requests = len(sim.log)
    assert saw == [True]
    # The run's row starts when the listing did, and counts its requests.
    assert query(settings, "SELECT requests FROM sync_runs") == [(requests,)]
    [(started,)] = query(settings, "SELECT started_at FROM sync_runs")
    started = started.replace(tzinfo=UTC) if started.tzinfo is None else started.astimezone(UTC)
    assert started <= seen.first_sent
    assert {r.partition for r in report.results} == registers
    assert query(
        settings, "SELECT count(*), count(DISTINCT (registerid, id)) FROM journal_entries"
    ) == [(expected, expected)]


def test_without_site_ids_the_sites_are_listed_ahead_too(
    tmp_path: Path, sync: SyncFn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SITOO_SITE_IDS unset, the account's sites and then their registers are listed
    while the warehouse gets ready, and every site's registers are synced."""
    seen = _ListingSeen(monkeypatch)
    saw = _schema_waits_for(seen, monkeypatch)
    with Simulator.create(SimConfig(seed=62, days=1, registers_per_store=1)) as sim:
        assert len(sim.world.site_ids()) > 1
        settings = settings_for(
            sim, tmp_path / "w.duckdb", streams=["journal_entries"], site_ids=[]
        )
        report = sync(settings)
        registers = {r.registerid for r in sim.world.registers}
    assert saw == [True]
    assert report.ok
    assert {r.partition for r in report.results} == registers


def test_a_listing_that_fails_ahead_fails_the_stream_where_it_is_read(
    tmp_path: Path, sync: SyncFn
) -> None:
    """A register listing that fails while the warehouse gets ready is reported as the
    stream's partition `*` failing with the listing's error, as when the stream lists."""
    with Simulator.create(SimConfig(seed=63, days=1, registers_per_store=2)) as sim:
        sim.faults.queue("500", times=1000, path="/cashregisters")
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=["journal_entries"])
        report = sync(settings)
    failed = [(r.partition, "cashregisters" in (r.error or "")) for r in report.results]
    assert failed == [("*", True)]
    outcome = query(
        settings,
        "SELECT partition_key, last_status FROM sync_state WHERE stream = 'journal_entries'",
    )
    assert outcome == [("*", "failed")]


def _listing_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "sitoo-listing"}


def _listings_ended(before: set[threading.Thread]) -> bool:
    """Whether every listing thread started since `before` was taken has ended (within
    `PATIENCE` seconds); other tests' may still run in this process."""
    deadline = time.monotonic() + PATIENCE
    while _listing_threads() - before:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _tick(settings: Settings, stop: threading.Event | None = None, **client: Any) -> Any:
    with make_client(settings, **client) as api:
        return run_once(
            settings,
            open_warehouse(settings.target_url),
            api,
            select_streams(settings.streams),
            stop=stop,
        )


def test_a_warehouse_that_fails_to_get_ready_stops_the_listing_read_ahead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the warehouse fails before the stream reads its listing, the tick ends with the
    warehouse's error, and no site's listing sends a request after that: not the next page
    of the one under way, nor the first of one waiting for the request slot."""

    def failing(self: DuckDBWarehouse, *args: Any, **kwargs: Any) -> None:
        _listed_on(sim)  # one site's first page is on its way, the other waits for the slot
        raise duckdb.IOException("disk gone")

    monkeypatch.setattr(DuckDBWarehouse, "ensure_schema", failing)
    with Simulator.create(SimConfig(seed=64, days=1, registers_per_store=110)) as sim:
        settings = settings_for(
            sim, tmp_path / "w.duckdb", streams=["journal_entries"], concurrency=1
        )
        pages = {
            site: -(-sum(1 for r in sim.world.registers if r.eshopid == site) // 100)
            for site in settings.site_ids
        }
        assert len(pages) > 1  # more pages than it reads, at every site
        assert min(pages.values()) > 1
        sim.faults.latency = 1.0  # the margin a loaded host needs to stop the listing
        before = _listing_threads()
        with pytest.raises(WarehouseError, match="disk gone"):
            _tick(settings, sleep=lambda _s: None)
        assert _listings_ended(before)
    assert sim.requests_to("/cashregisters") == 1


def test_a_stop_while_the_warehouse_gets_ready_sends_no_further_listing_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop (SIGINT, SIGTERM) while the warehouse gets ready ends the tick before its
    stream, and the listing read ahead sends nothing after the request already on its way."""
    stop = threading.Event()
    real_schema = DuckDBWarehouse.ensure_schema

    def stopped(self: DuckDBWarehouse, *args: Any, **kwargs: Any) -> None:
        _listed_on(sim)
        stop.set()
        real_schema(self, *args, **kwargs)

    monkeypatch.setattr(DuckDBWarehouse, "ensure_schema", stopped)
    with Simulator.create(SimConfig(seed=65, days=1, registers_per_store=30)) as sim:
        settings = settings_for(
            sim, tmp_path / "w.duckdb", streams=["journal_entries"], concurrency=1
        )
        sim.faults.latency = 1.0  # the margin a loaded host needs to stop the listing
        before = _listing_threads()
        report = _tick(settings, stop, sleep=lambda _s: None)
        assert _listings_ended(before)
    assert report.results == []
    assert sim.requests_to("/cashregisters") == 1


def test_a_warehouse_failure_does_not_wait_for_a_throttled_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The warehouse's error ends the tick at once while the listing read ahead is being
    throttled (429 with Retry-After): its retries are nobody's to wait for."""

    def failing(self: DuckDBWarehouse, *args: Any, **kwargs: Any) -> None:
        raise duckdb.IOException("disk gone")

    monkeypatch.setattr(DuckDBWarehouse, "ensure_schema", failing)
    with Simulator.create(SimConfig(seed=66, days=1, registers_per_store=2)) as sim:
        sim.faults.queue("429", times=4, path="/cashregisters", retry_after=5.0)
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=["journal_entries"])
        began = time.monotonic()
        with pytest.raises(WarehouseError, match="disk gone"):
            _tick(settings, sleep=time.sleep)
        took = time.monotonic() - began
    assert took < 4.0, f"the warehouse's error came after {took:.2f} s"
