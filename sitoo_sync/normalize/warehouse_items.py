"""Stock levels (`GET /sites/{s}/warehouses/{w}/warehouseitems.json`, fact sheet 5.2).

One row per (warehouse, sku). Quantities are decimals, `moneytotal` the stock value in the
warehouse's currency. The warehouse comes from the record (`warehouseid`, in the schema)
and else from the partition (`site/warehouse`); the site from the partition. Join products
on (site_id, sku) and warehouses on (site_id, warehouseid), then stores on its storeid.
A row the stream's sku sweep no longer finds (its product deleted, or the row removed) keeps
its last figures, with `missing_since` set: not today's stock.
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
        "quantities and the stock value (moneytotal, in the warehouse's currency: "
        "warehouses.currencycode). Join "
        "warehouses on (site_id, warehouseid) and products on (site_id, sku). A row Sitoo "
        "no longer lists (its product deleted, or the row removed) is kept with its last "
        "figures and missing_since set: leave it out of stock totals (v_stock_levels does)."
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
        money(
            "moneytotal",
            "Stock value of the units on hand, in the warehouse's currency "
            "(warehouses.currencycode).",
        ),
        timestamp(
            "datelastmodified",
            "The last time a warehouse transaction touched the row (UTC); reservations do not "
            "move it. The sync's cursor.",
        ),
        timestamp("datelaststocktaking", "The last stocktaking (UTC)."),
        timestamp(
            "missing_since",
            "Since when the sku sweep no longer finds the row (its product deleted, or the "
            "row removed) (UTC); NULL while it is listed. Ours: the row is kept, its figures "
            "are the last read, not today's stock.",
        ),
        json_column(EXTRA, "Fields the vendor sent that no column declares, as JSON."),
    ),
    key=("site_id", "warehouseid", "sku"),
)
TABLES: tuple[Table, ...] = (WAREHOUSE_ITEMS,)


def located(record: Mapping[str, Any], context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The stock row with its site and (when the record lacks it, as a sweep's `sku`-only
    record does) its warehouse, both from the partition `site/warehouse`; a row read is
    not missing."""
    warehouse = record.get("warehouseid")
    if warehouse is None:
        tail = str(context.get("partition") or "").partition("/")[2]
        warehouse = int(tail) if tail.isdigit() else None
    return {**record, "site_id": site_of(context), "warehouseid": warehouse, "missing_since": None}


def partition_rows(partition: str) -> Mapping[str, Any]:
    """The rows one partition `site/warehouse` holds, as columns and values: all a sweep
    of that warehouse may mark missing."""
    site, _, warehouse = partition.partition("/")
    return {"site_id": int(site), "warehouseid": int(warehouse)}


normalize_window = EntityNormalizer(stream=STREAM, parent=WAREHOUSE_ITEMS, prepare=located)
