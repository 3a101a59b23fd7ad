"""Stock levels (`GET {v2}/sites/{siteid}/warehouses/{warehouseid}/warehouseitems.json`).

Fact sheet 5.2: one request series per warehouse (no site-wide stock endpoint),
`datelastmodifiedfrom` bounds `datelastmodified` (its inclusivity is not documented: asked
as if exclusive, one second early, so either reading loses nothing), no sort, start/num
paging. `datelastmodified` moves only with a warehouse transaction: a reservation
changes `decimalreserved`/`decimalavailable` without it, so every `snapshot_hours` the
warehouse's whole stock is read again (streams/cursors_modified.py). A row stops being
listed when its product is deleted or the row is removed (the fact sheet does not say stock
rows are kept), and no modified feed shows a row that is gone: every `sweep_hours` the skus
alone (`fields=sku`; the site and the warehouse come from the partition) are listed, and
the warehouse's rows not found get `missing_since` (v_stock_levels leaves them out).
Cost: one more request series per warehouse every `sweep_hours`, a page per 100 rows.
"""

from __future__ import annotations

from sitoo_sync.api.client import Api
from sitoo_sync.normalize import warehouse_items as normalize
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors_modified import ModifiedSince
from sitoo_sync.streams.options import Option
from sitoo_sync.streams.partitions import WAREHOUSES

WAREHOUSE_ITEMS = Stream(
    name="warehouse_items",
    api=Api.V2,
    path="/sites/{siteid}/warehouses/{warehouseid}/warehouseitems.json",
    cursor=ModifiedSince(
        lo_param="datelastmodifiedfrom",
        time_field="datelastmodified",
        inclusive=False,  # not documented: one second early loses nothing either way
        sweep_field="sku",
        snapshot_hours=6,
        sweep_hours=6,
    ),
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="Stock levels per warehouse and sku: changes since the cursor, a "
    "periodic full read for reservations, and a periodic sku sweep that marks rows no "
    "longer listed",
    partitions=WAREHOUSES,
    partition_scope=normalize.partition_rows,
    options=(
        Option(
            "overlap_seconds",
            int,
            "seconds each tick reads back before the newest change loaded "
            "(this stream's own; SITOO_OVERLAP_SECONDS does not apply)",
            ge=0,
        ),
        Option(
            "sweep_hours",
            int,
            "hours between sku sweeps that mark stock rows no longer listed (a deleted "
            "product's, a removed row's) missing, out of v_stock_levels (0: never)",
            ge=0,
        ),
        Option(
            "snapshot_hours",
            int,
            "hours between full reads of a warehouse's stock, which catch reservations "
            "(they do not move datelastmodified); 0: never",
            ge=0,
        ),
    ),
)
