"""Warehouses (`GET {v2}/sites/{siteid}/warehouses.json`): start/num pages to totalcount.

Listed in full every tick (fact sheet 5.1: no filter, no date); rows the listing no longer
shows get `missing_since` and are kept. Every assumption about the endpoint is in this
declaration and its normalize module.
"""

from __future__ import annotations

from sitoo_sync.api.client import Api
from sitoo_sync.normalize import warehouses as normalize
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors import OffsetPages
from sitoo_sync.streams.partitions import SITES

WAREHOUSES = Stream(
    name="warehouses",
    api=Api.V2,
    path="/sites/{siteid}/warehouses.json",
    cursor=OffsetPages(),
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="Warehouses of every configured site, with their store; vanished ones are kept "
    "and marked",
    default_schedule="1h",
    partitions=SITES,
    full_refresh=True,
    partition_column="site_id",
)
