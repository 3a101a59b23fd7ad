"""Sites (`GET /sites.json`): the account's webshops, whose `eshopid` is every `{siteid}`.

Listed in full every tick (fact sheet 9); the account is the partition, so a site the
listing no longer shows gets `missing_since` (kept, never deleted).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sitoo_sync.normalize.entity import EntityNormalizer
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.site_listing import seen, seen_columns
from sitoo_sync.normalize.tables import Table, integer, json_column, text

STREAM = "sites"

SITES = Table(
    name="sites",
    description=(
        "Every site (webshop) of the account. `eshopid` is the site's number in every other "
        "table (site_id) and in the API's paths; a site no longer listed is kept, with "
        "missing_since set."
    ),
    columns=(
        integer(
            "eshopid",
            "The site's number: the `{siteid}` of every per-site path, and site_id elsewhere.",
            nullable=False,
        ),
        text("account_id", "The account whose listing showed the site. Ours.", nullable=False),
        text("siteid", "The site's GUID (deprecated by the vendor: use eshopid)."),
        text("protocol", "http or https."),
        text("server", "The site's domain."),
        text("abspath", "The site's path."),
        text("siteurl", "protocol + :// + server + abspath."),
        *seen_columns("site"),
        json_column(EXTRA, "Fields the vendor sent that no column declares, as JSON."),
    ),
    key=("eshopid",),
    keep_on_update=("first_seen_at",),
)
TABLES: tuple[Table, ...] = (SITES,)


def listed(record: Mapping[str, Any], context: Mapping[str, Any]) -> Mapping[str, Any]:
    """The site with the account (the partition) and seen now."""
    return {**seen(record, context), "account_id": str(context.get("partition") or "") or None}


normalize_window = EntityNormalizer(stream=STREAM, parent=SITES, prepare=listed)
