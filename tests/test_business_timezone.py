"""POS z-reports' business_date: the register's pos-timezone, else its site's zone, else the
account's, else UTC."""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from sitoo_sync.api.client import Api
from sitoo_sync.errors import ContextUnavailable, FatalApiError
from sitoo_sync.normalize.columns import rows_to_arrow
from sitoo_sync.normalize.journal_entries import JOURNAL_RECEIPTS
from sitoo_sync.normalize.pos_z_reports import known_zone, normalize_window
from sitoo_sync.simulator import Simulator
from sitoo_sync.simulator.chain import time_zone_of
from sitoo_sync.streams.base import TickSources
from sitoo_sync.streams.journal_entries import JOURNAL_ENTRIES
from sitoo_sync.streams.pos_z_reports import ZONE_CONFIG, register_zones
from sitoo_sync.warehouse import open_warehouse
from sitoo_sync.warehouse.base import SYSTEM_TABLES, Warehouse
from tests.conftest import SyncFn
from tests.support import query, settings_for, vendor_example
from tests.targets import ALL_TARGETS, Target, target_for

#: 23:30 UTC on 20 November: already 21 November in Stockholm (UTC+1), still the 20th in UTC.
LATE_CLOSING = int(datetime(2026, 11, 20, 23, 30, tzinfo=UTC).timestamp())
REGISTER = "{AAAAAAAA-0000-0000-0000-000000000001}"
OTHER = "{AAAAAAAA-0000-0000-0000-000000000002}"


@pytest.fixture(params=ALL_TARGETS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """Each target in turn (servers skip when CI did not provide them)."""
    with target_for(request.param, tmp_path) as t:
        yield t


def receipt(registerid: str, entry_id: int, created: int, zone: str | None) -> tuple[Any, ...]:
    """A journal_receipts row with only what the zone lookup reads set."""
    values: dict[str, Any] = {
        "registerid": registerid,
        "id": entry_id,
        "datecreated": datetime.fromtimestamp(created, UTC),
        "timezone": zone,
    }
    return tuple(values.get(name) for name in JOURNAL_RECEIPTS.column_names)


def store_receipts(warehouse: Warehouse, rows: list[tuple[Any, ...]]) -> None:
    warehouse.ensure_schema([*SYSTEM_TABLES, *JOURNAL_ENTRIES.tables])
    with warehouse.transaction():
        warehouse.insert(JOURNAL_RECEIPTS, rows_to_arrow(JOURNAL_RECEIPTS, rows))


def closing(registerid: str) -> dict[str, Any]:
    """The vendor's example z-report, for `registerid`, created at LATE_CLOSING."""
    return {**vendor_example(), "registerid": registerid, "datecreated": LATE_CLOSING}


def business(context: Mapping[str, Any], *registers: str) -> dict[str, tuple[date, str]]:
    """(business_date, business_timezone) per register of closings normalized in `context`."""
    window = normalize_window([closing(r) for r in registers], context)
    rows = window.tables["pos_z_reports"].to_pylist()
    return {r["registerid"]: (r["business_date"], r["business_timezone"]) for r in rows}


def test_a_late_closing_counts_on_the_registers_local_next_day() -> None:
    """A closing at 23:30 UTC of a register in Europe/Stockholm is on the next local day; the
    account's zone serves registers without one of their own; with neither it is UTC."""
    context = {"timezones": {REGISTER: "Europe/Stockholm"}, "timezone": "America/New_York"}
    assert business(context, REGISTER, OTHER) == {
        REGISTER: (date(2026, 11, 21), "Europe/Stockholm"),
        OTHER: (date(2026, 11, 20), "America/New_York"),
    }
    assert business({}, REGISTER) == {REGISTER: (date(2026, 11, 20), "UTC")}
    unknown = {"timezones": {REGISTER: "Mars/Olympus"}, "timezone": "Not/AZone"}
    assert business(unknown, REGISTER) == {REGISTER: (date(2026, 11, 20), "UTC")}


def test_the_tick_hook_reads_each_registers_latest_receipt_zone(target: Target) -> None:
    """The hook takes each register's zone from its latest receipt that names one (one query,
    on every target) and the account's zone from the store z-report config."""
    warehouse = open_warehouse(target.url, schema=target.schema)
    try:
        store_receipts(
            warehouse,
            [
                receipt(REGISTER, 1, LATE_CLOSING - 7200, "Europe/London"),
                receipt(REGISTER, 2, LATE_CLOSING - 3600, "Europe/Stockholm"),
                receipt(REGISTER, 3, LATE_CLOSING - 60, None),  # names none: not the latest
                receipt(OTHER, 1, LATE_CLOSING - 60, None),
            ],
        )
        asked: list[tuple[Api, str]] = []

        def get(api: Api, path: str) -> Any:
            asked.append((api, path))
            if path == "/sites.json":
                return {"items": [{"eshopid": 1}, {"eshopid": 2}]}
            if path == "/sites/2/settings.json":
                return {"timezone": "Europe/Helsinki"}
            if path.startswith("/sites/"):
                return {}  # site 1 names no zone
            return {"aggregation_active": True, "hour_of_day": 3, "time_zone": "Europe/Oslo"}

        now = datetime.fromtimestamp(LATE_CLOSING, UTC)
        context = register_zones(TickSources(warehouse.latest_values, get, now))
    finally:
        warehouse.close()
    assert asked == [
        (Api.V2, "/sites.json"),
        (Api.V2, "/sites/1/settings.json"),
        (Api.V2, "/sites/2/settings.json"),
        (Api.ZREPORTS, ZONE_CONFIG),
    ]
    assert context == {
        "timezones": {REGISTER: "Europe/Stockholm"},
        "site_timezones": {"2": "Europe/Helsinki"},
        "site_zones_unread": (),
        "timezone": "Europe/Oslo",
    }
    assert business(context, REGISTER, OTHER) == {
        REGISTER: (date(2026, 11, 21), "Europe/Stockholm"),
        OTHER: (date(2026, 11, 21), "Europe/Oslo"),
    }


def test_the_hook_falls_back_to_utc_without_journals_or_aggregation(tmp_path: Path) -> None:
    """With no journal_receipts table and a store z-report config answering 404, the hook
    gives no zone and business days are UTC days."""
    warehouse = open_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")

    def get(api: Api, path: str) -> Any:
        raise FatalApiError("not configured", status=404, stream="pos_z_reports")

    try:
        context = register_zones(TickSources(warehouse.latest_values, get, datetime.now(UTC)))
    finally:
        warehouse.close()
    assert context == {
        "timezones": {},
        "site_timezones": {},
        "site_zones_unread": (),
        "timezone": None,
    }
    assert business(context, REGISTER) == {REGISTER: (date(2026, 11, 20), "UTC")}


def test_a_register_without_a_zone_of_its_own_takes_its_sites() -> None:
    """A register whose journal names no zone (not loaded yet) has its closings dated in its
    site's zone before the account's, so they get the day a later backfill would give; a
    site whose zone failed to read this tick makes them wait instead."""
    context = {
        "timezones": {REGISTER: "Europe/Stockholm"},
        "site_timezones": {"1": "Asia/Tokyo"},
        "timezone": "America/New_York",
    }
    assert business(context, REGISTER, OTHER) == {
        REGISTER: (date(2026, 11, 21), "Europe/Stockholm"),
        OTHER: (date(2026, 11, 21), "Asia/Tokyo"),
    }
    for unread in (("1",), ("*",)):
        waiting = {**context, "site_timezones": {}, "site_zones_unread": unread}
        assert business(waiting, REGISTER) == {REGISTER: (date(2026, 11, 21), "Europe/Stockholm")}
        with pytest.raises(ContextUnavailable, match="site 1"):
            business(waiting, OTHER)


def test_a_tick_counts_each_registers_business_day_in_its_own_zone(
    sim: Simulator, sync: SyncFn, tmp_path: Path
) -> None:
    """In a real tick, a register whose journal receipts name America/New_York has its
    z-reports dated in New York; the others in their site's zone (no journal loaded yet)."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["pos_z_reports"])
    reports = sim.world.all_reports()
    ny = reports[0].body["registerid"]
    warehouse = open_warehouse(settings.target_url)
    try:
        store_receipts(
            warehouse, [receipt(ny, 1, reports[0].body["datecreated"], "America/New_York")]
        )
    finally:
        warehouse.close()
    assert sync(settings).ok
    rows = query(
        settings,
        "SELECT registerid, datecreated, business_date, business_timezone FROM pos_z_reports",
    )
    zones = {r[0]: r[3] for r in rows}
    assert zones[ny] == "America/New_York"
    sites = {r.registerid: r.eshopid for r in sim.world.registers}
    others = {(sites[r], z) for r, z in zones.items() if r != ny}
    assert others == {(s, time_zone_of(s)) for s in {sites[r] for r in zones if r != ny}}
    assert len({z for _s, z in others}) > 1  # the sites' zones, not one account-wide zone
    for _registerid, created, day, zone in rows:
        assert day == created.astimezone(ZoneInfo(zone)).date()


def test_zones_resolve_without_the_systems_time_zone_files() -> None:
    """The IANA zones ship with the package (tzdata): where the system has no zone files (a
    slim image, Windows) a report's zone is still known, not silently UTC."""
    zoneinfo.reset_tzpath(to=[])
    zoneinfo.ZoneInfo.clear_cache()
    try:
        assert known_zone("Europe/Stockholm") == "Europe/Stockholm"
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()
