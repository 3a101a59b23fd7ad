"""Manufacturers (`GET {v2}/sites/{siteid}/manufacturers.json`): start/num pages.

Listed in full every tick (fact sheet 7.2: no filter); rows the listing no longer shows get
`missing_since` and are kept. Every assumption about the endpoint is in this declaration and
its normalize module.
"""

from __future__ import annotations

from sitoo_sync.api.client import Api
from sitoo_sync.normalize import manufacturers as normalize
from sitoo_sync.streams.base import Stream
from sitoo_sync.streams.cursors import OffsetPages
from sitoo_sync.streams.partitions import SITES

MANUFACTURERS = Stream(
    name="manufacturers",
    api=Api.V2,
    path="/sites/{siteid}/manufacturers.json",
    cursor=OffsetPages(),
    tables=normalize.TABLES,
    normalize=normalize.normalize_window,
    description="Manufacturers of every configured site; vanished ones are kept and marked",
    default_schedule="1h",
    partitions=SITES,
    full_refresh=True,
    partition_column="site_id",
)
