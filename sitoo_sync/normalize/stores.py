"""Stores (`GET /sites/{siteid}/stores.json`, fact sheet 4): listed in full per site.

A store's `externalid` is what orders carry as `additionaldata["store-externalid"]` and
z-reports as `store_id`; a warehouse's `storeid` names the store it belongs to. `storetype`
stays a number: the fact sheet only infers its codes (10 Store, 20 Outlet, 30 Pop-Up).
"""

from __future__ import annotations

from sitoo_sync.normalize.entity import EntityNormalizer
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.site_listing import seen_columns, site_column, site_listed
from sitoo_sync.normalize.tables import Table, integer, json_column, text

STREAM = "stores"


def _usetype(kind: str) -> tuple[str, str]:
    return (f"usetype_{kind}", f"The warehouse use type a {kind} transfer uses by default.")


STORES = Table(
    name="stores",
    description=(
        "Every store of the configured sites. Warehouses name their store (warehouses."
        "storeid); orders and z-reports name it by externalid. A store no longer listed is "
        "kept, with missing_since set."
    ),
    columns=(
        site_column("store"),
        integer("storeid", "The store's ID.", nullable=False),
        integer("eshopid", "The site that owns the store."),
        integer(
            "storetype",
            "The store's type. Undocumented codes; the fact sheet infers 10 Store, 20 Outlet, "
            "30 Pop-Up.",
        ),
        text("name", "The store's name."),
        text(
            "externalid",
            "The store's external ID: orders' additionaldata store-externalid and z-reports' "
            "store_id.",
        ),
        text("externalgroupid", "External group key (orders' store-externalgroupid)."),
        text("phone", "The store's phone (business contact)."),
        text("email", "The store's e-mail (business contact)."),
        text("address", "Address line 1."),
        text("address2", "Address line 2."),
        text("zip", "Postal code."),
        text("city", "City."),
        text("state", "State."),
        text("countryid", "Country (ISO 3166-1 alpha-2)."),
        text("latitude", "Latitude in decimal degrees, as the vendor writes it."),
        text("longitude", "Longitude in decimal degrees, as the vendor writes it."),
        json_column("nearby_stores", "storeids of nearby stores (a JSON list)."),
        *(integer(*_usetype(k)) for k in ("movein", "moveout", "manualin", "manualout")),
        *(integer(*_usetype(k)) for k in ("shipmentin", "shipmentout")),
        json_column("tags", "The store's tags (a JSON list of text)."),
        *seen_columns("store"),
        json_column(EXTRA, "Fields the vendor sent that no column declares, as JSON."),
    ),
    key=("site_id", "storeid"),
    keep_on_update=("first_seen_at",),
)
TABLES: tuple[Table, ...] = (STORES,)

normalize_window = EntityNormalizer(stream=STREAM, parent=STORES, prepare=site_listed)
