"""Categories (`GET /sites/{siteid}/categories.json`, fact sheet 7.2): the category tree.

`categoryparentid` is null for a root. Products link here by `defaultcategoryid` and the
ids in `categories`.
"""

from __future__ import annotations

from sitoo_sync.normalize.entity import EntityNormalizer
from sitoo_sync.normalize.records import EXTRA
from sitoo_sync.normalize.site_listing import seen_columns, site_column, site_listed
from sitoo_sync.normalize.tables import Table, boolean, integer, json_column, text, timestamp

STREAM = "categories"

CATEGORIES = Table(
    name="categories",
    description=(
        "The product categories of every configured site, as a tree (categoryparentid). A "
        "category no longer listed is kept, with missing_since set."
    ),
    columns=(
        site_column("category"),
        integer("categoryid", "The category's ID.", nullable=False),
        integer("categoryparentid", "The parent category; NULL for a root."),
        boolean("visible", "Whether it is visible."),
        integer("sortorder", "Position among its siblings (zero-based)."),
        text("title", "The category's title."),
        text("friendly", "Friendly URL name."),
        text("seo_title", "SEO title."),
        text("seo_keywords", "SEO keywords."),
        text("seo_description", "SEO description."),
        text("custom1", "Custom field 1."),
        text("custom2", "Custom field 2."),
        timestamp("datecreated", "When the category was created (UTC)."),
        timestamp("datemodified", "When the category was last modified (UTC)."),
        *seen_columns("category"),
        json_column(EXTRA, "Fields the vendor sent that no column declares, as JSON."),
    ),
    key=("site_id", "categoryid"),
    keep_on_update=("first_seen_at",),
)
TABLES: tuple[Table, ...] = (CATEGORIES,)

normalize_window = EntityNormalizer(stream=STREAM, parent=CATEGORIES, prepare=site_listed)
