"""Manufacturers (`GET /sites/{siteid}/manufacturers.json`, fact sheet 7.2).

Products link here by `manufacturerid` (= `externalcompanyid`). The contact fields are a
company's, not a person's.
"""

from __future__ import annotations

from sitoo_sync.normalize.entity import EntityNormalizer
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.site_listing import seen_columns, site_column, site_listed
from sitoo_sync.normalize.tables import Table, integer, json_column, text

STREAM = "manufacturers"

MANUFACTURERS = Table(
    name="manufacturers",
    description=(
        "The manufacturers of every configured site; products join on (site_id, "
        "manufacturerid = externalcompanyid). One no longer listed is kept, with "
        "missing_since set."
    ),
    columns=(
        site_column("manufacturer"),
        integer(
            "externalcompanyid", "The manufacturer's ID (products' manufacturerid).", nullable=False
        ),
        text("name", "Name."),
        text("description", "Description."),
        text("address", "Address."),
        text("zip", "Postal code."),
        text("city", "City."),
        text("state", "State."),
        text("countryid", "Country (ISO 3166-1 alpha-2)."),
        text("phone", "The company's phone."),
        text("email", "The company's e-mail."),
        text("url1", "Home page."),
        text("url2", "External link."),
        *seen_columns("manufacturer"),
        json_column(EXTRA, "Fields the vendor sent that no column declares, as JSON."),
    ),
    key=("site_id", "externalcompanyid"),
    keep_on_update=("first_seen_at",),
)
TABLES: tuple[Table, ...] = (MANUFACTURERS,)

normalize_window = EntityNormalizer(stream=STREAM, parent=MANUFACTURERS, prepare=site_listed)
