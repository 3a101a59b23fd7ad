"""The simulated retail world agrees with itself across its APIs, as a real account's data does."""

from __future__ import annotations

from typing import Any

import httpx

from sitoo_sync.simulator import SimConfig, Simulator


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
