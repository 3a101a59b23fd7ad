"""Warehouses (`GET /sites/{siteid}/warehouses.json`, fact sheet 5.1): listed in full per site.

`storeid` links a warehouse to its store (null for one without, e.g. a web warehouse); a
cash register's and an order's `warehouseid` lead here, and so to their store. The type
codes stay numbers: the fact sheet only infers them.
"""

from __future__ import annotations

from sitoo_sync.normalize.entity import EntityNormalizer
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.site_listing import seen_columns, site_column, site_listed
from sitoo_sync.normalize.tables import Table, boolean, integer, json_column, text

STREAM = "warehouses"

WAREHOUSES = Table(
    name="warehouses",
    description=(
        "Every warehouse of the configured sites, with the store it belongs to (storeid, "
        "NULL for none). Join stock (warehouse_items), registers and orders here on "
        "(site_id, warehouseid), then stores on (site_id, storeid). A warehouse no longer "
        "listed is kept, with missing_since set."
    ),
    columns=(
        site_column("warehouse"),
        integer("warehouseid", "The warehouse's ID.", nullable=False),
        integer(
            "warehousetype",
            "The warehouse's type. Undocumented codes; the guide names FIFO and Virtual, and "
            "the fact sheet infers 10 = FIFO.",
        ),
        integer(
            "usetype", "The warehouse's use type. Undocumented codes (examples: 10, 40 Reclaims)."
        ),
        integer("storeid", "The store that owns the warehouse (stores.storeid); NULL for none."),
        boolean("sellable", "Whether it holds sellable stock."),
        text("currencycode", "The currency of its stock values (ISO 4217 alpha-3)."),
        text("name", "The warehouse's name."),
        text("externalid", "External key."),
        text("address", "Address line 1."),
        text("address2", "Address line 2."),
        text("zip", "Postal code."),
        text("city", "City."),
        text("state", "State."),
        text("countryid", "Country (ISO 3166-1 alpha-2)."),
        *seen_columns("warehouse"),
        json_column(EXTRA, "Fields the vendor sent that no column declares, as JSON."),
    ),
    key=("site_id", "warehouseid"),
    keep_on_update=("first_seen_at",),
)
TABLES: tuple[Table, ...] = (WAREHOUSES,)

normalize_window = EntityNormalizer(stream=STREAM, parent=WAREHOUSES, prepare=site_listed)
