"""Products (`GET /sites/{siteid}/products.json`, fact sheet 3): the catalogue per site.

Read by modified time with a periodic id sweep (streams/products.py). `FIELDS` is the
explicit field list the stream asks for: `title` is not in the endpoint's default set, and
computed fields (`moneyfinalprice`) are left out because the docs warn they are slow. Order
items join here on `productid` (or `sku`); stock (warehouse_items) on (site_id, sku).
A product the sweep no longer finds (deleted) keeps its row, with `missing_since` set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sitoo_sync.normalize.entity import EntityNormalizer
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.site_listing import site_column, site_of
from sitoo_sync.normalize.tables import (
    Table,
    boolean,
    decimal,
    integer,
    json_column,
    money,
    text,
    timestamp,
)

STREAM = "products"
#: Where a product's money is: no field of the product or site names the currency.
SITE_CURRENCY = (
    "In the site's currency, which no column here names: its warehouses' (warehouses.currencycode)."
)

PRODUCTS = Table(
    name="products",
    description=(
        "Every product of the configured sites, inactive ones included. Order items join on "
        "productid or sku, stock (warehouse_items) on (site_id, sku), product groups on "
        "(site_id, vatid). Prices are in the site's currency (warehouses.currencycode). A "
        "deleted product keeps its row, with missing_since set."
    ),
    columns=(
        site_column("product"),
        integer("productid", "The product's ID (unique across all sites).", nullable=False),
        text("sku", "Article number (SKU)."),
        text("skumanufacturer", "The manufacturer's SKU."),
        text("title", "The product's name."),
        text("descriptionshort", "Short description."),
        text("unitlabel", "Unit, e.g. pcs or kg."),
        boolean("allowdecimals", "Whether fractional quantities are allowed."),
        money("moneyprice", f"Price (default price list). {SITE_CURRENCY}"),
        money("moneypriceorg", f"Recommended retail price, excluding VAT. {SITE_CURRENCY}"),
        money("moneypricein", f"Purchase cost per unit, excluding VAT. {SITE_CURRENCY}"),
        boolean("activepos", "Shown in the POS."),
        boolean("active", "Visible in the webshop (deprecated by the vendor)."),
        boolean("stockcountenable", "Whether stock is tracked."),
        boolean("stockallowbackorder", "Whether backorders are allowed."),
        integer("vatid", "The product group (product_groups.vatid)."),
        decimal("vatvalue", "The VAT rate in percent."),
        integer(
            "productgrouptype",
            "The type of its product group. Undocumented codes; the fact sheet infers "
            "10 Product, 20 Service, 30 Gift Card.",
        ),
        integer("defaultcategoryid", "The main category (categories.categoryid)."),
        json_column("categories", "Category IDs (a JSON list)."),
        integer("manufacturerid", "The manufacturer (manufacturers.externalcompanyid)."),
        integer(
            "variantparentid",
            "NULL for a single product; else the main variant's productid (itself for the main).",
        ),
        json_column("variant", "The variant's attributes, e.g. [{name: Color, value: Red}]."),
        text("barcode", "Barcode."),
        json_column("barcodealiases", "Extra barcodes (a JSON list)."),
        text("custom1", "Custom field 1."),
        text("custom2", "Custom field 2."),
        text("custom3", "Custom field 3."),
        text("custom4", "Custom field 4."),
        text("custom5", "Custom field 5."),
        timestamp("datecreated", "When the product was created (UTC)."),
        timestamp("datemodified", "When the product was last modified (UTC); the sync's cursor."),
        timestamp(
            "missing_since",
            "Since when the id sweep no longer finds the product (deleted) (UTC); NULL while "
            "it exists. Ours: the row is kept.",
        ),
        json_column(EXTRA, "Fields the vendor sent that no column declares, as JSON."),
    ),
    key=("site_id", "productid"),
)
TABLES: tuple[Table, ...] = (PRODUCTS,)

#: The vendor's fields the stream asks for: every declared column that is not ours.
FIELDS: tuple[str, ...] = tuple(
    c for c in PRODUCTS.column_names if c not in ("site_id", "missing_since", EXTRA)
)


def loaded(record: Mapping[str, Any], context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The product with its site (the partition); a product read is not missing."""
    return {**record, "site_id": site_of(context), "missing_since": None}


normalize_window = EntityNormalizer(stream=STREAM, parent=PRODUCTS, prepare=loaded)
