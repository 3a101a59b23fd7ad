"""The demo's answers from the REST v2 data: what sold, where, and what is left in stock.

Each figure is read from the demo warehouse through the ready views and checked against
the simulator's own totals (simulator/rest_v2/totals.py), computed from its data, not from
what was loaded.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sitoo_sync.simulator.rest_v2 import totals
from sitoo_sync.warehouse.base import Warehouse

StoreDay = tuple[str, str, str]  # (store, local day, currency)
AGREES, DIFFERS = "equal to the simulator's own totals", "DIFFERENT from the simulator's totals"


@dataclass(frozen=True)
class RetailTruth:
    """The simulator's own answers, taken while it runs."""

    net_sales: dict[StoreDay, Decimal]
    top_products: list[tuple[int, str, Decimal]]
    stock_value: dict[tuple[str, str], Decimal]

    @classmethod
    def of(cls, rest: Any) -> RetailTruth:
        """From a running simulator's REST v2 world (`sim.rest`)."""
        return cls(
            net_sales={
                (s or "NO_STORE", d, c): Decimal(v)
                for (s, d, c), v in totals.net_sales_by_store_day(rest).items()
            },
            top_products=[(p, sku, Decimal(v)) for p, sku, v in totals.top_products(rest, 5)],
            stock_value={
                (s or "NO_STORE", c): Decimal(v)
                for (s, c), v in totals.stock_value_by_store(rest).items()
            },
        )


def _text(value: Any) -> str:
    return str(value)[:10]


def retail_lines(
    warehouse: Warehouse, truth: RetailTruth, *, days: int = 3
) -> tuple[list[str], bool]:
    """The report's lines and whether every figure matched the simulator."""
    q = warehouse.qualified
    lines: list[str] = []
    matched = True

    orders: dict[StoreDay, Decimal] = defaultdict(Decimal)
    for store, day, currency, net in warehouse.query(
        f"SELECT store_id, business_date, currencycode, net_sales FROM {q('v_daily_order_sales')}"
    ):
        orders[(store, _text(day), currency)] += Decimal(str(net))
    z_reports = {
        (store, _text(day), currency): Decimal(str(net))
        for store, day, currency, net in warehouse.query(
            f"SELECT store_id, business_date, currencycode, net_takings "
            f"FROM {q('v_daily_store_sales')}"
        )
    }
    ok = dict(orders) == truth.net_sales
    matched &= ok
    last = sorted({d for (_s, d, _c) in orders}, reverse=True)[:days]
    lines.append(
        f"Net sales per store and day from orders (v_daily_order_sales), beside the store "
        f"z-reports' net takings (v_daily_store_sales); last {len(last)} days; "
        f"orders {AGREES if ok else DIFFERS}:"
    )
    lines.append(f"  {'day':<10} {'store':<9} {'cur':<4} {'orders':>12} {'z-reports':>12}")
    for key in sorted((k for k in orders if k[1] in last), key=lambda k: (k[1], k[0], k[2])):
        store, day, currency = key
        z = z_reports.get(key)
        shown = f"{z:>12,}" if z is not None else f"{'-':>12}"
        lines.append(f"  {day:<10} {store:<9} {currency:<4} {orders[key]:>12,} {shown}")
    lines.append(
        "  (against a real account the two differ by the web shop's sales and by orders not yet "
        "closed; the simulator makes its orders and its register closings independently, so "
        "here they are two separate worlds)"
    )

    per_currency = warehouse.query(
        f"SELECT i.productid, i.sku, o.currencycode, MAX(p.title), SUM(i.moneyitemtotal_net) "
        f"FROM {q('order_items')} i JOIN {q('orders')} o ON o.orderid = i.orderid "
        f"LEFT JOIN {q('products')} p ON p.site_id = o.site_id AND p.productid = i.productid "
        f"WHERE o.orderstateid = 10 GROUP BY i.productid, i.sku, o.currencycode"
    )
    by_product: dict[tuple[int, str], Decimal] = defaultdict(Decimal)
    for productid, sku, _currency, _title, net in per_currency:
        by_product[(productid, sku)] += Decimal(str(net))
    ranked = sorted(by_product.items(), key=lambda kv: (-kv[1], kv[0][0]))[:5]
    ok = [(p, sku, net) for (p, sku), net in ranked] == truth.top_products
    matched &= ok
    lines.append(
        f"\nTop products by net sales, per currency (orders; the ranking is "
        f"{AGREES if ok else DIFFERS}):"
    )
    for currency in sorted({c for _p, _s, c, _t, _n in per_currency}):
        rows = sorted(
            (r for r in per_currency if r[2] == currency), key=lambda r: (-Decimal(str(r[4])), r[0])
        )[:5]
        for productid, sku, _c, title, net in rows:
            name = (title or "(not listed)")[:28]
            lines.append(f"  {currency:<4} {productid:>6} {sku:<14} {name:<28} {net:>12,}")

    stock: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for store, currency, value in warehouse.query(
        f"SELECT store_id, currencycode, stock_value FROM {q('v_stock_levels')}"
    ):
        stock[(store, currency)] += Decimal(str(value))
    ok = dict(stock) == truth.stock_value
    matched &= ok
    lines.append(f"\nStock value per store (v_stock_levels; {AGREES if ok else DIFFERS}):")
    for (store, currency), value in sorted(stock.items()):
        lines.append(f"  {store:<9} {currency:<4} {value:>14,}")
    return lines, matched
