"""The simulated retail world agrees with itself across its APIs, as a real account's data does."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx

from sitoo_sync.normalize.values import local_day
from sitoo_sync.simulator import SimConfig, Simulator
from sitoo_sync.simulator.data import World
from sitoo_sync.simulator.money import cents
from sitoo_sync.simulator.store_reports import NO_STORE


def site_settings(sim: Simulator, site: int) -> Any:
    """`GET /sites/{site}/settings.json` as the simulator serves it."""
    with sim, httpx.Client(auth=(sim.api_id, sim.password)) as api:
        return api.get(f"{sim.v2_url}/sites/{site}/settings.json").raise_for_status().json()


def test_register_listing_warehouse_is_the_store_its_reports_and_orders_carry() -> None:
    """Each register's `/cashregisters` warehouse is the one its orders use, whose store is
    the store of its z-reports (none for the register without a store)."""
    sim = Simulator.create(SimConfig(seed=4, days=3))
    rest = sim.rest
    listed = {
        r["registerid"]: r["warehouseid"]
        for site in sim.world.site_ids()
        for r in sim.world.register_bodies(site, include_unregistered=True)
    }
    assert len(listed) == len(sim.world.registers)
    report_store = {r.body["registerid"]: r.body["store_id"] for r in sim.world.all_reports()}
    order_warehouses: dict[str, set[int]] = {}
    for order in rest.orders.values():
        if order["registerid"]:
            order_warehouses.setdefault(order["registerid"], set()).add(order["warehouseid"])
    for reg in sim.world.registers:
        warehouse = rest.catalog.warehouse(listed[reg.registerid])
        assert warehouse is not None
        store = rest.catalog.store_by_id(warehouse["storeid"])
        assert (store["externalid"] if store else None) == report_store[reg.registerid]
        assert order_warehouses[reg.registerid] == {listed[reg.registerid]}


def test_each_register_carries_one_time_zone_in_journals_orders_and_site_settings() -> None:
    """A register's journal receipts, its POS orders and its site's settings name one time
    zone (Oslo's registers Europe/Oslo), in the day journals and the lazy ones alike."""
    sim = Simulator.create(SimConfig(seed=4, days=3))
    lazy = Simulator.create(SimConfig(seed=4, days=3, lazy_journal_size=2000))
    site_zone = {site: site_settings(sim, site)["timezone"] for site in sim.world.site_ids()}
    assert site_zone[2] == "Europe/Oslo"
    zones: dict[str, set[str]] = {}
    for world in (sim.world, lazy.world):
        for entry in world.journal.all_entries():
            if entry["type"] == "receipt":
                zone = entry["data"]["additionaldata"]["pos-timezone"]
                zones.setdefault(entry["registerid"], set()).add(zone)
    for order in sim.rest.orders.values():
        if order["registerid"]:
            zones[order["registerid"]].add(order["additionaldata"]["pos-timezone"])
    for reg in sim.world.registers:
        assert zones[reg.registerid] == {site_zone[reg.eshopid]}, reg.store_id


def _journal_payments(world: World) -> Counter[tuple[str, str, str]]:
    """Non-practice receipts' payments per (store, local day, payment), refunds negative."""
    out: Counter[tuple[str, str, str]] = Counter()
    for entry in world.journal.all_entries():
        if entry["type"] != "receipt" or entry["ispractice"]:
            continue
        data = entry["data"]
        extra = data["additionaldata"]
        store = extra["store-externalid"] or NO_STORE
        day = str(local_day(entry["datecreated"], extra["pos-timezone"]))
        sign = -1 if data["isrefund"] else 1
        for payment in data["payments"]:
            out[(store, day, payment["name"])] += sign * cents(payment["moneyamount"])
    return out


def _store_report_payments(world: World) -> Counter[tuple[str, str, str]]:
    """Store z-reports' payments per (store, day, payment): sales minus refunds."""
    out: Counter[tuple[str, str, str]] = Counter()
    for report in world.store_z_reports(None, None, limit=None):
        key = (report["store_id"], report["day_created"])
        for section, sign in (("paymentssales", 1), ("paymentsrefund", -1)):
            for payment in report["data"][section]:
                out[(*key, payment["name"])] += sign * cents(payment["moneytotal"])
    return out


def _roundoffs(world: World) -> Counter[tuple[str, str, str]]:
    """The store z-reports' cash roundoff per (store, day, "Cash"): what customers' rounded
    cash adds to the cash payment beyond the receipts."""
    out: Counter[tuple[str, str, str]] = Counter()
    for report in world.store_z_reports(None, None, limit=None):
        key = (report["store_id"], report["day_created"], "Cash")
        out[key] += cents(report["data"]["moneysummaryroundoff"])
    return out


def _differences(world: World) -> dict[tuple[str, str, str], int]:
    """Store z-report payments less the journal's, beyond the cash roundoff."""
    journal, reports = _journal_payments(world), _store_report_payments(world)
    roundoff = _roundoffs(world)
    days = {(s, d) for s, d, _ in reports}  # the days aggregated so far
    keys = {k for k in journal.keys() | reports.keys() if k[:2] in days}
    return {
        k: reports[k] - journal[k] - roundoff[k]
        for k in keys
        if reports[k] != journal[k] + roundoff[k]
    }


def test_z_report_payments_by_type_are_the_journal_receipts_payments() -> None:
    """Per store, day and payment type, the store z-reports' payments (sales minus refunds)
    equal the journal receipts' payments, cash beside the day's cash roundoff; with a
    receipt withheld from the journal, that receipt's store and day are the only
    difference."""
    clean = Simulator.create(SimConfig(seed=8, days=20)).world
    assert len(_store_report_payments(clean)) > 100
    assert any(_roundoffs(clean).values())  # cash is rounded on some days
    assert {name for _s, _d, name in _store_report_payments(clean)} >= {"Cash", "Card"}
    assert _differences(clean) == {}
    faulty = Simulator.create(SimConfig(seed=8, days=20, inject_missing_receipt=True)).world
    first = faulty.registers[0]
    dropped = faulty.pos_z_report(first.registerid, 4)
    assert dropped is not None
    differs = _differences(faulty)
    assert differs
    assert {k[:2] for k in differs} == {(str(first.store_id), faulty.store_day(dropped))}


def test_store_z_reports_list_every_closing_including_the_rejected_ones() -> None:
    """A store z-report lists and sums every POS z-report of its store and day, those served
    malformed too (as the register made them), and the journals still agree with it."""
    world = Simulator.create(SimConfig(seed=8, days=20, malformed_every=7)).world
    store_reports = world.store_z_reports(None, None, limit=None)
    listed = Counter(
        (r["registerid"], r["zreportid"]) for s in store_reports for r in s["register_zreports"]
    )
    assert set(listed.values()) == {1}
    aggregated = {(s["store_id"], s["day_created"]) for s in store_reports}
    closings = [
        r
        for r in world.all_reports()
        if (r.closing["store_id"] or NO_STORE, world.store_day(r)) in aggregated
    ]
    rejected = [r for r in closings if not r.valid]
    assert any("registerid" not in r.body for r in rejected)  # both kinds of corruption
    assert any("registerid" in r.body for r in rejected)
    assert set(listed) == {(r.closing["registerid"], r.closing["zreportid"]) for r in closings}
    sales: Counter[tuple[str, str]] = Counter()
    for r in closings:
        sales[(r.closing["store_id"] or NO_STORE, world.store_day(r))] += cents(
            r.closing["moneysalestotal"]
        )
    assert {
        (s["store_id"], s["day_created"]): cents(s["data"]["moneysalestotal"])
        for s in store_reports
    } == dict(sales)
    assert _differences(world) == {}
