"""Products (`GET {v2}/sites/{siteid}/products.json`): modified since the cursor, swept for
deletions.

Fact sheet 3: `datelastmodified` returns products modified *after* the value (**assumed**
exclusive; the strategy asks one second earlier, so an inclusive server loses nothing
either), no sort, start/num paging; `includeinactive=true` so products hidden from the POS
or the webshop are loaded too; explicit `fields` (normalize/products.py FIELDS: `title` is
not a default field). Deleted products never appear in a modified feed, so every
`sweep_hours` the ids alone (`fields=productid`) are listed and products not found get
`missing_since`; every `snapshot_hours` the whole catalogue is read again (the rules:
streams/cursors_modified.py).
"""

from __future__ import annotations

from sitoo_sync.api.client import Api
from sitoo_sync.normalize import products as normalize
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors_modified import ModifiedSince
from sitoo_sync.streams.options import Option
from sitoo_sync.streams.partitions import SITES

PRODUCTS = Stream(
    name="products",
    api=Api.V2,
    path="/sites/{siteid}/products.json",
    cursor=ModifiedSince(
        lo_param="datelastmodified",
        time_field="datemodified",
        inclusive=False,
        sweep_field="productid",
        fields=normalize.FIELDS,
        fixed=(("includeinactive", "true"),),
        snapshot_hours=24,
        sweep_hours=6,
    ),
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="Products of every configured site, inactive included; deleted ones are "
    "kept and marked by a periodic id sweep",
    partitions=SITES,
    partition_column="site_id",
    options=(
        Option(
            "overlap_seconds",
            int,
            "seconds each tick reads back before the newest modification loaded "
            "(this stream's own; SITOO_OVERLAP_SECONDS does not apply)",
            ge=0,
        ),
        Option(
            "sweep_hours",
            int,
            "hours between id sweeps that mark deleted products missing (0: never)",
            ge=0,
        ),
        Option(
            "snapshot_hours",
            int,
            "hours between full reads of the catalogue without a time filter (0: never)",
            ge=0,
        ),
    ),
)
