"""The simulated retail world agrees with itself across its APIs, as a real account's data does."""

from __future__ import annotations

from sitoo_sync.simulator import SimConfig, Simulator


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
