"""Stock levels (`GET /sites/{s}/warehouses/{w}/warehouseitems.json`, fact sheet 5.2).

One row per (warehouse, sku). Quantities are decimals, `moneytotal` the stock value in the
warehouse's currency. The warehouse comes from the record (`warehouseid`, in the schema)
and else from the partition (`site/warehouse`); the site from the partition. Join products
on (site_id, sku) and warehouses on (site_id, warehouseid), then stores on its storeid.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sitoo_sync.normalize.entity import EntityNormalizer
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.site_listing import site_column, site_of
from sitoo_sync.normalize.tables import Table, decimal, integer, json_column, money, text, timestamp

STREAM = "warehouse_items"

WAREHOUSE_ITEMS = Table(
    name="warehouse_items",
    description=(
        "Stock levels: one row per warehouse and sku, with on-hand, reserved and available "
        "quantities and the stock value (moneytotal, in the warehouse's currency). Join "
        "warehouses on (site_id, warehouseid) and products on (site_id, sku)."
    ),
    columns=(
        site_column("warehouse"),
        integer("warehouseid", "The warehouse (warehouses.warehouseid).", nullable=False),
        text("sku", "The product's SKU (products.sku).", nullable=False),
        integer("warehouseitemid", "The stock row's ID."),
        text("binlocation", "Bin location."),
        decimal("decimalthreshold", "Reorder point."),
        decimal("decimaltotal", "Units on hand."),
        decimal("decimalreserved", "Units reserved (by open orders); moves without a transaction."),
        decimal("decimalavailable", "Units available: on hand less reserved."),
        money("moneytotal", "Stock value of the units on hand, in the warehouse's currency."),
        timestamp(
            "datelastmodified",
            "The last time a warehouse transaction touched the row (UTC); reservations do not "
            "move it. The sync's cursor.",
        ),
        timestamp("datelaststocktaking", "The last stocktaking (UTC)."),
        json_column(EXTRA, "Fields the vendor sent that no column declares, as JSON."),
    ),
    key=("site_id", "warehouseid", "sku"),
)
TABLES: tuple[Table, ...] = (WAREHOUSE_ITEMS,)


def located(record: Mapping[str, Any], context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The stock row with its site and (when the record lacks it) its warehouse, both
    from the partition `site/warehouse`."""
    warehouse = record.get("warehouseid")
    if warehouse is None:
        tail = str(context.get("partition") or "").partition("/")[2]
        warehouse = int(tail) if tail.isdigit() else None
    return {**record, "site_id": site_of(context), "warehouseid": warehouse}


normalize_window = EntityNormalizer(stream=STREAM, parent=WAREHOUSE_ITEMS, prepare=located)
