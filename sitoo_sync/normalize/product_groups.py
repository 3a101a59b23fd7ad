"""Product groups (`GET /sites/{siteid}/productgroups.json`, fact sheet 7.2): VAT groups.

Products link here by `vatid`. `productgrouptype` stays a number: the fact sheet only infers
10 Product, 20 Service, 30 Gift Card from examples.
"""

from __future__ import annotations

from sitoo_sync.normalize.entity import EntityNormalizer
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.site_listing import seen_columns, site_column, site_listed
from sitoo_sync.normalize.tables import Table, decimal, integer, json_column, text

STREAM = "product_groups"

PRODUCT_GROUPS = Table(
    name="product_groups",
    description=(
        "The product (VAT) groups of every configured site; products join on (site_id, "
        "vatid). A group no longer listed is kept, with missing_since set."
    ),
    columns=(
        site_column("product group"),
        integer(
            "vatid", "The group's ID (products' vatid); the default group is 2.", nullable=False
        ),
        decimal("value", "The group's VAT rate in percent."),
        integer(
            "productgrouptype",
            "The group's type. Undocumented codes; the fact sheet infers 10 Product, "
            "20 Service, 30 Gift Card.",
        ),
        text("productgroupname", "The group's name."),
        text("comment", "Comment."),
        *seen_columns("product group"),
        json_column(EXTRA, "Fields the vendor sent that no column declares, as JSON."),
    ),
    key=("site_id", "vatid"),
    keep_on_update=("first_seen_at",),
)
TABLES: tuple[Table, ...] = (PRODUCT_GROUPS,)

normalize_window = EntityNormalizer(stream=STREAM, parent=PRODUCT_GROUPS, prepare=site_listed)
