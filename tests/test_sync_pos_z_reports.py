"""POS z-reports end to end: simulator → client → windows → normalize → DuckDB."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from sitoo_sync.commit import load_window
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.pos_z_reports import CHILDREN, normalize_window
from sitoo_sync.normalize.tables import Table, integer, text
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.streams.pos_z_reports import POS_Z_REPORTS
from sitoo_sync.warehouse.base import SYSTEM_TABLES
from sitoo_sync.warehouse.duckdb import DuckDBWarehouse
from tests.conftest import SyncFn
from tests.support import query, settings_for, vendor_example


@pytest.fixture
def settings(sim: Simulator, tmp_path: Path) -> Settings:
    """Settings for the POS z-report stream alone."""
    return settings_for(sim, tmp_path / "warehouse.duckdb", streams=["pos_z_reports"])


def sales_by_store(settings: Settings) -> dict[str | None, Decimal]:
    rows = query(settings, "SELECT store_id, sum(moneysalestotal) FROM pos_z_reports GROUP BY 1")
    return {store: total for store, total in rows}


def expected_sales(sim: Simulator) -> dict[str | None, Decimal]:
    # The vendor's reports say "no store" as null; the warehouse spells it NO_STORE.
    return {k or "NO_STORE": Decimal(v) for k, v in sim.world.expected_sales_by_store().items()}


def count(settings: Settings, table: str) -> int:
    return int(query(settings, f"SELECT count(*) FROM {table}")[0][0])


def test_backfill_matches_the_simulator_to_the_cent(
    sim: Simulator, settings: Settings, sync: SyncFn
) -> None:
    """Every report loads once, and sales per store equal the simulator's own totals."""
    report = sync(settings)
    assert report.ok
    assert sales_by_store(settings) == expected_sales(sim)
    keys = query(settings, "SELECT registerid, zreportid FROM pos_z_reports")
    assert len(keys) == len(set(keys)) == len(sim.world.valid_keys())
    assert set(keys) == sim.world.valid_keys()
    # children add up to their parents in the warehouse, as they do in the simulator
    mismatched = query(
        settings,
        "SELECT count(*) FROM pos_z_reports p JOIN (SELECT registerid, zreportid, "
        "sum(moneytotal) s FROM pos_z_report_vat_groups WHERE section = 'sales' GROUP BY ALL) v "
        "USING (registerid, zreportid) WHERE v.s <> p.moneysalestotal",
    )
    assert mismatched == [(0,)]
    assert count(settings, "pos_z_report_subpayments") > 0


def test_second_tick_makes_one_request_and_adds_nothing(
    sim: Simulator, settings: Settings, sync: SyncFn
) -> None:
    """With nothing new, a tick re-reads only the overlap: one request, no new rows."""
    sync(settings)
    before = {
        t: count(settings, t) for t in ("pos_z_reports", *[c.name for c in CHILDREN.values()])
    }
    requests_before = sim.requests_to("/pos-z-reports")
    report = sync(settings)
    assert report.ok
    assert sim.requests_to("/pos-z-reports") - requests_before == 1
    after = {t: count(settings, t) for t in before}
    assert after == before
    # and it asked from cursor minus the overlap
    cursor = int(query(settings, "SELECT cursor FROM sync_state")[0][0])
    assert sim.log[-1][1]["dateaddedfrom"] == str(cursor - settings.overlap_seconds)


def test_new_data_and_late_arrivals_are_loaded_on_the_next_tick(
    sim: Simulator, settings: Settings, sync: SyncFn
) -> None:
    """Reports added between ticks load; so does one that turns up late inside the overlap."""
    sync(settings)
    cursor = int(query(settings, "SELECT cursor FROM sync_state")[0][0])
    now = sim.world.advance_clock(120)
    new = sim.world.add_new_reports(7, dateadded=now)
    late = sim.world.add_late_report(dateadded=cursor - 300)  # behind the cursor, inside overlap
    report = sync(settings)
    assert report.ok
    keys = set(query(settings, "SELECT registerid, zreportid FROM pos_z_reports"))
    for r in [*new, late]:
        assert (r.body["registerid"], r.body["zreportid"]) in keys
    assert sales_by_store(settings) == expected_sales(sim)
    assert int(query(settings, "SELECT cursor FROM sync_state")[0][0]) == now


def test_late_arrival_beyond_the_overlap_is_missed_without_a_wider_overlap(
    sim: Simulator, tmp_path: Path, sync: SyncFn
) -> None:
    """The overlap setting is what bounds lateness: a wider one finds an older arrival."""
    only = {"streams": ["pos_z_reports"]}
    narrow = settings_for(sim, tmp_path / "narrow.duckdb", overlap_seconds=60, **only)
    wide = settings_for(sim, tmp_path / "wide.duckdb", overlap_seconds=3600, **only)
    sync(narrow)
    sync(wide)
    cursor = int(query(narrow, "SELECT cursor FROM sync_state")[0][0])
    late = sim.world.add_late_report(dateadded=cursor - 600)
    key = (late.body["registerid"], late.body["zreportid"])
    sync(narrow)
    sync(wide)
    assert key not in set(query(narrow, "SELECT registerid, zreportid FROM pos_z_reports"))
    assert key in set(query(wide, "SELECT registerid, zreportid FROM pos_z_reports"))


def test_a_burst_of_more_than_500_in_one_second_loads_completely(
    sim: Simulator, settings: Settings, sync: SyncFn
) -> None:
    """A bulk import of 1,200 reports in one second is split by register, not looped."""
    sync(settings)
    at = sim.world.advance_clock(30)
    burst = sim.world.add_burst(1200, at=at)
    sim.world.add_new_reports(3, dateadded=at + 1)
    report = sync(settings)
    assert report.ok
    keys = set(query(settings, "SELECT registerid, zreportid FROM pos_z_reports"))
    assert {(r.body["registerid"], r.body["zreportid"]) for r in burst} <= keys
    assert keys == sim.world.valid_keys()
    split = [p for path, p in sim.log if path.endswith("/pos-z-reports") and "registerid" in p]
    assert len(split) == len(sim.world.registers)
    assert all(p["dateaddedfrom"] == p["dateaddedto"] == str(at) for p in split)
    assert sales_by_store(settings) == expected_sales(sim)
    assert int(query(settings, "SELECT cursor FROM sync_state")[0][0]) == at + 1


def test_malformed_records_go_to_rejects_and_the_run_succeeds(tmp_path: Path, sync: SyncFn) -> None:
    """Bad records are kept raw with a reason; the rest loads; a re-read does not double them."""
    with Simulator.create(SimConfig(seed=5, days=10, malformed_every=9)) as sim:
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=["pos_z_reports"])
        report = sync(settings)
        assert report.ok
        bad = [r for r in sim.world.all_reports() if not r.valid]
        assert report.results[0].rejects == len(bad) > 0
        rejects = query(settings, "SELECT stream, reason, raw, times_seen FROM rejects")
        assert len(rejects) == len(bad)
        assert {r[0] for r in rejects} == {"pos_z_reports"}
        assert all(
            "more than 2 decimal places" in r[1] or "registerid: missing" in r[1] for r in rejects
        )
        assert sales_by_store(settings) == expected_sales(sim)
        sync(settings)  # the overlap re-reads some of them
        assert count(settings, "rejects") == len(bad)


def test_faults_on_the_wire_do_not_change_the_result(
    sim: Simulator, settings: Settings, sync: SyncFn
) -> None:
    """429s with Retry-After, 5xx and dropped connections are retried; the data is the same."""
    sim.faults.queue("429", retry_after=1, path="/pos-z-reports")
    sim.faults.queue("503", path="/pos-z-reports")
    sim.faults.queue("drop", path="/pos-z-reports")
    sim.faults.queue("502", times=2, path="/pos-z-reports")
    report = sync(settings)
    assert report.ok, report.results
    assert sales_by_store(settings) == expected_sales(sim)
    assert sim.requests_to("/pos-z-reports") == 6


def test_an_exhausted_retry_budget_fails_the_stream_and_keeps_the_cursor(
    sim: Simulator, settings: Settings, sync: SyncFn
) -> None:
    """A stream that cannot be fetched fails the run with the error stored in sync_state."""
    sync(settings)
    cursor_before = query(settings, "SELECT cursor FROM sync_state")
    sim.faults.queue("500", times=50, path="/pos-z-reports")
    report = sync(settings)
    assert not report.ok
    assert report.results[0].status == "failed"
    assert "gave up after 6 attempts" in (report.results[0].error or "")
    state = query(settings, "SELECT cursor, last_error FROM sync_state")
    assert state[0][0] == cursor_before[0][0]
    assert "status=500" in state[0][1]


def test_windows_fetched_before_a_failure_are_kept(tmp_path: Path, sync: SyncFn) -> None:
    """When a later page cannot be fetched, the pages before it are committed with their cursor."""
    with Simulator.create(SimConfig(seed=4, days=120, registers_per_store=2)) as sim:
        settings = settings_for(sim, tmp_path / "w.duckdb", streams=["pos_z_reports"])
        sim.faults.queue("503", times=50, path="/pos-z-reports", after=1)
        report = sync(settings)
        assert not report.ok
        assert report.results[0].windows == 1
        [(cursor, status)] = query(settings, "SELECT cursor, last_status FROM sync_state")
        assert status == "failed"
        assert count(settings, "pos_z_reports") == 500
        first_page_newest = int(cursor)
        sim.faults.clear()
        assert sync(settings).ok
        assert set(query(settings, "SELECT registerid, zreportid FROM pos_z_reports")) == (
            sim.world.valid_keys()
        )
        assert first_page_newest < int(query(settings, "SELECT cursor FROM sync_state")[0][0])


def test_reloading_a_parent_replaces_its_children_as_a_set(tmp_path: Path) -> None:
    """A parent loaded again with fewer children leaves only the new children behind."""
    warehouse = DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    warehouse.ensure_schema([*SYSTEM_TABLES, *POS_Z_REPORTS.tables])
    record = vendor_example()
    load_window(warehouse, POS_Z_REPORTS, "p", normalize_window([record]), "1")
    record["paymentssales"] = record["paymentssales"][:1]
    record["moneysalestotal"] = "28673.75"
    load_window(warehouse, POS_Z_REPORTS, "p", normalize_window([record]), "2")
    assert warehouse.query("SELECT count(*) FROM pos_z_report_payments") == [(1,)]
    assert warehouse.query("SELECT moneysalestotal FROM pos_z_reports") == [(Decimal("28673.75"),)]
    assert warehouse.query("SELECT count(*) FROM pos_z_reports") == [(1,)]
    assert warehouse.query("SELECT cursor, rows_loaded, windows_loaded FROM sync_state") == [
        ("2", 10 + 8, 2)  # parent + 2 vat + 2 groups + 3|1 payments + 2 discounts
    ]
    warehouse.close()


def test_a_failed_load_rolls_back_rows_and_cursor_together(tmp_path: Path) -> None:
    """If anything in a window's transaction fails, neither its rows nor its cursor remain."""

    class Boom(DuckDBWarehouse):
        def set_cursor(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("disk full")

    warehouse = Boom(f"duckdb:///{tmp_path / 'w.duckdb'}")
    warehouse.ensure_schema([*SYSTEM_TABLES, *POS_Z_REPORTS.tables])
    with pytest.raises(RuntimeError, match="disk full"):
        load_window(warehouse, POS_Z_REPORTS, "p", normalize_window([vendor_example()]), "1")
    assert warehouse.query("SELECT count(*) FROM pos_z_reports") == [(0,)]
    assert warehouse.query("SELECT count(*) FROM pos_z_report_vat_groups") == [(0,)]
    assert warehouse.query("SELECT count(*) FROM sync_state") == [(0,)]
    warehouse.close()


def test_schema_gains_a_declared_column_without_losing_data(tmp_path: Path) -> None:
    """A column added to a declaration appears in an existing warehouse; rows stay."""
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    v1 = Table("t", (text("k", nullable=False),), key=("k",))
    v2 = Table("t", (text("k", nullable=False), integer("n")), key=("k",))
    warehouse = DuckDBWarehouse(url)
    warehouse.ensure_schema([v1])
    warehouse.upsert(v1, rows_to_arrow(v1, [("a",)]))
    warehouse.ensure_schema([v2])
    warehouse.upsert(v2, rows_to_arrow(v2, [("b", 2)]))
    assert warehouse.query("SELECT k, n FROM t ORDER BY k") == [("a", None), ("b", 2)]
    warehouse.close()


def test_a_report_stamped_in_milliseconds_does_not_silence_the_feed(
    sim: Simulator, settings: Settings, sync: SyncFn
) -> None:
    """A report whose dateadded comes in milliseconds is rejected and does not carry the
    cursor past every later upload: reports uploaded after it still load on the next tick."""
    sync(settings)
    now = sim.world.advance_clock(120)
    (bad,) = sim.world.add_new_reports(1, dateadded=now)
    with sim.world.lock:  # served in milliseconds, still filtered by its real second
        bad.body["dateadded"] = now * 1000
        bad.encoded = json.dumps(bad.body, separators=(",", ":")).encode()
    report = sync(settings)
    assert report.ok
    reasons = [r for (r,) in query(settings, "SELECT reason FROM rejects")]
    assert ["Unix timestamp" in r for r in reasons] == [True]
    later = sim.world.add_new_reports(3, dateadded=sim.world.advance_clock(120))
    assert sync(settings).ok
    keys = set(query(settings, "SELECT registerid, zreportid FROM pos_z_reports"))
    assert {(r.body["registerid"], r.body["zreportid"]) for r in later} <= keys


def test_a_cursor_stored_in_milliseconds_fails_clearly_until_reset(
    sim: Simulator, settings: Settings, sync: SyncFn
) -> None:
    """A cursor an older version stored in milliseconds fails its partition with a one-line
    error that names the way out (no traceback, status still shows it); a reset to a day
    moves it back and the reports uploaded since load again."""
    from datetime import UTC, datetime

    from sitoo_sync.reset import reset_stream
    from sitoo_sync.status import cursor_text
    from sitoo_sync.warehouse import open_warehouse

    sync(settings)
    cursor = int(query(settings, "SELECT cursor FROM sync_state")[0][0])
    warehouse = open_warehouse(settings.target_url)
    try:
        with warehouse.transaction():
            warehouse.set_cursor("pos_z_reports", "1500", str(cursor * 1000), rows=0)
    finally:
        warehouse.close()
    later = sim.world.add_new_reports(3, dateadded=sim.world.advance_clock(120))
    report = sync(settings)
    assert not report.ok
    assert "sitoo-sync reset" in str(report.results[0].error)
    warehouse = open_warehouse(settings.target_url)
    try:
        (state,) = [s for s in warehouse.states() if s.stream == "pos_z_reports"]
        assert cursor_text(state, datetime.now(UTC)) == str(cursor * 1000)
        day = datetime.fromtimestamp(cursor, UTC).date()
        reset_stream(settings, warehouse, POS_Z_REPORTS, since=day)
    finally:
        warehouse.close()
    assert sync(settings).ok
    keys = set(query(settings, "SELECT registerid, zreportid FROM pos_z_reports"))
    assert {(r.body["registerid"], r.body["zreportid"]) for r in later} <= keys
