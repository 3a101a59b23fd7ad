"""The REST v2 views as a BI tool reads them: current truth, one spelling of "no store", and
types that need no cast, on every target (rows made by hand: cases the simulator does not make).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.targets import Target, grouped_targets, holding_rows, view_rows

NOW = datetime.now(UTC).replace(microsecond=0)  # days_silent: to the database's clock
GONE_AT = NOW - timedelta(days=3)
#: A register of a site taken out of SITOO_SITE_IDS six days ago: its journal's last sync.
DROPPED_AT = NOW - timedelta(days=6)


def _synced(stream: str, partition: str, at: datetime) -> dict[str, Any]:
    """A sync_state row of a partition a tick last synced well at `at`."""
    return {
        "stream": stream,
        "partition_key": partition,
        "last_success_at": at,
        "last_status": "ok",
    }


ROWS: dict[str, list[dict[str, Any]]] = {
    "stores": [
        {"site_id": 1, "storeid": 1, "externalid": "S1", "name": "Store One"},
        {"site_id": 1, "storeid": 2, "externalid": "", "name": "No external id"},
    ],
    "warehouses": [
        {"site_id": 1, "warehouseid": 1, "name": "WH1", "storeid": 1, "currencycode": "SEK"},
        {"site_id": 1, "warehouseid": 2, "name": "WH2", "storeid": 2, "currencycode": "SEK"},
        # deleted in Sitoo: kept with missing_since, its stock is never read again
        {
            "site_id": 1,
            "warehouseid": 3,
            "name": "Closed",
            "storeid": 1,
            "currencycode": "SEK",
            "missing_since": GONE_AT,
        },
    ],
    "warehouse_items": [
        {
            "site_id": 1,
            "warehouseid": wh,
            "sku": "A",
            "decimaltotal": Decimal(n),
            "moneytotal": Decimal(value),
        }
        for wh, n, value in ((1, 5, "50.00"), (2, 1, "10.00"), (3, 7, "70.00"))
    ],
    "orders": [
        {
            "orderid": orderid,
            "site_id": 1,
            "warehouseid": wh,
            "store_externalid": store,
            "orderdate": datetime(2026, 1, 2, 12, tzinfo=UTC),
            "business_date": date(2026, 1, 2),
            "currencycode": "SEK",
            "orderstateid": 10,
        }
        for orderid, wh, store in ((1, 1, ""), (2, 2, ""), (3, 1, "S9"))
    ],
    "order_items": [
        {
            "orderid": orderid,
            "position": 0,
            "moneyitemtotal_net": Decimal("8.00"),
            "moneyitemtotal_vat": Decimal("2.00"),
        }
        for orderid in (1, 2, 3)
    ],
    "cash_registers": [
        {
            "registerid": "{QUIET}",
            "site_id": 1,
            "warehouseid": 2,
            "first_seen_at": NOW - timedelta(days=4, hours=1),
            "last_seen_at": NOW,
        },
        {
            "registerid": "{DROPPED}",
            "site_id": 2,
            "warehouseid": 9,
            "first_seen_at": NOW - timedelta(days=30),
            "last_seen_at": DROPPED_AT,
        },
    ],
    # {DROPPED} last sold ten days ago and its journal was synced until six days ago;
    # {UNSYNCED} closed a day three days ago, on a site whose journals are never synced
    # (the account's z-reports come from every site).
    "journal_entries": [
        {
            "registerid": "{DROPPED}",
            "id": 1,
            "type": "receipt",
            "datecreated": NOW - timedelta(days=10, hours=1),
            "dateadded": NOW - timedelta(days=10, hours=1),
        }
    ],
    "pos_z_reports": [
        {
            "registerid": registerid,
            "zreportid": zreportid,
            "store_id": store,
            "datecreated": NOW - timedelta(days=days, hours=1),
            "dateadded": NOW - timedelta(days=days, hours=1),
        }
        # {MOVED} closed in store S2, then was moved to store S1 and closed there
        for registerid, zreportid, store, days in (
            ("{UNSYNCED}", 1, "S1", 3),
            ("{MOVED}", 1, "S2", 9),
            ("{MOVED}", 2, "S1", 8),
        )
    ],
    "sync_state": [
        _synced("journal_entries", "{QUIET}", NOW),
        _synced("journal_entries", "{DROPPED}", DROPPED_AT),
        _synced("pos_z_reports", "1500", NOW),
        # warehouse 2's stock was last read six days ago (its sync stopped)
        _synced("warehouse_items", "1/1", NOW),
        _synced("warehouse_items", "1/2", DROPPED_AT),
    ],
}


@pytest.fixture(scope="module", params=grouped_targets("bi-views"))
def made(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    """Every stream's tables and the views on each target, holding ROWS."""
    with holding_rows(request.param, tmp_path_factory.mktemp(request.param), ROWS) as target:
        yield target


def test_stock_of_a_warehouse_no_longer_listed_is_left_out(made: Target) -> None:
    """v_stock_levels shows the stock of listed warehouses only: a deleted warehouse's rows,
    frozen at their last read, are not today's stock."""
    found = view_rows(made, "SELECT warehouseid, on_hand FROM v_stock_levels ORDER BY warehouseid")
    assert [(r[0], Decimal(str(r[1]))) for r in found] == [(1, Decimal(5)), (2, Decimal(1))]


def test_stock_levels_say_as_of_when_each_warehouse_was_read(made: Target) -> None:
    """v_stock_levels gives each warehouse's stock the time a tick last read it well, so the
    frozen stock of a warehouse no longer synced (its site taken out of SITOO_SITE_IDS) is
    not taken for today's."""
    found = view_rows(made, "SELECT warehouseid, synced_at FROM v_stock_levels")
    assert sorted((w, utc(at)) for w, at in found) == [(1, NOW), (2, DROPPED_AT)]


def test_an_empty_store_externalid_is_no_store(made: Target) -> None:
    """An order whose store-externalid is empty falls back to its warehouse's store, and a
    store with an empty externalid is NO_STORE, in every REST v2 view, as in z-reports."""
    sales = view_rows(made, "SELECT store_id, orders FROM v_daily_order_sales ORDER BY store_id")
    assert [(r[0], int(r[1])) for r in sales] == [("NO_STORE", 1), ("S1", 1), ("S9", 1)]
    stock = view_rows(made, "SELECT warehouseid, store_id FROM v_stock_levels ORDER BY warehouseid")
    assert stock == [(1, "S1"), (2, "NO_STORE")]
    for view in ("v_registers", "v_register_activity"):
        query = f"SELECT store_id FROM {view} WHERE registerid = '{{QUIET}}'"
        assert view_rows(made, query) == [("NO_STORE",)]


def test_days_silent_is_a_whole_number_on_every_target(made: Target) -> None:
    """v_register_activity.days_silent reaches a BI tool as an integer (MariaDB made it a
    DECIMAL), so it needs no cast to compare or bucket."""
    [(days, unsynced)] = view_rows(
        made,
        "SELECT days_silent, days_unsynced FROM v_register_activity WHERE registerid = '{QUIET}'",
    )
    assert (type(days), type(unsynced)) == (int, int)
    assert (days, unsynced) == (4, 0)


def test_a_register_is_silent_up_to_the_latest_sync_that_reads_it(made: Target) -> None:
    """A register is silent up to the latest sync that could have shown a sign of life of
    it (synced_until): the account's z-reports, still read, keep a register whose journal
    is no longer synced (its site taken out of SITOO_SITE_IDS) or never was judged, so a
    till that stopped closing reads as silent all the same."""
    found = {
        r[0]: (r[1], None if r[2] is None else utc(r[2]), r[3])
        for r in view_rows(
            made,
            "SELECT registerid, days_silent, synced_until, days_unsynced FROM v_register_activity",
        )
    }
    assert found == {
        "{QUIET}": (4, utc(NOW), 0),
        "{DROPPED}": (10, utc(NOW), 0),
        "{UNSYNCED}": (3, utc(NOW), 0),
        "{MOVED}": (8, utc(NOW), 0),
    }


def test_a_moved_register_is_in_the_store_of_its_last_z_report(made: Target) -> None:
    """v_register_activity gives a register that moved stores the store of its last
    z-report (where it is now), not whichever of its stores sorts last."""
    query = "SELECT store_id, last_zreportid FROM v_register_activity WHERE registerid = '{MOVED}'"
    assert view_rows(made, query) == [("S1", 2)]


def utc(value: Any) -> datetime:
    """A timestamp as aware UTC (targets return naive UTC, text or aware)."""
    at: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
