"""The registers sell the account's own catalogue: journal receipt items name products of the
register's site as the REST v2 products listing serves them, so POS sales join the products
and the stock in the warehouse."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from sitoo_sync.api.client import make_client
from sitoo_sync.simulator import RestWorld, SimConfig, Simulator, World
from sitoo_sync.simulator.money import cents
from sitoo_sync.simulator.rest_v2.catalog import GROUPS
from sitoo_sync.streams import select_streams
from sitoo_sync.sync import run_once
from sitoo_sync.warehouse import open_warehouse
from tests.support import settings_for

NOW = int(datetime(2026, 11, 20, 23, 30, tzinfo=UTC).timestamp())

# (productid, sku, title, product group, VAT) of a listed product
Row = tuple[str, str, str, str, int]


def served(world: World) -> dict[int, set[Row]]:
    """Per site, the products the REST v2 listing serves that the POS may sell (active)."""
    rest = RestWorld(world)
    out: dict[int, set[Row]] = defaultdict(set)
    for eshopid in rest.catalog.site_ids():
        groups = {g["vatid"]: g["productgroupname"] for g in rest.catalog.product_groups[eshopid]}
        for p in rest.catalog.site_products(eshopid, include_inactive=False):
            out[eshopid].add(
                (str(p["productid"]), p["sku"], p["title"], groups[p["vatid"]], p["vatvalue"])
            )
    return out


def item_row(item: dict[str, Any]) -> Row:
    extra = item["additionaldata"]
    return (
        extra["item-productid"],
        item["sku"],
        item["name"],
        extra["product-group-name"],
        item["vatvalue"],
    )


def check_items_are_the_sites_products(world: World, entries: list[dict[str, Any]]) -> int:
    """Assert every receipt item and cart line names a product of its register's site;
    return how many receipt items were checked."""
    catalogue = served(world)
    site_of = {r.registerid: r.eshopid for r in world.registers}
    checked = 0
    for e in entries:
        listed = catalogue[site_of[e["registerid"]]]
        if e["type"] == "receipt":
            for item in e["data"]["items"]:
                assert item_row(item) in listed, (e["registerid"], item)
                checked += 1
        elif e["type"].startswith("cart-item-"):
            assert (e["data"]["sku"], e["data"]["name"]) in {(r[1], r[2]) for r in listed}
    return checked


def test_day_journal_receipt_items_are_products_of_the_registers_site() -> None:
    """Every receipt item of the z-report days (and of an offline burst) names a product the
    register's site lists, active on the POS: its productid, sku, title, group and VAT."""
    world = World(SimConfig(seed=5, days=8, now=NOW))
    for reg in world.registers:
        world.journal.offline_burst(reg.registerid, 3, NOW)
    entries = world.journal.all_entries()
    assert check_items_are_the_sites_products(world, entries) > 1000
    norwegian = {r.registerid for r in world.registers if r.eshopid == 2}
    assert any(e["registerid"] in norwegian for e in entries if e["type"] == "receipt")


def test_lazy_journal_receipt_items_are_products_of_the_registers_site() -> None:
    """Every receipt item of a lazy journal (and of an offline burst) names a product the
    register's site lists, active on the POS: its productid, sku, title, group and VAT."""
    world = World(SimConfig(seed=3, days=2, lazy_journal_size=30000, now=NOW))
    for reg in world.registers:
        world.journal.offline_burst(reg.registerid, 3, NOW + 86400)
    entries = world.journal.all_entries()
    assert check_items_are_the_sites_products(world, entries) > 1000


def test_no_receipt_names_a_product_the_history_deletes() -> None:
    """The products the REST v2 world deletes at the end of its history are never on a
    receipt, so the warehouse (which never sees them listed) knows every product sold."""
    world = World(SimConfig(seed=5, days=8, now=NOW))
    deleted = {str(pid) for pid in RestWorld(world).catalog.deleted}
    assert deleted
    sold = {
        item["additionaldata"]["item-productid"]
        for e in world.journal.all_entries()
        if e["type"] == "receipt"
        for item in e["data"]["items"]
    }
    assert not sold & deleted


def test_receipts_of_a_z_report_day_add_up_to_its_product_groups() -> None:
    """Per z-report, the day's receipt items add up, per product group (a catalogue group),
    to the report's product group sections: sales and refunds, amounts and item counts."""
    world = World(SimConfig(seed=8, days=5, now=NOW))
    names = {g[0] for g in GROUPS}
    for report in world.all_reports():
        z = report.closing
        expected: dict[tuple[bool, str], list[int]] = defaultdict(lambda: [0, 0])
        for section, refund in (("productgroupssales", False), ("productgroupsrefund", True)):
            for g in z[section]:
                assert g["name"] in names
                expected[(refund, g["name"])][0] += cents(g["moneytotal"])
                expected[(refund, g["name"])][1] += g["numtotal"]
        found: dict[tuple[bool, str], list[int]] = defaultdict(lambda: [0, 0])
        day = [
            e
            for e in world.journal.entries(z["registerid"])
            if e["type"] == "receipt"
            and not e["ispractice"]
            and (z["dateopened"] or z["datecreated"] - 8 * 3600)
            <= e["datecreated"]
            <= z["datecreated"]
        ]
        for e in day:
            for item in e["data"]["items"]:
                key = (e["data"]["isrefund"], item["additionaldata"]["product-group-name"])
                found[key][0] += cents(item["moneyrowprice"])
                found[key][1] += item["quantity"]
        assert dict(found) == dict(expected), z["zreportid"]


def test_z_reports_charge_their_sites_vat_as_the_receipt_items_do() -> None:
    """A z-report's product groups carry its site's catalogue VAT (Norway's on the Oslo
    store), its VAT groups add up the same, and its receipts' items carry that VAT."""
    world = World(SimConfig(seed=8, days=5, now=NOW))
    rest = RestWorld(world)
    rates = {
        site: {g["productgroupname"]: g["value"] for g in rest.catalog.product_groups[site]}
        for site in rest.catalog.site_ids()
    }
    assert rates[1] != rates[2]
    for report in world.all_reports():
        z = report.closing
        vats = rates[int(z["eshopid"])]
        for sections in (("productgroupssales", "vatgroupssales"),
                         ("productgroupsrefund", "vatgroupsrefund")):  # fmt: skip
            groups, by_vat = z[sections[0]], z[sections[1]]
            per_vat: dict[int, int] = defaultdict(int)
            for g in groups:
                assert g["vatvalue"] == vats[g["name"]], (z["eshopid"], g)
                per_vat[g["vatvalue"]] += cents(g["moneytotal"])
            assert {v["vatvalue"]: cents(v["moneytotal"]) for v in by_vat} == dict(per_vat)
    for e in world.journal.all_entries():
        if e["type"] == "receipt":
            site = next(r.eshopid for r in world.registers if r.registerid == e["registerid"])
            for item in e["data"]["items"]:
                extra = item["additionaldata"]
                assert item["vatvalue"] == rates[site][extra["product-group-name"]]


def test_offline_burst_of_a_norwegian_register_is_in_its_currency() -> None:
    """A Norwegian register's offline receipts are in NOK, like its z-reports and the site's
    catalogue prices, in both journals."""
    for config in (
        SimConfig(seed=2, days=1, now=NOW),
        SimConfig(seed=2, days=1, now=NOW, lazy_journal_size=2000),
    ):
        world = World(config)
        reg = next(r for r in world.registers if r.eshopid == 2)
        world.journal.offline_burst(reg.registerid, 2, NOW + 86400)
        burst = [e for e in world.journal.entries(reg.registerid) if e["dateadded"] == NOW + 86400]
        assert [e["data"]["currencycode"] for e in burst] == ["NOK", "NOK"]


def test_synced_pos_sales_join_the_products_and_the_stock(tmp_path: Path) -> None:
    """After a sync, every row of v_product_sales joins products on productid (same sku and
    title) and finds its sku in its store's stock in v_stock_levels."""
    sim = Simulator.create(SimConfig(seed=21, days=6, malformed_every=0, now=NOW)).start()
    db = tmp_path / "w.duckdb"
    try:
        settings = settings_for(sim, db)
        with make_client(settings, sleep=lambda _s: None) as client:
            report = run_once(
                settings,
                open_warehouse(settings.target_url),
                client,
                select_streams(None),
                clock=lambda: datetime.fromtimestamp(sim.world.config.now, UTC),
            )
        assert report.ok, report.results
    finally:
        sim.stop()
    with duckdb.connect(str(db), read_only=True) as con:
        total = con.execute("SELECT count(*) FROM v_product_sales").fetchone()
        unjoined = con.execute(
            "SELECT s.productid, s.sku, s.name FROM v_product_sales s LEFT JOIN products p "
            "ON p.productid = s.productid AND p.sku = s.sku AND p.title = s.name "
            "WHERE p.productid IS NULL"
        ).fetchall()
        unstocked = con.execute(
            "SELECT DISTINCT s.store_id, s.sku FROM v_product_sales s LEFT JOIN v_stock_levels k "
            "ON k.store_id = s.store_id AND k.sku = s.sku AND k.productid = s.productid "
            "WHERE k.sku IS NULL"
        ).fetchall()
    assert total is not None
    assert total[0] > 100
    assert unjoined == []
    assert unstocked == []
