"""Stock levels (`GET {v2}/sites/{siteid}/warehouses/{warehouseid}/warehouseitems.json`).

Fact sheet 5.2: one request series per warehouse (no site-wide stock endpoint),
`datelastmodifiedfrom` bounds `datelastmodified` (its inclusivity is not documented: asked
as if exclusive, one second early, so either reading loses nothing), no sort, start/num
paging. `datelastmodified` moves only with a warehouse transaction: a reservation
changes `decimalreserved`/`decimalavailable` without it, so every `snapshot_hours` the
warehouse's whole stock is read again (streams/cursors_modified.py). Stock rows are never
deleted, so there is no sweep.
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
        snapshot_hours=6,
        sweep_hours=0,
    ),
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="Stock levels per warehouse and sku: changes since the cursor, and a "
    "periodic full read for reservations",
    partitions=WAREHOUSES,
    options=(
        Option(
            "overlap_seconds",
            int,
            "seconds each tick reads back before the newest change loaded "
            "(this stream's own; SITOO_OVERLAP_SECONDS does not apply)",
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
