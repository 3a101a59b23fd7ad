"""The REST v2 catalogue, stock and users streams: vendor-shaped records into typed rows, each
cursor's edge against the simulator, joins, personal data, every target, crashes and faults."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import io
import json
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pydantic import SecretStr

from sitoo_sync.api.client import make_client
from sitoo_sync.log import configure_logging
from sitoo_sync.normalize import (
    categories,
    manufacturers,
    pos_payment_types,
    product_groups,
    products,
    sites,
    stores,
    users,
    warehouse_items,
    warehouses,
)
from sitoo_sync.normalize.personal import PersonalData
from sitoo_sync.normalize.tables import Table
from sitoo_sync.settings import Settings
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.simulator.rest_v2 import totals
from sitoo_sync.simulator.rest_v2.config import RestConfig
from sitoo_sync.status import stored_sites_of, stream_problems
from sitoo_sync.streams import STREAMS, select_streams
from sitoo_sync.streams.cursors import WindowContext
from sitoo_sync.streams.cursors_modified import ModifiedSince, parse_state
from sitoo_sync.sync import GONE, RunReport, run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import FIXTURES, PipeLines, query, run_once_process, settings_for
from tests.targets import Target, target_for

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CATALOGUE = ["sites", "stores", "warehouses", "pos_payment_types", "product_groups"]
CATALOGUE += ["manufacturers", "categories"]
STOCK = ["stores", "warehouses", "products", "warehouse_items", "cash_registers"]
PERSONAL = ("email", "namefirst", "namelast", "personalid", "phone", "mobile", "address", "zip")


def fixture(name: str) -> Any:
    """The response of a vendor-shaped fixture, parsed as the client parses it."""
    text = (FIXTURES / f"rest_v2_{name}.json").read_text()
    return json.loads(text, parse_float=Decimal)["response"]


def items(name: str) -> list[Any]:
    """The records of a fixture (a bare array or an envelope)."""
    response = fixture(name)
    return response if isinstance(response, list) else response["items"]


def rows(
    normalize: Callable[..., Any], table: Table, records: list[Any], **context: Any
) -> list[dict[str, Any]]:
    """`records` normalized with a site partition and a fixed tick time: the parent's rows."""
    context = {"partition": "1", "now": NOW, "personal_data": PersonalData(), **context}
    window = normalize(records, context)
    assert not window.rejects, window.rejects
    data: pa.Table = window.tables[table.name]
    return data.to_pylist()  # type: ignore[no-any-return]


def run(settings: Settings, clock: datetime | None = None) -> RunReport:
    """One tick of the settings' streams with their own options applied, at `clock`."""
    with make_client(settings, sleep=lambda _s: None) as client:
        report = run_once(
            settings,
            open_warehouse(settings.target_url, schema=settings.target_schema),
            client,
            select_streams(settings.streams, settings.stream_options),
            clock=(lambda: clock) if clock else (lambda: datetime.now(UTC)),
        )
    assert report.ok, [r.error for r in report.results if r.error]
    return report


@pytest.fixture
def sim() -> Any:
    """A small seeded world with the REST v2 catalogue."""
    world = SimConfig(seed=5, days=6, malformed_every=0, now=int(NOW.timestamp()))
    simulator = Simulator.create(world).start()
    yield simulator
    simulator.stop()


# ---- normalization of the vendor-shaped fixtures -------------------------------------------


def test_sites_fixture_becomes_typed_rows() -> None:
    """/sites.json items become site rows keyed by eshopid, with the account they came from."""
    got = rows(sites.normalize_window, sites.SITES, items("sites"), partition="1500")
    assert [(r["eshopid"], r["account_id"], r["server"]) for r in got] == [
        (1, "1500", "demo-se.mysitoo.com"),
        (2, "1500", "demo-no.mysitoo.com"),
    ]
    assert got[0]["first_seen_at"] == NOW
    assert got[0]["missing_since"] is None


def test_stores_fixture_becomes_typed_rows() -> None:
    """A store row carries its site, ids, external ids, JSON lists and stays unmarked."""
    got = rows(stores.normalize_window, stores.STORES, items("stores"))
    first = got[0]
    assert (first["site_id"], first["storeid"], first["externalid"]) == (1, 1, "200")
    assert first["storetype"] == 10
    assert json.loads(first["nearby_stores"]) == [2, 3, 4]
    assert first["usetype_shipmentout"] == 10
    assert first["extra"] is None
    assert first["last_seen_at"] == NOW
    assert first["missing_since"] is None


def test_warehouses_fixture_becomes_typed_rows() -> None:
    """A warehouse row has its site from the partition and its store link as an integer."""
    got = rows(warehouses.normalize_window, warehouses.WAREHOUSES, items("warehouses"))
    assert [(r["site_id"], r["warehouseid"], r["storeid"], r["sellable"]) for r in got] == [
        (1, 1, 1, True),
        (1, 2, 2, True),
    ]
    assert got[0]["currencycode"] == "SEK"


def test_pos_payment_types_fixture_gets_method_names() -> None:
    """The bare array becomes rows whose documented paymentmethodid is spelled out."""
    got = rows(
        pos_payment_types.normalize_window,
        pos_payment_types.POS_PAYMENT_TYPES,
        [*items("pospaymenttypes"), {"paymenttypeid": 99, "paymentmethodid": 4242, "name": "X"}],
    )
    named = {r["paymenttypeid"]: (r["paymentmethodid"], r["paymentmethod_name"]) for r in got}
    assert named == {
        1: (100, "Cash"),
        2: (2110, "Card (Adyen Terminal API)"),
        3: (710, "Swish"),
        99: (4242, None),  # undocumented code: the number stays, no name is invented
    }


def test_product_groups_manufacturers_categories_fixtures_become_typed_rows() -> None:
    """VAT rates are decimals, manufacturer ids integers, category times UTC instants."""
    groups = rows(
        product_groups.normalize_window, product_groups.PRODUCT_GROUPS, items("productgroups")
    )
    assert [(g["vatid"], g["value"]) for g in groups] == [(2, Decimal(25)), (3, Decimal(25))]
    makers = rows(
        manufacturers.normalize_window, manufacturers.MANUFACTURERS, items("manufacturers")
    )
    assert next((m["externalcompanyid"], m["name"]) for m in makers) == (1, "Fjällstad AB")
    cats = rows(categories.normalize_window, categories.CATEGORIES, items("categories"))
    assert [(c["categoryid"], c["categoryparentid"]) for c in cats] == [(1, None), (2, 1)]
    assert cats[0]["datecreated"] == datetime.fromtimestamp(1789084800, UTC)


def test_products_fixture_becomes_typed_rows() -> None:
    """Money is Decimal, times UTC, lists JSON, the site comes from the partition."""
    got = rows(products.normalize_window, products.PRODUCTS, items("products"))
    first = got[0]
    assert (first["site_id"], first["productid"], first["title"]) == (1, 1003, "Classic Belt")
    assert first["moneyprice"] == Decimal("489.50")
    assert first["moneypricein"] == Decimal("137.06")
    assert first["vatvalue"] == Decimal(25)
    assert json.loads(first["categories"]) == [5]
    assert first["datemodified"] == datetime.fromtimestamp(1785557438, UTC)
    assert first["missing_since"] is None
    assert first["extra"] is not None


def test_products_asks_for_title_and_every_declared_field() -> None:
    """The explicit field list names title (not a default field) and no column of ours."""
    assert "title" in products.FIELDS
    assert "datemodified" in products.FIELDS
    assert not {"site_id", "missing_since", "extra"} & set(products.FIELDS)


def test_warehouse_items_fixture_becomes_typed_rows() -> None:
    """Quantities are decimals, the stock value money, keyed by site, warehouse and sku."""
    got = rows(
        warehouse_items.normalize_window,
        warehouse_items.WAREHOUSE_ITEMS,
        items("warehouseitems"),
        partition="1/1",
    )
    first = got[0]
    assert (first["site_id"], first["warehouseid"], first["sku"]) == (1, 1, "SE-CLO-0001")
    assert first["decimaltotal"] == Decimal("25.000")
    assert first["decimalavailable"] == Decimal("25.000")
    assert first["moneytotal"] == Decimal("2117.75")
    assert first["datelaststocktaking"] is None


def test_warehouse_items_take_the_warehouse_from_the_partition_when_absent() -> None:
    """A stock row without warehouseid (the list example omits it) gets the partition's."""
    record = {k: v for k, v in items("warehouseitems")[0].items() if k != "warehouseid"}
    got = rows(
        warehouse_items.normalize_window,
        warehouse_items.WAREHOUSE_ITEMS,
        [record],
        partition="1/12",
    )
    assert (got[0]["site_id"], got[0]["warehouseid"]) == (1, 12)


def test_users_fixture_drops_personal_fields_by_default() -> None:
    """With the default mode every personal column is NULL; staff flags and ids stay."""
    got = rows(users.normalize_window, users.USERS, items("users"))
    first = got[0]
    assert first["userid"] == "{8E89894B-B8F0-7E18-E5BE-BD724643D12E}"
    assert first["role"] == 10
    assert first["is_staff"] is True
    assert all(first[name] is None for name in (*PERSONAL, "notes", "voucherpasswords"))
    assert first["countryid"] == "SE"
    assert json.loads(first["warehouses"])[:2] == [1, 2]


def test_every_user_contact_field_is_declared_personal() -> None:
    """Names, contacts, addresses, national id and notes are personal; the key is not."""
    personal = {c.name for c in users.USERS.columns if c.personal}
    assert set(PERSONAL) | {"notes", "address2", "city", "state", "voucherpasswords"} <= personal
    assert "userid" not in personal
    assert "extra" not in users.USERS.column_names


# ---- cursors against the simulator ---------------------------------------------------------


def _listing(pages: list[list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], Any]:
    """A fake fetch that serves `pages` in turn with their totalcount, and its request log."""
    asked: list[dict[str, Any]] = []
    total = sum(map(len, pages))

    def fetch_raw(params: Any) -> Any:
        asked.append(dict(params))
        return {
            "totalcount": total,
            "items": pages[len(asked) - 1] if len(asked) <= len(pages) else [],
        }

    return asked, fetch_raw


def test_a_sweep_whose_count_changes_lists_the_ids_again() -> None:
    """When totalcount moves during a sweep (pages may have shifted), the ids are listed
    again and only the pass that saw a steady count records the sweep."""
    stored = json.dumps({"after": 1000, "snapshot_at": 90000, "swept_at": 0, "listed_at": 900})
    strategy = ModifiedSince("from", "t", True, sweep_field="id", page_size=2)
    answers = iter(
        [
            {"totalcount": 0, "items": []},  # nothing modified
            {"totalcount": 3, "items": [{"id": 1}, {"id": 2}]},
            {"totalcount": 2, "items": [{"id": 4}]},  # one deleted meanwhile: shifted
            {"totalcount": 2, "items": [{"id": 2}, {"id": 4}]},
            {"totalcount": 2, "items": []},
        ]
    )
    at = datetime.fromtimestamp(100000, UTC)
    ctx = WindowContext(fetch_raw=lambda _p: next(answers), now=at)
    windows = list(strategy.windows(ctx, stored))
    sweeps = [w for w in windows if w.sweep]
    assert [[r["id"] for r in w.records] for w in sweeps] == [[1, 2], [4], [2, 4]]
    assert [parse_state(w.cursor).swept_at for w in sweeps] == [0, 0, 100000]


def test_pages_without_a_totalcount_are_read_until_one_comes_back_short() -> None:
    """Bare arrays (the contract's tolerant reader) and envelopes without a totalcount are
    paged until a page is shorter than `num`, the listing and the sweep alike: the listing
    completes (`after` moves) and the sweep is recorded, where each page used to fail the
    tick with "no integer totalcount"."""
    stored = json.dumps({"after": 1000, "snapshot_at": 90000, "swept_at": 0, "listed_at": 900})
    strategy = ModifiedSince("from", "t", True, sweep_field="id", page_size=2)
    answers = iter(
        [
            [{"id": 1, "t": 1500}, {"id": 2, "t": 1600}],  # a full bare page: more may follow
            {"items": [{"id": 3, "t": 1700}]},  # short, no totalcount: the listing ends
            [{"id": 1}, {"id": 2}],
            {"totalcount": "3", "items": [{"id": 3}]},  # a count given as digits
        ]
    )
    at = datetime.fromtimestamp(100000, UTC)
    windows = list(
        strategy.windows(WindowContext(fetch_raw=lambda _p: next(answers), now=at), stored)
    )
    listed = [w for w in windows if not w.sweep]
    sweeps = [w for w in windows if w.sweep]
    assert [[r["id"] for r in w.records] for w in listed] == [[1, 2], [3]]
    assert parse_state(listed[-1].cursor).after == 1700
    assert [[r["id"] for r in w.records] for w in sweeps] == [[1, 2], [3]]
    assert parse_state(sweeps[-1].cursor).swept_at == 100000


def test_modified_since_bounds_cursor_and_resume_point() -> None:
    """An exclusive bound is asked one second before cursor - overlap, an inclusive one at
    it; a page cursor names where a crashed listing resumes, and only a complete listing
    moves `after` and `listed_at`."""
    stored = json.dumps({"after": 1000, "snapshot_at": 0, "swept_at": 0, "listed_at": 900})
    at = datetime.fromtimestamp(5000, UTC)
    for inclusive, lo in ((False, 939), (True, 940)):
        strategy = ModifiedSince("from", "t", inclusive, overlap_seconds=60, snapshot_hours=0)
        asked, fetch = _listing([[{"t": 1200}], [{"t": 1100}]])
        windows = list(strategy.windows(WindowContext(fetch_raw=fetch, now=at), stored))
        assert [a["from"] for a in asked] == [lo, lo]
        first, last = (parse_state(w.cursor) for w in windows)
        assert (first.after, first.listed_at, dict(first.page or {})["start"]) == (1000, 900, 1)
        assert (last.after, last.listed_at, last.page) == (1200, 5000, None)
    assert strategy.lag_seconds(windows[-1].cursor, at) == 0.0


class _Catalogue:
    """Records by id with a modified time, listed by id with start/num and an inclusive
    `from` bound; `on_request(n)` runs before the n-th request is answered."""

    def __init__(self, times: dict[int, int], on_request: Callable[[int], object]) -> None:
        self.times = times
        self.on_request = on_request
        self.requests = 0

    def __call__(self, params: Any) -> Any:
        self.requests += 1
        self.on_request(self.requests)
        lo = params.get("from")
        ids = [i for i in sorted(self.times) if lo is None or self.times[i] >= lo]
        start, num = int(params["start"]), int(params["num"])
        return {
            "totalcount": len(ids),
            "items": [{"id": i, "t": self.times[i]} for i in ids[start : start + num]],
        }


@pytest.mark.parametrize("snapshot", [True, False])
def test_a_record_a_deletion_shifted_past_is_listed_again_next_tick(snapshot: bool) -> None:
    """When a record is deleted between two pages of a listing (totalcount moves), the
    record the offset then skips is still loaded by the next tick, whether the listing was
    a snapshot or a modified feed, instead of waiting for the next snapshot."""
    strategy = ModifiedSince("from", "t", True, overlap_seconds=10, snapshot_hours=24, page_size=2)
    times = {1: 1000, 2: 1001, 3: 1002, 4: 5000, 5: 5001}
    deleted = {2: 1} if snapshot else {2: 4}  # the request before which a record goes
    catalogue = _Catalogue(times, lambda n: times.pop(deleted[n]) if n in deleted else None)
    stored = None if snapshot else json.dumps({"after": 4000, "snapshot_at": 90000})
    loaded: set[int] = set()
    if not snapshot:
        times[6] = times[7] = 4500  # modified since the cursor: the feed has two pages
    for tick in range(2):
        at = datetime.fromtimestamp(100000 + 900 * tick, UTC)
        for window in strategy.windows(WindowContext(fetch_raw=catalogue, now=at), stored):
            loaded |= {r["id"] for r in window.records}
            stored = window.cursor
    assert loaded >= {i for i, t in times.items() if snapshot or t >= 4000}


def test_a_catalogue_that_changes_during_every_listing_is_not_listed_again_forever() -> None:
    """A catalogue whose totalcount moves during every listing (a product created between
    any two pages) is listed again only a bounded number of ticks in a row: then a listing
    counts as complete, so the snapshot is not repeated every tick and the lag stays bounded,
    and the modified feed moves on from there."""
    strategy = ModifiedSince("from", "t", True, overlap_seconds=10, snapshot_hours=24, page_size=2)
    times = {i: 1000 + i for i in range(1, 6)}

    def create(n: int) -> None:
        if n % 2 == 0:  # between the first and second page of every listing
            times[100 + n] = 1000 + n

    catalogue = _Catalogue(times, create)
    stored: str | None = None
    snapshots = []
    for tick in range(8):
        at = datetime.fromtimestamp(100000 + 900 * tick, UTC)
        windows = list(strategy.windows(WindowContext(fetch_raw=catalogue, now=at), stored))
        snapshots.append(all("from" not in w.params for w in windows))
        stored = windows[-1].cursor
    assert snapshots[-1] is False
    lag = strategy.lag_seconds(stored, at)
    assert lag is not None
    assert lag < 900 * strategy.relist_passes


def test_a_product_modified_in_the_cursors_second_lands(sim: Simulator, tmp_path: Path) -> None:
    """With no overlap, a product modified later but stamped in the very second the cursor
    holds is still read (the exclusive bound is asked one second early), and so is a product
    modified now; a product that did not change keeps its row."""
    settings = settings_for(
        sim,
        tmp_path / "w.duckdb",
        streams=["products"],
        stream_options={"products": {"overlap_seconds": 0}},
    )
    run(settings, NOW)
    newest = query(settings, "SELECT max(datemodified) FROM products WHERE site_id = 1")[0][0]
    ids = [pid for pid, site in sorted(sim.rest.catalog.product_site.items()) if site == 1]
    live = [pid for pid in ids if pid in sim.rest.catalog.products]
    same_second, later = live[0], live[1]
    with sim.rest.lock:
        product = sim.rest.catalog.products[same_second]
        product["title"] = "Renamed in the same second"
        product["datemodified"] = int(newest.timestamp())
    sim.rest.touch_product(later, title="Renamed later")
    run(settings, NOW + timedelta(minutes=15))
    titles = dict(query(settings, "SELECT productid, title FROM products"))
    assert titles[same_second] == "Renamed in the same second"
    assert titles[later] == "Renamed later"
    assert titles[live[2]] == sim.rest.catalog.products[live[2]]["title"]


def test_a_product_stamped_years_ahead_does_not_stall_the_feed(
    sim: Simulator, tmp_path: Path
) -> None:
    """A product whose datemodified a wrong clock put in 2100 loads, and a product edited
    after it still lands at the next tick (not at the next snapshot, a day later)."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["products"])
    run(settings, NOW)
    ids = [pid for pid, site in sorted(sim.rest.catalog.product_site.items()) if site == 1]
    ahead, later = [pid for pid in ids if pid in sim.rest.catalog.products][:2]
    with sim.rest.lock:
        sim.rest.catalog.products[ahead].update(title="Wrong clock", datemodified=4_102_444_800)
    run(settings, NOW + timedelta(minutes=15))
    sim.rest.touch_product(later, title="Renamed later")
    run(settings, NOW + timedelta(minutes=30))
    titles = dict(query(settings, "SELECT productid, title FROM products"))
    assert titles[ahead] == "Wrong clock"
    assert titles[later] == "Renamed later"


def test_a_product_stamped_in_milliseconds_is_rejected_and_the_feed_goes_on(
    sim: Simulator, tmp_path: Path
) -> None:
    """A product whose datemodified is not a Unix time (milliseconds) goes to rejects and
    does not move the modified cursor past every later change: a product edited afterwards
    lands at the next tick, long before the next snapshot."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["products"])
    run(settings, NOW)
    live = [p for p in sorted(sim.rest.catalog.products) if sim.rest.catalog.product_site[p] == 1]
    bad, edited = live[0], live[1]
    with sim.rest.lock:
        sim.rest.catalog.products[bad]["datemodified"] = sim.rest.now * 1000
    run(settings, NOW + timedelta(minutes=15))
    reasons = query(settings, f"SELECT reason FROM rejects WHERE record_key = '1/{bad}'")
    assert [("Unix timestamp" in r) for (r,) in reasons] == [True]
    sim.rest.advance(60)
    sim.rest.touch_product(edited, title="Edited after the bad record")
    run(settings, NOW + timedelta(minutes=30))
    titles = dict(query(settings, "SELECT productid, title FROM products WHERE site_id = 1"))
    assert titles[edited] == "Edited after the bad record"


def test_a_deleted_product_is_marked_missing_at_the_sweep_not_before(
    sim: Simulator, tmp_path: Path
) -> None:
    """A product deleted after the first sync keeps missing_since NULL until a sweep is due
    (sweep_hours after the last), then gets it; its row is kept and live products are not
    marked."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["products"])
    sweep = STREAMS["products"].cursor.sweep_hours  # type: ignore[attr-defined]
    run(settings, NOW)
    victim = next(
        p for p in sorted(sim.rest.catalog.products) if sim.rest.catalog.product_site[p] == 2
    )
    sim.rest.delete_product(victim)

    run(settings, NOW + timedelta(hours=sweep) - timedelta(minutes=1))
    assert query(settings, f"SELECT missing_since FROM products WHERE productid = {victim}") == [
        (None,)
    ]
    later = NOW + timedelta(hours=sweep)
    run(settings, later)
    marked = query(
        settings, "SELECT productid, missing_since FROM products WHERE missing_since IS NOT NULL"
    )
    assert [(pid, at.astimezone(UTC)) for pid, at in marked] == [(victim, later)]
    assert (
        query(settings, "SELECT count(*) FROM products")[0][0] == len(sim.rest.catalog.products) + 1
    )


def test_a_product_a_later_sweep_lists_again_is_no_longer_missing(
    sim: Simulator, tmp_path: Path
) -> None:
    """A product one sweep did not show (gone from the listing, or shifted past it) gets
    missing_since; when a later sweep lists its id again it loses the mark, though its
    datemodified is old and no modified feed reads it before the next snapshot."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["products"])
    sweep = STREAMS["products"].cursor.sweep_hours  # type: ignore[attr-defined]
    run(settings, NOW)
    victim = next(
        p for p in sorted(sim.rest.catalog.products) if sim.rest.catalog.product_site[p] == 1
    )
    with sim.rest.lock:
        product = sim.rest.catalog.products.pop(victim)
    run(settings, NOW + timedelta(hours=sweep))
    sql = f"SELECT missing_since IS NULL FROM products WHERE productid = {victim}"
    assert query(settings, sql) == [(False,)]
    with sim.rest.lock:
        sim.rest.catalog.products[victim] = product  # listed again, datemodified unchanged
    run(settings, NOW + timedelta(hours=2 * sweep))
    assert query(settings, sql) == [(True,)]


def test_a_reservation_lands_at_the_next_snapshot(sim: Simulator, tmp_path: Path) -> None:
    """A reservation moves reserved and available stock without touching datelastmodified:
    the modified feed cannot see it, the snapshot snapshot_hours later does."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["warehouse_items"])
    snapshot = STREAMS["warehouse_items"].cursor.snapshot_hours  # type: ignore[attr-defined]
    run(settings, NOW)
    # An item the modified feed does not read again: older than its warehouse's newest
    # change by more than the overlap (the simulator's times follow the real clock, so
    # the first item by key was sometimes among the re-read ones).
    items = sim.rest.stock.items
    newest: dict[int, int] = {}
    for (warehouse, _sku), item in items.items():
        newest[warehouse] = max(newest.get(warehouse, 0), item.datelastmodified)
    wid, sku = min(sorted(items), key=lambda k: items[k].datelastmodified - newest[k[0]])
    overlap = STREAMS["warehouse_items"].cursor.overlap_seconds  # type: ignore[attr-defined]
    assert items[(wid, sku)].datelastmodified < newest[wid] - overlap
    sql = (
        "SELECT decimalreserved, decimalavailable FROM warehouse_items "
        f"WHERE warehouseid = {wid} AND sku = '{sku}'"
    )
    before = query(settings, sql)[0]
    sim.rest.reserve(wid, sku, 3)

    run(settings, NOW + timedelta(hours=snapshot) - timedelta(minutes=1))
    assert query(settings, sql)[0] == before
    run(settings, NOW + timedelta(hours=snapshot))
    assert query(settings, sql)[0] == (before[0] + 3, before[1] - 3)


def test_stock_moved_by_a_sale_lands_without_a_snapshot(sim: Simulator, tmp_path: Path) -> None:
    """A sale's warehouse transaction bumps datelastmodified: the next tick reads it."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["warehouse_items"])
    run(settings, NOW)
    sim.rest.advance(60)
    order = sim.rest.add_orders(1)[0]
    line = order["orderitems"][0]
    wid = order["warehouseid"]
    run(settings, NOW + timedelta(minutes=15))
    got = query(
        settings,
        "SELECT decimaltotal FROM warehouse_items "
        f"WHERE warehouseid = {wid} AND sku = '{line['sku']}'",
    )
    assert got == [(Decimal(sim.rest.stock.items[(wid, line["sku"])].total),)]


def test_a_vanished_store_and_warehouse_are_marked_then_unmarked(
    sim: Simulator, tmp_path: Path
) -> None:
    """A store or warehouse the listing stops showing gets missing_since (the row is kept);
    shown again, it is un-marked and keeps its first_seen_at."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["stores", "warehouses"])
    run(settings, NOW)
    cat = sim.rest.catalog
    with sim.rest.lock:
        store = cat.stores.pop(1)
        warehouse = cat.warehouses.pop(0)
    later = NOW + timedelta(hours=1)
    run(settings, later)
    gone = query(
        settings, "SELECT storeid, missing_since FROM stores WHERE missing_since IS NOT NULL"
    )
    assert [(s, at.astimezone(UTC)) for s, at in gone] == [(store["storeid"], later)]
    gone = query(settings, "SELECT warehouseid FROM warehouses WHERE missing_since IS NOT NULL")
    assert gone == [(warehouse["warehouseid"],)]
    assert query(settings, "SELECT count(*) FROM stores")[0][0] == len(cat.stores) + 1

    with sim.rest.lock:
        cat.stores.insert(1, store)
        cat.warehouses.insert(0, warehouse)
    run(settings, later + timedelta(hours=1))
    back = query(
        settings,
        f"SELECT missing_since, first_seen_at FROM stores WHERE storeid = {store['storeid']}",
    )
    assert [(m, f.astimezone(UTC)) for m, f in back] == [(None, NOW)]
    assert query(settings, "SELECT count(*) FROM warehouses WHERE missing_since IS NOT NULL") == [
        (0,)
    ]


def test_catalogue_streams_load_every_site(sim: Simulator, tmp_path: Path) -> None:
    """Each full-listing stream loads exactly what the simulator lists for every site."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=CATALOGUE)
    run(settings, NOW)
    cat = sim.rest.catalog
    expected = {
        "sites": len(cat.sites),
        "stores": len(cat.stores),
        "warehouses": len(cat.warehouses),
        "pos_payment_types": sum(map(len, cat.payment_types.values())),
        "product_groups": sum(map(len, cat.product_groups.values())),
        "manufacturers": sum(map(len, cat.manufacturers.values())),
        "categories": sum(map(len, cat.categories.values())),
    }
    got = {name: query(settings, f"SELECT count(*) FROM {name}")[0][0] for name in expected}
    assert got == expected
    assert query(settings, "SELECT count(*) FROM rejects")[0][0] == 0


# ---- joins -----------------------------------------------------------------------------


STOCK_VALUE = """
SELECT s.externalid, w.currencycode, sum(i.moneytotal)
FROM warehouse_items i
JOIN warehouses w ON w.site_id = i.site_id AND w.warehouseid = i.warehouseid
LEFT JOIN stores s ON s.site_id = w.site_id AND s.storeid = w.storeid
GROUP BY s.externalid, w.currencycode
"""


def test_a_deleted_warehouses_stock_is_gone_not_failed(sim: Simulator, tmp_path: Path) -> None:
    """A warehouse deleted in Sitoo (its stock answers 404, its listing no longer shows it)
    leaves its stock partition gone, not failed: the tick is ok, its rows and cursor stay,
    `status --check` does not count it late, and listed again it syncs on."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["warehouse_items"])
    run(settings, NOW)
    with sim.rest.lock:
        warehouse = sim.rest.catalog.warehouses.pop(0)
    wid = warehouse["warehouseid"]
    stock = f"SELECT count(*) FROM warehouse_items WHERE warehouseid = {wid}"
    [(before,)] = query(settings, stock)
    assert before > 0
    report = run(settings, NOW + timedelta(hours=1))  # asserts the tick is ok
    [gone] = [r for r in report.results if r.status == "gone"]
    assert gone.partition.endswith(f"/{wid}")
    assert f"  {gone.partition}: gone -- {GONE}" in report.summary()
    assert query(settings, stock) == [(before,)]
    state = f"SELECT last_status FROM sync_state WHERE partition_key = '{gone.partition}'"
    assert query(settings, state) == [("gone",)]
    target = open_warehouse(settings.target_url)
    try:
        states = target.states()
    finally:
        target.close()
    later = datetime.now(UTC) + timedelta(days=2)  # every partition late but the gone one
    [late] = stream_problems(settings, [s for s in states if s.partition != gone.partition], later)
    assert stream_problems(settings, states, later) == [late]

    with sim.rest.lock:
        sim.rest.catalog.warehouses.insert(0, warehouse)
    report = run(settings, NOW + timedelta(hours=2))
    assert {r.status for r in report.results} == {"ok"}
    assert query(settings, state) == [("ok",)]


def test_every_known_partition_gone_at_once_is_one_warning_that_names_a_likely_cause(
    sim: Simulator, tmp_path: Path
) -> None:
    """When no warehouse the stock stream knew is there any more (all 404 and unlisted: a
    chain closed them all, or SITOO_API_ID now names another account), the tick still ends
    ok, and says it once, with what to check."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["warehouse_items"])
    run(settings, NOW)
    with sim.rest.lock:
        sim.rest.catalog.warehouses.clear()
    out = io.StringIO()
    configure_logging(fmt="json", level="INFO", stream=out)
    try:
        report = run(settings, NOW + timedelta(hours=1))  # asserts the tick is ok
    finally:
        configure_logging(fmt="console", level="INFO")
    assert report.results
    assert {r.status for r in report.results} == {"gone"}
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    [warning] = [e for e in events if e["event"] == "partitions_all_gone"]
    assert warning["count"] == len(report.results)
    assert "SITOO_API_ID" in warning["hint"]


def test_a_site_taken_out_of_the_settings_has_its_stock_left_alone(
    sim: Simulator, tmp_path: Path
) -> None:
    """Once SITOO_SITE_IDS no longer names a site, its warehouses' stock partitions (known
    from their cursors) are not synced: no request, no failure, their rows stay."""
    both = settings_for(sim, tmp_path / "w.duckdb", streams=["warehouse_items"], site_ids=[1, 2])
    run(both, NOW)
    stock = "SELECT count(*) FROM warehouse_items WHERE site_id = 2"
    [(site_two,)] = query(both, stock)
    assert site_two > 0
    before = sim.requests_to("/sites/2/")
    report = run(both.model_copy(update={"site_ids": [1]}), NOW + timedelta(hours=1))
    assert sim.requests_to("/sites/2/") == before
    assert all(not r.partition.startswith("2/") for r in report.results)
    assert query(both, stock) == [(site_two,)]


def test_a_site_taken_out_of_the_settings_has_its_registers_journals_left_alone(
    sim: Simulator, tmp_path: Path
) -> None:
    """Once SITOO_SITE_IDS no longer names a site, the journals of the registers its
    listing showed (known from cash_registers and their cursors) are not read, and
    `status --check` does not judge their cursors, which no longer move."""
    streams = ["cash_registers", "journal_entries"]
    both = settings_for(sim, tmp_path / "w.duckdb", streams=streams, site_ids=[1, 2])
    run(both, NOW)
    site_two = {r.registerid for r in sim.world.registers if r.eshopid == 2}
    assert site_two
    one = both.model_copy(update={"site_ids": [1]})
    report = run(one, NOW + timedelta(hours=1))
    synced = {r.partition for r in report.results if r.stream == "journal_entries"}
    assert synced
    assert not synced & site_two
    later = datetime.now(UTC) + timedelta(days=1)
    warehouse = open_warehouse(one.target_url, schema=one.target_schema)
    try:
        sites = stored_sites_of(one, warehouse.latest_values)
        states = [  # site 1's journals have just synced, site 2's long ago
            s
            if s.partition in site_two
            else dataclasses.replace(s, last_success_at=later - timedelta(minutes=1))
            for s in warehouse.states()
            if s.stream == "journal_entries"
        ]
    finally:
        warehouse.close()
    journals = one.model_copy(update={"streams": ["journal_entries"]})
    assert stream_problems(journals, states, later, sites) == []
    [late] = stream_problems(journals, states, later)  # without the table's sites
    assert late.startswith("journal_entries: late")


def test_stock_value_per_store_from_the_warehouse_equals_the_simulators(
    sim: Simulator, tmp_path: Path
) -> None:
    """Stock value per store (stock x warehouses -> stores) equals the simulator's truth,
    and every stock row of a live product joins its product at on-hand x cost."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=STOCK)
    run(settings, NOW)
    got = {(store, cur): f"{value:.2f}" for store, cur, value in query(settings, STOCK_VALUE)}
    assert got == totals.stock_value_by_store(sim.rest)
    joined = query(
        settings,
        "SELECT i.decimaltotal * p.moneypricein, i.moneytotal FROM warehouse_items i "
        "JOIN products p ON p.site_id = i.site_id AND p.sku = i.sku",
    )
    live = {p["sku"] for p in sim.rest.catalog.products.values()}
    assert len(joined) == sum(1 for (_w, sku) in sim.rest.stock.items if sku in live)
    assert all(Decimal(a).quantize(Decimal("0.01")) == b for a, b in joined)


def test_registers_join_their_store_through_their_warehouse(sim: Simulator, tmp_path: Path) -> None:
    """cash_registers -> warehouses -> stores gives each register the store the simulator
    gave it (its externalid is the z-reports' store_id), and none to the storeless one."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=STOCK)
    run(settings, NOW)
    got = dict(
        query(
            settings,
            "SELECT c.registerid, s.externalid FROM cash_registers c "
            "JOIN warehouses w ON w.site_id = c.site_id AND w.warehouseid = c.warehouseid "
            "LEFT JOIN stores s ON s.site_id = w.site_id AND s.storeid = w.storeid",
        )
    )
    registers = {r.registerid: r.store_id for r in sim.world.registers}
    assert set(got) == set(registers)  # every register's warehouse is listed
    # A register its z-reports show without a store names its site's storeless warehouse.
    assert None in registers.values()
    assert got == registers


# ---- users and personal data -------------------------------------------------------------


def _users_sync(sim: Simulator, tmp_path: Path, **overrides: Any) -> tuple[Settings, str]:
    """Sync users with `overrides`, capturing every log line at DEBUG; (settings, log)."""
    settings = settings_for(sim, tmp_path / "w.duckdb", streams=["users"], **overrides)
    out = io.StringIO()
    configure_logging(fmt="json", level="DEBUG", stream=out)
    try:
        run(settings, NOW)
        run(settings, NOW + timedelta(hours=1))
    finally:
        configure_logging(fmt="console", level="INFO")
    return settings, out.getvalue()


def _personal_values(sim: Simulator) -> list[str]:
    return [str(u[name]) for u in sim.rest.users for name in PERSONAL if u[name]]


def _assert_nothing_personal_logged(sim: Simulator, log: str) -> None:
    assert "users" in log  # the capture saw the sync
    leaked = [value for value in _personal_values(sim) if value in log]
    assert not leaked, leaked[:3]


def test_users_is_opt_in_and_staff_only_by_default(sim: Simulator, tmp_path: Path) -> None:
    """Without SITOO_STREAMS users is not synced; named, it loads staff only, per site."""
    assert not STREAMS["users"].enabled_by_default
    assert "users" not in [s.name for s in select_streams(None)]
    settings, _log = _users_sync(sim, tmp_path)
    staff = {u["userid"] for u in sim.rest.users if u["role"] is not None}
    got = query(settings, "SELECT site_id, userid, is_staff FROM users")
    assert {(s, u) for s, u, _ in got} == {(s, u) for s in (1, 2) for u in staff}
    assert all(flag for _s, _u, flag in got)


def test_users_include_customers_when_asked(sim: Simulator, tmp_path: Path) -> None:
    """include_customers loads the users without a role too, marked not staff."""
    settings, _log = _users_sync(
        sim, tmp_path, stream_options={"users": {"include_customers": True}}
    )
    got = query(settings, "SELECT count(*), sum(CASE WHEN is_staff THEN 0 ELSE 1 END) FROM users")
    customers = sum(1 for u in sim.rest.users if u["role"] is None)
    assert got == [(2 * len(sim.rest.users), 2 * customers)]


def test_users_personal_fields_drop_to_null_and_never_reach_the_log(
    sim: Simulator, tmp_path: Path
) -> None:
    """SITOO_PERSONAL_DATA=drop (the default) stores NULL in every personal column, and no
    personal value appears in the log."""
    settings, log = _users_sync(sim, tmp_path)
    cols = ", ".join(PERSONAL)
    assert {tuple(r) for r in query(settings, f"SELECT {cols} FROM users")} == {
        (None,) * len(PERSONAL)
    }
    _assert_nothing_personal_logged(sim, log)


def test_users_personal_fields_hash_to_the_keyed_hmac(sim: Simulator, tmp_path: Path) -> None:
    """hash stores HMAC-SHA256(key, value) hex, the same on every tick and for the same
    person on every site, and logs no personal value."""
    key = "k3y-for-the-tests-only"
    settings, log = _users_sync(
        sim, tmp_path, personal_data="hash", personal_data_key=SecretStr(key)
    )
    staff = [u for u in sim.rest.users if u["role"] is not None]
    got = query(settings, "SELECT site_id, userid, email, personalid, mobile FROM users")
    by_user = {(s, u): rest for s, u, *rest in got}
    for user in staff:
        want = [
            hmac.new(key.encode(), user[n].encode(), hashlib.sha256).hexdigest()
            for n in ("email", "personalid", "mobile")
        ]
        assert by_user[(1, user["userid"])] == want == by_user[(2, user["userid"])]
    _assert_nothing_personal_logged(sim, log)
    assert key not in log


def test_users_personal_fields_keep_as_sent_and_never_reach_the_log(
    sim: Simulator, tmp_path: Path
) -> None:
    """keep stores the values as the vendor sent them; the log still shows none of them."""
    settings, log = _users_sync(sim, tmp_path, personal_data="keep")
    got = {u: (e, p) for u, e, p in query(settings, "SELECT userid, email, personalid FROM users")}
    for user in sim.rest.users:
        if user["role"] is not None:
            assert got[user["userid"]] == (user["email"], user["personalid"])
    _assert_nothing_personal_logged(sim, log)


# ---- every target, faults, SIGKILL -----------------------------------------------------------


def _all_tables() -> list[Table]:
    return [t for name in [*CATALOGUE, *STOCK, "users"] for t in STREAMS[name].tables]


@pytest.mark.parametrize("target_name", ["sqlite", "postgres", "mysql"])
def test_same_rows_on_every_target(sim: Simulator, tmp_path: Path, target_name: str) -> None:
    """The catalogue, products, stock and users load the same rows on DuckDB and on
    `target_name`."""
    streams = list(dict.fromkeys([*CATALOGUE, *STOCK, "users"]))
    with target_for("duckdb", tmp_path) as duck, target_for(target_name, tmp_path) as other:
        for target in (duck, other):
            run(settings_for(sim, tmp_path / "x.duckdb", streams=streams, **target.settings()), NOW)
        tables = list(dict.fromkeys(_all_tables()))
        got, want = other.bags(tables), duck.bags(tables)
        for table in tables:
            assert got[table.name] == want[table.name], table.name
            assert want[table.name], table.name


def test_injected_faults_lose_nothing(sim: Simulator, tmp_path: Path) -> None:
    """429s, 5xx and dropped connections on products and stock pages are retried: the
    warehouse equals a clean run's."""
    streams = ["products", "warehouse_items", "stores"]
    with target_for("duckdb", tmp_path) as clean, target_for("duckdb", tmp_path) as faulty:
        run(settings_for(sim, tmp_path / "x.duckdb", streams=streams, **clean.settings()), NOW)
        sim.faults.queue("429", times=2, path="/products", retry_after=0.01)
        sim.faults.queue("503", times=2, path="/warehouseitems", after=3)
        sim.faults.queue("drop", times=1, path="/products", after=1)
        sim.faults.queue("500", times=1, path="/stores")
        run(settings_for(sim, tmp_path / "x.duckdb", streams=streams, **faulty.settings()), NOW)
        tables = [table for name in streams for table in STREAMS[name].tables]
        got, want = faulty.bags(tables), clean.bags(tables)
        for table in tables:
            assert got[table.name] == want[table.name], table.name


def _run_cli(sim: Simulator, target: Target) -> subprocess.Popen[str]:
    return run_once_process(
        sim, target.env(), SITOO_STREAMS="products", SITOO_LOAD_BATCH_SECONDS="0"
    )


@pytest.mark.slow
def test_sigkill_mid_product_listing_then_rerun_equals_a_clean_run(tmp_path: Path) -> None:
    """Kill -9 between product pages of a first listing; the rerun resumes from the page the
    stored cursor names and the warehouse equals a clean run's."""
    config = SimConfig(seed=11, days=3, malformed_every=0, rest=RestConfig(products_per_site=450))
    with (
        Simulator.create(config) as sim,
        target_for("duckdb", tmp_path) as clean,
        target_for("duckdb", tmp_path) as crashed,
    ):
        run(settings_for(sim, tmp_path / "x.duckdb", streams=["products"], **clean.settings()))
        sim.faults.latency = 0.25
        start = sim.requests_to("/products")
        proc = _run_cli(sim, crashed)
        log = PipeLines(proc.stderr)
        deadline = time.monotonic() + 180
        while sim.requests_to("/products") - start < 3 or not log.events("batch_loaded"):
            assert proc.poll() is None, "the sync finished before it could be killed"
            assert time.monotonic() < deadline, "no page was committed"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        log.finish()
        table = products.PRODUCTS
        loaded = len(crashed.rows(table))
        assert 0 < loaded < len(sim.rest.catalog.products), "the kill was not mid-listing"
        # The stored cursor names the page to resume at: right after what was committed.
        warehouse = open_warehouse(crashed.url, schema=crashed.schema)
        try:
            cursors = {s.partition: s.cursor for s in warehouse.states() if s.stream == "products"}
        finally:
            warehouse.close()
        pages = [json.loads(c)["page"] for c in cursors.values() if c and "page" in json.loads(c)]
        assert [p["start"] for p in pages] == [loaded]

        sim.faults.latency = 0.0
        rerun = _run_cli(sim, crashed)
        PipeLines(rerun.stderr)
        assert rerun.wait(timeout=240) == 0
        assert crashed.bag(table) == clean.bag(table)


def test_a_modified_cursor_an_older_version_moved_to_milliseconds_repairs_itself() -> None:
    """A cursor whose `after` an older version set from a time in milliseconds (it asked for
    changes after the year 58000 on every tick, and kept that through every snapshot) is
    read as no `after`: the next tick lists everything and `after` is the newest time again."""
    strategy = ModifiedSince("from", "t", True, overlap_seconds=10, snapshot_hours=24, page_size=2)
    times = {i: 1000 + i for i in range(1, 6)}
    catalogue = _Catalogue(times, lambda _n: None)
    at = datetime.fromtimestamp(100000, UTC)
    stored = json.dumps(
        {"after": 1_700_000_000_000, "snapshot_at": 99000, "swept_at": 99000, "listed_at": 99000}
    )
    windows = list(strategy.windows(WindowContext(fetch_raw=catalogue, now=at), stored))
    assert {r["id"] for w in windows for r in w.records} == set(times)
    assert parse_state(windows[-1].cursor).after == max(times.values())


def test_a_record_stamped_in_the_future_does_not_hide_later_changes() -> None:
    """A product whose modification time is years ahead (a wrong clock) loads, but the
    modified feed's `after` stays at the newest plausible time, so a change made after it
    is read by the next tick instead of waiting for the next snapshot."""
    strategy = ModifiedSince("from", "t", True, overlap_seconds=60, snapshot_hours=24, page_size=2)
    future = 4_102_444_800  # 2100-01-01
    times = {1: 99_000, 2: future, 3: 99_500}
    catalogue = _Catalogue(times, lambda _n: None)
    at = datetime.fromtimestamp(100_000, UTC)
    stored = json.dumps({"after": 98_000, "snapshot_at": 99_000, "listed_at": 99_000})
    windows = list(strategy.windows(WindowContext(fetch_raw=catalogue, now=at), stored))
    assert {r["id"] for w in windows for r in w.records} == {1, 2, 3}
    assert parse_state(windows[-1].cursor).after == 99_500
    times[4] = 100_400  # changed after the first tick
    later = datetime.fromtimestamp(100_900, UTC)
    again = strategy.windows(WindowContext(fetch_raw=catalogue, now=later), windows[-1].cursor)
    assert 4 in {r["id"] for w in again for r in w.records}


def test_an_after_an_older_version_took_from_the_future_makes_a_snapshot() -> None:
    """A stored `after` far ahead of the clock (taken from a record stamped in the future)
    is dropped: the next tick lists everything and `after` is a plausible time again."""
    strategy = ModifiedSince("from", "t", True, overlap_seconds=60, snapshot_hours=24, page_size=2)
    times = {i: 99_000 + i for i in range(1, 6)}
    catalogue = _Catalogue(times, lambda _n: None)
    at = datetime.fromtimestamp(100_000, UTC)
    stored = json.dumps({"after": 4_102_444_800, "snapshot_at": 99_900, "listed_at": 99_900})
    windows = list(strategy.windows(WindowContext(fetch_raw=catalogue, now=at), stored))
    assert all("from" not in w.params for w in windows)
    assert parse_state(windows[-1].cursor).after == max(times.values())
