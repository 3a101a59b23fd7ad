"""The simulator's own truth about its REST v2 world, computed from its internal order
specs and stock rows rather than from served JSON, so a warehouse built by a sync can be
compared against it.

Definitions (ours): net sales = the item nets (`moneyitemtotal_net`, so delivery and
checkout costs excluded) of closed orders (`orderstateid` 10), refunds included with their
negative amounts; an order's store is its warehouse's store (None for the web warehouse or
an order whose register has no store); its day is `orderdate` in its site's time zone.
Stock value = the sum of `moneytotal` over a store's warehouses.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from zoneinfo import ZoneInfo

from sitoo_sync.simulator.money import money
from sitoo_sync.simulator.rest_v2.catalog import POS_TIME_ZONE
from sitoo_sync.simulator.rest_v2.orders import STATES, OrderSpec, line_gross, line_net
from sitoo_sync.simulator.rest_v2.world import RestWorld

StoreKey = str | None  # a store's externalid (the z-reports' store_id)


def _line_nets(spec: OrderSpec) -> list[tuple[int, str, int]]:
    """(productid, sku, net cents) per line, from the spec (not the served JSON)."""
    return [(int(ln.product["productid"]), str(ln.product["sku"]), line_net(ln))
            for ln in spec.lines]  # fmt: skip


def _closed(rest: RestWorld) -> list[OrderSpec]:
    rest.catch_up()
    return [s for s in rest.specs.values() if STATES[s.kind][0] == 10]


def net_sales_by_store_day(rest: RestWorld) -> dict[tuple[StoreKey, str, str], str]:
    """Net sales per (store externalid, local day, currency), as money strings."""
    totals: dict[tuple[StoreKey, str, str], int] = defaultdict(int)
    with rest.lock:
        for spec in _closed(rest):
            store = rest.catalog.store_by_id(spec.warehouse["storeid"])
            zone = ZoneInfo(POS_TIME_ZONE[spec.eshopid])
            day = datetime.fromtimestamp(spec.orderdate, zone).date().isoformat()
            key = (store["externalid"] if store else None, day, spec.currency)
            totals[key] += sum(net for _pid, _sku, net in _line_nets(spec))
    return {k: money(v) for k, v in sorted(totals.items(), key=lambda kv: str(kv[0]))}


def top_products(rest: RestWorld, n: int = 10) -> list[tuple[int, str, str]]:
    """(productid, sku, net sales) of the `n` best sellers, deleted products included."""
    totals: dict[tuple[int, str], int] = defaultdict(int)
    with rest.lock:
        for spec in _closed(rest):
            for pid, sku, net in _line_nets(spec):
                totals[(pid, sku)] += net
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0][0]))[:n]
    return [(pid, sku, money(net)) for (pid, sku), net in ranked]


def stock_value_by_store(rest: RestWorld) -> dict[tuple[StoreKey, str], str]:
    """Stock value per (store externalid, currency); None for warehouses with no store."""
    totals: dict[tuple[StoreKey, str], int] = defaultdict(int)
    with rest.lock:
        for (warehouseid, _sku), item in rest.stock.items.items():
            warehouse = rest.catalog.warehouse(warehouseid)
            assert warehouse is not None
            store = rest.catalog.store_by_id(warehouse["storeid"])
            key = (store["externalid"] if store else None, str(warehouse["currencycode"]))
            totals[key] += item.total * item.cost
    return {k: money(v) for k, v in totals.items()}


def pos_gross_by_register_day(rest: RestWorld) -> dict[tuple[str, str], tuple[str, str]]:
    """(sales, refunds) incl. VAT of the closed POS orders per (registerid, local day), as
    money strings, refunds positive: what the registers' z-reports of the day state."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    with rest.lock:
        for spec in _closed(rest):
            if spec.registerid is None:
                continue
            gross = sum(line_gross(line) for line in spec.lines)
            day = datetime.fromtimestamp(spec.orderdate, ZoneInfo(spec.timezone)).date()
            totals[(spec.registerid, day.isoformat())][gross < 0] += abs(gross)
    return {k: (money(s), money(r)) for k, (s, r) in sorted(totals.items())}
